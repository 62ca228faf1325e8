"""skmixed: fast, scikit-learn-compatible mixed-effects models for big data."""

from ._estimators.mixed_lm import MixedLM
from .exceptions import RankDeficientWarning, SingularFitWarning

__all__ = ["MixedLM", "SingularFitWarning", "RankDeficientWarning"]
__version__ = "0.1.0"
