"""One fidrs run, launched by bench_vs_pytorch_fid.py, reporting when the first batch left the network.

Usage: driver_fidrs.py score DIR_A DIR_B WEIGHTS [--cache] | stats DIR WEIGHTS | bare WEIGHTS
Prints one line: BENCH_RESULT {json}.
"""

from __future__ import annotations

import json
import sys
import time
import warnings

import fidrs
from fidrs import runtime
from first_batch import first_batch, time_first_call

time_first_call(runtime.NetworkSession, "run")


def score(dir_a: str, dir_b: str, weights: str, cache: bool) -> dict:
    details = fidrs.score_details(dir_a, dir_b, weights=weights, cache=cache)
    return {key: details[key] for key in ("fid", "n_a", "n_b", "provider", "cache_hits")}


def stats(directory: str, weights: str) -> dict:
    s = fidrs.stats(directory, weights=weights, cache=False)
    return {"n": s.n}


def bare(weights: str, repeats: int = 4) -> dict:
    """The ONNX Runtime session alone on a preloaded 299×299 batch (no decoding)."""
    import numpy as np
    from fidrs.weights import resolve_model

    model = resolve_model("inception", weights)
    session = runtime.get_session(str(model.onnx_path), model.backbone.output_names)
    batch = session.default_batch_size
    x = np.random.default_rng(0).random((batch, 3, 299, 299), dtype=np.float32) * 2 - 1
    session.run(x)  # warm-up
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        session.run(x)
        rates.append(batch / (time.perf_counter() - start))
    rates.sort()
    return {"bare_images_per_s": rates[len(rates) // 2], "provider": session.provider}


if __name__ == "__main__":
    command, args = sys.argv[1], sys.argv[2:]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fidrs.SmallSampleWarning)
        if command == "score":
            result = score(args[0], args[1], args[2], cache="--cache" in args)
        elif command == "stats":
            result = stats(args[0], args[1])
        else:
            result = bare(args[0])
    result.update(
        **first_batch(),
        fidrs=fidrs.__version__,
    )
    print("BENCH_RESULT " + json.dumps(result), flush=True)
