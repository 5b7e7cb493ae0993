"""A tiny backbone for plumbing tests: 16×16 RGB input, conv 3→4 (3×3) + ReLU, conv 4→8 (3×3) + ReLU, global
average → an 8-d feature, and a linear layer → 4 class logits. Its "checkpoint" is a seeded `.npz` of the
weights, read without pickle; the ONNX graph is built from it with `onnx.helper`. It goes through every part of
fidrs a real backbone does (registry, manifest, weights resolution and pinning, graph cache, feature cache,
statistics, metrics, CLI) at a few milliseconds an image.

    from tiny_backbone import register, write_checkpoint
    register()                                   # fidrs.register_backbone(...) of the manifest beside this file
    fidrs.score(a, b, backbone="tiny", weights=write_checkpoint(tmp / "tiny.npz"))

The conftest fixture `tiny` does both and unregisters it afterwards."""

from __future__ import annotations

from pathlib import Path

import numpy as np

MANIFEST = Path(__file__).with_name("tiny_backbone.toml")
SHAPES = {
    "conv1.weight": (4, 3, 3, 3),
    "conv1.bias": (4,),
    "conv2.weight": (8, 4, 3, 3),
    "conv2.bias": (8,),
    "fc.weight": (4, 8),
    "fc.bias": (4,),
}


def state(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {k: rng.normal(scale=0.5, size=shape).astype(np.float32) for k, shape in SHAPES.items()}


def write_checkpoint(path: str | Path, seed: int = 0) -> str:
    np.savez(path, **state(seed))
    return str(path)


def load_state(path) -> dict[str, np.ndarray]:
    from fidrs.errors import WeightsError
    from fidrs.files import read_npz

    data = read_npz(path)
    data.pop("__files__")
    if set(data) != set(SHAPES):
        raise WeightsError(f"not a tiny checkpoint: tensors {sorted(data)}")
    return data


def check_state(state: dict[str, np.ndarray]) -> None:
    from fidrs.errors import WeightsError

    for key, shape in SHAPES.items():
        if key not in state or tuple(state[key].shape) != shape:
            raise WeightsError(f"tiny checkpoint tensor {key!r} must have shape {shape}")


def build_graph(state: dict[str, np.ndarray]):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes = [
        helper.make_node("Conv", ["images", "conv1.weight", "conv1.bias"], ["c1"], kernel_shape=[3, 3], pads=[1] * 4),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "conv2.weight", "conv2.bias"], ["c2"], kernel_shape=[3, 3], pads=[1] * 4),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("GlobalAveragePool", ["r2"], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["features"], axis=1),
        helper.make_node("Gemm", ["features", "fc.weight", "fc.bias"], ["logits"], transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["N", 3, 16, 16])],
        [
            helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", 8]),
            helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 4]),
        ],
        [numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in state.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="fidrs-tests")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def forward(state: dict[str, np.ndarray], images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The same network in float64 numpy, for tests that check the graph itself."""

    def conv(x, w, b):
        n, _, h, width = x.shape
        padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
        out = np.zeros((n, w.shape[0], h, width))
        for i in range(3):
            for j in range(3):
                out += np.einsum("nchw,oc->nohw", padded[:, :, i : i + h, j : j + width], w[:, :, i, j])
        return out + b[None, :, None, None]

    s = {k: v.astype(np.float64) for k, v in state.items()}
    x = np.maximum(conv(images.astype(np.float64), s["conv1.weight"], s["conv1.bias"]), 0)
    x = np.maximum(conv(x, s["conv2.weight"], s["conv2.bias"]), 0)
    features = x.mean(axis=(2, 3))
    return features, features @ s["fc.weight"].T + s["fc.bias"]


def backbone():
    """The tiny Backbone, built from its manifest with this module's code (what a plugin does)."""
    from fidrs.backbones import manifest

    return manifest.backbone(manifest.load(MANIFEST), manifest.Code(load_state, check_state, check_state, build_graph))


def register():
    import fidrs

    return fidrs.register_backbone(backbone(), replace=True)


def plugin():
    """The entry point a plugin distribution names (`fidrs.backbones` group)."""
    return [backbone()]
