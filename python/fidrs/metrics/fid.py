"""The Fréchet distance of two feature distributions (FID on the Inception, FD_DINOv2 on DINOv2, …), from their
statistics: ‖μ₁ − μ₂‖² + tr Σ₁ + tr Σ₂ − 2 tr √(Σ₁Σ₂). `fidrs score` is this metric."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..display import fixed
from ..errors import NumericalError
from ..frechet import METHODS, frechet_distance
from .base import STATISTICS, Metric, Result, choice
from .registry import register_metric

METHOD = choice("method", "auto", METHODS, "how tr √(Σ₁Σ₂) is computed (auto: exact eigh; scipy: pytorch-fid's sqrtm)")


@dataclass(frozen=True)
class FIDResult(Result):
    value: float
    method: str  # the method that ran
    mode_a: str | None  # each side's recorded mode (None: unknown, a pytorch-fid or clean-fid file)
    mode_b: str | None
    # What the run that computed the statistics did (set by `Evaluator.score_details`).
    provider: str | None = None
    skipped: list[dict[str, str]] = field(default_factory=list)
    cache_hits: int = 0
    seconds: float = 0.0
    # Inputs that hold statistics (statistics and reference files, `ref:NAME`): what each is and the mode its
    # other side was computed in; notes: what `allow_mode_mismatch` let through (set by the Evaluator).
    references: dict[str, dict[str, Any]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    mode_mismatch_allowed: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"fid": self.value, **super().to_dict()}


def _compute(sides, *, method: str) -> dict:
    a, b = sides
    # A loaded file's covariance was checked and factorised once, on load (`Stats.covariance`): the distance
    # reuses that factorisation (pytorch-fid's scipy path needs the arrays).
    sigma_a, sigma_b = (
        s.sigma if getattr(s, "covariance", None) is None or method == "scipy" else s.covariance for s in sides
    )
    info = frechet_distance(a.mu, sigma_a, b.mu, sigma_b, method, return_info=True)
    if not np.isfinite(info["value"]):
        raise NumericalError(f"the Fréchet distance came out {info['value']}")
    return {"value": info["value"], "method": info["method"], "mode_a": a.mode, "mode_b": b.mode}


FID = register_metric(
    Metric(
        name="fid",
        title="Fréchet distance",
        help="Fréchet distance (FID on the Inception) between two image sets or statistics",
        inputs=("a", "b"),
        reads=STATISTICS,
        protocol="pytorch-fid's FID: μ and Σ (n − 1) in float64 of the backbone's features; tr √(Σ₁Σ₂) exact "
        "(eigh) unless another method is asked for",
        params=(METHOD,),
        compute=_compute,
        result=FIDResult,
        text=lambda r: fixed(r.value),
        command=None,  # `fidrs score`, with its gate, records and cluster options
    )
)
