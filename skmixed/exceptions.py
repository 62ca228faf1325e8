"""Warnings raised by skmixed's estimators (besides sklearn's ``ConvergenceWarning``), and
the errors of its data sources and distributed fits."""

from sklearn.exceptions import ConvergenceWarning

__all__ = ["SingularFitWarning", "RankDeficientWarning", "PerfectSeparationWarning",
           "KernelCacheWarning", "SourceError", "LostWorkerError"]


class SingularFitWarning(UserWarning):
    """A random-effect covariance at the boundary: a variance (near) zero, as lme4's
    "boundary (singular) fit"."""


class RankDeficientWarning(UserWarning):
    """Constant or collinear fixed-effect columns were dropped, as lme4 does."""


class PerfectSeparationWarning(ConvergenceWarning):
    """A binomial fit with fitted probabilities numerically 0 or 1: (quasi-)complete
    separation, so some coefficient's maximum-likelihood estimate is infinite (R's glm:
    "fitted probabilities numerically 0 or 1 occurred")."""


class KernelCacheWarning(UserWarning):
    """The on-disk cache of compiled kernels was not used as it is: a damaged file was
    deleted and its kernel compiled again, or the cache folder is owned by or writable by
    another user and was ignored (see the README's "Compiled kernels" section)."""


class SourceError(ValueError):
    """A chunked source (skmixed.sources) that cannot be read as asked: a file that is not
    Parquet, is truncated or lacks a column, or a call that leaves the columns to guess.
    The message names the file and the problem."""


class LostWorkerError(RuntimeError):
    """A Dask worker holding part of a distributed fit was lost and its part could not be
    rebuilt on the remaining workers; the message names the worker. The fit can be rerun."""
