"""Every environment variable fidrs reads, read and validated here, so that a bad value is one clear error
naming the variable (exit 2) wherever it is first needed."""

from __future__ import annotations

import math
import os
from functools import cache

from .errors import InvalidInputError


@cache
def num_threads() -> int:
    """`FIDRS_NUM_THREADS`: threads for decoding, linear algebra and ONNX Runtime. One rule, the Rust core's
    (`_fidrs.configured_threads`, src/threads.rs): unset or empty means every CPU this process may use,
    otherwise a whole number from 1 to `_fidrs.MAX_THREADS_PER_CPU` × those CPUs; anything else is
    InvalidInputError naming the variable and the bound. Read once per process."""
    from . import _fidrs

    return _fidrs.configured_threads()


def _suffix(backbone: str) -> str:
    return backbone.upper().replace("-", "_")


# Names fidrs had before it had several backbones; they still mean the Inception's.
_LEGACY = {"FIDRS_WEIGHTS_INCEPTION": "FIDRS_WEIGHTS", "FIDRS_WEIGHTS_URL_INCEPTION": "FIDRS_WEIGHTS_URL"}


def _per_backbone(prefix: str, backbone: str) -> str | None:
    name = f"{prefix}_{_suffix(backbone)}"
    return os.environ.get(name) or os.environ.get(_LEGACY.get(name, name)) or None


def weights_variable(backbone: str) -> str:
    """The variable naming a local checkpoint for `backbone` (FIDRS_WEIGHTS for the Inception)."""
    name = f"FIDRS_WEIGHTS_{_suffix(backbone)}"
    return _LEGACY.get(name, name)


def weights_path(backbone: str) -> str | None:
    """`FIDRS_WEIGHTS_<BACKBONE>` (`FIDRS_WEIGHTS_DINOV2_VITL14`; the Inception's is also `FIDRS_WEIGHTS`): a
    checkpoint to use instead of the cache or a download."""
    return _per_backbone("FIDRS_WEIGHTS", backbone)


def weights_url(backbone: str) -> str | None:
    """`FIDRS_WEIGHTS_URL_<BACKBONE>` (the Inception's is also `FIDRS_WEIGHTS_URL`): where to download the
    checkpoint from instead of the official URL (a mirror)."""
    return _per_backbone("FIDRS_WEIGHTS_URL", backbone)


def pin_variable(backbone: str) -> str:
    return f"FIDRS_WEIGHTS_SHA256_{_suffix(backbone)}"


def pinned_sha256(backbone: str) -> str | None:
    """`FIDRS_WEIGHTS_SHA256_<BACKBONE>`: the sha256 the checkpoint must have, whatever its origin."""
    return os.environ.get(pin_variable(backbone)) or None


def _reference_suffix(name: str) -> str:
    """`adm/imagenet-256` → `ADM_IMAGENET_256` (every run of other characters is one `_`)."""
    import re

    return re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_").upper()


def reference_variable(name: str) -> str:
    """The variable naming a local copy of the published reference `name` (`FIDRS_REF_ADM_IMAGENET_256`)."""
    return f"FIDRS_REF_{_reference_suffix(name)}"


def reference_path(name: str) -> str | None:
    """`FIDRS_REF_<NAME>`: a local copy of a published reference, used instead of the cache or a download."""
    return os.environ.get(reference_variable(name)) or None


def reference_url_variable(name: str) -> str:
    return f"FIDRS_REF_URL_{_reference_suffix(name)}"


def reference_url(name: str) -> str | None:
    """`FIDRS_REF_URL_<NAME>`: where to download a published reference from instead of its URL (a mirror)."""
    return os.environ.get(reference_url_variable(name)) or None


def reference_pin_variable(name: str) -> str:
    return f"FIDRS_REF_SHA256_{_reference_suffix(name)}"


def reference_pin(name: str) -> str | None:
    """`FIDRS_REF_SHA256_<NAME>`: the sha256 a published reference's file must have, whatever its origin."""
    return os.environ.get(reference_pin_variable(name)) or None


def cache_root() -> str:
    """`$FIDRS_CACHE`, else `$XDG_CACHE_HOME/fidrs`, else `~/.cache/fidrs`."""
    if os.environ.get("FIDRS_CACHE"):
        return os.environ["FIDRS_CACHE"]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "fidrs")


def github_step_summary() -> str | None:
    """`GITHUB_STEP_SUMMARY`: the Markdown file GitHub Actions shows on a job's summary page (set by Actions)."""
    return os.environ.get("GITHUB_STEP_SUMMARY") or None


RUN_DEADLINE_VARIABLE = "FIDRS_RUN_DEADLINE_S"
MAX_RUN_DEADLINE_S = 1e6  # about 11.6 days; larger values are refused (a timer cannot wait for ever)


def run_deadline_override() -> float | None:
    """`FIDRS_RUN_DEADLINE_S`: seconds one network run (one batch) may take before it is stopped, in
    (0, MAX_RUN_DEADLINE_S]; None (unset or empty): derived from the graph's arithmetic and the batch
    (`session_guard.run_deadline_s`). Read at each use, so a test or a long-lived process can change it."""
    value = os.environ.get(RUN_DEADLINE_VARIABLE)
    if value is None or value.strip() == "":
        return None
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not (0 < seconds <= MAX_RUN_DEADLINE_S):  # also refuses nan
        raise InvalidInputError(
            f"environment variable {RUN_DEADLINE_VARIABLE} must be a number of seconds above 0 and at most "
            f"{MAX_RUN_DEADLINE_S:.0f}, got {value!r}"
        )
    return seconds


def validate() -> None:
    """Check every variable up front (the CLI calls this before any work)."""
    num_threads()
    run_deadline_override()
