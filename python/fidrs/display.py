"""How a path or a name appears in a message: control characters (a newline in a file name would forge an output
line) and undecodable bytes are escaped; everything else is kept as is."""

from __future__ import annotations

import os


def display(path: str | os.PathLike | bytes) -> str:
    text = os.fsdecode(path) if isinstance(path, bytes) else os.fspath(path)
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)
