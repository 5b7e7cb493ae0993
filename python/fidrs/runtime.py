"""ONNX Runtime sessions for the FID Inception: CUDA when available, CPU otherwise."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import onnxruntime as ort

_DEVICES = ("auto", "cpu", "cuda")

# Images per network call when the caller does not choose. Features do not depend on it (bit-identical, tested).
# CPU, measured with bench/bench_session_options.py: the rate is flat from 8 to 50 images (15.7-15.9 images/s)
# while ONNX Runtime's activation arena grows with the batch (peak RSS 443 MiB at 8, 676 MiB at 16, 1.7 GiB
# at 50), so 16. A GPU needs large batches to fill it; 200 follows common practice and is not yet measured here.
DEFAULT_BATCH = {"CPUExecutionProvider": 16, "CUDAExecutionProvider": 200}


def _cpu_threads() -> int:
    value = os.environ.get("FIDRS_NUM_THREADS")
    return int(value) if value else (os.cpu_count() or 1)


@dataclass
class InceptionSession:
    session: ort.InferenceSession
    provider: str  # the execution provider that actually runs the graph
    tf32: bool = field(default=False)

    @property
    def default_batch_size(self) -> int:
        return DEFAULT_BATCH.get(self.provider, 16)

    def run(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """pool3 (N×2048) and logits_unbiased (N×1008, the fc layer without bias)."""
        pool3, logits = self.session.run(["pool3", "logits_unbiased"], {"images": images})
        return pool3, logits


def _providers(device: str, allow_tf32: bool) -> list:
    if device not in _DEVICES:
        raise ValueError(f"device must be one of {_DEVICES}, got {device!r}")
    available = ort.get_available_providers()
    if device == "cpu":
        return ["CPUExecutionProvider"]
    if "CUDAExecutionProvider" in available:
        cuda_options = {"use_tf32": "1" if allow_tf32 else "0", "cudnn_conv_algo_search": "EXHAUSTIVE"}
        return [("CUDAExecutionProvider", cuda_options), "CPUExecutionProvider"]
    if device == "cuda":
        raise RuntimeError(
            "device='cuda' was requested but onnxruntime has no CUDAExecutionProvider: "
            "install onnxruntime-gpu (pip install 'fidrs[gpu]') in place of onnxruntime"
        )
    return ["CPUExecutionProvider"]


@lru_cache(maxsize=4)
def get_session(onnx_path: str, device: str = "auto", allow_tf32: bool = False) -> InceptionSession:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = _cpu_threads()
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    session = ort.InferenceSession(onnx_path, sess_options=options, providers=_providers(device, allow_tf32))
    # ORT silently drops a provider it cannot initialise; report what is really in use.
    provider = session.get_providers()[0]
    if device == "cuda" and provider != "CUDAExecutionProvider":
        raise RuntimeError(f"CUDA was requested but ONNX Runtime fell back to {provider}")
    return InceptionSession(session=session, provider=provider, tf32=allow_tf32 and provider.startswith("CUDA"))
