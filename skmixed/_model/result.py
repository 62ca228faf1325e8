"""What every fit computes the same way from its optimum: the fixed effects' covariance from
the Hessian of the deviance, and the information criteria. (The start of the one
``FitResult`` of issue 14; the paths still return their own dicts.)"""

import numpy as np
from scipy import linalg

__all__ = ["fixed_covariance", "information_criteria"]


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
