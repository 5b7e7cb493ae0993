"""Statistics files whose stored moments (sum, sum_outer) are not finite or not symmetric are refused when loaded,
by `Stats.load` and so by `fidrs score` and `fidrs merge` (exit 2, the file and the member named, no traceback);
`Moments.deviation` counts a NaN difference as infinite. Valid files still load and merge bit for bit."""

from __future__ import annotations

import re
import subprocess
import sys

import fidrs
import numpy as np
import pytest
from fidrs.statistics import merge_shards

DIM, ROWS = 5, 20


def _stats(seed: int) -> fidrs.Stats:
    m = fidrs.Moments(DIM)
    m.update(np.random.default_rng(seed).random((ROWS, DIM), dtype=np.float32))
    return fidrs.Stats.from_moments(m, "pytorch-fid", "abc", None)  # no backbone: 5-d statistics of none


def _members(path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


def _edited(tmp_path, name: str, member: str, index: tuple[int, ...], value=None, add=None):
    """A copy of a fidrs statistics file with one entry of `member` set to `value` (or `add` added to it)."""
    good = tmp_path / "good.npz"
    if not good.exists():
        _stats(0).save(good)
    members = _members(good)
    edited = members[member].copy()
    edited[index] = value if add is None else edited[index] + add
    members[member] = edited
    np.savez(tmp_path / name, **members)
    return tmp_path / name


NON_FINITE = [(np.nan, "NaN"), (np.inf, "inf"), (-np.inf, "-inf")]


def test_a_valid_file_loads_and_merges_bit_for_bit(tmp_path):
    a, b = _stats(0), _stats(1)
    a.save(tmp_path / "a.npz")
    b.save(tmp_path / "b.npz")
    stored = _members(tmp_path / "a.npz")
    # What the writer stores, and what the symmetry rule relies on: sum_outer is exactly symmetric.
    assert np.array_equal(stored["sum_outer"], stored["sum_outer"].T)
    loaded = fidrs.Stats.load(tmp_path / "a.npz")
    for got, want in [(loaded.mu, a.mu), (loaded.sigma, a.sigma)]:
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(loaded.moments.sum, a.moments.sum)
    np.testing.assert_array_equal(loaded.moments.sum_outer, a.moments.sum_outer)
    merged = merge_shards([tmp_path / "a.npz", tmp_path / "b.npz"])
    in_memory = a.merge(b)
    assert merged.n == 2 * ROWS
    np.testing.assert_array_equal(merged.mu, in_memory.mu)
    np.testing.assert_array_equal(merged.sigma, in_memory.sigma)
    out = subprocess.run(
        [sys.executable, "-m", "fidrs.cli", "merge", "a.npz", "b.npz", "-o", "ab.npz"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    again = fidrs.Stats.load(tmp_path / "ab.npz")
    np.testing.assert_array_equal(again.mu, in_memory.mu)
    np.testing.assert_array_equal(again.sigma, in_memory.sigma)
    np.testing.assert_array_equal(again.moments.sum_outer, in_memory.moments.sum_outer)


@pytest.mark.parametrize("value, shown", NON_FINITE)
@pytest.mark.parametrize("i", [0, 2, DIM - 1])
def test_a_non_finite_sum_is_refused(tmp_path, i, value, shown):
    path = _edited(tmp_path, "bad.npz", "sum", (i,), value)
    with pytest.raises(fidrs.InvalidInputError, match=re.escape(f"sum[{i}] is not finite ({shown})")) as error:
        fidrs.Stats.load(path)
    assert str(error.value).startswith(f"{path}: ")


@pytest.mark.parametrize("value, shown", NON_FINITE)
@pytest.mark.parametrize("i, j", [(0, 0), (3, 1), (1, 3), (DIM - 1, DIM - 1), (0, DIM - 1)])
def test_a_non_finite_sum_outer_entry_is_refused(tmp_path, i, j, value, shown):
    """Diagonal, lower and upper triangle: an entry that is not finite is named, whichever triangle it is in."""
    path = _edited(tmp_path, "bad.npz", "sum_outer", (i, j), value)
    with pytest.raises(fidrs.InvalidInputError, match=re.escape(f"sum_outer[{i}, {j}] is not finite ({shown})")) as e:
        fidrs.Stats.load(path)
    assert str(e.value).startswith(f"{path}: ")


@pytest.mark.parametrize("value, shown", NON_FINITE)
def test_a_non_finite_entry_on_both_triangles_is_refused(tmp_path, value, shown):
    """Symmetric, but not finite: refused as not finite (and the tolerance never becomes infinite)."""
    good = tmp_path / "good.npz"
    _stats(0).save(good)
    members = _members(good)
    members["sum_outer"][2, 4] = members["sum_outer"][4, 2] = value
    np.savez(tmp_path / "bad.npz", **members)
    with pytest.raises(fidrs.InvalidInputError, match=re.escape(f"sum_outer[2, 4] is not finite ({shown})")):
        fidrs.Stats.load(tmp_path / "bad.npz")


@pytest.mark.parametrize("i, j", [(0, 2), (1, 4), (2, 0), (4, 3)])
def test_an_edit_of_either_triangle_of_sum_outer_is_refused(tmp_path, i, j):
    path = _edited(tmp_path, "bad.npz", "sum_outer", (i, j), add=1e-3)
    lo, hi = max(i, j), min(i, j)
    with pytest.raises(fidrs.InvalidInputError, match=re.escape(f"sum_outer[{lo}, {hi}] = ")) as error:
        fidrs.Stats.load(path)
    assert "is not symmetric" in str(error.value)
    assert str(error.value).startswith(f"{path}: ")


def test_a_one_ulp_asymmetry_is_refused(tmp_path):
    """The writer mirrors one triangle onto the other, so no round-off can make them differ: any difference is."""
    good = tmp_path / "good.npz"
    _stats(0).save(good)
    members = _members(good)
    members["sum_outer"][1, 3] = np.nextafter(members["sum_outer"][1, 3], np.inf)
    np.savez(tmp_path / "bad.npz", **members)
    with pytest.raises(fidrs.InvalidInputError, match="sum_outer is not symmetric"):
        fidrs.Stats.load(tmp_path / "bad.npz")


def test_a_symmetric_edit_of_sum_outer_is_still_refused_as_altered(tmp_path):
    good = tmp_path / "good.npz"
    _stats(0).save(good)
    members = _members(good)
    members["sum_outer"][0, 2] += 1e-3
    members["sum_outer"][2, 0] += 1e-3
    np.savez(tmp_path / "bad.npz", **members)
    with pytest.raises(fidrs.InvalidInputError, match="the file was altered"):
        fidrs.Stats.load(tmp_path / "bad.npz")


BAD_FILES = {
    "sum_nan": (("sum", (0,), np.nan, None), "sum[0] is not finite (NaN)"),
    "sum_outer_inf": (("sum_outer", (0, 0), np.inf, None), "sum_outer[0, 0] is not finite (inf)"),
    "sum_outer_upper_nan": (("sum_outer", (1, 3), np.nan, None), "sum_outer[1, 3] is not finite (NaN)"),
    "upper_triangle_edit": (("sum_outer", (0, 3), None, 1e-3), "sum_outer is not symmetric"),
}


@pytest.mark.parametrize("command", ["score", "merge"])
@pytest.mark.parametrize("kind", sorted(BAD_FILES))
def test_the_cli_refuses_the_file_with_exit_2(tmp_path, command, kind):
    (member, index, value, add), reason = BAD_FILES[kind]
    _edited(tmp_path, "shard1_bad.npz", member, index, value, add)
    _stats(1).save(tmp_path / "shard2.npz")
    args = ["shard1_bad.npz", "shard2.npz"] + (["-o", "merged.npz"] if command == "merge" else [])
    out = subprocess.run(
        [sys.executable, "-m", "fidrs.cli", command, *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert "shard1_bad.npz: " in out.stderr and reason in out.stderr, out.stderr
    assert "Traceback" not in out.stderr
    assert out.stdout.strip() == ""
    assert not (tmp_path / "merged.npz").exists()


def test_deviation_counts_a_nan_difference_as_infinite():
    m = fidrs.Moments(DIM)
    m.update(np.random.default_rng(3).random((ROWS, DIM), dtype=np.float32))
    mu, sigma = m.mean(), m.covariance()
    assert m.deviation(mu, sigma)[:2] == (0.0, 0.0)
    bad_mu = mu.copy()
    bad_mu[2] = np.nan
    assert m.deviation(bad_mu, sigma)[0] == np.inf
    for i, j in [(1, 3), (3, 1), (4, 4)]:
        bad_sigma = sigma.copy()
        bad_sigma[i, j] = np.nan
        assert m.deviation(mu, bad_sigma)[1] == np.inf, (i, j)


def test_from_parts_refuses_what_no_sample_set_has_and_merge_refuses_overflow():
    m = fidrs.Moments(DIM)
    m.update(np.random.default_rng(4).random((ROWS, DIM), dtype=np.float32))
    total, outer = m.sum, m.sum_outer
    with pytest.raises(fidrs.InvalidInputError, match=re.escape("sum[1] is not finite (NaN)")):
        fidrs.Moments.from_parts(m.n, np.where(np.arange(DIM) == 1, np.nan, total), outer)
    upper = outer.copy()
    upper[0, 1] += 1.0
    with pytest.raises(fidrs.InvalidInputError, match="not symmetric"):
        fidrs.Moments.from_parts(m.n, total, upper)
    huge = total.copy()
    huge[3] = np.finfo(np.float64).max
    big = fidrs.Moments.from_parts(m.n, huge, outer)
    with pytest.raises(fidrs.InvalidInputError, match=re.escape("sum[3] would be inf")):
        big.merge(fidrs.Moments.from_parts(m.n, huge, outer))
    assert big.n == m.n  # refused before anything changed
    np.testing.assert_array_equal(big.sum, huge)
