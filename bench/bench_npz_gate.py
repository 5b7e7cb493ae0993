"""The CI gate's own latency (issue 28): `fidrs score a.npz b.npz` on two full-rank statistics files, end to
end as a process (wall, CPU, peak RSS), against pytorch-fid's own path for two `.npz` files (numpy load +
its `calculate_frechet_distance`, SciPy `sqrtm`), emulated here step for step because pytorch-fid (and torch)
need not be installed: the emulation skips pytorch-fid's `import torch`, so its figures are a lower bound.
Runs are interleaved (fidrs, pytorch-fid, fidrs --version, …) and the table gives medians.

    python bench/bench_npz_gate.py                 # d = 2048, 5 rounds
    python bench/bench_npz_gate.py --dim 64 --rounds 2   # a quick check of the script
    python bench/bench_npz_gate.py --samples 1000        # statistics of 1,000 images (rank 999)

Then one breakdown run of the fidrs path in a fresh process: import, load + check per file, distance."""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine  # noqa: E402

# pytorch-fid 0.3.0, src/pytorch_fid/fid_score.py: `compute_statistics_of_path` for a .npz
# (`with np.load(path) as f: m, s = f["mu"][:], f["sigma"][:]`) and `calculate_frechet_distance`.
PYTORCH_FID = r"""
import sys
import numpy as np
from scipy import linalg

def calculate_frechet_distance(mu1, sigma1, mu2, sigma2, eps=1e-6):
    mu1 = np.atleast_1d(mu1)
    mu2 = np.atleast_1d(mu2)
    sigma1 = np.atleast_2d(sigma1)
    sigma2 = np.atleast_2d(sigma2)
    assert mu1.shape == mu2.shape
    assert sigma1.shape == sigma2.shape
    diff = mu1 - mu2
    covmean, _ = linalg.sqrtm(sigma1.dot(sigma2), disp=False)
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError("Imaginary component {}".format(np.max(np.abs(covmean.imag))))
        covmean = covmean.real
    tr_covmean = np.trace(covmean)
    return diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * tr_covmean

def stats(path):
    with np.load(path) as f:
        return f["mu"][:], f["sigma"][:]

m1, s1 = stats(sys.argv[1])
m2, s2 = stats(sys.argv[2])
print(calculate_frechet_distance(m1, s1, m2, s2))
"""

# The fidrs path in one process, timed by stage (the CLI does the same calls through its parser).
BREAKDOWN = r"""
import json, sys, time
t0 = time.perf_counter()
import fidrs.cli.parser
from fidrs.references.readers import read_reference  # how the CLI reads a statistics file
from fidrs.frechet import frechet_distance
t1 = time.perf_counter()
a = read_reference(sys.argv[1]).entry().to_stats()
t2 = time.perf_counter()
b = read_reference(sys.argv[2]).entry().to_stats()
t3 = time.perf_counter()
info = frechet_distance(a.mu, a.covariance, b.mu, b.covariance, return_info=True)
t4 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "load_a": t2 - t1, "load_b": t3 - t2, "check_a": a.covariance.seconds,
                  "check_b": b.covariance.seconds, "distance": t4 - t3, "steps": info["seconds_by_step"]}))
"""


def write_statistics(directory: Path, dim: int, samples: int | None = None) -> tuple[str, str]:
    """Two full-rank covariances like those of 50,000 images: Σ = XᵀX/n + 0.01·I from Gaussian rows; with
    `samples`, the sample covariance of that many Gaussian rows (rank samples − 1 when fewer than dim, as the
    statistics of a small generated set)."""
    paths = []
    for name, seed in (("a", 1), ("b", 2)):
        rng = np.random.default_rng(seed)
        n = samples or 2 * dim
        x = rng.standard_normal((n, dim))
        if samples:
            centred = x - x.mean(axis=0)
            sigma = centred.T @ centred / (n - 1)
        else:
            sigma = x.T @ x / n + 0.01 * np.eye(dim)
        mu = rng.standard_normal(dim) * 0.1
        path = directory / f"{name}.npz"
        np.savez(path, mu=mu, sigma=sigma)
        paths.append(str(path))
    return paths[0], paths[1]


GNU_TIME = shutil.which("time") or "/usr/bin/time"


def run(argv: list[str]) -> dict:
    """One process: wall seconds, CPU seconds and peak RSS (MiB) of that process alone, and its stdout. Measured
    by GNU time, which starts the command from its own small process: Linux carries the RSS high-water mark
    across fork + exec, so a child of this (larger) process would report this process's peak."""
    start = time.perf_counter()
    done = subprocess.run([GNU_TIME, "-f", "BENCH %U %S %M", *argv], capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{argv[:3]} failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    user, system, rss_kib = done.stderr.strip().splitlines()[-1].split()[1:]
    return {"wall": wall, "cpu": float(user) + float(system), "rss": int(rss_kib) / 1024, "out": done.stdout}


def fidrs_command() -> list[str]:
    script = Path(sys.executable).with_name("fidrs")
    return [str(script)] if script.exists() else [shutil.which("fidrs") or "fidrs"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dim", type=int, default=2048)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--samples", type=int, help="statistics of this many images (default: full rank)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        a, b = write_statistics(Path(tmp), args.dim, args.samples)
        commands = {
            "fidrs score a.npz b.npz": [*fidrs_command(), "score", a, b, "--json"],
            "pytorch-fid equivalent": [sys.executable, "-c", PYTORCH_FID, a, b],
            "fidrs --version": [*fidrs_command(), "--version"],
        }
        run(commands["fidrs score a.npz b.npz"])  # warm-up: page cache, first-run compilation of .pyc files
        runs: dict[str, list[dict]] = {name: [] for name in commands}
        for _ in range(args.rounds):
            for name, argv in commands.items():
                runs[name].append(run(argv))
        breakdown = json.loads(run([sys.executable, "-c", BREAKDOWN, a, b])["out"])
    fid = json.loads(runs["fidrs score a.npz b.npz"][0]["out"])["fid"]
    reference = float(runs["pytorch-fid equivalent"][0]["out"])
    deficient = args.samples and args.samples <= args.dim
    rank = f"rank {args.samples - 1} ({args.samples} samples)" if deficient else "full rank"
    print(f"# CI gate, d = {args.dim}, {rank}; {machine()}; medians of {args.rounds} interleaved rounds")
    print(f"{'command':<26} {'wall s':>8} {'CPU s':>8} {'peak RSS MiB':>13}   walls")
    median = {}
    for name, results in runs.items():
        median[name] = {k: statistics.median(r[k] for r in results) for k in ("wall", "cpu", "rss")}
        walls = " ".join(f"{r['wall']:.2f}" for r in results)
        m = median[name]
        print(f"{name:<26} {m['wall']:>8.3f} {m['cpu']:>8.3f} {m['rss']:>13.0f}   {walls}")
    ratio = median["pytorch-fid equivalent"]["wall"] / median["fidrs score a.npz b.npz"]["wall"]
    print(f"pytorch-fid equivalent / fidrs (wall): {ratio:.1f}x")
    relative = abs(fid - reference) / abs(reference)
    print(f"values: fidrs {fid!r}, pytorch-fid equivalent {reference!r} (relative difference {relative:.2e})")
    steps = breakdown.pop("steps")
    print("breakdown (one fresh process, s): " + ", ".join(f"{k} {v:.3f}" for k, v in breakdown.items()))
    print("distance steps (s): " + ", ".join(f"{k} {v:.3f}" for k, v in steps.items()))


if __name__ == "__main__":
    main()
