"""The checked, factorised covariance shared by the statistics check and the Fréchet distance, and the
distance at the edges of float64: no −inf or "came out inf" for finite inputs, a zero covariance is one,
options that cannot work are refused up front."""

from __future__ import annotations

import json
import subprocess
import sys

import fidrs
import numpy as np
import pytest
from conftest import run_cli
from fidrs import _fidrs
from fidrs.statistics import check_statistics


def _gaussian(d: int, n: int, seed: int, shift: float = 0.0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)) @ rng.standard_normal((d, d)) * 0.3 + shift
    return x.mean(0), np.cov(x, rowvar=False)


def _moments_of(rows: np.ndarray) -> _fidrs.Moments:
    m = _fidrs.Moments(rows.shape[1])
    m.update(np.ascontiguousarray(rows, dtype=np.float32))
    return m


@pytest.mark.parametrize("d,n", [(32, 200), (32, 20)])
def test_a_covariance_gives_the_same_distance_as_its_array(d, n):
    """The factorisation made by the check is the one the distance would make: the values are identical."""
    mu1, s1 = _gaussian(d, n, 1)
    mu2, s2 = _gaussian(d, n, 2, shift=0.1)
    c1 = _fidrs.Covariance(s1, mu1, name="a: sigma")
    c2 = _fidrs.Covariance(s2, mu2)
    assert (c1.dim, c1.rank) == (d, min(d, n - 1)) and c1.factorisation == ("cholesky" if n > d else "pivoted-cholesky")
    for method in ("eigh", "newton-schulz"):
        from_arrays = fidrs.frechet_distance(mu1, s1, mu2, s2, method=method, return_info=True)
        from_checked = fidrs.frechet_distance(mu1, c1, mu2, c2, method=method, return_info=True)
        assert from_checked["value"] == from_arrays["value"]
        assert from_checked["factorisation"] == from_arrays["factorisation"]
    assert c1.trace == pytest.approx(np.trace(s1), rel=1e-15)


def test_check_statistics_returns_the_covariance_the_score_reuses(tmp_path):
    mu, s = _gaussian(16, 100, 3)
    np.savez(tmp_path / "a.npz", mu=mu, sigma=s)
    loaded = fidrs.Stats.load(tmp_path / "a.npz")
    assert isinstance(loaded.covariance, _fidrs.Covariance) and loaded.covariance.stored_as == "float64"
    checked = check_statistics(str(tmp_path / "a.npz"), mu.astype(np.float32), s.astype(np.float32))
    assert checked.stored_as == "float32" and checked.rank == 16


@pytest.mark.parametrize("through", ["api", "cli"])
def test_two_statistics_files_are_each_factorised_once(tmp_path, monkeypatch, capsys, through):
    """`score a.npz b.npz`: each Σ is checked and factorised once, on load (check_statistics → Covariance), and
    the distance takes those Covariances instead of factorising the arrays again; no numpy/SciPy
    factorisation runs on this path."""
    import fidrs.frechet
    import fidrs.statistics
    from fidrs.cli.main import main

    for i, seed in enumerate((1, 2)):
        mu, s = _gaussian(24, 300, seed)
        np.savez(tmp_path / f"{'ab'[i]}.npz", mu=mu, sigma=s)
    expected = fidrs.frechet.frechet_distance_scipy(
        *(v for name in "ab" for v in (lambda z: (z["mu"], z["sigma"]))(np.load(tmp_path / f"{name}.npz")))
    )
    checks, sigmas = [], []
    check = fidrs.statistics.check_statistics
    distance = fidrs.frechet._fidrs.frechet_distance

    def counting_check(*args, **kwargs):
        checks.append(args[0])
        return check(*args, **kwargs)

    def recording_distance(mu1, sigma1, mu2, sigma2, **kwargs):
        sigmas.extend((sigma1, sigma2))
        return distance(mu1, sigma1, mu2, sigma2, **kwargs)

    def refuse(*_args, **_kwargs):
        raise AssertionError("a second factorisation ran outside the Rust Covariance")

    import fidrs.references.readers  # noqa: F401 - the readers bind the name too: patched below

    for module in [m for name, m in sys.modules.items() if name.startswith("fidrs")]:
        if getattr(module, "check_statistics", None) is check:
            monkeypatch.setattr(module, "check_statistics", counting_check)
    monkeypatch.setattr(fidrs.frechet._fidrs, "frechet_distance", recording_distance)
    for name in ("cholesky", "eigvalsh", "eigh", "svd"):
        monkeypatch.setattr(np.linalg, name, refuse)
    a, b = str(tmp_path / "a.npz"), str(tmp_path / "b.npz")
    if through == "api":
        value = fidrs.score(a, b)
    else:
        assert main(["score", a, b, "--json"]) == 0
        value = json.loads(capsys.readouterr().out)["fid"]
    assert sorted(checks) == [a, b]  # each file checked once
    assert len(sigmas) == 2 and all(isinstance(s, _fidrs.Covariance) for s in sigmas)
    # Same number as pytorch-fid's path: both are float64 and exact up to the conditioning of sqrtm here
    # (Σ well conditioned at d = 24, n = 300): round-off ~d·u·‖Σ‖ ≈ 1e-14 relative, 1e-9 leaves room.
    assert value == pytest.approx(expected, rel=1e-9)


def test_one_image_copied_100_times_is_a_zero_covariance_with_a_defined_distance(tmp_path):
    """The one-pass moments of identical rows leave ±3e-15 of round-off, not a covariance of −3e-15: Σ = 0, and
    FID against any set is ‖μ₁ − μ₂‖² + tr Σ₁ + tr Σ₂ (tr √(0·Σ₂) = 0)."""
    rng = np.random.default_rng(4)
    d = 2048
    row = (rng.random(d) * 0.6 + 0.2).astype(np.float32)
    copies = _moments_of(np.tile(row, (100, 1)))
    sigma1 = copies.covariance()
    noise = np.abs(sigma1).max()
    assert noise > 0 and sigma1.diagonal().min() < 0  # the round-off the old check refused
    other = _moments_of(rng.random((300, d)) * 0.5)
    mu1, mu2, sigma2 = copies.mean(), other.mean(), other.covariance()
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(sigma1) + np.trace(sigma2)
    # Known to be one-pass moments of 100 samples: the noise is below what they resolve (100·ε·μ²), Σ = 0.
    zero = _fidrs.Covariance(sigma1, mu1, samples=100)
    assert (zero.factorisation, zero.rank) == ("zero", 0)
    info = fidrs.frechet_distance(mu1, zero, mu2, sigma2, return_info=True)
    assert info["factorisation"] == "zero"
    # Then the value is a sum of three non-negative float64 terms of size ~1e2: a few ulps, 1e-13 relative.
    assert info["value"] == pytest.approx(expected, rel=1e-13)
    # As bare arrays (recipe unknown) the noise is accepted as round-off around μ and factorised as it is:
    # B₁B₁ᵀ ⪯ the noise's positive part, ‖·‖₂ ≤ d·max|Σ₁| (Gershgorin), so by Cauchy–Schwarz over at most d
    # singular values 2 tr √(Σ₁⁺Σ₂) ≤ 2·√(d · d·max|Σ₁| · tr Σ₂): the bound on the deviation.
    bound = 2 * np.sqrt(d * d * noise * np.trace(sigma2))
    assert abs(fidrs.frechet_distance(mu1, sigma1, mu2, sigma2) - expected) <= bound
    # And through the CLI, as fidrs statistics files (one-pass, n recorded): exit 0, the exact value.
    for name, m in (("copies", copies), ("other", other)):
        fidrs.Stats.from_moments(m, "pytorch-fid", "0" * 64, "inception").save(tmp_path / f"{name}.npz")
    out = run_cli("score", str(tmp_path / "copies.npz"), str(tmp_path / "other.npz"), "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["fid"] == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("scale", [1e-170, 1e-100, 1e100, 1e150, 1e300])
def test_finite_inputs_never_give_minus_inf_at_any_scale(scale):
    """FID(c·μ, c²·Σ) = c²·FID: computed at every scale a float64 covariance can have (it used to give −inf
    from 1e200, and 0 for tr √ below 1e-160). Tolerance: the scaled inputs are rounded once (1 ulp) and the
    eigh path is exact to ~1e-12 relative here; 1e-9 as in the full-rank tests."""
    mu1, s1 = _gaussian(24, 200, 5)
    mu2, s2 = _gaussian(24, 200, 6, shift=0.2)
    unit = fidrs.frechet_distance(mu1, s1, mu2, s2)
    c = np.sqrt(scale)
    mu_scale = c if scale <= 1e300 else 1.0  # c·μ up to 1e150: its square is still a float64
    got = fidrs.frechet_distance(mu1 * mu_scale, s1 * scale, mu2 * mu_scale, s2 * scale)
    mean_term = np.sum((mu1 - mu2) ** 2)
    expected = (unit - mean_term) * scale + mean_term * mu_scale**2
    assert np.isfinite(got) and got == pytest.approx(expected, rel=1e-9)
    # Identical huge covariances: the traces cancel exactly against 2 tr √ (never −inf).
    same = fidrs.frechet_distance(mu1, s1 * scale, mu1, s1 * scale)
    assert np.isfinite(same) and abs(same) <= 1e-9 * 2 * np.trace(s1) * scale


def test_a_mean_of_1e160_is_a_clear_error_not_inf(tmp_path):
    mu, s = _gaussian(8, 50, 7)
    with pytest.raises(fidrs.InvalidInputError, match=r"mu1\[0\] = 1e160 is beyond the range"):
        fidrs.frechet_distance(mu + 1e160, s, mu, s)
    # Means that are huge but close are a finite distance: what matters is their difference.
    assert fidrs.frechet_distance(mu * 0 + 1e150, s, mu * 0 + 1e150, s) == pytest.approx(0, abs=1e-9)
    np.savez(tmp_path / "huge.npz", mu=mu + 1e160, sigma=s)
    np.savez(tmp_path / "plain.npz", mu=mu, sigma=s)
    out = run_cli("score", str(tmp_path / "huge.npz"), str(tmp_path / "plain.npz"))
    assert out.returncode == 2, (out.returncode, out.stderr)
    assert f"{tmp_path / 'huge.npz'}: mu[0] = 1e160 is beyond the range" in out.stderr and out.stdout == ""


@pytest.mark.parametrize("method", ["auto", "eigh", "newton-schulz", "scipy"])
@pytest.mark.parametrize(
    "options, message",
    [
        ({"max_iterations": 0}, "max_iterations must be an integer >= 1"),
        ({"tolerance": 0.0}, "tolerance must be"),
        ({"tolerance": float("nan")}, "tolerance must be"),
        ({"tolerance": 1.5}, "tolerance must be"),
    ],
)
def test_options_that_cannot_work_are_refused_before_any_work(method, options, message):
    """`max_iterations=0` used to return 17.8 for an exact 8.0 with only a warning."""
    mu, s = _gaussian(8, 50, 8)
    with pytest.raises(fidrs.InvalidInputError, match=message):
        fidrs.frechet_distance(mu, s, mu + 1, s, method=method, **options)


def test_scipy_needs_the_arrays():
    mu, s = _gaussian(8, 50, 9)
    with pytest.raises(fidrs.InvalidInputError, match="needs the covariance arrays"):
        fidrs.frechet_distance(mu, _fidrs.Covariance(s, mu), mu, s, method="scipy")
    assert fidrs.frechet_distance(mu, s, mu + 1, s, method="scipy") == pytest.approx(8.0, rel=1e-9)


@pytest.mark.parametrize("bad", ["nan", "asymmetric", "indefinite", "shape"])
def test_covariance_refuses_what_is_no_covariance_by_name(bad):
    mu, s = _gaussian(6, 40, 10)
    if bad == "nan":
        s[2, 1] = np.nan
        match = r"x: sigma\[2, 1\] is not finite \(NaN\)"
    elif bad == "asymmetric":
        s[0, 1] += 1.0
        match = r"x: sigma is not symmetric"
    elif bad == "indefinite":
        s = -np.eye(6)
        match = r"x: sigma is not positive semi-definite"
    else:
        mu = mu[:5]
        match = r"x: mu and x: sigma differ in length"
    with pytest.raises(fidrs.InvalidInputError, match=match):
        _fidrs.Covariance(s, mu, name="x: sigma", mean_name="x: mu")


def test_float32_round_off_is_accepted_only_at_float32_precision():
    """A rank-deficient Σ rounded to float32 has negative eigenvalues of ~6e-8·‖Σ‖: round-off for a float32
    file (tolerance 1e-5 of the second moments), not for float64 (1e-9)."""
    mu, s = _gaussian(64, 40, 11)
    rounded = s.astype(np.float32).astype(np.float64)
    assert np.linalg.eigvalsh(rounded)[0] < 0  # rounding made it indefinite: the check has something to do
    assert _fidrs.Covariance(rounded, mu, stored_as="float32").factorisation == "pivoted-cholesky"
    with pytest.raises(fidrs.InvalidInputError, match="not positive semi-definite"):
        _fidrs.Covariance(rounded, mu, stored_as="float64")
    # What the rounding costs the distance of a set to itself: √ of ~6e-8·‖Σ‖ per extra direction, ~1e-4·tr.
    assert abs(fidrs.frechet_distance(mu, rounded, mu, rounded)) <= 1e-4 * np.trace(s)


def test_the_npz_gate_imports_no_network_runtime_and_no_http(tmp_path):
    """`fidrs score a.npz b.npz` (the CI gate) needs neither ONNX Runtime/onnx (no network runs), SciPy, nor
    the HTTP/TLS stack (no download): each costs import time on every gate run (issue 28)."""
    for i, seed in enumerate((1, 2)):
        mu, s = _gaussian(8, 40, seed)
        np.savez(tmp_path / f"{'ab'[i]}.npz", mu=mu, sigma=s)
    code = (
        "import sys\nfrom fidrs.cli.main import main\n"
        f"assert main(['score', {str(tmp_path / 'a.npz')!r}, {str(tmp_path / 'b.npz')!r}]) == 0\n"
        "print(sorted(m for m in ('onnxruntime', 'onnx', 'scipy', 'ssl', 'http.client', 'fidrs.download') "
        "if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"
