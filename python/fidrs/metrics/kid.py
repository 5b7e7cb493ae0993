"""Kernel Inception Distance (Bińkowski et al. 2018): the unbiased MMD² with the polynomial kernel
k(a, b) = (a·b/d + 1)³, averaged over random subsets of both sets."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InvalidInputError
from .base import FEATURES, Estimate, Metric, integer
from .registry import register_metric

SUBSET_SIZE = integer("subset_size", 1000, 2, "images drawn from each set per subset")
SUBSETS = integer("subsets", 100, 1, "subsets averaged")
SEED = integer("seed", 0, 0, "seed of np.random.RandomState (torch-fidelity uses 2020)")


@dataclass(frozen=True)
class KIDResult(Estimate):
    """`value` the mean of the unbiased MMD² over the subsets, `std` their standard deviation."""

    legacy_keys = ("kid", "kid_std")


def _polynomial_mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD² with the kernel k(a, b) = (a·b/d + 1)³."""
    d = x.shape[1]
    kxx = (x @ x.T / d + 1) ** 3
    kyy = (y @ y.T / d + 1) ** 3
    kxy = (x @ y.T / d + 1) ** 3
    m = len(x)
    return float(
        (kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1)) - 2 * kxy.mean()
    )


def kid_from_features(
    f1: np.ndarray,
    f2: np.ndarray,
    *,
    subset_size: int = SUBSET_SIZE.default,
    subsets: int = SUBSETS.default,
    seed: int = SEED.default,
) -> tuple[float, float]:
    """KID: mean and std of the unbiased MMD² over random subsets. Sampling follows torch-fidelity
    (`np.random.RandomState(seed)`, a subset of each set drawn without replacement per round), so its
    numbers are reproduced exactly with its seed (2020)."""
    subset_size = SUBSET_SIZE.check("subset_size", subset_size)
    subsets = SUBSETS.check("subsets", subsets)
    seed = SEED.check("seed", seed)
    if subset_size > min(len(f1), len(f2)):
        raise InvalidInputError(
            f"KID subset_size {subset_size} exceeds the smaller set ({min(len(f1), len(f2))} images)"
        )
    rng = np.random.RandomState(seed)
    f1, f2 = np.asarray(f1, np.float64), np.asarray(f2, np.float64)
    values = np.empty(subsets)
    for i in range(subsets):
        x = f1[rng.choice(len(f1), subset_size, replace=False)]
        y = f2[rng.choice(len(f2), subset_size, replace=False)]
        values[i] = _polynomial_mmd2_unbiased(x, y)
    return float(values.mean()), float(values.std())


def _compute(sides, *, subset_size: int, subsets: int, seed: int) -> dict:
    a, b = sides
    mean, std = kid_from_features(a.features, b.features, subset_size=subset_size, subsets=subsets, seed=seed)
    return {"value": mean, "std": std}


KID = register_metric(
    Metric(
        name="kid",
        title="Kernel Inception Distance",
        help="Kernel Inception Distance (mean, std over subsets)",
        inputs=("a", "b"),
        reads=FEATURES,
        protocol="torch-fidelity's KID: np.random.RandomState(seed), each round a subset of each set without "
        "replacement, unbiased polynomial-kernel MMD²; torch-fidelity's numbers with seed=2020",
        params=(SUBSET_SIZE, SUBSETS, SEED),
        compute=_compute,
        result=KIDResult,
        text=lambda r: f"KID {r.value:.6f} ± {r.std:.6f}",
        command="kid",
    )
)
