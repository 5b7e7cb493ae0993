//! The Fréchet distance between two Gaussians:
//! FID = ‖μ₁ − μ₂‖² + tr Σ₁ + tr Σ₂ − 2 tr √(Σ₁Σ₂), everything in f64.

use std::str::FromStr;
use std::time::Instant;

use faer::linalg::matmul::matmul;
use faer::{Accum, Mat, MatRef, Par, Side};

use crate::error::{FidrsError, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// tr √(Σ₁Σ₂) = Σ √λ(Lᵀ Σ₂ L) with Σ₁ = LLᵀ, or with √Σ₁ from an eigendecomposition when Σ₁ is singular.
    Eigh,
    /// Coupled Newton–Schulz iteration on the Frobenius-normalised Σ₁Σ₂.
    NewtonSchulz,
}

impl FromStr for Method {
    type Err = FidrsError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "eigh" => Ok(Method::Eigh),
            "newton-schulz" => Ok(Method::NewtonSchulz),
            other => Err(FidrsError::InvalidInput(format!(
                "unknown method {other:?} for the Rust core: expected eigh or newton-schulz"
            ))),
        }
    }
}

#[derive(Debug, Clone)]
pub struct FrechetResult {
    pub value: f64,
    /// The method that produced `value` (Newton–Schulz falls back to eigh when it does not converge).
    pub method: &'static str,
    /// "cholesky" or "eigen" for eigh; "newton-schulz" otherwise.
    pub factorisation: &'static str,
    /// Size of the eigenproblem solved: d for Cholesky, the numerical rank for the eigen factor.
    pub rank: usize,
    pub iterations: usize,
    /// Newton–Schulz: ‖Y² − A‖_F / ‖A‖_F at the end (A normalised). Zero for eigh.
    pub residual: f64,
    /// Sum of |λ| over the negative round-off eigenvalues that were clipped to zero.
    pub clipped_mass: f64,
    /// Set when the requested method did not converge and eigh was used instead.
    pub fallback_reason: Option<String>,
    pub seconds: f64,
}

#[derive(Debug, Clone, Copy)]
pub struct NewtonSchulzOptions {
    pub tolerance: f64,
    pub max_iterations: usize,
}

impl Default for NewtonSchulzOptions {
    fn default() -> Self {
        Self {
            tolerance: 1e-10,
            max_iterations: 100,
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
    let mut result = match method {
        Method::Eigh => trace_sqrt_eigh(sigma1, sigma2, par)?,
        Method::NewtonSchulz => match trace_sqrt_newton_schulz(sigma1, sigma2, ns_options, par) {
            Ok(r) => r,
            Err(reason) => {
                let mut r = trace_sqrt_eigh(sigma1, sigma2, par)?;
                r.fallback_reason = Some(reason);
                r
            }
        },
    };
    result.value = mean_term + traces - 2.0 * result.value;
    result.seconds = start.elapsed().as_secs_f64();
    Ok(result)
}

/// Σ √max(λ, 0) over the eigenvalues of a symmetric matrix, and the mass of the clipped negatives.
fn sum_sqrt_eigenvalues(m: &Mat<f64>) -> Result<(f64, f64)> {
    let eigenvalues = m
        .self_adjoint_eigenvalues(Side::Lower)
        .map_err(|e| FidrsError::Numerical(format!("eigenvalue decomposition failed: {e:?}")))?;
    let clipped: f64 = eigenvalues.iter().filter(|&&l| l < 0.0).map(|l| -l).sum();
    let total: f64 = eigenvalues.iter().map(|&l| l.max(0.0).sqrt()).sum();
    Ok((total, clipped))
}

fn symmetrise(m: &mut Mat<f64>) {
    let d = m.nrows();
    for j in 0..d {
        for i in (j + 1)..d {
            let v = 0.5 * (m[(i, j)] + m[(j, i)]);
            m[(i, j)] = v;
            m[(j, i)] = v;
        }
    }
}

/// Bᵀ Σ₂ B, symmetrised against round-off.
fn congruence(b: MatRef<'_, f64>, sigma2: MatRef<'_, f64>, par: Par) -> Mat<f64> {
    let d = b.nrows();
    let mut tmp = Mat::<f64>::zeros(d, b.ncols());
    matmul(tmp.as_mut(), Accum::Replace, sigma2, b, 1.0, par);
    let mut m = Mat::<f64>::zeros(b.ncols(), b.ncols());
    matmul(
        m.as_mut(),
        Accum::Replace,
        b.transpose(),
        tmp.as_ref(),
        1.0,
        par,
    );
    symmetrise(&mut m);
    m
}

/// A factor B with B Bᵀ = Σ from the eigendecomposition, keeping only the numerical range
/// (λ > d · ε · λ_max, NumPy's `matrix_rank` rule): d × r with r ≤ n − 1 for n samples. Returns the
/// factor and the mass of the negative round-off eigenvalues dropped.
fn low_rank_factor(sigma: MatRef<'_, f64>) -> Result<(Mat<f64>, f64)> {
    let evd = sigma
        .self_adjoint_eigen(Side::Lower)
        .map_err(|e| FidrsError::Numerical(format!("eigendecomposition failed: {e:?}")))?;
    let (u, s) = (evd.U(), evd.S());
    let d = u.nrows();
    let eigenvalues: Vec<f64> = (0..d).map(|i| s[i]).collect();
    let largest = eigenvalues.iter().cloned().fold(0.0, f64::max);
    let threshold = largest * d as f64 * f64::EPSILON;
    let kept: Vec<usize> = (0..d).filter(|&i| eigenvalues[i] > threshold).collect();
    let clipped: f64 = eigenvalues.iter().filter(|&&l| l < 0.0).map(|l| -l).sum();
    let factor = Mat::from_fn(d, kept.len(), |i, j| {
        u[(i, kept[j])] * eigenvalues[kept[j]].sqrt()
    });
    Ok((factor, clipped))
}

/// tr √(Σ₁Σ₂) through a symmetric PSD problem: Σ₁Σ₂ is similar to Bᵀ Σ₂ B for any B with B Bᵀ = Σ₁
/// (and the trace is symmetric in Σ₁, Σ₂), so no complex arithmetic is needed.
/// - both positive definite: B = L, the Cholesky factor (cheapest);
/// - one singular (fewer samples than dimensions): B from that one's eigendecomposition, restricted to
///   its numerical rank r, so the eigenproblem is r × r. Dropping the null space is also what makes
///   FID(X, X) come out as 0 to round-off instead of the ~1e-4 that √ of null-space noise gives.
fn trace_sqrt_eigh(
    sigma1: MatRef<'_, f64>,
    sigma2: MatRef<'_, f64>,
    par: Par,
) -> Result<FrechetResult> {
    let (chol1, chol2) = (sigma1.llt(Side::Lower), sigma2.llt(Side::Lower));
    let (factor, other, factorisation, clipped_factor) = match (chol1, chol2) {
        (Ok(l1), Ok(_)) => (l1.L().to_owned(), sigma2, "cholesky", 0.0),
        (Ok(_), Err(_)) => {
            let (b, clipped) = low_rank_factor(sigma2)?;
            (b, sigma1, "eigen", clipped)
        }
        (Err(_), _) => {
            let (b, clipped) = low_rank_factor(sigma1)?;
            (b, sigma2, "eigen", clipped)
        }
    };
    let rank = factor.ncols();
    let m = congruence(factor.as_ref(), other, par);
    let (trace, clipped_mass) = sum_sqrt_eigenvalues(&m)?;
    Ok(FrechetResult {
        value: trace,
        method: "eigh",
        factorisation,
        rank,
        iterations: 0,
        residual: 0.0,
        clipped_mass: clipped_mass + clipped_factor,
        fallback_reason: None,
        seconds: 0.0,
    })
}

fn frobenius(m: MatRef<'_, f64>) -> f64 {
    m.norm_l2()
}

/// Coupled Newton–Schulz: Y₀ = A/‖A‖, Z₀ = I, T = (3I − ZY)/2, Y ← YT, Z ← TZ; Y → √(A/‖A‖).
/// Stops when the relative change of Y is below the tolerance; Err(reason) when it does not converge.
fn trace_sqrt_newton_schulz(
    sigma1: MatRef<'_, f64>,
    sigma2: MatRef<'_, f64>,
    options: NewtonSchulzOptions,
    par: Par,
) -> std::result::Result<FrechetResult, String> {
    let d = sigma1.nrows();
    let mut a = Mat::<f64>::zeros(d, d);
    matmul(a.as_mut(), Accum::Replace, sigma1, sigma2, 1.0, par);
    let norm = frobenius(a.as_ref());
    if norm == 0.0 {
        return Ok(FrechetResult {
            value: 0.0,
            method: "newton-schulz",
            factorisation: "newton-schulz",
            rank: d,
            iterations: 0,
            residual: 0.0,
            clipped_mass: 0.0,
            fallback_reason: None,
            seconds: 0.0,
        });
    }
    a /= norm;
    let identity = Mat::<f64>::identity(d, d);
    let mut y = a.clone();
    let mut z = identity.clone();
    let mut zy = Mat::<f64>::zeros(d, d);
    let mut next = Mat::<f64>::zeros(d, d);
    let mut iterations = 0;
    let mut converged = false;
    while iterations < options.max_iterations {
        iterations += 1;
        matmul(
            zy.as_mut(),
            Accum::Replace,
            z.as_ref(),
            y.as_ref(),
            1.0,
            par,
        );
        let t = Mat::from_fn(d, d, |i, j| 0.5 * (3.0 * identity[(i, j)] - zy[(i, j)]));
        matmul(
            next.as_mut(),
            Accum::Replace,
            y.as_ref(),
            t.as_ref(),
            1.0,
            par,
        );
        let change =
            frobenius((&next - &y).as_ref()) / frobenius(next.as_ref()).max(f64::MIN_POSITIVE);
        std::mem::swap(&mut y, &mut next);
        matmul(
            next.as_mut(),
            Accum::Replace,
            t.as_ref(),
            z.as_ref(),
            1.0,
            par,
        );
        std::mem::swap(&mut z, &mut next);
        if !change.is_finite() {
            break;
        }
        if change < options.tolerance {
            converged = true;
            break;
        }
    }
    matmul(
        next.as_mut(),
        Accum::Replace,
        y.as_ref(),
        y.as_ref(),
        1.0,
        par,
    );
    let residual = frobenius((&next - &a).as_ref()) / frobenius(a.as_ref());
    if !converged || !residual.is_finite() || residual > options.tolerance.sqrt() {
        return Err(format!(
            "Newton-Schulz did not converge: {iterations} iterations, residual {residual:.3e}"
        ));
    }
    let trace: f64 = (0..d).map(|i| y[(i, i)]).sum::<f64>() * norm.sqrt();
    Ok(FrechetResult {
        value: trace,
        method: "newton-schulz",
        factorisation: "newton-schulz",
        rank: d,
        iterations,
        residual,
        clipped_mass: 0.0,
        fallback_reason: None,
        seconds: 0.0,
    })
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
            assert!(r.fallback_reason.is_none());
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
