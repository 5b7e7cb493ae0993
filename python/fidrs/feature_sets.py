"""A feature set: the outputs of one feature pass over one input, kept for every metric that needs samples rather
than moments (KID, precision/recall, memorisation, the FID bootstrap, the Inception Score), with where they came
from."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import _fidrs
from .errors import InvalidInputError
from .provenance import Provenance
from .statistics import Stats

# The widest feature rows fidrs takes (from a file: a features reference, clean-fid's KID `feats`, an embedding
# file; or from a registered backbone's outputs). Their statistics hold a d×d float64 covariance (Moments' Σxxᵀ,
# then Σ and its factorisation, each d²·8 bytes) whatever the number of rows: without a bound a 144 KB file of
# 3 rows × 12,000 asks for 3.5 GB and one of 2 × 1,000,000 for 8 TB (the core's allocation failed: exit 3, "a bug
# in fidrs"). The bound is the Rust core's (src/stats.rs, MAX_DIM): the widest covariance the statistics reader
# takes (1 GiB: 11,585), so the statistics of anything accepted can be written and read back; the built-in
# backbones' widest output is 2,048 (Inception pool3), and wide extractors elsewhere (8,192 for BiT-R152x4) fit.
MAX_FEATURE_WIDTH = _fidrs.MAX_FEATURE_WIDTH


def check_feature_width(where: str, width: int) -> None:
    """Refuse (InvalidInputError naming `where`) feature rows wider than MAX_FEATURE_WIDTH, before anything of
    their width squared is allocated."""
    if width > MAX_FEATURE_WIDTH:
        raise InvalidInputError(
            f"{where}: features {width} wide, over fidrs' limit of {MAX_FEATURE_WIDTH} (their statistics' "
            f"covariance would be {width}×{width}; a statistics file holds at most {MAX_FEATURE_WIDTH}×"
            f"{MAX_FEATURE_WIDTH})"
        )


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
