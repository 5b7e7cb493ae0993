"""Every exception and warning fidrs raises, in one place. Each exception class carries the exit code the CLI
ends with (`exit_code`): 2 for bad input or usage (the user can fix it), 3 for an internal error or a missing
runtime. The native classes (`FidrsError`, `InvalidInputError`, `DecodeError`, `NumericalError`, and
`InternalError` for a Rust panic caught at the binding, where this build has it) come from the Rust core and get
their codes here; the rest are raised in Python. Library code reports through `warnings` (the classes below)
and the `fidrs` logger; only the CLI prints."""

from __future__ import annotations

from . import _fidrs
from ._fidrs import DecodeError, FidrsError, InvalidInputError, NumericalError
from .display import display

EXIT_OK = 0
EXIT_ABOVE_THRESHOLD = 1
EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 3
EXIT_INTERRUPTED = 130  # 128 + SIGINT
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: the reader of our output went away (`fidrs ... | head`)

# A Rust panic caught at the PyO3 boundary (being added to the core); until it is, nothing raises it.
InternalError: type[FidrsError] = getattr(_fidrs, "InternalError", None) or type(
    "InternalError",
    (FidrsError,),
    {"__doc__": "A bug in fidrs (a Rust panic caught at the binding).", "__module__": __name__},
)

FidrsError.exit_code = EXIT_INTERNAL
InvalidInputError.exit_code = EXIT_BAD_INPUT
DecodeError.exit_code = EXIT_BAD_INPUT
NumericalError.exit_code = EXIT_INTERNAL
InternalError.exit_code = EXIT_INTERNAL


def exit_code(error: BaseException) -> int:
    """The CLI's exit code for `error`: its class's `exit_code`; 3 (internal) for anything fidrs did not raise."""
    return getattr(type(error), "exit_code", EXIT_INTERNAL)


# --- exceptions raised in Python ---------------------------------------------------------------------------


class WeightsError(FidrsError):
    """A checkpoint or ONNX model could not be read or built."""

    exit_code = EXIT_BAD_INPUT


class GraphError(WeightsError):
    """An ONNX graph was refused by fidrs' checks, or ONNX Runtime could not load or run it (exit 2, like every
    unusable model file: the message names the graph file and the reason)."""


class WeightsUnavailableError(WeightsError):
    """No weights were given and none could be found in the cache or downloaded."""


class WeightsHashMismatchError(WeightsError):
    """A checkpoint's sha256 does not match the expected one."""


class EmptyInputError(InvalidInputError):
    """An input expanded to no image files."""


class NotRegularFileError(InvalidInputError, OSError):
    """A path names a FIFO, socket, device or directory where a regular file is needed."""


class FileTooLargeError(InvalidInputError):
    """A file is larger than anything a valid input of its kind can be."""


class OutputError(InvalidInputError):
    """An output file could not be written."""


class RuntimeUnavailableError(FidrsError):
    """ONNX Runtime is not installed, or cannot run on the requested device."""

    exit_code = EXIT_INTERNAL


class ClusterLostError(FidrsError):
    """A cluster run stopped: no node that can run a worker is left in the cluster (each lost one is named).
    Exit 3: the input is fine; the run can be started again on a cluster that has nodes."""

    exit_code = EXIT_INTERNAL


class RetryBudgetExhaustedError(FidrsError):
    """A cluster run stopped: its workers kept failing for the whole retry budget (`retry_timeout`) and no shard
    completed. Exit 3, as a run that fails for reasons other than its input."""

    exit_code = EXIT_INTERNAL


class IncompatibleStatsError(FidrsError):
    """Two statistics or feature sets computed with different backbones, modes, weights or graphs were to be
    compared or merged."""

    exit_code = EXIT_BAD_INPUT


class ReferenceUnavailableError(InvalidInputError):
    """A published reference named `ref:NAME` is not in the cache and could not be downloaded."""


class ReferenceHashMismatchError(InvalidInputError):
    """A published reference's file is not the one published: its sha256 differs from the published, pinned or
    first-download hash, or its content is not the layout its catalogue entry describes."""


class UnsafePickleError(InvalidInputError):
    """A pickle names something other than plain data and numpy arrays, or numpy's with arguments it never
    writes (a crafted reference-statistics file: refused before anything is called)."""


class BadImagesError(DecodeError):
    """Some input files could not be read or decoded. `failures` lists (path, reason) pairs."""

    def __init__(self, failures: list[tuple[str, str]]) -> None:
        self.failures = failures
        lines = "\n".join(f"  {display(path)}: {reason}" for path, reason in failures)
        super().__init__(f"{len(failures)} file(s) could not be read or decoded:\n{lines}")


# --- warnings ----------------------------------------------------------------------------------------------


class FidrsWarning(UserWarning):
    """The base of fidrs' warnings."""


class SmallSampleWarning(FidrsWarning):
    """Fewer images than feature dimensions: the covariance is singular and FID is biased upwards."""


class UnknownModeWarning(FidrsWarning):
    """A statistics file that records no preprocessing mode is compared with images of a non-default mode."""


class ModeMismatchWarning(FidrsWarning):
    """`allow_mode_mismatch`: images were computed in another mode than the reference they are compared with
    was made in; the value is not comparable with numbers computed against that reference."""


class DuplicateFilesWarning(FidrsWarning):
    """Several paths of one input named the same file; it was counted once."""


class NestedArchiveWarning(FidrsWarning):
    """An input (a folder, a zip archive) holds zip archives: fidrs does not open an archive inside an input, so
    their images are not counted (each archive is named; pass it as an input of its own, or extract it)."""


class SkippedFilesWarning(FidrsWarning):
    """`skip_bad`: files that could not be read or decoded were left out (each is named)."""


class CacheWarning(FidrsWarning):
    """The feature cache or the graph cache could not be used; the run goes on without it."""


__all__ = [
    "BadImagesError",
    "CacheWarning",
    "ClusterLostError",
    "DecodeError",
    "DuplicateFilesWarning",
    "EmptyInputError",
    "FidrsError",
    "FidrsWarning",
    "FileTooLargeError",
    "GraphError",
    "IncompatibleStatsError",
    "InternalError",
    "InvalidInputError",
    "ModeMismatchWarning",
    "NestedArchiveWarning",
    "NotRegularFileError",
    "NumericalError",
    "OutputError",
    "ReferenceHashMismatchError",
    "ReferenceUnavailableError",
    "RetryBudgetExhaustedError",
    "RuntimeUnavailableError",
    "SkippedFilesWarning",
    "SmallSampleWarning",
    "UnsafePickleError",
    "UnknownModeWarning",
    "WeightsError",
    "WeightsHashMismatchError",
    "WeightsUnavailableError",
    "exit_code",
]
