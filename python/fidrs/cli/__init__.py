"""The `fidrs` command, generated from the option declarations (`fidrs.Options`) and the metric registry; the only
part of fidrs that prints. Exit codes: 0 pass, 1 FID above --max-fid, 2 bad input or usage, 3 internal error,
130 interrupted, 141 closed pipe (each exception class carries its own: `fidrs.errors.exit_code`)."""

from __future__ import annotations

from .main import entry, main

__all__ = ["entry", "main"]
