"""JPEG decoding with and without libjpeg-turbo's SIMD code, per core, against Pillow, in the same run.

Each build is imported in its own process (`--build-dir DIR` puts a fidrs with its native module first on
sys.path), alternating with Pillow, 3 rounds; the figure is the median images/s of single-threaded
`_fidrs.decode_image` over the files, and pixels are compared with Pillow's on every file.

Usage: python bench/bench_jpeg_simd.py --scalar DIR --simd DIR   (DIR: a folder holding a `fidrs` package)
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
from common import DATA, machine


def synthetic_jpegs(folder: Path, count: int, size: int) -> list[str]:
    from PIL import Image

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size]
    files = []
    for i in range(count):
        # Smooth gradients plus noise: photo-like, so the entropy decoder and the IDCT both have work.
        base = (np.sin(xx / (7 + i % 5)) + np.cos(yy / (11 + i % 3))) * 60 + 128
        img = np.clip(base[..., None] + rng.normal(0, 12, (size, size, 3)), 0, 255).astype(np.uint8)
        path = folder / f"{size}_{i:03d}.jpg"
        Image.fromarray(img).save(path, quality=90)
        files.append(str(path))
    return files


def measure(files: list[str], which: str) -> dict:
    os.environ["FIDRS_NUM_THREADS"] = "1"
    from PIL import Image

    if which == "pillow":
        decode = lambda f: np.asarray(Image.open(f).convert("RGB"))  # noqa: E731
        simd = "libjpeg-turbo (Pillow's)"
    else:
        from fidrs import _fidrs

        decode = _fidrs.decode_image
        simd = _fidrs.JPEG_SIMD if hasattr(_fidrs, "JPEG_SIMD") else "no (built before JPEG_SIMD existed)"
        mismatches = sum(int(np.any(decode(f) != np.asarray(Image.open(f).convert("RGB")))) for f in files)
    for f in files[:20]:
        decode(f)  # warm
    start = time.perf_counter()
    for f in files:
        decode(f)
    rate = len(files) / (time.perf_counter() - start)
    out = {"rate": rate, "simd": simd}
    if which != "pillow":
        out["files_differing_from_pillow"] = mismatches
    return out


def spawn(files_json: str, which: str, build: str | None) -> dict:
    env = {**os.environ, "PYTHONPATH": build or ""}
    args = [sys.executable, __file__, "--measure", which, files_json]
    out = subprocess.run(args, capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scalar", required=False)
    parser.add_argument("--simd", required=False)
    parser.add_argument("--measure", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        which, files_json = args.measure
        print(json.dumps(measure(json.loads(Path(files_json).read_text()), which)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        sets = {
            "shared fruit 100×100": sorted(str(p) for p in DATA.rglob("*.jpg"))[:1500],
            "256×256 q90": synthetic_jpegs(Path(tmp), 300, 256),
            "1024×768 q90": [],
        }
        from PIL import Image

        big = []
        for i in range(40):
            src = Image.open(sets["256×256 q90"][i]).resize((1024, 768))
            path = Path(tmp) / f"big_{i:02d}.jpg"
            src.save(path, quality=90)
            big.append(str(path))
        sets["1024×768 q90"] = big
        print(f"machine: {machine()}; one thread; median of 3 rounds, builds and Pillow alternating")
        print("| images | Pillow | fidrs scalar | fidrs SIMD | SIMD / scalar | SIMD / Pillow | files ≠ Pillow (SIMD) |")
        print("|---|---|---|---|---|---|---|")
        for label, files in sets.items():
            listing = Path(tmp) / "files.json"
            listing.write_text(json.dumps(files))
            rounds: dict[str, list[float]] = {"pillow": [], "scalar": [], "simd": []}
            last = {}
            for _ in range(3):
                for which, build in (("pillow", None), ("scalar", args.scalar), ("simd", args.simd)):
                    r = spawn(str(listing), "pillow" if which == "pillow" else "fidrs", build)
                    rounds[which].append(r["rate"])
                    last[which] = r
            med = {k: statistics.median(v) for k, v in rounds.items()}
            print(
                f"| {label} ({len(files)}) | {med['pillow']:,.0f}/s | {med['scalar']:,.0f}/s | {med['simd']:,.0f}/s | "
                f"{med['simd'] / med['scalar']:.2f}× | {100 * med['simd'] / med['pillow']:.0f} % | "
                f"{last['simd']['files_differing_from_pillow']} |"
            )
        print(f"builds: scalar = {last['scalar']['simd']}; SIMD = {last['simd']['simd']}")


if __name__ == "__main__":
    main()
