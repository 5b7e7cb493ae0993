"""OpenAI CLIP ViT image towers (Radford et al. 2021): CLIP-FID as clean-fid computes it (ViT-B/32,
`model_name="clip_vit_b_32"`) and the CMMD embeddings of google-research/cmmd (ViT-L/14@336px).

Weights: OpenAI's TorchScript releases (the URLs carry the file's sha256, verified on download), plain OpenAI /
open_clip state dicts, or Hugging Face weights with their config (`clip_weights`). Graph: `vit_graph.build_vit`
with OpenAI's `VisionTransformer` (`clip/model.py`): conv1 without bias, class embedding + positional embedding,
`ln_pre`, pre-norm blocks with QuickGELU, `ln_post` on the class token, `@ proj`.

Outputs: `embedding` (the projected image embedding, `encode_image`) and `embedding_l2` (it divided by its L2
norm, `encode_image(normalize=True)`). CLIP-FID uses `embedding` (clean-fid does not normalise); CMMD uses
`embedding_l2`. Both come from one graph (the division costs nothing next to the network), so a feature cache
holds both and either metric can be computed from either backbone's features.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import WeightsError
from . import manifest
from .base import Backbone, StateDict
from .clip_weights import LAYER_NORM_EPS, ClipArchitecture, architecture_of, load_checkpoint

if TYPE_CHECKING:
    from .vit_graph import VitSpec, VitWeights

# The ViT converter (vit_graph) imports onnx: it is imported where a graph is built, not with the registry.


def vit_weights(state: StateDict) -> tuple[VitSpec, VitWeights]:
    """OpenAI `visual.*` tensors as the builder's spec and weights."""
    from .vit_graph import VitBlock, VitSpec, VitWeights

    arch = architecture_of(state)

    def pair(key: str):
        return state[f"{key}.weight"], state[f"{key}.bias"]

    blocks = []
    for i in range(arch.depth):
        p = f"visual.transformer.resblocks.{i}"
        blocks.append(
            VitBlock(
                norm1=pair(f"{p}.ln_1"),
                qkv=(state[f"{p}.attn.in_proj_weight"], state[f"{p}.attn.in_proj_bias"]),
                proj=pair(f"{p}.attn.out_proj"),
                norm2=pair(f"{p}.ln_2"),
                fc1=pair(f"{p}.mlp.c_fc"),
                fc2=pair(f"{p}.mlp.c_proj"),
            )
        )
    weights = VitWeights(
        patch_weight=state["visual.conv1.weight"],
        patch_bias=None,
        class_token=state["visual.class_embedding"],
        position=state["visual.positional_embedding"],
        blocks=blocks,
        norm=pair("visual.ln_post"),
        ln_pre=pair("visual.ln_pre"),
        projection=state["visual.proj"],
    )
    spec = VitSpec(
        width=arch.width,
        depth=arch.depth,
        heads=arch.heads,
        patch=arch.patch,
        image_size=arch.image_size,
        ffn="quick-gelu",
        hidden=arch.hidden,
        layer_norm_eps=LAYER_NORM_EPS,
        name=f"clip_vit_w{arch.width}_l{arch.depth}_p{arch.patch}_r{arch.image_size}",
    )
    return spec, weights


def build_clip(state: StateDict, outputs: tuple[str, ...] = ("embedding", "embedding_l2")):
    """Input `images` N×3×R×R (normalised with CLIP's mean/std); the named outputs, N × E each."""
    from .vit_graph import build_vit

    return build_vit(*vit_weights(state), outputs)


def _architecture(m: dict) -> ClipArchitecture:
    a = m["architecture"]
    return ClipArchitecture(
        int(a["width"]), int(a["depth"]), int(a["patch"]), int(m["input_size"]), int(a["embed_dim"])
    )


def _user_checker(arch: ClipArchitecture, name: str):
    """A user's file: any OpenAI-style CLIP ViT with this backbone's embedding size and input resolution (the
    preprocessing is the backbone's; depth, width and patch are read from the file, whose sha256 tells files
    apart in every statistic)."""

    def check(state: StateDict) -> None:
        found = architecture_of(state)
        if (found.embed_dim, found.image_size) != (arch.embed_dim, arch.image_size):
            raise WeightsError(
                f"this checkpoint is a CLIP of {found.describe()}; backbone {name!r} needs embedding "
                f"{arch.embed_dim} and input {arch.image_size}"
            )

    return check


def _official_checker(arch: ClipArchitecture):
    """The downloaded or cached official file: exactly the published architecture."""

    def check(state: StateDict) -> None:
        found = architecture_of(state)
        if found != arch:
            raise WeightsError(
                f"this checkpoint is a CLIP of {found.describe()}; the official file has {arch.describe()}"
            )

    return check


def _graph_builder(outputs: tuple[str, ...]):
    def build(state: StateDict):
        return build_clip(state, outputs)

    return build


def names() -> list[str]:
    """Every packaged CLIP backbone (a manifest of family "clip" each), smallest input first."""
    return sorted(manifest.of_family("clip"), key=lambda name: int(manifest.manifest(name)["input_size"]))


def backbone(m: dict) -> Backbone:
    """A CLIP backbone from its manifest (weights, architecture, modes, outputs) and this module's code; the graph
    computes every output the manifest lists."""
    arch = _architecture(m)
    outputs = tuple(o.name for o in manifest.outputs(m))
    checks = _user_checker(arch, m["name"]), _official_checker(arch)
    code = manifest.Code(load_checkpoint, *checks, _graph_builder(outputs))
    return manifest.backbone(m, code)


def backbones() -> list[Backbone]:
    """Every packaged manifest of this family (models/clip-*.toml)."""
    return [backbone(manifest.manifest(name)) for name in names()]
