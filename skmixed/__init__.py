"""skmixed: fast, scikit-learn-compatible mixed-effects models for big data."""

from ._estimators.mixed_glm import MixedGLM
from ._estimators.mixed_lm import MixedLM
from .exceptions import RankDeficientWarning, SingularFitWarning

__all__ = ["MixedLM", "MixedGLM", "SingularFitWarning", "RankDeficientWarning"]
__version__ = "0.1.0"
