"""The command's standard streams, whatever state it is started with. stderr carries messages only: one that
cannot be written (stderr closed, a full disk, a reader gone) is dropped, and never becomes an exception that
changes the exit code (a passing gate exited 1 when its stderr was /dev/full). stdout carries the result: a
closed stdout (`>&-`) is an error when a result is written (exit 2), not a result written nowhere with exit 0;
`finish` flushes it and turns a failed write into that error too."""

from __future__ import annotations

import contextlib
import errno
import io
import sys
from collections.abc import Iterator

from fidrs.errors import EXIT_BAD_INPUT, EXIT_BROKEN_PIPE


class _Messages(io.TextIOBase):
    """stderr, best effort: writes that fail are dropped (and so is every later one)."""

    def __init__(self, stream) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        if self._stream is not None:
            try:
                self._stream.write(text)
            except (OSError, ValueError):  # ValueError: the stream was closed
                self._stream = None
        return len(text)

    def flush(self) -> None:
        if self._stream is not None:
            try:
                self._stream.flush()
            except (OSError, ValueError):
                self._stream = None

    def isatty(self) -> bool:
        try:
            return self._stream is not None and self._stream.isatty()
        except (OSError, ValueError):
            return False

    def fileno(self) -> int:
        if self._stream is None:
            raise OSError(errno.EBADF, "stderr is closed")
        return self._stream.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self._stream, "encoding", None) or "utf-8"

    @property
    def errors(self) -> str:  # type: ignore[override]
        return getattr(self._stream, "errors", None) or "strict"


class _ClosedStdout(io.TextIOBase):
    """stdout when the process was started without one: writing a result to it is an error."""

    def write(self, text: str) -> int:
        raise OSError(errno.EBADF, "stdout is closed")

    def fileno(self) -> int:
        raise OSError(errno.EBADF, "stdout is closed")


@contextlib.contextmanager
def standard_streams() -> Iterator[None]:
    """For the length of a command: stderr best effort, a missing stdout an error to write to."""
    saved = sys.stdout, sys.stderr
    sys.stderr = _Messages(sys.stderr)
    if sys.stdout is None:
        sys.stdout = _ClosedStdout()
    try:
        yield
    finally:
        sys.stdout, sys.stderr = saved


def finish(code: int) -> int:
    """Flush stdout and stderr once the command has ended; the exit code: `code`, or 141 when the reader of
    stdout went away, or 2 when the result could not be written (stdout full, closed, failing)."""
    stdout = sys.stdout
    if stdout is not None:
        try:
            stdout.flush()
        except BrokenPipeError:  # the reader went away before the end (`| head`): quietly, as `_execute` does
            code = code or EXIT_BROKEN_PIPE
            sys.stdout = None  # Python's own exit must not flush it again
        except (OSError, ValueError) as e:
            _Messages(sys.stderr).write(f"fidrs: error: cannot write the result to stdout: {e}\n")
            code = code or EXIT_BAD_INPUT
            sys.stdout = None
    _Messages(sys.stderr).flush()
    return code


__all__ = ["finish", "standard_streams"]
