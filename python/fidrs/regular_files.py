"""Reading files the way every fidrs reader must: only a regular file is opened (a FIFO, socket or device named
`x.png` would block or never end), and a whole-file read is capped."""

from __future__ import annotations

import os
import stat
from typing import BinaryIO

from .display import display
from .errors import FileTooLargeError, NotRegularFileError


def file_kind(mode: int) -> str:
    """What a file that is not a regular file is, for a message."""
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
            raise NotRegularFileError(f"{display(path)}: {file_kind(mode)}, not a regular file")
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
        # One byte past the size found, not past the cap: f.read(n) sets n bytes aside before reading (16 GiB
        # for an embedding file's cap, refused under a 4 GB address-space limit whatever the file's size). A file
        # that grew meanwhile (a ledger another process appends to) is read on, up to the cap.
        data = f.read(size + 1)
        if len(data) > size:
            data += f.read(max_bytes + 1 - len(data))
    if len(data) > max_bytes:
        raise FileTooLargeError(f"{display(path)}: grew past the limit of {max_bytes} bytes while being read")
    return data
