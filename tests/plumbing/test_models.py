"""models/: one manifest per backbone (the registry's only source of URLs, hashes, sizes, modes and outputs),
`fidrs models` (list, fetch, export) and `--model` (a pre-exported graph)."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import fidrs
import numpy as np
import pytest
from cli_in_process import run_cli_here
from conftest import ROOT, SHARED, run_cli, serve_folder, write_images
from fidrs import backbones
from fidrs.backbones import manifest
from fidrs.backbones.dinov2 import checkpoint_bytes
from fidrs.backbones.vit_graph import Architecture

VITS = SHARED / "conformance" / "dinov2" / "random_dinov2_vits14.pth"


def test_every_backbone_has_one_manifest_and_the_registry_has_no_urls_or_hashes():
    assert manifest.names() == sorted(backbones.names(aliases=False))
    assert sorted(p.name for p in (ROOT / "models").iterdir()) == [f"{n}.toml" for n in manifest.names()]
    for source in (ROOT / "python" / "fidrs" / "backbones").glob("*.py"):
        text = source.read_text()
        assert "https://" not in text and "http://" not in text, source
        assert not re.search(r"['\"][0-9a-f]{8,64}['\"]", text), f"{source} holds a hash"
    for name in manifest.names():
        m = manifest.manifest(name)
        b = backbones.get(name)
        assert (b.weights.url, b.weights.sha256, b.weights.max_bytes) == (
            m["weights"]["url"],
            m["weights"].get("sha256"),
            m["weights"]["max_bytes"],
        )
        assert [(o.name, o.dim) for o in b.outputs] == [(o["name"], o["dim"]) for o in m["outputs"]]
        assert list(b.modes) == list(m["modes"]) and b.default_mode in b.modes


def test_dinov2_manifest_sizes_follow_from_their_architecture():
    for name in ("dinov2-vits14", "dinov2-vitb14", "dinov2-vitl14", "dinov2-vitg14"):
        a = manifest.manifest(name)["architecture"]
        arch = Architecture(a["width"], a["depth"], a["ffn"], a["grid"])
        assert backbones.get(name).weights.max_bytes == checkpoint_bytes(arch) + (1 << 20)
        assert backbones.get(name).feature_dim == a["width"]


def test_models_lists_fetches_ahead_of_time_and_reports_the_cache(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    shutil.copy(VITS, root / "dinov2_vits14_pretrain.pth")
    cache = tmp_path / "cache"
    with serve_folder(root) as url:
        env = {"FIDRS_CACHE": str(cache), "FIDRS_WEIGHTS_URL_DINOV2_VITS14": f"{url}/dinov2_vits14_pretrain.pth"}
        before = run_cli("models", "list", "--json", env=env)
        fetched = run_cli("models", "fetch", "dinov2-vits14", env=env, timeout=600)
    assert before.returncode == 0, before.stderr
    listed = {m["name"]: m for m in json.loads(before.stdout)["models"]}
    assert sorted(listed) == sorted(backbones.names(aliases=False))
    assert listed["dinov2-vits14"]["checkpoint_state"] == "not downloaded" and listed["dinov2-vits14"]["graphs"] == []
    assert fetched.returncode == 0, fetched.stderr
    assert (cache / "dinov2_vits14_pretrain.pth").is_file()
    after = run_cli("models", env={"FIDRS_CACHE": str(cache)})  # offline now: the cache is enough
    row = next(line for line in after.stdout.splitlines() if line.startswith("dinov2-vits14"))
    assert "downloaded" in row and "not" not in row and re.search(r"\s1\s", row), after.stdout
    state = json.loads(run_cli("models", "list", "--json", env={"FIDRS_CACHE": str(cache)}).stdout)
    vits = next(m for m in state["models"] if m["name"] == "dinov2-vits14")
    assert vits["checkpoint_state"] == "downloaded" and len(vits["graphs"]) == 1


def test_exported_graph_gives_the_same_numbers_and_weights_hash(tiny, tmp_path, capsys):
    _, weights = tiny
    exported = tmp_path / "tiny.onnx"
    out = run_cli_here(capsys, "models", "export", "tiny", "--weights", weights, "-o", str(exported))
    assert out.returncode == 0, out.stderr
    # 12 and 11 images: full-rank covariances of the tiny network's 8 features
    a, b = write_images(tmp_path / "a", 12, seed=1), write_images(tmp_path / "b", 11, seed=2)
    from_graph = fidrs.score_details(str(a), str(b), model=str(exported), cache=False)
    from_checkpoint = fidrs.score_details(str(a), str(b), backbone="tiny", weights=weights, cache=False)
    assert from_graph["backbone"] == from_checkpoint["backbone"] == "tiny"
    assert from_graph["fid"] == from_checkpoint["fid"]  # the same graph bytes run on the same pixels
    assert from_graph["weights_sha256"] == from_checkpoint["weights_sha256"] == fidrs.weights.sha256_file(weights)
    np.testing.assert_array_equal(
        fidrs.features(str(a), model=str(exported), cache=False),
        fidrs.features(str(a), backbone="tiny", weights=weights, cache=False),
    )


def test_graphs_that_are_not_fidrs_exports_are_refused_by_name(tiny, tmp_path, capsys):
    _, weights = tiny
    exported = tmp_path / "exported.onnx"
    assert run_cli_here(capsys, "models", "export", "tiny", "--weights", weights, "-o", str(exported)).returncode == 0
    a = write_images(tmp_path / "a", 3)
    fifo = tmp_path / "fifo.onnx"
    os.mkfifo(fifo)
    import onnx

    bare = onnx.load(str(exported))
    del bare.metadata_props[:]
    onnx.save(bare, str(tmp_path / "bare.onnx"))
    cases = {
        "--model": (str(exported), "--backbone", "dinov2-vits14"),
        "bare": (str(tmp_path / "bare.onnx"),),
        "checkpoint": (weights,),
        "fifo": (str(fifo),),
    }
    reasons = {
        "--model": "a graph of backbone 'tiny', not 'dinov2-vits14'",
        "bare": "without fidrs' metadata",
        "checkpoint": "not a readable ONNX graph",
        "fifo": "a FIFO",
    }
    for case, (path, *rest) in cases.items():
        out = run_cli_here(
            capsys, "stats", str(a), "-o", str(tmp_path / "x.npz"), "--model", path, *rest, deadline_s=120
        )
        assert out.returncode == 2 and reasons[case] in out.stderr and "Traceback" not in out.stderr, (case, out.stderr)
        assert out.stderr.count(Path(path).name) == 1, out.stderr
    both = run_cli_here(
        capsys, "stats", str(a), "-o", str(tmp_path / "x.npz"), "--model", str(exported), "--weights", weights
    )
    assert both.returncode == 2 and "not both" in both.stderr
    with pytest.raises(fidrs.WeightsError, match="pins"):
        fidrs.stats(str(a), model=str(exported), weights_sha256="0" * 64)
