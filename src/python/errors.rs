//! The one place where Rust errors become Python exceptions: the native exception classes, the mapping from
//! every `FidrsError` variant to one of them, and `guard`, which turns a Rust panic into `InternalError` so
//! that no `PanicException` ever reaches Python.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};

use pyo3::exceptions::{PyKeyboardInterrupt, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::GILOnceCell;
use pyo3::types::{PyDict, PyType};

use crate::error::FidrsError;

/// The native exception classes, named as Python sees them (`fidrs._fidrs.FidrsError`, …); in a module of
/// their own because the crate's error enum is also called `FidrsError`.
mod classes {
    use pyo3::create_exception;
    use pyo3::exceptions::PyException;

    create_exception!(
        fidrs._fidrs,
        FidrsError,
        PyException,
        "Base class of every fidrs error."
    );
    create_exception!(
        fidrs._fidrs,
        DecodeError,
        FidrsError,
        "A file could not be decoded into an image."
    );
    create_exception!(
        fidrs._fidrs,
        NumericalError,
        FidrsError,
        "A factorisation failed unexpectedly."
    );
    create_exception!(
        fidrs._fidrs,
        InternalError,
        FidrsError,
        "A fault in fidrs itself (a caught Rust panic, a thread pool that cannot start): CLI exit 3."
    );
}
use classes::{DecodeError, InternalError, NumericalError};

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
        let bases = (
            py.get_type::<classes::FidrsError>(),
            py.get_type::<PyValueError>(),
        );
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
            FidrsError::Cancelled => PyKeyboardInterrupt::new_err(message),
            FidrsError::Internal(_) => InternalError::new_err(message),
        }
    }
}

/// A caught panic as fidrs' internal error, with the panic's message.
pub fn panic_error(payload: Box<dyn Any + Send>) -> PyErr {
    let what = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_string());
    FidrsError::Internal(format!("{what} (a bug in fidrs: please report it)")).into()
}

/// Run a binding's body, turning a panic anywhere in it into `InternalError`. Every `#[pyfunction]` and
/// `#[pymethods]` body is wrapped in this (a test in `mod.rs` checks the sources for it).
pub fn guard<T>(body: impl FnOnce() -> PyResult<T>) -> PyResult<T> {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or_else(|payload| Err(panic_error(payload)))
}

/// Add the exception classes to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("FidrsError", py.get_type::<classes::FidrsError>())?;
    m.add("DecodeError", py.get_type::<DecodeError>())?;
    m.add("InvalidInputError", invalid_input_error(py)?.bind(py))?;
    m.add("NumericalError", py.get_type::<NumericalError>())?;
    m.add("InternalError", py.get_type::<InternalError>())?;
    Ok(())
}
