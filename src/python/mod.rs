//! PyO3 bindings: the native module `fidrs._fidrs`, one file per concept. Array views in, `into_pyarray` out;
//! every heavy call releases the GIL through `without_gil`; Rust errors become Python exceptions in `errors`.

mod decode;
mod errors;
mod frechet;
mod linalg;
mod moments;
mod preprocess;
mod process;

use std::sync::mpsc;
use std::time::Duration;

use faer::Par;
use pyo3::prelude::*;

use crate::cancel::Cancel;

/// How often a waiting call looks for Ctrl-C.
const SIGNAL_POLL: Duration = Duration::from_millis(50);

/// The one place the GIL is released, and where Ctrl-C is handled: `f` runs on a worker thread while this
/// thread checks for signals every 50 ms. On Ctrl-C (or any signal handler that raises) the work is asked
/// to stop through `Cancel` (decoding loops check it between images), and the handler's exception, such as
/// KeyboardInterrupt, is raised once the worker has returned.
fn without_gil<T: Send>(py: Python<'_>, f: impl FnOnce(&Cancel) -> T + Send) -> PyResult<T> {
    let cancel = Cancel::default();
    let (outcome, interrupted) = py.allow_threads(|| {
        std::thread::scope(|scope| {
            let (done_tx, done_rx) = mpsc::channel::<()>();
            let cancel = &cancel;
            let worker = scope.spawn(move || {
                let result = f(cancel);
                let _ = done_tx.send(());
                result
            });
            let mut interrupted = None;
            while let Err(mpsc::RecvTimeoutError::Timeout) = done_rx.recv_timeout(SIGNAL_POLL) {
                if interrupted.is_none() {
                    if let Err(error) = Python::with_gil(|py| py.check_signals()) {
                        cancel.cancel();
                        interrupted = Some(error);
                    }
                }
            }
            (worker.join(), interrupted)
        })
    });
    if let Some(error) = interrupted {
        return Err(error);
    }
    Ok(outcome.unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
}

/// The thread budget for dense linear algebra: rayon's pool (sized by FIDRS_NUM_THREADS), set as faer's
/// global parallelism too so that its decompositions use the same threads.
fn par() -> Par {
    let par = Par::rayon(rayon::current_num_threads());
    faer::set_global_parallelism(par);
    par
}

#[pymodule]
fn _fidrs(m: &Bound<'_, PyModule>) -> PyResult<()> {
    if let Some(n) = std::env::var("FIDRS_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        // Fails harmlessly if the pool was already built.
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global();
    }
    errors::register(m)?;
    decode::register(m)?;
    preprocess::register(m)?;
    frechet::register(m)?;
    moments::register(m)?;
    process::register(m)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
