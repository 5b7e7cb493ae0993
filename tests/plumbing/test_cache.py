"""The feature cache: hits give identical features, changed files are recomputed, corruption is repaired. Runs on
the tiny test backbone (tests/tiny_backbone.py), the CLI in process."""

from __future__ import annotations

import json
import sqlite3

import fidrs
import numpy as np
import pytest
from cli_in_process import run_cli_here
from fidrs.cache import features_dir
from fidrs.feature_pass import FeaturePass, PassReport
from fidrs.sources import resolve as resolve_source
from PIL import Image


@pytest.fixture()
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FIDRS_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _folder(root, count, seed=0):
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        Image.fromarray(rng.integers(0, 256, (30, 30, 3), dtype=np.uint8)).save(root / f"{i:02d}.png")
    return root


def _pass(inputs, weights, **options):
    extractor = FeaturePass(fidrs.Options(backbone="tiny", weights=weights, batch_size=4, **options).resolve())
    report = PassReport()
    rows = [(idx, columns[0]) for idx, columns in extractor.iter_batches(resolve_source(inputs), report)]
    features = np.concatenate([f for _, f in rows])
    return features, report


def test_second_pass_is_served_from_the_cache_with_identical_features(tmp_path, private_cache, tiny):
    _, weights = tiny
    folder = _folder(tmp_path / "imgs", 10)
    first, report1 = _pass(str(folder), weights)
    second, report2 = _pass(str(folder), weights)
    assert report1.cache_hits == 0 and report2.cache_hits == 10
    np.testing.assert_array_equal(first, second)
    uncached, report3 = _pass(str(folder), weights, cache=False)
    assert report3.cache_hits == 0
    np.testing.assert_array_equal(first, uncached)


def test_changed_files_and_other_modes_are_recomputed(tmp_path, private_cache, tiny):
    _, weights = tiny
    folder = _folder(tmp_path / "imgs", 6)
    _pass(str(folder), weights)
    Image.fromarray(np.zeros((30, 30, 3), np.uint8)).save(folder / "03.png")  # new content, same name
    features, report = _pass(str(folder), weights)
    assert report.cache_hits == 5
    np.testing.assert_array_equal(
        features[3], fidrs.features([str(folder / "03.png")], backbone="tiny", weights=weights, cache=False)[0]
    )
    _, clean_report = _pass(str(folder), weights, mode="padded")
    assert clean_report.cache_hits == 0  # another mode, another cache


def test_corrupt_entries_are_detected_and_recomputed(tmp_path, private_cache, tiny):
    _, weights = tiny
    folder = _folder(tmp_path / "imgs", 4)
    first, _ = _pass(str(folder), weights)
    (database,) = features_dir().glob("*.sqlite")
    with sqlite3.connect(database) as db:
        db.execute("UPDATE features SET outputs = zeroblob(8192) WHERE rowid = (SELECT MIN(rowid) FROM features)")
    again, report = _pass(str(folder), weights)
    assert report.cache_hits == 3
    np.testing.assert_array_equal(first, again)


def test_cli_reports_hits_and_cache_commands(tmp_path, private_cache, tiny, capsys):
    _, weights = tiny
    a, b = _folder(tmp_path / "a", 4), _folder(tmp_path / "b", 4, seed=1)
    cmd = ["score", str(a), str(b), "--backbone", "tiny", "--weights", weights, "--json"]

    def run(*argv):
        out = run_cli_here(capsys, *argv)
        assert out.returncode == 0, out.stderr
        return out.stdout

    first = json.loads(run(*cmd))
    second = json.loads(run(*cmd))
    assert first["cache_hits"] == 0 and second["cache_hits"] == 8
    assert second["fid"] == first["fid"]
    off = json.loads(run(*cmd, "--no-cache"))
    assert off["cache_hits"] == 0 and off["fid"] == first["fid"]
    info = json.loads(run("cache", "info"))
    # each entry holds at least the tiny network's float32 outputs: 8 features + 4 logits
    assert info["entries"] == 8 and info["bytes"] > 8 * (8 + 4) * 4
    run("cache", "clear")
    assert not list(features_dir().glob("*.sqlite"))


def test_unreadable_file_is_reported_with_its_reason_when_caching(tmp_path, private_cache, tiny):
    _, weights = tiny
    folder = _folder(tmp_path / "imgs", 3)
    (folder / "gone.png").symlink_to(tmp_path / "does-not-exist.png")  # listed, but cannot be opened
    with pytest.raises(fidrs.BadImagesError) as info:
        _pass(str(folder), weights)
    assert [(p.rsplit("/", 1)[1], r.split(":")[0]) for p, r in info.value.failures] == [
        ("gone.png", "cannot read file")
    ]
