"""Class 4 of the hardening issue: memory stays bounded on bombs. Every GIF frame's size is checked before
anything is allocated, files and zip members are read under a size cap derived from the pixel limit, and the
decoders' memory is one budget for the whole process, not one per thread."""

from __future__ import annotations

import io
import os
import struct
import subprocess
import sys
import time
import zipfile

import fidrs
import numpy as np
import pytest
from cli_in_process import run_cli_here
from conftest import run_cli, write_images
from fidrs import _fidrs
from fidrs.backbones import preprocessing
from PIL import Image


def _gif(screen: tuple[int, int], frame: tuple[int, int]) -> bytes:
    """A GIF whose first frame claims `frame` pixels on a `screen`-sized logical screen (one LZW clear/end)."""
    header = b"GIF89a" + struct.pack("<HHBBB", *screen, 0, 0, 0)
    descriptor = b"\x2c" + struct.pack("<HHHHB", 0, 0, *frame, 0x80) + b"\0\0\0\xff\xff\xff"
    return header + descriptor + b"\x02\x02\x44\x01\x00" + b"\x3b"


def test_gif_frame_far_larger_than_its_screen_is_refused_before_allocation():
    _batch, ok, failures, _ = _fidrs.load_encoded([_gif((10, 10), (16000, 16000))], preprocessing())
    assert ok == [] and "too large: 16000x16000" in failures[0][1]


def test_gif_frame_leaving_its_screen_gets_pillows_verdict(tmp_path):
    """Pillow grows the canvas to hold a frame that leaves the screen; this frame's LZW data (one pixel) cannot
    fill its 100×100, so Pillow refuses the file as truncated, and so does fidrs (never a cropped image)."""
    path = tmp_path / "leaves.gif"
    path.write_bytes(_gif((10, 10), (100, 100)))
    with pytest.raises(OSError, match="truncated"):
        with Image.open(path) as im:
            im.convert("RGB")
    _batch, ok, failures, _ = _fidrs.load_encoded([path.read_bytes()], preprocessing())
    assert ok == [] and "truncated" in failures[0][1]


def test_oversized_zip_member_is_refused_before_it_is_inflated(tmp_path, tiny, capsys):
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name in ("a.png", "b.png"):
            b = io.BytesIO()
            Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(b, "PNG")
            z.writestr(name, b.getvalue())
        z.writestr("big.png", b"\0" * (40 << 20))  # 40 MiB of zeros: a 40 KB entry
    assert archive.stat().st_size < 200_000
    cap = _fidrs.max_file_bytes(1000)
    out = run_cli_here(
        capsys, "score", str(archive), str(archive), "--backbone", "tiny", "--weights", tiny[1], "--max-pixels", "1000"
    )
    assert out.returncode == 2
    assert f"{archive}:big.png: zip member of {40 << 20} bytes exceeds the limit of {cap} bytes" in out.stderr


def test_oversized_file_is_refused_before_it_is_read(tmp_path):
    big = tmp_path / "big.png"
    with open(big, "wb") as f:
        f.truncate(40 << 20)  # sparse: costs no disk
    with pytest.raises(fidrs.DecodeError, match="exceeds the limit"):
        _fidrs.decode_image(str(big), max_pixels=1000)


_MEASURE = r"""
import glob, sys
from fidrs import _fidrs
from fidrs.backbones import preprocessing
blobs = [open(p, "rb").read() for p in sorted(glob.glob(sys.argv[1] + "/*.png"))]
def status_kib(field):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field))
# Reset the peak mark (VmHWM) to the current RSS: getrusage's maximum would include the parent's RSS
# inherited at fork.
open("/proc/self/clear_refs", "w").write("5")
before = status_kib("VmRSS")
_batch, ok, failures, _ = _fidrs.load_encoded(blobs, preprocessing(), max_pixels=int(sys.argv[2]))
assert len(ok) == len(blobs), failures
print(status_kib("VmHWM") - before)
"""


def test_decoder_memory_is_one_budget_for_all_threads(tmp_path):
    """Eight 3000×3000 PNGs (30 KB each) decoded by 8 threads under a pixel limit of 9 M: the budget for one
    such image (27 bytes a pixel + 32 MiB = 275 MiB) lets about one decode run at a time; measured peak 70 MB.
    With a budget large enough for all eight at once the same run peaks at 425 MB, over it."""
    folder = tmp_path / "big"
    folder.mkdir()
    for i in range(8):
        Image.new("RGB", (3000, 3000), (i, 2 * i, 3 * i)).save(folder / f"{i}.png")
    max_pixels = 3000 * 3000
    budget_kib = (max_pixels * 27 + (32 << 20)) // 1024
    # A fixed mmap threshold makes glibc return large freed buffers at once, so RSS follows live memory
    # rather than what each thread's malloc arena keeps after its own peak.
    env = {**os.environ, "FIDRS_NUM_THREADS": "8", "MALLOC_MMAP_THRESHOLD_": "131072"}
    out = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(folder), str(max_pixels)], capture_output=True, text=True, env=env
    )
    assert out.returncode == 0, out.stderr
    peak_kib = int(out.stdout)
    assert peak_kib <= budget_kib, f"peak {peak_kib} KiB over the budget {budget_kib} KiB"


@pytest.mark.parametrize(("backbone", "name"), [("inception", "big.pth"), ("dinov2-vits14", "big.safetensors")])
def test_a_huge_checkpoint_is_refused_by_its_size_before_it_is_read(tmp_path, backbone, name):
    """A 100 GB sparse file: refused from its size (the backbone's cap) within seconds, never hashed or read."""
    images = write_images(tmp_path / "imgs", 3)
    big = tmp_path / name
    with open(big, "wb") as f:
        f.truncate(100 << 30)
    start = time.monotonic()
    out = run_cli("score", str(images), str(images), "--backbone", backbone, "--weights", str(big), timeout=60)
    assert out.returncode == 2, out.stderr
    assert f"{big}: 107374182400 bytes, more than" in out.stderr
    assert time.monotonic() - start < 30  # hashing 100 GB would take minutes
