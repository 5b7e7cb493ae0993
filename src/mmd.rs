//! The maximum mean discrepancy with a Gaussian RBF kernel, as CMMD defines it (Jayasumana et al. 2024,
//! google-research/cmmd `distance.py`): the biased estimator (diagonals included)
//!
//!   MMD² = mean_ij k(x_i, x_j) + mean_ij k(y_i, y_j) − 2 mean_ij k(x_i, y_j),  k(a, b) = exp(−‖a − b‖²/(2σ²)),
//!
//! reported × 1000 with σ = 10 on CLIP embeddings. The N×M (and N×N, M×M) kernel matrices are computed in
//! blocks of `BLOCK` rows and never held: memory is O(threads · BLOCK · (d + B)) besides the inputs.
//!
//! Exactness. The three means are all near 1 and cancel (MMD² ≈ 2e-4 on CLIP embeddings), so each is
//! summed as k − 1 (the constants cancel exactly: 1 + 1 − 2 = 0), and everything from the embeddings on is
//! float64: products of float32 numbers are exact in float64, so ‖a − b‖² = ‖a‖² + ‖b‖² − 2a·b carries only
//! d·u ≈ 1e-13 of rounding, exp is accurate to 2 ulp, and each entry's k − 1 to ~1e-16 absolute: the
//! estimate is exact to ~1e-12 relative at MMD² = 1e-4 (the official float32 value carries up to ~1e-3).
//!
//! The bootstrap resamples each set with replacement; a resample is a vector of multiplicities w (Σw = N),
//! and the biased estimator of the resampled sets is the weighted sum wᵀKw/(Σw)² + …: each kernel block is
//! computed once and applied to all B weight vectors (one matrix product), so B resamples cost one pass.
//!
//! The sums are reduced in a fixed order (blocks within a row in order, rows in order), so the value does
//! not depend on the number of threads.

use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};
use rayon::prelude::*;

use crate::cancel::Cancel;
use crate::error::{FidrsError, Result};

/// CMMD's kernel bandwidth σ (google-research/cmmd `distance.py`: `_SIGMA = 10`).
pub const CMMD_SIGMA: f64 = 10.0;
/// CMMD's reporting scale (`_SCALE = 1000`).
pub const CMMD_SCALE: f64 = 1000.0;

/// Rows per kernel block: a 256 × d by d × 256 product (50 M multiply-adds at d = 768) runs the matrix
/// product at its full rate (34 G multiply-adds/s on one AVX-512 core, measured at N = M = 4096: 128 is as
/// fast, 512 is 30 % slower), and the kernel block itself (0.5 MB) stays in cache.
const BLOCK: usize = 256;

/// A set of embeddings: `rows` × `dim`, row-major float32.
#[derive(Clone, Copy)]
pub struct Embeddings<'a> {
    pub data: &'a [f32],
    pub rows: usize,
    pub dim: usize,
}

/// B multiplicity vectors over a set of `rows`: `counts[b · rows + i]` copies of row i in resample b.
#[derive(Clone, Copy)]
pub struct Resamples<'a> {
    pub counts: &'a [u32],
    pub count: usize,
}

impl<'a> Embeddings<'a> {
    fn check(&self, name: &str) -> Result<()> {
        if self.rows == 0 || self.dim == 0 || self.data.len() != self.rows * self.dim {
            return Err(FidrsError::InvalidInput(format!(
                "{name} must be a non-empty N×d array of embeddings, got {} values for {}×{}",
                self.data.len(),
                self.rows,
                self.dim
            )));
        }
        if let Some(bad) = self.data.iter().position(|v| !v.is_finite()) {
            return Err(FidrsError::InvalidInput(format!(
                "{name}[{}, {}] is not finite ({})",
                bad / self.dim,
                bad % self.dim,
                self.data[bad]
            )));
        }
        Ok(())
    }

    /// Rows `start..start + len` in float64, row-major (len × dim) in `out`: a straight, vectorised copy.
    fn block_into(&self, start: usize, len: usize, out: &mut Vec<f64>) {
        out.clear();
        let rows = &self.data[start * self.dim..(start + len) * self.dim];
        out.extend(rows.iter().map(|&v| v as f64));
    }

    /// ‖row‖² in float64 for every row.
    fn squared_norms(&self) -> Vec<f64> {
        self.data
            .chunks_exact(self.dim)
            .map(|row| row.iter().map(|&v| (v as f64) * (v as f64)).sum())
            .collect()
    }
}

impl<'a> Resamples<'a> {
    fn check(&self, name: &str, rows: usize) -> Result<()> {
        if self.count == 0 || self.counts.len() != self.count * rows {
            return Err(FidrsError::InvalidInput(format!(
                "{name} must hold B ≥ 1 rows of {rows} multiplicities, got {} values",
                self.counts.len()
            )));
        }
        for b in 0..self.count {
            if self.counts[b * rows..(b + 1) * rows]
                .iter()
                .all(|&c| c == 0)
            {
                return Err(FidrsError::InvalidInput(format!(
                    "{name} row {b} selects no embedding (all multiplicities are 0)"
                )));
            }
        }
        Ok(())
    }

    /// Multiplicities of rows `start..start + len` for every resample, as a len × B column-major matrix.
    fn block_into(&self, rows: usize, start: usize, len: usize, out: &mut Vec<f64>) {
        out.clear();
        out.resize(len * self.count, 0.0);
        for b in 0..self.count {
            let counts = &self.counts[b * rows + start..b * rows + start + len];
            for (r, &c) in counts.iter().enumerate() {
                out[b * len + r] = c as f64;
            }
        }
    }

    fn totals(&self, rows: usize) -> Vec<f64> {
        (0..self.count)
            .map(|b| {
                self.counts[b * rows..(b + 1) * rows]
                    .iter()
                    .map(|&c| c as f64)
                    .sum()
            })
            .collect()
    }
}

/// Neumaier's compensated sum: the block partials (tens of thousands of them at N = 50,000) add up without
/// the rounding of a running sum growing with their number.
#[derive(Clone, Copy, Default)]
struct Sum {
    total: f64,
    compensation: f64,
}

impl Sum {
    fn add(&mut self, v: f64) {
        let t = self.total + v;
        if self.total.abs() >= v.abs() {
            self.compensation += (self.total - t) + v;
        } else {
            self.compensation += (v - t) + self.total;
        }
        self.total = t;
    }

    fn value(self) -> f64 {
        self.total + self.compensation
    }
}

/// exp(x) for x ≤ 0, branch-free so that it vectorises: x = k·ln 2 + r with |r| ≤ ln 2 / 2 (Cody–Waite, k by
/// the 1.5·2⁵² rounding trick), e^r by its Taylor series to r¹² (remainder < 2e-16 relative), times 2^k set
/// in the exponent bits. Below −708 it returns e^−708 ≈ 3e-308 (no subnormals): an error below 3e-308
/// absolute, nothing next to the k − 1 ≈ −1 it is summed as.
#[inline(always)]
fn exp_nonpositive(x: f64) -> f64 {
    const LOG2E: f64 = std::f64::consts::LOG2_E;
    // fdlibm's split of ln 2: LN2_HI has its low 32 bits zero, so k·LN2_HI is exact for |k| < 2²¹.
    const LN2_HI: f64 = f64::from_bits(0x3fe6_2e42_fee0_0000); // 6.93147180369123816490e-1
    const LN2_LO: f64 = f64::from_bits(0x3dea_39ef_3579_3c76); // 1.90821492927058770002e-10
    const ROUND: f64 = 6_755_399_441_055_744.0; // 1.5 · 2⁵²
    let x = x.max(-708.0);
    let shifted = x * LOG2E + ROUND;
    let k = shifted - ROUND;
    let r = (x - k * LN2_HI) - k * LN2_LO;
    let mut p = 1.0 / 479_001_600.0; // 1/12!
    for c in [
        1.0 / 39_916_800.0,
        1.0 / 3_628_800.0,
        1.0 / 362_880.0,
        1.0 / 40_320.0,
        1.0 / 5_040.0,
        1.0 / 720.0,
        1.0 / 120.0,
        1.0 / 24.0,
        1.0 / 6.0,
        0.5,
        1.0,
        1.0,
    ] {
        p = p * r + c;
    }
    // shifted's low mantissa bits hold k (two's complement around ROUND's bits).
    let k_bits = shifted.to_bits().wrapping_sub(ROUND.to_bits());
    let scale = f64::from_bits(k_bits.wrapping_add(1023) << 52);
    p * scale
}

/// E = exp(−γ·max(0, ‖a‖² + ‖b‖² − 2 a·b)) − 1 over a block, from the dot products `g` (column-major,
/// rows × cols) and the squared norms: the kernel minus one, in place.
#[inline(always)]
fn kernel_minus_one_body(
    g: &mut [f64],
    rows: usize,
    row_norms: &[f64],
    col_norms: &[f64],
    gamma: f64,
) {
    for (c, column) in g.chunks_exact_mut(rows).enumerate() {
        let nc = col_norms[c];
        for (v, &nr) in column.iter_mut().zip(row_norms) {
            let distance = (nr + nc - 2.0 * *v).max(0.0);
            *v = exp_nonpositive(-gamma * distance) - 1.0;
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq")]
unsafe fn kernel_minus_one_avx512(g: &mut [f64], rows: usize, rn: &[f64], cn: &[f64], gamma: f64) {
    kernel_minus_one_body(g, rows, rn, cn, gamma)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn kernel_minus_one_avx2(g: &mut [f64], rows: usize, rn: &[f64], cn: &[f64], gamma: f64) {
    kernel_minus_one_body(g, rows, rn, cn, gamma)
}

/// `kernel_minus_one_body` in the widest vector build the CPU runs.
fn kernel_minus_one(g: &mut [f64], rows: usize, row_norms: &[f64], col_norms: &[f64], gamma: f64) {
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512dq") {
            // SAFETY: the CPU has the features the function is compiled for.
            return unsafe { kernel_minus_one_avx512(g, rows, row_norms, col_norms, gamma) };
        }
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            // SAFETY: as above.
            return unsafe { kernel_minus_one_avx2(g, rows, row_norms, col_norms, gamma) };
        }
    }
    kernel_minus_one_body(g, rows, row_norms, col_norms, gamma)
}

/// Which two sets a row of blocks pairs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Pair {
    XX,
    YY,
    XY,
}

/// The sums of (k − 1) of one row of kernel blocks: unweighted, and weighted by each resample.
struct RowSums {
    pair: Pair,
    plain: f64,
    weighted: Vec<f64>,
}

/// Σ_ij (k(p_i, q_j) − 1) over the row of blocks starting at row `start` of `p` (all of `q`, or only the
/// blocks up to the diagonal with off-diagonal ones counted twice when p and q are one set), and the same
/// sums weighted w_i·v_j by each resample.
#[allow(clippy::too_many_arguments)]
fn row_of_blocks(
    pair: Pair,
    p: Embeddings<'_>,
    q: Embeddings<'_>,
    p_norms: &[f64],
    q_norms: &[f64],
    weights: Option<(Resamples<'_>, Resamples<'_>)>,
    start: usize,
    gamma: f64,
    cancel: &Cancel,
) -> Result<RowSums> {
    let symmetric = pair != Pair::XY;
    let rows = BLOCK.min(p.rows - start);
    let (mut pb, mut qb, mut wp, mut wq) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    p.block_into(start, rows, &mut pb);
    let pm = MatRef::from_row_major_slice(&pb, rows, p.dim);
    let resamples = weights.map_or(0, |(w, _)| w.count);
    if let Some((w, _)) = weights {
        w.block_into(p.rows, start, rows, &mut wp);
    }
    let mut plain = Sum::default();
    let mut weighted = vec![Sum::default(); resamples];
    let mut g = vec![0f64; rows * BLOCK];
    let mut t = vec![0f64; rows * resamples];
    let end = if symmetric { start + rows } else { q.rows };
    for col_start in (0..end).step_by(BLOCK) {
        if cancel.is_cancelled() {
            return Err(FidrsError::Cancelled);
        }
        let cols = BLOCK.min(q.rows - col_start);
        q.block_into(col_start, cols, &mut qb);
        let qm = MatRef::from_row_major_slice(&qb, cols, q.dim);
        let g = &mut g[..rows * cols];
        matmul(
            MatMut::from_column_major_slice_mut(g, rows, cols),
            Accum::Replace,
            pm,
            qm.transpose(),
            1.0,
            Par::Seq,
        );
        kernel_minus_one(
            g,
            rows,
            &p_norms[start..start + rows],
            &q_norms[col_start..col_start + cols],
            gamma,
        );
        let twice = if symmetric && col_start != start {
            2.0
        } else {
            1.0
        };
        let block_sum: f64 = g.chunks_exact(rows).map(|c| c.iter().sum::<f64>()).sum();
        plain.add(twice * block_sum);
        if let Some((_, v)) = weights {
            // T = E · V_J (rows × B), then Σ_i w_i T_ib for each resample b.
            v.block_into(q.rows, col_start, cols, &mut wq);
            let em = MatRef::from_column_major_slice(g, rows, cols);
            let vm = MatRef::from_column_major_slice(&wq, cols, resamples);
            matmul(
                MatMut::from_column_major_slice_mut(&mut t, rows, resamples),
                Accum::Replace,
                em,
                vm,
                1.0,
                Par::Seq,
            );
            for (b, sum) in weighted.iter_mut().enumerate() {
                let tb = &t[b * rows..(b + 1) * rows];
                let wb = &wp[b * rows..(b + 1) * rows];
                sum.add(twice * tb.iter().zip(wb).map(|(x, w)| x * w).sum::<f64>());
            }
        }
    }
    Ok(RowSums {
        pair,
        plain: plain.value(),
        weighted: weighted.into_iter().map(Sum::value).collect(),
    })
}

/// The sums for all three pairs, reduced in a fixed order: (plain [xx, yy, xy], weighted [b][xx, yy, xy]).
fn kernel_sums(
    x: Embeddings<'_>,
    y: Embeddings<'_>,
    resamples: Option<(Resamples<'_>, Resamples<'_>)>,
    sigma: f64,
    cancel: &Cancel,
) -> Result<([f64; 3], Vec<[f64; 3]>)> {
    x.check("x")?;
    y.check("y")?;
    if x.dim != y.dim {
        return Err(FidrsError::InvalidInput(format!(
            "x and y embeddings differ in dimension: {} and {}",
            x.dim, y.dim
        )));
    }
    if !(sigma.is_finite() && sigma > 0.0) {
        return Err(FidrsError::InvalidInput(format!(
            "sigma must be a positive number, got {sigma}"
        )));
    }
    if let Some((wx, wy)) = resamples {
        wx.check("x_counts", x.rows)?;
        wy.check("y_counts", y.rows)?;
        if wx.count != wy.count {
            return Err(FidrsError::InvalidInput(format!(
                "x_counts and y_counts hold different numbers of resamples: {} and {}",
                wx.count, wy.count
            )));
        }
    }
    let gamma = 1.0 / (2.0 * sigma * sigma);
    let (nx, ny) = (x.squared_norms(), y.squared_norms());
    let swap = resamples.map(|(a, b)| (b, a));
    let mut tasks = Vec::new();
    for start in (0..x.rows).step_by(BLOCK) {
        tasks.push((Pair::XX, start));
        tasks.push((Pair::XY, start));
    }
    for start in (0..y.rows).step_by(BLOCK) {
        tasks.push((Pair::YY, start));
    }
    let rows: Vec<RowSums> = tasks
        .par_iter()
        .map(|&(pair, start)| match pair {
            Pair::XX => row_of_blocks(
                pair,
                x,
                x,
                &nx,
                &nx,
                resamples.map(|(a, _)| (a, a)),
                start,
                gamma,
                cancel,
            ),
            Pair::YY => row_of_blocks(
                pair,
                y,
                y,
                &ny,
                &ny,
                swap.map(|(a, _)| (a, a)),
                start,
                gamma,
                cancel,
            ),
            Pair::XY => row_of_blocks(pair, x, y, &nx, &ny, resamples, start, gamma, cancel),
        })
        .collect::<Result<_>>()?;
    let slot = |pair| match pair {
        Pair::XX => 0,
        Pair::YY => 1,
        Pair::XY => 2,
    };
    let count = resamples.map_or(0, |(w, _)| w.count);
    let mut plain = [Sum::default(); 3];
    let mut weighted = vec![[Sum::default(); 3]; count];
    for row in &rows {
        plain[slot(row.pair)].add(row.plain);
        for (b, v) in row.weighted.iter().enumerate() {
            weighted[b][slot(row.pair)].add(*v);
        }
    }
    Ok((
        plain.map(Sum::value),
        weighted.into_iter().map(|s| s.map(Sum::value)).collect(),
    ))
}

/// The biased MMD² from the sums of (k − 1) and the total weights of each side.
fn combine(sums: [f64; 3], wx: f64, wy: f64) -> f64 {
    let [xx, yy, xy] = sums;
    xx / (wx * wx) + yy / (wy * wy) - 2.0 * xy / (wx * wy)
}

/// The biased MMD² between the two sets (unscaled; CMMD is `CMMD_SCALE` times it with σ = `CMMD_SIGMA`).
pub fn mmd2(x: Embeddings<'_>, y: Embeddings<'_>, sigma: f64, cancel: &Cancel) -> Result<f64> {
    let (sums, _) = kernel_sums(x, y, None, sigma, cancel)?;
    Ok(combine(sums, x.rows as f64, y.rows as f64))
}

/// The biased MMD² of B resamples (multiplicity vectors of each set) in one pass over the kernel blocks, and
/// that of the sets themselves: (MMD² of x and y, [MMD² of resample b]).
pub fn mmd2_bootstrap(
    x: Embeddings<'_>,
    y: Embeddings<'_>,
    x_resamples: Resamples<'_>,
    y_resamples: Resamples<'_>,
    sigma: f64,
    cancel: &Cancel,
) -> Result<(f64, Vec<f64>)> {
    let (sums, weighted) = kernel_sums(x, y, Some((x_resamples, y_resamples)), sigma, cancel)?;
    let (tx, ty) = (x_resamples.totals(x.rows), y_resamples.totals(y.rows));
    let values = weighted
        .into_iter()
        .enumerate()
        .map(|(b, s)| combine(s, tx[b], ty[b]))
        .collect();
    Ok((combine(sums, x.rows as f64, y.rows as f64), values))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn embeddings(rows: usize, dim: usize, seed: u64) -> Vec<f32> {
        let mut state = seed;
        let mut v: Vec<f32> = (0..rows * dim)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((state >> 40) as f32 / (1u64 << 24) as f32) - 0.5
            })
            .collect();
        // L2-normalised, as CLIP embeddings are.
        for row in v.chunks_exact_mut(dim) {
            let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt();
            row.iter_mut().for_each(|x| *x /= norm);
        }
        v
    }

    /// The estimator written out, in float64, term by term.
    fn brute_force(x: &[f32], y: &[f32], dim: usize, wx: &[f64], wy: &[f64], sigma: f64) -> f64 {
        let k = |a: &[f32], b: &[f32]| {
            let d: f64 = a
                .iter()
                .zip(b)
                .map(|(p, q)| (*p as f64 - *q as f64).powi(2))
                .sum();
            (-d / (2.0 * sigma * sigma)).exp()
        };
        let mean = |p: &[f32], q: &[f32], wp: &[f64], wq: &[f64]| {
            let mut s = 0.0;
            for (i, a) in p.chunks_exact(dim).enumerate() {
                for (j, b) in q.chunks_exact(dim).enumerate() {
                    s += wp[i] * wq[j] * k(a, b);
                }
            }
            s / (wp.iter().sum::<f64>() * wq.iter().sum::<f64>())
        };
        mean(x, x, wx, wx) + mean(y, y, wy, wy) - 2.0 * mean(x, y, wx, wy)
    }

    #[test]
    fn exp_is_accurate_to_two_ulps_over_its_range() {
        let mut worst = 0f64;
        for i in 0..200_000 {
            let x = -(i as f64) * 708.0 / 200_000.0;
            let (got, want) = (exp_nonpositive(x), x.exp());
            worst = worst.max(((got - want) / want).abs());
        }
        assert!(worst <= 2.0 * f64::EPSILON, "{worst:e}");
        assert_eq!(exp_nonpositive(0.0), 1.0);
    }

    #[test]
    fn mmd_equals_the_brute_force_formula_across_block_edges() {
        // Sizes around BLOCK so that partial, diagonal and off-diagonal blocks all occur.
        for (n, m, dim) in [(1, 1, 3), (5, 300, 16), (257, 256, 8), (513, 40, 32)] {
            let (x, y) = (embeddings(n, dim, 1), embeddings(m, dim, 2));
            let cancel = Cancel::default();
            let ex = Embeddings {
                data: &x,
                rows: n,
                dim,
            };
            let ey = Embeddings {
                data: &y,
                rows: m,
                dim,
            };
            let got = mmd2(ex, ey, CMMD_SIGMA, &cancel).unwrap();
            let want = brute_force(&x, &y, dim, &vec![1.0; n], &vec![1.0; m], CMMD_SIGMA);
            // The brute force sums N² kernel values near 1 directly: its own rounding is ~N²·ε·1 ≈ 1e-11
            // absolute at N = 513, far above ours; 1e-10 absolute with MMD² ~ 1e-3 here.
            assert!((got - want).abs() <= 1e-10, "{n}×{m}: {got} vs {want}");
        }
    }

    #[test]
    fn bootstrap_equals_the_weighted_formula_and_its_plain_value_equals_mmd() {
        let (n, m, dim) = (300, 270, 12);
        let (x, y) = (embeddings(n, dim, 3), embeddings(m, dim, 4));
        let mut state = 9u64;
        let mut draw = |rows: usize| {
            let mut counts = vec![0u32; rows];
            for _ in 0..rows {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                counts[(state >> 33) as usize % rows] += 1;
            }
            counts
        };
        let b = 3;
        let cx: Vec<u32> = (0..b).flat_map(|_| draw(n)).collect();
        let cy: Vec<u32> = (0..b).flat_map(|_| draw(m)).collect();
        let cancel = Cancel::default();
        let ex = Embeddings {
            data: &x,
            rows: n,
            dim,
        };
        let ey = Embeddings {
            data: &y,
            rows: m,
            dim,
        };
        let rx = Resamples {
            counts: &cx,
            count: b,
        };
        let ry = Resamples {
            counts: &cy,
            count: b,
        };
        let (plain, values) = mmd2_bootstrap(ex, ey, rx, ry, 2.0, &cancel).unwrap();
        assert_eq!(plain, mmd2(ex, ey, 2.0, &cancel).unwrap());
        for k in 0..b {
            let wx: Vec<f64> = cx[k * n..(k + 1) * n].iter().map(|&c| c as f64).collect();
            let wy: Vec<f64> = cy[k * m..(k + 1) * m].iter().map(|&c| c as f64).collect();
            let want = brute_force(&x, &y, dim, &wx, &wy, 2.0);
            assert!(
                (values[k] - want).abs() <= 1e-10,
                "{k}: {} vs {want}",
                values[k]
            );
        }
    }

    #[test]
    fn refuses_what_cannot_work_and_stops_when_cancelled() {
        let x = embeddings(10, 4, 5);
        let cancel = Cancel::default();
        let ex = Embeddings {
            data: &x,
            rows: 10,
            dim: 4,
        };
        let other = Embeddings {
            data: &x[..30],
            rows: 10,
            dim: 3,
        };
        assert!(mmd2(ex, other, 10.0, &cancel).is_err());
        assert!(mmd2(ex, ex, 0.0, &cancel).is_err());
        let mut bad = x.clone();
        bad[7] = f32::NAN;
        let eb = Embeddings {
            data: &bad,
            rows: 10,
            dim: 4,
        };
        let message = mmd2(eb, ex, 10.0, &cancel).unwrap_err().to_string();
        assert!(message.contains("x[1, 3] is not finite"), "{message}");
        let zeros = vec![0u32; 10];
        let r = Resamples {
            counts: &zeros,
            count: 1,
        };
        assert!(mmd2_bootstrap(ex, ex, r, r, 10.0, &cancel).is_err());
        cancel.cancel();
        assert!(matches!(
            mmd2(ex, ex, 10.0, &cancel),
            Err(FidrsError::Cancelled)
        ));
    }
}
