"""DINOv2 ViT-S/B/L/g 14 (Oquab et al. 2023): FD_DINOv2 as dgm-eval defines it (Stein et al., NeurIPS 2023).

Weights: the official hub files `dinov2_vit{s,b,l,g}14_pretrain.pth` (torch zip, a flat fp32 state dict), or
the Hugging Face `facebook/dinov2-{small,base,large,giant}` `model.safetensors` (renamed to the official keys
here; no pickle at all). The publisher gives no hashes, so a downloaded file is checked for its size and its
structure (every key, shape and dtype) and its sha256 is recorded on first use (`weights.py`).

Preprocessing `dgm-eval` (dgm_eval/models/dinov2.py `transform`): `Image.resize((224, 224), BICUBIC)` on the
uint8 RGB image (Pillow's 8-bit resampler, aspect not kept, no crop), ToTensor, ImageNet mean/std. The
feature is the CLS token after the final norm (`vit_graph.build_dinov2`).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..checkpoint import load_state_dict
from ..display import display
from ..errors import WeightsError
from ..regular_files import open_regular
from . import manifest
from .base import Backbone, StateDict

if TYPE_CHECKING:
    from .vit_graph import Architecture

# The ViT converter (vit_graph) imports onnx: it is imported where a graph is built or a checkpoint checked.

# Hugging Face `Dinov2Model` names → official names, per block and outside the blocks.
_HF_BLOCK = {
    "norm1": "norm1",
    "norm2": "norm2",
    "attention.output.dense": "attn.proj",
    "mlp.fc1": "mlp.fc1",
    "mlp.fc2": "mlp.fc2",
    "mlp.weights_in": "mlp.w12",
    "mlp.weights_out": "mlp.w3",
}
_HF_TOP = {
    "embeddings.cls_token": "cls_token",
    "embeddings.mask_token": "mask_token",
    "embeddings.position_embeddings": "pos_embed",
    "embeddings.patch_embeddings.projection.weight": "patch_embed.proj.weight",
    "embeddings.patch_embeddings.projection.bias": "patch_embed.proj.bias",
    "layernorm.weight": "norm.weight",
    "layernorm.bias": "norm.bias",
}


def official_from_hf(tensors: StateDict) -> dict[str, np.ndarray]:
    """Rename a Hugging Face DINOv2 state dict to the official layout; q, k, v are stacked into `qkv`."""
    hf = {k.removeprefix("dinov2."): v for k, v in tensors.items()}
    out: dict[str, np.ndarray] = {}
    qkv: dict[tuple[str, str], dict[str, np.ndarray]] = {}
    for key, value in hf.items():
        if key in _HF_TOP:
            out[_HF_TOP[key]] = value
            continue
        parts = key.split(".")
        if len(parts) < 5 or parts[:2] != ["encoder", "layer"] or not parts[2].isdigit():
            raise WeightsError(f"not a Hugging Face DINOv2 tensor name: {key!r}")
        block, rest = f"blocks.{int(parts[2])}", ".".join(parts[3:])
        name, _, kind = rest.rpartition(".")
        if name.startswith("attention.attention.") and name.split(".")[-1] in ("query", "key", "value"):
            qkv.setdefault((block, kind), {})[name.split(".")[-1]] = value
        elif name in ("layer_scale1", "layer_scale2") and kind == "lambda1":
            out[f"{block}.ls{name[-1]}.gamma"] = value
        elif name in _HF_BLOCK:
            out[f"{block}.{_HF_BLOCK[name]}.{kind}"] = value
        else:
            raise WeightsError(f"not a Hugging Face DINOv2 tensor name: {key!r}")
    for (block, kind), parts in qkv.items():
        if set(parts) != {"query", "key", "value"}:
            raise WeightsError(f"{block}: attention {kind} needs query, key and value, has {sorted(parts)}")
        out[f"{block}.attn.qkv.{kind}"] = np.concatenate([parts["query"], parts["key"], parts["value"]], axis=0)
    return out


# safetensors' dtypes that numpy has. The others (BF16, F8_E4M3, F8_E5M2, …) are refused by name: the official
# checkpoints are float32, and the structure check refuses every other dtype anyway (float16 included).
_SAFETENSORS_DTYPES = {
    "F64": "<f8",
    "F32": "<f4",
    "F16": "<f2",
    "I64": "<i8",
    "I32": "<i4",
    "I16": "<i2",
    "I8": "i1",
    "U64": "<u8",
    "U32": "<u4",
    "U16": "<u2",
    "U8": "u1",
    "BOOL": "?",
}


def _load_safetensors(path: Path) -> dict[str, np.ndarray]:
    from safetensors import SafetensorError, deserialize

    with open_regular(path) as f:  # a FIFO or device is refused before any read
        data = f.read()
    try:
        entries = deserialize(data)  # the header and offsets validated in Rust; raw bytes per tensor
    except (SafetensorError, ValueError, OverflowError, TypeError) as e:
        raise WeightsError(f"{display(path)}: not a readable safetensors file ({e})") from None
    tensors = {}
    for name, entry in entries:
        dtype = _SAFETENSORS_DTYPES.get(entry["dtype"])
        if dtype is None:
            raise WeightsError(
                f"{display(path)}: tensor {display(name)!r} is {display(str(entry['dtype']))}; fidrs reads float32 "
                "DINOv2 checkpoints (the official ones are float32)"
            )
        shape = tuple(int(d) for d in entry["shape"])
        tensors[name] = np.frombuffer(entry["data"], dtype=dtype).reshape(shape)
    try:
        return official_from_hf(tensors)
    except WeightsError as e:
        raise WeightsError(f"{display(path)}: {e}") from None


def load_checkpoint(path: Path) -> StateDict:
    """An official `.pth` (torch zip, read without torch or code execution) or a Hugging Face `.safetensors`."""
    if Path(path).suffix.lower() == ".safetensors":
        return _load_safetensors(Path(path))
    return load_state_dict(path)


def names() -> list[str]:
    """Every packaged DINOv2 backbone (a manifest of family "dinov2" each), smallest first."""
    return sorted(manifest.of_family("dinov2"), key=lambda name: int(manifest.manifest(name)["architecture"]["width"]))


@cache
def _name_by_width() -> dict[int, str]:
    return {int(manifest.manifest(name)["architecture"]["width"]): name for name in names()}


def architecture(m: dict) -> Architecture:
    """The architecture a manifest declares."""
    from .vit_graph import Architecture

    a = m["architecture"]
    return Architecture(int(a["width"]), int(a["depth"]), a["ffn"], int(a["grid"]))


def _width_checker(m: dict):
    """A user's file: any consistent DINOv2 of this backbone's width (the width is the feature size; the depth
    is read from the file, and the weights' sha256 tells files apart in every statistic)."""

    def check(state: StateDict) -> None:
        from .vit_graph import architecture_of

        arch, found = architecture(m), architecture_of(state)
        if found.width != arch.width:
            hint = _name_by_width().get(found.width)
            raise WeightsError(
                f"this checkpoint is a DINOv2 of width {found.width} (depth {found.depth}), this backbone has "
                f"width {arch.width}" + (f": use backbone {hint!r}" if hint else "")
            )

    return check


def _official_checker(m: dict):
    """The downloaded or cached official file: exactly the published architecture."""

    def check(state: StateDict) -> None:
        from .vit_graph import architecture_of

        arch, found = architecture(m), architecture_of(state)
        if found != arch:
            raise WeightsError(
                f"this checkpoint is a DINOv2 of width {found.width}, depth {found.depth} ({found.ffn}); the "
                f"official file has width {arch.width}, depth {arch.depth} ({arch.ffn})"
            )

    return check


def checkpoint_bytes(arch: Architecture) -> int:
    """The float32 payload of the official file: its size is this plus the zip's directory (tens of KiB)."""
    from .vit_graph import expected_shapes

    return 4 * sum(int(np.prod(shape)) for shape in expected_shapes(arch).values())


def _graph_builder(size: int):
    def build(state: StateDict):
        from .vit_graph import build_dinov2

        return build_dinov2(state, size)

    return build


def backbone(m: dict) -> Backbone:
    """A DINOv2 backbone from its manifest (weights, architecture, modes, outputs) and this module's code."""
    code = manifest.Code(load_checkpoint, _width_checker(m), _official_checker(m), _graph_builder(int(m["input_size"])))
    return manifest.backbone(m, code)


def backbones() -> list[Backbone]:
    """Every packaged manifest of this family (models/dinov2-*.toml)."""
    return [backbone(manifest.manifest(name)) for name in names()]
