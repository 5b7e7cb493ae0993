"""Class 6 of the hardening issue: the feature cache never takes a run down. A corrupt database, a cache folder
that cannot be created or written, a full disk: one warning naming the folder and `fidrs cache clear`, and the
same FID as without a cache."""

from __future__ import annotations

import json
import sqlite3

import fidrs
import pytest
from conftest import run_cli, write_images
from fidrs import cache as feature_cache


@pytest.fixture()
def pair(tmp_path):
    return str(write_images(tmp_path / "a", 3, seed=0)), str(write_images(tmp_path / "b", 3, seed=1))


def _fid(result) -> float:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["fid"]


def test_corrupt_database_is_survived(tmp_path, pair, weights):
    cache = tmp_path / "cache"
    env = {"FIDRS_CACHE": str(cache)}
    reference = _fid(run_cli("score", *pair, "--weights", weights, "--json", "--no-cache", env=env))
    assert _fid(run_cli("score", *pair, "--weights", weights, "--json", env=env)) == reference  # fills the cache
    for database in (cache / "features").glob("*.sqlite"):
        database.write_bytes(b"this is not a database" * 100)
    out = run_cli("score", *pair, "--weights", weights, "--json", env=env)
    assert _fid(out) == reference
    warnings = [line for line in out.stderr.splitlines() if "warning" in line and "cache" in line]
    assert len(warnings) == 1 and str(cache / "features") in warnings[0] and "fidrs cache clear" in warnings[0]


def test_cache_folder_that_cannot_be_created_is_survived(tmp_path, pair, weights):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "features").write_text("a file where the folder should be")
    reference = _fid(run_cli("score", *pair, "--weights", weights, "--json", "--no-cache"))
    out = run_cli("score", *pair, "--weights", weights, "--json", env={"FIDRS_CACHE": str(cache)})
    assert _fid(out) == reference
    assert "fidrs cache clear" in out.stderr


def test_full_disk_on_write_is_survived(monkeypatch, tmp_path, pair, weights):
    monkeypatch.setenv("FIDRS_CACHE", str(tmp_path / "cache"))  # empty: every image is written, none read

    def full(*args, **kwargs):
        raise sqlite3.OperationalError("database or disk is full")

    reference = fidrs.score(*pair, weights=weights, cache=False)
    monkeypatch.setattr(feature_cache.FeatureCache, "_put_many", full)
    with pytest.warns(feature_cache.CacheWarning, match="disk is full"):
        assert fidrs.score(*pair, weights=weights) == reference


def test_cache_clear_removes_onnx_graphs_and_info_counts_them(tmp_path, pair, weights):
    env = {"FIDRS_CACHE": str(tmp_path / "cache")}
    assert run_cli("score", *pair, "--weights", weights, env=env).returncode == 0
    info = json.loads(run_cli("cache", "info", env=env).stdout)
    assert info["entries"] == 6 and len(info["onnx_graphs"]) == 1
    assert info["bytes"] >= info["onnx_graphs"][0]["bytes"] > 1_000_000
    assert run_cli("cache", "clear", env=env).returncode == 0
    assert list((tmp_path / "cache").glob("*.onnx*")) == []
    info = json.loads(run_cli("cache", "info", env=env).stdout)
    assert info["entries"] == 0 and info["onnx_graphs"] == []
