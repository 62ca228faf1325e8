"""The fit of a one-factor GLMM (the Numba Laplace, quadrature and joint-PIRLS objectives
of :mod:`.glmm`): start values, lme4's stages (Laplace, then quadrature from its optimum),
the family's parameter, the Hessian → covariance, the modes at the optimum. The estimator
prepares the rows and maps the result back to the user's columns."""

import time
import warnings

import numpy as np

from .._kernels.glmm import count_extreme_eta
from ..exceptions import PerfectSeparationWarning
from .glmm import (JointPIRLSDeviance, LaplaceDeviance, em_start, family_param_start,
                   fit_fixed_glm, row_sample)
from .optimize import minimize
from .spaces import ParamSpace, ThetaSpace
from .result import fixed_covariance

__all__ = ["fit_one_factor", "warn_fitted_bounds"]

_START_ROWS = 100_000  # rows of the GLM that gives the start values


def warn_fitted_bounds(family, rows, beta, modes):
    """R's glm check: fitted probabilities numerically 0 or 1 (|η| > 33) mean (quasi-)
    complete separation, also by a combination of columns that no single-column check sees."""
    if family.eta_bounds is None:
        return
    low, high = family.eta_bounds
    n_extreme = count_extreme_eta(rows.X, rows.zcol, rows.offset, rows.weights, rows.starts,
                                  np.asarray(beta, dtype=float),
                                  np.ascontiguousarray(modes, dtype=float), low, high)
    if n_extreme:
        warnings.warn(
            f"fitted probabilities numerically 0 or 1 occurred in {n_extreme} row(s): "
            "(quasi-)complete separation — some coefficients' estimates are infinite and "
            "their standard errors meaningless. Drop or recode the separating columns.",
            PerfectSeparationWarning, stacklevel=5)


def fit_one_factor(family, rows, term, *, n_agq, tol, max_iter):
    """Fit a GLMM with one grouping factor (``family``: a :class:`~skmixed.families.Family`,
    ``rows``: :class:`.glmm.GroupedRows` on the internal columns, ``term``: the random-effect
    term) by the Laplace approximation, adaptive quadrature (``n_agq > 1``) or lme4's
    ``nAGQ = 0``. Returns a dict: ``opt`` (:class:`.optimize.OptSummary`, final point
    ``(β, θ)``), ``deviance``, ``beta``, ``fixed_cov``, ``modes``, ``cond_var``, ``sigma``,
    ``dispersion`` and ``timings``."""
    timings = {}
    t0 = time.perf_counter()
    # start values from the GLM without random effects on at most _START_ROWS rows
    # (every k-th row); complete separation found there is confirmed on all rows
    sample = row_sample(rows, _START_ROWS)
    beta0, loglik0 = fit_fixed_glm(family, sample, return_loglik=True,
                                   fpar=family.glm_fpar)

    def separated(r, loglik):
        n_obs = r.weights.sum() if r.weights.size else r.y.shape[0]
        return (family.kind == "proportion" and r.m.size == 0
                and loglik > -1e-6 * n_obs)

    if separated(sample, loglik0) and sample is not rows:
        beta0, loglik0 = fit_fixed_glm(family, rows, return_loglik=True,
                                       fpar=family.glm_fpar)
    if separated(rows, loglik0):
        warnings.warn(
            "complete separation: the fixed effects alone fit every 0/1 response "
            f"(log-likelihood {loglik0:.3g} of the GLM without random effects), so the "
            "maximum-likelihood estimates are infinite and the fit stops at an arbitrary "
            "point. Drop or recode the separating columns.", PerfectSeparationWarning,
            stacklevel=5)
    # the family's parameter (Gamma's dispersion, the negative binomial's size) is one more
    # parameter of the Laplace deviance, started from the GLM's fit
    extra = family_param_start(family, sample.X, sample.y, sample.offset, sample.weights,
                               beta0)
    p = rows.X.shape[1]
    if n_agq == 0:
        return _fit_nagq0(family, rows, term, beta0, t0, tol, max_iter)
    objective = LaplaceDeviance(family, rows, term, n_agq=1)
    theta0 = em_start(objective, beta0, term.theta_start(), extra)
    # before quadrature the Laplace fit is only its start: its BFGS Hessian will do
    opt = minimize(objective, ParamSpace(ThetaSpace(term, theta0), beta0, extra),
                   method="newton", tol=tol, max_iter=max_iter, final_hessian=n_agq == 1)
    if n_agq > 1:
        laplace = opt
        modes = objective.u
        objective = LaplaceDeviance(family, rows, term, n_agq=n_agq)
        objective.u[:] = modes
        opt = minimize(objective, ParamSpace(ThetaSpace(term, laplace.theta_final[p:]),
                                             laplace.theta_final[:p]),
                       method="newton", tol=tol, max_iter=max_iter, hessian=laplace.hessian)
        opt.n_iter += laplace.n_iter
        opt.n_evals += laplace.n_evals
    timings["optimize"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    x = opt.theta_final
    f = opt.fmin
    # lme4's standard errors: the Hessian of the deviance over (β, θ) — the optimizer's
    # own, computed within a few tiny Newton steps of x
    cov = fixed_covariance(opt.hessian, slice(0, p))
    laplace_at_x = objective
    if objective.n_agq > 1:
        # lme4 reports the Laplace modes at the quadrature's optimum: warm-started
        laplace_at_x = LaplaceDeviance(family, rows, term)
        laplace_at_x.u[:] = objective.u
    modes, cond_var = laplace_at_x.modes(x)
    warn_fitted_bounds(family, rows, x[:p], modes)
    sigma, dispersion = 1.0, None
    k = term.n_theta
    if family.param == "dispersion":
        # report as lme4 does: σ = √φ, θ relative to σ (variance components σθ)
        sigma = float(np.exp(-0.5 * x[p + k]))
        dispersion = sigma * sigma
        opt.theta_final = np.concatenate([x[:p], x[p:p + k] / sigma])
    elif family.param is not None:  # the negative binomial's size k
        dispersion = float(np.exp(x[p + k]))
        opt.theta_final = x[:p + k].copy()
    timings["results"] = time.perf_counter() - t1
    return dict(opt=opt, deviance=f, fixed_cov=cov, modes=modes, cond_var=cond_var,
                beta=x[:p], timings=timings, sigma=sigma, dispersion=dispersion)


def _fit_nagq0(family, rows, term, beta0, t0, tol, max_iter):
    """lme4's nAGQ = 0: θ optimized on the Laplace deviance with β and u from a joint
    penalized IRLS; standard errors from the profiled information at θ̂ (lme4's R_X)."""
    objective = JointPIRLSDeviance(family, rows, term, beta0)
    if term.n_theta == 1:
        opt = minimize(objective, ThetaSpace(term), method="brent", max_iter=max_iter)
    else:
        opt = minimize(objective, ThetaSpace(term), method="lbfgs-newton", tol=tol,
                       max_iter=max_iter, hessian_step=1e-3)
    t1 = time.perf_counter()
    deviance, info = objective.solve(opt.theta_final)
    p = rows.X.shape[1]
    x = np.concatenate([objective.beta, opt.theta_final])
    opt.theta_final = x
    modes, cond_var = LaplaceDeviance(family, rows, term).modes(x)
    warn_fitted_bounds(family, rows, x[:p], modes)
    try:
        cov = np.linalg.inv(info)
    except np.linalg.LinAlgError:
        cov = np.full((p, p), np.nan)
    timings = {"optimize": t1 - t0, "results": time.perf_counter() - t1}
    return dict(opt=opt, deviance=deviance, fixed_cov=cov, modes=modes,
                cond_var=cond_var, beta=x[:p], timings=timings, sigma=1.0)
