"""The feature pass, one for every backbone and every caller (features, statistics, feature sets): decode +
preprocess in Rust (GIL released) while ONNX Runtime runs the previous batch, the feature cache in between. It
runs over any `Source` with `Resolved` options."""

from __future__ import annotations

import contextlib
import threading
import warnings
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from . import _fidrs
from .backbones import Backbone
from .cache import FeatureCache, content_hash, feature_key
from .display import display
from .errors import BadImagesError, SkippedFilesWarning, WeightsError
from .options import Resolved
from .progress import progress_bar
from .sources import Source
from .weights import ResolvedModel, resolve_model

# Batches decoded ahead of the network: with one, any batch that decodes slower than the network runs left the
# decoder waiting for the next submit; two absorb that jitter (bench/bench_overlap.py).
PREFETCH_BATCHES = 2


def load_model(resolved: Resolved) -> ResolvedModel:
    """The network of a pass: an exported graph (`model`), else the backbone's checkpoint turned into a graph."""
    o = resolved.options
    if o.model is not None:
        from .exported import load_exported

        return load_exported(o.model, resolved.backbone, o.weights_sha256)
    return resolve_model(resolved.backbone, o.weights, o.weights_sha256)


def get_session(onnx_path: str, outputs: tuple[str, ...], device: str, allow_tf32: bool):
    """An ONNX Runtime session (runtime.py, which imports onnxruntime, is imported here: when a network runs)."""
    from .runtime import get_session as session

    return session(onnx_path, outputs, device, allow_tf32)


@dataclass
class PassReport:
    """What a feature pass did: how many images, which were skipped, which provider ran."""

    n: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    provider: str = ""
    cache_hits: int = 0


@dataclass
class _Loaded:
    """One batch from the decode thread: network inputs of the images to compute, their batch-relative
    indices, failures (index, reason), cached results by index, content keys (empty without cache) and the
    pixel count of each computed image."""

    batch: np.ndarray
    ok: list[int]
    failed: list[tuple[int, str]]
    hits: dict[int, tuple[np.ndarray, ...]]
    keys: list[str | None]
    pixels: list[int]


def decode_failures(source: Source, resolved: Resolved, chunk: int = 64) -> list[tuple[str, str]]:
    """(label, reason) of every image of `source` that cannot be read or decoded; no network runs."""
    failures = []
    labels = source.labels
    for start in range(0, len(source), chunk):
        stop = min(start + chunk, len(source))
        _, _, failed, _ = source.read_pixels(start, stop, resolved.preprocessing, resolved.options.max_pixels, None)
        failures += [(labels[start + i], reason) for i, reason in failed]
    return failures


@dataclass
class Collected:
    """Every output of a pass over one input, rows in input order, bad files left out (`skip_bad`)."""

    outputs: dict[str, np.ndarray]
    kept: np.ndarray  # input indices of the rows
    report: PassReport


class FeaturePass:
    """A backbone's network, loaded once, run over any number of inputs."""

    def __init__(self, resolved: Resolved, model: ResolvedModel | None = None) -> None:
        """`model`: an already resolved network (a cluster worker gets the driver's graph); None resolves the
        options' weights."""
        self.resolved = resolved
        o = resolved.options
        self.backbone: Backbone = resolved.backbone
        self.preprocessing = resolved.preprocessing
        self.model: ResolvedModel = model or load_model(resolved)
        self.session = get_session(str(self.model.onnx_path), self.backbone.output_names, o.device, o.allow_tf32)
        found = self.session.output_dims()
        expected = tuple(out.dim for out in self.backbone.outputs)
        if found != expected:
            raise WeightsError(
                f"{display(self.model.checkpoint)}: its network gives outputs of size {found}; backbone "
                f"{self.backbone.name!r} has {expected}"
            )
        self._buffers: list[np.ndarray] = []
        self._buffers_lock = threading.Lock()
        self.cache: FeatureCache | None = None
        if o.cache:
            from .runtime import runtime_version

            key = feature_key(
                self.backbone,
                self.model,
                resolved.mode,
                resolved.mode_label,
                self.provider,
                o.allow_tf32,
                runtime_version(),
            )
            cache = FeatureCache(self.backbone, key)
            self.cache = cache if cache.enabled else None

    @contextlib.contextmanager
    def _input_buffers(self, batch: int, count: int) -> Iterator[list[np.ndarray]]:
        """`count` input buffers of `batch` images, kept for the pass's next calls (a training loop's
        `Accumulator.update` calls it once per step: its buffers are allocated and faulted in once). A call
        made while another thread's pass holds them gets buffers of its own."""
        shape = (batch, 3, self.preprocessing.size, self.preprocessing.size)
        if not self._buffers_lock.acquire(blocking=False):
            yield [np.empty(shape, np.float32) for _ in range(count)]
            return
        try:
            kept = [b for b in self._buffers if b.shape[0] >= batch][:count]
            self._buffers = kept + [np.empty(shape, np.float32) for _ in range(count - len(kept))]
            yield self._buffers
        finally:
            self._buffers_lock.release()

    @property
    def provider(self) -> str:
        return self.session.provider

    @property
    def batch_size(self) -> int:
        return self.resolved.options.batch_size or self.session.default_batch_size

    def _load(self, source: Source, start: int, stop: int, out: np.ndarray) -> _Loaded:
        """Runs in the decode thread: read the bytes, look them up in the cache, decode + preprocess the misses
        into `out` (the batch's network inputs are a view of it). Each file is read once: its bytes are hashed
        for the cache and, on a miss, decoded from memory."""
        max_pixels = self.resolved.options.max_pixels
        if not (self.cache and source.cacheable):
            batch, ok, failed, _ = source.read_pixels(start, stop, self.preprocessing, max_pixels, out)
            return _Loaded(batch, ok, failed, {}, [], [])
        blobs = source.read_blobs(start, stop, max_pixels)
        failed = [(i, b) for i, b in enumerate(blobs) if isinstance(b, str)]
        keys: list[str | None] = [content_hash(b) if isinstance(b, bytes) else None for b in blobs]
        hits = self.cache.get_many(keys, max_pixels)
        todo = [i for i, b in enumerate(blobs) if isinstance(b, bytes) and i not in hits]
        batch, ok, bad, pixels = _fidrs.load_encoded([blobs[i] for i in todo], self.preprocessing, max_pixels, out=out)
        failed = sorted(failed + [(todo[i], reason) for i, reason in bad])
        return _Loaded(batch, [todo[i] for i in ok], failed, hits, keys, list(pixels))

    def _combine(self, loaded: _Loaded, start: int, report: PassReport):
        """Run the network on what was not cached, store it, and merge with the cached rows in input order."""
        rows = dict(loaded.hits)
        if loaded.ok:
            outputs = self.session.run(loaded.batch)
            rows.update((i, tuple(out[j] for out in outputs)) for j, i in enumerate(loaded.ok))
            if self.cache and loaded.keys:
                keyed = [(j, loaded.keys[i]) for j, i in enumerate(loaded.ok) if loaded.keys[i]]
                if keyed:
                    picks = [j for j, _ in keyed]
                    pixels = [loaded.pixels[j] for j in picks]
                    self.cache.put_many([k for _, k in keyed], [out[picks] for out in outputs], pixels)
        order = sorted(rows)
        report.n += len(order)
        report.cache_hits += len(loaded.hits)
        columns = tuple(np.stack([rows[i][k] for i in order]) for k in range(len(self.backbone.outputs)))
        return np.asarray(order) + start, columns

    def collect(self, source: Source, label: str = "features") -> Collected:
        """Every output of every usable image, in input order."""
        report = PassReport()
        n = len(source)
        outputs = {o.name: np.empty((n, o.dim), np.float32) for o in self.backbone.outputs}
        kept = np.zeros(n, dtype=bool)
        for idx, columns in self.iter_batches(source, report, label):
            for o, column in zip(self.backbone.outputs, columns):
                outputs[o.name][idx] = column
            kept[idx] = True
        return Collected({k: v[kept] for k, v in outputs.items()}, np.flatnonzero(kept), report)

    def iter_batches(
        self, source: Source, report: PassReport, label: str = "features", collect_bad: bool = False
    ) -> Iterator[tuple[np.ndarray, tuple[np.ndarray, ...]]]:
        """Yield (input indices, the backbone's outputs) per batch, in input order. Bad files raise
        BadImagesError after every file was tried, unless `skip_bad`, which records them in `report.skipped`
        and names them in a SkippedFilesWarning. `collect_bad` (a shard of a larger job): every usable image is
        computed and bad files are only recorded in `report.skipped`, for the caller to report."""
        o = self.resolved.options
        total = len(source)
        size = self.batch_size
        bounds = [(i, min(i + size, total)) for i in range(0, total, size)]
        failures: list[tuple[str, str]] = []
        progress = progress_bar(total, label, o.progress)
        labels = source.labels
        report.provider = self.provider
        # The decode thread runs up to PREFETCH_BATCHES batches ahead of the network, each into its own input
        # buffer of a ring of PREFETCH_BATCHES + 1: batch k + PREFETCH_BATCHES reuses the buffer of batch k − 1,
        # which the network finished with before it was submitted. Reused buffers are written, not faulted in
        # page by page as a fresh array per batch was (a quarter of the decode time).
        with contextlib.ExitStack() as stack:  # (parenthesised `with` needs Python 3.10)
            buffers = stack.enter_context(self._input_buffers(min(size, total), min(PREFETCH_BATCHES + 1, len(bounds))))
            pool = stack.enter_context(ThreadPoolExecutor(max_workers=1, thread_name_prefix="fidrs-decode"))
            pending: deque[Future[_Loaded]] = deque()

            def submit(k: int) -> None:
                pending.append(pool.submit(self._load, source, *bounds[k], buffers[k % len(buffers)]))

            for k in range(min(PREFETCH_BATCHES, len(bounds))):
                submit(k)
            for k, (start, _stop) in enumerate(bounds):
                loaded = pending.popleft().result()
                ok, failed = loaded.ok, loaded.failed
                if k + PREFETCH_BATCHES < len(bounds):
                    submit(k + PREFETCH_BATCHES)
                failures.extend((labels[start + i], reason) for i, reason in failed)
                if failures and not (o.skip_bad or collect_bad):
                    progress.update(len(ok) + len(failed) + len(loaded.hits))
                    continue  # keep decoding to report every bad file, but stop computing
                if len(ok) or loaded.hits:
                    yield self._combine(loaded, start, report)
                progress.update(len(ok) + len(failed) + len(loaded.hits))
        progress.close()
        report.skipped = failures
        if not collect_bad:
            report_bad_files(failures, o.skip_bad)


def report_bad_files(failures: list[tuple[str, str]], skip_bad: bool) -> None:
    """Every bad file of a pass: an error naming each (BadImagesError), or, with `skip_bad`, the same list in a
    SkippedFilesWarning."""
    if failures and not skip_bad:
        raise BadImagesError(failures)
    if failures:
        lines = "".join(f"\n  {display(path)}: {reason}" for path, reason in failures)
        warnings.warn(f"skipped {len(failures)} bad file(s):{lines}", SkippedFilesWarning, stacklevel=3)
