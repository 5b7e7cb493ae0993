"""The preprocessing mode the images of a comparison are computed in when an input holds statistics (a statistics
or reference file, `ref:NAME`).

A value is comparable with numbers computed against a reference only if the images went through the
preprocessing the reference was made with. For each input holding statistics of the backbone in use,
`references.decide_mode` turns how they were made (its catalogue entry, the file's own record, a layout only
one tool writes, or the user's `ref_mode`) and the user's explicit `mode` into the mode the images are computed
in: the reference's by default; an explicit mode that contradicts it is refused (IncompatibleStatsError) unless
`allow_mode_mismatch`, which keeps the asked mode and notes it in the result. A file that records nothing keeps
the options' mode (and the Evaluator's warning that its mode is unknown)."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from . import deferred
from .errors import IncompatibleStatsError, InvalidInputError, ModeMismatchWarning
from .options import Options, Resolved
from .references import ModeDecision, decide_mode
from .sources import Source
from .statistics import Stats


@dataclass(frozen=True)
class Side:
    label: str
    source: Source
    decision: ModeDecision | None  # None: the input holds no statistics of the backbone (images)


@dataclass(frozen=True)
class Plan:
    """resolved: the options the images are computed with; sides: each input and its mode decision; notes: the
    contradictions `allow_mode_mismatch` let through, for the result."""

    resolved: Resolved
    sides: tuple[Side, ...]
    notes: tuple[str, ...]
    computes_images: bool

    def side(self, label: str) -> Side | None:
        return next((s for s in self.sides if s.label == label), None)

    def mismatched(self, label: str) -> bool:
        """The side's statistics were made in another mode than the images are computed in (allowed)."""
        side = self.side(label)
        d = side.decision if side else None
        if not self.computes_images or d is None or d.reference_mode is None:
            return False
        return d.reference_mode != self.resolved.mode.name

    def compared(self, label: str, stats: Stats) -> Stats:
        """The statistics of a side as they are checked and compared: the mode the user supplied (`ref_mode`)
        recorded; an allowed mismatch's mode left out of the check (`reference_mode` keeps it for the result)."""
        side = self.side(label)
        if side is None or side.decision is None or side.decision.reference_mode is None:
            return stats
        mode = None if self.mismatched(label) else side.decision.reference_mode
        return stats if stats.mode == mode else deferred.replace(stats, mode=mode)

    def reference_mode(self, label: str) -> str | None:
        side = self.side(label)
        return side.decision.reference_mode if side and side.decision else None

    def references(self) -> dict[str, dict[str, Any]]:
        """What each statistics input is and how its mode was decided, for the result's JSON."""
        out = {}
        for side in self.sides:
            if side.decision is None:
                continue
            out[side.label] = {
                **side.source.describe(),
                "reference_mode": side.decision.reference_mode,
                "images_mode": self.resolved.mode_label,
                "mode_mismatch": self.mismatched(side.label),
            }
        return out


def plan(resolved: Resolved, sides: Sequence[tuple[str, Source]], *, computes_images: bool | None = None) -> Plan:
    """The mode decision for `sides` ((label, source) of each input). `computes_images`: whether any image is
    computed (default: some side holds no statistics of the backbone); when none is, the explicit mode does not
    apply: the statistics alone are compared, by their recorded modes."""
    o = resolved.options
    backbone = resolved.backbone.name
    held = {label: source.precomputed(backbone) is not None for label, source in sides}
    if computes_images is None:
        computes_images = not all(held.values())
    decided = []
    for label, source in sides:
        origin = source.origin(backbone)
        if origin is None:
            decided.append(Side(label, source, None))
            continue
        decision = decide_mode(
            origin,
            mode=o.mode if computes_images else None,
            ref_mode=o.ref_mode,
            allow_mode_mismatch=o.allow_mode_mismatch,
            available_modes=resolved.backbone.modes if computes_images else None,
            label=label,
        )
        decided.append(Side(label, source, decision))
    if o.ref_mode is not None and all(s.decision is None for s in decided):
        raise InvalidInputError(
            "ref_mode states how a statistics input was made; none of the inputs is one "
            f"({', '.join(label for label, _ in sides)})"
        )
    modes = {s.label: s.decision.mode for s in decided if s.decision is not None and s.decision.mode is not None}
    if computes_images and len(set(modes.values())) > 1:
        raise IncompatibleStatsError(
            "the statistics inputs were made in different modes ("
            + "; ".join(f"{label}: {mode}" for label, mode in modes.items())
            + "): no one preprocessing of the images is comparable with both"
        )
    if computes_images and modes:
        mode = next(iter(modes.values()))
        if mode != resolved.mode.name:
            resolved = Options.of(o, mode=mode).resolve()
    notes = tuple(s.decision.note for s in decided if s.decision is not None and s.decision.note)
    for note in notes:
        warnings.warn(note, ModeMismatchWarning, stacklevel=3)
    return Plan(resolved, tuple(decided), notes, computes_images)


__all__ = ["Plan", "Side", "plan"]
