"""Class 6 of the hardening issue: the feature cache never takes a run down. A corrupt database, a cache folder
that cannot be created or written, a full disk: one warning naming the folder and `fidrs cache clear`, and the
same FID as without a cache. Runs on the tiny test backbone (tests/tiny_backbone.py), the CLI in process."""

from __future__ import annotations

import gc
import json
import sqlite3

import fidrs
import pytest
from cli_in_process import run_cli_here
from conftest import write_images
from fidrs import cache as feature_cache


@pytest.fixture()
def pair(tmp_path):
    return str(write_images(tmp_path / "a", 3, seed=0)), str(write_images(tmp_path / "b", 3, seed=1))


@pytest.fixture()
def cli(tiny, capsys, monkeypatch):
    """`cli(*args, env=...)`: the command on the tiny backbone, in process, with `env` set for this call only."""
    _, checkpoint = tiny

    def run(*args, env=None):
        with monkeypatch.context() as m:
            for key, value in (env or {}).items():
                m.setenv(key, value)
            return run_cli_here(capsys, *args)

    run.common = ("--backbone", "tiny", "--weights", checkpoint)
    return run


def _fid(result) -> float:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["fid"]


def test_corrupt_database_is_survived(tmp_path, pair, cli):
    cache = tmp_path / "cache"
    env = {"FIDRS_CACHE": str(cache)}
    reference = _fid(cli("score", *pair, *cli.common, "--json", "--no-cache", env=env))
    assert _fid(cli("score", *pair, *cli.common, "--json", env=env)) == reference  # fills the cache
    # A run's exit closes its SQLite connections, which folds the write-ahead log into the file; in process, the
    # finished runs' connections are closed by collecting them (else the log would still serve every row).
    gc.collect()
    assert not list((cache / "features").glob("*.sqlite-wal"))
    databases = list((cache / "features").glob("*.sqlite"))
    assert databases  # the cache was filled: there is something to corrupt
    for database in databases:
        database.write_bytes(b"this is not a database" * 100)
    out = cli("score", *pair, *cli.common, "--json", env=env)
    assert _fid(out) == reference
    warnings = [line for line in out.stderr.splitlines() if "warning" in line and "cache" in line]
    assert len(warnings) == 1 and str(cache / "features") in warnings[0] and "fidrs cache clear" in warnings[0]


def test_cache_folder_that_cannot_be_created_is_survived(tmp_path, pair, cli):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "features").write_text("a file where the folder should be")
    reference = _fid(cli("score", *pair, *cli.common, "--json", "--no-cache"))
    out = cli("score", *pair, *cli.common, "--json", env={"FIDRS_CACHE": str(cache)})
    assert _fid(out) == reference
    assert "fidrs cache clear" in out.stderr


def test_full_disk_on_write_is_survived(monkeypatch, tmp_path, pair, tiny):
    _, weights = tiny
    monkeypatch.setenv("FIDRS_CACHE", str(tmp_path / "cache"))  # empty: every image is written, none read

    def full(*args, **kwargs):
        raise sqlite3.OperationalError("database or disk is full")

    reference = fidrs.score(*pair, backbone="tiny", weights=weights, cache=False)
    monkeypatch.setattr(feature_cache.FeatureCache, "_put_many", full)
    with pytest.warns(feature_cache.CacheWarning, match="disk is full"):
        assert fidrs.score(*pair, backbone="tiny", weights=weights) == reference


def test_cache_clear_removes_onnx_graphs_and_info_counts_them(tmp_path, pair, cli):
    env = {"FIDRS_CACHE": str(tmp_path / "cache")}
    assert cli("score", *pair, *cli.common, env=env).returncode == 0
    info = json.loads(cli("cache", "info", env=env).stdout)
    assert info["entries"] == 6 and len(info["onnx_graphs"]) == 1
    (graph,) = (tmp_path / "cache").glob("*.onnx")
    # the graph is counted at its size on disk, and the total includes it (the tiny graph is a few KB)
    assert info["bytes"] >= info["onnx_graphs"][0]["bytes"] == graph.stat().st_size > 0
    assert cli("cache", "clear", env=env).returncode == 0
    assert list((tmp_path / "cache").glob("*.onnx*")) == []
    info = json.loads(cli("cache", "info", env=env).stdout)
    assert info["entries"] == 0 and info["onnx_graphs"] == []
