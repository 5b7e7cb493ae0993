"""The backbone registry: every network fidrs can compute features with, by name.

Three ways in, one registry:
- a packaged manifest `models/<name>.toml` names its family, the module `fidrs.backbones.<family>` whose
  `backbones()` builds it (adding a backbone of an existing family is a manifest; a new family, a module);
- `register_backbone(backbone)` from any code (a user's network, a test's);
- an entry point in the group `fidrs.backbones` of an installed distribution, naming a `Backbone`, a list of
  them, or a function returning either; plugins are read the first time a name is not found or all are listed.

Nothing else in fidrs names a network: options, the CLI's choices and help, caches and statistics read this.
"""

from __future__ import annotations

import importlib
import threading

from .. import _fidrs
from ..errors import InvalidInputError
from . import manifest
from .base import Backbone, Mode, Output, StateDict, WeightsSource

DEFAULT = "inception"
ENTRY_POINT_GROUP = "fidrs.backbones"

_lock = threading.RLock()
_registered: dict[str, Backbone] = {}  # canonical name → backbone, in registration order
_aliases: dict[str, str] = {}
_loaded = {"packaged": False, "plugins": False}


def register_backbone(backbone: Backbone, *, replace: bool = False) -> Backbone:
    """Add `backbone` under its name and aliases. A name already taken is refused unless `replace` (a test's
    stand-in for a packaged backbone)."""
    if not isinstance(backbone, Backbone):
        raise InvalidInputError(f"register_backbone takes a fidrs.backbones.Backbone, got {type(backbone).__name__}")
    for output in backbone.outputs:  # statistics of an output hold its width squared (feature_sets.MAX_FEATURE_WIDTH)
        if output.dim > _fidrs.MAX_FEATURE_WIDTH:
            raise InvalidInputError(
                f"backbone {backbone.name!r}: output {output.name!r} is {output.dim} wide, over fidrs' limit of "
                f"{_fidrs.MAX_FEATURE_WIDTH} (the covariance of its statistics would be {output.dim}×{output.dim})"
            )
    with _lock:
        _load_packaged()
        taken = [n for n in (backbone.name, *backbone.aliases) if n in _aliases and _aliases[n] != backbone.name]
        if (backbone.name in _registered or taken) and not replace:
            raise InvalidInputError(f"backbone name {(taken or [backbone.name])[0]!r} is already registered")
        for name in taken:
            _aliases.pop(name)
        _registered[backbone.name] = backbone
        for name in (backbone.name, *backbone.aliases):
            _aliases[name] = backbone.name
    return backbone


def unregister_backbone(name: str) -> None:
    """Remove a registered backbone (and its aliases)."""
    with _lock:
        canonical = _aliases.get(name, name)
        _registered.pop(canonical, None)
        for alias in [a for a, c in _aliases.items() if c == canonical]:
            _aliases.pop(alias)


def names(*, aliases: bool = True) -> list[str]:
    """Every accepted backbone name (canonical names first, then aliases such as `dinov2`)."""
    with _lock:
        _load_packaged()
        _load_plugins()
        canonical = list(_registered)
        return canonical + sorted(set(_aliases) - set(canonical)) if aliases else canonical


def get(name: str | Backbone | None = None) -> Backbone:
    """The backbone called `name` (an alias resolves to its canonical backbone); None: the default."""
    if isinstance(name, Backbone):
        return name
    chosen = DEFAULT if name is None else name
    with _lock:
        _load_packaged()
        if chosen not in _aliases:
            _load_plugins()
        if chosen not in _aliases:
            raise InvalidInputError(f"unknown backbone {chosen!r}: expected one of {names()}")
        return _registered[_aliases[chosen]]


def preprocessing(
    backbone: str | Backbone | None = None, mode: str | None = None, pad_color: tuple[int, int, int] = (255, 255, 255)
):
    """The native preprocessing description of a backbone's mode (defaults: the default backbone and mode)."""
    return get(backbone).mode(mode).build(tuple(pad_color))


def all_modes() -> list[str]:
    """Every preprocessing mode of every backbone (the CLI's `--mode` choices; each backbone checks its own)."""
    return sorted({m for name in names(aliases=False) for m in get(name).modes})


def _load_packaged() -> None:
    if _loaded["packaged"]:
        return
    _loaded["packaged"] = True
    families = dict.fromkeys(manifest.manifest(n).get("family", "") for n in manifest.names())
    found = [b for family in families for b in importlib.import_module(f"{__name__}.{family}").backbones()]
    for backbone in sorted(found, key=lambda b: b.name != DEFAULT):  # the default first, then as found
        _add(backbone)


def _load_plugins() -> None:
    if _loaded["plugins"]:
        return
    _loaded["plugins"] = True
    from importlib.metadata import entry_points

    try:
        found = entry_points(group=ENTRY_POINT_GROUP)
    except TypeError:  # pragma: no cover - Python 3.9's entry_points() takes no arguments
        found = entry_points().get(ENTRY_POINT_GROUP, [])
    for entry in found:
        try:
            loaded = entry.load()
            if callable(loaded) and not isinstance(loaded, Backbone):
                loaded = loaded()
            for backbone in [loaded] if isinstance(loaded, Backbone) else list(loaded):
                if backbone.name not in _registered:
                    register_backbone(backbone)
        except Exception as e:  # noqa: BLE001 - a broken plugin must not take fidrs down; it is named
            import warnings

            from ..errors import FidrsWarning

            message = f"backbone plugin {entry.name!r} ({entry.value}) could not be loaded: {e}"
            warnings.warn(message, FidrsWarning, stacklevel=2)


def _add(backbone: Backbone) -> None:
    _registered[backbone.name] = backbone
    for name in (backbone.name, *backbone.aliases):
        _aliases[name] = backbone.name


__all__ = [
    "DEFAULT",
    "ENTRY_POINT_GROUP",
    "Backbone",
    "Mode",
    "Output",
    "StateDict",
    "WeightsSource",
    "all_modes",
    "get",
    "manifest",
    "names",
    "preprocessing",
    "register_backbone",
    "unregister_backbone",
]
