"""fidrs on a Ray cluster: the statistics, scores and feature samples of the local API, computed by workers
across machines, equal to the single-machine numbers (moments are float64 sums, so only their summation order
differs: ~1e-16 relative).

Built on Ray Core (actors), not Ray Data: FID needs a reduction (float64 moments per shard), not a per-row
map whose outputs are collected, and a shard is then one Ray task whose one result is counted once, which is
what makes retries safe. `pip install 'fidrs[ray]'`; every node needs fidrs and ONNX Runtime installed (not
the weights: the driver ships its ONNX graph). Workers receive the whole `Options` value (each machine-local
option at its cluster value: no feature cache, no progress bar; the driver shows the job's progress). The
cluster run's own keywords (`address`, `workers`, `shard_size`, `retry_timeout`) are `fidrs.options.ClusterOptions`.
A lost worker or node costs a rerun of its shards on the nodes left, not the job (`scheduler`)."""

from __future__ import annotations

import time
from typing import Any

from .. import sources
from ..errors import InvalidInputError
from ..evaluator import Evaluator
from ..feature_pass import PassReport, report_bad_files
from ..feature_sets import FeatureSet
from ..options import ClusterOptions, Options, Resolved
from ..provenance import Provenance
from ..sources import InputLike, Source
from ..statistics import Stats, check_sample_count
from .driver import JobResult, SideResult, run_job
from .plan import sample_indices, sampling_keys

__all__ = ["feature_set", "sample_indices", "sampling_keys", "score", "score_details", "stats"]


def _split(keywords: dict[str, Any]) -> tuple[Resolved, ClusterOptions]:
    """The options of the job (its cache refused: it is local to one machine) and the cluster run's own, each
    checked before Ray starts."""
    cluster = ClusterOptions.of(None, **{k: keywords.pop(k) for k in ClusterOptions.names() if k in keywords})
    unknown = sorted(set(keywords) - set(Options.names()))
    if unknown:
        raise InvalidInputError(
            f"unknown option{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}: the options are "
            f"{', '.join(Options.names())}, and on a cluster {', '.join(ClusterOptions.names())}"
        )
    if keywords.get("cache"):
        raise InvalidInputError("the feature cache is local to one machine; a cluster run does not use it")
    keywords["cache"] = False
    return Options.of(None, **keywords).resolve(), cluster


def _distributable(inputs: InputLike, label: str, source: Source | None = None) -> Source:
    """The image source of `inputs` (`source`: already resolved; a folder or bucket is listed once)."""
    source = source if source is not None else sources.resolve(inputs, allow_stats=False)
    if not source.distributable:
        raise InvalidInputError(f"{label}: a cluster run reads image files and URLs (folders, lists, globs)")
    return source


def _provenance(resolved: Resolved, job: JobResult) -> Provenance:
    b = resolved.backbone
    return Provenance(b.name, resolved.mode_label, job.weights_sha256, job.graph_sha256, b.feature_dim)


def _stats_of(side: SideResult, resolved: Resolved, job: JobResult, label: str) -> tuple[Stats, PassReport]:
    """A side's statistics, with its bad files reported the way a local run reports them."""
    n = side.moments.n if side.moments is not None else 0
    check_sample_count(n, resolved.backbone.feature_dim, label, stacklevel=4)
    assert side.moments is not None
    p = _provenance(resolved, job)
    stats = Stats.from_moments(side.moments, p.mode, p.weights_sha256, p.backbone, p.graph_sha256)
    return stats, PassReport(n=n, skipped=[(path, r) for _, path, r in side.failures], provider=job.provider)


def _raise_or_list_bad(job: JobResult, resolved: Resolved) -> None:
    report_bad_files([(p, r) for side in job.sides for _, p, r in side.failures], resolved.options.skip_bad)


def stats(inputs: InputLike, *, address: str | None = None, **options: Any) -> Stats:
    """`fidrs.stats` on Ray. `address`: a cluster ("ray://host:10001", "host:6379", "auto"), None for the
    cluster this process is connected to or a local one. Also `workers` (default: one per GPU, else per CPU),
    `shard_size` (images per shard; default from the job size, at most 4,096) and `retry_timeout` (seconds
    workers may keep failing with no shard completed before the job stops; default 300: a lost worker or node
    costs a rerun of its shards, not the job). The feature cache is off."""
    resolved, cluster = _split({**options, "address": address})
    label = sources.label(inputs, "input")
    job = run_job([(label, _distributable(inputs, label))], resolved, cluster)
    _raise_or_list_bad(job, resolved)
    return _stats_of(job.sides[0], resolved, job, label)[0]


def score_details(
    a: InputLike, b: InputLike, *, address: str | None = None, method: str | None = None, **options: Any
) -> dict[str, Any]:
    """`fidrs.score_details` on Ray: both image sets in one job (statistics files are read here)."""
    started = time.perf_counter()
    resolved, cluster = _split({**options, "address": address})
    params = Evaluator.compute_params("fid", {} if method is None else {"method": method})
    labels = (sources.label(a, "a"), sources.label(b, "b"))
    resolved_sources = [sources.resolve(x) for x in (a, b)]
    # An input that holds statistics decides the mode the other side's images are computed in.
    plan = Evaluator(resolved).plan(list(zip(labels, resolved_sources)))
    resolved = plan.resolved
    evaluator = Evaluator(resolved)
    held = [s.precomputed(resolved.backbone.name) for s in resolved_sources]
    to_compute = [
        (label, _distributable(x, label, s))
        for label, x, s, h in zip(labels, (a, b), resolved_sources, held)
        if h is None
    ]
    job = run_job(to_compute, resolved, cluster) if to_compute else None
    if job is not None:
        _raise_or_list_bad(job, resolved)
    computed = iter(job.sides if job is not None else [])
    sides = []
    for label, h in zip(labels, held):
        if h is not None:
            sides.append((label, h, None))
        else:
            assert job is not None
            sides.append((label, *_stats_of(next(computed), resolved, job, label)))
    run = _provenance(resolved, job) if job is not None else None
    result = evaluator.fid_of_stats(
        sides[0], sides[1], params, started=started, run=run, provider=job.provider if job else None, plan=plan
    ).to_dict()
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
    resolved, cluster = _split({**options, "address": address})
    label = sources.label(inputs, "input")
    source = _distributable(inputs, label)
    job = run_job([(label, source)], resolved, cluster, sample_size=sample, seed=seed)
    _raise_or_list_bad(job, resolved)
    side = job.sides[0]
    backbone = resolved.backbone
    assert side.sample is not None
    rows = side.sample.in_input_order()
    outputs = dict(zip(backbone.output_names, rows.outputs))
    labels = source.labels
    return FeatureSet(
        outputs[backbone.feature_output],
        outputs[backbone.logits_output] if backbone.logits_output else None,
        [labels[i] for i in rows.indices],
        resolved.mode_label,
        job.weights_sha256,
        [(p, r) for _, p, r in side.failures],
        backbone.name,
        job.graph_sha256,
    )
