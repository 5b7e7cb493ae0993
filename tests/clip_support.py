"""Helpers of the CLIP tests (not a test module): the two official preprocessings written with Pillow as the
reference tools do it, torch-free writers of the checkpoint formats (torch zip state dicts, TorchScript archives,
Hugging Face folders), a float64 numpy forward of OpenAI's VisionTransformer, and the CMMD embedding sets."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
from conftest import DATA, SHARED

CONFORMANCE = SHARED / "conformance" / "clip"
B32_ARCHIVE = CONFORMANCE / "random_clip_vit_b32_2blocks.jit.pt"
L14_FOLDER = CONFORMANCE / "random_clip_vit_l14_336_2layers"
L14_SAFETENSORS = L14_FOLDER / "model.safetensors"
CLIP_MEAN = np.array([0.48145466, 0.4578275, 0.40821073], np.float32)
CLIP_STD = np.array([0.26862954, 0.26130258, 0.27577711], np.float32)


# --- the reference tools' preprocessing, with Pillow ---------------------------------------------------------


def clean_fid_pixels(path: Path, size: int = 224) -> np.ndarray:
    """clean-fid's `img_preprocess_clip` (cleanfid/clip_features.py): RGB, torchvision Resize(size, BICUBIC) on
    the PIL image (short side → size, long side `int(size·long/short)`), CenterCrop (Python round, half to
    even): uint8 H×W×3."""
    from PIL import Image

    im = Image.open(path).convert("RGB")
    w, h = im.size
    new = (size, int(size * h / w)) if w <= h else (int(size * w / h), size)
    im = im.resize(new, Image.BICUBIC)
    top, left = int(round((new[1] - size) / 2)), int(round((new[0] - size) / 2))
    return np.asarray(im.crop((left, top, left + size, top + size))).astype(np.uint8)


def cmmd_pixels(path: Path, size: int = 336) -> np.ndarray:
    """google-research/cmmd `io_util._read_image` + `_center_crop_and_resize`: the centred square (floor
    offsets), Pillow bicubic to size×size, float32; a grey image tiled to 3 channels: float32 H×W×3 (0..255)."""
    from PIL import Image

    im = Image.open(path)  # no convert("RGB"): the official reader keeps grey images grey
    w, h = im.size
    side = min(w, h)
    top, left = (h - side) // 2, (w - side) // 2
    pixels = np.asarray(im.crop((left, top, left + side, top + side)).resize((size, size), Image.BICUBIC))
    pixels = pixels.astype(np.float32)
    return np.tile(pixels[..., None], (1, 1, 3)) if pixels.ndim == 2 else pixels


def network_input(pixels: np.ndarray) -> np.ndarray:
    """N×H×W×3 pixels (0..255) → the normalised N×3×H×W float32 input: float32 x/255, then (x − mean)/std
    (clean-fid's ToTensor·255/255 gives the same float32 values as x/255 for every byte: tested)."""
    x = pixels.astype(np.float32) / np.float32(255)
    return np.ascontiguousarray(((x - CLIP_MEAN) / CLIP_STD).transpose(0, 3, 1, 2))


def first_files(folder: Path, n: int) -> list[Path]:
    """The first n image files of a folder, sorted by name (both official tools sort their listing)."""
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))[:n]


# --- torch-free writers of the checkpoint formats --------------------------------------------------------------


class ScriptModule:
    """A TorchScript module to write: its class (`__torch__.<module>`, `<name>`) and its attributes."""

    def __init__(self, qualified: str, attributes: dict) -> None:
        self.module, _, self.name = qualified.rpartition(".")
        self.attributes = attributes


class Global:
    """A pickle global to write as is (crafted files)."""

    def __init__(self, module: str, name: str) -> None:
        self.module, self.name = module, name


class Call:
    """`func(*args)` pickled with REDUCE (crafted files)."""

    def __init__(self, func: Global, args: tuple) -> None:
        self.func, self.args = func, args


_STORAGE_NAMES = {"float16": "HalfStorage", "float32": "FloatStorage", "int64": "LongStorage"}


class PickleWriter:
    """Protocol-2 pickle opcodes as torch.save / torch.jit.save write them: tensors as `_rebuild_tensor_v2` of a
    persistent storage reference, modules as NEWOBJ + BUILD of their attribute dict. The storages are collected
    for the archive's data/ records."""

    def __init__(self) -> None:
        self.out = bytearray(b"\x80\x02")
        self.storages: list[np.ndarray] = []

    def _global(self, module: str, name: str) -> None:
        self.out += b"c" + f"{module}\n{name}\n".encode()

    def _str(self, s: str) -> None:
        data = s.encode()
        self.out += b"X" + len(data).to_bytes(4, "little") + data

    def _int(self, v: int) -> None:
        self.out += b"J" + int(v).to_bytes(4, "little", signed=True)

    def _tuple(self, items) -> None:
        self.out += b"("
        for item in items:
            self.value(item)
        self.out += b"t"

    def _tensor(self, array: np.ndarray) -> None:
        array = np.ascontiguousarray(array)
        key = str(len(self.storages))
        self.storages.append(array)
        self._global("torch._utils", "_rebuild_tensor_v2")
        self.out += b"(("  # the argument tuple, then the persistent id tuple
        self._str("storage")
        self._global("torch", _STORAGE_NAMES[array.dtype.name])
        self._str(key)
        self._str("cpu")
        self._int(array.size)
        self.out += b"tQ"  # TUPLE, BINPERSID
        self._int(0)
        self._tuple(array.shape)
        self._tuple(s // array.itemsize for s in array.strides)
        self.out += b"\x89"  # requires_grad False
        self._global("collections", "OrderedDict")
        self.out += b")R"  # backward hooks: OrderedDict()
        self.out += b"tR"

    def value(self, v) -> None:
        if isinstance(v, np.ndarray):
            self._tensor(v)
        elif isinstance(v, ScriptModule):
            self._global(v.module, v.name)
            self.out += b")\x81"  # EMPTY_TUPLE, NEWOBJ
            self.value(v.attributes)
            self.out += b"b"  # BUILD
        elif isinstance(v, Global):
            self._global(v.module, v.name)
        elif isinstance(v, Call):
            self.value(v.func)
            self._tuple(v.args)
            self.out += b"R"
        elif isinstance(v, dict):
            self.out += b"}("
            for key, item in v.items():
                self.value(key)
                self.value(item)
            self.out += b"u"
        elif isinstance(v, bool):
            self.out += b"\x88" if v else b"\x89"
        elif isinstance(v, int):
            self._int(v)
        elif isinstance(v, str):
            self._str(v)
        elif v is None:
            self.out += b"N"
        elif isinstance(v, (tuple, list)):
            self._tuple(v)
        else:
            raise TypeError(type(v))

    def dumps(self, root) -> bytes:
        self.value(root)
        return bytes(self.out + b".")


def write_torch_zip(path: Path, root, *, prefix: str = "archive", extra: dict[str, bytes] | None = None) -> Path:
    """torch's zip layout: `<prefix>/data.pkl`, `<prefix>/data/<key>` (little-endian bytes), byteorder, version."""
    writer = PickleWriter()
    pickled = writer.dumps(root)
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(f"{prefix}/data.pkl", pickled)
        z.writestr(f"{prefix}/byteorder", "little")
        for key, array in enumerate(writer.storages):
            z.writestr(f"{prefix}/data/{key}", array.astype(array.dtype.newbyteorder("<")).tobytes())
        z.writestr(f"{prefix}/version", "3\n")
        for name, data in (extra or {}).items():
            z.writestr(f"{prefix}/{name}", data)
    return path


def write_state_dict(path: Path, tensors: dict[str, np.ndarray]) -> Path:
    """`torch.save(state_dict)`: an OrderedDict of tensors (dtypes kept)."""
    from collections import OrderedDict

    return write_torch_zip(path, OrderedDict(tensors))


def script_tree(tensors: dict[str, np.ndarray]) -> ScriptModule:
    """A state dict as the TorchScript module tree `torch.jit.save` pickles: one `__torch__` object per dotted
    prefix (classes named like CLIP's), tensors as attributes, plus the flags TorchScript modules carry."""
    root = ScriptModule("__torch__.clip.model.CLIP", {"training": False})
    for key, value in tensors.items():
        *path, leaf = key.split(".")
        node = root
        for depth, part in enumerate(path):
            if part not in node.attributes:
                kind = "Sequential" if part.isdigit() or part == "resblocks" else f"M{depth}"
                node.attributes[part] = ScriptModule(f"__torch__.clip.model.___torch_mangle_{depth}.{kind}", {})
                node.attributes[part].attributes["training"] = False
            node = node.attributes[part]
        node.attributes[leaf] = value
    return root


def write_torchscript(path: Path, tensors: dict[str, np.ndarray]) -> Path:
    """A TorchScript archive of these tensors, with the code/ and constants.pkl members a real one has (which a
    reader must never need: here they would fail if executed)."""
    code = b"raise SystemExit('the archive code was executed')\n"
    extra = {"code/__torch__/clip/model.py": code, "constants.pkl": b"\x80\x02c__builtin__\neval\n."}
    return write_torch_zip(path, script_tree(tensors), prefix=path.stem, extra=extra)


def hf_from_openai(state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """OpenAI `visual.*` → Hugging Face CLIPVisionModelWithProjection names, as transformers'
    convert_clip_original_pytorch_to_hf.py does it (in_proj split into q, k, v; proj transposed), float32."""
    out = {
        "vision_model.embeddings.class_embedding": state["visual.class_embedding"],
        "vision_model.embeddings.patch_embedding.weight": state["visual.conv1.weight"],
        "vision_model.embeddings.position_embedding.weight": state["visual.positional_embedding"],
        "vision_model.embeddings.position_ids": np.arange(len(state["visual.positional_embedding"]))[None],
        "vision_model.pre_layrnorm.weight": state["visual.ln_pre.weight"],
        "vision_model.pre_layrnorm.bias": state["visual.ln_pre.bias"],
        "vision_model.post_layernorm.weight": state["visual.ln_post.weight"],
        "vision_model.post_layernorm.bias": state["visual.ln_post.bias"],
        "visual_projection.weight": state["visual.proj"].T,
    }
    i = 0
    while f"visual.transformer.resblocks.{i}.ln_1.weight" in state:
        o, h = f"visual.transformer.resblocks.{i}", f"vision_model.encoder.layers.{i}"
        q, k, v = np.split(state[f"{o}.attn.in_proj_weight"], 3)
        qb, kb, vb = np.split(state[f"{o}.attn.in_proj_bias"], 3)
        for name, weight, bias in (("q_proj", q, qb), ("k_proj", k, kb), ("v_proj", v, vb)):
            out[f"{h}.self_attn.{name}.weight"], out[f"{h}.self_attn.{name}.bias"] = weight, bias
        for ours, theirs in (
            ("attn.out_proj", "self_attn.out_proj"),
            ("ln_1", "layer_norm1"),
            ("ln_2", "layer_norm2"),
            ("mlp.c_fc", "mlp.fc1"),
            ("mlp.c_proj", "mlp.fc2"),
        ):
            for kind in ("weight", "bias"):
                out[f"{h}.{theirs}.{kind}"] = state[f"{o}.{ours}.{kind}"]
        i += 1
    return {k: np.ascontiguousarray(v if v.dtype == np.int64 else v.astype(np.float32)) for k, v in out.items()}


def hf_config(state: dict[str, np.ndarray], **vision_overrides) -> dict:
    """The upstream CLIPConfig layout: a sparse vision_config (hidden_act and layer_norm_eps left to the
    defaults), the top-level projection_dim."""
    width = len(state["visual.class_embedding"])
    patch = state["visual.conv1.weight"].shape[-1]
    grid = int(round((len(state["visual.positional_embedding"]) - 1) ** 0.5))
    depth = sum(1 for k in state if k.endswith(".attn.in_proj_weight") and k.startswith("visual."))
    embed = state["visual.proj"].shape[1]
    vision = {
        "hidden_size": width,
        "image_size": patch * grid,
        "intermediate_size": 4 * width,
        "model_type": "clip_vision_model",
        "num_attention_heads": width // 64,
        "num_hidden_layers": depth,
        "patch_size": patch,
        "projection_dim": embed,
        **vision_overrides,
    }
    return {"architectures": ["CLIPModel"], "model_type": "clip", "projection_dim": embed, "vision_config": vision}


def write_hf_folder(folder: Path, state: dict[str, np.ndarray], *, fmt: str = "safetensors", **overrides) -> Path:
    """A Hugging Face model folder (config.json + model.safetensors or pytorch_model.bin); returns the weights."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(hf_config(state, **overrides), indent=1))
    tensors = hf_from_openai(state)
    if fmt == "safetensors":
        from safetensors.numpy import save_file

        save_file(tensors, str(folder / "model.safetensors"))
        return folder / "model.safetensors"
    return write_state_dict(folder / "pytorch_model.bin", tensors)


# --- an independent forward pass --------------------------------------------------------------------------------


def numpy_clip_forward(state: dict[str, np.ndarray], images: np.ndarray) -> np.ndarray:
    """OpenAI's VisionTransformer.forward (clip/model.py) in float64: the projected, unnormalised embedding."""
    s = {k: v.astype(np.float64) for k, v in state.items() if k.startswith("visual.")}
    conv = s["visual.conv1.weight"]
    width, patch = conv.shape[0], conv.shape[-1]
    n, side = len(images), images.shape[-1] // patch
    patches = images.astype(np.float64).reshape(n, 3, side, patch, side, patch).transpose(0, 2, 4, 1, 3, 5)
    x = patches.reshape(n, side * side, -1) @ conv.reshape(width, -1).T
    x = np.concatenate([np.broadcast_to(s["visual.class_embedding"], (n, 1, width)), x], axis=1)
    x = x + s["visual.positional_embedding"]

    def norm(v, p):
        mu, var = v.mean(-1, keepdims=True), v.var(-1, keepdims=True)
        return (v - mu) / np.sqrt(var + 1e-5) * s[f"{p}.weight"] + s[f"{p}.bias"]

    def linear(v, p):
        return v @ s[f"{p}.weight"].T + s[f"{p}.bias"]

    x = norm(x, "visual.ln_pre")
    heads, i = width // 64, 0
    while f"visual.transformer.resblocks.{i}.ln_1.weight" in s:
        p = f"visual.transformer.resblocks.{i}"
        h = norm(x, f"{p}.ln_1")
        qkv = h @ s[f"{p}.attn.in_proj_weight"].T + s[f"{p}.attn.in_proj_bias"]
        q, k, v = (t.reshape(n, -1, heads, 64).transpose(0, 2, 1, 3) for t in np.split(qkv, 3, axis=-1))
        scores = q @ k.transpose(0, 1, 3, 2) / 8.0
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        attended = ((scores / scores.sum(-1, keepdims=True)) @ v).transpose(0, 2, 1, 3).reshape(n, -1, width)
        x = x + linear(attended, f"{p}.attn.out_proj")
        h = linear(norm(x, f"{p}.ln_2"), f"{p}.mlp.c_fc")
        x = x + linear(h / (1 + np.exp(-1.702 * h)), f"{p}.mlp.c_proj")
        i += 1
    return norm(x[:, 0], "visual.ln_post") @ s["visual.proj"]


# --- CMMD -------------------------------------------------------------------------------------------------------


def cmmd_embedding_sets(classes: list[str] | None = None, n: int = 64) -> dict[str, np.ndarray]:
    """fidrs' L2-normalised clip-vitl14-336 embeddings (n × 768 float32) of the first n images (sorted names) of
    each training class, with the shared L/14@336 weights, through fidrs' own pipeline (the run's feature cache:
    an image another test embedded in this run is not computed again)."""
    import fidrs

    folders = {c: DATA / "training" / c for c in (classes or sorted(p.name for p in (DATA / "training").iterdir()))}
    return {
        c: fidrs.features(
            [str(f) for f in first_files(folder, n)], backbone="clip-vitl14-336", weights=str(L14_SAFETENSORS)
        )
        for c, folder in folders.items()
    }
