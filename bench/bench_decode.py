"""Decoding: pixel mismatches against Pillow over every shared JPEG, and decode throughput.

Usage: python bench/bench_decode.py
"""

from __future__ import annotations

import time

import numpy as np
from common import DATA, machine
from fidrs import _fidrs
from fidrs.backbones import preprocessing
from PIL import Image


def main() -> None:
    files = sorted(str(p) for p in DATA.rglob("*.jpg"))
    mismatched_pixels = mismatched_files = total_pixels = 0
    for f in files:
        ours = _fidrs.decode_image(f)
        with Image.open(f) as im:
            theirs = np.asarray(im.convert("RGB"))
        diff = np.any(ours != theirs, axis=-1)
        mismatched_pixels += int(diff.sum())
        mismatched_files += int(diff.any())
        total_pixels += diff.size
    print(f"machine: {machine()}")
    print(f"JPEGs compared with Pillow: {len(files)}, pixels: {total_pixels}")
    print(f"mismatched pixels: {mismatched_pixels}, files with a mismatch: {mismatched_files}")

    start = time.perf_counter()
    for f in files:
        with Image.open(f) as im:
            np.asarray(im.convert("RGB"))
    pillow = time.perf_counter() - start
    start = time.perf_counter()
    _fidrs.load_images(files, preprocessing())  # decode + pytorch-fid preprocessing to 299², in parallel
    ours = time.perf_counter() - start
    print(f"Pillow decode only (1 thread): {len(files) / pillow:,.0f} images/s")
    threads = _fidrs.num_threads()
    print(f"fidrs decode + resize to 299x299 (rayon, {threads} threads): {len(files) / ours:,.0f} images/s")


if __name__ == "__main__":
    main()
