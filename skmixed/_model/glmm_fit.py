"""The fit of a one-factor GLMM (the Numba Laplace, quadrature and joint-PIRLS objectives
of `glmm`): the rows in group order on the internal columns, start values, lme4's
stages (Laplace, then quadrature from its optimum), the family's parameter, the Hessian →
covariance, the modes at the optimum, the `FitResult` on the user's
columns. Also a model with identical factors fitted once (`fit_identical_once`) and
the finish of an optimization over a distributed objective (`fit_objective`)."""

import time
import warnings

import numpy as np

from .._kernels.glmm import count_extreme_eta
from .._kernels.threads import over_groups, single_threaded_blas
from ..exceptions import PerfectSeparationWarning
from . import identifiability
from .glmm import (GroupedRows, JointPIRLSDeviance, LaplaceDeviance, em_start,
                   family_param_start, fit_fixed_glm, group_order, row_sample)
from .multilevel_fit import BackTransform, fit_multi_glmm
from .optimize import minimize
from .result import FitResult, fixed_covariance
from .scaling import ColumnScaling
from .spaces import ParamSpace, ThetaSpace
from .spec import ModelSpec

__all__ = ["fit_glmm", "fit_identical_once", "fit_objective", "fit_one_factor",
           "grouped_rows", "warn_fitted_bounds"]

_START_ROWS = 100_000  # rows of the GLM that gives the start values


def warn_fitted_bounds(family, rows, beta, modes):
    """R's glm check: fitted probabilities numerically 0 or 1 (|η| > 33) mean (quasi-)
    complete separation, also by a combination of columns that no single-column check sees."""
    if family.eta_bounds is None:
        return
    low, high = family.eta_bounds
    beta = np.asarray(beta, dtype=float)
    modes = np.ascontiguousarray(modes, dtype=float)
    counts = np.zeros(rows.starts.shape[0] - 1, dtype=np.int64)
    over_groups(count_extreme_eta, rows.starts, lambda starts, g: (
        rows.X, rows.zcol, rows.offset, rows.weights, starts, beta, modes[g], low, high,
        counts[g]))
    n_extreme = int(counts.sum())
    if n_extreme:
        warnings.warn(
            f"fitted probabilities numerically 0 or 1 occurred in {n_extreme} row(s): "
            "(quasi-)complete separation — some coefficients' estimates are infinite and "
            "their standard errors meaningless. Drop or recode the separating columns.",
            PerfectSeparationWarning, stacklevel=5)


def fit_one_factor(family, rows, term, *, n_agq, tol, max_iter):
    """Fit a GLMM with one grouping factor (``family``: a [`Family`][skmixed.families.Family],
    ``rows``: `glmm.GroupedRows` on the internal columns, ``term``: the random-effect
    term) by the Laplace approximation, adaptive quadrature (``n_agq > 1``) or lme4's
    ``nAGQ = 0``. Returns a dict: ``opt`` (`optimize.OptSummary`, final point
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
    if objective.param is not None:
        # reported as lme4 and glmmTMB do: θ relative to σ (Gamma's √φ; 1 otherwise)
        sigma, dispersion = objective.param.report(x[p + k])
        opt.theta_final = np.concatenate([x[:p], x[p:p + k] / sigma])
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


def grouped_rows(design, y, w, extra_cols, order, starts, fit_intercept, stacklevel):
    """The fixed-effect block (intercept first, centred and scaled: skmixed._model.scaling)
    and the per-row vectors (``extra_cols``: "trials", "offset" if given) in group order
    (``order``, None when sorted); constant or collinear fixed columns dropped (lme4's rank
    check; ``stacklevel`` of its warning, from the caller). Returns the
    `glmm.GroupedRows`, the kept names, the dropped ones and the
    `multilevel_fit.BackTransform`."""
    n = y.shape[0]
    factor = design.factors[0]
    names = (["(Intercept)"] if fit_intercept else []) + list(design.fixed_names)
    cols = ([np.ones(n)] if fit_intercept else []) + list(design.columns)
    take = (lambda a: a) if order is None else (lambda a: np.asarray(a)[order])
    X = np.empty((n, len(cols)), order="F")
    for j, col in enumerate(cols):
        X[:, j] = take(col)
    scaling = ColumnScaling.from_columns(design.columns, intercept=fit_intercept,
                                         slope_pos=factor.slope_pos)
    scaling.transform(X, first=int(fit_intercept))
    with single_threaded_blas():
        # rows of zero weight do not count (frequency weights: they are absent)
        XtX = X.T @ X if not w.size else X.T @ (X * take(w)[:, None])
    kept, dropped = identifiability.independent_fixed_columns(XtX, names,
                                                              stacklevel=stacklevel + 1)
    if dropped:
        X = np.asfortranarray(X[:, kept])
    offset_pos = int(fit_intercept)
    zcol = [-1]
    for name, j in zip(factor.slope_names, factor.slope_pos):
        pos = int(np.searchsorted(kept, offset_pos + j))
        if pos >= len(kept) or kept[pos] != offset_pos + j:
            raise ValueError(f"random-slope column {name!r} was dropped as collinear "
                             "with other fixed columns; drop it or the columns it "
                             "duplicates.")
        zcol.append(pos)

    def vector(key):
        return (np.ascontiguousarray(take(extra_cols[key])) if key in extra_cols
                else np.empty(0))

    rows = GroupedRows(X, np.array(zcol, dtype=np.int64), np.ascontiguousarray(take(y)),
                       vector("trials"), vector("offset"),
                       np.ascontiguousarray(take(w)) if w.size else np.empty(0), starts)
    return rows, [names[j] for j in kept], dropped, BackTransform(scaling, kept)


def one_factor_result(r, back, factor, names, dropped, n_obs):
    """The FitResult of a one-factor fit's dict ``r`` (`fit_one_factor`, or the
    distributed fit): estimates, θ, modes on the user's columns; the optimizer's final
    point becomes ``(β, θ)`` on them."""
    beta, fixed_cov = back(r["beta"], r["fixed_cov"])
    opt = r["opt"]
    theta_internal = opt.theta_final[len(beta):].copy()
    fit = back.factor_fit(factor, theta_internal, r["modes"], r["cond_var"])
    opt.theta_final = np.concatenate([beta, fit.theta])
    opt.timings = r["timings"]
    dispersion = r.get("dispersion")
    # lme4 and glmmTMB count Gamma's dispersion and the NB size as a parameter
    return FitResult(names=names, beta=beta, fixed_cov=fixed_cov, dropped=dropped,
                     factors=[fit], sigma=float(r["sigma"]), criterion=float(r["deviance"]),
                     n_params=len(beta) + fit.term.n_theta + (dispersion is not None),
                     n_obs=float(n_obs), opt=opt, dispersion=dispersion)


def fit_glmm(family, design, y, w, extra_cols, *, n_agq, fit_intercept, tol, max_iter):
    """A one-factor GLMM of the ModelSpec ``design`` (unused levels dropped; ``extra_cols``:
    the "trials" and "offset" columns if given): rows put in group order, then
    `fit_one_factor`; a FitResult."""
    t0 = time.perf_counter()
    factor = design.factors[0]
    order, starts = group_order(np.asarray(factor.codes, dtype=np.int64), len(factor.levels))
    rows, names, dropped, back = grouped_rows(design, y, w, extra_cols, order, starts,
                                              fit_intercept, stacklevel=3)
    t1 = time.perf_counter()
    r = fit_one_factor(family, rows, factor.term, n_agq=n_agq, tol=tol, max_iter=max_iter)
    r["timings"] = {"prepare": t1 - t0, **r["timings"], "total": time.perf_counter() - t0}
    n_obs = float(rows.weights.sum()) if rows.weights.size else float(rows.y.shape[0])
    return one_factor_result(r, back, factor, names, dropped, n_obs)


def fit_identical_once(family, design, sets, y, w, extra_cols, *, n_agq, fit_intercept,
                       tol, max_iter):
    """A several-factor GLMM with sets of identical factors (same rows, same term): the
    model with each set's first factor only — through the one-factor path when one factor
    is left, seconds instead of minutes on 10⁵ rows — its θ and modes then split among the
    copies (`split_identical`)."""
    copies = {j for s in sets for j in s[1:]}
    reduced = ModelSpec(**{**vars(design), "factors": [
        f for j, f in enumerate(design.factors) if j not in copies]})
    if len(reduced.factors) > 1:
        n = y.shape[0]
        r = fit_multi_glmm(reduced, y, w, extra_cols.get("trials", np.ones(n)),
                           extra_cols.get("offset", np.zeros(n)), family=family,
                           fit_intercept=fit_intercept, tol=tol, max_iter=max_iter)
    else:
        r = fit_glmm(family, reduced, y, w, extra_cols, n_agq=n_agq,
                     fit_intercept=fit_intercept, tol=tol, max_iter=max_iter)
    r.factors = identifiability.split_identical(r.factors, design.factors, sets, w,
                                                sigma=r.sigma)
    return r


def fit_objective(objective, term, beta0, extra0, *, param, back, factor, names, dropped,
                  n_obs, tol, max_iter):
    """Minimize a one-factor Laplace deviance over x = (β, θ[, the family's parameter])
    from ``beta0`` and ``extra0`` (e.g. the distributed objective of a Dask fit, whose
    ``modes(x)`` returns the levels it saw, the modes and their conditional variances),
    then the covariance from the optimizer's Hessian; a FitResult (``factor.levels`` set to
    the objective's levels; ``param``: the family's ``laplace_param`` or None)."""
    t0 = time.perf_counter()
    opt = minimize(objective, ParamSpace(ThetaSpace(term), beta0, extra0), method="newton",
                   tol=tol, max_iter=max_iter)
    x = opt.theta_final
    p = len(beta0)
    cov = fixed_covariance(opt.hessian, slice(0, p))
    factor.levels, modes, cond_var = objective.modes(x)
    sigma, dispersion = 1.0, None
    if param is not None:  # the family's parameter, last
        sigma, dispersion = param.report(x[-1])
        opt.theta_final = x[:p + term.n_theta].copy()
    timings = {"total": time.perf_counter() - t0}
    return one_factor_result(dict(opt=opt, deviance=opt.fmin, fixed_cov=cov, modes=modes,
                                  cond_var=cond_var, beta=x[:p], timings=timings, sigma=sigma,
                                  dispersion=dispersion), back, factor, names, dropped,
                             n_obs)
