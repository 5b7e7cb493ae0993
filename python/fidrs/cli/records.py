"""What a CI gate leaves behind besides its exit code: a Markdown table on the GitHub Actions job summary
(when `GITHUB_STEP_SUMMARY` is set) and, with `--jsonl FILE`, one JSON line per run appended to FILE (the
metric-log convention of StyleGAN's `metric-*.jsonl`), so a training run's FIDs form a time series."""

from __future__ import annotations

import datetime
import os
import stat

from .. import config, strictjson
from ..display import display
from ..errors import InvalidInputError


def append_line(path: str, line: str) -> None:
    """Append one line with one write (O_APPEND: concurrent runs never interleave within a line). Only a
    regular file is appended to: a FIFO without a reader is refused instead of blocking."""
    data = (line.rstrip("\n") + "\n").encode()
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as e:
        raise InvalidInputError(f"{display(path)}: cannot append to it ({e.strerror})") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise InvalidInputError(f"{display(path)}: not a regular file; cannot append a record to it")
        written = os.write(fd, data)
        if written != len(data):
            raise InvalidInputError(f"{display(path)}: short write ({written} of {len(data)} bytes)")
    finally:
        os.close(fd)


def _cell(value) -> str:
    text = "" if value is None else (f"{value:.6g}" if isinstance(value, float) else str(value))
    return display(text).replace("|", "\\|")


def step_summary(result: dict, a: str, b: str) -> str:
    """The Markdown table of one score: metric, value, threshold, verdict, sample sizes, backbone, mode."""
    metric = "FID" if result.get("backbone") in (None, "inception") else f"FD ({result['backbone']})"
    verdict = {True: "✅ pass", False: "❌ fail"}.get(result.get("passed"), "—")  # type: ignore[arg-type]
    rows = [
        ("metric", metric),
        ("value", result["fid"]),
        ("threshold", result.get("max_fid")),
        ("result", verdict),
        ("n", f"{result.get('n_a')} / {result.get('n_b')}"),
        ("backbone", result.get("backbone")),
        ("mode", result.get("mode")),
        ("inputs", f"{a} vs {b}"),
    ]
    lines = ["### fidrs score", "", "| | |", "|---|---|"] + [f"| {k} | {_cell(v)} |" for k, v in rows]
    return "\n".join(lines) + "\n"


def record_run(result: dict, a: str, b: str, *, jsonl: str | None) -> None:
    """Append the run to the GitHub job summary (when in Actions) and to `jsonl` (when given)."""
    summary = config.github_step_summary()
    if summary:
        append_line(summary, step_summary(result, a, b))
    if jsonl:
        stamped = {"timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(), "a": a, "b": b, **result}
        append_line(jsonl, strictjson.dumps(stamped))
