"""Every environment variable fidrs reads, read and validated here, so that a bad value is one clear error
naming the variable (exit 2) wherever it is first needed."""

from __future__ import annotations

import os

from .errors import InvalidInputError


def _positive_int(name: str) -> int | None:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return None
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise InvalidInputError(f"environment variable {name} must be a positive integer, got {value!r}")
    return number


def num_threads() -> int | None:
    """`FIDRS_NUM_THREADS`: threads for decoding, linear algebra and ONNX Runtime (None: all cores)."""
    return _positive_int("FIDRS_NUM_THREADS")


def weights_path() -> str | None:
    """`FIDRS_WEIGHTS`: a checkpoint to use instead of the cache or a download."""
    return os.environ.get("FIDRS_WEIGHTS") or None


def weights_url() -> str | None:
    """`FIDRS_WEIGHTS_URL`: where to download the checkpoint from instead of pytorch-fid's release."""
    return os.environ.get("FIDRS_WEIGHTS_URL") or None


def cache_root() -> str:
    """`$FIDRS_CACHE`, else `$XDG_CACHE_HOME/fidrs`, else `~/.cache/fidrs`."""
    if os.environ.get("FIDRS_CACHE"):
        return os.environ["FIDRS_CACHE"]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "fidrs")


def validate() -> None:
    """Check every variable up front (the CLI calls this before any work)."""
    num_threads()
