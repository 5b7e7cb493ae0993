"""Each preprocessing mode against an independent reference."""

from __future__ import annotations

import fidrs
import numpy as np
import pytest
from conftest import CONFORMANCE, DATA, require_shared
from fidrs import _fidrs
from fidrs.backbones import preprocessing
from PIL import Image


def _image(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (1, h, w, 3), dtype=np.uint8)


def _torch_bilinear_axis(n_in: int, n_out: int):
    """torch F.interpolate(mode='bilinear', align_corners=False): half-pixel centres, negatives clamped to 0."""
    if n_in == n_out:
        return np.arange(n_in), np.arange(n_in), np.zeros(n_in)
    # torch computes the source coordinate of float32 tensors in float32.
    scale = np.float32(n_in) / np.float32(n_out)
    src = np.maximum(scale * (np.arange(n_out, dtype=np.float32) + np.float32(0.5)) - np.float32(0.5), np.float32(0))
    i0 = np.minimum(np.floor(src).astype(int), n_in - 1)
    i1 = np.minimum(i0 + 1, n_in - 1)
    lam = (src - i0.astype(np.float32)).astype(np.float64)
    return i0, i1, lam


def _torch_bilinear(plane: np.ndarray) -> np.ndarray:
    y0, y1, ly = _torch_bilinear_axis(plane.shape[0], 299)
    x0, x1, lx = _torch_bilinear_axis(plane.shape[1], 299)
    top = plane[y0][:, x0] * (1 - lx) + plane[y0][:, x1] * lx
    bottom = plane[y1][:, x0] * (1 - lx) + plane[y1][:, x1] * lx
    return top * (1 - ly)[:, None] + bottom * ly[:, None]


@pytest.mark.parametrize("shape", [(100, 100), (451, 350), (299, 299), (37, 512)])
def test_pytorch_fid_mode_is_torch_bilinear(shape):
    img = _image(*shape)
    ours = _fidrs.preprocess_arrays(img, preprocessing("inception", "pytorch-fid"))[0]
    for c in range(3):
        expected = 2 * _torch_bilinear(img[0, :, :, c].astype(np.float64) / 255) - 1
        # f32 arithmetic vs f64 reference: a few ulps of values in [-1, 1].
        assert np.abs(ours[c] - expected).max() <= 1e-6


@pytest.mark.parametrize("shape", [(100, 100), (64, 200), (451, 350), (1000, 700), (299, 299)])
def test_clean_mode_is_pillow_float_bicubic(shape):
    img = _image(*shape, seed=1)
    ours = _fidrs.preprocess_arrays(img, preprocessing("inception", "clean"))[0]
    for c in range(3):
        resized = Image.fromarray(img[0, :, :, c].astype(np.float32), mode="F").resize((299, 299), Image.BICUBIC)
        expected = np.clip(np.asarray(resized), 0, 255)
        # The bound: max abs 1e-3 on the [0, 255] scale.
        assert np.abs(ours[c] * 128 + 128 - expected).max() <= 1e-3


@pytest.mark.slow  # the network over torch-fidelity's reference images
def test_tf1_mode_matches_torch_fidelity_features(weights):
    require_shared()
    ref = np.load(CONFORMANCE / "torch_fidelity_tf1_features.npz")
    files = [str(DATA / f) for f in ref["files"]]
    got = fidrs.features(files, weights=weights, mode="tf1")
    assert np.abs(got - ref["features"]).max() <= 5e-4


def test_pad_mode_keeps_small_images_unscaled_and_shrinks_large_ones():
    small = _image(10, 20)
    out = _fidrs.preprocess_arrays(small, preprocessing("inception", "pad", (255, 0, 0)))[0]
    top, left = (299 - 10) // 2, (299 - 20) // 2
    np.testing.assert_allclose(
        out[:, top : top + 10, left : left + 20], small[0].transpose(2, 0, 1) / 127.5 - 1, atol=1e-6
    )
    assert out[0, 0, 0] == 1.0 and out[1, 0, 0] == -1.0  # red fill
    large = np.full((1, 600, 300, 3), 7, dtype=np.uint8)
    out = _fidrs.preprocess_arrays(large, preprocessing("inception", "pad"))[0]
    content = np.isclose(out[0], 7 / 127.5 - 1, atol=1e-5)
    rows, cols = np.where(content)
    assert rows.max() - rows.min() + 1 == 299 and cols.max() - cols.min() + 1 == 150


def test_unknown_mode_and_kernel_are_refused_as_value_errors():
    with pytest.raises(fidrs.InvalidInputError, match="no preprocessing mode 'bicubic-please'"):
        preprocessing("inception", "bicubic-please")
    with pytest.raises(ValueError, match="unknown resize"):  # InvalidInputError is a ValueError
        _fidrs.Preprocessing(size=224, resize="bicubic-please")
    with pytest.raises(fidrs.InvalidInputError, match="finite non-zero stds"):
        _fidrs.Preprocessing(size=224, resize="pil-bicubic-u8", std=(1.0, 0.0, 1.0))


def test_mixed_sizes_in_one_batch_equal_each_image_alone(tmp_path, weights):
    paths = []
    for i, (h, w) in enumerate([(100, 100), (37, 80), (320, 240)]):
        path = tmp_path / f"{i}.png"
        Image.fromarray(_image(h, w, seed=i)[0]).save(path)
        paths.append(str(path))
    together = fidrs.features(paths, weights=weights)
    alone = np.concatenate([fidrs.features([p], weights=weights) for p in paths])
    assert together.shape == (3, 2048)
    # Batch composition changes ORT's blocking: float32 round-off only.
    assert np.abs(together - alone).max() <= 1e-5


def test_arrays_and_files_give_the_same_features(tmp_path, weights):
    img = _image(64, 48, seed=5)
    path = tmp_path / "x.png"
    Image.fromarray(img[0]).save(path)
    np.testing.assert_array_equal(fidrs.features(img, weights=weights), fidrs.features([str(path)], weights=weights))


@pytest.mark.parametrize(("size", "shape"), [(224, (100, 100)), (224, (37, 401)), (64, (500, 333)), (224, (224, 224))])
def test_pil_u8_bicubic_equals_pillow_resize_exactly(size, shape):
    """torchvision's Resize on a PIL image is `Image.resize((s, s), BICUBIC)` on uint8: fixed-point taps,
    rounded and clipped after each pass. Unit 'never', mean 0, std 1 exposes the resampled uint8 values."""
    from PIL import Image

    rng = np.random.default_rng(size + shape[0])
    img = rng.integers(0, 256, size=(1, *shape, 3), dtype=np.uint8)
    img[0, : shape[0] // 2] = 255  # a sharp edge: where clipping between the passes matters
    raw = _fidrs.Preprocessing(size=size, resize="pil-bicubic-u8")
    ours = _fidrs.preprocess_arrays(img, raw)[0].transpose(1, 2, 0)
    pillow = np.asarray(Image.fromarray(img[0]).resize((size, size), Image.BICUBIC), dtype=np.float32)
    np.testing.assert_array_equal(ours, pillow)


@pytest.mark.parametrize("shape", [(300, 400), (401, 227), (224, 260), (225, 500)])
def test_center_crop_is_torchvisions_resize_then_center_crop(shape):
    """Resize(224) (shorter side to 224, longer int(224·long/short)) then CenterCrop(224) with Python's round."""
    from PIL import Image

    img = np.random.default_rng(shape[0]).integers(0, 256, size=(1, *shape, 3), dtype=np.uint8)
    crop = _fidrs.Preprocessing(size=224, resize="pil-bicubic-u8", fit="center-crop")
    ours = _fidrs.preprocess_arrays(img, crop)[0].transpose(1, 2, 0)
    h, w = shape
    new = (224, int(224 * h / w)) if w <= h else (int(224 * w / h), 224)
    resized = np.asarray(Image.fromarray(img[0]).resize(new, Image.BICUBIC), dtype=np.float32)
    top, left = int(round((new[1] - 224) / 2.0)), int(round((new[0] - 224) / 2.0))
    np.testing.assert_array_equal(ours, resized[top : top + 224, left : left + 224])


def test_stub_literals_are_the_native_choices():
    """The type stubs spell out the choices the Rust core defines; they must not drift apart."""
    import ast
    import pathlib

    stub = ast.parse((pathlib.Path(fidrs.__file__).parent / "_fidrs.pyi").read_text())
    literals = {
        node.targets[0].id: [e.value for e in node.value.slice.elts]
        for node in stub.body
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Subscript)
    }
    assert literals["ResizeKernel"] == _fidrs.RESIZE_KERNELS
    assert literals["Fit"] == _fidrs.FITS
    assert literals["Unit"] == _fidrs.UNITS
    assert literals["FrechetMethod"] == _fidrs.FRECHET_METHODS


def test_out_buffer_is_written_in_place_and_equals_a_new_array(tmp_path):
    """`out=` (the feature pass's reused input buffers): same floats as a new array, good files compacted to the
    front in input order, the result a view of the buffer; a buffer that cannot hold the batch is refused."""
    rng = np.random.default_rng(3)
    paths = []
    for i, size in enumerate([(40, 30), (64, 64), (17, 90)]):
        path = tmp_path / f"{i}.png"
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(path)
        paths.append(str(path))
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    paths.insert(1, str(bad))
    p = preprocessing()
    fresh, ok, failures, pixels = _fidrs.load_images(paths, p)
    out = np.full((5, 3, p.size, p.size), np.nan, np.float32)
    view, ok_out, failures_out, pixels_out = _fidrs.load_images(paths, p, out=out)
    assert (
        (ok_out, [i for i, _ in failures_out], pixels_out)
        == (ok, [i for i, _ in failures], pixels)
        == (
            [0, 2, 3],
            [1],
            [1200, 4096, 1530],
        )
    )
    assert view.shape == (3, 3, p.size, p.size) and np.shares_memory(view, out)
    np.testing.assert_array_equal(view, fresh)  # bit for bit: same code, other destination
    encoded = [open(f, "rb").read() for f in paths]
    view, *_ = _fidrs.load_encoded(encoded, p, out=out)
    np.testing.assert_array_equal(view, fresh)
    images = _image(50, 70, seed=4).repeat(2, axis=0)
    np.testing.assert_array_equal(_fidrs.preprocess_arrays(images, p, out=out)[:2], _fidrs.preprocess_arrays(images, p))
    for wrong in (
        np.empty((3, 3, p.size, p.size), np.float32),  # too few images for 4 files
        np.empty((5, 3, p.size, p.size), np.float64),  # wrong dtype
        np.empty((5, 3, p.size + 1, p.size), np.float32),  # wrong image size
        np.empty((5, 3, p.size, 2 * p.size), np.float32)[..., ::2],  # not contiguous
    ):
        with pytest.raises((fidrs.InvalidInputError, TypeError)):
            _fidrs.load_images(paths, p, out=wrong)
