"""How a path or a name appears in a message: control characters (a newline in a file name would forge an output
line) and undecodable bytes are escaped; everything else is kept as is. And how a number appears in text: fixed
decimals, with no sign on a value that rounds to zero (`-0.000000` for two identical sets is round-off)."""

from __future__ import annotations

import os


def display(path: str | os.PathLike | bytes) -> str:
    text = os.fsdecode(path) if isinstance(path, bytes) else os.fspath(path)
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)


def fixed(value: float, digits: int = 6) -> str:
    """`value` with `digits` decimals; a value that shows as zero at that precision shows as `0.000…` without a
    minus sign (a Fréchet distance of −1e-12 between identical sets is round-off, not a negative distance). The
    value itself (JSON, the API) is never changed."""
    text = f"{value:.{digits}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text
