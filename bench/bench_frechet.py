"""The Fréchet distance at d = 2048 beside its floor, one LAPACK `eigvalsh` (NumPy's), and SciPy's `sqrtm`
(pytorch-fid's path), measured in one process and interleaved (A, B, C, A, B, C, …) so that a busy machine
slows them alike; and the streaming moments beside `np.cov`.

Usage:
  python bench/bench_frechet.py                   full rank + rank deficient, d = 2048, 2 threads
  python bench/bench_frechet.py --threads 1       one thread for fidrs and OpenBLAS (CPU seconds are shown too)
  python bench/bench_frechet.py --d 256 --rounds 2 --scipy-rounds 1   a quick check of the script itself
  python bench/bench_frechet.py --real            + the shared classes' statistics (runs the Inception first)
  python bench/bench_frechet.py --moments         + fidrs.Moments vs np.cov on 50,000 × 2048

Rows: `fidrs(arrays)` is `frechet_distance(mu1, sigma1, mu2, sigma2)` from the arrays (both checks and
factorisations included); `fidrs(Covariance)` is the distance from two `Covariance`s (what `fidrs score
a.npz b.npz` does after loading: each file's check already factorised it), and `Covariance x2` their
construction. The figure of merit is the median over rounds of the per-round ratio to `eigvalsh`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time


def _parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--d", type=int, default=2048)
    p.add_argument("--threads", type=int, default=2, help="fidrs and OpenBLAS threads (set before import)")
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds of the fast rows")
    p.add_argument("--scipy-rounds", type=int, default=2, help="SciPy sqrtm is ~10× slower: fewer rounds")
    p.add_argument("--real", action="store_true", help="also the shared classes' statistics (slow: runs a network)")
    p.add_argument("--moments", action="store_true", help="also the streaming moments vs np.cov")
    return p.parse_args()


ARGS = _parse()
if os.environ.get("FIDRS_NUM_THREADS") != str(ARGS.threads):
    # The thread counts must be set before NumPy and fidrs start their pools: run again with them.
    env = {**os.environ, "FIDRS_NUM_THREADS": str(ARGS.threads), "OPENBLAS_NUM_THREADS": str(ARGS.threads)}
    sys.exit(subprocess.run([sys.executable, *sys.argv], env=env).returncode)

import fidrs  # noqa: E402
import numpy as np  # noqa: E402
from common import DATA, WEIGHTS, machine  # noqa: E402
from fidrs import _fidrs  # noqa: E402
from fidrs.frechet import frechet_distance_scipy  # noqa: E402

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


def synthetic(d: int, n: int, seed: int, shift: float = 0.0):
    """Statistics of n correlated Gaussian features (full rank when n > d), as a feature extractor gives."""
    rng = np.random.default_rng(seed)
    mix = rng.standard_normal((d, d)) / np.sqrt(d)
    x = rng.standard_normal((n, d)) @ mix + shift
    return x.mean(0), np.cov(x, rowvar=False)


def timed(fn):
    c, t = time.process_time(), time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t, time.process_time() - c


def interleaved(rows: dict, rounds: int) -> dict:
    """Run every row once per round, in order; returns {row: [(wall, cpu, value), …]}."""
    results = {name: [] for name in rows}
    for _ in range(rounds):
        for name, (fn, every) in rows.items():
            if len(results[name]) < every:
                value, wall, cpu = timed(fn)
                results[name].append((wall, cpu, value))
    return results


def report(results: dict, floor: str, reference: float) -> None:
    base = results[floor]
    for name, runs in results.items():
        walls = [r[0] for r in runs]
        cpus = [r[1] for r in runs]
        ratios = [w / b[0] for w, b in zip(walls, base)]
        value = runs[0][2]
        shown = f"{value:.6f}" if isinstance(value, float) else "—"
        diff = f"{abs(value - reference) / max(1.0, abs(reference)):.1e}" if isinstance(value, float) else "—"
        print(
            f"| {name:<22} | {statistics.median(walls):7.3f} | {statistics.median(cpus):7.3f} | "
            f"{statistics.median(ratios):6.2f} | {shown:>14} | {diff:>9} | {len(runs)} |"
        )


HEADER = (
    "| row                    | wall s  | CPU s   | × floor | value          | rel. diff | runs |\n"
    "|---|---|---|---|---|---|---|"
)


def compare(title: str, args, rounds: int, scipy_rounds: int) -> None:
    mu1, s1, mu2, s2 = args
    c1, c2 = _fidrs.Covariance(s1, mu1), _fidrs.Covariance(s2, mu2)
    print(f"\n### {title}: d = {mu1.size}, ranks {c1.rank} and {c2.rank} ({c1.factorisation}, {c2.factorisation})")
    rows = {
        "eigvalsh (LAPACK floor)": (lambda: np.linalg.eigvalsh(s1)[0] and None, rounds),
        "fidrs(arrays) eigh": (lambda: fidrs.frechet_distance(*args), rounds),
        "fidrs(Covariance) eigh": (lambda: fidrs.frechet_distance(mu1, c1, mu2, c2), rounds),
        "Covariance x2": (lambda: (_fidrs.Covariance(s1, mu1), _fidrs.Covariance(s2, mu2)) and None, rounds),
        "fidrs newton-schulz": (lambda: fidrs.frechet_distance(mu1, c1, mu2, c2, method="newton-schulz"), 1),
        "scipy sqrtm (pytorch-fid)": (lambda: frechet_distance_scipy(*args), scipy_rounds),
    }
    results = interleaved(rows, rounds)
    reference = results["scipy sqrtm (pytorch-fid)"][0][2]
    print(HEADER)
    report(results, "eigvalsh (LAPACK floor)", reference)
    scipy_wall = statistics.median(r[0] for r in results["scipy sqrtm (pytorch-fid)"])
    for name in ("fidrs(arrays) eigh", "fidrs(Covariance) eigh"):
        wall = statistics.median(r[0] for r in results[name])
        print(f"{name}: {scipy_wall / wall:.0f}× faster than SciPy sqrtm")
    steps = fidrs.frechet_distance(*args, return_info=True)["seconds_by_step"]
    print("fidrs(arrays) steps (wall s, last run): " + ", ".join(f"{k} {v:.3f}" for k, v in steps.items()))


def class_stats(name: str) -> fidrs.Stats:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fidrs.SmallSampleWarning)
        return fidrs.stats(str(DATA / "training" / name), weights=str(WEIGHTS))


def main() -> None:
    d = ARGS.d
    print(f"machine: {machine()}; threads: fidrs {_fidrs.num_threads()}, OpenBLAS {os.environ['OPENBLAS_NUM_THREADS']}")
    full = (*synthetic(d, 2 * d, 1), *synthetic(d, 2 * d, 2, shift=0.05))
    compare("full rank (n = 2d samples per side)", full, ARGS.rounds, ARGS.scipy_rounds)
    deficient = (*synthetic(d, d // 4, 3), *synthetic(d, d // 4 + 50, 4, shift=0.05))
    compare("rank deficient (n < d: singular covariances)", deficient, ARGS.rounds, ARGS.scipy_rounds)
    if ARGS.real:
        a, b = class_stats("apple_red_1"), class_stats("apple_red_delicious")
        compare("shared classes apple_red_1 vs apple_red_delicious", (a.mu, a.sigma, b.mu, b.sigma), 3, 1)
    if ARGS.moments:
        n = 50_000
        for which in ("numpy", "fidrs"):
            runs = []
            for _ in range(3):
                out = subprocess.run(
                    [sys.executable, "-c", MOMENTS_CHILD, str(n), str(d), which],
                    capture_output=True,
                    text=True,
                    check=True,
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
