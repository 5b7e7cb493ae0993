"""Everything the GPU check (bench/gpu_check.py) takes from fidrs, in one place: the package is being
restructured, so the check imports only these few things and the lead adapts this file alone.

Used from fidrs: the backbone registry (names, output names, preprocessing, `build_graph`), the DINOv2 tensor
layout (`vit_graph.expected_shapes`), the exported-graph metadata keys (a graph that `features(model=...)`
accepts), `runtime.get_session` (the session fidrs runs, IO binding and provider check included),
`_fidrs.preprocess_arrays` / `_fidrs.load_images` (the native decode + preprocess), `features`, `Moments` and
`frechet_distance`. Every backbone runs in its own default mode.

Import this module only after FIDRS_NUM_THREADS is set: the native thread pool is sized when `_fidrs` loads.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import fidrs
import numpy as np
from fidrs import _fidrs, backbones, runtime
from fidrs.exported import KEY_BACKBONE, KEY_CONVERTER, KEY_WEIGHTS
from gpu_check_weights import StateDict, inception_state, vit_state
from onnx_costs import GraphCosts, graph_costs

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"


@dataclass(frozen=True)
class Network:
    """A network of the check: the backbone it is, and the architecture its random weights have."""

    backbone: str
    title: str
    arch: dict  # the layout's sizes (see `random_state`)


def networks(dry_run: bool) -> list[Network]:
    """Inception, DINOv2 ViT-L/14 (FD_DINOv2's network) and CLIP ViT-L/14@336 (CMMD's) at their real sizes; the
    dry run keeps the Inception (its architecture is fixed) and shrinks the ViTs' depth and width."""
    if dry_run:
        return [
            Network("inception", "FID Inception V3", {}),
            Network("dinov2-vits14", "DINOv2 ViT-S/14, 2 blocks", {"width": 384, "depth": 2, "grid": 37}),
            Network(
                "clip-vitl14-336",
                "CLIP ViT-L/14@336, width 128, 1 block",
                {"width": 128, "layers": 1, "patch": 14, "image": 336, "embed": 768},
            ),
        ]
    return [
        Network("inception", "FID Inception V3", {}),
        Network("dinov2-vitl14", "DINOv2 ViT-L/14", {"width": 1024, "depth": 24, "grid": 37}),
        Network(
            "clip-vitl14-336",
            "CLIP ViT-L/14@336",
            {"width": 1024, "layers": 24, "patch": 14, "image": 336, "embed": 768},
        ),
    ]


def has_backbone(name: str) -> bool:
    return name in backbones.names()


def versions() -> dict:
    """fidrs, numpy and ONNX Runtime versions, the runtime's build and the providers it offers."""
    ort = runtime.ort
    info: dict = {"fidrs": fidrs.__version__, "numpy": np.__version__}
    if ort is None:
        return info
    info.update(
        onnxruntime=ort.__version__,
        onnxruntime_build=ort.get_build_info() if hasattr(ort, "get_build_info") else "",
        available_providers=list(ort.get_available_providers()),
    )
    try:  # which distribution (onnxruntime or onnxruntime-gpu) and the CUDA it was built for
        from onnxruntime.capi import build_and_package_info as package

        info.update(onnxruntime_package=package.package_name, onnxruntime_cuda=getattr(package, "cuda_version", ""))
    except (ImportError, AttributeError):
        pass
    return info


# --- random weights of the official layouts, and their graphs -------------------------------------------------


def clip_openai_shapes(width: int, layers: int, patch: int, image: int, embed: int) -> dict[str, tuple[int, ...]]:
    """The vision tower of an OpenAI CLIP state dict (`visual.*`, what `clip.load` and open_clip hold)."""
    grid = image // patch
    shapes: dict[str, tuple[int, ...]] = {
        "visual.conv1.weight": (width, 3, patch, patch),
        "visual.class_embedding": (width,),
        "visual.positional_embedding": (1 + grid * grid, width),
        "visual.ln_pre.weight": (width,),
        "visual.ln_pre.bias": (width,),
        "visual.ln_post.weight": (width,),
        "visual.ln_post.bias": (width,),
        "visual.proj": (width, embed),
    }
    for i in range(layers):
        p = f"visual.transformer.resblocks.{i}"
        shapes.update(
            {
                f"{p}.attn.in_proj_weight": (3 * width, width),
                f"{p}.attn.in_proj_bias": (3 * width,),
                f"{p}.attn.out_proj.weight": (width, width),
                f"{p}.attn.out_proj.bias": (width,),
                f"{p}.ln_1.weight": (width,),
                f"{p}.ln_1.bias": (width,),
                f"{p}.mlp.c_fc.weight": (4 * width, width),
                f"{p}.mlp.c_fc.bias": (4 * width,),
                f"{p}.mlp.c_proj.weight": (width, 4 * width),
                f"{p}.mlp.c_proj.bias": (width,),
                f"{p}.ln_2.weight": (width,),
                f"{p}.ln_2.bias": (width,),
            }
        )
    return shapes


def random_state(network: Network, seed: int) -> StateDict:
    """Seeded random weights of `network` in its official checkpoint layout."""
    if network.backbone == "inception":
        return inception_state(seed)
    if network.backbone.startswith("dinov2"):
        from fidrs.backbones.vit_graph import Architecture, expected_shapes

        a = network.arch
        return vit_state(expected_shapes(Architecture(a["width"], a["depth"], "mlp", a["grid"])), seed)
    if network.backbone.startswith("clip"):
        return vit_state(clip_openai_shapes(**network.arch), seed)
    raise ValueError(f"no random-weight layout for {network.backbone!r}")


def write_graph(network: Network, state: StateDict, seed: int, path: Path) -> GraphCosts:
    """The backbone's own converter on `state`, written as a graph `features(model=path)` accepts (fidrs'
    export metadata: backbone, a weights id derived from the seed, the converter's identity). Returns its costs."""
    backbone = backbones.get(network.backbone)
    model = backbone.build_graph(state)
    weights_id = hashlib.sha256(f"gpu-check random weights {network.backbone} {network.arch} {seed}".encode())
    for key, value in (
        (KEY_BACKBONE, backbone.name),
        (KEY_WEIGHTS, weights_id.hexdigest()),
        (KEY_CONVERTER, backbone.converter_sha256),
    ):
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    costs = graph_costs(model)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(model.SerializeToString())
    tmp.replace(path)
    return costs


# --- sessions, inputs, features --------------------------------------------------------------------------------


@dataclass
class Session:
    """A fidrs network session: `run` gives the backbone's feature output for a batch of network inputs."""

    network: object  # fidrs.runtime.NetworkSession
    feature_index: int

    @property
    def provider(self) -> str:
        return self.network.provider

    @property
    def providers(self) -> list[str]:
        return list(self.network.session.get_providers())

    @property
    def host_memory(self) -> str:
        bound = self.network.bound
        return bound.host_memory if bound is not None else "numpy (no IO binding)"

    def run(self, batch: np.ndarray) -> np.ndarray:
        return self.network.run(batch)[self.feature_index]


def open_session(graph: Path, backbone: str, device: str, allow_tf32: bool) -> Session:
    """fidrs' own session for the graph (device "cuda" raises if ONNX Runtime fell back to another provider).
    The same arguments as `features(model=graph)` uses, so the end-to-end pass reuses the session."""
    b = backbones.get(backbone)
    network = runtime.get_session(str(graph), b, device, allow_tf32)
    return Session(network, b.output_names.index(b.feature_output))


def runtime_debug_info() -> None:
    """ONNX Runtime's own account of its CUDA setup (packages, LD_LIBRARY_PATH, loaded libraries), printed."""
    ort = runtime.ort
    if ort is not None and hasattr(ort, "print_debug_info"):
        try:
            ort.print_debug_info()
        except Exception as e:  # noqa: BLE001 - a diagnostic only
            print(f"onnxruntime.print_debug_info failed: {e}")


def release_sessions() -> None:
    """Drop fidrs' cached sessions (their device memory is freed once the caller holds none): `get_session`
    checks the graph, then takes the session from `runtime._session`, the cache."""
    runtime._session.cache_clear()


def network_inputs(backbone: str, images: np.ndarray) -> np.ndarray:
    """uint8 N×H×W×3 → the backbone's network inputs in its default mode (fidrs' native preprocessing)."""
    return _fidrs.preprocess_arrays(np.ascontiguousarray(images), backbones.preprocessing(backbone))


def input_size(backbone: str) -> int:
    return backbones.get(backbone).input_size


def feature_dim(backbone: str) -> int:
    return backbones.get(backbone).feature_dim


def default_mode(backbone: str) -> str:
    return backbones.get(backbone).default_mode


def decode_preprocess(paths: Sequence[str], backbone: str, batch: int) -> int:
    """Decode + preprocess every file (native, the thread pool of FIDRS_NUM_THREADS) in batches of `batch`
    into one reused buffer, as the feature pass does; returns how many decoded."""
    prep = backbones.preprocessing(backbone)
    size = prep.size
    out = np.empty((min(batch, len(paths)), 3, size, size), np.float32)
    done = 0
    for start in range(0, len(paths), batch):
        _, ok, failed, _ = _fidrs.load_images(list(paths[start : start + batch]), prep, _fidrs.DEFAULT_MAX_PIXELS, out)
        if failed:
            raise RuntimeError(f"{len(failed)} synthetic JPEGs did not decode: {failed[:2]}")
        done += len(ok)
    return done


def load_inputs(paths: Sequence[str], backbone: str) -> np.ndarray:
    """The network inputs of these files (native decode + preprocess in the backbone's default mode)."""
    batch, ok, failed, _ = _fidrs.load_images(list(paths), backbones.preprocessing(backbone))
    if failed:
        raise RuntimeError(f"{len(failed)} files did not decode: {failed[:2]}")
    return batch


def features_end_to_end(
    paths: Sequence[str], backbone: str, graph: Path, device: str, batch: int, allow_tf32: bool = False
) -> np.ndarray:
    """`fidrs.features` on files with the graph, cache off: decode, preprocess, network, in fidrs' pipeline."""
    return fidrs.features(
        list(paths),
        backbone=backbone,
        model=str(graph),
        device=device,
        batch_size=batch,
        allow_tf32=allow_tf32,
        cache=False,
    )


def frechet(a: np.ndarray, b: np.ndarray) -> float:
    """The Fréchet distance of two feature sets, through fidrs' float64 moments and distance."""
    moments = []
    for features in (a, b):
        m = fidrs.Moments(features.shape[1])
        m.update(np.ascontiguousarray(features, dtype=np.float32))
        moments.append(m)
    (ma, mb) = moments
    return float(fidrs.frechet_distance(ma.mean(), ma.covariance(), mb.mean(), mb.covariance()))
