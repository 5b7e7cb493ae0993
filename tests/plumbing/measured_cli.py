"""The `fidrs` command in a fresh interpreter with its own peak memory: `cli_measured(tmp_path, *argv)` returns
(its CompletedProcess, seconds, peak RSS in bytes).

The command runs as the child of a bare launcher interpreter (~10 MB), which reaps it with wait4 for its own
resource usage. A child started from pytest itself would not do: its ru_maxrss counts the RSS it inherits at fork,
however large the test process has grown (~1 GB after other test modules). A watchdog kills a hang."""

from __future__ import annotations

import os
import subprocess
import sys
import time

_LAUNCH = """
import os, subprocess, sys, threading
with open(sys.argv[1], "w") as o, open(sys.argv[2], "w") as e:
    proc = subprocess.Popen(sys.argv[3:], stdout=o, stderr=e)
watchdog = threading.Timer(120, proc.kill)
watchdog.start()
_, status, usage = os.wait4(proc.pid, 0)
watchdog.cancel()
proc.returncode = os.waitstatus_to_exitcode(status)
print(proc.returncode, usage.ru_maxrss * (1 if sys.platform == "darwin" else 1024))
"""


def cli_measured(tmp_path, *args: str) -> tuple[subprocess.CompletedProcess, float, int]:
    """`fidrs ARGS` (without RUST_BACKTRACE, as a user's shell has it): (CompletedProcess, seconds, peak bytes)."""
    out, err = tmp_path / "stdout", tmp_path / "stderr"
    env = {k: v for k, v in os.environ.items() if k != "RUST_BACKTRACE"}
    command = [sys.executable, "-c", _LAUNCH, str(out), str(err), sys.executable, "-m", "fidrs.cli", *args]
    started = time.perf_counter()
    launcher = subprocess.run(command, capture_output=True, text=True, env=env, timeout=180)
    seconds = time.perf_counter() - started
    assert launcher.returncode == 0, launcher.stderr
    code, peak = (int(v) for v in launcher.stdout.split())
    return subprocess.CompletedProcess(args, code, out.read_text(), err.read_text()), seconds, peak
