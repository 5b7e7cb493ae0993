"""Run one command and map every outcome to an exit code and at most a few lines on stderr. Warnings and the
`fidrs` logger's records are printed here as `fidrs: warning: …` / `fidrs: …`; results alone go to stdout."""

from __future__ import annotations

import logging
import os
import signal
import sys
import warnings
from collections.abc import Sequence

from fidrs.errors import EXIT_BAD_INPUT, EXIT_BROKEN_PIPE, EXIT_INTERNAL, EXIT_OK, FidrsError, exit_code

from .streams import finish, standard_streams


def _execute(args) -> int:
    from . import commands
    from .stdout_guard import results_only_on_stdout

    try:
        # Ray prints on its own (worker deaths, lost nodes): on a cluster run stdout gets the result alone.
        with results_only_on_stdout(enabled=getattr(args, "ray", None) is not None):
            return commands.run(args)
    except FidrsError as e:
        print(f"fidrs: error: {e}", file=sys.stderr)
        return exit_code(e)
    except BrokenPipeError:
        # Whoever read our output stopped (`| head`): say nothing more, and keep Python's exit-time flush of
        # stdout from raising again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except (ValueError, OSError) as e:  # unreadable or unwritable paths, bad values: the input, not fidrs
        print(f"fidrs: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except MemoryError:
        print("fidrs: error: out of memory", file=sys.stderr)
        return EXIT_INTERNAL
    except Exception as e:  # noqa: BLE001 - the CLI's contract: anything unexpected is exit 3
        import traceback

        traceback.print_exc()
        print(f"fidrs: internal error: {type(e).__name__}: {e}", file=sys.stderr)
        return EXIT_INTERNAL


def _report_to_stderr() -> None:
    warnings.simplefilter("default")
    warnings.formatwarning = lambda msg, cat, *a, **k: f"fidrs: warning: {msg}\n"
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("fidrs: %(message)s"))
    log = logging.getLogger("fidrs")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False


def _version() -> int:
    from fidrs import _fidrs

    print(f"fidrs {_fidrs.__version__} (JPEG SIMD: {_fidrs.JPEG_SIMD})")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command `argv` (default: this process's arguments); its exit code."""
    with standard_streams():
        try:
            return _main(argv)
        except BrokenPipeError:  # the reader of the version or the help went away: quietly, as in `_execute`
            return EXIT_BROKEN_PIPE
        except OSError as e:  # printing the version or the help (the command's own output errors are `_execute`'s)
            print(f"fidrs: error: cannot write to stdout: {e}", file=sys.stderr)
            return EXIT_BAD_INPUT


def _main(argv: Sequence[str] | None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv == ["--version"]:  # before the parser, which reads the registries (and so imports numpy)
        return _version()
    from .parser import build_parser

    parser = build_parser()
    args = parser.parse_args(argv)  # usage errors exit 2
    if args.version:
        return _version()
    if args.command is None:
        parser.print_usage(sys.stderr)
        return EXIT_BAD_INPUT
    _report_to_stderr()
    from fidrs import _fidrs

    # Ctrl-C ends the process within milliseconds whatever runs (decoding, the network, a download): exit 130,
    # one line, outputs still being written removed. Finished outputs were renamed into place whole.
    signal.signal(signal.SIGINT, lambda *_: None)  # no KeyboardInterrupt traceback racing the native handler
    _fidrs.exit_on_interrupt("fidrs: interrupted")
    return _execute(args)


def entry() -> None:
    """The `fidrs` command (the console script, `python -m fidrs.cli`): `main`, then the exit. stdout is flushed
    first (`streams.finish`: a result that could not be written is exit 2, never 0). Then, once no other thread
    runs, the process ends without Python's teardown of its modules and objects, which took 0.02–0.045 s of the
    ~0.6 s of `fidrs score a.npz b.npz` (docs/BENCHMARKS.md); the exit-time handlers (atexit: logging's flush,
    temporary files' removal) still run. With another thread alive, Python's own exit waits for it."""
    try:
        code = main()
    except SystemExit as e:  # argparse: --help (0), a usage error (2, its message already on stderr)
        code = e.code if isinstance(e.code, int) else EXIT_OK if e.code is None else EXIT_BAD_INPUT
    code = finish(code)
    import threading

    if threading.active_count() > 1:
        sys.exit(code)
    import atexit

    atexit._run_exitfuncs()
    finish(code)  # what the exit-time handlers wrote
    os._exit(code)


if __name__ == "__main__":
    entry()
