//! Where each output pixel of one axis reads its source pixels, and with which weights, for each resize kernel.
//! Shared by the fast path (`resample`) and the scalar reference it is tested against.

/// One output pixel of a two-tap (bilinear) axis: source indices and the kernel's two coefficients.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinearTap {
    pub i0: usize,
    pub i1: usize,
    pub a: f32,
    pub b: f32,
}

/// torch's source index and weights for one axis (`area_pixel_compute_source_index`, non-cubic,
/// `align_corners=False`), computed in f32 as torch does for f32 tensors: out = a·src[i0] + b·src[i1].
pub fn torch_axis(in_size: usize, out_size: usize) -> Vec<LinearTap> {
    if in_size == out_size {
        return (0..out_size)
            .map(|i| LinearTap {
                i0: i,
                i1: i,
                a: 1.0,
                b: 0.0,
            })
            .collect();
    }
    let scale = in_size as f32 / out_size as f32;
    (0..out_size)
        .map(|dst| {
            let real = (scale * (dst as f32 + 0.5) - 0.5).max(0.0);
            let i0 = (real.floor() as usize).min(in_size - 1);
            let l1 = (real - i0 as f32).clamp(0.0, 1.0);
            let i1 = if i0 < in_size - 1 { i0 + 1 } else { i0 };
            LinearTap {
                i0,
                i1,
                a: 1.0 - l1,
                b: l1,
            }
        })
        .collect()
}

/// TensorFlow 1 `resize_bilinear(align_corners=False)`: in = out · scale, no half-pixel offset;
/// out = src[i0] + (src[i1] − src[i0])·a (`b` unused).
pub fn tf1_axis(in_size: usize, out_size: usize) -> Vec<LinearTap> {
    let scale = in_size as f32 / out_size as f32;
    (0..out_size)
        .map(|dst| {
            let real = dst as f32 * scale;
            let i0 = (real.floor() as usize).min(in_size - 1);
            let i1 = (i0 + 1).min(in_size - 1);
            LinearTap {
                i0,
                i1,
                a: real - i0 as f32,
                b: 0.0,
            }
        })
        .collect()
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
pub fn pil_bicubic_axis(in_size: usize, out_size: usize) -> Vec<(usize, Vec<f64>)> {
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

/// torch's antialiased bicubic filter (`HelperInterpCubic::aa_filter`, Keys' cubic with a = −0.5, Pillow's) on
/// f32, as torch's AVX2 and AVX-512 CPU kernels evaluate it: GCC contracts each `p·x + q` of the polynomial
/// into a fused multiply-add there (`-ffp-contract=fast` is GCC's default and those builds have FMA), so each
/// `mul_add` below is one of those contractions. (Measured: with them the resized images of
/// `shared/conformance/dinov2/features_edm2_torch.npz` are reproduced bit for bit; without, up to 2.3e-4 off.)
fn torch_aa_cubic(x: f32) -> f32 {
    const A: f32 = -0.5;
    let x = x.abs();
    if x < 1.0 {
        // ((A + 2)·x − (A + 3))·x·x + 1
        ((A + 2.0).mul_add(x, -(A + 3.0)) * x).mul_add(x, 1.0)
    } else if x < 2.0 {
        // ((A·x − 5A)·x + 8A)·x − 4A
        A.mul_add(x, -(5.0 * A))
            .mul_add(x, 8.0 * A)
            .mul_add(x, -(4.0 * A))
    } else {
        0.0
    }
}

/// torch's `_compute_indices_min_size_weights_aa` for `F.interpolate(float32, mode="bicubic", antialias=True,
/// align_corners=False)` with an output size (no scale factor): per output pixel the first source index and the
/// normalised f32 weights. Every step in torch's types: the scale in f32, the centre `scale·(i + 0.5)` in f64
/// rounded to f32, the filter argument `(j + xmin − centre + 0.5)·invscale` in f64 from an f32 difference, the
/// weights and their sum in f32.
pub fn torch_aa_bicubic_axis(in_size: usize, out_size: usize) -> Vec<(usize, Vec<f32>)> {
    let scale = in_size as f32 / out_size as f32;
    let (support, invscale) = if scale >= 1.0 {
        ((2.0 * scale as f64) as f32, (1.0 / scale as f64) as f32)
    } else {
        (2.0, 1.0)
    };
    let max_taps = support.ceil() as i64 * 2 + 1;
    (0..out_size)
        .map(|i| {
            let center = (scale as f64 * (i as f64 + 0.5)) as f32;
            // C++ casts truncate toward zero (a negative start becomes 0 either way).
            let xmin = (((center - support) as f64 + 0.5) as i64).max(0);
            let xmax = (((center + support) as f64 + 0.5) as i64).min(in_size as i64);
            let xsize = (xmax - xmin).clamp(0, max_taps);
            let mut weights: Vec<f32> = (0..xsize)
                .map(|j| {
                    let offset = ((j + xmin) as f32 - center) as f64 + 0.5;
                    torch_aa_cubic((offset * invscale as f64) as f32)
                })
                .collect();
            let total = weights.iter().fold(0.0f32, |s, &w| s + w);
            if total != 0.0 {
                weights.iter_mut().for_each(|w| *w /= total);
            }
            (xmin as usize, weights)
        })
        .collect()
}

/// One output value of torch's antialiased pass: `v₀·w₀`, then `+= vⱼ·wⱼ` in tap order, each contracted into a
/// fused multiply-add as in torch's AVX2/AVX-512 builds (`interpolate_aa_single_dim`, f32 accumulator).
#[inline(always)]
pub fn torch_aa_dot(weights: &[f32], mut value: impl FnMut(usize) -> f32) -> f32 {
    let Some(&w0) = weights.first() else {
        return 0.0; // no taps (cannot happen for sizes ≥ 1: the support is ≥ 2 pixels)
    };
    let mut acc = value(0) * w0;
    for (j, &w) in weights.iter().enumerate().skip(1) {
        acc = value(j).mul_add(w, acc);
    }
    acc
}

/// Pillow's fixed-point precision for 8-bit resampling (`PRECISION_BITS = 32 − 8 − 2`).
pub const PIL_PRECISION_BITS: u32 = 22;

/// The taps of `pil_bicubic_axis` as Pillow's `normalize_coeffs_8bpc` rounds them (half away from zero).
pub fn pil_bicubic_axis_fixed(in_size: usize, out_size: usize) -> Vec<(usize, Vec<i32>)> {
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
pub fn clip8(acc: i64) -> u8 {
    (acc >> PIL_PRECISION_BITS).clamp(0, 255) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pil_u8_weights_sum_to_one_in_fixed_point() {
        // Normalised taps rounded one by one: their sum is within a few units of 2^22 at every position.
        for (n_in, n_out) in [(100, 224), (500, 224), (224, 224 * 3), (7, 3)] {
            for (_, taps) in pil_bicubic_axis_fixed(n_in, n_out) {
                let sum: i32 = taps.iter().sum();
                assert!(
                    (sum - (1 << 22)).abs() <= taps.len() as i32,
                    "{n_in}->{n_out}: {sum}"
                );
            }
        }
    }
}
