"""A deterministic synthetic image set: 256×256 RGB PNGs, image i depends only on i.

Each image is a smooth random colour field (an 8×8 grid upsampled bicubically) with a few filled shapes and
mild noise, so PNG sizes and decode costs resemble generated samples rather than flat colour or pure noise.

Usage: python bench/synthetic.py OUT_DIR COUNT
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

SIZE = 256


def synthetic_image(index: int) -> Image.Image:
    rng = np.random.default_rng(index)
    grid = Image.fromarray((rng.random((8, 8, 3)) * 255).astype(np.uint8))
    image = grid.resize((SIZE, SIZE), Image.BICUBIC)
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(2, 6))):
        x0, y0 = (int(v) for v in rng.integers(0, SIZE - 32, 2))
        x1, y1 = x0 + int(rng.integers(16, 128)), y0 + int(rng.integers(16, 128))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)((x0, y0, x1, y1), fill=colour)
    pixels = np.asarray(image, dtype=np.int16) + rng.integers(-4, 5, (SIZE, SIZE, 3), dtype=np.int16)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def write_synthetic_set(out_dir: Path, count: int) -> list[Path]:
    """Write images 0..count-1 as out_dir/img_NNNNN.png (existing files are kept); return the paths in order."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"img_{i:05d}.png" for i in range(count)]
    for i, path in enumerate(paths):
        if not path.exists():
            tmp = path.with_suffix(".tmp")
            synthetic_image(i).save(tmp, format="PNG")
            tmp.rename(path)
    return paths


if __name__ == "__main__":
    write_synthetic_set(Path(sys.argv[1]), int(sys.argv[2]))
