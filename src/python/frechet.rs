//! The Fréchet distance between two Gaussians.

use numpy::{PyReadonlyArray1, PyReadonlyArray2};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::errors::guard;
use super::linalg::matrix;
use super::{par, without_gil};
use crate::frechet::{frechet_distance as frechet_core, Method, NewtonSchulzOptions};

/// Fréchet distance through the Rust core; returns a dict with the value and diagnostics.
#[pyfunction]
#[pyo3(signature = (mu1, sigma1, mu2, sigma2, method="eigh", tolerance=1e-10, max_iterations=200))]
#[allow(clippy::too_many_arguments)]
pub fn frechet_distance<'py>(
    py: Python<'py>,
    mu1: PyReadonlyArray1<'py, f64>,
    sigma1: PyReadonlyArray2<'py, f64>,
    mu2: PyReadonlyArray1<'py, f64>,
    sigma2: PyReadonlyArray2<'py, f64>,
    method: &str,
    tolerance: f64,
    max_iterations: usize,
) -> PyResult<Bound<'py, PyDict>> {
    guard(|| {
        let method: Method = method.parse()?;
        let (m1, m2) = (mu1.as_slice()?, mu2.as_slice()?);
        let (s1, s2) = (matrix("sigma1", &sigma1)?, matrix("sigma2", &sigma2)?);
        let par = par()?;
        let options = NewtonSchulzOptions {
            tolerance,
            max_iterations,
        };
        let result = without_gil(py, |_| frechet_core(m1, s1, m2, s2, method, options, par))??;
        let info = PyDict::new(py);
        info.set_item("value", result.value)?;
        info.set_item("method", result.method)?;
        info.set_item("factorisation", result.factorisation)?;
        info.set_item("rank", result.rank)?;
        info.set_item("iterations", result.iterations)?;
        info.set_item("residual", result.residual)?;
        info.set_item("clipped_mass", result.clipped_mass)?;
        info.set_item("stop_reason", result.stop_reason)?;
        info.set_item("seconds", result.seconds)?;
        let steps = PyDict::new(py);
        steps.set_item("factor", result.seconds_factor)?;
        steps.set_item("product", result.seconds_product)?;
        steps.set_item("trace", result.seconds_trace)?;
        info.set_item("seconds_by_step", steps)?;
        Ok(info)
    })
}

/// Add the function and its method names to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(frechet_distance, m)?)?;
    m.add("FRECHET_METHODS", Method::NAMES.to_vec())?;
    Ok(())
}
