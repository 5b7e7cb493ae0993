//! One process-wide bound on the memory that decoders may hold at once.
//!
//! Each decode reserves, before allocating, what its header says the pixels will need; a reservation waits
//! while others hold the budget and is returned when its image is done. So N decoding threads never hold
//! more than the budget between them (a per-thread limit would allow N times the pixel limit), and an
//! image that alone needs more than the budget is refused rather than waited for.

use std::sync::{Condvar, Mutex, OnceLock};

pub struct MemoryBudget {
    state: Mutex<State>,
    freed: Condvar,
}

struct State {
    limit: u64,
    used: u64,
}

static BUDGET: OnceLock<MemoryBudget> = OnceLock::new();

/// The process's budget. It starts at the need of one image at the default pixel limit and grows when a
/// caller raises the pixel limit (`ensure_at_least`), so an image the caller allows always fits alone.
pub fn global() -> &'static MemoryBudget {
    BUDGET.get_or_init(|| MemoryBudget::new(0))
}

/// A held share of the budget, returned on drop.
pub struct Reservation {
    budget: &'static MemoryBudget,
    bytes: u64,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut state = self.budget.state.lock().unwrap_or_else(|e| e.into_inner());
        state.used -= self.bytes;
        self.budget.freed.notify_all();
    }
}

impl MemoryBudget {
    pub const fn new(limit: u64) -> Self {
        Self {
            state: Mutex::new(State { limit, used: 0 }),
            freed: Condvar::new(),
        }
    }

    pub fn ensure_at_least(&self, limit: u64) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if limit > state.limit {
            state.limit = limit;
            self.freed.notify_all();
        }
    }

    pub fn limit(&self) -> u64 {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).limit
    }

    /// Wait until `bytes` fit beside what other threads hold, then hold them.
    pub fn reserve(&'static self, bytes: u64) -> Result<Reservation, String> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if bytes > state.limit {
            return Err(format!(
                "decoding needs {bytes} bytes, over the decoder memory limit of {} bytes",
                state.limit
            ));
        }
        while state.used + bytes > state.limit {
            state = self.freed.wait(state).unwrap_or_else(|e| e.into_inner());
        }
        state.used += bytes;
        Ok(Reservation {
            budget: self,
            bytes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    #[test]
    fn concurrent_reservations_never_exceed_the_limit() {
        static BUDGET: MemoryBudget = MemoryBudget::new(100);
        static HELD: AtomicU64 = AtomicU64::new(0);
        static PEAK: AtomicU64 = AtomicU64::new(0);
        std::thread::scope(|s| {
            for t in 0..8u64 {
                s.spawn(move || {
                    for i in 0..50u64 {
                        let bytes = 10 + (t * 7 + i * 13) % 60;
                        let _r = BUDGET.reserve(bytes).unwrap();
                        let now = HELD.fetch_add(bytes, Ordering::SeqCst) + bytes;
                        PEAK.fetch_max(now, Ordering::SeqCst);
                        std::thread::yield_now();
                        HELD.fetch_sub(bytes, Ordering::SeqCst);
                    }
                });
            }
        });
        assert!(PEAK.load(Ordering::SeqCst) <= 100);
        assert!(
            BUDGET.reserve(101).is_err(),
            "a need over the whole budget is refused, not waited for"
        );
    }
}
