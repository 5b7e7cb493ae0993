"""Statistics and reference files as inputs, read by `fidrs.references`: fidrs' own `.npz` statistics (of one or
several backbones), the `mu`/`sigma` files of pytorch-fid, TTUR, clean-fid and EDM, ADM's reference batches,
clean-fid's KID features, feature arrays (`.npy`), EDM2's `.pkl`, and `ref:NAME` (a catalogued reference,
downloaded, verified and cached on first use).

Such an input holds statistics (per backbone, each with how it was made) and perhaps images (ADM's `arr_0`):
the statistics serve the Fréchet distance; the images are read a batch at a time, only when a metric needs
images (KID, precision/recall) or the file holds no statistics of the backbone in use."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import _fidrs
from ..display import display
from ..errors import InvalidInputError
from . import rules
from .base import Pixels, Source

if TYPE_CHECKING:
    from ..references import ReferenceFile, ReferenceProvenance
    from ..statistics import Stats


@dataclass(frozen=True)
class StatsFile(Source):
    """A statistics or reference file: `label` is the input as given (a path, or `ref:NAME`)."""

    label: str
    reference: ReferenceFile

    kind = "statistics file"
    cacheable = False  # its images (if any) have no file bytes to key the feature cache on

    @property
    def path(self) -> str:
        return self.reference.path

    @property
    def has_images(self) -> bool:
        return self.reference.images is not None

    def __len__(self) -> int:
        return len(self.reference.images) if self.reference.images is not None else 0

    @property
    def labels(self) -> Sequence[str]:
        return [f"{self.label}:arr_0[{i}]" for i in range(len(self))]

    def _images(self):
        if self.reference.images is None:
            raise InvalidInputError(f"{display(self.label)}: holds statistics, no images; pass images here")
        return self.reference.images

    def local_files(self) -> tuple[str, ...]:
        return (self.path,)

    def recorded_backbones(self) -> tuple[str, ...]:
        from ..references.reference import UNKNOWN_BACKBONE

        return tuple(name for name in self.reference.entries if name != UNKNOWN_BACKBONE)

    def read_blobs(self, start: int, stop: int, max_pixels: int) -> list[bytes | str]:
        raise InvalidInputError(f"{display(self.label)}: holds decoded images, not encoded files")

    def _rows(self, start: int, stop: int, max_pixels: int) -> np.ndarray:
        images = self._images()
        h, w = images.shape[1], images.shape[2]
        if h * w > max_pixels:
            raise InvalidInputError(f"{images.where}: images of {w}×{h} pixels, over the limit of {max_pixels}")
        return np.ascontiguousarray(images.rows(start, stop))

    def read_pixels(self, start, stop, preprocessing, max_pixels, out: np.ndarray | None) -> Pixels:
        rows = self._rows(start, stop, max_pixels)
        batch = _fidrs.preprocess_arrays(rows, preprocessing, out=out)
        return batch, list(range(len(rows))), [], [rows.shape[1] * rows.shape[2]] * len(rows)

    def read_pixels_many(self, start, stop, preprocessings, max_pixels):
        rows = self._rows(start, stop, max_pixels)  # read once: each network's preprocessing reads these
        batches = [_fidrs.preprocess_arrays(rows, p) for p in preprocessings]
        return batches, list(range(len(rows))), [], [rows.shape[1] * rows.shape[2]] * len(rows)

    def precomputed(self, backbone: str | None = None) -> Stats | None:
        """The file's statistics of `backbone` (None: its only ones). A file with images but no statistics of
        that backbone gives None: its images are computed."""
        if self.has_images and not self._holds(backbone):
            return None
        return self.reference.entry(backbone).to_stats()

    def origin(self, backbone: str | None = None) -> ReferenceProvenance | None:
        """How the statistics of `backbone` in this file were made (None: the file holds none of it)."""
        if not self._holds(backbone):
            return None
        return self.reference.entry(backbone).provenance

    def _holds(self, backbone: str | None) -> bool:
        from ..references.reference import UNKNOWN_BACKBONE

        entries = self.reference.entries
        if not entries:
            return False
        if backbone is None or backbone in entries or set(entries) == {UNKNOWN_BACKBONE}:
            return True
        from .. import backbones

        return backbones.get(backbone).name in entries

    def describe(self) -> dict[str, Any]:
        ref = self.reference
        return {
            "kind": self.kind,
            "input": self.label,
            "path": ref.path,
            "format": ref.format,
            "images": len(self),
            "statistics": {
                backbone: {
                    "label": e.label,
                    "n": e.n,
                    "tool": e.provenance.tool,
                    "mode": e.provenance.mode,
                    "provenance": e.provenance.source,
                }
                for backbone, e in ref.entries.items()
            },
            "notes": list(ref.notes),
        }


def is_statistics_input(text: str) -> bool:
    """`ref:NAME`, or a path whose extension is that of a statistics or reference file."""
    from ..references import is_reference

    return is_reference(text) or rules.extension(text) in rules.STATS_EXTENSIONS


def resolve_reference(inputs: Any, allow_stats: bool) -> StatsFile | None:
    if not isinstance(inputs, (str, os.PathLike)):
        return None
    text = os.fspath(inputs)
    if not is_statistics_input(text):
        return None
    from .. import references

    if not references.is_reference(text) and not os.path.lexists(text):
        raise InvalidInputError(f"{display(text)}: no such file")
    source = StatsFile(text, references.resolve(text))
    if not allow_stats and not source.has_images:
        raise InvalidInputError(f"{display(text)}: a statistics file cannot be used here; pass images")
    return source


__all__ = ["StatsFile", "is_statistics_input", "resolve_reference"]
