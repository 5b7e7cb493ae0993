"""Values read when first asked for: a statistics file's covariance Σ is read, checked and factorised once, and
the factor is all the Fréchet distance needs; the matrix itself (pytorch-fid's SciPy method, saving, pickling)
is read from the file again only when something asks for it. A `fidrs score a.npz b.npz` at d = 2048 so holds
two factors, not two factors and two 32 MiB matrices (docs/BENCHMARKS.md).

`DeferredField` is a dataclass field (a data descriptor) that holds either its value or a `Deferred`, which it
turns into the value on first access and keeps. `raw` and `replace` pass a `Deferred` on without reading it."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any


def _value(value: Any) -> Any:
    return value


class Deferred:
    """A value to compute on first access (`load()`: e.g. an `.npz` member read again, which refuses a file
    changed since). Pickled (Ray, copies) as its value: a loader is a closure over a path on this machine."""

    __slots__ = ("_load", "what")

    def __init__(self, load: Callable[[], Any], what: str) -> None:
        self._load, self.what = load, what

    def load(self) -> Any:
        return self._load()

    def __reduce__(self):
        return (_value, (self.load(),))

    def __repr__(self) -> str:
        return f"Deferred({self.what})"


class DeferredField:
    """A dataclass field given a value or a `Deferred`; reading it gives the value (a `Deferred` is loaded on
    the first read and replaced by its value). It has no default: dataclasses ask the class for one, and get
    AttributeError."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name, self.slot = name, f"_{name}_value"

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            raise AttributeError(f"{self.name} has no default")
        value = obj.__dict__[self.slot]
        if isinstance(value, Deferred):
            value = value.load()
            obj.__dict__[self.slot] = value  # also on a frozen dataclass: the field's value, now known
        return value

    def __set__(self, obj: Any, value: Any) -> None:
        obj.__dict__[self.slot] = value


def _descriptor(cls: type, name: str) -> Any:
    return next((k.__dict__[name] for k in cls.__mro__ if name in k.__dict__), None)


def raw(obj: Any, name: str) -> Any:
    """The field `name` of `obj` as it is held: its value, or the `Deferred` not yet read."""
    field = _descriptor(type(obj), name)
    if not isinstance(field, DeferredField):
        raise TypeError(f"{type(obj).__name__}.{name} is not a DeferredField")
    return obj.__dict__[field.slot]


def is_loaded(obj: Any, name: str) -> bool:
    return not isinstance(raw(obj, name), Deferred)


def replace(obj: Any, **changes: Any) -> Any:
    """`dataclasses.replace`, passing the deferred fields it does not change on unread."""
    deferred = [f.name for f in dataclasses.fields(obj) if isinstance(_descriptor(type(obj), f.name), DeferredField)]
    kept = {name: raw(obj, name) for name in deferred if name not in changes}
    return dataclasses.replace(obj, **kept, **changes)


__all__ = ["Deferred", "DeferredField", "is_loaded", "raw", "replace"]
