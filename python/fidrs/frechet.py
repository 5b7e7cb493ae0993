"""The Fréchet distance: fast exact methods in the Rust core, and pytorch-fid's SciPy path as reference."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from . import _fidrs
from .errors import InvalidInputError

# The Rust core's methods (defined there), plus "auto" and pytorch-fid's SciPy path as reference.
METHODS = ("auto", *_fidrs.FRECHET_METHODS, "scipy")
# Measured on 2 cores at d = 2048 (docs/BENCHMARKS.md): eigh (one symmetric eigenvalue problem of the rank's
# size) is exact and the fastest; Newton–Schulz needs tens of r³ products, which pays off only on a GPU.
AUTO_METHOD = "eigh"


def frechet_distance_scipy(mu1, sigma1, mu2, sigma2, eps: float = 1e-6) -> float:
    """pytorch-fid's `calculate_frechet_distance`, step for step: scipy `sqrtm` of Σ₁Σ₂, an eps retry when
    the product is singular, and the imaginary-part check."""
    from scipy import linalg

    mu1, mu2 = np.atleast_1d(mu1), np.atleast_1d(mu2)
    sigma1, sigma2 = np.atleast_2d(sigma1), np.atleast_2d(sigma2)
    diff = mu1 - mu2
    covmean = linalg.sqrtm(sigma1.dot(sigma2))
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"Imaginary component {np.max(np.abs(covmean.imag))}")
        covmean = covmean.real
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def _scipy_fails(reason: str) -> InvalidInputError:
    return InvalidInputError(
        f"pytorch-fid's method (SciPy's sqrtm of Σ₁Σ₂) fails on these statistics: {reason}; the exact method "
        "(method='eigh', the default) computes their distance"
    )


def _check_iteration_limits(tolerance: Any, max_iterations: Any) -> None:
    """Newton–Schulz's stopping rule must be able to stop on convergence: at least one iteration (0 returned the
    starting guess, 17.8 for an exact 8.0, with only a warning) and a tolerance that is a finite number in (0, 1)."""
    if isinstance(max_iterations, (bool, np.bool_)) or not isinstance(max_iterations, (int, np.integer)):
        raise InvalidInputError(f"max_iterations must be an integer >= 1, got {max_iterations!r}")
    if max_iterations < 1:
        raise InvalidInputError(f"max_iterations must be an integer >= 1, got {max_iterations!r}")
    if isinstance(tolerance, (bool, np.bool_)) or not isinstance(tolerance, (int, float, np.integer, np.floating)):
        raise InvalidInputError(f"tolerance must be a number in (0, 1), got {tolerance!r}")
    if not (0 < float(tolerance) < 1):  # also refuses nan
        raise InvalidInputError(f"tolerance must be a number in (0, 1), got {tolerance!r}")


def _float64(value: Any, name: str, ndim: int) -> np.ndarray:
    """`value` as a contiguous float64 array of `ndim` dimensions (a mean: 1, a covariance: 2), or
    InvalidInputError naming the argument (not the binding's TypeError about `PyArray<T, D>`)."""
    if np.iscomplexobj(value):  # numpy would drop the imaginary part with only a ComplexWarning
        raise InvalidInputError(f"{name} is complex; it must be real")
    try:
        array = np.ascontiguousarray(value, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise InvalidInputError(f"{name} is not an array of real numbers ({e})") from None
    if array.ndim != ndim:
        shape = "(d,)" if ndim == 1 else "(d, d)"
        raise InvalidInputError(f"{name} has shape {array.shape}; it must have shape {shape}")
    return array


def frechet_distance(
    mu1,
    sigma1,
    mu2,
    sigma2,
    method: str = "auto",
    *,
    return_info: bool = False,
    tolerance: float = 1e-10,
    max_iterations: int = 200,
) -> Any:
    """FID = ‖μ₁ − μ₂‖² + tr Σ₁ + tr Σ₂ − 2 tr √(Σ₁Σ₂), in float64.

    tr √(Σ₁Σ₂) is the sum of the singular values of B₁ᵀB₂ (BᵢBᵢᵀ = Σᵢ: Cholesky, or pivoted Cholesky at the
    numerical rank of a singular Σ). `eigh` takes them from one symmetric eigenvalue problem; `newton-schulz`
    from the polar factor by Newton–Schulz, which converges for every pair of covariances and stops when its
    error bound is below `tolerance` (relative). Neither falls back to another method: a Σ that is not
    positive semi-definite raises InvalidInputError.

    `sigma1`/`sigma2` may be `fidrs._fidrs.Covariance` objects (checked and factorised once, e.g. by
    `check_statistics`): the distance then reuses their factorisation. Arrays are checked here, around their
    mean, at the float32 round-off level (their storage precision is not known). Options that cannot work
    (`max_iterations` < 1, `tolerance` outside (0, 1), an unknown method) are refused before any work.

    With `return_info=True` returns a dict: value, method, factorisation, rank, iterations, residual (the
    Newton–Schulz relative error bound), clipped_mass (round-off dropped), stop_reason, seconds,
    seconds_by_step.
    """
    if method not in METHODS:
        raise InvalidInputError(f"method must be one of {METHODS}, got {method!r}")
    _check_iteration_limits(tolerance, max_iterations)  # the types, then the Rust core's own rule:
    _fidrs.check_frechet_options(AUTO_METHOD if method in ("auto", "scipy") else method, tolerance, max_iterations)
    checked = [isinstance(s, _fidrs.Covariance) for s in (sigma1, sigma2)]
    if method == "scipy" and any(checked):
        raise InvalidInputError("method='scipy' (pytorch-fid's sqrtm) needs the covariance arrays, not Covariance")
    mu1, mu2 = (_float64(m, name, 1) for m, name in ((mu1, "mu1"), (mu2, "mu2")))
    sigma1, sigma2 = (s if c else _float64(s, n, 2) for s, c, n in zip((sigma1, sigma2), checked, ("sigma1", "sigma2")))
    arrays = [mu1, sigma1, mu2, sigma2]
    if method == "scipy":
        start = time.perf_counter()
        try:
            value = frechet_distance_scipy(*arrays)
        except (ValueError, np.linalg.LinAlgError) as e:  # sqrtm's own failures, and pytorch-fid's imaginary part
            raise _scipy_fails(str(e)) from None
        if not np.isfinite(value):  # Σ₁Σ₂ overflowed (covariances near 1e154 and above)
            raise _scipy_fails(f"the distance came out {value}")
        info = {
            "value": value,
            "method": "scipy",
            "factorisation": "sqrtm",
            "iterations": 0,
            "residual": 0.0,
            "clipped_mass": 0.0,
            "stop_reason": "exact",
            "rank": len(arrays[0]),
            "seconds": time.perf_counter() - start,
        }
    else:
        core_method = AUTO_METHOD if method == "auto" else method
        info = _fidrs.frechet_distance(*arrays, method=core_method, tolerance=tolerance, max_iterations=max_iterations)
        if info["stop_reason"] == "iteration limit":
            import warnings

            warnings.warn(
                f"Newton-Schulz stopped at max_iterations={max_iterations} with a relative error bound of "
                f"{info['residual']:.2e} (tolerance {tolerance:g}); the value is Newton-Schulz's, to that bound",
                RuntimeWarning,
                stacklevel=2,
            )
    return info if return_info else info["value"]
