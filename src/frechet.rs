//! The Fréchet distance between two Gaussians:
//! FID = ‖μ₁ − μ₂‖² + tr Σ₁ + tr Σ₂ − 2 tr √(Σ₁Σ₂), everything in f64.

use std::str::FromStr;
use std::time::Instant;

use faer::linalg::matmul::matmul;
use faer::linalg::matmul::triangular::{self, BlockStructure};
use faer::{Accum, Mat, MatRef, Par, Side};

use crate::error::{FidrsError, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// tr √(Σ₁Σ₂) = ‖B₁ᵀB₂‖_* (the sum of singular values) with BᵢBᵢᵀ = Σᵢ, from the eigenvalues of the
    /// smaller Gram matrix of C = B₁ᵀB₂.
    Eigh,
    /// The same trace from the polar factor of C, by the Newton–Schulz iteration X ← X(3I − XᵀX)/2.
    NewtonSchulz,
}

impl Method {
    pub const NAMES: &'static [&'static str] = &["eigh", "newton-schulz"];
}

impl FromStr for Method {
    type Err = FidrsError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "eigh" => Ok(Method::Eigh),
            "newton-schulz" => Ok(Method::NewtonSchulz),
            other => Err(FidrsError::InvalidInput(format!(
                "unknown method {other:?} for the Rust core: expected one of {}",
                Self::NAMES.join(", ")
            ))),
        }
    }
}

#[derive(Debug, Clone)]
pub struct FrechetResult {
    pub value: f64,
    /// The method that produced `value`: always the one asked for (there is no silent fallback).
    pub method: &'static str,
    /// How the covariances were factored: "cholesky" (both positive definite), "pivoted-cholesky" (at
    /// least one singular: restricted to its numerical rank), "zero" (a covariance without range).
    pub factorisation: &'static str,
    /// min(r₁, r₂): the size of the problem solved (r = numerical rank of each covariance).
    pub rank: usize,
    pub iterations: usize,
    /// Newton–Schulz: a bound on the relative error of tr √(Σ₁Σ₂) when it stopped. Zero for eigh.
    pub residual: f64,
    /// eigh: Σ|λ| over negative round-off eigenvalues of the Gram matrix clipped to zero; both: plus the
    /// trace of the round-off remainders dropped by the pivoted Cholesky factorisations.
    pub clipped_mass: f64,
    /// Why the computation stopped: "exact" (eigh), "converged" or "iteration limit" (Newton–Schulz).
    pub stop_reason: &'static str,
    pub seconds: f64,
    /// Where the time went: factorising both covariances, the product C = B₁ᵀB₂, the trace of √.
    pub seconds_factor: f64,
    pub seconds_product: f64,
    pub seconds_trace: f64,
}

#[derive(Debug, Clone, Copy)]
pub struct NewtonSchulzOptions {
    /// Stop when the bound on the relative error of tr √(Σ₁Σ₂) is below this.
    pub tolerance: f64,
    pub max_iterations: usize,
}

impl Default for NewtonSchulzOptions {
    fn default() -> Self {
        Self {
            tolerance: 1e-10,
            max_iterations: 200,
        }
    }
}

fn check_inputs(mu1: &[f64], s1: MatRef<'_, f64>, mu2: &[f64], s2: MatRef<'_, f64>) -> Result<()> {
    let d = mu1.len();
    if d == 0 {
        return Err(FidrsError::InvalidInput("empty mean vector".into()));
    }
    if mu2.len() != d {
        return Err(FidrsError::InvalidInput(format!(
            "mean vectors differ in length: {d} and {}",
            mu2.len()
        )));
    }
    for (name, s) in [("sigma1", s1), ("sigma2", s2)] {
        if s.nrows() != d || s.ncols() != d {
            return Err(FidrsError::InvalidInput(format!(
                "{name} is {}x{}, expected {d}x{d}",
                s.nrows(),
                s.ncols()
            )));
        }
        let mut scale = 0f64;
        for j in 0..d {
            for i in 0..d {
                let v = s[(i, j)];
                if !v.is_finite() {
                    return Err(FidrsError::InvalidInput(format!(
                        "{name}[{i}, {j}] is not finite ({v})"
                    )));
                }
                scale = scale.max(v.abs());
            }
        }
        for j in 0..d {
            for i in (j + 1)..d {
                if (s[(i, j)] - s[(j, i)]).abs() > 1e-9 * scale {
                    return Err(FidrsError::InvalidInput(format!(
                        "{name} is not symmetric: [{i}, {j}] = {} but [{j}, {i}] = {}",
                        s[(i, j)],
                        s[(j, i)]
                    )));
                }
            }
        }
    }
    for (name, mu) in [("mu1", mu1), ("mu2", mu2)] {
        if let Some(i) = mu.iter().position(|v| !v.is_finite()) {
            return Err(FidrsError::InvalidInput(format!(
                "{name}[{i}] is not finite ({})",
                mu[i]
            )));
        }
    }
    Ok(())
}

pub fn frechet_distance(
    mu1: &[f64],
    sigma1: MatRef<'_, f64>,
    mu2: &[f64],
    sigma2: MatRef<'_, f64>,
    method: Method,
    ns_options: NewtonSchulzOptions,
    par: Par,
) -> Result<FrechetResult> {
    check_inputs(mu1, sigma1, mu2, sigma2)?;
    let start = Instant::now();
    let mean_term: f64 = mu1.iter().zip(mu2).map(|(a, b)| (a - b) * (a - b)).sum();
    let traces: f64 = (0..mu1.len())
        .map(|i| sigma1[(i, i)] + sigma2[(i, i)])
        .sum();
    let f1 = factor("sigma1", sigma1, par)?;
    let f2 = factor("sigma2", sigma2, par)?;
    let factored = Instant::now();
    let factorisation = if f1.rank == 0 || f2.rank == 0 {
        "zero"
    } else if f1.pivoted || f2.pivoted {
        "pivoted-cholesky"
    } else {
        "cholesky"
    };
    // C = B₁ᵀB₂ (r₁ × r₂); its singular values are the square roots of the eigenvalues of Σ₁Σ₂.
    let mut c = Mat::<f64>::zeros(f1.rank, f2.rank);
    if !f1.pivoted && !f2.pivoted {
        // Both Cholesky factors are triangular: L₁ᵀL₂ costs a third of a general product.
        triangular::matmul(
            c.as_mut(),
            BlockStructure::Rectangular,
            Accum::Replace,
            f1.b.transpose(),
            BlockStructure::TriangularUpper,
            f2.b.as_ref(),
            BlockStructure::TriangularLower,
            1.0,
            par,
        );
    } else if f1.rank > 0 && f2.rank > 0 {
        matmul(
            c.as_mut(),
            Accum::Replace,
            f1.b.transpose(),
            f2.b.as_ref(),
            1.0,
            par,
        );
    }
    // Work on the orientation with fewer columns: the Gram matrix and the iteration are then smallest.
    let c = if c.ncols() > c.nrows() {
        c.transpose().to_owned()
    } else {
        c
    };
    let multiplied = Instant::now();
    let mut result = match method {
        Method::Eigh => nuclear_norm_eigh(c.as_ref(), par)?,
        Method::NewtonSchulz => nuclear_norm_newton_schulz(c.as_ref(), ns_options, par),
    };
    result.seconds_factor = (factored - start).as_secs_f64();
    result.seconds_product = (multiplied - factored).as_secs_f64();
    result.seconds_trace = multiplied.elapsed().as_secs_f64();
    result.factorisation = factorisation;
    result.clipped_mass += f1.dropped + f2.dropped;
    result.value = mean_term + traces - 2.0 * result.value;
    result.seconds = start.elapsed().as_secs_f64();
    Ok(result)
}

/// A factor B (d × r) of a covariance, B Bᵀ = Σ up to round-off.
struct Factor {
    b: Mat<f64>,
    rank: usize,
    pivoted: bool,
    /// Trace of the round-off remainder Σ − BBᵀ that was dropped (pivoted factorisation only).
    dropped: f64,
}

/// Relative size of the remainder that is still taken as round-off (see `factor`).
const PSD_ROUND_OFF: f64 = 1e-5;

/// Pivoted columns between two rank-k updates of the Schur complement (a BLAS-3 product each).
const PIVOT_BLOCK: usize = 64;

/// A factor of Σ by a rank-revealing pivoted Cholesky (LAPACK's dpstrf, right-looking in blocks): each
/// step pivots on the largest remaining diagonal entry of the Schur complement, and it stops once every one
/// is at round-off level, d · ε · max diag (NumPy's `matrix_rank` rule): n − 1 columns for n < d samples,
/// O(d² r) work instead of the O(d³) of an eigendecomposition. If the rank passes d/4 the matrix is probably
/// positive definite: the blocked Cholesky is tried then (d³/3, fast), and the pivoted one goes on only if
/// that fails. The remainder Σ − BBᵀ left at the end must be round-off: a covariance's remainder is PSD, so
/// no entry exceeds its largest diagonal one; a larger entry means Σ is not positive semi-definite.
fn factor(name: &str, sigma: MatRef<'_, f64>, par: Par) -> Result<Factor> {
    let d = sigma.nrows();
    let mut diag: Vec<f64> = (0..d).map(|i| sigma[(i, i)]).collect();
    let max_diag = diag.iter().cloned().fold(0.0, f64::max);
    let threshold = d as f64 * f64::EPSILON * max_diag;
    let try_cholesky_at = (d / 4).max(1);
    // The Schur complement (lower triangle), current up to the start of the present block.
    let mut schur = Mat::from_fn(d, d, |i, j| if i >= j { sigma[(i, j)] } else { 0.0 });
    let mut pivoted = vec![false; d];
    let mut columns: Vec<Vec<f64>> = Vec::new();
    let mut block_start = 0;
    let update = |schur: &mut Mat<f64>, block: &[Vec<f64>]| {
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
        if columns.len() == try_cholesky_at {
            if let Ok(llt) = sigma.llt(Side::Lower) {
                let l = llt.L();
                return Ok(Factor {
                    b: Mat::from_fn(d, d, |i, j| if i >= j { l[(i, j)] } else { 0.0 }),
                    rank: d,
                    pivoted: false,
                    dropped: 0.0,
                });
            }
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
    for (a, &j) in rest.iter().enumerate() {
        for &i in &rest[a..] {
            worst = worst.max(schur[(i, j)].abs());
        }
    }
    // What a covariance can leave: round-off of the updates (far below 4 × threshold for float64 data), or
    // the rounding of statistics stored in float32 (about 6e-8 of the largest entry, amplified a little by
    // the elimination). Anything above is a negative direction: Σ is not positive semi-definite.
    let tolerance = (4.0 * threshold).max(PSD_ROUND_OFF * max_diag);
    if worst > tolerance {
        return Err(FidrsError::InvalidInput(format!(
            "{name} is not positive semi-definite: after its numerical rank {rank} an entry {worst:.3e} \
             remains (round-off would be at most {tolerance:.3e}); not a covariance"
        )));
    }
    let dropped = rest.iter().map(|&i| diag[i].max(0.0)).sum();
    Ok(Factor {
        b: Mat::from_fn(d, rank, |i, j| columns[j][i]),
        rank,
        pivoted: true,
        dropped,
    })
}

/// A result of the trace step; `frechet_distance` fills in the factorisation, the value and the timings.
fn trace_result(
    method: &'static str,
    trace: f64,
    rank: usize,
    iterations: usize,
    residual: f64,
    clipped_mass: f64,
    stop_reason: &'static str,
) -> FrechetResult {
    FrechetResult {
        value: trace,
        method,
        factorisation: "",
        rank,
        iterations,
        residual,
        clipped_mass,
        stop_reason,
        seconds: 0.0,
        seconds_factor: 0.0,
        seconds_product: 0.0,
        seconds_trace: 0.0,
    }
}

/// Σ σᵢ(C) as Σ √λᵢ(CᵀC): one symmetric eigenvalue problem of the smaller size, no eigenvectors.
fn nuclear_norm_eigh(c: MatRef<'_, f64>, par: Par) -> Result<FrechetResult> {
    let k = c.ncols();
    if k == 0 {
        return Ok(trace_result("eigh", 0.0, 0, 0, 0.0, 0.0, "exact"));
    }
    // Only the lower triangle is formed (half the flops) and read.
    let mut gram = Mat::<f64>::zeros(k, k);
    triangular::matmul(
        gram.as_mut(),
        BlockStructure::TriangularLower,
        Accum::Replace,
        c.transpose(),
        BlockStructure::Rectangular,
        c,
        BlockStructure::Rectangular,
        1.0,
        par,
    );
    let eigenvalues = gram
        .self_adjoint_eigenvalues(Side::Lower)
        .map_err(|e| FidrsError::Numerical(format!("eigenvalue decomposition failed: {e:?}")))?;
    let clipped: f64 = eigenvalues.iter().filter(|&&l| l < 0.0).map(|l| -l).sum();
    let total: f64 = eigenvalues.iter().map(|&l| l.max(0.0).sqrt()).sum();
    Ok(trace_result("eigh", total, k, 0, 0.0, clipped, "exact"))
}

/// g(x) = x(3 − x²)/2, the Newton–Schulz map on one singular value (scaled to [0, 1]).
fn ns_map(x: f64) -> f64 {
    0.5 * x * (3.0 - x * x)
}

/// The y in [0, 1] with g(y) = t (g is increasing there): bisection to full precision.
fn ns_map_inverse(t: f64) -> f64 {
    let (mut lo, mut hi) = (0.0f64, 1.0f64);
    for _ in 0..80 {
        let mid = 0.5 * (lo + hi);
        if ns_map(mid) < t {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    hi
}

/// Σ σᵢ(C) = tr(Uᵀ C) for the polar factor U of C, by the Newton–Schulz iteration
/// X₀ = C/β, X ← X(3I − XᵀX)/2 with β ≥ σ_max(C) (‖C‖_F), which maps every scaled singular value
/// s ∈ [0, 1] by g(s) = s(3 − s²)/2 towards 1 (0 stays 0, as it must). It converges for every C, singular
/// or not: there is no square root of a possibly negative round-off eigenvalue, and Tₖ = tr(XₖᵀC) rises
/// monotonically to the nuclear norm.
///
/// Stopping rule, a bound on the deficit D = Σσ − T (it cannot be NaN: finite sums of finite numbers):
/// split the directions at xᵢ = 1/2. Those at or above it have σ(1 − x) ≤ (4/3) σ x(1 − x²), and
/// Σσx(1 − x²) = 2(Tₖ₊₁ − Tₖ) exactly. Those below have sᵢ < s*ₖ = g⁻ᵏ(1/2), so σᵢ < β s*ₖ, and their
/// number is at most (4/3)(k − tr XᵀX) since each has 1 − x² > 3/4. Hence
/// D ≤ (8/3)(Tₖ₊₁ − Tₖ) + (4/3)(k − tr XₖᵀXₖ) β s*ₖ; the iteration stops when this is ≤ tolerance · T.
fn nuclear_norm_newton_schulz(
    c: MatRef<'_, f64>,
    options: NewtonSchulzOptions,
    par: Par,
) -> FrechetResult {
    let k = c.ncols();
    let beta = c.norm_l2();
    if k == 0 || beta == 0.0 {
        return trace_result("newton-schulz", 0.0, 0, 0, 0.0, 0.0, "converged");
    }
    let inner = |x: &Mat<f64>| -> f64 {
        let mut t = 0.0;
        for j in 0..k {
            for i in 0..c.nrows() {
                t += x[(i, j)] * c[(i, j)];
            }
        }
        t
    };
    let mut x = Mat::from_fn(c.nrows(), k, |i, j| c[(i, j)] / beta);
    let mut gram = Mat::<f64>::zeros(k, k);
    let mut next = Mat::<f64>::zeros(c.nrows(), k);
    let mut trace = inner(&x);
    let mut s_star = 0.5; // g⁻ᵏ(1/2) for the current iteration count k
    let mut iterations = 0;
    let mut bound = f64::INFINITY;
    let mut stop_reason = "iteration limit";
    while iterations < options.max_iterations {
        matmul(
            gram.as_mut(),
            Accum::Replace,
            x.transpose(),
            x.as_ref(),
            1.0,
            par,
        );
        let gram_trace: f64 = (0..k).map(|i| gram[(i, i)]).sum();
        // next = X (3I − XᵀX) / 2
        for j in 0..k {
            for i in 0..k {
                gram[(i, j)] = if i == j {
                    1.5 - 0.5 * gram[(i, j)]
                } else {
                    -0.5 * gram[(i, j)]
                };
            }
        }
        matmul(
            next.as_mut(),
            Accum::Replace,
            x.as_ref(),
            gram.as_ref(),
            1.0,
            par,
        );
        std::mem::swap(&mut x, &mut next);
        iterations += 1;
        let next_trace = inner(&x);
        let unconverged = (4.0 / 3.0) * (k as f64 - gram_trace).max(0.0);
        bound = (8.0 / 3.0) * (next_trace - trace).max(0.0) + unconverged * beta * s_star;
        trace = next_trace;
        s_star = ns_map_inverse(s_star);
        if bound <= options.tolerance * trace {
            stop_reason = "converged";
            break;
        }
    }
    trace_result(
        "newton-schulz",
        trace,
        k,
        iterations,
        bound / trace,
        0.0,
        stop_reason,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spd(d: usize, seed: u64) -> Mat<f64> {
        let mut state = seed;
        let x = Mat::from_fn(d, d, |_, _| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 11) as f64 / (1u64 << 53) as f64 - 0.5
        });
        let mut s = &x * x.transpose();
        for i in 0..d {
            s[(i, i)] += 0.1;
        }
        s
    }

    #[test]
    fn identical_gaussians_are_at_distance_zero() {
        let s = spd(20, 1);
        let mu = vec![0.3; 20];
        for method in [Method::Eigh, Method::NewtonSchulz] {
            let r = frechet_distance(
                &mu,
                s.as_ref(),
                &mu,
                s.as_ref(),
                method,
                Default::default(),
                Par::Seq,
            )
            .unwrap();
            assert!(r.value.abs() < 1e-9, "{method:?}: {}", r.value);
            assert_eq!(
                r.method,
                if method == Method::Eigh {
                    "eigh"
                } else {
                    "newton-schulz"
                }
            );
        }
    }

    #[test]
    fn commuting_diagonal_case_has_closed_form() {
        // Diagonal Σ: FID = Σ (√a − √b)² + ‖μ₁ − μ₂‖².
        let (a, b): ([f64; 3], [f64; 3]) = ([1.0, 4.0, 9.0], [4.0, 1.0, 16.0]);
        let s1 = Mat::from_fn(3, 3, |i, j| if i == j { a[i] } else { 0.0 });
        let s2 = Mat::from_fn(3, 3, |i, j| if i == j { b[i] } else { 0.0 });
        let expected: f64 = (0..3)
            .map(|i| (a[i].sqrt() - b[i].sqrt()).powi(2))
            .sum::<f64>()
            + 3.0;
        for method in [Method::Eigh, Method::NewtonSchulz] {
            let r = frechet_distance(
                &[1.0, 1.0, 1.0],
                s1.as_ref(),
                &[0.0, 0.0, 0.0],
                s2.as_ref(),
                method,
                Default::default(),
                Par::Seq,
            )
            .unwrap();
            assert!(
                (r.value - expected).abs() < 1e-10,
                "{method:?}: {} vs {expected}",
                r.value
            );
        }
    }

    #[test]
    fn rejects_nan_and_asymmetry() {
        let mu = vec![0.0; 4];
        let refused = |s: &Mat<f64>| {
            frechet_distance(
                &mu,
                s.as_ref(),
                &mu,
                s.as_ref(),
                Method::Eigh,
                Default::default(),
                Par::Seq,
            )
            .is_err()
        };
        let mut s = spd(4, 2);
        assert!(!refused(&s));
        s[(1, 2)] += 1.0;
        assert!(refused(&s));
        s[(1, 2)] = f64::NAN;
        assert!(refused(&s));
    }
}
