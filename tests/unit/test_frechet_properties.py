"""Property tests of the Fréchet methods against a 40-digit mpmath ground truth (small d) and against
the SciPy reference where that reference is itself accurate (large d)."""

from __future__ import annotations

import warnings

import fidrs
import mpmath
import numpy as np
import pytest
from fidrs.frechet import frechet_distance_scipy

mpmath.mp.dps = 40


def exact_fid(mu1, s1, mu2, s2) -> float:
    """FID in 40-digit arithmetic: tr √(Σ₁Σ₂) = Σ √λ(S Σ₂ S), S = √Σ₁ from a symmetric eigendecomposition."""
    a, b = mpmath.matrix(s1.tolist()), mpmath.matrix(s2.tolist())
    w, q = mpmath.eigsy(a)
    root = q * mpmath.diag([mpmath.sqrt(max(x, 0)) for x in w]) * q.T
    lam, _ = mpmath.eigsy(root * b * root)
    trace_sqrt = sum(mpmath.sqrt(max(x, 0)) for x in lam)
    diff = mpmath.matrix((mu1 - mu2).tolist())
    value = (diff.T * diff)[0] + sum(a[i, i] + b[i, i] for i in range(a.rows)) - 2 * trace_sqrt
    return float(value)


def sample_stats(d: int, n: int, rng, scale=1.0, shift=0.0):
    x = rng.standard_normal((n, d)) @ (rng.standard_normal((d, d)) * scale / np.sqrt(d)) + shift
    return x.mean(0), np.cov(x, rowvar=False)


CASES = [
    ("full rank", 12, 60),
    ("rank deficient (n < d)", 12, 7),
    ("near singular", 12, 13),
]


@pytest.mark.parametrize("label,d,n", CASES)
@pytest.mark.parametrize("seed", range(3))
def test_methods_agree_with_40_digit_ground_truth(label, d, n, seed):
    rng = np.random.default_rng(seed)
    mu1, s1 = sample_stats(d, n, rng)
    mu2, s2 = sample_stats(d, n, rng, scale=1.5, shift=0.2)
    truth = exact_fid(mu1, s1, mu2, s2)
    scipy_value = frechet_distance_scipy(mu1, s1, mu2, s2)
    scipy_accurate = abs(scipy_value - truth) <= 1e-10 * max(1.0, truth)
    for method in ("eigh", "newton-schulz"):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            info = fidrs.frechet_distance(mu1, s1, mu2, s2, method=method, return_info=True)
        got = info["value"]
        assert info["method"] == method and not caught  # never another method, never a warning
        if method == "newton-schulz":
            assert info["stop_reason"] == "converged" and info["residual"] <= 1e-10
        # f64 on singular inputs: √ of round-off in the null space bounds the error near 1e-8 · scale.
        assert abs(got - truth) <= 1e-8 * max(1.0, truth), (method, got, truth)
        if scipy_accurate:
            assert abs(got - scipy_value) <= 1e-8 * max(1.0, truth)


@pytest.mark.parametrize("d,n", [(16, 100), (64, 30), (512, 100), (2048, 300)])
def test_identical_sets_are_at_distance_zero(d, n):
    mu, s = sample_stats(d, n, np.random.default_rng(d))
    info = fidrs.frechet_distance(mu, s, mu, s, return_info=True)
    assert abs(info["value"]) <= 1e-6, info
    if n <= d:
        assert info["factorisation"] == "pivoted-cholesky" and info["rank"] == n - 1


@pytest.mark.parametrize("decay", [0.98, 0.97])
def test_identical_rank_deficient_statistics_with_a_graded_spectrum_are_at_distance_zero(decay):
    """tr √(ΣΣ) = tr Σ exactly, so FD(s, s) = 0. The features of a real network have a graded spectrum (here
    scale decayᵏ on feature k, 492 images, d = 2048: rank 491, eigenvalues over ~30 decades), and the Gram matrix
    of the distance squares it: its small eigenvalues must keep their relative accuracy, or their square roots
    carry an error of ~√ε·λ_max. The implicit QL with its relative deflation test gives ~1e-11 here; the rational
    QL tried in stop 33 (absolute deflation at ε‖G‖) gave 1.6e-7 and 2e-7. Bound: 1e-10 · tr Σ (~2e-9)."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((492, 2048)) * decay ** np.arange(2048)
    mu, sigma = x.mean(axis=0), np.cov(x, rowvar=False)
    info = fidrs.frechet_distance(mu, sigma, mu, sigma, return_info=True)
    assert info["factorisation"] == "pivoted-cholesky"
    assert abs(info["value"]) <= 1e-10 * np.trace(sigma)


def _layer_normed_statistics(seed: int, noise: float, n: int = 492, d: int = 384):
    """Statistics of features that end in a LayerNorm with affine weights, as DINOv2's and CLIP's do: every
    feature vector satisfies Σ_j (y_j − b_j)/w_j = 0, so Σ has one eigenvalue that is only the round-off of
    float32 features (plus `noise`): ~1e-14, with the next at ~1e-8 and λ_max ~20. Its Cholesky factor exists
    with every pivot far above round-off."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)) @ (rng.standard_normal((d, d)) * 0.99 ** np.arange(d)) / np.sqrt(d)
    w, b = 1 + 0.3 * rng.standard_normal(d), 0.1 * rng.standard_normal(d)
    y = (x - x.mean(axis=1, keepdims=True)) / x.std(axis=1, keepdims=True) * w + b
    y = (y + noise * rng.standard_normal(y.shape)).astype(np.float32)
    mu = y.mean(axis=0, dtype=np.float64)
    centred = y.astype(np.float64) - mu
    return mu, centred.T @ centred / (n - 1)


@pytest.mark.parametrize("seed,noise", [(0, 3e-7), (1, 3e-7), (2, 3e-7), (1, 1e-7)])
def test_identical_statistics_with_a_round_off_eigenvalue_are_at_distance_zero(seed, noise):
    """FD(s, s) = 0, whichever triangle of Σ is read. Before the factorisation looked for round-off
    eigenvalues behind a successful Cholesky, these gave −8e-7 … 1e-7 (the Gram matrix's round-off ε‖Σ‖² of
    either sign under a √: √(1e-15) ≈ 3e-8 per such direction), and the FD_DINOv2 of `apple_red_1` with
    itself 1.7e-11 as stored but −7.5e-8 transposed. Deflated, the factor has rank d − 1 and the Gram matrix
    no eigenvalue below 1e-16·‖G‖: ~1e-12 here. Bound: 1e-10 · tr Σ (~4e-8)."""
    mu, sigma = _layer_normed_statistics(seed, noise)
    assert np.linalg.eigvalsh(sigma)[0] < 1e-13  # the round-off direction is there
    for orientation in (sigma, np.ascontiguousarray(sigma.T)):
        info = fidrs.frechet_distance(mu, orientation, mu, orientation, return_info=True)
        assert info["factorisation"] == "pivoted-cholesky" and info["rank"] == len(mu) - 1, info
        assert abs(info["value"]) <= 1e-10 * np.trace(sigma), info


def test_large_rank_deficient_pair_matches_scipy():
    rng = np.random.default_rng(7)
    mu1, s1 = sample_stats(1024, 400, rng)
    mu2, s2 = sample_stats(1024, 450, rng, scale=1.2, shift=0.05)
    ref = frechet_distance_scipy(mu1, s1, mu2, s2)
    got = fidrs.frechet_distance(mu1, s1, mu2, s2)
    # Here scipy's sqrtm is the less accurate side (√ of null-space round-off, as in pytorch-fid's own
    # -0.00024 for identical sets); the two agree to 1e-6 relative.
    assert abs(got - ref) <= 1e-6 * max(1.0, ref)


@pytest.mark.parametrize("d,n", [(12, 3), (12, 7), (24, 5), (24, 16), (24, 25), (24, 200)])
def test_every_rank_agrees_with_40_digit_ground_truth(d, n):
    """Several ranks (n − 1 < d down to 2, and full rank): both Rust methods against 40-digit arithmetic.
    Bound: eigh's singular values come from a Gram matrix, exact to about r·ε·σ_max²/σ_min per value; with
    these well-separated spectra that is ≤ 1e-12 relative. Newton–Schulz stops at a proven relative bound of
    1e-10. Their sum, with headroom for the mean and trace terms, is the 1e-9 asserted."""
    rng = np.random.default_rng(100 + d + n)
    mu1, s1 = sample_stats(d, n, rng)
    mu2, s2 = sample_stats(d, n, rng, scale=0.7, shift=0.1)
    truth = exact_fid(mu1, s1, mu2, s2)
    for method in ("eigh", "newton-schulz"):
        info = fidrs.frechet_distance(mu1, s1, mu2, s2, method=method, return_info=True)
        assert info["rank"] == min(n - 1, d)
        assert abs(info["value"] - truth) <= 1e-9 * max(1.0, truth), (method, info["value"], truth)


@pytest.mark.slow  # SciPy sqrtm at d = 2048
@pytest.mark.parametrize("d,n", [(2048, 300), (512, 2000)])
def test_newton_schulz_eigh_and_scipy_agree_at_scale(d, n):
    """d up to 2,048: rank deficient (n < d) and full rank. Newton–Schulz is within its reported bound of the
    exact value, so |NS − eigh| ≤ bound · tr √ + eigh's round-off (≤ 1e-12 relative here). SciPy's sqrtm is
    accurate only for the full-rank pair (it takes √ of null-space round-off otherwise: ~1e-6 relative)."""
    rng = np.random.default_rng(d)
    mu1, s1 = sample_stats(d, n, rng)
    mu2, s2 = sample_stats(d, n, rng, scale=1.3, shift=0.05)
    exact = fidrs.frechet_distance(mu1, s1, mu2, s2, method="eigh")
    ns = fidrs.frechet_distance(mu1, s1, mu2, s2, method="newton-schulz", return_info=True)
    trace_sqrt = (np.trace(s1) + np.trace(s2) + np.sum((mu1 - mu2) ** 2) - exact) / 2
    assert ns["stop_reason"] == "converged"
    assert abs(ns["value"] - exact) <= 2 * (ns["residual"] + 1e-12) * trace_sqrt
    scipy_tolerance = 1e-6 if n <= d else 1e-9
    assert abs(frechet_distance_scipy(mu1, s1, mu2, s2) - exact) <= scipy_tolerance * max(1.0, exact)
