//! Pixel conversions shared by the format modules, each one Pillow's own (the C functions named).

use crate::image::Rgb8Image;

/// Pillow's `MULDIV255(a, b)`: a·b/255 rounded, in its integer form.
fn muldiv255(a: u32, b: u32) -> u32 {
    let t = a * b + 128;
    ((t >> 8) + t) >> 8
}

/// Pillow's `cmyk2rgb` (Convert.c): r = nk − c·nk/255 with nk = 255 − k, on interleaved CMYK samples
/// already in Pillow's polarity (0 = no ink).
pub(super) fn cmyk_to_rgb(cmyk: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(cmyk.len() / 4 * 3);
    for p in cmyk.chunks_exact(4) {
        let nk = 255 - p[3] as u32;
        for &v in &p[..3] {
            out.push((nk - muldiv255(v as u32, nk)) as u8);
        }
    }
    out
}

/// A palette as Pillow holds it: 256 RGB entries, those the file does not give are black.
pub(super) struct Palette([[u8; 3]; 256]);

impl Palette {
    /// From packed RGB triples (`BGR` when `bgr`), `stride` bytes apart; entries past 256 are ignored.
    pub(super) fn from_packed(data: &[u8], stride: usize, bgr: bool) -> Self {
        let mut entries = [[0u8; 3]; 256];
        for (entry, c) in entries.iter_mut().zip(data.chunks(stride)) {
            if c.len() >= 3 {
                *entry = if bgr {
                    [c[2], c[1], c[0]]
                } else {
                    [c[0], c[1], c[2]]
                };
            }
        }
        Palette(entries)
    }

    /// The grey ramp a palette-less image reads through (index = grey level).
    pub(super) fn grey() -> Self {
        let mut entries = [[0u8; 3]; 256];
        for (i, e) in entries.iter_mut().enumerate() {
            *e = [i as u8; 3];
        }
        Palette(entries)
    }

    pub(super) fn rgb(&self, index: u8) -> [u8; 3] {
        self.0[index as usize]
    }

    /// One index a pixel → RGB8.
    pub(super) fn apply(&self, indices: &[u8]) -> Vec<u8> {
        indices.iter().flat_map(|&i| self.0[i as usize]).collect()
    }
}

/// Pillow's `I16_RGB`: a 16-bit grey sample is clipped to 255 (not scaled).
pub(super) fn clip16(v: u16) -> u8 {
    v.min(255) as u8
}

/// Pillow's un-premultiplication (`unpackRGBa`): c·255/a truncated and clipped; a = 0 gives black.
pub(super) fn unpremultiply(c: u8, a: u8) -> u8 {
    match a {
        0 => 0,
        255 => c,
        a => (c as u32 * 255 / a as u32).min(255) as u8,
    }
}

/// `ImageOps.exif_transpose` for the TIFF Orientation tag (1–8); other values leave the image as it is.
pub(super) fn orient(image: Rgb8Image, orientation: u16) -> Rgb8Image {
    if !(2..=8).contains(&orientation) {
        return image;
    }
    let (w, h) = (image.width, image.height);
    let swap = orientation >= 5;
    let (ow, oh) = if swap { (h, w) } else { (w, h) };
    let mut out = vec![0u8; w * h * 3];
    for oy in 0..oh {
        for ox in 0..ow {
            // The source pixel of output (ox, oy), per Pillow's Transpose method for each orientation.
            let (sx, sy) = match orientation {
                2 => (w - 1 - ox, oy),         // FLIP_LEFT_RIGHT
                3 => (w - 1 - ox, h - 1 - oy), // ROTATE_180
                4 => (ox, h - 1 - oy),         // FLIP_TOP_BOTTOM
                5 => (oy, ox),                 // TRANSPOSE
                6 => (oy, h - 1 - ox),         // ROTATE_270
                7 => (w - 1 - oy, h - 1 - ox), // TRANSVERSE
                _ => (w - 1 - oy, ox),         // 8: ROTATE_90
            };
            let s = (sy * w + sx) * 3;
            let d = (oy * ow + ox) * 3;
            out[d..d + 3].copy_from_slice(&image.pixels[s..s + 3]);
        }
    }
    Rgb8Image::new(ow, oh, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmyk_white_and_full_black() {
        assert_eq!(
            cmyk_to_rgb(&[0, 0, 0, 0, 0, 0, 0, 255]),
            vec![255, 255, 255, 0, 0, 0]
        );
    }

    #[test]
    fn orientations_match_their_transposes() {
        // 2×1 image: pixel values 1 and 2. Orientation 6 (ROTATE_270, clockwise) makes it 1×2, 1 on top.
        let image = Rgb8Image::new(2, 1, vec![1, 1, 1, 2, 2, 2]);
        assert_eq!(orient(image.clone(), 2).pixels, vec![2, 2, 2, 1, 1, 1]);
        let r = orient(image.clone(), 6);
        assert_eq!((r.width, r.height, r.pixels[0]), (1, 2, 1));
        let r = orient(image, 8);
        assert_eq!((r.width, r.height, r.pixels[0]), (1, 2, 2));
    }
}
