//! Fuzzes the Rust entry point every input goes through: bytes → RGB8 → network input, with every resize
//! kernel and fit.
//! Run: `cargo fuzz run decode_preprocess -s none` from the repository root (see fuzz/README.md).
#![no_main]

use _fidrs::decode::{decode_bytes, DecodeOptions};
use _fidrs::preprocess::{preprocess_into, Fit, Preprocessing, Resize, Unit};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // A small pixel limit keeps each run fast; the limit check itself is part of what is fuzzed.
    let options = DecodeOptions { max_pixels: 1 << 20 };
    match decode_bytes(data, &options) {
        Ok(decoded) => {
            let image = &decoded.image;
            assert_eq!(image.pixels.len(), image.width * image.height * 3);
            let resize = [
                Resize::TorchBilinear,
                Resize::Tf1Bilinear,
                Resize::PilBicubicFloat,
                Resize::PilBicubicU8,
            ][data.len() % 4];
            let fit = [Fit::Stretch, Fit::Pad { fill: [255, 0, 0] }, Fit::CenterCrop][data.len() / 4 % 3];
            // Clamped 0..255 → (v − 127.5)/127.5 stays within [−1, 1] whatever the resampler overshoots.
            let p = Preprocessing::new(67, resize, fit, Unit::Never, true, [127.5; 3], [127.5; 3])
                .expect("valid preprocessing");
            let mut out = vec![0f32; p.image_len()];
            preprocess_into(image, &p, &mut out);
            assert!(out.iter().all(|v| v.is_finite() && (-1.0001..=1.0001).contains(v)));
        }
        Err(reason) => {
            // libjpeg reports corrupt JPEGs by unwinding (caught, by design); any other decoder panicking
            // is a bug in that decoder that the guard is hiding: report it.
            let is_jpeg = data.starts_with(&[0xFF, 0xD8, 0xFF]);
            assert!(is_jpeg || !reason.contains("decoder failed"), "decoder panicked: {reason}");
        }
    }
});
