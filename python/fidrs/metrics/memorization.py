"""Memorisation: for each generated image, the cosine distance to its nearest reference (training) image in
feature space. Copies sit near 0."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .base import FEATURES, MappingResult, Metric, Result, integer, number
from .registry import register_metric

THRESHOLD = number("threshold", 0.1, "cosine distance below which a generated image counts as a copy")
TOP = integer("top", 10, 0, "closest pairs listed")


@dataclass(frozen=True)
class MemorizationResult(MappingResult, Result):
    threshold: float
    fraction_below_threshold: float
    mean_distance: float
    min_distance: float
    closest_pairs: list[dict[str, Any]]
    distances: np.ndarray  # per generated image, in input order

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        out.pop("distances")  # one number per image: in the Python result, not the JSON
        return out


def memorization_from_features(
    generated: np.ndarray,
    training: np.ndarray,
    *,
    threshold: float = THRESHOLD.default,
    top: int = TOP.default,
    generated_paths: list[str] | None = None,
    training_paths: list[str] | None = None,
) -> dict[str, Any]:
    """For each generated image, the cosine distance to its nearest training image."""
    threshold = THRESHOLD.check("threshold", threshold)
    top = TOP.check("top", top)
    g = np.asarray(generated, np.float64)
    t = np.asarray(training, np.float64)
    g = g / np.maximum(np.linalg.norm(g, axis=1, keepdims=True), 1e-12)
    t = t / np.maximum(np.linalg.norm(t, axis=1, keepdims=True), 1e-12)
    nearest = np.empty(len(g), np.int64)
    distance = np.empty(len(g))
    for start in range(0, len(g), 2048):
        sims = g[start : start + 2048] @ t.T
        nearest[start : start + 2048] = sims.argmax(1)
        distance[start : start + 2048] = 1 - sims.max(1)
    order = np.argsort(distance, kind="stable")[:top]
    gp = generated_paths or [f"generated[{i}]" for i in range(len(g))]
    tp = training_paths or [f"training[{i}]" for i in range(len(t))]
    return {
        "threshold": threshold,
        "fraction_below_threshold": float((distance < threshold).mean()),
        "mean_distance": float(distance.mean()),
        "min_distance": float(distance.min()),
        "closest_pairs": [
            {"generated": gp[i], "training": tp[nearest[i]], "cosine_distance": float(distance[i])} for i in order
        ],
        "distances": distance,
    }


def _compute(sides, *, threshold: float, top: int) -> dict:
    reference, generated = sides
    return memorization_from_features(
        generated.features,
        reference.features,
        threshold=threshold,
        top=top,
        generated_paths=generated.paths,
        training_paths=reference.paths,
    )


def _text(r: MemorizationResult) -> str:
    lines = [
        f"{100 * r.fraction_below_threshold:.2f} % of generated images are within cosine distance "
        f"{r.threshold} of a training image; closest pairs:"
    ]
    lines += [f"  {p['cosine_distance']:.5f}  {p['generated']}  ~  {p['training']}" for p in r.closest_pairs]
    return "\n".join(lines)


MEMORIZATION = register_metric(
    Metric(
        name="memorization",
        title="memorisation",
        help="nearest training image of each generated one (copy detection): GENERATED TRAINING",
        inputs=("reference", "generated"),
        reads=FEATURES,
        protocol="cosine distance of L2-normalised features to the nearest reference image, exact",
        params=(THRESHOLD, TOP),
        compute=_compute,
        result=MemorizationResult,
        text=_text,
        command="memorization",
        # `fidrs memorization GENERATED TRAINING` and `fidrs.memorization(generated, training)` predate the rule
        # that the reference comes first: the command keeps its order, and a positional Python call is read in
        # the old order with a DeprecationWarning (keywords reference=, generated= say it unambiguously).
        cli_inputs=("generated", "reference"),
        legacy_positional=True,
    )
)
