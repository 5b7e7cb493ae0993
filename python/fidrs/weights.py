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
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from .errors import WeightsError, WeightsHashMismatchError, WeightsUnavailableError

WEIGHTS_URL = (
    "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth"
)
WEIGHTS_FILENAME = "pt_inception-2015-12-05-6726825d.pth"
# torch.hub's check: the file name carries the first hex digits of the file's sha256.
WEIGHTS_SHA256_PREFIX = "6726825d"


def cache_dir() -> Path:
    """`$FIDRS_CACHE`, else `$XDG_CACHE_HOME/fidrs`, else `~/.cache/fidrs`."""
    if os.environ.get("FIDRS_CACHE"):
        return Path(os.environ["FIDRS_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "fidrs"


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download_weights(url: str, destination: Path, sha256_prefix: str = WEIGHTS_SHA256_PREFIX) -> Path:
    """Download to `destination.part`, check the sha256 prefix, then atomically rename."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    part = destination.with_name(destination.name + ".part")
    print(f"fidrs: downloading FID Inception weights from {url}", file=sys.stderr)
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(part, "wb") as out:
            for chunk in iter(lambda: response.read(1 << 20), b""):
                digest.update(chunk)
                out.write(chunk)
    except (urllib.error.URLError, OSError) as e:
        part.unlink(missing_ok=True)
        raise WeightsUnavailableError(
            f"could not download the FID Inception weights from {url} ({e}).\n"
            f"Without network access, download {WEIGHTS_FILENAME} elsewhere and pass it with "
            f"--weights PATH (or weights=PATH, or FIDRS_WEIGHTS=PATH), or put it in {cache_dir()}."
        ) from None
    actual = digest.hexdigest()
    if not actual.startswith(sha256_prefix):
        part.unlink(missing_ok=True)
        raise WeightsHashMismatchError(
            f"downloaded weights from {url} have sha256 {actual}, expected a hash starting with "
            f"{sha256_prefix}: the file is corrupt or not the FID Inception; it was deleted"
        )
    os.replace(part, destination)
    return destination


def resolve_checkpoint(weights: str | os.PathLike | None = None) -> Path:
    """The checkpoint file to use, downloading the real one if nothing else is available."""
    explicit = weights if weights is not None else os.environ.get("FIDRS_WEIGHTS")
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            source = "weights argument" if weights is not None else "FIDRS_WEIGHTS"
            raise WeightsUnavailableError(f"{path}: weights file not found (from the {source})")
        return path
    cached = cache_dir() / WEIGHTS_FILENAME
    if cached.is_file():
        return cached
    url = os.environ.get("FIDRS_WEIGHTS_URL") or WEIGHTS_URL
    return download_weights(url, cached)


@dataclass(frozen=True)
class ResolvedModel:
    checkpoint: Path
    weights_sha256: str
    onnx_path: Path


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def resolve_model(weights: str | os.PathLike | None = None) -> ResolvedModel:
    """The ONNX model for the resolved checkpoint, built once and cached by the checkpoint's sha256."""
    from .checkpoint import load_state_dict
    from .model import GRAPH_VERSION, build_fid_inception

    checkpoint = resolve_checkpoint(weights)
    sha = sha256_file(checkpoint)
    onnx_path = cache_dir() / f"fid_inception-v{GRAPH_VERSION}-{sha}.onnx"
    if not onnx_path.is_file():
        model = build_fid_inception(load_state_dict(checkpoint))
        _atomic_write(onnx_path, model.SerializeToString())
    return ResolvedModel(checkpoint=checkpoint, weights_sha256=sha, onnx_path=onnx_path)


__all__ = [
    "WEIGHTS_URL",
    "WeightsError",
    "cache_dir",
    "download_weights",
    "resolve_checkpoint",
    "resolve_model",
    "sha256_file",
]
