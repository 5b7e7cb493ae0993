//! A covariance matrix checked once and factorised once: the check that it is a covariance (finite,
//! symmetric, positive semi-definite up to round-off) *is* its factorisation, and the Fréchet distance
//! reuses the factor.
//!
//! Round-off model. Statistics reach fidrs computed by one of two recipes, and stored in float64 or float32:
//! * the one-pass moments (fidrs: Σ = (Σxxᵀ − n μμᵀ)/(n − 1)) cancel the second moments m_ij = Σ_ij + μ_iμ_j,
//!   so each entry carries an error of up to about n·u·√(m_ii m_jj) (u = 2⁻⁵³): around μ, not around Σ. One
//!   image copied 100 times gives a Σ of pure round-off (±3e-15 with μ ≈ 0.5), which is a zero covariance.
//! * two-pass `np.cov` (pytorch-fid, clean-fid) errs by about n·u·√(Σ_ii Σ_jj), smaller still.
//! * storing in float32 rounds each entry by up to 2⁻²⁴ ≈ 6e-8 of its size.
//!
//! So the scale of the tolerances is the second moment m_ii = Σ_ii⁺ + μ_i² (μ when it is known and the recipe
//! may be one-pass; Σ_ii⁺ alone for `np.cov`'s files, `Origin::two_pass`), with a
//! relative tolerance `rtol` per storage precision: 1e-9 for float64 (n·u·c stays below it up to millions of
//! samples), 1e-5 for float32 (over 100 × its rounding). The eigenvalue tolerance is δ = rtol·Σ_i m_ii (the
//! Frobenius bound of such an error matrix), and Σ is accepted when it is PSD up to δ:
//!
//! The factorisation. A Cholesky factorisation of Σ that succeeds with every pivot above round-off (4ρ, with
//! ρ = d·ε·max Σ_ii, NumPy's `matrix_rank` rule; for one-pass moments of n samples around a known mean also
//! at least n·ε·max m_ii, the variance their cancellation cannot resolve) proves Σ positive definite; its
//! factor is kept. (The mean enters ρ only when the recipe is known to be one-pass: two-pass statistics can
//! resolve variances far below μ², and must keep them.) Otherwise a
//! rank-revealing pivoted Cholesky runs to the numerical rank r (the largest remaining pivot ≤ ρ), and the
//! remainder S (the Schur complement, (d − r)²) must be round-off: every |S_ij| ≤ τ = max(δ/d, 4ρ). Since
//! Σ = BBᵀ + PSPᵀ with BBᵀ ⪰ 0, Weyl gives λ_min(Σ) ≥ −(d − r)·τ ≥ −δ for an accepted Σ; and a Σ with
//! λ_min < −δ has λ_min(S) < −δ, so an entry of S above δ/(d − r) ≥ τ: it is refused. A refused Σ is never
//! PSD (a PSD remainder's entries are bounded by its diagonal, ≤ ρ).
//!
//! Range. Σ is factorised as 4^e·A with a power of two chosen so that A's largest entry is in (1/4, 1]
//! (exact), so that neither the factor nor the products of the distance can overflow or underflow whatever
//! the units of the features (the distance multiplies 2^(e₁+e₂) back in at the end).

use std::str::FromStr;
use std::time::Instant;

use faer::dyn_stack::{MemBuffer, MemStack};
use faer::linalg::cholesky::llt::factor::{cholesky_in_place, cholesky_in_place_scratch};
use faer::linalg::matmul::matmul;
use faer::linalg::matmul::triangular::{self, BlockStructure};
use faer::linalg::triangular_solve::{solve_lower_triangular_in_place, solve_upper_triangular_in_place};
use faer::{Accum, Mat, MatMut, MatRef, Par};

use crate::error::{FidrsError, Result};

/// The precision a covariance was stored in, which sets how much round-off it may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    Float64,
    Float32,
}

impl Precision {
    pub const NAMES: &'static [&'static str] = &["float64", "float32"];

    /// The relative tolerance of the checks (see the module documentation).
    pub fn rtol(self) -> f64 {
        match self {
            Precision::Float64 => 1e-9,
            Precision::Float32 => 1e-5,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Precision::Float64 => "float64",
            Precision::Float32 => "float32",
        }
    }
}

impl FromStr for Precision {
    type Err = FidrsError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "float64" => Ok(Precision::Float64),
            "float32" => Ok(Precision::Float32),
            other => Err(FidrsError::InvalidInput(format!(
                "stored_as must be one of {}, got {other:?}",
                Self::NAMES.join(", ")
            ))),
        }
    }
}

/// Where a covariance came from, as far as it is known: what its round-off can be.
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    /// The mean it was computed around.
    pub mean: Option<&'a [f64]>,
    /// The sample count, when it came from one-pass moments (n, Σx, Σxxᵀ: fidrs' own statistics).
    pub one_pass_samples: Option<u64>,
    pub precision: Precision,
    /// Σ came from two passes (`np.cov`: pytorch-fid, clean-fid, ADM files): its round-off is relative to Σ
    /// itself, so the mean is checked but left out of the tolerances. Around a mean of 1e8, one-pass round-off
    /// (and so the tolerance) is ~1e7: it excused a Σ of −5·I, and the distance came out negative.
    pub two_pass: bool,
}

/// How a covariance was factorised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Factorisation {
    /// Positive definite: Σ = LLᵀ, L lower triangular (d × d).
    Cholesky,
    /// Singular: Σ ≈ BBᵀ, B = d × r from the pivoted factorisation (r = the numerical rank).
    Pivoted,
    /// No range at all: Σ is round-off around its mean (r = 0).
    Zero,
}

impl Factorisation {
    pub fn name(self) -> &'static str {
        match self {
            Factorisation::Cholesky => "cholesky",
            Factorisation::Pivoted => "pivoted-cholesky",
            Factorisation::Zero => "zero",
        }
    }
}

/// A column-major matrix in a zero-initialised allocation (`calloc`: fresh pages the kernel maps on first
/// write), its first column starting on a page boundary. Zeros are written only over values that are not
/// already +0.0 (`clear`), so the pages of a Cholesky factor's zero triangle that nothing writes take no memory:
/// at d = 2048 (16 KiB columns, four pages each) 12 of its 32 MiB. Without the alignment calloc's 16-byte
/// header put a page boundary inside every column's first values, and a page more per column was touched: 6 of
/// the 32 MiB stayed unmapped (both measured).
#[derive(Debug, Clone)]
struct ColumnMajor {
    buffer: Vec<f64>,
    /// Where the matrix starts in `buffer`: the first page boundary.
    start: usize,
    nrows: usize,
    ncols: usize,
}

/// Bytes of a memory page (the common 4 KiB; elsewhere the alignment only helps less).
const PAGE_BYTES: usize = 4096;

impl ColumnMajor {
    fn zeros(nrows: usize, ncols: usize) -> Self {
        let page = PAGE_BYTES / std::mem::size_of::<f64>();
        let buffer = vec![0f64; nrows * ncols + page]; // alloc_zeroed: no page touched
        let misaligned = (buffer.as_ptr() as usize % PAGE_BYTES) / std::mem::size_of::<f64>();
        let start = (page - misaligned) % page;
        Self {
            buffer,
            start,
            nrows,
            ncols,
        }
    }

    fn from_columns(columns: &[Vec<f64>], nrows: usize) -> Self {
        Self {
            buffer: columns.concat(),
            start: 0,
            nrows,
            ncols: columns.len(),
        }
    }

    fn data(&self) -> &[f64] {
        &self.buffer[self.start..self.start + self.nrows * self.ncols]
    }

    fn data_mut(&mut self) -> &mut [f64] {
        let len = self.nrows * self.ncols;
        &mut self.buffer[self.start..self.start + len]
    }

    fn as_ref(&self) -> MatRef<'_, f64> {
        MatRef::from_column_major_slice(self.data(), self.nrows, self.ncols)
    }

    fn as_mut(&mut self) -> MatMut<'_, f64> {
        let (nrows, ncols) = (self.nrows, self.ncols);
        MatMut::from_column_major_slice_mut(self.data_mut(), nrows, ncols)
    }

    fn col(&self, j: usize) -> &[f64] {
        &self.data()[j * self.nrows..(j + 1) * self.nrows]
    }

    fn col_mut(&mut self, j: usize) -> &mut [f64] {
        let nrows = self.nrows;
        &mut self.data_mut()[j * nrows..(j + 1) * nrows]
    }
}

impl std::ops::Index<(usize, usize)> for ColumnMajor {
    type Output = f64;

    fn index(&self, (i, j): (usize, usize)) -> &f64 {
        &self.data()[j * self.nrows + i]
    }
}

/// Sets every value of `values` to +0.0, writing (and so mapping a page) only where one is not +0.0 already.
fn clear(values: &mut [f64]) {
    values
        .iter_mut()
        .filter(|x| x.to_bits() != 0)
        .for_each(|x| *x = 0.0);
}

/// A checked covariance Σ = 4^exponent · B Bᵀ (B = `factor`, d × rank).
#[derive(Debug, Clone)]
pub struct Covariance {
    factor: ColumnMajor,
    exponent: i32,
    kind: Factorisation,
    /// tr Σ / 4^exponent.
    trace_scaled: f64,
    /// The trace of the round-off remainder the pivoted factorisation left out, / 4^exponent.
    dropped_scaled: f64,
    /// δ: λ_min(Σ) ≥ −δ is guaranteed (see the module documentation).
    eigenvalue_tolerance: f64,
    precision: Precision,
    pub seconds: f64,
}

/// 2^k for any k whose result is a normal float64 or zero/infinity, in at most three exact multiplications.
fn scale_pow2(x: f64, k: i32) -> f64 {
    let mut x = x;
    let mut k = k;
    while k != 0 {
        let step = k.clamp(-1000, 1000);
        x *= f64::from_bits(((step + 1023) as u64) << 52);
        k -= step;
    }
    x
}

/// Pivoted columns between two rank-k updates of the Schur complement (a BLAS-3 product each).
const PIVOT_BLOCK: usize = 64;

impl Covariance {
    /// Check that `sigma` (d × d) is a covariance, around `mean` when it is known, and factorise it. `name`
    /// and `mean_name` name the matrix and the vector in error messages (e.g. "a.npz: sigma").
    pub fn new(
        sigma: MatRef<'_, f64>,
        origin: Origin<'_>,
        name: &str,
        mean_name: &str,
        par: Par,
    ) -> Result<Self> {
        let start = Instant::now();
        let Origin {
            mean,
            one_pass_samples,
            precision,
            two_pass,
        } = origin;
        if two_pass && one_pass_samples.is_some() {
            return Err(FidrsError::InvalidInput(format!(
                "{name}: statistics are one-pass (a sample count given) or two-pass, not both"
            )));
        }
        // The mean the round-off is relative to: none for two-pass statistics (see `Origin::two_pass`).
        let around = if two_pass { None } else { mean };
        let d = sigma.nrows();
        if d == 0 || sigma.ncols() != d {
            return Err(FidrsError::InvalidInput(format!(
                "{name} must be a non-empty square matrix, got {}x{}",
                sigma.nrows(),
                sigma.ncols()
            )));
        }
        if let Some(mu) = mean {
            if mu.len() != d {
                return Err(FidrsError::InvalidInput(format!(
                    "{mean_name} and {name} differ in length: {} and {d}x{d}",
                    mu.len()
                )));
            }
            if let Some(i) = mu.iter().position(|v| !v.is_finite()) {
                return Err(FidrsError::InvalidInput(format!(
                    "{mean_name}[{i}] is not finite ({})",
                    mu[i]
                )));
            }
            // A mean whose square overflows has no covariance computable around it (and no distance).
            if let Some(i) = mu.iter().position(|v| !(v * v).is_finite()) {
                return Err(FidrsError::InvalidInput(format!(
                    "{mean_name}[{i}] = {:e} is beyond the range of a feature mean (its square overflows \
                     float64)",
                    mu[i]
                )));
            }
        }
        // Read in memory order: a row-major (NumPy) matrix read down its columns misses the cache on
        // every element (d² = 4M of them at d = 2048). `line(p)` is row p of a row-major matrix or column p
        // of a column-major one: a contiguous slice (any other layout is copied column-major first).
        let copied;
        let sigma = if sigma.col_stride() == 1 || sigma.row_stride() == 1 {
            sigma
        } else {
            copied = sigma.to_owned();
            copied.as_ref()
        };
        let row_major = sigma.col_stride() == 1;
        let line = |p: usize| -> &[f64] {
            if row_major {
                sigma
                    .row(p)
                    .try_as_row_major()
                    .expect("unit column stride")
                    .as_slice()
            } else {
                sigma
                    .col(p)
                    .try_as_col_major()
                    .expect("unit row stride")
                    .as_slice()
            }
        };
        let mut largest = 0f64;
        for p in 0..d {
            let values = line(p);
            let line_max = values.iter().fold(0f64, |m, v| m.max(v.abs()));
            // NaN does not compare: test finiteness only when the maximum is not finite (or was skipped).
            if !line_max.is_finite() || values.iter().any(|v| v.is_nan()) {
                let q = values
                    .iter()
                    .position(|v| !v.is_finite())
                    .expect("a non-finite value");
                let (i, j) = if row_major { (p, q) } else { (q, p) };
                return Err(FidrsError::InvalidInput(format!(
                    "{name}[{i}, {j}] is not finite ({})",
                    values[q]
                )));
            }
            largest = largest.max(line_max);
        }
        let rtol = precision.rtol();
        let mean_square_max = around.map_or(0.0, |mu| mu.iter().map(|v| v * v).fold(0.0, f64::max));
        // Symmetry: both triangles hold the same numbers up to the round-off of either recipe. Compared in
        // 64 × 64 tiles, so that both of a pair of tiles stay in cache.
        let symmetry_tolerance = rtol * largest.max(mean_square_max);
        const TILE: usize = 64;
        for j0 in (0..d).step_by(TILE) {
            for i0 in (j0..d).step_by(TILE) {
                for j in j0..(j0 + TILE).min(d) {
                    for i in i0.max(j + 1)..(i0 + TILE).min(d) {
                        let (a, b) = (sigma[(i, j)], sigma[(j, i)]);
                        if (a - b).abs() > symmetry_tolerance {
                            return Err(FidrsError::InvalidInput(format!(
                                "{name} is not symmetric: [{i}, {j}] = {a} but [{j}, {i}] = {b} (round-off \
                                 would be at most {symmetry_tolerance:.3e}); not a covariance"
                            )));
                        }
                    }
                }
            }
        }
        // Σ = 4^e A with A's largest entry in (1/4, 1]; the mean is scaled by 2^-e alongside. A's lower
        // triangle (column-major) is taken from the triangle that is contiguous in memory: the same numbers
        // up to the symmetry tolerance.
        let exponent = if largest > 0.0 {
            (largest.log2() / 2.0).ceil() as i32
        } else {
            0
        };
        let down = |v: f64| scale_pow2(v, -2 * exponent);
        let factor = scale_pow2(1.0, -2 * exponent);
        let exact_in_one_step = (-2 * exponent).abs() <= 1000;
        let scaled_lower = |a: &mut ColumnMajor| {
            for j in 0..d {
                let column = a.col_mut(j);
                clear(&mut column[..j]);
                let (target, source) = (&mut column[j..], &line(j)[j..]);
                if exact_in_one_step {
                    target
                        .iter_mut()
                        .zip(source)
                        .for_each(|(x, v)| *x = v * factor);
                } else {
                    target
                        .iter_mut()
                        .zip(source)
                        .for_each(|(x, &v)| *x = down(v));
                }
            }
        };
        let mut a = ColumnMajor::zeros(d, d);
        scaled_lower(&mut a);
        let second_moment =
            |i: usize| a[(i, i)].max(0.0) + around.map_or(0.0, |mu| down(mu[i] * mu[i]));
        let moment_max = (0..d).map(second_moment).fold(0.0, f64::max);
        let moment_sum: f64 = (0..d).map(second_moment).sum();
        let diagonal_max = (0..d).map(|i| a[(i, i)]).fold(0.0, f64::max);
        // Capped at the acceptance scale rtol: a claimed n beyond 1/(ε/rtol) would call everything round-off.
        let one_pass_floor =
            one_pass_samples.map_or(0.0, |n| (n as f64 * f64::EPSILON).min(rtol) * moment_max);
        let rank_threshold = (d as f64 * f64::EPSILON * diagonal_max).max(one_pass_floor);
        let delta = rtol * moment_sum;
        let entry_tolerance = (delta / d as f64).max(4.0 * rank_threshold);
        let trace_scaled: f64 = (0..d).map(|i| a[(i, i)]).sum();
        let eigenvalue_tolerance = scale_pow2(delta, 2 * exponent);

        let mut covariance = Covariance {
            factor: ColumnMajor::zeros(0, 0),
            exponent,
            kind: Factorisation::Cholesky,
            trace_scaled,
            dropped_scaled: 0.0,
            eigenvalue_tolerance,
            precision,
            seconds: 0.0,
        };
        // Positive definite (the usual case: more samples than dimensions): one blocked Cholesky, in place.
        // Every pivot above round-off is not enough: a pivot bounds λ_min only from above, and a Σ whose
        // smallest eigenvalue is round-off (DINOv2's final LayerNorm leaves one such direction) factorises
        // with pivots of 1e-11 while λ_min is 1.6e-14. That direction would reach the distance, where the
        // Gram matrix's round-off (ε·‖Σ‖², of either sign) decides whether its √ adds 1e-7 to the trace.
        let mut round_off_direction = None;
        if cholesky(a.as_mut(), par) && (0..d).all(|i| a[(i, i)] * a[(i, i)] > 4.0 * rank_threshold)
        {
            let (bound, direction) = smallest_eigenpair(a.as_ref(), par);
            if bound > 4.0 * rank_threshold {
                covariance.factor = a;
                covariance.seconds = start.elapsed().as_secs_f64();
                return Ok(covariance);
            }
            round_off_direction = direction;
        }
        // Singular or not a covariance: the rank-revealing factorisation decides, on a fresh copy. A
        // round-off eigenvector found above is first turned onto a coordinate (Σ ← HΣH, H a reflector), where
        // diagonal pivoting sees it: spread over every coordinate, it leaves no small pivot to stop at.
        scaled_lower(&mut a);
        let reflector = round_off_direction.map(|v| reflect_onto_a_coordinate(&mut a, &v));
        let pivoted = pivoted_cholesky(a, rank_threshold, par);
        if pivoted.worst > entry_tolerance {
            return Err(FidrsError::InvalidInput(format!(
                "{name} is not positive semi-definite: after its numerical rank {} an entry {:.3e} remains \
                 (round-off would be at most {:.3e}); not a covariance",
                pivoted.rank,
                scale_pow2(pivoted.worst, 2 * exponent),
                scale_pow2(entry_tolerance, 2 * exponent),
            )));
        }
        let mut b = pivoted.b;
        if let Some(u) = reflector {
            // HΣH ≈ B̃B̃ᵀ, so Σ ≈ (HB̃)(HB̃)ᵀ: HB̃ = B̃ − u(uᵀB̃).
            for j in 0..b.ncols {
                let column = b.col_mut(j);
                let s: f64 = column.iter().zip(&u).map(|(x, y)| x * y).sum();
                column.iter_mut().zip(&u).for_each(|(x, y)| *x -= s * y);
            }
        }
        covariance.kind = if pivoted.rank == 0 {
            Factorisation::Zero
        } else {
            Factorisation::Pivoted
        };
        covariance.factor = b;
        covariance.dropped_scaled = pivoted.dropped;
        covariance.seconds = start.elapsed().as_secs_f64();
        Ok(covariance)
    }

    pub fn dim(&self) -> usize {
        self.factor.nrows
    }

    /// The numerical rank (d for a positive definite Σ).
    pub fn rank(&self) -> usize {
        self.factor.ncols
    }

    pub fn kind(&self) -> Factorisation {
        self.kind
    }

    pub fn precision(&self) -> Precision {
        self.precision
    }

    pub fn trace(&self) -> f64 {
        scale_pow2(self.trace_scaled, 2 * self.exponent)
    }

    /// δ: every accepted Σ has λ_min ≥ −δ.
    pub fn eigenvalue_tolerance(&self) -> f64 {
        self.eigenvalue_tolerance
    }

    /// B with Σ = 4^exponent · BBᵀ; lower triangular (d × d) for `Factorisation::Cholesky`.
    pub(crate) fn factor(&self) -> MatRef<'_, f64> {
        self.factor.as_ref()
    }

    pub(crate) fn exponent(&self) -> i32 {
        self.exponent
    }

    pub(crate) fn trace_scaled(&self) -> f64 {
        self.trace_scaled
    }

    pub(crate) fn dropped_scaled(&self) -> f64 {
        self.dropped_scaled
    }
}

/// Columns per block of the Cholesky factorisation.
const CHOLESKY_BLOCK: usize = 128;

/// An upper bound on λ_min(LLᵀ) for a lower triangular L, tight when λ_min is well separated, and the
/// vector that attains it: Rayleigh quotients of Σ⁻¹ = L⁻ᵀL⁻¹ give 1/‖L⁻¹x‖² ≥ λ_min for every unit x, and
/// inverse iteration (x ← Σ⁻¹x) turns x towards λ_min's eigenvector, one triangular solve pair per step
/// (O(d²), a few ms at d = 2048). Three steps from a fixed start: a round-off eigenvalue 1e-10 below the next
/// is found in the first. Non-finite growth (L⁻¹ overflowing) means λ_min is below anything representable: 0,
/// with the best vector found before it (none if the first step overflows).
fn smallest_eigenpair(l: MatRef<'_, f64>, par: Par) -> (f64, Option<Vec<f64>>) {
    let d = l.nrows();
    // A start with a component along every eigenvector (not the all-ones vector, which a covariance of
    // constrained features can be orthogonal to).
    let mut x = Mat::from_fn(d, 1, |i, _| 1.0 + (i % 13) as f64 / 13.0);
    let mut bound = f64::INFINITY;
    let mut best = None;
    const STEPS: usize = 3;
    for step in 0..STEPS {
        let scale = x.col(0).norm_l2();
        if !(scale.is_finite() && scale > 0.0) {
            return (0.0, best);
        }
        x.col_mut(0).iter_mut().for_each(|v| *v /= scale);
        let unit: Vec<f64> = x.col(0).iter().copied().collect();
        solve_lower_triangular_in_place(l, x.as_mut(), par); // y = L⁻¹x
        let growth = x.col(0).squared_norm_l2();
        if !growth.is_finite() {
            return (0.0, best);
        }
        if 1.0 / growth < bound {
            bound = 1.0 / growth;
            best = Some(unit);
        }
        if step + 1 < STEPS {
            solve_upper_triangular_in_place(l.transpose(), x.as_mut(), par); // Σ⁻¹x = L⁻ᵀy
        }
    }
    (bound, best)
}

/// Σ ← HΣH on the lower triangle of `a`, with H = I − uuᵀ the reflector that maps the unit vector `v` onto
/// ∓e_k, k its largest coordinate (so ‖u‖² = 2 without cancellation). Returns u.
fn reflect_onto_a_coordinate(a: &mut ColumnMajor, v: &[f64]) -> Vec<f64> {
    let d = a.nrows;
    let k = (0..d)
        .max_by(|&i, &j| v[i].abs().total_cmp(&v[j].abs()))
        .expect("d > 0");
    let mut u = v.to_vec();
    u[k] += v[k].signum();
    let scale = (2.0 / u.iter().map(|x| x * x).sum::<f64>()).sqrt();
    u.iter_mut().for_each(|x| *x *= scale);
    // p = Σu from the lower triangle, then q = p − ½(uᵀp)u: HΣH = Σ − uqᵀ − quᵀ.
    let mut p = vec![0f64; d];
    for j in 0..d {
        let column = &a.col(j)[j..];
        p[j] += column[0] * u[j];
        for (offset, &x) in column.iter().enumerate().skip(1) {
            let i = j + offset;
            p[i] += x * u[j];
            p[j] += x * u[i];
        }
    }
    let half_upu = 0.5 * u.iter().zip(&p).map(|(x, y)| x * y).sum::<f64>();
    let q: Vec<f64> = p.iter().zip(&u).map(|(p, u)| p - half_upu * u).collect();
    for j in 0..d {
        let column = &mut a.col_mut(j)[j..];
        for (offset, x) in column.iter_mut().enumerate() {
            let i = j + offset;
            *x -= u[i] * q[j] + q[i] * u[j];
        }
    }
    u
}

/// Cholesky in place on the lower triangle, the upper set to zero; false as soon as a pivot is not
/// positive. The first quarter of the columns is factorised left-looking in blocks (each block brought up
/// to date with the columns before it by one matrix product, factorised, the rows below solved), so that a
/// singular Σ of rank r < d/4 (n < d/4 samples) is found out after ~d·r²/2 operations, where a
/// right-looking or recursive factorisation has spent ~d²·r/2 (d = 2048, r = 511: 0.01 s instead of
/// 0.05 s); then the rest of the matrix is updated once and finished by faer's recursive factorisation,
/// which is the faster one for the bulk (0.070 s against 0.105 s left-looking at d = 2048, one core).
fn cholesky(mut a: faer::MatMut<'_, f64>, par: Par) -> bool {
    let d = a.nrows();
    let mut memory = MemBuffer::new(cholesky_in_place_scratch::<f64>(
        CHOLESKY_BLOCK,
        par,
        Default::default(),
    ));
    let left_looking = (d / 4).next_multiple_of(CHOLESKY_BLOCK).min(d);
    let mut j = 0;
    while j < left_looking {
        let b = CHOLESKY_BLOCK.min(d - j);
        let (done, rest) = a.as_mut().split_at_col_mut(j);
        let mut panel = rest.subcols_mut(0, b).subrows_mut(j, d - j);
        if j > 0 {
            // panel −= L[j.., ..j] · L[j..j+b, ..j]ᵀ
            let left = done.as_ref().subrows(j, d - j);
            let top = done.as_ref().subrows(j, b);
            matmul(panel.as_mut(), Accum::Add, left, top.transpose(), -1.0, par);
        }
        let (mut diagonal, mut below) = panel.split_at_row_mut(b);
        let stack = MemStack::new(&mut memory);
        let factored = cholesky_in_place(
            diagonal.as_mut(),
            Default::default(),
            par,
            stack,
            Default::default(),
        );
        if factored.is_err() {
            return false;
        }
        // below ← below · L_jj⁻ᵀ, i.e. L_jj · belowᵀ = belowᵀ solved in place.
        solve_lower_triangular_in_place(diagonal.as_ref(), below.as_mut().transpose_mut(), par);
        j += b;
    }
    if j < d {
        let (done, rest) = a.as_mut().split_at_col_mut(j);
        let left = done.as_ref().subrows(j, d - j);
        let mut trailing = rest.subrows_mut(j, d - j);
        triangular::matmul(
            trailing.as_mut(),
            BlockStructure::TriangularLower,
            Accum::Add,
            left,
            BlockStructure::Rectangular,
            left.transpose(),
            BlockStructure::Rectangular,
            -1.0,
            par,
        );
        let mut memory = MemBuffer::new(cholesky_in_place_scratch::<f64>(
            d - j,
            par,
            Default::default(),
        ));
        let stack = MemStack::new(&mut memory);
        let factored = cholesky_in_place(
            trailing.as_mut(),
            Default::default(),
            par,
            stack,
            Default::default(),
        );
        if factored.is_err() {
            return false;
        }
    }
    for j in 1..d {
        let column = a.as_mut().col_mut(j).try_as_col_major_mut().expect("contiguous columns");
        clear(&mut column.as_slice_mut()[..j]); // see `ColumnMajor`
    }
    true
}

struct Pivoted {
    b: ColumnMajor,
    rank: usize,
    /// The largest |entry| of the remainder.
    worst: f64,
    /// Σ of the remainder's positive diagonal (the round-off left out).
    dropped: f64,
}

/// A rank-revealing pivoted Cholesky (LAPACK's dpstrf, right-looking in blocks) of `a` (lower triangle
/// read): each step pivots on the largest remaining diagonal entry of the Schur complement and it stops once
/// none is above `threshold`: r columns, O(d² r) work.
fn pivoted_cholesky(a: ColumnMajor, threshold: f64, par: Par) -> Pivoted {
    let d = a.nrows;
    let mut diag: Vec<f64> = (0..d).map(|i| a[(i, i)]).collect();
    // The Schur complement (lower triangle), current up to the start of the present block.
    let mut schur = a;
    let mut pivoted = vec![false; d];
    let mut columns: Vec<Vec<f64>> = Vec::new();
    let mut block_start = 0;
    let update = |schur: &mut ColumnMajor, block: &[Vec<f64>]| {
        let panel = Mat::from_fn(d, block.len(), |i, j| block[j][i]);
        triangular::matmul(
            schur.as_mut(),
            BlockStructure::TriangularLower,
            Accum::Add,
            panel.as_ref(),
            BlockStructure::Rectangular,
            panel.transpose(),
            BlockStructure::Rectangular,
            -1.0,
            par,
        );
    };
    while columns.len() < d {
        let (p, best) = (0..d).filter(|&i| !pivoted[i]).map(|i| (i, diag[i])).fold(
            (usize::MAX, f64::NEG_INFINITY),
            |a, x| if x.1 > a.1 { x } else { a },
        );
        if p == usize::MAX || best <= threshold {
            break;
        }
        // Column p of the current Schur complement: the block-start one minus this block's columns.
        let mut column: Vec<f64> = (0..d)
            .map(|i| if i >= p { schur[(i, p)] } else { schur[(p, i)] })
            .collect();
        for previous in &columns[block_start..] {
            let f = previous[p];
            if f != 0.0 {
                column
                    .iter_mut()
                    .zip(previous)
                    .for_each(|(c, b)| *c -= f * b);
            }
        }
        let pivot = best.sqrt();
        pivoted[p] = true;
        for i in 0..d {
            column[i] = if i == p {
                pivot
            } else if pivoted[i] {
                0.0
            } else {
                column[i] / pivot
            };
            if !pivoted[i] {
                diag[i] -= column[i] * column[i];
            }
        }
        columns.push(column);
        if columns.len() - block_start == PIVOT_BLOCK {
            update(&mut schur, &columns[block_start..]);
            block_start = columns.len();
        }
    }
    if columns.len() > block_start {
        update(&mut schur, &columns[block_start..]);
    }
    let rank = columns.len();
    let rest: Vec<usize> = (0..d).filter(|&i| !pivoted[i]).collect();
    let mut worst = 0f64;
    for (k, &j) in rest.iter().enumerate() {
        for &i in &rest[k..] {
            let (r, c) = if i >= j { (i, j) } else { (j, i) };
            worst = worst.max(schur[(r, c)].abs());
        }
    }
    let dropped = rest.iter().map(|&i| diag[i].max(0.0)).sum();
    drop(schur);
    Pivoted {
        b: ColumnMajor::from_columns(&columns, d),
        rank,
        worst,
        dropped,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_covariance(n: usize, d: usize, seed: u64, scale: f64) -> (Vec<f64>, Mat<f64>) {
        let mut state = seed;
        let mut next = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 11) as f64 / (1u64 << 53) as f64 - 0.5
        };
        let x = Mat::from_fn(n, d, |_, _| next() * scale);
        let mu: Vec<f64> = (0..d)
            .map(|j| (0..n).map(|i| x[(i, j)]).sum::<f64>() / n as f64)
            .collect();
        let c = Mat::from_fn(n, d, |i, j| x[(i, j)] - mu[j]);
        let s = c.transpose() * &c * (1.0 / (n as f64 - 1.0));
        (mu, Mat::from_fn(d, d, |i, j| s[(i.max(j), i.min(j))]))
    }

    fn build_from(s: &Mat<f64>, mu: Option<&[f64]>, n: Option<u64>) -> Result<Covariance> {
        let origin = Origin {
            mean: mu,
            one_pass_samples: n,
            precision: Precision::Float64,
            two_pass: false,
        };
        Covariance::new(s.as_ref(), origin, "sigma", "mu", Par::Seq)
    }

    fn build(s: &Mat<f64>, mu: Option<&[f64]>) -> Result<Covariance> {
        build_from(s, mu, None)
    }

    #[test]
    fn full_rank_is_cholesky_and_rank_deficient_is_pivoted_at_n_minus_1() {
        let (mu, s) = sample_covariance(40, 12, 1, 1.0);
        let c = build(&s, Some(&mu)).unwrap();
        assert_eq!((c.kind(), c.rank()), (Factorisation::Cholesky, 12));
        let (mu, s) = sample_covariance(7, 12, 2, 1.0);
        let c = build(&s, Some(&mu)).unwrap();
        assert_eq!((c.kind(), c.rank()), (Factorisation::Pivoted, 6));
    }

    #[test]
    fn a_round_off_eigenvalue_behind_a_good_cholesky_is_deflated() {
        // Σ = PSP + λ·wwᵀ: a sample covariance with a dense unit direction w projected out (P = I − wwᵀ) and
        // λ = 1e-15 put back, below the rank rule 4ρ (ρ = d·ε·max Σ_ii ≈ 1.2e-15) while every Cholesky pivot
        // is above it, as for DINOv2's LayerNorm direction.
        let d = 64;
        let (_, s) = sample_covariance(200, d, 5, 1.0);
        let raw: Vec<f64> = (0..d).map(|i| 1.0 + (i % 7) as f64).collect();
        let norm = raw.iter().map(|x| x * x).sum::<f64>().sqrt();
        let w: Vec<f64> = raw.iter().map(|x| x / norm).collect();
        let full = Mat::from_fn(d, d, |i, j| s[(i.max(j), i.min(j))]);
        let p = Mat::from_fn(d, d, |i, j| f64::from(u8::from(i == j)) - w[i] * w[j]);
        let projected = &p * &full * &p;
        let lambda = 1e-15;
        let sigma = Mat::from_fn(d, d, |i, j| {
            let (r, c) = (i.max(j), i.min(j));
            projected[(r, c)] + lambda * w[r] * w[c]
        });
        let largest = (0..d).map(|i| sigma[(i, i)]).fold(0.0, f64::max);
        let rho = d as f64 * f64::EPSILON * largest;
        let l = build_lower_cholesky(&sigma);
        assert!((0..d).all(|i| l[(i, i)] * l[(i, i)] > 4.0 * rho), "a pivot is below 4ρ");
        let (bound, direction) = smallest_eigenpair(l.as_ref(), Par::Seq);
        assert!(bound <= 4.0 * rho && bound >= 0.5 * lambda, "{bound:e} {rho:e}");
        // The vector found is w (up to sign) to within the inverse iteration's convergence.
        let alignment: f64 = direction.unwrap().iter().zip(&w).map(|(x, y)| x * y).sum();
        assert!(alignment.abs() > 1.0 - 1e-9, "{alignment}");

        let c = build(&sigma, None).unwrap();
        assert_eq!((c.kind(), c.rank()), (Factorisation::Pivoted, d - 1));
        let b = c.factor();
        let back = scale_pow2(1.0, 2 * c.exponent());
        for i in 0..d {
            for j in 0..d {
                let v: f64 = (0..c.rank()).map(|k| b[(i, k)] * b[(j, k)]).sum::<f64>() * back;
                // BBᵀ = Σ less the dropped λ·wwᵀ (≤ 1e-15), plus the factorisations' round-off (~d·u·max Σ_ii
                // = 1.4e-15 · max Σ_ii, with max Σ_ii ≈ 0.09): 1e-14 · max Σ_ii + λ covers both.
                assert!(
                    (v - sigma[(i, j)]).abs() <= 1e-14 * largest + lambda,
                    "{i},{j}: {v:e} {:e}",
                    sigma[(i, j)]
                );
            }
        }
    }

    fn build_lower_cholesky(sigma: &Mat<f64>) -> Mat<f64> {
        let d = sigma.nrows();
        let mut a = Mat::from_fn(d, d, |i, j| if i >= j { sigma[(i, j)] } else { 0.0 });
        assert!(cholesky(a.as_mut(), Par::Seq));
        a
    }

    #[test]
    fn the_factor_reproduces_sigma_at_any_scale() {
        for scale in [1.0, 1e-3, 1e140, 1e-150] {
            let (_, s) = sample_covariance(30, 8, 3, scale);
            let c = build(&s, None).unwrap();
            let b = c.factor();
            let back = scale_pow2(1.0, 2 * c.exponent());
            let largest = (0..8).map(|i| s[(i, i)]).fold(0.0, f64::max);
            for i in 0..8 {
                for j in 0..8 {
                    let v: f64 = (0..c.rank()).map(|k| b[(i, k)] * b[(j, k)]).sum::<f64>() * back;
                    // Cholesky's backward error: (d + 1)·u·max Σ_ii per entry; 1e-14 covers it.
                    assert!(
                        (v - s[(i, j)]).abs() <= 1e-14 * largest,
                        "{scale}: {i},{j}: {v:e} {:e} {}",
                        s[(i, j)],
                        c.exponent()
                    );
                }
            }
            assert!((c.trace() / (0..8).map(|i| s[(i, i)]).sum::<f64>() - 1.0).abs() < 1e-15);
        }
    }

    #[test]
    fn round_off_around_a_mean_is_a_zero_covariance() {
        // The one-pass recipe on copies of one row leaves only cancellation noise of the second moments
        // (≈ n·u·μ² ≈ 1e-15 here), with either sign.
        let d = 16;
        let row: Vec<f64> = (0..d).map(|j| 0.5 + 0.01 * j as f64).collect();
        let s = Mat::from_fn(d, d, |i, j| if i == j { -3e-15 } else { 1e-15 });
        assert!(
            build(&s, None).is_err(),
            "without its mean, noise is no covariance"
        );
        let c = build(&s, Some(&row)).unwrap();
        assert_eq!((c.kind(), c.rank()), (Factorisation::Zero, 0));
    }

    #[test]
    fn indefinite_matrices_are_refused_and_semidefinite_round_off_is_not() {
        let d = 6;
        let eye = Mat::<f64>::identity(d, d);
        assert!(build(&(-&eye), None).is_err());
        let mut tiny_negative = eye.clone();
        tiny_negative[(5, 5)] = -1e-3;
        assert!(build(&tiny_negative, None).is_err());
        // −1e-12 relative is round-off for float64 storage (δ = 1e-9·tr Σ = 6e-9).
        tiny_negative[(5, 5)] = -1e-12;
        let c = build(&tiny_negative, None).unwrap();
        assert_eq!((c.kind(), c.rank()), (Factorisation::Pivoted, 5));
        let swap = Mat::from_fn(2, 2, |i, j| if i == j { 0.0 } else { 1.0 });
        assert!(build(&swap, None).is_err());
    }

    #[test]
    fn a_matrix_starts_on_a_page_and_its_untouched_zeros_are_zeros() {
        for (rows, cols) in [(2048, 2048), (3, 5), (0, 0)] {
            let mut m = ColumnMajor::zeros(rows, cols);
            assert_eq!(m.data().as_ptr() as usize % PAGE_BYTES, 0, "{rows}x{cols}");
            assert_eq!(m.data().len(), rows * cols);
            assert!(m.data().iter().all(|v| v.to_bits() == 0));
            if rows > 0 {
                m.col_mut(cols - 1)[rows - 1] = 1.0; // the last element is inside the allocation
                assert_eq!(m[(rows - 1, cols - 1)], 1.0);
            }
        }
    }

    #[test]
    fn a_two_pass_covariance_is_checked_against_itself_not_its_mean() {
        fn origin(mean: &[f64], two_pass: bool) -> Origin<'_> {
            Origin {
                mean: Some(mean),
                one_pass_samples: None,
                precision: Precision::Float64,
                two_pass,
            }
        }
        let d = 4;
        let (mu, infinite) = (vec![1e8; d], vec![f64::INFINITY; d]);
        let negative = Mat::from_fn(d, d, |i, j| if i == j { -5.0 } else { 0.0 });
        let check = |o| Covariance::new(negative.as_ref(), o, "s", "mu", Par::Seq);
        // One-pass round-off around a mean of 1e8 is ~1e7 per entry: −5·I is within it (a zero covariance) ...
        assert_eq!(check(origin(&mu, false)).unwrap().kind(), Factorisation::Zero);
        // ... np.cov's is relative to Σ itself, and −5·I is no covariance.
        let refused = check(origin(&mu, true)).unwrap_err().to_string();
        assert!(refused.contains("not positive semi-definite"), "{refused}");
        // The mean is still checked, and one recipe at a time.
        let e = check(origin(&infinite, true)).unwrap_err().to_string();
        assert!(e.contains("not finite"), "{e}");
        let both = Origin {
            one_pass_samples: Some(10),
            ..origin(&mu, true)
        };
        assert!(check(both).unwrap_err().to_string().contains("not both"));
    }

    #[test]
    fn bad_shapes_values_and_asymmetry_are_refused_by_name() {
        let (mu, mut s) = sample_covariance(30, 5, 4, 1.0);
        let message = |r: Result<Covariance>| r.unwrap_err().to_string();
        assert!(
            message(build(&s, Some(&mu[..4]))).contains("mu and sigma differ in length: 4 and 5x5")
        );
        let big = vec![1e160; 5];
        assert!(message(build(&s, Some(&big))).contains("mu[0] = 1e160"));
        s[(1, 3)] += 1e-3;
        assert!(message(build(&s, Some(&mu))).contains("sigma is not symmetric: [3, 1]"));
        s[(1, 3)] = f64::NAN;
        assert!(message(build(&s, Some(&mu))).contains("sigma[1, 3] is not finite (NaN)"));
    }
}
