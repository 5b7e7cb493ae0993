"""Write tiny seed images of every supported format for the fuzzer (needs Pillow)."""

import sys
from pathlib import Path

import numpy as np
from PIL import Image

out = Path(__file__).parent / "corpus" / "decode_preprocess"
out.mkdir(parents=True, exist_ok=True)
rgb = Image.fromarray(np.random.default_rng(0).integers(0, 256, (6, 5, 3), dtype=np.uint8))
seeds = {
    "rgb.png": (rgb, {}),
    "rgba.png": (rgb.convert("RGBA"), {}),
    "p.png": (rgb.quantize(8), {}),
    "l16.png": (Image.fromarray(np.arange(30, dtype=np.uint16).reshape(6, 5) * 2000), {}),
    "rgb.jpg": (rgb, {"quality": 80}),
    "gray.jpg": (rgb.convert("L"), {}),
    "progressive.jpg": (rgb, {"progressive": True}),
    "cmyk.jpg": (rgb.convert("CMYK"), {}),
    "rgb.gif": (rgb, {}),
    "rgb.bmp": (rgb, {}),
    "rgb.tiff": (rgb, {}),
    "rgb.webp": (rgb, {"lossless": True}),
}
for name, (image, kwargs) in seeds.items():
    image.save(out / name, **kwargs)
# And every variant of the differential corpus (tests/pillow_corpus.py): each format's rare layouts.
sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
from pillow_corpus import corpus  # noqa: E402

variants = [v for v in corpus() if len(v.data) <= 1 << 16]
for v in variants:
    (out / v.name.replace("/", "__")).write_bytes(v.data)
print(f"wrote {len(seeds) + len(variants)} seeds to {out}")
