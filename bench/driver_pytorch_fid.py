"""One pytorch-fid run, launched by bench_vs_pytorch_fid.py inside the torch venv (never imports fidrs).

Runs pytorch-fid's own `calculate_fid_given_paths` with the device and worker count its command line
picks by default, and reports when the first batch of features left the network.

Usage: driver_pytorch_fid.py score DIR_A DIR_B | bare
Prints one line: BENCH_RESULT {json}. TORCH_HOME must hold the checkpoint under the real file's name.
"""

from __future__ import annotations

import json
import os
import sys
import time

import torch
from first_batch import first_batch, time_first_call
from pytorch_fid import fid_score, inception

time_first_call(inception.InceptionV3, "forward")


def default_workers() -> int:
    """pytorch-fid's command-line default: min(usable CPUs, 8)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:
        cpus = os.cpu_count() or 0
    return min(cpus, 8)


def score(dir_a: str, dir_b: str) -> dict:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    workers = default_workers()
    result = {"device": str(device), "num_workers": workers}
    try:
        result["fid"] = float(fid_score.calculate_fid_given_paths([dir_a, dir_b], 50, device, 2048, workers))
    except ValueError as error:
        # pytorch-fid refuses to answer when sqrtm leaves a large imaginary part (singular covariances, n < 2048).
        # All of the work has been done by then, so the run still counts for time and memory.
        if "Imaginary component" not in str(error):
            raise
        result.update(fid=None, error=f"ValueError: {error}")
    return result


def bare(repeats: int = 4, batch: int = 50) -> dict:
    """The network alone on a preloaded 299×299 batch (no decoding), as pytorch-fid calls it."""
    model = inception.InceptionV3([inception.InceptionV3.BLOCK_INDEX_BY_DIM[2048]]).eval()
    x = torch.rand(batch, 3, 299, 299)
    with torch.no_grad():
        model(x)  # warm-up
        rates = []
        for _ in range(repeats):
            start = time.perf_counter()
            model(x)
            rates.append(batch / (time.perf_counter() - start))
    rates.sort()
    return {"bare_images_per_s": rates[len(rates) // 2]}


if __name__ == "__main__":
    result = score(sys.argv[2], sys.argv[3]) if sys.argv[1] == "score" else bare()
    result.update(
        **first_batch(),
        torch=torch.__version__,
        torch_threads=torch.get_num_threads(),
    )
    print("BENCH_RESULT " + json.dumps(result), flush=True)
