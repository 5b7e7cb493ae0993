//! Streaming moments of feature vectors: n, Σx and Σxxᵀ in f64, mergeable across shards.
//! Memory is O(d²) whatever the number of images.

use faer::linalg::matmul::triangular::{matmul as tri_matmul, BlockStructure};
use faer::{Accum, Mat, MatRef, Par};

use crate::error::{FidrsError, Result};

/// Rows are buffered until this many before a rank-k update: small k (a 50-image batch) leaves the
/// matrix-multiply kernel half idle; 1024 rows of d = 2048 cost 8 MiB.
const FLUSH_ROWS: usize = 1024;

#[derive(Debug, Clone)]
pub struct Moments {
    pub n: u64,
    /// Σx of the flushed rows, length d (`flush` first for the total).
    pub sum: Vec<f64>,
    /// Σxxᵀ of the flushed rows, d×d; only the lower triangle is accumulated, the upper is mirrored on read.
    sum_outer: Mat<f64>,
    /// Rows (row-major, d each) not yet folded into `sum_outer`.
    pending: Vec<f32>,
    par: Par,
}

/// The widest moments (and so feature vectors) fidrs keeps: their d×d float64 sums at 11,585 are 1 GiB, the
/// largest statistics member its readers take (`references.arrays.MAX_STATS_MEMBER_BYTES`: ⌊√(2³⁰ / 8)⌋), so
/// the statistics of anything accepted can be written and read back. Python reads it as
/// `_fidrs.MAX_FEATURE_WIDTH` (feature files, registered backbones); the binding refuses a wider `Moments`
/// before allocating (a huge d made the allocation fail: a panic, or for d > 2³² an abort of the process).
pub const MAX_DIM: usize = 11_585;

/// `d` as the width of moments, or InvalidInput naming the bound.
pub fn check_dim(d: usize) -> Result<()> {
    if d > MAX_DIM {
        return Err(FidrsError::InvalidInput(format!(
            "moments of {d} features: over the widest fidrs keeps, {MAX_DIM} (their {d}×{d} sums would be \
             {:.1} GiB)",
            (d as f64) * (d as f64) * 8.0 / f64::from(1u32 << 30)
        )));
    }
    Ok(())
}

impl Moments {
    pub fn new(dim: usize) -> Self {
        Self::with_parallelism(dim, Par::Seq)
    }

    pub fn with_parallelism(dim: usize, par: Par) -> Self {
        Self {
            n: 0,
            sum: vec![0.0; dim],
            sum_outer: Mat::zeros(dim, dim),
            pending: Vec::new(),
            par,
        }
    }

    /// The same moments, with `par` for their rank-k updates.
    pub fn parallelism(mut self, par: Par) -> Self {
        self.par = par;
        self
    }

    /// Rebuild from saved parts (`sum_outer` symmetric, row-major d×d). Refuses parts that no sample set has:
    /// a non-finite entry (NaN or ±∞) in `sum` or `sum_outer`, or a `sum_outer` that is not exactly symmetric.
    ///
    /// The symmetry rule is exact equality, `sum_outer[i, j] == sum_outer[j, i]` for every i, j. Every writer
    /// stores `sum_outer()`, which copies the lower triangle onto the upper one, so the two triangles of any
    /// `sum_outer` fidrs wrote (or that `(S + Sᵀ) / 2` gives: IEEE addition is commutative) hold the same
    /// values bit for bit; round-off can never make them differ, so any difference is an edit. Only the lower
    /// triangle is used (`deviation`, `covariance`); without this rule an edited upper triangle would go unseen.
    pub fn from_parts(n: u64, sum: Vec<f64>, sum_outer: MatRef<'_, f64>) -> Result<Self> {
        let d = sum.len();
        check_dim(d)?;
        if sum_outer.nrows() != d || sum_outer.ncols() != d {
            return Err(FidrsError::InvalidInput(format!(
                "sum_outer is {}x{} but sum has length {d}",
                sum_outer.nrows(),
                sum_outer.ncols()
            )));
        }
        if let Some(i) = sum.iter().position(|v| !v.is_finite()) {
            return Err(FidrsError::InvalidInput(format!(
                "sum[{i}] is not finite ({})",
                sum[i]
            )));
        }
        let owned = sum_outer.to_owned();
        // Both checks read the column-major copy in contiguous runs (a 2048² matrix in a few ms); the
        // entry named is the first in row-major order, looked for only once one is known to be there.
        let finite = (0..d).all(|j| owned.col_as_slice(j).iter().all(|v| v.is_finite()));
        if !finite {
            let (i, j) = first_in_rows(d, |i, j| !sum_outer[(i, j)].is_finite());
            return Err(FidrsError::InvalidInput(format!(
                "sum_outer[{i}, {j}] is not finite ({})",
                sum_outer[(i, j)]
            )));
        }
        if !is_symmetric(&owned) {
            let (i, j) = first_in_rows(d, |i, j| j < i && sum_outer[(i, j)] != sum_outer[(j, i)]);
            return Err(FidrsError::InvalidInput(format!(
                "sum_outer is not symmetric: sum_outer[{i}, {j}] = {} but sum_outer[{j}, {i}] = {}",
                sum_outer[(i, j)],
                sum_outer[(j, i)]
            )));
        }
        Ok(Self {
            n,
            sum,
            sum_outer: owned,
            pending: Vec::new(),
            par: Par::Seq,
        })
    }

    pub fn dim(&self) -> usize {
        self.sum.len()
    }

    /// Fold a batch of feature rows (`rows × d`, row-major f32) into the moments.
    pub fn update(&mut self, features: &[f32], rows: usize) -> Result<()> {
        let d = self.dim();
        if features.len() != rows * d {
            return Err(FidrsError::InvalidInput(format!(
                "features have {} values, expected {rows} rows of {d}",
                features.len()
            )));
        }
        if let Some(bad) = features.iter().position(|v| !v.is_finite()) {
            return Err(FidrsError::InvalidInput(format!(
                "feature row {} has a non-finite value ({})",
                bad / d,
                features[bad]
            )));
        }
        self.n += rows as u64;
        self.pending.extend_from_slice(features);
        if self.pending.len() >= FLUSH_ROWS * d {
            self.flush();
        }
        Ok(())
    }

    /// Fold the buffered rows into Σxxᵀ: a symmetric rank-k update of the lower triangle, in f64.
    pub fn flush(&mut self) {
        let d = self.dim();
        let rows = self.pending.len() / d.max(1);
        if rows == 0 {
            return;
        }
        let x = to_f64_column_major(&self.pending, rows, d);
        for (j, s) in self.sum.iter_mut().enumerate() {
            *s += x.col(j).iter().sum::<f64>();
        }
        tri_matmul(
            self.sum_outer.as_mut(),
            BlockStructure::TriangularLower,
            Accum::Add,
            x.transpose(),
            BlockStructure::Rectangular,
            x.as_ref(),
            BlockStructure::Rectangular,
            1.0,
            self.par,
        );
        self.pending.clear();
    }

    /// The moments of the union of both sample sets.
    pub fn merge(&mut self, other: &Moments) -> Result<()> {
        if other.dim() != self.dim() {
            return Err(FidrsError::InvalidInput(format!(
                "cannot merge moments of dimension {} and {}",
                self.dim(),
                other.dim()
            )));
        }
        // Finite parts (`from_parts`, `update`) stay finite: a sum that would overflow is refused before
        // anything changes. Only the lower triangle of `sum_outer` is ever read.
        if let Some(j) = (0..self.dim()).find(|&j| !(self.sum[j] + other.sum[j]).is_finite()) {
            return Err(FidrsError::InvalidInput(format!(
                "the merged moments overflow: sum[{j}] would be {}",
                self.sum[j] + other.sum[j]
            )));
        }
        for j in 0..self.dim() {
            let (a, b) = (
                self.sum_outer.col_as_slice(j),
                other.sum_outer.col_as_slice(j),
            );
            if let Some(i) = (j..self.dim()).find(|&i| !(a[i] + b[i]).is_finite()) {
                return Err(FidrsError::InvalidInput(format!(
                    "the merged moments overflow: sum_outer[{i}, {j}] would be {}",
                    a[i] + b[i]
                )));
            }
        }
        self.n += other.n;
        self.sum
            .iter_mut()
            .zip(&other.sum)
            .for_each(|(a, b)| *a += b);
        self.sum_outer += &other.sum_outer;
        self.pending.extend_from_slice(&other.pending);
        if self.pending.len() >= FLUSH_ROWS * self.dim() {
            self.flush();
        }
        Ok(())
    }

    /// Σxxᵀ with both triangles filled.
    pub fn sum_outer(&mut self) -> Mat<f64> {
        self.flush();
        let m = &self.sum_outer;
        Mat::from_fn(m.nrows(), m.ncols(), |i, j| {
            if i >= j {
                m[(i, j)]
            } else {
                m[(j, i)]
            }
        })
    }

    pub fn mean(&mut self) -> Result<Vec<f64>> {
        self.flush();
        if self.n == 0 {
            return Err(FidrsError::InvalidInput(
                "no samples: the mean is undefined".into(),
            ));
        }
        Ok(self.sum.iter().map(|s| s / self.n as f64).collect())
    }

    /// How far `mu` and `sigma` are from this sample's mean and covariance, without forming either:
    /// (max |mean − mu|, max |covariance − sigma|, max |Σx| / n, max |Σxxᵀ| / (n − 1)), each entry computed
    /// exactly as `mean` and `covariance` compute it. A difference that is NaN counts as +∞ (`f64::max` would
    /// drop it, and a NaN `mu` or `sigma` entry would pass as equal); moments that are not finite, which no
    /// scale could measure against, are refused.
    pub fn deviation(&mut self, mu: &[f64], sigma: MatRef<'_, f64>) -> Result<[f64; 4]> {
        let d = self.dim();
        if mu.len() != d || sigma.nrows() != d || sigma.ncols() != d {
            return Err(FidrsError::InvalidInput(format!(
                "mu ({}) and sigma ({}x{}) do not fit moments of dimension {d}",
                mu.len(),
                sigma.nrows(),
                sigma.ncols()
            )));
        }
        if self.n < 2 {
            return Err(FidrsError::InvalidInput(format!(
                "{} sample(s): the covariance needs at least 2",
                self.n
            )));
        }
        let n = self.n as f64;
        let mean = self.mean()?;
        let s = &self.sum_outer;
        let mut mu_error = 0f64;
        let mut mu_scale = 0f64;
        for j in 0..d {
            mu_error = nan_max(mu_error, (mean[j] - mu[j]).abs());
            mu_scale = nan_max(mu_scale, self.sum[j].abs());
        }
        let (mut cov_error, mut outer_scale) = (0f64, 0f64);
        for j in 0..d {
            for i in j..d {
                let outer = s[(i, j)];
                let cov = (outer - n * mean[i] * mean[j]) / (n - 1.0);
                let cov_t = (outer - n * mean[j] * mean[i]) / (n - 1.0);
                cov_error = nan_max(
                    nan_max(cov_error, (cov - sigma[(i, j)]).abs()),
                    (cov_t - sigma[(j, i)]).abs(),
                );
                outer_scale = nan_max(outer_scale, outer.abs());
            }
        }
        if !mu_scale.is_finite() || !outer_scale.is_finite() {
            return Err(FidrsError::InvalidInput(
                "the moments are not finite: mu and sigma cannot be checked against them".into(),
            ));
        }
        Ok([mu_error, cov_error, mu_scale / n, outer_scale / (n - 1.0)])
    }

    /// Unbiased covariance (n − 1), as `np.cov(x, rowvar=False)`.
    pub fn covariance(&mut self) -> Result<Mat<f64>> {
        if self.n < 2 {
            return Err(FidrsError::InvalidInput(format!(
                "{} sample(s): the covariance needs at least 2",
                self.n
            )));
        }
        let n = self.n as f64;
        let mu = self.mean()?;
        let s = self.sum_outer();
        Ok(Mat::from_fn(s.nrows(), s.ncols(), |i, j| {
            (s[(i, j)] - n * mu[i] * mu[j]) / (n - 1.0)
        }))
    }
}

/// Whether `m[(i, j)] == m[(j, i)]` for every i, j (exact: see `Moments::from_parts`), compared in 64×64 tiles
/// so that the transposed side is read from cache, not with a stride of d per entry.
fn is_symmetric(m: &Mat<f64>) -> bool {
    const TILE: usize = 64;
    let d = m.nrows();
    (0..d).step_by(TILE).all(|j0| {
        (j0..d).step_by(TILE).all(|i0| {
            (j0..(j0 + TILE).min(d)).all(|j| {
                let column = m.col_as_slice(j);
                (i0.max(j + 1)..(i0 + TILE).min(d)).all(|i| column[i] == m.col_as_slice(i)[j])
            })
        })
    })
}

/// The first (i, j) of a d×d matrix, in row-major order, where `bad` holds (one is known to exist).
fn first_in_rows(d: usize, bad: impl Fn(usize, usize) -> bool) -> (usize, usize) {
    (0..d)
        .flat_map(|i| (0..d).map(move |j| (i, j)))
        .find(|&(i, j)| bad(i, j))
        .expect("a bad entry was found before")
}

/// The larger of `a` and `b`, where a NaN counts as +∞: `f64::max` returns the other operand, so an error that
/// is NaN would silently never count.
fn nan_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::INFINITY
    } else {
        a.max(b)
    }
}

/// Row-major f32 rows → column-major f64 matrix, columns filled in parallel and in 64-row tiles so that
/// neither side is read with a cache-missing stride (a plain element-wise fill costs as much as a third
/// of the rank-k update itself).
fn to_f64_column_major(rows_data: &[f32], rows: usize, d: usize) -> Mat<f64> {
    use rayon::prelude::*;
    const TILE: usize = 64;
    let mut buffer = vec![0f64; rows * d];
    buffer
        .par_chunks_mut(rows * TILE)
        .enumerate()
        .for_each(|(block, columns)| {
            let j0 = block * TILE;
            for i0 in (0..rows).step_by(TILE) {
                for (dj, column) in columns.chunks_mut(rows).enumerate() {
                    let j = j0 + dj;
                    for i in i0..(i0 + TILE).min(rows) {
                        column[i] = rows_data[i * d + j] as f64;
                    }
                }
            }
        });
    MatRef::from_column_major_slice(&buffer, rows, d).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(rows: usize, d: usize, seed: u64) -> Vec<f32> {
        let mut state = seed;
        (0..rows * d)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (state >> 40) as f32 / (1u64 << 24) as f32
            })
            .collect()
    }

    #[test]
    fn covariance_matches_two_pass_formula() {
        let (rows, d) = (50, 7);
        let x = sample(rows, d, 1);
        let mut m = Moments::new(d);
        m.update(&x, rows).unwrap();
        let cov = m.covariance().unwrap();
        let mu: Vec<f64> = (0..d)
            .map(|j| (0..rows).map(|i| x[i * d + j] as f64).sum::<f64>() / rows as f64)
            .collect();
        for a in 0..d {
            for b in 0..d {
                let direct: f64 = (0..rows)
                    .map(|i| (x[i * d + a] as f64 - mu[a]) * (x[i * d + b] as f64 - mu[b]))
                    .sum::<f64>()
                    / (rows - 1) as f64;
                assert!((cov[(a, b)] - direct).abs() < 1e-14, "{a},{b}");
            }
        }
    }

    #[test]
    fn merge_equals_union() {
        let d = 5;
        let (x, y) = (sample(30, d, 2), sample(20, d, 3));
        let (mut a, mut b, mut all) = (Moments::new(d), Moments::new(d), Moments::new(d));
        a.update(&x, 30).unwrap();
        a.flush();
        b.update(&y, 20).unwrap(); // b's rows stay pending: merge must carry them over
        all.update(&[x, y].concat(), 50).unwrap();
        a.merge(&b).unwrap();
        assert_eq!(a.n, 50);
        a.flush();
        all.flush();
        let (s1, s2) = (a.sum_outer(), all.sum_outer());
        assert!((a.sum_outer()[(1, 1)] - s1[(1, 1)]).abs() == 0.0);
        for i in 0..d {
            assert!((a.sum[i] - all.sum[i]).abs() <= 1e-12 * all.sum[i].abs());
            for j in 0..d {
                assert!((s1[(i, j)] - s2[(i, j)]).abs() <= 1e-12 * s2[(i, j)].abs());
            }
        }
    }

    #[test]
    fn deviation_is_the_largest_difference_from_mean_and_covariance() {
        let (rows, d) = (40, 6);
        let x = sample(rows, d, 5);
        let mut m = Moments::new(d);
        m.update(&x, rows).unwrap();
        let (mu, mut cov) = (m.mean().unwrap(), m.covariance().unwrap());
        let exact = m.deviation(&mu, cov.as_ref()).unwrap();
        assert_eq!((exact[0], exact[1]), (0.0, 0.0));
        cov[(4, 1)] += 1e-3;
        let edited = m.deviation(&mu, cov.as_ref()).unwrap();
        assert!((edited[1] - 1e-3).abs() < 1e-15, "{edited:?}");
        let sum_max = m.sum.iter().map(|v| v.abs()).fold(0.0, f64::max);
        assert_eq!(edited[2], sum_max / rows as f64);
    }

    fn parts(rows: usize, d: usize, seed: u64) -> (u64, Vec<f64>, Mat<f64>) {
        let mut m = Moments::new(d);
        m.update(&sample(rows, d, seed), rows).unwrap();
        let outer = m.sum_outer();
        (m.n, m.sum, outer)
    }

    fn refusal(n: u64, sum: Vec<f64>, outer: &Mat<f64>) -> String {
        match Moments::from_parts(n, sum, outer.as_ref()) {
            Err(FidrsError::InvalidInput(message)) => message,
            other => panic!("not refused as invalid input: {other:?}"),
        }
    }

    #[test]
    fn from_parts_round_trips_what_sum_outer_writes() {
        let (n, sum, outer) = parts(30, 4, 7);
        let mut back = Moments::from_parts(n, sum.clone(), outer.as_ref()).unwrap();
        assert_eq!(back.sum, sum);
        assert!(back.sum_outer() == outer);
    }

    #[test]
    fn from_parts_refuses_non_finite_parts() {
        let (n, sum, outer) = parts(30, 4, 7);
        for (i, bad, shown) in [
            (0, f64::NAN, "NaN"),
            (3, f64::INFINITY, "inf"),
            (1, f64::NEG_INFINITY, "-inf"),
        ] {
            let mut s = sum.clone();
            s[i] = bad;
            assert_eq!(
                refusal(n, s, &outer),
                format!("sum[{i}] is not finite ({shown})")
            );
        }
        for (i, j, bad, shown) in [
            (0, 0, f64::NAN, "NaN"),
            (0, 0, f64::INFINITY, "inf"),
            (3, 1, f64::NAN, "NaN"),
            (1, 3, f64::NEG_INFINITY, "-inf"),
        ] {
            let mut o = outer.clone();
            o[(i, j)] = bad;
            let message = refusal(n, sum.clone(), &o);
            assert_eq!(
                message,
                format!("sum_outer[{i}, {j}] is not finite ({shown})")
            );
        }
    }

    #[test]
    fn from_parts_refuses_either_triangle_edited() {
        let (n, sum, outer) = parts(30, 4, 7);
        for (i, j) in [(0, 2), (2, 0), (3, 1)] {
            let mut o = outer.clone();
            o[(i, j)] += 1e-3;
            let message = refusal(n, sum.clone(), &o);
            let (lo, hi) = (i.max(j), i.min(j));
            assert!(
                message.starts_with(&format!(
                    "sum_outer is not symmetric: sum_outer[{lo}, {hi}] = "
                )),
                "{message}"
            );
        }
        // The smallest possible edit, one unit in the last place, is refused as well.
        let mut o = outer.clone();
        o[(1, 2)] = f64::from_bits(o[(1, 2)].to_bits() + 1);
        assert!(refusal(n, sum, &o).contains("not symmetric"));
    }

    #[test]
    fn deviation_counts_a_nan_difference_as_infinite() {
        let (rows, d) = (40, 3);
        let mut m = Moments::new(d);
        m.update(&sample(rows, d, 9), rows).unwrap();
        let (mut mu, mut cov) = (m.mean().unwrap(), m.covariance().unwrap());
        mu[1] = f64::NAN;
        assert_eq!(m.deviation(&mu, cov.as_ref()).unwrap()[0], f64::INFINITY);
        mu = m.mean().unwrap();
        cov[(0, 2)] = f64::NAN; // an upper-triangle entry, read through the transpose
        let [mu_error, cov_error, ..] = m.deviation(&mu, cov.as_ref()).unwrap();
        assert_eq!((mu_error, cov_error), (0.0, f64::INFINITY));
    }

    #[test]
    fn merge_refuses_an_overflowing_total_and_leaves_both_unchanged() {
        let (n, mut sum, mut outer) = parts(30, 3, 4);
        sum[2] = f64::MAX;
        let mut big = Moments::from_parts(n, sum.clone(), outer.as_ref()).unwrap();
        let copy = big.clone();
        let error = big.merge(&copy).unwrap_err().to_string();
        assert_eq!(error, "the merged moments overflow: sum[2] would be inf");
        assert_eq!((big.n, &big.sum), (n, &sum));
        sum[2] = 1.0;
        outer[(2, 1)] = f64::MAX;
        outer[(1, 2)] = f64::MAX;
        let mut big = Moments::from_parts(n, sum.clone(), outer.as_ref()).unwrap();
        let copy = big.clone();
        let error = big.merge(&copy).unwrap_err().to_string();
        assert_eq!(
            error,
            "the merged moments overflow: sum_outer[2, 1] would be inf"
        );
        assert!(big.sum_outer() == outer);
    }

    #[test]
    fn rejects_nan_and_single_sample() {
        let mut m = Moments::new(2);
        assert!(m.update(&[1.0, f32::NAN], 1).is_err());
        m.update(&[1.0, 2.0], 1).unwrap();
        assert!(m.covariance().is_err());
    }
}
