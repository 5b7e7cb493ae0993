"""Images in memory: a uint8 array N×H×W×3 (or what the training-loop Accumulator converts to one)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import _fidrs
from ..display import display
from ..errors import EmptyInputError, InvalidInputError
from .base import Pixels, Source


@dataclass(frozen=True)
class ImageArray(Source):
    images: np.ndarray
    read_from: str | None = None  # the file it was read from (an `.npz`'s arr_0), if any (`origin()` is another thing)

    kind = "image array"
    cacheable = False  # no file bytes to key a cache on

    def __len__(self) -> int:
        return len(self.images)

    @property
    def labels(self) -> Sequence[str]:
        return [f"array[{i}]" for i in range(len(self.images))]

    def local_files(self) -> Sequence[str]:
        return () if self.read_from is None else (self.read_from,)

    def read_pixels(self, start, stop, preprocessing, max_pixels, out: np.ndarray | None) -> Pixels:
        images = np.ascontiguousarray(self.images[start:stop])
        batch = _fidrs.preprocess_arrays(images, preprocessing, out=out)
        return batch, list(range(stop - start)), [], []

    def read_pixels_many(self, start, stop, preprocessings, max_pixels):
        images = np.ascontiguousarray(self.images[start:stop])  # decoded already: each network reads these
        batches = [_fidrs.preprocess_arrays(images, p) for p in preprocessings]
        return batches, list(range(len(images))), [], []


def image_array(images: np.ndarray, read_from: str | None = None) -> ImageArray:
    """Images in memory; `read_from`: the file they were read from, named in messages (an `.npz`'s `arr_0`)."""
    what = "in-memory images" if read_from is None else f"{display(read_from)}: arr_0"
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise InvalidInputError(f"{what} must be a uint8 array of shape N×H×W×3, got {images.dtype} {images.shape}")
    if len(images) == 0:
        empty = "the image array" if read_from is None else what
        raise EmptyInputError(f"{empty} holds no images (shape {images.shape})")
    return ImageArray(images, read_from)


def resolve_array(inputs: Any, allow_stats: bool) -> ImageArray | None:
    return image_array(inputs) if isinstance(inputs, np.ndarray) else None
