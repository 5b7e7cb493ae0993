"""stdout carries the result and nothing else, whatever a dependency prints.

Ray writes to the driver's stdout on its own: its error listener thread prints every `(raylet) …` message (a
worker that died, a node marked dead) to `sys.stdout` whatever `log_to_driver` says; log forwarding and the
autoscaler's events go there when they are on; C++ code and the processes a local `ray.init()` starts (GCS,
raylet, dashboard) inherit file descriptor 1. So for the length of a command, `results_only_on_stdout` points
fd 1 and `sys.stdout` at stderr: none of that can reach stdout, and a child process that outlives the command
does not hold the reader's pipe open either. The result alone goes to the real stdout, through `print_result`,
which writes to a copy of fd 1 taken on entry (there is no moment at which fd 1 is the real stdout again while
other threads run)."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass
class _RealStdout:
    fd: int  # a copy of fd 1 as it was on entry
    encoding: str
    errors: str


_active: _RealStdout | None = None


@contextlib.contextmanager
def results_only_on_stdout(enabled: bool = True) -> Iterator[None]:
    """Within: fd 1 and `sys.stdout` write to stderr, `print_result` to the real stdout. Restored on exit.
    Does nothing when not `enabled`, when already active, or when this process has no fd 1."""
    global _active
    if not enabled or _active is not None:
        yield
        return
    original = sys.stdout
    if original is not None:
        original.flush()
    try:
        saved = os.dup(1)  # not inheritable (PEP 446): no child process gets the real stdout
    except OSError:  # fd 1 is closed: there is no stdout to protect
        yield
        return
    try:
        os.dup2(2, 1)
    except OSError:  # fd 2 is closed: what would have gone to stderr goes nowhere
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.close(devnull)
    _active = _RealStdout(
        saved, getattr(original, "encoding", None) or "utf-8", getattr(original, "errors", None) or "strict"
    )
    sys.stdout = sys.stderr  # Python-level prints land on stderr in order with the messages written there
    try:
        yield
    finally:
        sys.stdout = original
        with contextlib.suppress(Exception):  # what code holding the old object wrote went to fd 1: stderr
            if original is not None:
                original.flush()
        _active = None
        os.dup2(saved, 1)
        os.close(saved)


def print_result(text: str) -> None:
    """`print(text)` onto the real stdout: within `results_only_on_stdout`, the only way there. A write that
    fails (stdout full or closed) is an OSError saying so; BrokenPipeError (the reader went away) stays one."""
    try:
        _write_result(text)
    except BrokenPipeError:
        raise
    except OSError as e:
        raise OSError(e.errno, f"cannot write the result to stdout: {e.strerror or e}") from None


def _write_result(text: str) -> None:
    if _active is None:
        print(text)
        return
    data = memoryview((text + "\n").encode(_active.encoding, _active.errors))
    while data:
        data = data[os.write(_active.fd, data) :]  # BrokenPipeError when the reader went away, as print raises
