"""Embedding files: the features of an image set as a plain `.npy` array (N × d float32), the format of
google-research/cmmd's `--ref_embed_file` (which `np.load`s it and uses every row). CMMD's statistics are the
embeddings themselves, so this is CMMD's reference file; every metric that reads features takes one as an input.

What fidrs adds lives beside the array, in `<file>.json` (the `.npy` stays readable by `np.load` and the official
tool): the backbone, mode, weights and graph the rows came from, how many images they are of, and the sha256 of
the `.npy` bytes, so a provenance file that describes another array is refused rather than believed. A `.npy`
without one (the official tool's, or one written by hand) has unknown provenance: warned, compared by feature size.

Reading is hostile-safe: only a regular file is opened, the header is parsed by NumPy's own literal parser with a
small size cap, only 2-D float32/float64 arrays in C order and at most `feature_sets.MAX_FEATURE_WIDTH` wide are
taken (their statistics are a d×d covariance), the file's size must be exactly the header plus the data it
declares (a truncated or padded file is refused), values must be finite; every refusal is an InvalidInputError
(CLI exit 2) naming the file. Writes are atomic (the array first, then its provenance)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from .display import display
from .errors import InvalidInputError, UnknownModeWarning
from .feature_sets import FeatureSet, check_feature_width
from .files import atomic_output
from .provenance import check_backbone_width
from .references.arrays import read_npy_header
from .regular_files import read_regular

EXTENSION = ".npy"
PROVENANCE_SUFFIX = ".json"  # the provenance of `x.npy` is `x.npy.json`
FORMAT = "fidrs-embeddings"
FORMAT_VERSION = 1
MAX_BYTES = 1 << 34  # 16 GiB: 5.6 M embeddings of 768 float32 values, far above any evaluation set
_MAX_HEADER = 4096  # NumPy writes ~128 bytes; its own reader caps at 10,000
_MAX_PROVENANCE_BYTES = 1 << 16
_DTYPES = {"<f4": np.float32, "<f8": np.float64, ">f4": np.float32, ">f8": np.float64}


@dataclass
class EmbeddingFile(FeatureSet):
    """A feature set read from an embedding file: used whole by CMMD (as the official `--ref_embed_file`)."""

    path: str = ""
    n_images: int | None = None  # images the rows came from (before CMMD's batch-remainder rule), if recorded
    batch_remainder: str | None = None  # the rule the rows were written under, if recorded


def provenance_path(path: str | os.PathLike) -> str:
    return os.fspath(path) + PROVENANCE_SUFFIX


def is_embedding_file(inputs: Any) -> bool:
    """Whether `inputs` names an embedding file (a local path ending in .npy)."""
    return isinstance(inputs, (str, os.PathLike)) and os.fspath(inputs).lower().endswith(EXTENSION)


def _bytes_of(path: str, max_bytes: int) -> bytes:
    try:
        return read_regular(path, max_bytes)
    except FileNotFoundError:
        raise InvalidInputError(f"{display(path)}: no such file") from None
    except InvalidInputError:
        raise
    except OSError as e:  # a symlink cycle, a permission, a folder
        raise InvalidInputError(f"{display(path)}: cannot read it ({e.strerror or e})") from None


def parse_npy(path: str, data: bytes) -> np.ndarray:
    """The N × d float array of `.npy` bytes, or InvalidInputError naming `path` and what is wrong."""
    where = display(path)
    if len(data) < 10 or data[:6] != b"\x93NUMPY":
        what = "an empty file" if not data else "an .npz archive" if data[:2] == b"PK" else "not a .npy array"
        raise InvalidInputError(f"{where}: {what}, expected a .npy array of embeddings")
    shape, fortran, dtype, offset = read_npy_header(io.BytesIO(data), where, max_header_size=_MAX_HEADER)
    if dtype.str not in _DTYPES:
        raise InvalidInputError(f"{where}: dtype {dtype.str!r}, expected float32 (or float64) embeddings")
    if fortran:
        raise InvalidInputError(f"{where}: a Fortran-order array; expected C order (np.save's default)")
    if len(shape) != 2 or shape[0] < 1 or shape[1] < 1:
        raise InvalidInputError(f"{where}: shape {shape}, expected N × d embeddings (N, d >= 1)")
    check_feature_width(where, shape[1])
    expected = offset + shape[0] * shape[1] * dtype.itemsize
    if len(data) != expected:
        state = "truncated" if len(data) < expected else "longer than its header says"
        raise InvalidInputError(f"{where}: {state} ({len(data)} bytes; the header declares {expected})")
    rows = np.frombuffer(data, dtype=dtype, offset=offset).reshape(shape)
    rows = np.ascontiguousarray(rows, dtype=np.float32)  # float32 as the official tool's .astype("float32")
    if not np.isfinite(rows).all():
        bad = np.argwhere(~np.isfinite(rows))[0]
        raise InvalidInputError(f"{where}: embedding [{bad[0]}, {bad[1]}] is not finite")
    return rows


def _text_or_none(path: str, record: dict, key: str) -> str | None:
    value = record.get(key)
    if value is not None and not (isinstance(value, str) and value):
        raise InvalidInputError(f"{display(path)}: {key} must be a non-empty string or null, got {value!r}")
    return value


def _count_or_none(path: str, record: dict, key: str) -> int | None:
    value = record.get(key)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise InvalidInputError(f"{display(path)}: {key} must be a positive integer or null, got {value!r}")
    return value


def _read_provenance(path: str, npy_sha256: str, rows: np.ndarray) -> dict[str, Any] | None:
    """The provenance record of an embedding file, checked against its array; None if there is none."""
    meta = provenance_path(path)
    if not os.path.lexists(meta):
        return None
    raw = _bytes_of(meta, _MAX_PROVENANCE_BYTES)
    try:
        record = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise InvalidInputError(f"{display(meta)}: not a readable provenance file ({type(e).__name__})") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise InvalidInputError(f"{display(meta)}: not a fidrs embedding provenance file (format {FORMAT!r})")
    if record.get("version") != FORMAT_VERSION:
        raise InvalidInputError(f"{display(meta)}: version {record.get('version')!r}, this fidrs reads 1")
    if record.get("npy_sha256") != npy_sha256:
        raise InvalidInputError(
            f"{display(meta)}: describes another array (its npy_sha256 is not that of {display(path)}): the .npy "
            "was replaced or edited after it was written; write both again, or remove the .json to use the "
            "array with unknown provenance"
        )
    checked = {key: _text_or_none(meta, record, key) for key in ("backbone", "mode", "weights_sha256", "graph_sha256")}
    checked["batch_remainder"] = _text_or_none(meta, record, "batch_remainder")
    for key in ("n", "dim", "n_images"):
        checked[key] = _count_or_none(meta, record, key)
    if (checked["n"], checked["dim"]) != rows.shape:
        raise InvalidInputError(
            f"{display(meta)}: records {checked['n']} × {checked['dim']}, the array is {rows.shape}"
        )
    claim = f"its provenance file ({display(meta)}) records"
    check_backbone_width(path, checked["backbone"], rows.shape[1], "embeddings", claim)
    return checked


def load_embeddings(path: str | os.PathLike) -> EmbeddingFile:
    """Read an embedding file (and its provenance, if it has one) as a feature set."""
    path = os.fspath(path)
    data = _bytes_of(path, MAX_BYTES)
    rows = parse_npy(path, data)
    record = _read_provenance(path, hashlib.sha256(data).hexdigest(), rows)
    if record is None:
        warnings.warn(
            f"{display(path)}: no provenance file ({display(provenance_path(path))}): the backbone, mode and "
            "weights of these embeddings are unknown and only their size is compared",
            UnknownModeWarning,
            stacklevel=3,
        )
        record = {}
    n = len(rows)
    return EmbeddingFile(
        features=rows,
        logits=None,
        paths=[f"{path}[{i}]" for i in range(n)],
        mode=record.get("mode"),  # type: ignore[arg-type]
        weights_sha256=record.get("weights_sha256"),  # type: ignore[arg-type]
        backbone=record.get("backbone"),
        graph_sha256=record.get("graph_sha256"),
        path=path,
        n_images=record.get("n_images"),
        batch_remainder=record.get("batch_remainder"),
    )


def save_embeddings(
    path: str | os.PathLike,
    rows: np.ndarray,
    source: FeatureSet,
    *,
    n_images: int | None = None,
    batch_remainder: str | None = None,
) -> str:
    """Write `rows` (float32, N × d) as `path` (.npy, what `np.load` and google-research/cmmd read) and their
    provenance (that of `source`) as `path`.json, each atomically; returns the path."""
    path = os.fspath(path)
    if not path.lower().endswith(EXTENSION):
        raise InvalidInputError(f"{display(path)}: an embedding file's name must end in {EXTENSION}")
    rows = np.ascontiguousarray(rows, dtype=np.float32)
    if rows.ndim == 2:  # a file fidrs would refuse to read back is not written
        check_backbone_width(f"{path} (not written)", source.backbone, rows.shape[1], "embeddings")
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, rows, version=(1, 0), allow_pickle=False)
    data = buffer.getvalue()
    record = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "backbone": source.backbone,
        "mode": source.mode,
        "weights_sha256": source.weights_sha256,
        "graph_sha256": source.graph_sha256,
        "n": int(rows.shape[0]),
        "dim": int(rows.shape[1]),
        "n_images": n_images,
        "batch_remainder": batch_remainder,
        "npy_sha256": hashlib.sha256(data).hexdigest(),
    }
    with atomic_output(path) as f:
        f.write(data)
    with atomic_output(provenance_path(path)) as f:
        f.write((json.dumps(record, indent=1) + "\n").encode())
    return path
