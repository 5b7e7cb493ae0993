"""The driver's book of a job's shards: which wait, which run, which are done (each counted once), which workers
lost which shard, and when a job whose workers keep failing must stop. No Ray here: the clock is passed in, so
the budget is tested without a cluster.

The budget is time and progress, not attempts. Ray's own retries are counted in attempts, and a lost node spends
them within seconds, while Ray is still declaring it dead (~15 s: its health checks must fail several times in a
row). Here a failure only starts a clock, and any completed shard stops it: the job stops when workers have kept
failing for `retry_timeout` seconds (`fidrs.options.ClusterOptions`) with no shard completed. Failures are looked at
when they happen and, while no worker is running a shard, every poll. A long healthy shard after a failure does not
stop the job (no new failure, and a worker is running), and the budget is never less than twice the longest shard so
far, so a shard slower than the timeout gets its rerun. A shard that kills every worker that runs it ends the job
once nothing else completes for that long. The job also stops, sooner, when no node that can run a worker is left
(the scheduler asks Ray)."""

from __future__ import annotations

from collections import deque

from ..errors import RetryBudgetExhaustedError

# The budget is at least this many times the longest shard so far: a rerun must have time to finish.
SHARD_TIME_FACTOR = 2.0


class Ledger:
    def __init__(self, shards: int, retry_timeout: float, now: float) -> None:
        if not retry_timeout >= 0:  # also refuses NaN
            raise ValueError(f"retry_timeout must be a number of seconds >= 0, got {retry_timeout}")
        self.total = shards
        self.retry_timeout = float(retry_timeout)
        self.waiting: deque[int] = deque(range(shards))
        self.running: dict[int, float] = {}  # shard -> when its current attempt started
        self.done: set[int] = set()
        self.lost_by: dict[int, list[str]] = {}  # shard -> the workers that lost it, in order
        self.failures = 0
        self.failing_since: float | None = None  # the first failure since the last completed shard
        self.last_failure = ""
        self.longest_shard = 0.0

    @property
    def finished(self) -> bool:
        return len(self.done) == self.total

    @property
    def remaining(self) -> int:
        return self.total - len(self.done)

    def budget(self) -> float:
        return max(self.retry_timeout, SHARD_TIME_FACTOR * self.longest_shard)

    def take(self, now: float) -> int | None:
        """The next shard to run (a lost one first), or None when none waits."""
        while self.waiting:
            shard = self.waiting.popleft()
            if shard not in self.done and shard not in self.running:
                self.running[shard] = now
                return shard
        return None

    def complete(self, shard: int, now: float) -> bool:
        """A shard's result came back: True the first time (merge it), False for any later attempt (drop it)."""
        started = self.running.pop(shard, None)
        if shard in self.done:
            return False
        self.done.add(shard)
        if started is not None:
            self.longest_shard = max(self.longest_shard, now - started)
        self.failing_since = None
        return True

    def fail(self, shard: int | None, worker: str, reason: str, now: float) -> None:
        """`worker` was lost while running `shard` (None: while it started): the shard waits again, first in
        line. Raises `RetryBudgetExhaustedError` when workers have been failing for longer than the budget."""
        self.failures += 1
        self.last_failure = reason
        if shard is not None:
            self.running.pop(shard, None)
            if shard not in self.done:
                self.lost_by.setdefault(shard, []).append(worker)
                if shard not in self.waiting:
                    self.waiting.appendleft(shard)
        if self.failing_since is None:
            self.failing_since = now
        self._check(now)

    def check(self, now: float, working: bool) -> None:
        """Each poll: while no worker runs a shard, failing for longer than the budget ends the job."""
        if not working:
            self._check(now)

    def _check(self, now: float) -> None:
        if self.failing_since is not None and now - self.failing_since > self.budget():
            raise RetryBudgetExhaustedError(
                f"workers kept failing for {now - self.failing_since:.0f} s and no shard completed (retry budget "
                f"{self.budget():.0f} s: --retry-timeout, at least {SHARD_TIME_FACTOR:g} times the longest shard); "
                f"{len(self.done)} of {self.total} shards had completed; the last failure: {self.last_failure}"
            )
