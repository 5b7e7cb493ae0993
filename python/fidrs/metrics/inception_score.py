"""Inception Score (Salimans et al. 2016): exp E[KL(p(y|x) ‖ p(y))] on the class logits, over splits."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InvalidInputError
from .base import LOGITS, Estimate, Metric, integer
from .registry import register_metric

SPLITS = integer("splits", 10, 1, "chunks the score is averaged over")
SEED = integer("seed", 2020, 0, "seed of the shuffle before the split (torch-fidelity's 2020)")


@dataclass(frozen=True)
class InceptionScoreResult(Estimate):
    """`value` the mean of the score over the splits, `std` their standard deviation."""

    legacy_keys = ("inception_score", "inception_score_std")


def inception_score_from_logits(
    logits: np.ndarray, *, splits: int = SPLITS.default, seed: int = SEED.default
) -> tuple[float, float]:
    """IS = exp E[KL(p(y|x) ‖ p(y))], over `splits` chunks after a seeded shuffle (torch-fidelity's
    procedure); mean and std over the chunks."""
    splits = SPLITS.check("splits", splits)
    seed = SEED.check("seed", seed)
    if len(logits) < splits:
        raise InvalidInputError(f"Inception Score needs at least {splits} images (one per split), got {len(logits)}")
    z = np.asarray(logits, np.float64)[np.random.RandomState(seed).permutation(len(logits))]
    z = z - z.max(axis=1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    p = np.exp(log_p)
    n = len(z)
    scores = []
    for i in range(splits):
        chunk = slice(i * n // splits, (i + 1) * n // splits)
        log_q = np.log(p[chunk].mean(axis=0, keepdims=True))
        kl = (p[chunk] * (log_p[chunk] - log_q)).sum(axis=1).mean()
        scores.append(np.exp(kl))
    return float(np.mean(scores)), float(np.std(scores))


def _compute(sides, *, splits: int, seed: int) -> dict:
    (images,) = sides
    mean, std = inception_score_from_logits(images.logits, splits=splits, seed=seed)
    return {"value": mean, "std": std}


INCEPTION_SCORE = register_metric(
    Metric(
        name="inception_score",
        title="Inception Score",
        help="Inception Score (mean, std over splits)",
        inputs=("images",),
        reads=LOGITS,
        protocol="torch-fidelity's IS: the Inception's fc logits without bias (logits_unbiased), a shuffle by "
        "np.random.RandomState(seed) (2020), `splits` chunks; defined on the Inception only",
        params=(SPLITS, SEED),
        compute=_compute,
        result=InceptionScoreResult,
        text=lambda r: f"IS {r.value:.6f} ± {r.std:.6f}",
        command="is",
    )
)
