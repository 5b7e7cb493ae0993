"""Crafted ONNX graphs (issue 29, item 15 and the ONNX Runtime bullet): the static checks of `fidrs.graph_check`
accept every graph fidrs builds and refuse each hostile one by name; `fidrs.session_guard` stops a slow run at its
deadline, maps ONNX Runtime's load and run errors to fidrs errors naming the file, and refuses outputs that are not
one finite float32 row per image. Every refusal is a `GraphError` (a `WeightsError`: exit 2 at the CLI)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from conftest import WEIGHTS
from fidrs import graph_check as gc
from fidrs import session_guard as sg
from fidrs.backbones import get as backbone
from fidrs.backbones.vit_graph import Architecture, build_dinov2
from fidrs.errors import GraphError, InvalidInputError, WeightsError
from onnx import TensorProto, helper, numpy_helper
from onnx_builders import endless_loop, node, tensor, value
from test_dinov2_weights import random_state

# The small backbone the crafted graphs are written for: `images` N×3×8×8 → `feat` N×4 (mean colour @ W).
SIZE, DIM = 8, 4
W = np.arange(3 * DIM, dtype=np.float32).reshape(3, DIM) / 10
CAP = 1 << 26  # initialiser bytes (the honest graph holds 48; the constant-folding bomb 4 MiB)


def i64(name: str, values) -> onnx.TensorProto:
    return tensor(name, np.asarray(values, np.int64))


IMAGES = value("images", ["N", 3, SIZE, SIZE])
FEAT = value("feat", ["N", DIM])


def pooled(out: str = "feat", source: str = "images") -> list:
    """The honest graph's nodes: images → mean colour (N×3) → @ W → `out` (N×4)."""
    return [
        node("GlobalAveragePool", [source], ["pooled"]),
        node("Flatten", ["pooled"], ["flat"], axis=1),
        node("MatMul", ["flat", "w"], [out]),
    ]


def graph(nodes, inits=(), inputs=(IMAGES,), outputs=(FEAT,), opset=17, ir=8, opsets=()) -> onnx.ModelProto:
    body = helper.make_graph(list(nodes), "crafted", list(inputs), list(outputs), [tensor("w", W), *inits])
    model = helper.make_model(
        body, opset_imports=[helper.make_opsetid("", opset), *(helper.make_opsetid(d, v) for d, v in opsets)]
    )
    model.ir_version = ir
    return model


def check(model, path, **overrides) -> gc.GraphSummary:
    kwargs = {"allowed_ops": gc.KNOWN_OPS, "input_size": SIZE, "outputs": {"feat": DIM}, "max_initializer_bytes": CAP}
    return gc.check_graph(model, path, **{**kwargs, **overrides})


def refused(model, path, match: str, **overrides) -> str:
    """The check refuses `model` with a GraphError whose message starts with the file and matches `match`."""
    with pytest.raises(GraphError, match=match) as info:
        check(model, path, **overrides)
    message = str(info.value)
    assert message.startswith(f"{path}: "), message
    return message


def cpu_options() -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    options.log_severity_level = 4
    return options


def save(model, path: Path) -> Path:
    path.write_bytes(model.SerializeToString())
    return path


def session(model, path: Path):
    return sg.open_session(save(model, path), cpu_options(), ["CPUExecutionProvider"])


def batch(n: int = 3, size: int = SIZE) -> np.ndarray:
    return np.random.default_rng(0).normal(size=(n, 3, size, size)).astype(np.float32)


# --- fidrs' own graphs pass, and the allow-set is exactly what the builders emit --------------------------------


@pytest.fixture(scope="module")
def inception_graph():
    """The FID Inception built from the shared random checkpoint: the real layout and sizes (~4 s)."""
    if not WEIGHTS.is_file():
        pytest.skip(f"shared conformance checkpoint not found at {WEIGHTS}")
    from fidrs.backbones.inception_graph import build_fid_inception
    from fidrs.checkpoint import load_state_dict

    return build_fid_inception(load_state_dict(WEIGHTS))


# ViT-S/14's width (the backbone check wants the manifest's), both FFN kinds, a resized (37) and an unresized
# (16) position-embedding grid.
VITS = {"mlp": Architecture(384, 2, "mlp", 37), "swiglu": Architecture(384, 1, "swiglu", 16)}


@pytest.fixture(scope="module")
def vit_graphs():
    return {name: build_dinov2(random_state(arch)) for name, arch in VITS.items()}


def test_the_inception_graph_passes_with_its_known_cost(inception_graph, tmp_path):
    summary = gc.check_backbone_graph(inception_graph, tmp_path / "inception.onnx", backbone("inception"))
    assert summary.ops <= gc.INCEPTION_OPS
    assert summary.batch_symbol == "N"
    # torchvision lists Inception V3 at 299² as 5.71 GFLOPS, counting multiply-adds (its fvcore convention); the
    # FID variant has the same convolutions (its fc has 1008 rows, not 1000: +0.03 %). The estimate counts 2 per
    # multiply-add plus the elements the other nodes (pools, ReLUs, concatenations, adds) read and write, about
    # 1e8 (under 1 %): 2 × 5.71e9 within 2 % (the rounding of 5.71 adds 0.1 %).
    assert summary.flops_per_image == pytest.approx(2 * 5.71e9, rel=0.02)
    assert summary.fixed_flops == 0  # every node's output has the batch axis
    assert summary.initializer_bytes == 4 * sum(int(np.prod(t.dims)) for t in inception_graph.graph.initializer)


@pytest.mark.parametrize("ffn", sorted(VITS))
def test_the_dinov2_graphs_pass_with_their_matrix_products_counted(vit_graphs, ffn, tmp_path):
    summary = gc.check_backbone_graph(vit_graphs[ffn], tmp_path / "vit.onnx", backbone("dinov2-vits14"))
    assert summary.ops <= gc.VIT_OPS
    # The matrix products alone, from the architecture (T = 257 tokens, D width, H FFN hidden): patch embedding
    # 2·256·D·3·14², per block qkv 2·T·D·3D, scores and mixing 2·2·T²·D, projection 2·T·D², FFN 2·T·D·2H (MLP:
    # fc1 + fc2) or 2·T·D·3H (SwiGLU: w12 is 2H wide, w3 H). The other nodes add the elements they read and
    # write: per block about 60·T·D (LayerNorms, the GELU's five nodes on T·4D, residual adds, LayerScale) and
    # 4·heads·T² (scale, softmax) against the products' ~24·T·D² + 4·T²·D: 0.75 % at D = 384 (measured 1.1 %
    # with the reshapes and transposes); the bound allows twice the estimate, 2 %.
    arch = VITS[ffn]
    t, d, h = 257, arch.width, arch.hidden
    block = 2 * t * d * 3 * d + 4 * t * t * d + 2 * t * d * d + 2 * t * d * h * (2 if ffn == "mlp" else 3)
    products = 2 * 256 * d * 3 * 14 * 14 + arch.depth * block
    assert products <= summary.flops_per_image <= 1.02 * products


def test_the_allow_set_is_what_the_builders_emit(inception_graph, vit_graphs):
    from fidrs.backbones.clip import build_clip
    from fidrs.backbones.clip_weights import ClipArchitecture, expected_shapes

    emitted_inception = gc.ops_of(inception_graph)
    emitted_vit = set().union(*(gc.ops_of(m) for m in vit_graphs.values()))
    rng = np.random.default_rng(0)  # a small CLIP (width 64, 1 block, patch 16, 32², 16-d): the ops, not numbers
    clip_state = {
        k: rng.normal(size=s).astype(np.float32)
        for k, s in expected_shapes(ClipArchitecture(64, 1, 16, 32, 16)).items()
    }
    emitted_clip = gc.ops_of(build_clip(clip_state))
    assert emitted_inception == gc.INCEPTION_OPS
    assert emitted_vit == gc.VIT_OPS
    assert emitted_clip - gc.VIT_OPS == gc.CLIP_OPS  # the builder's one addition is listed, and only it
    assert gc.KNOWN_OPS == emitted_inception | emitted_vit | emitted_clip  # nothing listed that no builder emits


def test_a_graph_with_external_data_passes_and_runs(vit_graphs, tmp_path, monkeypatch):
    """Written as the cache writes a graph over 1 GiB (the positive control of the external-data refusals)."""
    from fidrs import weights

    monkeypatch.setattr(weights, "EXTERNAL_DATA_BYTES", 0)
    path = tmp_path / "vit.onnx"
    copy = onnx.ModelProto.FromString(vit_graphs["mlp"].SerializeToString())
    data_bytes, data = weights.serialise_graph(copy, "vit.onnx.data")
    path.write_bytes(data_bytes)
    (tmp_path / "vit.onnx.data").write_bytes(data)
    model, summary = gc.load_and_check(path, backbone("dinov2-vits14"))
    assert sum(t.data_location == TensorProto.EXTERNAL for t in model.graph.initializer) > 10
    run = sg.open_session(path, cpu_options(), ["CPUExecutionProvider"])
    out = sg.run_guarded(run, {"images": batch(2, 224)}, deadline_s=60, path=path, output_names=["cls"])
    (cls,) = sg.check_outputs(out, names=["cls"], dims=[384], batch=2, path=path)
    assert cls.shape == (2, 384)


def test_the_check_reads_the_file_not_the_optimised_graph(vit_graphs, tmp_path):
    """ONNX Runtime fuses nodes into com.microsoft operators while creating the session, in memory: they appear in
    its optimised graph, never in a file fidrs writes, so the default-domain rule holds on the file."""
    options = cpu_options()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.optimized_model_filepath = str(tmp_path / "optimised.onnx")
    ort.InferenceSession(vit_graphs["mlp"].SerializeToString(), options, ["CPUExecutionProvider"])
    assert any(op.startswith("com.microsoft::") for op in gc.ops_of(onnx.load(str(tmp_path / "optimised.onnx"))))
    assert not any("::" in op for op in gc.ops_of(vit_graphs["mlp"]))


def test_the_honest_small_graph_passes_and_runs(tmp_path):
    """The baseline every crafted graph below changes in one way."""
    path = tmp_path / "honest.onnx"
    assert check(graph(pooled()), path).ops == {"GlobalAveragePool", "Flatten", "MatMul"}
    images = batch()
    out = sg.run_guarded(session(graph(pooled()), path), {"images": images}, deadline_s=30, path=path)
    (feat,) = sg.check_outputs(out, names=["feat"], dims=[DIM], batch=3, path=path)
    # float32 mean of 64 values then a 3-term dot product: a few ulps apart from numpy's float64 (rtol 1e-5).
    np.testing.assert_allclose(feat, images.astype(np.float64).mean(axis=(2, 3)) @ W, rtol=1e-5, atol=1e-6)


def test_a_graph_file_that_is_a_fifo_or_not_a_graph_is_refused_by_name(tmp_path):
    fifo = tmp_path / "pipe.onnx"
    os.mkfifo(fifo)
    with pytest.raises(InvalidInputError, match=rf"^{fifo}: a FIFO, not a regular file"):
        gc.load_and_check(fifo, backbone("inception"))
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x08\x07 not a protobuf")
    with pytest.raises(GraphError, match=rf"^{garbage}: not a readable ONNX graph"):
        gc.load_and_check(garbage, backbone("inception"))


# --- refused statically: control flow, custom code, randomness ---------------------------------------------------


def loop_forever() -> onnx.ModelProto:
    """A Loop with no trip count whose condition stays true: feat = flat @ W + 1 + 1 + … for ever."""
    loop, cond = endless_loop("x", "feat", DIM)
    return graph([*pooled("x"), loop], [cond])


def _branch(name: str) -> onnx.GraphProto:
    return helper.make_graph([node("Identity", ["x"], [f"{name}_out"])], name, [], [value(f"{name}_out", ["N", DIM])])


def if_graph() -> onnx.ModelProto:
    flag = tensor("flag", np.bool_(True))
    return graph(
        [*pooled("x"), node("If", ["flag"], ["feat"], then_branch=_branch("a"), else_branch=_branch("b"))], [flag]
    )


def scan_graph() -> onnx.ModelProto:
    body = helper.make_graph(
        [node("Identity", ["s"], ["s_out"]), node("Identity", ["e"], ["e_out"])],
        "scan",
        [value("s", [DIM]), value("e", [DIM])],
        [value("s_out", [DIM]), value("e_out", [DIM])],
    )
    nodes = [*pooled("x"), node("Scan", ["init", "x"], ["last", "feat"], body=body, num_scan_inputs=1)]
    return graph(nodes, [tensor("init", np.zeros(DIM, np.float32))])


STATIC_REFUSALS = {
    "loop without trip count": (loop_forever, r"node 3 \(Loop\) has a subgraph \(control flow\)"),
    "if": (if_graph, r"node 3 \(If\) has a subgraph"),
    "scan": (scan_graph, r"node 3 \(Scan\) has a subgraph"),
    "loop node without its body": (
        lambda: graph([*pooled("x"), node("Loop", ["", "", "x"], ["feat"])]),
        r"node 3 \(Loop\): control flow",
    ),
    "custom domain, imported": (
        lambda: graph([*pooled("x"), node("Evil", ["x"], ["feat"], domain="com.evil")], opsets=[("com.evil", 1)]),
        r"imports the operator domain\(s\) \['com.evil'\]",
    ),
    "custom domain, not imported": (
        lambda: graph([*pooled("x"), node("Evil", ["x"], ["feat"], domain="com.evil")]),
        r"node 3 \(Evil\) is an operator of domain 'com.evil' \(custom code\)",
    ),
    "com.microsoft operator": (
        lambda: graph(
            [*pooled("x"), node("FastGelu", ["x"], ["feat"], domain="com.microsoft")], opsets=[("com.microsoft", 1)]
        ),
        r"imports the operator domain\(s\) \['com.microsoft'\]",
    ),
    "random operator": (
        lambda: graph([*pooled("x"), node("RandomNormalLike", ["x"], ["r"]), node("Add", ["x", "r"], ["feat"])]),
        r"node 3 \(RandomNormalLike\): random",
    ),
    "operator outside the allow-set": (
        lambda: graph([*pooled("x"), node("Cos", ["x"], ["feat"])]),
        r"node 3 \(Cos\): not an operator of fidrs' graphs",
    ),
    "operator named with terminal escapes": (
        lambda: graph([*pooled("x"), node("Relu\x1b[2J\n", ["x"], ["feat"])]),
        r"node 3 \(Relu\\x1b\[2J\\n\): not an operator",
    ),
    "giant ConstantOfShape": (
        lambda: graph(
            [*pooled("x"), node("ConstantOfShape", ["giant"], ["big"]), node("Add", ["x", "big"], ["feat"])],
            [i64("giant", [10**7, 10**8, DIM])],
        ),
        r"node 3 \(ConstantOfShape\): not an operator of fidrs' graphs",
    ),
    "reads an undefined value": (
        lambda: graph([*pooled("x"), node("Add", ["x", "ghost"], ["feat"])]),
        r"node 3 \(Add\) reads 'ghost' before any node or input defines it",
    ),
    "defines a value twice": (
        lambda: graph([*pooled("x"), node("Relu", ["x"], ["flat"]), node("Relu", ["x"], ["feat"])]),
        r"node 3 \(Relu\) defines 'flat' a second time",
    ),
    "old opset": (lambda: graph(pooled(), opset=11), r"ONNX opset 11; fidrs accepts opsets 17 to 19"),
    "future opset": (lambda: graph(pooled(), opset=30), r"ONNX opset 30"),
    "old IR": (lambda: graph(pooled(), ir=3), r"ONNX IR version 3"),
    "future IR": (lambda: graph(pooled(), ir=onnx.IR_VERSION + 1), rf"ONNX IR version {onnx.IR_VERSION + 1}; fidrs"),
}


@pytest.mark.parametrize("case", sorted(STATIC_REFUSALS))
def test_crafted_graphs_are_refused_by_name(case, tmp_path):
    make, match = STATIC_REFUSALS[case]
    refused(make(), tmp_path / "crafted.onnx", match)


def test_a_local_function_is_refused(tmp_path):
    model = graph(pooled())
    model.functions.append(helper.make_function("com.evil", "Payload", ["a"], ["b"], [node("Relu", ["a"], ["b"])], []))
    refused(model, tmp_path / "f.onnx", r"defines local functions \(Payload\)")


# --- refused statically: the input and outputs ------------------------------------------------------------------

INTERFACE_REFUSALS = {
    "uint8 input": (
        lambda: graph(pooled(), inputs=[value("images", ["N", 3, SIZE, SIZE], TensorProto.UINT8)]),
        r"input 'images' is of type uint8, not float32",
    ),
    "wrong input size": (
        lambda: graph(pooled(), inputs=[value("images", ["N", 3, 9, 9])]),
        r"input 'images' has shape \[N, 3, 9, 9\], this backbone needs \[N, 3, 8, 8\]",
    ),
    "fixed batch": (
        lambda: graph(pooled(), inputs=[value("images", [1, 3, SIZE, SIZE])]),
        r"input 'images' has shape \[1, 3, 8, 8\]",
    ),
    "a second input": (
        lambda: graph(pooled(), inputs=[IMAGES, value("extra", ["N", DIM])]),
        r"its inputs are \['images', 'extra'\]",
    ),
    "missing output": (lambda: graph(pooled("other"), outputs=[value("other", ["N", DIM])]), r"has no output 'feat'"),
    "integer output": (
        lambda: graph([node("Shape", ["images"], ["feat"])], outputs=[value("feat", ["N", DIM], TensorProto.INT64)]),
        r"output 'feat' is of type int64, not float32",
    ),
    "output declared one row": (
        lambda: graph(pooled(), outputs=[value("feat", [1, DIM])]),
        r"output 'feat' has shape \[1, 4\], expected \[N, 4\]",
    ),
    "output of another size": (
        lambda: graph(pooled(), outputs=[value("feat", ["N", DIM + 1])]),
        r"output 'feat' has shape \[N, 5\], expected \[N, 4\]",
    ),
    "computes one row for the batch": (
        lambda: graph(
            [*pooled("x"), node("Slice", ["x", "zero", "one", "zero"], ["feat"])],
            [i64("zero", [0]), i64("one", [1])],
        ),
        r"output 'feat' comes out \[unk__\d+, 4\], not one row per image",
    ),
    "computes another size than declared": (
        lambda: graph([*pooled("x"), node("Concat", ["x", "x"], ["feat"], axis=1)]),
        r"output 'feat' comes out \[N, 8\], declared \[N, 4\]",
    ),
}


@pytest.mark.parametrize("case", sorted(INTERFACE_REFUSALS))
def test_graphs_with_another_interface_are_refused(case, tmp_path):
    make, match = INTERFACE_REFUSALS[case]
    refused(make(), tmp_path / "interface.onnx", match)


def test_an_extra_output_of_one_row_per_image_is_accepted(tmp_path):
    """The Inception graph has `logits` besides the two outputs its backbone reads: another [N, k] output is
    harmless (never fetched); one of another shape is not."""
    extra = node("Relu", ["feat"], ["more"])
    check(graph([*pooled(), extra], outputs=[FEAT, value("more", ["N", DIM])]), tmp_path / "x.onnx")
    refused(graph([*pooled(), extra], outputs=[FEAT, value("more", [DIM])]), tmp_path / "x.onnx", r"'more'.*\[N, k\]")


# --- refused statically: initialisers and external data ---------------------------------------------------------


def test_a_huge_declared_initialiser_is_refused_before_anything_is_allocated(tmp_path):
    huge = onnx.TensorProto(name="huge", data_type=TensorProto.FLOAT, dims=[1 << 20, 1 << 20])  # 4 TiB, no data
    model = graph([*pooled("x"), node("Add", ["x", "huge"], ["feat"])], [huge])
    refused(model, tmp_path / "huge.onnx", r"its initialisers hold over 67108864 bytes.*'huge'")


def test_an_initialiser_with_less_data_than_its_dims_is_refused(tmp_path):
    short = onnx.TensorProto(name="short", data_type=TensorProto.FLOAT, dims=[3, DIM], raw_data=b"\0" * 8)
    model = graph([*pooled("x"), node("Add", ["x", "short"], ["feat"])], [short])
    refused(model, tmp_path / "short.onnx", r"initialiser 'short' of dims \[3, 4\] needs 48 bytes .* has 8 bytes")


def test_an_initialiser_of_another_type_is_refused(tmp_path):
    text = onnx.TensorProto(name="text", data_type=TensorProto.STRING, dims=[1], string_data=[b"x"])
    model = graph([*pooled("x"), node("Add", ["x", "text"], ["feat"])], [text])
    refused(model, tmp_path / "text.onnx", r"initialiser 'text' is of type string")


def external(location: str, length: int = 4 * 3 * DIM, offset: int | None = None) -> onnx.ModelProto:
    """The honest graph with W moved to external data at `location`."""
    model = graph(pooled())
    w = model.graph.initializer[0]
    w.ClearField("raw_data")
    w.data_location = TensorProto.EXTERNAL
    for key, val in (("location", location), ("offset", offset), ("length", length)):
        if val is not None:
            entry = w.external_data.add()
            entry.key, entry.value = key, str(val)
    return model


def test_external_data_beside_the_graph_is_accepted(tmp_path):
    (tmp_path / "g.onnx.data").write_bytes(W.tobytes())
    model = external("g.onnx.data")
    check(model, tmp_path / "g.onnx")
    out = sg.run_guarded(session(model, tmp_path / "g.onnx"), {"images": batch()}, deadline_s=30, path="g")
    np.testing.assert_allclose(out[0], batch().astype(np.float64).mean(axis=(2, 3)) @ W, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "location",
    ["../outside.data", "/etc/passwd", "sub/../../outside.data", "*/_ORT_MEM_ADDR_/*", "C:\\w.data", "", ".."],
)
def test_external_data_outside_the_graphs_folder_is_refused(location, tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    (tmp_path / "outside.data").write_bytes(W.tobytes())
    refused(external(location), folder / "g.onnx", r"initialiser 'w': external data location .* is not a file name")


def test_external_data_linked_outside_the_folder_is_refused(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    (tmp_path / "outside.data").write_bytes(W.tobytes())
    (folder / "w.data").symlink_to(tmp_path / "outside.data")
    refused(external("w.data"), folder / "g.onnx", r"external data 'w.data' leads outside the graph's folder")


def test_missing_short_or_special_external_data_is_refused(tmp_path):
    path = tmp_path / "g.onnx"
    refused(external("missing.data"), path, r"external data file .*missing.data cannot be read")
    (tmp_path / "short.data").write_bytes(W.tobytes()[:8])
    refused(external("short.data"), path, r"external data .*short.data has 8 bytes, the tensor needs bytes 0 to 48")
    (tmp_path / "w.data").write_bytes(W.tobytes())
    refused(external("w.data", offset=8), path, r"has 48 bytes, the tensor needs bytes 8 to 56")
    refused(external("w.data", length=4), path, r"external data length 4, its dims need 48 bytes")
    os.mkfifo(tmp_path / "fifo.data")
    refused(external("fifo.data"), path, r"external data .*fifo.data is not a regular file")
    refused(external("g.onnx"), path, r"external data location is the graph file itself")


def test_onnx_runtimes_own_external_data_errors_name_the_file(tmp_path):
    """The second line: a graph given to ONNX Runtime unchecked still ends in a GraphError naming the file."""
    folder = tmp_path / "model"
    folder.mkdir()
    (tmp_path / "outside.data").write_bytes(W.tobytes())
    for location, reason in (("missing.data", "does not exist"), ("../outside.data", "escapes model directory")):
        path = save(external(location), folder / "g.onnx")
        with pytest.raises(GraphError, match=rf"^{path}: ONNX Runtime cannot load the graph \(.*{reason}"):
            sg.open_session(path, cpu_options(), ["CPUExecutionProvider"])


# --- refused statically: sizes and work computed from the shapes ------------------------------------------------


def test_a_giant_expand_is_refused_before_any_allocation(tmp_path):
    """Expand (an allowed operator) to 2^26 × N × 4 elements: 1 GiB per image."""
    nodes = [
        *pooled("x"),
        node("Expand", ["x", "giant"], ["big"]),
        node("Gather", ["big", "first"], ["feat"], axis=0),
    ]
    model = graph(nodes, [i64("giant", [1 << 26, 1, DIM]), i64("first", 0)])
    refused(model, tmp_path / "expand.onnx", r"its tensors hold up to 2.68e\+08 elements per image at once")


def test_a_shape_computed_from_unknown_values_is_refused(tmp_path):
    """A Reshape whose target shape comes from a tensor too large for shape inference to read: its size is
    unbounded, so it is refused rather than left for ONNX Runtime to allocate."""
    dims = np.ones(100, np.int64)  # a 100-element int64 initialiser: kept out of the shape inference's data
    nodes = [
        *pooled("x"),
        node("Gather", ["dims", "pick"], ["shape"], axis=0),
        node("Reshape", ["x", "shape"], ["r"]),
        node("Add", ["x", "r"], ["feat"]),
    ]
    model = graph(nodes, [tensor("dims", dims), i64("pick", [0, 1])])
    refused(
        model, tmp_path / "reshape.onnx", r"value 'r' has a dimension unk__\d+ that is neither a number nor the batch N"
    )


def test_a_value_with_the_batch_axis_twice_is_refused(tmp_path):
    nodes = [
        *pooled("x"),
        node("Transpose", ["x"], ["xt"], perm=[1, 0]),
        node("MatMul", ["x", "xt"], ["gram"]),  # N × N: every image's feature would depend on the others
        node("MatMul", ["gram", "x"], ["feat"]),
    ]
    refused(graph(nodes), tmp_path / "gram.onnx", r"value 'gram' has the batch dimension twice")


def _batch_of(name: str) -> list:
    """`name` = [N] (int64), the batch size read from the images' shape, as DINOv2's graph reads it."""
    return [node("Shape", ["images"], ["dims"]), node("Slice", ["dims", "zero", "one"], [name])]


BATCH_INTS = [i64("zero", [0]), i64("one", [1]), i64("width", [DIM]), i64("zeros", [0])]

# Graphs that give N rows of the right size, each mixing the images of the batch: every row would depend on what
# else is in the batch, so the features would change with the batch size and order.
BATCH_MIXING = {
    "batch norm broadcast back to N rows": (
        [
            *pooled("x"),
            node("ReduceL2", ["x"], ["norm"], axes=[0], keepdims=1),  # 1 × 4: over the batch
            *_batch_of("n"),
            node("Concat", ["n", "width"], ["shape"], axis=0),
            node("Expand", ["norm", "shape"], ["feat"]),
        ],
        r"node 3 \(ReduceL2\) works along the batch axis",
    ),
    "product over the batch broadcast back": (
        [
            *pooled("x"),
            node("Transpose", ["x"], ["xt"], perm=[1, 0]),
            node("MatMul", ["xt", "x"], ["gram"]),  # 4 × 4: a sum over the images
            node("Gather", ["gram", "zeros"], ["row"], axis=0),  # 1 × 4
            node("Add", ["x", "row"], ["feat"]),
        ],
        r"value 'gram' \(MatMul\) is computed from the images but has no batch axis",
    ),
    "softmax over the batch": (
        [*pooled("x"), node("Softmax", ["x"], ["feat"], axis=0)],
        r"node 3 \(Softmax\) works along the batch axis",
    ),
    "layer norm over the batch": (
        [*pooled("x"), node("LayerNormalization", ["x", "scale", "bias"], ["feat"], axis=0)],
        r"node 3 \(LayerNormalization\) works along the batch axis",
    ),
    "every row copied from the first image": (
        [
            *pooled("x"),
            *_batch_of("n"),
            node("Expand", ["zeros", "n"], ["index"]),  # N zeros
            node("Gather", ["x", "index"], ["feat"], axis=0),
        ],
        r"node 6 \(Gather\) works along the batch axis",
    ),
    "reshape across the batch": (
        [
            *pooled("x"),
            *_batch_of("n"),
            node("Concat", ["width", "n"], ["across"], axis=0),
            node("Reshape", ["x", "across"], ["t"]),  # 4 × N: the rows cut across the images
            node("Concat", ["n", "width"], ["back"], axis=0),
            node("Reshape", ["t", "back"], ["feat"]),
        ],
        r"node 6 \(Reshape\) moves data across the batch axis",
    ),
}


@pytest.mark.parametrize("case", sorted(BATCH_MIXING))
def test_graphs_that_mix_the_images_of_a_batch_are_refused(case, tmp_path):
    nodes, match = BATCH_MIXING[case]
    norm = [tensor("scale", np.ones(DIM, np.float32)), tensor("bias", np.zeros(DIM, np.float32))]
    model = graph(nodes, [*BATCH_INTS, *norm])
    path = tmp_path / "mixing.onnx"
    refused(model, path, match)
    # Each runs, and gives N rows: only the check tells them apart from an honest graph.
    out = sg.run_guarded(session(model, path), {"images": batch(3)}, deadline_s=30, path=path)
    sg.check_outputs(out, names=["feat"], dims=[DIM], batch=3, path=path)


def test_a_constant_folding_bomb_is_refused_before_onnx_runtime_sees_it(tmp_path):
    """30 chained 1024² MatMuls on a constant: ONNX Runtime would fold them (6.4e10 operations) while creating
    the session, where no run deadline applies."""
    nodes = [*pooled("x")]
    previous = "c"
    for i in range(30):
        nodes.append(node("MatMul", [previous, "c"], [f"c{i}"]))
        previous = f"c{i}"
    nodes += [node("Slice", [previous, "zeros", "ends", "axes"], ["row"]), node("Add", ["x", "row"], ["feat"])]
    inits = [tensor("c", np.eye(1024, dtype=np.float32)), i64("zeros", [0, 0]), i64("ends", [1, DIM])]
    inits.append(i64("axes", [0, 1]))  # row: the first 1 × 4 of the product, added to every image's x
    message = refused(graph(nodes, inits), tmp_path / "bomb.onnx", r"on constants or shapes")
    assert "6.4" in message  # 30 · 2 · 1024³ = 6.44e10


def test_too_much_arithmetic_per_image_is_refused(tmp_path):
    """16 products of N × 4096 × 4096 tensors with themselves: 2.2e12 operations per image, above the limit."""
    nodes = [
        *pooled("x"),
        node("Slice", ["x", "zero", "one", "one"], ["x1"]),  # N × 1
        node("Reshape", ["x1", "column"], ["x11"]),  # N × 1 × 1
        node("Expand", ["x11", "square"], ["a0"]),  # N × 4096 × 4096
    ]
    for i in range(16):
        nodes.append(node("MatMul", [f"a{i}", f"a{i}"], [f"a{i + 1}"]))
    nodes += [
        node("Slice", ["a16", "zero", "dim", "two"], ["rows"]),  # N × 4096 × 4
        node("Gather", ["rows", "first"], ["feat"], axis=1),  # N × 4
    ]
    inits = [i64(n, v) for n, v in (("zero", [0]), ("one", [1]), ("two", [2]), ("dim", [DIM]), ("first", 0))]
    inits += [i64("column", [0, 1, 1]), i64("square", [1, 4096, 4096])]
    message = refused(graph(nodes, inits), tmp_path / "slow.onnx", r"floating-point operations per image")
    assert "2.2e+12" in message  # 16 · 2 · 4096³ = 2.20e12, plus the elementwise nodes (1e8)


# --- at run time: the deadline ----------------------------------------------------------------------------------


def matmul_chain(length: int, k: int = 512) -> onnx.ModelProto:
    """x (N × k) through `length` products with the k × k identity: slow, and each node is short (the terminate
    flag is checked between nodes)."""
    nodes, previous = [], "x"
    for i in range(length):
        nodes.append(node("MatMul", [previous, "eye"], [f"m{i}"]))
        previous = f"m{i}"
    nodes.append(node("Identity", [previous], ["y"]))
    body = helper.make_graph(
        nodes, "chain", [value("x", ["N", k])], [value("y", ["N", k])], [tensor("eye", np.eye(k, dtype=np.float32))]
    )
    model = helper.make_model(body, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def test_a_slow_run_is_stopped_at_its_deadline(tmp_path):
    x = np.ones((512, 512), np.float32)
    short = session(matmul_chain(20), tmp_path / "short.onnx")
    started = time.perf_counter()
    short.run(None, {"x": x})
    per_node = (time.perf_counter() - started) / 20
    deadline = 0.5
    # 3000 nodes of a batch long enough that the whole run takes twice the 10× margin below on this machine
    # (per_node is measured: ~1.5 ms for 512 rows on 2 AVX-512 cores, ~12 ms on slower ones; a node's cost is
    # linear in the rows), so the assertion that it was stopped can fail. More rows, not more nodes: building a
    # session of tens of thousands of nodes takes seconds.
    rows = 512 * max(1, int(np.ceil(2 * 10 * (deadline + 1.0) / (3000 * per_node))))
    x = np.ones((rows, 512), np.float32)
    path = tmp_path / "slow.onnx"
    slow = session(matmul_chain(3000), path)
    expected = 3000 * per_node * rows / 512  # what the whole run would take
    started = time.perf_counter()
    with pytest.raises(GraphError, match=rf"^{path}: a network run on {rows} images did not finish within") as info:
        sg.run_guarded(slow, {"x": x}, deadline_s=deadline, path=path)
    elapsed = time.perf_counter() - started
    assert "its deadline of 0.5 s" in str(info.value) and "FIDRS_RUN_DEADLINE_S" in str(info.value)
    # Stopped within a few nodes of the deadline, not after the whole chain: elapsed is the deadline plus at
    # most one node (~12 ms) and the exception's way back; the full run is over 10× longer than the 1.5 s allowed.
    assert elapsed < deadline + 1.0, elapsed
    assert expected > 10 * (deadline + 1.0), expected
    # The same session runs again (a stopped run leaves it usable), here through IO binding as on a GPU
    # (runtime.BoundInput): the deadline stops that path too.
    binding = slow.io_binding()
    binding.bind_cpu_input("x", x)
    binding.bind_output("y", "cpu")
    started = time.perf_counter()
    with pytest.raises(GraphError, match="did not finish within its deadline of 0.5 s"):
        sg.run_with_deadline(lambda o: slow.run_with_iobinding(binding, o), deadline_s=deadline, path=path, batch=rows)
    assert time.perf_counter() - started < deadline + 1.0


def test_a_loop_that_never_ends_is_stopped_by_the_deadline_too(tmp_path):
    """The static check refuses it; given to ONNX Runtime anyway, the deadline still ends it (in a child
    process, so that an ONNX Runtime which ignored the flag could not hang this test run)."""
    path = save(loop_forever(), tmp_path / "loop.onnx")
    script = textwrap.dedent(
        f"""
        import numpy as np, onnxruntime as ort
        from fidrs import session_guard as sg
        from fidrs.errors import GraphError
        options = ort.SessionOptions(); options.log_severity_level = 4
        s = sg.open_session({str(path)!r}, options, ["CPUExecutionProvider"])
        try:
            images = np.zeros((2, 3, {SIZE}, {SIZE}), np.float32)
            sg.run_guarded(s, {{"images": images}}, deadline_s=1.0, path={str(path)!r})
        except GraphError as e:
            print(e)
        """
    )
    started = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"{path}: a network run on 2 images did not finish within its deadline of 1 s")
    assert time.perf_counter() - started < 60


@pytest.mark.parametrize("text", ["0", "-1", "nan", "inf", "1e9", "soon"])
def test_a_bad_deadline_variable_is_refused_by_name(text, monkeypatch):
    monkeypatch.setenv("FIDRS_RUN_DEADLINE_S", text)
    with pytest.raises(InvalidInputError, match=rf"FIDRS_RUN_DEADLINE_S must be .* got '{text}'"):
        sg.run_deadline_s(16, 1e10)


def test_the_deadline_rule(monkeypatch):
    monkeypatch.delenv("FIDRS_RUN_DEADLINE_S", raising=False)
    # 120 s + per image the graph's operations at 5e9 operations/s (Inception: 1.146e10 → 2.3 s an image).
    assert sg.run_deadline_s(16, 1.146e10) == pytest.approx(120 + 16 * 1.146e10 / 5e9)
    assert sg.run_deadline_s(16) == pytest.approx(120 + 16 * 6e11 / 5e9)  # unknown: fidrs' most expensive graph
    monkeypatch.setenv("FIDRS_RUN_DEADLINE_S", "2.5")
    assert sg.run_deadline_s(16, 1.146e10) == 2.5


# --- at run time: ONNX Runtime's errors and the outputs ---------------------------------------------------------


def test_onnx_runtimes_load_errors_name_the_file(tmp_path):
    custom = save(
        graph([*pooled("x"), node("Evil", ["x"], ["feat"], domain="com.evil")], opsets=[("com.evil", 1)]),
        tmp_path / "custom.onnx",
    )
    with pytest.raises(GraphError, match=rf"^{custom}: ONNX Runtime cannot load the graph \(.*com.evil:Evil"):
        sg.open_session(custom, cpu_options(), ["CPUExecutionProvider"])
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x08\x07 not a protobuf")
    with pytest.raises(GraphError, match=rf"^{garbage}: not a readable ONNX graph"):
        sg.open_session(garbage, cpu_options(), ["CPUExecutionProvider"])
    missing = tmp_path / "missing.onnx"
    with pytest.raises(GraphError, match=rf"^{missing}: a file of the graph does not exist"):
        sg.open_session(missing, cpu_options(), ["CPUExecutionProvider"])


def test_a_uint8_input_graph_run_with_fidrs_input_names_the_file(tmp_path):
    """Refused statically (test_graphs_with_another_interface_are_refused); given to ONNX Runtime unchecked, the
    run's InvalidArgument becomes a GraphError naming the file."""
    u8 = value("images", ["N", 3, SIZE, SIZE], TensorProto.UINT8)
    model = graph([node("Cast", ["images"], ["f"], to=TensorProto.FLOAT), *pooled(source="f")], inputs=[u8])
    path = tmp_path / "u8.onnx"
    run = session(model, path)
    with pytest.raises(GraphError, match=rf"^{path}: the graph does not accept fidrs' network input \(Unexpected"):
        sg.run_guarded(run, {"images": batch()}, deadline_s=30, path=path)


def test_a_huge_allocation_at_run_time_is_an_error_naming_the_file(tmp_path):
    """ConstantOfShape of 10^15 float32 (refused statically: not an allowed operator; its shape is a constant
    here, but from data it would be unknowable): ONNX Runtime's allocation failure becomes a GraphError."""
    nodes = [node("ConstantOfShape", ["shape"], ["big"]), *pooled("x"), node("Add", ["x", "big"], ["feat"])]
    model = graph(nodes, [i64("shape", [10**7, 10**8, DIM])], outputs=[value("feat", ["A", "B", DIM])])
    path = tmp_path / "alloc.onnx"
    run = session(model, path)
    with pytest.raises(GraphError, match=rf"^{path}: ONNX Runtime could not allocate the memory for a batch of 3"):
        sg.run_guarded(run, {"images": batch()}, deadline_s=30, path=path)


def test_outputs_of_one_row_for_a_batch_are_refused(tmp_path):
    """Given to ONNX Runtime unchecked, the one-row graph runs; its output is refused, never broadcast."""
    model = graph(
        [*pooled("x"), node("Slice", ["x", "zero", "one", "zero"], ["feat"])], [i64("zero", [0]), i64("one", [1])]
    )
    path = tmp_path / "one.onnx"
    out = sg.run_guarded(session(model, path), {"images": batch(5)}, deadline_s=30, path=path)
    assert out[0].shape == (1, DIM)
    with pytest.raises(GraphError, match=rf"^{path}: output 'feat' has shape \(1, 4\) for a batch of 5 images"):
        sg.check_outputs(out, names=["feat"], dims=[DIM], batch=5, path=path)


def test_nan_and_infinite_outputs_are_refused(tmp_path):
    zero = tensor("zero", np.zeros(DIM, np.float32))
    model = graph([*pooled("x"), node("Div", ["x", "zero"], ["feat"])], [zero])  # x / 0: ±inf, or NaN where x = 0
    path = tmp_path / "nan.onnx"
    out = sg.run_guarded(session(model, path), {"images": batch(2)}, deadline_s=30, path=path)
    with pytest.raises(GraphError, match=rf"^{path}: output 'feat' has NaN or infinite values for 2 of 2 images"):
        sg.check_outputs(out, names=["feat"], dims=[DIM], batch=2, path=path)


def test_outputs_of_another_type_size_or_count_are_refused():
    good = np.zeros((2, DIM), np.float32)
    cases = [
        ([good.astype(np.float64)], r"output 'feat' is float64, not float32"),
        ([np.zeros((2, DIM + 1), np.float32)], r"output 'feat' has shape \(2, 5\) for a batch of 2 images"),
        ([good, good], r"the run returned 2 outputs, fidrs asked for 1"),
        ([[0.0] * DIM], r"output 'feat' is a list, not a tensor"),
    ]
    for outputs, match in cases:
        with pytest.raises(GraphError, match=rf"^g.onnx: {match}"):
            sg.check_outputs(outputs, names=["feat"], dims=[DIM], batch=2, path="g.onnx")
    assert sg.check_outputs([good], names=["feat"], dims=[DIM], batch=2, path="g.onnx")[0] is good


def test_a_graph_error_is_exit_2_at_the_cli(tmp_path, monkeypatch, capsys):
    import importlib

    from fidrs.cli import commands
    from fidrs.errors import EXIT_BAD_INPUT

    main = importlib.import_module("fidrs.cli.main")  # the module (fidrs.cli.main is also the function)

    path = tmp_path / "crafted.onnx"

    def run(_args):
        check(loop_forever(), path)

    monkeypatch.setattr(commands, "run", run)
    assert issubclass(GraphError, WeightsError)
    assert main._execute(None) == EXIT_BAD_INPUT
    assert f"fidrs: error: {path}: node 3 (Loop) has a subgraph" in capsys.readouterr().err


# --- mutated graphs: every outcome is an acceptance or a GraphError, never another exception -------------------


def _mutate(model: onnx.ModelProto, rng: np.random.Generator) -> None:
    """One random structural change: an operator, an attribute, a shape constant, a declared dim, a node's input,
    the node order, a missing node or an initialiser's dims."""
    g = model.graph
    target = g.node[int(rng.integers(len(g.node)))]
    kind = int(rng.integers(8))
    if kind == 0:
        target.op_type = str(rng.choice([*sorted(gc.KNOWN_OPS), "Loop", "Identity", "Cast", "Tile", "ReduceMean"]))
    elif kind == 1 and len(target.attribute):
        attr = target.attribute[int(rng.integers(len(target.attribute)))]
        if attr.type == onnx.AttributeProto.INT:
            attr.i = int(rng.choice([-3, -1, 0, 1, 2, 5, 2**40]))
        elif attr.type == onnx.AttributeProto.INTS and len(attr.ints):
            attr.ints[int(rng.integers(len(attr.ints)))] = int(rng.choice([-2, -1, 0, 1, 4, 2**31]))
    elif kind == 2:
        shapes = [t for t in g.initializer if t.data_type == TensorProto.INT64]
        t = shapes[int(rng.integers(len(shapes)))]
        values = numpy_helper.to_array(t).copy()
        if values.size:
            values.reshape(-1)[int(rng.integers(values.size))] = int(rng.choice([-1, 0, 1, 3, 1 << 20, 1 << 40]))
        t.CopyFrom(numpy_helper.from_array(values, t.name))
    elif kind == 3:
        declared = [*g.input, *g.output][int(rng.integers(len(g.input) + len(g.output)))]
        dims = declared.type.tensor_type.shape.dim
        dim = dims[int(rng.integers(len(dims)))]
        if rng.random() < 0.5:
            dim.dim_value = int(rng.choice([0, 1, 3, 64, 224]))
        else:
            dim.dim_param = str(rng.choice(["N", "M", ""]))
    elif kind == 4 and len(target.input):
        names = [t.name for t in g.initializer] + [o for n in g.node for o in n.output] + [""]
        target.input[int(rng.integers(len(target.input)))] = str(rng.choice(names))
    elif kind == 5:
        i, j = rng.integers(len(g.node), size=2)
        first, second = onnx.NodeProto(), onnx.NodeProto()
        first.CopyFrom(g.node[int(i)])
        second.CopyFrom(g.node[int(j)])
        g.node[int(i)].CopyFrom(second)
        g.node[int(j)].CopyFrom(first)
    elif kind == 6:
        del g.node[int(rng.integers(len(g.node)))]
    else:
        t = g.initializer[int(rng.integers(len(g.initializer)))]
        if len(t.dims):
            t.dims[int(rng.integers(len(t.dims)))] = int(rng.choice([0, 1, 2, 1 << 40]))


def test_mutated_graphs_are_accepted_or_refused_by_name(tmp_path):
    """600 random structural mutations of a small DINOv2 graph (the check's own fuzzing found a name that was not
    valid UTF-8 coming back from protobuf as bytes): each is accepted or refused with a GraphError naming the file,
    and no check trips over a malformed graph ("cannot be checked" would mean a bug in the check)."""
    base = build_dinov2(random_state(Architecture(64, 1, "swiglu", 16)))
    rng = np.random.default_rng(0)
    path = tmp_path / "mutated.onnx"
    outcomes = {"accepted": 0, "refused": 0}
    for _ in range(600):
        model = onnx.ModelProto()
        model.CopyFrom(base)
        for _ in range(int(rng.integers(1, 4))):
            _mutate(model, rng)
        try:
            check(model, path, input_size=224, outputs={"cls": 64})
            outcomes["accepted"] += 1
        except GraphError as e:
            assert str(e).startswith(f"{path}: ") and "cannot be checked" not in str(e), e
            outcomes["refused"] += 1
    assert outcomes["refused"] > 300, outcomes  # most mutations break the graph; the rest are harmless edits


def test_corrupted_graph_bytes_are_accepted_or_refused_by_name(tmp_path):
    """Random bytes changed in the serialised honest graph: what protobuf still parses is checked without any
    exception but a GraphError (names that are not valid UTF-8 included)."""
    base = bytearray(graph(pooled()).SerializeToString())
    rng = np.random.default_rng(1)
    path = tmp_path / "corrupt.onnx"
    parsed = 0
    for _ in range(1500):
        data = bytearray(base)
        for i in rng.integers(len(data), size=int(rng.integers(1, 4))):
            data[int(i)] = int(rng.integers(256))
        try:
            model = onnx.load_model_from_string(bytes(data))
        except Exception:  # noqa: BLE001 - not parseable: load_and_check refuses it (tested above)
            continue
        parsed += 1
        try:
            check(model, path)
        except GraphError as e:
            assert str(e).startswith(f"{path}: ") and "cannot be checked" not in str(e), e
    assert parsed > 300, parsed


def test_a_graph_in_the_installed_onnx_ir_version_is_accepted(tmp_path):
    """`helper.make_model` writes the installed onnx's IR version (a plugin's converter does not set one)."""
    model = graph(pooled(), ir=onnx.IR_VERSION)
    assert check(model, tmp_path / "new-ir.onnx").ops == {"GlobalAveragePool", "Flatten", "MatMul"}
