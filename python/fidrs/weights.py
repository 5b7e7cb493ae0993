"""Where a backbone's weights come from, and the ONNX model cache.

Resolution order: the `weights=` argument / `--weights`, then the backbone's environment variable
(`config.weights_path`), then the cached checkpoint, then a download from the official URL (`config.weights_url`
overrides it) through `fidrs.download` (the one bounded, verified, atomic download of weights and references).

Verification: a backbone whose publisher gives a hash (Inception: the torch.hub name's prefix) is checked
against it. One without (DINOv2) is checked for its size and its structure (every key, shape and dtype of the
official file), and the sha256 of the first verified file is recorded beside it: a later cached file that
differs is refused. Any file can be pinned to a sha256 (`weights_sha256=`, `--weights-sha256`,
`config.pinned_sha256`). The ONNX graph built from a checkpoint is cached under backbone, graph version and the
checkpoint's sha256.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from . import cache_ledger, config
from .display import display
from .download import DEADLINE_S, download
from .errors import CacheWarning, InvalidInputError, WeightsError, WeightsHashMismatchError, WeightsUnavailableError
from .files import atomic_write_bytes
from .identity import memoised, sha256_file
from .regular_files import open_regular

if TYPE_CHECKING:
    from .backbones import Backbone


def cache_dir() -> Path:
    return Path(config.cache_root())


def _unavailable(backbone: Backbone, url: str, reason: str) -> WeightsUnavailableError:
    return WeightsUnavailableError(
        f"could not download the {backbone.title} weights from {url} ({reason}).\n"
        f"Without network access, download {backbone.weights.filename} elsewhere and pass it with "
        f"--weights PATH (or weights=PATH, or {config.weights_variable(backbone.name)}=PATH), or put it in "
        f"{cache_dir()}."
    )


def recorded_sha256_path(checkpoint: Path) -> Path:
    """Where the sha256 of the first verified copy of a publisher-unhashed checkpoint is recorded."""
    return checkpoint.with_name(checkpoint.name + ".sha256")


def _verify_structure(backbone: Backbone, path: Path, origin: str) -> None:
    """The official file's structure (keys, shapes, dtypes): for files nobody published a hash of."""
    try:
        backbone.check_official(backbone.load_state(path))
    except WeightsError as e:
        raise WeightsError(f"{origin} is not the official {backbone.title} checkpoint: {e}") from None


def download_weights(
    backbone: Backbone,
    url: str,
    destination: Path,
    *,
    deadline_s: float = DEADLINE_S,
) -> Path:
    """Download through `fidrs.download` (a `.part` of this process's own, bounded in size and in total time,
    fsynced, then atomically renamed into place), verified first: the published sha256 prefix, else the
    official structure, whose sha256 is then recorded beside the file."""
    published = backbone.weights.sha256

    def verify(part: Path, sha256: str) -> None:
        if published is None:
            _verify_structure(backbone, part, f"the file downloaded from {url} (deleted)")
            atomic_write_bytes(recorded_sha256_path(destination), sha256.encode())

    download(
        url,
        destination,
        max_bytes=backbone.weights.max_bytes,
        unavailable=lambda reason: _unavailable(backbone, url, reason),
        mismatch=lambda message: WeightsHashMismatchError(f"{backbone.title} weights: {message}"),
        sha256=published,
        verify=verify,
        deadline_s=deadline_s,
    )
    return destination


def official_path(backbone: Backbone) -> Path:
    """Where the official checkpoint lives in the cache."""
    return cache_dir() / backbone.weights.filename


def resolve_checkpoint(backbone: Backbone, weights: str | os.PathLike | None = None) -> Path:
    """The checkpoint file to use, downloading the official one if nothing else is available."""
    explicit = weights if weights is not None else config.weights_path(backbone.name)
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            source = "weights argument" if weights is not None else config.weights_variable(backbone.name)
            what = "not a regular file" if path.exists() else "weights file not found"
            raise WeightsUnavailableError(f"{display(path)}: {what} (from the {source})")
        return path
    cached = official_path(backbone)
    if cached.exists():
        return cached
    return download_weights(backbone, config.weights_url(backbone.name) or backbone.weights.url, cached)


@dataclass(frozen=True)
class ResolvedModel:
    backbone: Backbone
    checkpoint: Path
    weights_sha256: str
    onnx_path: Path
    graph_sha256: str  # what the graph is (identity.graph_sha256): part of the feature cache key and of statistics


def _check_official_copy(backbone: Backbone, checkpoint: Path, sha: str) -> None:
    """The cached official file must be what was verified: the published hash prefix, or the sha256 recorded
    when it was first verified (a file put there by hand is verified and recorded now)."""
    published = backbone.weights.sha256
    if published is not None:
        if not sha.startswith(published):
            raise WeightsHashMismatchError(
                f"{display(checkpoint)}: the cached checkpoint has sha256 {sha}, expected a hash starting with "
                f"{published}; delete it to download it again"
            )
        return
    record = recorded_sha256_path(checkpoint)
    try:
        with open_regular(record) as f:
            recorded = f.read(128).decode("ascii", "replace").strip()
    except FileNotFoundError:
        _verify_structure(backbone, checkpoint, display(checkpoint))
        atomic_write_bytes(record, sha.encode())
        return
    except (OSError, WeightsError) as e:
        raise WeightsError(f"{display(record)}: cannot read the recorded sha256 ({e})") from None
    if recorded != sha:
        raise WeightsHashMismatchError(
            f"{display(checkpoint)}: sha256 {sha} differs from {recorded}, recorded when this file was first "
            f"verified; delete both files to download it again"
        )


# protobuf cannot serialise a message of 2 GiB or more: above this, initialisers go to `<graph>.data` (ONNX
# external data, which ONNX Runtime reads beside the graph). DINOv2 ViT-g/14 has 4.5 GB of weights.
EXTERNAL_DATA_BYTES = 1 << 30


def graph_path(backbone: Backbone, weights_sha256: str) -> Path:
    """Where the graph of a checkpoint is cached: under the converter's identity and the checkpoint's sha256."""
    return cache_dir() / f"{backbone.name}-c{backbone.converter_sha256[:16]}-{weights_sha256}.onnx"


def _data_path(onnx_path: Path) -> Path:
    return onnx_path.with_name(onnx_path.name + ".data")


def _graph_digest(onnx_path: Path) -> str:
    """sha256 of the graph, and of its external data file where it has one."""
    digest = sha256_file(onnx_path)
    data = _data_path(onnx_path)
    return digest + ":" + sha256_file(data) if data.exists() else digest


def _record_path(onnx_path: Path) -> Path:
    return onnx_path.with_name(onnx_path.name + ".sha256")


def _intact_graph_sha256(onnx_path: Path) -> str | None:
    """The identity of a cached graph, or None unless its bytes hash to what was recorded when it was written
    (the record's first line; its second is the graph's identity, computed when it was built)."""

    def check() -> str | None:
        try:
            with open_regular(_record_path(onnx_path)) as f:
                lines = f.read(512).decode("ascii", "replace").split()
            if len(lines) != 2 or _graph_digest(onnx_path) != lines[0]:
                return None
            return lines[1]
        except (OSError, WeightsError, ValueError):
            return None

    return memoised("graph", (onnx_path, _data_path(onnx_path), _record_path(onnx_path)), check)


def built_graph_sha256(graph: bytes, data: bytes | None) -> str:
    """The identity of a graph fidrs built: the builder writes no fidrs metadata, so without external data the
    canonical form is the graph's bytes as they are (tests/plumbing/test_cache_identity.py checks this)."""
    if data is None:
        return hashlib.sha256(graph).hexdigest()
    import onnx

    from .identity import graph_sha256

    return graph_sha256(onnx.load_model_from_string(graph), data)


def serialise_graph(model, data_name: str) -> tuple[bytes, bytes | None]:
    """The graph's bytes, and its external data when the initialisers are too large for one protobuf message
    (each initialiser's raw bytes moved into one blob, referenced by offset and length)."""
    total = sum(len(t.raw_data) for t in model.graph.initializer)
    if total < EXTERNAL_DATA_BYTES:
        return model.SerializeToString(), None
    from onnx import TensorProto

    blob = bytearray()
    for tensor in model.graph.initializer:
        if len(tensor.raw_data) < 1024:  # shapes and indices stay inline: shape inference reads them
            continue
        offset = len(blob)
        blob += tensor.raw_data
        tensor.ClearField("raw_data")
        tensor.data_location = TensorProto.EXTERNAL
        del tensor.external_data[:]
        for key, value in (("location", data_name), ("offset", str(offset)), ("length", str(len(blob) - offset))):
            entry = tensor.external_data.add()
            entry.key, entry.value = key, value
    return model.SerializeToString(), bytes(blob)


def _check_pin(checkpoint: Path, sha: str, pinned: str | None, source: str) -> None:
    if pinned is None:
        return
    expected = pinned.strip().lower()
    if len(expected) != 64 or any(c not in "0123456789abcdef" for c in expected):
        raise InvalidInputError(f"{source} must be 64 hex digits (a sha256), got {pinned!r}")
    if sha != expected:
        raise WeightsHashMismatchError(f"{display(checkpoint)}: sha256 {sha}, but {source} pins {expected}")


def resolve_model(
    backbone: Backbone | str | None = None,
    weights: str | os.PathLike | None = None,
    weights_sha256: str | None = None,
) -> ResolvedModel:
    """The ONNX model for the backbone's resolved checkpoint, built once and cached by backbone, graph version and
    the checkpoint's sha256. A cached graph that is truncated, foreign or unrecorded is rebuilt."""
    from . import backbones

    backbone = backbones.get(backbone)
    checkpoint = resolve_checkpoint(backbone, weights)
    try:
        size = os.stat(checkpoint).st_size
        # Before hashing: a huge (or sparse) file would otherwise be read whole first.
        if size > backbone.weights.max_bytes:
            raise WeightsError(
                f"{display(checkpoint)}: {size} bytes, more than the {backbone.weights.max_bytes} bytes "
                f"a {backbone.title} checkpoint can have"
            )
        sha = sha256_file(checkpoint)
    except OSError as e:
        raise WeightsError(f"{display(checkpoint)}: cannot read the checkpoint ({e.strerror or e})") from None
    if weights_sha256 is not None:
        _check_pin(checkpoint, sha, weights_sha256, "weights_sha256")
    else:
        _check_pin(checkpoint, sha, config.pinned_sha256(backbone.name), config.pin_variable(backbone.name))
    official = checkpoint == official_path(backbone)
    if official:
        _check_official_copy(backbone, checkpoint, sha)
    onnx_path = graph_path(backbone, sha)
    graph_sha = _intact_graph_sha256(onnx_path)
    if graph_sha is None:
        state = backbone.load_state(checkpoint)  # its errors name the file already
        try:
            (backbone.check_official if official else backbone.check_state)(state)
            graph, data = serialise_graph(backbone.build_graph(state), _data_path(onnx_path).name)
        except WeightsError as e:
            raise WeightsError(f"{display(checkpoint)}: {e}") from None
        graph_sha = built_graph_sha256(graph, data)
        try:
            _write_graph(onnx_path, graph, data, graph_sha)
        except OSError as e:  # a read-only or full cache costs the rebuild next time, never this run
            warnings.warn(
                f"cannot cache the ONNX graph in {display(onnx_path.parent)} ({e}); using a temporary copy",
                CacheWarning,
                stacklevel=2,
            )
            onnx_path = Path(tempfile.mkdtemp(prefix="fidrs-")) / onnx_path.name
            _write_graph(onnx_path, graph, data, graph_sha)
    return ResolvedModel(backbone, checkpoint, sha, onnx_path, graph_sha)


def _write_graph(onnx_path: Path, graph: bytes, data: bytes | None, graph_sha: str) -> None:
    """The external data, the graph, then the record of their hashes and of the graph's identity: a graph
    without a matching record is never trusted."""
    onnx_path.parent.mkdir(parents=True, exist_ok=True)
    for path in ([_data_path(onnx_path)] if data is not None else []) + [onnx_path, _record_path(onnx_path)]:
        cache_ledger.record(path)  # before writing: `cache clear` removes what fidrs wrote, and only that
    digest = hashlib.sha256(graph).hexdigest()
    if data is not None:
        atomic_write_bytes(_data_path(onnx_path), data)
        digest += ":" + hashlib.sha256(data).hexdigest()
    else:
        _data_path(onnx_path).unlink(missing_ok=True)
    atomic_write_bytes(onnx_path, graph)
    atomic_write_bytes(_record_path(onnx_path), f"{digest}\n{graph_sha}\n".encode())


__all__ = [
    "WeightsError",
    "cache_dir",
    "download_weights",
    "resolve_checkpoint",
    "resolve_model",
    "sha256_file",
]
