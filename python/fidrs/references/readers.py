"""Readers for every published reference-statistics format, torch-free and without running any code.

- `adm-batch`: ADM / guided-diffusion `evaluations/` (`np.savez`): `mu`, `sigma` (Inception pool3, float64),
  `mu_s`, `sigma_s` (sFID spatial features: kept, not used), `arr_0` (uint8 N×H×W×3 images, read on demand),
  `arr_1` (labels, ignored);
- `mu-sigma`: pytorch-fid, TTUR (`mu` float32), clean-fid (`np.savez_compressed`), EDM (`np.savez`, float64):
  `mu`, `sigma`;
- `fidrs`: `fidrs stats`: `mu`, `sigma`, `n`, backbone, mode, weights sha256, sums; several backbones' in one
  file (`backbones`, the others' members under `<backbone>.`);
- `edm2-pkl`: EDM2 `calculate_metrics.py ref` (`pickle.dump`): `{'num_images': int, 'fid': {mu, sigma},
  'fd_dinov2': {mu, sigma}}`, float64;
- `clean-fid-kid`: clean-fid's KID statistics (`np.savez_compressed`): `feats`, N×2048 features (statistics
  computed, rows on demand);
- `features`: TF-GAN-style `pool_3` activations (`.npy`, or an `.npz` of one array): N×d features (statistics
  computed).

Every file goes through `files.open_regular` (a FIFO or device is refused); an `.npz` is listed and read by
`files.read_npz` (no pickle; two members of one name refused), its members through the header-checked, capped
`LazyArray`, whichever the format (fidrs' own included); pickles go through the allow-list unpickler; sizes are
capped; a truncated, damaged or foreign file is InvalidInputError naming it and the reason. Statistics are
validated with `stats.check_statistics`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..deferred import Deferred
from ..display import display
from ..errors import InvalidInputError
from ..files import read_npz
from ..regular_files import open_regular, read_regular
from ..statistics import MAX_SAMPLES, check_statistics, load_all
from .arrays import MAX_STATS_MEMBER_BYTES, LazyArray, open_npz_arrays, open_npz_member
from .features import mean_and_covariance
from .provenance import UNKNOWN, ReferenceProvenance
from .reference import ReferenceEntry, ReferenceFile
from .unpickler import loads_numpy_pickle

FORMATS = {
    "adm-batch": "ADM / guided-diffusion reference batch (.npz: mu, sigma, mu_s, sigma_s, arr_0 images)",
    "mu-sigma": "mu/sigma statistics (.npz: pytorch-fid, TTUR, clean-fid, EDM)",
    "fidrs": "fidrs statistics (.npz: mu, sigma and fidrs' metadata)",
    "edm2-pkl": "EDM2 reference statistics (.pkl: num_images, fid, fd_dinov2)",
    "clean-fid-kid": "clean-fid KID features (.npz: feats)",
    "features": "feature array N×d (.npy, or an .npz of one array: TF-GAN pool_3 activations)",
}

# A statistics member (mu or sigma) of at most MAX_STATS_MEMBER_BYTES (1 GiB: a float64 covariance of up to 11,585
# features), defined once in `arrays`, the cap of every statistics reader, these and fidrs' own (`files.read_npz`).
# A pickle is read whole: EDM2's img512.pkl is 42 MB (2048² + 1024² float64); 512 MiB holds eight 2048-d
# float64 covariances.
MAX_PICKLE_BYTES = 1 << 29
_PICKLE_MAGIC = b"\x80"  # protocols 2-5 start with PROTO; 0 and 1 start with an opcode (checked by parsing)

# EDM2 `calculate_metrics.py`: `metric_specs` (`:85-88`) names the metric each statistics set is for; `fid` is
# its InceptionV3Detector (the TF 2015-12-05 graph, resize inside: fidrs' tf1), `fd_dinov2` its DINOv2Detector
# (dinov2_vitl14), whose resize the file does not record (`resize_mode='torch'` by default, fidrs' `edm2`; or
# 'pil', fidrs' `dgm-eval`): unknown unless a catalogue entry says.
EDM2_METRICS = {"fid": ("inception", "tf1"), "fd_dinov2": ("dinov2-vitl14", None)}

# The ADM evaluator (`evaluations/evaluator.py: read_statistics`) compares a batch's mu/sigma with activations
# of its TF Inception graph, which resizes with TF1's bilinear: a file in its layout (mu, sigma, mu_s, sigma_s:
# only its reference batches have the sFID statistics) holds tf1 Inception statistics.
ADM_PROVENANCE = ReferenceProvenance(tool="adm", backbone="inception", mode="tf1", source="format")


def _stored(**arrays: np.ndarray) -> str:
    return ", ".join(f"{name} {a.dtype}" for name, a in arrays.items())


def _numeric(where: str, name: str, value) -> np.ndarray:
    if not isinstance(value, np.ndarray) or value.dtype.kind not in "fiu":
        kind = value.dtype if isinstance(value, np.ndarray) else type(value).__name__
        raise InvalidInputError(f"{where}: {name} is {kind}, expected an array of numbers")
    return value


def _entry(
    where: str,
    label: str,
    mu,
    sigma,
    n: int | None,
    provenance: ReferenceProvenance,
    sigma_member: LazyArray | None = None,
    *,
    two_pass: bool,
) -> ReferenceEntry:
    """The entry of a mean and covariance, Σ checked and factorised once (the distance reuses the factor);
    `two_pass`: made by `np.cov` (`check_statistics`). Σ read from `sigma_member` (an `.npz` member, `sigma`
    being its data) is not kept: the entry reads it again when asked (`deferred`), and refuses a file changed
    since."""
    mu, sigma = _numeric(where, "mu", mu), _numeric(where, "sigma", sigma)
    covariance = check_statistics(where, mu, sigma, two_pass=two_pass)
    stored = _stored(mu=mu, sigma=sigma)
    if sigma_member is None:
        kept = np.asarray(sigma, dtype=np.float64)
    else:
        kept = Deferred(lambda: np.asarray(sigma_member.load(), dtype=np.float64), sigma_member.where)
    del sigma
    return ReferenceEntry(label, np.asarray(mu, dtype=np.float64), kept, n, provenance, stored, covariance=covariance)


def _load(path: str, members: list[str], keys: list[str]) -> dict[str, LazyArray]:
    """The members `keys` (those present) of an .npz, described, through fidrs' one `.npz` reader
    (`arrays.open_npz_arrays`): every header checked against its size before any allocation (numpy's own reader
    allocates what a header declares first), at most MAX_STATS_MEMBER_BYTES, numbers only. `.load()` reads one."""
    _, arrays = open_npz_arrays(
        path, [key for key in keys if key in members], kinds="fiu", max_member_bytes=MAX_STATS_MEMBER_BYTES
    )
    return arrays


def _sample_count(where: str, value) -> int:
    """EDM2's `num_images`, by the rule of fidrs' own files' `n` (`statistics.MAX_SAMPLES`: at most 2^53)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 2:
        raise InvalidInputError(f"{where}: num_images = {str(value)[:40]} is not a sample count of at least 2")
    if int(value) > MAX_SAMPLES:
        raise InvalidInputError(
            f"{where}: num_images = {str(value)[:40]} is over the largest sample count, 2^53 = {MAX_SAMPLES}"
        )
    return int(value)


def _features_entry(features: LazyArray, label: str) -> ReferenceEntry:
    mu, sigma, n = mean_and_covariance(features)
    covariance = check_statistics(features.where, mu, sigma, two_pass=True)
    return ReferenceEntry(label, mu, sigma, n, UNKNOWN, f"{label} {features.dtype} features", covariance=covariance)


# --- the formats -------------------------------------------------------------------------------------------


def _read_adm(path: str, members: list[str]) -> ReferenceFile:
    notes = []
    entries = []
    if "mu" in members or "sigma" in members:
        data = _load(path, members, ["mu", "sigma"])
        if "mu" not in data or "sigma" not in data:
            raise InvalidInputError(f"{display(path)}: has only one of mu and sigma")
        # Only the evaluator's own layout (with the sFID statistics) implies its protocol; mu/sigma beside images
        # alone could come from any tool.
        provenance = ADM_PROVENANCE if {"mu_s", "sigma_s"} <= set(members) else UNKNOWN
        sigma = data["sigma"]
        entries.append(
            _entry(path, "mu,sigma", data["mu"].load(), sigma.load(), None, provenance, sigma, two_pass=True)
        )
    spatial = None
    if "mu_s" in members or "sigma_s" in members:
        data = {key: array.load() for key, array in _load(path, members, ["mu_s", "sigma_s"]).items()}
        mu_s, sigma_s = data.get("mu_s"), data.get("sigma_s")
        if mu_s is None or sigma_s is None or mu_s.ndim != 1 or sigma_s.shape != (mu_s.size, mu_s.size):
            shapes = [getattr(a, "shape", None) for a in (mu_s, sigma_s)]
            raise InvalidInputError(f"{display(path)}: mu_s and sigma_s {shapes} are no mean and covariance")
        spatial = (np.asarray(mu_s, np.float64), np.asarray(sigma_s, np.float64))
        notes.append(f"mu_s/sigma_s (sFID spatial statistics, {mu_s.size}-d) present, not used")
    images = None
    if "arr_0" in members:
        images = open_npz_member(path, "arr_0", kinds="biuf")
        if images.dtype != np.uint8 or len(images.shape) != 4 or images.shape[-1] != 3:
            raise InvalidInputError(
                f"{display(path)}: arr_0 is {images.dtype} {images.shape}, expected uint8 N×H×W×3 images"
            )
        if 0 in images.shape:  # refused here, before any weights are resolved for images that are not there
            raise InvalidInputError(f"{display(path)}: arr_0 holds no images (shape {images.shape})")
        notes.append(f"arr_0: {images.shape[0]} images of {images.shape[1]}×{images.shape[2]}, read on demand")
    if "arr_1" in members:
        notes.append("arr_1 (class labels) present, not used")
    if not entries and images is None:
        raise InvalidInputError(f"{display(path)}: an ADM batch needs mu/sigma or arr_0; has {sorted(members)}")
    return ReferenceFile.of(path, "adm-batch", entries, images=images, spatial=spatial, notes=tuple(notes))


def _read_mu_sigma(path: str, members: list[str]) -> ReferenceFile:
    data = _load(path, members, ["mu", "sigma"])
    if "mu" not in data or "sigma" not in data:
        raise InvalidInputError(f"{display(path)}: statistics need 'mu' and 'sigma', has {sorted(members)}")
    extra = sorted(set(members) - {"mu", "sigma"})
    notes = (f"other members ignored: {', '.join(extra)}",) if extra else ()
    sigma = data["sigma"]
    entry = _entry(path, "mu,sigma", data["mu"].load(), sigma.load(), None, UNKNOWN, sigma, two_pass=True)
    return ReferenceFile.of(path, "mu-sigma", [entry], notes=notes)


def _read_fidrs(path: str) -> ReferenceFile:
    entries = []
    # validates each backbone's statistics and the stored moments against them
    for stats in load_all(path):
        provenance = ReferenceProvenance(
            tool="fidrs",
            backbone=stats.backbone,
            mode=stats.mode,
            weights=stats.weights_sha256,
            n=stats.n,
            source="file",
        )
        label = "mu,sigma" if not entries else f"{stats.backbone}.mu,sigma"
        entries.append(
            ReferenceEntry(label, stats.mu, stats.sigma, stats.n, provenance, "fidrs float64 statistics", stats)
        )
    return ReferenceFile.of(path, "fidrs", entries)


def _read_edm2(path: str) -> ReferenceFile:
    where = display(path)
    data = read_regular(path, MAX_PICKLE_BYTES)
    if not data:
        raise InvalidInputError(f"{where}: empty file")
    try:
        obj = loads_numpy_pickle(data)
    except InvalidInputError as e:
        raise InvalidInputError(f"{where}: {e}") from None
    except Exception as e:  # noqa: BLE001 - the unpickler runs no code: any failure is a damaged file
        raise InvalidInputError(f"{where}: not a readable pickle ({type(e).__name__}: {e!s:.200})") from None
    if not isinstance(obj, dict):
        raise InvalidInputError(f"{where}: holds a {type(obj).__name__}, not EDM2's dict of statistics")
    if "num_images" not in obj:
        raise InvalidInputError(f"{where}: has no num_images: not EDM2 reference statistics")
    n = _sample_count(where, obj["num_images"])
    entries, notes = [], []
    for key, value in obj.items():
        if key == "num_images":
            continue
        if not isinstance(value, dict) or "mu" not in value or "sigma" not in value:
            raise InvalidInputError(f"{where}: {str(key)[:40]!r} is not a dict of mu and sigma")
        if key not in EDM2_METRICS:
            notes.append(f"statistics {str(key)[:40]!r} skipped: fidrs does not know the network EDM2 used for them")
            continue
        backbone, mode = EDM2_METRICS[key]
        provenance = ReferenceProvenance(tool="edm2", backbone=backbone, mode=mode, n=n, source="format")
        # EDM2 (as StyleGAN's FeatureStats) computes Σ from one-pass float64 moments: round-off around μ.
        entries.append(_entry(f"{path} [{key}]", key, value["mu"], value["sigma"], n, provenance, two_pass=False))
    if not entries:
        raise InvalidInputError(f"{where}: holds none of EDM2's statistics ({', '.join(EDM2_METRICS)})")
    return ReferenceFile.of(path, "edm2-pkl", entries, notes=tuple(notes))


def _read_kid(path: str, members: list[str]) -> ReferenceFile:
    if "feats" not in members:
        raise InvalidInputError(f"{display(path)}: a clean-fid KID file needs 'feats', has {sorted(members)}")
    features = open_npz_member(path, "feats", kinds="f")
    entry = _features_entry(features, "feats")
    return ReferenceFile.of(path, "clean-fid-kid", [entry], features=features)


def _read_features(path: str, members: list[str] | None) -> ReferenceFile:
    if members is None:
        features = LazyArray.open(path, None, kinds="f")
        label = Path(path).stem
    else:
        if len(members) != 1:
            raise InvalidInputError(
                f"{display(path)}: a feature file holds one N×d array; this .npz has {sorted(members)}"
            )
        features = open_npz_member(path, members[0], kinds="f")
        label = members[0]
    entry = _features_entry(features, label)
    return ReferenceFile.of(path, "features", [entry], features=features, notes=(f"statistics of {label} computed",))


# --- dispatch ----------------------------------------------------------------------------------------------


def _members(path: str) -> list[str]:
    return read_npz(path, keys=[])["__files__"]


# The names a single feature array goes by in an .npz (TF-GAN's pool_3 activations, saved by hand): any other
# lone member is not taken for features (a broken statistics file is refused, not read as samples).
FEATURE_MEMBERS = frozenset({"pool_3", "pool3", "features", "activations", "acts"})

# What only fidrs writes beside mu/sigma (any one makes the file fidrs': its metadata is read and checked).
_FIDRS_MEMBERS = frozenset({"version", "backbones", "n", "mode", "backbone", "weights_sha256", "graph_sha256", "sum"})


def _sniff_npz(path: str, members: list[str]) -> str:
    keys = set(members)
    if keys & _FIDRS_MEMBERS and {"mu", "sigma"} <= keys:
        return "fidrs"
    if keys & {"mu_s", "sigma_s", "arr_0"}:
        return "adm-batch"
    if {"mu", "sigma"} <= keys:
        return "mu-sigma"
    if "feats" in keys:
        return "clean-fid-kid"
    if len(keys) == 1 and keys <= FEATURE_MEMBERS:
        return "features"
    raise InvalidInputError(
        f"{display(path)}: not reference statistics: needs 'mu' and 'sigma' (or ADM's arr_0 images, clean-fid's "
        f"feats, or one feature array named {', '.join(sorted(FEATURE_MEMBERS))}); has {sorted(members)[:20]}"
    )


def sniff_format(path: str | os.PathLike) -> str:
    """The format of a reference file, from its content (a key of FORMATS)."""
    path = os.fspath(path)
    with open_regular(path) as f:
        head = f.read(6)
    if not head:
        raise InvalidInputError(f"{display(path)}: empty file")
    extension = os.path.splitext(path)[1].lower()
    # A name's extension is what the user means: content of another kind under it is a mistake, not a guess.
    if extension == ".npz" and head[:2] != b"PK":
        what = "a .npy array, not an .npz archive" if head == b"\x93NUMPY" else "not an .npz"
        raise InvalidInputError(f"{display(path)}: {what} file")
    if extension == ".npy" and head != b"\x93NUMPY":
        raise InvalidInputError(f"{display(path)}: not a .npy array file")
    if head[:2] == b"PK":
        return _sniff_npz(path, _members(path))
    if head == b"\x93NUMPY":
        return "features"
    if head[:1] == _PICKLE_MAGIC or path.lower().endswith((".pkl", ".pickle")):
        return "edm2-pkl"
    raise InvalidInputError(f"{display(path)}: not a reference file (.npz, .npy or EDM2 .pkl)")


def read_reference(path: str | os.PathLike, format: str | None = None) -> ReferenceFile:
    """Read a reference file of `format` (a key of FORMATS; None: recognised from its content). Its entries'
    provenance is what the file itself says (fidrs metadata, or a layout only one tool writes), else unknown;
    a catalogue entry adds its own (`ReferenceFile.with_provenance`)."""
    path = os.fspath(path)
    if format is None:
        format = sniff_format(path)
    elif format not in FORMATS:
        raise InvalidInputError(f"unknown reference format {format!r}: expected one of {', '.join(FORMATS)}")
    if format == "edm2-pkl":
        return _read_edm2(path)
    if format == "features" and not _is_zip(path):
        return _read_features(path, None)
    members = _members(path)
    if format == "fidrs":
        return _read_fidrs(path)
    if format == "adm-batch":
        return _read_adm(path, members)
    if format == "mu-sigma":
        return _read_mu_sigma(path, members)
    if format == "clean-fid-kid":
        return _read_kid(path, members)
    return _read_features(path, members)


def _is_zip(path: str) -> bool:
    with open_regular(path) as f:
        return f.read(2) == b"PK"


__all__ = ["EDM2_METRICS", "FORMATS", "MAX_PICKLE_BYTES", "MAX_STATS_MEMBER_BYTES", "read_reference", "sniff_format"]
