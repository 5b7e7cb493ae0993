"""Decoding gives Pillow's `Image.open(p).convert("RGB")` pixels; bad files give named reasons."""

from __future__ import annotations

import struct
import zlib

import fidrs
import numpy as np
import pytest
from conftest import DATA, require_shared
from fidrs import _fidrs
from fidrs.backbones import preprocessing
from PIL import Image


def pillow_rgb(path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


@pytest.mark.slow  # every shared JPEG (6,400) through both decoders
def test_every_shared_jpeg_is_pixel_identical_to_pillow():
    require_shared()
    files = sorted(DATA.rglob("*.jpg"))
    assert len(files) == 6463
    mismatched_pixels = 0
    for f in files:
        ours, theirs = _fidrs.decode_image(str(f)), pillow_rgb(f)
        assert ours.shape == theirs.shape, f
        mismatched_pixels += int(np.any(ours != theirs, axis=-1).sum())
    assert mismatched_pixels == 0


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    """A colourful, textured 61×47 test image (odd sizes exercise edge handling)."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:47, 0:61]
    base = np.stack([x * 4, y * 5, (x + y) * 2], axis=-1).astype(np.int32)
    return np.clip(base + rng.integers(-20, 20, base.shape), 0, 255).astype(np.uint8)


def _save(tmp_path, image: Image.Image, name: str, **kwargs) -> str:
    path = tmp_path / name
    image.save(path, **kwargs)
    return str(path)


def _cases(photo: np.ndarray):
    rgb = Image.fromarray(photo)
    rgba = Image.fromarray(np.dstack([photo, photo[..., :1]]), "RGBA")
    gray = rgb.convert("L")
    palette = rgb.quantize(64)
    palette_transparent = palette.copy()
    palette_transparent.info["transparency"] = 3
    yield "rgb.png", rgb, {}
    yield "rgba.png", rgba, {}
    yield "l.png", gray, {}
    yield "la.png", gray.convert("LA"), {}
    yield "p.png", palette, {}
    yield "p_transparent.png", palette_transparent, {"transparency": 3}
    yield "rgb.bmp", rgb, {}
    yield "rgb.tiff", rgb, {}
    yield "rgba.tiff", rgba, {}
    yield "rgb.webp", rgb, {"lossless": True}
    yield "p.gif", palette, {}
    yield "color.JPG", rgb, {"quality": 90}
    yield "color420.jpeg", rgb, {"quality": 75, "subsampling": 2}
    yield "color444.jpg", rgb, {"quality": 95, "subsampling": 0}
    yield "gray.jpg", gray, {"quality": 80}
    yield "progressive.jpg", rgb, {"quality": 85, "progressive": True}


def test_formats_and_modes_match_pillow(tmp_path, photo):
    for name, image, kwargs in _cases(photo):
        path = _save(tmp_path, image, name, **kwargs)
        ours, theirs = _fidrs.decode_image(path), pillow_rgb(path)
        assert ours.shape == theirs.shape, name
        assert np.array_equal(ours, theirs), f"{name}: {np.sum(ours != theirs)} values differ"


def test_cmyk_jpeg_is_pixel_identical_to_pillow(tmp_path, photo):
    path = _save(tmp_path, Image.fromarray(photo).convert("CMYK"), "cmyk.jpg", quality=95)
    np.testing.assert_array_equal(_fidrs.decode_image(path), pillow_rgb(path))


def test_16_bit_grey_png_is_clipped_as_pillow_does(tmp_path):
    """Pillow reads 16-bit grey as "I;16" and `convert("RGB")` clips it to 255 (`I16_RGB`): most such images
    turn white, and pytorch-fid scores them so. fidrs gives the same pixels."""
    values = np.array([[0, 255, 256, 32768, 65535]], dtype=np.uint16)
    path = str(tmp_path / "deep.png")
    Image.fromarray(values).save(path)
    ours = _fidrs.decode_image(path)
    np.testing.assert_array_equal(ours[..., 0], np.minimum(values, 255).astype(np.uint8))
    np.testing.assert_array_equal(ours, pillow_rgb(path))


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_bomb(width: int, height: int) -> bytes:
    """A tiny PNG that declares a huge image: a zlib stream of zeros that would inflate to width·height·3."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * (1 << 20), 9)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def test_bad_files_raise_decode_errors_with_reasons(tmp_path, photo):
    truncated = tmp_path / "truncated.jpg"
    full = tmp_path / "full.jpg"
    Image.fromarray(photo).save(full, quality=90)
    truncated.write_bytes(full.read_bytes()[:400])
    text = tmp_path / "notes.png"
    text.write_text("this is not an image")
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(_png_bomb(100_000, 100_000))
    cases = {
        truncated: "truncated|corrupt",
        text: "not an image",
        empty: "empty file",
        bomb: "too large.*10000000000 pixels",
        tmp_path / "missing.png": "cannot read file: no such file",
    }
    for path, reason in cases.items():
        with pytest.raises(fidrs.DecodeError, match=reason) as info:
            _fidrs.decode_image(str(path))
        assert str(path) in str(info.value)


def test_links_that_lead_nowhere_are_named_in_words(tmp_path):
    """A loop of symbolic links and a link to nothing: each reason in words, without Rust's "(os error N)"."""
    (tmp_path / "loop_a.png").symlink_to("loop_b.png")
    (tmp_path / "loop_b.png").symlink_to("loop_a.png")
    (tmp_path / "dangling.png").symlink_to("gone.png")
    cases = {
        "loop_a.png": "cannot read file: a loop of symbolic links",
        "dangling.png": "cannot read file: no such file \\(or a symbolic link to nothing\\)",
    }
    for name, reason in cases.items():
        with pytest.raises(fidrs.DecodeError, match=reason) as info:
            _fidrs.decode_image(str(tmp_path / name))
        assert "os error" not in str(info.value)
    # Any other system error: its own words, the suffix gone (a regular file used as a folder: ENOTDIR).
    (tmp_path / "plain.png").write_bytes(b"\x89PNG")
    with pytest.raises(fidrs.DecodeError, match="cannot read file: Not a directory$"):
        _fidrs.decode_image(str(tmp_path / "plain.png" / "inner.png"))


def test_pixel_limit_is_configurable(tmp_path, photo):
    path = _save(tmp_path, Image.fromarray(photo), "small.png")
    assert _fidrs.decode_image(path, max_pixels=61 * 47).shape == (47, 61, 3)
    with pytest.raises(fidrs.DecodeError, match="too large"):
        _fidrs.decode_image(path, max_pixels=61 * 47 - 1)


def test_batch_loader_reports_failures_by_index_and_keeps_order(tmp_path, photo):
    good = _save(tmp_path, Image.fromarray(photo), "good.png")
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    batch, ok, failures, _pixels = _fidrs.load_images([good, str(bad), good], preprocessing())
    assert batch.shape == (2, 3, 299, 299) and ok == [0, 2]
    assert len(failures) == 1 and failures[0][0] == 1
    np.testing.assert_array_equal(batch[0], batch[1])


# Found by cargo fuzz: a 161-byte GIF whose 5×6 logical screen passes the pixel check while its frame
# descriptor claims a frame needing gigabytes. It must fail (or decode) without a huge allocation.
FUZZ_GIF_OOM = bytes.fromhex(
    "47494638376105000600840000d9cfebd7d982d0b090edbf56f8bd1060ef4cbabf7f7fb2ed59aae951de2c1df0424dc7db45b8e840a67913b6270fa321dca1e79a82f85f82c24c9b453d7d0acd4ea9d04e1c80717b787a325f49c08f07e8012b8b3b043b3700470000000000002c000000fd06fffaff0008240025007410802a830a141438e0900083288506080e5c980047000000002e002ce60000000005003b"
)


def test_gif_frame_larger_than_its_screen_cannot_exhaust_memory():
    import resource

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    _batch, ok, failures, _pixels = _fidrs.load_encoded([FUZZ_GIF_OOM], preprocessing(), max_pixels=1 << 20)
    assert ok == [] and len(failures) == 1
    assert (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) < 512 * 1024  # KiB: < 512 MiB
