"""The `fidrs` command run in this process (`fidrs.cli.main(argv)`), with what a user's terminal would show: the
exit code, stdout and stderr. Warnings are printed on stderr as the CLI formats them (`fidrs: warning: …`), as
in a fresh interpreter, rather than recorded by pytest; the logging handler and warning format that `main`
installs are removed afterwards, so one test's calls never print into another's output.

    out = run_cli_here(capsys, "score", a, b, "--backbone", "tiny", "--weights", checkpoint, "--json")
    assert out.returncode == 0 and json.loads(out.stdout)["n_a"] == 3

`deadline_s` bounds a call that could hang (a FIFO, a device): past it, faulthandler prints every thread's
traceback and ends the test run, rather than waiting forever. Tests of the process itself (signals, a closed
pipe, no ONNX Runtime, `--version`) still start a subprocess."""

from __future__ import annotations

import logging
import sys
import warnings
from dataclasses import dataclass


@dataclass(frozen=True)
class Result:
    returncode: int
    stdout: str
    stderr: str


def _print_warning(message, category, filename, lineno, file=None, line=None):
    sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


def run_cli_here(capsys, *argv: str, deadline_s: float | None = None) -> Result:
    import faulthandler

    from fidrs.cli import main

    capsys.readouterr()  # what the test printed before is not the command's output
    log = logging.getLogger("fidrs")
    handlers, level, propagate = list(log.handlers), log.level, log.propagate
    formatwarning = warnings.formatwarning
    if deadline_s is not None:
        faulthandler.dump_traceback_later(deadline_s, exit=True, file=sys.__stderr__)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _print_warning
            try:
                code = main(list(argv))
            except SystemExit as e:  # argparse's usage errors
                code = e.code if isinstance(e.code, int) else 2
    finally:
        if deadline_s is not None:
            faulthandler.cancel_dump_traceback_later()
        log.handlers[:] = handlers
        log.setLevel(level)
        log.propagate = propagate
        warnings.formatwarning = formatwarning
    out = capsys.readouterr()
    return Result(code, out.out, out.err)
