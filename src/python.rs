//! PyO3 bindings: the native module `fidrs._fidrs`. Array views in, `into_pyarray` out;
//! every heavy call releases the GIL through `without_gil`.

use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

use faer::{MatRef, Par};
use numpy::{
    IntoPyArray, PyArray1, PyArray2, PyArray3, PyArray4, PyArrayMethods, PyReadonlyArray1,
    PyReadonlyArray2, PyReadonlyArray4, PyUntypedArrayMethods,
};
use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::GILOnceCell;
use pyo3::types::{PyBytes, PyDict, PySlice, PyString, PyType};
use rayon::prelude::*;

use crate::batch::{
    load_batch, load_batch_encoded, load_batch_encoded_many, preprocess_batch, Batch,
};
use crate::cancel::Cancel;
use crate::decode::{decode_file, read_regular, DecodeOptions};
use crate::error::FidrsError;
use crate::frechet::{frechet_distance as frechet_core, Method, NewtonSchulzOptions};
use crate::preprocess::{Fit, Preprocessing, Resize, Unit};
use crate::stats::Moments;

create_exception!(
    _fidrs,
    FidrsError_,
    PyException,
    "Base class of every fidrs error."
);
create_exception!(
    _fidrs,
    DecodeError,
    FidrsError_,
    "A file could not be decoded into an image."
);
/// `InvalidInputError(FidrsError, ValueError)`: arguments that cannot work (shape, NaN, n < 2, unknown names).
/// Two bases, so `create_exception!` cannot make it; it is created once, at import, with `type(...)`.
static INVALID_INPUT_ERROR: GILOnceCell<Py<PyType>> = GILOnceCell::new();

fn invalid_input_error(py: Python<'_>) -> PyResult<&Py<PyType>> {
    INVALID_INPUT_ERROR.get_or_try_init(py, || {
        let namespace = PyDict::new(py);
        namespace.set_item("__module__", "fidrs._fidrs")?;
        namespace.set_item(
            "__doc__",
            "Arguments that cannot work (shape, NaN, n < 2, unknown names); also a ValueError.",
        )?;
        let bases = (py.get_type::<FidrsError_>(), py.get_type::<PyValueError>());
        let class = py
            .get_type::<PyType>()
            .call1(("InvalidInputError", bases, namespace))?;
        Ok(class.downcast_into::<PyType>()?.unbind())
    })
}
create_exception!(
    _fidrs,
    NumericalError,
    FidrsError_,
    "A factorisation failed unexpectedly."
);

impl From<FidrsError> for PyErr {
    fn from(error: FidrsError) -> PyErr {
        let message = error.to_string();
        match error {
            FidrsError::Decode { .. } => DecodeError::new_err(message),
            FidrsError::InvalidInput(_) => Python::with_gil(|py| match invalid_input_error(py) {
                Ok(class) => PyErr::from_type(class.bind(py).clone(), message),
                Err(error) => error,
            }),
            FidrsError::Numerical(_) => NumericalError::new_err(message),
        }
    }
}

/// How often a waiting call looks for Ctrl-C.
const SIGNAL_POLL: Duration = Duration::from_millis(50);

/// The one place the GIL is released, and where Ctrl-C is handled: `f` runs on a worker thread while this
/// thread checks for signals every 50 ms. On Ctrl-C (or any signal handler that raises) the work is asked
/// to stop through `Cancel` (decoding loops check it between images), and the handler's exception, such as
/// KeyboardInterrupt, is raised once the worker has returned.
fn without_gil<T: Send>(py: Python<'_>, f: impl FnOnce(&Cancel) -> T + Send) -> PyResult<T> {
    let cancel = Cancel::default();
    let (outcome, interrupted) = py.allow_threads(|| {
        std::thread::scope(|scope| {
            let (done_tx, done_rx) = mpsc::channel::<()>();
            let cancel = &cancel;
            let worker = scope.spawn(move || {
                let result = f(cancel);
                let _ = done_tx.send(());
                result
            });
            let mut interrupted = None;
            while let Err(mpsc::RecvTimeoutError::Timeout) = done_rx.recv_timeout(SIGNAL_POLL) {
                if interrupted.is_none() {
                    if let Err(error) = Python::with_gil(|py| py.check_signals()) {
                        cancel.cancel();
                        interrupted = Some(error);
                    }
                }
            }
            (worker.join(), interrupted)
        })
    });
    if let Some(error) = interrupted {
        return Err(error);
    }
    Ok(outcome.unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
}

/// A preprocessing description (`fidrs._fidrs.Preprocessing`): immutable, built by the backbones' presets.
#[pyclass(name = "Preprocessing", module = "fidrs._fidrs", frozen, eq)]
#[derive(Clone, PartialEq)]
struct PyPreprocessing {
    inner: Preprocessing,
}

#[pymethods]
impl PyPreprocessing {
    #[new]
    #[pyo3(signature = (*, size, resize, fit="stretch", unit="never", clamp=false, mean=[0.0; 3], std=[1.0; 3], fill=[255, 255, 255]))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        size: usize,
        resize: &str,
        fit: &str,
        unit: &str,
        clamp: bool,
        mean: [f32; 3],
        std: [f32; 3],
        fill: [u8; 3],
    ) -> PyResult<Self> {
        let inner = Preprocessing::new(
            size,
            resize.parse::<Resize>()?,
            Fit::parse(fit, fill)?,
            unit.parse::<Unit>()?,
            clamp,
            mean,
            std,
        )?;
        Ok(Self { inner })
    }

    #[getter]
    fn size(&self) -> usize {
        self.inner.size
    }

    fn __repr__(&self) -> String {
        format!("Preprocessing({:?})", self.inner)
    }
}

/// The thread budget for dense linear algebra: rayon's pool (sized by FIDRS_NUM_THREADS), set as faer's
/// global parallelism too so that its decompositions use the same threads.
fn par() -> Par {
    let par = Par::rayon(rayon::current_num_threads());
    faer::set_global_parallelism(par);
    par
}

type BatchTuple<'py> = (
    Bound<'py, PyArray4<f32>>,
    Vec<usize>,
    Vec<(usize, String)>,
    Vec<u64>,
);

/// Where `n` network inputs of `size²` go: a new array, or the caller's `out` (N ≥ n, 3, size, size; float32,
/// C-contiguous), reused from batch to batch so that its pages are written, not faulted in, each time.
/// `fill` writes them and says how many it kept at the front; the result is that many, a view of `out`.
fn into_output<'py, R>(
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
fn load_images<'py>(
    py: Python<'py>,
    paths: Vec<PathBuf>,
    preprocessing: &PyPreprocessing,
    max_pixels: u64,
    out: Option<Bound<'py, PyArray4<f32>>>,
) -> PyResult<BatchTuple<'py>> {
    decode_batch(
        py,
        preprocessing,
        max_pixels,
        paths.len(),
        out,
        |p, options, cancel, data| load_batch(&paths, p, options, cancel, data),
    )
}

/// Like `load_images`, for encoded image files given as bytes (e.g. members of a zip archive).
#[pyfunction]
#[pyo3(signature = (blobs, preprocessing, max_pixels=crate::decode::DEFAULT_MAX_PIXELS, out=None))]
fn load_encoded<'py>(
    py: Python<'py>,
    blobs: Vec<Vec<u8>>,
    preprocessing: &PyPreprocessing,
    max_pixels: u64,
    out: Option<Bound<'py, PyArray4<f32>>>,
) -> PyResult<BatchTuple<'py>> {
    decode_batch(
        py,
        preprocessing,
        max_pixels,
        blobs.len(),
        out,
        |p, options, cancel, data| load_batch_encoded(&blobs, p, options, cancel, data),
    )
}

/// Like `load_encoded` for several preprocessings at once: each image is decoded once and preprocessed for
/// every one of them (several networks fed from one decode). Returns ([inputs of each preprocessing, the same
/// images in the same order], indices of the good files, [(index, reason)], width × height of each good image).
#[pyfunction]
#[pyo3(signature = (blobs, preprocessings, max_pixels=crate::decode::DEFAULT_MAX_PIXELS))]
#[allow(clippy::type_complexity)]
fn load_encoded_many<'py>(
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
}

/// The bytes of each file, or the reason it cannot be an image (not a regular file, over the size limit that
/// `max_pixels` implies, unreadable), read in parallel without the GIL.
#[pyfunction]
#[pyo3(signature = (paths, max_pixels=crate::decode::DEFAULT_MAX_PIXELS))]
fn read_files(py: Python<'_>, paths: Vec<PathBuf>, max_pixels: u64) -> PyResult<Vec<PyObject>> {
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
}

/// The largest image file (or zip member) accepted under `max_pixels`.
#[pyfunction]
#[pyo3(signature = (max_pixels=crate::decode::DEFAULT_MAX_PIXELS))]
fn max_file_bytes(max_pixels: u64) -> u64 {
    DecodeOptions { max_pixels }.max_file_bytes()
}

/// Preprocess in-memory uint8 images (N×H×W×3), into `out` when given (as `load_images`).
#[pyfunction]
#[pyo3(signature = (images, preprocessing, out=None))]
fn preprocess_arrays<'py>(
    py: Python<'py>,
    images: PyReadonlyArray4<'py, u8>,
    preprocessing: &PyPreprocessing,
    out: Option<Bound<'py, PyArray4<f32>>>,
) -> PyResult<Bound<'py, PyArray4<f32>>> {
    let p = preprocessing.inner;
    let shape = images.shape().to_vec();
    if shape[3] != 3 || shape[1] == 0 || shape[2] == 0 {
        return Err(FidrsError::InvalidInput(format!(
            "images must be N×H×W×3 uint8 with H, W > 0, got {shape:?}"
        ))
        .into());
    }
    let (n, h, w) = (shape[0], shape[1], shape[2]);
    let pixels = images
        .as_slice()
        .map(|s| s.to_vec())
        .unwrap_or_else(|_| images.as_array().iter().copied().collect());
    let (array, ()) = into_output(py, out, n, p.size, |data| {
        without_gil(py, |_| preprocess_batch(&pixels, w, h, &p, data))?;
        Ok((n, ()))
    })?;
    Ok(array)
}

/// One file's RGB8 pixels (H×W×3), as `np.asarray(Image.open(p).convert("RGB"))`.
#[pyfunction]
#[pyo3(signature = (path, max_pixels=crate::decode::DEFAULT_MAX_PIXELS))]
fn decode_image(
    py: Python<'_>,
    path: PathBuf,
    max_pixels: u64,
) -> PyResult<Bound<'_, PyArray3<u8>>> {
    let decoded = without_gil(py, |_| decode_file(&path, &DecodeOptions { max_pixels }))?.map_err(
        |reason| FidrsError::Decode {
            path: path.clone(),
            reason,
        },
    )?;
    let image = decoded.image;
    image
        .pixels
        .into_pyarray(py)
        .reshape([image.height, image.width, 3])
}

fn square<'a>(name: &str, a: &'a PyReadonlyArray2<'a, f64>) -> Result<MatRef<'a, f64>, FidrsError> {
    let shape = a.shape();
    let slice = a.as_slice().map_err(|_| {
        FidrsError::InvalidInput(format!("{name} must be a C-contiguous float64 array"))
    })?;
    Ok(MatRef::from_row_major_slice(slice, shape[0], shape[1]))
}

/// Fréchet distance through the Rust core; returns a dict with the value and diagnostics.
#[pyfunction]
#[pyo3(signature = (mu1, sigma1, mu2, sigma2, method="eigh", tolerance=1e-10, max_iterations=200))]
#[allow(clippy::too_many_arguments)]
fn frechet_distance<'py>(
    py: Python<'py>,
    mu1: PyReadonlyArray1<'py, f64>,
    sigma1: PyReadonlyArray2<'py, f64>,
    mu2: PyReadonlyArray1<'py, f64>,
    sigma2: PyReadonlyArray2<'py, f64>,
    method: &str,
    tolerance: f64,
    max_iterations: usize,
) -> PyResult<Bound<'py, PyDict>> {
    let method: Method = method.parse()?;
    let (m1, m2) = (mu1.as_slice()?, mu2.as_slice()?);
    let (s1, s2) = (square("sigma1", &sigma1)?, square("sigma2", &sigma2)?);
    let options = NewtonSchulzOptions {
        tolerance,
        max_iterations,
    };
    let result = without_gil(py, |_| frechet_core(m1, s1, m2, s2, method, options, par()))??;
    let info = PyDict::new(py);
    info.set_item("value", result.value)?;
    info.set_item("method", result.method)?;
    info.set_item("factorisation", result.factorisation)?;
    info.set_item("rank", result.rank)?;
    info.set_item("iterations", result.iterations)?;
    info.set_item("residual", result.residual)?;
    info.set_item("clipped_mass", result.clipped_mass)?;
    info.set_item("stop_reason", result.stop_reason)?;
    info.set_item("seconds", result.seconds)?;
    let steps = PyDict::new(py);
    steps.set_item("factor", result.seconds_factor)?;
    steps.set_item("product", result.seconds_product)?;
    steps.set_item("trace", result.seconds_trace)?;
    info.set_item("seconds_by_step", steps)?;
    Ok(info)
}

/// Streaming feature moments (n, Σx, Σxxᵀ) in float64.
#[pyclass(name = "Moments", module = "fidrs._fidrs")]
struct PyMoments {
    inner: Moments,
}

#[pymethods]
impl PyMoments {
    #[new]
    fn new(dim: usize) -> Self {
        Self {
            inner: Moments::with_parallelism(dim, par()),
        }
    }

    #[staticmethod]
    fn from_parts(
        n: u64,
        sum: PyReadonlyArray1<'_, f64>,
        sum_outer: PyReadonlyArray2<'_, f64>,
    ) -> PyResult<Self> {
        let outer = square("sum_outer", &sum_outer)?;
        Ok(Self {
            inner: Moments::from_parts(n, sum.as_slice()?.to_vec(), outer)?.parallelism(par()),
        })
    }

    /// Fold a batch of feature rows (N×d float32) in.
    fn update(&mut self, py: Python<'_>, features: PyReadonlyArray2<'_, f32>) -> PyResult<()> {
        let shape = features.shape();
        let (rows, cols) = (shape[0], shape[1]);
        if cols != self.inner.dim() {
            return Err(FidrsError::InvalidInput(format!(
                "features have {cols} columns, expected {}",
                self.inner.dim()
            ))
            .into());
        }
        let owned: Vec<f32>;
        let data: &[f32] = match features.as_slice() {
            Ok(slice) => slice,
            Err(_) => {
                owned = features.as_array().iter().copied().collect();
                &owned
            }
        };
        let inner = &mut self.inner;
        without_gil(py, |_| inner.update(data, rows))??;
        Ok(())
    }

    fn merge(&mut self, other: &PyMoments) -> PyResult<()> {
        Ok(self.inner.merge(&other.inner)?)
    }

    #[getter]
    fn n(&self) -> u64 {
        self.inner.n
    }

    #[getter]
    fn dim(&self) -> usize {
        self.inner.dim()
    }

    #[getter]
    fn sum<'py>(&mut self, py: Python<'py>) -> Bound<'py, PyArray1<f64>> {
        self.inner.flush();
        self.inner.sum.clone().into_pyarray(py)
    }

    #[getter]
    fn sum_outer<'py>(&mut self, py: Python<'py>) -> Bound<'py, PyArray2<f64>> {
        mat_to_numpy(py, self.inner.sum_outer().as_ref())
    }

    fn mean<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyArray1<f64>>> {
        Ok(self.inner.mean()?.into_pyarray(py))
    }

    fn covariance<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyArray2<f64>>> {
        let inner = &mut self.inner;
        let cov = without_gil(py, |_| inner.covariance())??;
        Ok(mat_to_numpy(py, cov.as_ref()))
    }
}

fn mat_to_numpy<'py>(py: Python<'py>, m: MatRef<'_, f64>) -> Bound<'py, PyArray2<f64>> {
    let (r, c) = (m.nrows(), m.ncols());
    let mut data = Vec::with_capacity(r * c);
    for i in 0..r {
        for j in 0..c {
            data.push(m[(i, j)]);
        }
    }
    data.into_pyarray(py).reshape([r, c]).expect("size matches")
}

/// Make SIGINT end the process at once (exit 130, `message` on stderr, pending outputs removed). For the CLI.
#[pyfunction]
fn exit_on_interrupt(message: String) -> PyResult<()> {
    crate::interrupt::exit_on_interrupt(message).map_err(|e| {
        FidrsError::InvalidInput(format!("cannot install the Ctrl-C handler: {e}")).into()
    })
}

/// Register (`pending=True`) or release a temporary output file that an interrupt must remove.
#[pyfunction]
fn track_pending_output(path: PathBuf, pending: bool) {
    crate::interrupt::track_pending(path, pending);
}

#[pyfunction]
fn num_threads() -> usize {
    rayon::current_num_threads()
}

#[pymodule]
fn _fidrs(m: &Bound<'_, PyModule>) -> PyResult<()> {
    if let Some(n) = std::env::var("FIDRS_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        // Fails harmlessly if the pool was already built.
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global();
    }
    m.add("FidrsError", m.py().get_type::<FidrsError_>())?;
    m.add("DecodeError", m.py().get_type::<DecodeError>())?;
    m.add(
        "InvalidInputError",
        invalid_input_error(m.py())?.bind(m.py()),
    )?;
    m.add("NumericalError", m.py().get_type::<NumericalError>())?;
    m.add_function(wrap_pyfunction!(load_images, m)?)?;
    m.add_function(wrap_pyfunction!(preprocess_arrays, m)?)?;
    m.add_function(wrap_pyfunction!(load_encoded, m)?)?;
    m.add_function(wrap_pyfunction!(load_encoded_many, m)?)?;
    m.add_function(wrap_pyfunction!(decode_image, m)?)?;
    m.add_function(wrap_pyfunction!(read_files, m)?)?;
    m.add_function(wrap_pyfunction!(max_file_bytes, m)?)?;
    m.add_function(wrap_pyfunction!(frechet_distance, m)?)?;
    m.add_function(wrap_pyfunction!(num_threads, m)?)?;
    m.add_function(wrap_pyfunction!(exit_on_interrupt, m)?)?;
    m.add_function(wrap_pyfunction!(track_pending_output, m)?)?;
    m.add_class::<PyMoments>()?;
    m.add_class::<PyPreprocessing>()?;
    // Choices defined once, here, and read by the CLI and the type stubs.
    m.add("RESIZE_KERNELS", Resize::NAMES.to_vec())?;
    m.add("FITS", Fit::NAMES.to_vec())?;
    m.add("UNITS", Unit::NAMES.to_vec())?;
    m.add("FRECHET_METHODS", crate::frechet::Method::NAMES.to_vec())?;
    m.add("DEFAULT_MAX_PIXELS", crate::decode::DEFAULT_MAX_PIXELS)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    // Whether libjpeg-turbo's SIMD code is in this build, as mozjpeg-sys configured it: "yes (how)" or "no"
    // (build.rs refuses "no" unless FIDRS_ALLOW_SCALAR_JPEG=1).
    m.add("JPEG_SIMD", env!("FIDRS_JPEG_SIMD"))?;
    // The sha256 of the sources that decode and preprocess (build.rs): part of every feature cache key.
    m.add("PIXEL_CODE_SHA256", env!("FIDRS_PIXEL_CODE_SHA256"))?;
    Ok(())
}
