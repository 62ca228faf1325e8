"""Optimization of the profiled deviance over θ, and the record of it (lme4's optinfo,
MixedModels.jl's OptSummary)."""

import time
from dataclasses import dataclass, field

import numpy as np
from scipy import optimize

from .._kernels.threads import single_threaded_blas

__all__ = ["OptSummary", "minimize_theta"]


@dataclass
class OptSummary:
    """Everything about one optimization of the profiled deviance.

    Attributes
    ----------
    optimizer : str
    theta_start, theta_final : ndarray
    lower : ndarray
        Lower bounds of θ.
    fmin : float
        The criterion at ``theta_final`` (REML criterion or deviance).
    gradient : ndarray
        Gradient at ``theta_final``; components at an active bound may be positive.
    n_evals, n_iter : int
    converged : bool
    message : str
    timings : dict
        Wall seconds per phase of the fit.
    """

    optimizer: str
    theta_start: np.ndarray
    theta_final: np.ndarray
    lower: np.ndarray
    fmin: float
    gradient: np.ndarray
    n_evals: int
    n_iter: int
    converged: bool
    message: str
    timings: dict = field(default_factory=dict)


def minimize_theta(objective, theta_start, lower, *, tol=1e-10, max_iter=1000):
    """Minimize ``objective.value_and_grad`` over θ ≥ lower with L-BFGS-B.

    ``tol`` is the relative decrease of the criterion below which the search stops; the
    projected-gradient stop is scaled by the criterion's magnitude so that it means the same
    for 180 rows and for 2e6 rows.
    """
    start = time.perf_counter()
    with single_threaded_blas():
        return _minimize(objective, theta_start, lower, tol, max_iter, start)


def _minimize(objective, theta_start, lower, tol, max_iter, start):
    f0, _ = objective.value_and_grad(theta_start)
    scale = max(1.0, abs(f0)) if np.isfinite(f0) else 1.0
    bounds = [(lo if np.isfinite(lo) else None, None) for lo in lower]
    res = optimize.minimize(
        objective.value_and_grad, np.asarray(theta_start, dtype=float), jac=True,
        method="L-BFGS-B", bounds=bounds,
        options={"ftol": tol, "gtol": tol * scale, "maxiter": max_iter, "maxcor": 20},
    )
    f, g = objective.value_and_grad(res.x)
    return OptSummary(
        optimizer="L-BFGS-B",
        theta_start=np.asarray(theta_start, dtype=float),
        theta_final=np.asarray(res.x, dtype=float),
        lower=np.asarray(lower, dtype=float),
        fmin=float(f),
        gradient=np.asarray(g),
        n_evals=int(res.nfev),
        n_iter=int(res.nit),
        converged=bool(res.success),
        message=str(res.message),
        timings={"optimize": time.perf_counter() - start},
    )
