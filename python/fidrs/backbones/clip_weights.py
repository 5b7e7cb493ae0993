"""CLIP image towers read from every published file format, torch-free, into one layout: OpenAI's `visual.*` state
dict names (`clip/model.py`), float32.

Formats:
* OpenAI's TorchScript archives (`ViT-B-32.pt`, `ViT-L-14-336px.pt`, what `clip.load` downloads): the tensors of
  the archive's `data.pkl` + `data/` records, through the allow-list reader (`checkpoint.load_state_dict` with
  `torchscript=True`); the archive's code is never read.
* Plain OpenAI / open_clip state dicts (`visual.*` keys): a torch `.pt` (zip or legacy) or a `.safetensors`.
* Hugging Face `CLIPModel` / `CLIPVisionModelWithProjection` weights (`vision_model.*`, `visual_projection.weight`):
  `model.safetensors` or `pytorch_model.bin`, with the `config.json` beside them.

Only the image tower is read (the text tower's bytes are skipped where the format allows). fp16 tensors (the
OpenAI archives hold conv, linear, attention and `proj` weights in fp16, `convert_weights`) are promoted to fp32
exactly, as `clip.load` on CPU does with `model.float()`.

The architecture is read from the tensors (any depth, width, patch and input size); heads are width/64 as in
OpenAI's `build_model`, the FFN is 4·width with QuickGELU, LayerNorm eps 1e-5. A Hugging Face `config.json` is
not a source of the architecture but a check of it: every field transformers would read (its defaults where the
file is sparse, as in the upstream `CLIPConfig`) must agree with the tensors and with OpenAI's CLIP (QuickGELU,
eps 1e-5, 64-wide heads), or the file is refused. So the graph built from a weights file depends on that file
alone (the ONNX cache is keyed by its sha256: the config is checked when the graph is built), and a CLIP of
another design (GELU, other heads) is not taken for OpenAI's.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..checkpoint import load_state_dict
from ..display import display
from ..errors import InvalidInputError, WeightsError
from ..regular_files import open_regular, read_regular
from .base import StateDict

HEAD_DIM = 64  # clip/model.py build_model: vision_heads = vision_width // 64
LAYER_NORM_EPS = 1e-5  # clip/model.py LayerNorm (nn.LayerNorm's default); transformers' layer_norm_eps default
MLP_RATIO = 4  # ResidualAttentionBlock: c_fc is d_model → 4·d_model
CONFIG_NAME = "config.json"  # what transformers' from_pretrained reads beside the weights
MAX_CONFIG_BYTES = 1 << 20  # the upstream CLIP configs are ~5 KB

_VISUAL = "visual."
_HF_VISION = "vision_model."
_HF_PROJECTION = "visual_projection.weight"


@dataclass(frozen=True)
class ClipArchitecture:
    """A CLIP image tower: width W, depth L, patch P, input resolution R, embedding size E."""

    width: int
    depth: int
    patch: int
    image_size: int
    embed_dim: int

    @property
    def heads(self) -> int:
        return self.width // HEAD_DIM

    @property
    def grid(self) -> int:
        return self.image_size // self.patch

    @property
    def hidden(self) -> int:
        return MLP_RATIO * self.width

    def describe(self) -> str:
        return (
            f"width {self.width}, {self.depth} blocks, patch {self.patch}, input {self.image_size}, "
            f"embedding {self.embed_dim}"
        )


def expected_shapes(arch: ClipArchitecture) -> dict[str, tuple[int, ...]]:
    """Every tensor of the image tower of an OpenAI CLIP state dict of this architecture, with its shape."""
    w, h = arch.width, arch.hidden
    shapes: dict[str, tuple[int, ...]] = {
        "visual.class_embedding": (w,),
        "visual.positional_embedding": (1 + arch.grid * arch.grid, w),
        "visual.conv1.weight": (w, 3, arch.patch, arch.patch),
        "visual.ln_pre.weight": (w,),
        "visual.ln_pre.bias": (w,),
    }
    for i in range(arch.depth):
        p = f"visual.transformer.resblocks.{i}"
        shapes[f"{p}.attn.in_proj_weight"] = (3 * w, w)
        shapes[f"{p}.attn.in_proj_bias"] = (3 * w,)
        shapes[f"{p}.attn.out_proj.weight"] = (w, w)
        shapes[f"{p}.attn.out_proj.bias"] = (w,)
        for norm in ("ln_1", "ln_2"):
            shapes[f"{p}.{norm}.weight"] = (w,)
            shapes[f"{p}.{norm}.bias"] = (w,)
        shapes[f"{p}.mlp.c_fc.weight"] = (h, w)
        shapes[f"{p}.mlp.c_fc.bias"] = (h,)
        shapes[f"{p}.mlp.c_proj.weight"] = (w, h)
        shapes[f"{p}.mlp.c_proj.bias"] = (w,)
    shapes["visual.ln_post.weight"] = (w,)
    shapes["visual.ln_post.bias"] = (w,)
    shapes["visual.proj"] = (w, arch.embed_dim)
    return shapes


def architecture_of(state: StateDict) -> ClipArchitecture:
    """W, L, P, R and E read from the tensors as `build_model` reads them; then every key, shape and dtype checked."""
    cls, conv, pos, proj = (
        state.get(f"visual.{k}") for k in ("class_embedding", "conv1.weight", "positional_embedding", "proj")
    )
    if cls is None or conv is None or pos is None or proj is None:
        raise WeightsError(
            "not a CLIP image tower: visual.class_embedding, visual.conv1.weight, visual.positional_embedding and "
            "visual.proj are needed (a ResNet CLIP has no class embedding; only the ViT CLIPs are supported)"
        )
    if cls.ndim != 1 or conv.ndim != 4 or pos.ndim != 2 or proj.ndim != 2:
        raise WeightsError(
            f"not a CLIP ViT: class_embedding {cls.shape}, conv1.weight {conv.shape}, positional_embedding "
            f"{pos.shape}, proj {proj.shape}"
        )
    width = int(cls.shape[0])
    if width == 0 or width % HEAD_DIM:
        raise WeightsError(f"CLIP width {width} is not a multiple of the head size {HEAD_DIM}")
    depth = 0
    while f"visual.transformer.resblocks.{depth}.attn.in_proj_weight" in state:
        depth += 1
    if depth == 0:
        raise WeightsError("not a CLIP ViT: no visual.transformer.resblocks.0.* tensors")
    patch = int(conv.shape[-1])
    grid = math.isqrt(max(int(pos.shape[0]) - 1, 0))
    if patch == 0 or grid == 0 or grid * grid + 1 != pos.shape[0]:
        raise WeightsError(f"visual.positional_embedding has {pos.shape[0]} rows: not 1 + a square grid of patches")
    arch = ClipArchitecture(width, depth, patch, patch * grid, int(proj.shape[1]))
    expected = expected_shapes(arch)
    missing = sorted(set(expected) - set(state))
    unknown = sorted(set(state) - set(expected))
    if missing or unknown:
        detail = "; ".join(
            p
            for p in (f"missing {missing[:4]}" if missing else "", f"unexpected {unknown[:4]}" if unknown else "")
            if p
        )
        raise WeightsError(f"not an OpenAI CLIP ViT image tower of {arch.describe()}: {detail}")
    for key, shape in expected.items():
        tensor = state[key]
        if tuple(tensor.shape) != shape:
            raise WeightsError(f"{key} has shape {tuple(tensor.shape)}, expected {shape} ({arch.describe()})")
        if tensor.dtype != np.float32:
            raise WeightsError(f"{key} is {tensor.dtype}, not float32")
        if not np.isfinite(tensor).all():
            raise WeightsError(f"{key} holds NaN or infinite values")
    return arch


def _float32(key: str, value: np.ndarray) -> np.ndarray:
    """fp16 → fp32 (exact, as `model.float()`); fp32 as is; anything else is not a CLIP weight."""
    if value.dtype == np.float16:
        return value.astype(np.float32)
    if value.dtype == np.float32:
        return value
    raise WeightsError(f"{key} is {value.dtype}; CLIP weights are float16 or float32")


def _is_vision_key(key: str) -> bool:
    return key.startswith((_VISUAL, _HF_VISION)) or key == _HF_PROJECTION


# Hugging Face CLIPEncoderLayer names → OpenAI ResidualAttentionBlock names.
_HF_LAYER = {
    "self_attn.out_proj": "attn.out_proj",
    "layer_norm1": "ln_1",
    "layer_norm2": "ln_2",
    "mlp.fc1": "mlp.c_fc",
    "mlp.fc2": "mlp.c_proj",
}
_HF_TOP = {
    "embeddings.class_embedding": "visual.class_embedding",
    "embeddings.patch_embedding.weight": "visual.conv1.weight",
    "embeddings.position_embedding.weight": "visual.positional_embedding",
    "pre_layrnorm.weight": "visual.ln_pre.weight",  # sic: transformers' name
    "pre_layrnorm.bias": "visual.ln_pre.bias",
    "post_layernorm.weight": "visual.ln_post.weight",
    "post_layernorm.bias": "visual.ln_post.bias",
}
_HF_IGNORED = {"embeddings.position_ids"}  # a buffer of 0..T−1 that older transformers saved


def openai_from_hf(tensors: StateDict) -> dict[str, np.ndarray]:
    """Hugging Face CLIP vision names → OpenAI names: q, k, v stacked into in_proj (rows q | k | v, as
    nn.MultiheadAttention packs them), `visual.proj` = `visual_projection.weight`ᵀ. Text-tower keys are ignored."""
    out: dict[str, np.ndarray] = {}
    qkv: dict[tuple[str, str], dict[str, np.ndarray]] = {}
    for key, value in tensors.items():
        if key == _HF_PROJECTION:
            out["visual.proj"] = np.ascontiguousarray(_float32(key, value).T)
            continue
        if not key.startswith(_HF_VISION):
            continue
        rest = key[len(_HF_VISION) :]
        if rest in _HF_IGNORED:
            continue
        if rest in _HF_TOP:
            out[_HF_TOP[rest]] = _float32(key, value)
            continue
        parts = rest.split(".")
        if len(parts) < 5 or parts[:2] != ["encoder", "layers"] or not parts[2].isdigit():
            raise WeightsError(f"not a Hugging Face CLIP vision tensor name: {key!r}")
        block, name, kind = f"visual.transformer.resblocks.{int(parts[2])}", ".".join(parts[3:-1]), parts[-1]
        if kind not in ("weight", "bias"):
            raise WeightsError(f"not a Hugging Face CLIP vision tensor name: {key!r}")
        if name in ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"):
            qkv.setdefault((block, kind), {})[name[len("self_attn.") :]] = _float32(key, value)
        elif name in _HF_LAYER:
            out[f"{block}.{_HF_LAYER[name]}.{kind}"] = _float32(key, value)
        else:
            raise WeightsError(f"not a Hugging Face CLIP vision tensor name: {key!r}")
    for (block, kind), parts in qkv.items():
        if set(parts) != {"q_proj", "k_proj", "v_proj"}:
            raise WeightsError(f"{block}: attention {kind} needs q_proj, k_proj and v_proj, has {sorted(parts)}")
        stacked = [parts[n] for n in ("q_proj", "k_proj", "v_proj")]
        if len({p.shape for p in stacked}) != 1:
            raise WeightsError(f"{block}: q_proj, k_proj and v_proj {kind} differ in shape")
        name = "in_proj_weight" if kind == "weight" else "in_proj_bias"
        out[f"{block}.attn.{name}"] = np.concatenate(stacked, axis=0)
    return out


def openai_visual(tensors: StateDict) -> dict[str, np.ndarray]:
    """The `visual.*` tensors of an OpenAI / open_clip state dict, in float32."""
    return {k: _float32(k, v) for k, v in tensors.items() if k.startswith(_VISUAL)}


# transformers' CLIPVisionConfig defaults (configuration_clip.py), the values a sparse vision_config leaves out.
_HF_VISION_DEFAULTS: dict[str, Any] = {
    "hidden_size": 768,
    "intermediate_size": 3072,
    "projection_dim": 512,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "num_channels": 3,
    "image_size": 224,
    "patch_size": 32,
    "hidden_act": "quick_gelu",
    "layer_norm_eps": 1e-5,
}


def _read_config(path: Path) -> dict[str, Any]:
    def refuse_constant(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")

    try:
        config = json.loads(read_regular(path, MAX_CONFIG_BYTES), parse_constant=refuse_constant)
    except FileNotFoundError:
        raise WeightsError(
            f"{display(path)} is missing: Hugging Face CLIP weights are read with the {CONFIG_NAME} saved beside "
            "them (it tells OpenAI's CLIP from others with the same tensor names)"
        ) from None
    except (InvalidInputError, OSError) as e:
        raise WeightsError(f"{display(path)}: cannot read the config ({e})") from None
    except (ValueError, RecursionError) as e:
        raise WeightsError(f"{display(path)}: not a JSON config ({e!s:.200})") from None
    if not isinstance(config, dict):
        raise WeightsError(f"{display(path)}: not a transformers config (a JSON object)")
    return config


def vision_config(config: dict[str, Any]) -> dict[str, Any]:
    """The vision settings transformers reads: a `CLIPConfig`'s `vision_config` (what both `CLIPModel` and
    `CLIPVisionModelWithProjection.from_pretrained` take), or a `CLIPVisionConfig` itself; defaults filled in.
    The projection size is the vision config's, else the CLIPConfig's top-level `projection_dim`."""
    if config.get("model_type") == "clip_vision_model":
        vision, top = config, {}
    elif config.get("model_type") == "clip" or "vision_config" in config:
        vision, top = config.get("vision_config") or {}, config
        if not isinstance(vision, dict):
            raise WeightsError("vision_config is not a JSON object")
    else:
        raise WeightsError(
            f"model_type {config.get('model_type')!r} is not a CLIP config ('clip' or 'clip_vision_model')"
        )
    merged = dict(_HF_VISION_DEFAULTS)
    if "projection_dim" in top:
        merged["projection_dim"] = top["projection_dim"]
    merged.update({k: v for k, v in vision.items() if k in _HF_VISION_DEFAULTS})
    return merged


def check_hf_config(config: dict[str, Any], arch: ClipArchitecture) -> None:
    """Every setting transformers would build the vision tower from agrees with the tensors and with OpenAI's CLIP."""
    vision = vision_config(config)
    expected = {
        "hidden_size": arch.width,
        "intermediate_size": arch.hidden,
        "projection_dim": arch.embed_dim,
        "num_hidden_layers": arch.depth,
        "num_attention_heads": arch.heads,
        "num_channels": 3,
        "image_size": arch.image_size,
        "patch_size": arch.patch,
        "hidden_act": "quick_gelu",
        "layer_norm_eps": LAYER_NORM_EPS,
    }
    openai_design = ("hidden_act", "layer_norm_eps", "num_attention_heads", "num_channels")
    for key, want in expected.items():
        got = vision[key]
        number = isinstance(got, (int, float)) and not isinstance(got, bool)
        if not (got == want if isinstance(want, str) else number and got == want):
            who = "OpenAI's CLIP needs" if key in openai_design else "the tensors need"
            raise WeightsError(f"vision {key} is {got!r:.50}, {who} {want!r}")


def _load_safetensors(path: Path) -> dict[str, np.ndarray]:
    from safetensors import SafetensorError, safe_open

    with open_regular(path):  # a FIFO or device is refused before any read
        pass
    try:
        with safe_open(str(path), framework="numpy") as f:
            return {k: f.get_tensor(k) for k in f.keys() if _is_vision_key(k)}
    except (SafetensorError, ValueError, OverflowError, TypeError) as e:
        raise WeightsError(f"{display(path)}: not a readable safetensors file ({e!s:.200})") from None
    except OSError as e:
        raise WeightsError(f"{display(path)}: cannot read the weights ({e.strerror or e})") from None


def load_checkpoint(path: str | Path) -> dict[str, np.ndarray]:
    """The float32 OpenAI-named image tower of any supported CLIP file (module docstring), structure checked."""
    path = Path(path)
    if path.suffix.lower() == ".safetensors":
        tensors = _load_safetensors(path)
    else:
        tensors = load_state_dict(path, torchscript=True, select=_is_vision_key)
    hf = any(k.startswith(_HF_VISION) for k in tensors)
    if hf and any(k.startswith(_VISUAL) for k in tensors):
        raise WeightsError(f"{display(path)}: holds both OpenAI (visual.*) and Hugging Face (vision_model.*) tensors")
    try:
        state = openai_from_hf(tensors) if hf else openai_visual(tensors)
        if not state:
            raise WeightsError("no CLIP image tower in it (no visual.* or vision_model.* tensors)")
        arch = architecture_of(state)
    except WeightsError as e:
        raise WeightsError(f"{display(path)}: {e}") from None
    if hf:
        config_path = path.with_name(CONFIG_NAME)
        try:
            check_hf_config(_read_config(config_path), arch)
        except WeightsError as e:
            message = str(e)
            raise WeightsError(
                message if message.startswith(display(config_path)) else f"{display(config_path)}: {message}"
            ) from None
    return state
