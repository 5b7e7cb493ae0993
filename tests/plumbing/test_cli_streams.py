"""The command's exit code tells the truth whatever its standard streams are: stderr closed or full drops the
messages, never the result or the code; a result that cannot be written to stdout is exit 2, never 0; the
process ends by `entry`'s fast exit only after the exit-time handlers ran and with no other thread alive."""

from __future__ import annotations

import shlex
import subprocess
import sys
import textwrap

import numpy as np
import pytest

COMMAND = f"{shlex.quote(sys.executable)} -m fidrs.cli"


def _sh(line: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(["sh", "-c", line], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def pair(tmp_path_factory) -> tuple[str, str, float]:
    """Two pytorch-fid statistics files (d = 6) and their FID, computed here in closed form: diagonal
    covariances commute, so tr √(Σ₁Σ₂) = Σ √(a_i b_i)."""
    folder = tmp_path_factory.mktemp("streams")
    a, b = np.arange(1.0, 7.0), np.arange(2.0, 8.0)
    mu_a, mu_b = np.zeros(6), np.full(6, 0.5)
    np.savez(folder / "a.npz", mu=mu_a, sigma=np.diag(a))
    np.savez(folder / "b.npz", mu=mu_b, sigma=np.diag(b))
    fid = float(np.sum((mu_a - mu_b) ** 2) + a.sum() + b.sum() - 2 * np.sqrt(a * b).sum())
    return str(folder / "a.npz"), str(folder / "b.npz"), fid


def test_a_closed_stderr_changes_nothing_but_the_messages(pair):
    a, b, fid = pair
    out = _sh(f"{COMMAND} score {a} {b} --max-fid {fid * 2} 2>&-")
    assert out.returncode == 0
    # Printed with 6 decimals: within 5e-7 of the closed form (the distance itself is exact to ~1e-15 here).
    assert abs(float(out.stdout.strip()) - fid) <= 5e-7, out.stdout  # the number alone: no traceback on stdout


@pytest.mark.parametrize(("threshold", "code"), [(2.0, 0), (0.5, 1)])
def test_a_full_stderr_keeps_the_gate_s_verdict(pair, threshold, code):
    a, b, fid = pair
    out = _sh(f"{COMMAND} score {a} {b} --max-fid {fid * threshold} 2>/dev/full")
    assert out.returncode == code


def test_a_full_stderr_keeps_bad_input_at_exit_2(pair, tmp_path):
    a, _, _ = pair
    out = _sh(f"{COMMAND} score {a} {tmp_path / 'missing.npz'} 2>/dev/full")
    assert out.returncode == 2


@pytest.mark.parametrize("redirect", [">/dev/full", ">&-"])
def test_a_result_that_cannot_be_written_is_exit_2(pair, redirect):
    a, b, _ = pair
    out = _sh(f"{COMMAND} score {a} {b} --json {redirect}")
    assert out.returncode == 2
    assert "fidrs: error:" in out.stderr and "stdout" in out.stderr and "Traceback" not in out.stderr


def test_the_version_to_a_full_stdout_is_exit_2_and_to_a_gone_reader_141():
    full = _sh(f"{COMMAND} --version >/dev/full")
    assert full.returncode == 2 and "No space left" in full.stderr and "Traceback" not in full.stderr
    gone = subprocess.Popen(
        [sys.executable, "-m", "fidrs.cli", "--version"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    gone.stdout.close()  # the reader went away before the version was written
    _, err = gone.communicate(timeout=60)
    assert gone.returncode == 141 and err == b""


def _entry_script(body: str) -> str:
    return textwrap.dedent(body) + "\nfrom fidrs.cli import entry\nsys.argv = ['fidrs', '--version']\nentry()\n"


def test_the_fast_exit_runs_the_exit_handlers_and_flushes():
    script = _entry_script("""
        import atexit, sys
        atexit.register(lambda: print("exit handler ran", file=sys.stderr))
        print("buffered line", end="")  # still in stdout's buffer when the command ends
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0
    assert out.stdout.startswith("buffered linefidrs ") and "exit handler ran" in out.stderr


def test_the_exit_waits_for_a_thread_still_running(tmp_path):
    marker = tmp_path / "written-late"
    script = _entry_script(f"""
        import sys, threading, time
        def late():
            time.sleep(0.3)
            open({str(marker)!r}, "w").close()
        threading.Thread(target=late).start()  # not a daemon: Python's exit waits for it, and so must fidrs'
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert marker.exists()
