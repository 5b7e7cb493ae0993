"""Turn what a user passes (directories, file lists, globs, images in memory, stats files) into sources."""

from __future__ import annotations

import glob
import os
import re
import stat
import warnings
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import numpy as np

from .errors import EmptyInputError, InvalidInputError
from .files import display, open_regular, read_npz

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"})
STATS_EXTENSIONS = frozenset({".npz"})

InputLike = Union[str, os.PathLike, Sequence[Union[str, os.PathLike]], np.ndarray]


@dataclass(frozen=True)
class ImageFiles:
    paths: list[str]

    def __len__(self) -> int:
        return len(self.paths)


@dataclass(frozen=True)
class ImageArray:
    """In-memory uint8 images, N×H×W×3."""

    images: np.ndarray

    def __len__(self) -> int:
        return len(self.images)


@dataclass(frozen=True)
class ZipImages:
    """Image members of a zip archive, decoded from memory. Members are read by their directory entry, not
    their name, so two members with the same name are two images (their labels then carry `#k`)."""

    archive: str
    members: list[zipfile.ZipInfo]

    @property
    def paths(self) -> list[str]:
        """Names for messages: `archive.zip:member`, `archive.zip:member#2` for a repeated name."""
        seen: dict[str, int] = {}
        labels = []
        for info in self.members:
            seen[info.filename] = seen.get(info.filename, 0) + 1
            suffix = f"#{seen[info.filename]}" if seen[info.filename] > 1 else ""
            labels.append(f"{self.archive}:{info.filename}{suffix}")
        return labels

    def __len__(self) -> int:
        return len(self.members)

    def read(self, start: int, stop: int, max_bytes: int) -> list[bytes | str]:
        """Each member's bytes, or why it cannot be read: declared larger than `max_bytes` (checked before
        anything is inflated; zipfile stops at the declared size), or a damaged entry."""
        out: list[bytes | str] = []
        with open_regular(self.archive) as f, zipfile.ZipFile(f) as z:
            for info in self.members[start:stop]:
                if info.file_size > max_bytes:
                    out.append(
                        f"zip member of {info.file_size} bytes exceeds the limit of {max_bytes} bytes "
                        "for an image within the pixel limit"
                    )
                    continue
                try:
                    out.append(z.read(info))
                except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError) as e:
                    out.append(f"damaged zip member ({e})")
                except Exception as e:  # noqa: BLE001 - zlib/bz2/lzma errors: a damaged member, not a crash
                    out.append(f"damaged zip member ({type(e).__name__}: {e})")
        return out


@dataclass(frozen=True)
class RemoteFiles:
    """Image files named by URL (`s3://…`, `gs://…`, `https://…`, any filesystem fsspec knows), read by fsspec
    and decoded from memory by the same decoder as local files."""

    paths: list[str]

    def __len__(self) -> int:
        return len(self.paths)

    def read(self, start: int, stop: int, max_bytes: int) -> list[bytes | str]:
        from .remote import read_urls

        return read_urls(self.paths[start:stop], max_bytes)


@dataclass(frozen=True)
class StatsFile:
    path: str


Source = Union[ImageFiles, ImageArray, ZipImages, RemoteFiles, StatsFile]


def _is_image(path: str) -> bool:
    return os.path.splitext(path)[1].lower() in IMAGE_EXTENSIONS


def _scan_directory(directory: str) -> list[str]:
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
        found.extend(os.path.join(root, f) for f in files if _is_image(f))
    return sorted(found)


def _once_each(paths: list[str]) -> list[str]:
    """Keep the first path to each real file: two names for one file (a link, a path through a linked
    folder, a path listed twice) are one image, never counted twice. Says so when it drops any."""
    seen: set[tuple[int, int]] = set()
    kept, dropped = [], []
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            kept.append(path)  # the decoder reports why it cannot be read
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
            stacklevel=3,
        )
    return kept


def _once_each_url(urls: list[str]) -> list[str]:
    """Keep the first of repeated URLs (one object, counted once), saying so."""
    kept = list(dict.fromkeys(urls))
    if len(kept) < len(urls):
        warnings.warn(
            f"{len(urls) - len(kept)} URL(s) were listed more than once, counted once",
            DuplicateFilesWarning,
            stacklevel=3,
        )
    return kept


class DuplicateFilesWarning(UserWarning):
    """Several paths of one input named the same file; it was counted once."""


_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_url(text: str) -> bool:
    """`scheme://…` (a Windows drive letter `C:\\` is not one)."""
    return bool(_URL.match(text))


def _is_glob(text: str) -> bool:
    return any(ch in text for ch in "*?[")


def _expand_one(item: str) -> list[str]:
    if os.path.isdir(item):
        return _scan_directory(item)
    if os.path.exists(item):
        return [item]  # a file, or a FIFO/device/socket that the reader refuses by name
    if _is_glob(item):
        return sorted(p for p in glob.glob(item, recursive=True) if _is_image(p) and not os.path.isdir(p))
    raise InvalidInputError(f"{display(item)}: no such file or directory")


def _zip_source(path: str) -> ZipImages:
    try:
        with open_regular(path) as f, zipfile.ZipFile(f) as z:
            infos = [info for info in z.infolist() if not info.is_dir() and _is_image(info.filename)]
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
        raise InvalidInputError(f"{display(path)}: not a readable zip archive ({e})") from None
    if not infos:
        raise EmptyInputError(f"{display(path)}: the zip archive holds no image files")
    # Sorted by name; members of one name keep their order in the archive (sort is stable).
    return ZipImages(path, sorted(infos, key=lambda info: info.filename))


def _npz_source(path: str, allow_stats: bool) -> StatsFile | ImageArray:
    """`mu`/`sigma` statistics (pytorch-fid, clean-fid, ADM, fidrs), or an ADM reference batch whose
    `arr_0` holds uint8 images N×H×W×3 (loaded into memory)."""
    if not os.path.exists(path):
        raise InvalidInputError(f"{display(path)}: no such file")
    keys = read_npz(path, keys=[])["__files__"]
    if {"mu", "sigma"} <= set(keys):
        if not allow_stats:
            raise InvalidInputError(f"{display(path)}: a statistics file cannot be used here; pass images")
        return StatsFile(path)
    if "arr_0" in keys:
        images = read_npz(path, keys=["arr_0"])["arr_0"]
        if images.dtype == np.uint8 and images.ndim == 4 and images.shape[-1] == 3:
            return resolve_source(images)
        raise InvalidInputError(f"{display(path)}: arr_0 is {images.dtype} {images.shape}, expected uint8 N×H×W×3")
    raise InvalidInputError(
        f"{display(path)}: .npz needs 'mu' and 'sigma' (statistics) or 'arr_0' (images); has {sorted(keys)}"
    )


def resolve_source(inputs: InputLike, *, allow_stats: bool = True) -> Source:
    """Directories are scanned recursively (case-insensitive extensions, sorted); explicit file lists
    keep their order; a `.npz` path is a statistics file."""
    if isinstance(inputs, np.ndarray):
        if inputs.dtype != np.uint8 or inputs.ndim != 4 or inputs.shape[-1] != 3:
            raise InvalidInputError(
                f"in-memory images must be a uint8 array of shape N×H×W×3, got {inputs.dtype} {inputs.shape}"
            )
        if len(inputs) == 0:
            raise EmptyInputError("the image array is empty")
        return ImageArray(inputs)
    if isinstance(inputs, (str, os.PathLike)):
        text = os.fspath(inputs)
        if is_url(text):
            from .remote import list_urls, local_path

            if local_path(text) is None:
                return RemoteFiles(_once_each_url(list_urls(text)))
            text = local_path(text)  # file://: the hardened local reader
        suffix = Path(text).suffix.lower()
        if suffix in STATS_EXTENSIONS:
            return _npz_source(text, allow_stats)
        if suffix == ".zip" and os.path.exists(text):
            return _zip_source(text)
        paths = _once_each(_expand_one(text))
        if not paths:
            raise EmptyInputError(
                f"{display(text)}: no image files found (extensions: {', '.join(sorted(IMAGE_EXTENSIONS))})"
            )
        return ImageFiles(paths)
    items = [os.fspath(p) for p in inputs]
    if not items:
        raise EmptyInputError("the list of image paths is empty")
    from .remote import list_urls, local_path

    items = [(local_path(p) or p) if is_url(p) else p for p in items]  # file:// URLs are local paths
    remote = [is_url(p) for p in items]
    if any(remote):
        if not all(remote):
            raise InvalidInputError("a list of inputs mixes URLs and local paths; pass one kind")
        return RemoteFiles(_once_each_url([url for item in items for url in list_urls(item)]))
    paths: list[str] = []
    for item in items:
        paths.extend(_expand_one(item))
    if not paths:
        raise EmptyInputError("the given paths contain no image files")
    return ImageFiles(_once_each(paths))
