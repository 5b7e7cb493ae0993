//! Process-wide services: Ctrl-C handling for the CLI, pending outputs, the thread count.

use std::path::PathBuf;

use pyo3::prelude::*;
use rayon::prelude::*;

use super::errors::guard;
use super::without_gil;
use crate::error::FidrsError;

/// Make SIGINT end the process at once (exit 130, `message` on stderr, pending outputs removed). For the CLI.
#[pyfunction]
pub fn exit_on_interrupt(message: String) -> PyResult<()> {
    guard(|| {
        crate::interrupt::exit_on_interrupt(message).map_err(|e| {
            FidrsError::InvalidInput(format!("cannot install the Ctrl-C handler: {e}")).into()
        })
    })
}

/// Register (`pending=True`) or release a temporary output file that an interrupt must remove.
#[pyfunction]
pub fn track_pending_output(path: PathBuf, pending: bool) -> PyResult<()> {
    guard(|| {
        crate::interrupt::track_pending(path, pending);
        Ok(())
    })
}

/// The number of threads fidrs runs on: FIDRS_NUM_THREADS, validated (a whole number from 1 to 4 × the CPUs
/// this process may use), or that CPU count when it is unset. Raises InvalidInputError naming the variable
/// and the bound. Read once per process.
#[pyfunction]
pub fn configured_threads() -> PyResult<usize> {
    guard(|| Ok(crate::threads::configured_threads()?))
}

/// The size of fidrs' thread pool, starting it if needed (`configured_threads()` threads).
#[pyfunction]
pub fn num_threads() -> PyResult<usize> {
    guard(|| Ok(crate::threads::ensure_pool()?))
}

/// Test hook: panic on purpose, `where` = "binding" (in the binding itself), "worker" (on the thread that
/// runs without the GIL) or "pool" (in a rayon task). Each must reach Python as InternalError.
#[pyfunction]
#[pyo3(name = "_panic_for_tests")]
pub fn panic_for_tests(py: Python<'_>, r#where: &str) -> PyResult<()> {
    guard(|| match r#where {
        "binding" => panic!("deliberate panic in a binding"),
        "worker" => without_gil(py, |_| -> () { panic!("deliberate panic on the worker") }),
        "pool" => without_gil(py, |_| {
            (0..64).into_par_iter().for_each(|i| {
                if i == 37 {
                    panic!("deliberate panic in a pool task")
                }
            })
        }),
        other => Err(FidrsError::InvalidInput(format!(
            "where must be binding, worker or pool, got {other:?}"
        ))
        .into()),
    })
}

/// Add the functions to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(exit_on_interrupt, m)?)?;
    m.add_function(wrap_pyfunction!(track_pending_output, m)?)?;
    m.add_function(wrap_pyfunction!(configured_threads, m)?)?;
    m.add_function(wrap_pyfunction!(num_threads, m)?)?;
    m.add_function(wrap_pyfunction!(panic_for_tests, m)?)?;
    m.add("MAX_THREADS_PER_CPU", crate::threads::MAX_THREADS_PER_CPU)?;
    Ok(())
}
