"""The `fidrs` command: exit codes 0 pass, 1 above --max-fid, 2 bad input/usage, 3 internal error. Run in process
(tests/plumbing/cli_in_process.py), on the tiny test backbone (tests/tiny_backbone.py) where images are read."""

from __future__ import annotations

import json

import fidrs
import numpy as np
import pytest
from cli_in_process import run_cli_here
from fidrs import cli
from PIL import Image


@pytest.fixture()
def run(capsys):
    return lambda *args: run_cli_here(capsys, *args)


@pytest.fixture()
def checkpoint(tiny):
    """The tiny checkpoint; `TINY` names its backbone on the command line."""
    return tiny[1]


TINY = ("--backbone", "tiny")


@pytest.fixture()
def stats_pair(tmp_path):
    """Two small statistics files whose FID is known in closed form: ‖μ₁ − μ₂‖² = 4, equal Σ → FID 4."""
    sigma = np.diag([1.0, 2.0, 3.0])
    np.savez(tmp_path / "a.npz", mu=np.zeros(3), sigma=sigma)
    np.savez(tmp_path / "b.npz", mu=np.array([2.0, 0, 0]), sigma=sigma)
    return str(tmp_path / "a.npz"), str(tmp_path / "b.npz")


def _images(folder, count, seed=0, size=(40, 30)):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(folder / f"{i:02d}.png")
    return folder


def test_max_fid_gate_on_both_sides(stats_pair, run):
    below = run("score", *stats_pair, "--max-fid", "4.5")
    assert below.returncode == 0, below.stderr
    assert float(below.stdout) == pytest.approx(4.0, abs=1e-9)
    assert "PASS" in below.stderr
    above = run("score", *stats_pair, "--max-fid", "3.5")
    assert above.returncode == 1
    assert "FAIL" in above.stderr


def test_json_output(stats_pair, run):
    out = run("score", *stats_pair, "--json", "--max-fid", "10")
    assert out.returncode == 0
    result = json.loads(out.stdout)
    assert result["fid"] == pytest.approx(4.0, abs=1e-9) and result["passed"] is True
    for key in ("fid", "n_a", "n_b", "mode", "weights_sha256", "provider", "seconds", "skipped"):
        assert key in result


def test_usage_errors_exit_2(stats_pair, run):
    assert run("score", stats_pair[0]).returncode == 2  # missing argument
    assert run("score", *stats_pair, "--max-fid", "abc").returncode == 2
    assert run("frobnicate").returncode == 2
    assert run().returncode == 2


def test_missing_input_exits_2(tmp_path, stats_pair, run):
    out = run("score", str(tmp_path / "nope"), stats_pair[1])
    assert out.returncode == 2 and "nope: no such file or directory" in out.stderr
    (tmp_path / "empty").mkdir()
    out = run("score", str(tmp_path / "empty"), stats_pair[1])
    assert out.returncode == 2 and "no image files" in out.stderr


def test_incompatible_stats_exit_2(tmp_path, run):
    for name, mode in (("a.npz", "pytorch-fid"), ("b.npz", "clean")):
        np.savez(tmp_path / name, mu=np.zeros(2), sigma=np.eye(2), mode=mode)
    out = run("score", str(tmp_path / "a.npz"), str(tmp_path / "b.npz"))
    assert out.returncode == 2 and "different mode" in out.stderr


def test_bad_images_are_all_listed_and_no_fid_is_printed(tmp_path, checkpoint, run):
    folder = _images(tmp_path / "imgs", 4)
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n...")
    (folder / "zz_text.jpg").write_text("hello")
    other = _images(tmp_path / "other", 4, seed=1)
    out = run("score", str(folder), str(other), *TINY, "--weights", checkpoint)
    assert out.returncode == 2
    assert out.stdout == ""
    assert "broken.png" in out.stderr and "zz_text.jpg" in out.stderr and "2 file(s)" in out.stderr


def test_bad_images_on_both_sides_are_reported_together(tmp_path, checkpoint, run):
    a, b = _images(tmp_path / "a", 3), _images(tmp_path / "b", 3, seed=1)
    (a / "bad_a.png").write_bytes(b"nope")
    (b / "bad_b.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    out = run("score", str(a), str(b), *TINY, "--weights", checkpoint)
    assert out.returncode == 2 and out.stdout == ""
    assert "bad_a.png" in out.stderr and "bad_b.jpg" in out.stderr and "2 file(s)" in out.stderr


def test_skip_bad_reports_what_was_skipped(tmp_path, checkpoint, run):
    folder = _images(tmp_path / "imgs", 4)
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n...")
    other = _images(tmp_path / "other", 4, seed=1)
    out = run("score", str(folder), str(other), *TINY, "--weights", checkpoint, "--skip-bad", "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["n_a"] == 4 and result["n_b"] == 4
    assert [s["path"].endswith("broken.png") for s in result["skipped"]] == [True]
    assert "skipped 1 bad file" in out.stderr


def test_single_image_is_a_specific_error(tmp_path, checkpoint, run):
    one = _images(tmp_path / "one", 1)
    two = _images(tmp_path / "two", 2)
    out = run("score", str(one), str(two), *TINY, "--weights", checkpoint)
    assert out.returncode == 2 and "at least 2" in out.stderr


def test_stats_command_writes_pytorch_fid_compatible_npz(tmp_path, checkpoint, run):
    folder = _images(tmp_path / "imgs", 3)
    out = run("stats", str(folder), "-o", str(tmp_path / "s.npz"), *TINY, "--weights", checkpoint)
    assert out.returncode == 0, out.stderr
    s = fidrs.Stats.load(tmp_path / "s.npz")
    assert s.n == 3 and s.mu.shape == (8,) and s.mode == "plain"
    with np.load(tmp_path / "s.npz") as f:  # what pytorch-fid reads: plain arrays under 'mu' and 'sigma'
        assert f["mu"].shape == (8,) and f["sigma"].shape == (8, 8)
    direct = fidrs.stats(str(folder), backbone="tiny", weights=checkpoint)
    np.testing.assert_allclose(s.mu, direct.mu, rtol=1e-12)


def test_corrupt_weights_exit_2(tmp_path, stats_pair, run):
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"nope")
    folder = _images(tmp_path / "imgs", 2)
    out = run("score", str(folder), str(folder), "--weights", str(bad))
    assert out.returncode == 2 and "bad.pth" in out.stderr


def test_unexpected_failure_exits_3(monkeypatch, stats_pair, capsys):
    def explode(*args, **kwargs):
        raise RuntimeError("simulated bug")

    monkeypatch.setattr(fidrs.Evaluator, "fid", explode)
    assert cli.main(["score", *stats_pair]) == 3
    assert "internal error" in capsys.readouterr().err


def test_merge_of_shards_equals_stats_of_the_union(tmp_path, checkpoint, run):
    first, second = _images(tmp_path / "one", 3, seed=2), _images(tmp_path / "two", 4, seed=3)
    for name, folder in (("a.npz", first), ("b.npz", second)):
        assert run("stats", str(folder), "-o", str(tmp_path / name), *TINY, "--weights", checkpoint).returncode == 0
    out = run("merge", str(tmp_path / "a.npz"), str(tmp_path / "b.npz"), "-o", str(tmp_path / "ab.npz"))
    assert out.returncode == 0, out.stderr
    merged = fidrs.Stats.load(tmp_path / "ab.npz")
    union = fidrs.stats(
        sorted(str(p) for p in [*first.iterdir(), *second.iterdir()]), backbone="tiny", weights=checkpoint
    )
    assert merged.n == union.n == 7
    np.testing.assert_allclose(merged.mu, union.mu, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(merged.sigma, union.sigma, rtol=1e-9, atol=1e-12)


def test_merge_refuses_stats_without_moments(tmp_path, stats_pair, run):
    out = run("merge", *stats_pair, "-o", str(tmp_path / "m.npz"))
    assert out.returncode == 2 and "moments" in out.stderr
