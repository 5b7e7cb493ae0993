"""What every input source is: an ordered collection of images with names for messages, read a range at a time
(as encoded bytes, or straight to network inputs), split into shards for a cluster; or a statistics file, which
holds its statistics instead. The feature pass, the Evaluator and the cluster driver use only this."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import _fidrs
from ..errors import InvalidInputError

if TYPE_CHECKING:
    from ..references import ReferenceProvenance
    from ..statistics import Stats

# (network inputs, indices of the images decoded, [(index, reason)] of the others, pixels of each decoded one)
Pixels = tuple[np.ndarray, list[int], list[tuple[int, str]], list[int]]


class Source:
    """An input. Subclasses give `__len__`, `labels`, and `read_blobs` or `read_pixels`."""

    kind = "input"
    # The feature cache keys on a file's bytes: a source without bytes (images in memory) is never cached.
    cacheable = True
    # Its shards can be read on other machines (files every node sees, URLs).
    distributable = False

    def __len__(self) -> int:
        raise NotImplementedError

    @property
    def labels(self) -> Sequence[str]:
        """A name per image, for messages and results (a path, `archive.zip:member`, `array[3]`)."""
        raise NotImplementedError

    def read_blobs(self, start: int, stop: int, max_pixels: int) -> list[bytes | str]:
        """Each image's encoded bytes, or why it cannot be read, under the size cap that `max_pixels` implies."""
        raise InvalidInputError(f"{self.kind} has no encoded files")

    def read_pixels(
        self, start: int, stop: int, preprocessing: _fidrs.Preprocessing, max_pixels: int, out: np.ndarray | None
    ) -> Pixels:
        """Images `start:stop` decoded and preprocessed into `out` (Rust, GIL released)."""
        blobs = self.read_blobs(start, stop, max_pixels)
        readable = [i for i, b in enumerate(blobs) if isinstance(b, bytes)]
        batch, ok, bad, pixels = _fidrs.load_encoded([blobs[i] for i in readable], preprocessing, max_pixels, out=out)
        failed = sorted(
            [(i, b) for i, b in enumerate(blobs) if isinstance(b, str)] + [(readable[i], r) for i, r in bad]
        )
        return batch, [readable[i] for i in ok], failed, list(pixels)

    def read_pixels_many(
        self, start: int, stop: int, preprocessings: Sequence[_fidrs.Preprocessing], max_pixels: int
    ) -> tuple[list[np.ndarray], list[int], list[tuple[int, str]], list[int]]:
        """Images `start:stop` decoded once each and preprocessed for every one of `preprocessings` (several
        networks fed from one decode): ([network inputs per preprocessing, the same images in the same order],
        indices decoded, [(index, reason)], pixels of each decoded one)."""
        blobs = self.read_blobs(start, stop, max_pixels)
        readable = [i for i, b in enumerate(blobs) if isinstance(b, bytes)]
        batches, ok, bad, pixels = _fidrs.load_encoded_many([blobs[i] for i in readable], preprocessings, max_pixels)
        failed = sorted(
            [(i, b) for i, b in enumerate(blobs) if isinstance(b, str)] + [(readable[i], r) for i, r in bad]
        )
        return list(batches), [readable[i] for i in ok], failed, list(pixels)

    def split(self, start: int, stop: int) -> Source:
        """Images `start:stop` as a source of their own, to be read on another machine."""
        raise InvalidInputError(f"{self.kind} cannot be read on a cluster: pass image files or URLs")

    @property
    def has_images(self) -> bool:
        """Whether it holds images (a statistics file may hold some too: an ADM batch's `arr_0`)."""
        return True

    def recorded_backbones(self) -> tuple[str, ...]:
        """The backbones whose statistics this input holds, as it records them (none for images, or for a
        statistics file that records no backbone, as pytorch-fid's)."""
        return ()

    def local_files(self) -> Sequence[str]:
        """The files on this machine it reads (an output must be none of them); none for images in memory or
        remote URLs."""
        return ()

    def precomputed(self, backbone: str | None = None) -> Stats | None:
        """The statistics of `backbone` (a registered name; None: the input's only ones) this input holds
        instead of images (a statistics or reference file), else None."""
        return None

    def origin(self, backbone: str | None = None) -> ReferenceProvenance | None:
        """How the statistics of `backbone` this input holds were made (tool, mode, where that is known from),
        for the mode the other side is computed in; None: it holds none (images)."""
        return None

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "images": len(self)}
