"""Type stubs for the native module `fidrs._fidrs` (Rust, PyO3)."""

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

_Path = str | PathLike[str]

ResizeKernel = Literal[
    "torch-bilinear", "tf1-bilinear", "pil-bicubic-float", "pil-bicubic-u8", "torch-bicubic-antialias"
]
Fit = Literal["stretch", "pad", "center-crop", "square-crop"]
Unit = Literal["never", "before-resize", "after-resize"]
FrechetMethod = Literal["eigh", "newton-schulz"]

# The choices above, as the Rust core defines them (read by the CLI).
RESIZE_KERNELS: list[str]
FITS: list[str]
UNITS: list[str]
FRECHET_METHODS: list[str]
DEFAULT_MAX_PIXELS: int

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

def frechet_distance(
    mu1: npt.NDArray[np.float64],
    sigma1: npt.NDArray[np.float64],
    mu2: npt.NDArray[np.float64],
    sigma2: npt.NDArray[np.float64],
    method: FrechetMethod = "eigh",
    tolerance: float = 1e-10,
    max_iterations: int = 100,
) -> dict[str, Any]:
    """Fréchet distance and diagnostics: value, method, factorisation, iterations, residual, clipped_mass,
    fallback_reason, seconds."""

def num_threads() -> int: ...

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
