//! The scalar implementation that `resample` replaced, kept verbatim (per channel: gather, resize into a new
//! buffer, normalise each value through `Preprocessing::normalise`) as the oracle of the fast path's tests.

use super::crop::copy_centred_square;
use super::taps::{
    clip8, pil_bicubic_axis, pil_bicubic_axis_fixed, tf1_axis, torch_aa_bicubic_axis, torch_aa_dot,
    torch_axis, PIL_PRECISION_BITS,
};
use super::{crop_offset, fit_within, shorter_side_to, Fit, Preprocessing, Resize};
use crate::image::Rgb8View;

pub fn preprocess_into(image: Rgb8View<'_>, p: &Preprocessing, out: &mut [f32]) {
    if p.fit == Fit::SquareCrop {
        // The centred square, then the square stretched to the output (which it fills exactly).
        let mut square = Vec::new();
        let side = copy_centred_square(image, &mut square);
        let stretch = Preprocessing {
            fit: Fit::Stretch,
            ..*p
        };
        return preprocess_into(Rgb8View::new(side, side, &square), &stretch, out);
    }
    let size = p.size;
    assert_eq!(out.len(), p.image_len());
    let (w, h) = (image.width, image.height);
    let (rw, rh) = match p.fit {
        Fit::Stretch | Fit::SquareCrop => (size, size),
        Fit::Pad { .. } if w.max(h) > size => fit_within(w, h, size),
        Fit::Pad { .. } => (w, h),
        Fit::CenterCrop => shorter_side_to(w, h, size),
    };
    for (c, plane) in out.chunks_exact_mut(size * size).enumerate() {
        let resized = resize_channel(image, c, p, rw, rh);
        match p.fit {
            Fit::Stretch | Fit::SquareCrop => {
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

fn resize_channel(
    image: Rgb8View<'_>,
    c: usize,
    p: &Preprocessing,
    out_w: usize,
    out_h: usize,
) -> Vec<f32> {
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
        Resize::TorchBicubicAntialias => torch_bicubic_aa(&src, w, h, out_w, out_h),
    }
}

/// torch's separable antialiased resize: the width first, then the height; an axis whose size does not change
/// is not resampled (`separable_upsample_generic_Nd_kernel_impl`).
fn torch_bicubic_aa(
    src: &[f32],
    width: usize,
    height: usize,
    out_w: usize,
    out_h: usize,
) -> Vec<f32> {
    let horizontal: Vec<f32> = if out_w == width {
        src.to_vec()
    } else {
        let xs = torch_aa_bicubic_axis(width, out_w);
        let mut tmp = vec![0f32; out_w * height];
        for (row_out, row_in) in tmp.chunks_exact_mut(out_w).zip(src.chunks_exact(width)) {
            for (o, (start, weights)) in row_out.iter_mut().zip(&xs) {
                *o = torch_aa_dot(weights, |j| row_in[start + j]);
            }
        }
        tmp
    };
    if out_h == height {
        return horizontal;
    }
    let ys = torch_aa_bicubic_axis(height, out_h);
    let mut out = vec![0f32; out_w * out_h];
    for (row_out, (start, weights)) in out.chunks_exact_mut(out_w).zip(&ys) {
        for (x, o) in row_out.iter_mut().enumerate() {
            *o = torch_aa_dot(weights, |j| horizontal[(start + j) * out_w + x]);
        }
    }
    out
}

fn torch_bilinear(
    src: &[f32],
    width: usize,
    height: usize,
    out_w: usize,
    out_h: usize,
) -> Vec<f32> {
    let xs = torch_axis(width, out_w);
    let ys = torch_axis(height, out_h);
    let mut out = vec![0f32; out_w * out_h];
    for (row, y) in out.chunks_exact_mut(out_w).zip(&ys) {
        let (r0, r1) = (&src[y.i0 * width..][..width], &src[y.i1 * width..][..width]);
        for (o, x) in row.iter_mut().zip(&xs) {
            *o = y.a * (x.a * r0[x.i0] + x.b * r0[x.i1]) + y.b * (x.a * r1[x.i0] + x.b * r1[x.i1]);
        }
    }
    out
}

fn tf1_bilinear(src: &[f32], width: usize, height: usize, out_w: usize, out_h: usize) -> Vec<f32> {
    let xs = tf1_axis(width, out_w);
    let ys = tf1_axis(height, out_h);
    let mut out = vec![0f32; out_w * out_h];
    for (row, y) in out.chunks_exact_mut(out_w).zip(&ys) {
        let (r0, r1) = (&src[y.i0 * width..][..width], &src[y.i1 * width..][..width]);
        for (o, x) in row.iter_mut().zip(&xs) {
            let top = r0[x.i0] + (r0[x.i1] - r0[x.i0]) * x.a;
            let bottom = r1[x.i0] + (r1[x.i1] - r1[x.i0]) * x.a;
            *o = top + (bottom - top) * y.a;
        }
    }
    out
}

fn pil_bicubic(src: &[f32], width: usize, height: usize, out_w: usize, out_h: usize) -> Vec<f32> {
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

fn pil_bicubic_u8(src: &[u8], width: usize, height: usize, out_w: usize, out_h: usize) -> Vec<u8> {
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
