"""stdout carries the result alone on a cluster run, whatever else prints: Python code in the main thread or
another one (as Ray's error listener does), native code writing to fd 1, and child processes that inherit it.
Each test runs a fresh interpreter so that the real file descriptors are the ones checked."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

# Everything a dependency might do to reach stdout, from inside the guard.
NOISE = """
import os, subprocess, sys, threading
print("noise: main thread print")
t = threading.Thread(target=lambda: print("noise: thread print", flush=True))
t.start(); t.join()
os.write(1, b"noise: fd 1 write\\n")
subprocess.run(["sh", "-c", "echo noise: child process"], check=True)
stdout_before = sys.__stdout__  # code holding the original object (Ray's sinks bind it at import)
stdout_before.write("noise: original sys.stdout object\\n")
"""


def _run(script: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True, timeout=60)


def test_only_the_result_reaches_stdout_and_the_rest_goes_to_stderr():
    out = _run(
        "from fidrs.cli.stdout_guard import print_result, results_only_on_stdout\n"
        "with results_only_on_stdout():\n" + textwrap.indent(NOISE, "    ") + "    print_result('RESULT ü')\n"
        "print('after the guard: stdout again')\n"
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout == "RESULT ü\nafter the guard: stdout again\n"
    for line in ("main thread print", "thread print", "fd 1 write", "child process", "original sys.stdout object"):
        assert f"noise: {line}" in out.stderr, out.stderr


def test_the_noise_reaches_stdout_without_the_guard():
    """The control: each kind of noise above does reach stdout when nothing guards it."""
    out = _run(
        "from fidrs.cli.stdout_guard import print_result, results_only_on_stdout\n"
        "with results_only_on_stdout(enabled=False):\n"
        + textwrap.indent(NOISE, "    ")
        + "    print_result('RESULT')\n"
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("noise: ") == 5 and out.stdout.endswith("RESULT\n"), out.stdout


def test_cli_on_ray_prints_one_json_object_whatever_the_cluster_prints():
    """The CLI's wiring, without a cluster: the cluster computation is replaced by one that prints on every
    channel above; stdout must still be the JSON object alone (the real cluster test is in test_distributed.py)."""
    script = (
        "import sys\n"
        "import fidrs.distributed\n"
        "def noisy_score_details(a, b, **options):\n"
        + textwrap.indent(NOISE, "    ")
        + "    return {'fid': 1.5, 'ray': {'retried': []}}\n"
        "fidrs.distributed.score_details = noisy_score_details\n"
        "from fidrs import cli\n"
        "sys.exit(cli.main(['score', 'a', 'b', '--json', '--ray', '127.0.0.1:1']))\n"
    )
    out = _run(script)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"fid": 1.5, "ray": {"retried": []}}  # all of stdout is one JSON object
    assert out.stderr.count("noise: ") == 5, out.stderr


def test_result_to_a_closed_pipe_is_exit_141_without_traceback():
    script = """
    import sys
    import fidrs.distributed
    fidrs.distributed.score_details = lambda a, b, **o: {"fid": 1.5}
    from fidrs import cli
    sys.exit(cli.main(["score", "a", "b", "--ray", "127.0.0.1:1"]))
    """
    reader = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    reader.stdout.close()  # the reader goes away before the result is written
    _, stderr = reader.communicate(timeout=60)
    assert reader.returncode == 141 and "Traceback" not in stderr, stderr
