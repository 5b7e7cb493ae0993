//! Times faer's dense building blocks at d = 2048 (used to choose the Fréchet algorithm).
use faer::linalg::matmul::triangular::{self, BlockStructure};
use faer::{Accum, Mat, Par, Side};
use std::time::Instant;

fn cpu_seconds() -> f64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid pointer to a timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut t) };
    t.tv_sec as f64 + t.tv_nsec as f64 * 1e-9
}

/// Runs `f` once and prints its wall and CPU time under `label`.
fn timed<T>(label: &str, f: impl FnOnce() -> T) -> T {
    let (t, c) = (Instant::now(), cpu_seconds());
    let out = f();
    println!(
        "{label}: wall {:.3} cpu {:.3}",
        t.elapsed().as_secs_f64(),
        cpu_seconds() - c
    );
    out
}

fn main() {
    let d: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse().unwrap())
        .unwrap_or(2048);
    let threads: usize = std::env::args()
        .nth(2)
        .map(|s| s.parse().unwrap())
        .unwrap_or(2);
    let mut state = 1u64;
    let mut rnd = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 11) as f64 / (1u64 << 53) as f64 - 0.5
    };
    let x = Mat::from_fn(d, 2 * d, |_, _| rnd());
    let s = &x * x.transpose();
    let par = if threads > 1 {
        Par::rayon(threads)
    } else {
        Par::Seq
    };
    faer::set_global_parallelism(par);
    for _ in 0..3 {
        let l = timed("llt", || s.llt(Side::Lower).unwrap());
        timed("eigenvalues", || {
            s.self_adjoint_eigenvalues(Side::Lower).unwrap()
        });
        let l = l.L().to_owned();
        let mut c = Mat::<f64>::zeros(d, d);
        timed("trmm L1^T L2", || {
            triangular::matmul(
                c.as_mut(),
                BlockStructure::Rectangular,
                Accum::Replace,
                l.transpose(),
                BlockStructure::TriangularUpper,
                l.as_ref(),
                BlockStructure::TriangularLower,
                1.0,
                par,
            )
        });
        let mut g = Mat::<f64>::zeros(d, d);
        timed("syrk C^T C", || {
            triangular::matmul(
                g.as_mut(),
                BlockStructure::TriangularLower,
                Accum::Replace,
                c.transpose(),
                BlockStructure::Rectangular,
                c.as_ref(),
                BlockStructure::Rectangular,
                1.0,
                par,
            )
        });
        timed("gemm", || {
            faer::linalg::matmul::matmul(
                g.as_mut(),
                Accum::Replace,
                c.as_ref(),
                c.as_ref(),
                1.0,
                par,
            )
        });
    }
}
