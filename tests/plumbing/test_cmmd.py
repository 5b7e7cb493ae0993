"""CMMD as a metric (fidrs.cmmd, `fidrs cmmd`): against the estimator written out in float64 with NumPy, the
official tool's batch-remainder rule, the bootstrap, embedding files (.npy, google-research/cmmd's
--ref_embed_file) written and read, hostile ones refused by name, and provenance checked. Plumbing on the tiny
test backbone; the real network's conformance is in tests/conformance/test_cmmd_conformance.py."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import fidrs
import numpy as np
import pytest
from conftest import write_images
from fidrs import cli
from fidrs.embedding_files import load_embeddings, provenance_path
from fidrs.errors import FidrsWarning, IncompatibleStatsError, InvalidInputError, UnknownModeWarning
from fidrs.metrics.cmmd import BACKBONE, MODE, OFFICIAL_BATCH

# The Rust estimator against the float64 formula: each kernel entry's k − 1 is within ~1e-15 absolute (d·u of
# rounding in ‖a − b‖², /200, plus exp's 2 ulp), so MMD² within ~4e-15 absolute, ~4e-11 relative at the MMD² of
# these sets (~1e-4); the NumPy reference (expm1, float64) is as exact. 1e-9 relative is tests/test_mmd.py's
# bound, 10⁴ times tighter than the acceptance's 1e-5.
RTOL = 1e-9
# CMMD's embeddings are its backbone's (768-d): fidrs refuses features whose recorded backbone cannot give their size.
D = fidrs.backbones.get(BACKBONE).feature_dim


def embeddings(n: int, d: int = D, seed: int = 0, shift: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((n, d)) + shift).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def brute_force(x: np.ndarray, y: np.ndarray, sigma: float = 10.0) -> float:
    """1000 × the biased MMD² term by term in float64 (exact differences of the float32 values; expm1 so that
    the three means near 1 do not cancel)."""
    x, y = x.astype(np.float64), y.astype(np.float64)

    def mean(p, q):
        return np.expm1(-((p[:, None, :] - q[None, :, :]) ** 2).sum(-1) / (2 * sigma**2)).mean()

    return 1000 * (mean(x, x) + mean(y, y) - 2 * mean(x, y))


def feature_set(rows: np.ndarray, backbone: str = BACKBONE, mode: str = MODE, weights: str = "a" * 64):
    return fidrs.FeatureSet(rows, None, [f"img{i}.png" for i in range(len(rows))], mode, weights, [], backbone, None)


# --- the estimator as a metric ---------------------------------------------------------------------------------


@pytest.mark.parametrize("remainder, used", [("drop", (64, 32)), ("keep", (70, 50))])
def test_cmmd_equals_the_float64_formula_on_the_rows_the_rule_keeps(remainder, used):
    x, y = embeddings(70, seed=1), embeddings(50, seed=2, shift=0.05)
    result = fidrs.cmmd(feature_set(x), feature_set(y), batch_remainder=remainder)
    # drop: the first ⌊n/32⌋·32 rows in input order, as the official tool's batches with drop_remainder=True
    assert result.n == (70, 50) and result.n_used == list(used)
    want = brute_force(x[: used[0]], y[: used[1]])
    assert result.value == pytest.approx(want, rel=RTOL)
    assert result.metric == "cmmd" and result.params["batch_remainder"] == remainder
    assert result.provenance.backbone == BACKBONE and result.provenance.mode == MODE
    assert result.to_dict()["cmmd"] == result.value and result.low is None


def test_drop_is_the_default_and_refuses_sets_smaller_than_one_batch():
    assert fidrs.metrics.get_metric("cmmd").param("batch_remainder").default == "drop"
    x, y = embeddings(40, seed=3), embeddings(31, seed=4)
    with pytest.raises(InvalidInputError, match=r"31 images, fewer than one batch of 32.*keep"):
        fidrs.cmmd(feature_set(x), feature_set(y))
    kept = fidrs.cmmd(feature_set(x), feature_set(y), batch_remainder="keep")
    assert kept.n_used == [40, 31] and kept.value == pytest.approx(brute_force(x, y), rel=RTOL)


def test_the_bootstrap_is_the_estimator_of_each_documented_resample():
    """Resample r draws len(x) rows of x then len(y) of y with replacement from default_rng(seed); the interval
    is the percentile interval of the rounds' values, each the biased estimator of the resampled sets."""
    x, y = embeddings(64, seed=5), embeddings(32, seed=6, shift=0.1)
    rounds, seed = 12, 7
    result = fidrs.cmmd(feature_set(x), feature_set(y), bootstrap=rounds, seed=seed, confidence=0.9)
    assert result.value == fidrs.cmmd(feature_set(x), feature_set(y)).value  # the same pass, the same bits
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(rounds):
        ix, iy = rng.integers(0, 64, 64), rng.integers(0, 32, 32)
        values.append(brute_force(x[ix], y[iy]))
    assert result.low == pytest.approx(np.quantile(values, 0.05), rel=RTOL)
    assert result.high == pytest.approx(np.quantile(values, 0.95), rel=RTOL)
    assert result.bootstrap_std == pytest.approx(np.std(values, ddof=1), rel=1e-6)
    assert result.low < result.high


@pytest.mark.parametrize(
    "params, message",
    [
        ({"batch_remainder": "sometimes"}, "batch_remainder must be one of"),
        ({"bootstrap": 1}, "bootstrap must be 0"),
        ({"bootstrap": -3}, "bootstrap must be 0"),
        ({"save_a": "out.npz"}, "save_a must be a path ending in .npy"),
        ({"confidence": 1.5}, "confidence"),
    ],
)
def test_parameters_are_checked_before_any_input_is_read(tmp_path, params, message):
    missing = str(tmp_path / "no-such-folder")
    with pytest.raises(InvalidInputError, match=message):
        fidrs.cmmd(missing, missing, **params)


def test_cmmd_is_declared_on_its_backbone_and_warns_on_another(tiny):
    spec = fidrs.metrics.get_metric("cmmd")
    assert spec.backbone == BACKBONE and fidrs.backbones.get(BACKBONE).default_mode == MODE
    assert fidrs.backbones.get(BACKBONE).feature_output == "embedding_l2"
    x, y = embeddings(32, d=tiny[0].feature_dim, seed=8), embeddings(32, d=tiny[0].feature_dim, seed=9)
    with pytest.warns(FidrsWarning, match="not comparable with published CMMD"):
        fidrs.cmmd(feature_set(x, backbone="tiny", mode="plain"), feature_set(y, backbone="tiny", mode="plain"))


def test_the_commands_help_gives_its_own_default_backbone():
    """`fidrs cmmd --backbone`'s help names the backbone the command uses when none is given (the declared default of
    the option, the Inception, is `fidrs score`'s) and says that another is not comparable."""
    from fidrs.cli.parser import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command").choices
    cmmd = next(a for a in sub["cmmd"]._actions if a.dest == "backbone")
    score = next(a for a in sub["score"]._actions if a.dest == "backbone")
    assert f"(default: {BACKBONE}," in cmmd.help and "not comparable with published CMMD" in cmmd.help
    assert "(default: inception)" in score.help and "comparable" not in score.help


@pytest.mark.parametrize(
    "other, message",
    [
        ({"backbone": "dinov2-vitb14"}, "different backbones"),  # 768-d as well
        ({"mode": "center-crop"}, "different mode"),
        ({"weights": "b" * 64}, "different weights"),
    ],
)
def test_sides_of_other_backbones_modes_or_weights_are_refused(other, message):
    x, y = embeddings(32, seed=10), embeddings(32, seed=11)
    with pytest.raises(IncompatibleStatsError, match=message):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FidrsWarning)
            fidrs.cmmd(feature_set(x), feature_set(y, **other))
    with pytest.raises(IncompatibleStatsError, match="different feature sizes"):  # of a backbone not recorded
        fidrs.cmmd(feature_set(x), feature_set(embeddings(32, d=16, seed=12), backbone=None))
    refusal = f"^b: records backbone {BACKBONE}, whose features .* {D}-d, but holds 16-d"  # the width rule first
    with pytest.raises(InvalidInputError, match=refusal):
        fidrs.cmmd(feature_set(x), feature_set(embeddings(32, d=16, seed=12)))


# --- embedding files -------------------------------------------------------------------------------------------


def test_saved_embeddings_are_the_rows_used_and_read_back_with_their_provenance(tmp_path):
    x, y = embeddings(70, seed=13), embeddings(40, seed=14)
    out = tmp_path / "ref.npy"
    result = fidrs.cmmd(feature_set(x), feature_set(y), save_a=str(out))
    assert result.saved == [str(out)]
    stored = np.load(out)  # what google-research/cmmd's --ref_embed_file reads
    np.testing.assert_array_equal(stored, x[:64])
    assert stored.dtype == np.float32
    record = json.loads(Path(provenance_path(out)).read_text())
    assert (record["backbone"], record["mode"], record["n"], record["dim"], record["n_images"]) == (
        BACKBONE,
        MODE,
        64,
        D,
        70,
    )
    assert record["batch_remainder"] == "drop"
    loaded = load_embeddings(out)
    assert loaded.provenance == feature_set(x[:64]).provenance
    # the file is used whole (as the official tool uses its reference file): the same value as the images
    assert fidrs.cmmd(str(out), feature_set(y)).value == result.value
    assert fidrs.cmmd(str(out), str(out)).value == 0.0  # two files: no network is loaded (none could be)
    with pytest.warns(FidrsWarning, match="written under batch_remainder='drop'; this run asks for 'keep'"):
        kept = fidrs.cmmd(str(out), feature_set(y), batch_remainder="keep")
    assert kept.n_used == [64, 40]


def test_a_foreign_npy_has_unknown_provenance_and_is_compared_by_size(tmp_path):
    x, y = embeddings(33, seed=15), embeddings(64, seed=16)
    foreign = tmp_path / "official.npy"
    np.save(foreign, x)  # as a user of the official tool writes it
    with pytest.warns(UnknownModeWarning, match="no provenance file"):
        result = fidrs.cmmd(str(foreign), feature_set(y))
    assert result.n_used == [33, 64] and result.value == pytest.approx(brute_force(x, y), rel=RTOL)
    np.save(foreign, embeddings(33, d=8, seed=17))
    with pytest.warns(UnknownModeWarning), pytest.raises(IncompatibleStatsError, match="feature sizes"):
        fidrs.cmmd(str(foreign), feature_set(y))


def test_an_embedding_file_of_another_backbone_is_refused(tmp_path):
    x = embeddings(32, seed=18)
    out = tmp_path / "dino.npy"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FidrsWarning)
        fidrs.cmmd(
            feature_set(x, backbone="dinov2-vitb14", mode="dgm-eval"),  # 768-d, as CMMD's
            feature_set(x, "dinov2-vitb14", "dgm-eval"),
            save_a=str(out),
        )
    with pytest.raises(IncompatibleStatsError, match="different backbones"):
        fidrs.cmmd(str(out), feature_set(x))


def _hostile(tmp_path: Path, kind: str) -> Path:
    path = tmp_path / f"{kind}.npy"
    good = embeddings(32, seed=19)
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated":
        np.save(path, good)
        path.write_bytes(path.read_bytes()[:-5])
    elif kind == "padded":
        np.save(path, good)
        path.write_bytes(path.read_bytes() + b"\0" * 8)
    elif kind == "npz":
        np.savez(path.with_suffix(".npz"), good)
        os.replace(path.with_suffix(".npz"), path)
    elif kind == "pickle":
        np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    elif kind == "ints":
        np.save(path, np.arange(64).reshape(8, 8))
    elif kind == "3d":
        np.save(path, np.zeros((2, 3, 4), np.float32))
    elif kind == "fortran":
        np.save(path, np.asfortranarray(good))
    elif kind == "nan":
        bad = good.copy()
        bad[3, 4] = np.nan
        np.save(path, bad)
    elif kind == "huge-shape":  # a header that declares 10¹² rows over a few bytes of data
        header = "{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000000, 768), }"
        header += " " * (118 - len(header)) + "\n"
        path.write_bytes(b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode() + b"\0" * 64)
    elif kind == "code-in-header":
        header = "{'descr': __import__('os').system('touch PWNED'), 'fortran_order': False, 'shape': (1, 1), }"
        header += " " * (126 - len(header)) + "\n"
        path.write_bytes(b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode() + b"\0" * 4)
    elif kind == "long-header":
        path.write_bytes(b"\x93NUMPY\x02\x00" + (1 << 30).to_bytes(4, "little") + b"{" * 100)
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "loop":
        os.symlink(path, path)
    elif kind == "folder":
        path.mkdir()
    return path


HOSTILE = {
    "empty": "empty file",
    "truncated": "truncated",
    "padded": "longer than its header says",
    "npz": "an .npz archive",
    "pickle": "an array of dtype object",
    "ints": "dtype '<i8'",
    "3d": "expected N × d",
    "fortran": "Fortran-order",
    "nan": r"embedding \[3, 4\] is not finite",
    "huge-shape": "truncated",
    "code-in-header": "not a readable .npy header",
    "long-header": "not a readable .npy header",
    "fifo": "a FIFO, not a regular file",
    "loop": "cannot read it",
    "folder": "a directory",
    "missing": "no such file",
}


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_hostile_embedding_files_are_refused_by_name(tmp_path, kind, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "missing.npy" if kind == "missing" else _hostile(tmp_path, kind)
    with pytest.raises(InvalidInputError, match=HOSTILE[kind]) as caught:
        load_embeddings(path)
    assert str(path) in str(caught.value) or path.name in str(caught.value)
    assert not (tmp_path / "PWNED").exists()


@pytest.mark.parametrize(
    "tamper, message",
    [
        ("edit-array", "describes another array"),
        ("garbage", "not a readable provenance file"),
        ("foreign-json", "not a fidrs embedding provenance file"),
        ("wrong-shape", f"records 64 × {D}"),
        ("bad-field", "backbone must be a non-empty string"),
    ],
)
def test_a_provenance_file_that_does_not_fit_its_array_is_refused(tmp_path, tamper, message):
    out = tmp_path / "ref.npy"
    fidrs.cmmd(feature_set(embeddings(64, seed=20)), feature_set(embeddings(32, seed=21)), save_a=str(out))
    meta = Path(provenance_path(out))
    record = json.loads(meta.read_text())
    if tamper == "edit-array":
        np.save(out, embeddings(64, seed=22))
    elif tamper == "garbage":
        meta.write_text("{not json")
    elif tamper == "foreign-json":
        meta.write_text(json.dumps({"mu": 1}))
    elif tamper == "wrong-shape":
        np.save(out, embeddings(48, seed=20))
        record["npy_sha256"] = __import__("hashlib").sha256(out.read_bytes()).hexdigest()
        meta.write_text(json.dumps(record))
    elif tamper == "bad-field":
        record["backbone"] = ["clip"]
        meta.write_text(json.dumps(record))
    with pytest.raises(InvalidInputError, match=message):
        load_embeddings(out)


def test_embedding_files_are_written_atomically(tmp_path, monkeypatch):
    """A write that fails leaves the previous file and its provenance as they were."""
    out = tmp_path / "ref.npy"
    first = feature_set(embeddings(32, seed=23))
    fidrs.cmmd(first, first, save_a=str(out))
    before = out.read_bytes(), Path(provenance_path(out)).read_bytes()
    import fidrs.embedding_files as files

    def fail(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files.np.lib.format, "write_array", fail)
    with pytest.raises(OSError):
        fidrs.cmmd(feature_set(embeddings(32, seed=24)), first, save_a=str(out))
    assert (out.read_bytes(), Path(provenance_path(out)).read_bytes()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ref.npy", "ref.npy.json"]


# --- images: the tiny backbone through the API and the CLI ------------------------------------------------------


@pytest.fixture()
def image_sets(tmp_path):
    return str(write_images(tmp_path / "a", 40, seed=1)), str(write_images(tmp_path / "b", 35, seed=2))


def test_cmmd_of_images_through_the_api_and_the_cli(tiny, image_sets, tmp_path, capsys):
    _, checkpoint = tiny
    a, b = image_sets
    options = {"backbone": "tiny", "weights": checkpoint}
    fa, fb = fidrs.features(a, cache=False, **options), fidrs.features(b, cache=False, **options)
    with pytest.warns(FidrsWarning, match="not comparable"):
        result = fidrs.cmmd(a, b, **options)
    assert result.n == (40, 35) and result.n_used == [32, 32]
    assert result.value == pytest.approx(brute_force(fa[:32], fb[:32]), rel=RTOL)
    assert result.provenance.backbone == "tiny" and result.provenance.mode == "plain"

    ref = tmp_path / "ref.npy"
    flags = ["--backbone", "tiny", "--weights", checkpoint, "--json", "--no-progress"]
    assert (
        cli.main(["cmmd", a, b, *flags, "--cmmd-batch-remainder", "keep", "--bootstrap", "20", "--save-a", str(ref)])
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert out["metric"] == "cmmd" and out["n_used"] == [40, 35] and out["backbone"] == "tiny"
    assert out["cmmd"] == pytest.approx(brute_force(fa, fb), rel=RTOL)
    assert out["low"] < out["high"] and out["params"]["bootstrap"] == 20 and out["saved"] == [str(ref)]
    # the first run filled the feature cache: the second reads every image's features from it
    assert cli.main(["cmmd", str(ref), b, *flags, "--cmmd-batch-remainder", "keep"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["cmmd"] == out["cmmd"] and again["cache_hits"] == 35
    assert cli.main(["cmmd", a, b, *flags[:-2], "--no-progress"]) == 0
    assert capsys.readouterr().out.strip() == f"CMMD {result.value:.6f}"


def test_the_cli_exits_2_on_bad_input_and_names_it(tiny, tiny_twin, image_sets, tmp_path, capsys):
    _, checkpoint = tiny
    a, b = image_sets
    flags = ["--backbone", "tiny", "--weights", checkpoint, "--no-progress"]
    bad = tmp_path / "bad.npy"
    bad.write_bytes(b"\x93NUMPY garbage")
    assert cli.main(["cmmd", str(bad), b, *flags]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "Traceback" not in err
    with pytest.raises(SystemExit) as usage:  # argparse's usage error
        cli.main(["cmmd", a, b, *flags, "--cmmd-batch-remainder", "sometimes"])
    assert usage.value.code == 2
    capsys.readouterr()
    small = str(write_images(tmp_path / "small", 5, seed=3))
    assert cli.main(["cmmd", small, b, *flags]) == 2
    assert "fewer than one batch of 32" in capsys.readouterr().err
    # a side of another backbone (of the same size: a second tiny network): IncompatibleStatsError, exit 2
    other = tmp_path / "other.npy"
    rows = embeddings(32, d=tiny[0].feature_dim, seed=25)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FidrsWarning)
        fidrs.cmmd(feature_set(rows, tiny_twin, "plain"), feature_set(rows, tiny_twin, "plain"), save_a=str(other))
    assert cli.main(["cmmd", str(other), b, *flags]) == 2
    assert "different backbones" in capsys.readouterr().err


def test_the_default_backbone_is_cmmds(monkeypatch, tmp_path):
    """`fidrs cmmd A B` and `fidrs.cmmd(a, b)` run on clip-vitl14-336 when no backbone is named (checked on the
    resolved options: no weights are fetched)."""
    seen = []

    def record(self, *inputs, **params):
        seen.append((self.backbone.name, self.resolved.mode.name))
        raise InvalidInputError("stop here")

    monkeypatch.setattr(fidrs.Evaluator, "compute", record)
    with pytest.raises(InvalidInputError, match="stop here"):
        fidrs.cmmd("a", "b")
    assert cli.main(["cmmd", "a", "b"]) == 2
    assert seen == [(BACKBONE, MODE), (BACKBONE, MODE)]
    assert OFFICIAL_BATCH == 32


class _NoTSNE:
    """t-SNE stands aside (seconds of CPU, and not what these tests check): the leading two of its inputs."""

    def __init__(self, **_):
        pass

    def fit_transform(self, x):
        return x[:, :2]


def test_the_per_class_report_gives_cmmd_against_the_reference(tmp_path, monkeypatch):
    import fidrs.report as report_module

    matplotlib, plt, _ = report_module._require_plotting()
    monkeypatch.setattr(report_module, "_require_plotting", lambda: (matplotlib, plt, _NoTSNE))
    sets = {
        "ref": feature_set(embeddings(70, seed=30)),
        "near": feature_set(embeddings(40, seed=31, shift=0.02)),
        "small": feature_set(embeddings(20, seed=32)),
    }
    report = report_module.build_report(sets, "ref", tmp_path, kid_subset_size=10, kid_subsets=2)
    cmmd = report["cmmd_vs_reference"]
    assert cmmd["ref"]["value"] == 0.0 and cmmd["near"]["n_used"] == [64, 32]
    want = brute_force(sets["ref"].features[:64], sets["near"].features[:32])
    assert cmmd["near"]["value"] == pytest.approx(want, rel=RTOL)
    # fewer than one batch under the default rule: no value, and the reason
    assert cmmd["small"]["value"] is None and "fewer than one batch" in cmmd["small"]["note"]
    assert json.loads((tmp_path / "report.json").read_text())["cmmd_vs_reference"] == cmmd
    assert "<th>CMMD</th>" in (tmp_path / "report.html").read_text()
    kept = report_module._cmmd_vs_reference(sets["ref"], sets["small"], "small", "keep")
    assert kept["n_used"] == [70, 20]
    assert kept["value"] == pytest.approx(brute_force(sets["ref"].features, sets["small"].features), rel=RTOL)


def test_every_feature_metric_takes_an_embedding_file(tmp_path):
    x, y = embeddings(64, seed=40), embeddings(48, seed=41)
    out = tmp_path / "x.npy"
    fidrs.cmmd(feature_set(x), feature_set(y), save_a=str(out))
    from_file = fidrs.kid(str(out), feature_set(y), subset_size=16, subsets=3)
    from_rows = fidrs.kid(feature_set(x), feature_set(y), subset_size=16, subsets=3)
    assert (from_file.value, from_file.std) == (from_rows.value, from_rows.std)
    assert from_file.provenance.backbone == BACKBONE
