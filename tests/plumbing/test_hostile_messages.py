"""Class 7 of the hardening issue: every bad input is exit 2 with one message naming the thing and the reason,
never exit 3 with a traceback; names are printed escaped; an unknown mode is said, not guessed. Where images are
read: the tiny test backbone (tests/tiny_backbone.py), the CLI in process."""

from __future__ import annotations

import json
import subprocess
import sys

import fidrs
import numpy as np
import pytest
from cli_in_process import run_cli_here
from conftest import run_cli, write_images
from fidrs.backbones.inception_graph import build_fid_inception
from fidrs.errors import WeightsError


def _assert_bad_input(out, *needles):
    assert out.returncode == 2, (out.returncode, out.stderr)
    assert "Traceback" not in out.stderr
    for needle in needles:
        assert needle in out.stderr, out.stderr


@pytest.fixture()
def good(tmp_path):
    path = tmp_path / "good.npz"
    np.savez(path, mu=np.zeros(3), sigma=np.eye(3))
    return str(path)


@pytest.mark.parametrize(
    "name, content, reason",
    [
        ("empty.npz", b"", "empty file"),
        ("text.npz", b"mu,sigma\n1,2\n", "not an .npz file"),
        ("array.npz", None, "a .npy array, not an .npz archive"),
        ("truncated.npz", "cut", "not a readable .npz file"),
        ("nokeys.npz", "nokeys", "needs 'mu' and 'sigma'"),
    ],
)
def test_broken_statistics_files(tmp_path, good, name, content, reason, capsys):
    path = tmp_path / name
    if content is None:
        np.save(tmp_path / "x.npy", np.eye(3))
        (tmp_path / "x.npy").rename(path)
    elif content == "cut":
        path.write_bytes(open(good, "rb").read()[:300])
    elif content == "nokeys":
        np.savez(path, other=np.eye(3))
    else:
        path.write_bytes(content)
    _assert_bad_input(run_cli_here(capsys, "score", str(path), good), str(path), reason)


def test_checkpoint_with_a_wrong_tensor_shape_names_the_key(weights, tmp_path, monkeypatch):
    from fidrs.checkpoint import load_state_dict
    from test_checkpoint import _write_zip_checkpoint

    state = dict(load_state_dict(weights))
    state["Mixed_6c.branch7x7_2.conv.weight"] = state["Mixed_6c.branch7x7_2.conv.weight"][:, :, :, :5]
    with pytest.raises(WeightsError, match="Mixed_6c"):
        build_fid_inception(state)
    state = dict(load_state_dict(weights))
    state["Mixed_5b.branch1x1.conv.weight"] = state["Mixed_5b.branch1x1.conv.weight"][:, :100]
    path = tmp_path / "wrong.pth"
    _write_zip_checkpoint(path, {k: v.astype(np.float32) for k, v in state.items()}, monkeypatch)
    folder = write_images(tmp_path / "imgs", 2)
    out = run_cli("score", str(folder), str(folder), "--weights", str(path), env={"FIDRS_CACHE": str(tmp_path)})
    _assert_bad_input(out, str(path), "'Mixed_5b.branch1x1.conv.weight' has shape (64, 100, 1, 1)")


def test_closed_stdout_exits_quietly(good):
    proc = subprocess.Popen(
        [sys.executable, "-m", "fidrs.cli", "score", good, good, "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    proc.stdout.close()  # `| head` that has already gone
    err = proc.stderr.read().decode()
    proc.wait(timeout=60)
    assert proc.returncode == 141 and err == ""


def test_bad_thread_count_names_the_variable(good):
    out = run_cli("score", good, good, env={"FIDRS_NUM_THREADS": "abc"})
    _assert_bad_input(out, "FIDRS_NUM_THREADS", "'abc'")


def test_newline_in_a_file_name_cannot_forge_an_output_line(tmp_path, tiny, capsys):
    folder = write_images(tmp_path / "imgs", 3)
    (folder / "x\nfidrs: 0.000000 PASS.png").write_bytes(b"not an image")
    out = run_cli_here(capsys, "score", str(folder), str(folder), "--backbone", "tiny", "--weights", tiny[1])
    _assert_bad_input(out, "x\\nfidrs: 0.000000 PASS.png")
    assert not any(line.startswith("fidrs: 0.000000") for line in out.stderr.splitlines())


def test_statistics_without_a_mode_are_reported_as_unknown(tmp_path, tiny, capsys):
    # 12 images: a full-rank covariance of the tiny network's 8 features (no small-sample warning)
    folder = write_images(tmp_path / "imgs", 12)
    _, weights = tiny
    s = fidrs.stats(str(folder), backbone="tiny", weights=weights, mode="padded")
    legacy = tmp_path / "pytorch_fid_style.npz"
    np.savez(legacy, mu=s.mu, sigma=s.sigma)  # what pytorch-fid writes: no mode, no n
    args = ["score", str(legacy), str(folder), "--backbone", "tiny", "--weights", weights, "--mode", "padded"]
    out = run_cli_here(capsys, *args, "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["mode_a"] is None and result["mode_b"] == "padded" and result["mode"] is None
    assert "records no preprocessing mode" in out.stderr and "unknown" in out.stderr
    assert abs(result["fid"]) < 1e-6 * max(1.0, float(np.trace(s.sigma)))
