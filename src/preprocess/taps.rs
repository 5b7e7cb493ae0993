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
