"""Old spellings keep working for one release, each with a DeprecationWarning, and no call that worked before
changes meaning (issue 24): tuple and dict readings of the metric results, `memorization`'s positional order."""

from __future__ import annotations

import fidrs
import numpy as np
import pytest
from fidrs.metrics import (
    fid_confidence_from_features,
    kid_from_features,
    memorization_from_features,
    precision_recall_from_features,
)


def _set(seed: int, n: int = 30, logits: bool = False) -> fidrs.FeatureSet:
    rng = np.random.default_rng(seed)
    features = rng.standard_normal((n, 6)).astype(np.float32)
    extra = rng.standard_normal((n, 5)).astype(np.float32) if logits else None
    return fidrs.FeatureSet(features, extra, [f"s{seed}-{i}" for i in range(n)], "m", "w" * 64, [], "b", "g" * 64)


def test_kid_and_inception_score_still_unpack_as_mean_and_std():
    a, b = _set(0), _set(1)
    result = fidrs.kid(a, b, subset_size=10, subsets=3)
    with pytest.deprecated_call(match="result.value and result.std"):
        mean, std = result
    expected = kid_from_features(a.features, b.features, subset_size=10, subsets=3)
    assert (mean, std) == (result.value, result.std) == expected
    with pytest.deprecated_call():
        assert result[1] == result.std
    score = fidrs.inception_score(_set(2, logits=True), splits=3)
    with pytest.deprecated_call():
        assert tuple(score) == (score.value, score.std)
    assert result.to_dict()["kid"] == result.value and result.to_dict()["kid_std"] == result.std  # old JSON keys
    assert score.to_dict()["inception_score"] == score.value


def test_dict_results_still_read_by_key():
    a, b = _set(0), _set(1)
    pr = fidrs.precision_recall(a, b)
    with pytest.deprecated_call(match="result.precision"):
        assert pr["precision"] == pr.precision
    assert {k: getattr(pr, k) for k in ("precision", "recall", "density", "coverage")} == (
        precision_recall_from_features(a.features, b.features)
    )
    confidence = fidrs.fid_confidence(a, b, rounds=3)
    with pytest.deprecated_call():
        assert confidence["fid"] == confidence.value  # the old key of the full-sample FID
    assert confidence.value == fid_confidence_from_features(a.features, b.features, rounds=3)["fid"]


def test_memorization_positional_calls_keep_their_old_order_with_a_warning():
    training, generated = _set(0), _set(1, n=12)
    with pytest.deprecated_call(match="old"):
        old = fidrs.memorization(generated, training, top=3)  # the old order: generated, training
    new = fidrs.memorization(reference=training, generated=generated, top=3)
    assert old.closest_pairs == new.closest_pairs and old.n == new.n == (30, 12)
    direct = memorization_from_features(
        generated.features, training.features, top=3, generated_paths=generated.paths, training_paths=training.paths
    )
    assert new.closest_pairs == direct["closest_pairs"] and new.closest_pairs[0]["generated"].startswith("s1-")
    np.testing.assert_array_equal(new.distances, direct["distances"])
    with pytest.deprecated_call():
        assert old["fraction_below_threshold"] == new.fraction_below_threshold
