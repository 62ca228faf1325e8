"""The linear mixed model with one grouping factor from its per-group sufficient statistics
(Bates et al. 2015 §3): the centring and scaling of the columns, the rank check, θ by the profiled
deviance of `skmixed._model.lmm`, and the `FitResult`.
The row pass that makes the statistics (in memory, chunked, Dask) is the data source's."""

import time

import numpy as np

from . import identifiability
from .lmm import GroupedCrossproducts, ProfiledDeviance
from .lmm_inference import GaussianInference
from .profiles import FactorMap
from .optimize import minimize
from .result import FactorFit, FitResult
from .scaling import SAMPLE_ROWS, ColumnScaling
from .spaces import ThetaSpace

__all__ = ["centring_shift", "response_shift", "fit_crossprods"]


def centring_shift(design, y, fit_intercept, slope_pos=None):
    """Values subtracted from ``v = [1, x…, y]`` in the row pass (the sums of `lmm`): the
    fixed columns' centres of `ColumnScaling` (0 for
    random-slope columns — ``slope_pos``, default ``design.slope_pos`` — and without an
    intercept) and, with an intercept, the mean of a strided sample of y. It keeps
    ``y'y − Σ‖c_i‖² − ‖c_β‖²`` free of cancellation when y or a column has a large mean;
    only the intercept moves, mapped back after the fit."""
    scaling = ColumnScaling.from_columns(
        design.columns, intercept=fit_intercept,
        slope_pos=design.slope_pos if slope_pos is None else slope_pos)
    return np.concatenate([[0.0], scaling.center, [response_shift(y, fit_intercept)]])


def response_shift(y, fit_intercept):
    """What is subtracted from y before its sums: with an intercept, the mean of a strided
    sample of y (the intercept absorbs it exactly), else 0."""
    return float(np.mean(y[::max(1, y.shape[0] // SAMPLE_ROWS)])) if fit_intercept else 0.0


def _scaled_crossprods(group_xv, total_vv, shift, slope_pos, fit_intercept):
    """The sums over ``v = [1, x…, y]`` on the internal columns: each fixed column divided
    by the spread of its centred values (ColumnScaling.from_centred_sums) — a random-slope
    column on both axes of the per-group sums ``Z_i'W v`` — and that scaling."""
    p = total_vv.shape[0] - 2
    n = total_vv[0, 0]
    diag = np.diagonal(total_vv)[1:p + 1]
    scaling = ColumnScaling.from_centred_sums(shift[1:p + 1], n, total_vv[0, 1:p + 1], diag,
                                              intercept=fit_intercept, slope_pos=slope_pos)
    if scaling.is_identity:
        return group_xv, total_vv, scaling
    sv = np.concatenate([[1.0], scaling.scale, [1.0]])
    sz = sv[np.concatenate([[0], 1 + np.asarray(slope_pos, dtype=np.int64)])]
    return (group_xv / sv[None, None, :] / sz[None, :, None], total_vv / np.outer(sv, sv),
            scaling)


def _check_residual_variation(objective, term):
    """Refuse a y that the fixed effects fit exactly, before optimizing.

    At θ = 0 the penalized least-squares problem is ordinary least squares, and the penalized
    RSS can only be lower at any other θ; if the OLS residuals are zero (to rounding), so is
    σ², the profiled deviance is -inf or noise and no covariance parameter is identified.
    """
    identifiability.check_residual_variation(
        objective.evaluate(np.zeros(term.n_theta)).penalized_rss, objective.stats.yty)


def fit_crossprods(design, group_xv, total_vv, shift=None, *, reml, fit_intercept, tol,
                   max_iter, weighted=False, estimator_name="MixedLM"):
    """Everything after the row pass of a one-factor LMM (``design``: a ModelSpec with one
    factor, unused levels dropped): rank check, θ optimization; a FitResult.

    ``shift`` is what the row pass subtracted from ``v = [1, x…, y]`` (default none);
    ``weighted``: sample weights were given (for the messages).
    """
    timings = {}
    t0 = time.perf_counter()
    factor = design.factors[0]
    if shift is None:
        shift = np.zeros(total_vv.shape[0])
    group_xv, total_vv, scaling = _scaled_crossprods(group_xv, total_vv, shift,
                                                     factor.slope_pos, fit_intercept)
    n_fixed = len(design.columns)
    fixed_pos = np.arange(0 if fit_intercept else 1, n_fixed + 1)
    names = (["(Intercept)"] if fit_intercept else []) + list(design.fixed_names)
    kept, dropped = identifiability.independent_fixed_columns(
        total_vv[np.ix_(fixed_pos, fixed_pos)], names, stacklevel=4)
    fixed_pos = fixed_pos[kept]
    names = [names[j] for j in kept]
    weight_sum = total_vv[0, 0]
    n_groups_obs = int(np.count_nonzero(group_xv[:, 0, 0] > 0))
    if n_groups_obs < 2:
        raise ValueError(f"{estimator_name} needs at least 2 groups with positive "
                         f"weight; found {n_groups_obs}.")
    term = factor.term
    identifiability.check_levels_vs_observations(
        weight_sum, [(factor.name, n_groups_obs, list(term.names), factor.covariance)],
        estimator_name, weighted=weighted)
    if reml and weight_sum <= len(fixed_pos):
        raise ValueError(f"REML needs more observations ({weight_sum:g}) than fixed "
                         f"effects ({len(fixed_pos)}).")

    stats = GroupedCrossproducts.from_crossprods(
        group_xv, total_vv, np.concatenate([[0], 1 + factor.slope_pos]), fixed_pos)
    objective = ProfiledDeviance(stats, term, reml=reml)
    _check_residual_variation(objective, term)
    opt = minimize(objective, ThetaSpace(term), method="lbfgs-newton", tol=tol,
                   max_iter=max_iter, polish=True)
    timings["optimize"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    state = objective.evaluate(opt.theta_final)
    if not np.isfinite(state.deviance):
        raise ValueError("the profiled deviance is not finite at the optimum: the response "
                         "may be constant or perfectly fitted by the fixed effects.")
    sigma2 = state.penalized_rss / objective.dof
    modes, rel_cond_cov = objective.conditional_modes(state)
    kept_cols = fixed_pos - (0 if fit_intercept else 1)
    beta, fixed_cov = scaling.to_original(state.beta, sigma2 * np.linalg.inv(state.S),
                                          kept_cols)
    if fit_intercept:
        beta[0] += shift[-1]
    # θ, the modes and their variances of the scaled slope columns, on the user's
    theta_internal = opt.theta_final.copy()
    opt.theta_final, modes, cond_var = scaling.term_to_original(
        factor.slope_pos, term.rows, theta_internal, modes,
        sigma2 * np.diagonal(rel_cond_cov, axis1=1, axis2=2))
    fit = FactorFit(name=factor.name, levels=factor.levels, term=term,
                    theta=term.canonical(opt.theta_final), theta_internal=theta_internal,
                    modes=modes, cond_var=cond_var)
    criterion = state.deviance + (scaling.reml_offset(kept_cols) if reml else 0.0)
    timings["results"] = time.perf_counter() - t1
    opt.timings = timings
    c = np.zeros(len(names))
    if fit_intercept:
        c[0] = shift[-1]
    inference = GaussianInference(
        kind="one", stats=stats, cols=[term], theta=theta_internal, reml=reml,
        factors=[FactorMap(factor.name, term, scaling.slope_factors(factor.slope_pos), 0,
                           term.n_theta)],
        A=scaling.matrix(kept_cols), c=c, names=names)
    return FitResult(names=names, beta=beta, fixed_cov=fixed_cov, dropped=dropped,
                     factors=[fit], sigma=float(np.sqrt(sigma2)), criterion=float(criterion),
                     n_params=len(beta) + term.n_theta + 1, n_obs=float(stats.n), opt=opt,
                     extra={"inference": inference})
