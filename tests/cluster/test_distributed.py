"""fidrs on Ray: a real two-node cluster on 127.0.0.1 (two `ray start` processes, one CPU each), no mocks; a
third node joins for the test that loses it, and the test that loses every node has a cluster of its own.

Tolerances. Each image's features are computed by the same ONNX graph with the same provider on each side,
so they are bit-identical (asserted for the sample); the cluster and the local run then differ only in the
order in which float64 sums of float32 products are added (per shard, then shard results in any order). That
changes a sum of n terms by at most ~n·2⁻⁵³ of its magnitude: ~1e-14 relative for these few hundred images, so
statistics are compared within 1e-12 relative (the issue's bound) and FID within 1e-10 (FID is a difference of
traces of magnitude ~Σ, so its relative error can be ‖Σ‖/FID times larger; 1e-10 leaves a factor 100 of it)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import fidrs
import fidrs.distributed
import numpy as np
import pytest
from conftest import DATA, run_cli, write_images
from fidrs.distributed.plan import SampleRows, default_shard_size, plan_shards, sample_indices, sampling_keys
from fidrs.sources import ImageFiles

CLASS_A = DATA / "validation" / "apple_red_3"  # 144 images
CLASS_B = DATA / "validation" / "apple_golden_3"  # 161 images
# Images of each class the cluster tests use: with 4-image shards, several shards per worker (a killed worker
# leaves work behind), and few enough that the file's cost is mostly the clusters' start (~0.17 s an image).
SUBSET = 48
STATS_RTOL = 1e-12
FID_RTOL = 1e-10
RAY = Path(sys.executable).with_name("ray")
WORKER_TITLE = "ray::ShardWorker.run"  # Ray's process title while a worker runs a shard


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _alive_nodes(address: str) -> int:
    """The nodes the cluster's control store (GCS) counts alive. Asked in this process through Ray's own GCS
    client (a few ms); where a Ray version lacks that module, through a driver in a fresh interpreter, as a user
    would (~1.7 s of CPU a probe, which a cluster start pays several times)."""
    try:
        from ray._raylet import GcsClient
        from ray.core.generated.gcs_pb2 import GcsNodeInfo
    except ImportError:
        probe = "import ray; ray.init(address=%r, logging_level='ERROR'); print(sum(n['Alive'] for n in ray.nodes()))"
        out = subprocess.run(
            [sys.executable, "-c", probe % address], capture_output=True, text=True, timeout=60, env=_ray_env()
        )
        return int(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 and out.stdout.strip() else 0
    try:
        nodes = GcsClient(address=address).get_all_node_info(timeout=10)
    except Exception:  # the GCS not listening yet (a head still starting): none alive
        return 0
    return sum(node.state == GcsNodeInfo.GcsNodeState.ALIVE for node in nodes.values())


# This cluster listens on this machine only and lives for one test module: Ray's token authentication (on by
# default for `ray start` in recent Ray, with the token in ~/.ray) is switched off for it, and for every client
# the tests start, so the tests do not depend on a token file in the user's home.
# Ray's control store (GCS) declares a node dead after `failure_threshold` health checks in a row fail, one every
# `period_ms`: with Ray's defaults (5, 3,000 ms; measured 13 s after a SIGKILL, Ray 2.60) the two tests that lose
# nodes spent most of their time waiting for that. Here 3 checks 1 s apart (a killed raylet fails each at once);
# each check still waits Ray's default 10 s for a live but busy node, so a loaded machine loses none by mistake.
TEST_CLUSTER_ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_AUTH_MODE": "disabled",
    "RAY_health_check_period_ms": "1000",
    "RAY_health_check_failure_threshold": "3",
}


def _ray_env() -> dict:
    return {**os.environ, **TEST_CLUSTER_ENV}


@pytest.fixture(scope="module")
def cluster():
    """Head node plus a second node, each `ray start --block` (so that ending the process ends its node)."""
    saved = {k: os.environ.get(k) for k in TEST_CLUSTER_ENV}
    os.environ.update(TEST_CLUSTER_ENV)  # the CLI runs and in-process clients of these tests
    try:
        with _ray_cluster(head_cpus=1, node_cpus=[1]) as (address, _):
            yield address
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


NODE_OPTIONS = ["--block", "--object-store-memory", str(256 << 20), "--disable-usage-stats"]


def _start_node(where: list[str], cpus: int, logs) -> subprocess.Popen:
    return subprocess.Popen(
        [str(RAY), "start", *where, "--num-cpus", str(cpus), *NODE_OPTIONS],
        stdout=logs,
        stderr=subprocess.STDOUT,
        env=_ray_env(),
    )


def _wait_for_nodes(address: str, count: int, process: subprocess.Popen, deadline: float) -> None:
    while _alive_nodes(address) < count:
        assert process.poll() is None and time.monotonic() < deadline, f"node {count} did not join"
        time.sleep(0.25)


def _stop(processes: list[subprocess.Popen]) -> None:
    for process in reversed(processes):
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in reversed(processes):
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()


@contextlib.contextmanager
def _ray_cluster(head_cpus: int, node_cpus: list[int]):
    """A head with `head_cpus` CPUs and one node per entry of `node_cpus`; yields (address, node processes)."""
    port = _free_port()
    address = f"127.0.0.1:{port}"
    # A short folder: Ray's socket paths live below it and a Unix socket path must stay under 108 bytes.
    temp = tempfile.mkdtemp(prefix="fidrs-ray-", dir="/tmp")
    logs = open(Path(temp) / "fixture.log", "wb")
    head = _start_node(
        ["--head", "--port", str(port), "--include-dashboard", "false", "--temp-dir", temp], head_cpus, logs
    )
    processes = [head]
    try:
        deadline = time.monotonic() + 120
        _wait_for_nodes(address, 1, head, deadline)
        for cpus in node_cpus:
            processes.append(_start_node(["--address", address], cpus, logs))
            _wait_for_nodes(address, len(processes), processes[-1], deadline)
        yield address, processes[1:]
    finally:
        _stop(processes)
        logs.close()


@pytest.fixture
def extra_node(cluster, tmp_path):
    """A third node (one CPU) in the module's cluster, for a test to lose: the job then has three workers."""
    with open(tmp_path / "node.log", "wb") as logs:
        node = _start_node(["--address", cluster], 1, logs)
        try:
            _wait_for_nodes(cluster, 3, node, time.monotonic() + 120)
            yield node
        finally:
            _stop([node])


def _children() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parent = int(stat.rsplit(")", 1)[1].split()[1])  # the fields after "(comm)": state, ppid, …
            children.setdefault(parent, []).append(int(entry.name))
    return children


def _descendants(pid: int) -> list[int]:
    children, found, stack = _children(), [], [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def _title(pid: int) -> str:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
    except OSError:
        return ""


def _worker_running_a_shard(node: subprocess.Popen | None = None) -> int | None:
    """The pid of a worker running a shard: on `node` (a `ray start` process), or on any node."""
    pids = (
        _descendants(node.pid)
        if node is not None
        else [int(e.name) for e in Path("/proc").iterdir() if e.name.isdigit()]
    )
    return next((pid for pid in pids if _title(pid).startswith(WORKER_TITLE)), None)


def _wait_for_a_running_shard(driver: subprocess.Popen, node: subprocess.Popen | None = None) -> int:
    deadline = time.monotonic() + 300
    while driver.poll() is None and time.monotonic() < deadline:
        victim = _worker_running_a_shard(node)
        if victim is not None:
            return victim
        time.sleep(0.2)
    raise AssertionError(f"no worker was seen running a shard (driver exit {driver.poll()})")


def _lose_node(node: subprocess.Popen) -> None:
    """The node's machine is gone: its raylet, agents and workers SIGKILLed at once, nothing shut down."""
    for pid in [*_descendants(node.pid), node.pid]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _driver(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "fidrs.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_ray_env(),
    )


@pytest.fixture(scope="module")
def classes(tmp_path_factory) -> dict[str, Path]:
    """The first SUBSET images of each class, copied into folders of their own."""
    root = tmp_path_factory.mktemp("classes")
    folders = {}
    for name, source in (("a", CLASS_A), ("b", CLASS_B)):
        folders[name] = root / name
        folders[name].mkdir()
        for path in sorted(source.iterdir())[:SUBSET]:
            shutil.copyfile(path, folders[name] / path.name)
    return folders


@pytest.fixture(scope="module")
def local_stats(weights, classes):
    """The single-machine statistics every cluster result must equal."""
    return {name: fidrs.stats(str(path), weights=weights, cache=False) for name, path in classes.items()}


def _relative(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.abs(x - y).max() / np.abs(y).max())


def _assert_same_stats(cluster_stats: fidrs.Stats, local: fidrs.Stats) -> None:
    assert cluster_stats.n == local.n
    assert cluster_stats.backbone == local.backbone and cluster_stats.mode == local.mode
    assert cluster_stats.weights_sha256 == local.weights_sha256
    assert _relative(cluster_stats.mu, local.mu) <= STATS_RTOL
    assert _relative(cluster_stats.sigma, local.sigma) <= STATS_RTOL
    assert _relative(cluster_stats.moments.sum_outer, local.moments.sum_outer) <= STATS_RTOL


def test_score_on_two_nodes_equals_local(cluster, classes, weights, local_stats):
    out = run_cli(
        "score",
        str(classes["a"]),
        str(classes["b"]),
        "--json",
        "--ray",
        cluster,
        "--weights",
        weights,
        "--shard-size",
        "8",
        timeout=600,
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)  # stdout is the JSON object alone
    local = fidrs.frechet_distance(
        local_stats["a"].mu, local_stats["a"].sigma, local_stats["b"].mu, local_stats["b"].sigma
    )
    assert abs(result["fid"] - local) <= FID_RTOL * local
    assert (result["n_a"], result["n_b"]) == (local_stats["a"].n, local_stats["b"].n)
    ray = result["ray"]
    assert ray["shards"] == 2 * -(-SUBSET // 8) and ray["workers"] == 2
    assert ray["nodes"] == 2, "both nodes ran shards"
    assert ray["retried"] == [] and ray["lost_nodes"] == []


def test_worker_killed_mid_shard_costs_a_rerun_not_a_double_count(cluster, classes, weights, local_stats, tmp_path):
    """Also the stdout test (issue 29.17): Ray prints "(raylet) A worker died…" on the driver's stdout; with
    `--json`, all of stdout must still parse as the one JSON object, and Ray's lines land on stderr."""
    b_stats = tmp_path / "b.npz"
    local_stats["b"].save(b_stats)
    driver = _driver(
        "score", str(classes["a"]), str(b_stats), "--json", "--ray", cluster, "--weights", weights, "--shard-size", "4"
    )
    victim = _wait_for_a_running_shard(driver)
    os.kill(victim, signal.SIGKILL)
    stdout, stderr = driver.communicate(timeout=600)
    assert driver.returncode == 0, stderr
    result = json.loads(stdout)  # all of stdout: one JSON object
    assert "(raylet)" in stderr, stderr  # Ray's own report of the kill, where it belongs
    assert f"its earlier worker(s) (pid {victim} " in stderr, stderr  # the log names the rerun shard and the pid
    rerun = [line for line in stderr.splitlines() if "ran again" in line]
    assert len(rerun) == 1 and rerun[0].startswith("fidrs: shard ") and "images " in rerun[0], stderr
    assert result["ray"]["retried"] == [rerun[0].removeprefix("fidrs: ")]
    assert result["n_a"] == local_stats["a"].n == SUBSET  # counted once: a double count would add 4
    local = fidrs.frechet_distance(
        local_stats["a"].mu, local_stats["a"].sigma, local_stats["b"].mu, local_stats["b"].sigma
    )
    assert abs(result["fid"] - local) <= FID_RTOL * local


def test_bad_files_on_workers_are_named_as_locally(cluster, weights, tmp_path):
    folder = write_images(tmp_path / "imgs", 6)
    (folder / "zz_broken.png").write_bytes(b"not an image")
    (folder / "aa_cut.png").write_bytes((folder / "00.png").read_bytes()[:60])
    on_ray = ("--ray", cluster, "--weights", weights, "--shard-size", "3")
    local = run_cli("stats", str(folder), "-o", str(tmp_path / "l.npz"), "--weights", weights, "--no-cache")
    failed = run_cli("stats", str(folder), "-o", str(tmp_path / "r.npz"), *on_ray, timeout=600)
    assert local.returncode == failed.returncode == 2
    bad_lines = [line for line in local.stderr.splitlines() if line.startswith("  ")]
    assert len(bad_lines) == 2
    assert [line for line in failed.stderr.splitlines() if line.startswith("  ")] == bad_lines
    assert not (tmp_path / "r.npz").exists()
    skipped = run_cli("stats", str(folder), "-o", str(tmp_path / "s.npz"), *on_ray, "--skip-bad", timeout=600)
    assert skipped.returncode == 0, skipped.stderr
    assert fidrs.Stats.load(tmp_path / "s.npz").n == 6


def test_sample_for_kid_is_the_seeded_sample_of_the_local_features(cluster, weights):
    files = sorted(str(p) for p in CLASS_B.iterdir())[:40]
    sample = fidrs.distributed.feature_set(files, sample=12, seed=7, address=cluster, weights=weights, shard_size=8)
    local = fidrs.feature_set(files, weights=weights, cache=False)
    chosen = sample_indices(sampling_keys(len(files), 7), np.arange(len(files)), 12)
    assert sample.paths == [files[i] for i in chosen]
    np.testing.assert_array_equal(sample.features, local.features[chosen])  # bit-identical features
    np.testing.assert_array_equal(sample.logits, local.logits[chosen])
    assert sample.weights_sha256 == local.weights_sha256 and sample.mode == local.mode


def test_lost_node_costs_its_shards_a_rerun_on_the_nodes_left(
    cluster, extra_node, classes, weights, local_stats, tmp_path
):
    """Issue 29.17b: a node (raylet, agents, workers) SIGKILLed mid-run. Ray takes a few seconds to declare it dead;
    its shards run again on the two nodes left meanwhile, and the statistics are the local ones."""
    output = tmp_path / "a.npz"
    driver = _driver(
        "stats", str(classes["a"]), "-o", str(output), "--ray", cluster, "--weights", weights, "--shard-size", "4"
    )
    victim = _wait_for_a_running_shard(driver, extra_node)
    _lose_node(extra_node)
    stdout, stderr = driver.communicate(timeout=600)
    assert driver.returncode == 0, stderr
    assert stdout == "", stdout  # `stats` writes its result to the file: Ray's lines about the node included
    lost = [line for line in stderr.splitlines() if f"pid {victim} " in line and " was lost running shard " in line]
    assert len(lost) == 1, stderr
    node = re.search(r"\(node ([0-9a-f]{8})\) was lost running shard (\d+) ", lost[0])
    assert node is not None, lost[0]
    rerun = [
        line for line in stderr.splitlines() if line.startswith(f"fidrs: shard {node[2]} ") and "ran again" in line
    ]
    assert len(rerun) == 1 and f"its earlier worker(s) (pid {victim} " in rerun[0], stderr
    survivor = re.search(r" ran again on pid \d+ on \S+ \(node ([0-9a-f]{8})\)", rerun[0])
    assert survivor is not None and survivor[1] != node[1], rerun[0]  # on a node that is left
    _assert_same_stats(fidrs.Stats.load(output), local_stats["a"])


# How long after its last node is lost a job may take to stop. Ray declares a node dead once its health checks
# have failed several times in a row (measured: 13 s after the SIGKILL with Ray 2.60's defaults, a few s with
# TEST_CLUSTER_ENV's); the driver looks every 2 s (scheduler.NODE_CHECK_S), then shuts its Ray connection down
# (a few s). 120 s leaves a factor ~5 over the defaults' total, for a machine shared with other work.
LOST_CLUSTER_BOUND_S = 120


def test_every_node_lost_ends_the_job_with_the_reason_in_bounded_time(classes, weights, tmp_path):
    """The driver's node (the head, as in a real cluster) runs no worker; the one node that does is lost."""
    output = tmp_path / "a.npz"
    with _ray_cluster(head_cpus=0, node_cpus=[1]) as (address, [node]):
        driver = _driver(
            "stats", str(classes["a"]), "-o", str(output), "--ray", address, "--weights", weights, "--shard-size", "4"
        )
        victim = _wait_for_a_running_shard(driver, node)
        _lose_node(node)
        lost_at = time.monotonic()
        try:
            stdout, stderr = driver.communicate(timeout=600)
        finally:
            driver.kill()
        took = time.monotonic() - lost_at
    assert driver.returncode == 3, stderr  # not bad input: the cluster went away (exit 3, as other run failures)
    assert took < LOST_CLUSTER_BOUND_S, (took, stderr)
    lost = re.search(rf"pid {victim} on \S+ \(node ([0-9a-f]{{8}})\) was lost running shard", stderr)
    assert lost is not None, stderr
    error = [line for line in stderr.splitlines() if line.startswith("fidrs: error: ")]
    assert len(error) == 1 and "no node that can run a worker (cpus 1) is left in the cluster" in error[0], stderr
    assert f"lost: {lost[1]} (" in error[0], error[0]  # it names the lost node
    assert "Traceback" not in stderr and stdout == "" and not output.exists()


# --- the plan, without a cluster ---------------------------------------------------------------------------


def test_shards_cover_every_image_once_in_order():
    sides = [ImageFiles([f"a{i}" for i in range(10)]), ImageFiles([f"b{i}" for i in range(3)])]
    shards = plan_shards(sides, 4, [None, None])
    assert [s.id for s in shards] == list(range(4))
    assert [p for s in shards if s.side == 0 for p in s.source.labels] == sides[0].paths
    assert [p for s in shards if s.side == 1 for p in s.source.labels] == sides[1].paths
    assert [(s.side, s.start) for s in shards] == [(0, 0), (0, 4), (0, 8), (1, 0)]
    assert default_shard_size(1_281_167, 8) == 4096 and default_shard_size(100, 2) == 16
    assert default_shard_size(10_000, 2) == 1250  # 4 shards per worker


def test_merged_shard_samples_are_the_global_bottom_k_whatever_the_order():
    rng = np.random.default_rng(0)
    n, size = 500, 37
    keys = sampling_keys(n, 3)
    usable = np.setdiff1d(np.arange(n), rng.choice(n, 20, replace=False))  # some images failed to decode
    features = rng.normal(size=(n, 4)).astype(np.float32)
    expected = sample_indices(keys, usable, size)
    assert len(expected) == size and len(set(expected)) == size
    for order in (np.arange(0, n, 50), rng.permutation(np.arange(0, n, 50))):
        merged = SampleRows.empty((4,))
        for start in order:
            idx = usable[(usable >= start) & (usable < start + 50)]
            part = SampleRows.empty((4,))
            part.add(idx, keys[idx], (features[idx],), size)  # what a shard sends back
            merged.add(part.indices, part.keys, part.outputs, size)
        rows = merged.in_input_order()
        np.testing.assert_array_equal(rows.indices, expected)
        np.testing.assert_array_equal(rows.outputs[0], features[expected])


def test_ray_options_need_ray(weights, tmp_path):
    out = run_cli("stats", str(CLASS_A), "-o", str(tmp_path / "x.npz"), "--workers", "2", "--weights", weights)
    assert out.returncode == 2 and "--workers, --shard-size and --retry-timeout need --ray" in out.stderr
    out = run_cli("stats", str(CLASS_A), "-o", str(tmp_path / "x.npz"), "--retry-timeout", "5", "--weights", weights)
    assert out.returncode == 2 and "need --ray" in out.stderr
