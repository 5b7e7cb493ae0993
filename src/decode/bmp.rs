//! BMP, transcribed from Pillow's `BmpImagePlugin` so that every verdict and pixel is Pillow's: the header
//! versions it reads (12, 40, 52, 56, 64, 108, 124 bytes), the bit-field layouts it accepts (others are
//! refused as it refuses them), its palette rules (a grey palette makes the image "L" or "1"), its
//! truncating 5/6-bit scaling, and its RLE decoder, whose skipped pixels are index 0 and which fails with
//! "not enough image data" when the runs end before the image is full.

use super::pixels::Palette;
use super::{finish, reserve, DecodeFailure, DecodeOptions, Decoded, TRUNCATED};
use crate::image::Rgb8Image;

fn u16_at(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 2)
        .map(|s| u16::from_le_bytes([s[0], s[1]]) as u32)
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 4)
        .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

const RAW: u32 = 0;
const RLE8: u32 = 1;
const RLE4: u32 = 2;
const BITFIELDS: u32 = 3;

/// How one row of samples becomes RGB: Pillow's rawmode for the file.
#[derive(Debug, Clone, Copy)]
enum RawMode {
    /// "1": one bit a pixel, set = white.
    Bilevel,
    /// "L": one byte a pixel, the grey level.
    Grey,
    /// RLE into a "1" image: one byte a pixel, non-zero = white.
    Bilevel8,
    /// "P;1", "P;4", "P": palette indices of 1, 4 or 8 bits.
    Indexed(u32),
    /// "BGR;15" and "BGR;16": 5-5-5 and 5-6-5, scaled by v·255/31 (or /63) truncated.
    Bgr15,
    Bgr16,
    /// "BGR".
    Bgr24,
    /// 32 bits a pixel; the byte that holds R, G and B.
    Bytes32([usize; 3]),
}

impl RawMode {
    fn bits(self) -> u32 {
        match self {
            RawMode::Bilevel => 1,
            RawMode::Grey | RawMode::Bilevel8 => 8,
            RawMode::Indexed(bits) => bits,
            RawMode::Bgr15 | RawMode::Bgr16 => 16,
            RawMode::Bgr24 => 24,
            RawMode::Bytes32(_) => 32,
        }
    }

    /// Unpack one row of `width` pixels into RGB.
    fn unpack(self, row: &[u8], width: usize, palette: &Palette, out: &mut [u8]) {
        for x in 0..width {
            let rgb = match self {
                RawMode::Bilevel => {
                    [if row[x / 8] & (0x80 >> (x % 8)) != 0 {
                        255
                    } else {
                        0
                    }; 3]
                }
                RawMode::Grey => [row[x]; 3],
                RawMode::Bilevel8 => [if row[x] != 0 { 255 } else { 0 }; 3],
                RawMode::Indexed(1) => palette.rgb((row[x / 8] >> (7 - x % 8)) & 1),
                RawMode::Indexed(4) => palette.rgb(if x % 2 == 0 {
                    row[x / 2] >> 4
                } else {
                    row[x / 2] & 15
                }),
                RawMode::Indexed(_) => palette.rgb(row[x]),
                RawMode::Bgr15 | RawMode::Bgr16 => {
                    let v = u16::from_le_bytes([row[2 * x], row[2 * x + 1]]) as u32;
                    let b = (v & 31) * 255 / 31;
                    let (r, g) = if matches!(self, RawMode::Bgr15) {
                        (((v >> 10) & 31) * 255 / 31, ((v >> 5) & 31) * 255 / 31)
                    } else {
                        (((v >> 11) & 31) * 255 / 31, ((v >> 5) & 63) * 255 / 63)
                    };
                    [r as u8, g as u8, b as u8]
                }
                RawMode::Bgr24 => [row[3 * x + 2], row[3 * x + 1], row[3 * x]],
                RawMode::Bytes32([r, g, b]) => [row[4 * x + r], row[4 * x + g], row[4 * x + b]],
            };
            out[3 * x..3 * x + 3].copy_from_slice(&rgb);
        }
    }
}

/// The bit-field layouts Pillow accepts (`SUPPORTED` in `BmpImagePlugin`), as the byte holding R, G, B.
fn bitfields_layout(bits: u32, masks: [u32; 4]) -> Option<RawMode> {
    const BYTE: [u32; 4] = [0xFF, 0xFF00, 0xFF0000, 0xFF000000];
    let byte_of = |m: u32| BYTE.iter().position(|&b| b == m);
    match bits {
        32 => {
            const ACCEPTED: [[u32; 4]; 8] = [
                [0xFF0000, 0xFF00, 0xFF, 0x0],
                [0xFF000000, 0xFF0000, 0xFF00, 0x0],
                [0xFF000000, 0xFF00, 0xFF, 0x0],
                [0xFF000000, 0xFF0000, 0xFF00, 0xFF],
                [0xFF, 0xFF00, 0xFF0000, 0xFF000000],
                [0xFF0000, 0xFF00, 0xFF, 0xFF000000],
                [0xFF000000, 0xFF00, 0xFF, 0xFF0000],
                [0x0, 0x0, 0x0, 0x0],
            ];
            if !ACCEPTED.contains(&masks) {
                return None;
            }
            if masks == [0; 4] {
                return Some(RawMode::Bytes32([2, 1, 0])); // "BGRA"
            }
            Some(RawMode::Bytes32([
                byte_of(masks[0])?,
                byte_of(masks[1])?,
                byte_of(masks[2])?,
            ]))
        }
        24 if masks[..3] == [0xFF0000, 0xFF00, 0xFF] => Some(RawMode::Bgr24),
        16 if masks[..3] == [0xF800, 0x7E0, 0x1F] => Some(RawMode::Bgr16),
        16 if masks[..3] == [0x7C00, 0x3E0, 0x1F] => Some(RawMode::Bgr15),
        _ => None,
    }
}

pub(super) fn decode(bytes: &[u8], options: &DecodeOptions) -> Result<Decoded, DecodeFailure> {
    let header_size = u32_at(bytes, 14).ok_or("not a BMP file (no header)")?;
    let mut offset = u32_at(bytes, 10).ok_or("not a BMP file (no header)")? as usize;
    let header_end = 14usize + header_size as usize;
    let header = bytes
        .get(18..header_end.max(18))
        .ok_or("BMP header is truncated")?;
    let mut position = header_end; // where Pillow's file pointer is after the header
    let (width, height, bits, compression, colors, palette_padding, top_down, masks);
    if header_size == 12 {
        width = u16_at(header, 0).ok_or(TRUNCATED)?;
        height = u16_at(header, 2).ok_or(TRUNCATED)?;
        bits = u16_at(header, 6).ok_or(TRUNCATED)?;
        compression = RAW;
        colors = 0;
        palette_padding = 3;
        top_down = false;
        masks = [0; 4];
    } else if [40, 52, 56, 64, 108, 124].contains(&header_size) {
        top_down = header[7] == 0xFF;
        width = u32_at(header, 0).ok_or(TRUNCATED)?;
        let raw_height = u32_at(header, 4).ok_or(TRUNCATED)?;
        height = if top_down {
            raw_height.wrapping_neg()
        } else {
            raw_height
        };
        bits = u16_at(header, 10).ok_or(TRUNCATED)?;
        compression = u32_at(header, 12).ok_or(TRUNCATED)?;
        colors = u32_at(header, 28).ok_or(TRUNCATED)?;
        palette_padding = 4;
        masks = if compression == BITFIELDS {
            if header.len() >= 48 {
                let alpha = if header.len() >= 52 {
                    u32_at(header, 48).ok_or(TRUNCATED)?
                } else {
                    0
                };
                [
                    u32_at(header, 36).ok_or(TRUNCATED)?,
                    u32_at(header, 40).ok_or(TRUNCATED)?,
                    u32_at(header, 44).ok_or(TRUNCATED)?,
                    alpha,
                ]
            } else {
                // A 40-byte header: the three masks follow it in the file.
                let m = |i: usize| u32_at(bytes, position + 4 * i).ok_or(TRUNCATED);
                let read = [m(0)?, m(1)?, m(2)?, 0];
                position += 12;
                read
            }
        } else {
            [0; 4]
        };
    } else {
        return Err(format!(
            "unsupported BMP header type ({header_size}), as in Pillow"
        ));
    }
    let (width, height) = (width as usize, height as usize);
    super::check_size(width, height, options)?;
    let colors = if colors == 0 {
        1u64 << bits.min(63)
    } else {
        colors as u64
    };
    if offset == header_end && bits <= 8 {
        offset += (palette_padding as u64 * colors) as usize;
    }
    let mut raw = match bits {
        1 | 4 | 8 => RawMode::Indexed(bits),
        16 => RawMode::Bgr15,
        24 => RawMode::Bgr24,
        32 => RawMode::Bytes32([2, 1, 0]), // "BGRX"
        _ => {
            return Err(format!(
                "unsupported BMP pixel depth ({bits}), as in Pillow"
            ))
        }
    };
    let rle = match compression {
        BITFIELDS => {
            raw = bitfields_layout(bits, masks).ok_or_else(|| {
                format!("unsupported BMP bitfields layout ({bits} bits, masks {masks:#x?}), as in Pillow")
            })?;
            false
        }
        RAW => false,
        RLE8 | RLE4 => true,
        other => {
            return Err(format!(
                "unsupported BMP compression ({other}), as in Pillow"
            ))
        }
    };
    let mut palette = Palette::grey();
    if let RawMode::Indexed(_) = raw {
        if !(1..=65536).contains(&colors) {
            return Err(format!(
                "unsupported BMP palette size ({colors}), as in Pillow"
            ));
        }
        let colors = colors as usize;
        let wanted = palette_padding as usize * colors;
        let data = bytes
            .get(position.min(bytes.len())..(position + wanted).min(bytes.len()))
            .unwrap_or(&[]);
        position += data.len();
        // Pillow drops a palette that is the grey ramp (black and white for two colours) and reads the
        // samples as grey levels (or bits), whatever their depth.
        let grey = (0..colors).all(|i| {
            let v = if colors == 2 { [0u8, 255][i] } else { i as u8 };
            data.get(i * palette_padding as usize..i * palette_padding as usize + 3)
                == Some(&[v, v, v][..])
        });
        if grey {
            raw = if colors <= 2 {
                RawMode::Bilevel
            } else {
                RawMode::Grey
            };
        } else if colors > 256 {
            return Err(format!(
                "BMP palette of {colors} colours (Pillow refuses it: invalid palette size)"
            ));
        } else {
            palette = Palette::from_packed(data, palette_padding as usize, true);
        }
    }
    if offset == 0 {
        offset = position;
    }
    let reservation = reserve(width, height, 4, options)?;
    let rle_data;
    let (data, stride, raw): (&[u8], usize, RawMode) = if rle {
        let raw = match raw {
            RawMode::Indexed(_) => RawMode::Indexed(8),
            RawMode::Grey => RawMode::Grey,
            RawMode::Bilevel => RawMode::Bilevel8,
            _ => {
                return Err(format!(
                    "RLE-compressed BMP of {bits} bits a pixel (Pillow refuses it too)"
                ))
            }
        };
        rle_data = rle_indices(bytes, offset, width, height, compression == RLE4);
        if rle_data.len() < width * height {
            return Err("not enough image data (the RLE runs end before the image is full, as Pillow refuses)".into());
        }
        (&rle_data, width, raw)
    } else {
        let line = (width * raw.bits() as usize).div_ceil(8);
        let stride = ((width * bits as usize + 31) >> 3) & !3;
        if stride < line {
            return Err(
                "BMP rows are shorter than their pixels need (Pillow refuses this file too)".into(),
            );
        }
        // Pillow's raw decoder stops after the last row's pixels: that row's padding may be missing.
        let needed = offset as u64 + (height as u64 - 1) * stride as u64 + line as u64;
        if (bytes.len() as u64) < needed {
            return Err(TRUNCATED.into());
        }
        (&bytes[offset..], stride, raw)
    };
    let mut pixels = vec![0u8; width * height * 3];
    for (i, out) in pixels.chunks_exact_mut(width * 3).enumerate() {
        // Rows are stored bottom-up unless the height was negative.
        let row = if top_down { i } else { height - 1 - i };
        raw.unpack(&data[row * stride..], width, &palette, out);
    }
    Ok(finish(Rgb8Image::new(width, height, pixels), reservation))
}

/// Pillow's `BmpRleDecoder`: the index bytes in file order, skipped pixels (end of line, delta) as index 0,
/// stopping at the end of the bitmap, the end of the data or a short read.
fn rle_indices(bytes: &[u8], offset: usize, width: usize, height: usize, rle4: bool) -> Vec<u8> {
    let dest = width * height;
    let mut data: Vec<u8> = Vec::with_capacity(dest);
    let mut pos = offset;
    let read = |pos: &mut usize, n: usize| -> &[u8] {
        let start = (*pos).min(bytes.len());
        let end = pos.saturating_add(n).min(bytes.len());
        *pos = pos.saturating_add(end - start);
        &bytes[start..end]
    };
    let mut x = 0usize;
    while data.len() < dest {
        let (Some(&count), Some(&byte)) = (read(&mut pos, 1).first(), read(&mut pos, 1).first())
        else {
            break;
        };
        if count != 0 {
            let n = if x + count as usize > width {
                width.saturating_sub(x)
            } else {
                count as usize
            };
            if rle4 {
                data.extend((0..n).map(|i| if i % 2 == 0 { byte >> 4 } else { byte & 15 }));
            } else {
                data.extend(std::iter::repeat_n(byte, n));
            }
            x += n;
        } else {
            match byte {
                0 => {
                    while !data.len().is_multiple_of(width) {
                        data.push(0);
                    }
                    x = 0;
                }
                1 => break,
                2 => {
                    let delta = read(&mut pos, 2);
                    if delta.len() < 2 {
                        break;
                    }
                    let skip =
                        (delta[0] as usize + delta[1] as usize * width).min(dest - data.len());
                    data.extend(std::iter::repeat_n(0, skip));
                    x = data.len() % width;
                }
                n => {
                    let count = (dest - data.len()).min(n as usize);
                    let wanted = if rle4 { count.div_ceil(2) } else { count };
                    let got = read(&mut pos, wanted);
                    if rle4 {
                        for (i, &b) in got.iter().enumerate() {
                            data.push(b >> 4);
                            if i * 2 + 1 < count {
                                data.push(b & 15);
                            }
                        }
                    } else {
                        data.extend_from_slice(got);
                    }
                    if got.len() < wanted || data.len() == dest {
                        break;
                    }
                    x += n as usize;
                    // Runs are padded to an even offset in the file (Pillow tests `fd.tell() % 2`).
                    if !pos.is_multiple_of(2) {
                        pos += 1;
                    }
                }
            }
        }
    }
    data
}
