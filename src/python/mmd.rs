//! The maximum mean discrepancy with a Gaussian RBF kernel (CMMD's estimator) and its one-pass bootstrap.

use std::borrow::Cow;

use numpy::{IntoPyArray, PyArray1, PyReadonlyArray2, PyUntypedArrayMethods};
use pyo3::prelude::*;

use super::errors::guard;
use super::without_gil;
use crate::error::FidrsError;
use crate::mmd::{mmd2, mmd2_bootstrap, Embeddings, Resamples, CMMD_SCALE, CMMD_SIGMA};

/// Row-major float32 data of an N×d array (borrowed when C-contiguous).
fn rows<'a>(a: &'a PyReadonlyArray2<'a, f32>) -> (Cow<'a, [f32]>, usize, usize) {
    let (n, d) = (a.shape()[0], a.shape()[1]);
    let data = match a.as_slice() {
        Ok(slice) => Cow::Borrowed(slice),
        Err(_) => Cow::Owned(a.as_array().iter().copied().collect()),
    };
    (data, n, d)
}

/// B×N multiplicities as u32, refusing negative or absurd counts.
fn counts(
    name: &str,
    a: &PyReadonlyArray2<'_, i64>,
) -> Result<(Vec<u32>, usize, usize), FidrsError> {
    let (b, n) = (a.shape()[0], a.shape()[1]);
    let mut out = Vec::with_capacity(b * n);
    for (k, &c) in a.as_array().iter().enumerate() {
        let c = u32::try_from(c).map_err(|_| {
            FidrsError::InvalidInput(format!(
                "{name}[{}, {}] = {c} is not a multiplicity (a count from 0 to 2³² − 1)",
                k / n.max(1),
                k % n.max(1)
            ))
        })?;
        out.push(c);
    }
    Ok((out, b, n))
}

fn check_scale(scale: f64) -> Result<(), FidrsError> {
    if scale.is_finite() {
        Ok(())
    } else {
        Err(FidrsError::InvalidInput(format!(
            "scale must be a finite number, got {scale}"
        )))
    }
}

/// `scale` × the biased MMD² between embeddings `x` (N×d) and `y` (M×d, float32) with the Gaussian RBF
/// kernel exp(−‖a − b‖²/(2σ²)): CMMD with the defaults (σ = 10, × 1000). Float64 from the embeddings on,
/// the kernel computed in blocks (never held), on fidrs' threads; Ctrl-C stops it.
#[pyfunction]
#[pyo3(signature = (x, y, *, sigma=CMMD_SIGMA, scale=CMMD_SCALE))]
pub fn mmd(
    py: Python<'_>,
    x: PyReadonlyArray2<'_, f32>,
    y: PyReadonlyArray2<'_, f32>,
    sigma: f64,
    scale: f64,
) -> PyResult<f64> {
    guard(|| {
        check_scale(scale)?;
        let ((xd, n, dx), (yd, m, dy)) = (rows(&x), rows(&y));
        let ex = Embeddings {
            data: &xd,
            rows: n,
            dim: dx,
        };
        let ey = Embeddings {
            data: &yd,
            rows: m,
            dim: dy,
        };
        let value = without_gil(py, |cancel| mmd2(ex, ey, sigma, cancel))??;
        Ok(scale * value)
    })
}

/// The bootstrap of `mmd` in one pass over the kernel blocks: resample b takes `x_counts[b, i]` copies of
/// x's row i and `y_counts[b, j]` of y's row j (B×N and B×M integer multiplicities, e.g. `np.bincount` of
/// indices drawn with replacement). Returns (`mmd(x, y)`, the B resampled values as float64).
#[pyfunction]
#[pyo3(signature = (x, y, x_counts, y_counts, *, sigma=CMMD_SIGMA, scale=CMMD_SCALE))]
#[allow(clippy::too_many_arguments)]
pub fn mmd_bootstrap<'py>(
    py: Python<'py>,
    x: PyReadonlyArray2<'py, f32>,
    y: PyReadonlyArray2<'py, f32>,
    x_counts: PyReadonlyArray2<'py, i64>,
    y_counts: PyReadonlyArray2<'py, i64>,
    sigma: f64,
    scale: f64,
) -> PyResult<(f64, Bound<'py, PyArray1<f64>>)> {
    guard(|| {
        check_scale(scale)?;
        let ((xd, n, dx), (yd, m, dy)) = (rows(&x), rows(&y));
        let (cx, bx, nx) = counts("x_counts", &x_counts)?;
        let (cy, by, ny) = counts("y_counts", &y_counts)?;
        if nx != n || ny != m {
            return Err(FidrsError::InvalidInput(format!(
                "x_counts must be B×{n} and y_counts B×{m} (one multiplicity per embedding), got {bx}×{nx} \
                 and {by}×{ny}"
            ))
            .into());
        }
        let ex = Embeddings {
            data: &xd,
            rows: n,
            dim: dx,
        };
        let ey = Embeddings {
            data: &yd,
            rows: m,
            dim: dy,
        };
        let rx = Resamples {
            counts: &cx,
            count: bx,
        };
        let ry = Resamples {
            counts: &cy,
            count: by,
        };
        let (value, values) =
            without_gil(py, |cancel| mmd2_bootstrap(ex, ey, rx, ry, sigma, cancel))??;
        let scaled: Vec<f64> = values.into_iter().map(|v| scale * v).collect();
        Ok((scale * value, scaled.into_pyarray(py)))
    })
}

/// Add the functions and CMMD's constants to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(mmd, m)?)?;
    m.add_function(wrap_pyfunction!(mmd_bootstrap, m)?)?;
    m.add("CMMD_SIGMA", CMMD_SIGMA)?;
    m.add("CMMD_SCALE", CMMD_SCALE)?;
    Ok(())
}
