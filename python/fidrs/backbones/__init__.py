"""The backbone registry: every network fidrs can compute features with, by name.

Adding a network is one new module here that defines a `Backbone` and one line in `_REGISTERED`; nothing else
in fidrs names a network (README, "How to add a backbone").
"""

from __future__ import annotations

from ..errors import InvalidInputError
from .base import Backbone, Mode, Output, StateDict, WeightsSource
from .clip import CLIP
from .dinov2 import DINOV2
from .inception import INCEPTION

DEFAULT = "inception"

_REGISTERED: tuple[Backbone, ...] = (INCEPTION, *DINOV2, *CLIP)
_BY_NAME = {name: b for b in _REGISTERED for name in (b.name, *b.aliases)}


def names(*, aliases: bool = True) -> list[str]:
    """Every accepted backbone name (canonical names first, then aliases such as `dinov2`)."""
    canonical = [b.name for b in _REGISTERED]
    return canonical + sorted(set(_BY_NAME) - set(canonical)) if aliases else canonical


def get(name: str | Backbone | None = None) -> Backbone:
    """The backbone called `name` (an alias resolves to its canonical backbone); None: the default."""
    if isinstance(name, Backbone):
        return name
    chosen = DEFAULT if name is None else name
    if chosen not in _BY_NAME:
        raise InvalidInputError(f"unknown backbone {chosen!r}: expected one of {names()}")
    return _BY_NAME[chosen]


def preprocessing(
    backbone: str | Backbone | None = None, mode: str | None = None, pad_color: tuple[int, int, int] = (255, 255, 255)
):
    """The native preprocessing description of a backbone's mode (defaults: the default backbone and mode)."""
    return get(backbone).mode(mode).build(tuple(pad_color))


def all_modes() -> list[str]:
    """Every preprocessing mode of every backbone (the CLI's `--mode` choices; each backbone checks its own)."""
    return sorted({m for b in _REGISTERED for m in b.modes})


__all__ = [
    "DEFAULT",
    "Backbone",
    "Mode",
    "Output",
    "StateDict",
    "WeightsSource",
    "all_modes",
    "get",
    "names",
    "preprocessing",
]
