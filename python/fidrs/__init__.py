"""fidrs: fast, exact Fréchet distances (FID with pytorch-fid's numbers, FD_DINOv2 with dgm-eval's), no torch."""

from . import backbones
from ._fidrs import Moments, __version__
from .api import SmallSampleWarning, features, score, score_details, stats
from .errors import (
    BadImagesError,
    DecodeError,
    EmptyInputError,
    FidrsError,
    IncompatibleStatsError,
    InvalidInputError,
    NumericalError,
    RuntimeUnavailableError,
    WeightsError,
    WeightsHashMismatchError,
    WeightsUnavailableError,
)
from .frechet import frechet_distance
from .metrics import (
    FeatureSet,
    feature_set,
    fid_confidence,
    inception_score,
    kid,
    memorization,
    precision_recall,
)
from .stats import Stats
from .streaming import Accumulator

__all__ = [
    "Accumulator",
    "BadImagesError",
    "DecodeError",
    "EmptyInputError",
    "FeatureSet",
    "FidrsError",
    "IncompatibleStatsError",
    "InvalidInputError",
    "Moments",
    "NumericalError",
    "RuntimeUnavailableError",
    "SmallSampleWarning",
    "Stats",
    "WeightsError",
    "WeightsHashMismatchError",
    "WeightsUnavailableError",
    "__version__",
    "backbones",
    "feature_set",
    "features",
    "fid_confidence",
    "frechet_distance",
    "inception_score",
    "kid",
    "memorization",
    "precision_recall",
    "score",
    "score_details",
    "stats",
]
