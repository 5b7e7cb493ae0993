"""Where features came from (backbone, preprocessing mode, weights, graph, feature size), and the one check that
two sides are comparable: every metric of two sets, every merge and every score runs it before any arithmetic."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .display import display
from .errors import IncompatibleStatsError

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


def check_compatible(sides: Sequence[tuple[str, Provenance]], what: str = "statistics") -> None:
    """Refuse sides of different feature sizes, backbones, modes, weights or graphs (IncompatibleStatsError
    naming both sides). A field one side does not record is not compared."""
    if not sides:
        return
    label_a, a = sides[0]
    for label_b, b in sides[1:]:
        where = f" ({display(label_a)}: {a.describe()}; {display(label_b)}: {b.describe()})"
        if a.dim is not None and b.dim is not None and a.dim != b.dim:
            raise IncompatibleStatsError(
                f"{what} have different feature sizes: {a.dim} ({a.backbone or 'unknown backbone'}) vs {b.dim} "
                f"({b.backbone or 'unknown backbone'})" + where
            )
        for field, label in _FIELDS:
            mine, theirs = getattr(a, field), getattr(b, field)
            if mine is not None and theirs is not None and mine != theirs:
                raise IncompatibleStatsError(
                    f"{what} were computed with different {label}: {mine!r} vs {theirs!r}" + where
                )
