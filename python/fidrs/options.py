"""Every option of a feature pass, declared once: `Options` is the keyword options of `fidrs.score`, `stats`,
`features`, `feature_set`, every metric, `Evaluator`, `Accumulator`, `fidrs.distributed` and the CLI's common
flags. Each field carries its default, its check, its help text, its CLI flag and where its choices come from
(the registries, read when they are needed), so changing a default or adding an option is one edit here.

`Options(...)` checks each value when it is made; `resolve()` checks how they fit together (a mode of another
backbone, weights and a graph at once) and yields the `Resolved` value that a feature pass runs with: the
`Backbone`, the `Mode` and the native preprocessing. Nothing is read or fetched before both have passed, except
the metadata of an exported graph named by `model` when it alone says which backbone it is.

`ClusterOptions` declare a cluster run's own options (`fidrs.distributed`, the CLI's `--ray` group) the same way."""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar

from . import _fidrs, backbones
from .errors import InvalidInputError

if TYPE_CHECKING:
    from .backbones import Backbone, Mode

DEVICES = ("auto", "cpu", "cuda")
WHITE = (255, 255, 255)


# --- how one option is declared ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Spec:
    """What the CLI and the checks need to know of an option besides its default."""

    help: str
    check: Callable[[str, Any], Any]  # (name, value) → the value as stored, or InvalidInputError naming `name`
    parse: Callable[[str], Any] | None = None  # CLI text → value (None: the text itself; booleans are flags)
    choices: Callable[[], Iterable[str]] | None = None  # read when asked, so a registered backbone is a choice
    metavar: str | None = None
    shown_default: str | None = None  # what a default of None means, in the help (the backbone: the Inception)
    cli: bool = True  # offered as a CLI flag
    # About the machine the call runs on (a progress bar, the local feature cache): a cluster worker runs with
    # `on_workers` instead, and the driver does that part for the job.
    local: bool = False
    on_workers: Any = None


def option(default: Any, help: str, check: Callable[[str, Any], Any], **spec: Any) -> Any:
    return field(default=default, metadata={"spec": Spec(help, check, **spec)})


def spec(f: dataclasses.Field) -> Spec:
    return f.metadata["spec"]


# --- checks: each takes (option name, value) and names the option in its message ---------------------------


def _optional_text(name: str, value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str) or not value:
        raise InvalidInputError(f"{name} must be a path (a non-empty string), got {value!r}")
    return value


def _backbone(name: str, value: Any) -> Any:
    if value is None or isinstance(value, backbones.Backbone):
        return value
    if not isinstance(value, str):
        raise InvalidInputError(f"{name} must be a backbone name, got {value!r}")
    return backbones.get(value).name  # unknown: InvalidInputError listing the registered ones


def _sha256(name: str, value: Any) -> str | None:
    if value is None:
        return None
    text = value.strip().lower() if isinstance(value, str) else ""
    if len(text) != 64 or any(c not in "0123456789abcdef" for c in text):
        raise InvalidInputError(f"{name} must be 64 hex digits (a sha256), got {value!r}")
    return text


def _mode(name: str, value: Any) -> str | None:
    if value is not None and not isinstance(value, str):
        raise InvalidInputError(f"{name} must be a preprocessing mode's name, got {value!r}")
    return value  # which modes exist depends on the backbone: checked by resolve()


def _is_int(value: Any) -> bool:
    import numpy as np

    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _positive_int(name: str, value: Any) -> int:
    if not _is_int(value) or value < 1:
        raise InvalidInputError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _optional_positive_int(name: str, value: Any) -> int | None:
    return None if value is None else _positive_int(name, value)


def _seconds(name: str, value: Any) -> float:
    import numpy as np

    number = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))
    if not number or not np.isfinite(value) or value < 0:  # NaN and infinity too
        raise InvalidInputError(f"{name} must be a number of seconds >= 0, got {value!r}")
    return float(value)


def _parse_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"expected a finite number of seconds >= 0, got {text!r}")
    return value


def _flag(name: str, value: Any) -> bool:
    import numpy as np

    if not isinstance(value, (bool, np.bool_)):
        raise InvalidInputError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def _one_of(choices: Callable[[], Iterable[str]]):
    def check(name: str, value: Any) -> str:
        allowed = tuple(choices())
        if value not in allowed:
            raise InvalidInputError(f"{name} must be one of {allowed}, got {value!r}")
        return value

    return check


def _colour(name: str, value: Any) -> tuple[int, int, int]:
    try:
        colour = tuple(value)
    except TypeError:
        colour = ()
    if len(colour) != 3 or not all(_is_int(c) and 0 <= c <= 255 for c in colour):
        raise InvalidInputError(f"{name} must be three integers in 0..255, got {value!r}")
    return tuple(int(c) for c in colour)  # type: ignore[return-value]


def _parse_colour(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"colour must be R,G,B integers, got {text!r}") from None


def parse_int_at_least(low: int) -> Callable[[str], int]:
    """CLI text → an integer ≥ `low` (argparse's usage error otherwise)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {text!r}")
        return value

    parse.__name__ = f"integer >= {low}"
    return parse


def _backbone_choices() -> list[str]:
    return backbones.names()


# --- what every declared set of options can do -------------------------------------------------------------


class Declared:
    """A frozen dataclass of `option(...)` fields: each value checked when it is made, the keywords of the API
    and the CLI's flags read from the same declarations."""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            object.__setattr__(self, f.name, spec(f).check(f.name, getattr(self, f.name)))

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]

    @classmethod
    def of(cls: type[D], options: D | None = None, **keywords: Any) -> D:
        """`options` (default: the defaults) with `keywords` replaced; an unknown keyword is InvalidInputError
        naming every valid one."""
        unknown = sorted(set(keywords) - set(cls.names()))
        if unknown:
            raise InvalidInputError(
                f"unknown option{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}: "
                f"the options are {', '.join(cls.names())}"
            )
        base = options if options is not None else cls()
        return dataclasses.replace(base, **keywords) if keywords else base  # type: ignore[type-var]

    @classmethod
    def add_arguments(
        cls,
        parser: argparse.ArgumentParser | argparse._ArgumentGroup,
        *,
        repeatable: Iterable[str] = (),
        shown_defaults: Mapping[str, str] | None = None,
    ) -> None:
        """One CLI flag per option (`--batch-size`, `--no-cache`, …): `add_arguments` below."""
        add_arguments(parser, cls, repeatable=repeatable, shown_defaults=shown_defaults)

    @classmethod
    def cli_names(cls) -> list[str]:
        """The options offered as CLI flags."""
        return [f.name for f in dataclasses.fields(cls) if spec(f).cli]  # type: ignore[arg-type]

    @classmethod
    def from_arguments(cls: type[D], args: argparse.Namespace, **defaults: Any) -> D:
        """The options the parsed flags give (a flag not given: `defaults`, else the declared default)."""
        return from_arguments(args, defaults, cls)

    def keywords(self) -> dict[str, Any]:
        """The options as keywords (`fidrs.score(a, b, **options.keywords())`)."""
        return {name: getattr(self, name) for name in self.names()}


D = TypeVar("D", bound=Declared)


# --- the options -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Options(Declared):
    """The options of a feature pass. Every value is checked when an `Options` is made (InvalidInputError
    naming the option); `resolve()` checks how they fit together."""

    backbone: str | Backbone | None = option(
        None,
        "feature network (`fidrs models` lists every one and its modes)",
        _backbone,
        choices=_backbone_choices,
        shown_default=backbones.DEFAULT,
    )
    weights: str | None = option(
        None,
        "the backbone's checkpoint; default: $FIDRS_WEIGHTS_<BACKBONE> ($FIDRS_WEIGHTS for the Inception), "
        "the cache, then a download",
        _optional_text,
        metavar="PATH",
    )
    weights_sha256: str | None = option(None, "refuse a checkpoint whose sha256 differs", _sha256, metavar="HEX")
    model: str | None = option(
        None, "a graph written by `fidrs models export` (instead of --weights)", _optional_text, metavar="X.onnx"
    )
    mode: str | None = option(
        None,
        "preprocessing preset of the backbone (default: the backbone's own, e.g. pytorch-fid for inception)",
        _mode,
        choices=lambda: backbones.all_modes(),
    )
    ref_mode: str | None = option(
        None,
        "the mode a statistics input was made in, for a file that does not record it (e.g. clean for a clean-fid "
        "file of your own); the images it is compared with are then computed in it",
        _mode,
        choices=lambda: backbones.all_modes(),
    )
    allow_mode_mismatch: bool = option(
        False,
        "compute the images in --mode even where a reference was made in another mode (refused otherwise: the "
        "value would not be comparable with numbers computed against that reference; the result says so)",
        _flag,
    )
    batch_size: int | None = option(
        None,
        "images per network call (default: 16 on CPU, 200 on CUDA; features do not depend on it)",
        _optional_positive_int,
        parse=parse_int_at_least(1),
    )
    device: str = option("auto", "where the network runs", _one_of(lambda: DEVICES), choices=lambda: DEVICES)
    skip_bad: bool = option(False, "skip undecodable files (listed) instead of failing", _flag)
    pad_color: tuple[int, int, int] = option(
        WHITE, "fill colour of the pad mode", _colour, parse=_parse_colour, metavar="R,G,B"
    )
    max_pixels: int = option(
        _fidrs.DEFAULT_MAX_PIXELS,
        "refuse larger images (decompression bombs)",
        _positive_int,
        parse=parse_int_at_least(1),
    )
    allow_tf32: bool = option(False, "let CUDA use TF32 (faster, changes features slightly)", _flag)
    progress: bool = option(
        False, "progress bars on stderr (CLI default: when stderr is a terminal)", _flag, local=True, on_workers=False
    )
    cache: bool = option(True, "read and write the feature cache", _flag, local=True, on_workers=False)

    def on_workers(self) -> Options:
        """These options as a cluster worker runs them: each machine-local option at its cluster value."""
        return dataclasses.replace(self, **{name: spec(f).on_workers for name, f in _local_fields()})

    def resolve(self) -> Resolved:
        """Check how the options fit together and find the backbone and mode (nothing else is read)."""
        if self.model is not None and self.weights is not None:
            raise InvalidInputError("give either weights (a checkpoint) or model (an exported graph), not both")
        chosen = self.backbone
        if chosen is None and self.model is not None:
            from .exported import exported_backbone

            chosen = exported_backbone(self.model)
        backbone = backbones.get(chosen)
        if self.ref_mode is not None and self.ref_mode not in backbone.modes:
            raise InvalidInputError(
                f"ref_mode {self.ref_mode!r} is not a mode of backbone {backbone.name} "
                f"(its modes: {', '.join(backbone.modes)})"
            )
        return Resolved(self, backbone, backbone.mode(self.mode))


def _local_fields() -> list[tuple[str, dataclasses.Field]]:
    return [(f.name, f) for f in dataclasses.fields(Options) if spec(f).local]


def local_options() -> list[str]:
    """The options a cluster worker does not take from the driver (each runs at its `on_workers` value)."""
    return [name for name, _ in _local_fields()]


@dataclass(frozen=True)
class Resolved:
    """Options that fit together, with what they name: the backbone, its mode, the native preprocessing."""

    options: Options
    backbone: Backbone
    mode: Mode

    @property
    def mode_label(self) -> str:
        """The mode as statistics record it: a mode that pads carries its fill colour unless it is white."""
        if self.mode.uses_pad_color and self.options.pad_color != WHITE:
            return f"{self.mode.name}(" + ",".join(str(c) for c in self.options.pad_color) + ")"
        return self.mode.name

    @cached_property
    def preprocessing(self) -> _fidrs.Preprocessing:
        return self.mode.build(self.options.pad_color)


def resolve(options: Options | Resolved | None = None, **keywords: Any) -> Resolved:
    """`Options.of(options, **keywords).resolve()`; a `Resolved` is returned as it is (no keywords allowed)."""
    if isinstance(options, Resolved):
        if keywords:
            return resolve(options.options, **keywords)
        return options
    return Options.of(options, **keywords).resolve()


# --- the options of a cluster run ----------------------------------------------------------------------------


def _optional_address(name: str, value: Any) -> str | None:
    if value is not None and (not isinstance(value, str) or not value):
        raise InvalidInputError(f"{name} must be a Ray address (a non-empty string) or None, got {value!r}")
    return value


# Seconds workers may keep failing with no shard completed before a cluster job stops: well above the ~15 s Ray
# takes to declare a lost node dead plus a new worker's start (the graph shipped, a session built), short enough
# that a job that cannot finish says so within minutes.
RETRY_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class ClusterOptions(Declared):
    """Where and how a cluster run runs (`fidrs.distributed`'s keywords besides `Options`, the CLI's `--ray`
    group). Checked when made, like `Options`, so a bad value is refused before Ray starts."""

    # The CLI's `--ray [ADDRESS]` both asks for a cluster run and names the cluster: written by the parser.
    address: str | None = option(
        None,
        'a Ray cluster ("ray://host:10001", "host:6379", "auto"); None: the cluster this process is connected '
        "to, or a local one",
        _optional_address,
        cli=False,
    )
    workers: int | None = option(
        None, "workers (default: one per GPU, else one per CPU)", _optional_positive_int, parse=parse_int_at_least(1)
    )
    shard_size: int | None = option(
        None,
        "images per shard (default: from the job size, at most 4,096)",
        _optional_positive_int,
        parse=parse_int_at_least(1),
    )
    retry_timeout: float = option(
        RETRY_TIMEOUT_S,
        "stop when workers keep failing for this long with no shard completed (a lost worker or node only costs "
        "a rerun of its shards); at least twice the longest shard",
        _seconds,
        parse=_parse_seconds,
        metavar="SECONDS",
    )


# --- the CLI's view of the options ---------------------------------------------------------------------------


class _LazyChoices:
    """argparse choices read from a registry when argparse needs them (a check, the help)."""

    def __init__(self, read: Callable[[], Iterable[str]]) -> None:
        self.read = read

    def __contains__(self, value: object) -> bool:
        return value in list(self.read())

    def __iter__(self) -> Iterator[str]:
        return iter(list(self.read()))


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_arguments(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    declared: type[Declared] | None = None,
    *,
    repeatable: Iterable[str] = (),
    shown_defaults: Mapping[str, str] | None = None,
) -> None:
    """One flag per CLI option of `declared` (default: `Options`); a flag not given leaves the option at its
    default. An option named in `repeatable` may be given several times (a list of values: `fidrs stats
    --backbone a --backbone b`). `shown_defaults`: the default a command's help gives instead of the declared
    one, where the command applies its own (`fidrs cmmd`'s backbone)."""
    repeatable = set(repeatable)
    shown_defaults = shown_defaults or {}
    for f in dataclasses.fields(declared or Options):  # type: ignore[arg-type]
        s = spec(f)
        if not s.cli:
            continue
        default = f.default if not isinstance(f.default, tuple) else ",".join(map(str, f.default))
        default = f"{default:g}" if isinstance(default, float) else default
        default = shown_defaults.get(f.name, s.shown_default if f.default is None else default)
        shown = default is not None and not isinstance(f.default, bool)
        help_text = s.help + (f" (default: {default})" if shown else "")
        if isinstance(f.default, bool):
            parser.add_argument(
                flag(f.name), dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=help_text
            )
            continue
        kwargs: dict[str, Any] = {"dest": f.name, "default": None, "help": help_text}
        if s.parse is not None:
            kwargs["type"] = s.parse
        if s.choices is not None:
            kwargs["choices"] = _LazyChoices(s.choices)
        if s.metavar is not None:
            kwargs["metavar"] = s.metavar
        if f.name in repeatable:
            kwargs["action"] = "append"
            kwargs["help"] += " (may be given several times)"
        parser.add_argument(flag(f.name), **kwargs)


def from_arguments(
    args: argparse.Namespace, defaults: Mapping[str, Any] | None = None, declared: type[D] | None = None
) -> D:
    """The options (`declared`, default `Options`) the parsed flags give (flags not given: `defaults`, else the
    declared default)."""
    cls = declared or Options
    given = {name: getattr(args, name) for name in cls.names() if getattr(args, name, None) is not None}
    return cls.of(None, **{**(defaults or {}), **given})  # type: ignore[return-value]
