//! The preprocessing description, and preprocessing of in-memory images.

use numpy::{PyArray4, PyReadonlyArray4, PyUntypedArrayMethods};
use pyo3::prelude::*;

use super::decode::into_output;
use super::errors::guard;
use super::without_gil;
use crate::batch::preprocess_batch;
use crate::error::FidrsError;
use crate::preprocess::{Fit, Preprocessing, Resize, Unit};

/// A preprocessing description (`fidrs._fidrs.Preprocessing`): immutable, built by the backbones' presets.
#[pyclass(name = "Preprocessing", module = "fidrs._fidrs", frozen, eq)]
#[derive(Clone, PartialEq)]
pub struct PyPreprocessing {
    pub inner: Preprocessing,
}

#[pymethods]
impl PyPreprocessing {
    #[new]
    #[pyo3(signature = (*, size, resize, fit="stretch", unit="never", clamp=false, mean=[0.0; 3], std=[1.0; 3], fill=[255, 255, 255]))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        size: usize,
        resize: &str,
        fit: &str,
        unit: &str,
        clamp: bool,
        mean: [f32; 3],
        std: [f32; 3],
        fill: [u8; 3],
    ) -> PyResult<Self> {
        guard(|| {
            let inner = Preprocessing::new(
                size,
                resize.parse::<Resize>()?,
                Fit::parse(fit, fill)?,
                unit.parse::<Unit>()?,
                clamp,
                mean,
                std,
            )?;
            Ok(Self { inner })
        })
    }

    #[getter]
    fn size(&self) -> PyResult<usize> {
        guard(|| Ok(self.inner.size))
    }

    fn __repr__(&self) -> PyResult<String> {
        guard(|| Ok(format!("Preprocessing({:?})", self.inner)))
    }
}

/// Preprocess in-memory uint8 images (N×H×W×3), into `out` when given (as `load_images`).
#[pyfunction]
#[pyo3(signature = (images, preprocessing, out=None))]
pub fn preprocess_arrays<'py>(
    py: Python<'py>,
    images: PyReadonlyArray4<'py, u8>,
    preprocessing: &PyPreprocessing,
    out: Option<Bound<'py, PyArray4<f32>>>,
) -> PyResult<Bound<'py, PyArray4<f32>>> {
    guard(|| {
        let p = preprocessing.inner;
        let shape = images.shape().to_vec();
        if shape[3] != 3 || shape[1] == 0 || shape[2] == 0 {
            return Err(FidrsError::InvalidInput(format!(
                "images must be N×H×W×3 uint8 with H, W > 0, got {shape:?}"
            ))
            .into());
        }
        let (n, h, w) = (shape[0], shape[1], shape[2]);
        let pixels = images
            .as_slice()
            .map(|s| s.to_vec())
            .unwrap_or_else(|_| images.as_array().iter().copied().collect());
        let (array, ()) = into_output(py, out, n, p.size, |data| {
            without_gil(py, |_| preprocess_batch(&pixels, w, h, &p, data))?;
            Ok((n, ()))
        })?;
        Ok(array)
    })
}

/// Add the class, the function and the choices they accept to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyPreprocessing>()?;
    m.add_function(wrap_pyfunction!(preprocess_arrays, m)?)?;
    // Choices defined once, here, and read by the CLI and the type stubs.
    m.add("RESIZE_KERNELS", Resize::NAMES.to_vec())?;
    m.add("FITS", Fit::NAMES.to_vec())?;
    m.add("UNITS", Unit::NAMES.to_vec())?;
    Ok(())
}
