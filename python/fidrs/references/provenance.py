"""How a reference's statistics were made, and the preprocessing mode fidrs must compute the other side with.

A published number is comparable only with features made the way its reference was made: ADM's, EDM's,
EDM2's `fid` and TTUR's statistics come from the TF1-compatible Inception preprocessing (`tf1`), clean-fid's
from the mode in the file's name, EDM2's `fd_dinov2` from its `torch` resize (`edm2`). The provenance says
which; `decide_mode` turns it and what the user asked for into the mode to use, or refuses a contradiction.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from ..errors import IncompatibleStatsError

# Where a provenance comes from, from most to least authoritative.
SOURCES = ("catalogue", "file", "format", "user", "unknown")


@dataclass(frozen=True)
class ReferenceProvenance:
    """tool: what made the statistics (`adm`, `clean-fid`, `edm`, `edm2`, `ttur`, `fidrs`); backbone: fidrs'
    name of the network (`inception`, `dinov2-vitl14`); mode: fidrs' name of the preprocessing; weights: the
    checkpoint's sha256 where known (fidrs files), else None; n: the number of images; source: where this
    came from (`catalogue:<name>`, `file` = metadata recorded in it, `format` = implied by a layout only one
    tool writes, `user` = --ref-mode, `unknown`). Any field may be None: not known."""

    tool: str | None = None
    backbone: str | None = None
    mode: str | None = None
    weights: str | None = None
    n: int | None = None
    source: str = "unknown"

    @property
    def known(self) -> bool:
        """The preprocessing mode is known."""
        return self.mode is not None

    def describe(self) -> str:
        parts = [f"made by {self.tool}" if self.tool else "made by an unknown tool"]
        if self.backbone:
            parts.append(f"backbone {self.backbone}")
        parts.append(f"mode {self.mode}" if self.mode else "mode unknown")
        if self.n is not None:
            parts.append(f"n = {self.n}")
        return ", ".join(parts) + f" (provenance: {self.source})"


UNKNOWN = ReferenceProvenance()


@dataclass(frozen=True)
class ModeDecision:
    """mode: the mode to compute the other side with (None: nothing is known or asked, use the backbone's
    default); reference_mode: the reference's own mode (None: unknown); note: set when a contradiction was
    allowed (`allow_mode_mismatch`), for the result's JSON."""

    mode: str | None
    reference_mode: str | None
    note: str | None = None

    @property
    def known(self) -> bool:
        return self.reference_mode is not None


def with_user_mode(
    provenance: ReferenceProvenance,
    ref_mode: str | None,
    *,
    allow_mode_mismatch: bool = False,
    label: str = "the reference",
) -> tuple[ReferenceProvenance, str | None]:
    """The provenance once the user has said how the reference was made (`--ref-mode`), and a note when that
    contradicts a known mode and `allow_mode_mismatch` lets the user's word stand; without it, a contradiction
    is IncompatibleStatsError."""
    if ref_mode is None or ref_mode == provenance.mode:
        return provenance, None
    if provenance.mode is None:
        return replace(provenance, mode=ref_mode, source="user"), None
    if not allow_mode_mismatch:
        raise IncompatibleStatsError(
            f"{label}: --ref-mode {ref_mode} contradicts its provenance ({provenance.describe()}); drop --ref-mode, "
            "or pass --allow-mode-mismatch to take your word over it"
        )
    note = f"{label}: --ref-mode {ref_mode} overrides its recorded mode {provenance.mode} (--allow-mode-mismatch)"
    return replace(provenance, mode=ref_mode, source="user"), note


def decide_mode(
    provenance: ReferenceProvenance | None,
    *,
    mode: str | None = None,
    ref_mode: str | None = None,
    allow_mode_mismatch: bool = False,
    available_modes: Iterable[str] | None = None,
    label: str = "the reference",
) -> ModeDecision:
    """The mode to compute the images compared with a reference in.

    - the reference's mode known (its provenance, or `ref_mode`, the user's statement of it): that mode when
      `mode` (the user's explicit mode) is None or agrees; a different `mode` is IncompatibleStatsError unless
      `allow_mode_mismatch`, which keeps `mode` and returns a note saying the value is not comparable;
    - unknown: `mode` as given (None = the backbone's default); the caller warns that the mode is unknown.
    `available_modes` (the backbone's modes): a reference needing a mode this fidrs does not have is refused.
    """
    provenance, user_note = with_user_mode(
        provenance or UNKNOWN, ref_mode, allow_mode_mismatch=allow_mode_mismatch, label=label
    )
    reference_mode = provenance.mode
    if reference_mode is None:
        return ModeDecision(mode, None, user_note)
    notes = [user_note] if user_note else []
    chosen = reference_mode
    if mode is not None and mode != reference_mode:
        if not allow_mode_mismatch:
            raise IncompatibleStatsError(
                f"{label} was made in mode {reference_mode} ({provenance.describe()}), but --mode {mode} was asked "
                f"for: its value would not be comparable with numbers computed against this reference. Drop --mode "
                f"(fidrs then computes the images in {reference_mode}), or pass --allow-mode-mismatch"
            )
        chosen = mode
        notes.append(
            f"{label} was made in mode {reference_mode}; the images were computed in {mode} as "
            "--allow-mode-mismatch allowed: the value is not comparable with published numbers"
        )
    if available_modes is not None:
        modes = list(available_modes)
        if chosen not in modes:
            raise IncompatibleStatsError(
                f"{label} needs mode {chosen} ({provenance.describe()}), which this backbone does not have "
                f"(its modes: {', '.join(modes)})"
            )
    return ModeDecision(chosen, reference_mode, "; ".join(notes) or None)


__all__ = ["SOURCES", "UNKNOWN", "ModeDecision", "ReferenceProvenance", "decide_mode", "with_user_mode"]
