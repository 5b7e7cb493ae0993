"""The model manifests (`fidrs/models/<backbone>.toml`, the repository's top-level `models/`): per backbone, the
official weights (URL, file name, sha256 where published, size cap, licence, citation), input size,
preprocessing modes, outputs and the numbers they are comparable with. They ship inside the wheel; the backbone
modules read them and hold only code (converters, checks), never a URL or a hash."""

from __future__ import annotations

import sys
from functools import cache
from importlib.resources import files
from typing import Any

from .. import _fidrs
from ..errors import FidrsError
from .base import Mode, Output, WeightsSource

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.9/3.10
    import tomli as tomllib

_MODE_FIELDS = {"resize", "fit", "unit", "clamp", "mean", "std"}


@cache
def manifest(name: str) -> dict[str, Any]:
    """The parsed manifest of backbone `name` (packaged data: an unreadable one is a broken install)."""
    resource = files("fidrs") / "models" / f"{name}.toml"
    try:
        return tomllib.loads(resource.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise FidrsError(f"the model manifest {name}.toml is missing or unreadable ({e}): reinstall fidrs") from None


def names() -> list[str]:
    """Every packaged manifest."""
    return sorted(p.name[: -len(".toml")] for p in (files("fidrs") / "models").iterdir() if p.name.endswith(".toml"))


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
