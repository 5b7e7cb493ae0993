"""Improved precision and recall (Kynkäänniemi et al. 2019) with k-NN balls, plus density and coverage (Naeem et
al. 2020), by exact nearest neighbours."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InvalidInputError
from .base import FEATURES, MappingResult, Metric, Result, integer
from .registry import register_metric

K = integer("k", 3, 1, "the k of the k-nearest-neighbour balls", flag="-k")


@dataclass(frozen=True)
class PrecisionRecallResult(MappingResult, Result):
    precision: float
    recall: float
    density: float
    coverage: float


def _squared_distances(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    d = (x * x).sum(1)[:, None] + (y * y).sum(1)[None, :] - 2 * x @ y.T
    return np.maximum(d, 0)


def _kth_neighbour_radius(x: np.ndarray, k: int, block: int = 2048) -> np.ndarray:
    """Distance from each row to its k-th nearest other row (exact, computed block by block)."""
    radii = np.empty(len(x))
    for start in range(0, len(x), block):
        d = _squared_distances(x[start : start + block], x)
        # the k+1 smallest include the point itself (distance 0)
        radii[start : start + block] = np.sqrt(np.partition(d, k, axis=1)[:, k])
    return radii


def _ball_hits(
    centres: np.ndarray, radii: np.ndarray, queries: np.ndarray, block: int = 2048
) -> tuple[np.ndarray, np.ndarray]:
    """From one pass over the query × centre distances: for each query, how many balls (centre, radius)
    contain it; for each ball, whether it contains any query."""
    counts = np.zeros(len(queries), np.int64)
    covered = np.zeros(len(centres), bool)
    r2 = radii**2
    for start in range(0, len(queries), block):
        inside = _squared_distances(queries[start : start + block], centres) <= r2[None, :]
        counts[start : start + block] = inside.sum(1)
        covered |= inside.any(0)
    return counts, covered


def precision_recall_from_features(real: np.ndarray, fake: np.ndarray, *, k: int = K.default) -> dict[str, float]:
    """Precision, recall, density and coverage of `fake` against `real`."""
    k = K.check("k", k)
    if min(len(real), len(fake)) <= k:
        raise InvalidInputError(f"precision/recall with k={k} needs more than {k} images on each side")
    real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    real_radii, fake_radii = _kth_neighbour_radius(real, k), _kth_neighbour_radius(fake, k)
    fake_in_real, covered = _ball_hits(real, real_radii, fake)  # covered: real balls holding a fake sample
    real_in_fake, _ = _ball_hits(fake, fake_radii, real)
    return {
        "precision": float((fake_in_real > 0).mean()),
        "recall": float((real_in_fake > 0).mean()),
        "density": float(fake_in_real.sum() / (k * len(fake))),
        "coverage": float(covered.mean()),
    }


def _compute(sides, *, k: int) -> dict:
    reference, generated = sides
    return precision_recall_from_features(reference.features, generated.features, k=k)


PRECISION_RECALL = register_metric(
    Metric(
        name="precision_recall",
        title="precision and recall",
        help="precision, recall, density, coverage (REFERENCE GENERATED)",
        inputs=("reference", "generated"),
        reads=FEATURES,
        protocol="Kynkäänniemi et al. 2019 (k-NN balls, k=3) and Naeem et al. 2020 (density, coverage), exact "
        "nearest neighbours in float64",
        params=(K,),
        compute=_compute,
        result=PrecisionRecallResult,
        text=lambda r: " ".join(f"{k} {getattr(r, k):.4f}" for k in ("precision", "recall", "density", "coverage")),
        command="pr",
    )
)
