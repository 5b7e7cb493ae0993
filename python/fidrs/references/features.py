"""Statistics of a feature array (TF-GAN `pool_3` activations, clean-fid's KID `feats`), computed the way fidrs
computes its own: streaming float64 moments n, Σx, Σxxᵀ, then μ = Σx/n and Σ = (Σxxᵀ − n·μμᵀ)/(n − 1)."""

from __future__ import annotations

import numpy as np

from .. import _fidrs
from ..errors import InvalidInputError
from ..feature_sets import check_feature_width
from .arrays import LazyArray

# Rows read at a time: 4,096 × 2,048 float32 features are 32 MiB.
ROWS_PER_READ = 4096


def moments_of(features: LazyArray) -> _fidrs.Moments:
    """The moments of every row of an N×d float array. float32 (and float16, exactly widened) rows go through
    `Moments.update` as fidrs' own features do; float64 rows are summed in float64 here (narrowing them to
    float32 would round each feature by up to 6e-8 relative)."""
    if len(features.shape) != 2 or features.shape[1] == 0:
        raise InvalidInputError(f"{features.where}: features must be an N×d array, got shape {features.shape}")
    check_feature_width(features.where, features.shape[1])  # before the d×d moments below
    if features.dtype.kind != "f":
        raise InvalidInputError(f"{features.where}: features must be floats, got {features.dtype}")
    n, d = features.shape
    if n < 2:
        raise InvalidInputError(f"{features.where}: {n} feature row(s): statistics need at least 2")
    wide = features.dtype.itemsize > 4
    moments = _fidrs.Moments(d)
    total = np.zeros(d)
    outer = np.zeros((d, d))
    start = 0
    for block in features.batches(ROWS_PER_READ):
        if not np.isfinite(block).all():
            row = start + int(np.argwhere(~np.isfinite(block))[0][0])
            raise InvalidInputError(f"{features.where}: feature row {row} holds NaN or infinite values")
        if wide:
            x = np.asarray(block, dtype=np.float64)
            total += x.sum(axis=0)
            outer += x.T @ x
        else:
            moments.update(np.ascontiguousarray(block, dtype=np.float32))
        start += len(block)
    if wide:
        moments = _fidrs.Moments.from_parts(n, total, (outer + outer.T) / 2)
    return moments


__all__ = ["ROWS_PER_READ", "moments_of"]
