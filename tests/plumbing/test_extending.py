"""README "Extending fidrs": the backbone, the metric and the source shown there are run as they are written
(each code block is taken from the README), then used through the public API (and the metric through the CLI)."""

from __future__ import annotations

import re
import tarfile

import fidrs
import numpy as np
import pytest
from conftest import ROOT, write_images


def _block(marker: str) -> str:
    text = (ROOT / "README.md").read_text()
    found = re.search(rf"<!-- extending: {marker} -->\n```python\n(.*?)```", text, re.S)
    assert found, f"README has no '{marker}' example"
    return found.group(1)


def _run(marker: str, name: str, monkeypatch, file: str | None = None) -> dict:
    """Run the README block as the module `name` (a real module: dataclasses look their module up)."""
    import sys
    import types

    module = types.ModuleType(name)
    if file:
        module.__file__ = file
    monkeypatch.setitem(sys.modules, name, module)
    exec(compile(_block(marker), f"README:{marker}", "exec"), module.__dict__)
    return module.__dict__


def _manifest() -> str:
    text = (ROOT / "README.md").read_text()
    return re.search(r"```toml\n# tiny.toml\n(.*?)```", text, re.S).group(1)


@pytest.fixture()
def readme_backbone(tmp_path, monkeypatch):
    (tmp_path / "tiny.toml").write_text(_manifest())
    namespace = _run("backbone", "readme_tiny", monkeypatch, str(tmp_path / "tiny.py"))
    rng = np.random.default_rng(0)
    weights = {k: rng.normal(scale=0.5, size=s).astype(np.float32) for k, s in namespace["SHAPES"].items()}
    np.savez(tmp_path / "tiny.npz", **weights)
    try:
        yield namespace["TINY"], str(tmp_path / "tiny.npz")
    finally:
        fidrs.backbones.unregister_backbone("tiny")


def test_the_readme_backbone_is_one_module_and_a_manifest(readme_backbone, tmp_path):
    backbone, weights = readme_backbone
    assert fidrs.backbones.get("tiny") is backbone
    a, b = write_images(tmp_path / "a", 5, seed=1), write_images(tmp_path / "b", 6, seed=2)
    details = fidrs.score_details(str(a), str(b), backbone="tiny", weights=weights, cache=False)
    assert np.isfinite(details["fid"]) and details["fid"] > 0 and details["backbone"] == "tiny"
    assert (details["n_a"], details["n_b"], details["mode"]) == (5, 6, "plain")


def test_the_readme_metric_is_one_module(tmp_path, monkeypatch):
    _run("metric", "readme_nearest", monkeypatch)
    try:
        rng = np.random.default_rng(1)
        sets = [
            fidrs.FeatureSet(rng.normal(size=(n, 4)).astype(np.float32), None, [], "m", "w" * 64, [], "b", "g" * 64)
            for n in (7, 5)
        ]
        result = fidrs.Evaluator().compute("nearest_distance", *sets, neighbours=2)
        reference, generated = (s.features.astype(np.float64) for s in sets)
        brute = np.mean([np.sort([np.linalg.norm(g - r) for r in reference])[:2].mean() for g in generated])
        assert result.value == pytest.approx(brute, rel=1e-6)  # float32 features: distances to ~1e-7 relative
        assert result.to_dict()["params"] == {"neighbours": 2} and result.n == (7, 5)
        with pytest.raises(fidrs.IncompatibleStatsError):
            other = fidrs.FeatureSet(sets[1].features, None, [], "other-mode", "w" * 64, [], "b", "g" * 64)
            fidrs.Evaluator().compute("nearest_distance", sets[0], other)
        from fidrs.cli.parser import build_parser

        parsed = build_parser().parse_args(["nearest-distance", "r/", "g/", "--neighbours", "3"])
        assert parsed.metric == "nearest_distance" and parsed.neighbours == 3
    finally:
        fidrs.metrics.unregister_metric("nearest_distance")


def test_the_readme_source_is_one_module(tiny, tmp_path, monkeypatch):
    backbone, weights = tiny
    _run("source", "readme_tar", monkeypatch)
    try:
        folder = write_images(tmp_path / "imgs", 4)
        with tarfile.open(tmp_path / "imgs.tar", "w") as tar:
            for path in sorted(folder.iterdir()):
                tar.add(path, arcname=path.name)
        source = fidrs.sources.resolve(str(tmp_path / "imgs.tar"))
        assert type(source).__name__ == "TarImages" and len(source) == 4
        evaluator = fidrs.Evaluator(backbone="tiny", weights=weights, cache=False)
        np.testing.assert_array_equal(evaluator.features(str(tmp_path / "imgs.tar")), evaluator.features(str(folder)))
    finally:
        fidrs.sources.unregister_source("tar")
