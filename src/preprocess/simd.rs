//! Which build of the resampling kernels runs: each kernel is compiled for the baseline x86-64 (SSE2), for
//! AVX2 + FMA and for AVX-512 (the x86-64-v4 set), and the best one the CPU has is chosen at run time. Every
//! build gives the same floats (IEEE operations round the same at any vector width, Rust never contracts
//! `a·b + c` on its own, and the kernels' explicit `mul_add`s are fused in every build, in hardware or in
//! libm); the tests check that bit for bit for each build the machine can run.
//!
//! By default each kernel runs its AVX-512 build only where that measured faster than its AVX2 one (the
//! `avx512:` flag of its `dispatch!`). `FIDRS_KERNELS=baseline|avx2|avx512` chooses the build instead, for
//! every kernel (for benchmarks comparing the builds, and for reproducing a report from a smaller CPU); a build
//! the CPU lacks is never run.

use std::sync::OnceLock;

/// A build of the kernels, in increasing order of the instructions it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Build {
    Baseline,
    Avx2,
    Avx512,
}

impl Build {
    pub const ALL: [Build; 3] = [Build::Baseline, Build::Avx2, Build::Avx512];

    fn parse(name: &str) -> Option<Self> {
        match name.trim().to_ascii_lowercase().as_str() {
            "baseline" | "sse2" => Some(Build::Baseline),
            "avx2" => Some(Build::Avx2),
            "avx512" | "avx-512" => Some(Build::Avx512),
            _ => None,
        }
    }
}

/// The best build this CPU can run.
pub fn supported() -> Build {
    static BEST: OnceLock<Build> = OnceLock::new();
    *BEST.get_or_init(detect)
}

fn detect() -> Build {
    #[cfg(target_arch = "x86_64")]
    {
        use std::is_x86_feature_detected as has;
        let v3 = has!("avx2") && has!("fma");
        if v3
            && has!("avx512f")
            && has!("avx512bw")
            && has!("avx512cd")
            && has!("avx512dq")
            && has!("avx512vl")
        {
            return Build::Avx512;
        }
        if v3 {
            return Build::Avx2;
        }
    }
    Build::Baseline
}

/// The environment's cap (`FIDRS_KERNELS`), read once; an unknown value is ignored.
fn cap_from_env() -> Option<Build> {
    static CAP: OnceLock<Option<Build>> = OnceLock::new();
    *CAP.get_or_init(|| {
        std::env::var("FIDRS_KERNELS")
            .ok()
            .and_then(|v| Build::parse(&v))
    })
}

/// The build chosen explicitly (`FIDRS_KERNELS`, or in tests per thread), if any.
pub fn chosen() -> Option<Build> {
    #[cfg(test)]
    if let Some(cap) = tests::CAP.with(|c| c.get()) {
        return Some(cap);
    }
    cap_from_env()
}

/// The largest build this call may run: the best supported one, capped by an explicit choice.
pub fn current() -> Build {
    let best = supported();
    chosen().map_or(best, |cap| best.min(cap))
}

/// `$body(args)` compiled once per build (the kernels are `inline(always)` into each copy, so their loops use
/// that build's vectors) and dispatched on `current()`. `avx512: false` leaves a kernel on AVX2 where its
/// AVX-512 copy measured no faster (`preprocess::bench`), unless AVX-512 was chosen explicitly. (The `multiversion` crate does the same, but
/// offers no way to run a smaller build on a bigger CPU, which the tests need.)
macro_rules! dispatch {
    ($body:ident, [$($generic:tt)*], ($($arg:ident: $ty:ty),*), avx512: $use_avx512:expr) => {
        #[cfg(target_arch = "x86_64")]
        {
            use $crate::preprocess::simd::{chosen, current, Build};

            #[target_feature(enable = "avx2,fma")]
            fn avx2<$($generic)*>($($arg: $ty),*) {
                $body($($arg),*)
            }

            #[target_feature(enable = "avx512f,avx512bw,avx512cd,avx512dq,avx512vl,avx2,fma")]
            fn avx512<$($generic)*>($($arg: $ty),*) {
                $body($($arg),*)
            }

            match current() {
                // SAFETY: `current()` never returns a build whose instructions the CPU lacks.
                Build::Avx512 if $use_avx512 || chosen().is_some() => {
                    return unsafe { avx512($($arg),*) }
                }
                Build::Avx512 | Build::Avx2 => return unsafe { avx2($($arg),*) },
                Build::Baseline => {}
            }
        }
        $body($($arg),*)
    };
}
pub(crate) use dispatch;

#[cfg(test)]
pub mod tests {
    use std::cell::Cell;

    use super::Build;

    thread_local! {
        /// Set by tests to run a smaller build of the kernels than the CPU supports.
        pub static CAP: Cell<Option<Build>> = const { Cell::new(None) };
    }

    #[test]
    fn names_parse() {
        assert_eq!(Build::parse("AVX2"), Some(Build::Avx2));
        assert_eq!(Build::parse(" avx512 "), Some(Build::Avx512));
        assert_eq!(Build::parse("sse2"), Some(Build::Baseline));
        assert_eq!(Build::parse("neon"), None);
    }
}
