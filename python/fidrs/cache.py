"""A persistent feature cache: pool3 + logits keyed by the file's content hash, the preprocessing mode and
the weights, so re-running a CI gate on an unchanged reference set costs only hashing.

One SQLite database per (weights, mode, graph version) under `<cache dir>/features/`. SQLite gives atomic
writes (a crash never leaves half a row) and safe concurrent readers; each row carries a checksum of its
blobs, and a row that fails it is deleted and recomputed. Each row also records the image's pixel count, so
that a cached image over this run's `max_pixels` is refused exactly as an uncached one (the exit code never
depends on cache state).

The cache never takes a run down: a corrupt database, a read-only or full cache folder turns the cache off
for the rest of the run with one warning, and the features are computed as if there were no cache.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
import warnings
from pathlib import Path

import numpy as np

from .weights import cache_dir

# Bump when decoding or preprocessing changes the pixels the network sees, or which files decode at all:
# old entries are then ignored. 2: truncated files are refused as Pillow refuses them; pixel counts stored.
PREPROCESS_VERSION = 2
_FEATURE_BYTES, _LOGIT_BYTES = 2048 * 4, 1008 * 4


def content_hash(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=20).hexdigest()


def _checksum(pool3: bytes, logits: bytes, pixels: int) -> str:
    return hashlib.blake2b(pool3 + logits + pixels.to_bytes(8, "little"), digest_size=8).hexdigest()


def features_dir() -> Path:
    return cache_dir() / "features"


class FeatureCache:
    def __init__(self, weights_sha256: str, mode: str, graph_version: int, pad_color=(255, 255, 255)) -> None:
        variant = f"{mode}-{'_'.join(map(str, pad_color))}" if mode == "pad" else mode
        name = f"{weights_sha256[:16]}-{variant}-g{graph_version}-p{PREPROCESS_VERSION}.sqlite"
        self.path = features_dir() / name
        self._local = threading.local()
        self.corrupt_entries = 0
        self.enabled = True
        self._guard(self._open)

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = self._connection()
        with db:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(
                "CREATE TABLE IF NOT EXISTS features (key TEXT PRIMARY KEY, pool3 BLOB NOT NULL, "
                "logits BLOB NOT NULL, pixels INTEGER NOT NULL, checksum TEXT NOT NULL)"
            )
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

    def get_many(self, keys: list[str | None], max_pixels: int) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """Cached (pool3, logits) by position in `keys`. Corrupt rows are dropped (and so recomputed); rows of
        images over `max_pixels` are left out, so the decoder refuses them with its usual message."""
        return self._guard(self._get_many, keys, max_pixels, default={})

    def _get_many(self, keys: list[str | None], max_pixels: int) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        wanted = {k for k in keys if k}
        if not wanted:
            return {}
        db = self._connection()
        marks = ",".join("?" * len(wanted))
        rows = db.execute(
            f"SELECT key, pool3, logits, pixels, checksum FROM features WHERE key IN ({marks})", sorted(wanted)
        ).fetchall()
        found, bad = {}, []
        for key, pool3, logits, pixels, checksum in rows:
            if (
                not isinstance(pool3, bytes)
                or not isinstance(logits, bytes)
                or not isinstance(pixels, int)
                or len(pool3) != _FEATURE_BYTES
                or len(logits) != _LOGIT_BYTES
                or _checksum(pool3, logits, pixels) != checksum
            ):
                bad.append(key)
                continue
            if pixels <= max_pixels:
                found[key] = (np.frombuffer(pool3, np.float32), np.frombuffer(logits, np.float32))
        if bad:
            self.corrupt_entries += len(bad)
            with db:
                db.executemany("DELETE FROM features WHERE key = ?", [(k,) for k in bad])
        return {i: found[k] for i, k in enumerate(keys) if k in found}

    def put_many(self, keys: list[str], pool3: np.ndarray, logits: np.ndarray, pixels: list[int]) -> None:
        self._guard(self._put_many, keys, pool3, logits, pixels)

    def _put_many(self, keys: list[str], pool3: np.ndarray, logits: np.ndarray, pixels: list[int]) -> None:
        rows = []
        for key, f, lg, px in zip(keys, pool3, logits, pixels):
            fb, lb = np.ascontiguousarray(f, np.float32).tobytes(), np.ascontiguousarray(lg, np.float32).tobytes()
            rows.append((key, fb, lb, int(px), _checksum(fb, lb, int(px))))
        db = self._connection()
        with db:  # one transaction: all rows or none
            db.executemany("INSERT OR REPLACE INTO features VALUES (?, ?, ?, ?, ?)", rows)


class CacheWarning(UserWarning):
    """The feature cache could not be used; the run goes on without it."""


def _graph_files() -> list[Path]:
    return sorted(p for pattern in ("*.onnx", "*.onnx.sha256", "*.onnx.*.tmp") for p in cache_dir().glob(pattern))


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
