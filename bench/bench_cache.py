"""A CI gate run twice: cold feature cache, then warm.

Usage: python bench/bench_cache.py      (uses a fresh cache directory under /tmp)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

from common import DATA, WEIGHTS, machine


def main() -> None:
    env = dict(os.environ, FIDRS_CACHE=tempfile.mkdtemp(prefix="fidrs-bench-cache-"))
    a, b = DATA / "training" / "apple_red_1", DATA / "training" / "apple_golden_1"
    cmd = [
        sys.executable,
        "-m",
        "fidrs.cli",
        "score",
        str(a),
        str(b),
        "--weights",
        str(WEIGHTS),
        "--json",
        "--max-fid",
        "200",
    ]
    print(f"machine: {machine()}")
    print("command:", " ".join(cmd[2:]))
    results = []
    for label in ("cold cache (first run)", "warm cache (second run)", "warm cache (third run)"):
        start = time.perf_counter()
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
        seconds = time.perf_counter() - start
        result = json.loads(out.stdout)
        results.append(seconds)
        print(f"{label}: {seconds:.2f} s wall, FID {result['fid']:.6f}, cache hits {result['cache_hits']}")
    print(f"speed-up of the warm gate: {results[0] / min(results[1:]):.1f}x")


if __name__ == "__main__":
    main()
