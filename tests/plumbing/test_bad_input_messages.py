"""Issue 29's Moderate findings on the Python side: each was an exit 3 with a traceback, a NaN/inf returned by the
API, or a message naming no file, class or variable. Each is now exit 2 (or InvalidInputError) naming the thing,
or — where the input is legitimate — a result (a class name with `$` in it, a float16 statistics file, a t-SNE of
few images). Runs on the tiny test backbone (tests/tiny_backbone.py), in process, unless a test says otherwise."""

from __future__ import annotations

import importlib
import json
import shutil
import struct
import zipfile

import fidrs
import numpy as np
import pytest
from conftest import SHARED, write_images
from fidrs.display import fixed
from fidrs.errors import EXIT_BAD_INPUT, EXIT_OK, NestedArchiveWarning

cli = importlib.import_module("fidrs.cli.main")
DINOV2_CHECKPOINT = SHARED / "conformance" / "dinov2" / "random_dinov2_vits14.pth"


def common(checkpoint: str) -> list[str]:
    return ["--backbone", "tiny", "--weights", checkpoint, "--no-progress"]


# --- safetensors with dtypes numpy has not -------------------------------------------------------------------


def _safetensors(path, dtype: str, itemsize: int, count: int = 4):
    """One tensor of `count` elements of `dtype` (each `itemsize` bytes), as safetensors lays it out."""
    nbytes = count * itemsize
    entry = {"dtype": dtype, "shape": [1, 1, count], "data_offsets": [0, nbytes]}
    header = json.dumps({"embeddings.cls_token": entry}).encode()
    header += b" " * (-len(header) % 8)
    path.write_bytes(struct.pack("<Q", len(header)) + header + b"\x3c" * nbytes)
    return path


@pytest.mark.parametrize(("dtype", "itemsize"), [("BF16", 2), ("F8_E4M3", 1), ("F8_E5M2", 1)])
def test_a_safetensors_checkpoint_of_bf16_or_f8_tensors_is_refused_by_name(dtype, itemsize, tmp_path, capsys):
    """It was a KeyError (numpy has no bfloat16) and exit 3; the official checkpoints are float32, and the
    structure check refuses float16 by name already."""
    path = _safetensors(tmp_path / "model.safetensors", dtype, itemsize)
    images = write_images(tmp_path / "imgs", 3)
    args = ["stats", str(images), "-o", str(tmp_path / "s.npz"), "--backbone", "dinov2-vits14", "--weights", str(path)]
    assert cli.main([*args, "--no-progress"]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err.startswith(f"fidrs: error: {path}: tensor 'embeddings.cls_token' is {dtype}; fidrs reads float32"), err


# --- the API refuses what the CLI refuses -------------------------------------------------------------------


@pytest.fixture()
def pair(tmp_path):
    return str(write_images(tmp_path / "a", 10, seed=1)), str(write_images(tmp_path / "b", 12, seed=2))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda a, b, w: fidrs.kid(a, b, subsets=0, **w), r"^subsets must be an integer >= 1, got 0"),
        (lambda a, b, w: fidrs.kid(a, b, subset_size=1, **w), r"^subset_size must be an integer >= 2, got 1"),
        (lambda a, b, w: fidrs.inception_score(a, splits=0, **w), r"^splits must be an integer >= 1, got 0"),
        (lambda a, b, w: fidrs.precision_recall(a, b, k=0, **w), r"^k must be an integer >= 1, got 0"),
        (lambda a, b, w: fidrs.precision_recall(a, b, k=-1, **w), r"^k must be an integer >= 1, got -1"),
        (lambda a, b, w: fidrs.precision_recall(a, b, k=2.5, **w), r"^k must be an integer >= 1, got 2.5"),
    ],
    ids=["kid-subsets-0", "kid-subset-size-1", "is-splits-0", "pr-k-0", "pr-k-minus-1", "pr-k-float"],
)
def test_the_api_refuses_meaningless_metric_parameters_before_reading_images(call, message, pair, tiny, monkeypatch):
    """The metrics' parameter declarations (metrics/base.py `integer`) are the one check, for the CLI and the API:
    these returned NaN or inf through the API before the restructure. No network is loaded to refuse them."""
    _, checkpoint = tiny
    from fidrs import feature_pass

    monkeypatch.setattr(feature_pass, "FeaturePass", None)  # a refusal after loading the network would fail here
    a, b = pair
    with pytest.raises(fidrs.InvalidInputError, match=message):
        call(a, b, {"backbone": "tiny", "weights": checkpoint})


@pytest.mark.parametrize(
    ("keywords", "message"),
    [
        ({"max_iterations": 0}, r"^max_iterations must be an integer >= 1, got 0"),
        ({"max_iterations": -3}, r"^max_iterations must be an integer >= 1, got -3"),
        ({"max_iterations": 2.0}, r"^max_iterations must be an integer >= 1, got 2.0"),
        ({"tolerance": 0.0}, r"^tolerance must be a number in \(0, 1\), got 0.0"),
        ({"tolerance": float("nan")}, r"^tolerance must be a number in \(0, 1\), got nan"),
    ],
)
def test_newton_schulz_needs_at_least_one_iteration_and_a_real_tolerance(keywords, message):
    """max_iterations=0 returned its starting guess, 17.8 for an exact 8.0, with only a warning."""
    mu, sigma = np.zeros(4), np.eye(4)
    with pytest.raises(fidrs.InvalidInputError, match=message):
        fidrs.frechet_distance(mu, sigma, mu + np.sqrt(2), sigma, method="newton-schulz", **keywords)
    # The exact value for the control: ‖μ₁ − μ₂‖² = 4 · 2 = 8, equal covariances add nothing; eigh and
    # Newton–Schulz both reach it to round-off (a few ulps of 8).
    assert fidrs.frechet_distance(mu, sigma, mu + np.sqrt(2), sigma, method="newton-schulz") == pytest.approx(8, 1e-12)


# --- the report ------------------------------------------------------------------------------------------------


def test_a_class_name_that_looks_like_matplotlib_math_is_drawn_as_text(tiny, tmp_path, capsys):
    """`$\\foo{$` aborted the report (mathtext's ParseFatalException) after the whole feature pass."""
    _, checkpoint = tiny
    root = tmp_path / "dataset"
    names = ["reference", "$\\foo{$", "$x^2$", "_under"]
    for i, name in enumerate(names):
        write_images(root / name, 3, seed=i)
    out = tmp_path / "report"
    assert cli.main(["report", str(root), "--reference", "reference", "-o", str(out), *common(checkpoint)]) == EXIT_OK
    report = json.loads((out / "report.json").read_text())
    assert sorted(report["classes"]) == sorted(names)
    page = (out / "report.html").read_text()
    assert "<td>$\\foo{$</td>" in page and "<td>$x^2$</td>" in page
    assert all((out / name).stat().st_size > 1000 for name in ("fid_vs_reference.png", "tsne.png"))
    capsys.readouterr()


def test_a_class_of_one_image_is_named_before_the_feature_pass(tiny, tmp_path, monkeypatch, capsys):
    """It was "1 sample(s): the covariance needs at least 2", naming no class, after every class was computed."""
    _, checkpoint = tiny
    from fidrs import feature_pass

    root = tmp_path / "dataset"
    write_images(root / "reference", 8)
    write_images(root / "lonely", 1, seed=3)
    monkeypatch.setattr(feature_pass, "FeaturePass", None)  # refused before the network is loaded
    out = tmp_path / "report"
    assert cli.main(["report", str(root), "--reference", "reference", "-o", str(out), *common(checkpoint)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"fidrs: error: class 'lonely' ({root / 'lonely'}) has 1 usable image(s); a report needs")
    assert not out.exists()


def test_a_report_of_few_images_lowers_the_tsne_perplexity_and_records_it(tiny, tmp_path, capsys):
    """Six images in all: scikit-learn's "perplexity (30) must be less than n_samples (6)" named no parameter
    (exit 2 after the feature pass). The perplexity becomes (n − 1) / 3 = 5/3, recorded in report.json."""
    _, checkpoint = tiny
    root = tmp_path / "dataset"
    write_images(root / "reference", 3)
    write_images(root / "other", 3, seed=1)
    out = tmp_path / "report"
    assert cli.main(["report", str(root), "--reference", "reference", "-o", str(out), *common(checkpoint)]) == EXIT_OK
    assert json.loads((out / "report.json").read_text())["tsne"] == {"perplexity": 5 / 3, "seed": 0}
    capsys.readouterr()


# --- messages that name the thing ---------------------------------------------------------------------------


def _stats_file(path, dtype=np.float64, seed=0):
    x = np.random.default_rng(seed).normal(size=(60, 4))
    np.savez(path, mu=x.mean(0).astype(dtype), sigma=np.cov(x, rowvar=False).astype(dtype))
    return str(path)


def test_a_float16_statistics_file_is_scored_as_its_float64_upcast(tmp_path, capsys):
    """pytorch-fid upcasts such a file in NumPy; fidrs loads it as float64 (exactly: every float16 is a float64),
    so the score is that of the upcast arrays, to the bit."""
    half = _stats_file(tmp_path / "half.npz", np.float16)
    other = _stats_file(tmp_path / "other.npz", seed=1)
    with np.load(half) as h, np.load(other) as o:
        expected = fidrs.frechet_distance(
            h["mu"].astype(np.float64), h["sigma"].astype(np.float64), o["mu"], o["sigma"]
        )
    assert cli.main(["score", half, other, "--json"]) == EXIT_OK
    assert json.loads(capsys.readouterr().out)["fid"] == expected


def test_a_float16_sigma_that_is_no_covariance_names_the_file(tmp_path, capsys):
    bad = tmp_path / "bad.npz"
    np.savez(bad, mu=np.zeros(3, np.float16), sigma=-np.eye(3, dtype=np.float16))
    assert cli.main(["score", str(bad), _stats_file(tmp_path / "o.npz", seed=1)]) == EXIT_BAD_INPUT
    assert capsys.readouterr().err.startswith(f"fidrs: error: {bad}: sigma is not positive semi-definite")


@pytest.mark.parametrize("shape", [(0, 8, 8, 3), (0,), (3, 8, 8)])
def test_an_adm_batch_with_an_empty_or_malformed_arr_0_names_the_file(shape, tmp_path, capsys):
    path = tmp_path / "batch.npz"
    np.savez(path, arr_0=np.zeros(shape, np.uint8))
    assert cli.main(["score", str(path), _stats_file(tmp_path / "o.npz")]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err.startswith(f"fidrs: error: {path}: arr_0 "), err


def test_an_unknown_url_scheme_names_the_url(tmp_path, capsys):
    assert cli.main(["score", "ftp://example.invalid/a.npz", _stats_file(tmp_path / "o.npz")]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err.startswith("fidrs: error: ftp://example.invalid/a.npz: URLs of scheme 'ftp' are not read"), err


# --- nested archives ----------------------------------------------------------------------------------------


def test_zip_archives_inside_an_input_are_named_not_skipped_silently(tiny, tmp_path, capsys):
    _, checkpoint = tiny
    images = write_images(tmp_path / "imgs", 6)
    inner = tmp_path / "inner.zip"
    with zipfile.ZipFile(inner, "w") as z:
        z.write(images / "00.png", "hidden.png")
    outer = tmp_path / "outer.zip"
    with zipfile.ZipFile(outer, "w") as z:
        for p in sorted(images.iterdir()):
            z.write(p, p.name)
        z.write(inner, "sub/inner.zip")
    shutil.copy(inner, images / "more.zip")
    for source, shown in ((outer, f"{outer}:sub/inner.zip"), (images, f"{images / 'more.zip'}")):
        expected = rf"^{source}: 1 zip archive\(s\) inside it not opened, their images not counted .*: {shown}$"
        with pytest.warns(NestedArchiveWarning, match=expected):  # the CLI prints it as `fidrs: warning: …`
            assert cli.main(["stats", str(source), "-o", str(tmp_path / "s.npz"), *common(checkpoint)]) == EXIT_OK
        assert fidrs.Stats.load(tmp_path / "s.npz").n == 6  # the six images, not the archive's seventh
    only = tmp_path / "only.zip"
    with zipfile.ZipFile(only, "w") as z:
        z.write(inner, "inner.zip")
    assert cli.main(["stats", str(only), "-o", str(tmp_path / "s.npz"), *common(checkpoint)]) == EXIT_BAD_INPUT
    assert "holds no image files (only zip archives, which are not opened: inner.zip)" in capsys.readouterr().err


# --- one network, however its tensors are stored --------------------------------------------------------------


@pytest.mark.slow  # the shared ViT-S/14 built and run from two files
def test_the_same_dinov2_tensors_as_pth_and_safetensors_are_the_same_weights(tmp_path, monkeypatch, capsys):
    """Two files, two sha256s, one set of tensors: they build one graph (one identity), so statistics of the two
    are comparable (they were refused as "different weights") and the feature cache serves one to the other."""
    if not DINOV2_CHECKPOINT.is_file():
        pytest.skip(f"shared DINOv2 checkpoint not found at {DINOV2_CHECKPOINT}")
    from safetensors.numpy import save_file
    from test_dinov2_weights import _to_hf

    monkeypatch.setenv("FIDRS_CACHE", str(tmp_path / "cache"))
    backbone = fidrs.backbones.get("dinov2-vits14")
    converted = tmp_path / "model.safetensors"
    save_file(_to_hf(dict(backbone.load_state(DINOV2_CHECKPOINT))), str(converted))
    images = str(write_images(tmp_path / "imgs", 4))
    paths = {}
    for name, weights in (("pth", DINOV2_CHECKPOINT), ("safetensors", converted)):
        paths[name] = str(tmp_path / f"{name}.npz")
        args = ["stats", images, "-o", paths[name], "--backbone", "dinov2-vits14", "--weights", str(weights)]
        assert cli.main([*args, "--no-progress"]) == EXIT_OK
    capsys.readouterr()
    pth, safetensors = fidrs.Stats.load(paths["pth"]), fidrs.Stats.load(paths["safetensors"])
    assert pth.weights_sha256 != safetensors.weights_sha256 and pth.graph_sha256 == safetensors.graph_sha256
    np.testing.assert_array_equal(pth.mu, safetensors.mu)  # the cached features of the first, bit for bit
    assert cli.main(["score", paths["pth"], paths["safetensors"], "--json"]) == EXIT_OK
    assert json.loads(capsys.readouterr().out)["fid"] == pytest.approx(0, abs=1e-9)
    details = fidrs.score_details(images, images, backbone="dinov2-vits14", weights=str(converted))
    assert details["cache_hits"] == 8  # both sides from the cache the .pth run filled


# --- "-0.000000" --------------------------------------------------------------------------------------------


def test_identical_sets_print_zero_without_a_minus_sign(tmp_path, capsys):
    a = _stats_file(tmp_path / "a.npz")
    value = fidrs.score(a, a)
    assert abs(value) < 1e-12  # round-off: the exact Fréchet distance of a set with itself is 0
    assert cli.main(["score", a, a]) == EXIT_OK
    assert capsys.readouterr().out == "0.000000\n"
    assert cli.main(["score", a, a, "--json"]) == EXIT_OK
    assert json.loads(capsys.readouterr().out)["fid"] == value  # the value itself is never changed
    assert (fixed(-1e-12), fixed(-0.0), fixed(-0.0004, 3), fixed(-0.001), fixed(2.5, 2)) == (
        "0.000000",
        "0.000000",
        "0.000",
        "-0.001000",
        "2.50",
    )


# --- the Fréchet distance's arguments, and inputs no source takes ----------------------------------------------

MU, SIGMA = np.zeros(8), np.eye(8)


@pytest.mark.parametrize(
    "args, message",
    [
        ((MU[None], SIGMA, MU, SIGMA), r"mu1 has shape \(1, 8\); it must have shape \(d,\)"),
        ((MU, SIGMA, MU[:, None], SIGMA), r"mu2 has shape \(8, 1\); it must have shape \(d,\)"),
        ((MU, SIGMA[None], MU, SIGMA), r"sigma1 has shape \(1, 8, 8\); it must have shape \(d, d\)"),
        ((MU, SIGMA, MU, SIGMA[0]), r"sigma2 has shape \(8,\); it must have shape \(d, d\)"),
        ((["a"] * 8, SIGMA, MU, SIGMA), r"mu1 is not an array of real numbers"),
        ((MU, SIGMA, MU, SIGMA + 0j), r"sigma2 is complex; it must be real"),
    ],
)
def test_frechet_distance_names_the_argument_of_a_wrong_shape_or_kind(args, message):
    """Was the binding's TypeError ("'ndarray' object cannot be converted to 'PyArray<T, D>'"), or for a complex
    Σ a value computed from its real part with only a ComplexWarning."""
    with pytest.raises(fidrs.InvalidInputError, match=message):
        fidrs.frechet_distance(*args)


def test_statistics_of_a_wrong_shape_given_to_the_evaluator_are_named_not_a_type_error():
    with pytest.raises(fidrs.InvalidInputError, match=r"mu1 has shape \(1, 8\)"):
        fidrs.Evaluator().compute("fid", fidrs.Stats(MU[None], SIGMA), fidrs.Stats(MU, SIGMA))


def test_an_object_no_source_takes_is_named_by_its_type_not_its_repr():
    """`fidrs.score` takes image sets and statistics files; a Stats object's repr is its whole arrays."""
    with pytest.raises(fidrs.InvalidInputError) as refused:
        fidrs.score(fidrs.Stats(MU, SIGMA), fidrs.Stats(MU, SIGMA))
    assert str(refused.value) == "cannot use a Stats object as input: no source recognises it"
