//! Streaming feature moments (n, Σx, Σxxᵀ) in float64.

use numpy::{
    IntoPyArray, PyArray1, PyArray2, PyReadonlyArray1, PyReadonlyArray2, PyUntypedArrayMethods,
};
use pyo3::prelude::*;

use super::errors::guard;
use super::linalg::{matrix, to_numpy, AnyLayout};
use super::{par, without_gil};
use crate::error::FidrsError;
use crate::stats::Moments;

/// Streaming feature moments (n, Σx, Σxxᵀ) in float64.
#[pyclass(name = "Moments", module = "fidrs._fidrs")]
pub struct PyMoments {
    inner: Moments,
}

#[pymethods]
impl PyMoments {
    #[new]
    fn new(dim: usize) -> PyResult<Self> {
        guard(|| {
            crate::stats::check_dim(dim)?;
            Ok(Self {
                inner: Moments::with_parallelism(dim, par()?),
            })
        })
    }

    /// Rebuild from saved parts: n, Σx (d) and Σxxᵀ (d×d). InvalidInputError for a non-finite entry in
    /// either, or a Σxxᵀ whose two triangles differ at all (fidrs writes it mirrored: see `Moments::from_parts`).
    #[staticmethod]
    fn from_parts(
        n: u64,
        sum: PyReadonlyArray1<'_, f64>,
        sum_outer: PyReadonlyArray2<'_, f64>,
    ) -> PyResult<Self> {
        guard(|| {
            let outer = matrix("sum_outer", &sum_outer)?;
            Ok(Self {
                inner: Moments::from_parts(n, sum.as_slice()?.to_vec(), outer)?.parallelism(par()?),
            })
        })
    }

    /// Fold a batch of feature rows (N×d float32) in.
    fn update(&mut self, py: Python<'_>, features: PyReadonlyArray2<'_, f32>) -> PyResult<()> {
        guard(|| {
            let shape = features.shape();
            let (rows, cols) = (shape[0], shape[1]);
            if cols != self.inner.dim() {
                return Err(FidrsError::InvalidInput(format!(
                    "features have {cols} columns, expected {}",
                    self.inner.dim()
                ))
                .into());
            }
            let owned: Vec<f32>;
            let data: &[f32] = match features.as_slice() {
                Ok(slice) => slice,
                Err(_) => {
                    owned = features.as_array().iter().copied().collect();
                    &owned
                }
            };
            let inner = &mut self.inner;
            without_gil(py, |_| inner.update(data, rows))??;
            Ok(())
        })
    }

    fn merge(&mut self, other: &PyMoments) -> PyResult<()> {
        guard(|| Ok(self.inner.merge(&other.inner)?))
    }

    #[getter]
    fn n(&self) -> PyResult<u64> {
        guard(|| Ok(self.inner.n))
    }

    #[getter]
    fn dim(&self) -> PyResult<usize> {
        guard(|| Ok(self.inner.dim()))
    }

    #[getter]
    fn sum<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyArray1<f64>>> {
        guard(|| {
            self.inner.flush();
            Ok(self.inner.sum.clone().into_pyarray(py))
        })
    }

    #[getter]
    fn sum_outer<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyArray2<f64>>> {
        guard(|| to_numpy(py, self.inner.sum_outer().as_ref()))
    }

    fn mean<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyArray1<f64>>> {
        guard(|| Ok(self.inner.mean()?.into_pyarray(py)))
    }

    /// (max |mean − mu|, max |covariance − sigma|, max |sum| / n, max |sum_outer| / (n − 1)): how far the
    /// given statistics are from these moments', without forming the mean or the covariance. A NaN
    /// difference counts as infinite, never as none.
    fn deviation(
        &mut self,
        py: Python<'_>,
        mu: PyReadonlyArray1<'_, f64>,
        sigma: PyReadonlyArray2<'_, f64>,
    ) -> PyResult<(f64, f64, f64, f64)> {
        guard(|| {
            let mu = mu.as_array().to_vec();
            let sigma = AnyLayout::new(&sigma);
            let view = sigma.view();
            let inner = &mut self.inner;
            let [a, b, c, d] = without_gil(py, |_| inner.deviation(&mu, view))??;
            Ok((a, b, c, d))
        })
    }

    fn covariance<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyArray2<f64>>> {
        guard(|| {
            let inner = &mut self.inner;
            let cov = without_gil(py, |_| inner.covariance())??;
            to_numpy(py, cov.as_ref())
        })
    }
}

/// Add the class to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("MAX_FEATURE_WIDTH", crate::stats::MAX_DIM)?;
    m.add_class::<PyMoments>()
}
