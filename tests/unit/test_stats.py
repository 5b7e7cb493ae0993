"""Streaming moments and statistics files."""

from __future__ import annotations

import fidrs
import numpy as np
import pytest


def test_moments_match_numpy_cov_and_merge_equals_union():
    rng = np.random.default_rng(0)
    x = rng.random((300, 40), dtype=np.float32)
    whole = fidrs.Moments(40)
    for chunk in np.array_split(x, 7):
        whole.update(chunk)
    np.testing.assert_allclose(whole.mean(), x.astype(np.float64).mean(0), rtol=1e-13)
    np.testing.assert_allclose(whole.covariance(), np.cov(x.astype(np.float64), rowvar=False), rtol=1e-9, atol=1e-15)
    a, b = fidrs.Moments(40), fidrs.Moments(40)
    a.update(x[:100])
    b.update(x[100:])
    a.merge(b)
    assert a.n == 300
    np.testing.assert_allclose(a.sum_outer, whole.sum_outer, rtol=1e-12)


def test_moments_refuse_bad_input():
    m = fidrs.Moments(3)
    with pytest.raises(fidrs.InvalidInputError, match="columns"):
        m.update(np.zeros((2, 4), np.float32))
    with pytest.raises(fidrs.InvalidInputError, match="non-finite"):
        m.update(np.array([[1, np.inf, 0]], np.float32))
    m.update(np.ones((1, 3), np.float32))
    with pytest.raises(fidrs.InvalidInputError, match="at least 2"):
        m.covariance()


def _stats(mode="pytorch-fid", sha="abc", seed=0) -> fidrs.Stats:
    m = fidrs.Moments(5)
    m.update(np.random.default_rng(seed).random((20, 5), dtype=np.float32))
    return fidrs.Stats.from_moments(m, mode, sha, None)  # 5-d: of no backbone fidrs has


def test_save_load_round_trip_and_merge(tmp_path):
    s = _stats()
    s.save(tmp_path / "s.npz")
    loaded = fidrs.Stats.load(tmp_path / "s.npz")
    np.testing.assert_array_equal(loaded.mu, s.mu)
    np.testing.assert_array_equal(loaded.sigma, s.sigma)
    assert (loaded.n, loaded.mode, loaded.weights_sha256) == (20, "pytorch-fid", "abc")
    merged = loaded.merge(_stats(seed=1))
    assert merged.n == 40


def _with_version(tmp_path, version) -> str:
    """A valid fidrs statistics file whose `version` member is `version`."""
    _stats().save(tmp_path / "s.npz")
    with np.load(tmp_path / "s.npz") as data:
        members = {k: data[k] for k in data.files}
    members["version"] = np.asarray(version)
    np.savez(tmp_path / "v.npz", **members)
    return str(tmp_path / "v.npz")


def test_a_statistics_format_from_a_newer_fidrs_is_refused_not_guessed(tmp_path):
    from fidrs.statistics import FORMAT_VERSION

    for version in range(1, FORMAT_VERSION + 1):  # every format this fidrs wrote reads
        assert fidrs.Stats.load(_with_version(tmp_path, version)).n == 20
    with pytest.raises(fidrs.InvalidInputError, match=f"statistics format {FORMAT_VERSION + 1}, written by a newer"):
        fidrs.Stats.load(_with_version(tmp_path, FORMAT_VERSION + 1))


@pytest.mark.parametrize("version", ["not a version", 0, -1, 2.5, [3, 3], True])
def test_a_version_that_is_no_format_number_is_refused(tmp_path, version):
    with pytest.raises(fidrs.InvalidInputError, match="is not a statistics format number"):
        fidrs.Stats.load(_with_version(tmp_path, version))


def test_foreign_npz_with_only_mu_sigma_loads(tmp_path):
    np.savez(tmp_path / "pf.npz", mu=np.zeros(4), sigma=np.eye(4))
    s = fidrs.Stats.load(tmp_path / "pf.npz")
    assert s.n is None and s.mode is None and s.sigma.shape == (4, 4)
    np.savez(tmp_path / "bad.npz", mean=np.zeros(4))
    with pytest.raises(fidrs.InvalidInputError, match="'mu' and 'sigma'"):
        fidrs.Stats.load(tmp_path / "bad.npz")


def test_different_modes_or_weights_are_incompatible():
    with pytest.raises(fidrs.IncompatibleStatsError, match="mode"):
        _stats("pytorch-fid").check_compatible(_stats("clean"))
    with pytest.raises(fidrs.IncompatibleStatsError, match="weights"):
        _stats(sha="a").merge(_stats(sha="b"))


def test_pad_statistics_record_a_non_default_fill_colour():
    assert fidrs.Options(mode="pad").resolve().mode_label == "pad"
    assert fidrs.Options(mode="pad", pad_color=(0, 0, 0)).resolve().mode_label == "pad(0,0,0)"
    assert fidrs.Options(mode="clean", pad_color=(0, 0, 0)).resolve().mode_label == "clean"
    with pytest.raises(fidrs.IncompatibleStatsError):
        _stats("pad").check_compatible(_stats("pad(0,0,0)"))
