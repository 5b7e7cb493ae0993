"""Provenance, enforced: every branch of the mode decision, a catalogue's provenance applied to a file, and the
acceptance case (an ADM batch compared with images: refused in pytorch-fid mode, tf1 by default)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from fidrs.errors import IncompatibleStatsError
from fidrs.references import ReferenceProvenance, decide_mode, read_reference, with_user_mode
from fidrs.references.provenance import UNKNOWN
from fidrs.references.reference import ReferenceEntry, ReferenceFile

ADM = ReferenceProvenance(tool="adm", backbone="inception", mode="tf1", source="catalogue:adm/imagenet-256")


def test_a_known_mode_is_used_when_none_is_asked_for():
    d = decide_mode(ADM)
    assert (d.mode, d.reference_mode, d.known, d.note) == ("tf1", "tf1", True, None)


def test_an_explicit_mode_that_agrees_is_fine():
    assert decide_mode(ADM, mode="tf1").mode == "tf1"


def test_an_explicit_mode_that_contradicts_is_refused_with_the_reason():
    with pytest.raises(IncompatibleStatsError) as info:
        decide_mode(ADM, mode="pytorch-fid", label="ref:adm/imagenet-256")
    message = str(info.value)
    for part in (
        "ref:adm/imagenet-256 was made in mode tf1",
        "made by adm",
        "--mode pytorch-fid",
        "--allow-mode-mismatch",
    ):
        assert part in message


def test_an_allowed_mismatch_keeps_the_asked_mode_and_says_so():
    d = decide_mode(ADM, mode="pytorch-fid", allow_mode_mismatch=True)
    assert (d.mode, d.reference_mode) == ("pytorch-fid", "tf1")
    assert "not comparable" in d.note and "tf1" in d.note and "pytorch-fid" in d.note


@pytest.mark.parametrize("asked", [None, "clean"])
def test_an_unknown_provenance_keeps_what_was_asked(asked):
    for provenance in (None, UNKNOWN, ReferenceProvenance(tool="edm2", backbone="dinov2-vitl14", source="format")):
        d = decide_mode(provenance, mode=asked)
        assert (d.mode, d.reference_mode, d.known, d.note) == (asked, None, False, None)


def test_ref_mode_supplies_an_unknown_mode():
    d = decide_mode(UNKNOWN, ref_mode="clean")
    assert (d.mode, d.reference_mode, d.note) == ("clean", "clean", None)
    provenance, note = with_user_mode(UNKNOWN, "clean")
    assert (provenance.mode, provenance.source, note) == ("clean", "user", None)
    with pytest.raises(IncompatibleStatsError, match="made in mode clean"):
        decide_mode(UNKNOWN, ref_mode="clean", mode="tf1")


def test_ref_mode_that_agrees_changes_nothing():
    assert with_user_mode(ADM, "tf1") == (ADM, None)
    assert decide_mode(ADM, ref_mode="tf1").mode == "tf1"


def test_ref_mode_that_contradicts_the_provenance_is_refused_unless_allowed():
    with pytest.raises(IncompatibleStatsError, match="--ref-mode clean contradicts its provenance"):
        decide_mode(ADM, ref_mode="clean")
    d = decide_mode(ADM, ref_mode="clean", allow_mode_mismatch=True)
    assert (d.mode, d.reference_mode) == ("clean", "clean") and "overrides its recorded mode tf1" in d.note


def test_both_contradictions_allowed_give_both_notes():
    d = decide_mode(ADM, ref_mode="clean", mode="pad", allow_mode_mismatch=True)
    assert d.mode == "pad" and "--ref-mode clean overrides" in d.note and "computed in pad" in d.note


def test_a_mode_the_backbone_lacks_is_refused():
    edm2 = ReferenceProvenance(tool="edm2", backbone="dinov2-vitl14", mode="edm2", source="catalogue:edm2/img512")
    with pytest.raises(IncompatibleStatsError, match="needs mode edm2.*its modes: dgm-eval"):
        decide_mode(edm2, available_modes=["dgm-eval"])
    assert decide_mode(edm2, available_modes=["dgm-eval", "edm2"]).mode == "edm2"


POOL3 = 2048  # the Inception's statistics are pool3's: a file of Inception statistics of another size is refused


def _entry(label: str, provenance: ReferenceProvenance) -> ReferenceEntry:
    mu, sigma = np.zeros(POOL3), np.eye(POOL3)
    return ReferenceEntry(label, mu, sigma, provenance.n, provenance, "mu float64, sigma float64")


def test_a_catalogue_provenance_rekeys_unknown_entries_by_backbone():
    ref = ReferenceFile.of("r.npz", "mu-sigma", [_entry("mu,sigma", UNKNOWN)])
    assert set(ref.entries) == {"unknown"}
    given = ReferenceProvenance(
        tool="ttur", backbone="inception", mode="tf1", n=50000, source="catalogue:ttur/cifar10-train"
    )
    out = ref.with_provenance({"mu,sigma": given}, note="from the catalogue")
    assert set(out.entries) == {"inception"} and out.entry("inception").provenance == given
    assert out.entry("inception").n == 50000 and out.notes == ("from the catalogue",)


def test_a_catalogue_that_contradicts_the_file_is_refused():
    recorded = ReferenceProvenance(tool="edm2", backbone="inception", mode="tf1", n=64, source="format")
    ref = ReferenceFile.of("r.pkl", "edm2-pkl", [_entry("fid", recorded)])
    for field, value in (("backbone", "dinov2-vitl14"), ("mode", "clean"), ("n", 65)):
        given = ReferenceProvenance(**{**recorded.__dict__, "source": "catalogue:x", field: value})
        with pytest.raises(IncompatibleStatsError, match=f"records {field}"):
            ref.with_provenance({"fid": given})
    with pytest.raises(IncompatibleStatsError, match="does not describe"):
        ref.with_provenance({"fd_dinov2": recorded})


def test_two_entries_of_one_backbone_are_refused():
    p = ReferenceProvenance(backbone="inception", mode="tf1")
    with pytest.raises(IncompatibleStatsError, match="both statistics of backbone inception"):
        ReferenceFile.of("r.pkl", "edm2-pkl", [_entry("fid", p), _entry("fid2", p)])


def test_an_adm_batch_is_refused_in_pytorch_fid_mode_and_runs_in_tf1_by_default(tmp_path, weights):
    """Acceptance: an ADM-style reference batch made by fidrs in tf1 from images A; images B compared with it.
    pytorch-fid is refused; the default decision is tf1, and FID(reference, B) then equals fidrs' own FID of
    A and B in tf1."""
    import fidrs
    from conftest import write_images
    from PIL import Image

    folder_a, folder_b = write_images(tmp_path / "a", 6, seed=1), write_images(tmp_path / "b", 6, seed=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fidrs.SmallSampleWarning)  # 6 images < 2048 features: the same on both sides
        stats_a = fidrs.stats(str(folder_a), weights=weights, mode="tf1")
        images_a = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in sorted(folder_a.iterdir())])
        # The ADM layout: float64 statistics, the sFID ones (here a stand-in), and the images as uint8 NHWC.
        np.savez(
            tmp_path / "ref.npz",
            mu=stats_a.mu,
            sigma=stats_a.sigma,
            mu_s=np.zeros(3),
            sigma_s=np.eye(3),
            arr_0=images_a,
        )

        ref = read_reference(tmp_path / "ref.npz")
        entry = ref.entry("inception")
        with pytest.raises(IncompatibleStatsError, match="made in mode tf1"):
            decide_mode(entry.provenance, mode="pytorch-fid", available_modes=fidrs.backbones.get("inception").modes)
        decision = decide_mode(entry.provenance, available_modes=fidrs.backbones.get("inception").modes)
        assert decision.mode == "tf1"

        stats_b = fidrs.stats(str(folder_b), weights=weights, mode=decision.mode)
        against_reference = fidrs.frechet_distance(entry.mu, entry.sigma, stats_b.mu, stats_b.sigma)
        direct = fidrs.score(str(folder_a), str(folder_b), weights=weights, mode="tf1")
        # The reference holds A's float64 statistics exactly, and both paths run the same Fréchet code on the same
        # features: identical (measured: 0 difference); 1e-12 relative leaves room only for a BLAS that sums in
        # another order from run to run.
        assert against_reference == pytest.approx(direct, rel=1e-12)
        # The batch's images, read lazily, give the reference's own statistics back: lossless PNGs decode to the
        # same pixels, and features and moments are deterministic.
        again = fidrs.stats(ref.images.load(), weights=weights, mode=decision.mode)
        assert np.array_equal(again.mu, entry.mu) and np.array_equal(again.sigma, entry.sigma)

        # The same through fidrs.score itself: refused in pytorch-fid mode before any image is read; by default the
        # images are computed in tf1 and the value is the one above (the same statistics, the same code).
        batch = str(tmp_path / "ref.npz")
        with pytest.raises(IncompatibleStatsError, match="made in mode tf1"):
            fidrs.score(batch, str(folder_b), weights=weights, mode="pytorch-fid")
        details = fidrs.score_details(batch, str(folder_b), weights=weights)
        assert details["mode"] == "tf1" and details["fid"] == against_reference
        # A metric of features computes the batch's images (read lazily) and the other side both in tf1.
        kid = fidrs.kid(batch, str(folder_b), weights=weights, subset_size=3, subsets=2)
        direct_kid = fidrs.kid(images_a, str(folder_b), weights=weights, mode="tf1", subset_size=3, subsets=2)
        assert kid.provenance.mode == "tf1" and (kid.value, kid.std) == (direct_kid.value, direct_kid.std)
