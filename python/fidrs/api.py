"""The public functions: features, stats, score (any backbone: `backbone="dinov2"` gives FD_DINOv2)."""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import _fidrs
from .errors import BadImagesError, EmptyInputError, FidrsError, InvalidInputError, NumericalError
from .feature_pass import FeaturePass, PassOptions, PassReport, decode_failures
from .files import display
from .frechet import frechet_distance
from .inputs import ImageArray, ImageFiles, InputLike, RemoteFiles, StatsFile, ZipImages, resolve_source
from .stats import Stats


class SmallSampleWarning(UserWarning):
    """Fewer images than feature dimensions: the covariance is singular and FID is biased upwards."""


class UnknownModeWarning(UserWarning):
    """A statistics file that records no preprocessing mode is compared with images of a non-default mode."""


def _feature_pass(options: dict[str, Any]) -> FeaturePass:
    return FeaturePass(PassOptions(**options))


def features(inputs: InputLike, **options: Any) -> np.ndarray:
    """The backbone's features (N × d float32: pool3 for the Inception, the CLS token for DINOv2) in input
    order. Options as for `score`."""
    source = resolve_source(inputs, allow_stats=False)
    network = _feature_pass(options)
    return network.collect(source).outputs[network.backbone.feature_output]


def check_sample_count(n: int, dim: int, label: str, stacklevel: int = 3) -> None:
    """At least 2 images for a covariance; fewer than d gives a singular one (warned)."""
    if n == 0:
        raise EmptyInputError(f"{label}: no image could be used")
    if n < 2:
        raise InvalidInputError(f"{label}: a single image gives no covariance; a Fréchet distance needs at least 2")
    if n < dim:
        warnings.warn(
            f"{label}: {n} images < {dim} feature dimensions: the covariance is singular and "
            "the Fréchet distance is biased upwards; compare values only at equal n",
            SmallSampleWarning,
            stacklevel=stacklevel + 1,
        )


def _stats_from_source(source, network: FeaturePass, label: str) -> tuple[Stats, PassReport]:
    report = PassReport()
    backbone = network.backbone
    column = backbone.output_names.index(backbone.feature_output)
    moments = _fidrs.Moments(backbone.feature_dim)
    for _idx, columns in network.iter_batches(source, report, label=label):
        moments.update(columns[column])
    check_sample_count(moments.n, backbone.feature_dim, label, stacklevel=3)
    model = network.model
    stats = Stats.from_moments(
        moments, network.options.mode_label, model.weights_sha256, backbone.name, model.graph_sha256
    )
    return stats, report


def stats(inputs: InputLike, **options: Any) -> Stats:
    """μ and Σ (float64, n − 1) of the backbone's features, streamed: memory stays O(d²)."""
    source = resolve_source(inputs, allow_stats=False)
    label = str(inputs) if isinstance(inputs, str) else "input"
    return _stats_from_source(source, _feature_pass(options), label)[0]


def _side_stats(inputs: InputLike, label: str, options: dict[str, Any], state: dict) -> tuple[Stats, PassReport]:
    source = resolve_source(inputs)
    if isinstance(source, StatsFile):
        return Stats.load(source.path), PassReport(provider="")
    assert isinstance(source, (ImageFiles, ImageArray, ZipImages, RemoteFiles))
    if "network" not in state:
        state["network"] = _feature_pass(options)
    return _stats_from_source(source, state["network"], label)


def _decode_failures(inputs: InputLike, options: dict[str, Any]) -> list[tuple[str, str]]:
    """(path, reason) of every file of `inputs` that cannot be decoded; nothing else is computed."""
    try:
        source = resolve_source(inputs)
    except FidrsError:
        return []  # reported on its own once the first side is fixed
    if not isinstance(source, (ImageFiles, ZipImages, RemoteFiles)):
        return []
    o = PassOptions(**options)
    failures = []
    chunk = o.batch_size or 64  # decoding only: any chunk gives the same answer
    for start in range(0, len(source), chunk):
        stop = min(start + chunk, len(source))
        failures += [(source.paths[start + i], reason) for i, reason in decode_failures(source, start, stop, o)]
    return failures


def score_details(a: InputLike, b: InputLike, *, method: str = "auto", **options: Any) -> dict[str, Any]:
    """`score` with everything the CLI reports: fid, backbone, n_a, n_b, mode, weights_sha256, provider,
    skipped..."""
    PassOptions(**options)  # bad options fail before any statistics file or image is read
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
    network: FeaturePass | None = state.get("network")
    run = (
        RunInfo.of(network.options, network.model.weights_sha256, network.provider, network.model.graph_sha256)
        if network
        else None
    )
    return score_from_stats(
        (label_a, stats_a, report_a), (label_b, stats_b, report_b), run, method=method, started=start
    )


@dataclass(frozen=True)
class RunInfo:
    """What the feature pass of a score was run with (to check statistics files against it)."""

    mode_label: str
    weights_sha256: str
    backbone: str
    default_mode: str
    provider: str
    graph_sha256: str | None = None

    @classmethod
    def of(cls, options: PassOptions, weights_sha256: str, provider: str, graph_sha256: str | None) -> RunInfo:
        backbone = options.backbone
        return cls(options.mode_label, weights_sha256, backbone.name, backbone.default_mode, provider, graph_sha256)  # type: ignore[union-attr]


def score_from_stats(
    side_a: tuple[str, Stats, PassReport],
    side_b: tuple[str, Stats, PassReport],
    run: RunInfo | None,
    *,
    method: str,
    started: float,
) -> dict[str, Any]:
    """The result of `score_details` from both sides' statistics (computed here, on a cluster, or loaded)."""
    (label_a, stats_a, report_a), (label_b, stats_b, report_b) = side_a, side_b
    stats_a.check_compatible(stats_b)
    if run is not None:
        # A stats file computed elsewhere must match what this run would compute.
        this_run = Stats(
            stats_a.mu,
            stats_a.sigma,
            mode=run.mode_label,
            weights_sha256=run.weights_sha256,
            backbone=run.backbone,
            graph_sha256=run.graph_sha256,
        )
        for s in (stats_a, stats_b):
            this_run.check_compatible(s)
    run_mode = run.mode_label if run is not None else None
    default_mode = run.default_mode if run is not None else None
    for label, s in ((label_a, stats_a), (label_b, stats_b)):
        if s.mode is None and run_mode is not None and run_mode != default_mode:
            warnings.warn(
                f"{display(label)}: the statistics file records no preprocessing mode (pytorch-fid and clean-fid "
                f"files do not), so it is unknown; it is compared with images preprocessed in mode {run_mode!r}",
                UnknownModeWarning,
                stacklevel=3,
            )
    info = frechet_distance(stats_a.mu, stats_a.sigma, stats_b.mu, stats_b.sigma, method, return_info=True)
    if not np.isfinite(info["value"]):
        raise NumericalError(f"the Fréchet distance came out {info['value']}")
    return {
        "fid": info["value"],
        # The backbone as recorded (a pytorch-fid or clean-fid file records none) or, failing that, this run's.
        "backbone": stats_a.backbone or stats_b.backbone or (run.backbone if run else None),
        "n_a": stats_a.n,
        "n_b": stats_b.n,
        # A statistics file without a recorded mode (pytorch-fid, clean-fid) has an unknown mode: null, never
        # a guess. `mode` is the mode both sides are known to share.
        "mode": stats_a.mode if stats_a.mode is not None and stats_a.mode == stats_b.mode else None,
        "mode_a": stats_a.mode,
        "mode_b": stats_b.mode,
        "weights_sha256": stats_a.weights_sha256 or stats_b.weights_sha256,
        "provider": run.provider if run else None,
        "method": info["method"],
        "skipped": [{"path": p, "reason": r} for p, r in report_a.skipped + report_b.skipped],
        "cache_hits": report_a.cache_hits + report_b.cache_hits,
        "seconds": time.perf_counter() - started,
    }


def score(a: InputLike, b: InputLike, **options: Any) -> float:
    """FID between two image sets (directories, file lists, globs, uint8 arrays) or `.npz` statistics.

    Options: backbone ("inception" default; "dinov2" = DINOv2 ViT-L/14 gives FD_DINOv2; `fidrs.backbones.names()`),
    weights, weights_sha256 (pin the checkpoint), mode (the backbone's preprocessing preset; Inception:
    "pytorch-fid" default, "clean", "tf1", "pad"; DINOv2: "dgm-eval"), batch_size (default 16 on CPU, 200 on
    CUDA; features do not depend on it), device ("auto", "cpu", "cuda"), skip_bad, pad_color, max_pixels,
    allow_tf32, progress, cache (True: reuse features of unchanged files), method (Fréchet method).
    """
    return score_details(a, b, **options)["fid"]
