"""Every input kind resolves to the same images: directories, lists, globs, zip archives, arrays, ADM npz. Features
are compared on the tiny test backbone (tests/tiny_backbone.py)."""

from __future__ import annotations

import zipfile

import fidrs
import numpy as np
import pytest
from fidrs.sources import ImageFiles, StatsFile, ZipImages
from fidrs.sources import resolve as resolve_source
from PIL import Image


@pytest.fixture()
def folder(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "imgs"
    (root / "sub").mkdir(parents=True)
    images = {}
    for name in ("b.PNG", "a.jpg", "sub/c.Jpeg", "sub/d.webp"):
        array = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
        kwargs = {"lossless": True} if name.endswith("webp") else {}
        Image.fromarray(array).save(root / name, **kwargs)
        images[name] = array
    (root / "notes.txt").write_text("not an image")
    return root


def test_directories_are_recursive_case_insensitive_and_sorted(folder):
    source = resolve_source(str(folder))
    assert isinstance(source, ImageFiles)
    assert [p[len(str(folder)) + 1 :] for p in source.paths] == ["a.jpg", "b.PNG", "sub/c.Jpeg", "sub/d.webp"]


def test_lists_keep_their_order_and_globs_are_sorted(folder):
    listed = resolve_source([folder / "sub" / "d.webp", folder / "a.jpg"])
    assert [p.rsplit("/", 1)[1] for p in listed.paths] == ["d.webp", "a.jpg"]
    globbed = resolve_source(str(folder / "**" / "*.*"))
    assert len(globbed.paths) == 4 and globbed.paths == sorted(globbed.paths)


def test_zip_archive_gives_the_same_features_as_the_files(folder, tmp_path, tiny):
    _, weights = tiny
    archive = tmp_path / "imgs.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                z.write(path, path.relative_to(folder).as_posix())
    source = resolve_source(str(archive))
    assert isinstance(source, ZipImages) and [m.filename for m in source.members] == [
        "a.jpg",
        "b.PNG",
        "sub/c.Jpeg",
        "sub/d.webp",
    ]
    from_zip = fidrs.features(str(archive), backbone="tiny", weights=weights)
    from_disk = fidrs.features(str(folder), backbone="tiny", weights=weights)
    np.testing.assert_array_equal(from_zip, from_disk)


def test_bad_zip_member_is_named_with_its_archive(tmp_path, tiny):
    _, weights = tiny
    archive = tmp_path / "bad.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("ok.png", _png_bytes())
        z.writestr("broken.png", b"\x89PNG\r\n\x1a\nxx")
    with pytest.raises(fidrs.BadImagesError) as info:
        fidrs.features(str(archive), backbone="tiny", weights=weights)
    assert info.value.failures[0][0] == f"{archive}:broken.png"


def _png_bytes() -> bytes:
    import io

    buf = io.BytesIO()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def test_adm_reference_batch_images_and_stats(tmp_path, tiny):
    _, weights = tiny
    images = np.random.default_rng(1).integers(0, 256, (3, 40, 40, 3), dtype=np.uint8)
    np.savez(tmp_path / "ref_batch.npz", arr_0=images)
    source = resolve_source(str(tmp_path / "ref_batch.npz"))  # its images are read on demand, not loaded here
    assert isinstance(source, StatsFile) and source.reference.images.shape == (3, 40, 40, 3) and len(source) == 3
    np.testing.assert_array_equal(
        fidrs.features(str(tmp_path / "ref_batch.npz"), backbone="tiny", weights=weights),
        fidrs.features(images, backbone="tiny", weights=weights),
    )
    np.savez(tmp_path / "ref_stats.npz", mu=np.zeros(2048), sigma=np.eye(2048))
    assert isinstance(resolve_source(str(tmp_path / "ref_stats.npz")), StatsFile)
    np.savez(tmp_path / "odd.npz", arr_0=np.zeros((2, 3)))
    with pytest.raises(fidrs.InvalidInputError, match="arr_0"):
        resolve_source(str(tmp_path / "odd.npz"))


def test_wrong_array_inputs_are_refused():
    with pytest.raises(fidrs.InvalidInputError, match="uint8"):
        resolve_source(np.zeros((2, 8, 8, 3), dtype=np.float32))
    with pytest.raises(fidrs.EmptyInputError):
        resolve_source(np.zeros((0, 8, 8, 3), dtype=np.uint8))
    with pytest.raises(fidrs.EmptyInputError):
        resolve_source([])
