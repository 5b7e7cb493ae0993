"""A feature file's width is bounded (fidrs.feature_sets.MAX_FEATURE_WIDTH): statistics of d-wide rows hold a d×d
float64 covariance whatever the number of rows, so a 144 KB file of 3 × 12,000 features made fidrs allocate
gigabytes (an 8,000-wide one: 2 GB, exit 0 after 7 s), and an 8 MB one of 2 × 1,000,000 made the Rust core panic
on an 8 TB allocation (exit 3, "a bug in fidrs", a backtrace). Both readers of feature files refuse a wider one
from its header, before any allocation of its width squared: the reference reader (`score`'s `.npy` / `.npz`
features, clean-fid's KID `feats`) and the embedding-file reader (`.npy` inputs of kid, cmmd, pr, memorization,
fid-confidence). Each refusal is InvalidInputError (CLI exit 2) naming the file, the width and the bound, in one
line."""

from __future__ import annotations

import contextlib
import os
import time
import tracemalloc

import fidrs
import numpy as np
import pytest
from conftest import run_cli
from fidrs import _fidrs
from fidrs.backbones import manifest
from fidrs.embedding_files import load_embeddings
from fidrs.errors import InvalidInputError
from fidrs.feature_sets import MAX_FEATURE_WIDTH
from fidrs.references import read_reference
from fidrs.references.arrays import MAX_STATS_MEMBER_BYTES, LazyArray
from fidrs.references.features import mean_and_covariance
from measured_cli import cli_measured

# A refusal reads the file's header and nothing of its width squared: in process it takes milliseconds (measured
# ≤ 0.06 s), where an unfixed (3, 8000) file spent 7 s (2 cores) folding and factorising an 8000×8000 covariance.
# 5 s leaves a loaded shared runner room. A fresh interpreter adds ~0.5 s of start and imports: 20 s for the CLI.
API_SECONDS = 5.0
CLI_SECONDS = 20.0
# Memory is the sharper witness: the files are at most 8 MB, an interpreter with fidrs imported peaks near 40 MB,
# and one 12,000×12,000 float64 covariance is 1.1 GB (an unfixed 8,000-wide command peaked at 2 GB).
API_PEAK_BYTES = 64 << 20  # numpy's and Python's allocations, through tracemalloc
CLI_PEAK_BYTES = 256 << 20  # the whole process (ru_maxrss): the Rust core's allocations count too

WIDE = {  # name: (shape, how it is written)
    "wide12000.npy": ((3, 12_000), "npy"),  # 144 KB
    "wide1e6.npy": ((2, 1_000_000), "npy"),  # 8 MB
    "wide12000_f64.npy": ((3, 12_000), "npy64"),  # the float64 path, summed in numpy
    "wide_kid.npz": ((2, 1_000_000), "kid"),  # clean-fid's KID features
    "wide_pool3.npz": ((3, 12_000), "pool3"),  # TF-GAN pool_3 activations in an .npz
}


def _write(folder, name: str, shape=None, how: str = "npy", seed: int = 0) -> str:
    shape, how = WIDE[name] if shape is None else (shape, how)
    rows = np.random.default_rng(seed).standard_normal(shape)
    path = str(folder / name)
    if how == "npy64":
        np.save(path, rows)
    elif how == "npy":
        np.save(path, rows.astype(np.float32))
    else:
        np.savez(path, **{"feats" if how == "kid" else "pool_3": rows.astype(np.float32)})
    return path


@pytest.fixture()
def normal(tmp_path):
    """Two feature files of a real width (Inception's pool3 is 2048; 64 keeps the test fast)."""
    return _write(tmp_path, "a.npy", (40, 64)), _write(tmp_path, "b.npy", (40, 64), seed=1)


def _assert_refused(stderr: str, name: str, width: int) -> None:
    assert name in stderr, stderr
    assert f"{width} wide" in stderr and f"limit of {MAX_FEATURE_WIDTH}" in stderr, stderr
    assert "Traceback" not in stderr and "panicked" not in stderr and "internal error" not in stderr, stderr


def _cli_measured(tmp_path, *args: str):
    """(exit code, stdout, stderr, seconds, peak RSS in bytes) of `fidrs ARGS` in a fresh interpreter."""
    out, seconds, peak = cli_measured(tmp_path, *args)
    return out.returncode, out.stdout, out.stderr, seconds, peak


@pytest.mark.skipif(not hasattr(os, "wait4"), reason="os.wait4 (a child's own peak memory) is POSIX")
@pytest.mark.parametrize(
    "command, name, wide_first",
    [
        ("score", "wide12000.npy", True),
        ("score", "wide1e6.npy", False),
        ("score", "wide12000_f64.npy", True),
        ("score", "wide_kid.npz", True),
        ("score", "wide_pool3.npz", False),
        ("kid", "wide12000.npy", True),
        ("kid", "wide1e6.npy", False),
        ("fid-confidence", "wide1e6.npy", True),
    ],
)
def test_cli_refuses_a_wide_feature_file(tmp_path, normal, command, name, wide_first):
    wide = _write(tmp_path, name)
    args = (wide, normal[0]) if wide_first else (normal[0], wide)
    code, stdout, stderr, seconds, peak = _cli_measured(tmp_path, command, *args)
    assert code == 2, (code, stderr)
    _assert_refused(stderr, name, WIDE[name][0][1])
    assert stdout == ""
    assert len([line for line in stderr.splitlines() if line.startswith("fidrs: error:")]) == 1, stderr
    assert seconds < CLI_SECONDS, seconds
    assert peak < CLI_PEAK_BYTES, f"peak RSS {peak >> 20} MiB"


@pytest.mark.parametrize("name", ["wide12000.npy", "wide1e6.npy", "wide12000_f64.npy", "wide_kid.npz"])
@pytest.mark.parametrize("api", ["score", "kid", "cmmd"])
def test_api_refuses_a_wide_feature_file(tmp_path, normal, name, api):
    wide = _write(tmp_path, name)
    width = WIDE[name][0][1]
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.warns(fidrs.UnknownModeWarning) if api != "score" else contextlib.nullcontext():
            with pytest.raises(InvalidInputError) as refused:
                getattr(fidrs, api)(normal[0], wide)
        seconds = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    message = str(refused.value)
    _assert_refused(message, name, width)
    assert "\n" not in message
    assert seconds < API_SECONDS, seconds
    assert peak < API_PEAK_BYTES, f"peak {peak >> 20} MiB"  # kid and cmmd's read_regular set its whole 16 GiB
    # cap aside before reading (f.read(cap + 1)): it reads one byte past the file's size now


def test_both_readers_take_the_bound_and_refuse_one_more(tmp_path, monkeypatch):
    """The rule at its edge, with the bound patched to 64 (the real one's covariance is 1 GiB: the next test checks
    that number); both readers look the bound up when they read."""
    monkeypatch.setattr(fidrs.feature_sets, "MAX_FEATURE_WIDTH", 64)
    at = _write(tmp_path, "at.npy", (3, 64))
    over = _write(tmp_path, "over.npy", (3, 65))
    assert mean_and_covariance(LazyArray.open(at, None, kinds="f"))[1].shape == (64, 64)
    with pytest.warns(fidrs.UnknownModeWarning):  # no provenance file beside it
        assert load_embeddings(at).features.shape == (3, 64)
    with pytest.raises(InvalidInputError, match="over.npy: features 65 wide, over fidrs' limit of 64"):
        mean_and_covariance(LazyArray.open(over, None, kinds="f"))
    with pytest.raises(InvalidInputError, match="over.npy: features 65 wide, over fidrs' limit of 64"):
        load_embeddings(over)


def test_the_bound_is_the_widest_covariance_a_statistics_file_holds():
    """Statistics of any accepted feature file can be saved and read back: its covariance fits the statistics
    reader's member cap, and one more feature would not."""
    assert MAX_FEATURE_WIDTH**2 * 8 <= MAX_STATS_MEMBER_BYTES < (MAX_FEATURE_WIDTH + 1) ** 2 * 8


def test_the_bound_holds_every_backbone_with_room():
    packaged = max(o.dim for name in manifest.names() for o in manifest.outputs(manifest.manifest(name)))
    assert packaged == 2048  # Inception pool3
    assert 4 * packaged <= MAX_FEATURE_WIDTH
    registered = max(o.dim for name in fidrs.backbones.names() for o in fidrs.backbones.get(name).outputs)
    assert registered <= MAX_FEATURE_WIDTH  # the test backbones too


def test_feature_files_of_a_normal_width_still_work(tmp_path, normal):
    a, b = normal
    expected = fidrs.score(a, b)
    assert read_reference(a).entries["unknown"].mu.shape == (64,)
    cli = run_cli("score", a, b, timeout=120)
    assert cli.returncode == 0, cli.stderr
    assert float(cli.stdout) == pytest.approx(expected, rel=1e-6)
    kid = _write(tmp_path, "ok_kid.npz", (40, 64), "kid")
    assert fidrs.score(kid, b) > 0
    with pytest.warns(fidrs.UnknownModeWarning):
        assert np.isfinite(fidrs.cmmd(a, b).value)
    with pytest.warns(fidrs.UnknownModeWarning):
        assert fidrs.kid(a, b, subset_size=10).provenance.dim == 64
    cli = run_cli("kid", a, b, "--subset-size", "10", timeout=120)
    assert cli.returncode == 0, cli.stderr


def test_a_backbone_with_an_output_over_the_bound_is_not_registered():
    """The same bound for features computed in process: a registered backbone's statistics would hold the width
    squared (fidrs.Moments refuses it too, before allocating)."""
    import dataclasses

    import tiny_backbone

    tiny = tiny_backbone.backbone()
    wide = dataclasses.replace(
        tiny,
        name="tiny-too-wide",
        aliases=(),
        outputs=tuple(dataclasses.replace(o, dim=_fidrs.MAX_FEATURE_WIDTH + 1) for o in tiny.outputs),
    )
    with pytest.raises(InvalidInputError, match=f"is {_fidrs.MAX_FEATURE_WIDTH + 1} wide, over fidrs' limit"):
        fidrs.register_backbone(wide)
    assert "tiny-too-wide" not in fidrs.backbones.names()
    at_bound = dataclasses.replace(
        wide,
        name="tiny-at-the-bound",
        outputs=tuple(dataclasses.replace(o, dim=_fidrs.MAX_FEATURE_WIDTH) for o in tiny.outputs),
    )
    try:
        fidrs.register_backbone(at_bound)
    finally:
        fidrs.backbones.unregister_backbone("tiny-at-the-bound")


@pytest.mark.parametrize("dim", [_fidrs.MAX_FEATURE_WIDTH + 1, 10**9, 2**32 + 1])
def test_moments_wider_than_the_bound_are_refused_before_any_allocation(dim):
    """Moments(2**32 + 1) aborted the whole process (its length-d sum's allocation failed); Moments(10**9) was
    a panic reported as "a bug in fidrs"."""
    with pytest.raises(InvalidInputError, match=f"moments of {dim} features: over the widest fidrs keeps"):
        fidrs._fidrs.Moments(dim)


def test_the_python_bound_is_the_cores():
    assert MAX_FEATURE_WIDTH == _fidrs.MAX_FEATURE_WIDTH
