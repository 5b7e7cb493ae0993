"""The public functions: features, stats, score."""

from __future__ import annotations

import time
import warnings
from typing import Any

import numpy as np

from . import _fidrs
from .errors import BadImagesError, EmptyInputError, FidrsError, InvalidInputError, NumericalError
from .extract import ExtractOptions, FeatureExtractor, PassReport, decode_failures
from .files import display
from .frechet import frechet_distance
from .inputs import ImageArray, ImageFiles, InputLike, StatsFile, ZipImages, resolve_source
from .stats import Stats

FEATURE_DIM = 2048
DEFAULT_MODE = "pytorch-fid"


class SmallSampleWarning(UserWarning):
    """Fewer images than feature dimensions: the covariance is singular and FID is biased upwards."""


class UnknownModeWarning(UserWarning):
    """A statistics file that records no preprocessing mode is compared with images of a non-default mode."""


def _extractor(options: dict[str, Any]) -> FeatureExtractor:
    return FeatureExtractor(ExtractOptions(**options))


def features(inputs: InputLike, **options: Any) -> np.ndarray:
    """pool3 features (N×2048 float32) in input order. Options as for `score`."""
    source = resolve_source(inputs, allow_stats=False)
    extractor = _extractor(options)
    report = PassReport()
    out = np.empty((len(source), FEATURE_DIM), dtype=np.float32)
    kept = np.zeros(len(source), dtype=bool)
    for idx, pool3, _logits in extractor.iter_batches(source, report):
        out[idx] = pool3
        kept[idx] = True
    return out[kept]


def _stats_from_source(source, extractor: FeatureExtractor, label: str) -> tuple[Stats, PassReport]:
    report = PassReport()
    moments = _fidrs.Moments(FEATURE_DIM)
    for _idx, pool3, _logits in extractor.iter_batches(source, report, label=label):
        moments.update(pool3)
    if moments.n == 0:
        raise EmptyInputError(f"{label}: no image could be used")
    if moments.n < 2:
        raise InvalidInputError(f"{label}: a single image gives no covariance; FID needs at least 2")
    if moments.n < FEATURE_DIM:
        warnings.warn(
            f"{label}: {moments.n} images < {FEATURE_DIM} feature dimensions: the covariance is singular and "
            "FID is biased upwards; compare FIDs only at equal n",
            SmallSampleWarning,
            stacklevel=3,
        )
    return Stats.from_moments(moments, extractor.options.mode_label, extractor.model.weights_sha256), report


def stats(inputs: InputLike, **options: Any) -> Stats:
    """μ and Σ (float64, n − 1) of the pool3 features, streamed: memory stays O(d²)."""
    source = resolve_source(inputs, allow_stats=False)
    return _stats_from_source(source, _extractor(options), str(inputs) if isinstance(inputs, str) else "input")[0]


def _side_stats(inputs: InputLike, label: str, options: dict[str, Any], state: dict) -> tuple[Stats, PassReport]:
    source = resolve_source(inputs)
    if isinstance(source, StatsFile):
        return Stats.load(source.path), PassReport(provider="")
    assert isinstance(source, (ImageFiles, ImageArray, ZipImages))
    if "extractor" not in state:
        state["extractor"] = _extractor(options)
    return _stats_from_source(source, state["extractor"], label)


def _decode_failures(inputs: InputLike, options: dict[str, Any]) -> list[tuple[str, str]]:
    """(path, reason) of every file of `inputs` that cannot be decoded; nothing else is computed."""
    try:
        source = resolve_source(inputs)
    except FidrsError:
        return []  # reported on its own once the first side is fixed
    if not isinstance(source, (ImageFiles, ZipImages)):
        return []
    o = ExtractOptions(**options)
    failures = []
    chunk = o.batch_size or 64  # decoding only: any chunk gives the same answer
    for start in range(0, len(source), chunk):
        stop = min(start + chunk, len(source))
        failures += [(source.paths[start + i], reason) for i, reason in decode_failures(source, start, stop, o)]
    return failures


def score_details(a: InputLike, b: InputLike, *, method: str = "auto", **options: Any) -> dict[str, Any]:
    """`score` with everything the CLI reports: fid, n_a, n_b, mode, weights_sha256, provider, skipped..."""
    start = time.perf_counter()
    state: dict = {}
    label_a = str(a) if isinstance(a, (str,)) else "a"
    label_b = str(b) if isinstance(b, (str,)) else "b"
    try:
        stats_a, report_a = _side_stats(a, label_a, options, state)
    except BadImagesError as bad_a:
        # Report every bad file of both sides in one run: scan B's files (decode only, no network).
        raise BadImagesError(bad_a.failures + _decode_failures(b, options)) from None
    stats_b, report_b = _side_stats(b, label_b, options, state)
    stats_a.check_compatible(stats_b)
    extractor = state.get("extractor")
    if extractor is not None:
        # A stats file computed elsewhere must match what this run would compute.
        this_run = Stats(
            stats_a.mu, stats_a.sigma, mode=extractor.options.mode_label, weights_sha256=extractor.model.weights_sha256
        )
        for s in (stats_a, stats_b):
            this_run.check_compatible(s)
    run_mode = extractor.options.mode_label if extractor is not None else None
    for label, s in ((label_a, stats_a), (label_b, stats_b)):
        if s.mode is None and run_mode is not None and run_mode != DEFAULT_MODE:
            warnings.warn(
                f"{display(label)}: the statistics file records no preprocessing mode (pytorch-fid and clean-fid "
                f"files do not), so it is unknown; it is compared with images preprocessed in mode {run_mode!r}",
                UnknownModeWarning,
                stacklevel=2,
            )
    info = frechet_distance(stats_a.mu, stats_a.sigma, stats_b.mu, stats_b.sigma, method, return_info=True)
    if not np.isfinite(info["value"]):
        raise NumericalError(f"the Fréchet distance came out {info['value']}")
    return {
        "fid": info["value"],
        "n_a": stats_a.n,
        "n_b": stats_b.n,
        # A statistics file without a recorded mode (pytorch-fid, clean-fid) has an unknown mode: null, never
        # a guess. `mode` is the mode both sides are known to share.
        "mode": stats_a.mode if stats_a.mode is not None and stats_a.mode == stats_b.mode else None,
        "mode_a": stats_a.mode,
        "mode_b": stats_b.mode,
        "weights_sha256": stats_a.weights_sha256 or stats_b.weights_sha256,
        "provider": extractor.provider if extractor else None,
        "method": info["method"],
        "skipped": [{"path": p, "reason": r} for p, r in report_a.skipped + report_b.skipped],
        "cache_hits": report_a.cache_hits + report_b.cache_hits,
        "seconds": time.perf_counter() - start,
    }


def score(a: InputLike, b: InputLike, **options: Any) -> float:
    """FID between two image sets (directories, file lists, globs, uint8 arrays) or `.npz` statistics.

    Options: weights, mode ("pytorch-fid", "clean", "tf1", "pad"), batch_size (default 16 on CPU, 200 on CUDA;
    features do not depend on it), device ("auto", "cpu", "cuda"), skip_bad, pad_color, max_pixels, allow_tf32,
    progress, cache (True: reuse features of unchanged files), method (Fréchet method).
    """
    return score_details(a, b, **options)["fid"]
