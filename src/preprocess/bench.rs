//! Which build of the kernels is fastest, per mode and image size: the decision behind each `dispatch!`'s
//! `avx512:` flag. The builds run interleaved in one thread (baseline, AVX2, AVX-512, baseline, …) on the same
//! pixels, and each figure is the *minimum* thread CPU time of its rounds: other work on a shared machine only
//! ever adds time, so the minimum is the least disturbed estimate, and interleaving exposes every build to the
//! same disturbances. Run: `cargo test --release --lib preprocess::bench -- --ignored --nocapture`.

use super::simd::{self, Build};
use super::{preprocess_into, Fit, Preprocessing, Resize, Unit};
use crate::image::Rgb8Image;

fn thread_cpu_seconds() -> f64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid clock id and a valid out-pointer.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    assert_eq!(rc, 0);
    t.tv_sec as f64 + t.tv_nsec as f64 * 1e-9
}

/// A photo-like image: smooth gradients plus noise (deterministic).
fn image(width: usize, height: usize) -> Rgb8Image {
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let pixels = (0..width * height * 3)
        .map(|i| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let (x, y) = (i / 3 % width, i / 3 / width);
            let smooth = ((x as f64 / 9.0).sin() + (y as f64 / 13.0).cos()) * 60.0 + 128.0;
            (smooth + (state % 25) as f64 - 12.0).clamp(0.0, 255.0) as u8
        })
        .collect();
    Rgb8Image::new(width, height, pixels)
}

fn modes() -> Vec<(&'static str, Preprocessing)> {
    let imagenet = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]);
    let clip = (
        [0.481_454_66, 0.457_827_5, 0.408_210_73],
        [0.268_629_54, 0.261_302_6, 0.275_777_1],
    );
    let p = |size, resize, fit, unit, clamp, (mean, std): ([f32; 3], [f32; 3])| {
        Preprocessing::new(size, resize, fit, unit, clamp, mean, std).unwrap()
    };
    let half = ([0.5; 3], [0.5; 3]);
    let c128 = ([128.0; 3], [128.0; 3]);
    vec![
        (
            "pytorch-fid",
            p(
                299,
                Resize::TorchBilinear,
                Fit::Stretch,
                Unit::BeforeResize,
                false,
                half,
            ),
        ),
        (
            "clean",
            p(
                299,
                Resize::PilBicubicFloat,
                Fit::Stretch,
                Unit::Never,
                true,
                c128,
            ),
        ),
        (
            "tf1",
            p(
                299,
                Resize::Tf1Bilinear,
                Fit::Stretch,
                Unit::Never,
                false,
                c128,
            ),
        ),
        (
            "dgm-eval",
            p(
                224,
                Resize::PilBicubicU8,
                Fit::Stretch,
                Unit::AfterResize,
                false,
                imagenet,
            ),
        ),
        (
            "edm2",
            p(
                224,
                Resize::TorchBicubicAntialias,
                Fit::Stretch,
                Unit::AfterResize,
                false,
                imagenet,
            ),
        ),
        (
            "clip-fid",
            p(
                224,
                Resize::PilBicubicU8,
                Fit::CenterCrop,
                Unit::AfterResize,
                false,
                clip,
            ),
        ),
        (
            "cmmd",
            p(
                336,
                Resize::PilBicubicU8,
                Fit::SquareCrop,
                Unit::AfterResize,
                false,
                clip,
            ),
        ),
    ]
}

#[test]
#[ignore = "a benchmark: run it on purpose, see the module docs"]
fn kernel_builds() {
    let builds: Vec<Build> = Build::ALL
        .into_iter()
        .filter(|b| *b <= simd::supported())
        .collect();
    let rounds: usize = std::env::var("FIDRS_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(15);
    println!(
        "min thread CPU time of {rounds} interleaved rounds; images/s per core; builds {builds:?}"
    );
    print!("| image | mode |");
    for b in &builds {
        print!(" {b:?} |");
    }
    for b in &builds[1..] {
        print!(" {b:?} / {:?} |", builds[0]);
    }
    println!();
    println!("|---|---|{}", "---|".repeat(2 * builds.len() - 1));
    for (w, h) in [(100, 100), (256, 256), (1024, 768)] {
        let img = image(w, h);
        // About 50 ms of work per round and build, whatever the image size.
        let per_round = (5_000_000 / (w * h)).max(2);
        for (name, p) in modes() {
            let mut out = vec![0f32; p.image_len()];
            let mut best = vec![f64::INFINITY; builds.len()];
            for _ in 0..rounds {
                for (i, &b) in builds.iter().enumerate() {
                    simd::tests::CAP.with(|c| c.set(Some(b)));
                    preprocess_into(img.view(), &p, &mut out); // warm: taps, buffers
                    let start = thread_cpu_seconds();
                    for _ in 0..per_round {
                        preprocess_into(img.view(), &p, &mut out);
                    }
                    best[i] = best[i].min((thread_cpu_seconds() - start) / per_round as f64);
                }
            }
            simd::tests::CAP.with(|c| c.set(None));
            print!("| {w}×{h} | {name} |");
            for t in &best {
                print!(" {:.0} |", 1.0 / t);
            }
            for t in &best[1..] {
                print!(" {:.2}× |", best[0] / t);
            }
            println!();
        }
    }
}

/// One mode on one image size, `FIDRS_PROFILE=mode:WxH:count`, in the build `FIDRS_KERNELS` allows: the
/// workload to run under `valgrind --tool=callgrind` (which runs the AVX2 build at most: it has no AVX-512).
#[test]
#[ignore = "a profiling workload: run it on purpose, see kernel_builds"]
fn profile() {
    let spec = std::env::var("FIDRS_PROFILE").unwrap_or_else(|_| "dgm-eval:256x256:20".into());
    let [mode, size, count]: [&str; 3] = spec
        .split(':')
        .collect::<Vec<_>>()
        .try_into()
        .expect("mode:WxH:count");
    let (w, h) = size.split_once('x').expect("WxH");
    let img = image(w.parse().unwrap(), h.parse().unwrap());
    let (_, p) = modes()
        .into_iter()
        .find(|(name, _)| *name == mode)
        .expect("a mode of modes()");
    let mut out = vec![0f32; p.image_len()];
    for _ in 0..count.parse::<usize>().unwrap() {
        preprocess_into(img.view(), &p, &mut out);
    }
    println!("{spec} on {:?}: out[0] = {}", simd::current(), out[0]);
}
