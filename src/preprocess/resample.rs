//! The fast path of preprocessing: each kernel as two separable passes over per-thread buffers, writing
//! straight into the caller's output planes.
//!
//! 1. Horizontal: each needed source row is resampled, all three channels at once, straight from the
//!    interleaved bytes through a 256-entry table of `source_value`, for the window's columns only. The
//!    bicubic kernels (many taps) do it column-wise instead: 16 rows at a time are transposed into a strip and
//!    each output column is computed for all of them at once, vectorised across rows (`columns_pass`).
//! 2. Vertical: each output row of the window is resampled from those rows into its plane, then normalised
//!    in place (Pillow's 8-bit kernel maps its bytes through a table of the normalised values instead).
//!
//! Every arithmetic expression is the scalar reference's, term for term and in the same order, so the results
//! are the same floats (tested against `reference` in `super::tests`). Only the loops are restructured:
//! - the horizontal pass runs once per source row, not once per output row and tap, and the bicubic ones run
//!   across rows, not along them (each value's sum still in tap order);
//! - a kernel's branches are hoisted out of the inner loops, and the vertical pass keeps a block of outputs
//!   in registers over all taps, so the inner loops vectorise (and are built for AVX2 and AVX-512 too,
//!   `simd`);
//! - the axis taps are cached per thread, and the buffers are reused: no allocation once warm.

use std::cell::RefCell;
use std::ops::Range;
use std::rc::Rc;

use super::simd::dispatch;
use super::taps::{
    pil_bicubic_axis, pil_bicubic_axis_fixed, tf1_axis, torch_aa_bicubic_axis, torch_aa_dot,
    torch_axis, LinearTap, PIL_PRECISION_BITS,
};
use super::{Preprocessing, Resize, Unit};
use crate::image::Rgb8View;

/// The part of the `resized_w × resized_h` resize that lands in the output square, and where it lands.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    /// Size of the whole resized image.
    pub resized: (usize, usize),
    /// First column and row of the resized image that are kept.
    pub from: (usize, usize),
    /// Columns and rows kept.
    pub len: (usize, usize),
    /// Column and row of the output square where they go.
    pub to: (usize, usize),
}

impl Window {
    /// The whole `size × size` output, resized to exactly that (`Fit::Stretch`).
    pub fn whole(size: usize) -> Self {
        Window {
            resized: (size, size),
            from: (0, 0),
            len: (size, size),
            to: (0, 0),
        }
    }

    /// The window's share of a horizontal axis' taps (one per resized column).
    fn columns<'a, U>(&self, xs: &'a [U]) -> &'a [U] {
        &xs[self.from.0..][..self.len.0]
    }

    /// The window's share of a vertical axis' taps (one per resized row).
    fn rows<'a, U>(&self, ys: &'a [U]) -> &'a [U] {
        &ys[self.from.1..][..self.len.1]
    }

    /// The source rows the vertical pass reads: the window's own rows where the height is not resized (the pass
    /// is then a copy), else `spanned()`, the rows its taps read.
    fn source_rows(&self, height: usize, spanned: impl FnOnce() -> Range<usize>) -> Range<usize> {
        if self.resized.1 == height {
            self.from.1..self.from.1 + self.len.1
        } else {
            spanned()
        }
    }
}

/// Most (input, output) axis pairs a thread keeps taps for: a dataset of mixed sizes keeps the common ones.
const CACHED_AXES: usize = 16;

/// Recently used axes of one kernel, most recent last.
struct AxisCache<T> {
    entries: Vec<((usize, usize), Rc<T>)>,
}

impl<T> Default for AxisCache<T> {
    fn default() -> Self {
        Self {
            entries: Vec::new(),
        }
    }
}

impl<U> AxisCache<Vec<U>> {
    /// The taps of both axes of `image` resized to `window.resized`, each axis whole (the window's share:
    /// `Window::columns` and `Window::rows`).
    fn axes(
        &mut self,
        image: Rgb8View<'_>,
        window: Window,
        make: impl Fn(usize, usize) -> Vec<U>,
    ) -> (Rc<Vec<U>>, Rc<Vec<U>>) {
        let xs = self.get(image.width, window.resized.0, &make);
        let ys = self.get(image.height, window.resized.1, &make);
        (xs, ys)
    }
}

impl<T> AxisCache<T> {
    fn get(
        &mut self,
        in_size: usize,
        out_size: usize,
        make: impl FnOnce(usize, usize) -> T,
    ) -> Rc<T> {
        let key = (in_size, out_size);
        if let Some(i) = self.entries.iter().rposition(|(k, _)| *k == key) {
            let entry = self.entries.remove(i);
            self.entries.push(entry);
        } else {
            if self.entries.len() == CACHED_AXES {
                self.entries.remove(0);
            }
            self.entries.push((key, Rc::new(make(in_size, out_size))));
        }
        Rc::clone(&self.entries.last().expect("just pushed").1)
    }
}

/// Per-thread buffers and taps, reused from image to image: no allocation on the hot path once warm.
#[derive(Default)]
struct Scratch {
    torch: AxisCache<Vec<LinearTap>>,
    tf1: AxisCache<Vec<LinearTap>>,
    bicubic: AxisCache<Vec<(usize, Vec<f64>)>>,
    bicubic_fixed: AxisCache<Vec<(usize, Vec<i32>)>>,
    torch_aa: AxisCache<Vec<(usize, Vec<f32>)>>,
    /// One source row as three planar lines of source values, for the bilinear horizontal pass to read (faster
    /// there than table lookups per tap; slower for the bicubic ones, measured).
    line: Vec<f32>,
    /// The horizontal pass: per channel, the needed source rows × the window's columns.
    rows: Vec<f32>,
    rows_u8: Vec<u8>,
    /// LANES source rows transposed, for the column-wise horizontal pass (`columns_pass`).
    strip: Vec<f32>,
    strip_u8: Vec<u8>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::default();
}

/// Resample every channel of `image` into the window of `out` (3 planes of `p.size²`), normalised.
/// Values of `out` outside the window are left as they are.
pub fn resize_into(image: Rgb8View<'_>, p: &Preprocessing, window: Window, out: &mut [f32]) {
    SCRATCH.with(|scratch| {
        let s = &mut *scratch.borrow_mut();
        match p.resize {
            Resize::TorchBilinear | Resize::Tf1Bilinear => {
                let torch = p.resize == Resize::TorchBilinear;
                let (xs, ys) = if torch {
                    s.torch.axes(image, window, torch_axis)
                } else {
                    s.tf1.axes(image, window, tf1_axis)
                };
                let (xs, ys) = (window.columns(&xs), window.rows(&ys));
                float_image(image, p, window, &Linear { torch, xs, ys }, s, out);
            }
            Resize::PilBicubicFloat => {
                let (xs, ys) = s.bicubic.axes(image, window, pil_bicubic_axis);
                let (xs, ys) = (window.columns(&xs), window.rows(&ys));
                float_image(image, p, window, &Bicubic { xs, ys }, s, out);
            }
            Resize::TorchBicubicAntialias => {
                let (xs, ys) = s.torch_aa.axes(image, window, torch_aa_bicubic_axis);
                let (xs, ys) = (window.columns(&xs), window.rows(&ys));
                float_image(image, p, window, &TorchAa { xs, ys }, s, out);
            }
            Resize::PilBicubicU8 => {
                let (xs, ys) = s.bicubic_fixed.axes(image, window, pil_bicubic_axis_fixed);
                u8_image(
                    image,
                    p,
                    window,
                    (window.columns(&xs), window.rows(&ys)),
                    s,
                    out,
                );
            }
        }
    });
}

/// Output values a vertical pass keeps in registers at once: each accumulates over every tap before it is
/// stored, instead of a row of accumulators being loaded and stored once per tap.
const LANES: usize = 16;

/// The three channels' horizontal-pass rows of one source row.
type Rows3<'a, T = f32> = [&'a mut [T]; 3];

/// A float kernel's two passes. An axis whose size does not change is copied instead (what every kernel's
/// taps compute there: 1·a + 0·a, a + (a − a)·0, or Pillow skipping the pass).
trait FloatKernel {
    /// Whether this kernel runs its AVX-512 build on CPUs that have it (else its AVX2 build): only where that
    /// measured faster (`preprocess::bench`).
    const AVX512: bool = false;
    /// The source rows that the window's output rows read.
    fn rows_needed(&self) -> Range<usize>;
    /// One interleaved source row → the window's columns of each channel, reading samples through `table`.
    /// `line`: a buffer the kernel may use.
    fn horizontal(&self, pixels: &[u8], table: &[f32; 256], out: Rows3<'_>, line: &mut Vec<f32>);
    /// Output row `j` of the window from `rows` (source rows from `first_row`, `width` values each).
    fn vertical(&self, j: usize, rows: &[f32], first_row: usize, width: usize, out: &mut [f32]);
    /// Whether the horizontal pass runs column-wise (`columns`) rather than row by row (`horizontal`), for an
    /// image that is shrunk horizontally or not: where that measured faster (`preprocess::bench`).
    fn column_wise(&self, _shrinking: bool) -> bool {
        false
    }
    /// The whole horizontal pass over `rows` column-wise (`columns_pass`) into `out` (the three channels'
    /// planes, `rows.len()` rows of the window's width each), reading samples through `table`. `strip`: a
    /// buffer it may use.
    fn columns(
        &self,
        _image: Rgb8View<'_>,
        _rows: Range<usize>,
        _table: &[f32; 256],
        _strip: &mut Vec<f32>,
        _out: &mut [f32],
    ) {
        unreachable!("only kernels whose column_wise() can be true")
    }
}

struct Linear<'a> {
    torch: bool,
    xs: &'a [LinearTap],
    ys: &'a [LinearTap],
}

impl FloatKernel for Linear<'_> {
    fn rows_needed(&self) -> Range<usize> {
        let first = self.ys.iter().map(|t| t.i0).min().unwrap_or(0);
        let last = self.ys.iter().map(|t| t.i1).max().unwrap_or(0);
        first..last + 1
    }

    #[inline(always)]
    fn horizontal(
        &self,
        pixels: &[u8],
        table: &[f32; 256],
        [r, g, b]: Rows3<'_>,
        line: &mut Vec<f32>,
    ) {
        let w = pixels.len() / 3;
        let (torch, xs) = (self.torch, self.xs);
        let tap = |t: &LinearTap, v0: f32, v1: f32| {
            if torch {
                t.a * v0 + t.b * v1
            } else {
                v0 + (v1 - v0) * t.a
            }
        };
        if 2 * xs.len() < w {
            // Shrinking: the taps read fewer samples than the row holds; look up just those.
            for (x, t) in xs.iter().enumerate() {
                let (p0, p1) = (&pixels[3 * t.i0..][..3], &pixels[3 * t.i1..][..3]);
                let v = |c: usize| tap(t, table[p0[c] as usize], table[p1[c] as usize]);
                (r[x], g[x], b[x]) = (v(0), v(1), v(2));
            }
            return;
        }
        // Otherwise the row as three planar lines of source values first: each sample is looked up once, and
        // the taps then read plain floats.
        line.resize(3 * w, 0.0);
        let (lr, rest) = line.split_at_mut(w);
        let (lg, lb) = rest.split_at_mut(w);
        for (i, px) in pixels.chunks_exact(3).enumerate() {
            (lr[i], lg[i], lb[i]) = (
                table[px[0] as usize],
                table[px[1] as usize],
                table[px[2] as usize],
            );
        }
        for (x, t) in xs.iter().enumerate() {
            r[x] = tap(t, lr[t.i0], lr[t.i1]);
            g[x] = tap(t, lg[t.i0], lg[t.i1]);
            b[x] = tap(t, lb[t.i0], lb[t.i1]);
        }
    }

    #[inline(always)]
    fn vertical(&self, j: usize, rows: &[f32], first_row: usize, width: usize, out: &mut [f32]) {
        let t = self.ys[j];
        let r0 = &rows[(t.i0 - first_row) * width..][..width];
        let r1 = &rows[(t.i1 - first_row) * width..][..width];
        if self.torch {
            for ((o, &v0), &v1) in out.iter_mut().zip(r0).zip(r1) {
                *o = t.a * v0 + t.b * v1;
            }
        } else {
            for ((o, &v0), &v1) in out.iter_mut().zip(r0).zip(r1) {
                *o = v0 + (v1 - v0) * t.a;
            }
        }
    }
}

struct Bicubic<'a> {
    xs: &'a [(usize, Vec<f64>)],
    ys: &'a [(usize, Vec<f64>)],
}

impl FloatKernel for Bicubic<'_> {
    /// Its AVX-512 build: 5–11 % faster enlarging (100² into 299²), the same elsewhere (`preprocess::bench`).
    const AVX512: bool = true;

    fn rows_needed(&self) -> Range<usize> {
        rows_spanned(self.ys)
    }

    /// Column-wise only when enlarging: shrinking, the f64 sums of many taps ran 10–25 % slower column-wise
    /// (512² to 1024×768 into 299², AVX2), enlarging 5–16 % faster.
    fn column_wise(&self, shrinking: bool) -> bool {
        !shrinking
    }

    #[inline(always)]
    fn columns(
        &self,
        image: Rgb8View<'_>,
        rows: Range<usize>,
        table: &[f32; 256],
        strip: &mut Vec<f32>,
        out: &mut [f32],
    ) {
        columns_pass(&BicubicColumns { table }, image, rows, self.xs, strip, out);
    }

    #[inline(always)]
    fn horizontal(
        &self,
        pixels: &[u8],
        table: &[f32; 256],
        [r, g, b]: Rows3<'_>,
        _: &mut Vec<f32>,
    ) {
        for (x, (start, weights)) in self.xs.iter().enumerate() {
            // -0.0 is the additive identity: the first product is kept bit for bit, as `Iterator::sum` does.
            let mut sum = [-0.0f64; 3];
            for (&w, px) in weights.iter().zip(pixels[3 * start..].chunks_exact(3)) {
                for (s, &v) in sum.iter_mut().zip(px) {
                    *s += w * table[v as usize] as f64;
                }
            }
            (r[x], g[x], b[x]) = (sum[0] as f32, sum[1] as f32, sum[2] as f32);
        }
    }

    #[inline(always)]
    fn vertical(&self, j: usize, rows: &[f32], first_row: usize, width: usize, out: &mut [f32]) {
        let (start, weights) = &self.ys[j];
        let first = (start - first_row) * width;
        let mut blocks = out.chunks_exact_mut(LANES);
        for (block, o) in blocks.by_ref().enumerate() {
            let acc: [f64; LANES] =
                vertical_taps(rows, first + block * LANES, width, weights, -0.0, |w, v| {
                    w * v as f64
                });
            for (o, a) in o.iter_mut().zip(acc) {
                *o = a as f32;
            }
        }
        let done = width - blocks.into_remainder().len();
        for (x, o) in out.iter_mut().enumerate().skip(done) {
            let [a]: [f64; 1] =
                vertical_taps(rows, first + x, width, weights, -0.0, |w, v| w * v as f64);
            *o = a as f32;
        }
    }
}

/// torch's antialiased bicubic: f32 taps, each output `v₀·w₀` then fused `+= vⱼ·wⱼ` (`taps::torch_aa_dot`).
struct TorchAa<'a> {
    xs: &'a [(usize, Vec<f32>)],
    ys: &'a [(usize, Vec<f32>)],
}

impl FloatKernel for TorchAa<'_> {
    fn rows_needed(&self) -> Range<usize> {
        rows_spanned(self.ys)
    }

    /// Column-wise at every size measured (100² to 1024×768 into 224², 1.2–1.5× the row-wise pass, AVX2).
    fn column_wise(&self, _shrinking: bool) -> bool {
        true
    }

    #[inline(always)]
    fn columns(
        &self,
        image: Rgb8View<'_>,
        rows: Range<usize>,
        table: &[f32; 256],
        strip: &mut Vec<f32>,
        out: &mut [f32],
    ) {
        columns_pass(&TorchAaColumns { table }, image, rows, self.xs, strip, out);
    }

    #[inline(always)]
    fn horizontal(
        &self,
        pixels: &[u8],
        table: &[f32; 256],
        [r, g, b]: Rows3<'_>,
        _: &mut Vec<f32>,
    ) {
        for (x, (start, weights)) in self.xs.iter().enumerate() {
            let px = &pixels[3 * start..];
            let v = |c: usize| torch_aa_dot(weights, |j| table[px[3 * j + c] as usize]);
            (r[x], g[x], b[x]) = (v(0), v(1), v(2));
        }
    }

    #[inline(always)]
    fn vertical(&self, j: usize, rows: &[f32], first_row: usize, width: usize, out: &mut [f32]) {
        let (start, weights) = &self.ys[j];
        let first = (start - first_row) * width;
        let mut blocks = out.chunks_exact_mut(LANES);
        for (block, o) in blocks.by_ref().enumerate() {
            let acc: [f32; LANES] = vertical_fused(rows, first + block * LANES, width, weights);
            o.copy_from_slice(&acc);
        }
        let done = width - blocks.into_remainder().len();
        for (x, o) in out.iter_mut().enumerate().skip(done) {
            let [a]: [f32; 1] = vertical_fused(rows, first + x, width, weights);
            *o = a;
        }
    }
}

/// `vertical_taps` for `taps::torch_aa_dot`'s order: the first product, then fused multiply-adds.
#[inline(always)]
fn vertical_fused<const N: usize>(
    rows: &[f32],
    offset: usize,
    width: usize,
    taps: &[f32],
) -> [f32; N] {
    let row = |k: usize| -> &[f32; N] {
        rows[offset + k * width..][..N]
            .try_into()
            .expect("N values")
    };
    let Some(&w0) = taps.first() else {
        return [0.0; N];
    };
    let mut acc = row(0).map(|v| v * w0);
    for (k, &tap) in taps.iter().enumerate().skip(1) {
        for (a, &v) in acc.iter_mut().zip(row(k)) {
            *a = v.mul_add(tap, *a);
        }
    }
    acc
}

/// N adjacent output values of a vertical pass: for each, `init` plus `term(tap, value)` over the taps in order,
/// from `rows` at `offset`, `offset + width`, … The N accumulators stay in registers across the taps.
#[inline(always)]
fn vertical_taps<T: Copy, W: Copy, A: Copy + std::ops::AddAssign, const N: usize>(
    rows: &[T],
    offset: usize,
    width: usize,
    taps: &[W],
    init: A,
    term: impl Fn(W, T) -> A,
) -> [A; N] {
    let mut acc = [init; N];
    for (k, &tap) in taps.iter().enumerate() {
        let row: &[T; N] = rows[offset + k * width..][..N]
            .try_into()
            .expect("N values");
        for (a, &v) in acc.iter_mut().zip(row) {
            *a += term(tap, v);
        }
    }
    acc
}

/// Every channel through a float kernel into its plane.
fn float_image<K: FloatKernel>(
    image: Rgb8View<'_>,
    p: &Preprocessing,
    window: Window,
    kernel: &K,
    s: &mut Scratch,
    out: &mut [f32],
) {
    dispatch!(float_image_body, [K: FloatKernel], (
        image: Rgb8View<'_>, p: &Preprocessing, window: Window, kernel: &K, s: &mut Scratch, out: &mut [f32]
    ), avx512: K::AVX512);
}

#[inline(always)]
fn float_image_body<K: FloatKernel>(
    image: Rgb8View<'_>,
    p: &Preprocessing,
    window: Window,
    kernel: &K,
    s: &mut Scratch,
    out: &mut [f32],
) {
    let (h, rh) = (image.height, window.resized.1);
    let (ww, wh) = window.len;
    let rows_needed = window.source_rows(h, || kernel.rows_needed());
    let table = source_table(p);
    let n = rows_needed.len() * ww;
    s.rows.resize(3 * n, 0.0);
    if window.resized.0 != image.width && kernel.column_wise(window.resized.0 < image.width) {
        let rows = rows_needed.clone();
        kernel.columns(image, rows, &table, &mut s.strip, &mut s.rows);
    } else {
        let mut pass = FloatRows {
            kernel,
            table: &table,
            line: &mut s.line,
        };
        horizontal_pass(image, window, rows_needed.clone(), &mut s.rows, &mut pass);
    }
    for (c, plane) in out.chunks_exact_mut(p.size * p.size).enumerate() {
        let rows = &s.rows[c * n..][..n];
        let norm = Normalise::new(p, c);
        for j in 0..wh {
            let (tx, ty) = window.to;
            let dst = &mut plane[(ty + j) * p.size + tx..][..ww];
            if rh == h {
                dst.copy_from_slice(&rows[j * ww..][..ww]);
            } else {
                kernel.vertical(j, rows, rows_needed.start, ww, dst);
            }
            norm.apply(dst);
        }
    }
}

/// Every channel through Pillow's 8-bit bicubic into its plane; each resampled byte becomes its network input
/// through a 256-entry table of `normalise(source_value(v))`. (AVX2 also brings the 32-bit vector multiply
/// that SSE2 lacks.)
fn u8_image(
    image: Rgb8View<'_>,
    p: &Preprocessing,
    window: Window,
    taps: FixedTaps<'_>,
    s: &mut Scratch,
    out: &mut [f32],
) {
    dispatch!(u8_image_body, [], (
        image: Rgb8View<'_>, p: &Preprocessing, window: Window, taps: FixedTaps<'_>, s: &mut Scratch, out: &mut [f32]
    ), avx512: U8_AVX512);
}

/// Whether Pillow's 8-bit kernel runs its AVX-512 build on CPUs that have it (`FloatKernel::AVX512`).
const U8_AVX512: bool = false;

/// Pillow's fixed-point taps of the window's columns and rows.
type FixedTaps<'a> = (&'a [(usize, Vec<i32>)], &'a [(usize, Vec<i32>)]);

#[inline(always)]
fn u8_image_body(
    image: Rgb8View<'_>,
    p: &Preprocessing,
    window: Window,
    (xs, ys): FixedTaps<'_>,
    s: &mut Scratch,
    out: &mut [f32],
) {
    let (h, rh) = (image.height, window.resized.1);
    let (ww, wh) = window.len;
    let half = 1i32 << (PIL_PRECISION_BITS - 1);
    let rows_needed = window.source_rows(h, || rows_spanned(ys));
    let n = rows_needed.len() * ww;
    if window.resized.0 != image.width {
        // Column-wise at every size measured (100² to 1024×768, 1.3–1.8× the row-wise pass, AVX2).
        s.rows_u8.resize(3 * n, 0);
        let columns = PilU8Columns { half };
        columns_pass(
            &columns,
            image,
            rows_needed.clone(),
            xs,
            &mut s.strip_u8,
            &mut s.rows_u8,
        );
    } else {
        let mut pass = PilFixedRows { xs, half };
        horizontal_pass(
            image,
            window,
            rows_needed.clone(),
            &mut s.rows_u8,
            &mut pass,
        );
    }
    for (c, plane) in out.chunks_exact_mut(p.size * p.size).enumerate() {
        let rows = &s.rows_u8[c * n..][..n];
        let table = output_table(p, c);
        for j in 0..wh {
            let (tx, ty) = window.to;
            let dst = &mut plane[(ty + j) * p.size + tx..][..ww];
            if rh == h {
                for (o, &v) in dst.iter_mut().zip(&rows[j * ww..][..ww]) {
                    *o = table[v as usize];
                }
                continue;
            }
            let (start, taps) = &ys[j];
            let first = (start - rows_needed.start) * ww;
            let term = |tap: i32, v: u8| tap * v as i32;
            let mut blocks = dst.chunks_exact_mut(LANES);
            for (block, o) in blocks.by_ref().enumerate() {
                let acc: [i32; LANES] =
                    vertical_taps(rows, first + block * LANES, ww, taps, half, term);
                for (o, a) in o.iter_mut().zip(acc) {
                    *o = table[clip8_i32(a) as usize];
                }
            }
            let done = ww - blocks.into_remainder().len();
            for (x, o) in dst.iter_mut().enumerate().skip(done) {
                let [a]: [i32; 1] = vertical_taps(rows, first + x, ww, taps, half, term);
                *o = table[clip8_i32(a) as usize];
            }
        }
    }
}

/// What the horizontal pass does with one source row. (A trait rather than closures: its `inline(always)`
/// methods are compiled into each build of the kernels, AVX2 included; closures measured 6–19 % slower.)
trait HorizontalPass {
    type Value: Copy + Default;
    /// One sample of an axis that is not resized.
    fn copy(&self, v: u8) -> Self::Value;
    /// One row of interleaved bytes into the three channels' rows.
    fn resample(&mut self, pixels: &[u8], dst: Rows3<'_, Self::Value>);
}

/// A float kernel's horizontal pass on source values (`source_value` through `table`).
struct FloatRows<'a, K> {
    kernel: &'a K,
    table: &'a [f32; 256],
    line: &'a mut Vec<f32>,
}

impl<K: FloatKernel> HorizontalPass for FloatRows<'_, K> {
    type Value = f32;

    #[inline(always)]
    fn copy(&self, v: u8) -> f32 {
        self.table[v as usize]
    }

    #[inline(always)]
    fn resample(&mut self, pixels: &[u8], dst: Rows3<'_>) {
        self.kernel.horizontal(pixels, self.table, dst, self.line);
    }
}

/// Pillow's 8-bit bicubic horizontal pass: fixed-point taps, bytes out.
struct PilFixedRows<'a> {
    xs: &'a [(usize, Vec<i32>)],
    half: i32,
}

impl HorizontalPass for PilFixedRows<'_> {
    type Value = u8;

    #[inline(always)]
    fn copy(&self, v: u8) -> u8 {
        v
    }

    #[inline(always)]
    fn resample(&mut self, pixels: &[u8], [r, g, b]: Rows3<'_, u8>) {
        for (x, (start, taps)) in self.xs.iter().enumerate() {
            // i32 as in Pillow: |Σ tap·v| ≤ 255 · Σ|tap| < 255 · 1.25 · 2²² < 2³¹.
            let mut acc = [self.half; 3];
            for (&k, px) in taps.iter().zip(pixels[3 * start..].chunks_exact(3)) {
                for (a, &v) in acc.iter_mut().zip(px) {
                    *a += k * v as i32;
                }
            }
            (r[x], g[x], b[x]) = (clip8_i32(acc[0]), clip8_i32(acc[1]), clip8_i32(acc[2]));
        }
    }
}

/// The horizontal pass over the source rows the vertical pass reads, into `rows`: the R, G and B planes one
/// after the other, each `rows_needed.len()` rows of the window's width; returns the length of one plane. Where
/// the window is not resized horizontally, the row's samples go through `pass.copy`; otherwise `pass.resample`
/// turns one row of interleaved bytes into the three planar rows.
#[inline(always)]
fn horizontal_pass<H: HorizontalPass>(
    image: Rgb8View<'_>,
    window: Window,
    rows_needed: Range<usize>,
    rows: &mut Vec<H::Value>,
    pass: &mut H,
) -> usize {
    let ww = window.len.0;
    // Not resized horizontally: the window's columns are copied from its first source column on.
    let unscaled_from = (window.resized.0 == image.width).then_some(window.from.0);
    let n = rows_needed.len() * ww;
    rows.resize(3 * n, H::Value::default());
    let (r, rest) = rows.split_at_mut(n);
    let (g, b) = rest.split_at_mut(n);
    for (i, y) in rows_needed.enumerate() {
        let pixels = image.row(y);
        let dst = [
            &mut r[i * ww..][..ww],
            &mut g[i * ww..][..ww],
            &mut b[i * ww..][..ww],
        ];
        match unscaled_from {
            Some(x0) => {
                for (c, dst) in dst.into_iter().enumerate() {
                    for (o, px) in dst.iter_mut().zip(pixels[3 * x0..].chunks_exact(3)) {
                        *o = pass.copy(px[c]);
                    }
                }
            }
            None => pass.resample(pixels, dst),
        }
    }
    n
}

/// A Pillow-style kernel's horizontal pass run column-wise (`columns_pass`): how it reads a source sample and
/// computes one output column for LANES adjacent source rows.
trait Columns {
    /// A source sample as the pass reads it (the byte itself, or its `source_value`).
    type Value: Copy + Default;
    type Weight;
    /// What the pass stores (a byte, or an f32).
    type Out: Copy;
    fn load(&self, v: u8) -> Self::Value;
    /// One output column for the strip's LANES rows: `strip` holds LANES values per source column (lane l:
    /// row l of the strip), `first` is the offset of the first tap's column. The vertical pass's arithmetic on
    /// adjacent values, so each lane is the row-wise pass's sum, term for term in tap order.
    fn block(
        &self,
        strip: &[Self::Value],
        first: usize,
        taps: &[Self::Weight],
    ) -> [Self::Out; LANES];
}

/// Pillow's 8-bit bicubic: i32 sums from the rounding half, clipped to a byte.
struct PilU8Columns {
    half: i32,
}

impl Columns for PilU8Columns {
    type Value = u8;
    type Weight = i32;
    type Out = u8;

    #[inline(always)]
    fn load(&self, v: u8) -> u8 {
        v
    }

    #[inline(always)]
    fn block(&self, strip: &[u8], first: usize, taps: &[i32]) -> [u8; LANES] {
        let acc: [i32; LANES] =
            vertical_taps(strip, first, LANES, taps, self.half, |t, v| t * v as i32);
        acc.map(clip8_i32)
    }
}

/// Pillow's float bicubic: f64 sums from −0.0 of `source_value`s.
struct BicubicColumns<'a> {
    table: &'a [f32; 256],
}

impl Columns for BicubicColumns<'_> {
    type Value = f32;
    type Weight = f64;
    type Out = f32;

    #[inline(always)]
    fn load(&self, v: u8) -> f32 {
        self.table[v as usize]
    }

    #[inline(always)]
    fn block(&self, strip: &[f32], first: usize, taps: &[f64]) -> [f32; LANES] {
        let acc: [f64; LANES] = vertical_taps(strip, first, LANES, taps, -0.0, |w, v| w * v as f64);
        acc.map(|a| a as f32)
    }
}

/// torch's antialiased bicubic: fused f32 sums (`taps::torch_aa_dot`).
struct TorchAaColumns<'a> {
    table: &'a [f32; 256],
}

impl Columns for TorchAaColumns<'_> {
    type Value = f32;
    type Weight = f32;
    type Out = f32;

    #[inline(always)]
    fn load(&self, v: u8) -> f32 {
        self.table[v as usize]
    }

    #[inline(always)]
    fn block(&self, strip: &[f32], first: usize, taps: &[f32]) -> [f32; LANES] {
        vertical_fused(strip, first, LANES, taps)
    }
}

/// The horizontal pass over the source rows `rows`, column-wise: LANES rows at a time are transposed into
/// `strip` (per channel, LANES values per source column), then each output column of the window (`xs`) is one
/// `block` for all of them: the taps' sums vectorised across rows instead of computed one pixel at a time. A
/// last strip of fewer rows computes its unused lanes from stale values and stores only its own. `out`: the
/// three channels' planes, `rows.len()` rows of `xs.len()` values each.
#[inline(always)]
fn columns_pass<C: Columns>(
    columns: &C,
    image: Rgb8View<'_>,
    rows: Range<usize>,
    xs: &[(usize, Vec<C::Weight>)],
    strip: &mut Vec<C::Value>,
    out: &mut [C::Out],
) {
    let (w, ww, n) = (image.width, xs.len(), rows.len());
    let plane = w * LANES;
    strip.resize(3 * plane, C::Value::default());
    for y0 in (0..n).step_by(LANES) {
        let lanes = LANES.min(n - y0);
        for l in 0..lanes {
            for (x, px) in image.row(rows.start + y0 + l).chunks_exact(3).enumerate() {
                for (c, &v) in px.iter().enumerate() {
                    strip[c * plane + x * LANES + l] = columns.load(v);
                }
            }
        }
        for c in 0..3 {
            let (strip, out) = (
                &strip[c * plane..][..plane],
                &mut out[c * n * ww..][..n * ww],
            );
            for (j, (start, taps)) in xs.iter().enumerate() {
                let block = columns.block(strip, start * LANES, taps);
                for (l, &v) in block[..lanes].iter().enumerate() {
                    out[(y0 + l) * ww + j] = v;
                }
            }
        }
    }
}

/// The source rows that Pillow-style taps (first row, one weight per row) read, together.
fn rows_spanned<W>(taps: &[(usize, Vec<W>)]) -> Range<usize> {
    let first = taps.iter().map(|(start, _)| *start).min().unwrap_or(0);
    let end = taps
        .iter()
        .map(|(start, w)| start + w.len())
        .max()
        .unwrap_or(0);
    first..end.max(first)
}

/// Pillow's `clip8` on its 32-bit accumulator.
fn clip8_i32(acc: i32) -> u8 {
    (acc >> PIL_PRECISION_BITS).clamp(0, 255) as u8
}

/// `source_value(v)` for every byte.
fn source_table(p: &Preprocessing) -> [f32; 256] {
    std::array::from_fn(|v| p.source_value(v as u8))
}

/// `normalise(source_value(v), c)` for every byte.
fn output_table(p: &Preprocessing, c: usize) -> [f32; 256] {
    std::array::from_fn(|v| p.normalise(p.source_value(v as u8), c))
}

/// `Preprocessing::normalise` for one channel with its branches decided once per row, so that each case is a
/// straight loop the compiler vectorises. Same operations in the same order: clamp, /255, −mean, /std.
struct Normalise {
    clamp_top: Option<f32>,
    div255: bool,
    mean: f32,
    std: f32,
}

impl Normalise {
    fn new(p: &Preprocessing, c: usize) -> Self {
        let top = if p.unit == Unit::BeforeResize {
            1.0
        } else {
            255.0
        };
        Self {
            clamp_top: p.clamp.then_some(top),
            div255: p.unit == Unit::AfterResize,
            mean: p.mean[c],
            std: p.std[c],
        }
    }

    #[inline(always)]
    fn apply(&self, row: &mut [f32]) {
        let (m, s) = (self.mean, self.std);
        match (self.clamp_top, self.div255) {
            (None, false) => row.iter_mut().for_each(|v| *v = (*v - m) / s),
            (None, true) => row.iter_mut().for_each(|v| *v = (*v / 255.0 - m) / s),
            (Some(top), false) => row
                .iter_mut()
                .for_each(|v| *v = (v.clamp(0.0, top) - m) / s),
            (Some(top), true) => row
                .iter_mut()
                .for_each(|v| *v = (v.clamp(0.0, top) / 255.0 - m) / s),
        }
    }
}
