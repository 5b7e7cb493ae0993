"""Vision transformers as ONNX graphs, built from numpy arrays without torch: one builder (`build_vit`) for
DINOv2 and CLIP, and DINOv2's official state dicts read into it (`build_dinov2`).

The builder: patch embedding (a P×P convolution of stride P, with or without bias), the class token, a position
embedding already at the input's grid, an optional LayerNorm before the blocks (CLIP's `ln_pre`), L pre-norm
blocks (multi-head self-attention with packed q|k|v, an MLP with exact GELU or QuickGELU, or SwiGLU; optional
LayerScale), the final LayerNorm on the class token, then optionally a projection (CLIP's `proj`) and its L2
normalisation. Named outputs: `cls` (the normed class token), `embedding` (its projection), `embedding_l2`.

DINOv2 follows `dinov2/models/vision_transformer.py` at a fixed input of 224×224: the position embedding is
resized from the checkpoint's grid exactly as `interpolate_pos_encoding` does (precomputed here, it is a
constant at a fixed size), LayerScale, exact GELU or SwiGLU, and the CLS token as the feature. Depth, width and
FFN kind come from the tensors; heads are width/64 as in every hub model.
"""

from __future__ import annotations

from collections.abc import Sequence
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

    def named(self, kind: str, inputs: list[str], output: str, **attrs) -> str:
        """A node whose output has a fixed name (a graph output)."""
        self.nodes.append(helper.make_node(kind, inputs, [output], **attrs))
        return output

    def linear(self, x: str, weight: np.ndarray, bias: np.ndarray, hint: str) -> str:
        """x Wᵀ + b (torch's nn.Linear); ORT fuses MatMul + Add."""
        w = self.const(f"{hint}.weight_t", weight.T.astype(np.float32))
        b = self.const(f"{hint}.bias", bias.astype(np.float32))
        return self.op("Add", [self.op("MatMul", [x, w]), b], hint)

    def layer_norm(self, x: str, norm: tuple[np.ndarray, np.ndarray], eps: float, hint: str) -> str:
        w, b = self.const(f"{hint}.weight", norm[0]), self.const(f"{hint}.bias", norm[1])
        return self.op("LayerNormalization", [x, w, b], hint, axis=-1, epsilon=eps)

    def gelu(self, x: str) -> str:
        """Exact GELU, 0.5·x·(1 + erf(x/√2)), in the form ONNX Runtime fuses into one kernel."""
        root2, one, half = self.scalar("sqrt2", np.sqrt(2.0)), self.scalar("one", 1.0), self.scalar("half", 0.5)
        erf = self.op("Erf", [self.op("Div", [x, root2])])
        return self.op("Mul", [self.op("Mul", [x, self.op("Add", [erf, one])]), half], "gelu")

    def quick_gelu(self, x: str) -> str:
        """CLIP's QuickGELU, x·σ(1.702·x) (the float32 constant, as torch and JAX apply a Python float)."""
        scaled = self.op("Mul", [x, self.scalar("quick_gelu_alpha", QUICK_GELU_ALPHA)])
        return self.op("Mul", [x, self.op("Sigmoid", [scaled])], "quick_gelu")


QUICK_GELU_ALPHA = 1.702
FFN_KINDS = ("gelu", "quick-gelu", "swiglu")
OUTPUT_NAMES = ("cls", "embedding", "embedding_l2")


@dataclass(frozen=True)
class VitSpec:
    """The shape of a pre-norm ViT graph: everything in which DINOv2 and the CLIPs differ."""

    width: int
    depth: int
    heads: int
    patch: int
    image_size: int
    ffn: str  # one of FFN_KINDS: fc1 → GELU | QuickGELU → fc2, or SwiGLU (w12 → SiLU(x1)·x2 → w3)
    hidden: int  # the FFN's hidden size (SwiGLU: of each half of w12)
    layer_norm_eps: float
    name: str  # the ONNX graph's name

    @property
    def head_dim(self) -> int:
        return self.width // self.heads

    @property
    def side(self) -> int:
        return self.image_size // self.patch


Pair = tuple[np.ndarray, np.ndarray]  # (weight, bias) of a LayerNorm or a Linear


@dataclass(frozen=True)
class VitBlock:
    norm1: Pair
    qkv: Pair  # (3D, D) rows q | k | v, and (3D,)
    proj: Pair
    norm2: Pair
    fc1: Pair  # SwiGLU: w12
    fc2: Pair  # SwiGLU: w3
    ls1: np.ndarray | None = None  # LayerScale gammas, where the network has them
    ls2: np.ndarray | None = None


@dataclass(frozen=True)
class VitWeights:
    patch_weight: np.ndarray  # (D, 3, P, P)
    patch_bias: np.ndarray | None
    class_token: np.ndarray  # D values
    position: np.ndarray  # (1 + side², D) values, at the input's grid
    blocks: Sequence[VitBlock]
    norm: Pair  # the final LayerNorm (CLIP's ln_post)
    ln_pre: Pair | None = None  # CLIP's LayerNorm before the blocks
    projection: np.ndarray | None = None  # (D, E), applied as x @ projection (CLIP's proj)


def _check_spec(spec: VitSpec, weights: VitWeights, outputs: Sequence[str]) -> None:
    if spec.ffn not in FFN_KINDS:
        raise WeightsError(f"unknown ViT feed-forward kind {spec.ffn!r}: expected one of {FFN_KINDS}")
    if spec.image_size % spec.patch:
        raise WeightsError(f"input size {spec.image_size} is not a multiple of the patch size {spec.patch}")
    if spec.heads < 1 or spec.width % spec.heads:
        raise WeightsError(f"width {spec.width} does not split into {spec.heads} heads")
    if len(weights.blocks) != spec.depth:
        raise WeightsError(f"{len(weights.blocks)} blocks given for a ViT of depth {spec.depth}")
    tokens = 1 + spec.side * spec.side
    if weights.position.size != tokens * spec.width:
        raise WeightsError(
            f"the position embedding has {weights.position.size} values, a {spec.image_size}-px input with patch "
            f"{spec.patch} needs {tokens} × {spec.width}"
        )
    unknown = [o for o in outputs if o not in OUTPUT_NAMES]
    if unknown or not outputs:
        raise WeightsError(f"unknown ViT outputs {unknown}: expected some of {OUTPUT_NAMES}")
    if weights.projection is None and any(o != "cls" for o in outputs):
        raise WeightsError("the outputs embedding and embedding_l2 need a projection")


def build_vit(spec: VitSpec, weights: VitWeights, outputs: Sequence[str]) -> onnx.ModelProto:
    """Input `images` N×3×S×S (normalised); the named `outputs`, each N × dim float32."""
    _check_spec(spec, weights, outputs)
    side, d, heads, head_dim = spec.side, spec.width, spec.heads, spec.head_dim
    tokens, eps = 1 + side * side, spec.layer_norm_eps
    g = _Graph()

    w = g.const("patch.weight", weights.patch_weight.astype(np.float32))
    conv_inputs = ["images", w]
    if weights.patch_bias is not None:
        conv_inputs.append(g.const("patch.bias", weights.patch_bias.astype(np.float32)))
    patch = [spec.patch, spec.patch]
    patches = g.op("Conv", conv_inputs, "patch_embed", kernel_shape=patch, strides=patch)
    patches = g.op("Reshape", [patches, g.const("shape", np.array([0, d, side * side], np.int64))])
    patches = g.op("Transpose", [patches], perm=[0, 2, 1])  # N × tokens × D, token = y·side + x
    pos = weights.position.astype(np.float32).reshape(1, tokens, d)
    patches = g.op("Add", [patches, g.const("pos_patches", pos[:, 1:])])
    # cat(cls, patches) + pos: the CLS row's sum is the same float32 addition done once here.
    cls = (weights.class_token.astype(np.float32).reshape(1, 1, d) + pos[:, :1]).astype(np.float32)
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
    if weights.ln_pre is not None:
        x = g.layer_norm(x, weights.ln_pre, eps, "ln_pre")

    heads_shape = g.const("heads_shape", np.array([0, tokens, heads, head_dim], np.int64))
    merge_shape = g.const("merge_shape", np.array([0, tokens, d], np.int64))
    scale = g.scalar("scale", head_dim**-0.5)
    for i, block in enumerate(weights.blocks):
        p = f"blocks.{i}"
        h = g.layer_norm(x, block.norm1, eps, f"{p}.norm1")
        # q, k and v as three Linears on the rows of the packed qkv weight, each reshaped to its heads: the same
        # dot products as one packed Linear (bit-identical outputs, measured), without the 5-d transpose and the
        # three gathers that copied the packed result (ViT-S/14 3–6 % faster on 2 cores, docs/BENCHMARKS.md).
        w_qkv, b_qkv = block.qkv
        q, k, v = (
            g.op(
                "Reshape",
                [g.linear(h, w_qkv[j * d : (j + 1) * d], b_qkv[j * d : (j + 1) * d], f"{p}.{n}"), heads_shape],
            )
            for j, n in enumerate("qkv")
        )  # each N T H hd
        q, v = (g.op("Transpose", [t], perm=[0, 2, 1, 3]) for t in (q, v))  # N H T hd
        k = g.op("Transpose", [k], perm=[0, 2, 3, 1])  # N H hd T
        scores = g.op("MatMul", [g.op("Mul", [q, scale]), k])
        attended = g.op("MatMul", [g.op("Softmax", [scores], axis=-1), v])  # N H T hd
        attended = g.op("Reshape", [g.op("Transpose", [attended], perm=[0, 2, 1, 3]), merge_shape])
        h = g.linear(attended, *block.proj, f"{p}.proj")
        x = g.op("Add", [x, _scaled(g, h, block.ls1, f"{p}.ls1")])

        h = g.layer_norm(x, block.norm2, eps, f"{p}.norm2")
        if spec.ffn == "swiglu":  # x1, x2 = w12(x).chunk(2); w3(silu(x1) * x2)
            h12 = g.linear(h, *block.fc1, f"{p}.w12")
            x1, x2 = g.name("x1"), g.name("x2")
            g.nodes.append(
                helper.make_node(
                    "Split", [h12, g.const("halves", np.array([spec.hidden] * 2, np.int64))], [x1, x2], axis=-1
                )
            )
            silu = g.op("Mul", [x1, g.op("Sigmoid", [x1])])
            h = g.linear(g.op("Mul", [silu, x2]), *block.fc2, f"{p}.w3")
        else:
            h = g.linear(h, *block.fc1, f"{p}.fc1")
            h = g.gelu(h) if spec.ffn == "gelu" else g.quick_gelu(h)
            h = g.linear(h, *block.fc2, f"{p}.fc2")
        x = g.op("Add", [x, _scaled(g, h, block.ls2, f"{p}.ls2")])

    # The final norm on every token, then the class token: LayerNorm is per token, so this equals CLIP's
    # ln_post(x[:, 0]) value for value.
    x = g.layer_norm(x, weights.norm, eps, "norm")
    index = g.const("cls_index", np.array(0, np.int64))
    cls_out = g.named("Gather", [x, index], "cls" if "cls" in outputs else g.name("cls"), axis=1)
    dims = {"cls": d}
    if weights.projection is not None and {"embedding", "embedding_l2"} & set(outputs):
        projection = g.const("proj", weights.projection.astype(np.float32))
        embedding = g.named("MatMul", [cls_out, projection], "embedding" if "embedding" in outputs else g.name("emb"))
        dims["embedding"] = dims["embedding_l2"] = int(weights.projection.shape[1])
        if "embedding_l2" in outputs:  # x / ‖x‖₂, as CLIP's encode_image(normalize=True) and cmmd-pytorch
            norm = g.op("ReduceL2", [embedding], axes=[-1], keepdims=1)
            g.named("Div", [embedding, norm], "embedding_l2")
    graph = helper.make_graph(
        g.nodes,
        spec.name,
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["N", 3, spec.image_size, spec.image_size])],
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N", dims[name]]) for name in outputs],
        g.initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="fidrs")
    model.ir_version = 8
    return model


def _scaled(g: _Graph, h: str, gamma: np.ndarray | None, hint: str) -> str:
    """A residual branch times its LayerScale gamma, where the block has one."""
    return h if gamma is None else g.op("Mul", [h, g.const(hint, gamma)])


def build_dinov2(state: StateDict, image_size: int = 224) -> onnx.ModelProto:
    """Input `images` N×3×S×S (normalised); output `cls` N×D: the CLS token after the final LayerNorm."""
    arch = architecture_of(state)
    if image_size % PATCH:
        raise WeightsError(f"input size {image_size} is not a multiple of the patch size {PATCH}")
    side = image_size // PATCH
    ffn = "gelu" if arch.ffn == "mlp" else "swiglu"
    fc1, fc2 = ("fc1", "fc2") if arch.ffn == "mlp" else ("w12", "w3")

    def pair(key: str) -> Pair:
        return state[f"{key}.weight"], state[f"{key}.bias"]

    blocks = [
        VitBlock(
            norm1=pair(f"blocks.{i}.norm1"),
            qkv=pair(f"blocks.{i}.attn.qkv"),
            proj=pair(f"blocks.{i}.attn.proj"),
            norm2=pair(f"blocks.{i}.norm2"),
            fc1=pair(f"blocks.{i}.mlp.{fc1}"),
            fc2=pair(f"blocks.{i}.mlp.{fc2}"),
            ls1=state[f"blocks.{i}.ls1.gamma"],
            ls2=state[f"blocks.{i}.ls2.gamma"],
        )
        for i in range(arch.depth)
    ]
    weights = VitWeights(
        patch_weight=state["patch_embed.proj.weight"],
        patch_bias=state["patch_embed.proj.bias"],
        class_token=state["cls_token"],
        position=position_embedding(state["pos_embed"], arch.grid, side),
        blocks=blocks,
        norm=pair("norm"),
    )
    spec = VitSpec(
        width=arch.width,
        depth=arch.depth,
        heads=arch.heads,
        patch=PATCH,
        image_size=image_size,
        ffn=ffn,
        hidden=arch.hidden,
        layer_norm_eps=LAYER_NORM_EPS,
        name=f"dinov2_vit_d{arch.width}_l{arch.depth}",
    )
    return build_vit(spec, weights, ("cls",))
