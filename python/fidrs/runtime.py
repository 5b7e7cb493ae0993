"""ONNX Runtime sessions for a backbone's graph: CUDA when available, CPU otherwise. No session is made for a graph
`graph_check` has not accepted for the backbone, ONNX Runtime's load and run errors become fidrs errors naming the
graph file, every run has a deadline, and every run's outputs are checked (`session_guard`)."""

from __future__ import annotations

import importlib.metadata
import os
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from . import config, session_guard
from .errors import InvalidInputError, RuntimeUnavailableError

try:
    import onnxruntime as ort
except ImportError:  # statistics files and Fréchet distances still work without a runtime
    ort = None

DEVICES = ("auto", "cpu", "cuda")

# Images per network call when the caller does not choose. Features do not depend on it (bit-identical, tested).
# CPU, measured with bench/bench_session_options.py: the rate is flat from 8 to 50 images (15.7-15.9 images/s)
# while ONNX Runtime's activation arena grows with the batch (peak RSS 473 MiB at 8, 680 MiB at 16, 1.7 GiB
# at 50), so 16. A GPU needs large batches to fill it; 200 follows common practice and is not yet measured here.
DEFAULT_BATCH = {"CPUExecutionProvider": 16, "CUDAExecutionProvider": 200}

_INSTALL_HINT = "pip install 'fidrs[cpu]' (or 'fidrs[gpu]' for CUDA; the two runtimes cannot be installed together)"


def conflicting_runtimes(installed: frozenset[str] | set[str]) -> list[str]:
    """ONNX Runtime distributions installed side by side. They all ship the same `onnxruntime` package, so
    the last one installed silently overwrites the others' files."""
    runtimes = sorted(name for name in installed if name == "onnxruntime" or name.startswith("onnxruntime-"))
    return runtimes if len(runtimes) > 1 else []


@lru_cache(maxsize=1)
def _installed_distributions() -> frozenset[str]:
    """Read once a process (~40 ms: every installed distribution's metadata is parsed): installing a package
    later cannot change the ONNX Runtime this process has imported."""
    return frozenset((d.metadata["Name"] or "").lower() for d in importlib.metadata.distributions())


def _require_runtime() -> None:
    if ort is None:
        raise RuntimeUnavailableError(f"ONNX Runtime is not installed: {_INSTALL_HINT}")
    both = conflicting_runtimes(_installed_distributions())
    if both:
        raise RuntimeUnavailableError(
            f"{' and '.join(both)} are both installed and overwrite each other's files: "
            f"pip uninstall -y {' '.join(both)}, then {_INSTALL_HINT}"
        )


def runtime_version() -> str:
    """The ONNX Runtime that computes features (part of the feature cache key)."""
    _require_runtime()
    return f"{ort.__name__} {ort.__version__}"


def _cpu_threads() -> int:
    return config.num_threads() or os.cpu_count() or 1


class BoundInput:
    """IO binding for an accelerator: each batch is copied into one reusable ORT-owned input buffer instead of
    a fresh allocation per call, and the outputs are bound to host memory.

    The buffer is pinned (page-locked) host memory when the execution provider offers it (ONNX Runtime ≥ 1.23
    exposes it as HOST_ACCESSIBLE memory of the EP device), so the copy to the GPU is a DMA transfer; otherwise
    the buffer lives on the device and `update_inplace` copies into it. On CPU the same code runs against CPU
    memory, which is how the tests check it gives the plain path's numbers.
    """

    def __init__(self, session, outputs: tuple[str, ...], device_type: str, memory_info=None) -> None:
        self.session = session
        self.outputs = outputs
        self.device_type = device_type
        self.memory_info = memory_info
        self.buffer = None
        self.checked = False

    @property
    def host_memory(self) -> str:
        return "pinned" if self.memory_info is not None else "pageable"

    def _upload(self, images: np.ndarray) -> None:
        if self.buffer is None or tuple(self.buffer.shape()) != images.shape:  # new shape: a short last batch
            if self.memory_info is not None:
                self.buffer = ort.OrtValue.ortvalue_from_shape_and_type(
                    images.shape, np.float32, memory_info=self.memory_info
                )
            else:
                self.buffer = ort.OrtValue.ortvalue_from_shape_and_type(images.shape, np.float32, self.device_type, 0)
        self.buffer.update_inplace(images)

    def _upload_checked(self, images: np.ndarray) -> None:
        """The first upload is read back: the pinned path has never run on a GPU here (no device was lent
        while it was written), so if it fails or copies wrong, fall back to a device buffer rather than
        compute features from the wrong pixels."""
        try:
            self._upload(images)
            ok = np.array_equal(self.buffer.numpy(), images)
        except Exception:  # noqa: BLE001 - any failure of the pinned path means: use the other one
            ok = False
        if not ok and self.memory_info is not None:
            self.memory_info, self.buffer = None, None
            self._upload(images)
            ok = np.array_equal(self.buffer.numpy(), images)
        if not ok:
            raise RuntimeUnavailableError(f"ONNX Runtime IO binding on {self.device_type} read back other values")
        self.checked = True

    def run(self, images: np.ndarray, run_options=None) -> tuple[np.ndarray, ...]:
        """The outputs for `images`; `run_options` (ONNX Runtime's RunOptions) carry the run's deadline."""
        images = np.ascontiguousarray(images, dtype=np.float32)
        if self.checked:
            self._upload(images)
        else:
            self._upload_checked(images)
        binding = self.session.io_binding()
        binding.bind_ortvalue_input("images", self.buffer)
        for name in self.outputs:
            binding.bind_output(name, "cpu")
        self.session.run_with_iobinding(binding, run_options)
        return tuple(binding.copy_outputs_to_cpu())


def _pinned_memory_info(provider: str):
    """The EP's page-locked host memory, where this ONNX Runtime exposes it (ORT ≥ 1.23); else None."""
    try:
        for device in ort.get_ep_devices():
            if device.ep_name == provider:
                info = device.memory_info(ort.OrtDeviceMemoryType.HOST_ACCESSIBLE)
                if info is not None:
                    return info
    except AttributeError:
        pass
    return None


@dataclass
class NetworkSession:
    session: object  # onnxruntime.InferenceSession
    provider: str  # the execution provider that actually runs the graph
    outputs: tuple[str, ...]  # what `run` returns, in this order
    bound: BoundInput | None = field(default=None)
    path: str = ""  # the graph file (named in every error)
    dims: tuple[int, ...] = ()  # each output's size, as the backbone has it (every run's outputs are checked)
    flops_per_image: float | None = None  # the graph's arithmetic (graph_check): the run deadline scales with it

    @property
    def default_batch_size(self) -> int:
        return DEFAULT_BATCH.get(self.provider, 16)

    def output_dims(self) -> tuple[int, ...]:
        """The feature size of each output, as the graph declares it."""
        shapes = {o.name: o.shape for o in self.session.get_outputs()}
        return tuple(int(shapes[name][-1]) if name in shapes else -1 for name in self.outputs)

    def run(self, images: np.ndarray) -> tuple[np.ndarray, ...]:
        """The named outputs for a batch of network inputs, each N × dim float32 and finite, within the run's
        deadline (`session_guard.run_deadline_s`); else a GraphError naming the graph file."""
        n = len(images)
        deadline = session_guard.run_deadline_s(n, self.flops_per_image)
        if self.bound is not None:
            bound = self.bound
            outputs = session_guard.run_with_deadline(
                lambda options: bound.run(images, options), deadline_s=deadline, path=self.path, batch=n
            )
        else:
            outputs = session_guard.run_guarded(
                self.session, {"images": images}, deadline_s=deadline, path=self.path, output_names=self.outputs
            )
        dims = self.dims or self.output_dims()
        return session_guard.check_outputs(outputs, names=self.outputs, dims=dims, batch=n, path=self.path)


def _providers(device: str, allow_tf32: bool) -> list:
    if device not in DEVICES:
        raise InvalidInputError(f"device must be one of {DEVICES}, got {device!r}")
    available = ort.get_available_providers()
    if device == "cpu":
        return ["CPUExecutionProvider"]
    if "CUDAExecutionProvider" in available:
        cuda_options = {"use_tf32": "1" if allow_tf32 else "0", "cudnn_conv_algo_search": "EXHAUSTIVE"}
        return [("CUDAExecutionProvider", cuda_options), "CPUExecutionProvider"]
    if device == "cuda":
        raise RuntimeUnavailableError(
            "device='cuda' was requested but onnxruntime has no CUDAExecutionProvider: "
            "pip uninstall -y onnxruntime && pip install 'fidrs[gpu]'"
        )
    return ["CPUExecutionProvider"]


def get_session(
    onnx_path: str | os.PathLike, backbone, device: str = "auto", allow_tf32: bool = False
) -> NetworkSession:
    """A session running `backbone`'s graph at `onnx_path`: the graph is checked first (`graph_check.checked`,
    once per file identity; a GraphError naming the file when refused), then loaded by ONNX Runtime (its load
    errors mapped by `session_guard.open_session`)."""
    from .graph_check import checked

    _require_runtime()
    summary = checked(onnx_path, backbone)
    dims = tuple(o.dim for o in backbone.outputs)
    return _session(os.fspath(onnx_path), backbone.output_names, dims, summary.flops_per_image, device, allow_tf32)


@lru_cache(maxsize=4)
def _session(
    onnx_path: str,
    outputs: tuple[str, ...],
    dims: tuple[int, ...],
    flops_per_image: float,
    device: str,
    allow_tf32: bool,
) -> NetworkSession:
    providers = _providers(device, allow_tf32)
    if providers[0] != "CPUExecutionProvider" and hasattr(ort, "preload_dlls"):
        # CUDA and cuDNN from PyPI (fidrs[gpu] brings them) live in site-packages, not on the loader's path.
        ort.preload_dlls()
    options = ort.SessionOptions()
    # Measured (docs/BENCHMARKS.md): level ALL is 25 % faster than BASIC; the CPU memory arena is 5 % faster
    # than none at equal batch, and the batch size, not the arena, is what bounds memory.
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = _cpu_threads()
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    session = session_guard.open_session(onnx_path, options, providers)
    # ORT silently drops a provider it cannot initialise; report what is really in use.
    provider = session.get_providers()[0]
    if device == "cuda" and provider != "CUDAExecutionProvider":
        raise RuntimeUnavailableError(f"CUDA was requested but ONNX Runtime fell back to {provider}")
    bound = None
    if provider == "CUDAExecutionProvider":
        bound = BoundInput(session, outputs, "cuda", _pinned_memory_info(provider))
    return NetworkSession(session, provider, outputs, bound, onnx_path, dims, flops_per_image)
