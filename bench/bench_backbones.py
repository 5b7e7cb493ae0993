"""Each backbone end to end (files → statistics, `fidrs.stats`, cache off) against its bare network (ONNX Runtime
on preloaded inputs of the same batch size), in the same run. DINOv2 ViT-S/14 and ViT-L/14 use random weights
of the real shapes (written as Hugging Face safetensors to a temporary folder): speed does not depend on the
values.

Usage: python bench/bench_backbones.py [--images N] [--large-images M]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import fidrs
import numpy as np
from common import DATA, WEIGHTS, machine
from fidrs import _fidrs
from fidrs.backbones import get
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


def measure(name: str, backbone: str, weights: str, files: list[str]) -> None:
    model = resolve_model(backbone, weights)
    session = get_session(str(model.onnx_path), model.backbone)
    preprocessing = get(backbone).mode(None).build((255, 255, 255))
    batch = _fidrs.load_images(files[:BATCH], preprocessing)[0]
    session.run(batch)  # warm-up
    repeats = max(1, len(files) // BATCH)
    start = time.perf_counter()
    for _ in range(repeats):
        session.run(batch)
    bare = repeats * BATCH / (time.perf_counter() - start)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fidrs.SmallSampleWarning)
        start = time.perf_counter()
        s = fidrs.stats(files, backbone=backbone, weights=weights, cache=False, batch_size=BATCH)
        end_to_end = s.n / (time.perf_counter() - start)
    print(f"| {name} | {len(files)} | {bare:.2f} | {end_to_end:.2f} | {100 * end_to_end / bare:.0f} % |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=128)
    parser.add_argument("--large-images", type=int, default=32)
    args = parser.parse_args()
    files = sorted(str(p) for p in (DATA / "training").glob("*/*.jpg"))
    print(f"machine: {machine()}; batch {BATCH}; fruit JPEGs (100×100)")
    print("| backbone | images | bare network, images/s | end to end, images/s | end to end / bare |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="fidrs-bench-") as tmp:
        measure("inception (pytorch-fid)", "inception", str(WEIGHTS), files[: args.images])
        small = random_dinov2(Architecture(384, 12, "mlp", 37), Path(tmp))
        measure("dinov2-vits14 (dgm-eval)", "dinov2-vits14", str(small), files[: args.images])
        large = random_dinov2(Architecture(1024, 24, "mlp", 37), Path(tmp))
        measure("dinov2-vitl14 (dgm-eval)", "dinov2-vitl14", str(large), files[: args.large_images])


if __name__ == "__main__":
    main()
