"""What a backbone is: one network described as data (weights, converter, input, preprocessing modes, outputs,
which output each metric reads). The feature pass, the caches, the statistics and the CLI read only this."""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from .. import _fidrs
from ..errors import InvalidInputError

StateDict = Mapping[str, np.ndarray]


@dataclass(frozen=True)
class Output:
    """A named output of the ONNX graph: float32, N × dim."""

    name: str
    dim: int
    description: str


@dataclass(frozen=True)
class WeightsSource:
    """Where a backbone's official weights come from and how a file is recognised as them."""

    url: str
    filename: str
    # The sha256 (or the prefix a torch.hub file name carries) known in advance; None where the publisher gives
    # none: the first verified download's sha256 is recorded and a later file that differs is refused.
    sha256: str | None
    max_bytes: int  # a download growing past this is not the file
    licence: str
    citation: str


@dataclass(frozen=True)
class Mode:
    """A preprocessing preset: what reference tool it reproduces, and the native description it builds."""

    name: str
    description: str
    build: Callable[[tuple[int, int, int]], _fidrs.Preprocessing]  # pad colour → preprocessing
    uses_pad_color: bool = False
    spec: tuple[tuple[str, Any], ...] = ()  # the description's fields, sorted (part of the feature cache key)


@dataclass(frozen=True)
class Backbone:
    name: str
    title: str
    weights: WeightsSource
    input_size: int
    modes: Mapping[str, Mode]
    default_mode: str
    outputs: tuple[Output, ...]
    feature_output: str  # what FD, KID, precision/recall, memorisation and the report use
    logits_output: str | None  # class logits for the Inception Score; None: the backbone has none
    load_state: Callable[[Path], StateDict]  # read a checkpoint file (no code execution, bounded)
    check_state: Callable[[StateDict], None]  # structure of a usable checkpoint (keys, shapes, dtypes)
    check_official: Callable[[StateDict], None]  # ... and of the official file itself (downloads, the cache)
    build_graph: Callable[[StateDict], Any]  # → onnx.ModelProto
    comparable_with: str  # what the numbers of this backbone are comparable with (README, --help)
    aliases: tuple[str, ...] = field(default=())
    family: str = ""  # the module that holds its code (fidrs.backbones.<family>), or a plugin's module

    def mode(self, name: str | None) -> Mode:
        chosen = self.default_mode if name is None else name
        if chosen not in self.modes:
            raise InvalidInputError(
                f"backbone {self.name!r} has no preprocessing mode {chosen!r}: expected one of {sorted(self.modes)}"
            )
        return self.modes[chosen]

    def output(self, name: str) -> Output:
        return next(o for o in self.outputs if o.name == name)

    @property
    def feature_dim(self) -> int:
        return self.output(self.feature_output).dim

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(o.name for o in self.outputs)

    @property
    def converter_sha256(self) -> str:
        """The identity of the code that turns a checkpoint into this backbone's graph: the cached graph is kept
        under it, so a changed converter builds a new graph by itself (no version number to bump)."""
        return _converter_sha256(tuple(_source_file(f) for f in (self.load_state, self.build_graph)))


def _source_file(function: Callable) -> str:
    module = sys.modules.get(getattr(function, "__module__", "") or "")
    return getattr(module, "__file__", None) or ""


@cache
def _converter_sha256(plugin_files: tuple[str, ...]) -> str:
    """sha256 of every module of fidrs' own converters (the backbone families, the graph builders, the
    checkpoint readers; a change to any rebuilds every graph once) and of the modules a plugin's reader and
    converter live in. Where a source file cannot be read (a zipped install), the package version stands in."""
    package = Path(__file__).resolve().parent
    files = sorted({*package.glob("*.py"), package.parent / "checkpoint.py", *(Path(f) for f in plugin_files if f)})
    digest = hashlib.sha256()
    for path in files:
        try:
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
        except OSError:
            digest.update(f"{path.name}: fidrs {_fidrs.__version__}".encode())
    return digest.hexdigest()
