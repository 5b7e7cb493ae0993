"""Turn what a user passes (directories, file lists, globs, images in memory, stats files) into sources."""

from __future__ import annotations

import glob
import os
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import numpy as np

from .errors import EmptyInputError, InvalidInputError

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
    """Image members of a zip archive, decoded from memory."""

    archive: str
    members: list[str]

    @property
    def paths(self) -> list[str]:
        """Names for messages: `archive.zip:member`."""
        return [f"{self.archive}:{m}" for m in self.members]

    def __len__(self) -> int:
        return len(self.members)

    def read(self, start: int, stop: int) -> list[bytes]:
        with zipfile.ZipFile(self.archive) as z:
            return [z.read(m) for m in self.members[start:stop]]


@dataclass(frozen=True)
class StatsFile:
    path: str


Source = Union[ImageFiles, ImageArray, ZipImages, StatsFile]


def _is_image(path: str) -> bool:
    return os.path.splitext(path)[1].lower() in IMAGE_EXTENSIONS


def _scan_directory(directory: str) -> list[str]:
    found = []
    for root, dirs, files in os.walk(directory, followlinks=True):
        dirs.sort()
        found.extend(os.path.join(root, f) for f in files if _is_image(f))
    return sorted(found)


def _is_glob(text: str) -> bool:
    return any(ch in text for ch in "*?[")


def _expand_one(item: str) -> list[str]:
    if os.path.isdir(item):
        return _scan_directory(item)
    if os.path.isfile(item):
        return [item]
    if _is_glob(item):
        return sorted(p for p in glob.glob(item, recursive=True) if os.path.isfile(p) and _is_image(p))
    raise InvalidInputError(f"{item}: no such file or directory")


def _zip_source(path: str) -> ZipImages:
    try:
        with zipfile.ZipFile(path) as z:
            members = sorted(info.filename for info in z.infolist() if not info.is_dir() and _is_image(info.filename))
    except zipfile.BadZipFile as e:
        raise InvalidInputError(f"{path}: not a readable zip archive ({e})") from None
    if not members:
        raise EmptyInputError(f"{path}: the zip archive holds no image files")
    return ZipImages(path, members)


def _npz_source(path: str, allow_stats: bool) -> StatsFile | ImageArray:
    """`mu`/`sigma` statistics (pytorch-fid, clean-fid, ADM, fidrs), or an ADM reference batch whose
    `arr_0` holds uint8 images N×H×W×3 (loaded into memory)."""
    if not os.path.isfile(path):
        raise InvalidInputError(f"{path}: no such file")
    try:
        with np.load(path, allow_pickle=False) as data:
            keys = set(data.files)
            if {"mu", "sigma"} <= keys:
                if not allow_stats:
                    raise InvalidInputError(f"{path}: a statistics file cannot be used here; pass images")
                return StatsFile(path)
            if "arr_0" in keys:
                images = data["arr_0"]
                if images.dtype == np.uint8 and images.ndim == 4 and images.shape[-1] == 3:
                    return resolve_source(images)
                raise InvalidInputError(f"{path}: arr_0 is {images.dtype} {images.shape}, expected uint8 N×H×W×3")
    except (OSError, ValueError) as e:
        raise InvalidInputError(f"{path}: not a readable .npz file ({e})") from None
    raise InvalidInputError(f"{path}: .npz needs 'mu' and 'sigma' (statistics) or 'arr_0' (images); has {sorted(keys)}")


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
        suffix = Path(text).suffix.lower()
        if suffix in STATS_EXTENSIONS:
            return _npz_source(text, allow_stats)
        if suffix == ".zip" and os.path.isfile(text):
            return _zip_source(text)
        paths = _expand_one(text)
        if not paths:
            raise EmptyInputError(f"{text}: no image files found (extensions: {', '.join(sorted(IMAGE_EXTENSIONS))})")
        return ImageFiles(paths)
    items = [os.fspath(p) for p in inputs]
    if not items:
        raise EmptyInputError("the list of image paths is empty")
    paths: list[str] = []
    for item in items:
        paths.extend(_expand_one(item))
    if not paths:
        raise EmptyInputError("the given paths contain no image files")
    return ImageFiles(paths)
