"""`fidrs report`'s work after the feature pass, stage by stage, on synthetic features shaped like the shared
fruit photos' (10 classes of ~485 images, 2,048 Inception features, rank ~485 each): the class-by-class FID matrix
with each covariance checked once against once per pair, the PCA by one symmetric eigenproblem against
eigvalsh + a thin SVD, and the whole `build_report`.

    python bench/bench_report.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
from fidrs import _fidrs
from fidrs.feature_sets import FeatureSet
from fidrs.frechet import frechet_distance
from fidrs.report import build_report

SIZES = (492, 490, 480, 500, 470, 485, 495, 475, 480, 477)
DIM = 2048


def feature_sets(seed: int = 0) -> dict[str, FeatureSet]:
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(64, DIM))
    sets = {}
    for i, n in enumerate(SIZES):
        rows = (rng.normal(size=(n, 64)) @ base + i + 0.1 * rng.normal(size=(n, DIM))).astype(np.float32)
        logits = rng.normal(size=(n, 1008)).astype(np.float32)
        sets[f"class_{i}"] = FeatureSet(rows, logits, [f"{i}/{j}.png" for j in range(n)], "pytorch-fid", "0" * 64)
    return sets


def fid_matrix_per_pair(stats) -> float:
    start = time.perf_counter()
    names = list(stats)
    for i, a in enumerate(names):
        for b in names[i:]:
            frechet_distance(stats[a].mu, stats[a].sigma, stats[b].mu, stats[b].sigma)
    return time.perf_counter() - start


def fid_matrix_checked_once(stats) -> float:
    start = time.perf_counter()
    covariances = {c: _fidrs.Covariance(s.sigma, s.mu, stored_as="float32") for c, s in stats.items()}
    names = list(stats)
    for i, a in enumerate(names):
        for b in names[i:]:
            frechet_distance(stats[a].mu, covariances[a], stats[b].mu, covariances[b])
    return time.perf_counter() - start


def pca_svd(centred: np.ndarray) -> float:
    start = time.perf_counter()
    np.linalg.eigvalsh(centred.T @ centred / (len(centred) - 1))
    np.linalg.svd(centred, full_matrices=False)
    return time.perf_counter() - start


def pca_eigh(centred: np.ndarray) -> float:
    start = time.perf_counter()
    np.linalg.eigh(centred.T @ centred / (len(centred) - 1))
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    sets = feature_sets()
    stats = {c: s.stats() for c, s in sets.items()}
    everything = np.concatenate([s.features for s in sets.values()]).astype(np.float64)
    centred = everything - everything.mean(0)
    rows = {name: [] for name in ("fid per pair", "fid checked once", "pca svd", "pca eigh", "build_report")}
    for _ in range(args.rounds):  # interleaved, so that the machine's load weighs on both sides alike
        rows["fid per pair"].append(fid_matrix_per_pair(stats))
        rows["fid checked once"].append(fid_matrix_checked_once(stats))
        rows["pca svd"].append(pca_svd(centred))
        rows["pca eigh"].append(pca_eigh(centred))
        with tempfile.TemporaryDirectory() as out:
            start = time.perf_counter()
            build_report(sets, "class_0", out, kid_subset_size=400, kid_subsets=20)
            rows["build_report"].append(time.perf_counter() - start)
    print(f"{len(SIZES)} classes, {sum(SIZES)} images, d = {DIM}; seconds, median of {args.rounds} (min–max)")
    for name, times in rows.items():
        print(f"{name:18s} {np.median(times):7.2f}  ({min(times):.2f}–{max(times):.2f})")


if __name__ == "__main__":
    main()
