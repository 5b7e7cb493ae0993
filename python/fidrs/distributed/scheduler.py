"""The driver's loop over its workers. Each worker (a Ray actor, no Ray restarts, no Ray task retries) first says
who it is (`ready`), then runs one shard at a time. A worker that is lost — its process killed, or its whole
node gone — gives its shard back to the `Ledger`, where the next free worker on any node that is left takes it
first, and a new actor is asked for in its place (Ray starts it where there is room). Every outcome is a
`ray.wait` on the calls in flight, so the loop knows which worker held which shard; Ray's `ActorPool` hides a
dead actor and cannot tell."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import ClusterLostError, FidrsError
from .ledger import Ledger
from .plan import Shard
from .worker import ShardResult

log = logging.getLogger("fidrs")  # lost workers and nodes, reruns: the CLI prints them on stderr

# Seconds one `ray.wait` blocks at most: the budget and the nodes are looked at about this often.
POLL_S = 1.0
# After a worker was lost, how often Ray is asked which nodes are alive (one GCS call listing the nodes).
NODE_CHECK_S = 2.0


@dataclass
class _Worker:
    actor: Any
    name: str  # how messages name it: its actor id until it is ready, then its pid, host and node
    call: Any = None  # the ObjectRef of its `ready` or `run` call in flight; None while it waits for a shard
    node: str | None = None  # Ray node id, once ready
    shard: int | None = None  # the shard its call runs; None while starting or waiting


def _short(error: BaseException) -> str:
    """Ray's message, cut to the sentence that says why ("… is dead because its worker process has died.",
    "… is unavailable: … Socket closed …."); its causes and advice stay in Ray's own `(raylet)` line."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    why = next((line for line in lines if "because" in line or "unavailable:" in line), lines[-1] if lines else "")
    at = max(why.find("because"), why.find("unavailable:"))
    end = why.find(". ", max(at, 0))
    return f"{type(error).__name__}: {why[: end + 1] if end >= 0 else why[:200]}"


def _can_host(resources: dict, request: dict) -> bool:
    return resources.get("CPU", 0) >= request.get("num_cpus", 0) and resources.get("GPU", 0) >= request.get(
        "num_gpus", 0
    )


class Scheduler:
    """Runs `shards` on up to `count` workers made by `new_actor()`, hands each first result to `on_result`."""

    def __init__(
        self,
        ray,
        new_actor: Callable[[], Any],
        count: int,
        shards: list[Shard],
        sample_size: int | None,
        ledger: Ledger,
        request: dict,
        describe: Callable[[Shard], str],
        on_result: Callable[[ShardResult], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ray = ray
        self.new_actor = new_actor
        self.count = count
        self.shards = shards
        self.sample_size = sample_size
        self.ledger = ledger
        self.request = request  # what one worker asks Ray for (num_cpus, num_gpus): which nodes can run one
        self.describe = describe
        self.on_result = on_result
        self.clock = clock
        self.workers: list[_Worker] = []
        self.retried: list[str] = []  # one message per shard that completed after an earlier worker lost it
        self.lost_nodes: dict[str, str] = {}  # node id -> its address, once Ray has declared it dead
        self.nodes_of_lost_shards: dict[str, list[int]] = {}  # node id -> shards its workers lost
        self.started = 0
        self.next_node_check = 0.0

    # --- the loop ----------------------------------------------------------------------------------------

    def run(self) -> None:
        for _ in range(self.count):
            self._start_worker()
        while not self.ledger.finished:
            calls = {w.call: w for w in self.workers if w.call is not None}
            if calls:
                ready, _ = self.ray.wait(list(calls), num_returns=1, timeout=POLL_S)
            else:  # every worker lost and none could be asked for: only the checks below can end this
                ready = []
                time.sleep(POLL_S)
            for call in ready:
                self._settle(calls[call], call)
            now = self.clock()
            if self.ledger.failures and now >= self.next_node_check:
                self.next_node_check = now + NODE_CHECK_S
                self._check_nodes()
            self.ledger.check(now, working=any(w.shard is not None for w in self.workers))

    def stop(self) -> None:
        """Kill every worker of the job (those Ray still starts too)."""
        for w in self.workers:
            try:
                self.ray.kill(w.actor)
            except Exception:  # noqa: BLE001 - an actor Ray already forgot is as good as killed
                pass
        self.workers.clear()

    # --- one outcome -------------------------------------------------------------------------------------

    def _settle(self, worker: _Worker, call) -> None:
        ray = self.ray
        worker.call = None
        try:
            value = ray.get(call)
        except ray.exceptions.RayActorError as e:
            if e.actor_init_failed:  # its constructor raised: every new worker would do the same
                reason = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
                raise FidrsError(f"a worker could not start ({worker.name}): {reason}") from None
            self._lost(worker, _short(e))
            return
        except ray.exceptions.ObjectLostError as e:  # its result was lost with the node that held it
            self._lost(worker, _short(e))
            return
        except ray.exceptions.LocalRayletDiedError:
            raise FidrsError("the Ray node this driver runs on was lost; the job stopped") from None
        now = self.clock()
        if worker.shard is None:  # `ready` answered
            worker.name, worker.node = value
        else:
            result: ShardResult = value
            if self.ledger.complete(worker.shard, now):
                self._note_rerun(result)
                self.on_result(result)
            worker.shard = None
        self._give_work(worker, now)

    def _give_work(self, worker: _Worker, now: float) -> None:
        shard = self.ledger.take(now)
        if shard is not None:
            worker.shard = shard
            worker.call = worker.actor.run.remote(self.shards[shard], self.sample_size)

    def _lost(self, worker: _Worker, reason: str) -> None:
        now = self.clock()
        shard = worker.shard
        self.workers.remove(worker)
        try:
            self.ray.kill(worker.actor)  # if it is only unreachable, it must not come back with a second result
        except Exception:  # noqa: BLE001 - already gone
            pass
        if shard is not None:
            log.warning(
                f"{worker.name} was lost running {self.describe(self.shards[shard])} ({reason}); the shard goes "
                "back to the queue"
            )
            if worker.node is not None:
                self.nodes_of_lost_shards.setdefault(worker.node, []).append(shard)
        else:
            log.warning(f"{worker.name} was lost while starting ({reason})")
        self.ledger.fail(shard, worker.name, reason, now)  # may end the job: the budget is spent
        for idle in [w for w in self.workers if w.call is None]:  # a waiting worker takes the shard now
            self._give_work(idle, now)
        if self.ledger.remaining > len(self.workers):
            self._start_worker()

    def _start_worker(self) -> None:
        actor = self.new_actor()
        self.started += 1
        worker = _Worker(actor, f"worker {self.started} (not started yet)")
        worker.call = actor.ready.remote()
        self.workers.append(worker)

    def _note_rerun(self, result: ShardResult) -> None:
        earlier = self.ledger.lost_by.get(result.shard_id)
        if earlier:
            note = (
                f"{self.describe(self.shards[result.shard_id])} ran again on {result.worker}: its earlier "
                f"worker(s) ({', '.join(earlier)}) were lost; its images are counted once"
            )
            self.retried.append(note)
            log.warning(note)

    # --- the nodes ---------------------------------------------------------------------------------------

    def _check_nodes(self) -> None:
        """Name each lost node once; end the job when no node that can run a worker is left."""
        nodes = self.ray.nodes()
        for node in nodes:
            node_id = node.get("NodeID", "")
            if node.get("Alive") or node_id in self.lost_nodes:
                continue
            if node_id in self.nodes_of_lost_shards or any(w.node == node_id for w in self.workers):
                self.lost_nodes[node_id] = node.get("NodeManagerAddress", "?")
                shards = sorted(set(self.nodes_of_lost_shards.get(node_id, [])))
                held = f"its workers' shards ({', '.join(map(str, shards))}) run on the nodes left" if shards else ""
                log.warning(
                    f"node {node_id[:8]} ({self.lost_nodes[node_id]}) was lost (Ray declared it dead)"
                    + (f"; {held}" if held else "")
                )
        if not any(n.get("Alive") and _can_host(n.get("Resources", {}), self.request) for n in nodes):
            lost = ", ".join(f"{k[:8]} ({v})" for k, v in self.lost_nodes.items()) or "none named yet"
            wants = ", ".join(f"{k.removeprefix('num_')} {v}" for k, v in self.request.items())
            raise ClusterLostError(
                f"no node that can run a worker ({wants}) is left in the cluster (lost: {lost}); "
                f"{len(self.ledger.done)} of {self.ledger.total} shards had completed; the job stopped"
            )
