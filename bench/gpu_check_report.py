"""The GPU check's report: `gpu-check.json` (everything measured) and `gpu-check.md` (one pass/fail line per
item, then the fidelity, throughput and end-to-end tables, nvidia-smi before and after, and the bounds'
derivations), both rewritten after every item so that a run cut short still leaves what it measured."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import gpu_check_bounds as bounds

STATUSES = ("pass", "fail", "skipped")


class Report:
    def __init__(self, out: Path, meta: dict, expected: list[str]) -> None:
        self.out = out
        self.meta = meta
        self.env: dict = {}
        self.networks: dict[str, dict] = {}
        self.items: dict[str, dict] = {item: {"status": "pending", "summary": "", "data": {}} for item in expected}
        self.text: dict[str, str] = {}  # nvidia-smi before / after
        self.logs: dict[str, str] = {}  # the end of a child's log, where one of its items failed

    def add(self, item: str, status: str, summary: str, data: dict | None = None) -> None:
        if status not in STATUSES:
            raise ValueError(f"{item}: unknown status {status!r}")
        self.items[item] = {"status": status, "summary": summary, "data": data or {}}
        self.write()

    def pending(self, prefix: str = "") -> list[str]:
        return [k for k, v in self.items.items() if v["status"] == "pending" and k.startswith(prefix)]

    @property
    def failed(self) -> list[str]:
        return [k for k, v in self.items.items() if v["status"] == "fail"]

    def as_json(self) -> dict:
        counts = {s: sum(v["status"] == s for v in self.items.values()) for s in (*STATUSES, "pending")}
        return {
            "meta": self.meta,
            "env": self.env,
            "networks": self.networks,
            "counts": counts,
            "items": self.items,
            "nvidia_smi": self.text,
            "logs": self.logs,
        }

    def write(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        _atomic(self.out / "gpu-check.json", json.dumps(self.as_json(), indent=1, allow_nan=False) + "\n")
        _atomic(self.out / "gpu-check.md", self.markdown())

    # --- Markdown ---------------------------------------------------------------------------------------------

    def markdown(self) -> str:
        m, env = self.meta, self.env
        device = env.get("gpu", {})
        provider = self.items.get("provider", {}).get("data", {})
        lines = [
            f"# fidrs GPU check{' (DRY RUN: tiny sizes)' if m.get('dry_run') else ''}, device {m.get('device', '')}",
            "",
            f"- started {m.get('started', '')}, {m.get('elapsed_s', 0):.0f} s of a {m.get('budget_s', 0):.0f} s budget",
            f"- GPU: {device.get('name') or 'none'}; driver {device.get('driver') or '-'}; "
            f"CUDA (driver API) {device.get('cuda_driver_api') or '-'}; {device.get('memory_total_mib') or '-'} MiB",
            f"- ONNX Runtime {provider.get('onnxruntime', '-')} ({provider.get('onnxruntime_package', '-')}, built for "
            f"CUDA {provider.get('onnxruntime_cuda') or '-'}); CUDA runtime {provider.get('cuda_runtime', '-')}; "
            f"cuDNN {provider.get('cudnn', '-')}; fidrs {provider.get('fidrs', '-')}",
            f"- host: {env.get('host', {}).get('cpu', '')}, {env.get('host', {}).get('cores', '')} cores, "
            f"{env.get('host', {}).get('memory_gib', '')} GiB, Python {env.get('host', {}).get('python', '')}",
            "",
            "## Items",
            "",
            "| item | status | summary |",
            "|---|---|---|",
        ]
        for item, v in self.items.items():
            lines.append(f"| {item} | {v['status'].upper()} | {_cell(v['summary'])} |")
        lines += self._networks() + self._fidelity() + self._throughput() + self._end_to_end()
        for network, tail in self.logs.items():
            lines += ["", f"## The end of logs/{network}.log (an item failed)", "", "```", tail.rstrip(), "```"]
        for when in ("before", "after"):
            if when in self.text:
                lines += ["", f"## nvidia-smi {when}", "", "```", self.text[when].rstrip(), "```"]
        lines += ["", "## Bounds", ""]
        for fn in (bounds.fp32_bound, bounds.tf32_estimate, bounds.fd_bound):
            lines += [f"**{fn.__name__}**: " + " ".join(fn.__doc__.split()), ""]
        return "\n".join(lines) + "\n"

    def _networks(self) -> list[str]:
        if not self.networks:
            return []
        header = ["network", "GFLOP/image", "reductions on the longest path", "longest reduction", "built in (s)"]
        header += ["inputs: mode"]
        rows = [
            [name, f"{n['flops'] / 1e9:.2f}", n["depth"], n["longest_reduction"], f"{n['seconds']:.1f}"]
            + [n.get("mode", "")]
            for name, n in self.networks.items()
        ]
        return ["", "## Networks (seeded random weights, official layouts)", "", *_table(header, rows)]

    def _rows(self, prefix: str):
        for item, v in self.items.items():
            if item.startswith(prefix) and v["status"] != "pending":
                yield item.split("/"), v

    def _fidelity(self) -> list[str]:
        header = ["network", "precision", "status", "images", "max per-image error", "median", "bound / expected"]
        header += ["gain g", "FD (CPU)", "FD (GPU)", "abs(ΔFD)", "FD bound"]
        rows = []
        for (_, network, precision), v in self._rows("fidelity/"):
            d = v["data"]
            fp32 = precision == "fp32"
            rows.append(
                [network, precision, v["status"], d.get("images", "")]
                + [_e(d.get("max_relative_error")), _e(d.get("median_relative_error"))]
                + [_e(d.get("fp32_bound" if fp32 else "tf32_estimate")), _g(d.get("gain"), 3)]
                + [_g(d.get("fd_cpu"), 8), _g(d.get("fd_gpu"), 8), _e(_abs(d.get("fd_difference")))]
                + [_e(d.get("fd_bound")) if fp32 else "(reported)"]
            )
        title = "## Fidelity: CUDA against the CPU provider (same graph, same inputs)"
        return ["", title, "", *_table(header, rows)]

    def _throughput(self) -> list[str]:
        header = ["network", "precision", "batch", "status", "images/s", "% of fp32 ceiling", "first batch (s)"]
        header += ["peak memory (MiB)"]
        rows = []
        for (_, network, precision, batch), v in self._rows("throughput/"):
            d = v["data"]
            rows.append(
                [network, precision, batch[1:], v["status"], _n(d.get("images_per_s"))]
                + [_pct(d.get("ratio_to_fp32_ceiling")), _g(d.get("first_batch_s"), 3), _mib(d)]
            )
        note = f"Peak memory: {self.meta.get('memory_source', '')}, the highest sample during the item."
        return ["", "## Throughput: the bare network (fidrs' session, IO binding)", "", note, "", *_table(header, rows)]

    def _end_to_end(self) -> list[str]:
        header = ["network", "status", "images", "threads", "host decode+preprocess img/s"]
        header += ["network img/s (same batch)", "end to end img/s", "bound by", "peak memory (MiB)"]
        rows = []
        for (_, network), v in self._rows("e2e/"):
            d = v["data"]
            rows.append(
                [network, v["status"], d.get("images", ""), d.get("threads", "")]
                + [_n(d.get("host_images_per_s")), _n(d.get("network_fp32_images_per_s"))]
                + [_n(d.get("images_per_s")), d.get("bound_by", ""), _mib(d)]
            )
        return ["", "## End to end: 256² JPEGs through `fidrs.features` (fp32)", "", *_table(header, rows)]


def _table(header: list[str], rows: list[list]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]


def _atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _abs(x):
    return abs(x) if isinstance(x, (int, float)) else x


def _number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _g(x, digits: int) -> str:
    return f"{x:.{digits}g}" if _number(x) else ("" if x is None else str(x))


def _e(x) -> str:
    return f"{x:.2e}" if _number(x) else ("" if x is None else str(x))


def _n(x) -> str:
    return f"{x:,.0f}" if _number(x) else ""


def _pct(x) -> str:
    return f"{x:.0%}" if _number(x) else ""


def _mib(d: dict) -> str:
    peak = d.get("memory_peak_bytes")
    return f"{peak / 2**20:,.0f}" if isinstance(peak, (int, float)) else ""
