//! Reading and decoding image files (and encoded bytes) into network inputs or RGB8 pixels.

use std::path::PathBuf;

use numpy::{IntoPyArray, PyArray3, PyArray4, PyArrayMethods, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PySlice, PyString};
use rayon::prelude::*;

use super::errors::guard;
use super::preprocess::PyPreprocessing;
use super::without_gil;
use crate::batch::{load_batch, load_batch_encoded, load_batch_encoded_many, Batch};
use crate::cancel::Cancel;
use crate::decode::{decode_file, read_regular, DecodeOptions};
use crate::error::FidrsError;
use crate::preprocess::Preprocessing;

type BatchTuple<'py> = (
    Bound<'py, PyArray4<f32>>,
    Vec<usize>,
    Vec<(usize, String)>,
    Vec<u64>,
);

/// Where `n` network inputs of `size²` go: a new array, or the caller's `out` (N ≥ n, 3, size, size; float32,
/// C-contiguous), reused from batch to batch so that its pages are written, not faulted in, each time.
/// `fill` writes them and says how many it kept at the front; the result is that many, a view of `out`.
pub fn into_output<'py, R>(
    py: Python<'py>,
    out: Option<Bound<'py, PyArray4<f32>>>,
    n: usize,
    size: usize,
    fill: impl FnOnce(&mut [f32]) -> PyResult<(usize, R)>,
) -> PyResult<(Bound<'py, PyArray4<f32>>, R)> {
    let len = 3 * size * size;
    let Some(out) = out else {
        let mut data = vec![0f32; n * len];
        let (kept, extra) = fill(&mut data)?;
        data.truncate(kept * len);
        return Ok((data.into_pyarray(py).reshape([kept, 3, size, size])?, extra));
    };
    let shape = out.shape().to_vec();
    if shape[0] < n || shape[1..] != [3, size, size] || !out.is_c_contiguous() {
        return Err(FidrsError::InvalidInput(format!(
            "out must be a C-contiguous float32 array of shape (≥{n}, 3, {size}, {size}), got {shape:?}"
        ))
        .into());
    }
    let kept = {
        let mut writable = out
            .try_readwrite()
            .map_err(|e| FidrsError::InvalidInput(format!("out cannot be written: {e}")))?;
        let data = writable
            .as_slice_mut()
            .map_err(|e| FidrsError::InvalidInput(format!("out is not contiguous: {e}")))?;
        fill(&mut data[..n * len])?
    };
    let view = out.get_item(PySlice::new(py, 0, kept.0 as isize, 1))?;
    Ok((view.downcast_into::<PyArray4<f32>>()?, kept.1))
}

/// The shared body of the decode bindings: parse the options, run `load` without the GIL into the output.
fn decode_batch<'py>(
    py: Python<'py>,
    preprocessing: &PyPreprocessing,
    max_pixels: u64,
    n: usize,
    out: Option<Bound<'py, PyArray4<f32>>>,
    load: impl FnOnce(&Preprocessing, &DecodeOptions, &Cancel, &mut [f32]) -> Batch + Send,
) -> PyResult<BatchTuple<'py>> {
    let p = preprocessing.inner;
    let options = DecodeOptions { max_pixels };
    let (array, batch) = into_output(py, out, n, p.size, |data| {
        let batch = without_gil(py, |cancel| load(&p, &options, cancel, data))?;
        Ok((batch.ok.len(), batch))
    })?;
    Ok((array, batch.ok, batch.failures, batch.pixels))
}

/// Decode and preprocess files: (inputs N×3×size×size of the good files, their indices, [(index, reason)],
/// width × height of each good image). With `out`, the inputs are written there and returned as a view of it.
#[pyfunction]
#[pyo3(signature = (paths, preprocessing, max_pixels=crate::decode::DEFAULT_MAX_PIXELS, out=None))]
pub fn load_images<'py>(
    py: Python<'py>,
    paths: Vec<PathBuf>,
    preprocessing: &PyPreprocessing,
    max_pixels: u64,
    out: Option<Bound<'py, PyArray4<f32>>>,
) -> PyResult<BatchTuple<'py>> {
    guard(|| {
        decode_batch(
            py,
            preprocessing,
            max_pixels,
            paths.len(),
            out,
            |p, options, cancel, data| load_batch(&paths, p, options, cancel, data),
        )
    })
}

/// Like `load_images`, for encoded image files given as bytes (e.g. members of a zip archive).
#[pyfunction]
#[pyo3(signature = (blobs, preprocessing, max_pixels=crate::decode::DEFAULT_MAX_PIXELS, out=None))]
pub fn load_encoded<'py>(
    py: Python<'py>,
    blobs: Vec<Vec<u8>>,
    preprocessing: &PyPreprocessing,
    max_pixels: u64,
    out: Option<Bound<'py, PyArray4<f32>>>,
) -> PyResult<BatchTuple<'py>> {
    guard(|| {
        decode_batch(
            py,
            preprocessing,
            max_pixels,
            blobs.len(),
            out,
            |p, options, cancel, data| load_batch_encoded(&blobs, p, options, cancel, data),
        )
    })
}

/// Like `load_encoded` for several preprocessings at once: each image is decoded once and preprocessed for
/// every one of them (several networks fed from one decode). Returns ([inputs of each preprocessing, the same
/// images in the same order], indices of the good files, [(index, reason)], width × height of each good image).
#[pyfunction]
#[pyo3(signature = (blobs, preprocessings, max_pixels=crate::decode::DEFAULT_MAX_PIXELS))]
#[allow(clippy::type_complexity)]
pub fn load_encoded_many<'py>(
    py: Python<'py>,
    blobs: Vec<Vec<u8>>,
    preprocessings: Vec<PyRef<'py, PyPreprocessing>>,
    max_pixels: u64,
) -> PyResult<(
    Vec<Bound<'py, PyArray4<f32>>>,
    Vec<usize>,
    Vec<(usize, String)>,
    Vec<u64>,
)> {
    guard(|| {
        let preprocessings: Vec<Preprocessing> = preprocessings.iter().map(|p| p.inner).collect();
        if preprocessings.is_empty() {
            return Err(FidrsError::InvalidInput(
                "load_encoded_many needs at least one preprocessing".into(),
            )
            .into());
        }
        let options = DecodeOptions { max_pixels };
        let n = blobs.len();
        let mut outs: Vec<Vec<f32>> = preprocessings
            .iter()
            .map(|p| vec![0f32; n * p.image_len()])
            .collect();
        let batch = without_gil(py, |cancel| {
            load_batch_encoded_many(&blobs, &preprocessings, &options, cancel, &mut outs)
        })?;
        let kept = batch.ok.len();
        let arrays = outs
            .into_iter()
            .zip(&preprocessings)
            .map(|(mut data, p)| {
                data.truncate(kept * p.image_len());
                data.into_pyarray(py).reshape([kept, 3, p.size, p.size])
            })
            .collect::<PyResult<Vec<_>>>()?;
        Ok((arrays, batch.ok, batch.failures, batch.pixels))
    })
}

/// The bytes of each file, or the reason it cannot be an image (not a regular file, over the size limit that
/// `max_pixels` implies, unreadable), read in parallel without the GIL.
#[pyfunction]
#[pyo3(signature = (paths, max_pixels=crate::decode::DEFAULT_MAX_PIXELS))]
pub fn read_files(py: Python<'_>, paths: Vec<PathBuf>, max_pixels: u64) -> PyResult<Vec<PyObject>> {
    guard(|| {
        let cap = DecodeOptions { max_pixels }.max_file_bytes();
        let results = without_gil(py, |cancel| {
            paths
                .par_iter()
                .map(|path| {
                    if cancel.is_cancelled() {
                        return Err(crate::cancel::CANCELLED.to_string());
                    }
                    read_regular(path, cap)
                })
                .collect::<Vec<_>>()
        })?;
        Ok(results
            .into_iter()
            .map(|r| match r {
                Ok(bytes) => PyBytes::new(py, &bytes).into_any().unbind(),
                Err(reason) => PyString::new(py, &reason).into_any().unbind(),
            })
            .collect())
    })
}

/// The largest image file (or zip member) accepted under `max_pixels`.
#[pyfunction]
#[pyo3(signature = (max_pixels=crate::decode::DEFAULT_MAX_PIXELS))]
pub fn max_file_bytes(max_pixels: u64) -> PyResult<u64> {
    guard(|| Ok(DecodeOptions { max_pixels }.max_file_bytes()))
}

/// One file's RGB8 pixels (H×W×3), as `np.asarray(Image.open(p).convert("RGB"))`.
#[pyfunction]
#[pyo3(signature = (path, max_pixels=crate::decode::DEFAULT_MAX_PIXELS))]
pub fn decode_image(
    py: Python<'_>,
    path: PathBuf,
    max_pixels: u64,
) -> PyResult<Bound<'_, PyArray3<u8>>> {
    guard(|| {
        let decoded = without_gil(py, |_| decode_file(&path, &DecodeOptions { max_pixels }))?
            .map_err(|reason| FidrsError::Decode {
                path: path.clone(),
                reason,
            })?;
        let image = decoded.image;
        image
            .pixels
            .into_pyarray(py)
            .reshape([image.height, image.width, 3])
    })
}

/// Add the decoding functions and their defaults to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(load_images, m)?)?;
    m.add_function(wrap_pyfunction!(load_encoded, m)?)?;
    m.add_function(wrap_pyfunction!(load_encoded_many, m)?)?;
    m.add_function(wrap_pyfunction!(decode_image, m)?)?;
    m.add_function(wrap_pyfunction!(read_files, m)?)?;
    m.add_function(wrap_pyfunction!(max_file_bytes, m)?)?;
    m.add("DEFAULT_MAX_PIXELS", crate::decode::DEFAULT_MAX_PIXELS)?;
    // Whether libjpeg-turbo's SIMD code is in this build, as mozjpeg-sys configured it: "yes (how)" or "no"
    // (build.rs refuses "no" unless FIDRS_ALLOW_SCALAR_JPEG=1).
    m.add("JPEG_SIMD", env!("FIDRS_JPEG_SIMD"))?;
    Ok(())
}
