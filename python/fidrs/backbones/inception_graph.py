"""Build pytorch-fid's FID Inception V3 as an ONNX graph from a state dict.

Layout follows pytorch-fid's `fid_inception_v3`: torchvision's Inception V3 stem with the FID-specific
blocks (FIDInceptionA/C/E_1 average-pool with count_include_pad=False, E_2 max-pools its pool branch).
BatchNorm (eps 0.001) is folded into each convolution in float64, then stored as float32.
Input `images`: N×3×299×299 float32, already normalised to [-1, 1]. Outputs: `pool3` (N×2048),
`logits` (N×1008, the fc layer with bias) and `logits_unbiased` (without the bias, for torch-fidelity's IS).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ..errors import WeightsError

BN_EPS = 0.001
OPSET = 17


# (stride, padding) of the convolutions that are not stride 1 with "same" padding.
_SPECIAL_CONVS = {
    "Conv2d_1a_3x3": (2, (0, 0)),
    "Conv2d_2a_3x3": (1, (0, 0)),
    "Conv2d_4a_3x3": (1, (0, 0)),
    "Mixed_6a.branch3x3": (2, (0, 0)),
    "Mixed_6a.branch3x3dbl_3": (2, (0, 0)),
    "Mixed_7a.branch3x3_2": (2, (0, 0)),
    "Mixed_7a.branch7x7x3_4": (2, (0, 0)),
}


# Kernel (height, width) of every convolution, by block kind and branch, as torchvision's Inception V3 has them.
# With the channel count of what flows in, this fixes every weight's shape except the output channels, which
# are checked where they flow on (the next layer, and 2048 at pool3).
_STEM_KERNELS = {
    "Conv2d_1a_3x3": (3, 3),
    "Conv2d_2a_3x3": (3, 3),
    "Conv2d_2b_3x3": (3, 3),
    "Conv2d_3b_1x1": (1, 1),
    "Conv2d_4a_3x3": (3, 3),
}
_BLOCK_KERNELS = {
    "A": {
        "branch1x1": (1, 1),
        "branch5x5_1": (1, 1),
        "branch5x5_2": (5, 5),
        "branch3x3dbl_1": (1, 1),
        "branch3x3dbl_2": (3, 3),
        "branch3x3dbl_3": (3, 3),
        "branch_pool": (1, 1),
    },
    "B": {"branch3x3": (3, 3), "branch3x3dbl_1": (1, 1), "branch3x3dbl_2": (3, 3), "branch3x3dbl_3": (3, 3)},
    "C": {
        "branch1x1": (1, 1),
        "branch7x7_1": (1, 1),
        "branch7x7_2": (1, 7),
        "branch7x7_3": (7, 1),
        "branch7x7dbl_1": (1, 1),
        "branch7x7dbl_2": (7, 1),
        "branch7x7dbl_3": (1, 7),
        "branch7x7dbl_4": (7, 1),
        "branch7x7dbl_5": (1, 7),
        "branch_pool": (1, 1),
    },
    "D": {
        "branch3x3_1": (1, 1),
        "branch3x3_2": (3, 3),
        "branch7x7x3_1": (1, 1),
        "branch7x7x3_2": (1, 7),
        "branch7x7x3_3": (7, 1),
        "branch7x7x3_4": (3, 3),
    },
    "E": {
        "branch1x1": (1, 1),
        "branch3x3_1": (1, 1),
        "branch3x3_2a": (1, 3),
        "branch3x3_2b": (3, 1),
        "branch3x3dbl_1": (1, 1),
        "branch3x3dbl_2": (3, 3),
        "branch3x3dbl_3a": (1, 3),
        "branch3x3dbl_3b": (3, 1),
        "branch_pool": (1, 1),
    },
}
_BLOCK_KINDS = {"Mixed_5": "A", "Mixed_6a": "B", "Mixed_6": "C", "Mixed_7a": "D", "Mixed_7": "E"}


def _kernel(name: str) -> tuple[int, int]:
    if name in _STEM_KERNELS:
        return _STEM_KERNELS[name]
    block, branch = name.split(".")
    kind = _BLOCK_KINDS.get(block) or _BLOCK_KINDS[block[:7]]
    return _BLOCK_KERNELS[kind][branch]


class _GraphBuilder:
    def __init__(self, state: Mapping[str, np.ndarray]) -> None:
        self.state = state
        # Channels of every value in the graph: each tensor's shape is checked against what flows into it,
        # before anything is built, so a wrong checkpoint is named by its key instead of failing in ORT.
        self.channels: dict[str, int] = {"images": 3}
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.used: set[str] = set()
        self._count = 0

    def _name(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def _tensor(self, key: str, shape: tuple[int | None, ...] | None = None) -> np.ndarray:
        """The tensor `key` as float64; with `shape`, its shape must match (None: any size on that axis)."""
        if key not in self.state:
            raise WeightsError(f"checkpoint lacks tensor {key!r}: not a pytorch-fid Inception checkpoint")
        value = self.state[key]
        if not isinstance(value, np.ndarray) or value.dtype.kind != "f":
            raise WeightsError(f"checkpoint tensor {key!r} is not a floating-point tensor")
        if shape is not None and (
            value.ndim != len(shape) or any(e is not None and e != a for e, a in zip(shape, value.shape))
        ):
            expected = "×".join("?" if e is None else str(e) for e in shape)
            raise WeightsError(
                f"checkpoint tensor {key!r} has shape {tuple(value.shape)}, the FID Inception needs {expected}"
            )
        self.used.add(key)
        return np.asarray(value, dtype=np.float64)

    def conv(self, x: str, name: str) -> str:
        """BasicConv2d: conv (no bias) + BatchNorm(eps=0.001) + ReLU, with BN folded into the conv."""
        weight = self._tensor(f"{name}.conv.weight", (None, self.channels[x], *_kernel(name)))
        out_channels = weight.shape[0]
        gamma, beta = (
            self._tensor(f"{name}.bn.weight", (out_channels,)),
            self._tensor(f"{name}.bn.bias", (out_channels,)),
        )
        mean = self._tensor(f"{name}.bn.running_mean", (out_channels,))
        var = self._tensor(f"{name}.bn.running_var", (out_channels,))
        if (var < 0).any():
            raise WeightsError(f"checkpoint tensor {name + '.bn.running_var'!r} has negative variances")
        self.used.add(f"{name}.bn.num_batches_tracked")
        scale = gamma / np.sqrt(var + BN_EPS)
        folded_w = (weight * scale[:, None, None, None]).astype(np.float32)
        folded_b = (beta - mean * scale).astype(np.float32)
        kh, kw = weight.shape[2:]
        stride, (ph, pw) = _SPECIAL_CONVS.get(name, (1, (kh // 2, kw // 2)))
        w_name, b_name = f"{name}.weight", f"{name}.bias"
        self.initializers += [numpy_helper.from_array(folded_w, w_name), numpy_helper.from_array(folded_b, b_name)]
        conv_out, out = self._name(f"{name}.conv"), self._name(f"{name}.relu")
        self.nodes.append(
            helper.make_node(
                "Conv",
                [x, w_name, b_name],
                [conv_out],
                kernel_shape=[kh, kw],
                strides=[stride, stride],
                pads=[ph, pw, ph, pw],
            )
        )
        self.nodes.append(helper.make_node("Relu", [conv_out], [out]))
        self.channels[out] = out_channels
        return out

    def max_pool(self, x: str, stride: int = 2, pad: int = 0) -> str:
        out = self._name("maxpool")
        self.channels[out] = self.channels[x]
        self.nodes.append(
            helper.make_node("MaxPool", [x], [out], kernel_shape=[3, 3], strides=[stride, stride], pads=[pad] * 4)
        )
        return out

    def avg_pool_exclude_pad(self, x: str) -> str:
        out = self._name("avgpool")
        self.channels[out] = self.channels[x]
        self.nodes.append(
            helper.make_node(
                "AveragePool",
                [x],
                [out],
                kernel_shape=[3, 3],
                strides=[1, 1],
                pads=[1, 1, 1, 1],
                count_include_pad=0,
            )
        )
        return out

    def concat(self, inputs: list[str]) -> str:
        out = self._name("concat")
        self.channels[out] = sum(self.channels[i] for i in inputs)
        self.nodes.append(helper.make_node("Concat", inputs, [out], axis=1))
        return out

    # The blocks, named as in pytorch-fid / torchvision.
    def inception_a(self, x: str, p: str) -> str:
        b1 = self.conv(x, f"{p}.branch1x1")
        b5 = self.conv(self.conv(x, f"{p}.branch5x5_1"), f"{p}.branch5x5_2")
        b3 = self.conv(self.conv(self.conv(x, f"{p}.branch3x3dbl_1"), f"{p}.branch3x3dbl_2"), f"{p}.branch3x3dbl_3")
        bp = self.conv(self.avg_pool_exclude_pad(x), f"{p}.branch_pool")
        return self.concat([b1, b5, b3, bp])

    def inception_b(self, x: str, p: str) -> str:
        b3 = self.conv(x, f"{p}.branch3x3")
        bd = self.conv(self.conv(self.conv(x, f"{p}.branch3x3dbl_1"), f"{p}.branch3x3dbl_2"), f"{p}.branch3x3dbl_3")
        return self.concat([b3, bd, self.max_pool(x)])

    def inception_c(self, x: str, p: str) -> str:
        b1 = self.conv(x, f"{p}.branch1x1")
        b7 = x
        for i in (1, 2, 3):
            b7 = self.conv(b7, f"{p}.branch7x7_{i}")
        bd = x
        for i in (1, 2, 3, 4, 5):
            bd = self.conv(bd, f"{p}.branch7x7dbl_{i}")
        bp = self.conv(self.avg_pool_exclude_pad(x), f"{p}.branch_pool")
        return self.concat([b1, b7, bd, bp])

    def inception_d(self, x: str, p: str) -> str:
        b3 = self.conv(self.conv(x, f"{p}.branch3x3_1"), f"{p}.branch3x3_2")
        b7 = x
        for i in (1, 2, 3, 4):
            b7 = self.conv(b7, f"{p}.branch7x7x3_{i}")
        return self.concat([b3, b7, self.max_pool(x)])

    def inception_e(self, x: str, p: str, max_pool_branch: bool) -> str:
        b1 = self.conv(x, f"{p}.branch1x1")
        b3 = self.conv(x, f"{p}.branch3x3_1")
        b3 = self.concat([self.conv(b3, f"{p}.branch3x3_2a"), self.conv(b3, f"{p}.branch3x3_2b")])
        bd = self.conv(self.conv(x, f"{p}.branch3x3dbl_1"), f"{p}.branch3x3dbl_2")
        bd = self.concat([self.conv(bd, f"{p}.branch3x3dbl_3a"), self.conv(bd, f"{p}.branch3x3dbl_3b")])
        pooled = self.max_pool(x, stride=1, pad=1) if max_pool_branch else self.avg_pool_exclude_pad(x)
        bp = self.conv(pooled, f"{p}.branch_pool")
        return self.concat([b1, b3, bd, bp])


def build_fid_inception(state: Mapping[str, np.ndarray]) -> onnx.ModelProto:
    """The FID Inception V3 graph for a pytorch-fid-format state dict; checked with `onnx.checker`."""
    g = _GraphBuilder(state)
    x = "images"
    for name in ("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3"):
        x = g.conv(x, name)
    x = g.max_pool(x)
    x = g.conv(g.conv(x, "Conv2d_3b_1x1"), "Conv2d_4a_3x3")
    x = g.max_pool(x)
    for block in ("Mixed_5b", "Mixed_5c", "Mixed_5d"):
        x = g.inception_a(x, block)
    x = g.inception_b(x, "Mixed_6a")
    for block in ("Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e"):
        x = g.inception_c(x, block)
    x = g.inception_d(x, "Mixed_7a")
    x = g.inception_e(x, "Mixed_7b", max_pool_branch=False)
    x = g.inception_e(x, "Mixed_7c", max_pool_branch=True)

    g.nodes.append(helper.make_node("GlobalAveragePool", [x], ["pooled"]))
    g.nodes.append(helper.make_node("Flatten", ["pooled"], ["pool3"], axis=1))
    if g.channels[x] != 2048:
        raise WeightsError(f"the last block has {g.channels[x]} channels, the FID Inception's pool3 has 2048")
    fc_w = g._tensor("fc.weight", (1008, 2048)).astype(np.float32)
    fc_b = g._tensor("fc.bias", (1008,)).astype(np.float32)
    g.initializers += [numpy_helper.from_array(fc_w, "fc.weight"), numpy_helper.from_array(fc_b, "fc.bias")]
    # logits_unbiased (the fc layer without its bias) is what torch-fidelity's Inception Score uses.
    g.nodes.append(helper.make_node("Gemm", ["pool3", "fc.weight"], ["logits_unbiased"], transB=1))
    g.nodes.append(helper.make_node("Add", ["logits_unbiased", "fc.bias"], ["logits"]))

    unused = sorted(set(state) - g.used)
    if unused:
        raise WeightsError(f"checkpoint has tensors the FID Inception does not use: {unused[:5]}...")

    graph = helper.make_graph(
        g.nodes,
        "fid_inception_v3",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["N", 3, 299, 299])],
        [
            helper.make_tensor_value_info("pool3", TensorProto.FLOAT, ["N", 2048]),
            helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 1008]),
            helper.make_tensor_value_info("logits_unbiased", TensorProto.FLOAT, ["N", 1008]),
        ],
        g.initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="fidrs")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model
