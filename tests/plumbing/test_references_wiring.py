"""References wired into fidrs: every reader's format and `ref:NAME` as an input wherever statistics are accepted,
the reference deciding the mode its other side is computed in (explicit contradictions refused unless
allow_mode_mismatch, which the result then records; ref_mode for a file that records nothing), ADM's images read
only when a metric needs images, and several backbones' statistics from one decode of each image.

The tiny backbone (tests/tiny_backbone.py) computes the images here: its modes `plain` and `padded` stand for a
backbone's default and another mode. Where the reference's own backbone must be the Inception (catalogue and
format provenance), the decision is checked before any network runs, or both sides are statistics."""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import warnings

import fidrs
import numpy as np
import pytest
import tiny_backbone
from conftest import write_images
from fidrs.errors import ModeMismatchWarning, UnknownModeWarning
from fidrs.references import arrays
from fidrs.statistics import load_all, save_all

# What the Inception's statistics are: pool3, 2048-d (an ADM batch's and EDM2's `fid` entry, and what the catalogue
# says of clean-fid's files; fidrs refuses Inception statistics of another size), and FD_DINOv2's (ViT-L/14).
POOL3 = fidrs.backbones.get("inception").feature_dim
DINOV2_L = fidrs.backbones.get("dinov2").feature_dim

# Statistics computed twice from the same pixels by the same graph and the same float64 moments are identical
# (the feature pass is deterministic on one machine: measured 0 difference); FIDs of identical inputs are then
# bit-identical too. Where two different (but equally computed) values are compared, see each assertion.


@pytest.fixture()
def images(tmp_path):
    return str(write_images(tmp_path / "a", 12, seed=1)), str(write_images(tmp_path / "b", 10, seed=2))


@pytest.fixture()
def tiny2(tiny, tmp_path, monkeypatch):
    """A second tiny backbone (other weights) beside `tiny`, both found through their weights variables."""
    backbone, checkpoint = tiny
    other = fidrs.register_backbone(dataclasses.replace(tiny_backbone.backbone(), name="tiny2"), replace=True)
    monkeypatch.setenv("FIDRS_WEIGHTS_TINY", checkpoint)
    monkeypatch.setenv("FIDRS_WEIGHTS_TINY2", tiny_backbone.write_checkpoint(tmp_path / "tiny2.npz", seed=5))
    try:
        yield backbone, other
    finally:
        fidrs.backbones.unregister_backbone("tiny2")


def _quiet(**options):
    return {"progress": False, **options}


# --- a fidrs statistics file decides the mode of the images it is compared with ---------------------------------


def test_a_statistics_file_makes_its_other_side_be_computed_in_its_mode(tiny, images, tmp_path):
    _, checkpoint = tiny
    a, b = images
    ref = tmp_path / "padded.npz"
    fidrs.stats(a, backbone="tiny", weights=checkpoint, mode="padded").save(ref)
    details = fidrs.score_details(str(ref), b, backbone="tiny", weights=checkpoint)
    assert (details["mode"], details["mode_a"], details["mode_b"]) == ("padded", "padded", "padded")
    # The same two sides computed by hand in padded: identical (the same pixels, graph and moments).
    assert details["fid"] == fidrs.score(a, b, backbone="tiny", weights=checkpoint, mode="padded")
    described = details["references"][str(ref)]
    assert described["format"] == "fidrs" and described["reference_mode"] == "padded"
    assert described["statistics"]["tiny"]["provenance"] == "file" and details["notes"] == []
    assert details["mode_mismatch_allowed"] is False


def test_an_explicit_mode_that_contradicts_the_reference_is_refused_before_any_image_is_read(tiny, images, tmp_path):
    _, checkpoint = tiny
    a, b = images
    ref = tmp_path / "padded.npz"
    fidrs.stats(a, backbone="tiny", weights=checkpoint, mode="padded").save(ref)
    evaluator = fidrs.Evaluator(backbone="tiny", weights=checkpoint, mode="plain")
    with pytest.raises(fidrs.IncompatibleStatsError, match="made in mode padded.*--mode plain.*--allow-mode-mismatch"):
        evaluator.score(str(ref), b)
    assert not evaluator.loaded  # refused from the inputs alone


def test_an_allowed_mismatch_computes_the_asked_mode_and_the_result_says_so(tiny, images, tmp_path):
    _, checkpoint = tiny
    a, b = images
    ref = tmp_path / "padded.npz"
    padded = fidrs.stats(a, backbone="tiny", weights=checkpoint, mode="padded")
    padded.save(ref)
    with pytest.warns(ModeMismatchWarning, match="not comparable"):
        details = fidrs.score_details(
            str(ref), b, backbone="tiny", weights=checkpoint, mode="plain", allow_mode_mismatch=True
        )
    plain_b = fidrs.stats(b, backbone="tiny", weights=checkpoint, mode="plain")
    # The value is that of the padded reference against B in plain (the same two statistics, the same code).
    assert details["fid"] == fidrs.frechet_distance(padded.mu, padded.sigma, plain_b.mu, plain_b.sigma)
    assert details["mode_mismatch_allowed"] is True and (details["mode_a"], details["mode_b"]) == ("padded", "plain")
    assert details["mode"] is None  # the sides disagree: no one mode is claimed
    assert len(details["notes"]) == 1 and "computed in plain" in details["notes"][0]
    assert details["references"][str(ref)]["mode_mismatch"] is True


def test_ref_mode_states_the_mode_of_a_foreign_file(tiny, images, tmp_path):
    _, checkpoint = tiny
    a, b = images
    padded = fidrs.stats(a, backbone="tiny", weights=checkpoint, mode="padded")
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, mu=padded.mu, sigma=padded.sigma)  # what pytorch-fid or clean-fid write: no provenance
    details = fidrs.score_details(str(foreign), b, backbone="tiny", weights=checkpoint, ref_mode="padded")
    assert (details["mode"], details["mode_a"], details["mode_b"]) == ("padded", "padded", "padded")
    assert details["fid"] == fidrs.score(a, b, backbone="tiny", weights=checkpoint, mode="padded")
    assert details["references"][str(foreign)]["statistics"]["unknown"]["provenance"] == "unknown"
    with pytest.raises(fidrs.IncompatibleStatsError, match="made in mode padded"):
        fidrs.score(str(foreign), b, backbone="tiny", weights=checkpoint, ref_mode="padded", mode="plain")


def test_a_foreign_file_without_provenance_keeps_the_unknown_mode_warning(tiny, images, tmp_path):
    _, checkpoint = tiny
    a, b = images
    stats = fidrs.stats(a, backbone="tiny", weights=checkpoint)
    np.savez(tmp_path / "foreign.npz", mu=stats.mu, sigma=stats.sigma)
    with pytest.warns(UnknownModeWarning, match="records no preprocessing mode"):
        details = fidrs.score_details(
            str(tmp_path / "foreign.npz"), b, backbone="tiny", weights=checkpoint, mode="padded"
        )
    assert details["mode_a"] is None and details["mode_b"] == "padded" and details["notes"] == []


def test_ref_mode_without_a_statistics_input_is_refused(tiny, images):
    _, checkpoint = tiny
    with pytest.raises(fidrs.InvalidInputError, match="ref_mode states how a statistics input was made"):
        fidrs.score(*images, backbone="tiny", weights=checkpoint, ref_mode="padded")
    with pytest.raises(fidrs.InvalidInputError, match="ref_mode 'nope' is not a mode of backbone tiny"):
        fidrs.Evaluator(backbone="tiny", ref_mode="nope")


def test_two_statistics_files_are_compared_by_their_own_modes(tiny, images, tmp_path):
    """No image is computed: an explicit mode does not apply, and differing modes are refused as before."""
    _, checkpoint = tiny
    a, b = images
    fidrs.stats(a, backbone="tiny", weights=checkpoint, mode="padded").save(tmp_path / "a.npz")
    fidrs.stats(b, backbone="tiny", weights=checkpoint, mode="padded").save(tmp_path / "b.npz")
    fidrs.stats(b, backbone="tiny", weights=checkpoint, mode="plain").save(tmp_path / "b_plain.npz")
    fid = fidrs.score(str(tmp_path / "a.npz"), str(tmp_path / "b.npz"), backbone="tiny", mode="plain")
    assert fid == fidrs.score(a, b, backbone="tiny", weights=checkpoint, mode="padded")
    with pytest.raises(fidrs.IncompatibleStatsError, match="different mode"):
        fidrs.score(str(tmp_path / "a.npz"), str(tmp_path / "b_plain.npz"), backbone="tiny")


def test_statistics_files_of_one_recorded_backbone_compare_without_naming_it(tiny, images, tmp_path, capsys):
    """`fidrs score a.npz b.npz` of FD_DINOv2 (here the tiny backbone's) statistics needs no --backbone: both
    files record it and no network runs. A side of images is never computed with a backbone guessed from the
    other side: it is the default's (the Inception), and the statistics file holds none of it."""
    from fidrs.cli import main as cli_main

    _, checkpoint = tiny
    a, b = images
    for name, folder in (("a", a), ("b", b)):
        fidrs.stats(folder, backbone="tiny", weights=checkpoint).save(tmp_path / f"{name}.npz")
    expected = fidrs.score(a, b, backbone="tiny", weights=checkpoint)
    assert fidrs.score(str(tmp_path / "a.npz"), str(tmp_path / "b.npz")) == expected
    assert cli_main(["score", str(tmp_path / "a.npz"), str(tmp_path / "b.npz"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["fid"] == expected
    with pytest.raises(fidrs.IncompatibleStatsError, match=r"a\.npz: holds statistics of tiny, none of backbone inc"):
        fidrs.score(str(tmp_path / "a.npz"), b)


# --- ADM batches: statistics for FID, images read only when a metric needs them -----------------------------------


def _adm_batch(path, pixels, stats):
    """The ADM evaluator's layout: Inception mu/sigma, the sFID statistics, the uint8 NHWC images (np.savez)."""
    np.savez(path, mu=stats.mu, sigma=stats.sigma, mu_s=np.zeros(3), sigma_s=np.eye(3), arr_0=pixels)


def test_adm_images_are_read_only_when_a_metric_needs_images(tiny, tmp_path, monkeypatch):
    _, checkpoint = tiny
    pixels = np.random.default_rng(4).integers(0, 256, (9, 24, 24, 3), dtype=np.uint8)
    x = np.random.default_rng(5).normal(size=(40, POOL3))
    stats = fidrs.Stats(x.mean(0), np.cov(x, rowvar=False))
    _adm_batch(tmp_path / "adm.npz", pixels, stats)
    np.savez(tmp_path / "other.npz", mu=stats.mu + 1, sigma=stats.sigma)
    reads = []
    for name in ("rows", "load", "batches"):
        original = getattr(arrays.LazyArray, name)
        monkeypatch.setattr(
            arrays.LazyArray,
            name,
            lambda self, *a, _o=original, _n=name: reads.append((_n, self.member)) or _o(self, *a),
        )
    # FID against its statistics (the Inception's, tf1 by the layout): no image is read.
    details = fidrs.score_details(str(tmp_path / "adm.npz"), str(tmp_path / "other.npz"))
    # ‖Δμ‖² = 2048·1², equal Σ: the trace terms cancel up to round-off (d·ε·tr Σ ≈ 5e-10 ≪ 2e-9).
    assert details["fid"] == pytest.approx(float(POOL3), rel=1e-12)
    assert details["references"][str(tmp_path / "adm.npz")]["statistics"]["inception"]["mode"] == "tf1"
    assert [r for r in reads if r[1] == "arr_0.npy"] == []
    reads.clear()
    # A backbone the batch holds no statistics of, or a metric of features: its images are read, a batch at a time.
    features = fidrs.features(str(tmp_path / "adm.npz"), backbone="tiny", weights=checkpoint, batch_size=4)
    assert [r for r in reads if r[1] == "arr_0.npy"] == [("rows", "arr_0.npy")] * 3
    assert np.array_equal(features, fidrs.features(pixels, backbone="tiny", weights=checkpoint))
    with pytest.raises(fidrs.InvalidInputError, match="a statistics file cannot be used here"):
        fidrs.features(str(tmp_path / "other.npz"), backbone="tiny", weights=checkpoint)


def test_an_adm_batch_against_images_in_pytorch_fid_mode_is_refused_before_any_network(tmp_path, images):
    pixels = np.zeros((2, 8, 8, 3), np.uint8)
    x = np.random.default_rng(0).normal(size=(8, POOL3))
    _adm_batch(tmp_path / "adm.npz", pixels, fidrs.Stats(x.mean(0), np.cov(x, rowvar=False)))
    evaluator = fidrs.Evaluator(mode="pytorch-fid")
    with pytest.raises(fidrs.IncompatibleStatsError, match=r"adm\.npz was made in mode tf1 \(made by adm"):
        evaluator.score(str(tmp_path / "adm.npz"), images[1])
    assert not evaluator.loaded


# --- EDM2's pickles and ref:NAME -------------------------------------------------------------------------------


def _edm2_pickle(path, d_inception=POOL3, d_dinov2=DINOV2_L):
    rng = np.random.default_rng(7)
    x, y = rng.normal(size=(30, d_inception)), rng.normal(size=(30, d_dinov2))
    stats = {
        "num_images": 30,
        "fid": {"mu": x.mean(0), "sigma": np.cov(x, rowvar=False)},
        "fd_dinov2": {"mu": y.mean(0), "sigma": np.cov(y, rowvar=False)},
    }
    with open(path, "wb") as f:
        pickle.dump(stats, f)
    return stats


def test_an_edm2_pickle_gives_the_entry_of_the_backbone_in_use(tmp_path):
    stats = _edm2_pickle(tmp_path / "img64.pkl")
    other = tmp_path / "other.npz"
    np.savez(other, mu=stats["fd_dinov2"]["mu"] + 2, sigma=stats["fd_dinov2"]["sigma"])
    # --backbone dinov2 takes fd_dinov2 (1024-d): ‖Δμ‖² = 1024·2², equal Σ (trace terms cancel to ~1e-10).
    fid = fidrs.score(str(tmp_path / "img64.pkl"), str(other), backbone="dinov2")
    assert fid == pytest.approx(4.0 * DINOV2_L, rel=1e-12)
    with pytest.raises(fidrs.IncompatibleStatsError, match="different feature sizes"):
        fidrs.score(str(tmp_path / "img64.pkl"), str(other))  # the Inception's fid entry is 2048-d


def test_edm2_fd_dinov2_needs_the_edm2_mode_and_says_so_when_fidrs_lacks_it(tmp_path, images, monkeypatch):
    stats = _edm2_pickle(tmp_path / "img512.pkl")
    monkeypatch.setenv("FIDRS_REF_EDM2_IMG512", str(tmp_path / "img512.pkl"))
    monkeypatch.setenv("FIDRS_CACHE", str(tmp_path / "cache"))
    dinov2 = fidrs.backbones.get("dinov2")
    evaluator = fidrs.Evaluator(backbone="dinov2")
    sides = [("ref:edm2/img512", fidrs.sources.resolve("ref:edm2/img512")), ("gen", fidrs.sources.resolve(images[1]))]
    if "edm2" in dinov2.modes:  # the mode of issue 27 item 4: the images are computed in it
        assert evaluator.plan(sides).resolved.mode.name == "edm2" and not evaluator.loaded
    else:
        with pytest.raises(fidrs.IncompatibleStatsError, match="needs mode edm2.*which this backbone does not have"):
            evaluator.score("ref:edm2/img512", images[1])
        assert not evaluator.loaded
    # Its fid entry needs only tf1, which fidrs has: a comparison of statistics runs.
    other = tmp_path / "other.npz"
    np.savez(other, mu=stats["fid"]["mu"], sigma=stats["fid"]["sigma"])
    details = fidrs.score_details("ref:img512", str(other))
    # Identical statistics: 0 up to the round-off of tr √(Σ₁Σ₂) (measured 5e-13 here: ε·tr Σ); 1e-9 is far above it and
    # far below any real difference (the entries differ from `other` by nothing else).
    assert details["fid"] == pytest.approx(0.0, abs=1e-9)
    described = details["references"]["ref:img512"]
    assert described["statistics"]["inception"]["provenance"] == "catalogue:edm2/img512"
    assert described["statistics"]["dinov2-vitl14"]["mode"] == "edm2"


def test_ref_inputs_through_the_library(tmp_path, monkeypatch):
    """`fidrs.score("gen/", "ref:cifar10-train-32")`: a catalogued reference resolves through its local copy
    (FIDRS_REF_<NAME>) with the catalogue's provenance: clean-fid's clean mode, its n."""
    # The catalogue says: the Inception's (2048-d). A diagonal Σ: its 32 MiB compress in a moment.
    x = np.random.default_rng(1).normal(size=(20, POOL3))
    mu, sigma = x.mean(0).astype(np.float32), np.diag(x.var(0, ddof=1))
    np.savez_compressed(tmp_path / "cifar10_clean_train_32.npz", mu=mu, sigma=sigma)
    monkeypatch.setenv("FIDRS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("FIDRS_REF_CLEAN_FID_CIFAR10_TRAIN_32_CLEAN", str(tmp_path / "cifar10_clean_train_32.npz"))
    source = fidrs.sources.resolve("ref:cifar10-train-32")
    assert source.precomputed("inception").mode == "clean" and source.precomputed("inception").n == 50000
    evaluator = fidrs.Evaluator()
    plan = evaluator.plan(
        [("ref:cifar10-train-32", source), ("gen", fidrs.sources.resolve(np.zeros((2, 8, 8, 3), np.uint8)))]
    )
    assert plan.resolved.mode.name == "clean" and not evaluator.loaded
    with pytest.raises(fidrs.IncompatibleStatsError, match="made in mode clean"):
        fidrs.Evaluator(mode="tf1").plan(
            [("ref:cifar10-train-32", source), ("gen", fidrs.sources.resolve(np.zeros((2, 8, 8, 3), np.uint8)))]
        )


# --- several backbones from one decode ----------------------------------------------------------------------------


def test_several_backbones_from_one_decode_of_each_image(tiny2, images, tmp_path, monkeypatch):
    from fidrs import _fidrs, multi_pass

    a, _ = images
    decoded, single = [], []
    original = _fidrs.load_encoded_many
    runs = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_fidrs, "load_encoded_many", lambda blobs, *rest: decoded.extend(blobs) or original(blobs, *rest))
        for name in ("load_encoded", "load_images"):  # what one backbone's pass decodes with: never called here
            patch.setattr(_fidrs, name, lambda *x, _n=name: single.append(_n))
        patch.setenv("FIDRS_CACHE", str(tmp_path / "cold-cache"))
        for run, cache in (("no cache", False), ("cold cache", True), ("warm cache", True)):
            decoded.clear()
            runs[run] = multi_pass.stats_by_backbone(a, ["tiny", "tiny2"], cache=cache, batch_size=5, progress=False)
            # Each image decoded once for both backbones; none once both have it cached.
            assert len(decoded) == (0 if run == "warm cache" else 12), run
    assert single == []
    for k, name in enumerate(("tiny", "tiny2")):
        alone = fidrs.stats(a, backbone=name, cache=False)
        for s in (r[k] for r in runs.values()):
            assert s.backbone == name and s.n == 12 and s.mode == "plain"
            assert np.array_equal(s.mu, alone.mu) and np.array_equal(s.sigma, alone.sigma)
            assert (s.weights_sha256, s.graph_sha256) == (alone.weights_sha256, alone.graph_sha256)


def test_one_file_of_several_backbones_is_read_by_every_reader(tiny2, images, tmp_path):
    from fidrs.multi_pass import stats_by_backbone
    from fidrs.references import read_reference

    a, b = images
    both = stats_by_backbone(a, ["tiny", "tiny2"], progress=False)
    save_all(tmp_path / "ref.npz", both)
    loaded = load_all(tmp_path / "ref.npz")
    assert [s.backbone for s in loaded] == ["tiny", "tiny2"]
    for s, again in zip(both, loaded):
        assert np.array_equal(s.sigma, again.sigma) and s.moments.n == again.moments.n == 12
    # pytorch-fid / clean-fid / ADM's evaluator read the top-level mu and sigma: the first backbone's.
    with np.load(tmp_path / "ref.npz") as raw:
        assert np.array_equal(raw["mu"], both[0].mu) and np.array_equal(raw["sigma"], both[0].sigma)
    assert fidrs.Stats.load(tmp_path / "ref.npz").backbone == "tiny"
    assert fidrs.Stats.load(tmp_path / "ref.npz", "tiny2").graph_sha256 == both[1].graph_sha256
    ref = read_reference(tmp_path / "ref.npz")
    assert ref.format == "fidrs" and list(ref.entries) == ["tiny", "tiny2"]
    # score picks the entry of --backbone: equal to scoring the images under that backbone alone.
    for name in ("tiny", "tiny2"):
        assert fidrs.score(str(tmp_path / "ref.npz"), b, backbone=name) == fidrs.score(a, b, backbone=name)
    with pytest.raises(fidrs.IncompatibleStatsError, match="holds statistics of tiny, tiny2, none of backbone"):
        fidrs.Stats.load(tmp_path / "ref.npz", "inception")


def test_a_file_of_several_backbones_that_was_tampered_with_is_refused(tiny2, images, tmp_path):
    from fidrs.multi_pass import stats_by_backbone

    both = stats_by_backbone(images[0], ["tiny", "tiny2"], progress=False)
    save_all(tmp_path / "ref.npz", both)
    with np.load(tmp_path / "ref.npz") as raw:
        members = dict(raw)
    for change, reason in (
        ({"tiny2.mu": members["tiny2.mu"] + 1}, "the stored sums and n disagree"),
        ({"tiny2.backbone": np.array("tiny")}, "record backbone 'tiny'"),
        ({"backbones": np.array(["tiny", "tiny"])}, "not distinct backbone names"),
        ({"backbones": np.zeros(2)}, "backbones must be a list"),
    ):
        np.savez(tmp_path / "bad.npz", **{**members, **change})
        with pytest.raises(fidrs.InvalidInputError, match=reason) as info:
            load_all(tmp_path / "bad.npz")
        assert "bad.npz" in str(info.value)


def test_several_backbones_refuse_one_checkpoint_for_all(tiny2, images):
    from fidrs.multi_pass import stats_by_backbone

    with pytest.raises(fidrs.InvalidInputError, match="weights names one backbone's network"):
        stats_by_backbone(images[0], ["tiny", "tiny2"], weights=os.environ["FIDRS_WEIGHTS_TINY"])
    with pytest.raises(fidrs.InvalidInputError, match="each backbone once"):
        stats_by_backbone(images[0], ["tiny", "tiny"])


def test_the_streaming_accumulator_accepts_any_reference_file(tiny, images, tmp_path):
    _, checkpoint = tiny
    a, _ = images
    pixels = np.random.default_rng(2).integers(0, 256, (6, 16, 16, 3), dtype=np.uint8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fidrs.SmallSampleWarning)  # 6 images < 8 features: the same on both paths
        evaluator = fidrs.Evaluator(backbone="tiny", weights=checkpoint)
        save_all(tmp_path / "ref.npz", [evaluator.stats(a)])
        accumulator = evaluator.accumulator()
        accumulator.update(pixels)
        # test_streaming.py's bound: the same features folded in batches cut differently differ by float64
        # summation order only (~1e-14 relative); 1e-9 fails on any pixel or feature difference.
        expected = evaluator.score(str(tmp_path / "ref.npz"), pixels)
        assert accumulator.compute(str(tmp_path / "ref.npz")) == pytest.approx(expected, rel=1e-9)


def test_a_metric_of_features_refuses_a_statistics_file_naming_it(tiny, images, tmp_path):
    _, checkpoint = tiny
    np.savez(tmp_path / "only_stats.npz", mu=np.zeros(8), sigma=np.eye(8))
    with pytest.raises(fidrs.InvalidInputError, match=r"only_stats\.npz: a statistics file cannot be used here"):
        fidrs.kid(str(tmp_path / "only_stats.npz"), images[1], backbone="tiny", weights=checkpoint)
