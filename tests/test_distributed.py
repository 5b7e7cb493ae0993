"""fidrs on Ray: a real two-node cluster on 127.0.0.1 (two `ray start` processes, one CPU each), no mocks.

Tolerances. Each image's features are computed by the same ONNX graph with the same provider on each side,
so they are bit-identical (asserted for the sample); the cluster and the local run then differ only in the
order in which float64 sums of float32 products are added (per shard, then shard results in any order). That
changes a sum of n terms by at most ~n·2⁻⁵³ of its magnitude: ~1e-14 relative for these few hundred images, so
statistics are compared within 1e-12 relative (the issue's bound) and FID within 1e-10 (FID is a difference of
traces of magnitude ~Σ, so its relative error can be ‖Σ‖/FID times larger; 1e-10 leaves a factor 100 of it)."""

from __future__ import annotations

import json
import os
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
STATS_RTOL = 1e-12
FID_RTOL = 1e-10
RAY = Path(sys.executable).with_name("ray")
WORKER_TITLE = "ray::ShardWorker.run"  # Ray's process title while a worker runs a shard


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _alive_nodes(address: str) -> int:
    probe = "import ray; ray.init(address=%r, logging_level='ERROR'); print(sum(n['Alive'] for n in ray.nodes()))"
    out = subprocess.run(
        [sys.executable, "-c", probe % address], capture_output=True, text=True, timeout=60, env=_ray_env()
    )
    return int(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 and out.stdout.strip() else 0


# This cluster listens on this machine only and lives for one test module: Ray's token authentication (on by
# default for `ray start` in recent Ray, with the token in ~/.ray) is switched off for it, and for every client
# the tests start, so the tests do not depend on a token file in the user's home.
TEST_CLUSTER_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}


def _ray_env() -> dict:
    return {**os.environ, **TEST_CLUSTER_ENV}


@pytest.fixture(scope="module")
def cluster():
    """Head node plus a second node, each `ray start --block` (so that ending the process ends its node)."""
    saved = {k: os.environ.get(k) for k in TEST_CLUSTER_ENV}
    os.environ.update(TEST_CLUSTER_ENV)  # the CLI runs and in-process clients of these tests
    try:
        yield from _two_nodes()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _two_nodes():
    port = _free_port()
    address = f"127.0.0.1:{port}"
    # A short folder: Ray's socket paths live below it and a Unix socket path must stay under 108 bytes.
    temp = tempfile.mkdtemp(prefix="fidrs-ray-", dir="/tmp")
    common = ["--block", "--num-cpus", "1", "--object-store-memory", str(256 << 20), "--disable-usage-stats"]
    logs = open(Path(temp) / "fixture.log", "wb")
    head = subprocess.Popen(
        [str(RAY), "start", "--head", "--port", str(port), "--include-dashboard", "false", "--temp-dir", temp] + common,
        stdout=logs,
        stderr=subprocess.STDOUT,
        env=_ray_env(),
    )
    nodes = [head]
    try:
        deadline = time.monotonic() + 120
        while _alive_nodes(address) < 1:
            assert head.poll() is None and time.monotonic() < deadline, "the head node did not start"
            time.sleep(1)
        second = subprocess.Popen(
            [str(RAY), "start", "--address", address] + common, stdout=logs, stderr=subprocess.STDOUT, env=_ray_env()
        )
        nodes.append(second)
        while _alive_nodes(address) < 2:
            assert second.poll() is None and time.monotonic() < deadline, "the second node did not join"
            time.sleep(1)
        yield address
    finally:
        for process in reversed(nodes):
            process.send_signal(signal.SIGTERM)
        for process in reversed(nodes):
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
        logs.close()


@pytest.fixture(scope="module")
def local_stats(weights):
    """The single-machine statistics every cluster result must equal."""
    return {
        name: fidrs.stats(str(path), weights=weights, cache=False) for name, path in (("a", CLASS_A), ("b", CLASS_B))
    }


def _relative(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.abs(x - y).max() / np.abs(y).max())


def _assert_same_stats(cluster_stats: fidrs.Stats, local: fidrs.Stats) -> None:
    assert cluster_stats.n == local.n
    assert cluster_stats.backbone == local.backbone and cluster_stats.mode == local.mode
    assert cluster_stats.weights_sha256 == local.weights_sha256
    assert _relative(cluster_stats.mu, local.mu) <= STATS_RTOL
    assert _relative(cluster_stats.sigma, local.sigma) <= STATS_RTOL
    assert _relative(cluster_stats.moments.sum_outer, local.moments.sum_outer) <= STATS_RTOL


def test_score_on_two_nodes_equals_local(cluster, weights, local_stats, tmp_path):
    out = run_cli(
        "score",
        str(CLASS_A),
        str(CLASS_B),
        "--json",
        "--ray",
        cluster,
        "--weights",
        weights,
        "--shard-size",
        "32",
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
    assert ray["shards"] == -(-144 // 32) + -(-161 // 32) and ray["workers"] == 2
    assert ray["nodes"] == 2, "both nodes ran shards"
    assert ray["retried"] == []


def _shard_worker_pid() -> int | None:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                title = (entry / "cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
            except OSError:
                continue
            if title.startswith(WORKER_TITLE):
                return int(entry.name)
    return None


def test_worker_killed_mid_shard_costs_a_rerun_not_a_double_count(cluster, weights, local_stats, tmp_path):
    output = tmp_path / "a.npz"
    args = ["stats", str(CLASS_A), "-o", str(output), "--ray", cluster, "--weights", weights, "--shard-size", "16"]
    driver = subprocess.Popen(
        [sys.executable, "-m", "fidrs.cli", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 300
    victim = None
    while victim is None and driver.poll() is None and time.monotonic() < deadline:
        victim = _shard_worker_pid()
        time.sleep(0.2)
    assert victim is not None, "no worker was seen running a shard"
    os.kill(victim, signal.SIGKILL)
    _, stderr = driver.communicate(timeout=600)
    assert driver.returncode == 0, stderr
    assert f"its earlier worker(s) (pid {victim} " in stderr, stderr  # the log names the rerun shard and the pid
    rerun = [line for line in stderr.splitlines() if "ran again" in line]
    assert len(rerun) == 1 and rerun[0].startswith("fidrs: shard ") and "images " in rerun[0], stderr
    _assert_same_stats(fidrs.Stats.load(output), local_stats["a"])


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
    assert out.returncode == 2 and "--workers and --shard-size need --ray" in out.stderr
