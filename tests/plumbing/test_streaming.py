"""The streaming accumulator (training loops): same features and FID as the folder path on the same pixels, on the
tiny test backbone (tests/tiny_backbone.py; 12 and 11 images, more than its 8 feature dimensions, so both
covariances are of full rank and the FID is well conditioned).

Tolerance: both paths fold the same float32 features into float64 moments, in batches that may be cut
differently, so the statistics differ only by float64 summation order (~1e-14 relative for these few
images); FID within 1e-9 relative leaves orders of magnitude of margin yet fails on any pixel or feature
difference (one changed pixel level moves FID by far more)."""

from __future__ import annotations

import fidrs
import numpy as np
import pytest
from conftest import write_images
from fidrs.streaming import as_uint8_nhwc
from PIL import Image

FID_RTOL = 1e-9


class TorchLike:
    """What fidrs sees of a CPU torch tensor: DLPack, no numpy subclass."""

    def __init__(self, array: np.ndarray) -> None:
        self._array = array

    def __dlpack__(self, **kwargs):
        return self._array.__dlpack__(**kwargs)

    def __dlpack_device__(self):
        return self._array.__dlpack_device__()


class ArrayLike:
    def __init__(self, array: np.ndarray) -> None:
        self._array = array

    def __array__(self, dtype=None, copy=None):
        return self._array if dtype is None else self._array.astype(dtype)


def _pixels(folder) -> np.ndarray:
    return np.stack([np.asarray(Image.open(p).convert("RGB")) for p in sorted(folder.iterdir())])


def test_accumulator_equals_the_folder_path(tiny, tmp_path):
    _, weights = tiny
    a = write_images(tmp_path / "a", 12, seed=1, size=(48, 40))
    b = write_images(tmp_path / "b", 11, seed=2, size=(48, 40))
    pa, pb = _pixels(a), _pixels(b)
    fake = fidrs.Accumulator(backbone="tiny", weights=weights, batch_size=3)
    fake.update(pa[:2])  # NHWC uint8
    fake.update(TorchLike(np.ascontiguousarray(pa[2:5].transpose(0, 3, 1, 2))))  # NCHW through DLPack
    fake.update(ArrayLike(pa[5:].astype(np.float32) / 255))  # floats in [0, 1] through __array__
    real = fidrs.Accumulator(backbone="tiny", weights=weights)
    real.update(pb)
    expected = fidrs.score(str(a), str(b), backbone="tiny", weights=weights, cache=False)
    assert fake.n == 12 and real.n == 11
    assert abs(fake.compute(real) - expected) <= FID_RTOL * expected
    assert (
        abs(fake.compute(fidrs.stats(str(b), backbone="tiny", weights=weights, cache=False)) - expected)
        <= FID_RTOL * expected
    )
    saved = tmp_path / "b.npz"
    real.stats().save(saved)
    assert abs(fake.compute(str(saved)) - expected) <= FID_RTOL * expected
    snapshot = fake.stats()
    np.testing.assert_array_equal(
        fidrs.features(pa, backbone="tiny", weights=weights, cache=False),
        fidrs.features(str(a), backbone="tiny", weights=weights, cache=False),
    )
    fake.reset()
    assert fake.n == 0
    fake.update(pa)
    np.testing.assert_allclose(fake.stats().sigma, snapshot.sigma, rtol=0, atol=1e-12 * np.abs(snapshot.sigma).max())


def test_bad_batches_are_refused_with_the_reason():
    ok = np.zeros((2, 8, 8, 3), np.uint8)
    assert as_uint8_nhwc(ok).shape == (2, 8, 8, 3)
    assert as_uint8_nhwc(ok[0]).shape == (1, 8, 8, 3)
    np.testing.assert_array_equal(as_uint8_nhwc(np.full((1, 3, 2, 2), 0.2, np.float32))[0, 0, 0], [51, 51, 51])
    for bad, reason in (
        (np.zeros((2, 8, 8, 4), np.uint8), "3 colour channels"),
        (np.zeros((2, 3, 8, 3), np.uint8), "both axis 1 and axis 3"),
        (np.full((1, 4, 4, 3), 1.5, np.float32), r"in \[0, 1\]"),
        (np.full((1, 4, 4, 3), np.nan, np.float32), r"in \[0, 1\]"),
        (np.zeros((1, 4, 4, 3), np.int64), "uint8"),
        (np.zeros((4, 4), np.uint8), "N×H×W×3"),
    ):
        with pytest.raises(fidrs.InvalidInputError, match=reason):
            as_uint8_nhwc(bad)


def test_compute_refuses_other_backbones_statistics(tiny, tmp_path):
    _, weights = tiny
    acc = fidrs.Accumulator(backbone="tiny", weights=weights)
    acc.update(_pixels(write_images(tmp_path / "a", 3, seed=1)))
    other = fidrs.Stats(np.zeros(384), np.eye(384), n=10, backbone="dinov2-vits14")
    with pytest.raises(fidrs.IncompatibleStatsError):
        acc.compute(other)
    with pytest.raises(fidrs.InvalidInputError, match="reference must be"):
        acc.compute(42)
