"""Images named by URL: listed and read through fsspec (here its in-memory filesystem, which needs no network),
decoded from memory exactly as local files; `file://` URLs go through the hardened local reader."""

from __future__ import annotations

import os

import fidrs
import fsspec
import numpy as np
import pytest
from conftest import write_images
from fidrs import DuplicateFilesWarning
from fidrs.sources import RemoteFiles
from fidrs.sources import resolve as resolve_source
from fidrs.sources.url import read_urls


@pytest.fixture
def remote_folder(tmp_path):
    local = write_images(tmp_path / "imgs", 5)
    (local / "notes.txt").write_text("not an image")
    fs = fsspec.filesystem("memory")
    fs.rm("/fidrs-test", recursive=True) if fs.exists("/fidrs-test") else None
    for path in sorted(local.iterdir()):
        fs.pipe(f"/fidrs-test/sub/{path.name}", path.read_bytes())
    yield local, "memory://fidrs-test"
    fs.rm("/fidrs-test", recursive=True)


def test_url_folder_gives_the_features_of_the_same_files(remote_folder, tiny):
    _, weights = tiny
    local, url = remote_folder
    source = resolve_source(url)
    assert isinstance(source, RemoteFiles)
    assert [os.path.basename(p) for p in source.paths] == [f"{i:02d}.png" for i in range(5)]  # images only, sorted
    np.testing.assert_array_equal(
        fidrs.features(url, backbone="tiny", weights=weights, cache=False),
        fidrs.features(str(local), backbone="tiny", weights=weights, cache=False),
    )


def test_url_files_that_are_no_images_or_too_large_are_named(remote_folder, tiny):
    _, weights = tiny
    local, url = remote_folder
    fs = fsspec.filesystem("memory")
    fs.pipe("/fidrs-test/sub/zz.png", b"junk")
    with pytest.raises(fidrs.BadImagesError) as bad:
        fidrs.stats(url, backbone="tiny", weights=weights, cache=False)
    assert [p for p, _ in bad.value.failures] == ["memory:///fidrs-test/sub/zz.png"]  # fsspec's full form
    too_large = read_urls(resolve_source(url).paths[:1], max_bytes=10)
    assert isinstance(too_large[0], str) and "over the limit of 10" in too_large[0]


def test_file_urls_are_local_paths_and_repeats_count_once(tmp_path):
    local = write_images(tmp_path / "imgs", 3)
    source = resolve_source(f"file://{local}")
    assert source.paths == [str(local / f"{i:02d}.png") for i in range(3)]
    with pytest.warns(DuplicateFilesWarning):
        twice = resolve_source([f"file://{local}/00.png", str(local / "00.png")])
    assert twice.paths == [str(local / "00.png")]


def test_bad_urls_are_clear_errors(tmp_path):
    with pytest.raises(fidrs.InvalidInputError, match="no such file or folder"):
        resolve_source("memory://does/not/exist")
    with pytest.raises(fidrs.InvalidInputError, match="scheme 'nosuchprotocol' are not read"):
        resolve_source("nosuchprotocol://bucket/x")  # unknown schemes are refused by name (issue 29 item 14)
    with pytest.raises(fidrs.InvalidInputError, match="mixes URLs and local paths"):
        resolve_source(["memory://a.png", str(tmp_path)])
    with pytest.raises(fidrs.InvalidInputError, match="file:///"):
        resolve_source("file://otherhost/x")
