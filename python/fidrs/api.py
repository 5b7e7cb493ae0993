"""The module-level functions: `fidrs.features`, `stats`, `feature_set`, `score`, `score_details` and one function
per registered metric (`kid`, `inception_score`, `precision_recall`, `memorization`, `fid_confidence`, `cmmd`), each a
thin call on an `Evaluator` made from its keyword options (the fields of `fidrs.Options`)."""

from __future__ import annotations

import inspect
import warnings
from typing import Any

import numpy as np

from .errors import InvalidInputError
from .evaluator import Evaluator
from .feature_sets import FeatureSet
from .metrics import Result, get_metric
from .options import Options
from .sources import InputLike
from .statistics import Stats

_METHOD = get_metric("fid").param("method")


def features(inputs: InputLike, **options: Any) -> np.ndarray:
    """The backbone's features (N × d float32: pool3 for the Inception, the CLS token for DINOv2, the image
    embedding for CLIP) in input order. Options: the fields of `fidrs.Options`."""
    return Evaluator(**options).features(inputs)


def feature_set(inputs: InputLike, **options: Any) -> FeatureSet:
    """Run the network once over `inputs` and keep what every metric needs (features, logits, names)."""
    return Evaluator(**options).feature_set(inputs)


def stats(inputs: InputLike, **options: Any) -> Stats:
    """μ and Σ (float64, n − 1) of the backbone's features, streamed: memory stays O(d²)."""
    return Evaluator(**options).stats(inputs)


def score_details(a: InputLike, b: InputLike, *, method: str = _METHOD.default, **options: Any) -> dict[str, Any]:
    """`score` with everything the CLI reports: fid, backbone, n_a, n_b, mode, mode_a, mode_b, weights_sha256,
    graph_sha256, provider, method, skipped, cache_hits, seconds."""
    return Evaluator(**options).score_details(a, b, method=method)


def score(a: InputLike, b: InputLike, *, method: str = _METHOD.default, **options: Any) -> float:
    """FID between two image sets (directories, file lists, globs, zips, uint8 arrays, URLs) or `.npz` statistics.

    Options: the fields of `fidrs.Options` (backbone, weights, weights_sha256, model, mode, batch_size, device,
    skip_bad, pad_color, max_pixels, allow_tf32, progress, cache); `method`: the Fréchet method."""
    return Evaluator(**options).score(a, b, method=method)


def _split_keywords(metric, keywords: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(inputs given by name, the metric's parameters, the options); an unknown keyword names all three kinds."""
    sides = {k: v for k, v in keywords.items() if k in metric.inputs}
    params = {k: v for k, v in keywords.items() if k in {p.name for p in metric.params}}
    options = {k: v for k, v in keywords.items() if k not in sides and k not in params}
    unknown = sorted(set(options) - set(Options.names()))
    if unknown:
        raise InvalidInputError(
            f"{metric.name} has no parameter or option {', '.join(unknown)}: its parameters are "
            f"{', '.join(p.name for p in metric.params)}; the options are {', '.join(Options.names())}"
        )
    return sides, params, options


def metric_function(name: str):
    """The module-level function of a registered metric: its inputs, then its parameters and the options as
    keywords; it returns the metric's typed result."""
    metric = get_metric(name)

    def call(*args: Any, **keywords: Any) -> Result:
        named, params, options = _split_keywords(metric, keywords)
        if args and metric.legacy_positional:
            order = metric.cli_inputs or metric.inputs
            warnings.warn(
                f"fidrs.{name}({', '.join(order)}) with positional inputs is deprecated: it reads them in that "
                f"(old) order; pass {', '.join(f'{n}=' for n in metric.inputs)} as keywords (a later release takes "
                f"positional inputs as ({', '.join(metric.inputs)}), like every two-set metric)",
                DeprecationWarning,
                stacklevel=2,
            )
            named = {**dict(zip(order, args)), **named}
            args = ()
        if len(args) > len(metric.inputs):
            raise InvalidInputError(f"{name} takes {len(metric.inputs)} input(s): {', '.join(metric.inputs)}")
        given = {**dict(zip(metric.inputs, args)), **named}
        missing = [n for n in metric.inputs if n not in given]
        if missing:
            raise InvalidInputError(f"{name} needs its input(s) {', '.join(missing)}")
        return Evaluator(**metric.default_options(options)).compute(name, *(given[n] for n in metric.inputs), **params)

    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD if not metric.legacy_positional else inspect.Parameter.KEYWORD_ONLY
    parameters = []
    if metric.legacy_positional:
        parameters.append(inspect.Parameter("legacy_inputs", inspect.Parameter.VAR_POSITIONAL))
    parameters += [
        inspect.Parameter(n, kind, default=None if metric.legacy_positional else inspect._empty) for n in metric.inputs
    ]
    parameters += [inspect.Parameter(p.name, inspect.Parameter.KEYWORD_ONLY, default=p.default) for p in metric.params]
    parameters.append(inspect.Parameter("options", inspect.Parameter.VAR_KEYWORD))
    call.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    call.__name__ = call.__qualname__ = name
    params_doc = "; ".join(f"{p.name}={p.default!r}: {p.help}" for p in metric.params)
    call.__doc__ = (
        f"{metric.title} of {', '.join(metric.inputs)} (image inputs or FeatureSets). Parameters: {params_doc}. "
        f"Options: the fields of fidrs.Options. Protocol: {metric.protocol}. Returns {metric.result.__name__}."
    )
    call.__module__ = "fidrs"
    return call


kid = metric_function("kid")
inception_score = metric_function("inception_score")
precision_recall = metric_function("precision_recall")
memorization = metric_function("memorization")
fid_confidence = metric_function("fid_confidence")
cmmd = metric_function("cmmd")
