"""fidrs: fast, exact Fréchet distances (FID with pytorch-fid's numbers, FD_DINOv2 with dgm-eval's), no torch.

`__all__` is the public surface (tests/unit/test_package_structure.py checks it). Names are imported when first used,
so `import fidrs` is quick and imports neither ONNX, ONNX Runtime nor SciPy: those load where a network is built
or run, or SciPy's `sqrtm` is asked for."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

# public name → the module that defines it (relative to fidrs)
_WHERE = {
    # the Evaluator and its options
    "Evaluator": "evaluator",
    "Options": "options",
    # the module-level functions (thin calls on an Evaluator)
    "features": "api",
    "feature_set": "api",
    "stats": "api",
    "score": "api",
    "score_details": "api",
    "kid": "api",
    "inception_score": "api",
    "precision_recall": "api",
    "memorization": "api",
    "fid_confidence": "api",
    "cmmd": "api",
    "frechet_distance": "frechet",
    # values
    "Stats": "statistics",
    "FeatureSet": "feature_sets",
    "Provenance": "provenance",
    "Accumulator": "streaming",
    "Moments": "_fidrs",
    "__version__": "_fidrs",
    # extending fidrs
    "register_backbone": "backbones",
    "register_metric": "metrics",
    "register_source": "sources",
    # errors and warnings
    "BadImagesError": "errors",
    "DecodeError": "errors",
    "EmptyInputError": "errors",
    "FidrsError": "errors",
    "FileTooLargeError": "errors",
    "IncompatibleStatsError": "errors",
    "InternalError": "errors",
    "InvalidInputError": "errors",
    "NotRegularFileError": "errors",
    "NumericalError": "errors",
    "OutputError": "errors",
    "RuntimeUnavailableError": "errors",
    "WeightsError": "errors",
    "WeightsHashMismatchError": "errors",
    "WeightsUnavailableError": "errors",
    "CacheWarning": "errors",
    "DuplicateFilesWarning": "errors",
    "FidrsWarning": "errors",
    "SkippedFilesWarning": "errors",
    "SmallSampleWarning": "errors",
    "UnknownModeWarning": "errors",
}
_SUBPACKAGES = ("backbones", "distributed", "metrics", "sources")

__all__ = [
    "Accumulator",
    "BadImagesError",
    "CacheWarning",
    "DecodeError",
    "DuplicateFilesWarning",
    "EmptyInputError",
    "Evaluator",
    "FeatureSet",
    "FidrsError",
    "FidrsWarning",
    "FileTooLargeError",
    "IncompatibleStatsError",
    "InternalError",
    "InvalidInputError",
    "Moments",
    "NotRegularFileError",
    "NumericalError",
    "Options",
    "OutputError",
    "Provenance",
    "RuntimeUnavailableError",
    "SkippedFilesWarning",
    "SmallSampleWarning",
    "Stats",
    "UnknownModeWarning",
    "WeightsError",
    "WeightsHashMismatchError",
    "WeightsUnavailableError",
    "__version__",
    "backbones",
    "cmmd",
    "distributed",
    "feature_set",
    "features",
    "fid_confidence",
    "frechet_distance",
    "inception_score",
    "kid",
    "memorization",
    "metrics",
    "precision_recall",
    "register_backbone",
    "register_metric",
    "register_source",
    "score",
    "score_details",
    "sources",
    "stats",
]


def __getattr__(name: str) -> Any:
    if name in _SUBPACKAGES:
        return import_module(f"{__name__}.{name}")
    if name not in _WHERE:
        raise AttributeError(f"module 'fidrs' has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{_WHERE[name]}"), name)
    globals()[name] = value  # looked up once
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # what type checkers and IDEs see
    from . import backbones, distributed, metrics, sources
    from ._fidrs import Moments, __version__
    from .api import (
        cmmd,
        feature_set,
        features,
        fid_confidence,
        inception_score,
        kid,
        memorization,
        precision_recall,
        score,
        score_details,
        stats,
    )
    from .backbones import register_backbone
    from .errors import (
        BadImagesError,
        CacheWarning,
        DecodeError,
        DuplicateFilesWarning,
        EmptyInputError,
        FidrsError,
        FidrsWarning,
        FileTooLargeError,
        IncompatibleStatsError,
        InternalError,
        InvalidInputError,
        NotRegularFileError,
        NumericalError,
        OutputError,
        RuntimeUnavailableError,
        SkippedFilesWarning,
        SmallSampleWarning,
        UnknownModeWarning,
        WeightsError,
        WeightsHashMismatchError,
        WeightsUnavailableError,
    )
    from .evaluator import Evaluator
    from .feature_sets import FeatureSet
    from .frechet import frechet_distance
    from .metrics import register_metric
    from .options import Options
    from .provenance import Provenance
    from .sources import register_source
    from .statistics import Stats
    from .streaming import Accumulator
