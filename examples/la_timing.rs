//! Times faer's dense building blocks at d = 2048 (used to choose the Fréchet algorithm).
use faer::{linalg::matmul::matmul, Accum, Mat, Par, Side};
use std::time::Instant;

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
        let t = Instant::now();
        let _ = full.llt(Side::Lower).unwrap();
        println!("{name} llt {:.3}", t.elapsed().as_secs_f64());
        let t = Instant::now();
        let _ = sing.self_adjoint_eigen(Side::Lower).unwrap();
        println!("{name} eigen+vectors {:.3}", t.elapsed().as_secs_f64());
        let t = Instant::now();
        let _ = sing.self_adjoint_eigenvalues(Side::Lower).unwrap();
        println!("{name} eigenvalues {:.3}", t.elapsed().as_secs_f64());
        let mut out = Mat::<f64>::zeros(d, d);
        let t = Instant::now();
        matmul(
            out.as_mut(),
            Accum::Replace,
            sing.as_ref(),
            full.as_ref(),
            1.0,
            par,
        );
        println!("{name} gemm d^3 {:.3}", t.elapsed().as_secs_f64());
        let batch = Mat::from_fn(1000, d, |i, j| x[(j, i % r)] + i as f64 * 1e-3);
        let mut acc = Mat::<f64>::zeros(d, d);
        let t = Instant::now();
        matmul(
            acc.as_mut(),
            Accum::Add,
            batch.transpose(),
            batch.as_ref(),
            1.0,
            par,
        );
        println!(
            "{name} full rank-1000 update {:.3}",
            t.elapsed().as_secs_f64()
        );
        let t = Instant::now();
        faer::linalg::matmul::triangular::matmul(
            acc.as_mut(),
            faer::linalg::matmul::triangular::BlockStructure::TriangularLower,
            Accum::Add,
            batch.transpose(),
            faer::linalg::matmul::triangular::BlockStructure::Rectangular,
            batch.as_ref(),
            faer::linalg::matmul::triangular::BlockStructure::Rectangular,
            1.0,
            par,
        );
        println!(
            "{name} triangular rank-1000 update {:.3}",
            t.elapsed().as_secs_f64()
        );
        let bt = batch.transpose().to_owned();
        let t = Instant::now();
        matmul(
            acc.as_mut(),
            Accum::Add,
            bt.as_ref(),
            bt.transpose(),
            1.0,
            par,
        );
        println!(
            "{name} full rank-1000 update (col-major lhs) {:.3}",
            t.elapsed().as_secs_f64()
        );
        let small = Mat::from_fn(r, r, |i, j| sing[(i, j)]);
        let t = Instant::now();
        let _ = small.singular_values().unwrap();
        println!("{name} svd values r {:.3}", t.elapsed().as_secs_f64());
        let t = Instant::now();
        let _ = sing.singular_values().unwrap();
        println!("{name} svd values d {:.3}", t.elapsed().as_secs_f64());
    }
}
