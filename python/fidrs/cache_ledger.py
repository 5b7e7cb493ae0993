"""The files fidrs itself wrote in its cache folder, so that `fidrs cache clear` removes those and nothing else: a
user's own exported graph or database kept in `$FIDRS_CACHE` is not fidrs' to delete, whatever its name.

Before fidrs creates a cache file (a feature database, a cached ONNX graph, its external data and its record), it
appends the file's path relative to the cache folder to `fidrs-written.txt` there (one line, one `O_APPEND`
write, so concurrent runs never interleave). `clear` removes the listed files that are still regular files inside
the folder (never through a symbolic link), with SQLite's side files of a listed database and the temporary files
of an interrupted atomic write of a listed file (`.<name>.<random>.tmp`, `files.atomic_output`'s names).

The ledger is read as data: a line that is absolute, leaves the folder (`..`) or is not valid UTF-8 is ignored."""

from __future__ import annotations

import os
import stat
import warnings
from pathlib import Path, PurePosixPath

from . import config
from .errors import CacheWarning, FileTooLargeError
from .regular_files import read_regular

LEDGER_NAME = "fidrs-written.txt"
MAX_LEDGER_BYTES = 16 << 20  # ~100,000 entries; a larger ledger is not fidrs' own
# The files SQLite keeps beside a database (write-ahead log, shared memory, rollback journal).
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")


def root() -> Path:
    return Path(config.cache_root())


def ledger_path() -> Path:
    return root() / LEDGER_NAME


def _relative(path: Path) -> str | None:
    """`path` relative to the cache folder, POSIX-style; None if it is not inside it."""
    base = root()
    try:
        relative = Path(os.path.abspath(path)).relative_to(os.path.abspath(base))
    except ValueError:
        return None
    text = relative.as_posix()
    return text if text not in ("", ".") else None


def record(path: str | os.PathLike) -> None:
    """Note that fidrs is about to write `path` (a file inside the cache folder; others are not recorded). A
    ledger that cannot be written costs only that `cache clear` will not remove the file: one warning."""
    relative = _relative(Path(path))
    if relative is None or "\n" in relative or "\r" in relative:
        return
    data = (relative + "\n").encode("utf-8", "surrogateescape")
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        root().mkdir(parents=True, exist_ok=True)
        fd = os.open(ledger_path(), flags | getattr(os, "O_CLOEXEC", 0), 0o644)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise OSError(f"{ledger_path()} is not a regular file")
            os.write(fd, data)
        finally:
            os.close(fd)
    except OSError as e:
        warnings.warn(
            f"cannot record {relative} in {ledger_path()} ({e}); `fidrs cache clear` will not remove it",
            CacheWarning,
            stacklevel=3,
        )


def recorded() -> list[Path]:
    """Every file the ledger lists, each once, in the order first recorded (inside the cache folder only)."""
    try:
        data = read_regular(ledger_path(), MAX_LEDGER_BYTES)
    except FileNotFoundError:
        return []
    except (OSError, FileTooLargeError) as e:
        warnings.warn(f"cannot read {ledger_path()} ({e}); nothing it lists is removed", CacheWarning, stacklevel=3)
        return []
    found: dict[str, None] = {}
    for raw in data.split(b"\n"):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            continue
        parts = PurePosixPath(line)
        if not line or parts.is_absolute() or ".." in parts.parts or "\\" in line or line == LEDGER_NAME:
            continue
        found[line] = None
    return [root() / line for line in found]


def _is_regular(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def _inside(path: Path) -> bool:
    """The file's folder, with links resolved, is the cache folder or below it (a listed path through a linked
    folder would delete outside it)."""
    folder, base = Path(os.path.realpath(path.parent)), Path(os.path.realpath(root()))
    return folder == base or base in folder.parents


def _with_side_files(path: Path) -> list[Path]:
    files = [path]
    if path.suffix == ".sqlite":
        files += [path.with_name(path.name + suffix) for suffix in SQLITE_SIDE_FILES]
    files += sorted(path.parent.glob(f".{_glob_escape(path.name)}.*.tmp"))
    return files


def _glob_escape(name: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


def clear() -> int:
    """Remove every file fidrs recorded (and their side files), then the ledger; returns how many files went.
    A listed path that is now a link, a folder or a device, or lies outside the cache folder, is left alone."""
    removed = 0
    for path in recorded():
        for candidate in _with_side_files(path):
            if _is_regular(candidate) and _inside(candidate):
                try:
                    candidate.unlink()
                    removed += 1
                except FileNotFoundError:
                    pass
    if _is_regular(ledger_path()):
        ledger_path().unlink(missing_ok=True)
    return removed
