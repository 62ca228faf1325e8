"""Warnings raised by skmixed's estimators (besides sklearn's ``ConvergenceWarning``)."""

__all__ = ["SingularFitWarning", "RankDeficientWarning"]


class SingularFitWarning(UserWarning):
    """A random-effect covariance at the boundary: a variance (near) zero, as lme4's
    "boundary (singular) fit"."""


class RankDeficientWarning(UserWarning):
    """Constant or collinear fixed-effect columns were dropped, as lme4 does."""
