"""CMMD's estimator (biased MMD², Gaussian RBF kernel, σ = 10, × 1000) on synthetic L2-normalised embeddings:
time and the memory it adds beyond its inputs (peak RSS), with and without a bootstrap, each in a fresh process.

Usage:
  python bench/bench_mmd.py                          50,000 × 50,000 × 768 (about a minute on 2 cores)
  python bench/bench_mmd.py --n 2000 --m 1500 --check   small, and checked against NumPy's float64 formula
  python bench/bench_mmd.py --bootstrap 100          also 100 resamples in the same pass
Threads: FIDRS_NUM_THREADS (default: every core).
"""

from __future__ import annotations

import argparse
import subprocess
import sys

from common import machine

CHILD = """
import sys, time, numpy as np
from fidrs import _fidrs

def status(field):
    for line in open('/proc/self/status'):
        if line.startswith(field):
            return int(line.split()[1]) / 1024  # MiB

n, m, d, rounds, check = (int(a) for a in sys.argv[1:6])
rng = np.random.default_rng(0)
def embeddings(rows, shift):
    out = np.empty((rows, d), np.float32)
    for s in range(0, rows, 10_000):  # in chunks: no float64 copy of the whole set
        e = rng.standard_normal((min(10_000, rows - s), d), dtype=np.float32) + shift
        out[s:s + len(e)] = e / np.linalg.norm(e, axis=1, keepdims=True)
    return out
x, y = embeddings(n, 0.0), embeddings(m, 0.02)
counts = None
if rounds:
    cx = np.stack([np.bincount(rng.integers(0, n, n), minlength=n) for _ in range(rounds)])
    cy = np.stack([np.bincount(rng.integers(0, m, m), minlength=m) for _ in range(rounds)])
open('/proc/self/clear_refs', 'w').write('5')  # reset the peak-RSS mark (VmHWM) to the current RSS
base = status('VmRSS')
start, cpu = time.perf_counter(), time.process_time()
if rounds:
    value, values = _fidrs.mmd_bootstrap(x, y, cx, cy)
else:
    value = _fidrs.mmd(x, y)
seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
added = status('VmHWM') - base
extra = ""
if check:
    a, b = x.astype(np.float64), y.astype(np.float64)
    def mean(p, q):
        total = 0.0
        for s in range(0, len(p), 256):
            dist = (p[s:s + 256, None, :] - q[None, :, :]) ** 2
            total += np.expm1(-dist.sum(-1) / 200.0).sum()
        return total / (len(p) * len(q))
    reference = 1000 * (mean(a, a) + mean(b, b) - 2 * mean(a, b))
    extra = f" | NumPy float64 formula {reference:.12f}, relative difference {abs(value - reference) / reference:.1e}"
inputs = (x.nbytes + y.nbytes) / 2**20
print(f"{value:.12f} {seconds:.2f} {cpu:.2f} {added:.0f} {inputs:.0f}{extra}")
"""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=50_000)
    p.add_argument("--m", type=int, default=50_000)
    p.add_argument("--d", type=int, default=768)
    p.add_argument("--bootstrap", type=int, default=0, metavar="B", help="also B resamples in the same pass")
    p.add_argument("--check", action="store_true", help="compare with NumPy's float64 formula (small sizes only)")
    args = p.parse_args()
    print(f"machine: {machine()}")
    print("| N × M × d | resamples | CMMD | wall s | CPU s | peak RSS added (MiB) | inputs (MiB) |")
    print("|---|---|---|---|---|---|---|")
    for rounds in sorted({0, args.bootstrap}):
        out = subprocess.run(
            [sys.executable, "-c", CHILD, *map(str, (args.n, args.m, args.d, rounds, int(args.check)))],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        head, _, extra = out.partition(" | ")
        value, wall, cpu, added, inputs = head.split()
        print(f"| {args.n} × {args.m} × {args.d} | {rounds} | {value} | {wall} | {cpu} | {added} | {inputs} |")
        if extra:
            print(f"  check: {extra}")


if __name__ == "__main__":
    main()
