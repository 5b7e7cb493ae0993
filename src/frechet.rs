//! The Fréchet distance between two Gaussians:
//! FID = ‖μ₁ − μ₂‖² + tr Σ₁ + tr Σ₂ − 2 tr √(Σ₁Σ₂), everything in f64, from two `Covariance`s (checked and
//! factorised once, BᵢBᵢᵀ = Σᵢ): tr √(Σ₁Σ₂) = ‖B₁ᵀB₂‖_*, the sum of the singular values of C = B₁ᵀB₂.

use std::str::FromStr;
use std::time::Instant;

use faer::linalg::matmul::matmul;
use faer::linalg::matmul::triangular::{self, BlockStructure};
use faer::{Accum, Mat, MatMut, MatRef, Par};

use crate::covariance::{Covariance, Factorisation};
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

impl NewtonSchulzOptions {
    /// The options, refused up front unless they can work: a relative tolerance in (0, 1) and at least one
    /// iteration (whatever the method, so that a bad value never passes silently).
    pub fn new(tolerance: f64, max_iterations: usize) -> Result<Self> {
        if !(tolerance > 0.0 && tolerance < 1.0) {
            return Err(FidrsError::InvalidInput(format!(
                "tolerance must be a relative error bound between 0 and 1 (exclusive), got {tolerance}"
            )));
        }
        if max_iterations == 0 {
            return Err(FidrsError::InvalidInput(
                "max_iterations must be at least 1, got 0".into(),
            ));
        }
        Ok(Self {
            tolerance,
            max_iterations,
        })
    }
}

/// A non-negative number as m·2^k, so that sums of terms of any size can be formed without overflow.
#[derive(Clone, Copy)]
struct Scaled {
    mantissa: f64,
    log2: i32,
}

impl Scaled {
    fn new(mantissa: f64, log2: i32) -> Self {
        Self { mantissa, log2 }
    }

    fn at(self, log2: i32) -> f64 {
        scale_pow2(self.mantissa, self.log2 - log2)
    }
}

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

/// ‖a − b‖² as m·2^k: the difference is scaled by a power of two before it is squared, so that means far
/// from 1 (1e160, 1e-170) neither overflow nor underflow.
fn squared_distance(a: &[f64], b: &[f64]) -> Result<Scaled> {
    let largest = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max);
    if !largest.is_finite() {
        return Err(FidrsError::InvalidInput(
            "the mean vectors differ by more than the float64 range".into(),
        ));
    }
    let k = if largest > 0.0 {
        largest.log2().ceil() as i32
    } else {
        0
    };
    let sum: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| {
            let v = scale_pow2(x - y, -k);
            v * v
        })
        .sum();
    Ok(Scaled::new(sum, 2 * k))
}

/// The Fréchet distance between N(μ₁, Σ₁) and N(μ₂, Σ₂), from the two checked, factorised covariances.
pub fn frechet_distance(
    mu1: &[f64],
    sigma1: &Covariance,
    mu2: &[f64],
    sigma2: &Covariance,
    method: Method,
    ns_options: NewtonSchulzOptions,
    par: Par,
) -> Result<FrechetResult> {
    let start = Instant::now();
    let d = sigma1.dim();
    for (name, mu, sigma) in [("mu1", mu1, sigma1), ("mu2", mu2, sigma2)] {
        if mu.len() != sigma.dim() || sigma.dim() != d {
            return Err(FidrsError::InvalidInput(format!(
                "mean vectors and covariances differ in length: mu1 {}, sigma1 {d}x{d}, mu2 {}, sigma2 {}x{}",
                mu1.len(),
                mu2.len(),
                sigma2.dim(),
                sigma2.dim()
            )));
        }
        if let Some(i) = mu.iter().position(|v| !v.is_finite()) {
            return Err(FidrsError::InvalidInput(format!(
                "{name}[{i}] is not finite ({})",
                mu[i]
            )));
        }
    }
    let mean_term = squared_distance(mu1, mu2)?;
    let (f1, f2) = (sigma1.factor(), sigma2.factor());
    let factorisation = if f1.ncols() == 0 || f2.ncols() == 0 {
        "zero"
    } else if sigma1.kind() != Factorisation::Cholesky || sigma2.kind() != Factorisation::Cholesky {
        "pivoted-cholesky"
    } else {
        "cholesky"
    };
    // C = B₁ᵀB₂ (r₁ × r₂), or its transpose B₂ᵀB₁ where r₂ > r₁: the same singular values (the square roots
    // of the eigenvalues of Σ₁Σ₂ / 4^(e₁+e₂)), with no fewer rows than columns, so that the Gram matrix CᵀC
    // is the smaller one. Column-major in a plain buffer, so that the Gram matrix can be formed in it.
    let (left, right) = if f2.ncols() > f1.ncols() {
        (f2, f1)
    } else {
        (f1, f2)
    };
    let (rows, cols) = (left.ncols(), right.ncols());
    let mut c = vec![0f64; rows * cols];
    {
        let cm = MatMut::from_column_major_slice_mut(&mut c, rows, cols);
        if factorisation == "cholesky" {
            // Both Cholesky factors are triangular: L₁ᵀL₂ costs a third of a general product.
            triangular::matmul(
                cm,
                BlockStructure::Rectangular,
                Accum::Replace,
                left.transpose(),
                BlockStructure::TriangularUpper,
                right,
                BlockStructure::TriangularLower,
                1.0,
                par,
            );
        } else if factorisation == "pivoted-cholesky" {
            matmul(cm, Accum::Replace, left.transpose(), right, 1.0, par);
        }
    }
    let multiplied = Instant::now();
    let mut result = match method {
        Method::Eigh => nuclear_norm_eigh(c, rows, cols, par)?,
        Method::NewtonSchulz => nuclear_norm_newton_schulz(
            MatRef::from_column_major_slice(&c, rows, cols),
            ns_options,
            par,
        ),
    };
    let trace_step = multiplied.elapsed().as_secs_f64();
    // FID = ‖μ₁ − μ₂‖² + tr Σ₁ + tr Σ₂ − 2 tr √(Σ₁Σ₂), each term m·2^k, summed at the largest k.
    let (e1, e2) = (sigma1.exponent(), sigma2.exponent());
    let terms = [
        mean_term,
        Scaled::new(sigma1.trace_scaled(), 2 * e1),
        Scaled::new(sigma2.trace_scaled(), 2 * e2),
        Scaled::new(result.value, e1 + e2),
    ];
    let top = terms
        .iter()
        .filter(|t| t.mantissa != 0.0)
        .map(|t| t.log2)
        .max()
        .unwrap_or(0);
    let at_top = terms[0].at(top) + terms[1].at(top) + terms[2].at(top) - 2.0 * terms[3].at(top);
    let value = scale_pow2(at_top, top);
    if !value.is_finite() {
        return Err(FidrsError::InvalidInput(format!(
            "the Fréchet distance is beyond the float64 range (about {at_top:.3}·2^{top}): these statistics \
             are not features of one network"
        )));
    }
    result.value = value;
    result.factorisation = factorisation;
    let clipped = Scaled::new(result.clipped_mass, e1 + e2).at(0);
    result.clipped_mass = clipped
        + Scaled::new(sigma1.dropped_scaled(), 2 * e1).at(0)
        + Scaled::new(sigma2.dropped_scaled(), 2 * e2).at(0);
    result.seconds_factor = sigma1.seconds + sigma2.seconds;
    result.seconds_product = (multiplied - start).as_secs_f64();
    result.seconds_trace = trace_step;
    result.seconds = result.seconds_factor + start.elapsed().as_secs_f64();
    Ok(result)
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

/// Columns of the Gram matrix formed per block in `gram_in_place`: the block's buffer (k × 256 f64, 4 MiB at
/// k = 2048) is all the memory the Gram matrix takes beyond C.
const GRAM_BLOCK: usize = 256;

/// The lower triangle of G = CᵀC (k × k, k = cols ≤ rows) formed in the buffer of C (rows × k, column-major),
/// which is consumed: block column J of G needs only the columns of C from block J on, and is written where
/// the columns of C before block J + 1, no longer needed, were. The buffer is cut to k·k. The strict upper
/// triangle of G is left undefined (the eigenvalue step reads the lower one).
fn gram_in_place(c: &mut Vec<f64>, rows: usize, k: usize, par: Par) {
    let mut block = vec![0f64; k * GRAM_BLOCK.min(k)];
    for j0 in (0..k).step_by(GRAM_BLOCK) {
        let width = GRAM_BLOCK.min(k - j0);
        let height = k - j0;
        {
            // G[j0.., j0..j0+width] = C[:, j0..]ᵀ C[:, j0..j0+width], into the block buffer.
            let cm = MatRef::from_column_major_slice(&c[..], rows, k);
            let out =
                MatMut::from_column_major_slice_mut(&mut block[..height * width], height, width);
            matmul(
                out,
                Accum::Replace,
                cm.subcols(j0, height).transpose(),
                cm.subcols(j0, width),
                1.0,
                par,
            );
        }
        // Column j0 + q of G, rows j0.., lives at (j0 + q)·k + j0.. of the buffer: before the end of column
        // j0 + q of C ((j0 + q + 1)·rows, since k ≤ rows), a column already used.
        for q in 0..width {
            let at = (j0 + q) * k + j0;
            c[at..at + height].copy_from_slice(&block[q * height..(q + 1) * height]);
        }
    }
    c.truncate(k * k);
}

/// Σ σᵢ(C) as Σ √λᵢ(CᵀC): one symmetric eigenvalue problem of the smaller size (C, rows × cols with
/// cols ≤ rows, column-major in `c`), no eigenvectors. The Gram matrix is formed in C's buffer.
fn nuclear_norm_eigh(mut c: Vec<f64>, rows: usize, cols: usize, par: Par) -> Result<FrechetResult> {
    let k = cols;
    if k == 0 {
        return Ok(trace_result("eigh", 0.0, 0, 0, 0.0, 0.0, "exact"));
    }
    gram_in_place(&mut c, rows, k, par);
    let eigenvalues = crate::eigen::symmetric_eigenvalues(c, k, par)?;
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
    use crate::covariance::{Origin, Precision};

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
        Mat::from_fn(d, d, |i, j| s[(i.max(j), i.min(j))])
    }

    fn cov(s: &Mat<f64>) -> Covariance {
        let origin = Origin {
            mean: None,
            one_pass_samples: None,
            precision: Precision::Float64,
            two_pass: false,
        };
        Covariance::new(s.as_ref(), origin, "sigma", "mu", Par::Seq).unwrap()
    }

    fn fid(
        mu1: &[f64],
        s1: &Mat<f64>,
        mu2: &[f64],
        s2: &Mat<f64>,
        method: Method,
    ) -> Result<FrechetResult> {
        frechet_distance(
            mu1,
            &cov(s1),
            mu2,
            &cov(s2),
            method,
            Default::default(),
            Par::Seq,
        )
    }

    #[test]
    fn the_gram_matrix_formed_in_place_equals_ct_c() {
        // Square and tall, one block and several (the last partial), as the two orientations of C give.
        for (rows, k) in [(1, 1), (300, 300), (700, 600), (513, 257)] {
            let c = Mat::from_fn(rows, k, |i, j| ((i * 37 + j * 11) % 29) as f64 / 29.0 - 0.5);
            let expected = c.transpose() * &c;
            let mut buffer: Vec<f64> = (0..k)
                .flat_map(|j| (0..rows).map(move |i| (i, j)))
                .map(|(i, j)| c[(i, j)])
                .collect();
            gram_in_place(&mut buffer, rows, k, Par::rayon(2));
            assert_eq!(buffer.len(), k * k);
            for j in 0..k {
                for i in j..k {
                    // A sum of `rows` products in another order: within rows·ε·Σ|c||c| ≤ rows²·ε/4.
                    let bound = (rows * rows) as f64 * f64::EPSILON / 4.0;
                    assert!(
                        (buffer[j * k + i] - expected[(i, j)]).abs() <= bound,
                        "{rows}x{k}: [{i}, {j}]"
                    );
                }
            }
        }
    }

    #[test]
    fn identical_gaussians_are_at_distance_zero() {
        let s = spd(20, 1);
        let mu = vec![0.3; 20];
        for method in [Method::Eigh, Method::NewtonSchulz] {
            let r = fid(&mu, &s, &mu, &s, method).unwrap();
            assert!(r.value.abs() < 1e-9, "{method:?}: {}", r.value);
            let name = if method == Method::Eigh {
                "eigh"
            } else {
                "newton-schulz"
            };
            assert_eq!(r.method, name);
        }
    }

    #[test]
    fn commuting_diagonal_case_has_closed_form_at_every_scale() {
        // Diagonal Σ: FID = Σ (√a − √b)² + ‖μ₁ − μ₂‖², and FID(c·μ, c²·Σ) = c²·FID.
        let (a, b): ([f64; 3], [f64; 3]) = ([1.0, 4.0, 9.0], [4.0, 1.0, 16.0]);
        let expected: f64 = (0..3)
            .map(|i| (a[i].sqrt() - b[i].sqrt()).powi(2))
            .sum::<f64>()
            + 3.0;
        for c in [1e-170, 1e-20, 1.0, 1e20, 1e150] {
            let s1 = Mat::from_fn(3, 3, |i, j| if i == j { a[i] * c * c } else { 0.0 });
            let s2 = Mat::from_fn(3, 3, |i, j| if i == j { b[i] * c * c } else { 0.0 });
            for method in [Method::Eigh, Method::NewtonSchulz] {
                let r = fid(&[c, c, c], &s1, &[0.0; 3], &s2, method).unwrap();
                let want = expected * c * c;
                assert!(
                    (r.value - want).abs() <= 1e-10 * want,
                    "{c} {method:?}: {} vs {want}",
                    r.value
                );
            }
        }
    }

    #[test]
    fn a_distance_beyond_float64_is_an_error_not_infinity() {
        let s = spd(4, 3);
        let message = fid(&[1e160; 4], &s, &[-1e160; 4], &s, Method::Eigh)
            .unwrap_err()
            .to_string();
        assert!(message.contains("beyond the float64 range"), "{message}");
        // Huge but equal covariances: the traces cancel against 2 tr √, a finite (zero) answer.
        let big = Mat::from_fn(4, 4, |i, j| s[(i, j)] * 1e300);
        let r = fid(&[0.0; 4], &big, &[0.0; 4], &big, Method::Eigh).unwrap();
        assert!(r.value.abs() <= 1e-9 * 4e300, "{}", r.value);
    }

    #[test]
    fn invalid_options_are_refused() {
        assert!(NewtonSchulzOptions::new(1e-10, 0).is_err());
        for tolerance in [0.0, -1.0, 1.0, f64::NAN, f64::INFINITY] {
            assert!(
                NewtonSchulzOptions::new(tolerance, 10).is_err(),
                "{tolerance}"
            );
        }
        assert!(NewtonSchulzOptions::new(1e-10, 1).is_ok());
    }
}
