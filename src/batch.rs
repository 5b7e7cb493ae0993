//! Decode and preprocess many files in parallel (rayon), keeping per-file failures instead of aborting.

use std::path::PathBuf;

use rayon::prelude::*;

use crate::cancel::{Cancel, CANCELLED};
use crate::decode::{decode_bytes, decode_file, DecodeOptions, Decoded};
use crate::image::Rgb8Image;
use crate::preprocess::{preprocess_into, Preprocessing};

pub struct Batch {
    /// `ok.len() × 3 × size × size` network inputs, in input order of the files that worked.
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
    preprocessing: &Preprocessing,
    options: &DecodeOptions,
    cancel: &Cancel,
) -> Batch {
    load_with(paths, preprocessing, cancel, |path| decode_file(path, options))
}

/// Like `load_batch`, for encoded images already in memory (zip archive members, network payloads).
pub fn load_batch_encoded(
    blobs: &[Vec<u8>],
    preprocessing: &Preprocessing,
    options: &DecodeOptions,
    cancel: &Cancel,
) -> Batch {
    load_with(blobs, preprocessing, cancel, |bytes| decode_bytes(bytes, options))
}

/// Once `cancel` is set, the items not yet started fail with `CANCELLED` (the caller raises, not reports).
fn load_with<T: Sync>(
    items: &[T],
    preprocessing: &Preprocessing,
    cancel: &Cancel,
    decode: impl Fn(&T) -> Result<Decoded, String> + Sync,
) -> Batch {
    let len = preprocessing.image_len();
    let mut data = vec![0f32; items.len() * len];
    let results: Vec<Result<u64, String>> = data
        .par_chunks_mut(len)
        .zip(items.par_iter())
        .map(|(out, item)| {
            if cancel.is_cancelled() {
                return Err(CANCELLED.to_string());
            }
            // The decoded image keeps its memory reservation until it has been preprocessed.
            decode(item).map(|decoded| {
                preprocess_into(&decoded.image, preprocessing, out);
                decoded.image.width as u64 * decoded.image.height as u64
            })
        })
        .collect();
    compact(data, len, results)
}

pub fn preprocess_batch(images: &[Rgb8Image], preprocessing: &Preprocessing) -> Vec<f32> {
    let len = preprocessing.image_len();
    let mut data = vec![0f32; images.len() * len];
    data.par_chunks_mut(len)
        .zip(images.par_iter())
        .for_each(|(out, image)| preprocess_into(image, preprocessing, out));
    data
}

/// Drop the slots of failed files, keeping order.
fn compact(mut data: Vec<f32>, len: usize, results: Vec<Result<u64, String>>) -> Batch {
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
    data.truncate(ok.len() * len);
    Batch {
        data,
        ok,
        failures,
        pixels,
    }
}
