"""Metrics as a registry, one module each: `fid`, `kid`, `inception_score`, `precision_recall`, `memorization`,
`fid_confidence`, `cmmd`. Each declares its parameters with defaults once, what it reads of its inputs (features, class
logits, statistics), the protocol it is defined on, how many inputs it takes and its typed result; the Evaluator
runs it after the one compatibility check, and the CLI and `fidrs.<metric>` functions are generated from it.

A new metric is one module that builds a `Metric` and calls `register_metric` (README, "Extending fidrs")."""

from __future__ import annotations

from . import cmmd, fid, fid_confidence, inception_score, kid, memorization, precision_recall
from .base import FEATURES, LOGITS, STATISTICS, Estimate, MappingResult, Metric, Param, Result, choice, integer, number
from .cmmd import CMMDResult, cmmd_from_embeddings
from .fid import FIDResult
from .fid_confidence import FIDConfidenceResult, fid_confidence_from_features
from .inception_score import InceptionScoreResult, inception_score_from_logits
from .kid import KIDResult, kid_from_features
from .memorization import MemorizationResult, memorization_from_features
from .precision_recall import PrecisionRecallResult, precision_recall_from_features
from .registry import get_metric, metric_names, register_metric, unregister_metric

__all__ = [
    "FEATURES",
    "LOGITS",
    "STATISTICS",
    "CMMDResult",
    "Estimate",
    "FIDConfidenceResult",
    "FIDResult",
    "InceptionScoreResult",
    "KIDResult",
    "MappingResult",
    "MemorizationResult",
    "Metric",
    "Param",
    "PrecisionRecallResult",
    "Result",
    "choice",
    "cmmd",
    "cmmd_from_embeddings",
    "fid",
    "fid_confidence",
    "fid_confidence_from_features",
    "get_metric",
    "inception_score",
    "inception_score_from_logits",
    "integer",
    "kid",
    "kid_from_features",
    "memorization",
    "memorization_from_features",
    "metric_names",
    "number",
    "precision_recall",
    "precision_recall_from_features",
    "register_metric",
    "unregister_metric",
]
