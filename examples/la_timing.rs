//! Times faer's dense building blocks at d = 2048 (used to choose the Fréchet algorithm).
use faer::linalg::matmul::matmul;
use faer::linalg::matmul::triangular::{self, BlockStructure};
use faer::{Accum, Mat, Par, Side};
use std::time::Instant;

/// Runs `f` once and prints its wall time under `label`.
fn timed<T>(label: &str, f: impl FnOnce() -> T) -> T {
    let t = Instant::now();
    let out = f();
    println!("{label} {:.3}", t.elapsed().as_secs_f64());
    out
}

fn main() {
    let d = 2048;
    let r = 491;
    let mut state = 1u64;
    let mut rnd = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 11) as f64 / (1u64 << 53) as f64 - 0.5
    };
    let x = Mat::from_fn(d, r, |_, _| rnd());
    let sing = &x * x.transpose();
    let mut full = sing.clone();
    for i in 0..d {
        full[(i, i)] += 1.0;
    }
    for (name, par) in [("seq", Par::Seq), ("rayon2", Par::rayon(2))] {
        faer::set_global_parallelism(par);
        timed(&format!("{name} llt"), || full.llt(Side::Lower).unwrap());
        timed(&format!("{name} eigen+vectors"), || {
            sing.self_adjoint_eigen(Side::Lower).unwrap()
        });
        timed(&format!("{name} eigenvalues"), || {
            sing.self_adjoint_eigenvalues(Side::Lower).unwrap()
        });
        let mut out = Mat::<f64>::zeros(d, d);
        timed(&format!("{name} gemm d^3"), || {
            matmul(out.as_mut(), Accum::Replace, &sing, &full, 1.0, par)
        });
        let batch = Mat::from_fn(1000, d, |i, j| x[(j, i % r)] + i as f64 * 1e-3);
        let mut acc = Mat::<f64>::zeros(d, d);
        timed(&format!("{name} full rank-1000 update"), || {
            matmul(
                acc.as_mut(),
                Accum::Add,
                batch.transpose(),
                &batch,
                1.0,
                par,
            )
        });
        timed(&format!("{name} triangular rank-1000 update"), || {
            triangular::matmul(
                acc.as_mut(),
                BlockStructure::TriangularLower,
                Accum::Add,
                batch.transpose(),
                BlockStructure::Rectangular,
                &batch,
                BlockStructure::Rectangular,
                1.0,
                par,
            )
        });
        let bt = batch.transpose().to_owned();
        timed(
            &format!("{name} full rank-1000 update (col-major lhs)"),
            || matmul(acc.as_mut(), Accum::Add, &bt, bt.transpose(), 1.0, par),
        );
        let small = Mat::from_fn(r, r, |i, j| sing[(i, j)]);
        timed(&format!("{name} svd values r"), || {
            small.singular_values().unwrap()
        });
        timed(&format!("{name} svd values d"), || {
            sing.singular_values().unwrap()
        });
    }
}
