"""The feature pass, one for every backbone and every caller (features, statistics, feature sets): decode +
preprocess in Rust (GIL released) while ONNX Runtime runs the previous batch, the feature cache in between."""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Union

import numpy as np

from . import _fidrs, backbones
from .backbones import Backbone
from .cache import FeatureCache, content_hash, feature_key
from .errors import BadImagesError, InvalidInputError, WeightsError
from .files import display
from .inputs import ImageArray, ImageFiles, RemoteFiles, ZipImages
from .progress import progress_bar
from .runtime import NetworkSession, get_session
from .weights import ResolvedModel, resolve_model

FileSource = Union[ImageFiles, ZipImages, RemoteFiles]
AnySource = Union[ImageFiles, ImageArray, ZipImages, RemoteFiles]

DEFAULT_MAX_PIXELS: int = _fidrs.DEFAULT_MAX_PIXELS
DEFAULT_PAD_COLOR = (255, 255, 255)
# Batches decoded ahead of the network: with one, any batch that decodes slower than the network runs left the
# decoder waiting for the next submit; two absorb that jitter (bench/bench_overlap.py).
PREFETCH_BATCHES = 2


@dataclass
class PassOptions:
    """Every option of a feature pass (the keyword options of `score`, `stats`, `features`, `feature_set`)."""

    backbone: str | Backbone | None = None  # None: backbones.DEFAULT
    weights: str | None = None
    weights_sha256: str | None = None  # pin the checkpoint's sha256
    model: str | None = None  # a graph written by `fidrs models export` instead of a checkpoint
    mode: str | None = None  # None: the backbone's default mode
    batch_size: int | None = None  # None: the session's default (runtime.DEFAULT_BATCH)
    device: str = "auto"
    skip_bad: bool = False
    pad_color: tuple[int, int, int] = DEFAULT_PAD_COLOR
    max_pixels: int = DEFAULT_MAX_PIXELS
    allow_tf32: bool = False
    progress: bool = False
    cache: bool = True

    def __post_init__(self) -> None:
        if self.model is not None:
            if self.weights is not None:
                raise InvalidInputError("give either weights (a checkpoint) or model (an exported graph), not both")
            self.model = os.fspath(self.model)
            if self.backbone is None:
                from .exported import exported_backbone

                self.backbone = exported_backbone(self.model)
        self.backbone = backbones.get(self.backbone)
        self.mode = self.backbone.mode(self.mode).name
        if self.batch_size is not None and (isinstance(self.batch_size, bool) or self.batch_size < 1):
            raise InvalidInputError(f"batch_size must be at least 1, got {self.batch_size}")
        color = tuple(self.pad_color)
        integers = all(isinstance(c, (int, np.integer)) and not isinstance(c, bool) for c in color)
        if len(color) != 3 or not integers or not all(0 <= c <= 255 for c in color):
            raise InvalidInputError(f"pad_color must be three integers in 0..255, got {self.pad_color!r}")
        self.pad_color = tuple(int(c) for c in color)  # type: ignore[assignment]
        if isinstance(self.max_pixels, bool) or not isinstance(self.max_pixels, int) or self.max_pixels < 1:
            raise InvalidInputError(f"max_pixels must be a positive integer, got {self.max_pixels!r}")

    @property
    def mode_label(self) -> str:
        """The mode as recorded in statistics: a mode that pads carries its fill colour unless it is white."""
        if self.backbone.mode(self.mode).uses_pad_color and tuple(self.pad_color) != DEFAULT_PAD_COLOR:
            return f"{self.mode}(" + ",".join(str(int(c)) for c in self.pad_color) + ")"
        return self.mode

    @property
    def preprocessing(self) -> _fidrs.Preprocessing:
        return self.backbone.mode(self.mode).build(self.pad_color)


def resolve_pass_model(options: PassOptions) -> ResolvedModel:
    """The network of a pass: an exported graph (`model`), else the backbone's checkpoint turned into a graph."""
    if options.model is not None:
        from .exported import load_exported

        return load_exported(options.model, options.backbone, options.weights_sha256)
    return resolve_model(options.backbone, options.weights, options.weights_sha256)


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


def read_blobs(source: FileSource, start: int, stop: int, max_pixels: int) -> list[bytes | str]:
    """The encoded bytes of images `start:stop`, or the reason each cannot be read, under the size cap that
    `max_pixels` implies."""
    if isinstance(source, (ZipImages, RemoteFiles)):
        return source.read(start, stop, _fidrs.max_file_bytes(max_pixels))
    return _fidrs.read_files(source.paths[start:stop], max_pixels)


def decode_failures(source: FileSource, start: int, stop: int, options: PassOptions):
    """(index, reason) of the images `start:stop` that cannot be read or decoded; nothing else is computed."""
    blobs = read_blobs(source, start, stop, options.max_pixels)
    readable = [i for i, b in enumerate(blobs) if isinstance(b, bytes)]
    _, _, bad, _ = _fidrs.load_encoded([blobs[i] for i in readable], options.preprocessing, options.max_pixels)
    return sorted([(i, b) for i, b in enumerate(blobs) if isinstance(b, str)] + [(readable[i], r) for i, r in bad])


@dataclass
class Collected:
    """Every output of a pass over one input, rows in input order, bad files left out (`skip_bad`)."""

    outputs: dict[str, np.ndarray]
    kept: np.ndarray  # input indices of the rows
    report: PassReport


class FeaturePass:
    """A backbone's network, loaded once, run over any number of inputs."""

    def __init__(self, options: PassOptions, model: ResolvedModel | None = None) -> None:
        """`model`: an already resolved network (a cluster worker gets the driver's graph); None resolves the
        options' weights."""
        self.options = options
        self.backbone: Backbone = options.backbone  # type: ignore[assignment]
        self.preprocessing = options.preprocessing
        self.model: ResolvedModel = model or resolve_pass_model(options)
        self.session: NetworkSession = get_session(
            str(self.model.onnx_path), self.backbone.output_names, options.device, options.allow_tf32
        )
        found = self.session.output_dims()
        expected = tuple(o.dim for o in self.backbone.outputs)
        if found != expected:
            raise WeightsError(
                f"{display(self.model.checkpoint)}: its network gives outputs of size {found}; backbone "
                f"{self.backbone.name!r} has {expected}"
            )
        self._buffers: list[np.ndarray] = []
        self._buffers_lock = threading.Lock()
        self.cache: FeatureCache | None = None
        if options.cache:
            from .runtime import runtime_version

            key = feature_key(
                self.backbone,
                self.model,
                self.backbone.mode(options.mode),
                options.mode_label,
                self.provider,
                options.allow_tf32,
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
        return self.options.batch_size or self.session.default_batch_size

    def _load(self, source: AnySource, start: int, stop: int, out: np.ndarray) -> _Loaded:
        """Runs in the decode thread: read the bytes, look them up in the cache, decode + preprocess the misses
        into `out` (the batch's network inputs are a view of it). Each file is read once: its bytes are hashed
        for the cache and, on a miss, decoded from memory."""
        o = self.options
        if isinstance(source, ImageArray):
            images = np.ascontiguousarray(source.images[start:stop])
            batch = _fidrs.preprocess_arrays(images, self.preprocessing, out=out)
            return _Loaded(batch, list(range(stop - start)), [], {}, [], [])
        if isinstance(source, ImageFiles) and not self.cache:
            paths = source.paths[start:stop]
            return _Loaded(*_fidrs.load_images(paths, self.preprocessing, o.max_pixels, out=out)[:3], {}, [], [])
        blobs = read_blobs(source, start, stop, o.max_pixels)
        failed = [(i, b) for i, b in enumerate(blobs) if isinstance(b, str)]
        keys: list[str | None] = [None] * len(blobs)
        hits: dict[int, tuple[np.ndarray, ...]] = {}
        if self.cache:
            keys = [content_hash(b) if isinstance(b, bytes) else None for b in blobs]
            hits = self.cache.get_many(keys, o.max_pixels)
        todo = [i for i, b in enumerate(blobs) if isinstance(b, bytes) and i not in hits]
        batch, ok, bad, pixels = _fidrs.load_encoded(
            [blobs[i] for i in todo], self.preprocessing, o.max_pixels, out=out
        )
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

    def collect(self, source: AnySource, label: str = "features") -> Collected:
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
        self, source: AnySource, report: PassReport, label: str = "features", collect_bad: bool = False
    ) -> Iterator[tuple[np.ndarray, tuple[np.ndarray, ...]]]:
        """Yield (input indices, the backbone's outputs) per batch, in input order. Bad files raise
        BadImagesError after every file was tried, unless `skip_bad`, which records them in `report.skipped`
        and lists them on stderr. `collect_bad` (a shard of a larger job): every usable image is computed and
        bad files are only recorded in `report.skipped`, for the caller to report."""
        o = self.options
        total = len(source)
        size = self.batch_size
        bounds = [(i, min(i + size, total)) for i in range(0, total, size)]
        failures: list[tuple[str, str]] = []
        progress = progress_bar(total, label, o.progress)
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
                failures.extend((source.paths[start + i], reason) for i, reason in failed)
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
    """Every bad file of a pass: an error naming each (BadImagesError), or, with `skip_bad`, the same list on
    stderr."""
    if failures and not skip_bad:
        raise BadImagesError(failures)
    if failures:
        print(f"fidrs: skipped {len(failures)} bad file(s):", file=sys.stderr)
        for path, reason in failures:
            print(f"  {display(path)}: {reason}", file=sys.stderr)
