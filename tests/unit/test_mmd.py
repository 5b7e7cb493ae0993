"""The MMD estimator of CMMD (Gaussian RBF kernel, biased, σ = 10, × 1000) in the Rust core, against the formula
written out in float64 with NumPy, on synthetic and on real CLIP embeddings; its one-pass bootstrap."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import CONFORMANCE
from fidrs import _fidrs


def _embeddings(n: int, d: int, seed: int, shift: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((n, d)) + shift).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)  # L2-normalised, as CMMD's CLIP embeddings are


def reference_mmd(x, y, sigma=10.0, wx=None, wy=None) -> float:
    """The biased estimator term by term in float64: ‖a − b‖² from exact float64 differences of the float32
    embeddings, the kernel minus one by expm1 (so the three means, all near 1, do not cancel), weighted means."""
    x, y = x.astype(np.float64), y.astype(np.float64)
    wx = np.ones(len(x)) if wx is None else np.asarray(wx, np.float64)
    wy = np.ones(len(y)) if wy is None else np.asarray(wy, np.float64)

    def mean(p, q, wp, wq):
        distances = ((p[:, None, :] - q[None, :, :]) ** 2).sum(-1)
        return wp @ np.expm1(-distances / (2 * sigma**2)) @ wq / (wp.sum() * wq.sum())

    return mean(x, x, wx, wx) + mean(y, y, wy, wy) - 2 * mean(x, y, wx, wy)


# Tolerance of the Rust estimator against the reference: each kernel entry's k − 1 is within ~1e-15 absolute
# (‖a − b‖² carries d·u ≈ 1e-13 of rounding at d = 768, times 1/(2σ²) = 1/200, plus exp's 2 ulp), so MMD² is
# within 4e-15 absolute, 4e-11 relative at MMD² ~ 1e-4; the NumPy reference is as exact. 1e-9 relative leaves
# headroom and is 10⁴ times tighter than CMMD's acceptance (1e-5).
RTOL = 1e-9


@pytest.mark.parametrize("n,m,d", [(1, 1, 4), (7, 300, 64), (256, 257, 32), (513, 90, 16)])
def test_mmd_equals_the_float64_formula(n, m, d):
    """Sizes around the 256-row block: partial, diagonal and off-diagonal blocks all occur."""
    x, y = _embeddings(n, d, 1), _embeddings(m, d, 2, shift=0.05)
    want = 1000 * reference_mmd(x, y)
    got = _fidrs.mmd(x, y)
    assert got == pytest.approx(want, rel=RTOL, abs=1e-14)
    # σ and the scale are parameters: the defaults are CMMD's.
    assert (_fidrs.CMMD_SIGMA, _fidrs.CMMD_SCALE) == (10.0, 1000.0)
    assert _fidrs.mmd(x, y, sigma=0.7, scale=1.0) == pytest.approx(reference_mmd(x, y, sigma=0.7), rel=RTOL)


def test_cmmd_of_real_clip_embeddings_equals_the_float64_reference():
    """The official CMMD embeddings (cmmd-pytorch's, 1.8e-7 from google-research's): the first 32 of apple_red_1
    against the first 32 of apple_golden_1, whose float64 CMMD the conformance generator recorded."""
    path = CONFORMANCE / "clip" / "features_cmmd.npz"
    if not path.is_file():
        pytest.skip(f"shared conformance data not found at {path}")
    data = np.load(path)
    files = [str(f) for f in data["files"]]

    def first(folder: str, n: int = 32) -> np.ndarray:
        rows = [i for i, f in enumerate(files) if f.startswith(folder + "/")][:n]
        return np.ascontiguousarray(data["features"][rows], dtype=np.float32)

    red, golden = first("training/apple_red_1"), first("training/apple_golden_1")
    reference = json.loads((CONFORMANCE / "clip" / "reference.json").read_text())["sensitivity"]["cmmd"]
    assert reference["n_per_side"] == 32
    got = _fidrs.mmd(red, golden)
    assert got == pytest.approx(1000 * reference_mmd(red, golden), rel=RTOL)
    # The generator's float64 value: its direct float64 sums of 32² kernel values near 1 carry ~1e-13 each,
    # ~1e-9 absolute in CMMD units (× 1000): 1e-8 relative at 0.19.
    assert got == pytest.approx(reference["cmmd_float64_red1_vs_golden1"], rel=1e-8)


def test_bootstrap_is_the_weighted_estimator_of_each_resample():
    rng = np.random.default_rng(5)
    x, y = _embeddings(300, 24, 3), _embeddings(280, 24, 4, shift=0.1)
    rounds = 4
    cx = np.stack([np.bincount(rng.integers(0, len(x), len(x)), minlength=len(x)) for _ in range(rounds)])
    cy = np.stack([np.bincount(rng.integers(0, len(y), len(y)), minlength=len(y)) for _ in range(rounds)])
    value, values = _fidrs.mmd_bootstrap(x, y, cx, cy)
    assert value == _fidrs.mmd(x, y)  # the same blocks, the same order: the same bits
    assert values.shape == (rounds,) and values.dtype == np.float64
    for b in range(rounds):
        want = 1000 * reference_mmd(x, y, wx=cx[b], wy=cy[b])
        assert values[b] == pytest.approx(want, rel=RTOL)
        # A multiset with repeated rows is the same as its rows repeated: the estimator of the resample.
        repeated = 1000 * reference_mmd(np.repeat(x, cx[b], axis=0), np.repeat(y, cy[b], axis=0))
        assert values[b] == pytest.approx(repeated, rel=RTOL)
    assert len(set(values.tolist())) == rounds  # the resamples differ


def test_the_value_does_not_depend_on_the_number_of_threads():
    code = (
        "import numpy as np, fidrs._fidrs as f\n"
        "r = np.random.default_rng(0)\n"
        "x = r.standard_normal((700, 48)).astype(np.float32)\n"
        "y = r.standard_normal((650, 48)).astype(np.float32) + 0.1\n"
        "c = np.ones((2, 700), np.int64); d = np.ones((2, 650), np.int64); c[1, :10] = 3\n"
        "v, b = f.mmd_bootstrap(x, y, c, d, sigma=8.0)\n"
        "print(repr(f.mmd(x, y, sigma=8.0)), repr(v), repr(b.tolist()))\n"
    )
    outputs = {
        threads: subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "FIDRS_NUM_THREADS": threads},
        ).stdout
        for threads in ("1", "2", "8")
    }
    assert len(set(outputs.values())) == 1, outputs


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda x, y: _fidrs.mmd(x, y[:, :5]), "differ in dimension: 6 and 5"),
        (lambda x, y: _fidrs.mmd(x[:0], y), "non-empty"),
        (lambda x, y: _fidrs.mmd(x, y, sigma=0.0), "sigma must be a positive number"),
        (lambda x, y: _fidrs.mmd(x, y, sigma=float("nan")), "sigma must be a positive number"),
        (lambda x, y: _fidrs.mmd(x, y, scale=float("inf")), "scale must be a finite number"),
        (lambda x, y: _fidrs.mmd_bootstrap(x, y, -np.ones((1, 10), np.int64), np.ones((1, 9), np.int64)), "x_counts"),
        (lambda x, y: _fidrs.mmd_bootstrap(x, y, np.ones((1, 9), np.int64), np.ones((1, 9), np.int64)), "B×10"),
        (lambda x, y: _fidrs.mmd_bootstrap(x, y, np.ones((2, 10), np.int64), np.ones((1, 9), np.int64)), "different"),
        (lambda x, y: _fidrs.mmd_bootstrap(x, y, np.zeros((1, 10), np.int64), np.ones((1, 9), np.int64)), "selects no"),
    ],
)
def test_inputs_that_cannot_work_are_refused(call, message):
    x, y = _embeddings(10, 6, 6), _embeddings(9, 6, 7)
    with pytest.raises(_fidrs.InvalidInputError, match=message):
        call(x, y)


def test_non_finite_embeddings_are_refused_by_position():
    x, y = _embeddings(10, 6, 8), _embeddings(9, 6, 9)
    y[4, 2] = np.nan
    with pytest.raises(_fidrs.InvalidInputError, match=r"y\[4, 2\] is not finite \(NaN\)"):
        _fidrs.mmd(x, y)


def test_ctrl_c_stops_a_long_mmd():
    """30,000 × 30,000 × 256 takes ten seconds or more; SIGINT after the work started ends it within a second or so
    (the blocks check for cancellation), with KeyboardInterrupt."""
    code = (
        "import numpy as np, sys, fidrs._fidrs as f\n"
        "x = np.ones((30000, 256), np.float32)\n"
        "print('started', flush=True)\n"
        "try:\n"
        "    f.mmd(x, x)\n"
        "    print('finished')\n"
        "except KeyboardInterrupt:\n"
        "    print('interrupted')\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "started"
    time.sleep(1.0)
    sent = time.monotonic()
    child.send_signal(signal.SIGINT)
    out, _ = child.communicate(timeout=60)
    assert out.strip() == "interrupted" and time.monotonic() - sent < 10
