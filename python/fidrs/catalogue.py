"""`fidrs models`: the backbones the manifests describe, where their weights and graphs stand in the cache, and
fetching them ahead of time (air-gapped machines: fetch where there is a network, copy the cache folder)."""

from __future__ import annotations

from typing import Any

from . import backbones, config
from .weights import cache_dir, official_path, recorded_sha256_path


def status(name: str) -> dict[str, Any]:
    """One backbone's manifest data and cache state."""
    b = backbones.get(name)
    checkpoint = official_path(b)
    record = recorded_sha256_path(checkpoint)
    graphs = sorted(p.name for p in cache_dir().glob(f"{b.name}-c{b.converter_sha256[:16]}-*.onnx"))
    if not checkpoint.is_file():
        state = "not downloaded"
    elif b.weights.sha256 is not None or record.is_file():
        state = "downloaded"
    else:
        state = "downloaded, not yet verified"
    return {
        "name": b.name,
        "aliases": list(b.aliases),
        "title": b.title,
        "feature_dim": b.feature_dim,
        "input_size": b.input_size,
        "modes": list(b.modes),
        "url": b.weights.url,
        "sha256": b.weights.sha256,
        "licence": b.weights.licence,
        "citation": b.weights.citation,
        "checkpoint": str(checkpoint),
        "checkpoint_state": state,
        "graphs": graphs,
        "weights_variable": config.weights_variable(b.name),
    }


def statuses() -> list[dict[str, Any]]:
    """Every registered backbone's `status`."""
    return [status(name) for name in backbones.names(aliases=False)]


def table() -> str:
    rows = statuses()
    header = ("backbone", "feature", "input", "weights in cache", "graphs", "licence")
    lines = [
        (
            r["name"] + (f" ({', '.join(r['aliases'])})" if r["aliases"] else ""),
            str(r["feature_dim"]),
            f"{r['input_size']}²",
            r["checkpoint_state"],
            str(len(r["graphs"])),
            r["licence"],
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in (header, *lines)) for i in range(len(header))]
    out = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in (header, *lines)]
    return "\n".join(out) + f"\ncache: {cache_dir()}"
