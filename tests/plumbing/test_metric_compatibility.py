"""Issue 24 defect 2: every metric of two feature sets checks first that both come from the same backbone, mode,
weights and graph (IncompatibleStatsError naming both sides), as `score` does; none compares them silently or
fails with a numpy shape error. And a side whose recorded backbone cannot give its feature size is refused before
any metric is computed (InvalidInputError naming it): a mislabelled set is never reported as that backbone's."""

from __future__ import annotations

import fidrs
import numpy as np
import pytest
from conftest import TINY_TWIN

# The sides are 8-d sets of the tiny test backbone (tests/tiny_backbone.py, 8-d features), and of a second 8-d
# network registered beside it (conftest's `tiny_twin`); `unregistered` is a name this process does not know (its
# size cannot be checked).
TINY, OTHER, UNREGISTERED = "tiny", TINY_TWIN, "unregistered"

pytestmark = pytest.mark.usefixtures("tiny_twin")  # both registered for every test (TINY through `tiny`)


def _set(backbone=TINY, mode="plain", weights="a" * 64, graph="b" * 64, dim=8, n=40, seed=0):
    features = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return fidrs.FeatureSet(features, None, [f"x{i}" for i in range(n)], mode, weights, [], backbone, graph)


METRICS = {
    "kid": lambda a, b: fidrs.kid(a, b, subset_size=10, subsets=2),
    "precision_recall": lambda a, b: fidrs.precision_recall(a, b),
    "memorization": lambda a, b: fidrs.memorization(reference=a, generated=b),
    "fid_confidence": lambda a, b: fidrs.fid_confidence(a, b, rounds=2),
}

OTHER_SIDES = {  # name: (the first side's fields, the second side's, the reason)
    "backbone": ({}, dict(backbone=OTHER), "different backbones"),
    "mode": ({}, dict(mode="padded"), "different mode"),
    # Other weights where no graph identity is recorded on one side (one graph identity on both sides means one
    # network: the same tensors as .pth and .safetensors; provenance.check_compatible skips the weights then).
    "weights": ({}, dict(weights="c" * 64, graph=None), "different weights"),
    "graph": ({}, dict(graph="d" * 64), "different graphs"),
    # One backbone's features of two sizes: only of a backbone this process does not know (a registered one's
    # size is its feature output's, below).
    "feature size": (dict(backbone=UNREGISTERED), dict(backbone=UNREGISTERED, dim=6), "different feature sizes"),
}


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("differs", OTHER_SIDES)
def test_metrics_of_two_sets_refuse_incompatible_sides_naming_both(metric, differs):
    changes_a, changes_b, reason = OTHER_SIDES[differs]
    a, b = _set(**changes_a), _set(seed=1, **changes_b)
    with pytest.raises(fidrs.IncompatibleStatsError, match=reason) as info:
        METRICS[metric](a, b)
    message = str(info.value)
    assert f"backbone {a.backbone}" in message and f"backbone {b.backbone}" in message  # both sides described


@pytest.mark.parametrize("metric", METRICS)
def test_compatible_sides_are_computed(metric):
    METRICS[metric](_set(), _set(seed=1))
    METRICS[metric](_set(backbone=UNREGISTERED, dim=6), _set(backbone=UNREGISTERED, dim=6, seed=1))


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("side", [0, 1])
def test_a_set_whose_backbone_cannot_give_its_size_is_refused_naming_it(metric, side):
    """8-d features recorded as the Inception's (its pool3 features are 2048-d): refused, whichever side, named
    as the metric names its inputs (`a`/`b`, `reference`/`generated`)."""
    sides = [_set(), _set(seed=1)]
    sides[side] = _set(backbone="inception", mode="pytorch-fid", seed=2)
    label = fidrs.metrics.get_metric(metric).inputs[side]
    with pytest.raises(fidrs.InvalidInputError, match=f"^{label}: records backbone inception") as info:
        METRICS[metric](*sides)
    assert "whose features (pool3) are 2048-d, but holds 8-d features" in str(info.value)
