"""What a backbone is: one network described as data (weights, converter, input, preprocessing modes, outputs,
which output each metric reads). The feature pass, the caches, the statistics and the CLI read only this."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
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
    graph_version: int  # part of every cache key: bump when the graph built from the same weights changes
    load_state: Callable[[Path], StateDict]  # read a checkpoint file (no code execution, bounded)
    check_state: Callable[[StateDict], None]  # structure of a usable checkpoint (keys, shapes, dtypes)
    check_official: Callable[[StateDict], None]  # ... and of the official file itself (downloads, the cache)
    build_graph: Callable[[StateDict], Any]  # → onnx.ModelProto
    comparable_with: str  # what the numbers of this backbone are comparable with (README, --help)
    aliases: tuple[str, ...] = field(default=())

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
