"""A feature set: the outputs of one feature pass over one input, kept for every metric that needs samples rather
than moments (KID, precision/recall, memorisation, the FID bootstrap, the Inception Score), with where they came
from."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import _fidrs
from .provenance import Provenance
from .statistics import Stats


@dataclass
class FeatureSet:
    """The backbone's features (N × d), its class logits where it has them (the Inception's fc layer without
    bias, N × 1008; else None), the names of the images, and provenance."""

    features: np.ndarray
    logits: np.ndarray | None
    paths: list[str]
    mode: str
    weights_sha256: str
    skipped: list[tuple[str, str]] = field(default_factory=list)
    backbone: str | None = None
    graph_sha256: str | None = None
    cache_hits: int = 0  # images whose outputs came from the feature cache

    def __len__(self) -> int:
        return len(self.features)

    @property
    def provenance(self) -> Provenance:
        return Provenance(self.backbone, self.mode, self.weights_sha256, self.graph_sha256, self.features.shape[1])

    def stats(self) -> Stats:
        """μ and Σ through the same float64 moments as `fidrs.stats` (so the same FID as `fidrs.score`)."""
        return Stats.from_moments(
            moments_of(self.features), self.mode, self.weights_sha256, self.backbone, self.graph_sha256
        )


def moments_of(rows: np.ndarray) -> _fidrs.Moments:
    """The float64 moments of feature rows, as the feature pass folds them."""
    moments = _fidrs.Moments(rows.shape[1])
    moments.update(np.ascontiguousarray(rows, np.float32))
    return moments
