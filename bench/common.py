"""Shared helpers for the benchmark scripts: paths, timing, machine description."""

from __future__ import annotations

import os
import platform
import resource
import statistics
import time
from pathlib import Path

SHARED = Path(os.environ.get("FIDRS_SHARED", Path(__file__).resolve().parents[2] / "shared"))
DATA = SHARED / "data" / "fruits360-apples"
WEIGHTS = SHARED / "conformance" / "random_fid_inception.pth"


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def median_time(fn, repeats: int = 3) -> tuple[float, list[float]]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
