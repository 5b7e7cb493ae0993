"""Fréchet distance methods at d = 2048 on covariances of real features, and streaming moments vs np.cov.

Usage: python bench/bench_frechet.py            (computes the class statistics with the shared weights first)
"""

from __future__ import annotations

import subprocess
import sys
import warnings

import fidrs
import numpy as np
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


def compare(args, ref: float, t_scipy: float, methods) -> None:
    """Time each fidrs method on `args` and print it beside SciPy's time and value."""
    for method, repeats in methods:
        t, runs = median_time(lambda m=method: fidrs.frechet_distance(*args, method=m), repeats=repeats)
        info = fidrs.frechet_distance(*args, method=method, return_info=True)
        steps = ", ".join(f"{k} {v:.3f} s" for k, v in info["seconds_by_step"].items())
        print(
            f"fidrs {method}: {t:.3f} s median of {[round(x, 3) for x in runs]}, {t_scipy / t:.1f}x scipy; "
            f"FID {info['value']:.6f}, |diff| {abs(info['value'] - ref):.2e}; {info['factorisation']} rank "
            f"{info['rank']}, {info['iterations']} iterations, stop {info['stop_reason']}, error bound "
            f"{info['residual']:.1e}; steps: {steps}"
        )


def main() -> None:
    print(f"machine: {machine()}")
    a, b = class_stats("apple_red_1"), class_stats("apple_red_delicious")
    args = (a.mu, a.sigma, b.mu, b.sigma)
    print(f"covariances: d = {a.mu.size}, n = {a.n} and {b.n} (singular: n < d)")

    t_scipy, runs = median_time(lambda: frechet_distance_scipy(*args), repeats=3)
    ref = frechet_distance_scipy(*args)
    print(f"pytorch-fid path (scipy sqrtm): {t_scipy:.2f} s median of {[round(t, 2) for t in runs]}, FID {ref:.6f}")
    compare(args, ref, t_scipy, (("auto", 5), ("eigh", 5), ("newton-schulz", 3)))
    # Full rank (n > d): Cholesky on both sides, the common case of FID-50k.
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4096, 2048)) @ (rng.standard_normal((2048, 2048)) / 45) + np.asarray(a.mu)
    y = rng.standard_normal((4096, 2048)) @ (rng.standard_normal((2048, 2048)) / 45) + np.asarray(b.mu)
    full = (x.mean(0), np.cov(x, rowvar=False), y.mean(0), np.cov(y, rowvar=False))
    t_full_scipy, _ = median_time(lambda: frechet_distance_scipy(*full), repeats=1)
    ref_full = frechet_distance_scipy(*full)
    print(f"full rank, n = 4096: scipy sqrtm {t_full_scipy:.2f} s, FID {ref_full:.6f}")
    compare(full, ref_full, t_full_scipy, (("eigh", 3), ("newton-schulz", 1)))

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
