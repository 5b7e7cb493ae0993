//! Cooperative cancellation: long loops check a flag between items, so Ctrl-C stops a batch promptly.

use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Default)]
pub struct Cancel(AtomicBool);

impl Cancel {
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// The reason given to every item that a cancelled run did not decode.
pub const CANCELLED: &str = "cancelled";
