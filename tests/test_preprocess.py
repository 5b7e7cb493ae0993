"""Each preprocessing mode against an independent reference."""

from __future__ import annotations

import fidrs
import numpy as np
import pytest
from conftest import CONFORMANCE, DATA, require_shared
from fidrs import _fidrs
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
    ours = _fidrs.preprocess_arrays(img, "pytorch-fid")[0]
    for c in range(3):
        expected = 2 * _torch_bilinear(img[0, :, :, c].astype(np.float64) / 255) - 1
        # f32 arithmetic vs f64 reference: a few ulps of values in [-1, 1].
        assert np.abs(ours[c] - expected).max() <= 1e-6


@pytest.mark.parametrize("shape", [(100, 100), (64, 200), (451, 350), (1000, 700), (299, 299)])
def test_clean_mode_is_pillow_float_bicubic(shape):
    img = _image(*shape, seed=1)
    ours = _fidrs.preprocess_arrays(img, "clean")[0]
    for c in range(3):
        resized = Image.fromarray(img[0, :, :, c].astype(np.float32), mode="F").resize((299, 299), Image.BICUBIC)
        expected = np.clip(np.asarray(resized), 0, 255)
        # The bound: max abs 1e-3 on the [0, 255] scale.
        assert np.abs(ours[c] * 128 + 128 - expected).max() <= 1e-3


def test_tf1_mode_matches_torch_fidelity_features(weights):
    require_shared()
    ref = np.load(CONFORMANCE / "torch_fidelity_tf1_features.npz")
    files = [str(DATA / f) for f in ref["files"]]
    got = fidrs.features(files, weights=weights, mode="tf1")
    assert np.abs(got - ref["features"]).max() <= 5e-4


def test_pad_mode_keeps_small_images_unscaled_and_shrinks_large_ones():
    small = _image(10, 20)
    out = _fidrs.preprocess_arrays(small, "pad", [255, 0, 0])[0]
    top, left = (299 - 10) // 2, (299 - 20) // 2
    np.testing.assert_allclose(
        out[:, top : top + 10, left : left + 20], small[0].transpose(2, 0, 1) / 127.5 - 1, atol=1e-6
    )
    assert out[0, 0, 0] == 1.0 and out[1, 0, 0] == -1.0  # red fill
    large = np.full((1, 600, 300, 3), 7, dtype=np.uint8)
    out = _fidrs.preprocess_arrays(large, "pad")[0]
    content = np.isclose(out[0], 7 / 127.5 - 1, atol=1e-5)
    rows, cols = np.where(content)
    assert rows.max() - rows.min() + 1 == 299 and cols.max() - cols.min() + 1 == 150


def test_unknown_mode_is_refused():
    with pytest.raises(fidrs.InvalidInputError, match="unknown mode"):
        _fidrs.preprocess_arrays(_image(4, 4), "bicubic-please")


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
