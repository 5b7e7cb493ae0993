"""pytorch-fid's resize inside the graph (`fidrs.graph_resize`): on the CPU provider the wrapped graph's network
input, and so its features, must be the host path's (`pytorch-fid` mode) bit for bit."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from conftest import DATA
from fidrs import _fidrs
from fidrs.backbones import get, preprocessing
from fidrs.graph_resize import INPUT, with_torch_bilinear_input
from onnx import TensorProto, helper
from PIL import Image

ort = pytest.importorskip("onnxruntime")

# (height, width): the shared photos' size, odd sizes shrunk and enlarged on either axis, 1-pixel-wide and -high
# images, the network's own size (no resampling: copied), a 2×3 image and a large photo-sized one.
SHAPES = [(100, 100), (313, 487), (487, 313), (1, 1), (1, 40), (40, 1), (299, 299), (299, 300), (2, 3), (768, 1024)]


def _identity(size: int = 299) -> onnx.ModelProto:
    """A "backbone" whose output is its input: exposes the wrapped graph's network input."""
    io = [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N", 3, size, size]) for n in ("images", "out")]
    graph = helper.make_graph([helper.make_node("Identity", ["images"], ["out"])], "identity", [io[0]], [io[1]])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def _session(model: onnx.ModelProto):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # the same single-threaded kernels for both graphs
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def _images(shape: tuple[int, int], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (2, *shape, 3), dtype=np.uint8)
    images[1, : shape[0] // 2] = 255  # a saturated half: large steps between neighbours
    return images


@pytest.fixture(scope="module")
def wrapped_identity():
    return _session(with_torch_bilinear_input(_identity()))


@pytest.mark.parametrize("shape", SHAPES)
def test_network_input_is_the_host_paths_bit_for_bit(wrapped_identity, shape):
    """Bound 0 ulp: every tap index and weight is computed from the shape with torch's f32 operations in the
    host's order, and each pass is separate IEEE multiplies and adds, as `src/preprocess` computes them.
    (An ONNX `Resize(linear, half_pixel)` differs from it by up to 2e-4 at 1024 px: it divides by out/in and
    weighs the four neighbours with products of the axes' weights.)"""
    images = _images(shape, seed=shape[0] * 7 + shape[1])
    (inside,) = wrapped_identity.run(None, {INPUT: images})
    host = _fidrs.preprocess_arrays(images, preprocessing("inception", "pytorch-fid"))
    assert inside.shape == host.shape == (2, 3, 299, 299)
    np.testing.assert_array_equal(inside, host)


def test_shared_photos_in_the_graph_equal_the_host_path(wrapped_identity):
    files = sorted((DATA / "training" / "apple_red_1").glob("*.jpg"))[:8]
    if not files:
        pytest.skip("shared photos not found")
    images = np.stack([np.asarray(Image.open(f).convert("RGB")) for f in files])
    host, ok, failed, _ = _fidrs.load_images([str(f) for f in files], preprocessing("inception", "pytorch-fid"))
    assert failed == [] and len(ok) == len(files)
    np.testing.assert_array_equal(wrapped_identity.run(None, {INPUT: images})[0], host)


def test_graphs_that_are_not_one_square_rgb_input_are_refused():
    wide = _identity()
    wide.graph.input[0].type.tensor_type.shape.dim[3].dim_value = 300
    with pytest.raises(ValueError, match="not N×3×S×S"):
        with_torch_bilinear_input(wide)
    with pytest.raises(ValueError, match="named 'pixels'"):
        with_torch_bilinear_input(_identity(), input_name="pixels")


def test_the_wrapped_graph_takes_uint8_nhwc_of_any_size():
    model = with_torch_bilinear_input(_identity(64))
    (only,) = model.graph.input
    assert only.name == INPUT and only.type.tensor_type.elem_type == TensorProto.UINT8
    assert [d.dim_param or d.dim_value for d in only.type.tensor_type.shape.dim] == ["N", "H", "W", 3]
    (out,) = _session(model).run(None, {INPUT: np.zeros((3, 5, 7, 3), np.uint8)})
    np.testing.assert_array_equal(out, np.full((3, 3, 64, 64), -1.0, np.float32))  # (0/255 − 0.5)/0.5


@pytest.mark.slow  # the FID Inception over 14 images
def test_inception_features_in_the_graph_equal_the_host_paths(weights):
    """Same network input (above) through the same Inception graph on the same provider and threads: the
    features are the same floats, bit for bit."""
    inception = get("inception")
    plain = inception.build_graph(inception.load_state(weights))
    host_session, graph_session = _session(plain), _session(with_torch_bilinear_input(plain))
    p = preprocessing("inception", "pytorch-fid")
    for shape in [(100, 100), (313, 487), (1, 40), (299, 299), (2, 3)]:
        images = _images(shape, seed=sum(shape))
        host = host_session.run(["pool3"], {"images": _fidrs.preprocess_arrays(images, p)})[0]
        inside = graph_session.run(["pool3"], {INPUT: images})[0]
        assert host.shape == (2, 2048)
        np.testing.assert_array_equal(inside, host)
