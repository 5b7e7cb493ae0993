//! Fuzzes the Rust entry point every input goes through: bytes → RGB8 → network input, in every mode.
//! Run: `cargo fuzz run decode_preprocess -s none` from the repository root (see fuzz/README.md).
#![no_main]

use _fidrs::decode::{decode_bytes, DecodeOptions};
use _fidrs::preprocess::{preprocess_into, Mode, IMAGE_LEN};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // A small pixel limit keeps each run fast; the limit check itself is part of what is fuzzed.
    let options = DecodeOptions { max_pixels: 1 << 20 };
    match decode_bytes(data, &options) {
        Ok(decoded) => {
            let image = &decoded.image;
            assert_eq!(image.pixels.len(), image.width * image.height * 3);
            let mode = match data.len() % 4 {
                0 => Mode::PytorchFid,
                1 => Mode::Clean,
                2 => Mode::Tf1,
                _ => Mode::Pad { fill: [255, 255, 255] },
            };
            let mut out = vec![0f32; IMAGE_LEN];
            preprocess_into(image, mode, &mut out);
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
