"""ONNX Runtime under guard: a session is created and run with ONNX Runtime's exceptions turned into fidrs errors
that name the graph file, every run has a deadline, and every run's outputs are checked.

* `open_session`: `onnxruntime.InferenceSession` with load errors (a missing or escaping external data file, an
  unknown operator domain, a graph ONNX Runtime refuses) mapped to `GraphError` (exit 2).
* `run_guarded` / `run_with_deadline`: the run gets a `RunOptions` whose `terminate` flag a timer thread sets when
  the deadline passes; ONNX Runtime checks it between nodes and stops the run ("Exiting due to terminate flag"),
  which becomes a `GraphError` naming the file and the deadline. Static checks (`graph_check`) already refuse
  loops and unbounded shapes: the deadline is the second line, for a graph that is merely slow.
* `check_outputs`: N rows for N images, the declared sizes, float32, finite; a graph returning one row for a
  batch is refused, never broadcast.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

import numpy as np

from . import config
from .display import display
from .errors import FidrsError, GraphError, RuntimeUnavailableError

T = TypeVar("T")

DEADLINE_VARIABLE = config.RUN_DEADLINE_VARIABLE
MAX_DEADLINE_S = config.MAX_RUN_DEADLINE_S
# The deadline of one run (one batch): a constant for a first run's one-time work (CUDA's exhaustive convolution
# search, the memory arena growing) plus a time per image from the graph's arithmetic at a rate slower than any
# machine fidrs runs on: this 2-core Xeon runs the Inception (1.15e10 operations an image) at 15.8 images/s, i.e.
# 1.8e11 operations/s; 5e9 is 36× slower (one busy core of an old machine). Inception, batch 16: 120 + 16 × 2.3 s.
BASE_DEADLINE_S = 120.0
SLOWEST_FLOPS_PER_S = 5e9
# Per image when the graph's arithmetic is not known: that of fidrs' most expensive network (DINOv2 ViT-g/14).
FALLBACK_FLOPS_PER_IMAGE = 6e11


def run_deadline_s(batch: int, flops_per_image: float | None = None) -> float:
    """The deadline of one run of `batch` images: `FIDRS_RUN_DEADLINE_S` if set, else
    BASE_DEADLINE_S + batch × flops_per_image / SLOWEST_FLOPS_PER_S (`flops_per_image` from
    `graph_check.GraphSummary`; None: that of fidrs' most expensive network)."""
    override = config.run_deadline_override()
    if override is not None:
        return override
    flops = FALLBACK_FLOPS_PER_IMAGE if flops_per_image is None else flops_per_image
    return min(MAX_DEADLINE_S, BASE_DEADLINE_S + max(1, batch) * flops / SLOWEST_FLOPS_PER_S)


# --- ONNX Runtime's exceptions -----------------------------------------------------------------------------

_ORT_STATE_MODULE = "onnxruntime.capi.onnxruntime_pybind11_state"
_DEVICE_ERRORS = {"EPFail", "EngineError", "DeviceReset"}  # the execution provider, not the graph
_PREFIX = re.compile(r"^\[ONNXRuntimeError\]\s*:\s*\d+\s*:\s*[A-Z_]+\s*:\s*")
_ALLOCATION = ("Failed to allocate memory", "bad_alloc", "bad allocation", "out of memory")


def _ort_kind(error: BaseException) -> str | None:
    """The name of ONNX Runtime's exception class (Fail, InvalidArgument, NoSuchFile, ...), or None if `error`
    is not one of ONNX Runtime's."""
    kind = type(error)
    return kind.__name__ if kind.__module__ == _ORT_STATE_MODULE else None


def _detail(error: BaseException, limit: int = 300) -> str:
    text = " ".join(_PREFIX.sub("", str(error)).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def load_error(error: BaseException, path: str | os.PathLike) -> FidrsError | None:
    """The fidrs error for an exception of `InferenceSession(path)`; None when it is not ONNX Runtime's (a bug,
    left to propagate)."""
    where = display(path)
    if isinstance(error, MemoryError):
        return GraphError(f"{where}: out of memory while ONNX Runtime loaded the graph")
    kind = _ort_kind(error)
    if kind is None:
        return None
    detail = _detail(error)
    if kind in _DEVICE_ERRORS:
        return RuntimeUnavailableError(f"{where}: the execution provider failed to load the graph ({detail})")
    if any(s in detail for s in _ALLOCATION):
        return GraphError(f"{where}: ONNX Runtime could not allocate the memory to load the graph ({detail})")
    reasons = {
        "NoSuchFile": "a file of the graph does not exist",
        "InvalidProtobuf": "not a readable ONNX graph",
        "InvalidGraph": "ONNX Runtime refuses the graph as invalid",
        "NotImplemented": "the graph uses an operator or type ONNX Runtime does not implement",
    }
    reason = reasons.get(kind, "ONNX Runtime cannot load the graph")
    return GraphError(f"{where}: {reason} ({detail})")


def run_error(error: BaseException, path: str | os.PathLike, batch: int) -> FidrsError | None:
    """The fidrs error for an exception of a session run on `batch` images; None when it is not ONNX Runtime's."""
    where = display(path)
    hint = "a smaller --batch-size needs less"
    if isinstance(error, MemoryError):
        return GraphError(f"{where}: out of memory running the graph on a batch of {batch} images ({hint})")
    kind = _ort_kind(error)
    if kind is None:
        return None
    detail = _detail(error)
    if kind in _DEVICE_ERRORS:
        return RuntimeUnavailableError(f"{where}: the execution provider failed running the graph ({detail})")
    if any(s in detail for s in _ALLOCATION):
        return GraphError(
            f"{where}: ONNX Runtime could not allocate the memory for a batch of {batch} images ({hint}; {detail})"
        )
    if kind == "InvalidArgument":
        return GraphError(f"{where}: the graph does not accept fidrs' network input ({detail})")
    return GraphError(f"{where}: ONNX Runtime failed running the graph on a batch of {batch} images ({detail})")


# --- sessions and runs -------------------------------------------------------------------------------------


def open_session(path: str | os.PathLike, sess_options=None, providers: Sequence | None = None):
    """`onnxruntime.InferenceSession(path, sess_options, providers)`, its load errors mapped to fidrs errors that
    name the file (`load_error`). Check the graph (`graph_check.load_and_check`) before: ONNX Runtime's own
    errors are the second line."""
    import onnxruntime as ort

    try:
        return ort.InferenceSession(os.fspath(path), sess_options=sess_options, providers=providers)
    except Exception as e:  # noqa: BLE001 - mapped when it is ONNX Runtime's, re-raised otherwise
        mapped = load_error(e, path)
        if mapped is None:
            raise
        raise mapped from None


def run_with_deadline(call: Callable[[object], T], *, deadline_s: float, path: str | os.PathLike, batch: int) -> T:
    """`call(run_options)` (a `session.run` or `session.run_with_iobinding` given the options), stopped by ONNX
    Runtime when `deadline_s` seconds pass: a `GraphError` naming the file and the deadline. ONNX Runtime's
    other errors are mapped by `run_error`."""
    import onnxruntime as ort

    if not (0 < deadline_s <= MAX_DEADLINE_S):
        raise ValueError(f"deadline_s must be in (0, {MAX_DEADLINE_S:.0f}], got {deadline_s!r}")
    options = ort.RunOptions()
    options.log_severity_level = 4  # fatal only: the error reaches the user once, in fidrs' message
    expired = threading.Event()

    def expire() -> None:
        expired.set()
        options.terminate = True  # ONNX Runtime checks it before each node

    timer = threading.Timer(deadline_s, expire)
    timer.daemon = True
    timer.start()
    try:
        return call(options)
    except Exception as e:  # noqa: BLE001 - mapped when it is ONNX Runtime's, re-raised otherwise
        if expired.is_set():
            raise GraphError(
                f"{display(path)}: a network run on {batch} images did not finish within its deadline of "
                f"{deadline_s:.3g} s and was stopped (a crafted or broken graph; on a slow machine, "
                f"{DEADLINE_VARIABLE} sets the deadline)"
            ) from None
        mapped = run_error(e, path, batch)
        if mapped is None:
            raise
        raise mapped from None
    finally:
        timer.cancel()


def run_guarded(
    session,
    feeds: Mapping[str, np.ndarray],
    *,
    deadline_s: float,
    path: str | os.PathLike,
    output_names: Sequence[str] | None = None,
) -> list:
    """`session.run(output_names, feeds)` under `run_with_deadline` (the batch is the first axis of `images`,
    or of the first feed)."""
    first = feeds["images"] if "images" in feeds else next(iter(feeds.values()))
    batch = int(first.shape[0]) if getattr(first, "ndim", 0) else 1
    names = None if output_names is None else list(output_names)
    return run_with_deadline(
        lambda options: session.run(names, dict(feeds), options), deadline_s=deadline_s, path=path, batch=batch
    )


def check_outputs(
    outputs: Sequence, *, names: Sequence[str], dims: Sequence[int], batch: int, path: str | os.PathLike
) -> tuple[np.ndarray, ...]:
    """Each output of a run on `batch` images is float32 `batch × dim`, finite: else a `GraphError` naming the
    file, the output and what came out instead."""
    where = display(path)
    if len(outputs) != len(names) or len(names) != len(dims):
        raise GraphError(f"{where}: the run returned {len(outputs)} outputs, fidrs asked for {len(names)}")
    checked = []
    for name, dim, out in zip(names, dims, outputs):
        if not isinstance(out, np.ndarray):
            raise GraphError(f"{where}: output {name!r} is a {type(out).__name__}, not a tensor")
        if out.dtype != np.float32:
            raise GraphError(f"{where}: output {name!r} is {out.dtype}, not float32")
        if out.shape != (batch, dim):
            raise GraphError(
                f"{where}: output {name!r} has shape {out.shape} for a batch of {batch} images, expected "
                f"{(batch, dim)}: one row of {dim} per image"
            )
        finite = np.isfinite(out).all(axis=1)
        if not finite.all():
            raise GraphError(
                f"{where}: output {name!r} has NaN or infinite values for {int((~finite).sum())} of {batch} images"
            )
        checked.append(out)
    return tuple(checked)
