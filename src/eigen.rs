//! Eigenvalues of a real symmetric matrix, no eigenvectors, by the two-stage reduction (as LAPACK's
//! `dsyevd_2stage` / `dsytrd_2stage` do): dense → band of half-width `BAND` with block Householder
//! transformations (all matrix–matrix products, the O(n³) part, at BLAS-3 speed and threaded), band →
//! tridiagonal by bulge chasing (O(n²·BAND), on a strip of the matrix that stays in cache), then the
//! tridiagonal eigenvalues by the implicit QL algorithm (O(n²)). Every step is an orthogonal similarity, so
//! the eigenvalues are backward stable (absolute error O(n·ε·‖A‖)), as with the one-stage reduction.
//!
//! The one-stage reduction (LAPACK's `dsytrd`, faer's `self_adjoint_eigenvalues`) spends half its flops in
//! matrix–vector products that read the whole trailing matrix once per column: memory-bound, and the floor of
//! the Fréchet distance. The two-stage one does the same flops as matrix–matrix products, plus a cheap second
//! stage: at d = 2048 it takes about half the time (`examples/la_timing.rs`).

use faer::linalg::matmul::matmul;
use faer::linalg::matmul::triangular::{self, BlockStructure};
use faer::{Accum, MatMut, MatRef, Par};

use crate::error::{FidrsError, Result};

/// The half-bandwidth of the intermediate band matrix: wide enough for efficient matrix products in the
/// first stage, narrow enough that the second stage (∝ BAND) stays cheap. Measured on a 2-core AMD EPYC
/// (Zen 5, AVX-512), wall seconds of this function on 2 threads (`examples/la_timing.rs`, best of 3):
/// d = 2048: 16 → 0.235, 20 → 0.229, 24 → 0.225, 26 → 0.274, 32 → 0.311, 33 → 0.268, 40 → 0.264;
/// d = 1024: 24 → 0.048, 32 → 0.064; d = 768: 24 → 0.027, 32 → 0.036; on one thread at d = 2048:
/// 24 → 0.322, 32 → 0.340. (Stage 1 alone, instrumented at d = 2048 on 2 threads: 0.126 s at 24, 0.19–0.22 s
/// at 28–32: faer's products with those inner sizes run slower, not only for the added flops.) Earlier, on one core
/// of an AVX2 machine, before stage 2 was vectorised: 16 → 0.69, 32 → 0.64, 64 → 0.77 CPU seconds.
const BAND: usize = 24;

/// The eigenvalues (ascending) of the symmetric n × n matrix whose lower triangle is in `a` (column-major,
/// leading dimension n; the upper triangle is ignored). `a` is used as workspace.
pub fn symmetric_eigenvalues(mut a: Vec<f64>, n: usize, par: Par) -> Result<Vec<f64>> {
    assert_eq!(a.len(), n * n);
    if n == 0 {
        return Ok(Vec::new());
    }
    reduce_to_band(&mut a, n, BAND, par);
    let (mut diag, mut offdiag) = band_to_tridiagonal(&a, n, BAND);
    drop(a);
    tridiagonal_eigenvalues(&mut diag, &mut offdiag)?;
    diag.sort_by(f64::total_cmp);
    Ok(diag)
}

/// A Householder reflector H = I − τ v vᵀ (v₀ = 1) with H x = β e₀, computed from x in place: x becomes
/// (β, v₁, …). Returns τ (0 when x is already a multiple of e₀: H = I).
#[inline(always)]
fn householder(x: &mut [f64]) -> f64 {
    let alpha = x[0];
    let tail_norm = norm(&x[1..]);
    if tail_norm == 0.0 {
        return 0.0;
    }
    let beta = -alpha.signum() * alpha.hypot(tail_norm);
    let tau = (beta - alpha) / beta;
    let scale = 1.0 / (alpha - beta);
    x[1..].iter_mut().for_each(|v| *v *= scale);
    x[0] = beta;
    tau
}

/// Column `c` of the n × n column-major matrix, rows `r0..r1`.
#[inline(always)]
fn column(a: &[f64], n: usize, c: usize, r0: usize, r1: usize) -> &[f64] {
    &a[c * n + r0..c * n + r1]
}

#[inline(always)]
fn column_mut(a: &mut [f64], n: usize, c: usize, r0: usize, r1: usize) -> &mut [f64] {
    &mut a[c * n + r0..c * n + r1]
}

/// ‖x‖₂: the plain sum of squares (the matrices here are scaled near 1), or a scaled one (hypot) when that
/// would overflow or lose precision to underflow.
#[inline(always)]
fn norm(x: &[f64]) -> f64 {
    let squares = dot(x, x);
    if squares.is_normal() && squares > 1e-280 && squares < 1e280 {
        squares.sqrt()
    } else {
        x.iter().fold(0.0f64, |s, &v| s.hypot(v))
    }
}

/// xᵀy with eight partial sums, so that the loop vectorises (a single running sum cannot be reordered).
#[inline(always)]
fn dot(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len().min(y.len());
    let (x, y) = (&x[..n], &y[..n]);
    let mut acc = [0f64; 8];
    let (xc, yc) = (x.chunks_exact(8), y.chunks_exact(8));
    let (xr, yr) = (xc.remainder(), yc.remainder());
    for (a, b) in xc.zip(yc) {
        for k in 0..8 {
            acc[k] += a[k] * b[k];
        }
    }
    let mut tail = 0.0;
    for (a, b) in xr.iter().zip(yr) {
        tail += a * b;
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail
}

#[inline(always)]
fn axpy(alpha: f64, x: &[f64], y: &mut [f64]) {
    y.iter_mut().zip(x).for_each(|(y, x)| *y += alpha * x);
}

/// Stage 1: A ← QᵀAQ, band of half-width `band` (entries more than `band` below the diagonal zero). For each
/// panel of `band` columns: a Householder QR of the part below the band, Q = I − V T Vᵀ (compact WY), and the
/// two-sided update of the trailing matrix A₂₂ ← A₂₂ − V Wᵀ − W Vᵀ with W = Y − ½ V (Tᵀ Vᵀ Y), Y = A₂₂ V T.
fn reduce_to_band(a: &mut [f64], n: usize, band: usize, par: Par) {
    let mut start = 0;
    while start + band + 1 < n {
        let r0 = start + band; // first row below the band
        let m = n - r0;
        let w = band.min(n - start);
        let k = w.min(m);
        // The panel A[r0.., start..start+w] → V (m × k, unit lower trapezoidal), τ, and R written back.
        let mut v = vec![0f64; m * k];
        let mut tau = vec![0f64; k];
        // Unblocked Householder QR of the panel, kept in `panel` (m × w, column-major).
        let mut panel: Vec<f64> = (0..w)
            .flat_map(|c| column(a, n, start + c, r0, n).to_vec())
            .collect();
        for c in 0..k {
            let t = householder(&mut panel[c * m + c..(c + 1) * m]);
            tau[c] = t;
            if t != 0.0 {
                let (head, tail) = panel.split_at_mut((c + 1) * m);
                let vc = &head[c * m + c..(c + 1) * m];
                for q in 0..(w - c - 1) {
                    let target = &mut tail[q * m + c..(q + 1) * m];
                    // vᵀ x with v₀ = 1 (the stored β is not part of v).
                    let s = target[0] + dot(&vc[1..], &target[1..]);
                    target[0] -= t * s;
                    axpy(-t * s, &vc[1..], &mut target[1..]);
                }
            }
        }
        for c in 0..k {
            let vc = &mut v[c * m..(c + 1) * m];
            vc[..c].iter_mut().for_each(|x| *x = 0.0);
            vc[c] = 1.0;
            vc[c + 1..].copy_from_slice(&panel[c * m + c + 1..(c + 1) * m]);
        }
        for c in 0..w {
            let col = column_mut(a, n, start + c, r0, n);
            for (r, x) in col.iter_mut().enumerate() {
                *x = if r <= c { panel[c * m + r] } else { 0.0 };
            }
        }
        // T (k × k upper triangular, column-major) with H₀ ⋯ H_{k−1} = I − V T Vᵀ (LAPACK's dlarft).
        let mut t = vec![0f64; k * k];
        for c in 0..k {
            t[c * k + c] = tau[c];
            if c > 0 && tau[c] != 0.0 {
                // z = −τ_c · Vᵀ[0..c] v_c, then T[0..c, c] = T[0..c, 0..c] z.
                let vc = &v[c * m..(c + 1) * m];
                let z: Vec<f64> = (0..c)
                    .map(|p| -tau[c] * dot(&v[p * m + c..(p + 1) * m], &vc[c..]))
                    .collect();
                for p in 0..c {
                    t[c * k + p] = (p..c).map(|q| t[q * k + p] * z[q]).sum();
                }
            }
        }
        let vm = MatRef::from_column_major_slice(&v, m, k);
        let tm = MatRef::from_column_major_slice(&t, k, k);
        // Y = A₂₂ V T, with A₂₂ = its lower triangle + the transpose of its strict lower triangle.
        let av = symmetric_times(&a[r0 * n + r0..], n, m, vm, par);
        let mut y = vec![0f64; m * k];
        let mut ym = MatMut::from_column_major_slice_mut(&mut y, m, k);
        triangular::matmul(
            ym.as_mut(),
            BlockStructure::Rectangular,
            Accum::Replace,
            MatRef::from_column_major_slice(&av, m, k),
            BlockStructure::Rectangular,
            tm,
            BlockStructure::TriangularUpper,
            1.0,
            par,
        );
        // Z = Tᵀ (Vᵀ Y) (k × k), W = Y − ½ V Z.
        let mut vty = faer::Mat::<f64>::zeros(k, k);
        matmul(
            vty.as_mut(),
            Accum::Replace,
            vm.transpose(),
            ym.as_ref(),
            1.0,
            par,
        );
        let mut z = faer::Mat::<f64>::zeros(k, k);
        triangular::matmul(
            z.as_mut(),
            BlockStructure::Rectangular,
            Accum::Replace,
            tm.transpose(),
            BlockStructure::TriangularLower,
            vty.as_ref(),
            BlockStructure::Rectangular,
            1.0,
            par,
        );
        matmul(ym.as_mut(), Accum::Add, vm, z.as_ref(), -0.5, par);
        // A₂₂ ← A₂₂ − V Wᵀ − W Vᵀ (lower triangle), as one rank-2k product [V W][W V]ᵀ, so that A₂₂ is
        // read and written once, not twice.
        let vw: Vec<f64> = v.iter().chain(&y).copied().collect();
        let wv: Vec<f64> = y.iter().chain(&v).copied().collect();
        let mut a22 =
            MatMut::from_column_major_slice_with_stride_mut(&mut a[r0 * n + r0..], m, m, n);
        triangular::matmul(
            a22.as_mut(),
            BlockStructure::TriangularLower,
            Accum::Add,
            MatRef::from_column_major_slice(&vw, m, 2 * k),
            BlockStructure::Rectangular,
            MatRef::from_column_major_slice(&wv, m, 2 * k).transpose(),
            BlockStructure::Rectangular,
            -1.0,
            par,
        );
        start += band;
    }
}

/// Rows and columns per tile of `symmetric_times`: a tile (512 KiB) and the slices of V and Y it meets stay in
/// the L2 cache while both of its products run (measured at d = 2048 with BAND = 32, not again at 24: 128, 256
/// and 512 within noise of each other, 256 the fastest).
const SYMMETRIC_TILE: usize = 256;

/// S V for the symmetric m × m matrix S whose lower triangle is at `a` (column-major, leading dimension
/// `lda`), V m × k: each tile of the lower triangle is read once and used twice (S_IJ V_J into Y_I and
/// S_IJᵀ V_I into Y_J), where two triangular products (the lower triangle, then the transpose of the strict
/// lower one) read the whole triangle twice. The tiles are split evenly among the threads, each summing into
/// its own Y, and the partial Ys are added at the end. Returns Y (m × k, column-major).
fn symmetric_times(a: &[f64], lda: usize, m: usize, v: MatRef<'_, f64>, par: Par) -> Vec<f64> {
    use rayon::prelude::*;
    let k = v.ncols();
    let count = m.div_ceil(SYMMETRIC_TILE);
    let range = |t: usize| t * SYMMETRIC_TILE..((t + 1) * SYMMETRIC_TILE).min(m);
    let tiles: Vec<(usize, usize)> = (0..count)
        .flat_map(|j| (j..count).map(move |i| (i, j)))
        .collect();
    let threads = par.degree().clamp(1, tiles.len().max(1));
    let partial = |group: &[(usize, usize)]| -> Vec<f64> {
        let mut y = vec![0f64; m * k];
        let mut ym = MatMut::from_column_major_slice_mut(&mut y, m, k);
        for &(i, j) in group {
            let (ri, rj) = (range(i), range(j));
            let tile = MatRef::from_column_major_slice_with_stride(
                &a[rj.start * lda + ri.start..],
                ri.len(),
                rj.len(),
                lda,
            );
            let (vi, vj) = (
                v.subrows(ri.start, ri.len()),
                v.subrows(rj.start, rj.len()),
            );
            if i == j {
                triangular::matmul(
                    ym.as_mut().subrows_mut(ri.start, ri.len()),
                    BlockStructure::Rectangular,
                    Accum::Add,
                    tile,
                    BlockStructure::TriangularLower,
                    vj,
                    BlockStructure::Rectangular,
                    1.0,
                    Par::Seq,
                );
                triangular::matmul(
                    ym.as_mut().subrows_mut(ri.start, ri.len()),
                    BlockStructure::Rectangular,
                    Accum::Add,
                    tile.transpose(),
                    BlockStructure::StrictTriangularUpper,
                    vi,
                    BlockStructure::Rectangular,
                    1.0,
                    Par::Seq,
                );
            } else {
                matmul(
                    ym.as_mut().subrows_mut(ri.start, ri.len()),
                    Accum::Add,
                    tile,
                    vj,
                    1.0,
                    Par::Seq,
                );
                matmul(
                    ym.as_mut().subrows_mut(rj.start, rj.len()),
                    Accum::Add,
                    tile.transpose(),
                    vi,
                    1.0,
                    Par::Seq,
                );
            }
        }
        y
    };
    if threads == 1 {
        return partial(&tiles);
    }
    let per_thread = tiles.len().div_ceil(threads);
    let mut parts: Vec<Vec<f64>> = tiles.par_chunks(per_thread).map(partial).collect();
    let mut y = parts.swap_remove(0);
    for part in parts {
        y.iter_mut().zip(&part).for_each(|(s, p)| *s += p);
    }
    y
}

/// Band storage of the lower triangle's first `2·band` diagonals (LAPACK's layout for the bulge chasing):
/// element (r, c), c ≤ r < c + 2·band, at `a[c·ld + r − c]`, ld = 2·band (the band's `band + 1` diagonals
/// and the room the bulge takes below them). The whole band of a 2048 × 2048 matrix (768 KiB at band 24)
/// stays in the L2 cache, where in the dense matrix every column it touches is on a page of its own.
struct Band<'a> {
    a: &'a mut [f64],
    ld: usize,
}

impl Band<'_> {
    /// Column `c`, rows `r0..r1` (c ≤ r0, r1 ≤ c + ld).
    #[inline(always)]
    fn col(&self, c: usize, r0: usize, r1: usize) -> &[f64] {
        &self.a[c * self.ld + r0 - c..c * self.ld + r1 - c]
    }

    #[inline(always)]
    fn col_mut(&mut self, c: usize, r0: usize, r1: usize) -> &mut [f64] {
        &mut self.a[c * self.ld + r0 - c..c * self.ld + r1 - c]
    }
}

/// C ← H C H for the symmetric block C = A[s..=e, s..=e] (lower triangle) and H = I − τ v vᵀ (LAPACK's
/// dlarfy): w = τ C v, w ← w − ½ τ (wᵀv) v, C ← C − v wᵀ − w vᵀ.
#[inline(always)]
/// (The column dot products go to `dots` and are added to w at the end: reading w[c] right after the vector
/// stores of the previous column's axpy into w stalls on store forwarding, a third of the step's time.)
fn two_sided(
    a: &mut Band<'_>,
    s: usize,
    v: &[f64],
    tau: f64,
    w: &mut Vec<f64>,
    dots: &mut Vec<f64>,
) {
    let len = v.len();
    w.clear();
    w.resize(len, 0.0);
    dots.clear();
    for c in 0..len {
        let col = a.col(s + c, s + c, s + len);
        dots.push(dot(col, &v[c..]));
        axpy(v[c], &col[1..], &mut w[c + 1..]);
    }
    w.iter_mut()
        .zip(dots.iter())
        .for_each(|(x, d)| *x = (*x + d) * tau);
    let alpha = -0.5 * tau * dot(w, v);
    axpy(alpha, v, w);
    let w: &[f64] = w;
    for c in 0..len {
        let col = a.col_mut(s + c, s + c, s + len);
        let (vc, wc) = (v[c], w[c]);
        for ((x, &vr), &wr) in col.iter_mut().zip(&v[c..]).zip(&w[c..]) {
            *x -= vr * wc + wr * vc;
        }
    }
}

/// One sweep's state between its steps: the last reflector (v, τ) and the diagonal block it applies to
/// (st..=ed), and the scratch vectors of the kernels.
struct Sweep {
    v: Vec<f64>,
    w: Vec<f64>,
    dots: Vec<f64>,
    s: Vec<f64>,
    tau: f64,
    st: usize,
    ed: usize,
}

impl Sweep {
    fn new(band: usize) -> Self {
        Sweep {
            v: Vec::with_capacity(band),
            w: Vec::with_capacity(band),
            dots: Vec::with_capacity(band),
            s: vec![0f64; band],
            tau: 0.0,
            st: 0,
            ed: 0,
        }
    }
}

/// Whether sweep `j` has a step `step`: step 0 always; step s ≥ 1 while the block it moves the bulge to
/// (rows j + s·band + 1 ..) starts inside the matrix.
fn step_exists(j: usize, step: usize, n: usize, band: usize) -> bool {
    step == 0 || j + step * band + 1 < n
}

/// The reflector H = I − τ v vᵀ that maps the column `x` onto a multiple of its first unit vector: `x` becomes
/// (β, 0, …, 0) and `v` (v₀ = 1) the reflector's vector; returns τ.
#[inline(always)]
fn annihilate(x: &mut [f64], v: &mut Vec<f64>) -> f64 {
    let tau = householder(x);
    v.clear();
    v.push(1.0);
    v.extend_from_slice(&x[1..]);
    x[1..].iter_mut().for_each(|e| *e = 0.0);
    tau
}

/// Step `step` of sweep `j` (the sequential order of LAPACK's dsytrd_sb2st and its dsb2st_kernels, lower
/// case). Step 0 annihilates column j below the subdiagonal and applies the reflector to the diagonal block;
/// each later step applies the last reflector to the block below (creating a bulge), annihilates the bulge's
/// first column with a new reflector and applies that to the next diagonal block.
#[inline(always)]
fn chase_step(a: &mut Band<'_>, j: usize, step: usize, n: usize, band: usize, sw: &mut Sweep) {
    if step == 0 {
        let (st, ed) = (j + 1, (j + band).min(n - 1));
        let tau = annihilate(a.col_mut(j, st, ed + 1), &mut sw.v);
        (sw.st, sw.ed, sw.tau) = (st, ed, tau);
        two_sided(a, st, &sw.v, tau, &mut sw.w, &mut sw.dots);
        return;
    }
    let (st, ed, tau) = (sw.st, sw.ed, sw.tau);
    let (j1, j2) = (ed + 1, (ed + band).min(n - 1));
    let (ln, lm) = (ed - st + 1, j2 - j1 + 1);
    // Kernel 2: X = A[j1..=j2, st..=ed] ← X H (s = X v, X ← X − τ s vᵀ) ...
    if tau != 0.0 {
        sw.s[..lm].iter_mut().for_each(|x| *x = 0.0);
        for (c, &vc) in sw.v.iter().enumerate().take(ln) {
            axpy(vc, a.col(st + c, j1, j2 + 1), &mut sw.s[..lm]);
        }
        for (c, &vc) in sw.v.iter().enumerate().take(ln) {
            axpy(-tau * vc, &sw.s[..lm], a.col_mut(st + c, j1, j2 + 1));
        }
    }
    // ... then a new reflector annihilates the bulge's first column A[j1+1..=j2, st] ...
    let tau2 = annihilate(a.col_mut(st, j1, j2 + 1), &mut sw.v);
    // ... and is applied from the left to the rest of the block, A[j1..=j2, st+1..=ed].
    if tau2 != 0.0 {
        for c in 1..ln {
            let col = a.col_mut(st + c, j1, j2 + 1);
            let t = dot(&sw.v, col);
            axpy(-tau2 * t, &sw.v, col);
        }
    }
    // Kernel 3: the same reflector on the next diagonal block.
    (sw.st, sw.ed, sw.tau) = (j1, j2, tau2);
    two_sided(a, j1, &sw.v, tau2, &mut sw.w, &mut sw.dots);
}

/// Stage 2: the band matrix (half-width `band`, in the lower triangle of `a`) to tridiagonal form by bulge
/// chasing, in band storage; returns (diagonal, subdiagonal). Its short loops are compiled for AVX2 + FMA
/// too, and that build is used where the CPU has them.
fn band_to_tridiagonal(a: &[f64], n: usize, band: usize) -> (Vec<f64>, Vec<f64>) {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has the features the function is compiled for.
        return unsafe { band_to_tridiagonal_avx2(a, n, band) };
    }
    band_to_tridiagonal_body(a, n, band)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn band_to_tridiagonal_avx2(a: &[f64], n: usize, band: usize) -> (Vec<f64>, Vec<f64>) {
    band_to_tridiagonal_body(a, n, band)
}

#[inline(always)]
fn band_to_tridiagonal_body(a: &[f64], n: usize, band: usize) -> (Vec<f64>, Vec<f64>) {
    let ld = 2 * band;
    let mut banded = vec![0f64; n * ld];
    for c in 0..n {
        let rows = (band + 1).min(n - c);
        banded[c * ld..c * ld + rows].copy_from_slice(&a[c * n + c..c * n + c + rows]);
    }
    let mut storage = Band { a: &mut banded, ld };
    let mut sweep = Sweep::new(band);
    for j in 0..n.saturating_sub(2) {
        let mut step = 0;
        while step_exists(j, step, n, band) {
            chase_step(&mut storage, j, step, n, band, &mut sweep);
            step += 1;
        }
    }
    let diag = (0..n).map(|c| banded[c * ld]).collect();
    let mut offdiag: Vec<f64> = (0..n.saturating_sub(1)).map(|c| banded[c * ld + 1]).collect();
    offdiag.push(0.0);
    (diag, offdiag)
}

/// √(f² + g²): the plain formula, hypot's careful one only where f² + g² would over- or underflow (hypot
/// costs several times as much, and this is the QL iteration's inner loop).
#[inline(always)]
fn radius(f: f64, g: f64) -> f64 {
    let squares = f * f + g * g;
    if squares > 1e-280 && squares < 1e280 {
        squares.sqrt()
    } else {
        f.hypot(g)
    }
}

/// The eigenvalues of the symmetric tridiagonal matrix with diagonal `d` and subdiagonal `e` (e[i] couples
/// d[i] and d[i+1]; e[n−1] unused), into `d`: the implicit QL algorithm with Wilkinson shifts (EISPACK's
/// tql1), deflating where |e_m| ≤ ε (|d_m| + |d_{m+1}|).
fn tridiagonal_eigenvalues(d: &mut [f64], e: &mut [f64]) -> Result<()> {
    let n = d.len();
    if n < 2 {
        return Ok(());
    }
    e[n - 1] = 0.0;
    for l in 0..n {
        let mut iterations = 0;
        loop {
            let mut m = l;
            while m < n - 1 {
                if e[m].abs() <= f64::EPSILON * (d[m].abs() + d[m + 1].abs()) {
                    break;
                }
                m += 1;
            }
            if m == l {
                break;
            }
            iterations += 1;
            if iterations > 60 {
                return Err(FidrsError::Numerical(format!(
                    "the tridiagonal QL iteration did not converge for eigenvalue {l} of {n}"
                )));
            }
            let mut g = (d[l + 1] - d[l]) / (2.0 * e[l]);
            let mut r = radius(g, 1.0);
            g = d[m] - d[l] + e[l] / (g + r.copysign(g));
            let (mut s, mut c, mut p) = (1.0f64, 1.0f64, 0.0f64);
            let mut underflow = false;
            for i in (l..m).rev() {
                let f = s * e[i];
                let b = c * e[i];
                r = radius(f, g);
                e[i + 1] = r;
                if r == 0.0 {
                    // Deflate at i + 1 and start again from l.
                    d[i + 1] -= p;
                    e[m] = 0.0;
                    underflow = true;
                    break;
                }
                s = f / r;
                c = g / r;
                g = d[i + 1] - p;
                r = (d[i] - g) * s + 2.0 * c * b;
                p = s * r;
                d[i + 1] = g + p;
                g = c * r - b;
            }
            if underflow {
                continue;
            }
            d[l] -= p;
            e[l] = g;
            e[m] = 0.0;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use faer::{Mat, Side};

    fn random_symmetric(n: usize, seed: u64, spread: f64) -> Mat<f64> {
        let mut state = seed;
        let mut next = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 11) as f64 / (1u64 << 53) as f64 - 0.5
        };
        // Q diag(λ) Qᵀ-like spectra of several shapes: a random Gram matrix scaled by a graded diagonal.
        let x = Mat::from_fn(n, n, |_, _| next());
        let g = Mat::from_fn(n, n, |i, _| spread.powf(i as f64 / n as f64));
        let y = Mat::from_fn(n, n, |i, j| x[(i, j)] * g[(i, 0)]);
        let s = y.transpose() * &y;
        Mat::from_fn(n, n, |i, j| s[(i.max(j), i.min(j))])
    }

    fn lower_buffer(s: &Mat<f64>) -> Vec<f64> {
        let n = s.nrows();
        let mut a = vec![0f64; n * n];
        for j in 0..n {
            for i in j..n {
                a[j * n + i] = s[(i, j)];
            }
        }
        a
    }

    /// The eigenvalues of a random symmetric matrix against faer's one-stage solver. Both are backward
    /// stable: each eigenvalue within a few n·ε·‖A‖ of the exact one.
    fn assert_eigenvalues_equal_faer(n: usize, seed: u64, spread: f64, par: Par) {
        let s = random_symmetric(n, seed, spread);
        let mut expected = s.self_adjoint_eigenvalues(Side::Lower).unwrap();
        expected.sort_by(f64::total_cmp);
        let got = symmetric_eigenvalues(lower_buffer(&s), n, par).unwrap();
        let norm = expected.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        for (g, e) in got.iter().zip(&expected) {
            assert!(
                (g - e).abs() <= 4.0 * n as f64 * f64::EPSILON * norm,
                "{n}: {g} vs {e}"
            );
        }
    }

    #[test]
    fn eigenvalues_equal_faer_at_every_size_around_the_band() {
        // The sizes where the reduction changes shape, whatever BAND is: no stage 1 at all (n ≤ BAND + 1), a
        // last panel of one or two rows, one and two whole panels, and a size with several tiles.
        for (n, seed) in [
            (1, 1),
            (2, 2),
            (3, 3),
            (BAND - 1, 4),
            (BAND, 5),
            (BAND + 1, 6),
            (BAND + 2, 7),
            (BAND + 3, 12),
            (2 * BAND, 8),
            (2 * BAND + 1, 9),
            (2 * BAND + 2, 13),
            (3 * BAND + 1, 10),
            (200, 11),
        ] {
            for spread in [1.0, 1e-4] {
                assert_eigenvalues_equal_faer(n, seed, spread, Par::Seq);
            }
        }
    }

    #[test]
    fn known_spectra_are_reproduced() {
        // The second-difference matrix tridiag(−1, 2, −1) of size n: λ_k = 2 − 2 cos(kπ/(n+1)), and a dense
        // matrix with the same spectrum (a symmetric Householder similarity of it).
        let n = 80;
        let exact: Vec<f64> = (1..=n)
            .map(|k| 2.0 - 2.0 * (k as f64 * std::f64::consts::PI / (n + 1) as f64).cos())
            .collect();
        let t = Mat::from_fn(n, n, |i, j| match i.abs_diff(j) {
            0 => 2.0,
            1 => -1.0,
            _ => 0.0,
        });
        let u: Vec<f64> = (0..n).map(|i| ((i * 7 + 3) % 11) as f64 - 5.0).collect();
        let uu: f64 = u.iter().map(|x| x * x).sum();
        let h = Mat::from_fn(n, n, |i, j| (i == j) as u8 as f64 - 2.0 * u[i] * u[j] / uu);
        let dense = &h * &t * &h;
        for m in [&t, &dense] {
            let sym = Mat::from_fn(n, n, |i, j| m[(i.max(j), i.min(j))]);
            let got = symmetric_eigenvalues(lower_buffer(&sym), n, Par::Seq).unwrap();
            for (g, e) in got.iter().zip(&exact) {
                assert!((g - e).abs() <= 1e-13, "{g} vs {e}");
            }
        }
    }

    #[test]
    fn the_symmetric_product_equals_the_dense_one_on_every_tile() {
        // 600 rows: three tiles of 256 (the last partial), so both kinds of tile and the per-thread sums run.
        let m = 600;
        let s = random_symmetric(m, 13, 1e-2);
        let full = Mat::from_fn(m, m, |i, j| s[(i.max(j), i.min(j))]);
        let v = Mat::from_fn(m, 7, |i, j| ((i * 31 + j * 17) % 23) as f64 / 23.0 - 0.5);
        let expected = &full * &v;
        let lower = lower_buffer(&s);
        // Sums of m products in another order: within m·ε·Σ|s||v| ≤ m·ε·m·max|s|.
        let assert_close = |y: &[f64], expected: &Mat<f64>, scale: f64| {
            let bound = (m * m) as f64 * f64::EPSILON * scale;
            for j in 0..7 {
                for i in 0..m {
                    assert!((y[j * m + i] - expected[(i, j)]).abs() <= bound, "{i}, {j}");
                }
            }
        };
        for par in [Par::Seq, Par::rayon(2), Par::rayon(3)] {
            let y = symmetric_times(&lower, m, m, v.as_ref(), par);
            assert_close(&y, &expected, full.norm_max());
        }
        // A leading dimension larger than the size (the trailing block of a bigger matrix).
        let big = lower_buffer(&random_symmetric(m + 5, 14, 1.0));
        let n = m + 5;
        let trailing = Mat::from_fn(m, m, |i, j| big[(i.min(j) + 5) * n + i.max(j) + 5]);
        let expected = &trailing * &v;
        let y = symmetric_times(&big[5 * n + 5..], n, m, v.as_ref(), Par::rayon(2));
        assert_close(&y, &expected, trailing.norm_max());
    }

    #[test]
    fn eigenvalues_equal_faer_where_the_reduction_has_several_tiles() {
        for (n, seed) in [(600, 15), (777, 16)] {
            assert_eigenvalues_equal_faer(n, seed, 1e-3, Par::rayon(2));
        }
    }

    #[test]
    fn threads_give_the_same_eigenvalues() {
        let s = random_symmetric(150, 12, 1e-2);
        let a = symmetric_eigenvalues(lower_buffer(&s), 150, Par::Seq).unwrap();
        let b = symmetric_eigenvalues(lower_buffer(&s), 150, Par::rayon(2)).unwrap();
        let norm = a.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() <= 600.0 * f64::EPSILON * norm);
        }
    }
}
