//! Times the streaming moments on 20,000 × 2048 rows (used to tune the rank-k update).
use _fidrs::stats::Moments;
use faer::Par;
use std::time::Instant;

fn main() {
    let (n, d) = (20_000, 2048);
    let data: Vec<f32> = (0..n * d)
        .map(|i| ((i * 2654435761usize) % 1000) as f32 / 1000.0)
        .collect();
    for (name, par) in [("seq", Par::Seq), ("rayon2", Par::rayon(2))] {
        let mut m = Moments::with_parallelism(d, par);
        let t = Instant::now();
        for chunk in data.chunks(50 * d) {
            m.update(chunk, chunk.len() / d).unwrap();
        }
        m.flush();
        println!("{name}: {:.2} s", t.elapsed().as_secs_f64());
    }
}
