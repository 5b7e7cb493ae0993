"""Reading and writing files the way every fidrs reader must: only regular files are opened (a FIFO, socket
or device named `x.png` would block or never end), reads are capped, and writes are atomic (a temporary file in
the same folder, flushed and fsynced, then `os.replace`d), so a failed write leaves the previous file intact."""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from .display import display
from .errors import FileTooLargeError, InvalidInputError, NotRegularFileError, OutputError


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISDIR, "a directory"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def open_regular(path: str | os.PathLike) -> BinaryIO:
    """Open for reading without blocking on a FIFO, and refuse anything but a regular file."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    fd = os.open(path, flags)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotRegularFileError(f"{display(path)}: {_kind(mode)}, not a regular file")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_regular(path: str | os.PathLike, max_bytes: int) -> bytes:
    """The bytes of a regular file of at most `max_bytes` (checked before reading, and while reading, in case
    the file grows)."""
    with open_regular(path) as f:
        size = os.fstat(f.fileno()).st_size
        if size > max_bytes:
            raise FileTooLargeError(f"{display(path)}: {size} bytes is over the limit of {max_bytes}")
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise FileTooLargeError(f"{display(path)}: grew past the limit of {max_bytes} bytes while being read")
    return data


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """Write `path` all or nothing: the caller writes to a temporary file beside it, which replaces `path`
    only once it is complete and on disk."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise InvalidInputError(f"{display(path)}: the folder {display(parent)} does not exist")
    from . import _fidrs

    fd, tmp = tempfile.mkstemp(dir=parent, prefix=f".{path.name}.", suffix=".tmp")
    _fidrs.track_pending_output(tmp, True)  # a Ctrl-C that ends the CLI removes it
    try:
        os.fchmod(fd, 0o666 & ~_umask()) if hasattr(os, "fchmod") else None  # mkstemp makes 0600
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:  # disk full, `ulimit -f`, a read-only folder: the previous file is untouched
        Path(tmp).unlink(missing_ok=True)
        raise OutputError(
            f"{display(path)}: cannot write ({e.strerror or e}); the previous file is unchanged"
        ) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    finally:
        _fidrs.track_pending_output(tmp, False)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_output(path) as f:
        f.write(data)


def read_npz(path: str | os.PathLike, keys: list[str] | None = None, max_member_bytes: int = 1 << 34) -> dict:
    """Arrays of an `.npz` archive (all, or those of `keys` that it has), without pickle: a truncated,
    empty or foreign file, a `.npy` renamed `.npz`, a damaged member or one declared over `max_member_bytes`
    raises InvalidInputError naming the file and the reason."""

    import numpy as np

    with open_regular(path) as f:
        head = f.read(4)
        if head[:2] != b"PK":
            what = "empty" if not head else "a .npy array, not an .npz archive" if head == b"\x93NUM" else "not an .npz"
            raise InvalidInputError(f"{display(path)}: {what} file")
        f.seek(0)
        try:
            with np.load(f, allow_pickle=False) as data:
                wanted = data.files if keys is None else [k for k in keys if k in data.files]
                out = {"__files__": list(data.files)}
                for key in wanted:
                    info = data.zip.getinfo(f"{key}.npy")
                    if info.file_size > max_member_bytes:
                        raise InvalidInputError(
                            f"{display(path)}: member {key!r} declares {info.file_size} bytes, over the limit"
                        )
                    value = data[key]
                    if not isinstance(value, np.ndarray):  # a member that is no .npy comes back as raw bytes
                        raise InvalidInputError(f"{display(path)}: member {key!r} is not an array")
                    out[key] = value
                return out
        except InvalidInputError:
            raise
        except Exception as e:  # noqa: BLE001 - zipfile, zlib and numpy format errors all mean a damaged file
            raise InvalidInputError(f"{display(path)}: not a readable .npz file ({type(e).__name__}: {e})") from None
