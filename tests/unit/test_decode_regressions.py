"""Issue 29, items 1-10: each silently wrong number found in the decoders, now Pillow's pixels or Pillow's
refusal. Every test builds its file (tests/pillow_corpus.py), decodes it with Pillow's
`Image.open(p).convert("RGB")` and with fidrs, and asserts exact equality (tolerance 0: the promise is
Pillow's pixels) or the refusal and its reason."""

from __future__ import annotations

import struct
import zlib

import fidrs
import numpy as np
import pytest
from fidrs import _fidrs
from PIL import Image
from pillow_corpus import _animated_webp, _bmp, _chunk, _gif, _image, _rows, _save, _strip_app14, _tiff, corpus


def _write(tmp_path, name: str, data: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def _pillow(path: str) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def _assert_pillow_pixels(path: str) -> np.ndarray:
    ours, theirs = _fidrs.decode_image(path), _pillow(path)
    assert ours.shape == theirs.shape
    np.testing.assert_array_equal(ours, theirs)
    return ours


def _assert_both_refuse(path: str, reason: str) -> None:
    with pytest.raises(Exception):  # noqa: B017, PT011 - Pillow's own exception types vary by plugin
        _pillow(path)
    with pytest.raises(fidrs.DecodeError, match=reason) as info:
        _fidrs.decode_image(path)
    assert path in str(info.value)


@pytest.fixture
def rng():
    return np.random.default_rng(2029)


def test_1_cmyk_jpeg_without_adobe_marker_is_read_with_adobe_polarity(tmp_path, rng):
    cmyk = _save(Image.fromarray(_image(rng, 33, 21)).convert("CMYK"), "JPEG", quality=90)
    stripped = _strip_app14(cmyk)
    assert b"Adobe" in cmyk and b"Adobe" not in stripped
    with_marker = _assert_pillow_pixels(_write(tmp_path, "adobe.jpg", cmyk))
    without = _assert_pillow_pixels(_write(tmp_path, "plain.jpg", stripped))
    np.testing.assert_array_equal(with_marker, without)  # Pillow assumes Adobe polarity either way


@pytest.mark.parametrize("transparency", [None, 7])
def test_2_gif_first_frame_smaller_than_the_screen(tmp_path, rng, transparency):
    palette = bytes(rng.integers(0, 256, 768).astype(np.uint8))
    indices = [int(v) for v in rng.integers(0, 256, 15)]
    data = _gif((12, 8), (3, 2, 5, 3), indices, global_palette=palette, transparency=transparency, background=9)
    ours = _assert_pillow_pixels(_write(tmp_path, "small.gif", data))
    # Outside the frame: the transparent index's colour if there is one, else index 0 (never the background).
    fill = transparency or 0
    assert (ours[0, 0] == np.frombuffer(palette[3 * fill : 3 * fill + 3], np.uint8)).all()


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("compression", ["raw", "tiff_lzw", "jpeg"])
def test_3_tiff_orientation_is_applied_as_pillow_applies_it(tmp_path, rng, orientation, compression):
    rgb = Image.fromarray(_image(rng, 19, 11))
    path = _write(tmp_path, "o.tif", _save(rgb, "TIFF", compression=compression, tiffinfo={274: orientation}))
    ours = _assert_pillow_pixels(path)
    assert ours.shape[:2] == ((19, 11) if orientation >= 5 else (11, 19))


def test_3_tiff_orientation_pillow_scrambles_is_refused_by_name(tmp_path, rng):
    """Opened by path, Pillow memory-maps a one-strip uncompressed "L" TIFF with the rotated width."""
    grey = Image.fromarray(_image(rng, 19, 11)).convert("L")
    path = _write(tmp_path, "mapped.tif", _save(grey, "TIFF", tiffinfo={274: 6}))
    with pytest.raises(fidrs.DecodeError, match="Orientation 6 .* scrambles them") as info:
        _fidrs.decode_image(path)
    assert path in str(info.value)


@pytest.mark.parametrize("bits", [8, 16])
def test_4_tiff_associated_alpha_is_unpremultiplied(tmp_path, rng, bits):
    w, h = 9, 7
    if bits == 8:
        a = _image(rng, w, h, 4)
        a[0, :3, 3] = [0, 1, 255]
        data = a.tobytes()
    else:
        a = rng.integers(0, 65536, (h, w, 4)).astype("<u2")
        data = a.tobytes()
    tags = {258: (3, [bits] * 4), 277: (3, [4]), 262: (3, [2]), 338: (3, [1])}
    ours = _assert_pillow_pixels(_write(tmp_path, "premultiplied.tif", _tiff(w, h, tags, data)))
    if bits == 8:
        assert (ours[0, 0] == 0).all()  # alpha 0: Pillow's RGBa unpacker gives black


def test_5_rle_bmp_delta_and_end_of_line_skip_to_palette_index_0(tmp_path, rng):
    w, h = 8, 4
    palette = bytes(rng.integers(0, 256, 1024).astype(np.uint8))
    rle = b"\x02\x05\x00\x00"  # row 0: two pixels of index 5, end of line
    rle += b"\x00\x02\x03\x01" + b"\x03\x09\x00\x00"  # delta 3 right 1 up, then 3 of index 9, end of line
    rle += b"\x08\x01\x08\x02" + b"\x00\x01"  # two full rows, end of bitmap
    ours = _assert_pillow_pixels(_write(tmp_path, "rle.bmp", _bmp(w, h, 8, rle, compression=1, palette=palette)))
    index0 = np.frombuffer(palette[2::-1], np.uint8)  # BGRX entry 0 as RGB
    assert (ours[h - 1, 2] == index0).all()  # bottom row (first in the file), after its end of line


def test_6_16_bit_bmp_scales_by_truncation(tmp_path):
    values = np.arange(32, dtype=np.uint16)[None, :]  # every 5-bit level in blue
    path = _write(tmp_path, "555.bmp", _bmp(32, 1, 16, _rows(values, 16)))
    ours = _assert_pillow_pixels(path)
    np.testing.assert_array_equal(ours[0, :, 2], np.arange(32) * 255 // 31)


@pytest.mark.parametrize("compression", ["raw", "tiff_lzw", "packbits"])
def test_7_cmyk_tiff_uses_pillows_cmyk2rgb(tmp_path, rng, compression):
    cmyk = Image.fromarray(_image(rng, 40, 30, 4), "CMYK")
    _assert_pillow_pixels(_write(tmp_path, "cmyk.tif", _save(cmyk, "TIFF", compression=compression)))


@pytest.mark.parametrize("lossless", [True, False])
def test_8_animated_webp_first_frame_not_covering_the_canvas(tmp_path, rng, lossless):
    frame = Image.fromarray(_image(rng, 6, 4, 4), "RGBA")
    still = _save(frame, "WEBP", lossless=True, exact=True) if lossless else _save(frame, "WEBP", quality=80)
    data = _animated_webp((14, 10), [(4, 2, still), (0, 0, still)], background=(255, 0, 0, 255))
    ours = _assert_pillow_pixels(_write(tmp_path, "anim.webp", data))
    assert (ours[0, 0] == 0).all()  # libwebp's canvas starts transparent black, whatever the background


@pytest.mark.parametrize("quality", [50, 95])
def test_9_jpeg_compressed_tiff_is_decoded_by_libjpeg_turbo(tmp_path, rng, quality):
    rgb = Image.fromarray(_image(rng, 61, 47))
    _assert_pillow_pixels(_write(tmp_path, "jpeg.tif", _save(rgb, "TIFF", compression="jpeg", quality=quality)))


def test_9_no_zune_jpeg_in_the_build():
    """JPEG strips must never reach zune-jpeg: the tiff crate is built without its `jpeg` feature."""
    from pathlib import Path

    lock = (Path(__file__).parents[2] / "Cargo.lock").read_text()
    assert 'name = "zune-jpeg"' not in lock


def _named(name: str) -> bytes:
    return next(v.data for v in corpus() if v.name == name)


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("bmp/rle8_early_end_of_bitmap.bmp", "not enough image data"),
        ("bmp/rle4_early_end.bmp", "not enough image data"),
        ("bmp/16bit_bitfields_444_h40.bmp", "unsupported BMP bitfields layout"),
        ("bmp/32bit_bitfields_rejected_10bit.bmp", "unsupported BMP bitfields layout"),
        ("bmp/2bit.bmp", "unsupported BMP pixel depth"),
        ("bmp/palette_300_colours.bmp", "invalid palette size"),
        ("png/bad_crc_text_before.png", "bad checksum in the tEXt chunk"),
        ("png/bad_crc_private_before.png", "bad checksum in the prVt chunk"),
        ("png/bad_adler.png", "corrupt"),
        ("png/short_gama.png", "truncated gAMA"),
        ("tiff/float_rgb_le.tif", "unknown pixel mode"),
        ("tiff/la_associated.tif", "premultiplied grey"),
    ],
)
def test_10_files_pillow_refuses_are_refused(tmp_path, name, reason):
    _assert_both_refuse(_write(tmp_path, name.replace("/", "_"), _named(name)), reason)


def test_10_bad_adler_in_its_own_idat_chunk_gets_pillows_verdict(tmp_path):
    """Pillow stops reading once the image is complete, so an Adler-32 alone in the last IDAT chunk is never
    checked and the (intact) pixels are Pillow's; fidrs stops there too."""
    w, h = 5, 3
    z = zlib.compress(b"".join([b"\0" + bytes(range(15))] * h))
    z = z[:-1] + bytes([z[-1] ^ 0xFF])
    head = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
    data = head + _chunk(b"IDAT", z[:-4]) + _chunk(b"IDAT", z[-4:]) + _chunk(b"IEND", b"")
    path = _write(tmp_path, "adler.png", data)
    _assert_pillow_pixels(path)
