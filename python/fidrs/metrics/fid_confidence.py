"""How sure a FID is: a percentile bootstrap interval over images (both sets resampled with replacement), and FID
at several sample sizes (random subsets without replacement) to show its small-n bias."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InvalidInputError
from ..feature_sets import moments_of
from ..frechet import frechet_distance
from .base import FEATURES, MappingResult, Metric, Result, integer, number
from .registry import register_metric

ROUNDS = integer("rounds", 50, 2, "bootstrap rounds")
CONFIDENCE = number("confidence", 0.95, "coverage of the interval", low=0.0, below=1.0)
SEED = integer("seed", 0, 0, "seed of np.random.default_rng")
SIZES = (0.125, 0.25, 0.5, 1.0)  # fractions of the smaller set at which FID is shown


@dataclass(frozen=True)
class FIDConfidenceResult(MappingResult, Result):
    value: float  # the FID of the full sets (fidrs.score's)
    confidence: float
    low: float
    high: float
    bootstrap_std: float
    rounds: int
    fid_at_n: dict[int, float]
    note: str

    def legacy(self) -> dict:
        old = self.values()
        old["fid"] = old.pop("value")
        return old


def _fid_of_rows(x: np.ndarray, y: np.ndarray) -> float:
    """Through the float64 moments of `fidrs.stats`, so the full-sample value is exactly `fidrs.score`'s."""
    mx, my = moments_of(x), moments_of(y)
    return frechet_distance(mx.mean(), mx.covariance(), my.mean(), my.covariance())


def fid_confidence_from_features(
    f1: np.ndarray,
    f2: np.ndarray,
    *,
    rounds: int = ROUNDS.default,
    confidence: float = CONFIDENCE.default,
    seed: int = SEED.default,
    sizes: tuple[float, ...] = SIZES,
) -> dict:
    """The bootstrap interval and FID at several n (the keys of `FIDConfidenceResult`, `fid` for its value)."""
    if not isinstance(rounds, (int, np.integer)) or isinstance(rounds, bool) or rounds < 2:
        raise InvalidInputError("the bootstrap needs at least 2 rounds")
    confidence = CONFIDENCE.check("confidence", confidence)
    seed = SEED.check("seed", seed)
    rng = np.random.default_rng(seed)
    x, y = np.asarray(f1, np.float32), np.asarray(f2, np.float32)  # features are float32: kept exact
    values = np.array(
        [_fid_of_rows(x[rng.integers(0, len(x), len(x))], y[rng.integers(0, len(y), len(y))]) for _ in range(rounds)]
    )
    tail = (1 - confidence) / 2
    at_n = {}
    for fraction in sizes:
        n = max(2, int(round(fraction * min(len(x), len(y)))))
        at_n[n] = _fid_of_rows(x[rng.choice(len(x), n, replace=False)], y[rng.choice(len(y), n, replace=False)])
    return {
        "fid": _fid_of_rows(x, y),
        "confidence": confidence,
        "low": float(np.quantile(values, tail)),
        "high": float(np.quantile(values, 1 - tail)),
        "bootstrap_std": float(values.std(ddof=1)),
        "rounds": int(rounds),
        "fid_at_n": at_n,
        "note": "FID is biased upwards at small n: compare FIDs only at equal n",
    }


def _compute(sides, *, rounds: int, confidence: float, seed: int) -> dict:
    a, b = sides
    out = fid_confidence_from_features(a.features, b.features, rounds=rounds, confidence=confidence, seed=seed)
    out["value"] = out.pop("fid")
    return out


def _text(r: FIDConfidenceResult) -> str:
    at_n = ", ".join(f"{n}: {v:.3f}" for n, v in r.fid_at_n.items())
    return (
        f"FID {r.value:.6f}, {100 * r.confidence:g} % interval [{r.low:.4f}, {r.high:.4f}] over {r.rounds} "
        f"bootstrap rounds; FID at n = {at_n}"
    )


FID_CONFIDENCE = register_metric(
    Metric(
        name="fid_confidence",
        title="FID confidence interval",
        help="FID with a bootstrap interval over images, and FID at several n",
        inputs=("a", "b"),
        reads=FEATURES,
        protocol="percentile bootstrap over images of both sets (np.random.default_rng(seed)), each FID through "
        "fidrs.stats' float64 moments and the exact Fréchet distance",
        params=(ROUNDS, CONFIDENCE, SEED),
        compute=_compute,
        result=FIDConfidenceResult,
        text=_text,
        command="fid-confidence",
    )
)
