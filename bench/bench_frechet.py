"""Fréchet distance methods at d = 2048 on covariances of real features, and streaming moments vs np.cov.

Usage: python bench/bench_frechet.py            (computes the class statistics with the shared weights first)
"""

from __future__ import annotations

import subprocess
import sys
import time
import warnings

import fidrs
from common import DATA, WEIGHTS, machine, median_time
from fidrs.frechet import frechet_distance_scipy

MOMENTS_CHILD = """
import sys, time, numpy as np
import fidrs

def status(field):
    for line in open('/proc/self/status'):
        if line.startswith(field):
            return int(line.split()[1]) / 1024  # MiB
n, d, which = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
x = np.random.default_rng(0).random((n, d), dtype=np.float32)
open('/proc/self/clear_refs', 'w').write('5')  # reset the peak-RSS mark (VmHWM) to the current RSS
base = status('VmRSS')
start = time.perf_counter()
if which == "numpy":
    cov = np.cov(x, rowvar=False)
else:
    m = fidrs.Moments(d)
    for chunk in range(0, n, 50):  # the pipeline's batch size
        m.update(x[chunk:chunk + 50])
    cov = m.covariance()
seconds = time.perf_counter() - start
print(f"{seconds:.3f} {status('VmHWM') - base:.0f}")
"""


def class_stats(name: str) -> fidrs.Stats:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fidrs.SmallSampleWarning)
        return fidrs.stats(str(DATA / "training" / name), weights=str(WEIGHTS))


def main() -> None:
    print(f"machine: {machine()}")
    a, b = class_stats("apple_red_1"), class_stats("apple_red_delicious")
    args = (a.mu, a.sigma, b.mu, b.sigma)
    print(f"covariances: d = {a.mu.size}, n = {a.n} and {b.n} (singular: n < d)")

    t_scipy, runs = median_time(lambda: frechet_distance_scipy(*args), repeats=3)
    ref = frechet_distance_scipy(*args)
    print(f"pytorch-fid path (scipy sqrtm): {t_scipy:.2f} s median of {[round(t, 2) for t in runs]}, FID {ref:.6f}")
    for method in ("auto", "eigh"):
        t, runs = median_time(lambda m=method: fidrs.frechet_distance(*args, method=m), repeats=5)
        value = fidrs.frechet_distance(*args, method=method)
        print(
            f"fidrs {method}: {t:.2f} s median of {[round(x, 2) for x in runs]}, FID {value:.6f}, "
            f"{t_scipy / t:.1f}x faster, |diff| {abs(value - ref):.2e}"
        )
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        info = fidrs.frechet_distance(*args, method="newton-schulz", return_info=True, max_iterations=100)
    print(
        f"fidrs newton-schulz: {time.perf_counter() - start:.2f} s, {info['iterations']} iterations, "
        f"residual {info['residual']:.1e}, used {info['method']}, FID {info['value']:.6f}"
    )

    n, d = 50_000, 2048
    for which in ("numpy", "fidrs"):
        runs = []
        for _ in range(3):
            out = subprocess.run(
                [sys.executable, "-c", MOMENTS_CHILD, str(n), str(d), which], capture_output=True, text=True, check=True
            ).stdout.split()
            runs.append((float(out[0]), float(out[1])))
        times = sorted(r[0] for r in runs)
        label = "np.cov" if which == "numpy" else "fidrs.Moments (50-row updates)"
        print(
            f"{label} on {n}x{d} float32: {times[1]:.2f} s median of {times}, peak memory added "
            f"{max(r[1] for r in runs):.0f} MiB"
        )


if __name__ == "__main__":
    main()
