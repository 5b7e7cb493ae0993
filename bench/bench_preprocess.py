"""Decode + preprocess per core: can the host CPUs feed a GPU (issues 12 and 28)? And which build of the
resampling kernels (baseline SSE2, AVX2 + FMA, AVX-512) is fastest on this CPU?

For each image set (the shared 100×100 fruit JPEGs, synthetic 256×256 and 1024×768 q90 JPEGs) and each variant
(`--kernels baseline,avx2,avx512`: the same package with `FIDRS_KERNELS` capping the build; `--before DIR`: a
folder holding an older `fidrs` package), every figure is the median of `--rounds` rounds, each in a fresh
process, the variants interleaved (A, B, C, A, B, C, …) so that a machine shared with others slows them alike.
Single-thread figures are images per second of *process CPU time* (on a shared machine wall time mostly measures
the others); the 2-thread figure is wall time, so its scaling ratio is only meaningful on a quiet machine:
- Pillow decode alone (`Image.open(f).convert("RGB")`, 1 thread), the yardstick;
- fidrs decode alone (`_fidrs.decode_image`, 1 thread);
- fidrs decode + preprocess to the network input (`_fidrs.load_images` in chunks of 64) for each mode, with
  FIDRS_NUM_THREADS=1, and for the first mode also with 2 threads (scaling);
- preprocess alone from decoded arrays (`_fidrs.preprocess_arrays`, 1 thread) for each mode: the kernels alone.

A mode is `backbone:mode` (a manifest's preset) or one of the named kinds below that have no manifest in this
tree (CLIP-FID's and CMMD's crops).

Usage: python bench/bench_preprocess.py [--kernels baseline,avx2,avx512] [--before DIR] [--rounds 3]
       [--modes inception:pytorch-fid,dinov2-vitl14:edm2,cmmd,...] [--sets 100,256,1024] [--quick]
`--quick` (validation): 48 files a set, 0.3 s a figure, 1 round.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from bench_jpeg_simd import synthetic_jpegs
from common import DATA, machine

CHUNK = 64
DEFAULT_MODES = [
    "inception:pytorch-fid",
    "inception:clean",
    "inception:tf1",
    "dinov2-vitl14:dgm-eval",
    "dinov2-vitl14:edm2",
    "clip-fid",
    "cmmd",
]
# Kinds without a manifest here: Preprocessing fields, CLIP's mean/std (clean-fid's CLIP_fx, scenic).
CLIP_NORM = {"mean": (0.48145466, 0.4578275, 0.40821073), "std": (0.26862954, 0.26130258, 0.27577711)}
KINDS = {
    "clip-fid": dict(size=224, resize="pil-bicubic-u8", fit="center-crop", unit="after-resize", **CLIP_NORM),
    "cmmd": dict(size=336, resize="pil-bicubic-u8", fit="square-crop", unit="after-resize", **CLIP_NORM),
}
SETS = {"100": "100×100 JPEG (shared fruit)", "256": "256×256 JPEG q90", "1024": "1024×768 JPEG q90"}
# The H200's Inception fp32 ceiling quoted in issue 28 (not measured here: no GPU in this task).
GPU_FP32 = 5_900


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def rate(fn, items: int, min_seconds: float) -> float:
    """Images/s: of process CPU time with one thread (FIDRS_NUM_THREADS=1), of wall time otherwise."""
    clock = time.process_time if os.environ.get("FIDRS_NUM_THREADS") == "1" else time.perf_counter
    fn()  # warm: thread pool, caches, lazily built tables
    done, start, wall = 0, clock(), time.perf_counter()
    while time.perf_counter() - wall < min_seconds:
        fn()
        done += items
    return done / (clock() - start)


def build_preprocessing(mode: str):
    from fidrs import _fidrs
    from fidrs.backbones import preprocessing

    if mode in KINDS:
        return _fidrs.Preprocessing(**KINDS[mode])
    backbone, name = mode.split(":")
    return preprocessing(backbone, name)


def measure(files: list[str], what: str, min_seconds: float) -> float:
    """One figure, in this (fresh) process: images/s."""
    from PIL import Image

    if what == "pillow":
        return rate(lambda: [np.asarray(Image.open(f).convert("RGB")) for f in files], len(files), min_seconds)
    from fidrs import _fidrs

    if what == "decode":
        return rate(lambda: [_fidrs.decode_image(f) for f in files], len(files), min_seconds)
    kind, mode = what.split("|")
    p = build_preprocessing(mode)
    # As the feature pass does: one reused input buffer (`out=`) where the build has it, a new array per
    # chunk in builds from before it.
    reuse = {"out": np.empty((CHUNK, 3, p.size, p.size), np.float32)}
    try:
        _fidrs.load_images(files[:1], p, **reuse)
    except TypeError:
        reuse = {}
    if kind == "load":

        def load():
            for i in range(0, len(files), CHUNK):
                _fidrs.load_images(files[i : i + CHUNK], p, **reuse)

        return rate(load, len(files), min_seconds)
    # kind == "arrays": images of one size only, as one N×H×W×3 array per chunk
    decoded = [_fidrs.decode_image(f) for f in files]
    shape = decoded[0].shape
    chunks = [np.stack([d for d in decoded[i : i + CHUNK] if d.shape == shape]) for i in range(0, len(decoded), CHUNK)]
    count = sum(len(c) for c in chunks)
    return rate(lambda: [_fidrs.preprocess_arrays(c, p, **reuse) for c in chunks], count, min_seconds)


def spawn(listing: Path, what: str, env_extra: dict[str, str], threads: int, min_seconds: float) -> float:
    env = {**os.environ, "FIDRS_NUM_THREADS": str(threads), "OMP_NUM_THREADS": "1", **env_extra}
    args = [sys.executable, __file__, "--measure", what, str(listing), str(min_seconds)]
    out = subprocess.run(args, capture_output=True, text=True, env=env, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def image_sets(tmp: Path, wanted: list[str], count: int) -> dict[str, list[str]]:
    from PIL import Image

    sets = {}
    if "100" in wanted:
        sets[SETS["100"]] = sorted(str(p) for p in DATA.rglob("*.jpg"))[: 640 if count > 48 else count]
    mid = synthetic_jpegs(tmp, min(count, 200), 256) if {"256", "1024"} & set(wanted) else []
    if "256" in wanted:
        sets[SETS["256"]] = mid
    if "1024" in wanted:
        big = []
        for i in range(min(24, count)):
            path = tmp / f"big_{i:02d}.jpg"
            Image.open(mid[i]).resize((1024, 768)).save(path, quality=90)
            big.append(str(path))
        sets[SETS["1024"]] = big
    return sets


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kernels", help="builds to compare, e.g. baseline,avx2,avx512 (FIDRS_KERNELS)")
    parser.add_argument("--before", help="a folder holding the fidrs package to compare with")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--modes", default=",".join(DEFAULT_MODES))
    parser.add_argument("--sets", default="100,256,1024")
    parser.add_argument("--no-load", action="store_true", help="kernels only: skip the decode columns")
    parser.add_argument("--quick", action="store_true", help="validation run: few files, short figures")
    parser.add_argument("--measure", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        what, listing, min_seconds = args.measure
        print(measure(json.loads(Path(listing).read_text()), what, float(min_seconds)))
        return
    rounds, min_seconds, count = (1, 0.3, 48) if args.quick else (args.rounds, 1.5, 640)
    variants: dict[str, dict[str, str]] = {"before": {"PYTHONPATH": args.before}} if args.before else {}
    for build in args.kernels.split(",") if args.kernels else ["now"]:
        variants[build] = {} if build == "now" else {"FIDRS_KERNELS": build}
    modes = args.modes.split(",")
    columns = [] if args.no_load else [("Pillow decode", "pillow", 1, False), ("decode", "decode", 1, True)]
    if not args.no_load:
        columns += [(f"+ {m} (1 thr)", f"load|{m}", 1, True) for m in modes]
        columns += [(f"+ {modes[0]} (2 thr)", f"load|{modes[0]}", 2, True)]
    columns += [(f"preprocess only, {m}", f"arrays|{m}", 1, True) for m in modes]
    print(f"CPU: {cpu_model()}; {machine()}")
    print(f"median of {rounds} rounds, each a fresh process, variants interleaved; images/s per core")
    with tempfile.TemporaryDirectory() as tmp:
        for label, files in image_sets(Path(tmp), args.sets.split(","), count).items():
            listing = Path(tmp) / "files.json"
            listing.write_text(json.dumps(files))
            runs: dict[tuple[str, str], list[float]] = {}
            for _ in range(rounds):
                for name, what, threads, per_variant in columns:
                    for variant, env in variants.items() if per_variant else [(next(iter(variants)), {})]:
                        figure = spawn(listing, what, env, threads, min_seconds)
                        runs.setdefault((name, variant), []).append(figure)
            results = {k: statistics.median(v) for k, v in runs.items()}
            print_set(label, len(files), columns, list(variants), results, modes[0], args.no_load)


def print_set(label: str, count: int, columns, variants: list[str], results, first_mode: str, no_load: bool) -> None:
    print(f"\n### {label} ({count} files)\n")
    compare = len(variants) > 1
    ratio_heads = "".join(f" {v} / {variants[0]} |" for v in variants[1:])
    print("| step | " + " | ".join(variants) + " |" + ratio_heads)
    print("|---|" + "---|" * (2 * len(variants) - 1))
    for name, *_ in columns:
        vals = [results.get((name, v)) for v in variants]
        cells = [f"{v:,.0f}" if v else "" for v in vals]
        ratios = "".join(f" {v / vals[0]:.2f}× |" if compare and v and vals[0] else " |" for v in vals[1:])
        print(f"| {name} | " + " | ".join(cells) + " |" + ratios)
    if no_load:
        return
    best = variants[-1]
    one, two = results[(f"+ {first_mode} (1 thr)", best)], results[(f"+ {first_mode} (2 thr)", best)]
    decode, pillow = results[("decode", best)], results[("Pillow decode", variants[0])]
    print(
        f"\ndecode / Pillow: {100 * decode / pillow:.0f} %; 2 threads / 1 thread: {two / one:.2f}×; "
        f"16 cores would feed ≈ {16 * one:,.0f} images/s in {first_mode} (H200 Inception fp32 ceiling ≈ "
        f"{GPU_FP32:,}/s)"
    )


if __name__ == "__main__":
    main()
