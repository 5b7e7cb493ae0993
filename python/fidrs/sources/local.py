"""Image files on this machine: a directory (recursive), a file, a glob. Files are read by the Rust reader (only
regular files are opened, sizes are checked before reading); every real file is counted once."""

from __future__ import annotations

import glob
import os
import stat
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import _fidrs
from ..display import display
from ..errors import DuplicateFilesWarning, EmptyInputError, InvalidInputError
from . import rules
from .base import Pixels, Source


@dataclass(frozen=True)
class ImageFiles(Source):
    paths: list[str]

    kind = "image files"
    distributable = True

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def labels(self) -> Sequence[str]:
        return self.paths

    def read_blobs(self, start: int, stop: int, max_pixels: int) -> list[bytes | str]:
        return _fidrs.read_files(self.paths[start:stop], max_pixels)

    def read_pixels(self, start, stop, preprocessing, max_pixels, out: np.ndarray | None) -> Pixels:
        batch, ok, failed, pixels = _fidrs.load_images(self.paths[start:stop], preprocessing, max_pixels, out=out)
        return batch, list(ok), list(failed), list(pixels)

    def split(self, start: int, stop: int) -> ImageFiles:
        return ImageFiles(self.paths[start:stop])


def scan_directory(directory: str) -> list[str]:
    """Image files below `directory`, following links to folders but entering each real folder once (so a
    link cycle ends, and `self -> .` adds nothing)."""
    found = []
    visited: set[tuple[int, int]] = set()
    for root, dirs, files in os.walk(directory, followlinks=True):
        try:
            st = os.stat(root)
        except OSError:
            dirs[:] = []
            continue
        if (st.st_dev, st.st_ino) in visited:
            dirs[:] = []
            continue
        visited.add((st.st_dev, st.st_ino))
        dirs.sort()
        found.extend(os.path.join(root, f) for f in files if rules.is_image(f))
    return sorted(found)


def once_each(paths: list[str]) -> list[str]:
    """Keep the first path to each real file: two names for one file (a link, a path through a linked
    folder, a path listed twice) are one image, never counted twice. Says so when it drops any."""
    seen: set[tuple[int, int]] = set()
    kept, dropped = [], []
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            kept.append(path)  # the reader reports why it cannot be read
            continue
        identity = (st.st_dev, st.st_ino)
        if stat.S_ISREG(st.st_mode) and identity in seen:
            dropped.append(path)
            continue
        seen.add(identity)
        kept.append(path)
    if dropped:
        warnings.warn(
            f"{len(dropped)} path(s) name a file already included (links or repeats), counted once: "
            + ", ".join(display(p) for p in dropped[:3])
            + (", ..." if len(dropped) > 3 else ""),
            DuplicateFilesWarning,
            stacklevel=4,
        )
    return kept


def expand(item: str) -> list[str]:
    """The image files one path names: a directory's (recursive), the file itself, or a glob's matches."""
    if os.path.isdir(item):
        return scan_directory(item)
    if os.path.exists(item) or os.path.islink(item):
        return [item]  # a file, or a FIFO/device/socket/dangling link that the reader refuses by name
    if rules.is_glob(item):
        return sorted(p for p in glob.glob(item, recursive=True) if rules.is_image(p) and not os.path.isdir(p))
    raise InvalidInputError(f"{display(item)}: no such file or directory")


def files_of(paths: list[str], what: str) -> ImageFiles:
    kept = once_each(paths)
    if not kept:
        raise EmptyInputError(
            f"{display(what)}: no image files found (extensions: {', '.join(sorted(rules.IMAGE_EXTENSIONS))})"
        )
    return ImageFiles(kept)


def resolve_path(inputs: Any, allow_stats: bool) -> ImageFiles | None:
    """A directory, an image file or a glob."""
    if not isinstance(inputs, (str, os.PathLike)):
        return None
    text = os.fspath(inputs)
    return files_of(expand(text), text)
