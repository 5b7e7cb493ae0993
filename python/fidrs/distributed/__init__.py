"""fidrs on a Ray cluster: the statistics, scores and feature samples of the local API, computed by workers
across machines, equal to the single-machine numbers (moments are float64 sums, so only their summation order
differs: ~1e-16 relative).

Built on Ray Core (actors), not Ray Data: FID needs a reduction (float64 moments per shard), not a per-row
map whose outputs are collected, and a shard is then one Ray task whose one result is counted once, which is
what makes retries safe. `pip install 'fidrs[ray]'`; every node needs fidrs and ONNX Runtime installed (not
the weights: the driver ships its ONNX graph)."""

from __future__ import annotations

import time
from typing import Any

from ..api import RunInfo, check_sample_count, score_from_stats
from ..errors import InvalidInputError
from ..feature_pass import PassOptions, PassReport, report_bad_files
from ..inputs import ImageFiles, InputLike, RemoteFiles, Source, StatsFile, resolve_source
from ..metrics import FeatureSet
from ..stats import Stats
from .driver import JobResult, SideResult, run_job
from .plan import sample_indices, sampling_keys

__all__ = ["feature_set", "sample_indices", "sampling_keys", "score", "score_details", "stats"]

_RAY_OPTIONS = ("address", "workers", "shard_size", "retry_timeout")


def _split(options: dict[str, Any]) -> tuple[PassOptions, dict[str, Any]]:
    ray_options = {k: options.pop(k) for k in _RAY_OPTIONS if k in options}
    if options.get("cache"):
        raise InvalidInputError("the feature cache is local to one machine; a cluster run does not use it")
    options["cache"] = False
    return PassOptions(**options), ray_options


def _files(inputs: InputLike, label: str, source: Source | None = None) -> ImageFiles | RemoteFiles:
    """The image files of `inputs` (`source`: already resolved; a folder or bucket is listed once)."""
    source = source if source is not None else resolve_source(inputs, allow_stats=False)
    if not isinstance(source, (ImageFiles, RemoteFiles)):
        raise InvalidInputError(f"{label}: a cluster run reads image files and URLs (folders, lists, globs)")
    return source


def _label(inputs: InputLike, default: str) -> str:
    return str(inputs) if isinstance(inputs, str) else default


def _stats_of(side: SideResult, options: PassOptions, job: JobResult, label: str) -> tuple[Stats, PassReport]:
    """A side's statistics, with its bad files reported the way a local run reports them."""
    backbone = options.backbone
    n = side.moments.n if side.moments is not None else 0
    check_sample_count(n, backbone.feature_dim, label, stacklevel=4)  # type: ignore[union-attr]
    assert side.moments is not None
    stats = Stats.from_moments(side.moments, options.mode_label, job.weights_sha256, backbone.name)  # type: ignore[union-attr]
    return stats, PassReport(n=n, skipped=[(p, r) for _, p, r in side.failures], provider=job.provider)


def _raise_or_list_bad(job: JobResult, options: PassOptions) -> None:
    report_bad_files([(p, r) for side in job.sides for _, p, r in side.failures], options.skip_bad)


def stats(inputs: InputLike, *, address: str | None = None, **options: Any) -> Stats:
    """`fidrs.stats` on Ray. `address`: a cluster ("ray://host:10001", "host:6379", "auto"), None for the
    cluster this process is connected to or a local one. Also `workers` (default: one per GPU, else per CPU),
    `shard_size` (images per shard; default from the job size, at most 4,096) and `retry_timeout` (seconds
    workers may keep failing with no shard completed before the job stops; default 300: a lost worker or node
    costs a rerun of its shards, not the job). The feature cache is off."""
    pass_options, ray_options = _split({**options, "address": address})
    label = _label(inputs, "input")
    job = run_job([(label, _files(inputs, label))], pass_options, **ray_options)
    _raise_or_list_bad(job, pass_options)
    return _stats_of(job.sides[0], pass_options, job, label)[0]


def score_details(
    a: InputLike, b: InputLike, *, address: str | None = None, method: str = "auto", **options: Any
) -> dict[str, Any]:
    """`fidrs.score_details` on Ray: both image sets in one job (statistics files are read here)."""
    started = time.perf_counter()
    pass_options, ray_options = _split({**options, "address": address})
    labels = (_label(a, "a"), _label(b, "b"))
    sources = [resolve_source(x) for x in (a, b)]
    to_compute = [
        (label, _files(x, label, s)) for label, x, s in zip(labels, (a, b), sources) if not isinstance(s, StatsFile)
    ]
    job = run_job(to_compute, pass_options, **ray_options) if to_compute else None
    if job is not None:
        _raise_or_list_bad(job, pass_options)
    computed = iter(job.sides if job is not None else [])
    sides = []
    for label, source in zip(labels, sources):
        if isinstance(source, StatsFile):
            sides.append((label, Stats.load(source.path), PassReport()))
        else:
            assert job is not None
            sides.append((label, *_stats_of(next(computed), pass_options, job, label)))
    run = RunInfo.of(pass_options, job.weights_sha256, job.provider) if job is not None else None
    result = score_from_stats(sides[0], sides[1], run, method=method, started=started)
    if job is not None:
        result["ray"] = job.summary()
    return result


def score(a: InputLike, b: InputLike, **options: Any) -> float:
    """FID (or FD_DINOv2, …) between two image sets, computed on Ray; options as for `score_details`."""
    return score_details(a, b, **options)["fid"]


def feature_set(
    inputs: InputLike, *, sample: int, seed: int = 0, address: str | None = None, **options: Any
) -> FeatureSet:
    """A seeded uniform sample of at most `sample` images' features (and logits), for KID, precision/recall
    and the other feature-set metrics: on a large set they then estimate from the sample. The sample is the
    one `sample_indices(sampling_keys(n, seed), usable, sample)` picks, whichever workers ran."""
    pass_options, ray_options = _split({**options, "address": address})
    label = _label(inputs, "input")
    source = _files(inputs, label)
    job = run_job([(label, source)], pass_options, sample_size=sample, seed=seed, **ray_options)
    _raise_or_list_bad(job, pass_options)
    side = job.sides[0]
    backbone = pass_options.backbone
    assert side.sample is not None
    rows = side.sample.in_input_order()
    outputs = dict(zip(backbone.output_names, rows.outputs))  # type: ignore[union-attr]
    return FeatureSet(
        outputs[backbone.feature_output],  # type: ignore[union-attr]
        outputs[backbone.logits_output] if backbone.logits_output else None,  # type: ignore[union-attr]
        [source.paths[i] for i in rows.indices],
        pass_options.mode_label,
        job.weights_sha256,
        [(p, r) for _, p, r in side.failures],
        backbone.name,  # type: ignore[union-attr]
    )
