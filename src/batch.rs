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
    /// (index, reason) of each file that could not be read or decoded.
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

/// Decode each encoded image once and preprocess it for every one of `preprocessings` (several networks fed
/// from one decode: `fidrs stats --backbone inception --backbone dinov2`). `outs[k]` has room for every item
/// at preprocessing k's size; each output keeps the same images, the files that worked, at its front in input
/// order. Each image is preprocessed by `preprocess_into` exactly as `load_batch_encoded` does, so every output
/// equals that of `load_batch_encoded` with its preprocessing alone.
pub fn load_batch_encoded_many(
    blobs: &[Vec<u8>],
    preprocessings: &[Preprocessing],
    options: &DecodeOptions,
    cancel: &Cancel,
    outs: &mut [Vec<f32>],
) -> Batch {
    assert_eq!(
        preprocessings.len(),
        outs.len(),
        "one output per preprocessing"
    );
    let lens: Vec<usize> = preprocessings
        .iter()
        .map(Preprocessing::image_len)
        .collect();
    // Per image, its slot in every output (outputs split into image-sized chunks, then transposed).
    let mut slots: Vec<Vec<&mut [f32]>> = (0..blobs.len())
        .map(|_| Vec::with_capacity(outs.len()))
        .collect();
    for (out, &len) in outs.iter_mut().zip(&lens) {
        for (slot, chunk) in slots
            .iter_mut()
            .zip(out[..blobs.len() * len].chunks_mut(len))
        {
            slot.push(chunk);
        }
    }
    let results: Vec<Result<u64, String>> = slots
        .into_par_iter()
        .zip(blobs.par_iter())
        .map(|(mut slot, bytes)| {
            if cancel.is_cancelled() {
                return Err(CANCELLED.to_string());
            }
            decode_bytes(bytes, options).map(|decoded| {
                for (out, p) in slot.iter_mut().zip(preprocessings) {
                    preprocess_into(decoded.image.view(), p, out);
                }
                decoded.image.width as u64 * decoded.image.height as u64
            })
        })
        .collect();
    let batch = compact_order(&results);
    for (out, &len) in outs.iter_mut().zip(&lens) {
        move_to_front(&mut out[..blobs.len() * len], len, &batch.ok);
    }
    batch
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
    let batch = compact_order(&results);
    move_to_front(data, len, &batch.ok);
    batch
}

/// Which items worked (in order, with their pixel counts) and why the others failed.
fn compact_order(results: &[Result<u64, String>]) -> Batch {
    let mut ok = Vec::with_capacity(results.len());
    let mut pixels = Vec::with_capacity(results.len());
    let mut failures = Vec::new();
    for (index, result) in results.iter().enumerate() {
        match result {
            Ok(count) => {
                pixels.push(*count);
                ok.push(index);
            }
            Err(reason) => failures.push((index, reason.clone())),
        }
    }
    Batch {
        ok,
        failures,
        pixels,
    }
}

/// Move image `ok[k]` (`len` floats each) of `data` to position k, for every k: `ok` is increasing, so each
/// move goes to a slot at or before its source and never overwrites an image still to be moved.
fn move_to_front(data: &mut [f32], len: usize, ok: &[usize]) {
    for (slot, &index) in ok.iter().enumerate() {
        if slot != index {
            data.copy_within(index * len..(index + 1) * len, slot * len);
        }
    }
}
