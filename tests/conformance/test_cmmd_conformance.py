"""CMMD acceptance (issue 26) with the shared random-weight CLIP ViT-L/14@336 (2 layers, Hugging Face folder):
fidrs' CMMD of the first 64 images (sorted names) of training/apple_red_1 against the first 64 of every training
class equals the float64 reference of ../shared/conformance/clip/reference.json within 1e-5 relative, and the
official google-research/cmmd float32 value within the bound derived below. Features are computed cold (in this
run: the session's feature cache is new each run) through fidrs' own pipeline (decode, square-crop, Pillow
bicubic to 336, the network)."""

from __future__ import annotations

import json
import time

import fidrs
import numpy as np
import pytest
from clip_support import CONFORMANCE, L14_SAFETENSORS, first_files
from conftest import DATA

N = 64
REFERENCE_CLASS = "apple_red_1"
# The acceptance: 1e-5 relative to the float64 value. What moves fidrs' value from it: fidrs' embeddings
# differ from the published (cmmd-pytorch) ones by ≤ 1e-6 relative per value (tests/test_clip.py measures 9.8e-7
# through this pipeline), and the official JAX embeddings, 1.8e-7 from the published ones, move CMMD by 2.9e-7
# relative (reference.json): ~5x that difference moves it ~1.6e-6. The estimator adds ~1e-11. Measured: 4.5e-7
# (apple_red_1 vs every class, 2026-12-01). 1e-5 holds with 6x margin over the estimate, 20x over the measurement,
# and is 700 times tighter than the smallest plausible mistake of the sensitivity table (7e-3).
FLOAT64_RTOL = 1e-5


def official_float32_bound(reference64: float) -> float:
    """How far the official float32 value may be from the exact one, derived from what the official code does:
    `1000 * (mean(k_xx) + mean(k_yy) − 2 mean(k_xy))` in float32, each mean a float32 in [0.98, 1] (unit
    embeddings: ‖a − b‖² ≤ 4, k ≥ e^(−0.02)). Assume each mean is within 1 ulp (2⁻²⁴ below 1) of its exact value
    (the kernel entries carry ~1e-7 relative each and average out; a blocked/tree reduction of 4,096 values adds
    a few ulps at most — observed below at ≤ 2 quanta in total); k_xx + k_yy rounds to a float32 in [1.96, 2],
    whose half ulp is 2⁻²³; subtracting 2 k_xy from it is exact (Sterbenz: the two are within a factor 2); × 1000
    adds 6e-8 relative. So |official − exact| ≤ 1000 · (4 · 2⁻²⁴ + 2⁻²³) = 1000 · 6 · 2⁻²⁴ = 3.6e-4 in CMMD
    units, plus fidrs' own distance from the exact value (FLOAT64_RTOL). Measured: 1.16e-4 (apple_golden_1, 1.95
    quanta), within the bound by 3x."""
    return 1000 * 6 * 2.0**-24 + FLOAT64_RTOL * abs(reference64)


@pytest.fixture(scope="module")
def cmmd_sets():
    if not L14_SAFETENSORS.is_file():
        pytest.skip(f"shared conformance data not found at {CONFORMANCE}")
    reference = json.loads((CONFORMANCE / "reference.json").read_text())
    classes = sorted(reference["cmmd_training_apple_red_1_vs_training"])
    # The session's feature cache (conftest: new each run, so every embedding is computed in this run): the 150 of
    # these images that test_clip.py's 200 include are computed once.
    evaluator = fidrs.Evaluator(backbone="clip-vitl14-336", weights=str(L14_SAFETENSORS))
    started = time.perf_counter()
    sets = {c: evaluator.feature_set([str(f) for f in first_files(DATA / "training" / c, N)]) for c in classes}
    seconds = time.perf_counter() - started
    print(f"\nCMMD conformance: {N * len(classes)} images through ViT-L/14@336 (2 layers) in {seconds:.1f} s")
    return evaluator, sets, reference


@pytest.mark.slow
def test_cmmd_of_every_class_equals_the_float64_reference_and_the_official_value(cmmd_sets):
    evaluator, sets, reference = cmmd_sets
    expected = reference["cmmd_training_apple_red_1_vs_training"]
    assert set(reference["n_cmmd"].values()) == {N}
    worst64 = worst32 = 0.0
    for name, want in expected.items():
        result = evaluator.compute("cmmd", sets[REFERENCE_CLASS], sets[name])
        assert result.n_used == [N, N] == want["official_n_used"]  # 64 is two whole batches: nothing dropped
        assert result.provenance.backbone == "clip-vitl14-336" and result.provenance.mode == "cmmd"
        float64, official = want["float64_official_subset"], want["official_google_research"]
        if name == REFERENCE_CLASS:  # the same embeddings on both sides: exactly 0 in both tools
            assert float64 == official == 0.0 and abs(result.value) <= 1e-12
            continue
        assert abs(result.value - float64) <= FLOAT64_RTOL * float64, (name, result.value, float64)
        assert abs(result.value - official) <= official_float32_bound(float64), (name, result.value, official)
        worst64 = max(worst64, abs(result.value - float64) / float64)
        worst32 = max(worst32, abs(result.value - official))
        # keep = drop at 64 images, and keep is the cmmd-pytorch port's value, which used all 64
        assert (
            evaluator.compute("cmmd", sets[REFERENCE_CLASS], sets[name], batch_remainder="keep").value == result.value
        )
    print(
        f"\nCMMD: worst relative difference from float64 {worst64:.2e}; worst |fidrs − official float32| {worst32:.2e}"
    )


def test_the_official_float32_values_sit_within_the_derived_bound_of_the_float64_ones():
    """The bound itself against the data: every official value of reference.json (the same embeddings) within it,
    and its documented size (up to ~9e-4 relative) seen."""
    if not (CONFORMANCE / "reference.json").is_file():
        pytest.skip(f"shared conformance data not found at {CONFORMANCE}")
    reference = json.loads((CONFORMANCE / "reference.json").read_text())
    rel = []
    for name, want in reference["cmmd_training_apple_red_1_vs_training"].items():
        float64, official = want["float64_official_subset"], want["official_google_research"]
        assert abs(official - float64) <= official_float32_bound(float64) - FLOAT64_RTOL * abs(float64), name
        if float64:
            rel.append(abs(official - float64) / float64)
    assert 5e-4 < max(rel) < 1e-3  # the measured difference the README documents (8.6e-4, apple_golden_1)


@pytest.mark.slow
def test_a_bootstrap_on_the_real_embeddings_brackets_the_spread_of_resamples(cmmd_sets):
    evaluator, sets, _ = cmmd_sets
    result = evaluator.compute("cmmd", sets[REFERENCE_CLASS], sets["apple_golden_1"], bootstrap=50)
    assert result.low < result.high and result.bootstrap_std > 0
    assert np.isfinite([result.low, result.high]).all()
