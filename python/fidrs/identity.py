"""What a feature is a function of, each part named by what it is rather than by a number someone bumps:

- a file's sha256 (checkpoints, graphs), memoised per file identity (path, device, inode, size, mtime), so a
  process that scores many times hashes a multi-GB checkpoint once;
- a graph's identity: the sha256 of the ONNX graph with fidrs' own metadata (`fidrs.*` properties) removed and
  external-data locations blanked, followed by its external data. An export of a graph and the graph itself
  are one identity; a graph whose tensors or nodes were changed is another, whatever its metadata claims;
- the runtime that computes the features: execution provider, TF32, ONNX Runtime version, the CPU's
  instruction-set extensions (ONNX Runtime picks its kernels by them).

The decoder/preprocessing code identity is `_fidrs.PIXEL_CODE_SHA256` (computed by build.rs).
"""

from __future__ import annotations

import hashlib
import os
import platform
import threading
from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path

from .regular_files import open_regular

_memo: dict[tuple, str] = {}
_memo_lock = threading.Lock()


def file_key(path: str | os.PathLike) -> tuple:
    """What identifies a file's contents without reading them: a changed file gets a new mtime or size."""
    st = os.stat(path)
    return (os.path.realpath(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _sha256_of(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open_regular(path) as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_file(path: str | os.PathLike) -> str:
    """The file's sha256, computed once per file identity in this process."""
    key = ("sha256", *file_key(path))
    with _memo_lock:
        if key in _memo:
            return _memo[key]
    value = _sha256_of(path)
    with _memo_lock:
        _memo[key] = value
    return value


def memoised(kind: str, paths: Iterable[str | os.PathLike], compute):
    """`compute()` once per identity of all `paths` (e.g. a graph and its external data)."""
    key = (kind, *(file_key(p) if os.path.exists(p) else (os.fspath(p), None) for p in paths))
    with _memo_lock:
        if key in _memo:
            return _memo[key]
    value = compute()
    with _memo_lock:
        _memo[key] = value
    return value


def _canonical_graph_bytes(model) -> bytes:
    """The graph's serialisation without fidrs' metadata and with external-data locations blanked (an export
    renames its data file). `model` is an onnx.ModelProto; it is not modified."""
    canonical = type(model)()
    canonical.CopyFrom(model)
    kept = [p for p in canonical.metadata_props if not p.key.startswith("fidrs.")]
    del canonical.metadata_props[:]
    canonical.metadata_props.extend(kept)
    for tensor in canonical.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = ""
    return canonical.SerializeToString()


def external_data_files(model) -> list[str]:
    """The external-data locations a graph names, each once, in the order its tensors name them."""
    locations: dict[str, None] = {}
    for tensor in model.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                locations[entry.value] = None
    return list(locations)


def graph_sha256(model, data: bytes | Sequence[Path] = ()) -> str:
    """A graph's identity (module docstring): `model` an onnx.ModelProto (its external data not loaded), `data`
    its external data: bytes, or the files holding it (in `external_data_files` order)."""
    digest = hashlib.sha256(_canonical_graph_bytes(model))
    if isinstance(data, (bytes, bytearray)):
        digest.update(data)
    else:
        for path in data:
            with open_regular(path) as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    digest.update(chunk)
    return digest.hexdigest()


# ONNX Runtime's CPU kernels (MLAS) are chosen by these extensions; two machines that differ in them can give
# features that differ in the last bits.
_KERNEL_FLAGS = frozenset(
    {"sse4_1", "sse4_2", "avx", "avx2", "fma", "f16c", "avx_vnni", "avx512f", "avx512bw", "avx512vl", "avx512dq"}
    | {"avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8", "asimd", "sve", "sve2"}
)


@lru_cache(maxsize=1)
def cpu_features() -> str:
    """The machine and the instruction-set extensions that decide which kernels ONNX Runtime runs."""
    flags: set[str] = set()
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    flags = set(line.split(":", 1)[1].split()) & _KERNEL_FLAGS
                    break
    except OSError:
        pass
    detail = " ".join(sorted(flags)) if flags else platform.processor()
    return f"{platform.machine()} {detail}".strip()
