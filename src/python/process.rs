//! Process-wide services for the CLI: Ctrl-C handling, pending outputs, the thread count.

use std::path::PathBuf;

use pyo3::prelude::*;

use crate::error::FidrsError;

/// Make SIGINT end the process at once (exit 130, `message` on stderr, pending outputs removed). For the CLI.
#[pyfunction]
pub fn exit_on_interrupt(message: String) -> PyResult<()> {
    crate::interrupt::exit_on_interrupt(message).map_err(|e| {
        FidrsError::InvalidInput(format!("cannot install the Ctrl-C handler: {e}")).into()
    })
}

/// Register (`pending=True`) or release a temporary output file that an interrupt must remove.
#[pyfunction]
pub fn track_pending_output(path: PathBuf, pending: bool) {
    crate::interrupt::track_pending(path, pending);
}

#[pyfunction]
pub fn num_threads() -> usize {
    rayon::current_num_threads()
}

/// Add the functions to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(exit_on_interrupt, m)?)?;
    m.add_function(wrap_pyfunction!(track_pending_output, m)?)?;
    m.add_function(wrap_pyfunction!(num_threads, m)?)?;
    Ok(())
}
