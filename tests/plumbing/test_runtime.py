"""The ONNX Runtime layer: IO binding (the accelerator path, run here against CPU memory), batch defaults,
and the errors for a missing or doubly installed runtime. IO binding and the missing runtime run the tiny test
backbone (tests/tiny_backbone.py; in a subprocess, registered by the `-c` code); the default batch size is the
Inception's own measured choice, so that test runs the Inception."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT, write_images
from fidrs import _fidrs
from fidrs.backbones import get as backbone
from fidrs.backbones import preprocessing
from fidrs.runtime import BoundInput, conflicting_runtimes, get_session
from fidrs.weights import resolve_model

OUTPUTS = ("features", "logits")  # the tiny backbone's (tests/tiny_backbone.toml)
SIZE = 16  # its input size


@pytest.fixture()
def cpu_session(tiny):
    backbone_, checkpoint = tiny
    assert backbone_.output_names == OUTPUTS
    return get_session(str(resolve_model(backbone_, checkpoint).onnx_path), backbone_, "cpu")


@pytest.fixture()
def batches(tiny, tmp_path):
    files = sorted(str(p) for p in write_images(tmp_path / "imgs", 21, size=(40, 30)).iterdir())
    images, ok, failed, _pixels = _fidrs.load_images(files, preprocessing("tiny"))
    assert not failed and len(ok) == 21
    return [images[:8], images[8:13], images[13:21]]  # same shape, short, same shape again


def _plain(session, images):
    return session.session.run(list(OUTPUTS), {"images": images})


def test_io_binding_gives_the_plain_paths_numbers(cpu_session, batches):
    bound = BoundInput(cpu_session.session, OUTPUTS, "cpu")
    buffers = []
    for images in batches:
        features, logits = bound.run(images)
        expected_features, expected_logits = _plain(cpu_session, images)
        # Same graph, same kernels, same input bytes: bit-identical, not merely close.
        assert np.array_equal(features, expected_features)
        assert np.array_equal(logits, expected_logits)
        buffers.append(bound.buffer)
    assert bound.checked and bound.host_memory == "pageable"
    # The short batch needs a buffer of its own shape, and the next full batch one of the full shape again.
    assert buffers[1].shape() == [5, 3, SIZE, SIZE]
    assert buffers[2] is not buffers[1] and buffers[2].shape() == [8, 3, SIZE, SIZE]


def test_io_binding_reuses_its_buffer_for_equal_shapes(cpu_session, batches):
    bound = BoundInput(cpu_session.session, OUTPUTS, "cpu")
    bound.run(batches[0])
    first = bound.buffer
    pool3, _ = bound.run(batches[2])  # same shape, other pixels: the buffer is refilled, not reallocated
    assert bound.buffer is first
    assert np.array_equal(pool3, _plain(cpu_session, batches[2])[0])


def test_unusable_pinned_memory_falls_back_to_a_device_buffer(cpu_session, batches):
    # not an OrtMemoryInfo: allocation fails
    bound = BoundInput(cpu_session.session, OUTPUTS, "cpu", memory_info=object())
    pool3, _ = bound.run(batches[0])
    assert bound.host_memory == "pageable"
    assert np.array_equal(pool3, _plain(cpu_session, batches[0])[0])


def test_default_batch_is_the_measured_cpu_choice(weights):
    inception = backbone("inception")
    cpu_session = get_session(str(resolve_model(inception, weights).onnx_path), inception, "cpu")
    assert cpu_session.provider == "CPUExecutionProvider"
    assert cpu_session.default_batch_size == 16
    assert cpu_session.bound is None  # IO binding only pays off when the batch crosses to a device


def test_conflicting_runtimes_are_detected():
    assert conflicting_runtimes({"onnxruntime", "numpy"}) == []
    assert conflicting_runtimes({"onnxruntime-gpu", "scipy"}) == []
    assert conflicting_runtimes({"onnxruntime", "onnxruntime-gpu"}) == ["onnxruntime", "onnxruntime-gpu"]


_WITHOUT_RUNTIME = """
import json, sys
sys.modules["onnxruntime"] = None  # as if it were not installed
sys.path.insert(0, sys.argv[2])
import numpy as np
import fidrs
import tiny_backbone
tiny_backbone.register()
out = {}
rng = np.random.default_rng(0)
x, y = rng.normal(size=(40, 8)), rng.normal(size=(40, 8)) + 0.5
out["fid"] = fidrs.frechet_distance(x.mean(0), np.cov(x, rowvar=False), y.mean(0), np.cov(y, rowvar=False))
try:
    fidrs.features(np.zeros((2, 32, 32, 3), np.uint8), backbone="tiny", weights=sys.argv[1])
except fidrs.RuntimeUnavailableError as e:
    out["error"] = str(e)
print(json.dumps(out))
"""


def test_without_onnxruntime_statistics_work_and_features_say_how_to_install(tiny):
    result = subprocess.run(
        [sys.executable, "-c", _WITHOUT_RUNTIME, tiny[1], str(ROOT / "tests")],
        capture_output=True,
        text=True,
        check=True,
    )
    out = json.loads(result.stdout)
    assert np.isfinite(out["fid"]) and out["fid"] > 0
    assert "ONNX Runtime is not installed" in out["error"]
    assert "fidrs[cpu]" in out["error"] and "fidrs[gpu]" in out["error"]


def test_cli_without_onnxruntime_exits_3_with_the_install_hint(tiny, tmp_path):
    code = (
        "import sys; sys.modules['onnxruntime'] = None; sys.path.insert(0, sys.argv.pop(1)); import tiny_backbone; "
        "tiny_backbone.register(); from fidrs.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    images = sorted(str(p) for p in write_images(tmp_path / "imgs", 2).iterdir())
    result = subprocess.run(
        [sys.executable, "-c", code, str(ROOT / "tests"), "score", *images[:1], *images[1:], "--backbone", "tiny"]
        + ["--weights", tiny[1], "--no-cache"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 3, result.stderr
    assert "ONNX Runtime is not installed" in result.stderr and "Traceback" not in result.stderr
