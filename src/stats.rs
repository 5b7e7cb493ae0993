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

    /// Rebuild from saved parts (`sum_outer` symmetric, row-major d×d).
    pub fn from_parts(n: u64, sum: Vec<f64>, sum_outer: MatRef<'_, f64>) -> Result<Self> {
        let d = sum.len();
        if sum_outer.nrows() != d || sum_outer.ncols() != d {
            return Err(FidrsError::InvalidInput(format!(
                "sum_outer is {}x{} but sum has length {d}",
                sum_outer.nrows(),
                sum_outer.ncols()
            )));
        }
        Ok(Self {
            n,
            sum,
            sum_outer: sum_outer.to_owned(),
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
    /// exactly as `mean` and `covariance` compute it.
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
            mu_error = mu_error.max((mean[j] - mu[j]).abs());
            mu_scale = mu_scale.max(self.sum[j].abs());
        }
        let (mut cov_error, mut outer_scale) = (0f64, 0f64);
        for j in 0..d {
            for i in j..d {
                let outer = s[(i, j)];
                let cov = (outer - n * mean[i] * mean[j]) / (n - 1.0);
                let cov_t = (outer - n * mean[j] * mean[i]) / (n - 1.0);
                cov_error = cov_error
                    .max((cov - sigma[(i, j)]).abs())
                    .max((cov_t - sigma[(j, i)]).abs());
                outer_scale = outer_scale.max(outer.abs());
            }
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

    #[test]
    fn rejects_nan_and_single_sample() {
        let mut m = Moments::new(2);
        assert!(m.update(&[1.0, f32::NAN], 1).is_err());
        m.update(&[1.0, 2.0], 1).unwrap();
        assert!(m.covariance().is_err());
    }
}
