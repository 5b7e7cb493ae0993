//! Times the steps of the Fréchet distance at d = 2048, full rank, on one thread (CPU seconds, which a busy
//! machine inflates far less than wall time), beside faer's building blocks, and the factorisation of a
//! singular covariance (n = d/4 samples): used to choose the algorithms.
//! `cargo run --release --example la_timing [d] [threads]`
use _fidrs::covariance::{Covariance, Origin, Precision};
use _fidrs::frechet::{frechet_distance, Method};
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
        "{label:<28} wall {:.3}  cpu {:.3}",
        t.elapsed().as_secs_f64(),
        cpu_seconds() - c
    );
    out
}

fn covariance_like_features(d: usize, n: usize, seed: u64) -> Mat<f64> {
    let mut state = seed;
    let mut rnd = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 11) as f64 / (1u64 << 53) as f64 - 0.5
    };
    let mix = Mat::from_fn(d, d, |_, _| rnd() / 45.0);
    let x = Mat::from_fn(n, d, |_, _| rnd());
    let y = &x * &mix;
    let s = y.transpose() * &y * (1.0 / n as f64);
    Mat::from_fn(d, d, |i, j| s[(i.max(j), i.min(j))])
}

fn singular_covariance(d: usize, n: usize, seed: u64) -> Mat<f64> {
    let mut state = seed;
    let mut rnd = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 11) as f64 / (1u64 << 53) as f64 - 0.5
    };
    let x = Mat::from_fn(n, d, |_, _| rnd());
    let mu: Vec<f64> = (0..d)
        .map(|j| (0..n).map(|i| x[(i, j)]).sum::<f64>() / n as f64)
        .collect();
    let c = Mat::from_fn(n, d, |i, j| x[(i, j)] - mu[j]);
    let s = c.transpose() * &c * (1.0 / (n - 1) as f64);
    Mat::from_fn(d, d, |i, j| s[(i.max(j), i.min(j))])
}

fn main() {
    let d: usize = std::env::args().nth(1).map_or(2048, |s| s.parse().unwrap());
    let threads: usize = std::env::args().nth(2).map_or(1, |s| s.parse().unwrap());
    let par = if threads > 1 {
        Par::rayon(threads)
    } else {
        Par::Seq
    };
    faer::set_global_parallelism(par);
    let (s1, s2) = (
        covariance_like_features(d, 2 * d, 1),
        covariance_like_features(d, 2 * d, 2),
    );
    let origin = Origin {
        mean: None,
        one_pass_samples: None,
        precision: Precision::Float64,
        two_pass: false,
    };
    let mu = vec![0.0; d];
    let singular = singular_covariance(d, d / 4, 3);
    for _ in 0..3 {
        let c = timed("Covariance::new (n = d/4)", || {
            Covariance::new(singular.as_ref(), origin, "s", "m", par).unwrap()
        });
        println!("  rank {} ({})", c.rank(), c.kind().name());
    }
    for _ in 0..3 {
        let c1 = timed("Covariance::new (check+llt)", || {
            Covariance::new(s1.as_ref(), origin, "s1", "m", par).unwrap()
        });
        let c2 = Covariance::new(s2.as_ref(), origin, "s2", "m", par).unwrap();
        let r = timed("distance (eigh)", || {
            frechet_distance(&mu, &c1, &mu, &c2, Method::Eigh, Default::default(), par).unwrap()
        });
        println!(
            "  steps: product {:.3} trace {:.3} (wall)",
            r.seconds_product, r.seconds_trace
        );
        timed("llt", || s1.llt(Side::Lower).unwrap());
        timed("eigenvalues of Σ", || {
            s1.self_adjoint_eigenvalues(Side::Lower).unwrap()
        });
        let l = s1.llt(Side::Lower).unwrap().L().to_owned();
        let l2 = s2.llt(Side::Lower).unwrap().L().to_owned();
        let mut c = Mat::<f64>::zeros(d, d);
        timed("trmm L1^T L2", || {
            triangular::matmul(
                c.as_mut(),
                BlockStructure::Rectangular,
                Accum::Replace,
                l.transpose(),
                BlockStructure::TriangularUpper,
                l2.as_ref(),
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
        let faer_values = timed("eigenvalues of C^T C (faer)", || {
            g.self_adjoint_eigenvalues(Side::Lower).unwrap()
        });
        let buffer: Vec<f64> = (0..d * d).map(|k| g[(k % d, k / d)]).collect();
        let two_stage = timed("eigenvalues of C^T C (2-stage)", || {
            _fidrs::eigen::symmetric_eigenvalues(buffer, d, par).unwrap()
        });
        let mut sorted = faer_values.clone();
        sorted.sort_by(f64::total_cmp);
        let worst = sorted
            .iter()
            .zip(&two_stage)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        println!(
            "  max |faer − 2-stage| = {worst:.2e} (largest {:.3e})",
            sorted[d - 1]
        );
    }
}
