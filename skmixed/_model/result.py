"""What a fit hands to its estimator: `FitResult` (the fixed effects and their
covariance, each grouping factor's θ, modes and conditional variances as
`FactorFit`, σ, the criterion, the optimizer's record), and what every fit computes
the same way from its optimum: the fixed effects' covariance from the Hessian of the
deviance, and the information criteria."""

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import linalg

from .optimize import OptSummary
from .terms import RandomEffectTerm

__all__ = ["FactorFit", "FitResult", "fixed_covariance", "information_criteria",
           "lme4_order"]


@dataclass
class FactorFit:
    """One grouping factor of a fitted model, on the user's columns.

    ``theta`` is the factor's θ (lme4's order within the term, non-negative diagonal);
    ``theta_internal`` the fit's own θ on its scaled slope columns (unit-free: the
    singular-fit check reads it); ``modes`` and ``cond_var`` are (n_levels, q): the
    conditional modes of the random effects and their conditional variances (σ² included).
    """

    name: str
    levels: pd.Index
    term: RandomEffectTerm
    theta: np.ndarray
    theta_internal: np.ndarray
    modes: np.ndarray
    cond_var: np.ndarray


@dataclass
class FitResult:
    """Everything an estimator reads of a fit (one type for every model and data path).

    ``names``/``beta``/``fixed_cov``: the kept fixed effects (``dropped``: the collinear
    ones), on the user's columns. ``factors`` in the user's order. ``criterion`` is −2 log L
    (the REML criterion for REML fits) on the user's columns, ``n_params`` the number of
    parameters it counts for AIC/BIC, ``n_obs`` the sum of the weights. ``dispersion``: the
    family's fitted parameter (Gamma's φ, the negative binomial's size), None without one.
    ``extra`` holds what one model alone reports (e.g. the additive model's smoothing
    parameters).
    """

    names: list
    beta: np.ndarray
    fixed_cov: np.ndarray
    dropped: list
    factors: list
    sigma: float
    criterion: float
    n_params: int
    n_obs: float
    opt: OptSummary
    dispersion: float = None
    extra: dict = field(default_factory=dict)

    @property
    def loglik(self):
        return -0.5 * float(self.criterion)

    @property
    def information_criteria(self):
        """``(AIC, BIC)``."""
        return information_criteria(self.criterion, self.n_params, self.n_obs)

    def theta(self, order=None):
        """θ of all factors concatenated, factors in ``order`` (default: lme4's,
        decreasing number of levels, stable)."""
        if order is None:
            order = lme4_order(self.factors)
        return np.concatenate([self.factors[k].theta for k in order])

    def singular(self, tol=1e-4):
        """lme4's ``isSingular`` on the fit's internal θ of every factor."""
        return any(f.term.is_singular(f.term.canonical(f.theta_internal), tol)
                   for f in self.factors)


def lme4_order(factors):
    """lme4's order of the random-effect terms: decreasing number of levels (stable)."""
    return sorted(range(len(factors)), key=lambda k: -len(factors[k].levels))


def fixed_covariance(H, fixed):
    """cov(β̂) = 2 H⁻¹ restricted to the fixed effects (``fixed``: their slice or indices in
    the parameter vector), H the Hessian of the deviance ``−2 log L`` over all parameters
    (lme4's standard errors). When that block is not a covariance (a boundary θ makes H
    singular or indefinite there), the inverse of β's own block of H (θ held fixed); NaN
    when even that is singular."""
    H = np.asarray(H, dtype=float)
    try:
        cov = 2.0 * linalg.inv(H)[fixed][:, fixed]
        if not np.all(np.isfinite(cov)) or np.any(np.diag(cov) <= 0):
            raise linalg.LinAlgError("not a covariance")
    except (linalg.LinAlgError, ValueError):
        block = H[fixed][:, fixed]
        try:
            cov = 2.0 * linalg.inv(block)
        except (linalg.LinAlgError, ValueError):
            cov = np.full(block.shape, np.nan)
    return cov


def information_criteria(deviance, n_params, n_obs):
    """``(AIC, BIC)`` of a fit with this deviance (−2 log L, or the REML criterion, as lme4
    reports them), number of parameters and of observations."""
    deviance = float(deviance)
    return deviance + 2.0 * n_params, deviance + float(np.log(n_obs)) * n_params
