//! PyO3 bindings: the native module `fidrs._fidrs`, one file per concept. Array views in, `into_pyarray` out;
//! every heavy call releases the GIL through `without_gil`; Rust errors become Python exceptions in `errors`,
//! and every binding body runs under `errors::guard`, so a Rust panic arrives as `InternalError`.

mod decode;
mod errors;
mod frechet;
mod linalg;
mod mmd;
mod moments;
mod preprocess;
mod process;

use std::sync::mpsc;
use std::time::Duration;

use faer::Par;
use pyo3::prelude::*;

use crate::cancel::Cancel;
use crate::error::FidrsError;
use errors::{guard, panic_error};

/// How often a waiting call looks for Ctrl-C.
const SIGNAL_POLL: Duration = Duration::from_millis(50);

/// The one place the GIL is released, and where Ctrl-C is handled: `f` runs on a worker thread (in fidrs'
/// thread pool's process) while this thread checks for signals every 50 ms. On Ctrl-C (or any signal handler
/// that raises) the work is asked to stop through `Cancel` (decoding loops check it between images), and the
/// handler's exception, such as KeyboardInterrupt, is raised once the worker has returned. A panic on the
/// worker (or in a rayon task under it) comes back as `InternalError`.
fn without_gil<T: Send>(py: Python<'_>, f: impl FnOnce(&Cancel) -> T + Send) -> PyResult<T> {
    crate::threads::ensure_pool()?;
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
    outcome.map_err(panic_error)
}

/// The thread budget for dense linear algebra: fidrs' pool (sized by FIDRS_NUM_THREADS, `crate::threads`),
/// set as faer's global parallelism too so that its decompositions use the same threads.
fn par() -> Result<Par, FidrsError> {
    let n = crate::threads::ensure_pool()?;
    let par = if n > 1 { Par::rayon(n) } else { Par::Seq };
    faer::set_global_parallelism(par);
    Ok(par)
}

#[pymodule]
fn _fidrs(m: &Bound<'_, PyModule>) -> PyResult<()> {
    guard(|| {
        errors::register(m)?;
        decode::register(m)?;
        preprocess::register(m)?;
        frechet::register(m)?;
        moments::register(m)?;
        mmd::register(m)?;
        process::register(m)?;
        m.add("__version__", env!("CARGO_PKG_VERSION"))?;
        // The sha256 of the sources that decode and preprocess (build.rs): part of every feature cache key.
        m.add("PIXEL_CODE_SHA256", env!("FIDRS_PIXEL_CODE_SHA256"))?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    /// Every binding file, as compiled: the check below reads them.
    const SOURCES: &[(&str, &str)] = &[
        ("decode.rs", include_str!("decode.rs")),
        ("frechet.rs", include_str!("frechet.rs")),
        ("mmd.rs", include_str!("mmd.rs")),
        ("moments.rs", include_str!("moments.rs")),
        ("preprocess.rs", include_str!("preprocess.rs")),
        ("process.rs", include_str!("process.rs")),
        ("mod.rs", include_str!("mod.rs")),
    ];

    /// The first statement of every `#[pyfunction]`, every method in a `#[pymethods]` block and the module
    /// initialiser is a call of `guard`, so no panic can leave a binding as `PanicException`.
    #[test]
    fn every_binding_body_runs_under_guard() {
        let mut checked = 0;
        for (file, source) in SOURCES {
            let lines: Vec<&str> = source.lines().collect();
            let mut in_methods = false;
            let mut pending = false;
            for (i, line) in lines.iter().enumerate() {
                let t = line.trim_start();
                if t.starts_with("#[pymethods]") {
                    in_methods = true;
                } else if in_methods && *line == "}" {
                    in_methods = false;
                }
                if t.starts_with("#[pyfunction]") || t.starts_with("#[pymodule]") {
                    pending = true;
                }
                let is_fn = t.starts_with("fn ") || t.starts_with("pub fn ");
                if is_fn && (pending || (in_methods && line.starts_with("    fn "))) {
                    pending = false;
                    // The body starts after the signature's opening brace.
                    let open = (i..lines.len())
                        .find(|&j| lines[j].trim_end().ends_with('{'))
                        .expect("a function body");
                    let first = lines[open + 1..]
                        .iter()
                        .map(|l| l.trim())
                        .find(|l| !l.is_empty() && !l.starts_with("//"))
                        .unwrap_or("");
                    assert!(
                        first.starts_with("guard(") || first.starts_with("errors::guard("),
                        "{file}:{}: `{}` does not start with guard(…): {first}",
                        i + 1,
                        t
                    );
                    checked += 1;
                }
            }
        }
        assert!(
            checked >= 25,
            "found only {checked} bindings: is the scan still right?"
        );
    }
}
