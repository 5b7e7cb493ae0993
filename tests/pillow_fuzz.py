"""Mutation fuzzing of fidrs' decoders against Pillow: seeded mutations of the differential corpus
(tests/pillow_corpus.py), each file decoded by Pillow's `Image.open(p).convert("RGB")` and by fidrs.

A finding is a file fidrs decodes where Pillow refuses it, or decodes to other pixels: a silently wrong
number. A file only fidrs refuses is counted ("stricter") but is not a finding: a refusal names the file and
never moves a score. Used by the bounded test (tests/unit/test_decode_fuzz_pillow.py) and by the long atheris run
(`python fuzz/fuzz_readers.py pillow`, fuzz/README.md).
"""

from __future__ import annotations

import warnings
from collections import Counter
from pathlib import Path

import fidrs
import numpy as np
from fidrs import _fidrs
from PIL import Image

# Both sides refuse the same bombs: Pillow above 2 × MAX_IMAGE_PIXELS, fidrs above max_pixels.
MAX_PIXELS = 1 << 18


def pillow_verdict(path: Path) -> np.ndarray | None:
    old = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS // 2
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as im:
                return np.asarray(im.convert("RGB"))
    except Exception:  # noqa: BLE001 - any refusal by Pillow
        return None
    finally:
        Image.MAX_IMAGE_PIXELS = old


def fidrs_verdict(path: Path) -> np.ndarray | None:
    try:
        return _fidrs.decode_image(str(path), max_pixels=MAX_PIXELS)
    except fidrs.DecodeError:
        return None


def judge(path: Path, data: bytes) -> str:
    """ "same pixels", "both refuse", "stricter" (only fidrs refuses), or a finding's description."""
    path.write_bytes(data)
    theirs, ours = pillow_verdict(path), fidrs_verdict(path)
    if ours is None:
        return "both refuse" if theirs is None else "stricter"
    if theirs is None:
        return "fidrs decoded a file Pillow refuses"
    if ours.shape != theirs.shape:
        return f"shape {ours.shape} != Pillow's {theirs.shape}"
    differ = int(np.any(ours != theirs, axis=-1).sum())
    return f"{differ} pixels differ from Pillow's" if differ else "same pixels"


INTERESTING = [0, 1, 2, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0x8000, 0xFFFF, 0x10000, 0x7FFFFFFF, 0xFFFFFFFF]


def mutate(data: bytes, rng: np.random.Generator) -> bytes:
    """One to three random edits: bit flips, byte and integer overwrites, cuts, inserts, duplicated ranges."""
    out = bytearray(data)
    for _ in range(int(rng.integers(1, 4))):
        if not out:
            break
        at = int(rng.integers(0, len(out)))
        kind = int(rng.integers(0, 7))
        if kind == 0:
            out[at] ^= 1 << int(rng.integers(0, 8))
        elif kind == 1:
            out[at] = int(rng.integers(0, 256))
        elif kind == 2:
            size = int(rng.choice([1, 2, 4]))
            value = int(rng.choice(INTERESTING)) & ((1 << (8 * size)) - 1)
            order = "little" if rng.integers(0, 2) else "big"
            out[at : at + size] = value.to_bytes(size, order)
        elif kind == 3:
            del out[at : at + int(rng.integers(1, 16))]
        elif kind == 4:
            out[at:at] = bytes(rng.integers(0, 256, int(rng.integers(1, 8))).astype(np.uint8))
        elif kind == 5:
            del out[at:]
        else:
            n = int(rng.integers(1, 32))
            out[at:at] = out[at : at + n]
    return bytes(out)


def seeds(max_bytes: int = 4096) -> list[tuple[str, bytes]]:
    """The corpus files small enough to mutate quickly (every format, most variants)."""
    from pillow_corpus import corpus

    return [(v.name, v.data) for v in corpus() if len(v.data) <= max_bytes and v.expect == "pillow"]


def run(folder: Path, mutations: int, seed: int = 0) -> tuple[list[str], Counter]:
    rng = np.random.default_rng(seed)
    pool = seeds()
    findings, counts = [], Counter()
    for i in range(mutations):
        name, data = pool[int(rng.integers(0, len(pool)))]
        mutated = mutate(data, rng)
        verdict = judge(folder / f"m{i % 64}{Path(name).suffix}", mutated)
        agreed = verdict in ("same pixels", "both refuse", "stricter")
        counts[verdict if agreed else "findings"] += 1
        if not agreed:
            findings.append(f"mutation {i} of {name}: {verdict} ({mutated.hex()})")
    return findings, counts
