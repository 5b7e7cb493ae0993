"""ONNX Runtime CPU session options, measured: memory arena, memory pattern and batch size.

Each configuration runs in its own process (peak RSS is per process), on a preloaded batch, for a fixed time.

Usage: python bench/bench_session_options.py [seconds per configuration, default 12]
"""

from __future__ import annotations

import subprocess
import sys
import time

from common import WEIGHTS, machine

CONFIGS = [  # (arena, memory pattern, batch)
    (True, True, 50),
    (False, True, 50),
    (False, False, 50),
    (True, True, 8),
    (True, True, 16),
    (True, True, 32),
    (False, False, 16),
]


def child(arena: bool, pattern: bool, batch: int, seconds: float) -> None:
    import resource

    import numpy as np
    import onnxruntime as ort
    from fidrs.runtime import _cpu_threads
    from fidrs.weights import resolve_model

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = _cpu_threads()
    options.inter_op_num_threads = 1
    options.enable_cpu_mem_arena = arena
    options.enable_mem_pattern = pattern
    session = ort.InferenceSession(
        str(resolve_model("inception", str(WEIGHTS)).onnx_path), options, providers=["CPUExecutionProvider"]
    )
    x = np.random.default_rng(0).random((batch, 3, 299, 299), dtype=np.float32)
    session.run(["pool3"], {"images": x})  # warm-up
    start, done = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        session.run(["pool3"], {"images": x})
        done += batch
    rate = done / (time.perf_counter() - start)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"arena {'on ' if arena else 'off'}  pattern {'on ' if pattern else 'off'}  batch {batch:3d}: "
        f"{rate:5.2f} images/s, peak RSS {rss:5.0f} MiB",
        flush=True,
    )


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2] == "1", sys.argv[3] == "1", int(sys.argv[4]), float(sys.argv[5]))
        return
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 12.0
    print(f"machine: {machine()}; {seconds:.0f} s per configuration")
    for arena, pattern, batch in CONFIGS:
        subprocess.run(
            [sys.executable, __file__, "--child", str(int(arena)), str(int(pattern)), str(batch), str(seconds)],
            check=True,
        )


if __name__ == "__main__":
    main()
