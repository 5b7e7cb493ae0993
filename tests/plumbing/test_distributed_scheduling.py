"""The driver's fault handling without a cluster: the `Ledger` (each shard counted once, lost shards first,
a retry budget in time and progress) with a hand-driven clock, and the `Scheduler`'s loop against a small
stand-in for the Ray API (wait/get/kill/nodes) whose workers can be lost on cue. The real cluster, with a node
killed, is in test_distributed.py."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from fidrs.distributed.ledger import Ledger
from fidrs.distributed.plan import plan_shards
from fidrs.distributed.scheduler import Scheduler
from fidrs.distributed.worker import ShardResult
from fidrs.errors import ClusterLostError, RetryBudgetExhaustedError, exit_code
from fidrs.sources import ImageFiles

# --- the ledger ------------------------------------------------------------------------------------------


def test_each_shard_is_counted_once_and_a_lost_shard_runs_first():
    ledger = Ledger(3, retry_timeout=60, now=0)
    assert ledger.take(0) == 0 and ledger.take(0) == 1
    ledger.fail(0, "worker A", "lost", now=1)
    assert ledger.take(2) == 0  # the lost shard before shard 2
    assert ledger.complete(0, now=5) is True
    assert ledger.complete(0, now=6) is False  # a second attempt's result is dropped, not merged
    assert ledger.complete(1, now=7) is True and ledger.take(8) == 2 and ledger.take(8) is None
    ledger.fail(2, "worker B", "lost", now=9)
    ledger.fail(2, "worker C", "lost", now=10)  # lost twice: waits once
    assert list(ledger.waiting) == [2] and ledger.take(11) == 2 and ledger.complete(2, now=12)
    assert ledger.finished and ledger.lost_by == {0: ["worker A"], 2: ["worker B", "worker C"]}
    ledger.fail(2, "worker D", "lost late", now=13)  # a done shard never waits again
    assert ledger.take(14) is None and ledger.finished


def test_fast_failures_do_not_spend_the_budget_only_time_without_progress_does():
    ledger = Ledger(2, retry_timeout=60, now=0)
    for t in range(61):  # a lost node: a failure a second, for 60 s, spends nothing (attempts are not counted)
        ledger.fail(0, f"w{t}", "node lost", now=t)
    assert ledger.take(61) == 0 and ledger.complete(0, now=62)  # progress ends the failing spell
    ledger.fail(1, "w", "lost", now=200)  # a new spell starts at 200
    ledger.fail(1, "w", "lost", now=260)  # 60 s: within the budget (it must be exceeded)
    with pytest.raises(RetryBudgetExhaustedError, match=r"kept failing for 61 s .* 1 of 2 shards .* boom"):
        ledger.fail(1, "w", "boom", now=261)


def test_a_long_healthy_rerun_does_not_end_the_job_but_an_idle_failing_one_does():
    ledger = Ledger(1, retry_timeout=60, now=0)
    ledger.take(0)
    ledger.fail(0, "w", "lost", now=1)
    ledger.take(2)
    ledger.check(10_000, working=True)  # a worker runs the rerun: however long, no failure, no stop
    assert ledger.complete(0, now=10_001)
    idle = Ledger(1, retry_timeout=60, now=0)
    idle.fail(None, "w", "could not start", now=0)
    idle.check(60, working=False)
    with pytest.raises(RetryBudgetExhaustedError):
        idle.check(61, working=False)  # no worker at all for longer than the budget


def test_the_budget_is_at_least_twice_the_longest_shard():
    ledger = Ledger(3, retry_timeout=60, now=0)
    ledger.take(0)
    ledger.complete(0, now=100)  # a 100 s shard: the budget becomes 200 s
    assert ledger.budget() == 200
    ledger.fail(1, "w", "lost", now=110)
    ledger.fail(1, "w", "lost", now=310)  # 200 s: still within
    with pytest.raises(RetryBudgetExhaustedError, match="retry budget 200 s"):
        ledger.check(311, working=False)


def test_retry_timeout_must_be_a_non_negative_number():
    for bad in (-1, float("nan")):
        with pytest.raises(ValueError, match="retry_timeout"):
            Ledger(1, retry_timeout=bad, now=0)


# --- the scheduler against a stand-in for Ray --------------------------------------------------------------


class _ActorError(Exception):
    actor_init_failed = False


class _InitError(_ActorError):
    actor_init_failed = True


class _FakeRay:
    """Calls complete at once, in submission order; `ray.wait` returns the oldest. A worker whose node is in
    `doomed` is lost on its first shard (its call fails as Ray's do: a RayActorError)."""

    class exceptions:
        RayActorError = _ActorError
        ObjectLostError = type("ObjectLostError", (Exception,), {})
        LocalRayletDiedError = type("LocalRayletDiedError", (Exception,), {})

    def __init__(self, placements, doomed=(), nodes_alive=None, init_fails=False, cpus=None):
        self.placements = list(placements)  # the node each new actor lands on, in order
        self.doomed = set(doomed)
        self.alive = dict(nodes_alive or {n: True for n in set(self.placements)})
        self.cpus = cpus or {}  # a node's CPUs (default 1)
        self.init_fails = init_fails
        self.killed = []
        self.runs = []  # (shard id, node) of every run call

    def new_actor(self):
        return _FakeActor(self, self.placements.pop(0))

    def wait(self, refs, num_returns, timeout):
        oldest = min(refs, key=lambda r: r.order)
        return [oldest], [r for r in refs if r is not oldest]

    def get(self, ref):
        if isinstance(ref.value, Exception):
            raise ref.value
        return ref.value

    def kill(self, actor):
        self.killed.append(actor)

    def nodes(self):
        return [
            {"NodeID": n, "Alive": a, "Resources": {"CPU": self.cpus.get(n, 1.0)}, "NodeManagerAddress": "10.0.0.9"}
            for n, a in self.alive.items()
        ]


class _Ref:
    submitted = 0

    def __init__(self, value):
        self.value = value
        _Ref.submitted += 1
        self.order = _Ref.submitted


class _Method:
    def __init__(self, fn):
        self.fn = fn

    def remote(self, *args):
        try:
            return _Ref(self.fn(*args))
        except Exception as e:  # noqa: BLE001 - what the call's ObjectRef will raise
            return _Ref(e)


class _FakeActor:
    def __init__(self, ray, node):
        self.node = node
        self.name = f"pid {len(ray.killed) + len(ray.runs) + 100} (node {node})"

        def ready():
            if ray.init_fails:
                raise _InitError("Traceback…\nWeightsError: graph unreadable")
            return self.name, node

        def run(shard, sample_size):
            ray.runs.append((shard.id, node))
            if node in ray.doomed:
                raise _ActorError("The actor is unavailable: RpcError: Socket closed")
            return ShardResult(shard.id, 1, np.ones(2), np.ones((2, 2)), [], None, self.name, node, "cpu")

        self.ready, self.run = _Method(ready), _Method(run)


def _schedule(ray, count, n_shards=6, retry_timeout=60):
    shards = plan_shards([ImageFiles([f"{i}.png" for i in range(n_shards)])], 1, [None])
    merged = []
    scheduler = Scheduler(
        ray,
        ray.new_actor,
        count,
        shards,
        None,
        Ledger(len(shards), retry_timeout, now=0),
        {"num_cpus": 1},
        lambda s: f"shard {s.id}",
        merged.append,
        clock=lambda: 0.0,
    )
    return scheduler, merged


@pytest.fixture
def fidrs_log():
    """The `fidrs` logger's records (attached to that logger itself: the CLI, when a test ran it in this
    process, stops its records from propagating to the root logger where caplog listens)."""

    class Records(logging.Handler):
        def __init__(self) -> None:
            super().__init__(logging.DEBUG)
            self.lines: list[str] = []

        def emit(self, record: logging.LogRecord) -> None:
            self.lines.append(f"{record.levelname}: {record.getMessage()}")

    handler, log = Records(), logging.getLogger("fidrs")
    log.addHandler(handler)
    try:
        yield handler.lines
    finally:
        log.removeHandler(handler)


def test_a_lost_workers_shard_runs_on_a_surviving_worker_and_is_counted_once(fidrs_log, capsys):
    ray = _FakeRay(["n1", "n2", "n3", "n1"], doomed={"n2"}, nodes_alive={"n1": True, "n2": False, "n3": True})
    scheduler, merged = _schedule(ray, count=3)
    scheduler.run()
    assert capsys.readouterr().out == ""  # the library prints nothing: it logs (the CLI prints the records)
    assert sorted(r.shard_id for r in merged) == list(range(6))  # every shard, each once
    lost_shard = next(s for s, node in ray.runs if node == "n2")
    assert [node for s, node in ray.runs if s == lost_shard][-1] != "n2"  # it ran again elsewhere
    assert len(scheduler.retried) == 1 and f"shard {lost_shard} ran again on" in scheduler.retried[0]
    assert scheduler.lost_nodes == {"n2": "10.0.0.9"}
    err = "\n".join(fidrs_log)
    assert f"(node n2) was lost running shard {lost_shard} (_ActorError: The actor is unavailable" in err
    assert f"node n2 (10.0.0.9) was lost (Ray declared it dead); its workers' shards ({lost_shard}) run" in err
    assert all(line.startswith("WARNING: ") for line in fidrs_log) and len(fidrs_log) == 3, fidrs_log
    assert len(ray.placements) == 0  # a replacement was asked for (the fourth actor)


def test_no_node_left_ends_the_job_with_the_reason():
    ray = _FakeRay(["n1", "n1", "n1"], doomed={"n1"}, nodes_alive={"n1": False, "head": True}, cpus={"head": 0})
    scheduler, _ = _schedule(ray, count=1)
    with pytest.raises(ClusterLostError, match=r"no node that can run a worker \(cpus 1\) is left .*lost: n1") as e:
        scheduler.run()
    assert exit_code(e.value) == 3  # the input is fine: the cluster went away


def test_a_spent_retry_budget_is_exit_3():
    ledger = Ledger(1, retry_timeout=0, now=0)
    ledger.fail(0, "w", "lost", now=0)
    with pytest.raises(RetryBudgetExhaustedError) as e:
        ledger.check(1, working=False)
    assert exit_code(e.value) == 3


def test_a_worker_that_cannot_start_ends_the_job_at_once():
    ray = _FakeRay(["n1"], init_fails=True)
    scheduler, _ = _schedule(ray, count=1)
    with pytest.raises(Exception, match="a worker could not start .*WeightsError: graph unreadable"):
        scheduler.run()


def test_retry_timeout_of_the_api_is_checked_before_ray_starts(tmp_path):
    import fidrs.distributed
    from conftest import write_images
    from fidrs.errors import InvalidInputError

    folder = write_images(tmp_path / "imgs", 2)
    for bad in (-1, True, "60", float("nan")):
        with pytest.raises(InvalidInputError, match="retry_timeout must be a number of seconds >= 0"):
            fidrs.distributed.stats(str(folder), retry_timeout=bad)
    with pytest.raises(InvalidInputError, match=r"unknown option retry_timout: .* on a cluster .*retry_timeout"):
        fidrs.distributed.stats(str(folder), retry_timout=60)


def test_the_cluster_flags_the_api_keywords_and_the_defaults_are_one_declaration():
    """`retry_timeout` (like `workers`, `shard_size`, `address`) is declared once, in `ClusterOptions`: the CLI's
    flags are made from it and give its values and default."""
    from fidrs.cli import commands
    from fidrs.cli.parser import build_parser
    from fidrs.options import ClusterOptions

    parser = build_parser()
    default = commands._cluster(parser.parse_args(["stats", "x", "-o", "y.npz", "--ray"]))
    assert default == ClusterOptions().keywords() and default["retry_timeout"] == 300.0
    given = parser.parse_args(["score", "a", "b", "--ray", "h:1", "--retry-timeout", "7.5", "--workers", "2"])
    assert commands._cluster(given) == ClusterOptions(address="h:1", workers=2, retry_timeout=7.5).keywords()
    assert set(ClusterOptions.names()) == {"address", "workers", "shard_size", "retry_timeout"}
    for bad in ("-1", "nan", "inf", "soon"):
        with pytest.raises(SystemExit):  # argparse's usage error: exit 2
            parser.parse_args(["stats", "x", "-o", "y.npz", "--ray", "--retry-timeout", bad])
