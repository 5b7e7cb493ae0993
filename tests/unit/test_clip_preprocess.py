"""The two CLIP resize/crop protocols of `shared/conformance/clip/README.md`, exactly: clean-fid's CLIP-FID
(`fit="center-crop"`: torchvision `Resize(224)` then `CenterCrop(224)` on a PIL image) and google-research/cmmd's
CMMD (`fit="square-crop"`: the centred square, then `resize((336, 336), BICUBIC)`), both Pillow's 8-bit bicubic.
Each is checked against the official tools' own network inputs (`debug_*` arrays) and, on odd sizes, against the
tools' code re-stated here in Pillow."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import DATA, SHARED
from fidrs import _fidrs
from PIL import Image

CLIP = SHARED / "conformance" / "clip"
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)  # OpenAI CLIP (clean-fid's CLIP_fx, scenic's normalize_image)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def clean_fid_clip(pixels: np.ndarray, size: int = 224) -> np.ndarray:
    """clean-fid's `img_preprocess_clip`: torchvision `Resize(size, BICUBIC)` (shorter side to `size`, the longer
    `int(size·long/short)`, `_compute_resized_output_size`) then `CenterCrop(size)` (offsets
    `int(round((len − size)/2))`, Python's round), on `Image.fromarray(...).convert("RGB")`."""
    image = Image.fromarray(pixels).convert("RGB")
    w, h = image.size
    new = (size, int(size * h / w)) if w <= h else (int(size * w / h), size)
    if new != (w, h):
        image = image.resize(new, Image.BICUBIC)
    top, left = int(round((new[1] - size) / 2.0)), int(round((new[0] - size) / 2.0))
    return np.asarray(image.crop((left, top, left + size, top + size))).clip(0, 255).astype(np.uint8)


def cmmd(pixels: np.ndarray, size: int = 336) -> np.ndarray:
    """google-research/cmmd `io_util._center_crop_and_resize` then `np.asarray(im).astype(np.float32)`."""
    image = Image.fromarray(pixels)
    w, h = image.size
    side = min(w, h)
    top, left = (h - side) // 2, (w - side) // 2
    image = image.crop((left, top, left + side, top + side))
    return np.asarray(image.resize((size, size), resample=Image.BICUBIC)).astype(np.float32)


def raw(size: int, fit: str) -> _fidrs.Preprocessing:
    """The resized values themselves (0..255): unit never, mean 0, std 1."""
    return _fidrs.Preprocessing(size=size, resize="pil-bicubic-u8", fit=fit)


def ours(pixels: np.ndarray, p: _fidrs.Preprocessing) -> np.ndarray:
    """fidrs' network input of one H×W×3 image, as H×W×3."""
    return _fidrs.preprocess_arrays(np.ascontiguousarray(pixels[None]), p)[0].transpose(1, 2, 0)


def photo_like(h: int, w: int, seed: int) -> np.ndarray:
    """Noise over a gradient with a saturated block: edges where Pillow's clipping between its passes matters."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 255, w)[None, :, None] * np.linspace(0.2, 1, h)[:, None, None]
    pixels = np.clip(ramp + rng.normal(0, 40, (h, w, 3)), 0, 255).astype(np.uint8)
    pixels[h // 3 : h // 2 + 1, w // 4 : w // 2 + 1] = (255, 0, 255)
    return pixels


@pytest.fixture(scope="module")
def debug_inputs():
    if not (CLIP / "features_clipfid.npz").is_file():
        pytest.skip(f"shared conformance data not found at {SHARED} (set FIDRS_SHARED)")
    clipfid, cmmd_ref = np.load(CLIP / "features_clipfid.npz"), np.load(CLIP / "features_cmmd.npz")
    return {k: clipfid[k] for k in clipfid.files}, {k: cmmd_ref[k] for k in cmmd_ref.files}


def test_center_crop_equals_clean_fids_clip_inputs(debug_inputs):
    """`debug_resized_uint8`: clean-fid's resized and cropped CLIP-FID pixels, compared exactly."""
    clipfid, _ = debug_inputs
    files = [str(DATA / f) for f in clipfid["debug_files"]]
    got, ok, failed, _ = _fidrs.load_images(files, raw(224, "center-crop"))
    assert failed == [] and ok == [0, 1]
    np.testing.assert_array_equal(got.transpose(0, 2, 3, 1), clipfid["debug_resized_uint8"].astype(np.float32))


def test_square_crop_equals_cmmds_inputs(debug_inputs):
    """`debug_resized_float`: the official CMMD reader's 336² float32 pixels (0..255), compared exactly."""
    _, cmmd_ref = debug_inputs
    files = [str(DATA / f) for f in cmmd_ref["debug_files"]]
    got, ok, failed, _ = _fidrs.load_images(files, raw(336, "square-crop"))
    assert failed == [] and ok == [0, 1]
    np.testing.assert_array_equal(got.transpose(0, 2, 3, 1), cmmd_ref["debug_resized_float"])


# (height, width): non-square sizes in both orientations whose excess over the crop is odd, so that Python's
# round-half-even, floor and round-half-up give different offsets ((224, 487): CenterCrop 132, floor 131; (140, 307):
# resized to 224×491, 134 vs 133; (224, 229): 2 vs half-up 3; square crops of (226, 333), (140, 307): floor 53 and
# 83 vs round 54 and 84), one-pixel-wide and -high images, already-square ones (at, above and below the target),
# and images smaller than the target on one or both sides.
SHAPES = [
    (313, 487),
    (487, 313),
    (224, 487),
    (487, 224),
    (140, 307),
    (307, 140),
    (224, 229),
    (1, 37),
    (37, 1),
    (300, 300),
    (224, 224),
    (336, 336),
    (50, 80),
    (80, 50),
    (226, 333),
    (225, 900),
]


@pytest.mark.parametrize("shape", SHAPES)
def test_center_crop_is_clean_fids_img_preprocess_clip(shape):
    pixels = photo_like(*shape, seed=shape[0] * 1000 + shape[1])
    np.testing.assert_array_equal(ours(pixels, raw(224, "center-crop")), clean_fid_clip(pixels).astype(np.float32))


@pytest.mark.parametrize("shape", SHAPES)
def test_square_crop_is_cmmds_center_crop_and_resize(shape):
    pixels = photo_like(*shape, seed=shape[1] * 1000 + shape[0])
    np.testing.assert_array_equal(ours(pixels, raw(336, "square-crop")), cmmd(pixels))


def test_square_crop_reads_only_the_square():
    """Pillow's `crop` then `resize` never reads outside the square (a `resize(box=...)` would, through the filter's
    support): pixels outside it do not change the output."""
    pixels = photo_like(120, 200, seed=7)  # the square is columns 40..160
    changed = pixels.copy()
    changed[:, :40] = 0
    changed[:, 160:] = 255
    p = raw(64, "square-crop")
    np.testing.assert_array_equal(ours(pixels, p), ours(changed, p))
    assert not np.array_equal(ours(pixels, p), ours(np.roll(pixels, 1, axis=1), p))


@pytest.mark.parametrize(
    ("fit", "size", "reference"), [("center-crop", 224, "clean-fid"), ("square-crop", 336, "cmmd")]
)
def test_clip_normalisation_is_the_official_tools_float32_ops(fit, size, reference):
    """The network input, unit after-resize with CLIP's mean/std, is the official float32 arithmetic exactly:
    clean-fid: `ToTensor()(u8)·255` (k/255·255, which is k again for every byte), `/255`, `Normalize`; CMMD:
    `x / 255.0`, then `(x − mean) / std`. Both are (k/255 − mean)/std in f32, as fidrs computes it."""
    pixels = photo_like(313, 487, seed=3)
    p = _fidrs.Preprocessing(
        size=size, resize="pil-bicubic-u8", fit=fit, unit="after-resize", mean=CLIP_MEAN, std=CLIP_STD
    )
    resized = (clean_fid_clip(pixels) if reference == "clean-fid" else cmmd(pixels)).astype(np.float32)
    if reference == "clean-fid":
        resized = resized / np.float32(255) * np.float32(255)  # ToTensor, then clean-fid's `* 255`
    expected = (resized / np.float32(255) - np.float32(CLIP_MEAN)) / np.float32(CLIP_STD)
    assert expected.dtype == np.float32
    np.testing.assert_array_equal(ours(pixels, p), expected)


def test_fit_names_are_the_native_choices():
    assert {"center-crop", "square-crop"} <= set(_fidrs.FITS)
    with pytest.raises(ValueError, match="unknown fit"):
        _fidrs.Preprocessing(size=224, resize="pil-bicubic-u8", fit="centre-square")
