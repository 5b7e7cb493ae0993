"""Each backbone end to end (files → statistics, `fidrs.stats`, cache off) against its bare network (ONNX Runtime
on preloaded inputs of the same batch size), in the same run. DINOv2 ViT-S/14 and ViT-L/14 and CLIP ViT-B/32 and
ViT-L/14@336 use random weights of the real shapes (full depth; written as Hugging Face / open_clip safetensors
to a temporary folder): speed does not depend on the values.

Usage: python bench/bench_backbones.py [--images N] [--large-images M] [--clip-large-images K] [--rounds R]
    [--only NAME...]
(small-size check: --images 16 --large-images 16 --clip-large-images 16)
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import fidrs
import numpy as np
from common import DATA, WEIGHTS, machine
from fidrs import _fidrs
from fidrs.backbones import get
from fidrs.backbones.clip_weights import ClipArchitecture
from fidrs.backbones.clip_weights import expected_shapes as clip_shapes
from fidrs.backbones.vit_graph import Architecture, expected_shapes
from fidrs.runtime import get_session
from fidrs.weights import resolve_model

BATCH = 16


def random_dinov2(arch: Architecture, folder: Path) -> Path:
    """A random DINOv2 of `arch` in the Hugging Face layout (q, k, v split; HF names)."""
    from safetensors.numpy import save_file

    rng = np.random.default_rng(0)
    tensors = {}
    for key, shape in expected_shapes(arch).items():
        value = rng.normal(scale=0.02, size=shape).astype(np.float32)
        tensors[key] = value + 1 if key.endswith("norm1.weight") or key.endswith("norm2.weight") else value
    hf = {
        "embeddings.cls_token": tensors.pop("cls_token"),
        "embeddings.mask_token": tensors.pop("mask_token"),
        "embeddings.position_embeddings": tensors.pop("pos_embed"),
        "embeddings.patch_embeddings.projection.weight": tensors.pop("patch_embed.proj.weight"),
        "embeddings.patch_embeddings.projection.bias": tensors.pop("patch_embed.proj.bias"),
        "layernorm.weight": tensors.pop("norm.weight"),
        "layernorm.bias": tensors.pop("norm.bias"),
    }
    names = {
        "attn.proj": "attention.output.dense",
        "ls1.gamma": "layer_scale1.lambda1",
        "ls2.gamma": "layer_scale2.lambda1",
    }
    for key, value in tensors.items():
        _, i, rest = key.split(".", 2)
        prefix = f"encoder.layer.{i}"
        if rest.startswith("attn.qkv."):
            for part, chunk in zip(("query", "key", "value"), np.split(value, 3)):
                hf[f"{prefix}.attention.attention.{part}.{rest.rsplit('.', 1)[1]}"] = np.ascontiguousarray(chunk)
            continue
        for ours, theirs in names.items():
            rest = rest.replace(ours, theirs)
        hf[f"{prefix}.{rest}"] = value
    path = folder / f"dinov2_d{arch.width}_l{arch.depth}.safetensors"
    save_file(hf, str(path))
    return path


def random_clip(arch: ClipArchitecture, folder: Path) -> Path:
    """A random CLIP image tower of `arch` with OpenAI / open_clip names, float32 safetensors."""
    from safetensors.numpy import save_file

    rng = np.random.default_rng(0)
    tensors = {}
    for key, shape in clip_shapes(arch).items():
        value = rng.normal(scale=0.02, size=shape).astype(np.float32)
        tensors[key] = value + 1 if key.endswith(("ln_1.weight", "ln_2.weight", "pre.weight", "post.weight")) else value
    path = folder / f"clip_w{arch.width}_l{arch.depth}_p{arch.patch}_r{arch.image_size}.safetensors"
    save_file(tensors, str(path))
    return path


def measure(name: str, backbone: str, weights: str, files: list[str], rounds: int) -> None:
    """Bare network and end to end, interleaved `rounds` times (the machines are shared: one pair of runs can be
    10 % apart either way); the row gives the medians and the ratio of the medians, the rounds' ratios beside."""
    model = resolve_model(backbone, weights)
    session = get_session(str(model.onnx_path), model.backbone)
    preprocessing = get(backbone).mode(None).build((255, 255, 255))
    batch = _fidrs.load_images(files[:BATCH], preprocessing)[0]
    session.run(batch)  # warm-up
    repeats = max(1, len(files) // BATCH)
    bare_rates, end_to_end_rates = [], []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(repeats):
            session.run(batch)
        bare_rates.append(repeats * BATCH / (time.perf_counter() - start))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", fidrs.SmallSampleWarning)
            start = time.perf_counter()
            s = fidrs.stats(files, backbone=backbone, weights=weights, cache=False, batch_size=BATCH)
            end_to_end_rates.append(s.n / (time.perf_counter() - start))
    bare, end_to_end = statistics.median(bare_rates), statistics.median(end_to_end_rates)
    each = " ".join(f"{100 * e / b:.0f}" for b, e in zip(bare_rates, end_to_end_rates))
    print(
        f"| {name} | {len(files)} | {rounds} | {bare:.2f} | {end_to_end:.2f} "
        f"| {100 * end_to_end / bare:.0f} % | {each} |",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=128)
    parser.add_argument("--large-images", type=int, default=32)
    parser.add_argument("--clip-large-images", type=int, default=16, help="for CLIP ViT-L/14@336 (~0.4 TFLOP each)")
    parser.add_argument("--rounds", type=int, default=1, help="bare and end to end interleaved, medians reported")
    parser.add_argument("--only", nargs="*", help="rows whose backbone name contains one of these words")
    args = parser.parse_args()
    files = sorted(str(p) for p in (DATA / "training").glob("*/*.jpg"))
    print(f"machine: {machine()}; batch {BATCH}; fruit JPEGs (100×100)")
    print(
        "| backbone | images | rounds | bare network, images/s | end to end, images/s | end to end / bare "
        "| each round, % |"
    )
    print("|---|---|---|---|---|---|---|")

    def wanted(name: str) -> bool:
        return not args.only or any(word in name for word in args.only)

    with tempfile.TemporaryDirectory(prefix="fidrs-bench-") as tmp:
        if wanted("inception"):
            measure("inception (pytorch-fid)", "inception", str(WEIGHTS), files[: args.images], args.rounds)
        if wanted("dinov2-vits14"):
            small = random_dinov2(Architecture(384, 12, "mlp", 37), Path(tmp))
            measure("dinov2-vits14 (dgm-eval)", "dinov2-vits14", str(small), files[: args.images], args.rounds)
        if wanted("dinov2-vitl14"):
            large = random_dinov2(Architecture(1024, 24, "mlp", 37), Path(tmp))
            measure("dinov2-vitl14 (dgm-eval)", "dinov2-vitl14", str(large), files[: args.large_images], args.rounds)
        if wanted("clip-vitb32"):
            b32 = random_clip(ClipArchitecture(768, 12, 32, 224, 512), Path(tmp))
            measure("clip-vitb32 (clean-fid)", "clip-vitb32", str(b32), files[: args.images], args.rounds)
        if wanted("clip-vitl14-336"):
            l14 = random_clip(ClipArchitecture(1024, 24, 14, 336, 768), Path(tmp))
            measure("clip-vitl14-336 (cmmd)", "clip-vitl14-336", str(l14), files[: args.clip_large_images], args.rounds)


if __name__ == "__main__":
    main()
