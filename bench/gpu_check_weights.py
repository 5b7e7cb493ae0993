"""Seeded random weights in the official checkpoint layouts, for the GPU check (bench/gpu_check.py): the real
checkpoints are too big to carry to the GPU machine and `shared/` is not there, so each network is built there
from these state dicts through fidrs' own converters (speed does not depend on the values; fidelity is CUDA vs
CPU on the same graph, so any well-scaled weights serve).

Numpy only: the shapes of the DINOv2 and CLIP layouts come from the caller (the fidrs adapter), the Inception's
from torchvision's Inception V3 (`tests/plumbing/test_gpu_check.py` checks them against the shared pytorch-fid-format
checkpoint where it exists).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import numpy as np

StateDict = dict[str, np.ndarray]

# torchvision's Inception V3 as pytorch-fid's FID Inception has it: (name, in, out, kernel) of every
# BasicConv2d; blocks are written out from their constructor arguments.
_STEM = (
    ("Conv2d_1a_3x3", 3, 32, (3, 3)),
    ("Conv2d_2a_3x3", 32, 32, (3, 3)),
    ("Conv2d_2b_3x3", 32, 64, (3, 3)),
    ("Conv2d_3b_1x1", 64, 80, (1, 1)),
    ("Conv2d_4a_3x3", 80, 192, (3, 3)),
)


def _block_a(cin: int, pool: int):
    return (
        ("branch1x1", cin, 64, (1, 1)),
        ("branch5x5_1", cin, 48, (1, 1)),
        ("branch5x5_2", 48, 64, (5, 5)),
        ("branch3x3dbl_1", cin, 64, (1, 1)),
        ("branch3x3dbl_2", 64, 96, (3, 3)),
        ("branch3x3dbl_3", 96, 96, (3, 3)),
        ("branch_pool", cin, pool, (1, 1)),
    )


def _block_b(cin: int):
    return (
        ("branch3x3", cin, 384, (3, 3)),
        ("branch3x3dbl_1", cin, 64, (1, 1)),
        ("branch3x3dbl_2", 64, 96, (3, 3)),
        ("branch3x3dbl_3", 96, 96, (3, 3)),
    )


def _block_c(c7: int):
    return (
        ("branch1x1", 768, 192, (1, 1)),
        ("branch7x7_1", 768, c7, (1, 1)),
        ("branch7x7_2", c7, c7, (1, 7)),
        ("branch7x7_3", c7, 192, (7, 1)),
        ("branch7x7dbl_1", 768, c7, (1, 1)),
        ("branch7x7dbl_2", c7, c7, (7, 1)),
        ("branch7x7dbl_3", c7, c7, (1, 7)),
        ("branch7x7dbl_4", c7, c7, (7, 1)),
        ("branch7x7dbl_5", c7, 192, (1, 7)),
        ("branch_pool", 768, 192, (1, 1)),
    )


def _block_d(cin: int):
    return (
        ("branch3x3_1", cin, 192, (1, 1)),
        ("branch3x3_2", 192, 320, (3, 3)),
        ("branch7x7x3_1", cin, 192, (1, 1)),
        ("branch7x7x3_2", 192, 192, (1, 7)),
        ("branch7x7x3_3", 192, 192, (7, 1)),
        ("branch7x7x3_4", 192, 192, (3, 3)),
    )


def _block_e(cin: int):
    return (
        ("branch1x1", cin, 320, (1, 1)),
        ("branch3x3_1", cin, 384, (1, 1)),
        ("branch3x3_2a", 384, 384, (1, 3)),
        ("branch3x3_2b", 384, 384, (3, 1)),
        ("branch3x3dbl_1", cin, 448, (1, 1)),
        ("branch3x3dbl_2", 448, 384, (3, 3)),
        ("branch3x3dbl_3a", 384, 384, (1, 3)),
        ("branch3x3dbl_3b", 384, 384, (3, 1)),
        ("branch_pool", cin, 192, (1, 1)),
    )


_BLOCKS = (
    ("Mixed_5b", _block_a(192, 32)),
    ("Mixed_5c", _block_a(256, 64)),
    ("Mixed_5d", _block_a(288, 64)),
    ("Mixed_6a", _block_b(288)),
    ("Mixed_6b", _block_c(128)),
    ("Mixed_6c", _block_c(160)),
    ("Mixed_6d", _block_c(160)),
    ("Mixed_6e", _block_c(192)),
    ("Mixed_7a", _block_d(768)),
    ("Mixed_7b", _block_e(1280)),
    ("Mixed_7c", _block_e(2048)),
)


def inception_convs() -> Iterator[tuple[str, int, int, tuple[int, int]]]:
    """(name, in channels, out channels, kernel) of every convolution of the FID Inception."""
    yield from _STEM
    for block, convs in _BLOCKS:
        for branch, cin, cout, kernel in convs:
            yield f"{block}.{branch}", cin, cout, kernel


def inception_state(seed: int) -> StateDict:
    """A pytorch-fid-format FID Inception state dict (every key, shape and dtype of the real file).

    Convolutions with He's variance (std √(2/fan_in)), so a ReLU layer keeps the second moment of its input; BatchNorm
    near the identity (γ ≈ 1, β, running mean ≈ 0, running variance ≈ 1, all non-constant) so that 47
    convolutions in sequence neither blow up nor vanish (pool3 features come out O(0.1–1))."""
    rng = _generator(seed)
    state: StateDict = {}
    for name, cin, cout, (kh, kw) in inception_convs():
        fan_in = cin * kh * kw
        state[f"{name}.conv.weight"] = _random(rng, (cout, cin, kh, kw), np.sqrt(2.0 / fan_in))
        state[f"{name}.bn.weight"] = 1 + _random(rng, (cout,), 0.05)
        state[f"{name}.bn.bias"] = _random(rng, (cout,), 0.05)
        state[f"{name}.bn.running_mean"] = _random(rng, (cout,), 0.05)
        state[f"{name}.bn.running_var"] = 1 + np.float32(0.1) * rng.random(cout, dtype=np.float32)
        state[f"{name}.bn.num_batches_tracked"] = np.array(0, dtype=np.int64)
    state["fc.weight"] = _random(rng, (1008, 2048), 0.05)
    state["fc.bias"] = _random(rng, (1008,), 0.01)
    return state


def vit_state(shapes: Mapping[str, tuple[int, ...]], seed: int) -> StateDict:
    """A ViT state dict of the given layout (DINOv2's `blocks.i.*`, OpenAI CLIP's `visual.*`), by key name:
    linear and convolution weights with LeCun's variance (std 1/√fan_in: attention logits of unit size, neither
    uniform nor one-hot), norm weights 1 ± (std 0.05), LayerScale uniform in [0.1, 0.5], everything else std
    0.02 (each a zero-mean uniform draw of that standard deviation)."""
    rng = _generator(seed)
    state: StateDict = {}
    for key, shape in shapes.items():
        if len(shape) == 0:  # a 0-d integer such as OpenAI's `input_resolution`
            raise ValueError(f"{key}: 0-d tensors are not weights; leave them out of the shapes")
        leaf = key.rsplit(".", 1)[-1]
        if ("norm" in key or ".ln_" in key or key.startswith("ln_")) and leaf == "weight":
            value = 1 + _random(rng, shape, 0.05)
        elif leaf == "gamma":
            value = np.float32(0.1) + np.float32(0.4) * rng.random(shape, dtype=np.float32)
        elif len(shape) >= 2 and leaf in ("weight", "in_proj_weight", "proj"):
            fan_in = int(np.prod(shape[1:])) if leaf != "proj" else shape[0]  # OpenAI's `proj` is used as x @ proj
            value = _random(rng, shape, 1 / np.sqrt(fan_in))
        else:
            value = _random(rng, shape, 0.02)
        state[key] = value
    return state


def _generator(seed: int) -> np.random.Generator:
    """SFC64: five times PCG64's rate for float32 here (a ViT-L/14's 300 M weights in ~2 s, not ~15 s)."""
    return np.random.Generator(np.random.SFC64(seed))


def _random(rng: np.random.Generator, shape: tuple[int, ...], scale: float) -> np.ndarray:
    """Zero mean, standard deviation `scale`: uniform on ±√3·scale (what matters for how signals and errors
    propagate is the variance; uniform draws are the fastest)."""
    value = rng.random(shape, dtype=np.float32)
    value *= np.float32(2 * np.sqrt(3.0) * scale)
    value -= np.float32(np.sqrt(3.0) * scale)
    return value
