"""Feature statistics (μ, Σ, n) with the backbone, mode, weights and graph they came from; `.npz` files
compatible with pytorch-fid and clean-fid (`mu`, `sigma`)."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from . import _fidrs
from .deferred import DeferredField
from .display import display
from .errors import EmptyInputError, IncompatibleStatsError, InvalidInputError, SmallSampleWarning
from .files import atomic_output, read_npz
from .provenance import Provenance, check_backbone_width, check_compatible

# 3: may hold several backbones' statistics (`save_all`). 2: records the backbone. Version-1 files (fidrs before
# backbones) were all computed with the Inception.
FORMAT_VERSION = 3

# The covariance checks (finite, symmetric, positive semi-definite up to round-off) are the Rust core's
# `Covariance`, whose tolerances are derived in src/covariance.rs: relative to the second moments Σ_ii + μ_i²
# (the one-pass moments cancel around μ, so a zero covariance of identical images is ±3e-15 round-off), 1e-9
# for statistics stored in float64 and 1e-5 for float32 (each entry rounded by 6e-8). Its factorisation is
# kept, so the Fréchet distance that follows does not factorise again.
# The stored sums must reproduce mu and sigma to 1e-8 of their scale: the mean and covariance are recomputed
# from them in float64 with ~n·u = 1e-11 relative round-off at n = 1e5, far below; an edit is far above.
_MOMENTS_RTOL = 1e-8

# The largest sample count a statistics file may record: float64 counts every integer exactly up to 2^53 (the mean
# divides by n), and no image set comes near it (9e15 images). Larger counts, and merges whose total would exceed
# it, are refused rather than wrapped round or rounded.
MAX_SAMPLES = 2**53


def _stored_as(array: np.ndarray) -> str:
    return "float32" if array.dtype.itemsize <= 4 else "float64"


def check_statistics(
    path: str, mu: np.ndarray, sigma: np.ndarray, one_pass_samples: int | None = None, *, two_pass: bool = False
) -> _fidrs.Covariance:
    """Refuse arrays that are no mean and covariance: wrong shapes, non-finite values, a non-symmetric or
    indefinite Σ. `one_pass_samples`: n, when Σ came from one-pass moments (fidrs' files). `two_pass`: Σ came
    from `np.cov` (pytorch-fid, clean-fid, ADM, TTUR files; feature files, which fidrs reads in two passes), so
    its round-off is relative to Σ itself and the tolerances leave the mean out: around a mean of 1e8, one-pass
    round-off would excuse a Σ of −5·I, which then gave a negative FID that passed a gate. Returns the checked,
    factorised covariance (for `frechet_distance`)."""
    where = display(path)
    if mu.ndim != 1 or sigma.shape != (mu.size, mu.size) or mu.size == 0:
        raise InvalidInputError(f"{where}: mu {mu.shape} and sigma {sigma.shape} do not fit together")
    if mu.size > _fidrs.MAX_FEATURE_WIDTH:  # a narrow dtype fits a wider Σ in the 1 GiB member cap (uint8: 32,768)
        raise InvalidInputError(
            f"{where}: statistics of {mu.size} features, over fidrs' limit of {_fidrs.MAX_FEATURE_WIDTH} (their "
            f"float64 covariance would not fit a statistics file)"
        )
    return _fidrs.Covariance(
        np.asarray(sigma, dtype=np.float64),
        np.asarray(mu, dtype=np.float64),
        samples=one_pass_samples,
        two_pass=two_pass,
        stored_as=_stored_as(sigma),
        name=f"{where}: sigma",
        mean_name=f"{where}: mu",
    )


# A `version` member is one number: its header and data are a few hundred bytes.
_MAX_VERSION_BYTES = 1 << 10


def _check_format_version(path: str, version: np.ndarray) -> None:
    """A fidrs file's `version`: a whole number from 1 to FORMAT_VERSION. A later one was written by a newer fidrs,
    whose members this one may read wrongly (refused, not guessed)."""
    value = version[()] if isinstance(version, np.ndarray) and version.shape == () else None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 1:
        raise InvalidInputError(f"{display(path)}: version {version!r} is not a statistics format number")
    if value > FORMAT_VERSION:
        raise InvalidInputError(
            f"{display(path)}: statistics format {int(value)}, written by a newer fidrs; this one reads formats up "
            f"to {FORMAT_VERSION}"
        )


def _check_sample_count(path: str, n) -> int:
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)) or n < 2:
        raise InvalidInputError(f"{display(path)}: n = {n!r} is not a sample count of at least 2")
    if int(n) > MAX_SAMPLES:
        raise InvalidInputError(f"{display(path)}: n = {int(n)} is over the largest sample count, 2^53 = {MAX_SAMPLES}")
    return int(n)


def _check_moments(path: str, mu: np.ndarray, sigma: np.ndarray, moments: _fidrs.Moments) -> None:
    """The stored sums must be the moments of the stored mean and covariance (else one was edited)."""
    mu_err, cov_err, mu_scale, cov_scale = moments.deviation(mu, sigma)
    mu_scale += np.finfo(np.float64).tiny
    cov_scale += np.finfo(np.float64).tiny
    if mu_err > _MOMENTS_RTOL * mu_scale or cov_err > _MOMENTS_RTOL * cov_scale:
        raise InvalidInputError(
            f"{display(path)}: the stored sums and n disagree with mu/sigma "
            f"(max differences {mu_err:.3g} and {cov_err:.3g}): the file was altered"
        )


def check_sample_count(n: int, dim: int, label: str, stacklevel: int = 3) -> None:
    """At least 2 images for a covariance; fewer than d gives a singular one (warned)."""
    if n == 0:
        raise EmptyInputError(f"{display(label)}: no image could be used")
    if n < 2:
        raise InvalidInputError(
            f"{display(label)}: a single image gives no covariance; a Fréchet distance needs at least 2"
        )
    if n < dim:
        warnings.warn(
            f"{display(label)}: {n} images < {dim} feature dimensions: the covariance is singular and "
            "the Fréchet distance is biased upwards; compare values only at equal n",
            SmallSampleWarning,
            stacklevel=stacklevel + 1,
        )


@dataclass
class Stats:
    mu: np.ndarray
    sigma: np.ndarray = DeferredField()  # type: ignore[assignment]  # a file's Σ is read again when asked for
    n: int | None = None
    mode: str | None = None
    weights_sha256: str | None = None
    moments: _fidrs.Moments | None = None
    backbone: str | None = None  # None: unknown (pytorch-fid, clean-fid files)
    graph_sha256: str | None = None  # the graph's identity (fidrs.identity); None: not recorded
    # sigma checked and factorised when loaded (`check_statistics`): the distance reuses the factorisation.
    covariance: _fidrs.Covariance | None = dataclasses.field(default=None, repr=False, compare=False)

    @classmethod
    def from_moments(
        cls,
        moments: _fidrs.Moments,
        mode: str | None,
        weights_sha256: str | None,
        backbone: str | None,
        graph_sha256: str | None = None,
    ) -> Stats:
        return cls(
            moments.mean(), moments.covariance(), moments.n, mode, weights_sha256, moments, backbone, graph_sha256
        )

    def members(self) -> dict[str, object]:
        """What a statistics file stores of these statistics: `mu`, `sigma` and fidrs' metadata."""
        extra = {}
        if self.moments is not None:
            extra = {"sum": self.moments.sum, "sum_outer": self.moments.sum_outer}
        meta = {
            k: v
            for k, v in (
                ("n", self.n),
                ("mode", self.mode),
                ("weights_sha256", self.weights_sha256),
                ("backbone", self.backbone),
                ("graph_sha256", self.graph_sha256),
            )
            if v is not None
        }
        return {"mu": self.mu, "sigma": self.sigma, **meta, **extra}

    def save(self, path: str | os.PathLike) -> None:
        """Write a `.npz` with `mu` and `sigma` (readable by pytorch-fid) plus fidrs' metadata."""
        save_all(path, [self])

    @classmethod
    def load(cls, path: str | os.PathLike, backbone: str | None = None) -> Stats:
        """Read `.npz` statistics (fidrs, pytorch-fid, clean-fid, ADM), refusing anything that is not a mean
        and a covariance, and fidrs files whose stored moments disagree with them. `backbone` (a registered
        name): the statistics of that backbone in a file of several (`save_all`); None: the file's first (its
        top-level `mu`/`sigma`)."""
        path = os.fspath(path)
        # The format first: a newer one is named as such, whatever else it changed (its backbones list, members).
        version = read_npz(path, keys=["version"], max_total_bytes=_MAX_VERSION_BYTES)
        if "version" in version:
            _check_format_version(path, version["version"])
        names = backbones_in(path)
        if backbone is None or not names or backbone == names[0]:
            prefix = ""
        elif backbone in names:
            prefix = backbone + SEPARATOR
        else:
            raise IncompatibleStatsError(
                f"{display(path)}: holds statistics of {', '.join(names)}, none of backbone {backbone}"
            )
        from .references.arrays import MAX_STATS_FILE_BYTES  # here: the references package imports this module

        data = read_npz(
            path, keys=[prefix + key for key in (*_MEMBERS, "version")], max_total_bytes=MAX_STATS_FILE_BYTES
        )
        fields = {key: data[prefix + key] for key in _MEMBERS if prefix + key in data}
        stats = cls._from_members(path if not prefix else f"{path} [{backbone}]", fields, "version" in data, data)
        if names and stats.backbone != (backbone if prefix else names[0]):
            raise InvalidInputError(
                f"{display(path)}: lists backbones {', '.join(names)} but its {prefix or 'top-level '}statistics "
                f"record backbone {stats.backbone!r}"
            )
        return stats

    @classmethod
    def _from_members(cls, path: str, data: dict, versioned: bool, listing: dict) -> Stats:
        if "mu" not in data or "sigma" not in data:
            raise InvalidInputError(
                f"{display(path)}: statistics file needs 'mu' and 'sigma', has {sorted(listing['__files__'])}"
            )
        for key in ("mu", "sigma", "sum", "sum_outer"):
            if key in data and data[key].dtype.kind not in "fiu":
                raise InvalidInputError(f"{display(path)}: {key} has dtype {data[key].dtype}, expected numbers")
        n = _check_sample_count(path, data["n"][()]) if "n" in data else None
        # fidrs' own files (their moments stored beside) hold one-pass statistics of n samples.
        one_pass = n if "sum" in data and "sum_outer" in data else None
        covariance = check_statistics(path, data["mu"], data["sigma"], one_pass)
        mu = np.asarray(data["mu"], dtype=np.float64)
        sigma = np.asarray(data["sigma"], dtype=np.float64)
        mode = _text(path, data, "mode")
        sha = _text(path, data, "weights_sha256")
        backbone = _text(path, data, "backbone")
        graph = _text(path, data, "graph_sha256")
        if backbone is None and sha is not None and versioned and mu.size == 2048:
            backbone = "inception"  # a fidrs file from before backbones: every one was the Inception's
        check_backbone_width(path, backbone, mu.size)  # before the moments: the label is wrong whatever they say
        moments = None
        if "sum" in data or "sum_outer" in data:
            if n is None or "sum" not in data or "sum_outer" not in data:
                raise InvalidInputError(f"{display(path)}: moments need n, sum and sum_outer together")
            try:
                moments = _fidrs.Moments.from_parts(
                    n,
                    np.ascontiguousarray(data["sum"], dtype=np.float64),
                    np.ascontiguousarray(data["sum_outer"], dtype=np.float64),
                )
            except (InvalidInputError, ValueError, TypeError) as e:
                raise InvalidInputError(f"{display(path)}: unusable moments ({e})") from None
            _check_moments(path, mu, sigma, moments)
        return cls(mu, sigma, n, mode, sha, moments, backbone, graph, covariance)

    @property
    def provenance(self) -> Provenance:
        return Provenance(self.backbone, self.mode, self.weights_sha256, self.graph_sha256, int(self.mu.size))

    def check_compatible(self, other: Stats, labels: tuple[str, str] = ("a", "b")) -> None:
        """Refuse to compare statistics of different backbones, feature sizes, preprocessing modes, weights or
        graphs (IncompatibleStatsError naming both sides by `labels`)."""
        check_compatible([(labels[0], self.provenance), (labels[1], other.provenance)])

    def moments_sha256(self) -> str | None:
        """A digest of the raw moments (n, sum, sum_outer): two shards with the same one hold the same images
        (a copy of one shard); None without moments."""
        if self.moments is None:
            return None
        digest = hashlib.sha256(int(self.moments.n).to_bytes(8, "little"))
        for part in (self.moments.sum, self.moments.sum_outer):
            digest.update(np.ascontiguousarray(part, dtype="<f8").tobytes())
        return digest.hexdigest()

    def merge(self, other: Stats, labels: tuple[str, str] = ("a", "b")) -> Stats:
        """Statistics of the union of both sample sets (needs the raw moments of both). Sample sets must be
        disjoint: two shards with the same moments are one shard given twice (a copy), and are refused rather
        than counted twice."""
        self.check_compatible(other, labels)
        if self.moments is None or other.moments is None:
            missing = labels[0] if self.moments is None else labels[1]
            raise InvalidInputError(
                f"{display(missing)}: merging needs statistics saved with their moments (sum, sum_outer)"
            )
        if self.moments_sha256() == other.moments_sha256():
            raise InvalidInputError(
                f"{display(labels[1])} holds the same statistics as {display(labels[0])} (the same n, sums and "
                "sums of products): one shard given twice would count its images twice"
            )
        if self.moments.n + other.moments.n > MAX_SAMPLES:
            raise InvalidInputError(
                f"merging {display(labels[0])} ({self.moments.n} images) and {display(labels[1])} "
                f"({other.moments.n} images) would exceed the largest sample count, 2^53"
            )
        merged = _fidrs.Moments.from_parts(self.moments.n, self.moments.sum, self.moments.sum_outer)
        merged.merge(other.moments)
        return Stats.from_moments(
            merged,
            self.mode or other.mode,
            self.weights_sha256 or other.weights_sha256,
            self.backbone or other.backbone,
            self.graph_sha256 or other.graph_sha256,
        )


def merge_shards(shards: Sequence[Stats | str | os.PathLike], backbone: str | None = None) -> Stats:
    """The statistics of the union of disjoint shards (statistics files written by fidrs, or `Stats`); of a file
    of several backbones, those of `backbone`. A shard given twice is refused, whether as the same file under two
    names or as a copy (equal moments): it would count its images twice."""
    if not shards:
        raise InvalidInputError("merging needs at least one statistics file")
    labelled: list[tuple[str, Stats]] = []
    seen_files: dict[tuple[int, int], str] = {}
    for i, shard in enumerate(shards):
        if isinstance(shard, Stats):
            labelled.append((f"shard {i + 1}", shard))
            continue
        path = os.fspath(shard)
        try:
            st = os.stat(path)
            identity = (st.st_dev, st.st_ino)
        except OSError:
            identity = None  # Stats.load names the problem
        if identity in seen_files:
            raise InvalidInputError(
                f"{display(path)} is the same file as {display(seen_files[identity])}: one shard given twice would "
                "count its images twice"
            )
        if identity is not None:
            seen_files[identity] = path
        labelled.append((path, Stats.load(path, backbone)))
    digests: dict[str, str] = {}
    for label, stats in labelled:
        digest = stats.moments_sha256()
        if digest is not None and digest in digests:
            raise InvalidInputError(
                f"{display(label)} holds the same statistics as {display(digests[digest])} (the same n, sums and "
                "sums of products): one shard given twice would count its images twice"
            )
        if digest is not None:
            digests[digest] = label
    (first, merged), rest = labelled[0], labelled[1:]
    for label, stats in rest:
        merged = merged.merge(stats, (first, label))
        first = f"the merge of the shards up to {label}"
    return merged


# Several backbones' statistics in one file (format 3, `fidrs stats --backbone a --backbone b`): the first at the
# top level, each other one's members under `<backbone>.` (`dinov2-vitl14.mu`, `dinov2-vitl14.sigma`, …), and
# `backbones` listing them in order. pytorch-fid, clean-fid and ADM's evaluator read the top-level `mu`/`sigma`.
SEPARATOR = "."
MAX_BACKBONES = 16
_MEMBERS = ("mu", "sigma", "n", "mode", "weights_sha256", "backbone", "graph_sha256", "sum", "sum_outer")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


def save_all(path: str | os.PathLike, stats: Sequence[Stats]) -> None:
    """Write the statistics of one image set under several backbones to one `.npz` (atomically)."""
    if not stats:
        raise InvalidInputError("no statistics to save")
    names = [s.backbone for s in stats]
    if len(stats) > 1 and (None in names or len(set(names)) != len(names)):
        raise InvalidInputError(f"statistics saved together need distinct recorded backbones, got {names}")
    if len(stats) > MAX_BACKBONES:
        raise InvalidInputError(f"at most {MAX_BACKBONES} backbones' statistics go in one file, got {len(stats)}")
    for s in stats:  # a file fidrs would refuse to read back is not written
        check_backbone_width(f"{os.fspath(path)} (not written)", s.backbone, int(np.asarray(s.mu).size))
    members: dict[str, object] = {**stats[0].members(), "version": FORMAT_VERSION}
    if None not in names:
        members["backbones"] = np.array(names)
    for s in stats[1:]:
        members.update({f"{s.backbone}{SEPARATOR}{key}": value for key, value in s.members().items()})
    with atomic_output(path) as f:
        np.savez(f, **members)


def backbones_in(path: str | os.PathLike) -> list[str]:
    """The backbones a fidrs statistics file lists (`backbones`), in order; [] for a file that lists none."""
    data = read_npz(path, keys=["backbones"])
    if "backbones" not in data:
        return []
    value = data["backbones"]
    if value.dtype.kind != "U" or value.ndim != 1 or not 1 <= value.size <= MAX_BACKBONES:
        raise InvalidInputError(
            f"{display(path)}: backbones must be a list of 1 to {MAX_BACKBONES} names, got {value.dtype} {value.shape}"
        )
    names = [str(v) for v in value]
    if len(set(names)) != len(names) or not all(_NAME.match(n) for n in names):
        raise InvalidInputError(f"{display(path)}: backbones {names!r} are not distinct backbone names")
    return names


def load_all(path: str | os.PathLike) -> list[Stats]:
    """Every backbone's statistics of a file, in its order (one for a file that lists no backbones)."""
    names = backbones_in(path)
    return [Stats.load(path, name) for name in names] if names else [Stats.load(path)]


def _text(path: str, data: dict, key: str) -> str | None:
    if key not in data:
        return None
    value = data[key]
    if value.dtype.kind != "U" or value.ndim != 0:
        raise InvalidInputError(f"{display(path)}: {key} must be a string, got {value.dtype} {value.shape}")
    return str(value)
