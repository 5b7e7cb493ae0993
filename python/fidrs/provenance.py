"""Where features came from (backbone, preprocessing mode, weights, graph, feature size), and the one check that
two sides are comparable: every metric of two sets, every merge and every score runs it before any arithmetic."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .display import display
from .errors import IncompatibleStatsError, InvalidInputError

# (field, what a difference in it means), in the order they are checked.
_FIELDS = (
    ("backbone", "backbones"),
    ("mode", "mode"),
    ("weights_sha256", "weights"),
    ("graph_sha256", "graphs (the same weights, but another or a modified ONNX graph)"),
)


@dataclass(frozen=True)
class Provenance:
    """What a set of features or statistics was computed with; None where it is not recorded (a pytorch-fid or
    clean-fid statistics file records only μ and Σ)."""

    backbone: str | None = None
    mode: str | None = None
    weights_sha256: str | None = None
    graph_sha256: str | None = None
    dim: int | None = None  # the feature size

    def describe(self) -> str:
        parts = [
            f"backbone {self.backbone or 'unknown'}",
            f"mode {self.mode or 'unknown'}",
            f"weights {self.weights_sha256[:12] + '…' if self.weights_sha256 else 'unknown'}",
        ]
        if self.graph_sha256:
            parts.append(f"graph {self.graph_sha256[:12]}…")
        if self.dim is not None:
            parts.append(f"{self.dim}-d")
        return ", ".join(parts)


def check_backbone_width(
    where: str, backbone: str | None, width: int | None, what: str = "statistics", claim: str = "records"
) -> None:
    """Refuse (InvalidInputError naming `where`) statistics or features whose recorded backbone can never give
    rows of their width: a mislabelled file would otherwise be reported as that backbone's FID. The width of a
    backbone's statistics and features is that of its feature output (`Backbone.feature_dim`: pool3 for the
    Inception, the CLS token for DINOv2, the embedding for CLIP), the only output fidrs makes statistics, merges,
    feature sets or embedding files of (the Inception's logits feed only the Inception Score, in memory; the
    feature cache keeps every output, but per graph, and is never read as statistics). A name this process does
    not know (a plugin not installed here) is not checked: its size is still compared with the other side's.
    Aliases resolve (`dinov2` is checked as `dinov2-vitl14`). `claim`: how `where` names the backbone
    ("records"; a reference whose layout or catalogue entry implies it says so)."""
    if backbone is None or width is None:
        return
    from . import backbones  # here: the registry's packaged backbones import much of fidrs

    try:
        known = backbones.get(backbone)
    except InvalidInputError:  # not registered in this process: nothing to check it against
        return
    if width != known.feature_dim:
        name = display(backbone) if known.name == backbone else f"{display(backbone)} ({known.name})"
        raise InvalidInputError(
            f"{display(where)}: {claim} backbone {name}, whose features ({known.feature_output}) are "
            f"{known.feature_dim}-d, but holds {width}-d {what}"
        )


def check_compatible(sides: Sequence[tuple[str, Provenance]], what: str = "statistics") -> None:
    """Refuse sides of different feature sizes, backbones, modes, weights or graphs (IncompatibleStatsError
    naming both sides), and any side whose recorded backbone cannot give its feature size (`check_backbone_width`:
    a Stats or FeatureSet made in Python; files are checked as they are read). A field one side does not record
    is not compared. Where both record the same graph identity, their networks are one: the weights are not
    compared (the same tensors as a `.pth` and as a `.safetensors` are two files with two sha256s, and build one
    graph)."""
    if not sides:
        return
    for label, side in sides:
        check_backbone_width(label, side.backbone, side.dim, "features" if what == "feature sets" else what)
    label_a, a = sides[0]
    for label_b, b in sides[1:]:
        where = f" ({display(label_a)}: {a.describe()}; {display(label_b)}: {b.describe()})"
        if a.dim is not None and b.dim is not None and a.dim != b.dim:
            raise IncompatibleStatsError(
                f"{what} have different feature sizes: {a.dim} ({a.backbone or 'unknown backbone'}) vs {b.dim} "
                f"({b.backbone or 'unknown backbone'})" + where
            )
        same_graph = a.graph_sha256 is not None and a.graph_sha256 == b.graph_sha256
        for field, label in _FIELDS:
            if field == "weights_sha256" and same_graph:
                continue
            mine, theirs = getattr(a, field), getattr(b, field)
            if mine is not None and theirs is not None and mine != theirs:
                raise IncompatibleStatsError(
                    f"{what} were computed with different {label}: {mine!r} vs {theirs!r}" + where
                )
