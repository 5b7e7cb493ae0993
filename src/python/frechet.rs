//! The Fréchet distance between two Gaussians, and the checked, factorised covariance it works on.

use numpy::{PyReadonlyArray1, PyReadonlyArray2};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::errors::guard;
use super::linalg::AnyLayout;
use super::{par, without_gil};
use crate::covariance::{Covariance, Origin, Precision};
use crate::frechet::{frechet_distance as frechet_core, Method, NewtonSchulzOptions};

/// A covariance matrix checked once (finite, symmetric, positive semi-definite up to the round-off of its
/// storage precision, around `mean` when given; `samples` = n when it came from one-pass moments, as fidrs'
/// own statistics do; `two_pass`: it came from `np.cov`, and the mean, still checked, is left out of the
/// tolerances) and factorised once; pass it to `frechet_distance` in place of the array so that the
/// check and the distance share one factorisation.
#[pyclass(name = "Covariance", module = "fidrs._fidrs", frozen)]
pub struct PyCovariance {
    inner: Covariance,
    name: String,
}

#[pymethods]
impl PyCovariance {
    #[new]
    #[pyo3(signature = (sigma, mean=None, *, samples=None, stored_as="float64", two_pass=false, name="sigma".to_string(), mean_name="mu".to_string()))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        sigma: PyReadonlyArray2<'_, f64>,
        mean: Option<PyReadonlyArray1<'_, f64>>,
        samples: Option<u64>,
        stored_as: &str,
        two_pass: bool,
        name: String,
        mean_name: String,
    ) -> PyResult<Self> {
        guard(|| {
            let precision: Precision = stored_as.parse()?;
            let mean: Option<Vec<f64>> = mean.map(|m| m.as_array().to_vec());
            let sigma = AnyLayout::new(&sigma);
            let view = sigma.view();
            let par = par()?;
            if samples.is_some() && mean.is_none() {
                return Err(crate::error::FidrsError::InvalidInput(
                    "samples (one-pass moments) needs the mean they were computed around".into(),
                )
                .into());
            }
            let origin = Origin {
                mean: mean.as_deref(),
                one_pass_samples: samples,
                precision,
                two_pass,
            };
            let inner = without_gil(py, |_| {
                Covariance::new(view, origin, &name, &mean_name, par)
            })??;
            Ok(Self { inner, name })
        })
    }

    /// d, the size of the matrix.
    #[getter]
    fn dim(&self) -> PyResult<usize> {
        guard(|| Ok(self.inner.dim()))
    }

    /// The numerical rank (d for a positive definite matrix).
    #[getter]
    fn rank(&self) -> PyResult<usize> {
        guard(|| Ok(self.inner.rank()))
    }

    /// "cholesky", "pivoted-cholesky" (singular) or "zero" (round-off only).
    #[getter]
    fn factorisation(&self) -> PyResult<&'static str> {
        guard(|| Ok(self.inner.kind().name()))
    }

    #[getter]
    fn trace(&self) -> PyResult<f64> {
        guard(|| Ok(self.inner.trace()))
    }

    /// δ: the smallest eigenvalue is at least −δ (the round-off the check allows).
    #[getter]
    fn eigenvalue_tolerance(&self) -> PyResult<f64> {
        guard(|| Ok(self.inner.eigenvalue_tolerance()))
    }

    #[getter]
    fn stored_as(&self) -> PyResult<&'static str> {
        guard(|| Ok(self.inner.precision().name()))
    }

    #[getter]
    fn name(&self) -> PyResult<String> {
        guard(|| Ok(self.name.clone()))
    }

    /// Seconds spent checking and factorising.
    #[getter]
    fn seconds(&self) -> PyResult<f64> {
        guard(|| Ok(self.inner.seconds))
    }

    fn __repr__(&self) -> PyResult<String> {
        guard(|| {
            Ok(format!(
                "Covariance(name={:?}, dim={}, rank={}, factorisation={:?}, stored_as={:?})",
                self.name,
                self.inner.dim(),
                self.inner.rank(),
                self.inner.kind().name(),
                self.inner.precision().name()
            ))
        })
    }
}

/// A covariance argument: a `Covariance` (checked and factorised already) or a float64 array.
#[derive(FromPyObject)]
pub enum SigmaArg<'py> {
    Checked(Bound<'py, PyCovariance>),
    Array(PyReadonlyArray2<'py, f64>),
}

/// Options that cannot work are refused before any work, whatever the method.
fn options(
    method: &str,
    tolerance: f64,
    max_iterations: usize,
) -> PyResult<(Method, NewtonSchulzOptions)> {
    Ok((
        method.parse()?,
        NewtonSchulzOptions::new(tolerance, max_iterations)?,
    ))
}

/// Check the Fréchet distance's options (`method`, `tolerance`, `max_iterations`) as `frechet_distance` does.
#[pyfunction]
#[pyo3(signature = (method="eigh", tolerance=1e-10, max_iterations=200))]
pub fn check_frechet_options(method: &str, tolerance: f64, max_iterations: usize) -> PyResult<()> {
    guard(|| options(method, tolerance, max_iterations).map(|_| ()))
}

/// Fréchet distance through the Rust core; returns a dict with the value and diagnostics. `sigma1`/`sigma2`
/// are `Covariance`s or float64 arrays; an array is checked here around its mean at the float32 round-off
/// level (its storage precision is not known).
#[pyfunction]
#[pyo3(signature = (mu1, sigma1, mu2, sigma2, method="eigh", tolerance=1e-10, max_iterations=200))]
#[allow(clippy::too_many_arguments)]
pub fn frechet_distance<'py>(
    py: Python<'py>,
    mu1: PyReadonlyArray1<'py, f64>,
    sigma1: SigmaArg<'py>,
    mu2: PyReadonlyArray1<'py, f64>,
    sigma2: SigmaArg<'py>,
    method: &str,
    tolerance: f64,
    max_iterations: usize,
) -> PyResult<Bound<'py, PyDict>> {
    guard(|| {
        let (method, ns_options) = options(method, tolerance, max_iterations)?;
        let (m1, m2) = (mu1.as_slice()?, mu2.as_slice()?);
        let par = par()?;
        let views: Vec<Option<AnyLayout<'_>>> = [&sigma1, &sigma2]
            .iter()
            .map(|s| match s {
                SigmaArg::Array(a) => Some(AnyLayout::new(a)),
                SigmaArg::Checked(_) => None,
            })
            .collect();
        let checked: Vec<Option<&Covariance>> = [&sigma1, &sigma2]
            .iter()
            .map(|s| match s {
                SigmaArg::Checked(c) => Some(&c.get().inner),
                SigmaArg::Array(_) => None,
            })
            .collect();
        let sides = [("sigma1", "mu1", m1), ("sigma2", "mu2", m2)];
        let result = without_gil(py, |_| -> crate::error::Result<_> {
            let mut built = Vec::new();
            for (view, (name, mean_name, mu)) in views.iter().zip(sides) {
                built.push(match view {
                    Some(v) => {
                        let origin = Origin {
                            mean: Some(mu),
                            one_pass_samples: None,
                            precision: Precision::Float32,
                            two_pass: false,
                        };
                        Some(Covariance::new(v.view(), origin, name, mean_name, par)?)
                    }
                    None => None,
                });
            }
            let c1 = built[0]
                .as_ref()
                .or(checked[0])
                .expect("an array or a Covariance");
            let c2 = built[1]
                .as_ref()
                .or(checked[1])
                .expect("an array or a Covariance");
            frechet_core(m1, c1, m2, c2, method, ns_options, par)
        })??;
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

/// Add the class, the functions and the method names to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyCovariance>()?;
    m.add_function(wrap_pyfunction!(frechet_distance, m)?)?;
    m.add_function(wrap_pyfunction!(check_frechet_options, m)?)?;
    m.add("FRECHET_METHODS", Method::NAMES.to_vec())?;
    m.add("STORAGE_PRECISIONS", Precision::NAMES.to_vec())?;
    Ok(())
}
