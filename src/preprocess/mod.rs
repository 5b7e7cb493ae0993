//! RGB8 image → a network's input: f32, planar 3×size×size, described by a `Preprocessing` value (target
//! size, resize kernel, how the image is fitted into the square, when pixels become [0, 1], clamping and
//! per-channel normalisation). Each backbone's preprocessing modes are presets of it, defined in Python.
//!
//! The resamplers are written by hand because each must reproduce one reference tool's arithmetic
//! exactly (torch's `F.interpolate` bilinear and antialiased bicubic, TensorFlow 1's `resize_bilinear`, Pillow's
//! `F`-mode and 8-bit bicubic); general-purpose resize crates use other conventions.

use std::str::FromStr;

use crate::error::FidrsError;
use crate::image::Rgb8View;

#[cfg(test)]
mod bench;
mod crop;
#[cfg(test)]
mod reference;
mod resample;
pub mod simd;
pub mod taps;

use resample::Window;

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
    /// torch `F.interpolate(mode="bicubic", antialias=True, align_corners=False)` on f32 (EDM2's FD_DINOv2
    /// `resize_mode='torch'`): Pillow's filter and support, but f32 weights and accumulation, no rounding or
    /// clipping between the passes.
    TorchBicubicAntialias,
}

/// How the resized image fills the `size × size` square.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fit {
    /// Both axes to `size` (aspect ratio not kept).
    Stretch,
    /// Centred on a canvas of `fill`; an image larger than the square is first shrunk to fit, aspect kept.
    Pad { fill: [u8; 3] },
    /// Shorter side to `size` (torchvision `Resize(size)`: the longer `int(size·long/short)`), then the centre
    /// `size × size` (`CenterCrop`: offsets `int(round((len − size)/2))`, half to even): clean-fid's CLIP-FID.
    CenterCrop,
    /// The centred square of side `min(w, h)` at offsets `(h − side) // 2`, `(w − side) // 2` (floor), then that
    /// square resized to `size × size`: google-research/cmmd's `_center_crop_and_resize`.
    SquareCrop,
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
            pub const ALL: &'static [$ty] = &[$($ty::$variant),+];
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
    TorchBicubicAntialias = "torch-bicubic-antialias",
});
named_enum!(Unit {
    Never = "never",
    BeforeResize = "before-resize",
    AfterResize = "after-resize",
});

impl Fit {
    pub const NAMES: &'static [&'static str] = &["stretch", "pad", "center-crop", "square-crop"];

    pub fn parse(name: &str, fill: [u8; 3]) -> Result<Self, FidrsError> {
        match name {
            "stretch" => Ok(Fit::Stretch),
            "pad" => Ok(Fit::Pad { fill }),
            "center-crop" => Ok(Fit::CenterCrop),
            "square-crop" => Ok(Fit::SquareCrop),
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
pub fn preprocess_into(image: Rgb8View<'_>, p: &Preprocessing, out: &mut [f32]) {
    assert_eq!(out.len(), p.image_len());
    if p.fit == Fit::SquareCrop {
        return crop::with_centred_square(image, |square| {
            resample::resize_into(square, p, Window::whole(p.size), out)
        });
    }
    let size = p.size;
    let (w, h) = (image.width, image.height);
    let window = match p.fit {
        Fit::Stretch | Fit::SquareCrop => Window::whole(size),
        Fit::Pad { fill } => {
            let (rw, rh) = if w.max(h) > size {
                fit_within(w, h, size)
            } else {
                (w, h)
            };
            for (c, plane) in out.chunks_exact_mut(size * size).enumerate() {
                plane.fill(p.normalise(p.source_value(fill[c]), c));
            }
            Window {
                resized: (rw, rh),
                from: (0, 0),
                len: (rw, rh),
                to: ((size - rw) / 2, (size - rh) / 2),
            }
        }
        Fit::CenterCrop => {
            let (rw, rh) = shorter_side_to(w, h, size);
            Window {
                resized: (rw, rh),
                from: (crop_offset(rw, size), crop_offset(rh, size)),
                len: (size, size),
                to: (0, 0),
            }
        }
    };
    resample::resize_into(image, p, window, out);
}

/// Size of an image shrunk so that its long side is `size`, aspect kept (rounded like Pillow's `thumbnail`).
fn fit_within(width: usize, height: usize, size: usize) -> (usize, usize) {
    let scaled = |short: usize, long: usize| {
        ((short as f64 * size as f64 / long as f64).round() as usize).max(1)
    };
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
    use crate::image::Rgb8Image;

    fn preset(
        resize: Resize,
        fit: Fit,
        unit: Unit,
        clamp: bool,
        mean: f32,
        std: f32,
    ) -> Preprocessing {
        Preprocessing::new(299, resize, fit, unit, clamp, [mean; 3], [std; 3]).unwrap()
    }

    #[test]
    fn identity_size_is_untouched_with_torch_bilinear() {
        let size = 299;
        let pixels: Vec<u8> = (0..size * size * 3).map(|i| (i % 256) as u8).collect();
        let image = Rgb8Image::new(size, size, pixels.clone());
        let p = preset(
            Resize::TorchBilinear,
            Fit::Stretch,
            Unit::BeforeResize,
            false,
            0.5,
            0.5,
        );
        let mut out = vec![0f32; p.image_len()];
        preprocess_into(image.view(), &p, &mut out);
        // pixel (0, 1), green channel: (v/255 − 0.5)/0.5, which is exactly 2·v/255 − 1 in f32
        assert_eq!(
            out[size * size + 1],
            2.0 * (pixels[3 + 1] as f32 / 255.0) - 1.0
        );
    }

    #[test]
    fn constant_image_stays_constant_with_every_kernel() {
        let image = Rgb8Image::new(37, 53, vec![200; 37 * 53 * 3]);
        for (resize, unit, expected) in [
            (
                Resize::TorchBilinear,
                Unit::BeforeResize,
                (200.0 / 255.0 - 0.5) / 0.5,
            ),
            (Resize::Tf1Bilinear, Unit::Never, (200.0 - 0.5) / 0.5),
            (Resize::PilBicubicFloat, Unit::Never, (200.0 - 0.5) / 0.5),
            (
                Resize::PilBicubicU8,
                Unit::AfterResize,
                (200.0 / 255.0 - 0.5) / 0.5,
            ),
            (
                Resize::TorchBicubicAntialias,
                Unit::AfterResize,
                (200.0 / 255.0 - 0.5) / 0.5,
            ),
        ] {
            let p = preset(resize, Fit::Stretch, unit, true, 0.5, 0.5);
            let mut out = vec![0f32; p.image_len()];
            preprocess_into(image.view(), &p, &mut out);
            assert!(
                out.iter().all(|v| (v - expected).abs() < 1e-5),
                "{resize:?}"
            );
        }
    }

    #[test]
    fn pad_centres_small_images_on_the_fill_colour() {
        let image = Rgb8Image::new(99, 99, vec![0; 99 * 99 * 3]);
        let fill = [255, 255, 255];
        let p = preset(
            Resize::PilBicubicFloat,
            Fit::Pad { fill },
            Unit::Never,
            true,
            127.5,
            127.5,
        );
        let mut out = vec![0f32; p.image_len()];
        preprocess_into(image.view(), &p, &mut out);
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

    /// Deterministic pixels: a smooth gradient plus xorshift noise, so every kernel sees edges and flats.
    fn test_image(width: usize, height: usize, seed: u64) -> Rgb8Image {
        let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let pixels = (0..width * height * 3)
            .map(|i| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let smooth = (i / 3 % width + i / 3 / width) * 255 / (width + height);
                if state.is_multiple_of(4) {
                    (state >> 32) as u8
                } else {
                    smooth as u8
                }
            })
            .collect();
        Rgb8Image::new(width, height, pixels)
    }

    #[test]
    fn fast_path_equals_the_scalar_reference_bit_for_bit() {
        // Bound: 0 ulp. The fast path evaluates the reference's expressions term for term in the same order
        // (only loops, buffers and tables change), so every output must be the same f32, sign of zero included,
        // in every build of the kernels this CPU can run (baseline SSE2, AVX2 + FMA, AVX-512).
        let sizes = [
            (1, 1),
            (5, 3),
            (100, 100),
            (299, 299),
            (256, 256),
            (97, 331),
            (640, 480),
            (23, 1100),
            (313, 487),
            (1, 40),
            (40, 1),
        ];
        let fits = [
            Fit::Stretch,
            Fit::Pad { fill: [255, 0, 17] },
            Fit::CenterCrop,
            Fit::SquareCrop,
        ];
        let units = [Unit::Never, Unit::BeforeResize, Unit::AfterResize];
        let builds: Vec<_> = simd::Build::ALL
            .into_iter()
            .filter(|b| *b <= simd::supported())
            .collect();
        // One thread per (build, image): the kernel build is a thread-local cap, and the cases are independent
        // (the whole check runs in ~1/cores of its serial time: it is the slowest of CI's Rust tests).
        std::thread::scope(|scope| {
            for &build in &builds {
                for (n, &(w, h)) in sizes.iter().enumerate() {
                    scope.spawn(move || {
                        simd::tests::CAP.with(|c| c.set(Some(build)));
                            let image = test_image(w, h, n as u64);
                            for size in [299, 224, 7] {
                                for &resize in Resize::ALL {
                                    for fit in fits {
                                        for (u, unit) in units.into_iter().enumerate() {
                                            // Every (unit, clamp) pair on the small images; on the large ones (most of
                                            // the run time) the clamp alternates with the unit: the pairs only change
                                            // the per-value source and normalisation steps, which the small ones cover.
                                            let clamps: &[bool] = if w * h <= 40_000 {
                                                &[false, true]
                                            } else if u % 2 == 0 {
                                                &[false]
                                            } else {
                                                &[true]
                                            };
                                            for &clamp in clamps {
                                                let mean = [0.485, 0.456, 0.406];
                                                let std = [0.229, 0.224, 0.225];
                                                let p = Preprocessing::new(
                                                    size, resize, fit, unit, clamp, mean, std,
                                                )
                                                .unwrap();
                                                let mut fast = vec![f32::NAN; p.image_len()];
                                                let mut slow = vec![f32::NAN; p.image_len()];
                                                preprocess_into(image.view(), &p, &mut fast);
                                                reference::preprocess_into(image.view(), &p, &mut slow);
                                                let differing = fast
                                                    .iter()
                                                    .zip(&slow)
                                                    .position(|(a, b)| a.to_bits() != b.to_bits());
                                                assert!(
                                                    differing.is_none(),
                                                    "{w}×{h} → {p:?} ({build:?}): first difference at {differing:?}"
                                                );
                                            }
                                        }
                                    }
                                }
                            }
                    });
                }
            }
        });
        eprintln!("fast path = reference for the builds {builds:?}");
    }
}
