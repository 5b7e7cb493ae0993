"""Images in memory: a uint8 array N×H×W×3 (or what the training-loop Accumulator converts to one)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import _fidrs
from ..errors import EmptyInputError, InvalidInputError
from .base import Pixels, Source


@dataclass(frozen=True)
class ImageArray(Source):
    images: np.ndarray

    kind = "image array"
    cacheable = False  # no file bytes to key a cache on

    def __len__(self) -> int:
        return len(self.images)

    @property
    def labels(self) -> Sequence[str]:
        return [f"array[{i}]" for i in range(len(self.images))]

    def read_pixels(self, start, stop, preprocessing, max_pixels, out: np.ndarray | None) -> Pixels:
        images = np.ascontiguousarray(self.images[start:stop])
        batch = _fidrs.preprocess_arrays(images, preprocessing, out=out)
        return batch, list(range(stop - start)), [], []

    def read_pixels_many(self, start, stop, preprocessings, max_pixels):
        images = np.ascontiguousarray(self.images[start:stop])  # decoded already: each network reads these
        batches = [_fidrs.preprocess_arrays(images, p) for p in preprocessings]
        return batches, list(range(len(images))), [], []


def image_array(images: np.ndarray) -> ImageArray:
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise InvalidInputError(
            f"in-memory images must be a uint8 array of shape N×H×W×3, got {images.dtype} {images.shape}"
        )
    if len(images) == 0:
        raise EmptyInputError("the image array is empty")
    return ImageArray(images)


def resolve_array(inputs: Any, allow_stats: bool) -> ImageArray | None:
    return image_array(inputs) if isinstance(inputs, np.ndarray) else None
