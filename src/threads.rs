//! The number of threads fidrs uses (decoding, linear algebra, the MMD kernel), and the one pool they run in.
//!
//! One rule, defined here and nowhere else: `FIDRS_NUM_THREADS` unset or empty means every CPU this process
//! may run on; otherwise it must be a whole number from 1 to `MAX_THREADS_PER_CPU` × that CPU count. The
//! variable is read once, on first use, and the pool is built once from it; neither step can panic or hang
//! (an unbounded count used to hang at import, spawning 100,000 threads).

use std::sync::OnceLock;

use crate::error::{FidrsError, Result};

/// The variable that sets the thread count.
pub const VARIABLE: &str = "FIDRS_NUM_THREADS";

/// More threads than CPUs helps only while threads wait on I/O (reading files over a network mount); beyond
/// a few per CPU they only cost memory and scheduling, and a typo (100000) must not start a storm.
pub const MAX_THREADS_PER_CPU: usize = 4;

/// The CPUs this process may run on (its affinity mask and cgroup quota, as the standard library reads them).
pub fn cpu_count() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The thread count that `value` (the variable's content, if set) asks for on a machine with `cpus` CPUs.
pub fn parse_thread_count(value: Option<&str>, cpus: usize) -> Result<usize> {
    let cpus = cpus.max(1);
    let limit = MAX_THREADS_PER_CPU * cpus;
    let Some(text) = value.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(cpus);
    };
    let refuse = || {
        FidrsError::InvalidInput(format!(
            "environment variable {VARIABLE} must be a whole number from 1 to {limit} \
             ({MAX_THREADS_PER_CPU} × the {cpus} CPUs this process may use), got '{}'",
            value.unwrap_or_default().escape_debug()
        ))
    };
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(refuse());
    }
    // Digits only, so the only parse failure is overflow, which is over the limit anyway.
    match text.parse::<usize>() {
        Ok(n) if (1..=limit).contains(&n) => Ok(n),
        _ => Err(refuse()),
    }
}

/// `FIDRS_NUM_THREADS` as validated by `parse_thread_count`, read once per process.
pub fn configured_threads() -> Result<usize> {
    static CONFIGURED: OnceLock<std::result::Result<usize, String>> = OnceLock::new();
    CONFIGURED
        .get_or_init(|| {
            let value = std::env::var_os(VARIABLE).map(|v| v.to_string_lossy().into_owned());
            parse_thread_count(value.as_deref(), cpu_count()).map_err(|e| e.to_string())
        })
        .clone()
        .map_err(FidrsError::InvalidInput)
}

/// Build rayon's global pool with the configured count (once), and return that count. Every parallel section
/// of fidrs runs after this: a pool that cannot start (the process may not create threads) is an error here,
/// where rayon itself would panic on first use.
pub fn ensure_pool() -> Result<usize> {
    static POOL: OnceLock<std::result::Result<usize, String>> = OnceLock::new();
    let n = configured_threads()?;
    POOL.get_or_init(|| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .thread_name(|i| format!("fidrs-{i}"))
            .build_global()
            .map(|()| n)
            .or_else(|error| {
                // Built before by someone else in this process (not fidrs: it builds it only here).
                // (Test the message first: after a failed build, asking rayon for its pool panics.)
                if error.to_string().contains("already been initialized") {
                    Ok(rayon::current_num_threads())
                } else {
                    Err(format!(
                        "cannot start {n} worker threads ({VARIABLE}): {error}; lower {VARIABLE}"
                    ))
                }
            })
    })
    .clone()
    .map_err(FidrsError::Internal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unset_or_empty_means_every_cpu() {
        assert_eq!(parse_thread_count(None, 6).unwrap(), 6);
        assert_eq!(parse_thread_count(Some(""), 6).unwrap(), 6);
        assert_eq!(parse_thread_count(Some("  "), 6).unwrap(), 6);
    }

    #[test]
    fn whole_numbers_up_to_four_per_cpu_are_taken() {
        assert_eq!(parse_thread_count(Some("1"), 2).unwrap(), 1);
        assert_eq!(parse_thread_count(Some(" 8 "), 2).unwrap(), 8);
        assert_eq!(parse_thread_count(Some("008"), 2).unwrap(), 8);
    }

    #[test]
    fn everything_else_is_refused_naming_the_variable_and_the_bound() {
        for bad in [
            "0",
            "9",
            "100000",
            "99999999999999999999",
            "-1",
            "+2",
            "2.0",
            "abc",
            "1e3",
            "٣",
        ] {
            let message = parse_thread_count(Some(bad), 2).unwrap_err().to_string();
            assert!(
                message.contains(VARIABLE) && message.contains("from 1 to 8"),
                "{bad}: {message}"
            );
            assert!(message.contains(&format!("'{bad}'")), "{bad}: {message}");
        }
    }
}
