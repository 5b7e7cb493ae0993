"""End-to-end feature throughput on the shared photos, against fidrs' own bare-network rate.

Usage: python bench/bench_pipeline.py [classes...]     (default: apple_red_1 apple_golden_1)
"""

from __future__ import annotations

import sys
import time
import warnings

import fidrs
import numpy as np
from common import DATA, WEIGHTS, machine, peak_rss_mib
from fidrs import _fidrs
from fidrs.backbones import preprocessing
from fidrs.runtime import get_session
from fidrs.weights import resolve_model


def main() -> None:
    classes = sys.argv[1:] or ["apple_red_1", "apple_golden_1"]
    files = sorted(str(p) for c in classes for p in (DATA / "training" / c).glob("*.jpg"))
    print(f"machine: {machine()}; {len(files)} images ({', '.join(classes)}), batch 50")
    model = resolve_model("inception", str(WEIGHTS))
    session = get_session(str(model.onnx_path), model.backbone)
    print(f"provider: {session.provider}")

    batch, _, _, _ = _fidrs.load_images(files[:50], preprocessing())
    session.run(batch)  # warm-up
    start = time.perf_counter()
    repeats = 4
    for _ in range(repeats):
        session.run(batch)
    bare = repeats * 50 / (time.perf_counter() - start)
    print(f"bare network (ONNX Runtime, preloaded batch of 50): {bare:.1f} images/s")

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fidrs.SmallSampleWarning)
        start = time.perf_counter()
        s = fidrs.stats(files, weights=str(WEIGHTS))
        seconds = time.perf_counter() - start
    rate = s.n / seconds
    print(
        f"end to end (decode + preprocess + network + moments): {rate:.1f} images/s "
        f"= {100 * rate / bare:.0f} % of the bare network; peak RSS {peak_rss_mib():.0f} MiB"
    )
    assert np.isfinite(s.mu).all()


if __name__ == "__main__":
    main()
