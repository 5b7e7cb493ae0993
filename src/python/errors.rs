//! The one place where Rust errors become Python exceptions: the native exception classes, and the mapping
//! from every `FidrsError` variant to one of them.

use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::GILOnceCell;
use pyo3::types::{PyDict, PyType};

use crate::error::FidrsError;

create_exception!(
    _fidrs,
    FidrsError_,
    PyException,
    "Base class of every fidrs error."
);
create_exception!(
    _fidrs,
    DecodeError,
    FidrsError_,
    "A file could not be decoded into an image."
);
create_exception!(
    _fidrs,
    NumericalError,
    FidrsError_,
    "A factorisation failed unexpectedly."
);

/// `InvalidInputError(FidrsError, ValueError)`: arguments that cannot work (shape, NaN, n < 2, unknown names).
/// Two bases, so `create_exception!` cannot make it; it is created once, at import, with `type(...)`.
static INVALID_INPUT_ERROR: GILOnceCell<Py<PyType>> = GILOnceCell::new();

pub fn invalid_input_error(py: Python<'_>) -> PyResult<&Py<PyType>> {
    INVALID_INPUT_ERROR.get_or_try_init(py, || {
        let namespace = PyDict::new(py);
        namespace.set_item("__module__", "fidrs._fidrs")?;
        namespace.set_item(
            "__doc__",
            "Arguments that cannot work (shape, NaN, n < 2, unknown names); also a ValueError.",
        )?;
        let bases = (py.get_type::<FidrsError_>(), py.get_type::<PyValueError>());
        let class = py
            .get_type::<PyType>()
            .call1(("InvalidInputError", bases, namespace))?;
        Ok(class.downcast_into::<PyType>()?.unbind())
    })
}

impl From<FidrsError> for PyErr {
    fn from(error: FidrsError) -> PyErr {
        let message = error.to_string();
        match error {
            FidrsError::Decode { .. } => DecodeError::new_err(message),
            FidrsError::InvalidInput(_) => Python::with_gil(|py| match invalid_input_error(py) {
                Ok(class) => PyErr::from_type(class.bind(py).clone(), message),
                Err(error) => error,
            }),
            FidrsError::Numerical(_) => NumericalError::new_err(message),
        }
    }
}

/// Add the exception classes to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("FidrsError", py.get_type::<FidrsError_>())?;
    m.add("DecodeError", py.get_type::<DecodeError>())?;
    m.add("InvalidInputError", invalid_input_error(py)?.bind(py))?;
    m.add("NumericalError", py.get_type::<NumericalError>())?;
    Ok(())
}
