"""A deterministic corpus of every image-format variant that Pillow and fidrs' decoders meet, for the
differential test (tests/unit/test_decode_pillow_differential.py) and the fuzz seeds (fuzz/).

Each entry is `Variant(name, data, expect)`: written by Pillow where Pillow can write the variant, by hand
(`struct`, `zlib`) where it cannot (RLE and bit-field BMPs, CMYK JPEG without its Adobe marker, GIFs whose
first frame is smaller than the screen, 16-bit and premultiplied TIFFs, animated WebPs whose first frame
does not cover the canvas, …). `expect` says what fidrs must do:

- "pillow": give Pillow's verdict — the same pixels where Pillow decodes, a refusal where it refuses;
- "refuse": refuse (fidrs' deliberate refusals of variants Pillow reads, listed in the README), whatever
  Pillow does.

`corpus(seed)` is a pure function of the seed: the same bytes every run.
"""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class Variant:
    name: str
    data: bytes
    expect: str = "pillow"


def _image(rng: np.random.Generator, w: int, h: int, channels: int = 3) -> np.ndarray:
    """Smooth gradients plus noise: like a photo, so lossy codecs meet every kind of block."""
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([x * 255 / max(w - 1, 1), y * 255 / max(h - 1, 1), (x + y) * 127 / max(w + h - 2, 1)], -1)
    base = np.concatenate([base, (base[..., :1] * 0 + 255 - base[..., :1])], -1)[..., :channels]
    return np.clip(base + rng.integers(-40, 40, base.shape), 0, 255).astype(np.uint8)


def _save(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


# ---------------------------------------------------------------- JPEG


def _strip_app14(jpeg: bytes) -> bytes:
    """Remove the Adobe APP14 segment: a CMYK JPEG as some writers store it."""
    out, i = bytearray(jpeg[:2]), 2
    while i < len(jpeg) and jpeg[i] == 0xFF and jpeg[i + 1] != 0xDA:
        length = struct.unpack(">H", jpeg[i + 2 : i + 4])[0]
        if not (jpeg[i + 1] == 0xEE and jpeg[i + 4 : i + 9] == b"Adobe"):
            out += jpeg[i : i + 2 + length]
        i += 2 + length
    return bytes(out + jpeg[i:])


def _exif_orientation(value: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = value
    return exif.tobytes()


def jpeg_variants(rng: np.random.Generator) -> list[Variant]:
    out = []
    for w, h in [(1, 1), (17, 9), (40, 31)]:
        rgb = Image.fromarray(_image(rng, w, h))
        for sub in (0, 1, 2):
            out.append(Variant(f"jpeg/rgb_{w}x{h}_sub{sub}.jpg", _save(rgb, "JPEG", quality=85, subsampling=sub)))
        out.append(Variant(f"jpeg/grey_{w}x{h}.jpg", _save(rgb.convert("L"), "JPEG", quality=80)))
        out.append(Variant(f"jpeg/progressive_{w}x{h}.jpg", _save(rgb, "JPEG", progressive=True)))
        out.append(Variant(f"jpeg/optimized_{w}x{h}.jpg", _save(rgb, "JPEG", optimize=True, quality=60)))
        cmyk = _save(rgb.convert("CMYK"), "JPEG", quality=90)
        out.append(Variant(f"jpeg/cmyk_adobe_{w}x{h}.jpg", cmyk))
        out.append(Variant(f"jpeg/cmyk_no_adobe_{w}x{h}.jpg", _strip_app14(cmyk)))
    rgb = Image.fromarray(_image(rng, 23, 15))
    for o in (3, 6, 8):  # Pillow does not rotate JPEGs on load
        out.append(Variant(f"jpeg/exif_orientation{o}.jpg", _save(rgb, "JPEG", exif=_exif_orientation(o))))
    out.append(Variant("jpeg/restart_markers.jpg", _save(rgb, "JPEG", restart_marker_blocks=1)))
    out.append(Variant("jpeg/q100.jpg", _save(rgb, "JPEG", quality=100)))
    return out


# ---------------------------------------------------------------- PNG


def _chunk(kind: bytes, data: bytes, crc: int | None = None) -> bytes:
    crc = zlib.crc32(kind + data) if crc is None else crc
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc & 0xFFFFFFFF)


def _png(w, h, depth, colour, rows: list[bytes], chunks=(), after=(), adler_bad=False, idat_crc=None, plte=None):
    """A PNG from filtered-or-not rows (each prefixed by its filter byte)."""
    z = zlib.compress(b"".join(rows))
    if adler_bad:
        z = z[:-1] + bytes([z[-1] ^ 0xFF])
    out = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, colour, 0, 0, 0))
    out += b"".join(chunks)
    if plte is not None:
        out += _chunk(b"PLTE", plte)
    out += _chunk(b"IDAT", z, idat_crc) + b"".join(after) + _chunk(b"IEND", b"")
    return out


def _pack(values: np.ndarray, depth: int) -> list[bytes]:
    """Rows of samples packed at `depth` bits (big-endian for 16), each with filter byte 0."""
    rows = []
    for row in values:
        if depth == 16:
            rows.append(b"\0" + row.astype(">u2").tobytes())
        elif depth == 8:
            rows.append(b"\0" + row.astype(np.uint8).tobytes())
        else:
            bits = np.unpackbits(row.astype(np.uint8)[:, None], axis=1)[:, 8 - depth :].reshape(-1)
            rows.append(b"\0" + np.packbits(bits).tobytes())
    return rows


def png_variants(rng: np.random.Generator) -> list[Variant]:
    out = []
    w, h = 13, 7
    px = _image(rng, w, h, 4)
    rgb = Image.fromarray(px[..., :3])
    pillow = {
        "rgb": rgb,
        "rgba": Image.fromarray(px, "RGBA"),
        "l": rgb.convert("L"),
        "la": rgb.convert("LA"),
        "1": rgb.convert("1"),
        "p": rgb.quantize(40),
        "i16": Image.fromarray((px[..., 0].astype(np.uint16) * 3).astype(np.uint16)),
    }
    for name, im in pillow.items():
        out.append(Variant(f"png/{name}.png", _save(im, "PNG")))
    p = rgb.quantize(12)
    for bits in (1, 2, 4):
        q = rgb.quantize(1 << bits)
        out.append(Variant(f"png/p{bits}bit.png", _save(q, "PNG", bits=bits)))
    out.append(Variant("png/p_transparency_index.png", _save(p, "PNG", transparency=3)))
    out.append(Variant("png/p_transparency_bytes.png", _save(p, "PNG", transparency=bytes(range(0, 240, 20)))))
    out.append(Variant("png/l_transparency.png", _save(rgb.convert("L"), "PNG", transparency=7)))
    out.append(Variant("png/rgb_transparency.png", _save(rgb, "PNG", transparency=(1, 2, 3))))
    # 16-bit and sub-byte samples Pillow cannot write.
    v16 = rng.integers(0, 65536, (h, w, 4)).astype(np.uint16)
    v16[0, :4, 0] = [0, 255, 256, 65535]
    for colour, ch in [(0, 1), (2, 3), (4, 2), (6, 4)]:
        data = v16[..., :ch].reshape(h, -1)
        out.append(Variant(f"png/depth16_colour{colour}.png", _png(w, h, 16, colour, _pack(data, 16))))
    for depth in (1, 2, 4):
        grey = rng.integers(0, 1 << depth, (h, w))
        out.append(Variant(f"png/grey{depth}bit.png", _png(w, h, depth, 0, _pack(grey, depth))))
    idx = rng.integers(0, 256, (h, w))
    rows = _pack(idx, 8)
    plte = bytes(rng.integers(0, 256, 3 * 6).astype(np.uint8))
    out.append(Variant("png/palette_shorter_than_indices.png", _png(w, h, 8, 3, rows, plte=plte)))
    out.append(Variant("png/palette_missing.png", _png(w, h, 8, 3, rows)))
    rgb_rows = _pack(px[..., :3].reshape(h, -1), 8)
    # Filters: each row with another filter type (sub, up, average, paeth on zero data reads as raw).
    filtered = [bytes([i % 5]) + r[1:] for i, r in enumerate(rgb_rows)]
    out.append(Variant("png/filters_all_types.png", _png(w, h, 8, 2, filtered)))
    out.append(Variant("png/filter_type_5.png", _png(w, h, 8, 2, [b"\x05" + rgb_rows[0][1:]] + rgb_rows[1:])))
    # Checksums: Pillow checks every chunk's CRC before the image data and the zlib Adler-32, not IDAT CRCs.
    text = _chunk(b"tEXt", b"key\0value")
    out.append(Variant("png/text_before.png", _png(w, h, 8, 2, rgb_rows, chunks=[text])))
    out.append(Variant("png/text_after.png", _png(w, h, 8, 2, rgb_rows, after=[text])))
    out.append(Variant("png/bad_crc_text_before.png", _png(w, h, 8, 2, rgb_rows, [_chunk(b"tEXt", b"k\0v", 1)])))
    out.append(Variant("png/bad_crc_private_before.png", _png(w, h, 8, 2, rgb_rows, [_chunk(b"prVt", b"x", 1)])))
    out.append(
        Variant("png/bad_crc_gama_before.png", _png(w, h, 8, 2, rgb_rows, [_chunk(b"gAMA", b"\0\0\xb1\x8f", 0)]))
    )
    out.append(Variant("png/bad_crc_text_after.png", _png(w, h, 8, 2, rgb_rows, after=[_chunk(b"tEXt", b"k\0v", 1)])))
    out.append(Variant("png/bad_crc_idat.png", _png(w, h, 8, 2, rgb_rows, idat_crc=0)))
    out.append(Variant("png/bad_adler.png", _png(w, h, 8, 2, rgb_rows, adler_bad=True)))
    out.append(Variant("png/short_gama.png", _png(w, h, 8, 2, rgb_rows, [_chunk(b"gAMA", b"\0\0")])))
    out.append(Variant("png/short_trns_rgb.png", _png(w, h, 8, 2, rgb_rows, [_chunk(b"tRNS", b"\0\1")])))
    out.append(Variant("png/ztxt_bad_method.png", _png(w, h, 8, 2, rgb_rows, [_chunk(b"zTXt", b"k\0\1xx")])))
    out.append(Variant("png/iccp_bad_method.png", _png(w, h, 8, 2, rgb_rows, [_chunk(b"iCCP", b"p\0\1xx")])))
    out.append(
        Variant(
            "png/filter_method_1.png",
            _png(w, h, 8, 2, rgb_rows).replace(b"\x08\x02\x00\x00\x00", b"\x08\x02\x00\x01\x00", 1),
        )
    )
    # Animated PNG: frame 0 is the IDAT image (Pillow writes it as part of the animation).
    frames = [Image.fromarray(_image(rng, w, h)) for _ in range(3)]
    out.append(Variant("png/apng.png", _save(frames[0], "PNG", save_all=True, append_images=frames[1:])))
    out.append(
        Variant(
            "png/apng_default_image.png",
            _save(frames[0], "PNG", save_all=True, append_images=frames[1:], default_image=True),
        )
    )
    return out


# ---------------------------------------------------------------- BMP


def _bmp(
    w,
    h,
    bits,
    pixel_data: bytes,
    *,
    header=40,
    compression=0,
    palette=b"",
    masks=None,
    colors=0,
    top_down=False,
    offset=None,
):
    """A BMP with the given info-header size; `masks` go into the header (≥52 bytes) or after it (40)."""
    if header == 12:
        info = struct.pack("<IHHHH", 12, w, h, 1, bits)
    else:
        info = struct.pack(
            "<IiiHHIIiiII",
            header,
            w,
            -h if top_down else h,
            1,
            bits,
            compression,
            len(pixel_data),
            2835,
            2835,
            colors,
            0,
        )
        extra = b""
        if masks is not None and header >= 52:
            extra = struct.pack("<IIII", *masks)[: 16 if header >= 56 else 12]
        info += extra
        info += b"\0" * (header - len(info))
        if masks is not None and header == 40:
            info += struct.pack("<III", *masks[:3])
    start = 14 + len(info) + len(palette) if offset is None else offset
    head = b"BM" + struct.pack("<IHHI", start + len(pixel_data), 0, 0, start)
    return head + info + palette + pixel_data


def _rows(values: np.ndarray, bits: int) -> bytes:
    """Bottom-up rows packed at `bits` per pixel (values: h×w ints, or h×w×k bytes), padded to 4 bytes."""
    out = b""
    for row in values[::-1]:
        if bits in (1, 4):
            b = np.unpackbits(row.astype(np.uint8)[:, None], axis=1)[:, 8 - bits :].reshape(-1)
            data = np.packbits(b).tobytes()
        elif bits == 16:
            data = row.astype("<u2").tobytes()
        else:
            data = row.astype(np.uint8).tobytes()
        out += data + b"\0" * (-len(data) % 4)
    return out


def bmp_variants(rng: np.random.Generator) -> list[Variant]:
    out = []
    w, h = 11, 6
    px = _image(rng, w, h, 4)
    rgb = Image.fromarray(px[..., :3])
    for name, im in {
        "rgb": rgb,
        "rgba": Image.fromarray(px, "RGBA"),
        "l": rgb.convert("L"),
        "p": rgb.quantize(50),
        "1": rgb.convert("1"),
    }.items():
        out.append(Variant(f"bmp/pillow_{name}.bmp", _save(im, "BMP")))
    palette = bytes(rng.integers(0, 256, 4 * 256).astype(np.uint8))
    idx8 = rng.integers(0, 256, (h, w))
    for header in (12, 40, 52, 56, 64, 108, 124):
        pal = palette if header != 12 else b"".join(palette[i * 4 : i * 4 + 3] for i in range(256))
        out.append(Variant(f"bmp/header{header}_8bit.bmp", _bmp(w, h, 8, _rows(idx8, 8), header=header, palette=pal)))
        bgr = px[..., 2::-1].reshape(h, -1)
        out.append(Variant(f"bmp/header{header}_24bit.bmp", _bmp(w, h, 24, _rows(bgr, 8), header=header)))
    out.append(
        Variant("bmp/top_down_24bit.bmp", _bmp(w, h, 24, _rows(px[..., 2::-1].reshape(h, -1)[::-1], 8), top_down=True))
    )
    out.append(
        Variant("bmp/palette_16_of_256.bmp", _bmp(w, h, 8, _rows(idx8, 8), palette=palette[: 16 * 4], colors=16))
    )
    out.append(
        Variant(
            "bmp/palette_300_colours.bmp",
            _bmp(w, h, 8, _rows(idx8, 8), palette=palette + palette[: 44 * 4], colors=300),
        )
    )
    grey = b"".join(bytes([i, i, i, 0]) for i in range(256))
    out.append(Variant("bmp/grey_palette.bmp", _bmp(w, h, 8, _rows(idx8, 8), palette=grey)))
    bw = b"\0\0\0\0\xff\xff\xff\0"
    idx1 = rng.integers(0, 2, (h, w))
    out.append(Variant("bmp/1bit_black_white.bmp", _bmp(w, h, 1, _rows(idx1, 1), palette=bw)))
    out.append(Variant("bmp/1bit_colour.bmp", _bmp(w, h, 1, _rows(idx1, 1), palette=palette[:8])))
    idx4 = rng.integers(0, 16, (h, w))
    out.append(Variant("bmp/4bit.bmp", _bmp(w, h, 4, _rows(idx4, 4), palette=palette[:64])))
    out.append(Variant("bmp/2bit.bmp", _bmp(w, h, 2, _rows(idx4 % 4, 8)[: h * 4], palette=palette[:16])))
    v16 = rng.integers(0, 65536, (h, w))
    out.append(Variant("bmp/16bit_555_raw.bmp", _bmp(w, h, 16, _rows(v16, 16))))
    for name, masks in {
        "565": (0xF800, 0x7E0, 0x1F, 0),
        "555": (0x7C00, 0x3E0, 0x1F, 0),
        "444": (0xF00, 0xF0, 0xF, 0),
    }.items():
        for header in (40, 56):
            out.append(
                Variant(
                    f"bmp/16bit_bitfields_{name}_h{header}.bmp",
                    _bmp(w, h, 16, _rows(v16, 16), header=header, compression=3, masks=masks),
                )
            )
    v32 = rng.integers(0, 256, (h, w * 4))
    layouts = {
        "bgrx": (0xFF0000, 0xFF00, 0xFF, 0),
        "xbgr": (0xFF000000, 0xFF0000, 0xFF00, 0),
        "bgxr": (0xFF000000, 0xFF00, 0xFF, 0),
        "abgr": (0xFF000000, 0xFF0000, 0xFF00, 0xFF),
        "rgba": (0xFF, 0xFF00, 0xFF0000, 0xFF000000),
        "bgra": (0xFF0000, 0xFF00, 0xFF, 0xFF000000),
        "bgar": (0xFF000000, 0xFF00, 0xFF, 0xFF0000),
        "zero": (0, 0, 0, 0),
        "rejected_10bit": (0x3FF00000, 0xFFC00, 0x3FF, 0),
    }
    for name, masks in layouts.items():
        out.append(
            Variant(
                f"bmp/32bit_bitfields_{name}.bmp", _bmp(w, h, 32, _rows(v32, 8), header=56, compression=3, masks=masks)
            )
        )
    out.append(Variant("bmp/32bit_raw.bmp", _bmp(w, h, 32, _rows(v32, 8))))
    out.append(
        Variant(
            "bmp/24bit_bitfields.bmp",
            _bmp(
                w,
                h,
                24,
                _rows(px[..., :3].reshape(h, -1), 8),
                header=40,
                compression=3,
                masks=(0xFF0000, 0xFF00, 0xFF, 0),
            ),
        )
    )
    out.append(Variant("bmp/compression_jpeg.bmp", _bmp(w, h, 24, _rows(px[..., :3].reshape(h, -1), 8), compression=4)))
    data24 = _rows(px[..., 2::-1].reshape(h, -1), 8)
    out.append(Variant("bmp/last_row_padding_missing.bmp", _bmp(w, h, 24, data24[:-3])))
    out.append(Variant("bmp/last_row_cut.bmp", _bmp(w, h, 24, data24[:-4])))
    # RLE8 / RLE4 streams with every opcode: runs, absolute runs, end of line, delta, end of bitmap.
    pal16 = palette[:64]
    rle8 = bytearray()
    for y in range(h):
        if y == 2:
            rle8 += b"\x03\x07\x00\x00"  # 3 pixels then end of line: the rest of the row is index 0
            continue
        if y == 3:
            rle8 += b"\x02\x05\x00\x02\x03\x01\x04\x09\x00\x00"  # run, delta (3 right, 1 up), run, end of line
            continue
        rle8 += b"\x00\x05" + bytes([1, 2, 3, 4, 5]) + b"\x00"  # absolute run of 5, padded
        rle8 += bytes([w - 5, 200]) + b"\x00\x00"
    out.append(Variant("bmp/rle8_full.bmp", _bmp(w, h, 8, bytes(rle8) + b"\x00\x01", compression=1, palette=palette)))
    out.append(
        Variant(
            "bmp/rle8_early_end_of_bitmap.bmp",
            _bmp(w, h, 8, bytes(rle8[:20]) + b"\x00\x01", compression=1, palette=palette),
        )
    )
    out.append(
        Variant(
            "bmp/rle8_delta_to_end.bmp",
            _bmp(w, h, 8, b"\x04\x09\x00\x02\x7f\x7f\x00\x01", compression=1, palette=palette),
        )
    )
    out.append(Variant("bmp/rle8_data_ends.bmp", _bmp(w, h, 8, bytes(rle8[:-6]), compression=1, palette=palette)))
    out.append(
        Variant(
            "bmp/rle8_run_past_row.bmp",
            _bmp(w, h, 8, bytes([w + 5, 9]) * h * 2 + b"\x00\x01", compression=1, palette=palette),
        )
    )
    out.append(
        Variant("bmp/rle8_grey_palette.bmp", _bmp(w, h, 8, bytes(rle8) + b"\x00\x01", compression=1, palette=grey))
    )
    out.append(
        Variant(
            "bmp/rle8_black_white_palette.bmp",
            _bmp(w, h, 8, bytes(rle8) + b"\x00\x01", compression=1, palette=bw, colors=2),
        )
    )
    rle4 = bytearray()
    for y in range(h):
        if y == 1:
            rle4 += b"\x03\x12\x00\x00"
            continue
        if y == 4:
            rle4 += b"\x00\x02\x01\x02\x04\x35\x00\x00"  # delta then a run
            continue
        rle4 += b"\x00\x05\x12\x34\x50\x00" + bytes([w - 5, 0xAB]) + b"\x00\x00"
    out.append(Variant("bmp/rle4_full.bmp", _bmp(w, h, 4, bytes(rle4) + b"\x00\x01", compression=2, palette=pal16)))
    out.append(
        Variant("bmp/rle4_early_end.bmp", _bmp(w, h, 4, bytes(rle4[:12]) + b"\x00\x01", compression=2, palette=pal16))
    )
    out.append(Variant("bmp/rle8_on_24bit.bmp", _bmp(w, h, 24, bytes(rle8) + b"\x00\x01", compression=1)))
    return out


# ---------------------------------------------------------------- GIF


def _lzw(indices: list[int], min_size: int) -> bytes:
    """GIF LZW without a dictionary: a clear code before every code keeps the code size fixed."""
    clear, end, size = 1 << min_size, (1 << min_size) + 1, min_size + 1
    bits, nbits, out = 0, 0, bytearray()
    for code in [c for i in indices for c in (clear, i)] + [end]:
        bits |= code << nbits
        nbits += size
        while nbits >= 8:
            out.append(bits & 0xFF)
            bits >>= 8
            nbits -= 8
    if nbits:
        out.append(bits)
    return bytes(out)


def _gif(
    screen,
    frame_box,
    indices,
    *,
    global_palette=None,
    local_palette=None,
    transparency=None,
    background=0,
    interlace=False,
    lzw=None,
    min_size=None,
):
    sw, sh = screen
    bits = 7
    flags = 0
    if global_palette is not None:
        bits = max(0, (len(global_palette) // 3 - 1).bit_length() - 1)
        flags = 0x80 | bits
    out = b"GIF89a" + struct.pack("<HHBBB", sw, sh, flags, background, 0)
    if global_palette is not None:
        out += global_palette
    if transparency is not None:
        out += b"!\xf9\x04" + struct.pack("<BHB", 1, 0, transparency) + b"\0"
    x, y, fw, fh = frame_box
    lflags = 0x40 if interlace else 0
    if local_palette is not None:
        lbits = max(0, (len(local_palette) // 3 - 1).bit_length() - 1)
        lflags |= 0x80 | lbits
    out += b"," + struct.pack("<HHHHB", x, y, fw, fh, lflags)
    if local_palette is not None:
        out += local_palette
    min_size = min_size or 8
    data = lzw if lzw is not None else _lzw(indices, min_size)
    out += bytes([min_size])
    for i in range(0, len(data), 255):
        block = data[i : i + 255]
        out += bytes([len(block)]) + block
    return out + b"\0;"


def gif_variants(rng: np.random.Generator) -> list[Variant]:
    out = []
    w, h = 12, 8
    rgb = Image.fromarray(_image(rng, w, h))
    out.append(Variant("gif/pillow_p.gif", _save(rgb.quantize(30), "GIF")))
    out.append(Variant("gif/pillow_l.gif", _save(rgb.convert("L"), "GIF")))
    out.append(Variant("gif/pillow_interlaced.gif", _save(rgb.resize((40, 40)).quantize(60), "GIF", interlace=True)))
    frames = [Image.fromarray(_image(rng, w, h)).quantize(16) for _ in range(3)]
    out.append(Variant("gif/pillow_animated.gif", _save(frames[0], "GIF", save_all=True, append_images=frames[1:])))
    pal = bytes(rng.integers(0, 256, 3 * 256).astype(np.uint8))
    small = [int(v) for v in rng.integers(0, 256, 5 * 3)]
    for tr in (None, 7):
        for bg in (0, 9):
            out.append(
                Variant(
                    f"gif/small_first_frame_t{tr}_bg{bg}.gif",
                    _gif((w, h), (3, 2, 5, 3), small, global_palette=pal, transparency=tr, background=bg),
                )
            )
    out.append(
        Variant(
            "gif/small_frame_local_palette.gif",
            _gif((w, h), (1, 1, 5, 3), small, global_palette=pal, local_palette=pal[::-1]),
        )
    )
    out.append(Variant("gif/frame_beyond_screen.gif", _gif((4, 3), (2, 1, 5, 3), small, global_palette=pal)))
    out.append(Variant("gif/no_palette.gif", _gif((w, h), (2, 2, 5, 3), small)))
    grey_ramp = bytes(i for i in range(256) for _ in range(3))
    out.append(Variant("gif/grey_ramp_palette.gif", _gif((w, h), (0, 0, 5, 3), small, global_palette=grey_ramp)))
    out.append(
        Variant(
            "gif/grey_local_over_colour_global.gif",
            _gif((w, h), (0, 0, 5, 3), small, global_palette=pal, local_palette=grey_ramp),
        )
    )
    four = pal[:12]
    idx = [int(v) for v in rng.integers(0, 4, w * h)]
    out.append(Variant("gif/2bit_palette.gif", _gif((w, h), (0, 0, w, h), idx, global_palette=four, min_size=2)))
    out.append(
        Variant(
            "gif/indices_beyond_palette.gif",
            _gif((w, h), (0, 0, w, h), [int(v) for v in rng.integers(0, 16, w * h)], global_palette=four, min_size=4),
        )
    )
    full = [int(v) for v in rng.integers(0, 256, w * h)]
    out.append(
        Variant("gif/interlaced_crafted.gif", _gif((w, h), (0, 0, w, h), full, global_palette=pal, interlace=True))
    )
    out.append(Variant("gif/lzw_ends_early.gif", _gif((w, h), (0, 0, w, h), full[: w * h // 2], global_palette=pal)))
    return out


# ---------------------------------------------------------------- TIFF


def _tiff(w, h, tags: dict[int, tuple[int, list[int] | bytes]], data: bytes, big_endian=False) -> bytes:
    """A one-strip uncompressed TIFF with the given tags: {tag: (type, values)} (type 3 SHORT, 4 LONG, 7
    UNDEFINED as bytes). Width, length, strip offsets/counts and rows per strip are added."""
    e = ">" if big_endian else "<"
    tags = dict(tags)
    tags.setdefault(256, (4, [w]))
    tags.setdefault(257, (4, [h]))
    tags.setdefault(278, (4, [h]))
    tags[273] = (4, [0])
    tags[279] = (4, [len(data)])
    entries = sorted(tags.items())
    ifd_size = 2 + 12 * len(entries) + 4
    extra_at = 8 + ifd_size
    extras = b""
    size = {3: 2, 4: 4, 7: 1}

    def encode(kind, values):
        if kind == 7:
            return bytes(values)
        return b"".join(struct.pack(e + ("H" if kind == 3 else "I"), v) for v in values)

    data_at = extra_at + sum(
        len(encode(k, v)) + (len(encode(k, v)) & 1) for k, v in tags.values() if len(encode(k, v)) > 4
    )
    tags[273] = (4, [data_at])
    entries = sorted(tags.items())
    ifd = struct.pack(e + "H", len(entries))
    for tag, (kind, values) in entries:
        raw = encode(kind, values)
        count = len(values)
        if len(raw) <= 4:
            ifd += struct.pack(e + "HHI", tag, kind, count) + raw + b"\0" * (4 - len(raw))
        else:
            ifd += struct.pack(e + "HHII", tag, kind, count, extra_at + len(extras))
            extras += raw + b"\0" * (len(raw) & 1)
    ifd += b"\0\0\0\0"
    head = (b"MM\0*" if big_endian else b"II*\0") + struct.pack(e + "I", 8)
    assert len(head + ifd + extras) == data_at, (size,)
    return head + ifd + extras + data


def tiff_variants(rng: np.random.Generator) -> list[Variant]:
    out = []
    w, h = 9, 7
    px = _image(rng, w, h, 4)
    rgb = Image.fromarray(px[..., :3])
    modes = {
        "rgb": rgb,
        "rgba": Image.fromarray(px, "RGBA"),
        "l": rgb.convert("L"),
        "la": rgb.convert("LA"),
        "1": rgb.convert("1"),
        "p": rgb.quantize(20),
        "cmyk": rgb.convert("CMYK"),
        "i16": Image.fromarray((px[..., 0].astype(np.uint16) * 2).astype(np.uint16)),
    }
    for name, im in modes.items():
        for comp in ("raw", "tiff_lzw", "tiff_adobe_deflate", "packbits"):
            out.append(Variant(f"tiff/{name}_{comp}.tif", _save(im, "TIFF", compression=comp)))
    out.append(Variant("tiff/1_group4.tif", _save(modes["1"], "TIFF", compression="group4"), "refuse"))
    big = Image.fromarray(_image(rng, 37, 29))
    for q in (50, 90):
        out.append(Variant(f"tiff/jpeg_rgb_q{q}.tif", _save(big, "TIFF", compression="jpeg", quality=q)))
    out.append(Variant("tiff/jpeg_grey.tif", _save(big.convert("L"), "TIFF", compression="jpeg")))
    out.append(Variant("tiff/jpeg_strips.tif", _save(big, "TIFF", compression="jpeg", strip_size=8 * 37 * 3)))
    out.append(Variant("tiff/lzw_predictor.tif", _save(rgb, "TIFF", compression="tiff_lzw", tiffinfo={317: 2})))
    out.append(
        Variant("tiff/float_grey.tif", _save(Image.fromarray(px[..., 0].astype(np.float32) / 3), "TIFF"), "refuse")
    )
    out.append(
        Variant("tiff/int32_grey.tif", _save(Image.fromarray(px[..., 0].astype(np.int32) * 2), "TIFF"), "refuse")
    )
    for o in range(1, 9):
        out.append(Variant(f"tiff/orientation{o}.tif", _save(rgb, "TIFF", tiffinfo={274: o})))
        out.append(
            Variant(f"tiff/orientation{o}_lzw.tif", _save(rgb, "TIFF", compression="tiff_lzw", tiffinfo={274: o}))
        )
    out.append(Variant("tiff/orientation9.tif", _save(rgb, "TIFF", tiffinfo={274: 9})))
    # Hand-made: layouts Pillow reads but cannot write.
    SPP, BPS, PHOTO, EXTRA, FMT, PLANAR, FILL, CMAP = 277, 258, 262, 338, 339, 284, 266, 320
    a = px.copy()
    a[0, 0, 3], a[0, 1, 3] = 0, 255
    premult = a.copy()
    premult[..., :3] = (a[..., :3].astype(int) * a[..., 3:] // 255).astype(np.uint8)
    out.append(
        Variant(
            "tiff/rgba_associated_alpha.tif",
            _tiff(w, h, {BPS: (3, [8] * 4), SPP: (3, [4]), PHOTO: (3, [2]), EXTRA: (3, [1])}, premult.tobytes()),
        )
    )
    out.append(
        Variant(
            "tiff/rgba_unassociated_alpha.tif",
            _tiff(w, h, {BPS: (3, [8] * 4), SPP: (3, [4]), PHOTO: (3, [2]), EXTRA: (3, [2])}, a.tobytes()),
        )
    )
    out.append(
        Variant(
            "tiff/rgbx.tif",
            _tiff(w, h, {BPS: (3, [8] * 4), SPP: (3, [4]), PHOTO: (3, [2]), EXTRA: (3, [0])}, a.tobytes()),
        )
    )
    out.append(
        Variant(
            "tiff/rgba_no_extrasamples.tif",
            _tiff(w, h, {BPS: (3, [8] * 4), SPP: (3, [4]), PHOTO: (3, [2])}, a.tobytes()),
        )
    )
    la = a[..., [0, 3]].copy()
    la_p = la.copy()
    la_p[..., 0] = (la[..., 0].astype(int) * la[..., 1] // 255).astype(np.uint8)
    out.append(
        Variant(
            "tiff/la_associated.tif",
            _tiff(w, h, {BPS: (3, [8, 8]), SPP: (3, [2]), PHOTO: (3, [1]), EXTRA: (3, [1])}, la_p.tobytes()),
        )
    )
    v16 = rng.integers(0, 65536, (h, w, 4)).astype(np.uint16)
    v16[0, :3, 0] = [0, 255, 256]
    for endian, big_endian in (("le", False), ("be", True)):
        dt = ">u2" if big_endian else "<u2"
        out.append(
            Variant(
                f"tiff/rgb16_{endian}.tif",
                _tiff(
                    w,
                    h,
                    {BPS: (3, [16] * 3), SPP: (3, [3]), PHOTO: (3, [2])},
                    v16[..., :3].astype(dt).tobytes(),
                    big_endian,
                ),
            )
        )
        out.append(
            Variant(
                f"tiff/rgba16_{endian}.tif",
                _tiff(
                    w,
                    h,
                    {BPS: (3, [16] * 4), SPP: (3, [4]), PHOTO: (3, [2]), EXTRA: (3, [2])},
                    v16.astype(dt).tobytes(),
                    big_endian,
                ),
            )
        )
        out.append(
            Variant(
                f"tiff/rgba16_associated_{endian}.tif",
                _tiff(
                    w,
                    h,
                    {BPS: (3, [16] * 4), SPP: (3, [4]), PHOTO: (3, [2]), EXTRA: (3, [1])},
                    v16.astype(dt).tobytes(),
                    big_endian,
                ),
            )
        )
        out.append(
            Variant(
                f"tiff/grey16_{endian}.tif",
                _tiff(
                    w, h, {BPS: (3, [16]), SPP: (3, [1]), PHOTO: (3, [1])}, v16[..., 0].astype(dt).tobytes(), big_endian
                ),
            )
        )
        out.append(
            Variant(
                f"tiff/grey16_min_is_white_{endian}.tif",
                _tiff(
                    w, h, {BPS: (3, [16]), SPP: (3, [1]), PHOTO: (3, [0])}, v16[..., 0].astype(dt).tobytes(), big_endian
                ),
            )
        )
        out.append(
            Variant(
                f"tiff/cmyk16_{endian}.tif",
                _tiff(w, h, {BPS: (3, [16] * 4), SPP: (3, [4]), PHOTO: (3, [5])}, v16.astype(dt).tobytes(), big_endian),
            )
        )
        out.append(
            Variant(
                f"tiff/float_rgb_{endian}.tif",
                _tiff(
                    w,
                    h,
                    {BPS: (3, [32] * 3), SPP: (3, [3]), PHOTO: (3, [2]), FMT: (3, [3] * 3)},
                    rng.random((h, w, 3)).astype(">f4" if big_endian else "<f4").tobytes(),
                    big_endian,
                ),
            )
        )
    grey = px[..., 0]
    for bits in (1, 2, 4, 8):
        vals = rng.integers(0, 1 << bits, (h, w))
        rows = (
            b"".join(
                np.packbits(np.unpackbits(r.astype(np.uint8)[:, None], axis=1)[:, 8 - bits :].reshape(-1)).tobytes()
                for r in vals
            )
            if bits < 8
            else grey.tobytes()
        )
        for photo in (0, 1):
            out.append(
                Variant(
                    f"tiff/grey{bits}_photometric{photo}.tif",
                    _tiff(w, h, {BPS: (3, [bits]), SPP: (3, [1]), PHOTO: (3, [photo])}, rows),
                )
            )
        cmap = list(rng.integers(0, 65536, 3 << bits))
        out.append(
            Variant(
                f"tiff/palette{bits}.tif",
                _tiff(w, h, {BPS: (3, [bits]), SPP: (3, [1]), PHOTO: (3, [3]), CMAP: (3, cmap)}, rows),
            )
        )
    out.append(
        Variant(
            "tiff/cmyk_extra.tif",
            _tiff(
                w,
                h,
                {BPS: (3, [8] * 5), SPP: (3, [5]), PHOTO: (3, [5]), EXTRA: (3, [0])},
                rng.integers(0, 256, (h, w, 5)).astype(np.uint8).tobytes(),
            ),
        )
    )
    out.append(
        Variant(
            "tiff/lab.tif",
            _tiff(w, h, {BPS: (3, [8] * 3), SPP: (3, [3]), PHOTO: (3, [8])}, px[..., :3].tobytes()),
            "refuse",
        )
    )
    out.append(
        Variant(
            "tiff/ycbcr_raw.tif",
            _tiff(w, h, {BPS: (3, [8] * 3), SPP: (3, [3]), PHOTO: (3, [6]), 530: (3, [1, 1])}, px[..., :3].tobytes()),
            "refuse",
        )
    )
    planar = np.ascontiguousarray(px[..., :3].transpose(2, 0, 1)).tobytes()
    out.append(
        Variant(
            "tiff/planar_rgb.tif",
            _tiff(w, h, {BPS: (3, [8] * 3), SPP: (3, [3]), PHOTO: (3, [2]), PLANAR: (3, [2])}, planar),
            "refuse",
        )
    )
    out.append(
        Variant(
            "tiff/fill_order2.tif",
            _tiff(w, h, {BPS: (3, [1]), SPP: (3, [1]), PHOTO: (3, [1]), FILL: (3, [2])}, b"\x5a\x80" * h),
            "refuse",
        )
    )
    out.append(
        Variant(
            "tiff/signed16.tif",
            _tiff(
                w,
                h,
                {BPS: (3, [16]), SPP: (3, [1]), PHOTO: (3, [1]), FMT: (3, [2])},
                v16[..., 0].astype("<u2").tobytes(),
            ),
            "refuse",
        )
    )
    out.append(
        Variant(
            "tiff/grey_with_alpha_extra_on_1_sample.tif",
            _tiff(w, h, {BPS: (3, [8]), SPP: (3, [1]), PHOTO: (3, [1]), EXTRA: (3, [2])}, grey.tobytes()),
        )
    )
    out.append(
        Variant(
            "tiff/strip_cut.tif",
            _tiff(w, h, {BPS: (3, [8] * 3), SPP: (3, [3]), PHOTO: (3, [2])}, px[..., :3].tobytes())[:-5],
        )
    )
    return out


# ---------------------------------------------------------------- WebP


def _riff_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    body, out = data[12:], []
    while len(body) >= 8:
        kind, size = body[:4], struct.unpack("<I", body[4:8])[0]
        out.append((kind, body[8 : 8 + size]))
        body = body[8 + size + (size & 1) :]
    return out


def _riff(kind: bytes, payload: bytes) -> bytes:
    return kind + struct.pack("<I", len(payload)) + payload + b"\0" * (len(payload) & 1)


def _animated_webp(canvas, frames: list[tuple[int, int, bytes]], background=(0, 0, 0, 0)) -> bytes:
    """An animated WebP from still WebP files placed at even (x, y) offsets."""
    cw, ch = canvas
    body = _riff(b"VP8X", bytes([0x12, 0, 0, 0]) + struct.pack("<I", cw - 1)[:3] + struct.pack("<I", ch - 1)[:3])
    body += _riff(b"ANIM", bytes(background) + b"\0\0")
    for x, y, still in frames:
        parts = [(k, p) for k, p in _riff_chunks(still) if k in (b"ALPH", b"VP8 ", b"VP8L")]
        im = Image.open(io.BytesIO(still))
        fw, fh = im.size
        head = (
            struct.pack("<I", x // 2)[:3]
            + struct.pack("<I", y // 2)[:3]
            + struct.pack("<I", fw - 1)[:3]
            + struct.pack("<I", fh - 1)[:3]
        )
        head += struct.pack("<I", 100)[:3] + b"\0"
        body += _riff(b"ANMF", head + b"".join(_riff(k, p) for k, p in parts))
    return b"RIFF" + struct.pack("<I", len(body) + 4) + b"WEBP" + body


def webp_variants(rng: np.random.Generator) -> list[Variant]:
    out = []
    w, h = 14, 10
    px = _image(rng, w, h, 4)
    px[0, :3, 3] = [0, 1, 128]
    rgb, rgba = Image.fromarray(px[..., :3]), Image.fromarray(px, "RGBA")
    out.append(Variant("webp/lossless_rgb.webp", _save(rgb, "WEBP", lossless=True)))
    out.append(Variant("webp/lossless_rgba.webp", _save(rgba, "WEBP", lossless=True, exact=True)))
    for q in (30, 80, 100):
        out.append(Variant(f"webp/lossy_rgb_q{q}.webp", _save(rgb, "WEBP", quality=q)))
    out.append(Variant("webp/lossy_rgba.webp", _save(rgba, "WEBP", quality=70)))
    big = Image.fromarray(_image(rng, 45, 33))
    out.append(Variant("webp/lossy_odd_size.webp", _save(big, "WEBP", quality=75)))
    frames = [Image.fromarray(_image(rng, w, h)) for _ in range(3)]
    out.append(
        Variant(
            "webp/pillow_animated.webp",
            _save(frames[0], "WEBP", save_all=True, append_images=frames[1:], lossless=True),
        )
    )
    out.append(
        Variant(
            "webp/pillow_animated_lossy.webp",
            _save(frames[0], "WEBP", save_all=True, append_images=frames[1:], quality=60),
        )
    )
    small = Image.fromarray(_image(rng, 6, 4, 4), "RGBA")
    for name, still in {
        "lossless_alpha": _save(small, "WEBP", lossless=True, exact=True),
        "lossless_opaque": _save(small.convert("RGB"), "WEBP", lossless=True),
        "lossy_alpha": _save(small, "WEBP", quality=80),
        "lossy_opaque": _save(small.convert("RGB"), "WEBP", quality=80),
    }.items():
        for bg in ((0, 0, 0, 0), (255, 0, 0, 255)):
            out.append(
                Variant(
                    f"webp/animated_small_first_frame_{name}_bg{bg[0]}.webp",
                    _animated_webp((w, h), [(4, 2, still), (0, 0, still)], bg),
                )
            )
    return out


# ---------------------------------------------------------------- siblings of each finding


def _adam7(values: np.ndarray, depth: int) -> list[bytes]:
    """Interlaced (Adam7) PNG rows: the seven passes, each row with filter byte 0."""
    rows = []
    for x0, y0, dx, dy in [
        (0, 0, 8, 8),
        (4, 0, 8, 8),
        (0, 4, 4, 8),
        (2, 0, 4, 4),
        (0, 2, 2, 4),
        (1, 0, 2, 2),
        (0, 1, 1, 2),
    ]:
        sub = values[y0::dy, x0::dx]
        if sub.size:
            rows += _pack(sub.reshape(sub.shape[0], -1), depth)
    return rows


def png_siblings(rng: np.random.Generator) -> list[Variant]:
    out = []
    w, h = 11, 9
    px = _image(rng, w, h, 4)
    out.append(
        Variant(
            "png/interlaced_rgb.png",
            _png(w, h, 8, 2, _adam7(px[..., :3], 8)).replace(b"\x08\x02\x00\x00\x00", b"\x08\x02\x00\x00\x01", 1),
        )
    )
    grey4 = rng.integers(0, 16, (h, w))
    ihdr_old = struct.pack(">IIBBBBB", w, h, 4, 0, 0, 0, 0)
    ihdr_new = struct.pack(">IIBBBBB", w, h, 4, 0, 0, 0, 1)
    data = _png(w, h, 4, 0, _adam7(grey4[..., None], 4))
    fixed = data.replace(_chunk(b"IHDR", ihdr_old), _chunk(b"IHDR", ihdr_new))
    out.append(Variant("png/interlaced_grey4.png", fixed))
    v16 = rng.integers(0, 65536, (h, w, 3)).astype(np.uint16)
    data = _png(w, h, 16, 2, _adam7(v16, 16))
    out.append(
        Variant(
            "png/interlaced_rgb16.png",
            data.replace(
                _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)),
                _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 1)),
            ),
        )
    )
    rows = _pack(px[..., :3].reshape(h, -1), 8)
    full = _png(w, h, 8, 2, rows)
    out.append(Variant("png/no_iend.png", full[:-12]))
    out.append(Variant("png/trailing_garbage.png", full + b"garbage after the image"))
    z = zlib.compress(b"".join(rows))
    split = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
    split += b"".join(_chunk(b"IDAT", z[i : i + 7]) for i in range(0, len(z), 7)) + _chunk(b"IEND", b"")
    out.append(Variant("png/idat_split_in_7_byte_chunks.png", split))
    out.append(Variant("png/extra_rows_in_stream.png", _png(w, h, 8, 2, rows + rows[:2])))
    # A zlib stream that ends on a row boundary before the image is full: Pillow leaves the rest black; fidrs
    # refuses it (the png crate reads it as truncated).
    out.append(Variant("png/stream_ends_early.png", _png(w, h, 8, 2, rows[:4]), "refuse"))
    out.append(Variant("png/stream_ends_mid_row.png", _png(w, h, 8, 2, rows[:4] + [rows[4][:5]])))
    g16 = rng.integers(0, 600, (h, w)).astype(np.uint16)
    out.append(Variant("png/grey16_trns.png", _png(w, h, 16, 0, _pack(g16, 16), [_chunk(b"tRNS", b"\x00\x07")])))
    out.append(Variant("png/rgb_with_plte.png", _png(w, h, 8, 2, rows, plte=bytes(range(30)))))
    idx = rng.integers(0, 4, (h, w))
    two = _png(w, h, 8, 3, _pack(idx, 8), [_chunk(b"PLTE", bytes(range(12)))], plte=bytes(range(100, 112)))
    out.append(Variant("png/two_plte.png", two, "refuse"))  # the png crate refuses a second PLTE
    out.append(
        Variant("png/chunk_before_ihdr.png", b"\x89PNG\r\n\x1a\n" + _chunk(b"tEXt", b"a\0b") + full[8:], "refuse")
    )
    out.append(
        Variant("png/iccp_valid.png", _png(w, h, 8, 2, rows, [_chunk(b"iCCP", b"icc\0\0" + zlib.compress(b"x" * 100))]))
    )
    out.append(
        Variant(
            "png/ztxt_bomb.png", _png(w, h, 8, 2, rows, [_chunk(b"zTXt", b"k\0\0" + zlib.compress(b"a" * (2 << 20)))])
        )
    )
    # APNG whose IDAT frame (fcTL before IDAT) is smaller than the image: Pillow places it at its offset.
    small = _pack(px[:4, :5, :3].reshape(4, -1), 8)
    fctl = struct.pack(">IIIIIHHBB", 0, 5, 4, 3, 2, 1, 10, 0, 0)
    apng = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
    apng += _chunk(b"acTL", struct.pack(">II", 1, 0)) + _chunk(b"fcTL", fctl)
    apng += _chunk(b"IDAT", zlib.compress(b"".join(small))) + _chunk(b"IEND", b"")
    # The png crate refuses it (the APNG specification requires frame 0 to cover the image).
    out.append(Variant("png/apng_small_idat_frame.png", apng, "refuse"))
    fctl_bad = struct.pack(">IIIIIHHBB", 0, 9, 9, 5, 5, 1, 10, 0, 0)
    out.append(Variant("png/apng_frame_outside.png", apng.replace(_chunk(b"fcTL", fctl), _chunk(b"fcTL", fctl_bad))))
    return out


def bmp_siblings(rng: np.random.Generator) -> list[Variant]:
    out = []
    w, h = 10, 5
    px = _image(rng, w, h)
    pal3 = bytes(rng.integers(0, 256, 3 * 256).astype(np.uint8))
    for bits in (1, 4, 8):
        idx = rng.integers(0, 1 << bits, (h, w))
        out.append(
            Variant(f"bmp/os2_{bits}bit.bmp", _bmp(w, h, bits, _rows(idx, bits), header=12, palette=pal3[: 3 << bits]))
        )
    out.append(Variant("bmp/os2_24bit.bmp", _bmp(w, h, 24, _rows(px[..., ::-1].reshape(h, -1), 8), header=12)))
    pal = bytes(rng.integers(0, 256, 4 * 16).astype(np.uint8))
    idx4 = rng.integers(0, 16, (h, w))
    # bfOffBits pointing right after the header (bogus): Pillow skips the palette itself.
    out.append(Variant("bmp/offset_at_header_end.bmp", _bmp(w, h, 4, _rows(idx4, 4), palette=pal, offset=54)))
    out.append(Variant("bmp/offset_zero.bmp", _bmp(w, h, 4, _rows(idx4, 4), palette=pal, offset=0)))
    out.append(Variant("bmp/4bit_colours_unset.bmp", _bmp(w, h, 4, _rows(idx4, 4), palette=pal[:24], colors=6)))
    v16 = rng.integers(0, 65536, (h, w))
    for header in (108, 124):
        out.append(
            Variant(
                f"bmp/header{header}_565_in_header.bmp",
                _bmp(w, h, 16, _rows(v16, 16), header=header, compression=3, masks=(0xF800, 0x7E0, 0x1F, 0)),
            )
        )
        v32 = rng.integers(0, 256, (h, w * 4))
        out.append(
            Variant(
                f"bmp/header{header}_rgba_in_header.bmp",
                _bmp(w, h, 32, _rows(v32, 8), header=header, compression=3, masks=(0xFF0000, 0xFF00, 0xFF, 0xFF000000)),
            )
        )
    out.append(Variant("bmp/16bit_top_down.bmp", _bmp(w, h, 16, _rows(v16, 16)[::-1], top_down=True)))
    out.append(
        Variant(
            "bmp/width_negative.bmp",
            _bmp(w, h, 24, _rows(px.reshape(h, -1), 8)).replace(struct.pack("<i", w), struct.pack("<i", -w), 1),
        )
    )
    out.append(Variant("bmp/header_unknown_size.bmp", _bmp(w, h, 24, _rows(px.reshape(h, -1), 8), header=44)))
    grey16 = b"".join(bytes([i, i, i, 0]) for i in range(16))
    out.append(Variant("bmp/4bit_grey_ramp_palette.bmp", _bmp(w, h, 4, _rows(idx4, 4), palette=grey16)))
    out.append(
        Variant(
            "bmp/1bit_one_colour_black.bmp",
            _bmp(w, h, 1, _rows(rng.integers(0, 2, (h, w)), 1), palette=b"\0\0\0\0", colors=1),
        )
    )
    return out


def gif_siblings(rng: np.random.Generator) -> list[Variant]:
    out = []
    w, h = 9, 7
    pal = bytes(rng.integers(0, 256, 3 * 256).astype(np.uint8))
    small = [int(v) for v in rng.integers(0, 256, 4 * 3)]
    out.append(
        Variant(
            "gif/small_frame_local_palette_transparent.gif",
            _gif((w, h), (2, 3, 4, 3), small, global_palette=pal, local_palette=pal[::-1], transparency=200),
        )
    )
    out.append(
        Variant("gif/small_frame_interlaced.gif", _gif((w, h), (1, 1, 4, 3), small, global_palette=pal, interlace=True))
    )
    out.append(
        Variant("gif/small_frame_no_global_palette_local.gif", _gif((w, h), (1, 2, 4, 3), small, local_palette=pal))
    )
    out.append(Variant("gif/small_frame_no_palette_transparent.gif", _gif((w, h), (1, 2, 4, 3), small, transparency=9)))
    out.append(
        Variant(
            "gif/frame_beyond_both_edges.gif", _gif((3, 2), (1, 1, 4, 3), small, global_palette=pal, transparency=3)
        )
    )
    two = pal[:6]
    idx = [int(v) for v in rng.integers(0, 2, w * h)]
    out.append(Variant("gif/1bit.gif", _gif((w, h), (0, 0, w, h), idx, global_palette=two, min_size=2)))
    data = _gif((w, h), (0, 0, 4, 3), small, global_palette=pal)
    comment = b"!\xfe\x05hello\x00"
    app = b"!\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00"
    at = 13 + 768
    out.append(Variant("gif/extensions_before_image.gif", data[:at] + comment + app + data[at:]))
    out.append(Variant("gif/no_image.gif", data[:at] + b";"))
    out.append(
        Variant(
            "gif/transparency_beyond_palette.gif",
            _gif((w, h), (2, 2, 4, 3), [1] * 12, global_palette=two, transparency=77, min_size=2),
        )
    )
    return out


def _tiff_chunks(w, h, tags, blobs: list[bytes], tile: tuple[int, int] | None = None, big_endian=False) -> bytes:
    """A TIFF whose image data is `blobs` (strips of `tags[278]` rows, or `tile` = (width, length) tiles)."""
    e = ">" if big_endian else "<"
    tags = dict(tags)
    tags.setdefault(256, (4, [w]))
    tags.setdefault(257, (4, [h]))
    offsets_tag, counts_tag = (324, 325) if tile else (273, 279)
    if tile:
        tags[322], tags[323] = (4, [tile[0]]), (4, [tile[1]])
    tags[offsets_tag] = (4, [0] * len(blobs))
    tags[counts_tag] = (4, [len(b) for b in blobs])

    def encode(kind, values):
        if kind == 7:
            return bytes(values)
        return b"".join(struct.pack(e + {3: "H", 4: "I"}[kind], v) for v in values)

    def layout(tags):
        entries = sorted(tags.items())
        at = 8 + 2 + 12 * len(entries) + 4
        extras = b""
        ifd = struct.pack(e + "H", len(entries))
        for tag, (kind, values) in entries:
            raw = encode(kind, values)
            if len(raw) <= 4:
                ifd += struct.pack(e + "HHI", tag, kind, len(values)) + raw + b"\0" * (4 - len(raw))
            else:
                ifd += struct.pack(e + "HHII", tag, kind, len(values), at + len(extras))
                extras += raw + b"\0" * (len(raw) & 1)
        return ifd + b"\0\0\0\0" + extras

    data_at = 8 + len(layout(tags))
    offsets, at = [], data_at
    for b in blobs:
        offsets.append(at)
        at += len(b) + (len(b) & 1)
    tags[offsets_tag] = (4, offsets)
    head = (b"MM\0*" if big_endian else b"II*\0") + struct.pack(e + "I", 8)
    return head + layout(tags) + b"".join(b + b"\0" * (len(b) & 1) for b in blobs)


def tiff_siblings(rng: np.random.Generator) -> list[Variant]:
    out = []
    BPS, SPP, PHOTO, RPS, COMP, SUB, ORIENT = 258, 277, 262, 278, 259, 530, 274
    w, h = 24, 20
    px = _image(rng, w, h)
    rgb = Image.fromarray(px)
    out.append(Variant("tiff/raw_strips.tif", _save(rgb, "TIFF", strip_size=3 * w * 6)))
    out.append(Variant("tiff/lzw_strips.tif", _save(rgb, "TIFF", compression="tiff_lzw", strip_size=3 * w * 6)))
    frames = [Image.fromarray(_image(rng, w, h)) for _ in range(2)]
    out.append(Variant("tiff/multipage.tif", _save(frames[0], "TIFF", save_all=True, append_images=frames[1:])))
    out.append(
        Variant("tiff/deflate_predictor.tif", _save(rgb, "TIFF", compression="tiff_adobe_deflate", tiffinfo={317: 2}))
    )
    i16 = Image.fromarray(rng.integers(0, 700, (h, w)).astype(np.uint16))
    out.append(Variant("tiff/i16_lzw_predictor.tif", _save(i16, "TIFF", compression="tiff_lzw", tiffinfo={317: 2})))
    # Memory-mapped by Pillow (one uncompressed strip, rawmode = mode) and rotated 90°: scrambled by Pillow.
    out.append(Variant("tiff/i16_orientation6.tif", _save(i16, "TIFF", tiffinfo={274: 6}), "refuse"))
    out.append(Variant("tiff/p_orientation7.tif", _save(rgb.quantize(9), "TIFF", tiffinfo={274: 7}), "refuse"))
    out.append(Variant("tiff/l_orientation3_mapped.tif", _save(rgb.convert("L"), "TIFF", tiffinfo={274: 3})))
    out.append(
        Variant(
            "tiff/cmyk_orientation8_lzw.tif",
            _save(rgb.convert("CMYK"), "TIFF", compression="tiff_lzw", tiffinfo={274: 8}),
        )
    )
    strips_l = _save(rgb.convert("L"), "TIFF", tiffinfo={274: 6, 278: 5})
    out.append(Variant("tiff/l_orientation6_strips.tif", strips_l))
    out.append(Variant("tiff/jpeg_orientation5.tif", _save(rgb, "TIFF", compression="jpeg", tiffinfo={274: 5})))
    base = {BPS: (3, [8] * 3), SPP: (3, [3]), PHOTO: (3, [2])}
    out.append(
        Variant("tiff/big_endian_rgb.tif", _tiff_chunks(w, h, {**base, RPS: (4, [h])}, [px.tobytes()], big_endian=True))
    )
    # No PhotometricInterpretation: Pillow reads min-is-white, the tiff crate refuses the file.
    no_photo = _tiff_chunks(w, h, {BPS: (3, [8]), SPP: (3, [1]), RPS: (4, [h])}, [px[..., 0].tobytes()])
    out.append(Variant("tiff/no_photometric_grey.tif", no_photo, "refuse"))
    out.append(
        Variant("tiff/rows_per_strip_beyond_height.tif", _tiff_chunks(w, h, {**base, RPS: (4, [1000])}, [px.tobytes()]))
    )
    tiles = []
    for ty in range(0, h, 16):
        for tx in range(0, w, 16):
            t = np.zeros((16, 16, 3), np.uint8)
            part = px[ty : ty + 16, tx : tx + 16]
            t[: part.shape[0], : part.shape[1]] = part
            tiles.append(t.tobytes())
    out.append(Variant("tiff/tiled_raw.tif", _tiff_chunks(w, h, base, tiles, tile=(16, 16))))
    # JPEG-compressed strips and tiles, each a whole JPEG stream (no JPEGTables), YCbCr 4:2:0 as libtiff
    # writes it: decoded by libjpeg-turbo, like Pillow's libtiff.
    ycc = {BPS: (3, [8] * 3), SPP: (3, [3]), PHOTO: (3, [6]), COMP: (3, [7]), SUB: (3, [2, 2])}
    strips = [_save(Image.fromarray(px[y : y + 8]), "JPEG", quality=90) for y in range(0, h, 8)]
    out.append(Variant("tiff/jpeg_ycbcr_strips_no_tables.tif", _tiff_chunks(w, h, {**ycc, RPS: (4, [8])}, strips)))
    jtiles = []
    for ty in range(0, h, 16):
        for tx in range(0, w, 16):
            t = np.zeros((16, 16, 3), np.uint8)
            part = px[ty : ty + 16, tx : tx + 16]
            t[: part.shape[0], : part.shape[1]] = part
            jtiles.append(_save(Image.fromarray(t), "JPEG", quality=90))
    out.append(Variant("tiff/jpeg_ycbcr_tiles.tif", _tiff_chunks(w, h, ycc, jtiles, tile=(16, 16))))
    grey_jpeg = [_save(Image.fromarray(px[y : y + 10, :, 0]), "JPEG") for y in range(0, h, 10)]
    for photo in (0, 1):
        tags = {BPS: (3, [8]), SPP: (3, [1]), PHOTO: (3, [photo]), COMP: (3, [7]), RPS: (4, [10])}
        out.append(Variant(f"tiff/jpeg_grey_photometric{photo}.tif", _tiff_chunks(w, h, tags, grey_jpeg)))
    cmyk_jpeg = [_save(Image.fromarray(px).convert("CMYK"), "JPEG")]
    tags = {BPS: (3, [8] * 4), SPP: (3, [4]), PHOTO: (3, [5]), COMP: (3, [7]), RPS: (4, [h])}
    out.append(Variant("tiff/jpeg_cmyk.tif", _tiff_chunks(w, h, tags, cmyk_jpeg), "refuse"))
    out.append(
        Variant(
            "tiff/old_jpeg.tif", _tiff_chunks(w, h, {**base, COMP: (3, [6]), RPS: (4, [h])}, strips[:1] * 3), "refuse"
        )
    )
    out.append(
        Variant("tiff/jpeg_strip_cut.tif", _tiff_chunks(w, h, {**ycc, RPS: (4, [8])}, strips[:2] + [strips[2][:40]]))
    )
    out.append(
        Variant(
            "tiff/orientation6_big_endian.tif",
            _tiff_chunks(w, h, {**base, RPS: (4, [h]), ORIENT: (3, [6])}, [px.tobytes()], big_endian=True),
        )
    )
    return out


def webp_siblings(rng: np.random.Generator) -> list[Variant]:
    out = []
    w, h = 16, 12
    small = Image.fromarray(_image(rng, 5, 7, 4), "RGBA")
    still = _save(small, "WEBP", lossless=True, exact=True)
    out.append(Variant("webp/animated_frame_at_corner.webp", _animated_webp((w, h), [(10, 4, still)])))
    out.append(Variant("webp/animated_frame_outside_canvas.webp", _animated_webp((w, h), [(12, 8, still)])))
    out.append(Variant("webp/animated_single_full_frame.webp", _animated_webp((5, 7), [(0, 0, still)])))
    vp8x_alpha = _save(Image.fromarray(_image(rng, w, h, 4), "RGBA"), "WEBP", quality=50, icc_profile=b"\0" * 40)
    out.append(Variant("webp/vp8x_alpha_icc.webp", vp8x_alpha))
    return out


def corpus(seed: int = 29) -> list[Variant]:
    rng = np.random.default_rng(seed)
    variants = []
    for make in (
        jpeg_variants,
        png_variants,
        bmp_variants,
        gif_variants,
        tiff_variants,
        webp_variants,
        png_siblings,
        bmp_siblings,
        gif_siblings,
        tiff_siblings,
        webp_siblings,
    ):
        variants += make(rng)
    names = [v.name for v in variants]
    assert len(set(names)) == len(names), "variant names are unique"
    return variants
