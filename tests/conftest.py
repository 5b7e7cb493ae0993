from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FIDRS_SHARED", ROOT.parent / "shared"))
CONFORMANCE = SHARED / "conformance"
DATA = SHARED / "data" / "fruits360-apples"
WEIGHTS = CONFORMANCE / "random_fid_inception.pth"


# The suite in tiers, one folder each (README, "Tests"); a test is marked with its folder's name:
# - unit: one function or module against a yardstick computed in the test (numpy, mpmath, SciPy, Pillow, a float64
#   forward pass), on small inputs;
# - plumbing: every path through the API and the CLI (caches, hostile inputs, streaming, zip/URL, references,
#   crafted graphs, Ray planning) on the tiny test backbone (tests/tiny_backbone.py), a real ONNX network;
# - conformance: numbers against what the official reference code computed on the shared data (each image
#   through each network once per run: the session fixtures below);
# - cluster: Ray clusters started on this machine.
TIERS = ("unit", "plumbing", "conformance", "cluster")
SLOW_TIERS = frozenset({"conformance", "cluster"})
TESTS = Path(__file__).resolve().parent
for _tier in TIERS:  # test modules import helpers of other tiers' modules (e.g. test_dinov2_weights.random_state)
    if str(TESTS / _tier) not in sys.path:
        sys.path.append(str(TESTS / _tier))

# Fixtures that run a network over a whole shared dataset (the conformance suites), start a Ray cluster, or give
# the Inception checkpoint (`weights`: its tests run the whole 299² network, ~0.03 s an image on 2 AVX-512 cores):
# a test that uses one is `slow`, as is every test of a slow tier and a test marked so by hand (one that builds and
# runs another full-size network: a shared or full-width checkpoint read from several files); the development lane
# `pytest -m "not slow"` leaves them out (CI runs everything).
SLOW_FIXTURES = frozenset(
    {
        "class_features",
        "class_stats",
        "reference_features",
        "dinov2_reference",
        "dinov2_class_stats",
        "cluster",
        "local_stats",
        "tf1_sets",
        "weights",
    }
)


# pytest-xdist (`-n 2`: CI and the development lane) gets the suite's own scheduler, for `--dist load` (what `-n`
# implies) and `loadgroup`: the conformance and cluster tiers are one unit of work, run on one worker in order, so
# that their session and module fixtures (each image through each network once; one Ray cluster at a time) are
# built once, while the other worker runs the unit and plumbing tests beside the networks; every other module is a
# unit of its own, so that its module fixtures (the GPU check's dry run, a test backbone's graph, …) are built
# once, not once per worker. (xdist's own `loadgroup` groups by rewriting node IDs, which pytest 9.2 no longer
# allows: its `nodeid` is derived, and the groups were silently lost.)
SERIAL_TIERS = frozenset({"conformance", "cluster"})


@pytest.hookimpl(optionalhook=True)  # a hook of pytest-xdist: without it installed, pytest runs serially
def pytest_xdist_make_scheduler(config, log):
    if config.getvalue("dist") not in ("load", "loadgroup"):
        return None
    from xdist.scheduler import LoadScopeScheduling

    class ModulesAndSerialTiers(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]  # relative to the root directory, ROOT
            return "serial tiers" if tier_of((ROOT / module).resolve()) in SERIAL_TIERS else module

    return ModulesAndSerialTiers(config, log)


def tier_of(module: Path) -> str | None:
    """The tier of a test module (an absolute path): its folder under tests/, None outside the tier folders."""
    try:
        parts = module.relative_to(TESTS).parts
    except ValueError:
        return None
    return parts[0] if len(parts) > 1 and parts[0] in TIERS else None


def pytest_collection_modifyitems(config, items):
    for item in items:
        module = Path(str(item.fspath)).resolve()
        tier = tier_of(module)
        if tier is None:
            raise pytest.UsageError(
                f"{module.relative_to(ROOT)}: a test module belongs in one of the tier folders {TIERS}"
            )
        item.add_marker(getattr(pytest.mark, tier))
        if tier in SLOW_TIERS or SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


def require_shared() -> None:
    if not WEIGHTS.is_file():
        pytest.skip(f"shared conformance data not found at {SHARED} (set FIDRS_SHARED)")


@pytest.fixture(autouse=True)
def _cli_reporting_restored():
    """`fidrs.cli.main` called in this process installs what the CLI reports through (a stderr handler on the
    `fidrs` logger, the warning format): put back after every test, so that a later test's log records never go
    to an earlier test's closed capture stream ("I/O operation on closed file")."""
    import logging
    import warnings

    log = logging.getLogger("fidrs")
    saved = (list(log.handlers), log.level, log.propagate, warnings.formatwarning)
    yield
    log.handlers[:] = saved[0]
    log.setLevel(saved[1])
    log.propagate = saved[2]
    warnings.formatwarning = saved[3]


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    """Every test run builds its ONNX model into its own cache, never the user's."""
    cache = tmp_path_factory.mktemp("fidrs-cache")
    old = os.environ.get("FIDRS_CACHE")
    os.environ["FIDRS_CACHE"] = str(cache)
    yield cache
    if old is None:
        os.environ.pop("FIDRS_CACHE", None)
    else:
        os.environ["FIDRS_CACHE"] = old


@pytest.fixture(scope="session")
def weights() -> str:
    require_shared()
    return str(WEIGHTS)


@pytest.fixture(scope="session")
def reference_fids() -> dict:
    require_shared()
    return json.loads((CONFORMANCE / "pytorch_fid_reference.json").read_text())


@pytest.fixture(scope="session")
def reference_features():
    require_shared()
    data = np.load(CONFORMANCE / "pytorch_fid_features.npz")
    return [str(DATA / f) for f in data["files"]], data["features"]


@pytest.fixture(scope="session")
def class_features(weights, reference_fids):
    """fidrs.FeatureSet of every training class: one feature pass over the 4,844 training photos,
    shared by the conformance and report tests."""
    import fidrs

    return {c: fidrs.feature_set(str(DATA / "training" / c), weights=weights) for c in reference_fids["classes"]}


@pytest.fixture(scope="session")
def class_stats(class_features):
    """fidrs.Stats of every training class, folded through the streaming moments as `fidrs.stats` does."""
    import fidrs

    stats = {}
    for c, fs in class_features.items():
        moments = fidrs.Moments(2048)
        for start in range(0, len(fs.features), 50):
            moments.update(fs.features[start : start + 50])
        stats[c] = fidrs.Stats.from_moments(moments, fs.mode, fs.weights_sha256, fs.backbone)
    return stats


def run_cli(*args: str, env: dict | None = None, timeout: float = 300, **kwargs):
    """Run the `fidrs` command in a fresh interpreter (as a user would), capturing its output."""
    import subprocess
    import sys

    merged = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "fidrs.cli", *args],
        capture_output=True,
        text=True,
        env=merged,
        timeout=timeout,
        **kwargs,
    )


def write_images(folder: Path, count: int, seed: int = 0, size=(40, 30), ext: str = "png") -> Path:
    """`count` random RGB images in `folder` (created), named 00.png, 01.png, ..."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(folder / f"{i:02d}.{ext}")
    return folder


def inception_with(**fields):
    """The Inception backbone with other weights-source fields (a stand-in checkpoint's hash, a small cap)."""
    import dataclasses

    from fidrs.backbones import get

    inception = get("inception")
    return dataclasses.replace(inception, weights=dataclasses.replace(inception.weights, **fields))


@contextlib.contextmanager
def serve_folder(root: Path):
    """Serve `root` over HTTP on 127.0.0.1 (downloads are tested against it); yields the base URL."""
    import functools
    import http.server
    import threading

    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.handle_error = lambda *a: None  # a client that abandons a download on purpose is not news
    # shutdown() waits for the serving loop's next poll: 0.5 s by default, 10 ms here
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture()
def tiny(tmp_path):
    """The tiny test backbone (tests/tiny_backbone.py) registered for one test: yields (backbone, checkpoint)."""
    import fidrs
    import tiny_backbone

    backbone = tiny_backbone.register()
    try:
        yield backbone, tiny_backbone.write_checkpoint(tmp_path / "tiny.npz")
    finally:
        fidrs.backbones.unregister_backbone(backbone.name)


TINY_TWIN = "tiny-twin"


@pytest.fixture
def tiny_twin(tiny):
    """A second registered backbone of the tiny one's width (8-d), named TINY_TWIN: sides of two backbones that
    differ by name only, for the "different backbones" refusals. Yields its name."""
    import dataclasses

    import fidrs

    fidrs.register_backbone(dataclasses.replace(tiny[0], name=TINY_TWIN, aliases=()), replace=True)
    try:
        yield TINY_TWIN
    finally:
        fidrs.backbones.unregister_backbone(TINY_TWIN)
