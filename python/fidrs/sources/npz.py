"""`.npz` inputs: statistics (`mu`/`sigma` of pytorch-fid, clean-fid, ADM, fidrs), or an ADM reference batch whose
`arr_0` holds uint8 images N×H×W×3 (loaded into memory)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..display import display
from ..errors import InvalidInputError
from ..files import read_npz
from . import rules
from .array import image_array
from .base import Source


@dataclass(frozen=True)
class StatsFile(Source):
    """A statistics file: it holds μ and Σ (and what fidrs records), not images."""

    path: str

    kind = "statistics file"
    cacheable = False

    def __len__(self) -> int:
        return 0

    @property
    def labels(self) -> list[str]:
        return []

    def read_blobs(self, start: int, stop: int, max_pixels: int) -> list[bytes | str]:
        raise InvalidInputError(f"{display(self.path)}: a statistics file cannot be used here; pass images")

    def precomputed(self):
        from ..statistics import Stats

        return Stats.load(self.path)


def resolve_npz(inputs: Any, allow_stats: bool) -> Source | None:
    if not isinstance(inputs, (str, os.PathLike)):
        return None
    path = os.fspath(inputs)
    if rules.extension(path) not in rules.STATS_EXTENSIONS:
        return None
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
            return image_array(images)
        raise InvalidInputError(f"{display(path)}: arr_0 is {images.dtype} {images.shape}, expected uint8 N×H×W×3")
    raise InvalidInputError(
        f"{display(path)}: .npz needs 'mu' and 'sigma' (statistics) or 'arr_0' (images); has {sorted(keys)}"
    )
