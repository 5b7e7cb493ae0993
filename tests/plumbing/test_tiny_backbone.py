"""A backbone added from outside fidrs (tests/tiny_backbone.py, one module + a manifest): registered with
`fidrs.register_backbone` or found through the `fidrs.backbones` entry point, then used by `score`, a metric and
the CLI exactly as a packaged backbone is. Also the Evaluator's promises: one network per Evaluator, none for two
statistics files, each weights file hashed once."""

from __future__ import annotations

import json
import subprocess
import sys

import fidrs
import numpy as np
import pytest
import tiny_backbone
from conftest import ROOT, write_images
from fidrs.metrics import kid_from_features

# Float64 moments vs numpy's float64 mean/cov of the same float32 features: only summation order differs,
# ~n·2⁻⁵³ relative for these few images; FID is a difference of terms of the covariance's size, so 1e-9
# relative to the trace leaves orders of magnitude of margin and fails on any feature difference.
RTOL = 1e-9


@pytest.fixture()
def images(tmp_path):
    return str(write_images(tmp_path / "a", 12, seed=1)), str(write_images(tmp_path / "b", 10, seed=2))


def test_the_tiny_graph_is_the_network_it_describes():
    import onnxruntime as ort

    state = tiny_backbone.state(3)
    session = ort.InferenceSession(tiny_backbone.build_graph(state).SerializeToString())
    x = np.random.default_rng(0).normal(size=(3, 3, 16, 16)).astype(np.float32)
    features, logits = session.run(["features", "logits"], {"images": x})
    want_f, want_l = tiny_backbone.forward(state, x)
    # float32 convolutions of ≤ 36 terms against float64: ~1e-6 relative
    np.testing.assert_allclose(features, want_f, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(logits, want_l, rtol=1e-4, atol=1e-5)


def test_score_and_a_metric_on_a_registered_backbone_through_the_api(tiny, images):
    backbone, checkpoint = tiny
    assert "tiny" in fidrs.backbones.names() and fidrs.backbones.get("tiny-test") is backbone
    a, b = images
    fa = fidrs.features(a, backbone="tiny", weights=checkpoint, cache=False)
    fb = fidrs.features(b, backbone="tiny", weights=checkpoint, cache=False)
    assert fa.shape == (12, 8) and fb.shape == (10, 8)
    expected = fidrs.frechet_distance(
        fa.astype(np.float64).mean(0), np.cov(fa, rowvar=False), fb.astype(np.float64).mean(0), np.cov(fb, rowvar=False)
    )
    details = fidrs.score_details(a, b, backbone="tiny", weights=checkpoint)
    scale = max(1.0, float(np.trace(np.cov(fa, rowvar=False))))
    assert abs(details["fid"] - expected) <= RTOL * scale
    assert details["backbone"] == "tiny" and details["mode"] == "plain" and (details["n_a"], details["n_b"]) == (12, 10)
    kid = fidrs.kid(a, b, backbone="tiny", weights=checkpoint, subset_size=5, subsets=4)
    assert (kid.value, kid.std) == kid_from_features(fa, fb, subset_size=5, subsets=4)
    assert kid.n == (12, 10) and kid.provenance.backbone == "tiny" and kid.params["subset_size"] == 5
    score = fidrs.inception_score(a, backbone="tiny", weights=checkpoint, splits=2)
    assert score.value > 0 and score.n == (12,)


def test_score_and_a_metric_on_a_registered_backbone_through_the_cli(tiny, images, capsys):
    from fidrs import cli

    backbone, checkpoint = tiny
    a, b = images
    common = ["--backbone", "tiny", "--weights", checkpoint, "--json", "--no-progress"]
    assert cli.main(["score", a, b, *common]) == 0
    score = json.loads(capsys.readouterr().out)
    assert score["fid"] == fidrs.score(a, b, backbone="tiny", weights=checkpoint)
    assert cli.main(["kid", a, b, "--subset-size", "5", "--subsets", "3", *common]) == 0
    kid = json.loads(capsys.readouterr().out)
    assert kid["metric"] == "kid" and kid["backbone"] == "tiny" and kid["n"] == [12, 10]
    assert kid["value"] == fidrs.kid(a, b, backbone="tiny", weights=checkpoint, subset_size=5, subsets=3).value


def test_a_plugin_backbone_is_found_through_its_entry_point_by_the_cli(tmp_path, images):
    """A distribution that declares `[fidrs.backbones] tiny = tiny_backbone:plugin`, on the path of a fresh
    interpreter: `fidrs score --backbone tiny` finds it with no code run by the user."""
    site = tmp_path / "site"
    info = site / "tiny_plugin-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: tiny-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[fidrs.backbones]\ntiny = tiny_backbone:plugin\n")
    checkpoint = tiny_backbone.write_checkpoint(tmp_path / "tiny.npz")
    env = {"PYTHONPATH": f"{site}:{ROOT / 'tests'}", "FIDRS_CACHE": str(tmp_path / "cache")}
    import os

    out = subprocess.run(
        [sys.executable, "-m", "fidrs.cli", "score", *images, "--backbone", "tiny", "--weights", checkpoint, "--json"],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["backbone"] == "tiny" and result["n_a"] == 12
    listed = subprocess.run(
        [sys.executable, "-m", "fidrs.cli", "models", "list", "--json"],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=300,
    )
    assert "tiny" in [m["name"] for m in json.loads(listed.stdout)["models"]]


def test_an_evaluator_loads_its_network_once_and_none_for_statistics(tiny, images, tmp_path, monkeypatch):
    from fidrs import identity

    backbone, checkpoint = tiny
    a, b = images
    hashed = []
    real = identity._sha256_of
    monkeypatch.setattr(identity, "_sha256_of", lambda path: hashed.append(str(path)) or real(path))
    evaluator = fidrs.Evaluator(backbone="tiny", weights=checkpoint, cache=False)
    assert not evaluator.loaded  # made from options: nothing read yet
    sa, sb = evaluator.stats(a), evaluator.stats(b)
    network = evaluator.network
    evaluator.feature_set(a)
    assert evaluator.network is network
    assert hashed.count(checkpoint) == 1
    fidrs.stats(a, backbone="tiny", weights=checkpoint, cache=False)  # another Evaluator: the hash is memoised
    assert hashed.count(checkpoint) == 1
    sa.save(tmp_path / "a.npz")
    sb.save(tmp_path / "b.npz")
    files = fidrs.Evaluator(backbone="tiny", weights=checkpoint)
    assert files.score(str(tmp_path / "a.npz"), str(tmp_path / "b.npz")) == evaluator.score(a, b)
    assert not files.loaded  # two statistics files: no network


def test_a_changed_converter_builds_a_new_graph_without_a_version_bump(tiny, monkeypatch, tmp_path):
    """The graph cache is keyed on the converter's own source: a different converter file is another key."""
    from fidrs import weights
    from fidrs.backbones import base

    backbone, checkpoint = tiny
    monkeypatch.setenv("FIDRS_CACHE", str(tmp_path / "cache"))
    first = weights.resolve_model(backbone, checkpoint)
    changed = tmp_path / "converter.py"
    changed.write_text("# another converter\n")
    monkeypatch.setattr(base, "_source_file", lambda f: str(changed))
    assert backbone.converter_sha256 != base._converter_sha256((tiny_backbone.__file__,) * 2)
    second = weights.resolve_model(backbone, checkpoint)
    assert second.onnx_path != first.onnx_path and second.weights_sha256 == first.weights_sha256
    # The same graph built again: one identity (it is the graph's content), so statistics stay comparable.
    assert second.graph_sha256 == first.graph_sha256
