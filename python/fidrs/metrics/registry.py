"""The metric registry: every metric by name. A metric module declares its `Metric` and registers it here."""

from __future__ import annotations

from ..errors import InvalidInputError
from .base import Metric

_registered: dict[str, Metric] = {}


def register_metric(metric: Metric, *, replace: bool = False) -> Metric:
    """Add `metric` under its name (refused if the name, or its CLI command, is taken, unless `replace`)."""
    if not isinstance(metric, Metric):
        raise InvalidInputError(f"register_metric takes a fidrs.metrics.Metric, got {type(metric).__name__}")
    clash = next(
        (m for m in _registered.values() if m.command and m.command == metric.command and m.name != metric.name), None
    )
    if (metric.name in _registered or clash) and not replace:
        raise InvalidInputError(f"a metric called {metric.name!r} (or command {metric.command!r}) is registered")
    _registered[metric.name] = metric
    return metric


def unregister_metric(name: str) -> None:
    _registered.pop(name, None)


def get_metric(name: str) -> Metric:
    if name not in _registered:
        raise InvalidInputError(f"unknown metric {name!r}: expected one of {sorted(_registered)}")
    return _registered[name]


def metric_names() -> list[str]:
    return list(_registered)
