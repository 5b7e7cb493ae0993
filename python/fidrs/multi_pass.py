"""Several backbones' statistics of one image set from one decode of each image (`fidrs stats DIR --backbone
inception --backbone dinov2 -o ref.npz`): each batch is read and decoded once, preprocessed for every
backbone's mode (Rust, `load_encoded_many`: the same `preprocess_into` a single pass runs, so each backbone's
features equal its own pass's), and fed to each network; every backbone sees the same images. Each backbone's
feature cache is used: an image is decoded only if some backbone misses it, and each network runs only on its
own misses."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import _fidrs, sources
from .cache import content_hash
from .errors import InvalidInputError
from .evaluator import Evaluator
from .feature_pass import PREFETCH_BATCHES, FeaturePass, PassReport, report_bad_files
from .options import Options
from .progress import progress_bar
from .sources import InputLike, Source
from .statistics import Stats, check_sample_count


@dataclass
class _Loaded:
    """One batch from the decode thread: each backbone's network inputs of the decoded images (all the same
    images), their batch-relative indices, failures (index, reason), each backbone's cached rows by index,
    content keys (empty without a cache) and the pixel count of each decoded image."""

    batches: list[np.ndarray]
    ok: list[int]
    failed: list[tuple[int, str]]
    hits: list[dict[int, tuple[np.ndarray, ...]]]
    keys: list[str | None]
    pixels: list[int]


class MultiPass:
    """Feature passes of several backbones run over one input with one decode of each image."""

    def __init__(self, passes: Sequence[FeaturePass]) -> None:
        if not passes:
            raise InvalidInputError("a multi-backbone pass needs at least one backbone")
        names = [p.backbone.name for p in passes]
        if len(set(names)) != len(names):
            raise InvalidInputError(f"each backbone once: got {', '.join(names)}")
        self.passes = list(passes)
        options = [p.resolved.options for p in passes]
        # One read of the files for all: the limits that decide which files are read must be the same.
        for name in ("max_pixels", "skip_bad", "progress"):
            if len({getattr(o, name) for o in options}) != 1:
                raise InvalidInputError(f"the backbones of one pass need one {name}")
        self.options = options[0]
        self.batch_size = min(p.batch_size for p in passes)

    def _load(self, source: Source, start: int, stop: int) -> _Loaded:
        """Runs in the decode thread: read once, look each backbone's cache up, decode what any misses once."""
        max_pixels = self.options.max_pixels
        preprocessings = [p.preprocessing for p in self.passes]
        caches = [p.cache if p.cache is not None and source.cacheable else None for p in self.passes]
        if not any(caches):
            batches, ok, failed, pixels = source.read_pixels_many(start, stop, preprocessings, max_pixels)
            return _Loaded(batches, ok, failed, [{} for _ in self.passes], [], pixels)
        blobs = source.read_blobs(start, stop, max_pixels)
        failed = [(i, b) for i, b in enumerate(blobs) if isinstance(b, str)]
        keys: list[str | None] = [content_hash(b) if isinstance(b, bytes) else None for b in blobs]
        hits = [cache.get_many(keys, max_pixels) if cache is not None else {} for cache in caches]
        todo = [i for i, b in enumerate(blobs) if isinstance(b, bytes) and any(i not in h for h in hits)]
        batches, ok, bad, pixels = _fidrs.load_encoded_many([blobs[i] for i in todo], preprocessings, max_pixels)
        failed = sorted(failed + [(todo[i], reason) for i, reason in bad])
        # A file that does not decode now is left out for every backbone, even one that has it cached: every
        # backbone's statistics are of the same images.
        dropped = {i for i, _ in failed}
        hits = [{i: row for i, row in h.items() if i not in dropped} for h in hits]
        return _Loaded(list(batches), [todo[i] for i in ok], failed, hits, keys, list(pixels))

    def _combine(self, k: int, loaded: _Loaded) -> tuple[list[int], tuple[np.ndarray, ...]]:
        """Backbone k's outputs of the batch's usable images, in input order: its cached rows, and its network
        run on the decoded images it misses (stored in its cache)."""
        feature_pass = self.passes[k]
        hits = loaded.hits[k]
        rows = dict(hits)
        misses = [j for j, i in enumerate(loaded.ok) if i not in hits]
        if misses:
            inputs = loaded.batches[k] if len(misses) == len(loaded.ok) else loaded.batches[k][misses]
            outputs = feature_pass.session.run(np.ascontiguousarray(inputs))
            rows.update((loaded.ok[j], tuple(out[m] for out in outputs)) for m, j in enumerate(misses))
            if feature_pass.cache is not None and loaded.keys:
                keyed = [(m, loaded.keys[loaded.ok[j]], loaded.pixels[j]) for m, j in enumerate(misses)]
                keyed = [(m, key, px) for m, key, px in keyed if key]
                if keyed:
                    picks = [m for m, _, _ in keyed]
                    feature_pass.cache.put_many(
                        [key for _, key, _ in keyed], [out[picks] for out in outputs], [px for _, _, px in keyed]
                    )
        order = sorted(rows)
        columns = tuple(np.stack([rows[i][c] for i in order]) for c in range(len(feature_pass.backbone.outputs)))
        return order, columns

    def stats(self, source: Source, label: str = "input") -> list[Stats]:
        """Each backbone's μ and Σ (float64, n − 1) of the images of `source`, streamed."""
        total = len(source)
        size = self.batch_size
        bounds = [(i, min(i + size, total)) for i in range(0, total, size)]
        moments = [_fidrs.Moments(p.backbone.feature_dim) for p in self.passes]
        columns_of = [p.backbone.output_names.index(p.backbone.feature_output) for p in self.passes]
        reports = [PassReport(provider=p.provider) for p in self.passes]
        failures: list[tuple[str, str]] = []
        labels = source.labels
        progress = progress_bar(total, label, self.options.progress)
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="fidrs-decode") as pool:
            pending: deque[Future[_Loaded]] = deque()
            for k in range(min(PREFETCH_BATCHES, len(bounds))):
                pending.append(pool.submit(self._load, source, *bounds[k]))
            for b, (start, stop) in enumerate(bounds):
                loaded = pending.popleft().result()
                if b + PREFETCH_BATCHES < len(bounds):
                    pending.append(pool.submit(self._load, source, *bounds[b + PREFETCH_BATCHES]))
                failures.extend((labels[start + i], reason) for i, reason in loaded.failed)
                progress.update(stop - start)
                if failures and not self.options.skip_bad:
                    continue  # keep decoding to report every bad file, but stop computing
                for k in range(len(self.passes)):
                    order, columns = self._combine(k, loaded)
                    if order:
                        moments[k].update(columns[columns_of[k]])
                    reports[k].n += len(order)
                    reports[k].cache_hits += len(loaded.hits[k])
        progress.close()
        report_bad_files(failures, self.options.skip_bad)
        out = []
        for feature_pass, m in zip(self.passes, moments):
            backbone, model = feature_pass.backbone, feature_pass.model
            check_sample_count(m.n, backbone.feature_dim, label, stacklevel=3)
            out.append(
                Stats.from_moments(
                    m, feature_pass.resolved.mode_label, model.weights_sha256, backbone.name, model.graph_sha256
                )
            )
        return out


def stats_by_backbone(
    inputs: InputLike, backbones: Sequence[str], options: Options | None = None, **keywords: Any
) -> list[Stats]:
    """The statistics of `inputs` under each of `backbones` (registered names), from one decode of each image;
    the other options apply to every backbone (`mode`, if given, must be a mode of each). In the order given."""
    base = Options.of(options, **keywords)
    if len(backbones) > 1:
        for name in ("weights", "weights_sha256", "model"):
            if getattr(base, name) is not None:
                raise InvalidInputError(
                    f"{name} names one backbone's network; with several backbones give each its checkpoint by "
                    "its variable (FIDRS_WEIGHTS_<BACKBONE>, FIDRS_WEIGHTS_SHA256_<BACKBONE>) or the cache"
                )
    evaluators = [Evaluator(base, backbone=name) for name in backbones]
    source = sources.resolve(inputs, allow_stats=False)
    return MultiPass([e.network for e in evaluators]).stats(source, sources.label(inputs, "input"))


__all__ = ["MultiPass", "stats_by_backbone"]
