"""KID, IS, precision/recall, memorisation: against independent formulas and torch-fidelity itself."""

from __future__ import annotations

import json

import fidrs
import numpy as np
import pytest
from conftest import CONFORMANCE, DATA, require_shared
from fidrs.metrics import (
    inception_score_from_logits,
    kid_from_features,
    memorization_from_features,
    precision_recall_from_features,
)
from scipy.spatial.distance import cdist
from scipy.special import softmax
from scipy.stats import entropy


def test_kid_equals_the_textbook_unbiased_mmd():
    rng = np.random.default_rng(0)
    f1, f2 = rng.random((30, 6)), rng.random((25, 6)) + 0.1
    mean, std = kid_from_features(f1, f2, subset_size=10, subsets=4, seed=3)
    sampler = np.random.RandomState(3)
    values = []
    for _ in range(4):
        x = f1[sampler.choice(30, 10, replace=False)]
        y = f2[sampler.choice(25, 10, replace=False)]
        k = lambda a, b: (a @ b / 6 + 1) ** 3  # noqa: E731
        xx = sum(k(x[i], x[j]) for i in range(10) for j in range(10) if i != j) / 90
        yy = sum(k(y[i], y[j]) for i in range(10) for j in range(10) if i != j) / 90
        xy = sum(k(x[i], y[j]) for i in range(10) for j in range(10)) / 100
        values.append(xx + yy - 2 * xy)
    assert mean == pytest.approx(np.mean(values), rel=1e-12)
    assert std == pytest.approx(np.std(values), rel=1e-9)
    with pytest.raises(fidrs.InvalidInputError, match="subset_size"):
        kid_from_features(f1, f2, subset_size=26)


def test_inception_score_equals_scipy_kl():
    logits = np.random.default_rng(1).standard_normal((40, 7)) * 3
    mean, std = inception_score_from_logits(logits, splits=4, seed=5)
    shuffled = logits[np.random.RandomState(5).permutation(40)]
    scores = []
    for chunk in np.split(shuffled, 4):
        p = softmax(chunk, axis=1)
        q = p.mean(0)
        scores.append(np.exp(np.mean([entropy(pi, q) for pi in p])))
    assert mean == pytest.approx(np.mean(scores), rel=1e-12)
    assert std == pytest.approx(np.std(scores), rel=1e-9)


def test_precision_recall_density_coverage_by_brute_force():
    rng = np.random.default_rng(2)
    real, fake = rng.standard_normal((60, 5)), rng.standard_normal((50, 5)) * 1.3 + 0.4
    got = precision_recall_from_features(real, fake, k=3)
    rr = np.sort(cdist(real, real), axis=1)[:, 3]
    fr = np.sort(cdist(fake, fake), axis=1)[:, 3]
    d_fr = cdist(fake, real)
    d_rf = cdist(real, fake)
    expected = {
        "precision": np.mean([(d_fr[i] <= rr).any() for i in range(50)]),
        "recall": np.mean([(d_rf[j] <= fr).any() for j in range(60)]),
        "density": sum((d_fr[i] <= rr).sum() for i in range(50)) / (3 * 50),
        "coverage": np.mean([(d_fr[:, j] <= rr[j]).any() for j in range(60)]),
    }
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, abs=1e-12), key
    same = precision_recall_from_features(real, real, k=3)
    assert same["precision"] == same["recall"] == same["coverage"] == 1.0


def test_memorization_finds_copies():
    rng = np.random.default_rng(3)
    training = rng.random((100, 32))
    generated = np.vstack([training[[7, 42]] + 1e-6, rng.random((8, 32)) + 2])
    result = memorization_from_features(
        generated, training, threshold=1e-6, top=3, training_paths=[f"t{i}" for i in range(100)]
    )
    assert result["fraction_below_threshold"] == pytest.approx(0.2)
    assert {p["training"] for p in result["closest_pairs"][:2]} == {"t7", "t42"}
    assert result["closest_pairs"][0]["cosine_distance"] < 1e-9


@pytest.fixture(scope="module")
def tf1_sets(weights):
    require_shared()
    return {
        c: fidrs.feature_set(str(DATA / "training" / c), weights=weights, mode="tf1")
        for c in ("apple_red_1", "apple_golden_1")
    }


@pytest.fixture(scope="module")
def fidelity_reference():
    require_shared()
    return json.loads((CONFORMANCE / "torch_fidelity_reference.json").read_text())["metrics"]


def test_kid_reproduces_torch_fidelity(tf1_sets, fidelity_reference):
    result = fidrs.kid(tf1_sets["apple_red_1"], tf1_sets["apple_golden_1"], subset_size=400, subsets=100, seed=2020)
    mean, std = result.value, result.std
    ref_mean, ref_std = (
        fidelity_reference["kernel_inception_distance_mean"],
        fidelity_reference["kernel_inception_distance_std"],
    )
    # The bound: within the reference's own standard error, std/sqrt(subsets).
    assert abs(mean - ref_mean) <= ref_std / np.sqrt(100)
    assert std == pytest.approx(ref_std, rel=0.2)


def test_inception_score_reproduces_torch_fidelity(tf1_sets, fidelity_reference):
    result = fidrs.inception_score(tf1_sets["apple_red_1"], splits=10)
    mean, std = result.value, result.std
    assert abs(mean - fidelity_reference["inception_score_mean"]) <= 1e-2
    assert abs(std - fidelity_reference["inception_score_std"]) <= 1e-2


def test_tf1_fid_reproduces_torch_fidelity(tf1_sets, fidelity_reference):
    a, b = tf1_sets["apple_red_1"].features, tf1_sets["apple_golden_1"].features
    fid = fidrs.frechet_distance(
        a.mean(0, dtype=np.float64), np.cov(a, rowvar=False), b.mean(0, dtype=np.float64), np.cov(b, rowvar=False)
    )
    expected = fidelity_reference["frechet_inception_distance"]
    assert abs(fid - expected) <= 1e-4 * max(1.0, expected)


def test_metric_commands_print_json(tmp_path, weights, capsys):
    """Each companion metric's command on the Inception, in this process (`fidrs.cli.main`: one network load for
    all of them; a fresh interpreter each loaded ONNX Runtime and hashed the 95 MB checkpoint again)."""
    from cli_in_process import run_cli_here
    from PIL import Image

    rng = np.random.default_rng(4)
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        for i in range(12):
            Image.fromarray(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(tmp_path / folder / f"{i}.png")
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    cases = [
        (["kid", a, b, "--subset-size", "5", "--subsets", "3"], "kid"),
        (["is", a, "--splits", "2"], "inception_score"),
        (["pr", a, b], "precision"),
        (["memorization", a, a, "--top", "2"], "fraction_below_threshold"),
    ]
    for args, key in cases:
        out = run_cli_here(capsys, *args, "--weights", weights, "--json")
        assert out.returncode == 0, out.stderr
        assert key in json.loads(out.stdout)
    out = run_cli_here(capsys, "memorization", a, a, "--weights", weights, "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["fraction_below_threshold"] == 1.0  # a set is a copy of itself


def test_fid_confidence_interval_and_small_n_bias():
    from fidrs.metrics import fid_confidence_from_features

    rng = np.random.default_rng(6)
    x, y = rng.standard_normal((400, 8)), rng.standard_normal((400, 8)) + 0.3
    result = fid_confidence_from_features(x, y, rounds=40, seed=1)
    assert result["low"] <= result["fid"] <= result["high"]
    # Population FID = 8 · 0.3² = 0.72; the sample FID carries a positive small-n bias.
    assert result["low"] < 0.72 + 0.3 and result["high"] > 0.72
    at_n = result["fid_at_n"]
    assert sorted(at_n) == [50, 100, 200, 400]
    assert at_n[50] > at_n[400]  # bias grows as n shrinks (d/n terms)
