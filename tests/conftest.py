from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FIDRS_SHARED", ROOT.parent / "shared"))
CONFORMANCE = SHARED / "conformance"
DATA = SHARED / "data" / "fruits360-apples"
WEIGHTS = CONFORMANCE / "random_fid_inception.pth"


# Fixtures that run a network over a whole shared dataset (the conformance suites), start a Ray cluster, or give
# the Inception checkpoint (`weights`: its tests run the whole 299² network, ~0.17 s an image on 2 cores): a test
# that uses one is `slow`, left out of the development lane `pytest -m "not slow"` (CI runs everything). The
# lane keeps the decoders, preprocessing, Fréchet and metric arithmetic, hostile input, caches, downloads and
# the DINOv2 converter on its small test architectures.
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


def pytest_collection_modifyitems(config, items):
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


def require_shared() -> None:
    if not WEIGHTS.is_file():
        pytest.skip(f"shared conformance data not found at {SHARED} (set FIDRS_SHARED)")


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
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
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
