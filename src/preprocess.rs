//! RGB8 image → a network's input: f32, planar 3×size×size, described by a `Preprocessing` value (target
//! size, resize kernel, how the image is fitted into the square, when pixels become [0, 1], clamping and
//! per-channel normalisation). Each backbone's preprocessing modes are presets of it, defined in Python.
//!
//! The resamplers are written by hand because each must reproduce one reference tool's arithmetic
//! exactly (torch's `F.interpolate`, TensorFlow 1's `resize_bilinear`, Pillow's `F`-mode and 8-bit bicubic);
//! general-purpose resize crates use other conventions.

use std::str::FromStr;

use crate::error::FidrsError;
use crate::image::Rgb8Image;

/// The largest square input a preset may ask for (ViTs at 518 px are the largest in use).
pub const MAX_SIZE: usize = 1024;

/// How one channel is resampled to its new size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resize {
    /// torch `F.interpolate(mode="bilinear", align_corners=False)`, no antialias, on f32 (pytorch-fid).
    TorchBilinear,
    /// TensorFlow 1 `resize_bilinear(align_corners=False)`: source = dest · in/out (TTUR, torch-fidelity).
    Tf1Bilinear,
    /// Pillow's bicubic on a float `F` image per channel (clean-fid).
    PilBicubicFloat,
    /// Pillow's bicubic on the 8-bit RGB image: 22-bit fixed-point taps, rounded and clipped to uint8 after
    /// each pass (`Image.resize(size, BICUBIC)`, what torchvision's `Resize` does to a PIL image).
    PilBicubicU8,
}

/// How the resized image fills the `size × size` square.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fit {
    /// Both axes to `size` (aspect ratio not kept).
    Stretch,
    /// Centred on a canvas of `fill`; an image larger than the square is first shrunk to fit, aspect kept.
    Pad { fill: [u8; 3] },
    /// Shorter side to `size` (torchvision `Resize(size)`), then the centre `size × size` (`CenterCrop`).
    CenterCrop,
}

/// When the 0..255 values become 0..1 (torchvision's `ToTensor`), which changes the f32 rounding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Values stay 0..255 (mean and std are then in 0..255 units).
    Never,
    /// u8/255 before resizing (pytorch-fid converts to a tensor first).
    BeforeResize,
    /// Resized values/255 afterwards (torchvision `Resize` on PIL, then `ToTensor`).
    AfterResize,
}

macro_rules! named_enum {
    ($ty:ident { $($variant:ident = $name:literal),+ $(,)? }) => {
        impl $ty {
            pub const NAMES: &'static [&'static str] = &[$($name),+];
        }
        impl FromStr for $ty {
            type Err = FidrsError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($name => Ok($ty::$variant),)+
                    other => Err(FidrsError::InvalidInput(format!(
                        "unknown {} {other:?}: expected one of {}",
                        stringify!($ty).to_lowercase(),
                        Self::NAMES.join(", ")
                    ))),
                }
            }
        }
    };
}

named_enum!(Resize {
    TorchBilinear = "torch-bilinear",
    Tf1Bilinear = "tf1-bilinear",
    PilBicubicFloat = "pil-bicubic-float",
    PilBicubicU8 = "pil-bicubic-u8",
});
named_enum!(Unit {
    Never = "never",
    BeforeResize = "before-resize",
    AfterResize = "after-resize",
});

impl Fit {
    pub const NAMES: &'static [&'static str] = &["stretch", "pad", "center-crop"];

    pub fn parse(name: &str, fill: [u8; 3]) -> Result<Self, FidrsError> {
        match name {
            "stretch" => Ok(Fit::Stretch),
            "pad" => Ok(Fit::Pad { fill }),
            "center-crop" => Ok(Fit::CenterCrop),
            other => Err(FidrsError::InvalidInput(format!(
                "unknown fit {other:?}: expected one of {}",
                Self::NAMES.join(", ")
            ))),
        }
    }
}

/// Everything that turns decoded pixels into one network input: out = (resized(v) − mean) / std per channel,
/// with v in 0..255 or 0..1 as `unit` says, clamped to that range first when `clamp` is set.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Preprocessing {
    pub size: usize,
    pub resize: Resize,
    pub fit: Fit,
    pub unit: Unit,
    pub clamp: bool,
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

impl Preprocessing {
    pub fn new(
        size: usize,
        resize: Resize,
        fit: Fit,
        unit: Unit,
        clamp: bool,
        mean: [f32; 3],
        std: [f32; 3],
    ) -> Result<Self, FidrsError> {
        if !(1..=MAX_SIZE).contains(&size) {
            return Err(FidrsError::InvalidInput(format!(
                "input size must be 1..={MAX_SIZE}, got {size}"
            )));
        }
        if mean.iter().any(|m| !m.is_finite()) || std.iter().any(|s| !s.is_finite() || *s == 0.0) {
            return Err(FidrsError::InvalidInput(format!(
                "normalisation needs finite means and finite non-zero stds, got mean {mean:?}, std {std:?}"
            )));
        }
        Ok(Self {
            size,
            resize,
            fit,
            unit,
            clamp,
            mean,
            std,
        })
    }

    /// Floats per image: 3 planes of size × size.
    pub fn image_len(&self) -> usize {
        3 * self.size * self.size
    }

    /// A source sample as the resampler sees it.
    fn source_value(&self, v: u8) -> f32 {
        match self.unit {
            Unit::BeforeResize => v as f32 / 255.0,
            _ => v as f32,
        }
    }

    /// A resampled value → the network's input for channel `c`.
    fn normalise(&self, v: f32, c: usize) -> f32 {
        let top = if self.unit == Unit::BeforeResize {
            1.0
        } else {
            255.0
        };
        let v = if self.clamp { v.clamp(0.0, top) } else { v };
        let v = if self.unit == Unit::AfterResize {
            v / 255.0
        } else {
            v
        };
        (v - self.mean[c]) / self.std[c]
    }
}

/// Write one image's network input into `out` (length `image_len()`, planar RGB).
pub fn preprocess_into(image: &Rgb8Image, p: &Preprocessing, out: &mut [f32]) {
    let size = p.size;
    assert_eq!(out.len(), p.image_len());
    let (w, h) = (image.width, image.height);
    // (resized width, height), and where the square's window starts in it (crop) or on the canvas (pad).
    let (rw, rh) = match p.fit {
        Fit::Stretch => (size, size),
        Fit::Pad { .. } if w.max(h) > size => fit_within(w, h, size),
        Fit::Pad { .. } => (w, h),
        Fit::CenterCrop => shorter_side_to(w, h, size),
    };
    for (c, plane) in out.chunks_exact_mut(size * size).enumerate() {
        let resized = resize_channel(image, c, p, rw, rh);
        match p.fit {
            Fit::Stretch => {
                for (o, &v) in plane.iter_mut().zip(&resized) {
                    *o = p.normalise(v, c);
                }
            }
            Fit::Pad { fill } => {
                plane.fill(p.normalise(p.source_value(fill[c]), c));
                let (left, top) = ((size - rw) / 2, (size - rh) / 2);
                for (y, row) in resized.chunks_exact(rw).enumerate() {
                    let dst = &mut plane[(top + y) * size + left..][..rw];
                    for (o, &v) in dst.iter_mut().zip(row) {
                        *o = p.normalise(v, c);
                    }
                }
            }
            Fit::CenterCrop => {
                let (left, top) = (crop_offset(rw, size), crop_offset(rh, size));
                for (y, row) in plane.chunks_exact_mut(size).enumerate() {
                    let src = &resized[(top + y) * rw + left..][..size];
                    for (o, &v) in row.iter_mut().zip(src) {
                        *o = p.normalise(v, c);
                    }
                }
            }
        }
    }
}

/// Channel `c` resampled to `out_w × out_h`, as f32 values in the resampler's units.
fn resize_channel(image: &Rgb8Image, c: usize, p: &Preprocessing, out_w: usize, out_h: usize) -> Vec<f32> {
    let (w, h) = (image.width, image.height);
    let samples = image.pixels[c..].iter().step_by(3);
    if p.resize == Resize::PilBicubicU8 {
        let src: Vec<u8> = samples.copied().collect();
        let resized = pil_bicubic_u8(&src, w, h, out_w, out_h);
        return resized.into_iter().map(|v| p.source_value(v)).collect();
    }
    let src: Vec<f32> = samples.map(|&v| p.source_value(v)).collect();
    match p.resize {
        Resize::TorchBilinear => torch_bilinear(&src, w, h, out_w, out_h),
        Resize::Tf1Bilinear => tf1_bilinear(&src, w, h, out_w, out_h),
        Resize::PilBicubicFloat | Resize::PilBicubicU8 => pil_bicubic(&src, w, h, out_w, out_h),
    }
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

fn torch_bilinear(src: &[f32], width: usize, height: usize, out_w: usize, out_h: usize) -> Vec<f32> {
    let xs = torch_axis(width, out_w);
    let ys = torch_axis(height, out_h);
    let mut out = vec![0f32; out_w * out_h];
    for (row, &(y0, y1, hy0, hy1)) in out.chunks_exact_mut(out_w).zip(&ys) {
        let (r0, r1) = (&src[y0 * width..][..width], &src[y1 * width..][..width]);
        for (o, &(x0, x1, wx0, wx1)) in row.iter_mut().zip(&xs) {
            *o = hy0 * (wx0 * r0[x0] + wx1 * r0[x1]) + hy1 * (wx0 * r1[x0] + wx1 * r1[x1]);
        }
    }
    out
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

fn tf1_bilinear(src: &[f32], width: usize, height: usize, out_w: usize, out_h: usize) -> Vec<f32> {
    let xs = tf1_axis(width, out_w);
    let ys = tf1_axis(height, out_h);
    let mut out = vec![0f32; out_w * out_h];
    for (row, &(y0, y1, ly)) in out.chunks_exact_mut(out_w).zip(&ys) {
        let (r0, r1) = (&src[y0 * width..][..width], &src[y1 * width..][..width]);
        for (o, &(x0, x1, lx)) in row.iter_mut().zip(&xs) {
            let top = r0[x0] + (r0[x1] - r0[x0]) * lx;
            let bottom = r1[x0] + (r1[x1] - r1[x0]) * lx;
            *o = top + (bottom - top) * ly;
        }
    }
    out
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
pub fn pil_bicubic(src: &[f32], width: usize, height: usize, out_w: usize, out_h: usize) -> Vec<f32> {
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

/// Pillow's fixed-point precision for 8-bit resampling (`PRECISION_BITS = 32 − 8 − 2`).
const PIL_PRECISION_BITS: u32 = 22;

/// The taps of `pil_bicubic_axis` as Pillow's `normalize_coeffs_8bpc` rounds them (half away from zero).
fn pil_bicubic_axis_fixed(in_size: usize, out_size: usize) -> Vec<(usize, Vec<i32>)> {
    let one = (1u32 << PIL_PRECISION_BITS) as f64;
    pil_bicubic_axis(in_size, out_size)
        .into_iter()
        .map(|(start, weights)| {
            let fixed = weights
                .iter()
                .map(|&w| {
                    if w < 0.0 {
                        (-0.5 + w * one) as i32
                    } else {
                        (0.5 + w * one) as i32
                    }
                })
                .collect();
            (start, fixed)
        })
        .collect()
}

/// Pillow's `clip8`: the accumulator (with its rounding half already added) → uint8.
fn clip8(acc: i64) -> u8 {
    (acc >> PIL_PRECISION_BITS).clamp(0, 255) as u8
}

/// Pillow's 8-bit resample of one channel: horizontal pass to uint8, then vertical pass to uint8
/// (`ImagingResampleHorizontal_8bpc` / `ImagingResampleVertical_8bpc`); an axis whose size does not change
/// is not resampled.
pub fn pil_bicubic_u8(src: &[u8], width: usize, height: usize, out_w: usize, out_h: usize) -> Vec<u8> {
    let half = 1i64 << (PIL_PRECISION_BITS - 1);
    let horizontal: Vec<u8> = if out_w == width {
        src.to_vec()
    } else {
        let xs = pil_bicubic_axis_fixed(width, out_w);
        let mut tmp = vec![0u8; out_w * height];
        for (row_out, row_in) in tmp.chunks_exact_mut(out_w).zip(src.chunks_exact(width)) {
            for (o, (start, taps)) in row_out.iter_mut().zip(&xs) {
                let acc: i64 = taps
                    .iter()
                    .zip(&row_in[*start..])
                    .map(|(&k, &v)| k as i64 * v as i64)
                    .sum();
                *o = clip8(half + acc);
            }
        }
        tmp
    };
    if out_h == height {
        return horizontal;
    }
    let ys = pil_bicubic_axis_fixed(height, out_h);
    let mut out = vec![0u8; out_w * out_h];
    let mut acc = vec![0i64; out_w];
    for (row_out, (start, taps)) in out.chunks_exact_mut(out_w).zip(&ys) {
        acc.fill(half);
        for (k, &tap) in taps.iter().enumerate() {
            let row = &horizontal[(start + k) * out_w..][..out_w];
            for (a, &v) in acc.iter_mut().zip(row) {
                *a += tap as i64 * v as i64;
            }
        }
        for (o, &a) in row_out.iter_mut().zip(&acc) {
            *o = clip8(a);
        }
    }
    out
}

/// Size of an image shrunk so that its long side is `size`, aspect kept (rounded like Pillow's `thumbnail`).
fn fit_within(width: usize, height: usize, size: usize) -> (usize, usize) {
    let scaled = |short: usize, long: usize| ((short as f64 * size as f64 / long as f64).round() as usize).max(1);
    if width >= height {
        (size, scaled(height, width))
    } else {
        (scaled(width, height), size)
    }
}

/// torchvision `Resize(size)` with an int: the shorter side becomes `size`, the longer `int(size·long/short)`.
fn shorter_side_to(width: usize, height: usize, size: usize) -> (usize, usize) {
    let (short, long) = (width.min(height), width.max(height));
    let new_long = (size * long / short).max(size);
    if width <= height {
        (size, new_long)
    } else {
        (new_long, size)
    }
}

/// torchvision `CenterCrop`: `int(round((len − size) / 2))`, Python's round (half to even).
fn crop_offset(len: usize, size: usize) -> usize {
    let excess = len - size;
    let floor = excess / 2;
    if excess % 2 == 1 && floor % 2 == 1 {
        floor + 1
    } else {
        floor
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn preset(resize: Resize, fit: Fit, unit: Unit, clamp: bool, mean: f32, std: f32) -> Preprocessing {
        Preprocessing::new(299, resize, fit, unit, clamp, [mean; 3], [std; 3]).unwrap()
    }

    #[test]
    fn identity_size_is_untouched_with_torch_bilinear() {
        let size = 299;
        let pixels: Vec<u8> = (0..size * size * 3).map(|i| (i % 256) as u8).collect();
        let image = Rgb8Image::new(size, size, pixels.clone());
        let p = preset(Resize::TorchBilinear, Fit::Stretch, Unit::BeforeResize, false, 0.5, 0.5);
        let mut out = vec![0f32; p.image_len()];
        preprocess_into(&image, &p, &mut out);
        // pixel (0, 1), green channel: (v/255 − 0.5)/0.5, which is exactly 2·v/255 − 1 in f32
        assert_eq!(out[size * size + 1], 2.0 * (pixels[3 + 1] as f32 / 255.0) - 1.0);
    }

    #[test]
    fn constant_image_stays_constant_with_every_kernel() {
        let image = Rgb8Image::new(37, 53, vec![200; 37 * 53 * 3]);
        for (resize, unit, expected) in [
            (Resize::TorchBilinear, Unit::BeforeResize, (200.0 / 255.0 - 0.5) / 0.5),
            (Resize::Tf1Bilinear, Unit::Never, (200.0 - 0.5) / 0.5),
            (Resize::PilBicubicFloat, Unit::Never, (200.0 - 0.5) / 0.5),
            (Resize::PilBicubicU8, Unit::AfterResize, (200.0 / 255.0 - 0.5) / 0.5),
        ] {
            let p = preset(resize, Fit::Stretch, unit, true, 0.5, 0.5);
            let mut out = vec![0f32; p.image_len()];
            preprocess_into(&image, &p, &mut out);
            assert!(out.iter().all(|v| (v - expected).abs() < 1e-5), "{resize:?}");
        }
    }

    #[test]
    fn pad_centres_small_images_on_the_fill_colour() {
        let image = Rgb8Image::new(99, 99, vec![0; 99 * 99 * 3]);
        let fill = [255, 255, 255];
        let p = preset(Resize::PilBicubicFloat, Fit::Pad { fill }, Unit::Never, true, 127.5, 127.5);
        let mut out = vec![0f32; p.image_len()];
        preprocess_into(&image, &p, &mut out);
        assert_eq!(out[0], 1.0); // corner: white
        assert_eq!(out[150 * 299 + 150], -1.0); // centre: the black image
        assert_eq!(out[100 * 299 + 99], 1.0); // one left of the image's first column (left = 100)
        assert_eq!(out[100 * 299 + 100], -1.0);
    }

    #[test]
    fn center_crop_takes_the_middle_of_the_shorter_side_resize() {
        assert_eq!(shorter_side_to(640, 480, 224), (298, 224)); // int(224·640/480) = 298
        assert_eq!(shorter_side_to(100, 300, 224), (224, 672));
        assert_eq!(crop_offset(298, 224), 37);
        assert_eq!(crop_offset(225, 224), 0); // round(0.5) = 0
        assert_eq!(crop_offset(227, 224), 2); // round(1.5) = 2
        assert_eq!(crop_offset(229, 224), 2); // round(2.5) = 2
    }

    #[test]
    fn pil_u8_weights_sum_to_one_in_fixed_point() {
        // Normalised taps rounded one by one: their sum is within a few units of 2^22 at every position.
        for (n_in, n_out) in [(100, 224), (500, 224), (224, 224 * 3), (7, 3)] {
            for (_, taps) in pil_bicubic_axis_fixed(n_in, n_out) {
                let sum: i32 = taps.iter().sum();
                assert!((sum - (1 << 22)).abs() <= taps.len() as i32, "{n_in}->{n_out}: {sum}");
            }
        }
    }
}
