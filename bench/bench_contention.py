"""Two feature processes on the same cores, ONNX Runtime's intra-op threads spinning or asleep between operators.

Runs the DINOv2 ViT-S/14 and the Inception (the shared random checkpoints, preloaded random batches, 2 intra-op
threads each) at the same time, `--rounds` times per setting, interleaved, and once each alone; prints each
process's images/s. fidrs' sessions keep ONNX Runtime's default (spinning): asleep, two processes sharing the
cores each ran 8–19 % faster, but one alone ran ViT-S/14 ~20 % slower (docs/BENCHMARKS.md, "Stop 38").

    python bench/bench_contention.py --rounds 2 --calls 6
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

from common import SHARED, WEIGHTS, machine

DINOV2 = SHARED / "conformance" / "dinov2" / "random_dinov2_vits14.pth"
BATCH = 16


def worker(network: str, spin: str, calls: int) -> None:
    import numpy as np
    import onnxruntime as ort
    from fidrs.backbones.inception_graph import build_fid_inception
    from fidrs.backbones.vit_graph import build_dinov2
    from fidrs.checkpoint import load_state_dict

    if network == "vit-s14":
        model, side = build_dinov2(load_state_dict(DINOV2)), 224
    else:
        model, side = build_fid_inception(load_state_dict(WEIGHTS)), 299
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads, options.inter_op_num_threads, options.log_severity_level = 2, 1, 3
    options.add_session_config_entry("session.intra_op.allow_spinning", spin)
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    images = np.random.default_rng(0).standard_normal((BATCH, 3, side, side)).astype(np.float32)
    session.run(None, {"images": images})  # warm-up
    start = time.perf_counter()
    for _ in range(calls):
        session.run(None, {"images": images})
    print(f"{calls * BATCH / (time.perf_counter() - start):.2f}", flush=True)


def run(networks: list[str], spin: str, calls: int) -> list[str]:
    procs = [
        subprocess.Popen([sys.executable, __file__, "--worker", n, spin, str(calls)], stdout=subprocess.PIPE, text=True)
        for n in networks
    ]
    return [p.communicate()[0].strip() for p in procs]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--calls", type=int, default=6, help=f"session runs of {BATCH} images per process")
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker[0], args.worker[1], int(args.worker[2]))
        return
    print(f"machine: {machine()}; images/s per process, batch {BATCH}, {args.calls} calls")
    print("| setting | spinning | ViT-S/14 | Inception |\n|---|---|---|---|")
    for _ in range(args.rounds):
        for spin in ("1", "0"):
            vit, inception = run(["vit-s14", "inception"], spin, args.calls)
            print(f"| both at once | {'on' if spin == '1' else 'off'} | {vit} | {inception} |", flush=True)
    for spin in ("1", "0"):
        (vit,), (inception,) = run(["vit-s14"], spin, args.calls), run(["inception"], spin, args.calls)
        print(f"| alone | {'on' if spin == '1' else 'off'} | {vit} | {inception} |", flush=True)


if __name__ == "__main__":
    main()
