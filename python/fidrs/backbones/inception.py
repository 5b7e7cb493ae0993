"""The FID Inception V3 family: pytorch-fid's port of the TensorFlow 2015-12-05 graph (what every FID is computed
with).

Weights: pytorch-fid's release `pt_inception-2015-12-05-6726825d.pth` (torch.hub names carry the first hex
digits of the file's sha256). Graph: `inception_graph.build_fid_inception`. Outputs: `pool3` (2048, FID, KID,
precision/recall) and `logits_unbiased` (1008, the fc layer without its bias, torch-fidelity's Inception Score).
Everything that is data (weights source, input size, preprocessing modes, outputs) is in `models/inception.toml`.
"""

from __future__ import annotations

from ..checkpoint import load_state_dict
from ..errors import WeightsError
from . import manifest
from .base import Backbone, StateDict


def _check_state(state: StateDict) -> None:
    """The cheap part of the structure check; `build_fid_inception` checks every tensor's shape."""
    fc = state.get("fc.weight")
    if fc is None or tuple(fc.shape) != (1008, 2048):
        found = "no fc.weight" if fc is None else f"fc.weight {tuple(fc.shape)}"
        raise WeightsError(f"not a pytorch-fid FID Inception checkpoint ({found}; expected fc.weight (1008, 2048))")


def _build_graph(state: StateDict):
    from .inception_graph import build_fid_inception  # onnx is imported only when a graph is built

    return build_fid_inception(state)


CODE = manifest.Code(load_state_dict, _check_state, _check_state, _build_graph)


def backbones() -> list[Backbone]:
    """Every packaged manifest of this family (models/inception.toml)."""
    return [manifest.backbone(manifest.manifest(name), CODE) for name in manifest.of_family("inception")]
