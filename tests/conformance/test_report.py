"""The per-class analysis report on the shared fruit photos, and the `fidrs report` command."""

from __future__ import annotations

import json
import subprocess
import sys

import fidrs
import numpy as np
import pytest
from fidrs.report import build_report
from PIL import Image


@pytest.fixture(scope="module")
def report(class_features, class_stats, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    return out, build_report(class_features, "apple_red_1", out, kid_subset_size=400, kid_subsets=20)


def test_report_writes_every_file(report):
    out, _ = report
    for name in (
        "report.json",
        "report.html",
        "fid_vs_reference.png",
        "fid_matrix.png",
        "pca_variance.png",
        "tsne.png",
    ):
        assert (out / name).stat().st_size > 1000, name


def test_pngs_are_real_non_blank_pictures(report):
    out, _ = report
    for name in ("fid_vs_reference.png", "fid_matrix.png", "pca_variance.png", "tsne.png"):
        with Image.open(out / name) as im:
            assert im.width >= 600 and im.height >= 400, name
            pixels = np.asarray(im.convert("L"), dtype=np.float64)
        # A blank canvas has one colour; a plot has axes, text and marks.
        assert pixels.std() > 10 and len(np.unique(pixels)) > 20, name


def test_report_numbers_equal_the_api(report, class_stats):
    out, result = report
    saved = json.loads((out / "report.json").read_text())
    ref = class_stats["apple_red_1"]
    for c, value in saved["fid_vs_reference"].items():
        api = fidrs.frechet_distance(ref.mu, ref.sigma, class_stats[c].mu, class_stats[c].sigma)
        assert value == pytest.approx(api, rel=1e-9, abs=1e-9), c
    matrix = np.array(saved["fid_matrix"])
    assert np.allclose(matrix, matrix.T) and np.all(np.abs(np.diag(matrix)) < 1e-6)
    assert 1 <= saved["pca"]["components_for_95_percent"] <= 2048
    assert saved["n"]["apple_red_1"] == 492
    assert "data:image/png;base64," in (out / "report.html").read_text()


@pytest.mark.slow  # the network over several classes
def test_report_command_end_to_end(tmp_path, weights):
    rng = np.random.default_rng(0)
    for c, shift in (("cats", 0), ("dogs", 60), ("birds", 120)):
        (tmp_path / "data" / c).mkdir(parents=True)
        for i in range(12):
            img = np.clip(rng.integers(0, 120, (24, 24, 3)) + shift, 0, 255).astype(np.uint8)
            Image.fromarray(img).save(tmp_path / "data" / c / f"{i}.png")

    def report(reference: str, out_dir: str, *extra: str) -> subprocess.CompletedProcess:
        cmd = [
            sys.executable,
            "-m",
            "fidrs.cli",
            "report",
            str(tmp_path / "data"),
            "--reference",
            reference,
            "-o",
            str(tmp_path / out_dir),
            "--weights",
            weights,
            *extra,
        ]
        return subprocess.run(cmd, capture_output=True, text=True)

    out = report("cats", "out", "--kid-subset-size", "5", "--kid-subsets", "3")
    assert out.returncode == 0, out.stderr
    saved = json.loads((tmp_path / "out" / "report.json").read_text())
    assert saved["classes"] == ["birds", "cats", "dogs"]
    assert saved["fid_vs_reference"]["cats"] == pytest.approx(0, abs=1e-6)
    bad = report("cows", "out2")
    assert bad.returncode == 2 and "cows" in bad.stderr
