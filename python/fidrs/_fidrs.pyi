"""Type stubs for the native module `fidrs._fidrs` (Rust, PyO3). `scripts/check_stubs.py` (and
tests/test_stubs.py) compare them with the built module: names, parameters, defaults, classes' members."""

from collections.abc import Sequence
from os import PathLike
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

__version__: str
JPEG_SIMD: str  # "yes (NASM version …)" or "no": whether libjpeg-turbo's SIMD decoder is in this build
PIXEL_CODE_SHA256: str  # sha256 of the Rust sources that decode and preprocess (build.rs): the feature cache key

class FidrsError(Exception): ...
class DecodeError(FidrsError): ...
class InvalidInputError(FidrsError, ValueError): ...
class NumericalError(FidrsError): ...

class InternalError(FidrsError):
    """A fault in fidrs itself (a caught Rust panic, a thread pool that cannot start): CLI exit 3."""

_Path = str | PathLike[str]

ResizeKernel = Literal[
    "torch-bilinear", "tf1-bilinear", "pil-bicubic-float", "pil-bicubic-u8", "torch-bicubic-antialias"
]
Fit = Literal["stretch", "pad", "center-crop", "square-crop"]
Unit = Literal["never", "before-resize", "after-resize"]
FrechetMethod = Literal["eigh", "newton-schulz"]
StoragePrecision = Literal["float64", "float32"]

# The choices above, as the Rust core defines them (read by the CLI).
RESIZE_KERNELS: list[str]
FITS: list[str]
UNITS: list[str]
FRECHET_METHODS: list[str]
STORAGE_PRECISIONS: list[str]
DEFAULT_MAX_PIXELS: int
MAX_FEATURE_WIDTH: int  # the widest Moments (feature vectors) kept: their d×d float64 sums at this width are 1 GiB
MAX_THREADS_PER_CPU: int  # FIDRS_NUM_THREADS may be at most this many times the CPUs the process may use
CMMD_SIGMA: float  # 10.0: CMMD's kernel bandwidth (google-research/cmmd)
CMMD_SCALE: float  # 1000.0: CMMD's reporting scale

class Preprocessing:
    """RGB8 → one network input (3×size×size f32): out = (resized(v) − mean)/std per channel, v in 0..255 or
    0..1 as `unit` says, clamped to that range first if `clamp`. Backbones build these as named modes."""

    def __init__(
        self,
        *,
        size: int,
        resize: ResizeKernel,
        fit: Fit = "stretch",
        unit: Unit = "never",
        clamp: bool = False,
        mean: tuple[float, float, float] = (0.0, 0.0, 0.0),
        std: tuple[float, float, float] = (1.0, 1.0, 1.0),
        fill: tuple[int, int, int] = (255, 255, 255),
    ) -> None: ...
    @property
    def size(self) -> int: ...

def load_images(
    paths: Sequence[_Path],
    preprocessing: Preprocessing,
    max_pixels: int = 178_956_970,
    out: npt.NDArray[np.float32] | None = None,
) -> tuple[npt.NDArray[np.float32], list[int], list[tuple[int, str]], list[int]]:
    """Decode + preprocess in parallel: (N_ok×3×size×size inputs, indices of good files, [(index, reason)],
    width × height of each good image). Only regular files are opened; Ctrl-C stops between images.
    `out` (≥N×3×size×size float32, C-contiguous): written in place, the inputs returned are a view of it."""

def load_encoded(
    blobs: Sequence[bytes],
    preprocessing: Preprocessing,
    max_pixels: int = 178_956_970,
    out: npt.NDArray[np.float32] | None = None,
) -> tuple[npt.NDArray[np.float32], list[int], list[tuple[int, str]], list[int]]:
    """`load_images` for encoded files already in memory."""

def load_encoded_many(
    blobs: Sequence[bytes],
    preprocessings: Sequence[Preprocessing],
    max_pixels: int = 178_956_970,
) -> tuple[list[npt.NDArray[np.float32]], list[int], list[tuple[int, str]], list[int]]:
    """`load_encoded` for several preprocessings: each image decoded once, preprocessed for each of them (the
    inputs of each preprocessing hold the same images in the same order)."""

def read_files(paths: Sequence[_Path], max_pixels: int = 178_956_970) -> list[bytes | str]:
    """Each file's bytes, or the reason it cannot be an image (not a regular file, over the size cap)."""

def max_file_bytes(max_pixels: int = 178_956_970) -> int:
    """The largest image file (or zip member) accepted under `max_pixels`."""

def exit_on_interrupt(message: str) -> None:
    """Make SIGINT end the process at once: remove pending outputs, print `message`, exit 130 (the CLI)."""

def track_pending_output(path: _Path, pending: bool) -> None:
    """Register or release a temporary output file that an interrupt must remove."""

def preprocess_arrays(
    images: npt.NDArray[np.uint8], preprocessing: Preprocessing, out: npt.NDArray[np.float32] | None = None
) -> npt.NDArray[np.float32]:
    """Preprocess uint8 images N×H×W×3 into N×3×size×size network inputs (into `out` as `load_images`)."""

def decode_image(path: _Path, max_pixels: int = 178_956_970) -> npt.NDArray[np.uint8]:
    """One file's RGB pixels, H×W×3, as Pillow's `Image.open(p).convert("RGB")`."""

class Covariance:
    """A covariance matrix checked once (finite, symmetric, positive semi-definite up to the round-off of its
    storage precision, relative to the second moments Σ_ii + μ_i² when `mean` is given) and factorised once
    (Cholesky, or pivoted Cholesky at its numerical rank); `frechet_distance` takes it in place of the array.
    `samples`: n, when Σ came from one-pass moments of n samples (fidrs' own statistics). `two_pass`: Σ came from
    `np.cov` (pytorch-fid, clean-fid, ADM files): the mean is checked but left out of the tolerances. Raises
    InvalidInputError naming `name`/`mean_name` (e.g. "a.npz: sigma") and the reason."""

    def __init__(
        self,
        sigma: npt.NDArray[np.float64],
        mean: npt.NDArray[np.float64] | None = None,
        *,
        samples: int | None = None,
        stored_as: StoragePrecision = "float64",
        two_pass: bool = False,
        name: str = "sigma",
        mean_name: str = "mu",
    ) -> None: ...
    @property
    def dim(self) -> int: ...
    @property
    def rank(self) -> int: ...
    @property
    def factorisation(self) -> Literal["cholesky", "pivoted-cholesky", "zero"]: ...
    @property
    def trace(self) -> float: ...
    @property
    def eigenvalue_tolerance(self) -> float:
        """δ: the smallest eigenvalue of an accepted covariance is at least −δ."""
    @property
    def stored_as(self) -> StoragePrecision: ...
    @property
    def name(self) -> str: ...
    @property
    def seconds(self) -> float:
        """Seconds spent checking and factorising."""

def check_frechet_options(method: FrechetMethod = "eigh", tolerance: float = 1e-10, max_iterations: int = 200) -> None:
    """Raise InvalidInputError unless `frechet_distance` accepts these options (tolerance in (0, 1),
    max_iterations ≥ 1, a known method)."""

def frechet_distance(
    mu1: npt.NDArray[np.float64],
    sigma1: Covariance | npt.NDArray[np.float64],
    mu2: npt.NDArray[np.float64],
    sigma2: Covariance | npt.NDArray[np.float64],
    method: FrechetMethod = "eigh",
    tolerance: float = 1e-10,
    max_iterations: int = 200,
) -> dict[str, Any]:
    """Fréchet distance and diagnostics. Keys: value, method, factorisation, rank, iterations, residual,
    clipped_mass, stop_reason, seconds, seconds_by_step. (seconds_by_step: factor, product, trace.) An array
    sigma is checked around its mean at the float32 round-off level; a Covariance was checked when built."""

def mmd(x: npt.NDArray[np.float32], y: npt.NDArray[np.float32], *, sigma: float = 10.0, scale: float = 1000.0) -> float:
    """`scale` × the biased MMD² between embeddings x (N×d) and y (M×d) with the Gaussian RBF kernel
    exp(−‖a − b‖²/(2σ²)): CMMD with the defaults. Float64 throughout, the kernel in blocks (never held)."""

def mmd_bootstrap(
    x: npt.NDArray[np.float32],
    y: npt.NDArray[np.float32],
    x_counts: npt.NDArray[np.int64],
    y_counts: npt.NDArray[np.int64],
    *,
    sigma: float = 10.0,
    scale: float = 1000.0,
) -> tuple[float, npt.NDArray[np.float64]]:
    """(`mmd(x, y)`, the B values of the resamples): resample b takes x_counts[b, i] copies of x's row i and
    y_counts[b, j] of y's row j (B×N and B×M multiplicities), all in one pass over the kernel blocks."""

def configured_threads() -> int:
    """FIDRS_NUM_THREADS, validated (a whole number from 1 to MAX_THREADS_PER_CPU × the CPUs this process may
    use), or that CPU count when unset; read once. Raises InvalidInputError naming the variable and the bound."""

def num_threads() -> int:
    """The size of fidrs' thread pool (`configured_threads()`), starting it if needed."""

def _panic_for_tests(where: Literal["binding", "worker", "pool"]) -> None:
    """Test hook: panic in the binding, on the thread that runs without the GIL, or in a pool task; each
    reaches Python as InternalError."""

class Moments:
    """Streaming feature moments (n, Σx, Σxxᵀ) in float64; mergeable across shards."""

    def __init__(self, dim: int) -> None: ...
    @staticmethod
    def from_parts(n: int, sum: npt.NDArray[np.float64], sum_outer: npt.NDArray[np.float64]) -> Moments: ...
    def update(self, features: npt.NDArray[np.float32]) -> None: ...
    def merge(self, other: Moments) -> None: ...
    @property
    def n(self) -> int: ...
    @property
    def dim(self) -> int: ...
    @property
    def sum(self) -> npt.NDArray[np.float64]: ...
    @property
    def sum_outer(self) -> npt.NDArray[np.float64]: ...
    def mean(self) -> npt.NDArray[np.float64]: ...
    def covariance(self) -> npt.NDArray[np.float64]: ...
    def deviation(
        self, mu: npt.NDArray[np.float64], sigma: npt.NDArray[np.float64]
    ) -> tuple[float, float, float, float]:
        """(max |mean − mu|, max |covariance − sigma|, max |sum| / n, max |sum_outer| / (n − 1))."""
