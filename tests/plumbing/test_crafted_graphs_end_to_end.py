"""Crafted ONNX graphs reach fidrs two ways, and each is refused through the public API and the CLI with exit 2 and
a message naming the graph file (issue 29 item 15 and the Moderate ONNX Runtime bullet):

* `--model x.onnx` / `model=`: an exported graph whose `fidrs.*` metadata is forged (the backbone it names only
  chooses which interface it is checked against; nothing else of it is trusted before the check passed);
* a tampered graph in the graph cache, with a record forged to match its bytes.

Every crafted graph is the tiny test backbone's honest graph (tests/tiny_backbone.py: images N×3×16×16 →
features N×8, logits N×4) changed in one way. The static checks themselves are tested one by one in
tests/unit/test_hostile_graphs.py; here the point is that the feature pass never runs a graph they refuse, that the
run deadline and the output checks guard every run, and that each ends as exit 2 naming the file."""

from __future__ import annotations

import hashlib
import importlib
import time

import fidrs
import numpy as np
import onnx
import pytest
import tiny_backbone
from conftest import write_images
from fidrs.errors import EXIT_BAD_INPUT, GraphError, WeightsError
from onnx import TensorProto, helper
from onnx_builders import endless_loop, node, tensor, value

cli = importlib.import_module("fidrs.cli.main")

DIM = 8  # the tiny backbone's feature size
FORGED_SHA = "ab" * 32  # any 64 hex digits: the forged metadata's weights hash


def honest() -> onnx.ModelProto:
    return tiny_backbone.build_graph(tiny_backbone.state(0))


def rewired(model: onnx.ModelProto) -> onnx.ModelProto:
    """The honest value of `features` renamed `f0` (the logits still read it), for nodes to recompute it."""
    for n in model.graph.node:
        n.output[:] = ["f0" if o == "features" else o for o in n.output]
        n.input[:] = ["f0" if i == "features" else i for i in n.input]
    return model


def crafted(nodes=(), inits=(), *, change=None, opsets=()) -> onnx.ModelProto:
    """The honest tiny graph with `features` recomputed from the honest value (`f0`) by `nodes`, if any;
    `change` edits the model further."""
    model = rewired(honest()) if nodes else honest()
    g = model.graph
    g.node.extend(nodes)
    g.initializer.extend(inits)
    for domain, version in opsets:
        model.opset_import.append(helper.make_opsetid(domain, version))
    if change is not None:
        change(model)
    return model


def _loop_forever(model):
    rewired(model)
    loop, cond = endless_loop("f0", "features", DIM)
    model.graph.node.append(loop)
    model.graph.initializer.append(cond)


def _if(model):
    rewired(model)

    def branch(name):
        return helper.make_graph(
            [node("Identity", ["f0"], [f"{name}_out"])], name, [], [value(f"{name}_out", ["N", DIM])]
        )

    model.graph.node.append(node("If", ["flag"], ["features"], then_branch=branch("a"), else_branch=branch("b")))
    model.graph.initializer.append(tensor("flag", np.bool_(True)))


def _scan(model):
    rewired(model)
    body = helper.make_graph(
        [node("Identity", ["s"], ["s_out"]), node("Identity", ["e"], ["e_out"])],
        "scan",
        [value("s", [DIM]), value("e", [DIM])],
        [value("s_out", [DIM]), value("e_out", [DIM])],
    )
    model.graph.node.append(node("Scan", ["init", "f0"], ["last", "features"], body=body, num_scan_inputs=1))
    model.graph.initializer.append(tensor("init", np.zeros(DIM, np.float32)))


def _declared(dims):
    def change(model):
        out = next(o for o in model.graph.output if o.name == "features")
        out.CopyFrom(value("features", dims))

    return change


def _uint8_input(model):
    """What ONNX Runtime reports as an InvalidArgument at the first run (fidrs feeds float32); refused first."""
    model.graph.input[0].CopyFrom(value("images", ["N", 3, 16, 16], TensorProto.UINT8))


def _external(location):
    def change(model):
        w = next(t for t in model.graph.initializer if t.name == "conv1.weight")
        length = len(w.raw_data)
        w.ClearField("raw_data")
        w.data_location = TensorProto.EXTERNAL
        for key, val in (("location", location), ("length", str(length))):
            entry = w.external_data.add()
            entry.key, entry.value = key, val

    return change


def _without_body(model):
    rewired(model)
    model.graph.node.append(node("Loop", ["", "", "f0"], ["features"]))


i64 = lambda name, values: tensor(name, np.asarray(values, np.int64))  # noqa: E731

# (how it is crafted, what the message says after the file name). Item 15: loops, If/Scan, custom domains,
# declared shapes; the Moderate bullet: escaping or missing external data, a custom-op domain, a uint8 input, a
# huge allocation, one row for a batch.
CASES = {
    "loop without trip count": (lambda: crafted(change=_loop_forever), r"\(Loop\) has a subgraph \(control flow\)"),
    "loop without its body": (lambda: crafted(change=_without_body), r"\(Loop\): control flow"),
    "if": (lambda: crafted(change=_if), r"\(If\) has a subgraph"),
    "scan": (lambda: crafted(change=_scan), r"\(Scan\) has a subgraph"),
    "custom-op domain": (
        lambda: crafted([node("Evil", ["f0"], ["features"], domain="com.evil")], opsets=[("com.evil", 1)]),
        r"imports the operator domain\(s\) \['com.evil'\]",
    ),
    "custom-op domain, not imported": (
        lambda: crafted([node("Evil", ["f0"], ["features"], domain="com.evil")]),
        r"is an operator of domain 'com.evil' \(custom code\)",
    ),
    "operator outside the allow-set": (
        lambda: crafted([node("Cos", ["f0"], ["features"])]),
        r"\(Cos\): not an operator of fidrs' graphs",
    ),
    "declared one row": (
        lambda: crafted(change=_declared([1, DIM])),
        r"output 'features' has shape \[1, 8\], expected \[N, 8\]",
    ),
    "declared another size": (
        lambda: crafted(change=_declared(["N", DIM + 1])),
        r"output 'features' has shape \[N, 9\], expected \[N, 8\]",
    ),
    "computes one row for a batch": (
        lambda: crafted(
            [node("Slice", ["f0", "zero", "one", "zero"], ["features"])], [i64("zero", [0]), i64("one", [1])]
        ),
        r"output 'features' comes out \[unk__\d+, 8\], not one row per image",
    ),
    "softmax over the batch": (
        lambda: crafted([node("Softmax", ["f0"], ["features"], axis=0)]),
        r"\(Softmax\) works along the batch axis",
    ),
    "uint8 input": (lambda: crafted(change=_uint8_input), r"input 'images' is of type uint8, not float32"),
    "huge allocation": (
        lambda: crafted(
            [node("Expand", ["f0", "giant"], ["big"]), node("Gather", ["big", "first"], ["features"], axis=0)],
            [i64("giant", [1 << 26, 1, DIM]), i64("first", 0)],
        ),
        r"its tensors hold up to 5.37e\+08 elements per image at once",
    ),
    "external data missing": (
        lambda: crafted(change=_external("missing.data")),
        r"initialiser 'conv1.weight': external data file .*missing.data cannot be read",
    ),
    "external data escaping the folder": (
        lambda: crafted(change=_external("../outside.data")),
        r"initialiser 'conv1.weight': external data location '../outside.data' is not a file name",
    ),
}


@pytest.fixture()
def images(tmp_path):
    return str(write_images(tmp_path / "a", 10, seed=1)), str(write_images(tmp_path / "b", 12, seed=2))


def forged_export(model: onnx.ModelProto, path, backbone: str = "tiny"):
    """`model` written with the metadata `fidrs models export` writes, claiming `backbone` and some weights."""
    for key, val in (("fidrs.backbone", backbone), ("fidrs.weights_sha256", FORGED_SHA)):
        entry = model.metadata_props.add()
        entry.key, entry.value = key, val
    path.write_bytes(model.SerializeToString())
    # What "escaping" would have reached: a real file outside the graph's folder.
    (path.parent.parent / "outside.data").write_bytes(b"\0" * 4096)
    return path


def _model_dir(tmp_path):
    folder = tmp_path / "models"
    folder.mkdir(exist_ok=True)
    return folder


def test_an_honest_export_is_accepted_through_model(tiny, images, tmp_path, capsys):
    """The positive control: the tiny backbone's own graph, exported, scores as its checkpoint does."""
    _, checkpoint = tiny
    a, b = images
    exported = tmp_path / "tiny.onnx"
    fidrs.Evaluator(backbone="tiny", weights=checkpoint).export(str(exported))
    assert fidrs.score(a, b, model=str(exported), cache=False) == fidrs.score(
        a, b, backbone="tiny", weights=checkpoint, cache=False
    )
    assert cli.main(["score", a, b, "--model", str(exported), "--no-progress"]) == 0


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_crafted_exported_graph_is_refused_by_name_through_the_api(case, tiny, images, tmp_path):
    make, match = CASES[case]
    path = forged_export(make(), _model_dir(tmp_path) / "crafted.onnx")
    a, b = images
    with pytest.raises(WeightsError, match=match) as info:
        fidrs.score(a, b, model=str(path), cache=False)
    assert str(info.value).startswith(f"{path}: "), info.value
    assert info.value.exit_code == EXIT_BAD_INPUT


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_crafted_exported_graph_is_exit_2_naming_the_file_at_the_cli(case, tiny, images, tmp_path, capsys):
    make, match = CASES[case]
    path = forged_export(make(), _model_dir(tmp_path) / "crafted.onnx")
    a, b = images
    assert cli.main(["score", a, b, "--model", str(path), "--no-progress"]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err.startswith(f"fidrs: error: {path}: "), err
    assert "Traceback" not in err


def test_the_named_backbone_only_chooses_the_interface_it_is_checked_against(tiny, images, tmp_path, capsys):
    """A graph claiming the Inception is checked as one (299×299 input, pool3 2048 + logits 1008): the tiny graph
    is refused as that; a backbone nobody registered is refused by name."""
    a, b = images
    path = forged_export(honest(), _model_dir(tmp_path) / "claims-inception.onnx", backbone="inception")
    assert cli.main(["score", a, b, "--model", str(path), "--no-progress"]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err.startswith(f"fidrs: error: {path}: input 'images' has shape [N, 3, 16, 16]"), err
    unknown = forged_export(honest(), _model_dir(tmp_path) / "unknown.onnx", backbone="nobody")
    assert cli.main(["score", a, b, "--model", str(unknown), "--no-progress"]) == EXIT_BAD_INPUT
    assert capsys.readouterr().err.startswith(f"fidrs: error: {unknown}: a graph of backbone 'nobody', which is not")


def _tamper_cached_graph(checkpoint: str, model: onnx.ModelProto):
    """Replace the tiny checkpoint's cached graph with `model`, and forge its record to match (what someone
    who can write the cache can do): the cache's own integrity check then passes."""
    from fidrs import weights

    backbone = fidrs.backbones.get("tiny")
    resolved = weights.resolve_model(backbone, checkpoint)  # builds and caches the honest graph
    data = model.SerializeToString()
    resolved.onnx_path.write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    weights._record_path(resolved.onnx_path).write_text(f"{digest}\n{digest}\n")
    return resolved.onnx_path


@pytest.mark.parametrize("case", ["loop without trip count", "computes one row for a batch", "custom-op domain"])
def test_a_tampered_cached_graph_is_refused_by_name(case, tiny, images, tmp_path, monkeypatch, capsys):
    # A cache of this test's own: the tampered graph must not be what later tests of the session are served.
    monkeypatch.setenv("FIDRS_CACHE", str(tmp_path / "cache"))
    _, checkpoint = tiny
    path = _tamper_cached_graph(checkpoint, CASES[case][0]())
    a, b = images
    with pytest.raises(GraphError, match=CASES[case][1]) as info:
        fidrs.score(a, b, backbone="tiny", weights=checkpoint, cache=False)
    assert str(info.value).startswith(f"{path}: ")
    assert cli.main(["score", a, b, "--backbone", "tiny", "--weights", checkpoint, "--no-progress"]) == 2
    assert capsys.readouterr().err.startswith(f"fidrs: error: {path}: ")


# --- at run time: what passes the static checks is still guarded ------------------------------------------------


def slow_graph(convolutions: int = 40) -> onnx.ModelProto:
    """An honest-looking graph that is merely slow: `convolutions` 512→512 3×3 convolutions at 16×16 (one shared
    weight), 1.2e9 operations each per image, 4.8e10 in all: seconds for 10 images on 2 cores, well under
    the static limit of 2e12 per image."""
    rng = np.random.default_rng(0)
    nodes = [node("Conv", ["images", "w_in"], ["h0"], kernel_shape=[3, 3], pads=[1] * 4)]
    for i in range(convolutions):
        nodes.append(node("Conv", [f"h{i}", "w"], [f"h{i + 1}"], kernel_shape=[3, 3], pads=[1] * 4))
    nodes += [
        node("Conv", [f"h{convolutions}", "w_out"], ["c"], kernel_shape=[1, 1]),
        node("GlobalAveragePool", ["c"], ["pooled"]),
        node("Flatten", ["pooled"], ["features"], axis=1),
        node("Gemm", ["features", "fc"], ["logits"], transB=1),
    ]
    inits = [
        tensor("w_in", rng.normal(size=(512, 3, 3, 3)).astype(np.float32) * 0.1),
        tensor("w", rng.normal(size=(512, 512, 3, 3)).astype(np.float32) * 0.01),
        tensor("w_out", rng.normal(size=(DIM, 512, 1, 1)).astype(np.float32) * 0.01),
        tensor("fc", rng.normal(size=(4, DIM)).astype(np.float32)),
    ]
    g = helper.make_graph(
        nodes,
        "slow",
        [value("images", ["N", 3, 16, 16])],
        [value("features", ["N", DIM]), value("logits", ["N", 4])],
        inits,
    )
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def test_a_slow_graph_is_stopped_at_the_run_deadline(tiny, images, tmp_path, monkeypatch, capsys):
    """FIDRS_RUN_DEADLINE_S (read in config.py with the other variables) bounds each network run: the run is
    stopped after about that long, exit 2 naming the graph, the variable and the deadline."""
    path = forged_export(slow_graph(), _model_dir(tmp_path) / "slow.onnx")
    a, b = images
    monkeypatch.setenv("FIDRS_RUN_DEADLINE_S", "0.2")
    started = time.perf_counter()
    code = cli.main(["score", a, b, "--model", str(path), "--no-progress", "--no-cache"])
    elapsed = time.perf_counter() - started
    err = capsys.readouterr().err
    assert code == EXIT_BAD_INPUT, err
    assert err.startswith(
        f"fidrs: error: {path}: a network run on 10 images did not finish within its deadline of 0.2 s"
    )
    assert "FIDRS_RUN_DEADLINE_S" in err
    # Stopped early, not after the whole run: the whole run is at least ten one-image runs' arithmetic (measured
    # here: 0.37 s an image, 3.7 s for the batch, against 0.5 s for the refused CLI run, session creation included).
    import onnxruntime as ort

    session = ort.InferenceSession(slow_graph().SerializeToString(), providers=["CPUExecutionProvider"])
    one = np.zeros((1, 3, 16, 16), np.float32)
    session.run(None, {"images": one})  # warm-up
    timed = time.perf_counter()
    session.run(None, {"images": one})
    per_image = time.perf_counter() - timed
    assert elapsed < 10 * per_image / 2, (elapsed, per_image)


def test_a_bad_deadline_variable_is_exit_2_before_anything_is_read(images, monkeypatch, capsys):
    a, b = images
    monkeypatch.setenv("FIDRS_RUN_DEADLINE_S", "0")
    assert cli.main(["score", a, b, "--no-progress"]) == EXIT_BAD_INPUT
    assert "environment variable FIDRS_RUN_DEADLINE_S must be a number of seconds above 0" in capsys.readouterr().err


def test_non_finite_outputs_of_an_accepted_graph_are_refused_at_run_time(tiny, images, tmp_path, capsys):
    """features / 0: statically an honest graph (Div is one of fidrs' operators); its outputs are checked on
    every run, so the infinities never reach the statistics."""
    model = crafted([node("Div", ["f0", "zero"], ["features"])], [tensor("zero", np.zeros(DIM, np.float32))])
    path = forged_export(model, _model_dir(tmp_path) / "nan.onnx")
    a, b = images
    assert cli.main(["score", a, b, "--model", str(path), "--no-progress", "--no-cache"]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err.startswith(f"fidrs: error: {path}: output 'features' has NaN or infinite values for 10 of 10 images"), (
        err
    )


def test_a_backbone_declares_the_operators_its_graph_adds(tiny, images, tmp_path):
    """A plugin whose converter emits an operator fidrs' own graphs do not (`Backbone.operators`, the manifest's
    `operators = [...]`) has it accepted; every other backbone still refuses it."""
    import dataclasses

    backbone, _ = tiny
    path = forged_export(crafted([node("Cos", ["f0"], ["features"])]), _model_dir(tmp_path) / "cos.onnx")
    a, b = images
    fidrs.register_backbone(dataclasses.replace(backbone, operators=("Cos",)), replace=True)
    assert np.isfinite(fidrs.score(a, b, model=str(path), cache=False))
    fidrs.register_backbone(backbone, replace=True)
    with pytest.raises(GraphError, match=r"\(Cos\): not an operator of fidrs' graphs"):
        fidrs.score(a, b, model=str(path), cache=False)
