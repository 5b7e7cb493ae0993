"""The FID Inception V3: pytorch-fid's port of the TensorFlow 2015-12-05 graph (what every FID is computed with).

Weights: pytorch-fid's release `pt_inception-2015-12-05-6726825d.pth` (torch.hub names carry the first hex
digits of the file's sha256). Graph: `fidrs.model.build_fid_inception`. Outputs: `pool3` (2048, FID, KID,
precision/recall) and `logits_unbiased` (1008, the fc layer without its bias, torch-fidelity's Inception Score).
Everything that is data (weights source, input size, preprocessing modes, outputs) is in `models/inception.toml`.
"""

from __future__ import annotations

from ..checkpoint import load_state_dict
from ..errors import WeightsError
from . import manifest
from .base import Backbone, StateDict

_MANIFEST = manifest.manifest("inception")
SIZE = int(_MANIFEST["input_size"])
MODES = manifest.modes(_MANIFEST)


def _check_state(state: StateDict) -> None:
    """The cheap part of the structure check; `build_fid_inception` checks every tensor's shape."""
    fc = state.get("fc.weight")
    if fc is None or tuple(fc.shape) != (1008, 2048):
        found = "no fc.weight" if fc is None else f"fc.weight {tuple(fc.shape)}"
        raise WeightsError(f"not a pytorch-fid FID Inception checkpoint ({found}; expected fc.weight (1008, 2048))")


def _build_graph(state: StateDict):
    from ..model import build_fid_inception

    return build_fid_inception(state)


INCEPTION = Backbone(
    name=_MANIFEST["name"],
    title=_MANIFEST["title"],
    weights=manifest.weights_source(_MANIFEST),
    input_size=SIZE,
    modes=MODES,
    default_mode=_MANIFEST["default_mode"],
    outputs=manifest.outputs(_MANIFEST),
    feature_output=_MANIFEST["feature_output"],
    logits_output=_MANIFEST.get("logits_output"),
    graph_version=2,
    load_state=load_state_dict,
    check_state=_check_state,
    check_official=_check_state,
    build_graph=_build_graph,
    comparable_with=_MANIFEST["comparable_with"],
    aliases=tuple(_MANIFEST["aliases"]),
)
