"""What a reference file holds: statistics per backbone, each with its provenance, and on demand its images or
features."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from .. import deferred
from ..deferred import DeferredField
from ..display import display
from ..errors import IncompatibleStatsError
from ..provenance import check_backbone_width
from ..statistics import Stats
from .arrays import LazyArray
from .provenance import ReferenceProvenance

UNKNOWN_BACKBONE = "unknown"


@dataclass(frozen=True)
class ReferenceEntry:
    """One set of statistics. label: the file's own name for it (`mu,sigma` in an .npz, `fid` / `fd_dinov2` in
    EDM2's pickle, `feats` in clean-fid's KID file, the member of a feature array); mu, sigma: float64; n: the
    number of images (None: the file does not say); stored: how the file stores them (dtypes); stats: a fidrs
    file's statistics as it stores them."""

    label: str
    mu: np.ndarray
    sigma: np.ndarray = DeferredField()  # type: ignore[assignment]  # a file's Σ is read again when asked for
    n: int | None
    provenance: ReferenceProvenance
    stored: str
    stats: Stats | None = None  # a fidrs file's own statistics (moments, graph identity): given back as they are
    # sigma as checked and factorised on reading (`check_statistics`): the Fréchet distance reuses it.
    covariance: Any = field(default=None, repr=False, compare=False)

    @property
    def backbone(self) -> str:
        return self.provenance.backbone or UNKNOWN_BACKBONE

    def to_stats(self) -> Stats:
        """As fidrs statistics (mode and backbone from the provenance: None where unknown)."""
        p = self.provenance
        if self.stats is not None and (self.stats.mode, self.stats.backbone) == (p.mode, p.backbone):
            return self.stats
        sigma = deferred.raw(self, "sigma")  # not read here: the distance needs only the factor
        return Stats(self.mu, sigma, self.n, p.mode, p.weights, None, p.backbone, covariance=self.covariance)


@dataclass(frozen=True)
class ReferenceFile:
    """path, format (a key of `readers.FORMATS`), entries by backbone (`unknown` when the file does not say),
    images (ADM's `arr_0`, read on demand), features (a KID or feature file's rows, read on demand), spatial
    (ADM's `mu_s`/`sigma_s`, the sFID statistics: kept, not used), notes (what a report should say)."""

    path: str
    format: str
    entries: dict[str, ReferenceEntry]
    images: LazyArray | None = None
    features: LazyArray | None = None
    spatial: tuple[np.ndarray, np.ndarray] | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    @classmethod
    def of(cls, path: str, format: str, entries: list[ReferenceEntry], **kwargs) -> ReferenceFile:
        """Every reader's and `with_provenance`'s way to a ReferenceFile: one entry per backbone, each of the
        width its backbone gives (whether the file records it, its layout implies it or a catalogue says it)."""
        by_backbone: dict[str, ReferenceEntry] = {}
        for entry in entries:
            _check_width(path, entry)
            if entry.backbone in by_backbone:
                raise IncompatibleStatsError(
                    f"{display(path)}: {by_backbone[entry.backbone].label!r} and {entry.label!r} are both "
                    f"statistics of backbone {entry.backbone}"
                )
            by_backbone[entry.backbone] = entry
        return cls(path, format, by_backbone, **kwargs)

    def entry(self, backbone: str | None = None) -> ReferenceEntry:
        """The statistics of `backbone` (a name or alias: `dinov2` = `dinov2-vitl14`); None: the file's only
        ones. A file whose only statistics have no recorded backbone gives those (their size is checked when they
        are compared, as for any foreign file)."""
        if not self.entries:
            raise IncompatibleStatsError(f"{display(self.path)}: holds no statistics (only images); compute them")
        if backbone is None:
            if len(self.entries) == 1:
                return next(iter(self.entries.values()))
            raise IncompatibleStatsError(
                f"{display(self.path)}: holds statistics of several backbones ({', '.join(self.entries)}); "
                "choose one with --backbone"
            )
        from .. import backbones

        name = backbones.get(backbone).name
        if name in self.entries:
            return self.entries[name]
        if set(self.entries) == {UNKNOWN_BACKBONE}:
            return self.entries[UNKNOWN_BACKBONE]
        raise IncompatibleStatsError(
            f"{display(self.path)}: holds statistics of {', '.join(self.entries)}, none of backbone {name}"
        )

    def with_provenance(self, by_label: dict[str, ReferenceProvenance], note: str | None = None) -> ReferenceFile:
        """The same file with the provenance a catalogue gives each entry (by its label); every entry must be
        covered, and the catalogue's backbone must agree with any the file records."""
        entries = []
        for entry in self.entries.values():
            if entry.label not in by_label:
                raise IncompatibleStatsError(
                    f"{display(self.path)}: holds statistics {entry.label!r}, which its catalogue entry does not "
                    "describe"
                )
            given = by_label[entry.label]
            recorded = entry.provenance
            for name in ("backbone", "mode", "n"):
                mine, theirs = getattr(recorded, name), getattr(given, name)
                if mine is not None and theirs is not None and mine != theirs:
                    raise IncompatibleStatsError(
                        f"{display(self.path)}: {entry.label!r} records {name} {mine}, its catalogue entry says "
                        f"{theirs}"
                    )
            n = recorded.n if recorded.n is not None else given.n
            provenance = replace(given, n=n, weights=recorded.weights)
            entries.append(deferred.replace(entry, n=n, provenance=provenance))
        notes = self.notes + ((note,) if note else ())
        return ReferenceFile.of(
            self.path,
            self.format,
            entries,
            images=self.images,
            features=self.features,
            spatial=self.spatial,
            notes=notes,
        )


def _check_width(path: str, entry: ReferenceEntry) -> None:
    p = entry.provenance
    if p.source.startswith("catalogue:"):
        claim = f"its catalogue entry ({p.source.partition(':')[2]}) gives"
    elif p.source == "format":
        claim = f"is in {p.tool or 'a tool'}'s layout, which implies"
    else:
        claim = "records"
    where = path if entry.label == "mu,sigma" else f"{path} [{entry.label}]"
    check_backbone_width(where, p.backbone, int(entry.mu.size), claim=claim)


__all__ = ["UNKNOWN_BACKBONE", "ReferenceEntry", "ReferenceFile"]
