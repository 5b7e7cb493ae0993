"""The FID Inception V3: pytorch-fid's port of the TensorFlow 2015-12-05 graph (what every FID is computed with).

Weights: pytorch-fid's release `pt_inception-2015-12-05-6726825d.pth` (torch.hub names carry the first hex
digits of the file's sha256). Graph: `fidrs.model.build_fid_inception`. Outputs: `pool3` (2048, FID, KID,
precision/recall) and `logits_unbiased` (1008, the fc layer without its bias, torch-fidelity's Inception Score).
"""

from __future__ import annotations

from .. import _fidrs
from ..checkpoint import load_state_dict
from ..errors import WeightsError
from .base import Backbone, Mode, Output, StateDict, WeightsSource

SIZE = 299


def _preset(**fields) -> Mode:
    name, description = fields.pop("name"), fields.pop("description")
    uses_pad = fields.get("fit") == "pad"
    return Mode(
        name,
        description,
        lambda pad_color: _fidrs.Preprocessing(size=SIZE, fill=tuple(pad_color), **fields),
        uses_pad_color=uses_pad,
    )


MODES = {
    m.name: m
    for m in (
        _preset(
            name="pytorch-fid",
            description="pytorch-fid: u8/255, torch bilinear (no antialias) to 299, then 2x − 1",
            resize="torch-bilinear",
            unit="before-resize",
            mean=(0.5, 0.5, 0.5),
            std=(0.5, 0.5, 0.5),
        ),
        _preset(
            name="clean",
            description="clean-fid: Pillow bicubic per channel on floats, clipped to 0..255, then (x − 128)/128",
            resize="pil-bicubic-float",
            clamp=True,
            mean=(128.0,) * 3,
            std=(128.0,) * 3,
        ),
        _preset(
            name="tf1",
            description="TTUR / torch-fidelity: TF1 bilinear on 0..255, then (x − 128)/128",
            resize="tf1-bilinear",
            mean=(128.0,) * 3,
            std=(128.0,) * 3,
        ),
        _preset(
            name="pad",
            description="centred on a 299×299 canvas of --pad-color (larger images shrunk to fit), x/127.5 − 1",
            resize="pil-bicubic-float",
            fit="pad",
            clamp=True,
            mean=(127.5,) * 3,
            std=(127.5,) * 3,
        ),
    )
}


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
    name="inception",
    title="FID Inception V3 (pytorch-fid port of the TF 2015-12-05 weights)",
    weights=WeightsSource(
        url="https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth",
        filename="pt_inception-2015-12-05-6726825d.pth",
        sha256="6726825d",
        max_bytes=128 << 20,  # the real file is 95,628,359 bytes
        licence="Apache-2.0 (TensorFlow models; pytorch-fid)",
        citation="Heusel et al., GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash "
        "Equilibrium, NeurIPS 2017",
    ),
    input_size=SIZE,
    modes=MODES,
    default_mode="pytorch-fid",
    outputs=(
        Output("pool3", 2048, "the 2048-d pool3 features (FID)"),
        Output("logits_unbiased", 1008, "fc logits without the bias (torch-fidelity's Inception Score)"),
    ),
    feature_output="pool3",
    logits_output="logits_unbiased",
    graph_version=2,
    load_state=load_state_dict,
    check_state=_check_state,
    check_official=_check_state,
    build_graph=_build_graph,
    comparable_with="FID of pytorch-fid (mode pytorch-fid), clean-fid (clean), TTUR/torch-fidelity (tf1)",
)
