"""``MixedLM``: the linear mixed model, REML or ML, one grouping factor.

The fit makes one Numba-parallel pass over the rows to per-group sufficient statistics
(:mod:`skmixed._kernels.crossprod`), then minimizes the profiled deviance over θ
(:mod:`skmixed._model.lmm`) with an exact gradient, never touching the rows again.
"""

import time

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin, _fit_context
from sklearn.utils.validation import check_is_fitted

from .._kernels.crossprod import grouped_crossprods
from .._kernels.threads import numba_threads
from .._model.lmm import GroupedCrossproducts, ProfiledDeviance
from .._model.optimize import minimize
from .._model.spaces import ThetaSpace
from .._model.result import information_criteria
from .._model.scaling import SAMPLE_ROWS, ColumnScaling
from .._model.terms import RandomEffectTerm
from ..sources import ChunkedData, score_target
from . import _design, _identifiability, _multi
from ._chunked import chunked_pass, dask_pass, is_dask
from ._base import GROUPED_CONSTRAINTS, GroupedModelMixin, independent_fixed_columns
from ._results import summary_text

__all__ = ["MixedLM"]


def _checked_after_pass(design, sums, y, estimator_name):
    """Checks that the row pass answers cheaply: non-finite input, missing group labels,
    unused categories (dropped here), fewer than two groups."""
    if sums.n_bad_codes:
        raise _design.missing_groups_error(design.group_label)
    if not (np.isfinite(sums.total_vv).all() and np.isfinite(sums.group_xv).all()):
        _design.check_finite_columns(design.columns, design.fixed_labels, y)
        raise ValueError("the cross-products overflowed: rescale the columns of X or y.")
    used = _design.drop_unused_levels(design, sums.group_rows, estimator_name)
    if not used.all():
        sums.group_xv = sums.group_xv[used]
        sums.group_rows = sums.group_rows[used]
    return design


def _centring_shift(design, y, fit_intercept):
    """Values subtracted from ``v = [1, x…, y]`` in the row pass (DESIGN §1 sums): the
    fixed columns' centres of :class:`~skmixed._model.scaling.ColumnScaling` (0 for
    random-slope columns and without an intercept) and, with an intercept, the mean of a
    strided sample of y. It keeps ``y'y − Σ‖c_i‖² − ‖c_β‖²`` free of cancellation when y or
    a column has a large mean; only the intercept moves, mapped back after the fit."""
    scaling = ColumnScaling.from_columns(design.columns, intercept=fit_intercept,
                                         slope_pos=design.slope_pos)
    y_shift = (float(np.mean(y[::max(1, y.shape[0] // SAMPLE_ROWS)]))
               if fit_intercept else 0.0)
    return np.concatenate([[0.0], scaling.center, [y_shift]])


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
    _identifiability.check_residual_variation(
        objective.evaluate(np.zeros(term.n_theta)).penalized_rss, objective.stats.yty)


class MixedLM(GroupedModelMixin, RegressorMixin, BaseEstimator):
    """Linear mixed-effects model with one grouping factor (lme4's ``lmer``).

    ``y = Xβ + Z b + ε`` with ``b_i ~ N(0, Σ)`` per group and ``ε ~ N(0, σ²)``: a random
    intercept per group and, optionally, random slopes on named columns, with correlated
    (``(1 + x | g)``) or independent (``(1 + x || g)``) random effects. Fitted by REML
    (default) or ML from per-group sufficient statistics collected in one parallel pass
    over the rows; the profiled deviance is then minimized over the relative covariance
    factor θ with an exact gradient (L-BFGS-B), at a cost independent of the number of rows.

    Parameters
    ----------
    groups : str or int, default=None
        The grouping column of X (label, or position for arrays). Required; its values may
        be any hashable labels (missing or infinite labels are errors, in fit and predict).
        Not a fixed effect.
    random_slopes : sequence of str or int, default=()
        Columns of X that get a random slope within groups (they stay fixed effects too).
    covariance : {"unstructured", "diagonal"}, default="unstructured"
        Covariance of a group's random effects: unstructured (lme4's ``(1 + x | g)``) or
        diagonal (lme4's ``(1 + x || g)``).
    reml : bool, default=True
        Restricted maximum likelihood (True) or maximum likelihood (False).
    fit_intercept : bool, default=True
        Include a fixed intercept.
    n_jobs : int, default=None
        Threads for the parallel kernels (None or -1: all of Numba's threads; -2: all but
        one; 0 is invalid). The previous thread count is restored after the fit, also when
        the fit raises.
    tol : float, default=1e-8
        Convergence tolerance: the fit stops when a Newton step (exact gradient,
        finite-difference Hessian) predicts a further decrease of the criterion (−2 log
        likelihood units, so independent of n and of the scale of y) of at most ``tol``.
    max_iter : int, default=1000
        Maximum optimizer iterations (>= 1).

    Attributes
    ----------
    coef_ : ndarray of shape (n_fixed,)
        Fixed-effect slopes for ``fixed_feature_names_`` (0 for columns dropped as collinear).
    intercept_ : float
        Fixed intercept (0.0 when ``fit_intercept=False``).
    theta_ : ndarray
        Relative covariance factor, lme4's order (column-major lower triangle).
    sigma_ : float
        Residual standard deviation.
    fixed_effects_ : pandas.DataFrame
        Indexed by term (``"(Intercept)"`` first); columns ``estimate``, ``std_error``, ``z``
        and ``p_value`` (two-sided, normal reference). Dropped collinear columns are absent,
        as in lme4's ``fixef``.
    fixed_cov_ : ndarray
        Covariance matrix of the estimates in ``fixed_effects_``.
    variance_components_ : pandas.DataFrame
        Columns ``group``, ``var1``, ``var2``, ``variance``, ``sd_cor``; rows as lme4's
        ``as.data.frame(VarCorr(m))``.
    random_effects_ : pandas.DataFrame
        Conditional modes per group and term (``group``, ``level``, ``term``, ``mode``,
        ``cond_sd``), term-major like lme4's ``as.data.frame(ranef(m))``.
    random_effects_matrix_ : ndarray of shape (n_groups_, q)
        The same modes as a matrix, rows in ``group_levels_`` order.
    group_levels_ : pandas.Index
        Groups seen in fit, sorted.
    n_groups_ : int
    n_obs_ : float
        Number of observations (sum of weights).
    loglik_ : float
        Log-likelihood at the optimum (the REML log-likelihood for REML fits, as lme4).
    reml_criterion_ : float
        ``-2 * loglik_`` of a REML fit (NaN for ML fits).
    deviance_ : float
        ``-2 * loglik_`` of an ML fit (NaN for REML fits).
    aic_, bic_ : float
    n_iter_ : int
    converged_ : bool
    optimization_ : OptSummary
        The optimizer's record: start, optimum, evaluations, gradient, phase timings.
    fixed_feature_names_ : list of str
        Names of the fixed-effect columns, aligned with ``coef_``.
    dropped_features_ : list of str
        Fixed columns dropped because they were constant or collinear.
    n_features_in_ : int
    feature_names_in_ : ndarray
        Defined when X has string column names.

    See Also
    --------
    skmixed.datasets.make_multilevel : the big-data study's simulator.

    Notes
    -----
    ``sample_weight`` holds frequency weights: an integer weight equals repeating the row.
    The criterion follows Bates et al. (2015), section 3; θ, the REML criterion and
    log-likelihood are directly comparable with lme4's. As lme4's ``lmer``, the fit refuses
    a grouping factor with as many levels as observations (the sum of the weights) and a
    term with as many random effects: their variances are not identified. Two grouping
    factors with the same groups warn ``IdentifiabilityWarning``.

    Examples
    --------
    >>> from skmixed import MixedLM
    >>> from skmixed.datasets import make_multilevel
    >>> df = make_multilevel(20_000, 200, random_state=0)
    >>> model = MixedLM(groups="g").fit(df[["g", "x", "b"]], df["y"])
    >>> model.fixed_effects_.loc["x", "estimate"].round(1)
    np.float64(0.5)
    """

    _parameter_constraints = {
        **GROUPED_CONSTRAINTS, "reml": ["boolean"],
        # several grouping factors: a list of columns (or tuples of columns: interactions),
        # slopes by factor name, covariance by factor name
        "groups": GROUPED_CONSTRAINTS["groups"] + [list, tuple],
        "random_slopes": GROUPED_CONSTRAINTS["random_slopes"] + [dict],
        "covariance": GROUPED_CONSTRAINTS["covariance"] + [dict],
    }

    def __init__(self, *, groups=None, random_slopes=(), covariance="unstructured", reml=True,
                 fit_intercept=True, n_jobs=None, tol=1e-8, max_iter=1000):
        self.groups = groups
        self.random_slopes = random_slopes
        self.covariance = covariance
        self.reml = reml
        self.fit_intercept = fit_intercept
        self.n_jobs = n_jobs
        self.tol = tol
        self.max_iter = max_iter

    # ------------------------------------------------------------------ fit
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None, sample_weight=None):
        """Fit the model.

        Parameters
        ----------
        X : DataFrame, array-like of shape (n_samples, n_features), or ChunkedData
            Fixed-effect columns plus the grouping column named by ``groups``; or a chunked
            source (:mod:`skmixed.sources`: a Parquet dataset, an iterator of DataFrames)
            read once, out of core, which names its target and weight columns (then y
            and sample_weight stay None; one grouping factor); or a Dask DataFrame, with
            y (and sample_weight) Dask Series partitioned alike: every partition reduced
            to per-group sums where it lives.
        y : array-like of shape (n_samples,)
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative frequency weights.

        Returns
        -------
        self : MixedLM
        """
        timings = {}
        t0 = time.perf_counter()
        name = type(self).__name__
        self._multi_design = None
        if isinstance(X, ChunkedData) or is_dask(X):
            return self._fit_chunked(X, y, sample_weight)
        if _multi.is_multi(self.groups):
            return self._fit_multi(X, y, sample_weight)
        # one factor given as a one-element list
        groups = self.groups[0] if isinstance(self.groups, (list, tuple)) else self.groups
        if isinstance(self.covariance, dict) or isinstance(self.random_slopes, dict):
            raise ValueError("covariance and random_slopes as dicts (by factor) need "
                             "several grouping factors in groups.")
        if groups is None:
            raise ValueError(f"{name} needs groups=<the grouping column of X> (a column "
                             "label of a DataFrame, or a position for an array).")
        # Cheap checks of y and the weights first, before the columns of X are touched.
        X_table = _design.as_table(X, name)
        n = _design.n_rows(X_table)
        y_arr = _design.check_target(y, n, name)
        w = _design.check_weights(sample_weight, n)
        design = _design.make_design(X_table, groups=groups,
                                     random_slopes=self.random_slopes, estimator_name=name)
        timings["prepare"] = time.perf_counter() - t0

        with numba_threads(self.n_jobs):
            t1 = time.perf_counter()
            z_pos = np.concatenate([[0], 1 + design.slope_pos]).astype(np.int64)
            shift = _centring_shift(design, y_arr, self.fit_intercept)
            sums = grouped_crossprods(design.columns, y_arr, w, design.codes,
                                      len(design.levels), z_pos, shift=shift)
            timings["row_pass"] = time.perf_counter() - t1
            design = _checked_after_pass(design, sums, y_arr, name)
            result = self._fit_from_crossprods(design, sums.group_xv, sums.total_vv, shift,
                                               weighted=bool(w.size))
        result["timings"] = {**timings, **result["timings"],
                             "total": time.perf_counter() - t0}
        self._set_fitted(X, y, design, result)
        return self

    def _fit_chunked(self, source, y, sample_weight):
        """Out of core: one pass over the source's chunks (skmixed._estimators._chunked),
        then the same optimization as an in-memory fit."""
        t0 = time.perf_counter()
        name = type(self).__name__
        dask_input = is_dask(source)
        if dask_input and not is_dask(y):
            raise ValueError(f"{name}.fit(X, y) with a Dask DataFrame X needs y as a Dask "
                             "Series partitioned like X (e.g. ddf['y']).")
        if dask_input and sample_weight is not None and not is_dask(sample_weight):
            raise ValueError("with a Dask DataFrame X, sample_weight is a Dask Series too.")
        if not dask_input and (y is not None or sample_weight is not None):
            raise ValueError(f"{name}.fit(source): a chunked source names its target (and "
                             "weight) column; pass y and sample_weight as None.")
        if _multi.is_multi(self.groups) or isinstance(self.random_slopes, dict):
            raise ValueError("several grouping factors need an in-memory X (a chunked "
                             "source fits one grouping factor).")
        groups = self.groups[0] if isinstance(self.groups, (list, tuple)) else self.groups
        if groups is None:
            raise ValueError(f"{name} needs groups=<the grouping column of X>.")
        with numba_threads(self.n_jobs):
            if dask_input:
                chunked = dask_pass(source, y, sample_weight, groups=groups,
                                    random_slopes=self.random_slopes,
                                    fit_intercept=self.fit_intercept,
                                    centring_shift=_centring_shift, estimator_name=name)
            else:
                chunked = chunked_pass(source, groups=groups,
                                       random_slopes=self.random_slopes,
                                       fit_intercept=self.fit_intercept,
                                       centring_shift=_centring_shift, estimator_name=name)
            row_pass = time.perf_counter() - t0
            design = _checked_after_pass(chunked.design, chunked.sums, None, name)
            weighted = (sample_weight is not None if dask_input
                        else source.weight is not None)
            result = self._fit_from_crossprods(design, chunked.sums.group_xv,
                                               chunked.sums.total_vv, chunked.shift,
                                               weighted=weighted)
        result["timings"] = {"row_pass": row_pass, **result["timings"],
                             "total": time.perf_counter() - t0}
        self._set_fitted(chunked.X_first, pd.Series([], name=chunked.y_name, dtype=float),
                         design, result)
        return self

    def _fit_multi(self, X, y, sample_weight):
        """Several grouping factors (skmixed._estimators._multi)."""
        t0 = time.perf_counter()
        name = type(self).__name__
        X_table = _design.as_table(X, name)
        n = _design.n_rows(X_table)
        y_arr = _design.check_target(y, n, name)
        w = _design.check_weights(sample_weight, n)
        design = _multi.make_multi_design(X_table, groups=list(self.groups),
                                          random_slopes=self.random_slopes,
                                          covariance=self.covariance, estimator_name=name)
        with numba_threads(self.n_jobs) as n_threads:
            r = _multi.fit_multi_lmm(design, y_arr, w, reml=self.reml,
                                     fit_intercept=self.fit_intercept, n_threads=n_threads,
                                     tol=self.tol, max_iter=self.max_iter,
                                     estimator_name=name)
        n_theta = self._set_multi_fitted(X, y, design, r, keep_residual=True)
        dev = r["deviance"]
        n_params = len(r["beta"]) + n_theta + 1
        self.loglik_ = float(-0.5 * dev)
        self.reml_criterion_ = float(dev) if self.reml else np.nan
        self.deviance_ = np.nan if self.reml else float(dev)
        self.aic_, self.bic_ = information_criteria(dev, n_params, r["n_obs"])
        self.optimization_.timings["total"] = time.perf_counter() - t0
        return self

    def _fit_from_crossprods(self, design, group_xv, total_vv, shift=None, *, weighted=False):
        """Everything after the row pass: rank check, θ optimization, results.

        ``shift`` is what the row pass subtracted from ``v = [1, x…, y]`` (default none);
        ``weighted``: sample weights were given (for the messages).
        """
        timings = {}
        t0 = time.perf_counter()
        if shift is None:
            shift = np.zeros(total_vv.shape[0])
        group_xv, total_vv, scaling = _scaled_crossprods(group_xv, total_vv, shift,
                                                         design.slope_pos, self.fit_intercept)
        n_fixed = len(design.columns)
        fixed_pos = np.arange(0 if self.fit_intercept else 1, n_fixed + 1)
        names = (["(Intercept)"] if self.fit_intercept else []) + list(design.fixed_names)
        kept, dropped = independent_fixed_columns(total_vv[np.ix_(fixed_pos, fixed_pos)],
                                                  names, stacklevel=4)
        fixed_pos = fixed_pos[kept]
        names = [names[j] for j in kept]
        weight_sum = total_vv[0, 0]
        n_groups_obs = int(np.count_nonzero(group_xv[:, 0, 0] > 0))
        if n_groups_obs < 2:
            raise ValueError(f"{type(self).__name__} needs at least 2 groups with positive "
                             f"weight; found {n_groups_obs}.")
        _identifiability.check_levels_vs_observations(
            weight_sum, [(design.group_name, n_groups_obs, ["(Intercept)", *design.slope_names],
                          self.covariance)], type(self).__name__, weighted=weighted)
        if self.reml and weight_sum <= len(fixed_pos):
            raise ValueError(f"REML needs more observations ({weight_sum:g}) than fixed "
                             f"effects ({len(fixed_pos)}).")

        stats = GroupedCrossproducts.from_crossprods(
            group_xv, total_vv, np.concatenate([[0], 1 + design.slope_pos]), fixed_pos)
        term = RandomEffectTerm(tuple(["(Intercept)"] + design.slope_names), self.covariance)
        objective = ProfiledDeviance(stats, term, reml=self.reml)
        _check_residual_variation(objective, term)
        opt = minimize(objective, ThetaSpace(term), method="lbfgs-newton", tol=self.tol,
                       max_iter=self.max_iter, polish=True)
        timings["optimize"] = time.perf_counter() - t0
        t1 = time.perf_counter()
        state = objective.evaluate(opt.theta_final)
        if not np.isfinite(state.deviance):
            raise ValueError("the profiled deviance is not finite at the optimum: the response "
                             "may be constant or perfectly fitted by the fixed effects.")
        sigma2 = state.penalized_rss / objective.dof
        modes, rel_cond_cov = objective.conditional_modes(state)
        kept_cols = fixed_pos - (0 if self.fit_intercept else 1)
        beta, fixed_cov = scaling.to_original(state.beta, sigma2 * np.linalg.inv(state.S),
                                              kept_cols)
        if self.fit_intercept:
            beta[0] += shift[-1]
        # θ, the modes and their variances of the scaled slope columns, on the user's
        theta_internal = opt.theta_final.copy()
        opt.theta_final, modes, cond_var = scaling.term_to_original(
            design.slope_pos, term.rows, theta_internal, modes,
            sigma2 * np.diagonal(rel_cond_cov, axis1=1, axis2=2))
        result = dict(
            stats=stats, term=term, opt=opt, state=state, names=names, dropped=dropped,
            reml_offset=scaling.reml_offset(kept_cols) if self.reml else 0.0,
            sigma=float(np.sqrt(sigma2)), beta=beta, fixed_cov=fixed_cov, modes=modes,
            cond_var=cond_var, theta_internal=theta_internal,
        )
        timings["results"] = time.perf_counter() - t1
        result["timings"] = timings
        return result

    def _set_fitted(self, X, y, design, r):
        """Set every fitted attribute at once, after all checks have passed."""
        opt, state, term, stats = r["opt"], r["state"], r["term"], r["stats"]
        self._set_common_fitted(
            X, y, design, term=term, names=r["names"], beta=r["beta"],
            fixed_cov=r["fixed_cov"], modes=r["modes"], cond_var=r["cond_var"], opt=opt,
            dropped=r["dropped"], sigma=r["sigma"])
        n_obs = stats.n
        n_params = len(r["beta"]) + term.n_theta + 1
        dev = state.deviance + r["reml_offset"]  # on the user's columns
        self.n_obs_ = float(n_obs)
        self.loglik_ = float(-0.5 * dev)
        self.reml_criterion_ = float(dev) if self.reml else np.nan
        self.deviance_ = np.nan if self.reml else float(dev)
        self.aic_, self.bic_ = information_criteria(dev, n_params, n_obs)
        opt.timings = r["timings"]
        self._warn_fit_state(term, r["theta_internal"])

    # ------------------------------------------------------------ predict
    def score(self, X, y=None, sample_weight=None):
        """R² of :meth:`predict` (``RegressorMixin.score``); a chunked source raises the
        TypeError ``predict`` raises."""
        return super().score(X, score_target(X, y, type(self).__name__), sample_weight)

    def predict(self, X, *, random_effects=True):
        """Predict the response.

        Parameters
        ----------
        X : DataFrame or array-like of shape (n_samples, n_features)
            Same columns as in fit, including the grouping column.
        random_effects : bool, default=True
            Add the conditional modes of the row's group. Groups not seen in fit get the
            population-level prediction (random effects 0). With False every row gets the
            population-level prediction.

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
        """
        if getattr(self, "_multi_design", None) is not None:
            return self._multi_linear_predictor(X, random_effects)
        return self._linear_predictor(X, random_effects)

    # ------------------------------------------------------------ summary
    def summary(self):
        """lme4-style text summary of the fit (random effects, fixed effects, criteria)."""
        check_is_fitted(self)
        formula = self._formula()
        method = "REML" if self.reml else "maximum likelihood"
        crit_name = "REML criterion at convergence" if self.reml else "deviance"
        crit = self.reml_criterion_ if self.reml else self.deviance_
        extra = [f"AIC {self.aic_:.2f}  BIC {self.bic_:.2f}  logLik {self.loglik_:.2f}",
                 f"optimizer {self.optimization_.optimizer}: {self.n_iter_} iterations, "
                 f"{'converged' if self.converged_ else 'NOT converged'}"]
        return summary_text(
            title=f"Linear mixed model fit by {method} [skmixed.MixedLM]", formula=formula,
            criterion_name=crit_name, criterion=crit, vc=self.variance_components_,
            fixed=self.fixed_effects_, n_obs=self.n_obs_,
            group_name=self._summary_groups()[0], n_groups=self._summary_groups()[1],
            extra_lines=extra)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        # The grouping column holds categories (any labels, pandas categoricals included);
        # sklearn's checks then give integer-valued X, so a numeric grouping column repeats
        # its labels as grouped data do (a continuous one has a level per row, a model that
        # lmer and MixedLM refuse).
        tags.input_tags.categorical = True
        tags.target_tags.required = True
        return tags
