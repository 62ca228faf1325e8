"""Warnings raised by skmixed's estimators (besides sklearn's ``ConvergenceWarning``)."""

from sklearn.exceptions import ConvergenceWarning

__all__ = ["SingularFitWarning", "RankDeficientWarning", "PerfectSeparationWarning",
           "GroupLabelWarning"]


class SingularFitWarning(UserWarning):
    """A random-effect covariance at the boundary: a variance (near) zero, as lme4's
    "boundary (singular) fit"."""


class RankDeficientWarning(UserWarning):
    """Constant or collinear fixed-effect columns were dropped, as lme4 does."""


class PerfectSeparationWarning(ConvergenceWarning):
    """A binomial fit with fitted probabilities numerically 0 or 1: (quasi-)complete
    separation, so some coefficient's maximum-likelihood estimate is infinite (R's glm:
    "fitted probabilities numerically 0 or 1 occurred")."""


class GroupLabelWarning(UserWarning):
    """Group labels at predict of another type than in fit (e.g. the strings ``"1"``,
    ``"2"`` for the integers 1, 2) leave most rows in groups not seen in fit, so they
    silently get population-level predictions."""
