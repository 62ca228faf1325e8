"""skmixed: fast, scikit-learn-compatible mixed-effects models for big data."""

from ._estimators._inference import BootstrapResult, anova
from ._estimators.additive_mixed import AdditiveMixed
from ._estimators.mixed_glm import MixedGLM
from ._estimators.mixed_lm import MixedLM
from .exceptions import (ApproximationWarning, GroupLabelWarning, IdentifiabilityWarning,
                         KernelCacheWarning, PerfectSeparationWarning, RankDeficientWarning,
                         RefitMLWarning, SingularFitWarning)

__all__ = ["MixedLM", "MixedGLM", "AdditiveMixed", "anova", "BootstrapResult",
           "RefitMLWarning", "ApproximationWarning", "SingularFitWarning",
           "RankDeficientWarning", "PerfectSeparationWarning", "IdentifiabilityWarning",
           "GroupLabelWarning", "KernelCacheWarning"]
__version__ = "0.1.0"
