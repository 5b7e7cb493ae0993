"""The native module's boundary: no Rust panic reaches Python as PanicException, and FIDRS_NUM_THREADS is read
once with one rule (a whole number from 1 to 4 × the CPUs this process may use)."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import run_cli
from fidrs import _fidrs


@pytest.mark.parametrize("where", ["binding", "worker", "pool"])
def test_a_panic_anywhere_in_a_binding_is_internal_error(where):
    # Panic in the binding body, on the thread that runs without the GIL, and inside a rayon task under it.
    with pytest.raises(_fidrs.InternalError, match="deliberate panic") as caught:
        _fidrs._panic_for_tests(where)
    assert isinstance(caught.value, _fidrs.FidrsError) and isinstance(caught.value, Exception)
    assert type(caught.value).__module__ == "fidrs._fidrs" and type(caught.value).__name__ == "InternalError"
    # The module still works afterwards (the pool survived the panic in one of its tasks).
    moments = _fidrs.Moments(3)
    moments.update(np.eye(3, dtype=np.float32))
    assert moments.n == 3


def _threads_in_child(value: str) -> subprocess.CompletedProcess:
    code = (
        "import fidrs._fidrs as f\n"
        "for name in ('configured_threads', 'num_threads'):\n"
        "    try:\n"
        "        print(name, getattr(f, name)())\n"
        "    except f.InvalidInputError as e:\n"
        "        print(name, 'InvalidInputError', e)\n"
    )
    env = {**os.environ, "FIDRS_NUM_THREADS": value}
    # 60 s: an import that spawns 100,000 threads used to hang here; a healthy child takes well under 5 s.
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)


def test_thread_counts_within_the_bound_are_used():
    cpus = len(os.sched_getaffinity(0))
    limit = _fidrs.MAX_THREADS_PER_CPU * cpus
    for value, expected in (("1", 1), (str(limit), limit), (f" {cpus} ", cpus), ("", cpus)):
        out = _threads_in_child(value)
        assert out.returncode == 0, out.stderr
        assert out.stdout.split("\n")[:2] == [f"configured_threads {expected}", f"num_threads {expected}"], value


@pytest.mark.parametrize("value", ["0", "100000", "99999999999999999999", "-2", "2.5", "abc", "1e3"])
def test_thread_counts_outside_the_rule_are_refused_naming_the_variable_and_the_bound(value):
    cpus = len(os.sched_getaffinity(0))
    limit = _fidrs.MAX_THREADS_PER_CPU * cpus
    out = _threads_in_child(value)
    assert out.returncode == 0, out.stderr  # importing never fails or hangs; using the count does
    for line in out.stdout.strip().split("\n"):
        assert "InvalidInputError" in line and "FIDRS_NUM_THREADS" in line, line
        assert f"from 1 to {limit}" in line and f"'{value}'" in line, line


@pytest.mark.parametrize("value", ["100000", "99999999999999999999", "0"])
def test_the_cli_refuses_a_bad_thread_count_with_exit_2(tmp_path, value):
    """Two .npz files and a thread count beyond the bound: exit 2 naming the variable, never a hang or exit 1."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((20, 4))
    np.savez(tmp_path / "a.npz", mu=x.mean(0), sigma=np.cov(x, rowvar=False))
    out = run_cli(
        "score", str(tmp_path / "a.npz"), str(tmp_path / "a.npz"), env={"FIDRS_NUM_THREADS": value}, timeout=120
    )
    assert out.returncode == 2, (out.returncode, out.stderr)
    assert "FIDRS_NUM_THREADS" in out.stderr and out.stdout == ""
