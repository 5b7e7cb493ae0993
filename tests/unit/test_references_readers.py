"""Readers of every published reference format, on files written here the way each tool writes them (its call,
its dtypes, its key names), and the same files truncated, crafted or mismatched."""

from __future__ import annotations

import functools
import io
import os
import pickle
import zipfile

import fidrs
import numpy as np
import pytest
from fidrs.errors import IncompatibleStatsError, InvalidInputError
from fidrs.references import read_reference, sniff_format
from fidrs.references.readers import MAX_PICKLE_BYTES
from fidrs.statistics import Stats

D = 16  # feature size of the test statistics: small, so every file is a few KiB
# Except where the file says (or its layout implies) whose statistics they are: the Inception's are pool3, 2048-d
# (ADM's batches, EDM2's `fid`), DINOv2 ViT-L/14's 1024-d (EDM2's `fd_dinov2`); fidrs refuses statistics of a size
# their backbone cannot give.
POOL3, DINOV2_L = 2048, 1024


def _activations(seed: int, n: int = 64, d: int = D) -> np.ndarray:
    """float32 activations as TF/torch networks return them (pool3: d = POOL3)."""
    return np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)


@functools.cache
def _mean_and_cov(seed: int, d: int, float64: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """np.mean and np.cov of `_activations(seed, d=d)` (widened to float64 first when `float64`), as the tools
    compute them, once per process: at pool3's width each np.cov takes ~0.1 s, and the writers below call it in
    most tests. Read-only, so that no test can change them for another."""
    act = _activations(seed, d=d)
    if float64:
        act = act.astype(np.float64)
    mu, sigma = np.mean(act, axis=0), np.cov(act, rowvar=False)
    mu.flags.writeable = sigma.flags.writeable = False
    return mu, sigma


def write_adm(path, seed=0, images=5, size=8, labels=True):
    """An ADM reference batch. evaluations/evaluator.py `compute_statistics`: mu = np.mean(f32 activations)
    (float32), sigma = np.cov (float64); the batch also holds 10k uint8 NHWC images (`arr_0`), the spatial
    statistics `mu_s`/`sigma_s` for sFID and, for the `_labeled` batches, labels (`arr_1`); np.savez."""
    (mu, sigma), (mu_s, sigma_s) = _mean_and_cov(seed, POOL3), _mean_and_cov(seed + 1, 7)
    rng = np.random.default_rng(seed)
    arrays = {
        "arr_0": rng.integers(0, 256, (images, size, size, 3), dtype=np.uint8),
        "mu": mu,
        "sigma": sigma,
        "mu_s": mu_s,
        "sigma_s": sigma_s,
    }
    if labels:
        arrays["arr_1"] = rng.integers(0, 1000, images)
    np.savez(path, **arrays)
    return arrays


def write_clean_fid(path, seed=0):
    """clean-fid `make_custom_stats` / its published stats: mu = np.mean(f32 features), sigma = np.cov,
    np.savez_compressed(mu=, sigma=)."""
    feats = _activations(seed)
    arrays = {"mu": np.mean(feats, axis=0), "sigma": np.cov(feats, rowvar=False)}
    np.savez_compressed(path, **arrays)
    return arrays


def write_clean_fid_kid(path, seed=0):
    """clean-fid's KID statistics: np.savez_compressed(feats=np_feats), float32 features."""
    feats = _activations(seed)
    np.savez_compressed(path, feats=feats)
    return feats


def write_edm(path, seed=0):
    """EDM fid.py `ref`: mu, sigma accumulated in torch.float64 → numpy float64; np.savez(mu=, sigma=)."""
    act = _activations(seed).astype(np.float64)
    arrays = {"mu": act.mean(0), "sigma": np.cov(act, rowvar=False)}
    np.savez(path, **arrays)
    return arrays


def write_ttur(path, seed=0):
    """TTUR precalc_stats_example.py: mu = np.mean(float32 act) (float32), sigma = np.cov (float64);
    np.savez_compressed(mu=, sigma=)."""
    act = _activations(seed)
    arrays = {"mu": np.mean(act, axis=0), "sigma": np.cov(act, rowvar=False)}
    np.savez_compressed(path, **arrays)
    return arrays


def write_pytorch_fid(path, seed=0):
    """pytorch-fid save_fid_stats: activations in a float64 array, np.savez_compressed(mu=, sigma=)."""
    act = _activations(seed).astype(np.float64)
    arrays = {"mu": np.mean(act, axis=0), "sigma": np.cov(act, rowvar=False)}
    np.savez_compressed(path, **arrays)
    return arrays


def write_edm2(path, seed=0, protocol=pickle.DEFAULT_PROTOCOL, **replace):
    """EDM2 calculate_metrics.py `ref` → save_stats: pickle.dump of dict(num_images=int, <metric>=dict(mu=,
    sigma=)) with float64 arrays (running sums in torch.float64), for its default metrics fid and fd_dinov2."""
    (mu, sigma), (mu_d, sigma_d) = _mean_and_cov(seed, POOL3, True), _mean_and_cov(seed + 1, DINOV2_L, True)
    stats = {
        "num_images": 64,
        "fid": {"mu": mu, "sigma": sigma},
        "fd_dinov2": {"mu": mu_d, "sigma": sigma_d},
    }
    stats.update(replace)
    with open(path, "wb") as f:
        pickle.dump(stats, f, protocol=protocol)
    return stats


# --- good files ----------------------------------------------------------------------------------------------


def _same(entry, arrays):
    """The reader keeps the stored values exactly (widened to float64, which is exact)."""
    assert entry.mu.dtype == np.float64 and entry.sigma.dtype == np.float64
    assert np.array_equal(entry.mu, arrays["mu"].astype(np.float64))
    assert np.array_equal(entry.sigma, arrays["sigma"].astype(np.float64))


def test_adm_reference_batch(tmp_path):
    path = tmp_path / "VIRTUAL_imagenet64_labeled.npz"
    arrays = write_adm(path)
    ref = read_reference(path)
    assert ref.format == "adm-batch" == sniff_format(path)
    entry = ref.entry("inception")
    _same(entry, arrays)
    assert entry.stored == "mu float32, sigma float64" and entry.label == "mu,sigma"
    p = entry.provenance
    assert (p.tool, p.backbone, p.mode, p.source) == ("adm", "inception", "tf1", "format")
    assert np.array_equal(ref.spatial[0], arrays["mu_s"]) and np.array_equal(ref.spatial[1], arrays["sigma_s"])
    assert any("mu_s/sigma_s" in note and "not used" in note for note in ref.notes)
    assert any("arr_1" in note for note in ref.notes)
    assert ref.images.shape == (5, 8, 8, 3) and len(ref.images) == 5
    assert np.array_equal(ref.images.load(), arrays["arr_0"])
    assert np.array_equal(ref.images.rows(1, 4), arrays["arr_0"][1:4])
    assert np.array_equal(np.concatenate(list(ref.images.batches(2))), arrays["arr_0"])


def test_adm_images_are_read_only_when_asked_for(tmp_path):
    """Damage the images' bytes (not their header): the statistics still read, the images fail only on demand."""
    path = tmp_path / "ref.npz"
    write_adm(path, images=50, size=16)
    raw = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as z:
        info = z.getinfo("arr_0.npy")
    raw[info.header_offset + 30 + len(info.filename) + 500] ^= 0xFF  # inside arr_0's data: its CRC breaks
    path.write_bytes(bytes(raw))
    ref = read_reference(path)
    assert ref.entry().mu.shape == (POOL3,)
    with pytest.raises(InvalidInputError, match=rf"{path}: member 'arr_0.npy': damaged .*CRC"):
        ref.images.load()


def test_mu_sigma_beside_images_without_the_sfid_statistics_have_no_implied_mode(tmp_path):
    path = tmp_path / "batch.npz"
    np.savez(path, arr_0=np.zeros((2, 4, 4, 3), np.uint8), **write_edm(tmp_path / "edm.npz"))
    ref = read_reference(path)
    assert ref.format == "adm-batch" and not ref.entry().provenance.known and ref.images.shape == (2, 4, 4, 3)


def test_an_adm_sample_batch_holds_images_only(tmp_path):
    path = tmp_path / "samples.npz"
    images = np.random.default_rng(0).integers(0, 256, (4, 6, 6, 3), dtype=np.uint8)
    np.savez(path, arr_0=images)  # ADM's sample batches: 50k images, no statistics
    ref = read_reference(path)
    assert ref.format == "adm-batch" and ref.entries == {} and np.array_equal(ref.images.load(), images)
    with pytest.raises(IncompatibleStatsError, match="holds no statistics"):
        ref.entry()


@pytest.mark.parametrize(
    ("writer", "stored"),
    [
        (write_clean_fid, "mu float32, sigma float64"),
        (write_edm, "mu float64, sigma float64"),
        (write_ttur, "mu float32, sigma float64"),
        (write_pytorch_fid, "mu float64, sigma float64"),
    ],
)
def test_mu_sigma_files_of_clean_fid_edm_ttur_pytorch_fid(tmp_path, writer, stored):
    path = tmp_path / "stats.npz"
    arrays = writer(path)
    ref = read_reference(path)
    assert ref.format == "mu-sigma"
    entry = ref.entry("inception")  # no backbone recorded: the file's only statistics
    _same(entry, arrays)
    assert entry.stored == stored and entry.n is None and not entry.provenance.known
    assert set(ref.entries) == {"unknown"}


def test_fidrs_files_keep_their_recorded_provenance(tmp_path):
    act = _activations(0, d=POOL3)
    moments = fidrs.Moments(POOL3)
    moments.update(act)
    Stats.from_moments(moments, "clean", "ab" * 32, "inception").save(tmp_path / "mine.npz")
    ref = read_reference(tmp_path / "mine.npz")
    entry = ref.entry("inception")
    p = entry.provenance
    assert ref.format == "fidrs" and (p.tool, p.mode, p.weights, p.n, p.source) == (
        "fidrs",
        "clean",
        "ab" * 32,
        64,
        "file",
    )


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_edm2_pickles_hold_one_entry_per_backbone(tmp_path, protocol):
    path = tmp_path / "img512.pkl"
    stats = write_edm2(path, protocol=protocol)
    ref = read_reference(path)
    assert ref.format == "edm2-pkl" and set(ref.entries) == {"inception", "dinov2-vitl14"}
    fid, dino = ref.entry("inception"), ref.entry("dinov2")  # an alias selects the canonical backbone
    _same(fid, stats["fid"])
    _same(dino, stats["fd_dinov2"])
    assert (fid.label, fid.n, fid.provenance.mode) == ("fid", 64, "tf1")
    # The file does not record EDM2's DINOv2 resize ('torch' by default, 'pil' on request): unknown here.
    assert (dino.label, dino.n, dino.provenance.mode) == ("fd_dinov2", 64, None)
    with pytest.raises(IncompatibleStatsError, match="several backbones"):
        ref.entry()
    with pytest.raises(IncompatibleStatsError, match="none of backbone dinov2-vits14"):
        ref.entry("dinov2-vits14")


def test_edm2_statistics_of_a_metric_fidrs_does_not_know_are_skipped_with_a_note(tmp_path):
    path = tmp_path / "ref.pkl"
    write_edm2(path, fd_clip={"mu": np.zeros(3), "sigma": np.eye(3)})
    ref = read_reference(path)
    assert set(ref.entries) == {"inception", "dinov2-vitl14"}
    assert any("'fd_clip' skipped" in note for note in ref.notes)


def test_an_npz_from_edm2s_npz_fallback_is_an_edm_file(tmp_path):
    # EDM2 load_stats reads a .npz as {'fid': dict(np.load(f))}: the EDM layout, read as mu-sigma.
    arrays = write_edm(tmp_path / "cifar10-32x32.npz")
    _same(read_reference(tmp_path / "cifar10-32x32.npz").entry(), arrays)


def _moments_tolerance(x: np.ndarray) -> float:
    # fidrs sums x and xxᵀ in float64 (each f32 product is exact in f64) and forms Σ = (Σxxᵀ − nμμᵀ)/(n − 1);
    # numpy's np.cov centres first. Both round each of n terms at u = 1.1e-16: differences up to
    # ~n·u·max|x|², here 64 · 1.1e-16 · ~20 ≈ 1.4e-13. 1e-12 · max|x|² bounds that with room, and is far
    # below any real difference (a single changed row moves Σ by ~|x|²/n ≈ 0.3).
    return 1e-12 * float(np.abs(x).max()) ** 2


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
def test_tf_gan_pool3_features_give_float64_moments(tmp_path, dtype):
    x = _activations(3).astype(dtype)
    np.save(tmp_path / "pool_3.npy", x)  # TF-GAN run_inception(output_tensor='pool_3:0') activations, saved
    np.savez(tmp_path / "acts.npz", pool_3=x)
    x64 = x.astype(np.float64)
    for name in ("pool_3.npy", "acts.npz"):
        ref = read_reference(tmp_path / name)
        entry = ref.entry()
        assert ref.format == "features" and entry.n == 64 and entry.label == "pool_3"
        assert np.abs(entry.mu - x64.mean(0)).max() <= _moments_tolerance(x64)
        assert np.abs(entry.sigma - np.cov(x64, rowvar=False)).max() <= _moments_tolerance(x64)
        assert np.array_equal(ref.features.load(), x)


def test_clean_fid_kid_features(tmp_path):
    path = tmp_path / "afhq_cat_clean_train_512_kid.npz"
    feats = write_clean_fid_kid(path)
    ref = read_reference(path)
    assert ref.format == "clean-fid-kid" and np.array_equal(ref.features.load(), feats)
    x64 = feats.astype(np.float64)
    assert np.abs(ref.entry().sigma - np.cov(x64, rowvar=False)).max() <= _moments_tolerance(x64)


# --- truncated, crafted, mismatched ----------------------------------------------------------------------------


WRITERS = {
    "adm.npz": write_adm,
    "clean-fid.npz": write_clean_fid,
    "kid.npz": write_clean_fid_kid,
    "edm.npz": write_edm,
    "edm2.pkl": write_edm2,
    "pool3.npy": lambda p: np.save(p, _activations(0)),
}


@pytest.mark.parametrize("name", WRITERS)
def test_truncated_files_are_refused_naming_the_file(tmp_path, name):
    good = tmp_path / name
    WRITERS[name](good)
    raw = good.read_bytes()
    for cut in (0, 1, 7, len(raw) // 3, len(raw) // 2, len(raw) - 1):
        path = tmp_path / f"cut{cut}-{name}"
        path.write_bytes(raw[:cut])
        with pytest.raises(InvalidInputError) as info:
            ref = read_reference(path)
            for lazy in (ref.images, ref.features):
                if lazy is not None:
                    lazy.load()
        assert str(path) in str(info.value), info.value


def test_a_fifo_is_refused_not_waited_on(tmp_path):
    fifo = tmp_path / "ref.npz"
    os.mkfifo(fifo)
    with pytest.raises(InvalidInputError, match=f"{fifo}: a FIFO, not a regular file"):
        read_reference(fifo)


def test_a_pickle_over_the_size_cap_is_refused_before_reading(tmp_path):
    path = tmp_path / "huge.pkl"
    with open(path, "wb") as f:
        f.truncate(MAX_PICKLE_BYTES + 1)  # sparse: nothing is written or read
    with pytest.raises(InvalidInputError, match=f"{MAX_PICKLE_BYTES + 1} bytes is over the limit"):
        read_reference(path)


@pytest.mark.parametrize(
    ("arrays", "reason"),
    [
        ({"mu": np.zeros(D), "sigma": np.eye(4)}, "do not fit together"),
        ({"mu": np.full(4, np.nan), "sigma": np.eye(4)}, "NaN"),
        ({"mu": np.zeros(4), "sigma": -np.eye(4)}, "not positive semi-definite"),
        ({"mu": np.zeros(4), "sigma": np.triu(np.ones((4, 4)))}, "not symmetric"),
        ({"mu": np.array(["a", "b"]), "sigma": np.eye(2)}, "'mu.npy': dtype <U1, expected one of the kinds 'fiu'"),
        ({"mu": np.zeros(2, complex), "sigma": np.eye(2)}, "'mu.npy': dtype complex128, expected one of the kinds"),
        ({"mu": np.zeros(2)}, "need 'mu' and 'sigma'"),
    ],
)
def test_statistics_that_are_no_mean_and_covariance_are_refused(tmp_path, arrays, reason):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(InvalidInputError, match=reason) as info:
        read_reference(path, format="mu-sigma")
    assert str(path) in str(info.value)


def test_object_arrays_are_never_unpickled(tmp_path):
    path = tmp_path / "obj.npz"
    np.savez(path, mu=np.array([{"x": 1}], dtype=object), sigma=np.eye(1))  # np.savez pickles object arrays
    with pytest.raises(InvalidInputError, match=f"{path}: member 'mu.npy': an array of dtype object .* is not read"):
        read_reference(path)


def test_a_statistics_member_declaring_more_than_it_holds_allocates_nothing(tmp_path):
    path = tmp_path / "crafted.npz"
    _npz_with_member(path, "mu.npy", (10**9,), b"\0" * 64, dtype="<f8")  # 8 GB declared, 64 bytes present
    with pytest.raises(InvalidInputError, match="'mu.npy': .* over the limit"):
        read_reference(path, format="mu-sigma")
    _npz_with_member(path, "sigma.npy", (3, 3), b"\0" * 64, dtype="<f8")
    with pytest.raises(
        InvalidInputError, match=r"'sigma.npy': the header declares \(3, 3\) float64 \(72 bytes\) but 64 bytes"
    ):
        read_reference(path, format="mu-sigma")


def _npz_with_member(path, name: str, header_shape, data: bytes, dtype="|u1"):
    """An .npz whose member `name` has a hand-written .npy header (a crafted file)."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": dtype, "fortran_order": False, "shape": tuple(header_shape)})
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(name, header.getvalue() + data)


def test_adm_images_whose_header_declares_more_than_the_file_holds(tmp_path):
    path = tmp_path / "crafted.npz"
    _npz_with_member(path, "arr_0.npy", (3, 4, 4, 3), b"\0" * 96)  # 144 bytes declared, 96 present
    with pytest.raises(InvalidInputError, match=f"{path}: member 'arr_0.npy': the header declares .* but 96 bytes"):
        read_reference(path)
    _npz_with_member(path, "arr_0.npy", (10**9, 512, 512, 3), b"\0" * 96)  # 786 TB declared
    with pytest.raises(InvalidInputError, match="786432000000000 bytes, over the limit"):
        read_reference(path)


def test_adm_arrays_of_the_wrong_kind_are_refused(tmp_path):
    path = tmp_path / "float_images.npz"
    np.savez(path, arr_0=np.zeros((2, 4, 4, 3), np.float32))
    with pytest.raises(InvalidInputError, match=r"arr_0 is float32 \(2, 4, 4, 3\), expected uint8 N×H×W×3"):
        read_reference(path)
    np.savez(path, arr_0=np.zeros((2, 4, 4), np.uint8))
    with pytest.raises(InvalidInputError, match=r"arr_0 is uint8 \(2, 4, 4\), expected uint8 N×H×W×3"):
        read_reference(path)
    np.savez(path, mu_s=np.zeros(3), sigma_s=np.eye(4))
    with pytest.raises(InvalidInputError, match="mu_s and sigma_s .* are no mean and covariance"):
        read_reference(path)


@pytest.mark.parametrize(
    ("replace", "reason"),
    [
        ({"num_images": 1}, "num_images = 1 is not a sample count"),
        ({"num_images": True}, "num_images = True is not a sample count"),
        ({"num_images": 2.5}, "num_images = 2.5 is not a sample count"),
        ({"num_images": 10**30}, f"num_images = {10**30} is over the largest sample count, 2\\^53"),
        ({"num_images": 2**53 + 1}, r"num_images = 9007199254740993 is over the largest sample count"),
        ({"fid": [1, 2]}, "'fid' is not a dict of mu and sigma"),
        ({"fid": {"mu": np.zeros(3)}}, "'fid' is not a dict of mu and sigma"),
        ({"fid": {"mu": np.zeros(3), "sigma": np.eye(2)}}, r"\[fid\]: mu \(3,\) and sigma \(2, 2\) do not fit"),
        ({"fd_dinov2": {"mu": "x", "sigma": np.eye(2)}}, r"\[fd_dinov2\]: mu is str"),
    ],
)
def test_edm2_pickles_of_another_layout_are_refused(tmp_path, replace, reason):
    path = tmp_path / "bad.pkl"
    write_edm2(path, **replace)
    with pytest.raises(InvalidInputError, match=reason) as info:
        read_reference(path)
    assert str(path) in str(info.value)


def test_pickles_that_are_not_edm2_statistics(tmp_path):
    path = tmp_path / "x.pkl"
    for obj, reason in (([1, 2], "holds a list"), ({"fid": 1}, "has no num_images"), ({"num_images": 5}, "none of")):
        path.write_bytes(pickle.dumps(obj))
        with pytest.raises(InvalidInputError, match=reason):
            read_reference(path)


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda p: np.save(p, _activations(0)[:1]), "1 feature row"),
        (lambda p: np.save(p, np.where(np.arange(D) == 3, np.nan, _activations(0))), "feature row 0 holds NaN"),
        (lambda p: np.save(p, np.zeros((4, D), np.int32)), "dtype int32"),
        (lambda p: np.save(p, np.zeros((4, 2, 2), np.float32)), "N×d array"),
        (lambda p: np.save(p, np.zeros((0, D), np.float32)), "0 feature row"),
    ],
)
def test_feature_files_that_give_no_statistics(tmp_path, make, reason):
    path = tmp_path / "features.npy"
    make(path)
    with pytest.raises(InvalidInputError, match=reason) as info:
        read_reference(path)
    assert str(path) in str(info.value)


def test_a_named_format_that_the_file_is_not(tmp_path):
    write_clean_fid_kid(tmp_path / "kid.npz")
    write_edm(tmp_path / "edm.npz")
    with pytest.raises(InvalidInputError, match="an ADM batch needs mu/sigma or arr_0"):
        read_reference(tmp_path / "kid.npz", format="adm-batch")
    with pytest.raises(InvalidInputError, match="not a readable pickle"):
        read_reference(tmp_path / "edm.npz", format="edm2-pkl")
    with pytest.raises(InvalidInputError, match="needs 'feats'"):
        read_reference(tmp_path / "edm.npz", format="clean-fid-kid")
    with pytest.raises(InvalidInputError, match="unknown reference format"):
        read_reference(tmp_path / "edm.npz", format="nope")
    np.savez(tmp_path / "two.npz", a=np.zeros((3, 2)), b=np.zeros((3, 2)))
    with pytest.raises(InvalidInputError, match="not reference statistics"):
        read_reference(tmp_path / "two.npz")


class _Payload:
    def __init__(self, marker) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_an_edm2_pickle_carrying_a_payload_is_refused_naming_the_file(tmp_path):
    path = tmp_path / "img512.pkl"
    marker = tmp_path / "ran"
    write_edm2(path, fid={"mu": _Payload(marker), "sigma": np.eye(2)})
    with pytest.raises(InvalidInputError, match=rf"{path}: the pickle names posix\.system, which is not allowed"):
        read_reference(path)
    assert not marker.exists(), "the payload ran"


def test_resolve_reads_a_plain_path_with_its_own_provenance(tmp_path):
    from fidrs.references import resolve

    arrays = write_adm(tmp_path / "ref.npz")
    ref = resolve(str(tmp_path / "ref.npz"))
    _same(ref.entry(), arrays)
    assert ref.entry().provenance.source == "format"


def test_rows_of_a_stored_member_are_read_in_place(tmp_path, monkeypatch):
    """ADM's batches are np.savez (stored): rows are read at their offset in the file, never through zipfile's
    member stream, which reads every byte before a position (a 7.9 GB batch re-read for every batch of rows)."""
    from fidrs.references import LazyArray

    x = np.random.default_rng(0).integers(0, 256, (50, 8, 8, 3), dtype=np.uint8)
    np.savez(tmp_path / "stored.npz", arr_0=x)
    np.savez_compressed(tmp_path / "compressed.npz", arr_0=x)
    stored = LazyArray.open(str(tmp_path / "stored.npz"), "arr_0.npy", kinds="u")
    compressed = LazyArray.open(str(tmp_path / "compressed.npz"), "arr_0.npy", kinds="u")
    with monkeypatch.context() as patch:
        patch.setattr(zipfile.ZipFile, "open", lambda *a, **k: pytest.fail("a stored member read through zipfile"))
        assert np.array_equal(stored.rows(40, 50), x[40:50]) and np.array_equal(stored.load(), x)
        assert np.array_equal(np.concatenate(list(stored.batches(7))), x)
    assert np.array_equal(compressed.rows(40, 50), x[40:50])  # deflated: zipfile's stream, read in order
