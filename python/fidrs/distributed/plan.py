"""How a job is cut into shards, and the seeded sample that KID and precision/recall take from a cluster run.

A shard is a run of consecutive images of one input. Its result (float64 moments, its bad files, its sampled
rows) depends only on its images, never on which worker ran it or how often, so the driver can count each
shard exactly once whatever Ray retried."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..sources import Source

# Images per shard when the caller does not choose: each shard sends back d² float64 moments (32 MiB for the
# Inception's 2048), about what 4,096 images' float32 features weigh, so a shard should hold thousands of images
# on a large job; a small job is cut finer so that every worker gets several shards (a retried shard then costs
# little, and the progress bar moves).
MAX_SHARD_SIZE = 4096
MIN_SHARD_SIZE = 16
SHARDS_PER_WORKER = 4


def default_shard_size(total: int, workers: int) -> int:
    per_worker = -(-total // max(1, workers * SHARDS_PER_WORKER))
    return max(MIN_SHARD_SIZE, min(MAX_SHARD_SIZE, per_worker))


@dataclass(frozen=True)
class Shard:
    """Images `start:start + len(source)` of input `side` (0: A, 1: B), as a source of their own (read where the
    worker runs); `keys`, when sampling, are their sampling keys."""

    id: int
    side: int
    start: int
    source: Source
    keys: np.ndarray | None = None

    def describe(self, label: str) -> str:
        return f"shard {self.id} ({label}: images {self.start + 1}-{self.start + len(self.source)})"


def plan_shards(sides: list[Source], shard_size: int, sample_keys: list[np.ndarray | None]) -> list[Shard]:
    shards: list[Shard] = []
    for side, (source, keys) in enumerate(zip(sides, sample_keys)):
        for start in range(0, len(source), shard_size):
            stop = min(start + shard_size, len(source))
            part = source.split(start, stop)
            shards.append(Shard(len(shards), side, start, part, None if keys is None else keys[start:stop]))
    return shards


def sampling_keys(n: int, seed: int) -> np.ndarray:
    """One uniform key per input image, from the seed alone. The sample is the `size` usable images with the
    smallest keys (bottom-k sampling: a uniform sample without replacement, the same whichever worker saw which
    image and in what order; ties, at probability ~2⁻⁵³ per pair, go to the lower index)."""
    return np.random.default_rng(seed).random(n)


def sample_indices(keys: np.ndarray, usable: np.ndarray, size: int) -> np.ndarray:
    """The input indices of the sample among `usable` (input indices of the images that decoded), sorted."""
    usable = np.asarray(usable)
    order = np.lexsort((usable, keys[usable]))[:size]
    return np.sort(usable[order])


@dataclass
class SampleRows:
    """Sampled rows: input indices, their keys, and the backbone's outputs for them."""

    indices: np.ndarray
    keys: np.ndarray
    outputs: tuple[np.ndarray, ...]

    @classmethod
    def empty(cls, dims: tuple[int, ...]) -> SampleRows:
        return cls(np.empty(0, np.int64), np.empty(0), tuple(np.empty((0, d), np.float32) for d in dims))

    def add(self, indices: np.ndarray, keys: np.ndarray, outputs: tuple[np.ndarray, ...], size: int) -> None:
        """Keep the `size` rows with the smallest (key, index) of what was kept and the new rows."""
        indices = np.concatenate([self.indices, np.asarray(indices, np.int64)])
        keys = np.concatenate([self.keys, keys])
        outputs = tuple(np.concatenate([old, new]) for old, new in zip(self.outputs, outputs))
        keep = np.lexsort((indices, keys))[:size]
        self.indices, self.keys = indices[keep], keys[keep]
        self.outputs = tuple(o[keep] for o in outputs)

    def in_input_order(self) -> SampleRows:
        order = np.argsort(self.indices)
        return SampleRows(self.indices[order], self.keys[order], tuple(o[order] for o in self.outputs))
