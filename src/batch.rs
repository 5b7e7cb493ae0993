//! Decode and preprocess many files in parallel (rayon), keeping per-file failures instead of aborting.

use std::path::PathBuf;

use rayon::prelude::*;

use crate::cancel::{Cancel, CANCELLED};
use crate::decode::{decode_bytes, decode_file, DecodeOptions, Decoded};
use crate::image::Rgb8Image;
use crate::preprocess::{preprocess_into, Mode, IMAGE_LEN};

pub struct Batch {
    /// `ok.len() × 3 × 299 × 299` network inputs, in input order of the files that worked.
    pub data: Vec<f32>,
    /// Indices (into the input list) of the files in `data`.
    pub ok: Vec<usize>,
    /// (index, reason) of each file that could not be decoded.
    pub failures: Vec<(usize, String)>,
    /// Width × height of each image in `data` (what the pixel limit was checked against).
    pub pixels: Vec<u64>,
}

pub fn load_batch(
    paths: &[PathBuf],
    mode: Mode,
    options: &DecodeOptions,
    cancel: &Cancel,
) -> Batch {
    load_with(paths, mode, cancel, |path| decode_file(path, options))
}

/// Like `load_batch`, for encoded images already in memory (zip archive members, network payloads).
pub fn load_batch_encoded(
    blobs: &[Vec<u8>],
    mode: Mode,
    options: &DecodeOptions,
    cancel: &Cancel,
) -> Batch {
    load_with(blobs, mode, cancel, |bytes| decode_bytes(bytes, options))
}

/// Once `cancel` is set, the items not yet started fail with `CANCELLED` (the caller raises, not reports).
fn load_with<T: Sync>(
    items: &[T],
    mode: Mode,
    cancel: &Cancel,
    decode: impl Fn(&T) -> Result<Decoded, String> + Sync,
) -> Batch {
    let mut data = vec![0f32; items.len() * IMAGE_LEN];
    let results: Vec<Result<u64, String>> = data
        .par_chunks_mut(IMAGE_LEN)
        .zip(items.par_iter())
        .map(|(out, item)| {
            if cancel.is_cancelled() {
                return Err(CANCELLED.to_string());
            }
            // The decoded image keeps its memory reservation until it has been preprocessed.
            decode(item).map(|decoded| {
                preprocess_into(&decoded.image, mode, out);
                decoded.image.width as u64 * decoded.image.height as u64
            })
        })
        .collect();
    compact(data, results)
}

pub fn preprocess_batch(images: &[Rgb8Image], mode: Mode) -> Vec<f32> {
    let mut data = vec![0f32; images.len() * IMAGE_LEN];
    data.par_chunks_mut(IMAGE_LEN)
        .zip(images.par_iter())
        .for_each(|(out, image)| preprocess_into(image, mode, out));
    data
}

/// Drop the slots of failed files, keeping order.
fn compact(mut data: Vec<f32>, results: Vec<Result<u64, String>>) -> Batch {
    let mut ok = Vec::with_capacity(results.len());
    let mut pixels = Vec::with_capacity(results.len());
    let mut failures = Vec::new();
    for (index, result) in results.into_iter().enumerate() {
        match result {
            Ok(count) => {
                pixels.push(count);
                let slot = ok.len();
                if slot != index {
                    data.copy_within(index * IMAGE_LEN..(index + 1) * IMAGE_LEN, slot * IMAGE_LEN);
                }
                ok.push(index);
            }
            Err(reason) => failures.push((index, reason)),
        }
    }
    data.truncate(ok.len() * IMAGE_LEN);
    Batch {
        data,
        ok,
        failures,
        pixels,
    }
}
