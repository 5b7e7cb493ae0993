"""Every input's provenance travels with its statistics: a statistics file, a reference, an embedding file, or a
Stats or FeatureSet made in Python, whose recorded backbone can never give arrays of their width (8-d statistics
recorded as the Inception's, whose pool3 features are 2048-d) is refused with InvalidInputError (CLI exit 2) naming
it, the backbone and both widths. Two such files compared with each other gave a number reported as the
Inception's FID (exit 0). The width a backbone's statistics have is its feature output's, the only output fidrs
computes statistics, references, caches or embedding files of. A backbone this process does not know (a plugin not
installed here) cannot be checked: its statistics are accepted as before and compared by size."""

from __future__ import annotations

import json

import fidrs
import numpy as np
import pytest
from cli_in_process import run_cli_here
from conftest import serve_folder
from fidrs.embedding_files import load_embeddings, provenance_path, save_embeddings
from fidrs.errors import InvalidInputError, ReferenceHashMismatchError
from fidrs.references import fetch, read_reference, resolve
from fidrs.statistics import FORMAT_VERSION, load_all, save_all

POOL3 = fidrs.backbones.get("inception").feature_dim  # 2048


def _refusal(where, backbone: str, width: int, what: str = "statistics", claim: str = "records") -> str:
    """The message of `provenance.check_backbone_width` for `width`-wide arrays recorded as `backbone`'s."""
    known = fidrs.backbones.get(backbone)
    name = backbone if known.name == backbone else f"{backbone} ({known.name})"
    return (
        f"{where}: {claim} backbone {name}, whose features ({known.feature_output}) are {known.feature_dim}-d, "
        f"but holds {width}-d {what}"
    )


def _stats(d: int, seed: int = 0, backbone: str | None = None, mode: str | None = "pytorch-fid") -> fidrs.Stats:
    moments = fidrs.Moments(d)
    moments.update(np.random.default_rng(seed).standard_normal((40, d)).astype(np.float32))
    return fidrs.Stats.from_moments(moments, mode, "0" * 64, backbone)


def _fidrs_file(path, d: int, backbone: str | None, seed: int = 0, mode: str | None = "pytorch-fid") -> str:
    """A fidrs statistics file as `Stats.save` lays it out (mu, sigma, n, mode, weights, the moments, version)
    recording `backbone`, written by hand: fidrs itself refuses to write one that contradicts its width."""
    members = _stats(d, seed, mode=mode).members()
    if backbone is not None:
        members["backbone"] = backbone
    np.savez(path, **members, version=FORMAT_VERSION)
    return str(path)


# --- fidrs statistics files ------------------------------------------------------------------------------------


def test_a_fidrs_file_recording_the_inception_with_8_d_statistics_is_refused(tmp_path):
    path = _fidrs_file(tmp_path / "a.npz", 8, "inception")
    expected = _refusal(path, "inception", 8)
    spelled = "records backbone inception, whose features (pool3) are 2048-d, but holds 8-d statistics"
    assert expected == f"{path}: {spelled}"
    for read in (fidrs.Stats.load, load_all, read_reference, resolve):
        with pytest.raises(InvalidInputError) as refused:
            read(path)
        assert str(refused.value) == expected, read


@pytest.mark.parametrize("json_flag", [[], ["--json"]])
def test_the_cli_refuses_two_such_files_with_exit_2_naming_the_file_and_both_widths(tmp_path, capsys, json_flag):
    a = _fidrs_file(tmp_path / "a.npz", 8, "inception", seed=0)
    b = _fidrs_file(tmp_path / "b.npz", 8, "inception", seed=1)
    out = run_cli_here(capsys, "score", a, b, *json_flag)
    assert out.returncode == 2, out
    assert out.stdout == "" and "Traceback" not in out.stderr
    assert out.stderr.strip() == f"fidrs: error: {_refusal(a, 'inception', 8)}"


def test_merge_refuses_such_shards_and_writes_nothing(tmp_path, capsys):
    a = _fidrs_file(tmp_path / "a.npz", 8, "inception", seed=0)
    b = _fidrs_file(tmp_path / "b.npz", 8, "inception", seed=1)
    out = run_cli_here(capsys, "merge", a, b, "-o", str(tmp_path / "ab.npz"))
    assert out.returncode == 2 and _refusal(a, "inception", 8) in out.stderr, out
    assert not (tmp_path / "ab.npz").exists()


def test_statistics_of_the_width_their_backbone_gives_are_accepted(tiny, tmp_path, capsys):
    for backbone, d in (("inception", POOL3), ("tiny-test", 8)):  # tiny-test: the tiny's alias
        path = _fidrs_file(tmp_path / f"{backbone}.npz", d, backbone)
        assert fidrs.Stats.load(path).backbone == backbone and read_reference(path).entry().mu.shape == (d,)
    a = _fidrs_file(tmp_path / "a.npz", 8, "tiny", seed=0, mode="plain")
    b = _fidrs_file(tmp_path / "b.npz", 8, "tiny", seed=1, mode="plain")
    out = run_cli_here(capsys, "score", a, b, "--json")
    assert out.returncode == 0, out.stderr
    expected = fidrs.Evaluator().compute("fid", *(fidrs.Stats.load(p) for p in (a, b))).value
    assert json.loads(out.stdout)["fid"] == expected  # the same statistics and code: bit for bit


def test_an_alias_is_checked_as_its_backbone_and_named_as_recorded(tiny, tmp_path):
    path = _fidrs_file(tmp_path / "alias.npz", 6, "tiny-test")
    with pytest.raises(InvalidInputError) as refused:
        fidrs.Stats.load(path)
    assert str(refused.value) == (
        f"{path}: records backbone tiny-test (tiny), whose features (features) are 8-d, but holds 6-d statistics"
    )


def test_a_backbone_this_process_does_not_know_is_not_checked(tmp_path):
    """A plugin's backbone not installed here: nothing says which width it gives. Its files read as before; two of
    them compare (by size, as any statistics whose backbone is not known here)."""
    a, b = (_fidrs_file(tmp_path / f"{n}.npz", 8, "someones-plugin-net", seed=i) for i, n in enumerate("ab"))
    loaded = [fidrs.Stats.load(path) for path in (a, b)]
    assert [s.backbone for s in loaded] == ["someones-plugin-net"] * 2
    assert read_reference(a).entry().provenance.backbone == "someones-plugin-net"
    result = fidrs.Evaluator().compute("fid", *loaded)
    (mu1, sigma1), (mu2, sigma2) = ((s.mu, s.sigma) for s in loaded)
    assert result.value == pytest.approx(fidrs.frechet_distance(mu1, sigma1, mu2, sigma2), rel=1e-12)
    assert result.provenance.backbone == "someones-plugin-net"


def test_a_file_of_several_backbones_has_each_backbones_statistics_checked(tiny, tmp_path):
    """`save_all`'s layout: the first backbone's members at the top level, the others' under `<backbone>.`."""
    members = {**_stats(8, 0, "tiny", "plain").members(), "version": FORMAT_VERSION}
    members.update({f"inception.{k}": v for k, v in _stats(8, 1, "inception").members().items()})
    path = tmp_path / "both.npz"
    np.savez(path, **members, backbones=np.array(["tiny", "inception"]))
    assert fidrs.Stats.load(path).backbone == "tiny"  # the top level is the tiny's, and honest
    expected = _refusal(f"{path} [inception]", "inception", 8)
    for read in (lambda p: fidrs.Stats.load(p, "inception"), load_all, read_reference):
        with pytest.raises(InvalidInputError) as refused:
            read(path)
        assert str(refused.value) == expected


def test_fidrs_does_not_write_statistics_it_would_refuse_to_read(tiny, tmp_path):
    wrong, folder = _stats(8, backbone="inception"), tmp_path / "out"
    folder.mkdir()
    with pytest.raises(InvalidInputError) as refused:
        wrong.save(folder / "s.npz")
    assert str(refused.value) == _refusal(f"{folder / 's.npz'} (not written)", "inception", 8)
    with pytest.raises(InvalidInputError, match="holds 8-d statistics"):
        save_all(folder / "all.npz", [_stats(8, backbone="tiny", mode="plain"), wrong])
    assert sorted(folder.iterdir()) == []


# --- statistics made in Python ---------------------------------------------------------------------------------


def test_stats_made_in_python_are_checked_before_any_comparison():
    wrong, unlabelled = _stats(8, 0, backbone="inception"), _stats(8, 1)
    with pytest.raises(InvalidInputError) as refused:
        fidrs.Evaluator().compute("fid", wrong, unlabelled)
    assert str(refused.value) == _refusal("a", "inception", 8)
    with pytest.raises(InvalidInputError, match="^b: records backbone inception"):
        fidrs.Evaluator().compute("fid", unlabelled, wrong)
    with pytest.raises(InvalidInputError, match="^a: records backbone inception"):
        wrong.check_compatible(unlabelled)
    with pytest.raises(InvalidInputError, match="^b: records backbone inception"):
        unlabelled.merge(wrong)
    assert unlabelled.merge(_stats(8, 2)).n == 80  # without a recorded backbone: compared by size, as before


# --- references: what a file's layout or its catalogue entry implies ---------------------------------------------


def test_an_adm_batch_of_8_d_statistics_is_refused(tmp_path, capsys):
    """The ADM evaluator's layout (mu, sigma beside the sFID statistics) implies Inception statistics."""
    s = _stats(8)
    path = tmp_path / "adm.npz"
    images = np.zeros((2, 8, 8, 3), np.uint8)
    np.savez(path, mu=s.mu, sigma=s.sigma, mu_s=np.zeros(3), sigma_s=np.eye(3), arr_0=images)
    expected = _refusal(path, "inception", 8, claim="is in adm's layout, which implies")
    with pytest.raises(InvalidInputError) as refused:
        read_reference(path)
    assert str(refused.value) == expected
    np.savez(tmp_path / "other.npz", mu=s.mu, sigma=s.sigma)
    out = run_cli_here(capsys, "score", str(path), str(tmp_path / "other.npz"))
    assert out.returncode == 2 and out.stderr.strip() == f"fidrs: error: {expected}", out
    # mu/sigma beside images alone imply no tool, and so no backbone: accepted, compared by size.
    np.savez(path, mu=s.mu, sigma=s.sigma, arr_0=images)
    assert read_reference(path).entry().provenance.backbone is None


def test_an_edm2_pickle_whose_fid_entry_is_not_pool3_is_refused(tmp_path):
    import pickle

    s = _stats(8)
    path = tmp_path / "img64.pkl"
    path.write_bytes(pickle.dumps({"num_images": 40, "fid": {"mu": s.mu, "sigma": s.sigma}}))
    with pytest.raises(InvalidInputError) as refused:
        read_reference(path)
    assert str(refused.value) == _refusal(f"{path} [fid]", "inception", 8, claim="is in edm2's layout, which implies")


def test_a_catalogued_reference_of_another_size_is_not_the_published_file(tmp_path, monkeypatch):
    monkeypatch.setenv("FIDRS_CACHE", str(tmp_path / "cache"))
    s = _stats(8)
    np.savez(tmp_path / "mine.npz", mu=s.mu, sigma=s.sigma)  # the layout TTUR's file has, of 8 features
    monkeypatch.setenv("FIDRS_REF_TTUR_CIFAR10_TRAIN", str(tmp_path / "mine.npz"))
    claim = "its catalogue entry (ttur/cifar10-train) gives"
    with pytest.raises(InvalidInputError) as refused:
        resolve("ref:ttur/cifar10-train")
    assert str(refused.value) == _refusal(tmp_path / "mine.npz", "inception", 8, claim=claim)
    # Downloaded, the same file is not the one published (and is deleted).
    monkeypatch.delenv("FIDRS_REF_TTUR_CIFAR10_TRAIN")
    with serve_folder(tmp_path) as url, pytest.raises(ReferenceHashMismatchError) as refused:
        fetch("ttur/cifar10-train", url=f"{url}/mine.npz")
    message = str(refused.value)
    reason = _refusal("", "inception", 8, claim=claim).removeprefix(": ")
    assert "is not the published ttur/cifar10-train" in message and reason in message


# --- embedding files ---------------------------------------------------------------------------------------------


def _feature_set(rows: np.ndarray, backbone: str, mode: str) -> fidrs.FeatureSet:
    return fidrs.FeatureSet(rows, None, [f"x{i}" for i in range(len(rows))], mode, "a" * 64, [], backbone, None)


def test_an_embedding_file_whose_provenance_contradicts_its_width_is_refused(tiny, tmp_path, capsys):
    rows = np.random.default_rng(0).standard_normal((40, 8)).astype(np.float32)
    out = str(tmp_path / "x.npy")
    save_embeddings(out, rows, _feature_set(rows, "tiny", "plain"))
    assert load_embeddings(out).provenance.backbone == "tiny"  # honest: the tiny's features are 8-d
    meta = provenance_path(out)
    record = json.loads(open(meta).read())
    record["backbone"] = "inception"  # the array (and its sha256) unchanged: only the label lies
    with open(meta, "w") as f:
        json.dump(record, f)
    claim = f"its provenance file ({meta}) records"
    expected = _refusal(out, "inception", 8, what="embeddings", claim=claim)
    with pytest.raises(InvalidInputError) as refused:
        load_embeddings(out)
    assert str(refused.value) == expected
    cli = run_cli_here(capsys, "kid", out, out, "--subset-size", "10", "--subsets", "2")
    assert cli.returncode == 2 and cli.stderr.strip() == f"fidrs: error: {expected}", cli


def test_fidrs_does_not_write_an_embedding_file_it_would_refuse_to_read(tmp_path):
    rows = np.random.default_rng(0).standard_normal((40, 8)).astype(np.float32)
    with pytest.raises(InvalidInputError, match=r"x\.npy \(not written\): records backbone inception, .* 8-d"):
        save_embeddings(tmp_path / "x.npy", rows, _feature_set(rows, "inception", "pytorch-fid"))
    assert sorted(tmp_path.iterdir()) == []
