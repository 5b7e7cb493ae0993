"""Decode + preprocess per core, the figures of issue 12: can the host CPUs feed a GPU?

For each image set (the shared 100×100 fruit JPEGs, synthetic 256×256 and 1024×768 q90 JPEGs) and each
build (`--before DIR`: a folder holding an older `fidrs` package, measured in the same run for the ratio),
every figure is the median of 3 rounds in a fresh process, builds alternating:
- Pillow decode alone (`Image.open(f).convert("RGB")`, 1 thread), the yardstick;
- fidrs decode alone (`_fidrs.decode_image`, 1 thread);
- fidrs decode + preprocess to the network input (`_fidrs.load_images` in chunks of 64) for each mode, with
  FIDRS_NUM_THREADS=1, and for pytorch-fid also with 2 threads (scaling);
- preprocess alone from decoded arrays (`_fidrs.preprocess_arrays`, 1 thread).

Usage: python bench/bench_preprocess.py [--before DIR] [--rounds 3]
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
MODES = [
    ("inception", "pytorch-fid"),
    ("inception", "clean"),
    ("inception", "tf1"),
    ("dinov2-vitl14", "dgm-eval"),
]
# The H100's Inception rates quoted in issue 12 (not measured here: no GPU in this task).
H100_FP32, H100_TF32_FACTOR = 5_900, "several times"


def rate(fn, items: int, min_seconds: float = 1.5) -> float:
    fn()  # warm: thread pool, caches, lazily built tables
    done, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < min_seconds:
        fn()
        done += items
    return done / elapsed


def measure(files: list[str], what: str) -> float:
    """One figure, in this (fresh) process: images/s."""
    from PIL import Image

    if what == "pillow":
        return rate(lambda: [np.asarray(Image.open(f).convert("RGB")) for f in files], len(files))
    from fidrs import _fidrs
    from fidrs.backbones import preprocessing

    if what == "decode":
        return rate(lambda: [_fidrs.decode_image(f) for f in files], len(files))
    kind, backbone, mode = what.split(":")
    p = preprocessing(backbone, mode)
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

        return rate(load, len(files))
    # kind == "arrays": images of one size only, as one N×H×W×3 array per chunk
    decoded = [_fidrs.decode_image(f) for f in files]
    shape = decoded[0].shape
    chunks = [np.stack([d for d in decoded[i : i + CHUNK] if d.shape == shape]) for i in range(0, len(decoded), CHUNK)]
    count = sum(len(c) for c in chunks)
    return rate(lambda: [_fidrs.preprocess_arrays(c, p, **reuse) for c in chunks], count)


def spawn(listing: Path, what: str, build: str | None, threads: int) -> float:
    env = {**os.environ, "FIDRS_NUM_THREADS": str(threads), "OMP_NUM_THREADS": "1"}
    if build:
        env["PYTHONPATH"] = build
    args = [sys.executable, __file__, "--measure", what, str(listing)]
    out = subprocess.run(args, capture_output=True, text=True, env=env, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def image_sets(tmp: Path) -> dict[str, list[str]]:
    from PIL import Image

    mid = synthetic_jpegs(tmp, 200, 256)
    big = []
    for i in range(24):
        path = tmp / f"big_{i:02d}.jpg"
        Image.open(mid[i]).resize((1024, 768)).save(path, quality=90)
        big.append(str(path))
    return {
        "100×100 JPEG (shared fruit)": sorted(str(p) for p in DATA.rglob("*.jpg"))[:640],
        "256×256 JPEG q90": mid,
        "1024×768 JPEG q90": big,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--before", help="a folder holding the fidrs package to compare with")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--measure", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        what, listing = args.measure
        print(measure(json.loads(Path(listing).read_text()), what))
        return
    builds = {"now": None} if not args.before else {"before": args.before, "now": None}
    columns = [("Pillow decode", "pillow", 1, False), ("decode", "decode", 1, True)]
    columns += [(f"+ {m} (1 thr)", f"load:{b}:{m}", 1, True) for b, m in MODES]
    columns += [("+ pytorch-fid (2 thr)", "load:inception:pytorch-fid", 2, True)]
    columns += [("preprocess only, pytorch-fid", "arrays:inception:pytorch-fid", 1, True)]
    print(f"machine: {machine()}; median of {args.rounds} rounds, each a fresh process; images/s")
    with tempfile.TemporaryDirectory() as tmp:
        for label, files in image_sets(Path(tmp)).items():
            listing = Path(tmp) / "files.json"
            listing.write_text(json.dumps(files))
            results: dict[tuple[str, str], float] = {}
            for name, what, threads, per_build in columns:
                for build_name, build in builds.items() if per_build else [("now", None)]:
                    runs = [spawn(listing, what, build, threads) for _ in range(args.rounds)]
                    results[(name, build_name)] = statistics.median(runs)
            print_set(label, len(files), columns, builds, results)


def print_set(label: str, count: int, columns, builds, results) -> None:
    print(f"\n### {label} ({count} files)\n")
    compare = "before" in builds
    print("| step | " + " | ".join(builds) + (" | now / before |" if compare else " |"))
    print("|---|" + "---|" * (len(builds) + compare))
    for name, *_ in columns:
        vals = [results.get((name, b)) for b in builds]
        cells = [f"{v:,.0f}" if v else "" for v in vals]
        ratio = f" {vals[-1] / vals[0]:.2f}× |" if compare and vals[0] else (" |" if compare else "")
        print(f"| {name} | " + " | ".join(cells) + " |" + ratio)
    one, two = results[("+ pytorch-fid (1 thr)", "now")], results[("+ pytorch-fid (2 thr)", "now")]
    decode, pillow = results[("decode", "now")], results[("Pillow decode", "now")]
    print(
        f"\ndecode / Pillow: {100 * decode / pillow:.0f} %; 2 threads / 1 thread: {two / one:.2f}×; "
        f"16 cores would feed ≈ {16 * one:,.0f} images/s (H100 Inception fp32 ≈ {H100_FP32:,}/s, "
        f"TF32 {H100_TF32_FACTOR} that)"
    )


if __name__ == "__main__":
    main()
