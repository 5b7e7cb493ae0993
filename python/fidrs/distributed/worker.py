"""What runs on the cluster: one `ShardWorker` actor per worker process, holding one ONNX Runtime session for
the whole job, and the `JobState` that ships the graph to every worker, the ones started in place of lost ones
included. Nothing here imports Ray: the driver wraps these classes with `ray.remote`, so this module stays
importable (and testable) without it."""

from __future__ import annotations

import hashlib
import os
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import _fidrs
from ..feature_pass import FeaturePass, PassReport
from ..files import atomic_write_bytes
from ..options import Options, Resolved
from ..weights import ResolvedModel
from .plan import SampleRows, Shard


@dataclass(frozen=True)
class ShippedGraph:
    """The driver's ONNX graph (and its external data file, above 1 GiB of weights), sent to workers that may
    have no weights and no internet. The file names are kept: a graph names its data file."""

    name: str
    graph: bytes
    data_name: str | None
    data: bytes | None
    digest: str  # sha256 of graph + data: the folder it is written to on each node
    weights_sha256: str
    graph_sha256: str
    checkpoint: str  # for messages

    @classmethod
    def of(cls, model: ResolvedModel) -> ShippedGraph:
        graph = model.onnx_path.read_bytes()
        data_path = model.onnx_path.with_name(model.onnx_path.name + ".data")
        data = data_path.read_bytes() if data_path.exists() else None
        digest = hashlib.sha256(graph)
        if data is not None:
            digest.update(data)  # in place: no copy of gigabytes of weights just to hash them
        return cls(
            model.onnx_path.name,
            graph,
            data_path.name if data is not None else None,
            data,
            digest.hexdigest(),
            model.weights_sha256,
            model.graph_sha256,
            str(model.checkpoint),
        )

    def materialise(self) -> Path:
        """Write the graph once per node (atomically; a second worker finds it there) and return its path."""
        folder = Path(tempfile.gettempdir()) / "fidrs-graphs" / self.digest
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / self.name
        if self.data is not None and self.data_name is not None:
            data_path = folder / self.data_name
            if not data_path.exists() or data_path.stat().st_size != len(self.data):
                atomic_write_bytes(data_path, self.data)
        if not path.exists() or path.stat().st_size != len(self.graph):
            atomic_write_bytes(path, self.graph)
        return path


@dataclass
class ShardResult:
    """Everything a shard sends back: its moments (never its features, for FID), its bad files, its sampled
    rows, and which worker ran it."""

    shard_id: int
    n: int
    sum: np.ndarray | None
    sum_outer: np.ndarray | None
    failures: list[tuple[int, str, str]]  # (input index, path, reason)
    sample: SampleRows | None
    worker: str
    node: str
    provider: str


def worker_identity() -> tuple[str, str]:
    """(how messages name this worker, the Ray node it runs on)."""
    import ray

    node = ray.get_runtime_context().get_node_id()
    return f"pid {os.getpid()} on {socket.gethostname()} (node {node[:8]})", node


class JobState:
    """The job's shared state, one named actor pinned to the driver's node (it lives as long as the job can):
    the graph every worker loads, a worker started in place of a lost one included. Which shard ran where is
    the driver's book (`ledger.Ledger`), not this actor's."""

    def __init__(self, graph: ShippedGraph) -> None:
        self._graph = graph

    def graph(self) -> ShippedGraph:
        return self._graph


def network_of(resolved: Resolved, graph: ShippedGraph) -> FeaturePass:
    """A worker's feature pass: the driver's options, resolved here, on the driver's graph."""
    path = graph.materialise()
    model = ResolvedModel(resolved.backbone, Path(graph.checkpoint), graph.weights_sha256, path, graph.graph_sha256)
    return FeaturePass(resolved, model=model)


class ShardWorker:
    """One worker process: the network loaded once, then shard after shard."""

    def __init__(self, job_name: str, options: Options) -> None:
        """`job_name`: the name of the job's `JobState` actor (a name, not a handle: Ray warns that an actor
        whose constructor takes references might not restart). `options`: the driver's whole options value
        (`driver.worker_options`). The driver sets FIDRS_NUM_THREADS in this process's environment to its share
        of the node's cores."""
        import ray

        self.job = ray.get_actor(job_name)
        graph: ShippedGraph = ray.get(self.job.graph.remote())
        self.network = network_of(options.resolve(), graph)
        self.identity, self.node = worker_identity()

    def ready(self) -> tuple[str, str]:
        """(how messages name this worker, its Ray node id): the driver's first call, answered once the
        network is loaded."""
        return self.identity, self.node

    def run(self, shard: Shard, sample_size: int | None) -> ShardResult:
        backbone = self.network.backbone
        column = backbone.output_names.index(backbone.feature_output)
        moments = _fidrs.Moments(backbone.feature_dim)
        sample = SampleRows.empty(tuple(o.dim for o in backbone.outputs)) if shard.keys is not None else None
        report = PassReport()
        source = shard.source
        for idx, columns in self.network.iter_batches(source, report, collect_bad=True):
            moments.update(columns[column])
            if sample is not None and shard.keys is not None and sample_size is not None:
                sample.add(idx + shard.start, shard.keys[idx], columns, sample_size)
        positions = {path: i for i, path in enumerate(source.labels)}
        failures = [(shard.start + positions[path], path, reason) for path, reason in report.skipped]
        has_rows = moments.n > 0
        return ShardResult(
            shard.id,
            moments.n,
            moments.sum if has_rows else None,
            moments.sum_outer if has_rows else None,
            failures,
            sample,
            self.identity,
            self.node,
            self.network.provider,
        )
