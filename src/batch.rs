//! Decode and preprocess many files in parallel (rayon), keeping per-file failures instead of aborting.

use std::path::PathBuf;

use rayon::prelude::*;

use crate::cancel::{Cancel, CANCELLED};
use crate::decode::{decode_bytes, decode_file, DecodeOptions, Decoded};
use crate::image::Rgb8View;
use crate::preprocess::{preprocess_into, Preprocessing};

/// What became of a batch whose network inputs were written to the caller's buffer: the first `ok.len()`
/// images of it (`3 × size × size` floats each) are the files that worked, in input order.
pub struct Batch {
    /// Indices (into the input list) of the files in `data`.
    pub ok: Vec<usize>,
    /// (index, reason) of each file that could not be decoded.
    pub failures: Vec<(usize, String)>,
    /// Width × height of each image in `data` (what the pixel limit was checked against).
    pub pixels: Vec<u64>,
}

pub fn load_batch(
    paths: &[PathBuf],
    preprocessing: &Preprocessing,
    options: &DecodeOptions,
    cancel: &Cancel,
    out: &mut [f32],
) -> Batch {
    load_with(paths, preprocessing, cancel, out, |path| {
        decode_file(path, options)
    })
}

/// Like `load_batch`, for encoded images already in memory (zip archive members, network payloads).
pub fn load_batch_encoded(
    blobs: &[Vec<u8>],
    preprocessing: &Preprocessing,
    options: &DecodeOptions,
    cancel: &Cancel,
    out: &mut [f32],
) -> Batch {
    load_with(blobs, preprocessing, cancel, out, |bytes| {
        decode_bytes(bytes, options)
    })
}

/// `out`: room for every item (`items.len() × image_len()` floats). Once `cancel` is set, the items not yet
/// started fail with `CANCELLED` (the caller raises, not reports).
fn load_with<T: Sync>(
    items: &[T],
    preprocessing: &Preprocessing,
    cancel: &Cancel,
    out: &mut [f32],
    decode: impl Fn(&T) -> Result<Decoded, String> + Sync,
) -> Batch {
    let len = preprocessing.image_len();
    let data = &mut out[..items.len() * len];
    let results: Vec<Result<u64, String>> = data
        .par_chunks_mut(len)
        .zip(items.par_iter())
        .map(|(out, item)| {
            if cancel.is_cancelled() {
                return Err(CANCELLED.to_string());
            }
            // The decoded image keeps its memory reservation until it has been preprocessed.
            decode(item).map(|decoded| {
                preprocess_into(decoded.image.view(), preprocessing, out);
                decoded.image.width as u64 * decoded.image.height as u64
            })
        })
        .collect();
    compact(data, len, results)
}

/// Preprocess `pixels`, N images of `width × height` RGB8 laid end to end, into the first N images of `out`.
pub fn preprocess_batch(
    pixels: &[u8],
    width: usize,
    height: usize,
    preprocessing: &Preprocessing,
    out: &mut [f32],
) {
    let len = preprocessing.image_len();
    out.par_chunks_mut(len)
        .zip(pixels.par_chunks_exact(width * height * 3))
        .for_each(|(out, image)| {
            preprocess_into(Rgb8View::new(width, height, image), preprocessing, out)
        });
}

/// Move the images of the files that worked to the front of `data`, keeping order.
fn compact(data: &mut [f32], len: usize, results: Vec<Result<u64, String>>) -> Batch {
    let mut ok = Vec::with_capacity(results.len());
    let mut pixels = Vec::with_capacity(results.len());
    let mut failures = Vec::new();
    for (index, result) in results.into_iter().enumerate() {
        match result {
            Ok(count) => {
                pixels.push(count);
                let slot = ok.len();
                if slot != index {
                    data.copy_within(index * len..(index + 1) * len, slot * len);
                }
                ok.push(index);
            }
            Err(reason) => failures.push((index, reason)),
        }
    }
    Batch {
        ok,
        failures,
        pixels,
    }
}
