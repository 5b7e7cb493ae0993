"""The GPU check's bounds, each with its derivation (the report prints these docstrings).

Notation: u = 2⁻²⁴ (float32 unit round-off); L = reductions (Conv, MatMul, Gemm) on the graph's longest path; K =
its longest reduction; g = the graph's measured error gain (`error_gain`); all three are read from the very graph
and inputs the check runs.
"""

from __future__ import annotations

import math

import numpy as np

U_FP32 = 2.0**-24
U_TF32 = 2.0**-11  # TF32 keeps 10 explicit mantissa bits of each tensor-core input; it accumulates in float32
ALGORITHM_MARGIN = 4.0
FD_ARITHMETIC = 1e-8  # relative: float64 moments and distance; independent exact methods agree to ~7e-9


def fp32_bound(depth: int, longest: int, gain: float) -> float:
    """Per image, ‖f_cuda − f_cpu‖ / ‖f_cpu‖ ≤ 4 · g · √L · √K · u.

    Both providers compute the same float32 graph; only the order and method of summation differ (MLAS on the
    CPU; cuDNN's algorithm picked by EXHAUSTIVE search — implicit GEMM, FFT or Winograd — and cuBLAS on CUDA). A
    dot product of K terms summed in any order errs by ≈ √K · u relative to its result (the probabilistic
    bound: independent round-offs grow as √K, Higham & Mary 2019); the L reductions of the longest path add
    their independent errors in quadrature (√L), and the network carries an error made in a layer to its
    output with gain ≤ g. The factor 4 is the margin for cuDNN's transform-based algorithms (FFT, Winograd),
    which round their transforms too: an estimate, not measured here (no GPU when this was written) — set it
    from the first GPU run's measured errors. TF32 is off in these sessions (`use_tf32=0`)."""
    return ALGORITHM_MARGIN * max(1.0, gain) * math.sqrt(depth) * math.sqrt(longest) * U_FP32


def tf32_estimate(depth: int, gain: float) -> float:
    """Per image, TF32 vs the CPU's float32 ≈ g · √(2L) · 2⁻¹¹ (an expected size, reported, not a pass bound).

    TF32 rounds both operands of every product to 10 mantissa bits (relative error ≤ 2⁻¹¹ each) and accumulates
    in float32: a reduction's result then errs by ≈ √2 · 2⁻¹¹ relative, whatever K (the K independent product
    errors and the result both grow as √K); L reductions add in quadrature."""
    return max(1.0, gain) * math.sqrt(2 * depth) * U_TF32


def fd_bound(features_a: np.ndarray, features_b: np.ndarray, per_image: float | np.ndarray, fd: float) -> float:
    """|FD' − FD| ≤ b (2√FD + b) + 1e-8 · max(1, FD), b = √(n/(n−1)) · (rms_i ‖δa_i‖ + rms_j ‖δb_j‖).

    √FD is the 2-Wasserstein distance W₂ between the Gaussians N(μ, Σ) of the two sets, so the triangle
    inequality bounds how far it moves when the features move: |√FD' − √FD| ≤ W₂(N_a, N_a') + W₂(N_b, N_b').
    By Gelbrich's bound the W₂ of the Gaussians with the moments of two distributions is at most the W₂ of
    the distributions, and pairing each image with itself gives W₂ ≤ rms_i ‖δ_i‖ for the empirical feature
    sets. fidrs' covariances divide by n − 1, which scales the Gaussians' W₂ by at most √(n/(n−1)) (sets of
    equal n). With ‖δ_i‖ ≤ ε‖f_i‖ (the per-image bound ε), rms ‖δ_i‖ ≤ ε · rms ‖f_i‖. The last term is the
    float64 arithmetic of the moments and the distance."""
    n = min(len(features_a), len(features_b))
    scale = math.sqrt(n / (n - 1))
    deltas = []
    for features, bound in ((features_a, per_image), (features_b, per_image)):
        norms = np.linalg.norm(features.astype(np.float64), axis=1) * bound
        deltas.append(math.sqrt(float(np.mean(norms**2))))
    b = scale * sum(deltas)
    return b * (2 * math.sqrt(max(fd, 0.0)) + b) + FD_ARITHMETIC * max(1.0, abs(fd))


def fd_bound_measured(cpu_a, cpu_b, other_a, other_b, fd: float) -> float:
    """The same bound from the measured feature differences (rms ‖δ_i‖ itself): it must hold whatever the
    GPU computed, so a violation means the Fréchet distance's own arithmetic is off, not the network."""
    n = min(len(cpu_a), len(cpu_b))
    scale = math.sqrt(n / (n - 1))
    b = scale * sum(
        math.sqrt(float(np.mean(np.sum((o.astype(np.float64) - c.astype(np.float64)) ** 2, axis=1))))
        for c, o in ((cpu_a, other_a), (cpu_b, other_b))
    )
    return b * (2 * math.sqrt(max(fd, 0.0)) + b) + FD_ARITHMETIC * max(1.0, abs(fd))


def relative_errors(reference: np.ndarray, other: np.ndarray) -> np.ndarray:
    """Per image ‖other − reference‖ / ‖reference‖, in float64."""
    r, o = reference.astype(np.float64), other.astype(np.float64)
    return np.linalg.norm(o - r, axis=1) / np.maximum(np.linalg.norm(r, axis=1), np.finfo(np.float64).tiny)
