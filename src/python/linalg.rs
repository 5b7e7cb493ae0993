//! Conversions between NumPy float64 matrices and faer's.

use faer::MatRef;
use numpy::{IntoPyArray, PyArray2, PyArrayMethods, PyReadonlyArray2, PyUntypedArrayMethods};
use pyo3::prelude::*;

use crate::error::FidrsError;

/// A view of a C-contiguous float64 matrix, `name` naming it in the error.
pub fn matrix<'a>(
    name: &str,
    a: &'a PyReadonlyArray2<'a, f64>,
) -> Result<MatRef<'a, f64>, FidrsError> {
    let shape = a.shape();
    let slice = a.as_slice().map_err(|_| {
        FidrsError::InvalidInput(format!("{name} must be a C-contiguous float64 array"))
    })?;
    Ok(MatRef::from_row_major_slice(slice, shape[0], shape[1]))
}

/// A float64 matrix of any memory layout, borrowed when it is C-contiguous and copied otherwise.
pub struct AnyLayout<'a> {
    data: std::borrow::Cow<'a, [f64]>,
    rows: usize,
    cols: usize,
}

impl<'a> AnyLayout<'a> {
    pub fn new(a: &'a PyReadonlyArray2<'a, f64>) -> Self {
        let (rows, cols) = (a.shape()[0], a.shape()[1]);
        let data = match a.as_slice() {
            Ok(slice) => std::borrow::Cow::Borrowed(slice),
            Err(_) => std::borrow::Cow::Owned(a.as_array().iter().copied().collect()),
        };
        Self { data, rows, cols }
    }

    pub fn view(&self) -> MatRef<'_, f64> {
        MatRef::from_row_major_slice(&self.data, self.rows, self.cols)
    }
}

/// A new C-contiguous NumPy copy of `m`.
pub fn to_numpy<'py>(py: Python<'py>, m: MatRef<'_, f64>) -> PyResult<Bound<'py, PyArray2<f64>>> {
    let (r, c) = (m.nrows(), m.ncols());
    let mut data = Vec::with_capacity(r * c);
    for i in 0..r {
        for j in 0..c {
            data.push(m[(i, j)]);
        }
    }
    data.into_pyarray(py).reshape([r, c])
}
