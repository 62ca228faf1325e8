"""Warnings raised by skmixed's estimators (besides sklearn's ``ConvergenceWarning``), and
the errors of its data sources and distributed fits."""

from sklearn.exceptions import ConvergenceWarning

__all__ = ["SingularFitWarning", "RankDeficientWarning", "PerfectSeparationWarning",
           "KernelCacheWarning", "SourceError", "LostWorkerError", "IdentifiabilityWarning",
           "GroupLabelWarning", "RefitMLWarning", "ApproximationWarning"]


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
    another user and was ignored (see the documentation's "Compiled kernels" page)."""


class SourceError(ValueError):
    """A chunked source (skmixed.sources) that cannot be read as asked: a file that is not
    Parquet, is truncated or lacks a column, or a call that leaves the columns to guess.
    The message names the file and the problem."""


class LostWorkerError(RuntimeError):
    """A Dask worker holding part of a distributed fit was lost and its part could not be
    rebuilt on the remaining workers; the message names the worker. The fit can be rerun."""


class IdentifiabilityWarning(UserWarning):
    """Parameters the data cannot tell apart: two grouping factors that split the rows into
    the same groups (up to relabelling, e.g. ``g`` and a copy, or ``b`` and ``b:a`` when
    ``b``'s labels are unique across ``a``). Their intercept variances are not identified
    separately — only their sum is; lme4 fits such a model silently, splitting it."""


class GroupLabelWarning(UserWarning):
    """Group labels at predict of another type than in fit (e.g. the strings ``"1"``,
    ``"2"`` for the integers 1, 2) leave most rows in groups not seen in fit, so they
    silently get population-level predictions."""


class RefitMLWarning(UserWarning):
    """A model comparison refitted REML fits by maximum likelihood first (lme4's "refitting
    model(s) with ML (instead of REML)"): REML criteria of models with different fixed
    effects are not comparable."""


class ApproximationWarning(UserWarning):
    """A result computed by a stated approximation that can be far off (e.g. prediction
    standard errors of several-factor models and GLMMs, which leave out the covariance
    between the fixed effects and the modes)."""
