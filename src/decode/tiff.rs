//! TIFF, first image. Which files are read, and how their samples become RGB, follows Pillow's
//! `TiffImagePlugin`: its `OPEN_INFO` table of (photometric, sample format, bits, extra samples) decides
//! the mode and rawmode, and files outside it are refused as Pillow refuses them ("unknown pixel mode",
//! e.g. float RGB). Of the modes Pillow reads, those listed in `Layout` are decoded here with Pillow's
//! unpacking (un-premultiplied alpha, 16-bit high bytes, 16-bit grey clipped, inverted min-is-white, CMYK
//! by `cmyk2rgb`); the rest (float, 32-bit and signed integers, 12-bit, LAB, uncompressed YCbCr, planar
//! layouts, fill order 2, CCITT and the other rare compressions) are refused by name. The `tiff` crate
//! reads the directory and inflates LZW, Deflate and PackBits strips or tiles (its JPEG support, zune-jpeg,
//! is not compiled in); JPEG strips and tiles go through libjpeg-turbo as in Pillow's libtiff. Last, the
//! Orientation tag is applied, as Pillow's `exif_transpose` does on load.

use std::io::Cursor;

use tiff::decoder::{Decoder, DecodingResult, Limits};
use tiff::tags::Tag;

use super::pixels::{clip16, cmyk_to_rgb, orient, unpremultiply, Palette};
use super::{finish, reserve, DecodeFailure, DecodeOptions, Decoded, TRUNCATED};
use crate::image::Rgb8Image;

/// The sample layouts decoded here, each a set of Pillow `OPEN_INFO` rows.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Layout {
    /// "1", "L;2", "L;4", "L" and their inverted (min-is-white) forms; `extra` samples ignored ("LX").
    Grey {
        bits: u8,
        inverted: bool,
        extra: usize,
    },
    /// "I;16": 16-bit grey, clipped to 255 on conversion (never inverted: Pillow reads min-is-white 16-bit
    /// little-endian files as "I;16" too).
    Grey16,
    /// "LA" / "La" (premultiplied).
    GreyAlpha { premultiplied: bool },
    /// "RGB", "RGBX", "RGBXX", "RGBXXX", "RGBA", "RGBa", "RGBAX", ... for 8 or 16 bits.
    Rgb {
        bits: u8,
        samples: usize,
        premultiplied: bool,
    },
    /// "P;1", "P;2", "P;4", "P" (and "PX"/"PA": index then one more sample).
    Palette { bits: u8, samples: usize },
    /// "CMYK", "CMYKX", "CMYKXX", "CMYK;16".
    Cmyk { bits: u8, samples: usize },
    /// YCbCr in JPEG strips, converted to RGB by libjpeg (Pillow's `JPEGCOLORMODE_RGB`).
    JpegYcbcr,
}

const COMPRESSION_NONE: u32 = 1;
const COMPRESSION_JPEG: u32 = 7;

fn tag_vec(
    decoder: &mut Decoder<Cursor<&[u8]>>,
    tag: Tag,
) -> Result<Option<Vec<u32>>, DecodeFailure> {
    decoder
        .find_tag_unsigned_vec::<u32>(tag)
        .map_err(|e| describe(&e))
}

fn tag_one(decoder: &mut Decoder<Cursor<&[u8]>>, tag: Tag) -> Result<Option<u32>, DecodeFailure> {
    Ok(tag_vec(decoder, tag)?.and_then(|v| (v.len() == 1).then(|| v[0])))
}

/// Pillow's `_setup` key → our layout, or why the file is refused.
fn layout(
    big_endian: bool,
    photometric: u32,
    sample_format: &[u32],
    bits: &[u32],
    extra: &[u32],
    compression: u32,
) -> Result<Layout, DecodeFailure> {
    let refuse_unknown = || {
        Err(format!(
            "TIFF of an unknown pixel mode (photometric {photometric}, sample format {sample_format:?}, bits {bits:?}, \
             extra samples {extra:?}): Pillow refuses it too"
        ))
    };
    let unsupported = |what: &str| {
        Err(format!(
            "{what} TIFF is not supported (refused rather than decoded differently from Pillow)"
        ))
    };
    let all = |b: u32| bits.iter().all(|&x| x == b);
    let uint = sample_format == [1];
    match (photometric, bits.len()) {
        (0 | 1, 1) if !extra.is_empty() => refuse_unknown(),
        (0 | 1, 1) if uint || (sample_format == [2] && bits == [8] && photometric == 1) => {
            match bits[0] {
                1 | 2 | 4 | 8 => Ok(Layout::Grey {
                    bits: bits[0] as u8,
                    inverted: photometric == 0,
                    extra: 0,
                }),
                16 if uint && !(big_endian && photometric == 0) => Ok(Layout::Grey16),
                12 if photometric == 1 => unsupported("12-bit greyscale"),
                _ => refuse_unknown(),
            }
        }
        (0 | 1, 1) if matches!(sample_format, [2] | [3]) && matches!(bits, [16] | [32]) => {
            unsupported("signed-integer or floating-point greyscale")
        }
        (1, 2) if uint && all(8) => match extra {
            [0] => Ok(Layout::Grey {
                bits: 8,
                inverted: false,
                extra: 1,
            }),
            [1] => unsupported(
                "premultiplied grey+alpha (\"La\", which Pillow cannot convert to RGB either)",
            ),
            [2] => Ok(Layout::GreyAlpha {
                premultiplied: false,
            }),
            _ => refuse_unknown(),
        },
        (2, n @ 3..=6) if uint && (all(8) || (all(16) && n <= 4)) => {
            let b = bits[0] as u8;
            let ok = match (n, extra) {
                (3, []) => Some(false),
                (4, []) | (4, [2]) => Some(false),
                (4, [999]) if b == 8 => Some(false),
                (4, [0]) => Some(false),
                (4, [1]) => Some(true),
                (5, [0, 0]) | (5, [2, 0]) if b == 8 => Some(false),
                (5, [1, 0]) if b == 8 => Some(true),
                (6, [0, 0, 0]) | (6, [2, 0, 0]) if b == 8 => Some(false),
                (6, [1, 0, 0]) if b == 8 => Some(true),
                _ => None,
            };
            match ok {
                Some(premultiplied) => Ok(Layout::Rgb {
                    bits: b,
                    samples: n,
                    premultiplied,
                }),
                None => refuse_unknown(),
            }
        }
        (3 | 6, 1) if !extra.is_empty() => refuse_unknown(),
        (3, 1) if uint && matches!(bits[0], 1 | 2 | 4 | 8) => Ok(Layout::Palette {
            bits: bits[0] as u8,
            samples: 1,
        }),
        (3, 2) if uint && all(8) && matches!(extra, [0] | [2]) => Ok(Layout::Palette {
            bits: 8,
            samples: 2,
        }),
        (5, n @ 4..=6) if uint && (all(8) || (all(16) && n == 4)) => {
            let ok = matches!((n, extra), (4, []) | (5, [0]) | (6, [0, 0]));
            if ok {
                Ok(Layout::Cmyk {
                    bits: bits[0] as u8,
                    samples: n,
                })
            } else {
                refuse_unknown()
            }
        }
        (6, 1) if uint && bits == [8] => Ok(Layout::Grey {
            bits: 8,
            inverted: false,
            extra: 0,
        }),
        (6, 3) if uint && all(8) && extra.is_empty() => {
            if compression == COMPRESSION_JPEG {
                Ok(Layout::JpegYcbcr)
            } else {
                unsupported("uncompressed or non-JPEG YCbCr")
            }
        }
        (8, 3) if uint && all(8) && extra.is_empty() => unsupported("CIE L*a*b*"),
        _ => refuse_unknown(),
    }
}

pub(super) fn decode(bytes: &[u8], options: &DecodeOptions) -> Result<Decoded, DecodeFailure> {
    // The tiff crate inverts min-is-white samples, drops extra samples it does not know and refuses
    // palettes: it reads a copy of the file whose directory says min-is-black (one tag value changed),
    // and the samples are interpreted here.
    let (patched, photometric) = as_black_is_zero(bytes)?;
    let mut limits = Limits::default();
    limits.decoding_buffer_size = options.max_file_bytes() as usize;
    limits.intermediate_buffer_size = options.max_file_bytes() as usize;
    let mut decoder = Decoder::new(Cursor::new(&patched[..]))
        .map_err(|e| describe(&e))?
        .with_limits(limits);
    let width = tag_one(&mut decoder, Tag::ImageWidth)?
        .ok_or("TIFF without ImageWidth (Pillow refuses it)")? as usize;
    let height = tag_one(&mut decoder, Tag::ImageLength)?
        .ok_or("TIFF without ImageLength (Pillow refuses it)")? as usize;
    let compression = tag_one(&mut decoder, Tag::Compression)?.unwrap_or(COMPRESSION_NONE);
    // The copy differs from the file in those 4 bytes: refuse image data that would read them.
    if let Some((_, at)) = photometric {
        let (offsets, counts) = if tag_vec(&mut decoder, Tag::TileOffsets)?.is_some() {
            (
                tag_vec(&mut decoder, Tag::TileOffsets)?,
                tag_vec(&mut decoder, Tag::TileByteCounts)?,
            )
        } else {
            (
                tag_vec(&mut decoder, Tag::StripOffsets)?,
                tag_vec(&mut decoder, Tag::StripByteCounts)?,
            )
        };
        let overlaps = offsets
            .unwrap_or_default()
            .iter()
            .zip(counts.unwrap_or_default())
            .any(|(&o, c)| (o as usize) < at + 4 && at < o as usize + c as usize);
        if overlaps {
            return Err("TIFF image data overlaps its own directory (refused)".into());
        }
    }
    let mut photometric = photometric.map_or(0, |(p, _)| p);
    if compression == 6 {
        photometric = 6;
    }
    let planar = tag_one(&mut decoder, Tag::PlanarConfiguration)?.unwrap_or(1);
    let fill_order = tag_one(&mut decoder, Tag::FillOrder)?.unwrap_or(1);
    let mut sample_format = tag_vec(&mut decoder, Tag::SampleFormat)?.unwrap_or(vec![1]);
    if sample_format.len() > 1 && sample_format.iter().all(|&s| s == sample_format[0]) {
        sample_format.truncate(1);
    }
    let mut bits = tag_vec(&mut decoder, Tag::BitsPerSample)?.unwrap_or(vec![1]);
    let extra = tag_vec(&mut decoder, Tag::ExtraSamples)?.unwrap_or_default();
    let default_samples = if compression == 6 && matches!(photometric, 2 | 6) {
        3
    } else {
        1
    };
    let samples = tag_one(&mut decoder, Tag::SamplesPerPixel)?.unwrap_or(default_samples) as usize;
    if samples > 6 {
        return Err(
            "TIFF with more samples per pixel than Pillow decodes (Pillow refuses it)".into(),
        );
    }
    if samples < bits.len() {
        bits.truncate(samples);
    } else if samples > bits.len() && bits.len() == 1 {
        bits = vec![bits[0]; samples];
    }
    if bits.len() != samples {
        return Err("TIFF of an unknown data organization (Pillow refuses it)".into());
    }
    let big_endian = bytes.starts_with(b"MM");
    let layout = layout(
        big_endian,
        photometric,
        &sample_format,
        &bits,
        &extra,
        compression,
    )?;
    if planar != 1 {
        return Err("planar (separate-plane) TIFF is not supported (refused rather than decoded differently from Pillow)".into());
    }
    if fill_order != 1 {
        return Err("TIFF with FillOrder 2 is not supported (refused rather than decoded differently from Pillow)".into());
    }
    match compression {
        1 | 5 | 8 | 32946 | 32773 | COMPRESSION_JPEG => {}
        6 => return Err("old-style JPEG TIFF (compression 6) is not supported".into()),
        other => {
            return Err(format!(
                "TIFF compression {other} is not supported (only none, LZW, Deflate, PackBits and JPEG)"
            ))
        }
    }
    let orientation = tag_one(&mut decoder, Tag::Orientation)?.unwrap_or(1);
    if compression == COMPRESSION_NONE
        && (5..=8).contains(&orientation)
        && memory_mapped(&mut decoder, layout, photometric, height)?
    {
        return Err(format!(
            "uncompressed TIFF with Orientation {orientation} in a layout Pillow memory-maps: opened by path (as \
             pytorch-fid opens it), Pillow maps the pixels with the rotated width and scrambles them; refused \
             rather than scored either way"
        ));
    }
    // The decoder's samples (up to 6 × 2 bytes a pixel) and the tiff crate's own strip buffers.
    let reservation = reserve(width, height, 24, options)?;
    if matches!(compression, 8 | 32946) {
        check_deflate_chunks(&mut decoder, &patched)?;
    }
    if compression == 32773 {
        let bits_per_pixel = bits.iter().sum::<u32>() as usize;
        check_packbits_chunks(&mut decoder, &patched, width, height, bits_per_pixel)?;
    }
    let image = if compression == COMPRESSION_JPEG {
        decode_jpeg_chunks(&mut decoder, &patched, width, height, layout)?
    } else {
        let palette = match layout {
            Layout::Palette { bits, .. } => {
                let map = tag_vec(&mut decoder, Tag::ColorMap)?
                    .ok_or("palette TIFF without a ColorMap (Pillow refuses it)")?;
                let n = 1usize << bits;
                if map.len() < 3 * n {
                    return Err(
                        "TIFF ColorMap is too short for its bit depth (Pillow refuses it)".into(),
                    );
                }
                // Pillow: each 16-bit entry // 256, stored as all reds, then greens, then blues.
                let packed: Vec<u8> = (0..n)
                    .flat_map(|i| [map[i] / 256, map[n + i] / 256, map[2 * n + i] / 256])
                    .map(|v| v as u8)
                    .collect();
                Palette::from_packed(&packed, 3, false)
            }
            _ => Palette::grey(),
        };
        let samples = decoder.read_image().map_err(|e| describe(&e))?;
        unpack(samples, width, height, layout, &palette)?
    };
    Ok(finish(orient(image, orientation as u16), reservation))
}

/// Whether Pillow, opening the file by path, memory-maps its pixels (`ImageFile.load`: one tile, the raw
/// decoder, a rawmode equal to the mode, a mode in `Image._MAPMODES`).
fn memory_mapped(
    decoder: &mut Decoder<Cursor<&[u8]>>,
    layout: Layout,
    photometric: u32,
    height: usize,
) -> Result<bool, DecodeFailure> {
    let rawmode_is_mode = match layout {
        Layout::Grey {
            bits: 8,
            inverted: false,
            extra: 0,
        } => matches!(photometric, 1 | 6),
        Layout::Palette {
            bits: 8,
            samples: 1,
        }
        | Layout::Grey16 => true,
        Layout::Rgb {
            bits: 8,
            samples: 4,
            premultiplied: false,
        } => {
            matches!(
                tag_vec(decoder, Tag::ExtraSamples)?.as_deref(),
                None | Some([2])
            )
        }
        Layout::Cmyk {
            bits: 8,
            samples: 4,
        } => true,
        _ => false,
    };
    let one_tile = if tag_vec(decoder, Tag::TileOffsets)?.is_some() {
        tag_one(decoder, Tag::TileLength)?.is_some_and(|t| t as usize >= height)
            && tag_vec(decoder, Tag::TileOffsets)?.is_some_and(|o| o.len() == 1)
    } else {
        tag_one(decoder, Tag::RowsPerStrip)?.is_none_or(|r| r as usize >= height)
    };
    Ok(rawmode_is_mode && one_tile)
}

/// The patched copy, and the original PhotometricInterpretation with the offset of its 4 value bytes.
type Patched = (Vec<u8>, Option<(u32, usize)>);

/// A copy of the file whose first directory says PhotometricInterpretation = 1 (BlackIsZero), and the
/// value it said (None when the tag is absent: Pillow then reads 0, WhiteIsZero).
fn as_black_is_zero(bytes: &[u8]) -> Result<Patched, DecodeFailure> {
    let big = bytes.starts_with(b"MM");
    let u16_at = |at: usize| -> Option<u16> {
        let b = bytes.get(at..at + 2)?;
        Some(if big {
            u16::from_be_bytes([b[0], b[1]])
        } else {
            u16::from_le_bytes([b[0], b[1]])
        })
    };
    let u32_at = |at: usize| -> Option<u32> {
        let b = bytes.get(at..at + 4)?;
        let b = [b[0], b[1], b[2], b[3]];
        Some(if big {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        })
    };
    let bad = || "TIFF directory is truncated".to_string();
    let ifd = u32_at(4).ok_or_else(bad)? as usize;
    let count = u16_at(ifd).ok_or_else(bad)? as usize;
    let mut patched = bytes.to_vec();
    let mut original = None;
    let mut seen = std::collections::HashSet::new();
    for i in 0..count {
        let entry = ifd + 2 + 12 * i;
        let tag = u16_at(entry).ok_or_else(bad)?;
        let (kind, n) = (
            u16_at(entry + 2).ok_or_else(bad)?,
            u32_at(entry + 4).ok_or_else(bad)?,
        );
        u32_at(entry + 8).ok_or_else(bad)?;
        // libtiff (Pillow's reader for compressed files) refuses what the tiff crate skips or reads
        // differently: unknown field types, a tag given twice, the image's own tags in unusual types.
        if !(1..=12).contains(&kind) {
            return Err(format!(
                "TIFF tag {tag} has an unknown field type {kind} (refused, as libtiff refuses it)"
            ));
        }
        if !seen.insert(tag) {
            return Err(format!(
                "TIFF tag {tag} appears twice in the directory (refused)"
            ));
        }
        let expected: &[u16] = match tag {
            256 | 257 | 258 | 259 | 262 | 266 | 273 | 274 | 277 | 278 | 279 | 284 | 317 | 322
            | 323 | 324 | 325 | 338 | 339 | 530 => &[3, 4],
            320 => &[3],
            347 => &[1, 7],
            _ => &[kind],
        };
        if !expected.contains(&kind) {
            return Err(format!("TIFF tag {tag} stored as field type {kind} (refused rather than read differently from Pillow)"));
        }
        if tag != 262 {
            continue;
        }
        let value = patched.get_mut(entry + 8..entry + 12).ok_or_else(bad)?;
        original = Some((
            match (kind, n) {
                (3, 1) => {
                    let v = u16_at(entry + 8).ok_or_else(bad)? as u32;
                    value[..2].copy_from_slice(&if big {
                        1u16.to_be_bytes()
                    } else {
                        1u16.to_le_bytes()
                    });
                    v
                }
                (4, 1) => {
                    let v = u32_at(entry + 8).ok_or_else(bad)?;
                    value.copy_from_slice(&if big {
                        1u32.to_be_bytes()
                    } else {
                        1u32.to_le_bytes()
                    });
                    v
                }
                _ => return Err("TIFF PhotometricInterpretation is not one value (refused)".into()),
            },
            entry + 8,
        ));
    }
    Ok((patched, original))
}

/// libtiff's Deflate decoder feeds zlib a strip's whole data, so zlib checks its Adler-32 and refuses
/// a corrupt stream that the tiff crate (which stops once it has the strip's pixels) would read.
fn check_deflate_chunks(
    decoder: &mut Decoder<Cursor<&[u8]>>,
    bytes: &[u8],
) -> Result<(), DecodeFailure> {
    let tiled = tag_vec(decoder, Tag::TileOffsets)?.is_some();
    let (offsets, counts) = if tiled {
        (
            tag_vec(decoder, Tag::TileOffsets)?,
            tag_vec(decoder, Tag::TileByteCounts)?,
        )
    } else {
        (
            tag_vec(decoder, Tag::StripOffsets)?,
            tag_vec(decoder, Tag::StripByteCounts)?,
        )
    };
    let mut scratch = vec![0u8; 1 << 16];
    for (&start, &count) in offsets
        .unwrap_or_default()
        .iter()
        .zip(&counts.unwrap_or_default())
    {
        let Some(mut input) =
            bytes.get(start as usize..(start as usize).saturating_add(count as usize))
        else {
            return Err(TRUNCATED.into());
        };
        let mut inflater = flate2::Decompress::new(true);
        while !input.is_empty() {
            let (before_in, before_out) = (inflater.total_in(), inflater.total_out());
            let status = inflater
                .decompress(input, &mut scratch, flate2::FlushDecompress::None)
                .map_err(|e| {
                    format!("corrupt Deflate data in a TIFF strip ({e}; libtiff refuses it)")
                })?;
            input = &input[(inflater.total_in() - before_in) as usize..];
            let stalled = inflater.total_in() == before_in && inflater.total_out() == before_out;
            if status == flate2::Status::StreamEnd || stalled {
                break;
            }
        }
    }
    Ok(())
}

/// libtiff's PackBits decoder fails a strip whose runs end before the strip is full ("Not enough data
/// for scanline"); the tiff crate fills the rest. Walk the runs of each strip or tile as libtiff does.
fn check_packbits_chunks(
    decoder: &mut Decoder<Cursor<&[u8]>>,
    bytes: &[u8],
    width: usize,
    height: usize,
    bits_per_pixel: usize,
) -> Result<(), DecodeFailure> {
    let (offsets, counts, chunk_w, chunk_h) = if tag_vec(decoder, Tag::TileOffsets)?.is_some() {
        let tw = tag_one(decoder, Tag::TileWidth)?.unwrap_or(0) as usize;
        let th = tag_one(decoder, Tag::TileLength)?.unwrap_or(0) as usize;
        (
            tag_vec(decoder, Tag::TileOffsets)?,
            tag_vec(decoder, Tag::TileByteCounts)?,
            tw,
            th,
        )
    } else {
        let rows =
            tag_one(decoder, Tag::RowsPerStrip)?.map_or(height, |r| (r as usize).min(height));
        (
            tag_vec(decoder, Tag::StripOffsets)?,
            tag_vec(decoder, Tag::StripByteCounts)?,
            width,
            rows,
        )
    };
    let row_bytes = (chunk_w * bits_per_pixel).div_ceil(8);
    let counts = counts.unwrap_or_default();
    for (i, (&start, &count)) in offsets.unwrap_or_default().iter().zip(&counts).enumerate() {
        let rows = if chunk_w == width {
            chunk_h.min(height.saturating_sub(i * chunk_h))
        } else {
            chunk_h
        };
        let mut wanted = rows * row_bytes;
        let Some(mut input) =
            bytes.get(start as usize..(start as usize).saturating_add(count as usize))
        else {
            return Err(TRUNCATED.into());
        };
        while wanted > 0 {
            let Some((&n, rest)) = input.split_first() else {
                return Err(
                    "PackBits strip ends before its rows are full (libtiff refuses it)".into(),
                );
            };
            let n = n as i8;
            input = rest;
            if n >= 0 {
                let literal = n as usize + 1;
                if input.len() < literal {
                    return Err(
                        "PackBits strip ends before its rows are full (libtiff refuses it)".into(),
                    );
                }
                input = &input[literal..];
                wanted = wanted.saturating_sub(literal);
            } else if n != -128 {
                if input.is_empty() {
                    return Err(
                        "PackBits strip ends before its rows are full (libtiff refuses it)".into(),
                    );
                }
                input = &input[1..];
                wanted = wanted.saturating_sub(1 + (-(n as i32)) as usize);
            }
        }
    }
    Ok(())
}

/// Bits of one packed row (rows start on a byte boundary).
fn packed(row: &[u8], x: usize, bits: u8) -> u8 {
    let per_byte = 8 / bits as usize;
    let shift = 8 - bits as usize * (x % per_byte + 1);
    (row[x / per_byte] >> shift) & ((1u16 << bits) - 1) as u8
}

fn unpack(
    samples: DecodingResult,
    width: usize,
    height: usize,
    layout: Layout,
    palette: &Palette,
) -> Result<Rgb8Image, DecodeFailure> {
    // The common case: the samples are the pixels.
    let samples = match (samples, layout) {
        (
            DecodingResult::U8(mut data),
            Layout::Rgb {
                bits: 8,
                samples: 3,
                premultiplied: false,
            },
        ) => {
            check_len(data.len(), width * height * 3)?;
            data.truncate(width * height * 3);
            return Ok(Rgb8Image::new(width, height, data));
        }
        (samples, _) => samples,
    };
    let mut out = vec![0u8; width * height * 3];
    match (samples, layout) {
        (
            DecodingResult::U8(data),
            Layout::Grey {
                bits,
                inverted,
                extra,
            },
        ) => {
            let row_len = if bits == 8 {
                width * (1 + extra)
            } else {
                (width * bits as usize).div_ceil(8)
            };
            check_len(data.len(), row_len * height)?;
            let scale = match bits {
                1 => 255,
                2 => 85,
                4 => 17,
                _ => 1,
            };
            for (y, row) in data.chunks_exact(row_len).take(height).enumerate() {
                for x in 0..width {
                    let v = if bits == 8 {
                        row[x * (1 + extra)]
                    } else {
                        packed(row, x, bits) * scale
                    };
                    let v = if inverted { 255 - v } else { v };
                    out[(y * width + x) * 3..][..3].fill(v);
                }
            }
        }
        (DecodingResult::U16(data), Layout::Grey16) => {
            check_len(data.len(), width * height)?;
            for (o, &v) in out.chunks_exact_mut(3).zip(&data) {
                o.fill(clip16(v));
            }
        }
        (DecodingResult::U8(data), Layout::GreyAlpha { premultiplied }) => {
            check_len(data.len(), width * height * 2)?;
            for (o, p) in out.chunks_exact_mut(3).zip(data.chunks_exact(2)) {
                o.fill(if premultiplied {
                    unpremultiply(p[0], p[1])
                } else {
                    p[0]
                });
            }
        }
        (
            DecodingResult::U8(data),
            Layout::Rgb {
                bits: 8,
                samples,
                premultiplied,
            },
        ) => {
            check_len(data.len(), width * height * samples)?;
            for (o, p) in out.chunks_exact_mut(3).zip(data.chunks_exact(samples)) {
                for c in 0..3 {
                    o[c] = if premultiplied {
                        unpremultiply(p[c], p[3])
                    } else {
                        p[c]
                    };
                }
            }
        }
        (
            DecodingResult::U16(data),
            Layout::Rgb {
                bits: 16,
                samples,
                premultiplied,
            },
        ) => {
            check_len(data.len(), width * height * samples)?;
            for (o, p) in out.chunks_exact_mut(3).zip(data.chunks_exact(samples)) {
                for c in 0..3 {
                    let v = (p[c] >> 8) as u8;
                    o[c] = if premultiplied {
                        unpremultiply(v, (p[3] >> 8) as u8)
                    } else {
                        v
                    };
                }
            }
        }
        (DecodingResult::U8(data), Layout::Palette { bits, samples }) => {
            let row_len = if bits == 8 {
                width * samples
            } else {
                (width * bits as usize).div_ceil(8)
            };
            check_len(data.len(), row_len * height)?;
            for (y, row) in data.chunks_exact(row_len).take(height).enumerate() {
                for x in 0..width {
                    let i = if bits == 8 {
                        row[x * samples]
                    } else {
                        packed(row, x, bits)
                    };
                    out[(y * width + x) * 3..][..3].copy_from_slice(&palette.rgb(i));
                }
            }
        }
        (DecodingResult::U8(data), Layout::Cmyk { bits: 8, samples }) => {
            check_len(data.len(), width * height * samples)?;
            let cmyk: Vec<u8> = data
                .chunks_exact(samples)
                .flat_map(|p| [p[0], p[1], p[2], p[3]])
                .collect();
            out = cmyk_to_rgb(&cmyk);
        }
        (DecodingResult::U16(data), Layout::Cmyk { bits: 16, samples }) => {
            check_len(data.len(), width * height * samples)?;
            let cmyk: Vec<u8> = data
                .chunks_exact(samples)
                .flat_map(|p| [p[0], p[1], p[2], p[3]].map(|v| (v >> 8) as u8))
                .collect();
            out = cmyk_to_rgb(&cmyk);
        }
        _ => return Err("TIFF samples are not in the layout their tags declare (refused)".into()),
    }
    Ok(Rgb8Image::new(width, height, out))
}

fn check_len(got: usize, needed: usize) -> Result<(), DecodeFailure> {
    if got < needed {
        Err(TRUNCATED.into())
    } else {
        Ok(())
    }
}

/// JPEG-compressed strips or tiles: each one a JPEG stream (completed by the JPEGTables tag), decoded by
/// libjpeg-turbo to RGB (YCbCr) or grey as Pillow's libtiff does, and placed on the image.
fn decode_jpeg_chunks(
    decoder: &mut Decoder<Cursor<&[u8]>>,
    bytes: &[u8],
    width: usize,
    height: usize,
    layout: Layout,
) -> Result<Rgb8Image, DecodeFailure> {
    // libtiff asks libjpeg for RGB only for YCbCr; otherwise for the components as stored.
    let (inverted, output) = match layout {
        Layout::JpegYcbcr => (false, super::jpeg::Output::Rgb),
        Layout::Grey { bits: 8, inverted, extra: 0 } => (inverted, super::jpeg::Output::Rgb),
        Layout::Rgb { bits: 8, samples: 3, premultiplied: false } => (false, super::jpeg::Output::Components),
        _ => return Err("JPEG-compressed TIFF other than RGB, YCbCr or 8-bit grey is not supported (refused rather than decoded differently from Pillow)".into()),
    };
    let tables = decoder
        .find_tag(Tag::JPEGTables)
        .map_err(|e| describe(&e))?
        .map(|v| v.into_u8_vec().map_err(|e| describe(&e)))
        .transpose()?;
    let subsampling = tag_vec(decoder, Tag::Unknown(530))?;
    let expected_sampling = match (layout, subsampling.as_deref()) {
        (Layout::JpegYcbcr, Some([h, v])) => Some((*h as u8, *v as u8)),
        (Layout::JpegYcbcr, _) => None,
        _ => Some((1, 1)),
    };
    let tiled = tag_vec(decoder, Tag::TileOffsets)?.is_some();
    let (offsets, counts, chunk_w, chunk_h) = if tiled {
        let tw = tag_one(decoder, Tag::TileWidth)?.ok_or("tiled TIFF without TileWidth")? as usize;
        let th =
            tag_one(decoder, Tag::TileLength)?.ok_or("tiled TIFF without TileLength")? as usize;
        (
            tag_vec(decoder, Tag::TileOffsets)?.unwrap_or_default(),
            tag_vec(decoder, Tag::TileByteCounts)?.unwrap_or_default(),
            tw,
            th,
        )
    } else {
        let rows =
            tag_one(decoder, Tag::RowsPerStrip)?.map_or(height, |r| (r as usize).min(height));
        (
            tag_vec(decoder, Tag::StripOffsets)?.unwrap_or_default(),
            tag_vec(decoder, Tag::StripByteCounts)?.unwrap_or_default(),
            width,
            rows,
        )
    };
    if chunk_w == 0 || chunk_h == 0 {
        return Err("TIFF with empty strips or tiles".into());
    }
    let across = width.div_ceil(chunk_w);
    let down = height.div_ceil(chunk_h);
    if offsets.len() < across * down || counts.len() < across * down {
        return Err("TIFF lists fewer strips or tiles than the image needs".into());
    }
    let mut out = vec![0u8; width * height * 3];
    for index in 0..across * down {
        let (start, count) = (offsets[index] as usize, counts[index] as usize);
        let data = bytes
            .get(start..start.saturating_add(count))
            .ok_or(TRUNCATED)?;
        // libtiff reads the tables as a datastream of their own (SOI … EOI) and each strip as a stream.
        if let Some(t) = &tables {
            if !(t.starts_with(&[0xFF, 0xD8]) && t.ends_with(&[0xFF, 0xD9])) {
                return Err(
                    "TIFF JPEGTables is not a JPEG tables datastream (libtiff refuses it)".into(),
                );
            }
        }
        if !data.starts_with(&[0xFF, 0xD8]) {
            return Err(
                "TIFF JPEG strip or tile does not start a JPEG stream (libtiff refuses it)".into(),
            );
        }
        let stream = match &tables {
            Some(t) if t.len() >= 4 && data.len() >= 2 => [&t[..t.len() - 2], &data[2..]].concat(),
            _ => data.to_vec(),
        };
        let (cx, cy) = ((index % across) * chunk_w, (index / across) * chunk_h);
        let (jw, jh, rgb) = super::jpeg::decode_stream(
            &stream,
            output,
            super::jpeg::Warnings::All,
            |w, h, sampling| {
                // libtiff's JPEGPreDecode: component 0 sampled as the YCbCrSubsampling tag says (1×1 unless
                // YCbCr; without the tag libtiff takes the stream's own), every other component 1×1.
                let first_ok = expected_sampling.is_none_or(|e| sampling.first() == Some(&e));
                if !first_ok || sampling.iter().skip(1).any(|&s| s != (1, 1)) {
                    return Err(format!("JPEG strip sampled {sampling:?}, not as the TIFF declares (libtiff refuses it)"));
                }
                if w != chunk_w || h < chunk_h.min(height - cy) || h > chunk_h {
                    return Err(format!(
                        "JPEG strip or tile of {w}x{h} where the TIFF declares {chunk_w}x{chunk_h}"
                    ));
                }
                Ok(())
            },
        )?;
        let _ = jw;
        for y in 0..jh.min(height - cy) {
            let n = chunk_w.min(width - cx);
            let src = &rgb[y * chunk_w * 3..][..n * 3];
            let dst = &mut out[((cy + y) * width + cx) * 3..][..n * 3];
            dst.copy_from_slice(src);
        }
    }
    if inverted {
        out.iter_mut().for_each(|v| *v = 255 - *v);
    }
    Ok(Rgb8Image::new(width, height, out))
}

fn describe(error: &tiff::TiffError) -> String {
    match error {
        tiff::TiffError::IoError(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            TRUNCATED.into()
        }
        tiff::TiffError::LimitsExceeded => {
            "TIFF needs more memory than the pixel limit allows".into()
        }
        other => format!("corrupt or unsupported TIFF: {other}"),
    }
}
