"""The model manifests (`fidrs/models/<backbone>.toml`, also the repository's top-level `models/`): per backbone,
its family (the module with its code), the official weights (URL, file name, sha256 where published, size cap,
licence, citation), input size, preprocessing modes, outputs and the numbers they are comparable with. They
ship inside the wheel; the family modules hold only code (readers, checks, converters), never a URL or a hash.

`backbone(manifest, code)` is the one place a manifest becomes a `Backbone`; a plugin reads its own manifest
with `load(path)` and registers what `backbone` builds from it."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from typing import Any

from .. import _fidrs
from ..errors import FidrsError, InvalidInputError
from .base import Backbone, Mode, Output, StateDict, WeightsSource

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.9/3.10
    import tomli as tomllib

_MODE_FIELDS = {"resize", "fit", "unit", "clamp", "mean", "std"}


@dataclass(frozen=True)
class Code:
    """A family's code for one backbone: read a checkpoint, check it (any usable file; the official file), and
    convert it to an ONNX graph."""

    load_state: Callable[[os.PathLike], StateDict]
    check_state: Callable[[StateDict], None]
    check_official: Callable[[StateDict], None]
    build_graph: Callable[[StateDict], Any]


@cache
def manifest(name: str) -> dict[str, Any]:
    """The parsed packaged manifest of backbone `name` (packaged data: an unreadable one is a broken install)."""
    resource = files("fidrs") / "models" / f"{name}.toml"
    try:
        return tomllib.loads(resource.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise FidrsError(f"the model manifest {name}.toml is missing or unreadable ({e}): reinstall fidrs") from None


def load(path: str | os.PathLike) -> dict[str, Any]:
    """A manifest file of one's own (a plugin's, a test's)."""
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise InvalidInputError(f"{os.fspath(path)}: not a readable model manifest ({e})") from None


def names() -> list[str]:
    """Every packaged manifest."""
    return sorted(p.name[: -len(".toml")] for p in (files("fidrs") / "models").iterdir() if p.name.endswith(".toml"))


def of_family(family: str) -> list[str]:
    """The packaged manifests of one family, in name order."""
    return [name for name in names() if manifest(name).get("family") == family]


def weights_source(m: dict[str, Any]) -> WeightsSource:
    w = m["weights"]
    return WeightsSource(
        url=w["url"],
        filename=w["filename"],
        sha256=w.get("sha256"),
        max_bytes=int(w["max_bytes"]),
        licence=w["licence"],
        citation=w["citation"],
    )


def outputs(m: dict[str, Any]) -> tuple[Output, ...]:
    return tuple(Output(o["name"], int(o["dim"]), o["description"]) for o in m["outputs"])


def _builder(size: int, fields: dict[str, Any]):
    def build(pad_color: tuple[int, int, int]) -> _fidrs.Preprocessing:
        return _fidrs.Preprocessing(size=size, fill=tuple(pad_color), **fields)

    return build


def modes(m: dict[str, Any]) -> dict[str, Mode]:
    """Each `[modes.<name>]` as a Mode building `Preprocessing(size=input_size, fill=pad colour, **fields)`."""
    out = {}
    for name, spec in m["modes"].items():
        unknown = set(spec) - _MODE_FIELDS - {"description"}
        if unknown:
            raise FidrsError(f"model manifest {m['name']}: mode {name!r} has unknown fields {sorted(unknown)}")
        fields = {k: (tuple(v) if isinstance(v, list) else v) for k, v in spec.items() if k in _MODE_FIELDS}
        out[name] = Mode(
            name,
            spec["description"],
            _builder(int(m["input_size"]), fields),
            fields.get("fit") == "pad",
            tuple(sorted(fields.items())),
        )
    return out


def backbone(m: dict[str, Any], code: Code) -> Backbone:
    """The `Backbone` a manifest describes, with its family's code."""
    return Backbone(
        name=m["name"],
        title=m["title"],
        weights=weights_source(m),
        input_size=int(m["input_size"]),
        modes=modes(m),
        default_mode=m["default_mode"],
        outputs=outputs(m),
        feature_output=m["feature_output"],
        logits_output=m.get("logits_output"),
        load_state=code.load_state,
        check_state=code.check_state,
        check_official=code.check_official,
        build_graph=code.build_graph,
        comparable_with=m["comparable_with"],
        aliases=tuple(m.get("aliases", ())),
        family=m.get("family", ""),
    )
