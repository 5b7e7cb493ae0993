"""The feature pass: decode + preprocess in Rust (GIL released) while ONNX Runtime runs the previous batch."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from . import _fidrs
from .errors import BadImagesError
from .inputs import ImageArray, ImageFiles, ZipImages
from .runtime import InceptionSession, get_session
from .weights import ResolvedModel, resolve_model

MODES = ("pytorch-fid", "clean", "tf1", "pad")
DEFAULT_MAX_PIXELS = 178_956_970


@dataclass
class ExtractOptions:
    weights: str | None = None
    mode: str = "pytorch-fid"
    batch_size: int = 50
    device: str = "auto"
    skip_bad: bool = False
    pad_color: tuple[int, int, int] = (255, 255, 255)
    max_pixels: int = DEFAULT_MAX_PIXELS
    allow_tf32: bool = False
    progress: bool = False

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size}")


@dataclass
class PassReport:
    """What a feature pass did: how many images, which were skipped, which provider ran."""

    n: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    provider: str = ""


class _Progress:
    def __init__(self, total: int, enabled: bool, label: str) -> None:
        self.total, self.enabled, self.label, self.done = total, enabled, label, 0

    def advance(self, count: int) -> None:
        self.done += count
        if self.enabled:
            print(f"\rfidrs: {self.label} {self.done}/{self.total} images", end="", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.enabled:
            print(file=sys.stderr, flush=True)


class FeatureExtractor:
    def __init__(self, options: ExtractOptions) -> None:
        self.options = options
        self.model: ResolvedModel = resolve_model(options.weights)
        self.session: InceptionSession = get_session(str(self.model.onnx_path), options.device, options.allow_tf32)

    @property
    def provider(self) -> str:
        return self.session.provider

    def _load(self, source: ImageFiles | ImageArray | ZipImages, start: int, stop: int):
        o = self.options
        if isinstance(source, ZipImages):
            return _fidrs.load_encoded(source.read(start, stop), o.mode, list(o.pad_color), o.max_pixels)
        if isinstance(source, ImageArray):
            batch = _fidrs.preprocess_arrays(np.ascontiguousarray(source.images[start:stop]), o.mode, list(o.pad_color))
            return batch, list(range(stop - start)), []
        return _fidrs.load_images(source.paths[start:stop], o.mode, list(o.pad_color), o.max_pixels)

    def iter_batches(
        self, source: ImageFiles | ImageArray | ZipImages, report: PassReport, label: str = "features"
    ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Yield (input indices, pool3, logits) per batch, in input order. Bad files raise BadImagesError
        after every file was tried, unless `skip_bad`, which records them in `report.skipped`."""
        o = self.options
        total = len(source)
        bounds = [(i, min(i + o.batch_size, total)) for i in range(0, total, o.batch_size)]
        failures: list[tuple[str, str]] = []
        progress = _Progress(total, o.progress, label)
        report.provider = self.provider
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="fidrs-decode") as pool:
            pending = pool.submit(self._load, source, *bounds[0]) if bounds else None
            for k, (start, _stop) in enumerate(bounds):
                batch, ok, failed = pending.result()
                if k + 1 < len(bounds):
                    pending = pool.submit(self._load, source, *bounds[k + 1])
                failures.extend((source.paths[start + i], reason) for i, reason in failed)
                if failures and not o.skip_bad:
                    progress.advance(len(ok) + len(failed))
                    continue  # keep decoding to report every bad file, but stop computing
                if len(ok):
                    pool3, logits = self.session.run(batch)
                    report.n += len(ok)
                    yield np.asarray(ok) + start, pool3, logits
                progress.advance(len(ok) + len(failed))
        progress.close()
        if failures and not o.skip_bad:
            raise BadImagesError(failures)
        report.skipped = failures
        if failures:
            print(f"fidrs: skipped {len(failures)} bad file(s):", file=sys.stderr)
            for path, reason in failures:
                print(f"  {path}: {reason}", file=sys.stderr)
