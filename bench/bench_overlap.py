"""Does decoding keep up with a network much faster than this CPU's? The feature pass with a stand-in network.

The network is replaced by a stand-in that takes `batch / RATE` seconds per batch without using the CPU (it
sleeps, as a host thread waiting on a GPU does) and returns zeros. The pass then runs at
min(RATE, decode + preprocess rate with N threads) if decoding overlaps the network fully; the figure is the
measured rate against that bound, for N = 1 and 2 threads (FIDRS_NUM_THREADS) and several RATEs.
The decode-only rate is measured first in the same process (`_fidrs.load_images`, batch by batch).

Usage: python bench/bench_overlap.py [--images 1200] [--batch 100]
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

RATES = [500.0, 1000.0, 2000.0, 4000.0, float("inf")]


class StandInSession:
    """What FeaturePass needs of a NetworkSession; `run` waits batch/rate seconds off the CPU."""

    provider = "stand-in"
    default_batch_size = 100

    def __init__(self, rate: float, dims: tuple[int, ...]) -> None:
        self.rate, self.dims = rate, dims

    def output_dims(self) -> tuple[int, ...]:
        return self.dims

    def run(self, images: np.ndarray) -> tuple[np.ndarray, ...]:
        if self.rate != float("inf"):
            time.sleep(len(images) / self.rate)
        return tuple(np.zeros((len(images), d), np.float32) for d in self.dims)


def measure(files: list[str], batch: int) -> dict:
    from fidrs import Options, _fidrs, feature_pass
    from fidrs.backbones import get, preprocessing
    from fidrs.feature_pass import PassReport
    from fidrs.sources import ImageFiles
    from fidrs.weights import ResolvedModel

    p = preprocessing()
    out = np.empty((batch, 3, p.size, p.size), np.float32)
    _fidrs.load_images(files[:batch], p, out=out)

    def decode_alone() -> float:
        start = time.perf_counter()
        for i in range(0, len(files), batch):
            _fidrs.load_images(files[i : i + batch], p, out=out)
        return len(files) / (time.perf_counter() - start)

    backbone = get()
    dims = tuple(o.dim for o in backbone.outputs)
    model = ResolvedModel(backbone, Path("stand-in"), "0" * 64, Path("stand-in.onnx"), "1" * 64)

    def feature_pass_rate(fp: feature_pass.FeaturePass) -> float:
        start = time.perf_counter()
        n = sum(len(idx) for idx, _ in fp.iter_batches(ImageFiles(files), PassReport()))
        return n / (time.perf_counter() - start)

    # This machine is shared: decode alone and the pass run back to back, 3 times, and the medians are kept.
    results = {}
    decode = []
    for rate in RATES:
        feature_pass.get_session = lambda *a, rate=rate, **k: StandInSession(rate, dims)
        options = Options(batch_size=batch, cache=False, progress=False).resolve()
        fp = feature_pass.FeaturePass(options, model=model)
        feature_pass_rate(fp)  # warm: the pass's input buffers are faulted in once, as in any long run
        runs = []
        for _ in range(3):
            decode.append(decode_alone())
            runs.append(feature_pass_rate(fp))
        results[str(rate)] = statistics.median(runs)
    results["decode"] = statistics.median(decode)
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=1200)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--measure", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        listing, batch = args.measure
        print(json.dumps(measure(json.loads(Path(listing).read_text()), int(batch))))
        return
    print(f"machine: {machine()}; batch {args.batch}; images/s; bound = min(network, decode with N threads)")
    with tempfile.TemporaryDirectory() as tmp:
        fruit = sorted(str(p) for p in DATA.rglob("*.jpg"))[: args.images]
        # 200 distinct 256² files, listed over and over up to --images (the page cache holds them all anyway)
        mid = synthetic_jpegs(Path(tmp), 200, 256)
        mid = (mid * (args.images // len(mid) + 1))[: args.images]
        for label, files in (("100×100 JPEG", fruit), ("256×256 JPEG", mid)):
            listing = Path(tmp) / "files.json"
            listing.write_text(json.dumps(files))
            print(f"\n### {label} ({len(files)} files), pytorch-fid preprocessing\n")
            print("| threads | decode alone | " + " | ".join(f"network {r:,.0f}/s" for r in RATES) + " |")
            print("|---|---|" + "---|" * len(RATES))
            for threads in (1, 2):
                env = {**os.environ, "FIDRS_NUM_THREADS": str(threads), "OMP_NUM_THREADS": "1"}
                cmd = [sys.executable, __file__, "--measure", str(listing), str(args.batch)]
                r = json.loads(subprocess.run(cmd, capture_output=True, text=True, env=env, check=True).stdout)
                cells = []
                for rate in RATES:
                    bound = min(rate, r["decode"])
                    cells.append(f"{r[str(rate)]:,.0f} ({100 * r[str(rate)] / bound:.0f} %)")
                print(f"| {threads} | {r['decode']:,.0f} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
