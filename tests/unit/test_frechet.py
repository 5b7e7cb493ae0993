"""Fréchet distance methods against the SciPy reference and closed forms."""

from __future__ import annotations

import fidrs
import numpy as np
import pytest
from fidrs.frechet import frechet_distance_scipy


def _gaussian(d: int, n: int, seed: int, shift: float = 0.0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)) @ rng.standard_normal((d, d)) * 0.3 + shift
    return x.mean(0), np.cov(x, rowvar=False)


@pytest.mark.parametrize("d", [16, 64, 256])
@pytest.mark.parametrize("method", ["eigh", "newton-schulz", "auto"])
def test_full_rank_pairs_agree_with_scipy(d, method):
    mu1, s1 = _gaussian(d, 4 * d, 1)
    mu2, s2 = _gaussian(d, 4 * d, 2, shift=0.1)
    ref = frechet_distance_scipy(mu1, s1, mu2, s2)
    got = fidrs.frechet_distance(mu1, s1, mu2, s2, method=method)
    # Well-conditioned full-rank covariances: scipy's sqrtm is accurate to ~1e-12 relative here.
    assert abs(got - ref) <= 1e-8 * max(1.0, ref)


def test_rank_deficient_pairs_use_the_pivoted_factorisation():
    mu1, s1 = _gaussian(64, 40, 3)  # n < d: singular covariances
    mu2, s2 = _gaussian(64, 40, 4)
    info = fidrs.frechet_distance(mu1, s1, mu2, s2, method="eigh", return_info=True)
    assert info["factorisation"] == "pivoted-cholesky" and info["rank"] == 39
    ref = frechet_distance_scipy(mu1, s1, mu2, s2)
    # sqrtm on a singular product loses ~sqrt(eps) in the null space; agreement to 1e-6 relative.
    assert abs(info["value"] - ref) <= 1e-6 * max(1.0, ref)


def test_identical_inputs_give_zero():
    mu, s = _gaussian(128, 512, 5)
    for method in ("eigh", "newton-schulz"):
        assert abs(fidrs.frechet_distance(mu, s, mu, s, method=method)) <= 1e-6


def test_diagonal_closed_form():
    a, b = np.array([1.0, 4.0, 9.0, 0.25]), np.array([4.0, 1.0, 16.0, 1.0])
    mu1, mu2 = np.array([1.0, 0, 0, 2]), np.zeros(4)
    expected = np.sum((np.sqrt(a) - np.sqrt(b)) ** 2) + 5.0
    for method in ("eigh", "newton-schulz", "scipy"):
        assert fidrs.frechet_distance(mu1, np.diag(a), mu2, np.diag(b), method=method) == pytest.approx(expected, 1e-12)


def test_info_reports_method_and_diagnostics():
    mu1, s1 = _gaussian(32, 200, 6)
    mu2, s2 = _gaussian(32, 200, 7)
    info = fidrs.frechet_distance(mu1, s1, mu2, s2, method="newton-schulz", return_info=True)
    assert info["method"] == "newton-schulz" and info["iterations"] > 0 and info["residual"] <= 1e-10
    assert info["stop_reason"] == "converged"
    info = fidrs.frechet_distance(mu1, s1, mu2, s2, return_info=True)
    assert info["method"] == "eigh" and info["factorisation"] == "cholesky" and info["seconds"] >= 0


def test_newton_schulz_capped_says_so_and_stays_newton_schulz():
    mu1, s1 = _gaussian(32, 200, 8)
    mu2, s2 = _gaussian(32, 200, 9)
    with pytest.warns(RuntimeWarning, match="max_iterations=2"):
        info = fidrs.frechet_distance(mu1, s1, mu2, s2, method="newton-schulz", return_info=True, max_iterations=2)
    assert info["method"] == "newton-schulz" and info["stop_reason"] == "iteration limit"
    exact = fidrs.frechet_distance(mu1, s1, mu2, s2, method="eigh")
    trace_sqrt = (np.trace(s1) + np.trace(s2) + np.sum((mu1 - mu2) ** 2) - exact) / 2
    # The reported bound is honest: the capped trace is short of the exact one by at most residual · trace.
    assert 0 <= (info["value"] - exact) / 2 <= info["residual"] * trace_sqrt * (1 + 1e-9)


def test_not_positive_semidefinite_is_a_named_error_for_every_method():
    mu = np.zeros(6)
    good = np.eye(6)
    for bad in (-np.eye(6), np.diag([1.0, 1, 1, 1, 1, -1e-3]), np.array(np.ones((6, 6)) - 2 * np.eye(6))):
        for method in ("eigh", "newton-schulz"):
            with pytest.raises(fidrs.InvalidInputError, match="not positive semi-definite"):
                fidrs.frechet_distance(mu, bad, mu, good, method=method)


def test_issue_example_converges_with_newton_schulz():
    """d = 512, n = 300 on both sides (the issue's reproduction): singular, and NS used to return NaN."""
    rng = np.random.default_rng(3)

    def cov(n, d, s):
        x = rng.standard_normal((n, 64)) @ rng.standard_normal((64, d)) * 0.1 + rng.standard_normal((n, d)) * s
        return x.mean(0), np.cov(x, rowvar=False)

    a, b = cov(300, 512, 0.5), cov(300, 512, 0.7)
    ns = fidrs.frechet_distance(*a, *b, method="newton-schulz", return_info=True)
    exact = fidrs.frechet_distance(*a, *b, method="eigh", return_info=True)
    assert ns["stop_reason"] == "converged" and np.isfinite(ns["residual"]) and ns["residual"] <= 1e-10
    assert ns["factorisation"] == "pivoted-cholesky" and ns["rank"] == 299
    # Both are exact up to round-off: tr √ ~ 1e2 here, each method's error ≤ 1e-10·tr + r·√ε-level terms.
    assert abs(ns["value"] - exact["value"]) <= 1e-8 * max(1.0, exact["value"])


def test_bad_inputs_are_refused_before_factorising():
    mu, s = _gaussian(8, 50, 10)
    bad = s.copy()
    bad[2, 3] = np.nan
    with pytest.raises(fidrs.InvalidInputError, match="not finite"):
        fidrs.frechet_distance(mu, bad, mu, s)
    asym = s.copy()
    asym[0, 1] += 1.0
    with pytest.raises(fidrs.InvalidInputError, match="not symmetric"):
        fidrs.frechet_distance(mu, asym, mu, s)
    with pytest.raises(fidrs.InvalidInputError, match="differ in length"):
        fidrs.frechet_distance(mu, s, mu[:4], s)
    with pytest.raises(ValueError, match="method"):
        fidrs.frechet_distance(mu, s, mu, s, method="magic")
