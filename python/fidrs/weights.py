"""Where the FID Inception weights come from, and the ONNX model cache.

Resolution order: the `weights=` argument / `--weights`, then `$FIDRS_WEIGHTS`, then the cached
checkpoint, then a download from pytorch-fid's release (`$FIDRS_WEIGHTS_URL` overrides the URL) to a
`.part` file that is hash-checked and then renamed into place. The ONNX graph built from a checkpoint is
cached under the checkpoint's sha256.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import time
import urllib.error
import urllib.request
import warnings
from dataclasses import dataclass
from pathlib import Path

from . import config
from .errors import WeightsError, WeightsHashMismatchError, WeightsUnavailableError
from .files import atomic_write_bytes, display, open_regular

WEIGHTS_URL = (
    "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth"
)
WEIGHTS_FILENAME = "pt_inception-2015-12-05-6726825d.pth"
# torch.hub's check: the file name carries the first hex digits of the file's sha256.
WEIGHTS_SHA256_PREFIX = "6726825d"
# The real file is 95,628,359 bytes; a download that grows past this cap is not it.
WEIGHTS_MAX_BYTES = 128 << 20
# A download that has not finished in this many seconds is abandoned, however steadily bytes trickle in.
DOWNLOAD_DEADLINE_S = 600.0
# Seconds one read may wait for the next bytes.
READ_TIMEOUT_S = 30.0


def cache_dir() -> Path:
    return Path(config.cache_root())


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open_regular(path) as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _unavailable(url: str, reason: str) -> WeightsUnavailableError:
    return WeightsUnavailableError(
        f"could not download the FID Inception weights from {url} ({reason}).\n"
        f"Without network access, download {WEIGHTS_FILENAME} elsewhere and pass it with "
        f"--weights PATH (or weights=PATH, or FIDRS_WEIGHTS=PATH), or put it in {cache_dir()}."
    )


def download_weights(
    url: str,
    destination: Path,
    sha256_prefix: str = WEIGHTS_SHA256_PREFIX,
    *,
    max_bytes: int = WEIGHTS_MAX_BYTES,
    deadline_s: float = DOWNLOAD_DEADLINE_S,
) -> Path:
    """Download to a `.part` file of this process's own, bounded in size and in total time; check the sha256
    prefix of what was written and fsynced, then atomically rename it into place. Two processes downloading
    at once each write their own part and each rename a complete, verified file."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    print(f"fidrs: downloading FID Inception weights from {url}", file=sys.stderr)
    start = time.monotonic()
    digest = hashlib.sha256()
    received = 0
    try:
        with urllib.request.urlopen(url, timeout=READ_TIMEOUT_S) as response:
            declared = response.headers.get("Content-Length")
            if declared is not None and declared.isdigit() and int(declared) > max_bytes:
                raise _unavailable(url, f"the server announces {declared} bytes, over the cap of {max_bytes}")
            with _part_file(destination) as (out, part):
                while True:
                    if time.monotonic() - start > deadline_s:
                        raise _unavailable(url, f"not finished after {deadline_s:.0f} s")
                    chunk = response.read1(1 << 16)  # returns what one read delivers: the deadline stays live
                    if not chunk:
                        break
                    received += len(chunk)
                    if received > max_bytes:
                        raise _unavailable(url, f"more than {max_bytes} bytes: not the FID Inception checkpoint")
                    digest.update(chunk)
                    out.write(chunk)
                actual = digest.hexdigest()
                if not actual.startswith(sha256_prefix):
                    raise WeightsHashMismatchError(
                        f"downloaded weights from {url} have sha256 {actual}, expected a hash starting with "
                        f"{sha256_prefix}: the file is corrupt or not the FID Inception; it was deleted"
                    )
                out.flush()
                os.fsync(out.fileno())
                os.replace(part, destination)
    except (urllib.error.URLError, OSError) as e:
        raise _unavailable(url, str(getattr(e, "reason", e))) from None
    return destination


class _part_file:
    """A `.part` file unique to this process beside `destination`, removed unless it was renamed."""

    def __init__(self, destination: Path) -> None:
        self.part = destination.with_name(f"{destination.name}.{os.getpid()}.{time.monotonic_ns()}.part")

    def __enter__(self):
        from . import _fidrs

        self.file = open(self.part, "xb")
        _fidrs.track_pending_output(str(self.part), True)  # a Ctrl-C that ends the CLI removes it
        return self.file, self.part

    def __exit__(self, *exc) -> None:
        from . import _fidrs

        self.file.close()
        self.part.unlink(missing_ok=True)
        _fidrs.track_pending_output(str(self.part), False)


def resolve_checkpoint(weights: str | os.PathLike | None = None) -> Path:
    """The checkpoint file to use, downloading the real one if nothing else is available."""
    explicit = weights if weights is not None else config.weights_path()
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            source = "weights argument" if weights is not None else "FIDRS_WEIGHTS"
            what = "not a regular file" if path.exists() else "weights file not found"
            raise WeightsUnavailableError(f"{display(path)}: {what} (from the {source})")
        return path
    cached = cache_dir() / WEIGHTS_FILENAME
    if cached.exists():
        return cached
    return download_weights(config.weights_url() or WEIGHTS_URL, cached)


@dataclass(frozen=True)
class ResolvedModel:
    checkpoint: Path
    weights_sha256: str
    onnx_path: Path


def _graph_is_intact(onnx_path: Path) -> bool:
    """A cached graph is used only when its bytes hash to what was recorded when it was written."""
    record = onnx_path.with_name(onnx_path.name + ".sha256")
    try:
        with open_regular(record) as f:
            expected = f.read(128).decode("ascii", "replace").strip()
        return sha256_file(onnx_path) == expected
    except (OSError, WeightsError, ValueError):
        return False


def resolve_model(weights: str | os.PathLike | None = None) -> ResolvedModel:
    """The ONNX model for the resolved checkpoint, built once and cached by the checkpoint's sha256. A cached
    graph that is truncated, foreign or unrecorded is rebuilt from the checkpoint."""
    from .checkpoint import load_state_dict
    from .model import GRAPH_VERSION, build_fid_inception

    checkpoint = resolve_checkpoint(weights)
    try:
        sha = sha256_file(checkpoint)
    except OSError as e:
        raise WeightsError(f"{display(checkpoint)}: cannot read the checkpoint ({e.strerror or e})") from None
    if checkpoint == cache_dir() / WEIGHTS_FILENAME and not sha.startswith(WEIGHTS_SHA256_PREFIX):
        raise WeightsHashMismatchError(
            f"{display(checkpoint)}: the cached checkpoint has sha256 {sha}, expected a hash starting with "
            f"{WEIGHTS_SHA256_PREFIX}; delete it (or run `fidrs cache clear`) to download it again"
        )
    onnx_path = cache_dir() / f"fid_inception-v{GRAPH_VERSION}-{sha}.onnx"
    if not _graph_is_intact(onnx_path):
        state = load_state_dict(checkpoint)
        try:
            data = build_fid_inception(state).SerializeToString()
        except WeightsError as e:
            raise WeightsError(f"{display(checkpoint)}: {e}") from None
        try:
            _write_graph(onnx_path, data)
        except OSError as e:  # a read-only or full cache costs the rebuild next time, never this run
            warnings.warn(
                f"cannot cache the ONNX graph in {display(onnx_path.parent)} ({e}); using a temporary copy",
                stacklevel=2,
            )
            onnx_path = Path(tempfile.mkdtemp(prefix="fidrs-")) / onnx_path.name
            _write_graph(onnx_path, data)
    return ResolvedModel(checkpoint=checkpoint, weights_sha256=sha, onnx_path=onnx_path)


def _write_graph(onnx_path: Path, data: bytes) -> None:
    """The graph, then the record of its hash: a graph without a matching record is never trusted."""
    onnx_path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(onnx_path, data)
    atomic_write_bytes(onnx_path.with_name(onnx_path.name + ".sha256"), hashlib.sha256(data).hexdigest().encode())


__all__ = [
    "WEIGHTS_URL",
    "WeightsError",
    "cache_dir",
    "download_weights",
    "resolve_checkpoint",
    "resolve_model",
    "sha256_file",
]
