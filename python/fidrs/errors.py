"""The exception hierarchy. The native ones come from the Rust core; the rest are raised in Python."""

from __future__ import annotations

from ._fidrs import DecodeError, FidrsError, InvalidInputError, NumericalError

__all__ = [
    "BadImagesError",
    "DecodeError",
    "EmptyInputError",
    "FidrsError",
    "IncompatibleStatsError",
    "InvalidInputError",
    "NumericalError",
    "ReferenceHashMismatchError",
    "ReferenceUnavailableError",
    "RuntimeUnavailableError",
    "WeightsError",
    "WeightsHashMismatchError",
    "WeightsUnavailableError",
]


class WeightsError(FidrsError):
    """A checkpoint or ONNX model could not be read or built."""


class WeightsUnavailableError(WeightsError):
    """No weights were given and none could be found in the cache or downloaded."""


class WeightsHashMismatchError(WeightsError):
    """A downloaded checkpoint's sha256 does not match the expected one."""


class EmptyInputError(InvalidInputError):
    """An input expanded to no image files."""


class RuntimeUnavailableError(FidrsError):
    """ONNX Runtime is not installed, or cannot run on the requested device."""


class IncompatibleStatsError(FidrsError):
    """Two statistics computed with different modes or weights were to be compared or merged."""


class ReferenceUnavailableError(InvalidInputError):
    """A published reference named `ref:NAME` is not in the cache and could not be downloaded."""


class ReferenceHashMismatchError(InvalidInputError):
    """A published reference's file is not the one published: its sha256 differs from the published, pinned or
    first-download hash, or its content is not the layout its catalogue entry describes."""


class BadImagesError(DecodeError):
    """Some input files could not be decoded. `failures` lists (path, reason) pairs."""

    def __init__(self, failures: list[tuple[str, str]]) -> None:
        from .files import display

        self.failures = failures
        lines = "\n".join(f"  {display(path)}: {reason}" for path, reason in failures)
        super().__init__(f"{len(failures)} file(s) could not be decoded:\n{lines}")
