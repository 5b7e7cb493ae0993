"""The driver side of a cluster job: connect to Ray, start one `ShardWorker` per worker slot, hand out shards
(`scheduler.Scheduler`), fold each shard's moments into the result exactly once, and keep the user informed.

Failures are the driver's to handle, not Ray's: Ray neither restarts a worker nor retries its call. A worker
that is lost (its process, or its node) gives its shard back to the queue, the next free worker on a node that
is left runs it, and a new worker is asked for in its place; the job stops when no node can run a worker, or
when workers have kept failing for the retry budget (`ledger`) with no shard completed. The `Ledger` counts
each shard once, whichever attempts came back."""

from __future__ import annotations

import dataclasses
import logging
import os
import time
import uuid
from dataclasses import dataclass, field

from .. import _fidrs
from ..display import display
from ..errors import InvalidInputError
from ..feature_pass import load_model
from ..options import ClusterOptions, Options, Resolved
from ..progress import progress_bar
from ..sources import Source
from .ledger import Ledger
from .plan import SampleRows, default_shard_size, plan_shards, sampling_keys
from .scheduler import Scheduler
from .worker import JobState, ShardResult, ShardWorker, ShippedGraph

# CPUs each worker asks Ray for on a node without GPUs (ONNX Runtime, decoding and the moments use that many
# threads); on GPU nodes a worker asks for one GPU.
CPUS_PER_WORKER = 1

_INSTALL_HINT = "pip install 'fidrs[ray]'"


def _ray():
    try:
        import ray
    except ImportError:
        raise InvalidInputError(f"running on Ray needs Ray: {_INSTALL_HINT}") from None
    return ray


@dataclass
class SideResult:
    """One input's share of a job: merged moments, bad files (input order), the sample if one was asked for."""

    moments: _fidrs.Moments | None = None
    failures: list[tuple[int, str, str]] = field(default_factory=list)
    sample: SampleRows | None = None

    def add(self, result: ShardResult, sample_size: int | None) -> None:
        if result.n:
            assert result.sum is not None and result.sum_outer is not None
            part = _fidrs.Moments.from_parts(result.n, result.sum, result.sum_outer)
            if self.moments is None:
                self.moments = part
            else:
                self.moments.merge(part)
        self.failures.extend(result.failures)
        if result.sample is not None and sample_size is not None:
            if self.sample is None:
                self.sample = result.sample
            else:
                s = result.sample
                self.sample.add(s.indices, s.keys, s.outputs, sample_size)


@dataclass
class JobResult:
    sides: list[SideResult]
    provider: str
    weights_sha256: str
    graph_sha256: str
    workers: int
    shards: int
    nodes: set[str]  # Ray node ids that ran shards
    retried: list[str]  # one message per shard that ran again
    lost_nodes: list[str] = field(default_factory=list)  # Ray node ids declared dead during the job

    def summary(self) -> dict:
        return {
            "workers": self.workers,
            "shards": self.shards,
            "nodes": len(self.nodes),
            "retried": self.retried,
            "lost_nodes": self.lost_nodes,
        }


class Cluster:
    """A connection to Ray for the length of one call: an existing cluster (`address`), the one this process
    is already connected to, or a local instance started for the call and shut down after it."""

    def __init__(self, address: str | None) -> None:
        self.address = address
        self.started_here = False

    def __enter__(self):
        ray = _ray()
        if not ray.is_initialized():
            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
            kwargs = {"logging_level": logging.ERROR, "log_to_driver": False}
            if self.address:
                ray.init(address=self.address, **kwargs)
            else:
                ray.init(include_dashboard=False, **kwargs)
            self.started_here = True
        return ray

    def __exit__(self, *exc) -> None:
        if self.started_here:
            _ray().shutdown()


def _worker_slots(ray, workers: int | None) -> tuple[int, dict]:
    """How many workers, and what each asks Ray for: where the cluster has GPUs, a GPU each plus the CPUs that
    come with one (decoding must keep up with it: an H100 runs the Inception at ~5,900 images/s, one core
    decodes and preprocesses ~160 256² JPEGs/s), else one CPU each."""
    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    cpus = int(resources.get("CPU", 1))
    if gpus:
        return workers or gpus, {"num_gpus": 1, "num_cpus": max(CPUS_PER_WORKER, cpus // gpus)}
    return workers or max(1, cpus // CPUS_PER_WORKER), {"num_cpus": CPUS_PER_WORKER}


def worker_options(resolved: Resolved) -> Options:
    """What every worker runs with: the whole options value, each machine-local option at its cluster value,
    and the backbone by the name the driver resolved (a worker never reads the driver's `model` file: it gets
    the driver's graph)."""
    return dataclasses.replace(resolved.options.on_workers(), backbone=resolved.backbone.name)


def run_job(
    sides: list[tuple[str, Source]],
    resolved: Resolved,
    cluster: ClusterOptions | None = None,
    *,
    sample_size: int | None = None,
    seed: int = 0,
) -> JobResult:
    """Moments (and, with `sample_size`, a seeded sample of rows) of every side, computed on Ray, where and as
    `cluster` says (default: the defaults)."""
    cluster = cluster if cluster is not None else ClusterOptions()
    if sample_size is not None and (isinstance(sample_size, bool) or sample_size < 1):
        raise InvalidInputError(f"sample_size must be at least 1, got {sample_size}")
    model = load_model(resolved)
    shipped = ShippedGraph.of(model)
    options = worker_options(resolved)
    with Cluster(cluster.address) as ray:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        count, resources = _worker_slots(ray, cluster.workers)
        total = sum(len(source) for _, source in sides)
        size = cluster.shard_size or default_shard_size(total, count)
        keys = [sampling_keys(len(source), seed) if sample_size else None for _, source in sides]
        shards = plan_shards([source for _, source in sides], size, keys)
        count = min(count, len(shards))
        job_name = f"fidrs-job-{uuid.uuid4().hex}"
        # On the driver's node: a lost worker node must not take the graph with it (new workers fetch it here).
        here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
        job = ray.remote(num_cpus=0)(JobState).options(name=job_name, scheduling_strategy=here).remote(shipped)
        del shipped  # the job actor holds it now
        actor_class = ray.remote(ShardWorker).options(
            max_restarts=0,  # a lost worker is replaced by the scheduler, its shard handed to another
            max_task_retries=0,
            runtime_env={"env_vars": {"FIDRS_NUM_THREADS": str(resources["num_cpus"])}},
            **resources,
        )
        results = [SideResult() for _ in sides]
        nodes: set[str] = set()
        provider = ""
        bars = _progress_bars(sides, resolved.options.progress)

        def merge(result: ShardResult) -> None:
            nonlocal provider
            shard = shards[result.shard_id]
            results[shard.side].add(result, sample_size)
            provider = result.provider
            nodes.add(result.node)
            bars[shard.side].update(len(shard.source))

        scheduler = Scheduler(
            ray,
            lambda: actor_class.remote(job_name, options),
            count,
            shards,
            sample_size,
            Ledger(len(shards), cluster.retry_timeout, time.monotonic()),
            resources,
            lambda shard: shard.describe(display(sides[shard.side][0])),
            merge,
        )
        try:
            scheduler.run()
        finally:
            for bar in bars:
                bar.close()
            scheduler.stop()
            ray.kill(job)
    for side in results:
        side.failures.sort()
    return JobResult(
        results,
        provider,
        model.weights_sha256,
        model.graph_sha256,
        count,
        len(shards),
        nodes,
        scheduler.retried,
        sorted(scheduler.lost_nodes),
    )


def _progress_bars(sides, enabled: bool) -> list:
    return [progress_bar(len(source), label, enabled, position=i) for i, (label, source) in enumerate(sides)]
