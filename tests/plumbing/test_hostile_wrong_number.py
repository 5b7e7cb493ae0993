"""Class 3 of the hardening issue: no silently wrong number. Truncated files are refused exactly where Pillow
refuses them; statistics that are no covariance, stale ONNX graphs, duplicate zip names, cache state and
malformed options can no longer turn into a FID with exit 0."""

from __future__ import annotations

import io
import json
import math
import zipfile
from pathlib import Path

import fidrs
import numpy as np
import pytest
from cli_in_process import run_cli_here
from conftest import DATA, require_shared, write_images
from fidrs import _fidrs
from PIL import Image


def _tiny(tiny) -> tuple[str, ...]:
    """The options naming the tiny test backbone (tests/tiny_backbone.py) and its checkpoint."""
    return ("--backbone", "tiny", "--weights", tiny[1])


# ---------- truncated files: the same verdict as Image.open(p).convert("RGB") ----------


def _encodings() -> dict[str, bytes]:
    photos = sorted((DATA / "training").glob("*/*.jpg"))[::700][:6] if DATA.is_dir() else []
    out = {p.name: p.read_bytes() for p in photos}
    rng = np.random.default_rng(5)
    image = Image.fromarray(rng.integers(0, 256, (64, 80, 3), dtype=np.uint8))
    if photos:
        image = Image.open(photos[0]).convert("RGB")

    def enc(im, fmt, **kw):
        b = io.BytesIO()
        im.save(b, fmt, **kw)
        return b.getvalue()

    out.update(
        {
            "baseline.jpg": enc(image, "JPEG", quality=90),
            "progressive.jpg": enc(image, "JPEG", progressive=True, quality=90),
            "rgb.png": enc(image, "PNG"),
            "rgba.png": enc(image.convert("RGBA"), "PNG"),
            "palette.png": enc(image.convert("P"), "PNG"),
            "grey.png": enc(image.convert("L"), "PNG"),
            "lossless.webp": enc(image, "WEBP", lossless=True),
            "lossy.webp": enc(image, "WEBP", quality=80),
            "x.bmp": enc(image, "BMP"),
            "x.tif": enc(image, "TIFF"),
            "lzw.tif": enc(image, "TIFF", compression="tiff_lzw"),
            "x.gif": enc(image, "GIF"),
        }
    )
    return out


# Where fidrs is stricter than Pillow (refuses, never accepts a wrong image): Pillow needs neither a PNG's
# IEND chunk (12 bytes) nor the CRC of its last data chunk (4), nor a GIF's trailer (2); the image crate
# does. Nothing else may differ.
_STRICTER_TAIL = {".png": 16, ".gif": 2}


def test_cut_files_get_pillows_verdict_in_every_format(tmp_path):
    rng = np.random.default_rng(0)
    compared = 0
    for name, data in _encodings().items():
        n = len(data)
        cuts = {1, 2, 8, 16, 64, n // 4, n // 2, 3 * n // 4, n - 16, n - 8, n - 4, n - 2, n - 1}
        cuts |= set(int(c) for c in rng.integers(1, n, 20))
        for cut in sorted(c for c in cuts if 0 < c < n):
            path = tmp_path / f"cut{cut}-{name}"
            path.write_bytes(data[:cut])
            try:
                with Image.open(path) as im:
                    im.convert("RGB")
                pillow_ok = True
            except Exception:  # noqa: BLE001 - any refusal by Pillow
                pillow_ok = False
            try:
                _fidrs.decode_image(str(path))
                ours_ok = True
            except fidrs.DecodeError:
                ours_ok = False
            compared += 1
            if not pillow_ok:
                assert not ours_ok, f"{name} cut at {cut}/{n}: Pillow refuses it, fidrs decoded it"
            elif not ours_ok:
                suffix = Path(name).suffix
                assert n - cut <= _STRICTER_TAIL.get(suffix, 0), f"{name} cut at {cut}/{n}: only fidrs refuses"
    assert compared > 300


def test_truncated_jpeg_is_refused_with_pillows_reason(tmp_path):
    photo = sorted((DATA / "training").glob("*/*.jpg"))[0]
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(photo.read_bytes()[: photo.stat().st_size // 2])
    with pytest.raises(fidrs.DecodeError, match="image file is truncated"):
        _fidrs.decode_image(str(cut))


def test_truncated_photo_in_a_folder_fails_the_gate(tmp_path, tiny, capsys):
    require_shared()  # real photos
    folder = tmp_path / "imgs"
    folder.mkdir()
    photos = sorted((DATA / "training" / "apple_red_1").glob("*.jpg"))[:4]
    for p in photos:
        (folder / p.name).write_bytes(p.read_bytes())
    (folder / photos[0].name).write_bytes(photos[0].read_bytes()[:1500])
    out = run_cli_here(capsys, "score", str(folder), str(folder), *_tiny(tiny), "--max-fid", "1e9")
    assert out.returncode == 2, out.stdout
    assert f"{folder / photos[0].name}: image file is truncated" in out.stderr
    assert out.stdout == ""


# ---------- statistics that are no covariance ----------


def _save(path, **arrays):
    np.savez(path, **arrays)
    return str(path)


@pytest.fixture()
def good_stats(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((50, 6))
    moments = fidrs.Moments(6)
    moments.update(x.astype(np.float32))
    s = fidrs.Stats.from_moments(moments, "pytorch-fid", "0" * 64, None)  # 6-d: of no backbone fidrs has
    s.save(tmp_path / "good.npz")
    return tmp_path / "good.npz"


@pytest.mark.parametrize(
    "edit, reason",
    [
        (lambda d: d.update(sigma=-np.eye(6)), "not positive semi-definite"),
        (lambda d: d.update(sigma=d["sigma"] + np.triu(np.ones((6, 6)), 1)), "not symmetric"),
        (lambda d: d.update(mu=d["mu"] + 1.0), "disagree with mu/sigma"),
        (lambda d: d.update(n=np.int64(d["n"]) + 7), "disagree with mu/sigma"),
        (lambda d: d.update(n=np.int64(-5)), "not a sample count"),
        (lambda d: d.update(sigma=np.full((6, 6), np.nan)), "NaN"),
        (lambda d: d.update(sigma=d["sigma"][:5, :5]), "do not fit together"),
    ],
    ids=["negative-definite", "asymmetric", "mu-edited", "n-edited", "negative-n", "nan", "shape"],
)
def test_statistics_that_are_no_covariance_are_refused(tmp_path, good_stats, edit, reason, capsys):
    data = dict(np.load(good_stats))
    edit(data)
    bad = _save(tmp_path / "bad.npz", **data)
    for command in (["score", bad, str(good_stats)], ["merge", bad, str(good_stats), "-o", str(tmp_path / "m.npz")]):
        out = run_cli_here(capsys, *command)
        assert out.returncode == 2, out
        assert bad in out.stderr and reason in out.stderr
    assert not (tmp_path / "m.npz").exists()


def test_round_off_in_genuine_statistics_is_accepted(tmp_path, capsys):
    """pytorch-fid's own recipe (np.cov of float32 features), rank deficient (n < d), stored as float32 too."""
    rng = np.random.default_rng(2)
    feats = rng.standard_normal((40, 64)).astype(np.float32)
    mu, sigma = feats.mean(0), np.cov(feats, rowvar=False)
    a = _save(tmp_path / "a.npz", mu=mu, sigma=sigma)
    b = _save(tmp_path / "b.npz", mu=mu.astype(np.float32), sigma=sigma.astype(np.float32))
    out = run_cli_here(capsys, "score", a, b, "--json")
    assert out.returncode == 0, out.stderr
    assert abs(json.loads(out.stdout)["fid"]) < 1e-3


def _hostile_mean_pairs(tmp_path) -> dict[str, tuple[str, str]]:
    """pytorch-fid files whose huge mean once excused a Σ that is no covariance (the tolerance scaled with μ²):
    each gave a FID that passed `--max-fid 0.5` (−16, −40, 0, −2.3)."""
    big, eye = np.full(4, 1e8), np.eye(4)
    asymmetric = eye.copy()
    asymmetric[0, 1], asymmetric[1, 0] = 3.0, -3.0
    files = {
        "negative": _save(tmp_path / "neg.npz", mu=big, sigma=-5 * eye),
        "positive": _save(tmp_path / "pos.npz", mu=big, sigma=eye),
        "asymmetric": _save(tmp_path / "asym.npz", mu=big, sigma=asymmetric),
        "f32-negative": _save(
            tmp_path / "f32neg.npz", mu=np.full(4, 100, np.float32), sigma=(-0.05 * eye).astype(np.float32)
        ),
        "f32-positive": _save(
            tmp_path / "f32pos.npz", mu=np.full(4, 100, np.float32), sigma=(0.05 * eye).astype(np.float32)
        ),
    }
    return {
        "negative vs positive": (files["negative"], files["positive"], "not positive semi-definite"),
        "negative twice": (files["negative"], files["negative"], "not positive semi-definite"),
        "asymmetric": (files["asymmetric"], files["positive"], "not symmetric"),
        "float32 negative": (files["f32-negative"], files["f32-positive"], "not positive semi-definite"),
    }


def test_a_huge_mean_excuses_no_covariance_that_is_not_one(tmp_path, capsys):
    for name, (a, b, reason) in _hostile_mean_pairs(tmp_path).items():
        out = run_cli_here(capsys, "score", a, b, "--max-fid", "0.5")
        assert out.returncode == 2, (name, out)
        assert a in out.stderr and reason in out.stderr, (name, out.stderr)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_feature_files_with_a_large_common_offset_give_np_cov_s_distance(tmp_path, capsys, dtype):
    """Rows 1e8 + N(0, 1) (1e3 + N(0, 1e-4) in float32): one-pass moments lost every digit of Σ (FID −0.23
    where np.cov's gives 0.064, and a PASS); two passes give np.cov's statistics, and so its distance."""
    from scipy import linalg

    rng = np.random.default_rng(0)
    offset, scale = (1e8, 1.0) if dtype == np.float64 else (1e3, 1e-2)
    x = (offset + scale * rng.standard_normal((1000, 4))).astype(dtype)
    y = (offset + 1.1 * scale * rng.standard_normal((1000, 4))).astype(dtype)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    s1, s2 = np.cov(x64, rowvar=False), np.cov(y64, rowvar=False)
    diff = x64.mean(0) - y64.mean(0)
    expected = float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * np.trace(linalg.sqrtm(s1 @ s2).real))
    out = run_cli_here(capsys, "score", str(tmp_path / "x.npy"), str(tmp_path / "y.npy"), "--json")
    assert out.returncode == 0, out.stderr
    # Both sides compute μ and Σ in two float64 passes (relative round-off ~n·ε·(|x − μ|/σ)² ≈ 1e-12 of Σ, the
    # centred float32 rows 6e-8 of their own size); the distance of d = 4 is exact to ~1e-15 of Σ's scale.
    # 1e-6 relative bounds both with room, and is 10⁵ below what one pass got wrong.
    assert abs(json.loads(out.stdout)["fid"] - expected) <= 1e-6 * abs(expected), (out.stdout, expected)


def test_two_archives_end_to_end_are_refused_not_read_as_the_second(tmp_path, capsys):
    """zipfile (and numpy) read such a file as its last archive: the first one's statistics were silently not
    the ones compared."""
    first = _save(tmp_path / "first.npz", mu=np.zeros(3), sigma=np.eye(3))
    second = _save(tmp_path / "second.npz", mu=np.ones(3), sigma=2 * np.eye(3))
    both = tmp_path / "both.npz"
    both.write_bytes(Path(first).read_bytes() + Path(second).read_bytes())
    out = run_cli_here(capsys, "score", str(both), first)
    assert out.returncode == 2 and str(both) in out.stderr and "before its archive's first member" in out.stderr


def test_pytorch_fid_s_method_failing_is_bad_input_with_the_way_out(tmp_path, capsys):
    """At covariances of 1e280, Σ₁Σ₂ overflows in SciPy's path (pytorch-fid's): exit 2 naming the exact method,
    which computes the distance (0 for a file against itself)."""
    huge = _save(tmp_path / "huge.npz", mu=np.zeros(3), sigma=1e280 * np.eye(3))
    out = run_cli_here(capsys, "score", huge, huge, "--method", "scipy")
    assert out.returncode == 2 and "pytorch-fid's method" in out.stderr and "method='eigh'" in out.stderr
    exact = run_cli_here(capsys, "score", huge, huge, "--json")
    assert exact.returncode == 0 and json.loads(exact.stdout)["fid"] == 0.0


# ---------- the cached ONNX graph ----------


def test_truncated_or_foreign_cached_graph_is_rebuilt(tmp_path, monkeypatch, tiny):
    from fidrs.weights import resolve_model

    backbone, weights = tiny
    monkeypatch.setenv("FIDRS_CACHE", str(tmp_path / "cache"))
    model = resolve_model(backbone, weights)
    original = model.onnx_path.read_bytes()
    for damage in (original[: len(original) // 2], b"not an onnx graph", original[:-1] + b"\0"):
        model.onnx_path.write_bytes(damage)
        again = resolve_model(backbone, weights)
        assert again.onnx_path.read_bytes() == original


# ---------- zip archives ----------


def test_two_zip_members_with_one_name_are_two_images(tmp_path):
    rng = np.random.default_rng(3)
    archive = tmp_path / "dup.zip"
    arrays = [rng.integers(0, 256, (20, 20, 3), dtype=np.uint8) for _ in range(2)]
    with zipfile.ZipFile(archive, "w") as z, pytest.warns(UserWarning, match="Duplicate name"):
        for a in arrays:
            b = io.BytesIO()
            Image.fromarray(a).save(b, "PNG")
            z.writestr("same.png", b.getvalue())
    from fidrs.sources import resolve as resolve_source

    source = resolve_source(str(archive))
    assert len(source) == 2 and source.labels == [f"{archive}:same.png", f"{archive}:same.png#2"]
    blobs = source.read_blobs(0, 2, max_pixels=1 << 20)
    decoded = [np.asarray(Image.open(io.BytesIO(b)).convert("RGB")) for b in blobs]
    assert all(np.array_equal(d, a) for d, a in zip(decoded, arrays))


# ---------- the exit code never depends on cache state ----------


def test_max_pixels_applies_to_cached_images(tmp_path, tiny, capsys, monkeypatch):
    folder = write_images(tmp_path / "imgs", 3, size=(40, 30))
    monkeypatch.setenv("FIDRS_CACHE", str(tmp_path / "cache"))
    first = run_cli_here(capsys, "score", str(folder), str(folder), *_tiny(tiny))
    assert first.returncode == 0, first.stderr  # every image is now cached
    for attempt in range(2):  # cold and warm: the same refusal
        out = run_cli_here(capsys, "score", str(folder), str(folder), *_tiny(tiny), "--max-pixels", "1000")
        assert out.returncode == 2, (attempt, out.stderr)
        assert "exceeds the limit of 1000" in out.stderr and str(folder / "00.png") in out.stderr


# ---------- options and JSON ----------


@pytest.mark.parametrize(
    "args",
    [
        ["--max-fid", "nan"],
        ["--max-fid", "inf"],
        ["--max-fid", "abc"],
        ["--max-fid", "-1"],
        ["--batch-size", "0"],
        ["--max-pixels", "0"],
        ["--bootstrap", "0"],
    ],
)
def test_meaningless_score_options_are_usage_errors(tmp_path, args, capsys):
    a = _save(tmp_path / "a.npz", mu=np.zeros(2), sigma=np.eye(2))
    out = run_cli_here(capsys, "score", a, a, *args)
    assert out.returncode == 2 and args[0] in out.stderr, out


@pytest.mark.parametrize(
    "command",
    [
        ["is", "X", "--splits", "0"],
        ["pr", "X", "X", "-k", "0"],
        ["kid", "X", "X", "--subsets", "0"],
        ["kid", "X", "X", "--subset-size", "1"],
        ["memorization", "X", "X", "--threshold", "nan"],
    ],
)
def test_meaningless_metric_options_are_usage_errors(command, capsys):
    out = run_cli_here(capsys, *command)
    assert out.returncode == 2 and f"argument {command[-2]}: expected" in out.stderr, out


def test_json_is_strict():
    from fidrs.strictjson import dumps

    text = dumps({"a": math.nan, "b": [math.inf, 1.5], "c": {"d": -math.inf}})
    assert json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard constant {c}")) == {
        "a": None,
        "b": [None, 1.5],
        "c": {"d": None},
    }
