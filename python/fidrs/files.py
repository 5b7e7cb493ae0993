"""Writing files the way every fidrs writer must, and fidrs' `.npz` reader (regular files only, reads capped:
`regular_files`). Writes are atomic (a temporary file in the same folder, flushed and fsynced, then `os.replace`d),
so a failed write leaves the previous file intact.

An output replaces only a regular file or nothing: a FIFO, a device, a directory or a symbolic link (`/dev/stdout`
is one) at the output path is refused by name rather than replaced by a regular file, and an output that is one
of the run's own input files is refused before anything is computed (`check_output_apart`)."""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from .display import display
from .errors import InvalidInputError, OutputError
from .regular_files import file_kind


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def check_output_target(path: str | os.PathLike) -> None:
    """`path` may be written (replaced atomically): it does not exist, or it is a regular file. A symbolic
    link is refused, not followed or replaced: `-o /dev/stdout` would replace the link with a file, and a link
    to a file elsewhere would be replaced by a file here while its target kept the old contents."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as e:
        raise OutputError(f"{display(path)}: cannot be written ({e.strerror or e})") from None
    if stat.S_ISLNK(st.st_mode):
        raise OutputError(
            f"{display(path)}: a symbolic link; fidrs writes outputs as new regular files and would replace the "
            "link itself: give the path of a regular file"
        )
    if not stat.S_ISREG(st.st_mode):
        raise OutputError(f"{display(path)}: {file_kind(st.st_mode)}, not a regular file; fidrs would replace it")


def check_output_apart(output: str | os.PathLike, inputs) -> None:
    """Refuse `output` when it is one of the files `inputs` (paths) names: `fidrs stats img.png -o img.png`, a
    merge written over one of its shards. Two names for one file (a hard link, `./x` and `x`) are the same
    file. Also refuses what `check_output_target` refuses."""
    check_output_target(output)
    try:
        mine = os.stat(output)
    except OSError:
        return  # not there yet: it cannot be an input
    for path in inputs:
        try:
            theirs = os.stat(path)
        except OSError:
            continue
        if (mine.st_dev, mine.st_ino) == (theirs.st_dev, theirs.st_ino):
            raise OutputError(
                f"{display(output)}: the output is one of this run's input files ({display(path)}); it would be "
                "overwritten: write the output elsewhere"
            )


def is_within(path: str | os.PathLike, folder: str | os.PathLike) -> bool:
    """Whether `path` (which may not exist yet) is `folder` or below it, both taken with links resolved."""
    inner, outer = Path(os.path.realpath(path)), Path(os.path.realpath(folder))
    return inner == outer or outer in inner.parents


@contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """Write `path` all or nothing: the caller writes to a temporary file beside it, which replaces `path`
    only once it is complete and on disk. Only a regular file or nothing is replaced (`check_output_target`)."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise InvalidInputError(f"{display(path)}: the folder {display(parent)} does not exist")
    check_output_target(path)
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


def read_npz(
    path: str | os.PathLike,
    keys: list[str] | None = None,
    max_member_bytes: int | None = None,
    *,
    kinds: str | None = None,
    max_total_bytes: int | None = None,
) -> dict:
    """Arrays of an `.npz` archive (all, or those of `keys` that it has), without pickle, plus `__files__`
    (every name it holds): `references.arrays.read_npz_members`, the one `.npz` reader, with its one cap
    (`MAX_STATS_MEMBER_BYTES`, 1 GiB, unless `max_member_bytes`). Every wanted member's `.npy` header is checked,
    and its size against the cap (and their total against `max_total_bytes`), before any data is inflated; a
    truncated, empty or foreign file, a `.npy` renamed `.npz`, two members of one name (`mu` and `mu.npy`), an
    encrypted, damaged or oversized member raises InvalidInputError naming the file, the member and the reason.
    `kinds`: the dtype kinds accepted (default: any but object)."""
    # Imported here: the references package's readers import this module.
    from .references.arrays import ANY_KIND, MAX_STATS_MEMBER_BYTES, read_npz_members

    return read_npz_members(
        path,
        keys,
        kinds=ANY_KIND if kinds is None else kinds,
        max_member_bytes=MAX_STATS_MEMBER_BYTES if max_member_bytes is None else max_member_bytes,
        max_total_bytes=max_total_bytes,
    )
