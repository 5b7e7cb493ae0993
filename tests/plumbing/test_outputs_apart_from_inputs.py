"""Outputs never destroy inputs or anything else (issue 29 items 12, 13, 18): a report written inside its dataset,
a shard merged twice, an output onto an input image, a FIFO or a `/dev/stdout`-style link, and `cache clear`
deleting a user's files. Each refused case exits 2 naming the file, and leaves every file as it was. Runs on the
tiny test backbone (tests/tiny_backbone.py), in process."""

from __future__ import annotations

import hashlib
import importlib
import os
import shutil
from pathlib import Path

import fidrs
import numpy as np
import pytest
from conftest import write_images
from fidrs.errors import EXIT_BAD_INPUT, EXIT_OK

cli = importlib.import_module("fidrs.cli.main")


def digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def common(checkpoint: str) -> list[str]:
    return ["--backbone", "tiny", "--weights", checkpoint, "--no-progress"]


# --- item 12: the report inside its dataset -----------------------------------------------------------------


@pytest.fixture()
def dataset(tmp_path):
    root = tmp_path / "dataset"
    for i, name in enumerate(("reference", "other")):
        write_images(root / name, 5, seed=i)
    return root


@pytest.mark.parametrize("where", ["dataset", "dataset/report", "dataset/other/report", "linked class"])
def test_a_report_inside_its_dataset_is_refused_before_any_image_is_read(where, tiny, dataset, tmp_path, capsys):
    _, checkpoint = tiny
    if where == "linked class":  # a class folder that is a link to a folder elsewhere: the output is in it
        elsewhere = tmp_path / "elsewhere"
        write_images(elsewhere, 5, seed=5)
        (dataset / "linked").symlink_to(elsewhere)
        out = elsewhere / "report"
    else:
        out = tmp_path / where
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    args = ["report", str(dataset), "--reference", "reference", "-o", str(out), *common(checkpoint)]
    assert cli.main(args) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err.startswith(f"fidrs: error: {out}: the output folder is inside the dataset"), err
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before  # nothing written


def test_a_report_beside_its_dataset_is_written_and_the_next_run_reads_the_same_classes(
    tiny, dataset, tmp_path, capsys
):
    """The control: -o outside the dataset; running again gives the same numbers (no report PNG was read)."""
    _, checkpoint = tiny
    out = tmp_path / "report"
    args = ["report", str(dataset), "--reference", "reference", "-o", str(out), *common(checkpoint)]
    assert cli.main(args) == EXIT_OK
    first = (out / "report.json").read_text()
    assert cli.main(args) == EXIT_OK
    second = (out / "report.json").read_text()
    strip = [line for line in first.splitlines() if "seconds" not in line]
    assert strip == [line for line in second.splitlines() if "seconds" not in line]


# --- item 13: merge counts a repeated shard twice -------------------------------------------------------------


@pytest.fixture()
def shards(tiny, tmp_path):
    _, checkpoint = tiny
    paths = []
    for i in range(2):
        folder = write_images(tmp_path / f"shard{i}", 9, seed=10 + i)
        path = tmp_path / f"shard{i}.npz"
        fidrs.stats(str(folder), backbone="tiny", weights=checkpoint).save(path)
        paths.append(path)
    return paths


def test_merging_two_shards_gives_the_union(shards, tiny, tmp_path, capsys):
    """The control: two disjoint shards merge into the statistics of all 18 images."""
    _, checkpoint = tiny
    out = tmp_path / "merged.npz"
    assert cli.main(["merge", *map(str, shards), "-o", str(out)]) == EXIT_OK
    both = tmp_path / "both"
    for i in range(2):
        shutil.copytree(tmp_path / f"shard{i}", both / f"s{i}")
    whole = fidrs.stats(str(both), backbone="tiny", weights=checkpoint)
    merged = fidrs.Stats.load(out)
    assert merged.n == whole.n == 18
    # Merged float64 sums vs one pass over the same float32 rows: only summation order differs (~n·2⁻⁵³).
    np.testing.assert_allclose(merged.mu, whole.mu, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(merged.sigma, whole.sigma, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("repeat", ["same path", "another name for it", "a copy", "a hard link", "third of three"])
def test_a_shard_given_twice_is_refused(repeat, shards, tmp_path, capsys):
    first, second = shards
    if repeat == "same path":
        inputs, named = [first, first], first
    elif repeat == "another name for it":
        named = tmp_path / "." / first.name
        inputs = [first, named]
    elif repeat == "a copy":
        named = tmp_path / "copy.npz"
        shutil.copy(first, named)
        inputs = [first, second, named]
    elif repeat == "a hard link":
        named = tmp_path / "link.npz"
        os.link(first, named)
        inputs = [first, named]
    else:
        named = tmp_path / "copy.npz"
        shutil.copy(second, named)
        inputs = [first, second, named]
    out = tmp_path / "merged.npz"
    assert cli.main(["merge", *map(str, inputs), "-o", str(out)]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err.startswith(f"fidrs: error: {named} "), err
    assert "would count its images twice" in err
    assert not out.exists()


def test_merge_refuses_a_total_sample_count_past_2_to_the_53(shards, tmp_path, capsys):
    """n is refused above 2^53 when a file is loaded (float64 counts are exact up to it), and a merge whose
    total would pass it is refused rather than wrapped round (it was: 2⁶⁴ − 20 images)."""
    from fidrs import _fidrs
    from fidrs.statistics import MAX_SAMPLES

    s = fidrs.Stats.load(shards[0])
    m = s.moments
    paths = []
    for i, copies in enumerate((MAX_SAMPLES // m.n, 2)):  # the shard's images `copies` times over: valid moments
        big = _fidrs.Moments.from_parts(m.n * copies, m.sum * copies, m.sum_outer * copies)
        path = tmp_path / f"big{i}.npz"
        fidrs.Stats.from_moments(big, s.mode, s.weights_sha256, s.backbone, s.graph_sha256).save(path)
        paths.append(path)
    out = tmp_path / "merged.npz"
    assert cli.main(["merge", *map(str, paths), "-o", str(out)]) == EXIT_BAD_INPUT
    assert "would exceed the largest sample count, 2^53" in capsys.readouterr().err
    over = tmp_path / "over.npz"
    with np.load(paths[0]) as data:
        np.savez(over, **{**dict(data), "n": np.uint64(2**64 - 10)})
    assert cli.main(["merge", str(over), str(paths[1]), "-o", str(out)]) == EXIT_BAD_INPUT
    assert capsys.readouterr().err.startswith(f"fidrs: error: {over}: n = 18446744073709551606 is over the largest")
    assert not out.exists()


# --- item 18: outputs that are inputs or not regular files ---------------------------------------------------


def test_stats_onto_an_input_image_is_refused_before_the_pass(tiny, tmp_path, capsys):
    _, checkpoint = tiny
    folder = write_images(tmp_path / "imgs", 5)
    for target in (folder / "03.png", folder / "." / "03.png"):
        before = digest(folder / "03.png")
        assert cli.main(["stats", str(folder), "-o", str(target), *common(checkpoint)]) == EXIT_BAD_INPUT
        err = capsys.readouterr().err
        assert err.startswith(f"fidrs: error: {target}: the output is one of this run's input files"), err
        assert digest(folder / "03.png") == before
    single = folder / "01.png"
    before = digest(single)
    assert cli.main(["stats", str(folder / "*.png"), "-o", str(single), *common(checkpoint)]) == EXIT_BAD_INPUT
    assert digest(single) == before
    capsys.readouterr()


def test_a_merge_onto_one_of_its_shards_is_refused(shards, capsys):
    before = digest(shards[0])
    assert cli.main(["merge", *map(str, shards), "-o", str(shards[0])]) == EXIT_BAD_INPUT
    assert capsys.readouterr().err.startswith(f"fidrs: error: {shards[0]}: the output is one of this run's input")
    assert digest(shards[0]) == before


def test_an_export_onto_its_own_checkpoint_is_refused(tiny, capsys):
    _, checkpoint = tiny
    before = digest(checkpoint)
    args = ["models", "export", "tiny", "--weights", checkpoint, "-o", checkpoint]
    assert cli.main(args) == EXIT_BAD_INPUT
    assert capsys.readouterr().err.startswith(f"fidrs: error: {checkpoint}: the output is one of this run's input")
    assert digest(checkpoint) == before


def _special_targets(tmp_path: Path) -> dict[str, Path]:
    fifo = tmp_path / "fifo.npz"
    os.mkfifo(fifo)
    stdout_link = tmp_path / "stdout.npz"
    stdout_link.symlink_to("/dev/stdout")
    file_link = tmp_path / "link.npz"
    (tmp_path / "target.npz").write_bytes(b"keep me")
    file_link.symlink_to(tmp_path / "target.npz")
    folder = tmp_path / "folder.npz"
    folder.mkdir()
    return {"a FIFO": fifo, "a link to /dev/stdout": stdout_link, "a link to a file": file_link, "a folder": folder}


@pytest.mark.parametrize("kind", ["a FIFO", "a link to /dev/stdout", "a link to a file", "a folder"])
def test_an_output_onto_a_non_regular_file_is_refused_and_left_as_it_is(kind, shards, tmp_path, capsys):
    target = _special_targets(tmp_path)[kind]
    before = os.lstat(target)
    assert cli.main(["merge", *map(str, shards), "-o", str(target)]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err.startswith(f"fidrs: error: {target}: "), err
    reason = {"a FIFO": "a FIFO, not a regular file", "a folder": "a directory, not a regular file"}
    assert reason.get(kind, "a symbolic link") in err
    after = os.lstat(target)
    assert (after.st_mode, after.st_ino) == (before.st_mode, before.st_ino)
    assert (tmp_path / "target.npz").read_bytes() == b"keep me"


def test_a_device_output_is_refused_in_the_library_too(shards):
    """Every writer goes through files.atomic_output: Stats.save onto /dev/null (a character device) would, as
    root, replace the device node with a regular file."""
    with pytest.raises(fidrs.OutputError, match=r"^/dev/null: a character device, not a regular file"):
        fidrs.Stats.load(shards[0]).save("/dev/null")


# --- item 18: cache clear removes only what fidrs wrote ------------------------------------------------------


def test_cache_clear_removes_only_the_files_fidrs_wrote(tiny, tmp_path, monkeypatch, capsys):
    _, checkpoint = tiny
    cache = tmp_path / "cache"
    monkeypatch.setenv("FIDRS_CACHE", str(cache))
    folder = write_images(tmp_path / "imgs", 9)
    assert fidrs.stats(str(folder), backbone="tiny", weights=checkpoint).n == 9  # a graph and a database
    written = sorted(p.relative_to(cache) for p in cache.rglob("*") if p.is_file())
    assert any(p.suffix == ".onnx" for p in written) and any(p.suffix == ".sqlite" for p in written)
    # A user's own files in the cache folder, named as fidrs names its own, and a link to a file outside.
    mine = {
        "mine.onnx": b"my exported graph",
        "mine.onnx.data": b"its weights",
        "features/mine.sqlite": b"my database",
        "notes.onnx.sha256": b"x",
    }
    for name, data in mine.items():
        (cache / name).write_bytes(data)
    outside = tmp_path / "outside.onnx"
    outside.write_bytes(b"outside")
    (cache / "features" / "linked.sqlite").symlink_to(outside)
    # A ledger entry someone added that leaves the folder, or names the user's file through a link: ignored.
    with open(cache / "fidrs-written.txt", "a") as f:
        f.write("../outside.onnx\n/etc/passwd\nfeatures/linked.sqlite\n")
    assert cli.main(["cache", "clear"]) == EXIT_OK
    assert "fidrs: removed" in capsys.readouterr().err
    left = sorted(str(p.relative_to(cache)) for p in cache.rglob("*") if p.is_file() or p.is_symlink())
    assert left == sorted([*mine, "features/linked.sqlite"])
    assert all((cache / name).read_bytes() == data for name, data in mine.items())
    assert outside.read_bytes() == b"outside"
    # And the next run rebuilds what was cleared.
    assert fidrs.stats(str(folder), backbone="tiny", weights=checkpoint).n == 9
    assert cli.main(["cache", "clear"]) == EXIT_OK
    capsys.readouterr()
    assert sorted(str(p.relative_to(cache)) for p in cache.rglob("*") if p.is_file() or p.is_symlink()) == left


# --- --jsonl -------------------------------------------------------------------------------------------------


def _stats_pair(tmp_path: Path) -> tuple[str, str]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 4))
    a = tmp_path / "a.npz"
    np.savez(a, mu=x.mean(0), sigma=np.cov(x, rowvar=False))
    return str(a), str(a)


def test_jsonl_through_a_symbolic_link_is_refused(tmp_path, capsys):
    a, b = _stats_pair(tmp_path)
    target = tmp_path / "elsewhere.jsonl"
    target.write_text("")
    link = tmp_path / "runs.jsonl"
    link.symlink_to(target)
    assert cli.main(["score", a, b, "--jsonl", str(link)]) == EXIT_BAD_INPUT
    assert capsys.readouterr().err.startswith(f"fidrs: error: {link}: a symbolic link; records are appended only")
    assert target.read_text() == ""
    plain = tmp_path / "plain.jsonl"
    assert cli.main(["score", a, b, "--jsonl", str(plain)]) == EXIT_OK
    assert len(plain.read_text().splitlines()) == 1
    capsys.readouterr()


def test_jsonl_onto_a_file_that_refuses_writes_names_it(tmp_path, capsys):
    a, b = _stats_pair(tmp_path)
    if not os.path.exists("/proc/version"):
        pytest.skip("no /proc")
    assert cli.main(["score", a, b, "--jsonl", "/proc/version"]) == EXIT_BAD_INPUT
    assert capsys.readouterr().err.startswith("fidrs: error: /proc/version: cannot append to it (")
