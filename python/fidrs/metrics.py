"""Companion metrics on one feature pass: KID, Inception Score, precision/recall (+ density/coverage),
memorisation, the FID bootstrap. Each works on a `FeatureSet` of any backbone (the Inception Score needs class
logits, which only the Inception has), so the network runs once per image set however many metrics are asked
for."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Union

import numpy as np

from . import _fidrs
from .errors import InvalidInputError
from .feature_pass import FeaturePass, PassOptions
from .inputs import InputLike, resolve_source
from .provenance import Provenance, check_compatible
from .stats import Stats


@dataclass
class FeatureSet:
    """The backbone's features (N × d), its class logits where it has them (the Inception's fc layer without
    bias, N × 1008; else None) and the names of the images."""

    features: np.ndarray
    logits: np.ndarray | None
    paths: list[str]
    mode: str
    weights_sha256: str
    skipped: list[tuple[str, str]] = field(default_factory=list)
    backbone: str | None = None
    graph_sha256: str | None = None

    def __len__(self) -> int:
        return len(self.features)

    @property
    def provenance(self) -> Provenance:
        return Provenance(self.backbone, self.mode, self.weights_sha256, self.graph_sha256, self.features.shape[1])

    def stats(self) -> Stats:
        """μ and Σ through the same float64 moments as `fidrs.stats` (so the same FID as `fidrs.score`)."""
        return Stats.from_moments(
            _moments(self.features), self.mode, self.weights_sha256, self.backbone, self.graph_sha256
        )


def _moments(rows: np.ndarray) -> _fidrs.Moments:
    moments = _fidrs.Moments(rows.shape[1])
    moments.update(np.ascontiguousarray(rows, np.float32))
    return moments


def feature_set(inputs: InputLike, **options: Any) -> FeatureSet:
    """Run the network once over `inputs` and keep what every metric needs."""
    source = resolve_source(inputs, allow_stats=False)
    network = FeaturePass(PassOptions(**options))
    collected = network.collect(source, label=str(inputs) if isinstance(inputs, str) else "features")
    backbone = network.backbone
    names = getattr(source, "paths", None) or [f"array[{i}]" for i in range(len(source))]
    return FeatureSet(
        collected.outputs[backbone.feature_output],
        collected.outputs[backbone.logits_output] if backbone.logits_output else None,
        [names[i] for i in collected.kept],
        network.options.mode_label,
        network.model.weights_sha256,
        collected.report.skipped,
        backbone.name,
        network.model.graph_sha256,
    )


FeaturesLike = Union[FeatureSet, InputLike]


def _as_feature_set(x: FeaturesLike, options: dict[str, Any]) -> FeatureSet:
    return x if isinstance(x, FeatureSet) else feature_set(x, **options)


def _label(x: FeaturesLike, default: str) -> str:
    return str(x) if isinstance(x, str) else default


def _comparable_pair(a: FeaturesLike, b: FeaturesLike, options: dict[str, Any], names: tuple[str, str]):
    """Both sides as feature sets, refused (IncompatibleStatsError naming both) unless they come from the same
    backbone, mode, weights and graph: the check `score` makes, before any metric of two sets."""
    fa, fb = _as_feature_set(a, options), _as_feature_set(b, options)
    check_compatible([(_label(a, names[0]), fa.provenance), (_label(b, names[1]), fb.provenance)], "feature sets")
    return fa, fb


# --- KID ---------------------------------------------------------------------------------------------


def _polynomial_mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD² with the kernel k(a, b) = (a·b/d + 1)³."""
    d = x.shape[1]
    kxx = (x @ x.T / d + 1) ** 3
    kyy = (y @ y.T / d + 1) ** 3
    kxy = (x @ y.T / d + 1) ** 3
    m = len(x)
    return float(
        (kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1)) - 2 * kxy.mean()
    )


def kid_from_features(
    f1: np.ndarray, f2: np.ndarray, *, subset_size: int = 1000, subsets: int = 100, seed: int = 0
) -> tuple[float, float]:
    """KID: mean and std of the unbiased MMD² over random subsets. Sampling follows torch-fidelity
    (`np.random.RandomState(seed)`, a subset of each set drawn without replacement per round), so its
    numbers are reproduced exactly with its seed (2020)."""
    if subset_size > min(len(f1), len(f2)):
        raise InvalidInputError(
            f"KID subset_size {subset_size} exceeds the smaller set ({min(len(f1), len(f2))} images)"
        )
    if subset_size < 2:
        raise InvalidInputError("KID needs subset_size >= 2")
    rng = np.random.RandomState(seed)
    f1, f2 = np.asarray(f1, np.float64), np.asarray(f2, np.float64)
    values = np.empty(subsets)
    for i in range(subsets):
        x = f1[rng.choice(len(f1), subset_size, replace=False)]
        y = f2[rng.choice(len(f2), subset_size, replace=False)]
        values[i] = _polynomial_mmd2_unbiased(x, y)
    return float(values.mean()), float(values.std())


def kid(
    a: FeaturesLike, b: FeaturesLike, *, subset_size: int = 1000, subsets: int = 100, seed: int = 0, **options: Any
) -> tuple[float, float]:
    fa, fb = _comparable_pair(a, b, options, ("a", "b"))
    return kid_from_features(fa.features, fb.features, subset_size=subset_size, subsets=subsets, seed=seed)


# --- Inception Score ---------------------------------------------------------------------------------


def inception_score_from_logits(logits: np.ndarray, *, splits: int = 10, seed: int = 2020) -> tuple[float, float]:
    """IS = exp E[KL(p(y|x) ‖ p(y))], over `splits` chunks after a seeded shuffle (torch-fidelity's
    procedure); mean and std over the chunks."""
    if len(logits) < splits:
        raise InvalidInputError(f"Inception Score needs at least {splits} images (one per split), got {len(logits)}")
    z = np.asarray(logits, np.float64)[np.random.RandomState(seed).permutation(len(logits))]
    z = z - z.max(axis=1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    p = np.exp(log_p)
    n = len(z)
    scores = []
    for i in range(splits):
        chunk = slice(i * n // splits, (i + 1) * n // splits)
        log_q = np.log(p[chunk].mean(axis=0, keepdims=True))
        kl = (p[chunk] * (log_p[chunk] - log_q)).sum(axis=1).mean()
        scores.append(np.exp(kl))
    return float(np.mean(scores)), float(np.std(scores))


def _no_logits(backbone: str | None) -> InvalidInputError:
    return InvalidInputError(
        f"the Inception Score needs class logits, which backbone {backbone!r} does not have; "
        "it is defined on the Inception (backbone='inception')"
    )


def require_class_logits(**options: Any) -> None:
    """Refuse, before any image is read, a backbone without class logits (the Inception Score needs them)."""
    backbone = PassOptions(**options).backbone
    if backbone.logits_output is None:  # type: ignore[union-attr]
        raise _no_logits(backbone.name)  # type: ignore[union-attr]


def inception_score(a: FeaturesLike, *, splits: int = 10, seed: int = 2020, **options: Any) -> tuple[float, float]:
    if not isinstance(a, FeatureSet):
        require_class_logits(**options)
    fs = _as_feature_set(a, options)
    if fs.logits is None:
        raise _no_logits(fs.backbone)
    return inception_score_from_logits(fs.logits, splits=splits, seed=seed)


# --- nearest neighbours --------------------------------------------------------------------------------


def _squared_distances(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    d = (x * x).sum(1)[:, None] + (y * y).sum(1)[None, :] - 2 * x @ y.T
    return np.maximum(d, 0)


def _kth_neighbour_radius(x: np.ndarray, k: int, block: int = 2048) -> np.ndarray:
    """Distance from each row to its k-th nearest other row (exact, computed block by block)."""
    radii = np.empty(len(x))
    for start in range(0, len(x), block):
        d = _squared_distances(x[start : start + block], x)
        # the k+1 smallest include the point itself (distance 0)
        radii[start : start + block] = np.sqrt(np.partition(d, k, axis=1)[:, k])
    return radii


def _ball_hits(
    centres: np.ndarray, radii: np.ndarray, queries: np.ndarray, block: int = 2048
) -> tuple[np.ndarray, np.ndarray]:
    """From one pass over the query × centre distances: for each query, how many balls (centre, radius)
    contain it; for each ball, whether it contains any query."""
    counts = np.zeros(len(queries), np.int64)
    covered = np.zeros(len(centres), bool)
    r2 = radii**2
    for start in range(0, len(queries), block):
        inside = _squared_distances(queries[start : start + block], centres) <= r2[None, :]
        counts[start : start + block] = inside.sum(1)
        covered |= inside.any(0)
    return counts, covered


def precision_recall_from_features(real: np.ndarray, fake: np.ndarray, *, k: int = 3) -> dict[str, float]:
    """Improved precision/recall (Kynkäänniemi et al. 2019) with k-NN balls, plus density and coverage
    (Naeem et al. 2020), by exact nearest neighbours."""
    if min(len(real), len(fake)) <= k:
        raise InvalidInputError(f"precision/recall with k={k} needs more than {k} images on each side")
    real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    real_radii, fake_radii = _kth_neighbour_radius(real, k), _kth_neighbour_radius(fake, k)
    fake_in_real, covered = _ball_hits(real, real_radii, fake)  # covered: real balls holding a fake sample
    real_in_fake, _ = _ball_hits(fake, fake_radii, real)
    return {
        "precision": float((fake_in_real > 0).mean()),
        "recall": float((real_in_fake > 0).mean()),
        "density": float(fake_in_real.sum() / (k * len(fake))),
        "coverage": float(covered.mean()),
    }


def precision_recall(a: FeaturesLike, b: FeaturesLike, *, k: int = 3, **options: Any) -> dict[str, float]:
    """`a` real, `b` generated."""
    fa, fb = _comparable_pair(a, b, options, ("real", "generated"))
    return precision_recall_from_features(fa.features, fb.features, k=k)


# --- memorisation ----------------------------------------------------------------------------------------


def memorization_from_features(
    generated: np.ndarray,
    training: np.ndarray,
    *,
    threshold: float = 0.1,
    top: int = 10,
    generated_paths: list[str] | None = None,
    training_paths: list[str] | None = None,
) -> dict[str, Any]:
    """For each generated image, the cosine distance to its nearest training image. Copies sit near 0."""
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


def memorization(
    generated: FeaturesLike, training: FeaturesLike, *, threshold: float = 0.1, top: int = 10, **options: Any
) -> dict[str, Any]:
    fg, ft = _comparable_pair(generated, training, options, ("generated", "training"))
    return memorization_from_features(
        fg.features, ft.features, threshold=threshold, top=top, generated_paths=fg.paths, training_paths=ft.paths
    )


# --- FID confidence -------------------------------------------------------------------------------------


def _fid_of_rows(x: np.ndarray, y: np.ndarray) -> float:
    """Through the float64 moments of `fidrs.stats`, so the full-sample value is exactly `fidrs.score`'s."""
    from .frechet import frechet_distance

    mx, my = _moments(x), _moments(y)
    return frechet_distance(mx.mean(), mx.covariance(), my.mean(), my.covariance())


def fid_confidence_from_features(
    f1: np.ndarray,
    f2: np.ndarray,
    *,
    rounds: int = 50,
    confidence: float = 0.95,
    seed: int = 0,
    sizes: tuple[float, ...] = (0.125, 0.25, 0.5, 1.0),
) -> dict[str, Any]:
    """Percentile bootstrap interval of FID over images (both sets resampled with replacement), and FID
    at several sample sizes (random subsets without replacement) to show its small-n bias."""
    if rounds < 2:
        raise InvalidInputError("the bootstrap needs at least 2 rounds")
    rng = np.random.default_rng(seed)
    x, y = np.asarray(f1, np.float32), np.asarray(f2, np.float32)  # features are float32: kept exact
    values = np.array(
        [_fid_of_rows(x[rng.integers(0, len(x), len(x))], y[rng.integers(0, len(y), len(y))]) for _ in range(rounds)]
    )
    tail = (1 - confidence) / 2
    at_n = {}
    for fraction in sizes:
        n = max(2, int(round(fraction * min(len(x), len(y)))))
        at_n[n] = _fid_of_rows(x[rng.choice(len(x), n, replace=False)], y[rng.choice(len(y), n, replace=False)])
    return {
        "fid": _fid_of_rows(x, y),
        "confidence": confidence,
        "low": float(np.quantile(values, tail)),
        "high": float(np.quantile(values, 1 - tail)),
        "bootstrap_std": float(values.std(ddof=1)),
        "rounds": rounds,
        "fid_at_n": at_n,
        "note": "FID is biased upwards at small n: compare FIDs only at equal n",
    }


def fid_confidence(
    a: FeaturesLike, b: FeaturesLike, *, rounds: int = 50, confidence: float = 0.95, seed: int = 0, **options: Any
) -> dict[str, Any]:
    fa, fb = _comparable_pair(a, b, options, ("a", "b"))
    return fid_confidence_from_features(fa.features, fb.features, rounds=rounds, confidence=confidence, seed=seed)
