//! The crate's one error type. The Python bindings map each variant to a specific exception, in one place
//! (`python/errors.rs`).

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum FidrsError {
    /// A file could not be read or decoded into RGB pixels.
    #[error("{path}: {reason}")]
    Decode { path: PathBuf, reason: String },

    /// Arguments that can never work (wrong shapes, unknown mode, n < 2, NaN...).
    #[error("{0}")]
    InvalidInput(String),

    /// A factorisation failed where the maths says it should not.
    #[error("numerical failure: {0}")]
    Numerical(String),

    /// The caller asked the work to stop (Ctrl-C); what was computed so far is discarded.
    #[error("cancelled")]
    Cancelled,

    /// Something fidrs itself got wrong or could not set up (a caught panic, a thread pool that cannot start).
    #[error("internal error: {0}")]
    Internal(String),
}

pub type Result<T> = std::result::Result<T, FidrsError>;
