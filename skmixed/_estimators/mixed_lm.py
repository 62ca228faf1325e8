"""``MixedLM``: the linear mixed model, REML or ML, one grouping factor or several.

The fit makes one Numba-parallel pass over the rows to per-group sufficient statistics
(`skmixed._kernels.crossprod`), then minimizes the profiled deviance over θ
(`skmixed._model.lmm`) with an exact gradient, never touching the rows again.
"""

import time

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted

from .._kernels.crossprod import grouped_crossprods
from .._kernels.threads import numba_threads
from .._model.lmm_fit import centring_shift, fit_crossprods
from .._model.multilevel_fit import ITERATIVE_REFUSAL, fit_multi_lmm, fit_multi_sums
from ..sources import ChunkedData, score_target
from . import _design, _factors, _inference
from ._base import GROUPED_CONSTRAINTS, GroupedModelMixin
from ._chunked import chunked_pass, dask_pass, is_dask
from ._chunked_multi import multi_chunked_pass, multi_dask_pass
from ._results import summary_text
from ._sklearn_compat import StrOptions, fit_context

__all__ = ["MixedLM"]


def _checked_after_pass(design, sums, y, covariance, estimator_name):
    """Checks that the row pass answers cheaply (non-finite input, missing group labels,
    levels without rows of positive weight dropped, fewer than two groups); the one-factor
    ModelSpec."""
    if sums.n_bad_codes:
        raise _design.missing_groups_error(design.group_label)
    if not (np.isfinite(sums.total_vv).all() and np.isfinite(sums.group_xv).all()):
        _design.check_finite_columns(design.columns, design.fixed_labels, y)
        raise ValueError("the cross-products overflowed: rescale the columns of X or y.")
    spec = _factors.one_factor_spec(design, covariance, codes=False)
    # a level is a group when it has rows of positive weight (Σ w per level: Z's first
    # column is 1), in every path and estimator; first the levels without rows
    for weighted in (False, True):
        counts = sums.group_xv[:, 0, 0] if weighted else sums.group_rows
        positive = int(np.count_nonzero(counts > 0))
        if weighted and positive < 2:
            raise ValueError(f"{estimator_name} needs at least 2 groups with positive "
                             f"weight; found {positive}.")
        used = _factors.drop_unused_levels(spec.factors[0], counts, estimator_name)
        if not used.all():
            sums.group_xv = sums.group_xv[used]
            sums.group_rows = sums.group_rows[used]
    return spec


class MixedLM(GroupedModelMixin, RegressorMixin, BaseEstimator):
    """Linear mixed-effects model with one or several grouping factors (lme4's ``lmer``).

    ``y = Xβ + Σ_k Z_k b_k + ε`` with ``ε ~ N(0, σ²)`` and, for each grouping factor k,
    ``b_kj ~ N(0, Σ_k)`` per level j (independent across levels and factors): a random
    intercept per level and, optionally, random slopes on named columns, with correlated
    (``(1 + x | g)``) or independent (``(1 + x || g)``) random effects. Fitted by REML
    (default) or ML from per-group sufficient statistics collected in one parallel pass
    over the rows; the profiled deviance is then minimized over the relative covariance
    factor θ with an exact gradient (L-BFGS-B), at a cost independent of the number of rows
    with one factor.

    Several grouping factors, crossed or nested, are a list in ``groups``:
    ``groups=["g1", "g2"]`` is lme4's ``(1 | g1) + (1 | g2)`` (crossed, e.g. users and
    items), ``groups=["g1", ("g2", "g1")]`` its ``(1 | g1/g2)`` = ``(1 | g1) + (1 | g2:g1)``
    (nested: a tuple of columns is their interaction); ``random_slopes`` and ``covariance``
    are then dicts by factor name (``random_slopes={"g1": ["x"]}`` is ``(1 + x | g1) +
    (1 | g2)``). The formula front end writes the same models as strings:
    ``skmixed.formula.lmer("y ~ x + (1 | g1) + (1 | g2)", df)``. With several factors the
    fit factors a blocked system (the first factor level by level, the others' Schur
    complement densely or sparsely), or for large crossed intercept-only REML fits takes
    iterative steps (``solver``).

    Parameters
    ----------
    groups : str, int or list, default=None
        The grouping column of X (label, or position for arrays), or a list of them for
        several grouping factors. Required; its values may be any hashable labels (missing
        or infinite labels are errors, in fit and predict). Not a fixed effect. Several
        factors, crossed or nested: a list of columns, a tuple of columns in it being their
        interaction (lme4's ``a:b``): ``["a", "b"]`` is ``(1 | a) + (1 | b)``,
        ``["a", ("b", "a")]`` is ``(1 | a/b)``. A column used only inside an interaction is
        not a fixed effect either.
    random_slopes : sequence of str or int, or dict, default=()
        Columns of X that get a random slope within groups (they stay fixed effects too);
        with several factors a dict ``{factor name: [columns]}``.
    covariance : {"unstructured", "diagonal"} or dict, default="unstructured"
        Covariance of a group's random effects: unstructured (lme4's ``(1 + x | g)``) or
        diagonal (lme4's ``(1 + x || g)``); with several factors also a dict by factor
        name.
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
    solver : {"auto", "exact", "iterative"}, default="auto"
        How a model with several grouping factors is fitted. "exact": the profiled
        criterion from a blocked Cholesky factorization (always, with one factor).
        "iterative": for REML fits whose factors (at least two) have random intercepts
        only — crossed users × items with tens of thousands of levels, past what a dense
        factorization holds — average-information Newton steps with conjugate-gradient
        solves and stochastic traces (32 fixed random probes: deterministic, but the
        optimum carries their Monte-Carlo error, measured in the documentation's "Several
        grouping factors and formulas" page); the REML
        criterion (and AIC/BIC) and the conditional SDs of the modes are then NaN, the
        fixed effects' covariance is exact; ``max_iter`` caps its Newton steps (≤ 100),
        ``tol`` is not used (they stop when no variance moves by 1e-7 relative). "auto":
        iterative for such models when the factors after the largest have at least 4,000
        levels in all and are crossed with it (not nested in it), else exact.

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
    random_effects_matrix_ : dict of str to ndarray of shape (n_levels, q)
        By grouping factor (its name as in ``variance_components_``): the same modes as a
        matrix, rows in ``group_levels_[name]`` order, columns the factor's terms
        (intercept first). A dict whatever the number of factors, as lme4's ``ranef``.
    group_levels_ : dict of str to pandas.Index
        By grouping factor: its levels seen in fit, sorted.
    n_groups_ : dict of str to int
        By grouping factor: its number of levels, as lme4's ``ngrps``.
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
        "solver": [StrOptions({"auto", "exact", "iterative"})],
    }

    def __init__(self, *, groups=None, random_slopes=(), covariance="unstructured", reml=True,
                 fit_intercept=True, n_jobs=None, tol=1e-8, max_iter=1000, solver="auto"):
        self.groups = groups
        self.random_slopes = random_slopes
        self.covariance = covariance
        self.reml = reml
        self.fit_intercept = fit_intercept
        self.n_jobs = n_jobs
        self.tol = tol
        self.max_iter = max_iter
        self.solver = solver

    # ------------------------------------------------------------------ fit
    @fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None, sample_weight=None):
        """Fit the model.

        Parameters
        ----------
        X : DataFrame, array-like of shape (n_samples, n_features), or ChunkedData
            Fixed-effect columns plus the grouping column named by ``groups``; or a chunked
            source (`skmixed.sources`: a Parquet dataset, an iterator of DataFrames)
            read once, out of core, which names its target and weight columns (then y
            and sample_weight stay None); or a Dask DataFrame, with y (and
            sample_weight) Dask Series partitioned alike: every partition reduced to
            per-group sums where it lives (with several factors also their sparse
            level-by-level tables), the same fit as in memory.
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
        if self.solver == "iterative" and not _factors.is_multi(self.groups):
            raise ValueError(ITERATIVE_REFUSAL)
        if isinstance(X, ChunkedData) or is_dask(X):
            return self._fit_chunked(X, y, sample_weight)
        if _factors.is_multi(self.groups):
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
            shift = centring_shift(design, y_arr, self.fit_intercept)
            sums = grouped_crossprods(design.columns, y_arr, w, design.codes,
                                      len(design.levels), z_pos, shift=shift)
            timings["row_pass"] = time.perf_counter() - t1
            spec = _checked_after_pass(design, sums, y_arr, self.covariance, name)
            result = self._fit_crossprods(spec, sums, shift, weighted=bool(w.size))
        result.opt.timings = {**timings, **result.opt.timings,
                              "total": time.perf_counter() - t0}
        self._set_lmm_fitted(X, y, spec, result)
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
        if _factors.is_multi(self.groups):
            return self._fit_chunked_multi(source, y, sample_weight, t0)
        if isinstance(self.covariance, dict) or isinstance(self.random_slopes, dict):
            raise ValueError("covariance and random_slopes as dicts (by factor) need "
                             "several grouping factors in groups.")
        groups = self.groups[0] if isinstance(self.groups, (list, tuple)) else self.groups
        if groups is None:
            raise ValueError(f"{name} needs groups=<the grouping column of X>.")
        with numba_threads(self.n_jobs):
            if dask_input:
                chunked = dask_pass(source, y, sample_weight, groups=groups,
                                    random_slopes=self.random_slopes,
                                    fit_intercept=self.fit_intercept,
                                    centring_shift=centring_shift, estimator_name=name)
            else:
                chunked = chunked_pass(source, groups=groups,
                                       random_slopes=self.random_slopes,
                                       fit_intercept=self.fit_intercept,
                                       centring_shift=centring_shift, estimator_name=name)
            row_pass = time.perf_counter() - t0
            spec = _checked_after_pass(chunked.design, chunked.sums, None, self.covariance,
                                       name)
            weighted = (sample_weight is not None if dask_input
                        else source.weight is not None)
            result = self._fit_crossprods(spec, chunked.sums, chunked.shift,
                                          weighted=weighted)
        result.opt.timings = {"row_pass": row_pass, **result.opt.timings,
                              "total": time.perf_counter() - t0}
        self._set_lmm_fitted(chunked.X_first,
                             pd.Series([], name=chunked.y_name, dtype=float), spec, result,
                             stacklevel=5)
        return self

    def _fit_chunked_multi(self, source, y, sample_weight, t0):
        """Several grouping factors out of core: one pass to the per-level sums and the
        factors' contingency tables (skmixed._estimators._chunked_multi), then the
        in-memory fit's optimization on the same cross-products."""
        name = type(self).__name__
        params = dict(groups=list(self.groups), random_slopes=self.random_slopes,
                      covariance=self.covariance, fit_intercept=self.fit_intercept,
                      estimator_name=name)
        with numba_threads(self.n_jobs) as n_threads:
            if is_dask(source):
                passed = multi_dask_pass(source, y, sample_weight, **params)
                weighted = sample_weight is not None
            else:
                passed = multi_chunked_pass(source, **params)
                weighted = source.weight is not None
            row_pass = time.perf_counter() - t0
            result = fit_multi_sums(passed.spec, passed.sums, passed.shift, reml=self.reml,
                                    fit_intercept=self.fit_intercept, n_threads=n_threads,
                                    tol=self.tol, max_iter=self.max_iter,
                                    estimator_name=name, weighted=weighted, stacklevel=5,
                                    solver=self.solver)
        result.opt.timings = {"row_pass": row_pass, **result.opt.timings,
                              "total": time.perf_counter() - t0}
        self._set_lmm_fitted(passed.X_first,
                             pd.Series([], name=passed.y_name, dtype=float), passed.spec,
                             result, stacklevel=6)
        return self

    def _fit_multi(self, X, y, sample_weight):
        """Several grouping factors (skmixed._model.multilevel_fit)."""
        t0 = time.perf_counter()
        name = type(self).__name__
        X_table = _design.as_table(X, name)
        n = _design.n_rows(X_table)
        y_arr = _design.check_target(y, n, name)
        w = _design.check_weights(sample_weight, n)
        spec = _factors.make_spec(X_table, groups=list(self.groups),
                                  random_slopes=self.random_slopes,
                                  covariance=self.covariance, estimator_name=name)
        _design.check_finite_columns(spec.columns, spec.fixed_labels, y_arr)
        for f in spec.factors:
            _factors.drop_unused_levels(
                f, np.bincount(f.codes, weights=w if w.size else None,
                               minlength=len(f.levels)), name)
        with numba_threads(self.n_jobs) as n_threads:
            result = fit_multi_lmm(spec, y_arr, w, reml=self.reml,
                                   fit_intercept=self.fit_intercept, n_threads=n_threads,
                                   tol=self.tol, max_iter=self.max_iter, estimator_name=name,
                                   solver=self.solver)
        result.opt.timings["total"] = time.perf_counter() - t0
        self._set_lmm_fitted(X, y, spec, result, stacklevel=5)
        return self

    def _fit_crossprods(self, spec, sums, shift, *, weighted):
        return fit_crossprods(spec, sums.group_xv, sums.total_vv, shift, reml=self.reml,
                              fit_intercept=self.fit_intercept, tol=self.tol,
                              max_iter=self.max_iter, weighted=weighted,
                              estimator_name=type(self).__name__)

    def _set_lmm_fitted(self, X, y, spec, result, stacklevel=4):
        """Every fitted attribute at once, after all checks have passed; ``stacklevel`` of
        the warnings counts from the caller of ``fit``'s wrapper (4: ``fit`` calls this)."""
        self._set_fitted(X, y, spec, result, keep_residual=True, stacklevel=stacklevel)
        self.reml_criterion_ = float(result.criterion) if self.reml else np.nan
        self.deviance_ = np.nan if self.reml else float(result.criterion)

    # ------------------------------------------------------------ predict
    def score(self, X, y=None, sample_weight=None):
        """R² of [`predict`][skmixed.MixedLM.predict] (``RegressorMixin.score``); a chunked source
        raises the TypeError ``predict`` raises."""
        return super().score(X, score_target(X, y, type(self).__name__), sample_weight)

    def predict(self, X, *, random_effects=True, return_std=False):
        """Predict the response.

        Parameters
        ----------
        X : DataFrame or array-like of shape (n_samples, n_features)
            Same columns as in fit, including the grouping column.
        random_effects : bool, default=True
            Add the conditional modes of the row's group. Groups not seen in fit get the
            population-level prediction (random effects 0). With False every row gets the
            population-level prediction.
        return_std : bool, default=False
            Also return the standard error of the predicted mean (θ and σ fixed; see
            [`predict_interval`][skmixed.MixedLM.predict_interval], which also gives intervals of a
            new observation).

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
        y_std : ndarray of shape (n_samples,), with ``return_std``
        """
        if not return_std:
            return self._linear_predictor(X, random_effects)
        pred, var, _ = _inference.prediction_variances(self, X, random_effects)
        return pred, np.sqrt(var)

    def predict_interval(self, X, level=0.95, *, random_effects=True, kind="prediction"):
        """Intervals around [`predict`][skmixed.MixedLM.predict] (normal: the uncertainty of β̂ and
        of the random effects is propagated, that of θ and σ is not).

        Parameters
        ----------
        X : DataFrame or array-like
        level : float, default=0.95
        random_effects : bool, default=True
            True: for the rows' own groups, around the conditional modes — with one
            grouping factor the joint covariance of (β̂, b̂ − b) (Henderson's inverse of
            the mixed-model equations); with several, the fixed effects' covariance plus
            the diagonal of each group's conditional covariance (an approximation); a
            group unseen in fit gets its random effects' variance Σ. False: the
            population level — for ``kind = "prediction"`` a new observation in a new
            group (Σ included), for "confidence" the population mean (Σ not included).
        kind : {"prediction", "confidence"}, default="prediction"
            "prediction": of a new observation (σ² added); "confidence": of the mean.

        Returns
        -------
        pandas.DataFrame
            ``fit``, ``lower``, ``upper`` per row; ``attrs["level"]``.
        """
        level = _inference._check_level(level)
        if kind not in ("prediction", "confidence"):
            raise ValueError(f"kind={kind!r}: choose 'prediction' or 'confidence'.")
        pred, var, var_new = _inference.prediction_variances(self, X, random_effects)
        if kind == "prediction":
            var = var + self.sigma_ ** 2 + (0.0 if random_effects else var_new)
        half = stats.norm.ppf(0.5 + level / 2.0) * np.sqrt(var)
        return _inference.interval_frame(pred, pred - half, pred + half, level)

    def simulate(self, X, n_sims=1, *, random_effects="new", random_state=None):
        """Responses simulated from the fitted model (lme4's ``simulate``).

        Parameters
        ----------
        X : DataFrame or array-like
            The rows to simulate (any rows with the fit's columns: the training data, or
            new groups).
        n_sims : int, default=1
        random_effects : {"new", "conditional", "none"}, default="new"
            "new": random effects drawn from N(0, Σ) for every group of X (lme4's default,
            ``use.u = FALSE``); "conditional": the conditional modes of the groups seen in
            fit (``use.u = TRUE``; unseen groups drawn); "none": the population level.
        random_state : int, numpy Generator or None

        Returns
        -------
        ndarray of shape (n_samples, n_sims)
        """
        eta, rng = _inference.simulated_linear_predictors(self, X, n_sims, random_effects,
                                                          random_state)
        return eta + self.sigma_ * rng.standard_normal(eta.shape)

    def residuals(self, X, y, *, type="response", random_effects=True, scaled=False):
        """Residuals (lme4's ``residuals``): ``y − predict(X, random_effects=...)`` —
        conditional (True, lme4's default) or marginal (False). For a linear mixed model
        "response", "pearson" and "deviance" residuals are the same (lme4's, unweighted);
        ``scaled`` divides them by σ."""
        if type not in ("response", "pearson", "deviance"):
            raise ValueError(f"type={type!r}: choose 'response', 'pearson' or 'deviance'.")
        pred = self.predict(X, random_effects=random_effects)
        y_arr = _design.check_target(y, pred.shape[0], self.__class__.__name__)
        r = y_arr - pred
        return r / self.sigma_ if scaled else r

    def profile(self, parm=None, *, level=0.99, n_points=21):
        """Profile traces (lme4's ``profile``): the signed root ζ of the ML deviance on a
        grid of each parameter between its ``level`` profile interval's ends (ζ = ±z).

        Returns
        -------
        pandas.DataFrame
            Long form: ``parameter``, ``value``, ``zeta``; plotted by
            [`skmixed.plots.plot_profile`][skmixed.plots.plot_profile].
        """
        return _inference.profile_traces(self, parm, level, n_points)

    # ---------------------------------------------------------- inference
    def confint(self, parm=None, level=0.95, *, method="profile", n_boot=1000,
                random_state=None, n_jobs=None, progress=False, X=None):
        """Confidence intervals of the variance parameters and fixed effects (lme4's
        ``confint``).

        Parameters
        ----------
        parm : str or list of str, default=None
            Parameters to report (default all): ``"sd_<term>|<group>"``,
            ``"cor_<term>.<term>|<group>"``, ``"sigma"`` (lme4's ``oldNames = FALSE``),
            then the fixed effects' names.
        level : float, default=0.95
        method : {"profile", "wald", "bootstrap"}, default="profile"
            "profile": likelihood-profile intervals of the model refitted by maximum likelihood
            (lme4's default; the ML deviance minimized over the other parameters, its signed square
            root solved for the normal quantile). "wald": estimate ± z·SE for the fixed effects
            (NaN for the variance parameters, as lme4). "bootstrap": percentile intervals of
            [`bootstrap`][skmixed.MixedLM.bootstrap] (``n_boot``, ``random_state``, ``n_jobs``,
            ``progress``; ``X`` with several grouping factors).

        Returns
        -------
        pandas.DataFrame
            Indexed by parameter: ``estimate``, ``lower``, ``upper``; ``attrs["level"]``.
        """
        return _inference.confint(self, parm, level, method, n_boot, random_state, n_jobs,
                                  progress, X)

    def bootstrap(self, n_boot=1000, *, X=None, random_state=None, n_jobs=None,
                  progress=True):
        """Parametric bootstrap (lme4's ``bootMer``, MixedModels.jl's
        ``parametricbootstrap``): ``n_boot`` responses simulated from the fitted model
        (new random effects and residuals), each refitted.

        With one grouping factor a replicate is drawn exactly in distribution as the sums the fit
        reads (never the rows), so a replicate costs a fit from sums whatever the number of rows.
        With several, responses for the rows of ``X`` (the data the model was fitted to,
        unweighted) are simulated ([`simulate`][skmixed.MixedLM.simulate]) and a clone of the model
        is refitted to each. Replicate k draws from its own stream of
        ``numpy.random.SeedSequence(random_state)``: the same ``random_state`` gives the same
        replicates whatever ``n_jobs``. ``progress`` shows a tqdm bar.

        Returns
        -------
        BootstrapResult
            ``replicates`` (a DataFrame, one row per replicate), ``estimates``,
            ``n_failed``, and ``confint(level)``.
        """
        return _inference.bootstrap(self, n_boot, random_state, n_jobs, progress, X)

    def fixed_effects_test(self, ddf="Satterthwaite"):
        """t tests of the fixed effects with denominator degrees of freedom (lmerTest's
        ``summary(m, ddf = ...)`` coefficient table).

        Parameters
        ----------
        ddf : {"Satterthwaite", "Kenward-Roger", "asymptotic"}, default="Satterthwaite"
            "Satterthwaite": lmerTest's (REML or ML fits, any number of factors).
            "Kenward-Roger": pbkrtest's adjusted covariance and df (REML fits; with
            several factors up to 3,000 random-effect columns). "asymptotic": the z tests
            of ``fixed_effects_`` (big data).

        Returns
        -------
        pandas.DataFrame
            Indexed by term: ``estimate``, ``std_error``, ``df``, ``t``, ``p_value``.
        """
        return _inference.fixed_effects_test(self, ddf)

    # ------------------------------------------------------------ summary
    def summary(self, X=None, y=None, sample_weight=None, *, ddf=None, correlation=None):
        """lme4's printout of the fit (``print(summary(m))``): criterion, scaled residuals,
        random effects, fixed effects, their correlations; numbers formatted as R prints
        them (``printCoefmat``, ``format.pval``).

        Parameters
        ----------
        X, y, sample_weight : the data the model was fitted to, optional
            For the ``Scaled residuals:`` quantiles (Pearson residuals over σ, lme4's
            ``residuals(m, "pearson", scaled = TRUE)``; a row of weight w counts w times, as
            the frequency weights of the fit); a fitted model keeps no rows, so without them
            the block says how to get it.
        ddf : {None, "Satterthwaite", "Kenward-Roger", "asymptotic"}, default=None
            None: lme4's table, ``Estimate Std. Error t value`` and no p-values.
            "Satterthwaite", "Kenward-Roger": lmerTest's ``df``, ``t value`` and
            ``Pr(>|t|)`` with significance stars
            ([`fixed_effects_test`][skmixed.MixedLM.fixed_effects_test]). "asymptotic":
            ``z value`` and ``Pr(>|z|)`` from the normal distribution (the p-values of
            ``fixed_effects_``; big data).
        correlation : bool, default=None
            Print the correlation of the fixed effects (from ``fixed_cov_``); None: as lme4,
            when there are at most 12 fixed effects.

        Returns
        -------
        str
        """
        check_is_fitted(self)
        if isinstance(X, str):
            raise TypeError(f"summary(X, y): X is the data; the df method is a keyword "
                            f"argument: summary(ddf={X!r}).")
        key = None if ddf is None else _inference.ddf_key(ddf)
        fixed = self.fixed_effects_ if key is None else self.fixed_effects_test(ddf)
        method = "REML" if self.reml else "maximum likelihood"
        tests = {None: "", "asymptotic": ". Wald z tests (asymptotic normal p-values)"}.get(
            key, f". t-tests use {_inference.DDF_METHODS.get(key)}'s method")
        crit_name = "REML criterion at convergence" if self.reml else "deviance"
        crit = self.reml_criterion_ if self.reml else self.deviance_
        extra = [f"AIC {self.aic_:.2f}  BIC {self.bic_:.2f}  logLik {self.loglik_:.2f}"
                 if np.isfinite(self.loglik_) else
                 "AIC, BIC, logLik: not evaluated (solver='iterative': " +
                 self.optimization_.message + ")",
                 f"optimizer {self.optimization_.optimizer}: {self.n_iter_} iterations, "
                 f"{'converged' if self.converged_ else 'NOT converged'}"]
        resid = None
        if _inference.check_fitted_data(self, X, y, sample_weight):
            resid = self.residuals(X, y, type="pearson", scaled=True)
        return summary_text(
            title=f"Linear mixed model fit by {method}{tests} [skmixed.MixedLM]",
            formula=self._formula(), criterion_name=crit_name, criterion=crit,
            vc=self.variance_components_, fixed=fixed, n_obs=self.n_obs_,
            n_rows=None if self._data_key is None else self._data_key[1],
            group_name=self._summary_groups()[0], n_groups=self._summary_groups()[1],
            extra_lines=extra, stat="z" if key == "asymptotic" else "t",
            with_p=key is not None, residuals=resid, residual_weights=sample_weight,
            residuals_hint="summary(X, y) with the fitted data prints them",
            fixed_cov=self.fixed_cov_, correlation=correlation)

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
