"""Issue 24 defect 2: every metric of two feature sets checks first that both come from the same backbone, mode,
weights and graph (IncompatibleStatsError naming both sides), as `score` does; none compares them silently or
fails with a numpy shape error."""

from __future__ import annotations

import fidrs
import numpy as np
import pytest


def _set(backbone="inception", mode="pytorch-fid", weights="a" * 64, graph="b" * 64, dim=8, n=40, seed=0):
    features = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return fidrs.FeatureSet(features, None, [f"x{i}" for i in range(n)], mode, weights, [], backbone, graph)


METRICS = {
    "kid": lambda a, b: fidrs.kid(a, b, subset_size=10, subsets=2),
    "precision_recall": lambda a, b: fidrs.precision_recall(a, b),
    "memorization": lambda a, b: fidrs.memorization(reference=a, generated=b),
    "fid_confidence": lambda a, b: fidrs.fid_confidence(a, b, rounds=2),
}

OTHER_SIDES = {
    "backbone": (dict(backbone="dinov2-vits14"), "different backbones"),
    "mode": (dict(mode="clean"), "different mode"),
    # Other weights where no graph identity is recorded on one side (one graph identity on both sides means one
    # network: the same tensors as .pth and .safetensors; provenance.check_compatible skips the weights then).
    "weights": (dict(weights="c" * 64, graph=None), "different weights"),
    "graph": (dict(graph="d" * 64), "different graphs"),
    "feature size": (dict(dim=6), "different feature sizes"),
}


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("differs", OTHER_SIDES)
def test_metrics_of_two_sets_refuse_incompatible_sides_naming_both(metric, differs):
    changes, reason = OTHER_SIDES[differs]
    a, b = _set(), _set(seed=1, **changes)
    with pytest.raises(fidrs.IncompatibleStatsError, match=reason) as info:
        METRICS[metric](a, b)
    message = str(info.value)
    assert "backbone inception" in message and f"backbone {b.backbone}" in message  # both sides described


@pytest.mark.parametrize("metric", METRICS)
def test_compatible_sides_are_computed(metric):
    METRICS[metric](_set(), _set(seed=1))
