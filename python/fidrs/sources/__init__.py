"""Input sources: what a user passes (a directory, a file, a glob, a list, a zip, an array, a URL, a statistics or
reference file, a published reference `ref:NAME`) resolved to a `Source` by an ordered list of resolvers, each of
which recognises its kind of input or passes. Adding a kind of input is one module with a `Source` subclass and a
resolver, registered with `register_source` (before the general resolvers that would take its input for a
path)."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any, Union

import numpy as np

from ..display import display
from ..errors import InvalidInputError
from . import rules
from .array import ImageArray, resolve_array
from .base import Pixels, Source
from .local import ImageFiles, resolve_path
from .reference import StatsFile, resolve_reference
from .url import RemoteFiles, resolve_list, resolve_url
from .zip import ZipImages, resolve_zip

InputLike = Union[str, os.PathLike, Sequence[Union[str, os.PathLike]], np.ndarray]
# (inputs, allow statistics files) → its Source, or None: not this resolver's kind of input.
Resolver = Callable[[Any, bool], Union[Source, None]]

_resolvers: list[tuple[str, Resolver]] = [
    ("array", resolve_array),
    ("url", resolve_url),
    ("reference", resolve_reference),
    ("zip", resolve_zip),
    ("path", resolve_path),
    ("list", resolve_list),
]


def register_source(name: str, resolver: Resolver, *, before: str | None = "path") -> None:
    """Add a resolver, tried before the one called `before` (default: before plain paths, which would otherwise
    take a path to a file of the new kind; None: last)."""
    if any(n == name for n, _ in _resolvers):
        raise InvalidInputError(f"a source resolver called {name!r} is already registered")
    names = [n for n, _ in _resolvers]
    at = names.index(before) if before in names else len(_resolvers)
    _resolvers.insert(at, (name, resolver))


def unregister_source(name: str) -> None:
    _resolvers[:] = [(n, r) for n, r in _resolvers if n != name]


def resolver_names() -> list[str]:
    return [n for n, _ in _resolvers]


def resolve(inputs: InputLike | Source, *, allow_stats: bool = True) -> Source:
    """The source `inputs` names: the first resolver that recognises it decides."""
    if isinstance(inputs, Source):
        if not allow_stats and len(inputs) == 0:
            name = inputs.describe().get("input") or inputs.kind
            raise InvalidInputError(f"{display(name)}: a statistics file cannot be used here; pass images")
        return inputs
    if isinstance(inputs, (str, os.PathLike)) and rules.is_url(os.fspath(inputs)):
        inputs = rules.local_path(os.fspath(inputs)) or inputs  # file://, local://: read as the path they name
    for _name, resolver in list(_resolvers):
        source = resolver(inputs, allow_stats)
        if source is not None:
            return source
    if isinstance(inputs, (str, bytes, os.PathLike, list, tuple)):
        what = display(repr(inputs))[:200]
    else:  # an object's repr may be a whole array's (a Stats, an ndarray of the wrong kind): its type says enough
        what = f"a {type(inputs).__name__} object"
    raise InvalidInputError(f"cannot use {what} as input: no source recognises it")


def label(inputs: Any, default: str) -> str:
    """How messages name an input: its path, else `default`."""
    return os.fspath(inputs) if isinstance(inputs, (str, os.PathLike)) else default


__all__ = [
    "ImageArray",
    "ImageFiles",
    "InputLike",
    "Pixels",
    "RemoteFiles",
    "Resolver",
    "Source",
    "StatsFile",
    "ZipImages",
    "label",
    "register_source",
    "resolve",
    "resolver_names",
    "rules",
    "unregister_source",
]
