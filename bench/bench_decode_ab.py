"""Decode speed of two builds of fidrs' decoders, interleaved in one process (A, B, A, B, …) so that load
from other work on the machine hits both alike. Prints milliseconds per image and the ratio B/A per format.

Usage: python bench/bench_decode_ab.py OLD.so NEW.so [--rounds 7]
    e.g. python bench/bench_decode_ab.py /work/main/python/fidrs/_fidrs.abi3.so python/fidrs/_fidrs.abi3.so

The images are the shared photos (JPEG as stored, and re-encoded by Pillow as PNG, lossless WebP, BMP,
TIFF and GIF), the formats' common paths.
"""

from __future__ import annotations

import argparse
import importlib.machinery
import importlib.util
import io
import tempfile
import time
from pathlib import Path

from common import DATA, machine
from PIL import Image


def load_build(path: str, name: str):
    loader = importlib.machinery.ExtensionFileLoader(f"{name}._fidrs", path)
    spec = importlib.util.spec_from_loader(f"{name}._fidrs", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def encodings(folder: Path, count: int) -> dict[str, list[str]]:
    photos = sorted(DATA.rglob("*.jpg"))[::37][:count]
    out: dict[str, list[str]] = {"jpeg": [str(p) for p in photos]}
    for fmt, ext, kw in [
        ("PNG", "png", {}),
        ("WEBP", "webp", {"lossless": True}),
        ("WEBP", "lossy.webp", {"quality": 80}),
        ("BMP", "bmp", {}),
        ("TIFF", "tif", {"compression": "tiff_lzw"}),
        ("GIF", "gif", {}),
    ]:
        paths = []
        for i, p in enumerate(photos):
            with Image.open(p) as im:
                buf = io.BytesIO()
                im.convert("RGB").save(buf, fmt, **kw)
            target = folder / f"{i}.{ext}"
            target.write_bytes(buf.getvalue())
            paths.append(str(target))
        out[ext] = paths
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("old")
    parser.add_argument("new")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--images", type=int, default=60)
    args = parser.parse_args()
    builds = {"A": load_build(args.old, "build_a"), "B": load_build(args.new, "build_b")}
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory() as d:
        sets = encodings(Path(d), args.images)
        print(f"{'format':>10} {'A ms/img':>9} {'B ms/img':>9} {'B/A':>6}")
        for fmt, paths in sets.items():
            best = {"A": float("inf"), "B": float("inf")}
            for _ in range(args.rounds):
                for key, build in builds.items():
                    start = time.perf_counter()
                    for p in paths:
                        build.decode_image(p)
                    best[key] = min(best[key], time.perf_counter() - start)
            a, b = (best[k] * 1000 / len(paths) for k in "AB")
            print(f"{fmt:>10} {a:9.3f} {b:9.3f} {b / a:6.3f}")


if __name__ == "__main__":
    main()
