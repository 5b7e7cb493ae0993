"""The DINOv2 ViT as an ONNX graph, built from an official-layout state dict (numpy arrays) without torch.

The graph follows `dinov2/models/vision_transformer.py` at a fixed input of 224×224: patch embedding (14×14
convolution), CLS token, the position embedding resized from the checkpoint's grid exactly as
`interpolate_pos_encoding` does (precomputed here, it is a constant at a fixed size), L pre-norm blocks with
LayerScale, the final LayerNorm, and the CLS token as the feature. Depth, width and FFN kind come from the
tensors; heads are width/64 as in every hub model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ..errors import WeightsError
from .base import StateDict

OPSET = 17
PATCH = 14
HEAD_DIM = 64
LAYER_NORM_EPS = 1e-6
# `interpolate_offset` of the non-register hub models (vision_transformer.py; backbones.py passes 0.1).
INTERPOLATE_OFFSET = 0.1
# PyTorch's bicubic constant (`get_cubic_upsample_coefficients`), not Pillow's −0.5.
TORCH_CUBIC_A = np.float32(-0.75)


@dataclass(frozen=True)
class Architecture:
    width: int
    depth: int
    ffn: str  # "mlp" (fc1/fc2, GELU) or "swiglu" (w12/w3)
    grid: int  # side of the checkpoint's position-embedding grid (37 for the 518-px hub models)

    @property
    def heads(self) -> int:
        return self.width // HEAD_DIM

    @property
    def hidden(self) -> int:
        """FFN hidden size: 4·D for the MLP; SwiGLU's (int(4D·2/3) + 7) // 8 · 8 (swiglu_ffn.py)."""
        if self.ffn == "mlp":
            return 4 * self.width
        return (int(4 * self.width * 2 / 3) + 7) // 8 * 8


def expected_shapes(arch: Architecture) -> dict[str, tuple[int, ...]]:
    """Every tensor of an official `dinov2_vit*14_pretrain.pth` of this architecture, with its shape."""
    d, h = arch.width, arch.hidden
    shapes: dict[str, tuple[int, ...]] = {
        "cls_token": (1, 1, d),
        "pos_embed": (1, 1 + arch.grid * arch.grid, d),
        "mask_token": (1, d),
        "patch_embed.proj.weight": (d, 3, PATCH, PATCH),
        "patch_embed.proj.bias": (d,),
        "norm.weight": (d,),
        "norm.bias": (d,),
    }
    for i in range(arch.depth):
        p = f"blocks.{i}"
        for norm in ("norm1", "norm2"):
            shapes[f"{p}.{norm}.weight"] = (d,)
            shapes[f"{p}.{norm}.bias"] = (d,)
        shapes[f"{p}.attn.qkv.weight"] = (3 * d, d)
        shapes[f"{p}.attn.qkv.bias"] = (3 * d,)
        shapes[f"{p}.attn.proj.weight"] = (d, d)
        shapes[f"{p}.attn.proj.bias"] = (d,)
        shapes[f"{p}.ls1.gamma"] = (d,)
        shapes[f"{p}.ls2.gamma"] = (d,)
        if arch.ffn == "mlp":
            shapes[f"{p}.mlp.fc1.weight"] = (h, d)
            shapes[f"{p}.mlp.fc1.bias"] = (h,)
            shapes[f"{p}.mlp.fc2.weight"] = (d, h)
            shapes[f"{p}.mlp.fc2.bias"] = (d,)
        else:
            shapes[f"{p}.mlp.w12.weight"] = (2 * h, d)
            shapes[f"{p}.mlp.w12.bias"] = (2 * h,)
            shapes[f"{p}.mlp.w3.weight"] = (d, h)
            shapes[f"{p}.mlp.w3.bias"] = (d,)
    return shapes


def architecture_of(state: StateDict) -> Architecture:
    """Width, depth, FFN kind and position grid read from the tensors; then every key and shape checked."""
    norm = state.get("norm.weight")
    pos = state.get("pos_embed")
    if norm is None or pos is None or norm.ndim != 1 or pos.ndim != 3:
        raise WeightsError("not a DINOv2 checkpoint: norm.weight (D) and pos_embed (1, 1+M², D) are missing")
    width = int(norm.shape[0])
    if width == 0 or width % HEAD_DIM:
        raise WeightsError(f"DINOv2 width {width} is not a multiple of the head size {HEAD_DIM}")
    depth = 0
    while f"blocks.{depth}.norm1.weight" in state:
        depth += 1
    if depth == 0:
        raise WeightsError(
            "not a DINOv2 checkpoint: no blocks.0.* tensors (chunked `blocks.c.i.*` is not the hub layout)"
        )
    ffn = "swiglu" if "blocks.0.mlp.w12.weight" in state else "mlp"
    grid = int(round(np.sqrt(max(pos.shape[1] - 1, 0))))
    arch = Architecture(width, depth, ffn, grid)
    expected = expected_shapes(arch)
    missing = sorted(set(expected) - set(state))
    unknown = sorted(set(state) - set(expected))
    if missing or unknown:
        detail = "; ".join(
            part
            for part in (
                f"missing {missing[:4]}" if missing else "",
                f"unexpected {unknown[:4]}" if unknown else "",
            )
            if part
        )
        hint = " (register-token models are not the FD_DINOv2 networks)" if "register_tokens" in state else ""
        raise WeightsError(
            f"not an official DINOv2 ViT-*/14 state dict of width {width}, depth {depth}: {detail}{hint}"
        )
    for key, shape in expected.items():
        tensor = state[key]
        if tuple(tensor.shape) != shape:
            raise WeightsError(
                f"{key} has shape {tuple(tensor.shape)}, expected {shape} (width {width}, depth {depth})"
            )
        if tensor.dtype != np.float32:
            raise WeightsError(f"{key} is {tensor.dtype}; the official DINOv2 checkpoints are float32")
        if not np.isfinite(tensor).all():
            raise WeightsError(f"{key} holds NaN or infinite values")
    return arch


def _torch_cubic_weights(t: np.float32) -> np.ndarray:
    """`get_cubic_upsample_coefficients` in float32 (ATen UpSample.h), A = −0.75."""
    a = TORCH_CUBIC_A
    one = np.float32(1.0)

    def conv1(x):  # |x| <= 1
        return ((a + np.float32(2)) * x - (a + np.float32(3))) * x * x + one

    def conv2(x):  # 1 < |x| < 2
        return ((a * x - np.float32(5) * a) * x + np.float32(8) * a) * x - np.float32(4) * a

    x2 = one - t
    return np.array([conv2(t + one), conv1(t), conv1(x2), conv2(x2 + one)], dtype=np.float32)


def pos_resize_matrix(grid: int, out: int, offset: float = INTERPOLATE_OFFSET) -> np.ndarray:
    """The 1-D matrix R (out × grid) of `F.interpolate(mode="bicubic", align_corners=False, antialias=False,
    scale_factor=(out + offset) / grid)`: PyTorch maps output i to the source coordinate with the *given*
    factor, src = (i + 0.5)·(1/scale) − 0.5 in float32, taps floor(src) − 1 … + 2 clamped to the grid."""
    scale = (out + offset) / grid  # a Python float (double), as F.interpolate receives it
    inverse = np.float32(1.0 / scale)  # compute_scales_value: 1.0 / scale in double, cast to float
    matrix = np.zeros((out, grid), dtype=np.float64)
    with np.errstate(over="ignore"):
        for i in range(out):
            src = inverse * (np.float32(i) + np.float32(0.5)) - np.float32(0.5)
            base = int(np.floor(src))
            t = np.float32(src - np.float32(base))
            for k, w in enumerate(_torch_cubic_weights(t)):
                matrix[i, min(max(base - 1 + k, 0), grid - 1)] += float(w)
    return matrix


def position_embedding(pos_embed: np.ndarray, grid: int, out: int) -> np.ndarray:
    """`interpolate_pos_encoding` for an `out × out` patch grid: the CLS row unchanged, the grid resized per
    channel as R·G·Rᵀ (float64 products of float32 taps, rounded once to float32)."""
    cls_row = pos_embed[:, :1]
    if grid == out:
        return pos_embed.astype(np.float32)
    r = pos_resize_matrix(grid, out)
    g = pos_embed[0, 1:].astype(np.float64).reshape(grid, grid, -1)  # (y, x, channel)
    resized = np.einsum("iy,yxc,jx->ijc", r, g, r, optimize=True).reshape(1, out * out, -1)
    return np.concatenate([cls_row, resized.astype(np.float32)], axis=1)


class _Graph:
    def __init__(self) -> None:
        self.nodes: list = []
        self.initializers: list = []
        self._count = 0
        self._scalars: dict[tuple[str, float], str] = {}

    def name(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def const(self, hint: str, array: np.ndarray) -> str:
        name = self.name(hint)
        self.initializers.append(numpy_helper.from_array(np.array(array, order="C"), name))  # keeps 0-d
        return name

    def scalar(self, hint: str, value: float) -> str:
        """A float32 scalar constant, one initialiser however many blocks use it."""
        key = (hint, value)
        if key not in self._scalars:
            self._scalars[key] = self.const(hint, np.array(value, np.float32))
        return self._scalars[key]

    def op(self, kind: str, inputs: list[str], hint: str | None = None, **attrs) -> str:
        out = self.name(hint or kind.lower())
        self.nodes.append(helper.make_node(kind, inputs, [out], **attrs))
        return out

    def linear(self, x: str, weight: np.ndarray, bias: np.ndarray, hint: str) -> str:
        """x Wᵀ + b (torch's nn.Linear); ORT fuses MatMul + Add."""
        w = self.const(f"{hint}.weight_t", weight.T.astype(np.float32))
        b = self.const(f"{hint}.bias", bias.astype(np.float32))
        return self.op("Add", [self.op("MatMul", [x, w]), b], hint)

    def layer_norm(self, x: str, weight: np.ndarray, bias: np.ndarray, hint: str) -> str:
        w, b = self.const(f"{hint}.weight", weight), self.const(f"{hint}.bias", bias)
        return self.op("LayerNormalization", [x, w, b], hint, axis=-1, epsilon=LAYER_NORM_EPS)

    def gelu(self, x: str) -> str:
        """Exact GELU, 0.5·x·(1 + erf(x/√2)), in the form ONNX Runtime fuses into one kernel."""
        root2, one, half = self.scalar("sqrt2", np.sqrt(2.0)), self.scalar("one", 1.0), self.scalar("half", 0.5)
        erf = self.op("Erf", [self.op("Div", [x, root2])])
        return self.op("Mul", [self.op("Mul", [x, self.op("Add", [erf, one])]), half], "gelu")


def build_dinov2(state: StateDict, image_size: int = 224) -> onnx.ModelProto:
    """Input `images` N×3×S×S (normalised); output `cls` N×D: the CLS token after the final LayerNorm."""
    arch = architecture_of(state)
    if image_size % PATCH:
        raise WeightsError(f"input size {image_size} is not a multiple of the patch size {PATCH}")
    side = image_size // PATCH
    tokens, d, heads = 1 + side * side, arch.width, arch.heads
    g = _Graph()

    w = g.const("patch.weight", state["patch_embed.proj.weight"])
    b = g.const("patch.bias", state["patch_embed.proj.bias"])
    patches = g.op("Conv", ["images", w, b], "patch_embed", kernel_shape=[PATCH, PATCH], strides=[PATCH, PATCH])
    patches = g.op("Reshape", [patches, g.const("shape", np.array([0, d, side * side], np.int64))])
    patches = g.op("Transpose", [patches], perm=[0, 2, 1])  # N × tokens × D, token = y·side + x
    pos = position_embedding(state["pos_embed"], arch.grid, side)
    patches = g.op("Add", [patches, g.const("pos_patches", pos[:, 1:])])
    # cat(cls, patches) + pos: the CLS row's sum is the same float32 addition done once here.
    cls = (state["cls_token"] + pos[:, :1]).astype(np.float32)
    batch = g.op(
        "Slice",
        [
            g.op("Shape", ["images"]),
            g.const("zero", np.array([0], np.int64)),
            g.const("one_i", np.array([1], np.int64)),
        ],
    )
    cls_shape = g.op("Concat", [batch, g.const("cls_rest", np.array([1, d], np.int64))], axis=0)
    cls_tokens = g.op("Expand", [g.const("cls", cls), cls_shape])
    x = g.op("Concat", [cls_tokens, patches], "tokens", axis=1)

    qkv_shape = g.const("qkv_shape", np.array([0, tokens, 3, heads, HEAD_DIM], np.int64))
    merge_shape = g.const("merge_shape", np.array([0, tokens, d], np.int64))
    scale = g.scalar("scale", HEAD_DIM**-0.5)
    for i in range(arch.depth):
        p = f"blocks.{i}"
        h = g.layer_norm(x, state[f"{p}.norm1.weight"], state[f"{p}.norm1.bias"], f"{p}.norm1")
        qkv = g.linear(h, state[f"{p}.attn.qkv.weight"], state[f"{p}.attn.qkv.bias"], f"{p}.qkv")
        qkv = g.op("Transpose", [g.op("Reshape", [qkv, qkv_shape])], perm=[2, 0, 3, 1, 4])  # 3 N H T 64
        q, k, v = (g.op("Gather", [qkv, g.const("index", np.array(j, np.int64))], axis=0) for j in range(3))
        scores = g.op("MatMul", [g.op("Mul", [q, scale]), g.op("Transpose", [k], perm=[0, 1, 3, 2])])
        attended = g.op("MatMul", [g.op("Softmax", [scores], axis=-1), v])  # N H T 64
        attended = g.op("Reshape", [g.op("Transpose", [attended], perm=[0, 2, 1, 3]), merge_shape])
        h = g.linear(attended, state[f"{p}.attn.proj.weight"], state[f"{p}.attn.proj.bias"], f"{p}.proj")
        x = g.op("Add", [x, g.op("Mul", [h, g.const(f"{p}.ls1", state[f"{p}.ls1.gamma"])])])

        h = g.layer_norm(x, state[f"{p}.norm2.weight"], state[f"{p}.norm2.bias"], f"{p}.norm2")
        if arch.ffn == "mlp":
            h = g.gelu(g.linear(h, state[f"{p}.mlp.fc1.weight"], state[f"{p}.mlp.fc1.bias"], f"{p}.fc1"))
            h = g.linear(h, state[f"{p}.mlp.fc2.weight"], state[f"{p}.mlp.fc2.bias"], f"{p}.fc2")
        else:  # SwiGLU: x1, x2 = w12(x).chunk(2); w3(silu(x1) * x2)
            h12 = g.linear(h, state[f"{p}.mlp.w12.weight"], state[f"{p}.mlp.w12.bias"], f"{p}.w12")
            x1, x2 = g.name("x1"), g.name("x2")
            g.nodes.append(
                helper.make_node(
                    "Split", [h12, g.const("halves", np.array([arch.hidden] * 2, np.int64))], [x1, x2], axis=-1
                )
            )
            silu = g.op("Mul", [x1, g.op("Sigmoid", [x1])])
            h = g.linear(g.op("Mul", [silu, x2]), state[f"{p}.mlp.w3.weight"], state[f"{p}.mlp.w3.bias"], f"{p}.w3")
        x = g.op("Add", [x, g.op("Mul", [h, g.const(f"{p}.ls2", state[f"{p}.ls2.gamma"])])])

    x = g.layer_norm(x, state["norm.weight"], state["norm.bias"], "norm")
    g.nodes.append(helper.make_node("Gather", [x, g.const("cls_index", np.array(0, np.int64))], ["cls"], axis=1))
    graph = helper.make_graph(
        g.nodes,
        f"dinov2_vit_d{d}_l{arch.depth}",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["N", 3, image_size, image_size])],
        [helper.make_tensor_value_info("cls", TensorProto.FLOAT, ["N", d])],
        g.initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="fidrs")
    model.ir_version = 8
    return model
