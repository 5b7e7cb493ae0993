"""What a metric is, declared once: its parameters (default, check, help, CLI flag), how many inputs it takes and
what it reads of them (features, class logits, or statistics), the protocol it is defined on, and its typed
result. The Evaluator prepares the inputs, checks that they are comparable, and calls `compute`; the CLI's
subcommands, flags and JSON and the module-level functions (`fidrs.kid`, …) are generated from this."""

from __future__ import annotations

import argparse
import dataclasses
import math
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ..errors import InvalidInputError
from ..provenance import Provenance, check_compatible

FEATURES, LOGITS, STATISTICS = "features", "logits", "statistics"


# --- parameters --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Param:
    """One parameter of a metric."""

    name: str
    default: Any
    help: str
    check: Callable[[str, Any], Any]  # (name, value) → the value, or InvalidInputError naming `name`
    parse: Callable[[str], Any]  # CLI text → value (argparse's usage error otherwise)
    flag: str | None = None  # the CLI flag (default: --name-with-dashes)
    choices: tuple[str, ...] | None = None

    @property
    def cli_flag(self) -> str:
        return self.flag or "--" + self.name.replace("_", "-")


def _integer(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def integer(name: str, default: int, low: int, help: str, flag: str | None = None) -> Param:
    """An integer parameter ≥ `low`."""

    def check(label: str, value: Any) -> int:
        if not _integer(value) or value < low:
            raise InvalidInputError(f"{label} must be an integer >= {low}, got {value!r}")
        return int(value)

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {text!r}")
        return value

    parse.__name__ = f"integer >= {low}"
    return Param(name, default, help, check, parse, flag)


def number(name: str, default: float, help: str, *, low: float = 0.0, below: float | None = None) -> Param:
    """A finite number ≥ `low` (and < `below`, if given)."""
    bound = f">= {low}" + (f" and < {below}" if below is not None else "")

    def valid(value: float) -> bool:
        return math.isfinite(value) and value >= low and (below is None or value < below)

    def check(label: str, value: Any) -> float:
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise InvalidInputError(f"{label} must be a number {bound}, got {value!r}")
        if not valid(float(value)):
            raise InvalidInputError(f"{label} must be a finite number {bound}, got {value!r}")
        return float(value)

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not valid(value):
            raise argparse.ArgumentTypeError(f"expected a finite number {bound}, got {text!r}")
        return value

    parse.__name__ = f"number {bound}"
    return Param(name, default, help, check, parse)


def choice(name: str, default: str, choices: Sequence[str], help: str) -> Param:
    allowed = tuple(choices)

    def check(label: str, value: Any) -> str:
        if value not in allowed:
            raise InvalidInputError(f"{label} must be one of {allowed}, got {value!r}")
        return value

    return Param(name, default, help, check, str, choices=allowed)


# --- results -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    """What every metric returns: the metric's name, the sample size of each input, where the features came
    from, and the parameters it ran with. Subclasses add the values; `to_dict()` is the JSON of the CLI."""

    metric: str
    n: tuple[int, ...]
    provenance: Provenance
    params: dict[str, Any]

    def values(self) -> dict[str, Any]:
        """The metric's own fields (everything but the common ones)."""
        common = {f.name for f in dataclasses.fields(Result)}
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in common}

    def to_dict(self) -> dict[str, Any]:
        p = self.provenance
        sides = {"n_a": self.n[0]} if len(self.n) == 1 else {"n_a": self.n[0], "n_b": self.n[1]}
        return {
            "metric": self.metric,
            **{k: _plain(v) for k, v in self.values().items()},
            "n": list(self.n),
            **sides,
            "backbone": p.backbone,
            "mode": p.mode,
            "weights_sha256": p.weights_sha256,
            "graph_sha256": p.graph_sha256,
            "params": dict(self.params),
        }


def _plain(value: Any) -> Any:
    """JSON-ready: arrays become lists."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    return value


@dataclass(frozen=True)
class Estimate(Result):
    """A value with its standard deviation over subsets or splits (KID, the Inception Score)."""

    value: float
    std: float

    # The JSON keys of `value` and `std` before results were typed (`fidrs kid --json` printed `kid`, `kid_std`):
    # still written for one release, deprecated (CHANGELOG).
    legacy_keys: ClassVar[tuple[str, str] | None] = None

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        if self.legacy_keys:
            out[self.legacy_keys[0]], out[self.legacy_keys[1]] = self.value, self.std
        return out

    def __iter__(self) -> Iterator[float]:
        """Deprecated: `mean, std = fidrs.kid(...)` (the old tuple result); use `.value` and `.std`."""
        warnings.warn(
            f"unpacking the result of {self.metric} as (mean, std) is deprecated and will be removed in the next "
            "release: use result.value and result.std",
            DeprecationWarning,
            stacklevel=2,
        )
        return iter((self.value, self.std))

    def __getitem__(self, index: int) -> float:
        warnings.warn(
            f"indexing the result of {self.metric} is deprecated: use result.value and result.std",
            DeprecationWarning,
            stacklevel=2,
        )
        return (self.value, self.std)[index]


class MappingResult:
    """Deprecated dict-style reading (`result["precision"]`) of results that used to be dicts."""

    def legacy(self) -> dict[str, Any]:
        return self.values()  # type: ignore[attr-defined]

    def __getitem__(self, key: str) -> Any:
        warnings.warn(
            f"reading the result of {self.metric} as a dict is deprecated and will be removed in the next release: "  # type: ignore[attr-defined]
            f"use result.{key}",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.legacy()[key]

    def keys(self):
        return self.legacy().keys()


# --- the metric --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Metric:
    """A registered metric."""

    name: str
    title: str
    help: str  # one line (the CLI subcommand's help)
    inputs: tuple[str, ...]  # the inputs in order (their names in messages and keywords): one or two
    reads: str  # FEATURES, LOGITS (the backbone's class logits) or STATISTICS (μ, Σ)
    protocol: str  # what it is defined on and which reference implementation's numbers it reproduces
    params: tuple[Param, ...]
    compute: Callable[..., dict[str, Any]]  # compute(sides, **params) → the result's own values
    result: type[Result]
    text: Callable[[Any], str]  # the CLI's output without --json
    command: str | None = None  # the CLI subcommand (None: none; `fid` is `fidrs score`)
    cli_inputs: tuple[str, ...] | None = None  # the CLI's positional order if it is not `inputs` (see memorization)
    legacy_positional: bool = False  # positional Python calls are in the CLI's (old) order: warned, never swapped
    backbone: str | None = None  # the backbone it is defined on: the default of a call that names none (CMMD)

    def default_options(self, options: dict[str, Any]) -> dict[str, Any]:
        """`options` with this metric's backbone where they name neither a backbone nor an exported graph."""
        if self.backbone is None or options.get("backbone") is not None or options.get("model") is not None:
            return options
        return {**options, "backbone": self.backbone}

    def param(self, name: str) -> Param:
        return next(p for p in self.params if p.name == name)

    def defaults(self) -> dict[str, Any]:
        return {p.name: p.default for p in self.params}

    def checked(self, given: dict[str, Any]) -> dict[str, Any]:
        """Every parameter's value (the default where not given), checked; an unknown one is refused."""
        unknown = sorted(set(given) - {p.name for p in self.params})
        if unknown:
            raise InvalidInputError(
                f"{self.name} has no parameter {', '.join(unknown)}: its parameters are "
                f"{', '.join(p.name for p in self.params) or 'none'}"
            )
        return {p.name: p.check(p.name, given.get(p.name, p.default)) for p in self.params}

    def run(self, sides: Sequence[Any], labels: Sequence[str], params: dict[str, Any]) -> Result:
        """The metric of `sides` (FeatureSets, or Stats for STATISTICS), after the one compatibility check."""
        values = self.checked(params)
        if len(sides) != len(self.inputs):
            raise InvalidInputError(f"{self.name} takes {len(self.inputs)} input(s) ({', '.join(self.inputs)})")
        provenances = [side.provenance for side in sides]
        what = "statistics" if self.reads == STATISTICS else "feature sets"
        check_compatible(list(zip(labels, provenances)), what)
        if self.reads == LOGITS:
            for side in sides:
                if side.logits is None:
                    raise no_logits(self, side.backbone)
        out = self.compute(tuple(sides), **values)
        n = tuple(side.n if self.reads == STATISTICS else len(side) for side in sides)
        return self.result(metric=self.name, n=n, provenance=common(provenances), params=values, **out)


def no_logits(metric: Metric, backbone: str | None) -> InvalidInputError:
    return InvalidInputError(
        f"the {metric.title} needs class logits, which backbone {backbone!r} does not have; "
        "it is defined on the Inception (backbone='inception')"
    )


def common(provenances: Sequence[Provenance]) -> Provenance:
    """What all sides share: a field one side does not record is the other's; a mode is known only if every
    side records the same one (a pytorch-fid statistics file's mode is unknown, never a guess)."""
    modes = {p.mode for p in provenances}
    first = lambda field: next((getattr(p, field) for p in provenances if getattr(p, field) is not None), None)  # noqa: E731
    return Provenance(
        first("backbone"),
        modes.pop() if len(modes) == 1 else None,
        first("weights_sha256"),
        first("graph_sha256"),
        first("dim"),
    )
