"""CMMD (Jayasumana et al., CVPR 2024, "Rethinking FID"; google-research/cmmd): 1000 × the biased MMD² with the
Gaussian RBF kernel k(a, b) = exp(−‖a − b‖²/(2·10²)) between the L2-normalised CLIP ViT-L/14@336px embeddings of
two image sets, defined on the backbone `clip-vitl14-336` in mode `cmmd` (its default when no backbone is named).

The estimator is fidrs' Rust one (`_fidrs.mmd`): the kernel in blocks, never held, float64 from the embeddings on.
The official tool computes it in JAX float32, whose three kernel means near 1 cancel: its printed value differs
from the exact one by a few float32 quanta of 1000 · 2⁻²⁴ ≈ 6e-5 (up to 8.6e-4 relative on the conformance data);
fidrs reports the exact value and does not reproduce that rounding (README, "CMMD").

Batch remainder: the official tool embeds images in batches of 32 with `drop_remainder=True`, so it uses only the
first ⌊n/32⌋·32 images of each folder (sorted names); `drop` (the default) does the same, so fidrs' number is the
one the official tool prints for the same images; `keep` uses every image (sayakpaul/cmmd-pytorch). An embedding
file (`.npy`, the official `--ref_embed_file`) is used whole, as the official tool uses its reference file."""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import _fidrs
from ..display import display
from ..embedding_files import EmbeddingFile, save_embeddings
from ..errors import FidrsWarning, InvalidInputError
from .base import FEATURES, Metric, Param, Result, choice
from .fid_confidence import CONFIDENCE, SEED
from .registry import register_metric

BACKBONE, MODE = "clip-vitl14-336", "cmmd"  # what CMMD is defined on
OFFICIAL_BATCH = 32  # google-research/cmmd main.py's --batch_size default, batched with drop_remainder=True
BATCH_REMAINDERS = ("drop", "keep")

BATCH_REMAINDER = dataclasses.replace(
    choice(
        "batch_remainder",
        "drop",
        BATCH_REMAINDERS,
        f"drop: only the first floor(n/{OFFICIAL_BATCH})*{OFFICIAL_BATCH} images of each image set, as the official "
        "google-research/cmmd tool (its last partial batch is dropped); keep: every image (cmmd-pytorch)",
    ),
    flag="--cmmd-batch-remainder",
)


def _rounds_check(name: str, value: Any) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 0 or value == 1:
        raise InvalidInputError(f"{name} must be 0 (no interval) or an integer >= 2, got {value!r}")
    return int(value)


def _rounds_parse(text: str) -> int:
    import argparse

    try:
        return _rounds_check("--bootstrap", int(text))
    except (ValueError, InvalidInputError):
        raise argparse.ArgumentTypeError(f"expected 0 or an integer >= 2, got {text!r}") from None


_rounds_parse.__name__ = "rounds"

BOOTSTRAP = Param(
    "bootstrap",
    0,
    "bootstrap rounds of a percentile interval over images (both sets resampled with replacement, one pass over "
    "the kernel for all rounds); 0: none",
    _rounds_check,
    _rounds_parse,
)


def _path_check(name: str, value: Any) -> str | None:
    import os

    if value is None:
        return None
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str) or not value.lower().endswith(".npy"):
        raise InvalidInputError(f"{name} must be a path ending in .npy, got {value!r}")
    return value


def _save(name: str, side: str) -> Param:
    return Param(
        name,
        None,
        f"write the embeddings CMMD used of {side.upper()} to this .npy (google-research/cmmd's --ref_embed_file "
        "format), with its provenance in FILE.json",
        _path_check,
        str,
    )


SAVE_A, SAVE_B = _save("save_a", "a"), _save("save_b", "b")


@dataclass(frozen=True)
class CMMDResult(Result):
    """`value`: CMMD (× 1000, float64) of the rows used: `n_used` per side (`n`: the rows each input gave).
    With `bootstrap` rounds: the percentile interval [`low`, `high`] at `confidence` and the rounds' std."""

    value: float
    n_used: list[int]
    low: float | None = None
    high: float | None = None
    bootstrap_std: float | None = None
    saved: list[str] = field(default_factory=list)
    cache_hits: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"cmmd": self.value, **super().to_dict()}


def used_rows(side: Any, batch_remainder: str, label: str) -> np.ndarray:
    """The embeddings CMMD uses of one side: all of an embedding file; of images, the first ⌊n/32⌋·32 under
    `drop` (the official tool), all under `keep`."""
    rows = np.ascontiguousarray(side.features, dtype=np.float32)
    if isinstance(side, EmbeddingFile):
        if side.batch_remainder not in (None, batch_remainder):
            warnings.warn(
                f"{display(side.path)} holds the embeddings of {side.n_images} images written under "
                f"batch_remainder={side.batch_remainder!r}; this run asks for {batch_remainder!r}: the file is used "
                f"whole ({len(rows)} rows), as the official tool uses its reference file",
                FidrsWarning,
                stacklevel=5,
            )
        return rows
    if batch_remainder == "keep":
        return rows
    used = len(rows) // OFFICIAL_BATCH * OFFICIAL_BATCH
    if used == 0:
        raise InvalidInputError(
            f"{display(label)}: {len(rows)} images, fewer than one batch of {OFFICIAL_BATCH}: the official CMMD tool "
            f"(batch_remainder='drop', the default) would use none of them; pass batch_remainder='keep' "
            "(--cmmd-batch-remainder keep) to use every image"
        )
    return rows[:used]


def cmmd_from_embeddings(
    x: np.ndarray,
    y: np.ndarray,
    *,
    bootstrap: int = 0,
    confidence: float = CONFIDENCE.default,
    seed: int = SEED.default,
) -> dict[str, Any]:
    """CMMD of two sets of embeddings (all rows used), with a bootstrap interval if `bootstrap` ≥ 2: resample r
    draws len(x) rows of x, then len(y) rows of y, with replacement from `np.random.default_rng(seed)`."""
    x, y = np.ascontiguousarray(x, np.float32), np.ascontiguousarray(y, np.float32)
    if not bootstrap:
        return {"value": _fidrs.mmd(x, y)}
    rng = np.random.default_rng(seed)
    cx = np.empty((bootstrap, len(x)), np.int64)
    cy = np.empty((bootstrap, len(y)), np.int64)
    for r in range(bootstrap):
        cx[r] = np.bincount(rng.integers(0, len(x), len(x)), minlength=len(x))
        cy[r] = np.bincount(rng.integers(0, len(y), len(y)), minlength=len(y))
    value, values = _fidrs.mmd_bootstrap(x, y, cx, cy)
    tail = (1 - confidence) / 2
    return {
        "value": value,
        "low": float(np.quantile(values, tail)),
        "high": float(np.quantile(values, 1 - tail)),
        "bootstrap_std": float(values.std(ddof=1)),
    }


def _warn_if_not_cmmd(sides) -> None:
    for side in sides:
        if (side.backbone not in (None, BACKBONE)) or (side.mode not in (None, MODE)):
            warnings.warn(
                f"CMMD is defined on backbone {BACKBONE!r} in mode {MODE!r}; these are {side.backbone!r} features "
                f"in mode {side.mode!r}: the value is the same estimator on them, not comparable with published CMMD",
                FidrsWarning,
                stacklevel=5,
            )
            return


def _compute(
    sides, *, batch_remainder: str, bootstrap: int, confidence: float, seed: int, save_a: str | None, save_b: str | None
) -> dict:
    _warn_if_not_cmmd(sides)
    labels = [getattr(side, "path", "") or name for side, name in zip(sides, ("a", "b"))]
    x, y = (used_rows(side, batch_remainder, label) for side, label in zip(sides, labels))
    out = cmmd_from_embeddings(x, y, bootstrap=bootstrap, confidence=confidence, seed=seed)
    saved = []
    for path, side, rows in ((save_a, sides[0], x), (save_b, sides[1], y)):
        if path is not None:
            n_images = side.n_images if isinstance(side, EmbeddingFile) else len(side)
            recorded = side.batch_remainder if isinstance(side, EmbeddingFile) else batch_remainder
            saved.append(save_embeddings(path, rows, side, n_images=n_images, batch_remainder=recorded))
    hits = sum(getattr(side, "cache_hits", 0) for side in sides)
    return {**out, "n_used": [len(x), len(y)], "saved": saved, "cache_hits": hits}


def _text(r: CMMDResult) -> str:
    text = f"CMMD {r.value:.6f}"
    if r.low is not None:
        text += (
            f", {100 * r.params['confidence']:g} % interval [{r.low:.6f}, {r.high:.6f}] over "
            f"{r.params['bootstrap']} bootstrap rounds"
        )
    return text


CMMD = register_metric(
    Metric(
        name="cmmd",
        title="CMMD",
        help=f"CMMD (CLIP maximum mean discrepancy, google-research/cmmd) on {BACKBONE} unless --backbone",
        inputs=("a", "b"),
        reads=FEATURES,
        protocol=f"google-research/cmmd: 1000 x the biased MMD² with the Gaussian RBF kernel (sigma 10) between the "
        f"L2-normalised CLIP ViT-L/14@336px embeddings ({BACKBONE}, mode {MODE}), images batched by "
        f"{OFFICIAL_BATCH} with the remainder dropped (batch_remainder='drop'; 'keep': every image, cmmd-pytorch); "
        "computed in float64 (the official float32 value differs by a few units of 6e-5); a .npy embedding file "
        "(its --ref_embed_file) is used whole",
        params=(BATCH_REMAINDER, BOOTSTRAP, CONFIDENCE, SEED, SAVE_A, SAVE_B),
        compute=_compute,
        result=CMMDResult,
        text=_text,
        command="cmmd",
        backbone=BACKBONE,
    )
)
