"""Weights resolution and download, against a local HTTP server (GitHub is out of reach here). The file served and
resolved is a stand-in: the tiny test backbone's checkpoint (tests/tiny_backbone.py), a few KB; resolution and
download check names, hashes and sizes, never the network inside, so the Inception's names and published hash are
tested with it. The graph cache is tested on the tiny backbone itself."""

from __future__ import annotations

import hashlib
import shutil
import socket

import fidrs
import pytest
from conftest import inception_with, serve_folder
from fidrs import weights as w
from fidrs.backbones import get as backbone

INCEPTION = backbone("inception")
FILENAME = INCEPTION.weights.filename


@pytest.fixture()
def stand_in(tiny):
    """(path, sha256) of a checkpoint that is not the real Inception's: the tiny backbone's."""
    _, checkpoint = tiny
    with open(checkpoint, "rb") as f:
        return checkpoint, hashlib.sha256(f.read()).hexdigest()


@pytest.fixture()
def server(tmp_path, stand_in):
    """Serves the stand-in checkpoint as the real file name, plus a corrupted copy, on 127.0.0.1."""
    root = tmp_path / "www"
    root.mkdir()
    shutil.copy(stand_in[0], root / FILENAME)
    corrupt = bytearray((root / FILENAME).read_bytes())
    corrupt[len(corrupt) // 2] ^= 0xFF
    (root / "corrupt.pth").write_bytes(bytes(corrupt))
    with serve_folder(root) as url:
        yield url


@pytest.fixture()
def empty_cache(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("FIDRS_CACHE", str(cache))
    monkeypatch.delenv("FIDRS_WEIGHTS", raising=False)
    return cache


def test_download_verifies_hash_and_renames_into_place(server, empty_cache, stand_in):
    dest = empty_cache / FILENAME
    sha256 = stand_in[1]
    got = w.download_weights(inception_with(sha256=sha256[:8]), f"{server}/{FILENAME}", dest)
    assert got == dest and dest.is_file()
    assert w.sha256_file(dest) == sha256
    assert not dest.with_name(dest.name + ".part").exists()


def test_corrupted_download_is_rejected_and_removed(server, empty_cache, stand_in):
    dest = empty_cache / FILENAME
    with pytest.raises(fidrs.WeightsHashMismatchError, match="sha256"):
        w.download_weights(inception_with(sha256=stand_in[1][:8]), f"{server}/corrupt.pth", dest)
    assert not dest.exists()
    assert not dest.with_name(dest.name + ".part").exists()


def test_resolution_downloads_from_the_url_override_and_checks_the_real_hash(server, empty_cache, monkeypatch):
    # The full default path: no argument, no env, empty cache -> download from FIDRS_WEIGHTS_URL.
    # The stand-in is not the real file, so the real file's hash prefix (6726825d) must reject it.
    monkeypatch.setenv("FIDRS_WEIGHTS_URL", f"{server}/{FILENAME}")
    with pytest.raises(fidrs.WeightsHashMismatchError, match="6726825d"):
        w.resolve_checkpoint(INCEPTION, None)
    assert not (empty_cache / FILENAME).exists()


def test_cached_checkpoint_is_used_without_network(stand_in, empty_cache, monkeypatch):
    empty_cache.mkdir(parents=True)
    shutil.copy(stand_in[0], empty_cache / FILENAME)
    monkeypatch.setenv("FIDRS_WEIGHTS_URL", "http://127.0.0.1:9/unreachable")
    assert w.resolve_checkpoint(INCEPTION, None) == empty_cache / FILENAME


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_offline_without_weights_explains_how_to_supply_them(empty_cache, monkeypatch):
    monkeypatch.setenv("FIDRS_WEIGHTS_URL", f"http://127.0.0.1:{_closed_port()}/{FILENAME}")
    with pytest.raises(fidrs.WeightsUnavailableError) as info:
        w.resolve_checkpoint(INCEPTION, None)
    message = str(info.value)
    assert "--weights" in message and "FIDRS_WEIGHTS" in message and FILENAME in message


def test_explicit_weights_take_precedence_over_env(stand_in, empty_cache, monkeypatch, tmp_path):
    weights = stand_in[0]
    monkeypatch.setenv("FIDRS_WEIGHTS", str(tmp_path / "missing.pth"))
    assert str(w.resolve_checkpoint(INCEPTION, weights)) == weights
    with pytest.raises(fidrs.WeightsUnavailableError, match="missing.pth"):
        w.resolve_checkpoint(INCEPTION, None)


def test_onnx_model_is_cached_by_checkpoint_hash(tiny, stand_in, empty_cache):
    backbone_, (weights, sha256) = tiny[0], stand_in
    first = w.resolve_model(backbone_, weights)
    assert first.weights_sha256 == sha256
    assert first.onnx_path == w.graph_path(backbone_, sha256)
    assert first.onnx_path.parent == empty_cache and first.onnx_path.name.endswith(f"-{sha256}.onnx")
    mtime = first.onnx_path.stat().st_mtime_ns
    second = w.resolve_model(backbone_, weights)
    assert second.onnx_path.stat().st_mtime_ns == mtime  # reused, not rebuilt


def test_cache_dir_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.delenv("FIDRS_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert w.cache_dir() == tmp_path / "fidrs"
