"""Time to first result, for the benchmark drivers: wraps a class's batch method to note when its first
call returned, counted from the harness's clock reading just before it launched this process (BENCH_T0).

Imports nothing but the standard library: the pytorch-fid driver runs in a venv without fidrs.
"""

from __future__ import annotations

import os
import time

T0 = float(os.environ.get("BENCH_T0", time.time()))
_first: list[float] = []


def time_first_call(cls: type, method: str) -> None:
    """After this, the first call of `cls.method(self, batch)` records (seconds since launch, len(batch))."""
    original = getattr(cls, method)

    def timed(self, batch):
        out = original(self, batch)
        if not _first:
            _first.extend((time.time() - T0, len(batch)))
        return out

    setattr(cls, method, timed)


def first_batch() -> dict:
    return {"first_batch_s": _first[0] if _first else None, "first_batch_images": _first[1] if _first else 0}
