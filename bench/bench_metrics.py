"""KID, IS and FID in tf1 mode against torch-fidelity's own numbers on the shared photos.

Usage: python bench/bench_metrics.py
"""

from __future__ import annotations

import json
import time

import fidrs
import numpy as np
from common import DATA, SHARED, WEIGHTS, machine


def main() -> None:
    ref = json.loads((SHARED / "conformance" / "torch_fidelity_reference.json").read_text())["metrics"]
    start = time.perf_counter()
    a = fidrs.feature_set(str(DATA / "training" / "apple_red_1"), weights=str(WEIGHTS), mode="tf1")
    b = fidrs.feature_set(str(DATA / "training" / "apple_golden_1"), weights=str(WEIGHTS), mode="tf1")
    print(f"machine: {machine()}; feature pass of {len(a) + len(b)} images: {time.perf_counter() - start:.1f} s")
    start = time.perf_counter()
    kid = fidrs.kid(a, b, subset_size=400, subsets=100, seed=2020)
    isc = fidrs.inception_score(a, splits=10)
    fid = fidrs.frechet_distance(
        a.features.mean(0, dtype=np.float64),
        np.cov(a.features, rowvar=False),
        b.features.mean(0, dtype=np.float64),
        np.cov(b.features, rowvar=False),
    )
    pr = fidrs.precision_recall(a, b, k=3)
    print(f"metrics on the cached features: {time.perf_counter() - start:.1f} s")
    rows = [
        ("KID mean", kid[0], ref["kernel_inception_distance_mean"]),
        ("KID std", kid[1], ref["kernel_inception_distance_std"]),
        ("IS mean", isc[0], ref["inception_score_mean"]),
        ("IS std", isc[1], ref["inception_score_std"]),
        ("FID (tf1)", fid, ref["frechet_inception_distance"]),
    ]
    print(f"{'metric':<12}{'fidrs':>16}{'torch-fidelity':>18}{'|diff|':>12}")
    for name, ours, theirs in rows:
        print(f"{name:<12}{ours:>16.8f}{theirs:>18.8f}{abs(ours - theirs):>12.2e}")
    print(
        "precision/recall/density/coverage (real apple_red_1, generated apple_golden_1):",
        ", ".join(f"{k} {v:.4f}" for k, v in pr.items()),
    )


if __name__ == "__main__":
    main()
