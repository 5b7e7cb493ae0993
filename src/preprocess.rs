//! RGB8 image → the network's input: f32, planar 3×299×299, in one of four conventions.
//!
//! The resamplers are written by hand because each must reproduce one reference tool's arithmetic
//! exactly (torch's `F.interpolate`, TensorFlow 1's `resize_bilinear`, Pillow's `F`-mode bicubic);
//! general-purpose resize crates use other conventions.

use std::str::FromStr;

use crate::error::FidrsError;
use crate::image::Rgb8Image;

pub const SIZE: usize = 299;
pub const PLANE: usize = SIZE * SIZE;
pub const IMAGE_LEN: usize = 3 * PLANE;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// pytorch-fid: u8/255, torch bilinear (half-pixel centres, no antialias), then 2x − 1.
    PytorchFid,
    /// clean-fid: Pillow `F`-mode bicubic per channel, clip to [0, 255], then (x − 128)/128.
    Clean,
    /// TTUR / torch-fidelity: TF1 bilinear (source = dest · in/out) on [0, 255], then (x − 128)/128.
    Tf1,
    /// Centre on a 299×299 canvas of `fill` (shrinking larger images first), then x/127.5 − 1.
    Pad { fill: [u8; 3] },
}

impl Mode {
    pub fn name(&self) -> &'static str {
        match self {
            Mode::PytorchFid => "pytorch-fid",
            Mode::Clean => "clean",
            Mode::Tf1 => "tf1",
            Mode::Pad { .. } => "pad",
        }
    }
}

impl FromStr for Mode {
    type Err = FidrsError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "pytorch-fid" => Ok(Mode::PytorchFid),
            "clean" => Ok(Mode::Clean),
            "tf1" => Ok(Mode::Tf1),
            "pad" => Ok(Mode::Pad {
                fill: [255, 255, 255],
            }),
            other => Err(FidrsError::InvalidInput(format!(
                "unknown mode {other:?}: expected one of pytorch-fid, clean, tf1, pad"
            ))),
        }
    }
}

/// Write one image's network input into `out` (length `IMAGE_LEN`, planar RGB).
pub fn preprocess_into(image: &Rgb8Image, mode: Mode, out: &mut [f32]) {
    assert_eq!(out.len(), IMAGE_LEN);
    match mode {
        Mode::PytorchFid => {
            for (c, plane) in out.chunks_exact_mut(PLANE).enumerate() {
                let src = channel(image, c, |v| v as f32 / 255.0);
                torch_bilinear(&src, image.width, image.height, plane);
                plane.iter_mut().for_each(|v| *v = 2.0 * *v - 1.0);
            }
        }
        Mode::Tf1 => {
            for (c, plane) in out.chunks_exact_mut(PLANE).enumerate() {
                let src = channel(image, c, |v| v as f32);
                tf1_bilinear(&src, image.width, image.height, plane);
                plane.iter_mut().for_each(|v| *v = (*v - 128.0) / 128.0);
            }
        }
        Mode::Clean => {
            for (c, plane) in out.chunks_exact_mut(PLANE).enumerate() {
                let src = channel(image, c, |v| v as f32);
                let resized = pil_bicubic(&src, image.width, image.height, SIZE, SIZE);
                for (o, v) in plane.iter_mut().zip(resized) {
                    *o = (v.clamp(0.0, 255.0) - 128.0) / 128.0;
                }
            }
        }
        Mode::Pad { fill } => pad_into(image, fill, out),
    }
}

fn channel(image: &Rgb8Image, c: usize, f: impl Fn(u8) -> f32) -> Vec<f32> {
    image.pixels[c..].iter().step_by(3).map(|&v| f(v)).collect()
}

/// torch's source index and weights for one axis (`area_pixel_compute_source_index`, non-cubic,
/// `align_corners=False`), computed in f32 as torch does for f32 tensors.
fn torch_axis(in_size: usize, out_size: usize) -> Vec<(usize, usize, f32, f32)> {
    if in_size == out_size {
        return (0..out_size).map(|i| (i, i, 1.0, 0.0)).collect();
    }
    let scale = in_size as f32 / out_size as f32;
    (0..out_size)
        .map(|dst| {
            let real = (scale * (dst as f32 + 0.5) - 0.5).max(0.0);
            let i0 = (real.floor() as usize).min(in_size - 1);
            let l1 = (real - i0 as f32).clamp(0.0, 1.0);
            let i1 = if i0 < in_size - 1 { i0 + 1 } else { i0 };
            (i0, i1, 1.0 - l1, l1)
        })
        .collect()
}

fn torch_bilinear(src: &[f32], width: usize, height: usize, out: &mut [f32]) {
    let xs = torch_axis(width, SIZE);
    let ys = torch_axis(height, SIZE);
    for (row, &(y0, y1, hy0, hy1)) in out.chunks_exact_mut(SIZE).zip(&ys) {
        let (r0, r1) = (&src[y0 * width..][..width], &src[y1 * width..][..width]);
        for (o, &(x0, x1, wx0, wx1)) in row.iter_mut().zip(&xs) {
            *o = hy0 * (wx0 * r0[x0] + wx1 * r0[x1]) + hy1 * (wx0 * r1[x0] + wx1 * r1[x1]);
        }
    }
}

/// TensorFlow 1 `resize_bilinear(align_corners=False)`: in = out · scale, no half-pixel offset.
fn tf1_axis(in_size: usize, out_size: usize) -> Vec<(usize, usize, f32)> {
    let scale = in_size as f32 / out_size as f32;
    (0..out_size)
        .map(|dst| {
            let real = dst as f32 * scale;
            let i0 = (real.floor() as usize).min(in_size - 1);
            let i1 = (i0 + 1).min(in_size - 1);
            (i0, i1, real - i0 as f32)
        })
        .collect()
}

fn tf1_bilinear(src: &[f32], width: usize, height: usize, out: &mut [f32]) {
    let xs = tf1_axis(width, SIZE);
    let ys = tf1_axis(height, SIZE);
    for (row, &(y0, y1, ly)) in out.chunks_exact_mut(SIZE).zip(&ys) {
        let (r0, r1) = (&src[y0 * width..][..width], &src[y1 * width..][..width]);
        for (o, &(x0, x1, lx)) in row.iter_mut().zip(&xs) {
            let top = r0[x0] + (r0[x1] - r0[x0]) * lx;
            let bottom = r1[x0] + (r1[x1] - r1[x0]) * lx;
            *o = top + (bottom - top) * ly;
        }
    }
}

fn bicubic_kernel(x: f64) -> f64 {
    const A: f64 = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * A
    } else {
        0.0
    }
}

/// Pillow's `precompute_coeffs` for one axis: (first source index, normalised weights) per output pixel.
fn pil_bicubic_axis(in_size: usize, out_size: usize) -> Vec<(usize, Vec<f64>)> {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = 2.0 * filterscale;
    (0..out_size)
        .map(|xx| {
            let center = (xx as f64 + 0.5) * scale;
            let ss = 1.0 / filterscale;
            let xmin = ((center - support + 0.5) as i64).max(0) as usize;
            let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
            let mut weights: Vec<f64> = (xmin..xmax)
                .map(|x| bicubic_kernel((x as f64 - center + 0.5) * ss))
                .collect();
            let total: f64 = weights.iter().sum();
            if total != 0.0 {
                weights.iter_mut().for_each(|w| *w /= total);
            }
            (xmin, weights)
        })
        .collect()
}

/// Pillow's resample of an `F` (float32) image: horizontal pass, then vertical, each accumulating in
/// f64 and storing f32, as `ImagingResampleHorizontal_32bpc`/`Vertical_32bpc` do.
pub fn pil_bicubic(
    src: &[f32],
    width: usize,
    height: usize,
    out_w: usize,
    out_h: usize,
) -> Vec<f32> {
    let horizontal: Vec<f32> = if out_w == width {
        src.to_vec()
    } else {
        let xs = pil_bicubic_axis(width, out_w);
        let mut tmp = vec![0f32; out_w * height];
        for (row_out, row_in) in tmp.chunks_exact_mut(out_w).zip(src.chunks_exact(width)) {
            for (o, (start, weights)) in row_out.iter_mut().zip(&xs) {
                let s: f64 = weights
                    .iter()
                    .zip(&row_in[*start..])
                    .map(|(w, &v)| w * v as f64)
                    .sum();
                *o = s as f32;
            }
        }
        tmp
    };
    if out_h == height {
        return horizontal;
    }
    let ys = pil_bicubic_axis(height, out_h);
    let mut out = vec![0f32; out_w * out_h];
    for (row_out, (start, weights)) in out.chunks_exact_mut(out_w).zip(&ys) {
        for (x, o) in row_out.iter_mut().enumerate() {
            let s: f64 = weights
                .iter()
                .enumerate()
                .map(|(k, w)| w * horizontal[(start + k) * out_w + x] as f64)
                .sum();
            *o = s as f32;
        }
    }
    out
}

/// Size of an image shrunk so that its long side is `SIZE`, aspect kept (rounded like Pillow's `thumbnail`).
fn fit_size(width: usize, height: usize) -> (usize, usize) {
    if width >= height {
        (
            SIZE,
            ((height as f64 * SIZE as f64 / width as f64).round() as usize).max(1),
        )
    } else {
        (
            ((width as f64 * SIZE as f64 / height as f64).round() as usize).max(1),
            SIZE,
        )
    }
}

fn pad_into(image: &Rgb8Image, fill: [u8; 3], out: &mut [f32]) {
    let (w, h) = if image.width.max(image.height) > SIZE {
        fit_size(image.width, image.height)
    } else {
        (image.width, image.height)
    };
    let (left, top) = ((SIZE - w) / 2, (SIZE - h) / 2);
    for (c, plane) in out.chunks_exact_mut(PLANE).enumerate() {
        plane.fill(fill[c] as f32 / 127.5 - 1.0);
        let src = channel(image, c, |v| v as f32);
        let content = if (w, h) == (image.width, image.height) {
            src
        } else {
            pil_bicubic(&src, image.width, image.height, w, h)
        };
        for (y, row) in content.chunks_exact(w).enumerate() {
            let dst = &mut plane[(top + y) * SIZE + left..][..w];
            for (o, &v) in dst.iter_mut().zip(row) {
                *o = v.clamp(0.0, 255.0) / 127.5 - 1.0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_size_is_untouched_in_pytorch_fid_mode() {
        let pixels: Vec<u8> = (0..SIZE * SIZE * 3).map(|i| (i % 256) as u8).collect();
        let image = Rgb8Image::new(SIZE, SIZE, pixels.clone());
        let mut out = vec![0f32; IMAGE_LEN];
        preprocess_into(&image, Mode::PytorchFid, &mut out);
        // pixel (0, 1), green channel
        assert_eq!(out[PLANE + 1], 2.0 * (pixels[3 + 1] as f32 / 255.0) - 1.0);
    }

    #[test]
    fn constant_image_stays_constant_in_every_mode() {
        let image = Rgb8Image::new(37, 53, vec![200; 37 * 53 * 3]);
        let mut out = vec![0f32; IMAGE_LEN];
        for (mode, expected) in [
            (Mode::PytorchFid, 2.0 * 200.0 / 255.0 - 1.0),
            (Mode::Tf1, (200.0 - 128.0) / 128.0),
            (Mode::Clean, (200.0 - 128.0) / 128.0),
        ] {
            preprocess_into(&image, mode, &mut out);
            assert!(out.iter().all(|v| (v - expected).abs() < 1e-5), "{mode:?}");
        }
    }

    #[test]
    fn pad_centres_small_images_on_the_fill_colour() {
        let image = Rgb8Image::new(99, 99, vec![0; 99 * 99 * 3]);
        let mut out = vec![0f32; IMAGE_LEN];
        preprocess_into(
            &image,
            Mode::Pad {
                fill: [255, 255, 255],
            },
            &mut out,
        );
        assert_eq!(out[0], 1.0); // corner: white
        assert_eq!(out[150 * SIZE + 150], -1.0); // centre: the black image
        assert_eq!(out[100 * SIZE + 99], 1.0); // one left of the image's first column (left = 100)
        assert_eq!(out[100 * SIZE + 100], -1.0);
    }
}
