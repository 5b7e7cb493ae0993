"""Feature statistics (μ, Σ, n) with the mode and weights they came from; `.npz` files compatible with
pytorch-fid and clean-fid (`mu`, `sigma`)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from . import _fidrs
from .errors import IncompatibleStatsError, InvalidInputError

FORMAT_VERSION = 1


@dataclass
class Stats:
    mu: np.ndarray
    sigma: np.ndarray
    n: int | None = None
    mode: str | None = None
    weights_sha256: str | None = None
    moments: _fidrs.Moments | None = None

    @classmethod
    def from_moments(cls, moments: _fidrs.Moments, mode: str, weights_sha256: str) -> Stats:
        return cls(moments.mean(), moments.covariance(), moments.n, mode, weights_sha256, moments)

    def save(self, path: str | os.PathLike) -> None:
        """Write a `.npz` with `mu` and `sigma` (readable by pytorch-fid) plus fidrs' metadata."""
        extra = {}
        if self.moments is not None:
            extra = {"sum": self.moments.sum, "sum_outer": self.moments.sum_outer}
        meta = {
            k: v
            for k, v in (("n", self.n), ("mode", self.mode), ("weights_sha256", self.weights_sha256))
            if v is not None
        }
        with open(path, "wb") as f:
            np.savez(f, mu=self.mu, sigma=self.sigma, version=FORMAT_VERSION, **meta, **extra)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Stats:
        try:
            data = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise InvalidInputError(f"{path}: not a readable .npz statistics file ({e})") from None
        with data:
            if "mu" not in data or "sigma" not in data:
                raise InvalidInputError(f"{path}: statistics file needs 'mu' and 'sigma', has {sorted(data.files)}")
            mu = np.asarray(data["mu"], dtype=np.float64)
            sigma = np.asarray(data["sigma"], dtype=np.float64)
            n = int(data["n"]) if "n" in data else None
            mode = str(data["mode"]) if "mode" in data else None
            sha = str(data["weights_sha256"]) if "weights_sha256" in data else None
            moments = None
            if "sum" in data and "sum_outer" in data and n is not None:
                moments = _fidrs.Moments.from_parts(
                    n,
                    np.ascontiguousarray(data["sum"], dtype=np.float64),
                    np.ascontiguousarray(data["sum_outer"], dtype=np.float64),
                )
        if mu.ndim != 1 or sigma.shape != (mu.size, mu.size):
            raise InvalidInputError(f"{path}: mu {mu.shape} and sigma {sigma.shape} do not fit together")
        return cls(mu, sigma, n, mode, sha, moments)

    def check_compatible(self, other: Stats) -> None:
        """Refuse to compare statistics of different preprocessing modes or network weights."""
        for field, label in (("mode", "mode"), ("weights_sha256", "weights")):
            mine, theirs = getattr(self, field), getattr(other, field)
            if mine is not None and theirs is not None and mine != theirs:
                raise IncompatibleStatsError(f"statistics were computed with different {label}: {mine!r} vs {theirs!r}")

    def merge(self, other: Stats) -> Stats:
        """Statistics of the union of both sample sets (needs the raw moments of both)."""
        self.check_compatible(other)
        if self.moments is None or other.moments is None:
            raise InvalidInputError("merging needs statistics saved with their moments (sum, sum_outer)")
        merged = _fidrs.Moments.from_parts(self.moments.n, self.moments.sum, self.moments.sum_outer)
        merged.merge(other.moments)
        return Stats.from_moments(merged, self.mode or other.mode, self.weights_sha256 or other.weights_sha256)
