"""Progress bars: tqdm (rate, ETA, one bar per image set, on stderr), chosen over rich because it is a small
pure-Python dependency that every tool of this ecosystem already pulls in (torch-fidelity, clean-fid,
pytorch-fid use it), and it writes plain `\\r` lines that CI logs keep readable. One place decides the look."""

from __future__ import annotations

import sys
from contextlib import nullcontext

from .display import display


def progress_bar(total: int, label: str, enabled: bool, position: int = 0):
    """A bar of `total` images (call `.update(k)`, `.close()`), or a stand-in that does nothing."""
    if not enabled:
        return _Silent()
    from tqdm import tqdm

    return tqdm(
        total=total,
        desc=f"fidrs {display(label)}",
        unit="img",
        file=sys.stderr,
        position=position,
        dynamic_ncols=True,
        mininterval=0.5,
        leave=True,
    )


class _Silent(nullcontext):
    def update(self, count: int) -> None:
        pass

    def close(self) -> None:
        pass
