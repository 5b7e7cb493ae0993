"""A statistics file's Σ is read, checked and factorised once, and not kept: the Fréchet distance needs only the
factor. Whatever asks for the matrix itself gets the file's Σ again, exactly, or an error if the file changed."""

from __future__ import annotations

import pickle
from dataclasses import dataclass

import numpy as np
import pytest
from cli_in_process import run_cli_here
from fidrs import deferred
from fidrs.deferred import Deferred, DeferredField
from fidrs.errors import InvalidInputError
from fidrs.references import read_reference


@dataclass(frozen=True)
class _Frozen:
    name: str
    value: list = DeferredField()  # type: ignore[assignment]
    n: int = 0


@dataclass
class _Plain:
    value: list = DeferredField()  # type: ignore[assignment]


def _counting(value):
    calls = []

    def load():
        calls.append(1)
        return list(value)

    return Deferred(load, "test"), calls


@pytest.mark.parametrize("cls", [_Frozen, _Plain])
def test_a_deferred_value_is_read_on_first_access_then_kept(cls):
    source, calls = _counting([1, 2])
    obj = cls("x", source) if cls is _Frozen else cls(source)
    assert not deferred.is_loaded(obj, "value") and calls == []
    assert obj.value == [1, 2] and obj.value is obj.value
    assert calls == [1] and deferred.is_loaded(obj, "value")


def test_replace_passes_a_deferred_value_on_unread_and_pickling_reads_it():
    source, calls = _counting([3])
    obj = _Frozen("x", source)
    other = deferred.replace(obj, n=5)
    assert (other.n, calls) == (5, []) and deferred.raw(other, "value") is source
    assert pickle.loads(pickle.dumps(other)).value == [3] and calls == [1]  # pickled as its value
    with pytest.raises(TypeError, match="not a DeferredField"):
        deferred.raw(obj, "n")
    with pytest.raises(TypeError):  # no default: the field must be given
        _Frozen("x")  # type: ignore[call-arg]


@pytest.fixture()
def stats_file(tmp_path):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((40, 8))
    path = tmp_path / "ref.npz"
    np.savez(path, mu=x.mean(0), sigma=np.cov(x, rowvar=False).astype(np.float32))
    return path


def test_a_file_s_sigma_is_not_kept_and_is_read_again_exactly(stats_file):
    entry = read_reference(str(stats_file)).entry()
    stats = entry.to_stats()
    assert not deferred.is_loaded(entry, "sigma") and not deferred.is_loaded(stats, "sigma")
    assert stats.covariance is not None and stats.covariance.dim == 8  # the distance's factor, kept
    with np.load(stats_file) as f:
        expected = f["sigma"].astype(np.float64)
    assert stats.sigma.dtype == np.float64 and np.array_equal(stats.sigma, expected)
    assert np.array_equal(entry.sigma, expected)


def test_a_file_changed_since_it_was_read_is_refused(stats_file):
    stats = read_reference(str(stats_file)).entry().to_stats()
    with np.load(stats_file) as f:
        mu, sigma = f["mu"], f["sigma"]
    np.savez(stats_file, mu=mu, sigma=sigma * 2)  # same shapes and dtypes, other numbers
    with pytest.raises(InvalidInputError, match="changed since it was opened"):
        stats.sigma  # noqa: B018 - the access is the test


def test_the_gate_reads_no_sigma_twice(stats_file, capsys, monkeypatch):
    """`fidrs score a.npz b.npz` computes the distance from the factors alone: a second read of either Σ fails
    the command here. (`--method scipy`, pytorch-fid's path, needs the matrices: it reads them.)"""

    def refuse(self):
        raise AssertionError(f"{self.what} read again")

    with monkeypatch.context() as patch:
        patch.setattr(Deferred, "load", refuse)
        out = run_cli_here(capsys, "score", str(stats_file), str(stats_file), "--json")
    assert out.returncode == 0, out.stderr
    scipy = run_cli_here(capsys, "score", str(stats_file), str(stats_file), "--method", "scipy", "--json")
    assert scipy.returncode == 0, scipy.stderr
