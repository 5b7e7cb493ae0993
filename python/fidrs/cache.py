"""A persistent feature cache: every output of a backbone's network keyed by the file's content hash, so
re-running a CI gate on an unchanged reference set costs only hashing.

One SQLite database per `feature_key` under `<cache dir>/features/`: everything that can change a bit of a
feature (weights, the graph's identity, the mode and its description, the decoder/preprocessing code, the
execution provider, TF32, the ONNX Runtime version, the CPU's kernels), each part taken from what it is, never
a number someone bumps. The key is stored in the database and checked when it is opened. SQLite gives atomic
writes (a crash never leaves half a row) and safe concurrent readers; each row carries a checksum of its
blobs, and a row that fails it is deleted and recomputed. Each row also records the image's pixel count, so
that a cached image over this run's `max_pixels` is refused exactly as an uncached one (the exit code never
depends on cache state).

The cache never takes a run down: a corrupt database, a read-only or full cache folder turns the cache off
for the rest of the run with one warning, and the features are computed as if there were no cache.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from . import _fidrs
from .errors import CacheWarning
from .identity import cpu_features
from .weights import cache_dir

if TYPE_CHECKING:
    from .backbones import Backbone, Mode
    from .weights import ResolvedModel


def feature_key(
    backbone: Backbone,
    model: ResolvedModel,
    mode: Mode,
    mode_label: str,
    provider: str,
    allow_tf32: bool,
    runtime_version: str,
) -> dict[str, str]:
    """Everything a cached feature depends on besides the file's bytes."""
    return {
        "backbone": backbone.name,
        "weights_sha256": model.weights_sha256,
        "graph_sha256": model.graph_sha256,
        "mode": mode_label,
        "preprocessing": repr((backbone.input_size, mode.spec)),
        "pixel_code_sha256": _fidrs.PIXEL_CODE_SHA256,
        "provider": provider,
        # TF32 changes only what an accelerator computes; on the CPU the flag changes no bit.
        "tf32": str(bool(allow_tf32) and provider != "CPUExecutionProvider"),
        "onnxruntime": runtime_version,
        "cpu": cpu_features(),
    }


def content_hash(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=20).hexdigest()


def _checksum(outputs: bytes, pixels: int) -> str:
    return hashlib.blake2b(outputs + pixels.to_bytes(8, "little"), digest_size=8).hexdigest()


def features_dir() -> Path:
    return cache_dir() / "features"


def _file_safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)


class FeatureCache:
    def __init__(self, backbone: Backbone, key: dict[str, str]) -> None:
        self.key = json.dumps(key, sort_keys=True)
        digest = hashlib.sha256(self.key.encode()).hexdigest()[:32]
        self.path = features_dir() / f"{_file_safe(backbone.name)}-{digest}.sqlite"
        self.dims = [o.dim for o in backbone.outputs]
        self.row_bytes = 4 * sum(self.dims)
        self._local = threading.local()
        self.enabled = True
        self._guard(self._open)

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = self._connection()
        with db:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(
                "CREATE TABLE IF NOT EXISTS features (key TEXT PRIMARY KEY, outputs BLOB NOT NULL, "
                "pixels INTEGER NOT NULL, checksum TEXT NOT NULL)"
            )
            db.execute("CREATE TABLE IF NOT EXISTS identity (key TEXT NOT NULL)")
            stored = db.execute("SELECT key FROM identity").fetchall()
            if not stored:
                db.execute("INSERT INTO identity VALUES (?)", (self.key,))
            elif stored != [(self.key,)]:  # another key under this name: never serve its rows
                raise sqlite3.DatabaseError(f"{self.path.name} holds features of another key")
        db.execute("SELECT COUNT(*) FROM features").fetchone()  # a corrupt file fails here, not mid-run

    def _guard(self, action, *args, default=None):
        """Run a cache operation; on any database or file-system error, turn the cache off with one warning."""
        if not self.enabled:
            return default
        try:
            return action(*args)
        except (sqlite3.Error, OSError) as e:
            self.enabled = False
            warnings.warn(
                f"feature cache in {self.path.parent} is unusable ({e}); continuing without it "
                "(`fidrs cache clear` resets it)",
                CacheWarning,
                stacklevel=2,
            )
            return default

    def _connection(self) -> sqlite3.Connection:
        # One connection per thread: the decode thread reads while the main thread writes.
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=60)
            self._local.db = db
        return db

    def get_many(self, keys: list[str | None], max_pixels: int) -> dict[int, tuple[np.ndarray, ...]]:
        """Cached outputs by position in `keys`. Corrupt rows are dropped (and so recomputed); rows of
        images over `max_pixels` are left out, so the decoder refuses them with its usual message."""
        return self._guard(self._get_many, keys, max_pixels, default={})

    def _get_many(self, keys: list[str | None], max_pixels: int) -> dict[int, tuple[np.ndarray, ...]]:
        wanted = {k for k in keys if k}
        if not wanted:
            return {}
        db = self._connection()
        marks = ",".join("?" * len(wanted))
        rows = db.execute(
            f"SELECT key, outputs, pixels, checksum FROM features WHERE key IN ({marks})", sorted(wanted)
        ).fetchall()
        found, bad = {}, []
        splits = np.cumsum(self.dims)[:-1]
        for key, outputs, pixels, checksum in rows:
            if (
                not isinstance(outputs, bytes)
                or not isinstance(pixels, int)
                or len(outputs) != self.row_bytes
                or _checksum(outputs, pixels) != checksum
            ):
                bad.append(key)
                continue
            if pixels <= max_pixels:
                found[key] = tuple(np.split(np.frombuffer(outputs, np.float32), splits))
        if bad:
            with db:
                db.executemany("DELETE FROM features WHERE key = ?", [(k,) for k in bad])
        return {i: found[k] for i, k in enumerate(keys) if k in found}

    def put_many(self, keys: list[str], outputs: list[np.ndarray], pixels: list[int]) -> None:
        """Store rows: `outputs` holds one N × dim array per output of the backbone, in its order."""
        self._guard(self._put_many, keys, outputs, pixels)

    def _put_many(self, keys: list[str], outputs: list[np.ndarray], pixels: list[int]) -> None:
        joined = np.concatenate([np.asarray(o, np.float32) for o in outputs], axis=1)
        rows = []
        for key, row, px in zip(keys, joined, pixels):
            blob = np.ascontiguousarray(row).tobytes()
            rows.append((key, blob, int(px), _checksum(blob, int(px))))
        db = self._connection()
        with db:  # one transaction: all rows or none
            db.executemany("INSERT OR REPLACE INTO features VALUES (?, ?, ?, ?)", rows)


def _graph_files() -> list[Path]:
    patterns = ("*.onnx", "*.onnx.sha256", "*.onnx.*.tmp", "*.onnx.data")
    return sorted(p for pattern in patterns for p in cache_dir().glob(pattern))


def cache_info() -> dict:
    """Entries and bytes of every feature database, and the cached ONNX graphs, in the cache directory."""
    databases = []
    for path in sorted(features_dir().glob("*.sqlite")):
        try:
            with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
                entries = db.execute("SELECT COUNT(*) FROM features").fetchone()[0]
            error = None
        except sqlite3.Error as e:
            entries, error = 0, f"unreadable: {e}"
        size = sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))
        databases.append({"path": str(path), "entries": entries, "bytes": size, **({"error": error} if error else {})})
    graphs = [{"path": str(p), "bytes": p.stat().st_size} for p in _graph_files() if p.suffix == ".onnx"]
    return {
        "directory": str(features_dir()),
        "databases": databases,
        "entries": sum(d["entries"] for d in databases),
        "bytes": sum(d["bytes"] for d in databases) + sum(g["bytes"] for g in graphs),
        "onnx_graphs": graphs,
    }


def clear_cache() -> int:
    """Delete every feature database and every cached ONNX graph; returns the number of files removed."""
    removed = 0
    for path in [*features_dir().glob("*.sqlite*"), *_graph_files()]:
        path.unlink(missing_ok=True)
        removed += 1
    return removed
