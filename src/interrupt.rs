//! Ctrl-C for the command-line tool: a native SIGINT handler that ends the process within milliseconds,
//! whatever the interpreter is doing. Python's own handler runs only when the main thread gets the GIL, which
//! a C extension (ONNX Runtime building a session, say) may hold for seconds.
//!
//! signal-hook does the async-signal-safe part (its handler only wakes a thread); that thread removes the
//! output files still being written, prints one line and exits with 130.

use std::collections::HashSet;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

use signal_hook::consts::SIGINT;
use signal_hook::iterator::Signals;

/// 128 + SIGINT, as shells report a command stopped by Ctrl-C.
pub const EXIT_INTERRUPTED: i32 = 130;

fn pending() -> &'static Mutex<HashSet<PathBuf>> {
    static PENDING: OnceLock<Mutex<HashSet<PathBuf>>> = OnceLock::new();
    PENDING.get_or_init(|| Mutex::new(HashSet::new()))
}

/// A temporary output file being written: removed if the process is interrupted before it is renamed.
pub fn track_pending(path: PathBuf, pending_now: bool) {
    let mut set = pending().lock().unwrap_or_else(|e| e.into_inner());
    if pending_now {
        set.insert(path);
    } else {
        set.remove(&path);
    }
}

/// Install the handler once; later calls do nothing.
pub fn exit_on_interrupt(message: String) -> std::io::Result<()> {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    if INSTALLED.get().is_some() {
        return Ok(());
    }
    let mut signals = Signals::new([SIGINT])?;
    std::thread::Builder::new()
        .name("fidrs-interrupt".into())
        .spawn(move || {
            if signals.forever().next().is_some() {
                for path in pending().lock().unwrap_or_else(|e| e.into_inner()).iter() {
                    let _ = std::fs::remove_file(path);
                }
                let mut stderr = std::io::stderr();
                let _ = writeln!(stderr, "\n{message}");
                let _ = stderr.flush();
                // SAFETY: _exit ends the process at once, without running destructors or atexit handlers
                // that could block on locks other threads hold.
                unsafe { libc::_exit(EXIT_INTERRUPTED) };
            }
        })?;
    let _ = INSTALLED.set(());
    Ok(())
}
