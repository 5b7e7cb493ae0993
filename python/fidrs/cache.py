"""A persistent feature cache: pool3 + logits keyed by the file's content hash, the preprocessing mode and
the weights, so re-running a CI gate on an unchanged reference set costs only hashing.

One SQLite database per (weights, mode, graph version) under `<cache dir>/features/`. SQLite gives atomic
writes (a crash never leaves half a row) and safe concurrent readers; each row carries a checksum of its
blobs, and a row that fails it is deleted and recomputed.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from pathlib import Path

import numpy as np

from .weights import cache_dir

# Bump when decoding or preprocessing changes the pixels the network sees: old entries are then ignored.
PREPROCESS_VERSION = 1
_FEATURE_BYTES, _LOGIT_BYTES = 2048 * 4, 1008 * 4


def content_hash(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=20).hexdigest()


def read_bytes(path: str) -> bytes | None:
    """The file's bytes, or None when it cannot be read (the path-based decoder then reports why)."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def _checksum(pool3: bytes, logits: bytes) -> str:
    return hashlib.blake2b(pool3 + logits, digest_size=8).hexdigest()


def features_dir() -> Path:
    return cache_dir() / "features"


class FeatureCache:
    def __init__(self, weights_sha256: str, mode: str, graph_version: int, pad_color=(255, 255, 255)) -> None:
        variant = f"{mode}-{'_'.join(map(str, pad_color))}" if mode == "pad" else mode
        name = f"{weights_sha256[:16]}-{variant}-g{graph_version}-p{PREPROCESS_VERSION}.sqlite"
        self.path = features_dir() / name
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self.corrupt_entries = 0
        with self._connection() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(
                "CREATE TABLE IF NOT EXISTS features "
                "(key TEXT PRIMARY KEY, pool3 BLOB NOT NULL, logits BLOB NOT NULL, checksum TEXT NOT NULL)"
            )

    def _connection(self) -> sqlite3.Connection:
        # One connection per thread: the decode thread reads while the main thread writes.
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=60)
            self._local.db = db
        return db

    def get_many(self, keys: list[str | None]) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """Cached (pool3, logits) by position in `keys`; corrupt rows are dropped (and so recomputed)."""
        wanted = {k for k in keys if k}
        if not wanted:
            return {}
        db = self._connection()
        marks = ",".join("?" * len(wanted))
        rows = db.execute(
            f"SELECT key, pool3, logits, checksum FROM features WHERE key IN ({marks})", sorted(wanted)
        ).fetchall()
        found, bad = {}, []
        for key, pool3, logits, checksum in rows:
            if len(pool3) != _FEATURE_BYTES or len(logits) != _LOGIT_BYTES or _checksum(pool3, logits) != checksum:
                bad.append(key)
                continue
            found[key] = (np.frombuffer(pool3, np.float32), np.frombuffer(logits, np.float32))
        if bad:
            self.corrupt_entries += len(bad)
            with db:
                db.executemany("DELETE FROM features WHERE key = ?", [(k,) for k in bad])
        return {i: found[k] for i, k in enumerate(keys) if k in found}

    def put_many(self, keys: list[str], pool3: np.ndarray, logits: np.ndarray) -> None:
        rows = []
        for key, f, lg in zip(keys, pool3, logits):
            fb, lb = np.ascontiguousarray(f, np.float32).tobytes(), np.ascontiguousarray(lg, np.float32).tobytes()
            rows.append((key, fb, lb, _checksum(fb, lb)))
        db = self._connection()
        with db:  # one transaction: all rows or none
            db.executemany("INSERT OR REPLACE INTO features VALUES (?, ?, ?, ?)", rows)


def cache_info() -> dict:
    """Entries and bytes of every feature database in the cache directory."""
    databases = []
    for path in sorted(features_dir().glob("*.sqlite")):
        with sqlite3.connect(path) as db:
            entries = db.execute("SELECT COUNT(*) FROM features").fetchone()[0]
        size = sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))
        databases.append({"path": str(path), "entries": entries, "bytes": size})
    return {
        "directory": str(features_dir()),
        "databases": databases,
        "entries": sum(d["entries"] for d in databases),
        "bytes": sum(d["bytes"] for d in databases),
    }


def clear_cache() -> int:
    """Delete every feature database; returns the number of files removed."""
    removed = 0
    for path in features_dir().glob("*.sqlite*"):
        path.unlink()
        removed += 1
    return removed
