"""Issue 24 defect 1 and issue 29 item 11: the feature cache is keyed on everything that can change a bit of a
feature, each part taken from what it is (the graph's own bytes, the Rust sources that make pixels), so features
computed under another provider, TF32, ONNX Runtime, graph or decoder are never served; a tampered `--model`
graph whose metadata claims honest weights neither poisons the cache nor passes as honest statistics."""

from __future__ import annotations

import hashlib
from pathlib import Path

import fidrs
import numpy as np
import pytest
from conftest import ROOT, write_images
from fidrs import _fidrs, feature_pass
from fidrs.feature_pass import FeaturePass, PassReport
from fidrs.sources import resolve as resolve_source
from fidrs.weights import ResolvedModel

# --- the decoder/preprocessing code identity ---------------------------------------------------------------


def _pixel_sources(root: Path) -> list[str]:
    """What build.rs's PIXEL_SOURCES names, as it expands them."""
    files = {n for n in ("Cargo.lock", "src/batch.rs", "src/image.rs") if (root / n).is_file()}
    for folder in ("src/preprocess", "src/decode"):
        if (root / folder).is_dir():
            files |= {p.relative_to(root).as_posix() for p in (root / folder).rglob("*") if p.is_file()}
    files |= {p.relative_to(root).as_posix() for p in (root / "src").glob("decode*.rs") if p.is_file()}
    return sorted(files)


def test_pixel_code_identity_is_the_sha256_of_the_sources_it_was_built_from():
    if not (ROOT / "src" / "lib.rs").is_file():
        pytest.skip("not a source checkout")
    files = _pixel_sources(ROOT)
    assert {"src/decode/mod.rs", "src/image.rs", "src/batch.rs", "Cargo.lock", "src/preprocess/mod.rs"} <= set(files)
    message = b"".join(
        rel.encode() + b"\0" + str(len(data)).encode() + b"\0" + data
        for rel in files
        for data in [(ROOT / rel).read_bytes()]
    )
    # Equal only if build.rs's SHA-256 is right and this build is of these sources (else: maturin develop).
    assert hashlib.sha256(message).hexdigest() == _fidrs.PIXEL_CODE_SHA256


# --- no cached feature is served across a key component ------------------------------------------------------


class _StandInSession:
    """A network stand-in: `value` in every output, under the provider it claims."""

    def __init__(self, provider: str, value: float, dims) -> None:
        self.provider, self.value, self.dims = provider, value, dims
        self.default_batch_size = 4

    def output_dims(self):
        return self.dims

    def run(self, images):
        return tuple(np.full((len(images), d), self.value, np.float32) for d in self.dims)


@pytest.fixture()
def stand_in(tmp_path, monkeypatch):
    """Feature passes over real files with a stand-in network (no checkpoint): `run(provider, value, **options)`
    returns (features, cache hits)."""
    monkeypatch.setenv("FIDRS_CACHE", str(tmp_path / "cache"))
    backbone = fidrs.backbones.get("inception")
    dims = tuple(o.dim for o in backbone.outputs)
    model = ResolvedModel(backbone, tmp_path / "w.pth", "a" * 64, tmp_path / "g.onnx", "b" * 64)
    folder = write_images(tmp_path / "imgs", 5)

    def run(provider: str, value: float, model: ResolvedModel = model, **options):
        monkeypatch.setattr(feature_pass, "get_session", lambda *a, **k: _StandInSession(provider, value, dims))
        network = FeaturePass(fidrs.Options(batch_size=2, **options).resolve(), model=model)
        report = PassReport()
        rows = [c[0] for _, c in network.iter_batches(resolve_source(str(folder)), report)]
        return np.concatenate(rows), report.cache_hits

    return run, model


@pytest.mark.parametrize(
    "poisoned",
    ["cuda-tf32", "cuda-exact", "runtime", "graph", "pixel-code"],
)
def test_features_computed_under_another_key_are_never_served_to_an_exact_cpu_run(stand_in, monkeypatch, poisoned):
    run, model = stand_in
    if poisoned == "cuda-tf32":
        run("CUDAExecutionProvider", 7.0, allow_tf32=True)
    elif poisoned == "cuda-exact":
        run("CUDAExecutionProvider", 7.0)
    elif poisoned == "runtime":
        with monkeypatch.context() as m:
            m.setattr("fidrs.runtime.runtime_version", lambda: "onnxruntime 0.0.1")
            run("CPUExecutionProvider", 7.0)
    elif poisoned == "graph":  # same weights, another graph (a modified export)
        run("CPUExecutionProvider", 7.0, model=ResolvedModel(*list(vars(model).values())[:4], "c" * 64))
    else:
        with monkeypatch.context() as m:
            m.setattr(_fidrs, "PIXEL_CODE_SHA256", "d" * 64, raising=False)
            run("CPUExecutionProvider", 7.0)
    features, hits = run("CPUExecutionProvider", 1.0)  # the exact CPU run
    assert hits == 0 and (features == 1.0).all(), "a feature of another key was served"
    again, hits = run("CPUExecutionProvider", 3.0)  # its own key: served (the cache does work)
    assert hits == 5 and (again == 1.0).all()


def test_tf32_flag_alone_does_not_split_the_cpu_cache(stand_in):
    run, _ = stand_in
    run("CPUExecutionProvider", 1.0)
    _, hits = run("CPUExecutionProvider", 2.0, allow_tf32=True)  # TF32 changes no bit on the CPU
    assert hits == 5


# --- a tampered exported graph (issue 29 item 11) ----------------------------------------------------------------


def _tampered_copy(exported: Path, out: Path) -> Path:
    """The export with one weight changed and its metadata left claiming the honest weights."""
    import onnx
    from onnx import numpy_helper

    proto = onnx.load(str(exported))
    tensor = proto.graph.initializer[0]
    array = numpy_helper.to_array(tensor).copy()
    array.flat[0] += 1.0
    tensor.CopyFrom(numpy_helper.from_array(array, tensor.name))
    onnx.save(proto, str(out))
    return out


def test_a_tampered_graph_neither_poisons_the_cache_nor_passes_as_honest(tiny, tmp_path, monkeypatch, capsys):
    from cli_in_process import run_cli_here

    _, weights = tiny
    monkeypatch.setenv("FIDRS_CACHE", str(tmp_path / "cache"))
    exported = tmp_path / "honest.onnx"
    assert run_cli_here(capsys, "models", "export", "tiny", "--weights", weights, "-o", str(exported)).returncode == 0
    evil = _tampered_copy(exported, tmp_path / "evil.onnx")
    images = write_images(tmp_path / "imgs", 3)
    honest_cold = fidrs.features(str(images), backbone="tiny", weights=weights, cache=False)
    poisoned = fidrs.stats(str(images), model=str(evil))  # fills the cache under the tampered graph's key
    assert not np.array_equal(poisoned.mu, honest_cold.astype(np.float64).mean(0))  # the tampering shows
    honest = fidrs.stats(str(images), backbone="tiny", weights=weights)
    np.testing.assert_array_equal(fidrs.features(str(images), backbone="tiny", weights=weights), honest_cold)
    assert poisoned.weights_sha256 == honest.weights_sha256  # what the forged metadata claims
    assert poisoned.graph_sha256 != honest.graph_sha256
    with pytest.raises(fidrs.IncompatibleStatsError, match="graph"):
        honest.check_compatible(poisoned)
    saved = tmp_path / "poisoned.npz"
    poisoned.save(saved)
    with pytest.raises(fidrs.IncompatibleStatsError, match="graph"):
        fidrs.score(str(saved), str(images), backbone="tiny", weights=weights)
    # The honest export is the same graph as the one built from the checkpoint: one identity.
    assert fidrs.stats(str(images), model=str(exported)).graph_sha256 == honest.graph_sha256
