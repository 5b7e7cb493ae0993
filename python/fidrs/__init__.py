"""fidrs: fast, exact Fréchet Inception Distance (pytorch-fid's numbers, without torch)."""

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
    WeightsError,
    WeightsHashMismatchError,
    WeightsUnavailableError,
)
from .frechet import frechet_distance
from .stats import Stats

__all__ = [
    "BadImagesError",
    "DecodeError",
    "EmptyInputError",
    "FidrsError",
    "IncompatibleStatsError",
    "InvalidInputError",
    "Moments",
    "NumericalError",
    "SmallSampleWarning",
    "Stats",
    "WeightsError",
    "WeightsHashMismatchError",
    "WeightsUnavailableError",
    "__version__",
    "features",
    "frechet_distance",
    "score",
    "score_details",
    "stats",
]
