//! fidrs: the Rust core of an exact, fast Fréchet Inception Distance.
//!
//! Everything but `python` is plain Rust with no Python in it; `python` is the thin PyO3 layer.

pub mod batch;
pub mod budget;
pub mod cancel;
pub mod covariance;
pub mod decode;
pub mod eigen;
pub mod error;
pub mod frechet;
pub mod image;
pub mod interrupt;
pub mod mmd;
pub mod preprocess;
pub mod stats;
pub mod threads;

mod python;
