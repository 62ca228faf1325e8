"""``AdditiveMixed``: additive mixed models (mgcv's ``gam``/``bam`` with ``bs = "ps"``,
``"cr"``, ``"cc"`` or ``"tp"`` smooths, tensor products ``te()``/``ti()``, ``by =``
variables and ``s(g, bs = "re")`` random effects of one or several factors).

``g(E[y]) = Xβ + Σ_j s_j(z_j) + b_group``: parametric columns, smooths (mgcv's P-spline,
cubic regression spline, cyclic cubic and thin-plate bases, `skmixed._model.bases`,
sum-to-zero constrained; a smooth ``by`` a factor is one smooth per level, ``by`` a
numeric column a varying coefficient, `skmixed._estimators._additive_by`) and
an optional random intercept per group. Each smooth is a random effect in disguise; the
smoothing parameters and the group variance are estimated by REML of the mixed-model form
(Gaussian, exact) or of the PIRLS working model at every step (binomial / Poisson,
``bam``'s performance iteration). With ``discrete=True`` (default from 50,000 rows) each
smooth's covariate is binned as ``bam(discrete = TRUE)`` and every cross-product comes from
per-bin sums: no n × k basis is formed.

The estimator validates the input and builds the model's specification; the fit is
`skmixed._model.additive_fit`'s (from the rows, or from the bin tables of a chunked or
Dask source, `skmixed._estimators._additive_sources`), whose
`FitResult` `AdditiveMixed._set_fitted` turns into the
fitted attributes; prediction, the summary and the plots are
`skmixed._estimators._additive_predict`'s.
"""

import warnings
from dataclasses import replace
from typing import NamedTuple
from numbers import Integral, Real

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.validation import check_is_fitted, validate_data

from .._kernels.threads import numba_threads
from .._model import identifiability as _identifiability
from .._model.additive_fit import AdditiveSpec, fit_rows, fit_tables, row_bases, smooth_bases
from .._model.bases import BASES, TENSORS, SmoothTerm
from .._model.identifiability import independent_fixed_columns
from ..families import get_family
from ..sources import ChunkedData, score_target
from . import _design
from .._model.thin_plate import default_dimension
from ._additive_by import expand_by, is_factor
from ._additive_predict import (AdditivePrediction, covariate_columns, smooth_arrays,
                                smooth_label_name, smooth_name)
from ._additive_sources import (check_boundary_response, check_target, chunk_tables,
                                dask_tables, parametric_columns, table_layout,
                                used_group_codes)
from ._base import GROUPED_CONSTRAINTS
from ._factors import factor_entries, factor_values
from ._chunked import is_dask
from ._results import (fixed_effects_table, random_effects_table, variance_component_rows,
                       variance_components_frame)
from ._sklearn_compat import Interval, StrOptions, fit_context

__all__ = ["AdditiveMixed"]


class GroupTerm(NamedTuple):
    """A grouping factor: its ``name`` (``b:a`` for an interaction), the columns holding it
    (``labels``; several: their interaction), its random slopes' columns (``slopes``) and
    their ``covariance`` ("diagonal": independent; "unstructured": correlated)."""

    name: str
    labels: tuple
    slopes: list
    covariance: str = "diagonal"

_DISCRETE_FROM_ROWS = 50_000


def _resolve_smooth(X_table, entry):
    """A ``smooths`` entry's column label, or for a list or tuple of columns (a smooth of
    several covariates, mgcv's ``s(x, z)``) the tuple of their labels."""
    if isinstance(entry, (list, tuple)):
        labels = tuple(_design.resolve_column(X_table, c, "smooths") for c in entry)
        return labels if len(labels) > 1 else labels[0]
    return _design.resolve_column(X_table, entry, "smooths")


class AdditiveMixed(AdditivePrediction, RegressorMixin, BaseEstimator):
    """Additive mixed model: parametric effects, spline smooths, a random intercept and
    optional independent random slopes per group; smoothing parameters and variance
    components by REML (mgcv's ``gam`` with
    ``method = "REML"``, or ``bam(discrete = TRUE)`` with binned covariates).

    Parameters
    ----------
    smooths : sequence of str or int, or of tuples of them, default=()
        Columns of X with a smooth ``s(z, bs = bs)``; a tuple of columns, e.g.
        ``("x", "z")``, is mgcv's ``s(x, z)``: an isotropic thin-plate spline of those
        covariates, or with ``bs`` "te"/"ti" mgcv's tensor product ``te(x, z)`` /
        ``ti(x, z)`` (a ti() interaction may share its columns with other smooths). The
        other columns (except ``groups`` and ``by`` columns) are parametric (linear) effects.
    k : int or dict, default=10
        Basis dimension per smooth (a dict maps a column — or a tuple of columns — to its
        k; others get 10), as mgcv's k: at least 4 for "ps" and "cc", 3 for "cr" and
        "tp". A "cc" smooth has k − 1 coefficients (k knots, the last the first). A smooth
        of several covariates takes its k from a dict only, else mgcv's default (30 for
        two covariates, 110 for three); a tensor product's k is an int (each margin) or one
        per margin, default 5 each (mgcv's).
    bs : {"ps", "cr", "cc", "tp"} or dict, default="ps"
        The smooths' basis (a dict maps a column to its basis; others get "ps"), as mgcv's
        ``bs``: "ps", P-splines (cubic B-splines, 2nd-order difference penalty); "cr", the
        cubic regression spline (knots at the quantiles of the covariate's distinct
        values, ∫f''² penalty; linear beyond the data's range); "cc", the cyclic cubic
        spline (value, slope and curvature agree at the two ends of the cycle; no
        unpenalized part); "tp", the thin-plate regression spline (mgcv's default for
        ``s()``, and a formula's: the eigen-truncated radial basis of the distinct values,
        at most 2,000 of them drawn as mgcv draws them; the basis of a smooth of several
        covariates unless a dict names "te" or "ti" for it). All
        are constrained to sum to zero over the data and give mgcv's fits. A tuple of
        columns mapped to "te" or "ti" is mgcv's tensor product of cubic regression margins
        (its default), or to a tuple of the kind and the margins' bases, e.g.
        ``("te", "tp", "cr")``; ``smooths_["lambda_margins"]`` then holds its margins'
        smoothing parameters (mgcv's sp). A pair ``(x, f)`` mapped to "fs" is mgcv's
        factor-smooth interaction ``s(x, f, bs = "fs")``: one smooth of x per level of the
        factor f (a categorical, strings or objects), all with one smoothing parameter for
        their wiggliness and one each for their constants and their slopes (random curves;
        ``lambda_margins`` holds the three), no fixed part and no sum-to-zero constraint,
        so that ``s(x) + s(x, f, bs = "fs")`` is a common curve and the levels' departures;
        its base is a thin-plate spline (mgcv's default) or, with ``("fs", "cr")``, the
        one named (mgcv's ``xt``); k (default 10) is the base's. mgcv's own fs basis of the
        constant and the slope follows rounding noise (a model that moves with the last
        bits of x); here it is fixed to 1 and (x − mean) / sd over the data. The levels'
        coefficients are dense penalized columns: levels × k ≤ 2,000. In-memory data only.
    knots : dict, default=None
        The ends of the cycle of "cc" smooths: a column mapped to ``(a, b)`` with ``a < b``
        covering its values (mgcv's ``knots = list(z = c(a, b))``, e.g. ``{"hour": (0,
        24)}``); without it a cycle spans the covariate's range. Prediction wraps values
        outside the cycle into it.
    by : dict, default=None
        mgcv's ``s(z, by = v)``: a smooth's column mapped to its ``by`` column, which is then
        not a parametric column. A numeric ``by`` multiplies the smooth (a varying
        coefficient ``v·f(z)``; the smooth is not centred, so its unpenalized part holds
        ``v`` itself). A factor ``by`` (a pandas categorical, strings, objects or booleans;
        integer codes are numbers, as in R) gives one smooth per level, each centred and
        zero off its level, named ``s(z):vlevel`` in ``smooths_`` as mgcv names them; as
        in mgcv the factor's main effect is not added: give its indicator columns as
        parametric columns (e.g. ``pd.get_dummies(df.v, drop_first=True)``; the formula
        ``bam("y ~ v + s(z, by = v)")`` does it). Every level needs rows and at least two
        values of z. In-memory data only (not chunked or Dask sources).
    select : bool, default=False
        mgcv's ``select = TRUE``: each smooth's unpenalized part (its linear trend; with a
        numeric ``by``, also the constant) gets a penalty of its own, with its own
        smoothing parameter (``smooths_["lambda_null"]``), so REML can shrink a smooth to
        zero: an edf near 0 removes it. Every smooth's test is then mgcv's random-effect
        test, as in mgcv.
    groups : str, int or list, default=None
        Grouping column for a random intercept (mgcv's ``s(g, bs = "re")``); None: none.
        Several factors, crossed or nested, as MixedLM's: a list of columns, a tuple in it
        being their interaction — ``["g1", "g2"]`` is ``s(g1, bs = "re") + s(g2, bs =
        "re")`` (lme4's ``(1 | g1) + (1 | g2)``), ``["a", ("a", "b")]`` is lme4's
        ``(1 | a/b)`` (mgcv: ``s(a, bs = "re") + s(ab, bs = "re")`` with ``ab =
        interaction(a, b)``). The factor with the most random effects is eliminated group
        by group; every other one's levels are dense penalized columns (as mgcv's), whose
        cost grows with the square of their number (2,000 at most in all). A grouping
        column is not a fixed effect. A Gaussian model needs fewer groups than observations
        (the sum of the weights), as MixedLM and lme4's ``lmer``; binomial and Poisson ones
        may have a group per row.
    random_slopes : sequence of str or int, or dict, default=()
        Columns of X with a random slope per group, independent of the intercept and of
        each other, each with its own variance (mgcv's ``s(g, x, bs = "re")``; lme4's
        ``(1 + x || g)``); with several factors a dict ``{factor name: [columns]}`` (an
        interaction's name is ``"a:b"``). A parametric column stays a fixed effect too; a
        smooth's column keeps its smooth. Needs ``groups``.
    covariance : {"diagonal", "unstructured"} or dict, default="diagonal"
        The covariance of a group's random intercept and slopes: independent ("diagonal",
        mgcv's separate ``s(g, x, bs = "re")`` terms, lme4's ``(1 + x || g)``) or
        correlated ("unstructured": lme4's ``(1 + x | g)``, mgcv's ``gamm(…, random =
        list(g = ~ 1 + x))``; ``variance_components_`` then has the correlations, lme4's
        ``as.data.frame(VarCorr())`` rows with ``var2``); with several factors a dict by
        factor name, one factor "unstructured" at most (it is the one eliminated group by
        group), with one random slope or more (lme4's ``(1 + x1 + x2 | g)``).
    family : {"gaussian", "binomial", "poisson", "gamma", "nbinom2", "tweedie"}, \
            default="gaussian"
        Binomial (0/1 y, logit link) and Poisson (log link): with ``discrete`` by
        performance iteration (``bam``'s fREML), otherwise by the Laplace-approximate REML
        optimized directly (``gam(method = "REML")``). Gamma (positive y, log link, the
        dispersion estimated) and the negative binomial (``"nbinom2"``: counts, log link,
        Var y = μ + μ²/k with the size k estimated, mgcv's ``nb()``): always by ``bam``'s
        performance iteration (Fisher scoring; each working model's REML estimates Gamma's
        dispersion, and k is re-estimated by maximum likelihood at every step's means, as
        bam), binned or not as ``discrete`` says. Tweedie (``"tweedie"``: y ≥ 0 with exact
        zeros, log link, Var y = φ μ^p, φ estimated; the power p given as ``power``, mgcv's
        ``Tweedie(p)``, or estimated, mgcv's ``tw()``): by ``bam``'s performance iteration
        as Gamma (estimated p: as the negative binomial's size). The model predicts the mean
        of y.
    power : float, default=None
        The Tweedie family's power p, 1 < p < 2, held fixed (mgcv's ``Tweedie(p = 1.5)``);
        None with ``family="tweedie"``: p estimated with the fit (mgcv's ``tw()``: p and φ
        by maximum likelihood of the Tweedie density at each step's means; ``power_``).
        Only with ``family="tweedie"``.
    discrete : bool or "auto", default="auto"
        Bin each smooth's covariate to at most ``n_bins`` values (``bam(discrete = TRUE)``);
        "auto": from 50,000 rows on.
    n_bins : int, default=1000
        Bins per smooth covariate when discrete (mgcv's default for one covariate; a smooth
        of several covariates is binned on mgcv's grid instead: 100 values per covariate for
        two, 25 for three, when there are more distinct points than the grid holds).
    fit_intercept : bool, default=True
        With an intercept a Gaussian y is fitted minus a constant near its values (the
        intercept takes it back), so its origin does not matter; without one y is used as
        given (a y far from 0 next to its spread then loses digits in the sums).
    n_jobs : int, default=None
        Threads for the binned pass over the rows (None or -1: all).
    tol : float, default=1e-8
        Performance iteration: relative change of the linear predictor at convergence.
    max_iter : int, default=100
        Performance-iteration steps at most.

    Attributes
    ----------
    coef_ : ndarray (n_parametric,)
    intercept_ : float
    fixed_effects_ : DataFrame
        Parametric coefficients with standard errors from the posterior covariance
        (mgcv's ``Vp``), z and p-values.
    dropped_features_ : list of str
        Parametric columns dropped as collinear with earlier ones (RankDeficientWarning, as
        MixedLM; their coefficient in ``coef_`` is 0).
    fixed_cov_ : ndarray (n_fixed, n_fixed)
        That posterior covariance of the parametric coefficients (intercept first), in the
        order of ``fixed_effects_``.
    smooths_ : DataFrame
        Per smooth (indexed by mgcv's labels: ``s(z)``, ``s(x,z)``, ``s(z):v`` for a
        numeric ``by``, ``s(z):va`` for level a of a factor ``by``): ``edf``; ``ref_df``,
        the reference degrees of freedom of its test (the alternative edf ``tr(2F − F²)``
        over its coefficients, at most its basis size);
        ``statistic`` and ``p_value`` of the approximate test that the smooth is zero
        (Wood 2013; mgcv's ``summary.gam``): for Gaussian models mgcv's F (the Wald
        statistic over ``ref_df``, referred to an F-type distribution with ``n − edf_``
        residual df), otherwise mgcv's Chi.sq (a smooth with no unpenalized part, e.g.
        "cc", gets mgcv's random-effect test, its rank as ``ref_df``); ``lambda`` (= 1/τ²,
        relative to the residual variance, on the constrained basis: for "cr" and "cc"
        with the penalty scaled as mgcv scales it, so mgcv's ``sp``; for "ps" with the
        unscaled difference penalty)
        and ``variance``, σ²τ² of its penalized part; with ``select=True`` also
        ``lambda_null``, the λ of its null-space penalty (NaN: a smooth without one).
        The p-values ignore the uncertainty of the smoothing parameters (as mgcv's) and are
        computed to an absolute accuracy of about 1e-10 (mgcv's are to about 1e-6).
    variance_components_ : DataFrame
        The group random intercept's and slopes' variances and SDs, and the residual
        (Gaussian); columns ``group``, ``var1``, ``var2``, ``variance``, ``sd`` (lme4's
        ``as.data.frame(VarCorr())``: a row with ``var2`` is a covariance, its ``sd`` the
        correlation — correlated slopes only).
    random_effects_ : DataFrame
        The groups' predicted random effects, lme4's ``as.data.frame(ranef(m))`` layout
        (group, level, term, mode, cond_sd; cond_sd from the posterior covariance, mgcv's
        Vp, which includes the fixed effects' uncertainty).
    random_effects_matrix_ : dict of str to ndarray of shape (n_levels, q)
        The same modes as a matrix per grouping factor (keyed by its name as in
        ``variance_components_["group"]``; lme4's ``ranef()``), columns intercept then
        slopes, rows in ``group_levels_`` order.
    group_levels_ : dict of str to pandas.Index
        The groups seen in fit (with positive weight), sorted, by factor name.
    n_groups_ : dict of str to int
        Their number, by factor name (lme4's ``ngrps()``).
    sigma_ : float
        Residual SD (Gaussian; Gamma and Tweedie: √φ; 1 otherwise).
    dispersion_ : float
        The family's estimated parameter: the scale (Gaussian σ², Gamma's and Tweedie's
        dispersion φ; mgcv's ``sig2``), the negative binomial's size k (mgcv's ``nb()``
        θ); 1 for binomial and Poisson.
    power_ : float
        The Tweedie family's power p: ``power``, or its estimate (``power=None``, mgcv's
        ``tw()``). Tweedie fits only.
    reml_criterion_ : float
        ``−2 ×`` the restricted log-likelihood of the (working) mixed model (mgcv's REML
        score ×2 for Gaussian ``gam``).
    edf_ : float
        Total effective degrees of freedom.
    n_iter_ : int
        Performance-iteration steps (binned binomial/Poisson), outer iterations + 1 (exact
        binomial/Poisson), 1 for Gaussian (a single REML fit).
    converged_ : bool
    """

    _parameter_constraints = {
        "smooths": [list, tuple],
        "k": [Interval(Integral, 3, None, closed="left"), dict],
        "bs": [StrOptions(set(BASES)), dict],
        "knots": [dict, None],
        "by": [dict, None],
        "select": ["boolean"],
        "groups": [str, Integral, list, tuple, None],
        "random_slopes": [list, tuple, str, Integral, dict],
        "covariance": [StrOptions({"diagonal", "unstructured"}), dict],
        "family": [StrOptions({"gaussian", "binomial", "poisson", "gamma", "nbinom2",
                               "tweedie"})],
        "power": [Interval(Real, 1, 2, closed="neither"), None],
        "discrete": ["boolean", StrOptions({"auto"})],
        "n_bins": [Interval(Integral, 4, None, closed="left")],
        "fit_intercept": GROUPED_CONSTRAINTS["fit_intercept"],
        "n_jobs": GROUPED_CONSTRAINTS["n_jobs"],
        "tol": GROUPED_CONSTRAINTS["tol"],
        "max_iter": GROUPED_CONSTRAINTS["max_iter"],
    }

    def __init__(self, *, smooths=(), k=10, bs="ps", knots=None, by=None, select=False,
                 groups=None, random_slopes=(), covariance="diagonal", family="gaussian",
                 power=None, discrete="auto", n_bins=1000, fit_intercept=True, n_jobs=None,
                 tol=1e-8, max_iter=100):
        self.smooths = smooths
        self.k = k
        self.bs = bs
        self.knots = knots
        self.by = by
        self.select = select
        self.groups = groups
        self.random_slopes = random_slopes
        self.covariance = covariance
        self.family = family
        self.power = power
        self.discrete = discrete
        self.n_bins = n_bins
        self.fit_intercept = fit_intercept
        self.n_jobs = n_jobs
        self.tol = tol
        self.max_iter = max_iter

    # ------------------------------------------------------------------ fit
    @fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None, sample_weight=None):
        """Fit the model.

        Parameters
        ----------
        X : DataFrame, array-like of shape (n_samples, n_features), or ChunkedData
            Parametric columns, the smooths' covariates and (if named) the groups; or a
            chunked source (`skmixed.sources`) read once, out of core (Gaussian,
            binned), which names its target and weight columns.
        y : array-like of shape (n_samples,)
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative frequency weights.

        Returns
        -------
        self : AdditiveMixed
        """
        name = type(self).__name__
        if isinstance(X, ChunkedData):
            return self._fit_chunked(X, y, sample_weight)
        if is_dask(X):
            return self._fit_dask(X, y, sample_weight)
        X_table = _design.as_table(X, name)
        n = _design.n_rows(X_table)
        w = _design.check_weights(sample_weight, n)
        weights = w if w.size else np.ones(n)
        if n < 2:
            raise ValueError(f"{name} needs at least 2 samples; got n_samples = {n}.")
        y_arr = check_target(y, n, self._family(), name)
        smooth_labels, factors, param_labels = self._roles(X_table)
        param_cols = _design.fixed_columns(X_table, param_labels)
        covariates = [self._covariate_label(c) for c in smooth_labels]
        for label in smooth_labels:
            if self._smooth_kind(label) == "fs" and is_factor(
                    pd.Series(_design.column_values(X_table, label[0]))):
                raise ValueError(f"the factor-smooth interaction {label!r}: its first column "
                                 "is the covariate, its second the factor, e.g. ('x', 'f'); "
                                 f"{label[0]!r} holds categories.")
        flat = covariate_columns(covariates)
        _design.check_finite_columns(param_cols + _design.fixed_columns(X_table, flat),
                                     param_labels + flat)
        smooth_cols = smooth_arrays(X_table, covariates)
        discrete = (n >= _DISCRETE_FROM_ROWS) if self.discrete == "auto" else self.discrete
        groups = [used_group_codes(factor_values(X_table, f.labels), f.name, weights, name)
                  for f in factors]
        check_boundary_response(y_arr, w, self._family())
        spec = self._spec(param_labels, smooth_labels, factors)
        if discrete:
            self._check_bins(smooth_labels)
        by_labels = self._by_labels(X_table, smooth_labels)
        terms, smooth_cols, by, by_info = expand_by(X_table, spec.smooths, smooth_cols,
                                                    by_labels, weights, discrete, self.n_bins)
        spec = replace(spec, smooths=tuple(terms))
        # the fit runs on centred, scaled columns, mapped back after
        X_param, scaling, kept, dropped = parametric_columns(
            param_cols, n, weights, self.fit_intercept, list(spec.fixed_names), name)
        bases = row_bases(spec, smooth_cols, weights, discrete, self.n_bins, by)
        # fixed effects: the parametric columns and each smooth's unpenalized part (its
        # penalty's null space after the sum-to-zero constraint: a line, or nothing for a
        # cyclic smooth)
        n_fixed = X_param.shape[1] + sum(b["null"].shape[1] for b in bases)
        if weights.sum() <= n_fixed:
            raise ValueError(f"{name} needs more observations ({weights.sum():g}, the sum "
                             "of sample_weight: frequency weights count rows) than fixed "
                             f"effects ({n_fixed}).")
        self._check_levels(weights.sum(), [(f, len(levels)) for f, (_, levels) in
                                           zip(factors, groups)], weighted=bool(w.size))
        with numba_threads(self.n_jobs):
            result = fit_rows(spec, X_param, y_arr, weights, bases, discrete=discrete,
                              scaling=scaling, kept=kept, dropped=dropped,
                              groups=[(codes, levels, _design.fixed_columns(X_table, f.slopes))
                                      for f, (codes, levels) in zip(factors, groups)])
        self._set_fitted(result, X, (param_labels, [t.label for t in terms], factors,
                                     by_info),
                         scaling, getattr(y, "name", None) or "y")
        if not result.opt.converged:
            warnings.warn(result.extra["note"] or f"{name} did not converge in "
                          f"{result.opt.n_iter} iterations.", ConvergenceWarning, stacklevel=2)
        return self

    def _fit_chunked(self, source, y, sample_weight):
        """Out of core (Gaussian, binned): one pass over the chunks into basis-free bin
        tables (skmixed._estimators._additive_sources), then the bases and the REML fit as
        ``bam(discrete = TRUE)``'s."""
        name = type(self).__name__
        if y is not None or sample_weight is not None:
            raise ValueError(f"{name}.fit(source): a chunked source names its target (and "
                             "weight) column; pass y and sample_weight as None.")
        self._check_tables_fit("a chunked source")
        tables = chunk_tables(source, self._chunk_layout, name)
        return self._fit_tables(*tables, source.target, weighted=source.weight is not None)

    def _fit_dask(self, X, y, sample_weight):
        """A Dask DataFrame (Gaussian, binned): bin tables reduced where the partitions
        live and merged (skmixed._estimators._additive_sources), then as a chunked fit."""
        self._check_tables_fit("a Dask DataFrame")
        tables = dask_tables(X, y, sample_weight, self._chunk_layout, type(self).__name__)
        return self._fit_tables(*tables, getattr(y, "name", None) or "y",
                                weighted=sample_weight is not None)

    def _check_tables_fit(self, what):
        if self.by or any(isinstance(s, (list, tuple)) and len(s) > 1 for s in self.smooths):
            raise ValueError(f"{type(self).__name__} fits smooths with by= variables or of "
                             f"several covariates from data in memory only, not from {what}.")
        if not self._family().linear or self.discrete is False:
            raise ValueError(f"{type(self).__name__} fits {what} for family='gaussian' "
                             "with binned smooths (discrete=True or 'auto') only.")

    def _fit_tables(self, tables, values, info, X_first, target, weighted):
        """The fit from bin tables (``info``: their layout, ``X_first``: the columns)."""
        name = type(self).__name__
        factors = ([] if info["group"] is None else
                   [GroupTerm(_design.column_name(info["group"]), (info["group"],),
                              info["slopes"])])
        spec = self._spec(info["param"], info["smooth"], factors)
        labels = (info["param"], info["smooth"], factors, [None] * len(info["smooth"]))
        bases = smooth_bases(spec, values, tables.cnt)
        levels = None
        if info["group"] is not None:
            if len(tables.group_levels) < 2:
                raise ValueError(f"{name} needs at least 2 groups in column "
                                 f"{info['group']!r}; found {len(tables.group_levels)}.")
            _design.check_label_types(pd.Index(tables.group_levels, dtype=object),
                                      info["group"])
            self._check_levels(tables.n, [(factors[0], int(np.count_nonzero(
                tables.zz[:, 0, 0] > 0)))], weighted=weighted)
            levels = pd.Index(tables.group_levels)

        def check_rank(XtX):  # the RankDeficientWarning points at the caller of fit
            return independent_fixed_columns(XtX, list(spec.fixed_names), stacklevel=7)

        with numba_threads(self.n_jobs):
            result = fit_tables(spec, tables, bases, levels=levels, scaling=info["scaling"],
                                scales=info["slope_scale"], y_shift=info["y_shift"],
                                check_rank=check_rank)
        self._set_fitted(result, X_first, labels, info["scaling"], target)
        if not result.opt.converged:
            warnings.warn(result.extra["note"] or f"{name} did not converge.",
                          ConvergenceWarning, stacklevel=5)
        return self

    def _roles(self, X_table):
        """The columns' roles: smooths, the grouping column, random slopes and the
        parametric rest, each resolved and checked (in-memory, chunked and Dask fits)."""
        smooth_labels = [_resolve_smooth(X_table, s) for s in self.smooths]
        self._check_keys(smooth_labels)
        # a column is in one smooth, apart from ti() interactions (no main effects), which
        # may share it with each other and with the covariate's own smooth
        plain = covariate_columns([c for c in smooth_labels
                                   if self._smooth_kind(c) not in ("ti", "fs")])
        if len(set(plain)) != len(plain) or len(set(smooth_labels)) != len(smooth_labels):
            raise ValueError(f"smooths lists a column twice: {list(self.smooths)} (only "
                             "ti() interactions and fs factor-smooth interactions may share "
                             "a column with other smooths).")
        factors = self._factors(X_table)
        grouping = {c for f in factors for c in f.labels}
        covariates = covariate_columns(smooth_labels)
        by_labels = [b for b in self._by_labels(X_table, smooth_labels) if b is not None]
        for f in factors:
            for c in f.labels:
                role = ("a smooth" if c in covariates else "a by variable" if c in by_labels
                        else "a random slope" if any(c in g.slopes for g in factors)
                        else None)
                if role:
                    raise ValueError(f"the grouping column {c!r} cannot also be {role}.")
        labels = (list(X_table.columns) if isinstance(X_table, pd.DataFrame)
                  else list(range(X_table.shape[1])))
        param_labels = [c for c in labels if c not in covariates and c not in grouping
                        and c not in by_labels]
        return smooth_labels, factors, param_labels

    def _factors(self, X_table):
        """The grouping factors (`GroupTerm`, the user's order) from ``groups`` and
        ``random_slopes``: one column, or a list of columns and tuples of columns (an
        interaction, lme4's ``a:b``; ``["a", ("b", "a")]`` is ``(1 | a/b)``), as MixedLM's;
        slopes a sequence (one factor) or a dict by factor name."""
        groups, slopes = self.groups, self.random_slopes
        if isinstance(slopes, (str, int, np.integer)):
            slopes = (slopes,)
        if groups is None:
            if slopes:
                raise ValueError(f"random_slopes={slopes!r} need groups=<the grouping "
                                 "column>.")
            return []
        entries = list(groups) if isinstance(groups, (list, tuple)) else [groups]
        if not entries:
            raise ValueError("groups is an empty list: give a grouping column or None.")
        if len(entries) == 1 and not isinstance(slopes, dict):
            slopes = {entries[0]: list(slopes)} if len(slopes) else {}
        label_sets, names, by_name = factor_entries(X_table, entries, slopes)
        covariance = self.covariance
        if isinstance(covariance, dict):  # keys: factor names or groups' entries
            unknown = [k for k in covariance if k not in names and k not in entries]
            if unknown:
                raise ValueError(f"covariance names {unknown}, not factors in groups "
                                 f"({names}).")
            covariance = {names[entries.index(k)] if k in entries else k: v
                          for k, v in covariance.items()}
        out = []
        for labs, nm in zip(label_sets, names):
            cols = [_design.resolve_column(X_table, c, "random_slopes")
                    for c in by_name.get(nm, [])]
            if len(set(cols)) != len(cols):
                raise ValueError(f"random_slopes of {nm!r} lists a column twice: "
                                 f"{by_name[nm]}.")
            cov = (covariance.get(nm, "diagonal") if isinstance(covariance, dict)
                   else covariance)
            if cov not in ("diagonal", "unstructured"):
                raise ValueError(f"covariance of {nm!r} must be 'diagonal' or "
                                 f"'unstructured'; got {cov!r}.")
            out.append(GroupTerm(nm, labs, cols, cov if cols else "diagonal"))
        correlated = [f.name for f in out if f.covariance == "unstructured"]
        if len(correlated) > 1:
            raise ValueError(f"correlated random slopes (covariance='unstructured') for one "
                             f"grouping factor only; got {correlated}: give the others "
                             "'diagonal' (a dict by factor name).")
        return out

    def _by_labels(self, X_table, smooth_labels):
        """Per smooth its ``by`` column's label, or None (``by``'s keys name smooths)."""
        by = self.by or {}
        out = []
        for label in smooth_labels:
            key = by.get(label, by.get(smooth_label_name(label)))
            if self._smooth_kind(label) == "fs":  # its factor is a by factor of its own
                if key is not None:
                    raise ValueError(f"by[{label!r}]: a factor-smooth interaction takes no "
                                     "by variable (it has its factor).")
                out.append(label[1])
                continue
            if key is not None:
                key = _design.resolve_column(X_table, key, f"by[{label!r}]")
                if key in covariate_columns([label]):
                    raise ValueError(f"by[{label!r}] is the smooth's own column.")
            out.append(key)
        return out

    def _check_bins(self, smooth_labels):
        """Binned smooths of one covariate need at least k bins (several covariates are
        binned on mgcv's grid per covariate)."""
        for label in smooth_labels:
            if isinstance(label, tuple):
                continue
            k = self._k_of(label)
            if self.n_bins < k:
                raise ValueError(f"n_bins={self.n_bins} is smaller than k={k} of the "
                                 f"smooth of {label!r}: use n_bins >= k.")

    def _chunk_layout(self, X, ranges, range_notes):
        """The columns' roles in the first chunk (`_roles`, checked) and their layout
        for the bin tables (skmixed._estimators._additive_sources)."""
        smooth_labels, factors, param_labels = self._roles(X)
        if any(self._smooth_kind(c) == "fs" for c in smooth_labels):
            raise ValueError(f"{type(self).__name__} fits factor-smooth interactions (bs='fs') "
                             "from data in memory only, not from a chunked or Dask source.")
        if len(factors) > 1 or (factors and (len(factors[0].labels) > 1
                                             or factors[0].covariance != "diagonal")):
            raise ValueError(f"{type(self).__name__} fits several grouping factors (or an "
                             "interaction, or correlated slopes) from data in memory only, "
                             "not from a chunked or Dask source.")
        # the smooths' parameters checked before the pass over the chunks
        self._spec(param_labels, smooth_labels, factors)
        roles = (smooth_labels, factors[0].labels[0] if factors else None,
                 factors[0].slopes if factors else [], param_labels)
        self._check_bins(smooth_labels)
        return table_layout(X, roles, ranges, range_notes, family=self.family,
                            fit_intercept=self.fit_intercept, n_bins=self.n_bins,
                            name=type(self).__name__)

    def _check_keys(self, smooth_labels):
        """The dict parameters (k, bs, knots, by) name smooths only (``knots`` may also
        name a tensor product's cyclic margin by its column)."""
        margins = [c for label in smooth_labels if isinstance(label, tuple) for c in label]
        for param in ("k", "bs", "knots", "by"):
            value = getattr(self, param)
            named = list(smooth_labels) + (margins if param == "knots" else [])
            unknown = ([key for key in value if key not in named]
                       if isinstance(value, dict) else [])
            if unknown:
                raise ValueError(f"{param} names {unknown}, which are not smooths; smooths: "
                                 f"{[smooth_label_name(c) for c in smooth_labels]}.")

    def _smooth_term(self, label):
        """The `SmoothTerm` of the smooth of column ``label`` (its k, basis and cyclic
        ends; checked, errors naming the column). A smooth of several columns (a tuple) is
        a thin-plate spline whose k comes from a dict, else mgcv's default (30 for two
        covariates, 110 for three), or a tensor product (`_tensor_term`)."""
        multi = isinstance(label, tuple)
        bs = (self.bs.get(label, "tp" if multi else "ps") if isinstance(self.bs, dict)
              else "tp" if multi else self.bs)
        if multi and (bs == "fs" or isinstance(bs, tuple) and bs[:1] == ("fs",)):
            return self._factor_smooth_term(label, bs)
        if multi and (isinstance(bs, tuple) or bs in TENSORS):
            return self._tensor_term(label, bs)
        default_k = default_dimension(len(label)) if multi else 10
        k = (self.k.get(label, default_k) if isinstance(self.k, dict)
             else default_k if multi else self.k)
        if not (isinstance(k, Integral) and not isinstance(k, bool)):
            raise ValueError(f"k[{label!r}]={k!r}: an integer >= 3.")
        if not isinstance(bs, str) or bs not in BASES:
            raise ValueError(f"bs[{label!r}]={bs!r}: one of {sorted(BASES)}"
                             + (" or, for several covariates, 'te' or 'ti'" if multi else "")
                             + ".")
        if multi and bs != "tp":
            raise ValueError(f"the smooth of {list(label)} has {len(label)} covariates: "
                             f"bs='tp' (an isotropic thin-plate spline), 'te' or 'ti' "
                             f"(tensor products) take several; got bs={bs!r}.")
        ends = (self.knots or {}).get(label)
        return SmoothTerm(label, int(k), bs, ends)

    def _factor_smooth_term(self, label, bs):
        """mgcv's ``s(x, f, bs = "fs")`` of the columns ``label`` = (x, f): ``bs`` "fs" (a
        thin-plate base, mgcv's default) or ``("fs", base)``; k from a dict, default 10; a
        cyclic base's ends from ``knots[label]``."""
        base = "tp" if bs == "fs" else bs[1] if len(bs) == 2 else None
        if base not in BASES:
            raise ValueError(f"bs[{label!r}]={bs!r}: a factor-smooth interaction is 'fs' or "
                             f"('fs', base) with a base from {sorted(BASES)}.")
        if len(label) != 2:
            raise ValueError(f"a factor-smooth interaction (bs='fs') takes a covariate and a "
                             f"factor, e.g. ('x', 'f'); got {list(label)}.")
        k = self.k.get(label, 10) if isinstance(self.k, dict) else 10
        if not (isinstance(k, Integral) and not isinstance(k, bool)):
            raise ValueError(f"k[{label!r}]={k!r}: an integer >= 3.")
        return SmoothTerm(label, int(k), "fs", (self.knots or {}).get(label),
                          by=_design.column_name(label[1]), margins=(base,))

    def _tensor_term(self, label, bs):
        """mgcv's ``te()``/``ti()`` of the columns ``label``: ``bs`` "te" or "ti" (cubic
        regression margins, mgcv's default) or a tuple ``("te", "tp", "cr")``, the margins'
        bases after the kind; k from a dict, an int (each margin) or a tuple (per margin),
        default 5 each (mgcv's)."""
        d = len(label)
        kind, margins = (bs, ("cr",) * d) if isinstance(bs, str) else (bs[0], tuple(bs[1:]))
        if kind not in TENSORS or len(margins) != d or any(
                not isinstance(b, str) or b not in BASES for b in margins):
            raise ValueError(f"bs[{label!r}]={bs!r}: a tensor product is 'te' or 'ti', or "
                             f"a tuple of 'te'/'ti' and {d} margin bases from "
                             f"{sorted(BASES)}, e.g. ('te', 'tp', 'cr').")
        if not 2 <= d <= 3:
            raise ValueError(f"a tensor product of {d} covariates {list(label)}: 2 or 3.")
        k = self.k.get(label, 5) if isinstance(self.k, dict) else 5
        k = (k,) * d if isinstance(k, Integral) and not isinstance(k, bool) else k
        if not (isinstance(k, (tuple, list)) and len(k) == d and all(
                isinstance(v, Integral) and not isinstance(v, bool) for v in k)):
            raise ValueError(f"k[{label!r}]={k!r}: an integer or {d} integers (one per "
                             "margin).")
        knots = self.knots or {}
        if knots.get(label) is not None:
            raise ValueError(f"knots[{label!r}]: a tensor product's cyclic margin takes the "
                             "ends of its cycle by its column, e.g. knots={'hour': (0, 24)}.")
        ends = tuple(knots.get(c) for c in label)
        return SmoothTerm(label, tuple(int(v) for v in k), kind,
                          ends=ends if any(e is not None for e in ends) else None,
                          margins=margins)

    def _smooth_kind(self, label):
        """mgcv's name of the smooth of ``label``: "s", or "te"/"ti" (a tensor product), or
        "fs" (a factor-smooth interaction, written ``s(x,f)``)."""
        bs = self._smooth_term(label).bs
        return bs if bs in TENSORS or bs == "fs" else "s"

    def _covariate_label(self, label):
        """The covariate column(s) of the smooth of ``label`` (an fs smooth's x alone)."""
        return label[0] if self._smooth_kind(label) == "fs" else label

    def _k_of(self, label):
        return self._smooth_term(label).k

    def _family(self):
        """The [`Family`][skmixed.families.Family] of ``family`` (identity, logit, log; the
        Tweedie one with ``power``)."""
        return get_family(self.family, power=self.power)

    def _check_levels(self, n_obs, factors, *, weighted):
        """Gaussian: refuse as many groups as observations, as MixedLM and lme4's lmer
        (skmixed._model.identifiability); mgcv fits ``s(g, bs = "re")`` with a level
        per row, but its group and residual variances are then one variance, split
        arbitrarily. Binomial and Poisson keep observation-level effects (overdispersion),
        as glmer."""
        if self._family().observation_level_effects:
            return
        if not factors:
            return
        # independent slopes: mgcv's separate s(g, x, bs = "re") terms, lme4's (1 + x || g)
        _identifiability.check_levels_vs_observations(
            n_obs, [(f.name, n_levels, ["(Intercept)"] + [_design.column_name(c)
                                                          for c in f.slopes], "diagonal")
                    for f, n_levels in factors],
            type(self).__name__, weighted=weighted)

    def _fixed_names(self, param_labels):
        """The parametric coefficients' names, the intercept first."""
        return (["(Intercept)"] if self.fit_intercept else []) + [
            _design.column_name(c) for c in param_labels]

    def _spec(self, param_labels, smooth_labels, factors):
        """The model apart from its data (skmixed._model.additive_fit.AdditiveSpec)."""
        self._check_keys(smooth_labels)
        return AdditiveSpec(
            family=self._family(), fit_intercept=self.fit_intercept,
            fixed_names=tuple(self._fixed_names(param_labels)),
            smooths=tuple(self._smooth_term(label) for label in smooth_labels),
            factors=tuple((f.name, tuple(_design.column_name(c) for c in f.slopes),
                           f.covariance) for f in factors),
            tol=self.tol, max_iter=self.max_iter, select=bool(self.select))

    def _set_fitted(self, result, X, labels, scaling, target):
        """Every fitted attribute from the fit's `FitResult`
        (on the user's columns; a dropped column's coefficient is 0 in ``coef_`` and absent
        from ``fixed_effects_``, as MixedLM's), and what prediction needs of the fit on its
        internal columns (``scaling``: the parametric columns')."""
        param_labels, smooth_labels, _, by_info = labels
        validate_data(self, X, reset=True, skip_check_array=True)
        extra = result.extra
        kept = extra["kept"]
        self.fixed_effects_ = fixed_effects_table(result.names, result.beta, result.fixed_cov)
        self.fixed_cov_ = result.fixed_cov
        self.dropped_features_ = list(result.dropped)
        full = np.zeros(len(self._fixed_names(param_labels)))
        full[kept] = result.beta
        self.intercept_ = float(full[0]) if self.fit_intercept else 0.0
        self.coef_ = full[int(self.fit_intercept):].copy()
        self.smooths_ = pd.DataFrame(extra["smooths"], index=pd.Index(
            [smooth_name(c, b, self._smooth_kind(c).replace("fs", "s"))
             for c, b in zip(smooth_labels, by_info)],
            name="term"))
        for stale in ("random_effects_", "group_levels_", "n_groups_",
                      "random_effects_matrix_"):
            if hasattr(self, stale):
                delattr(self, stale)  # a refit without groups
        sigma = result.sigma
        rows = []
        for f in result.factors:
            names = list(f.term.names)
            if f.term.covariance == "unstructured":  # variances, then correlations
                T = f.term.factor(f.theta)
                rows += variance_component_rows(f.name, names, "unstructured", T @ T.T,
                                                sigma)
            else:
                rows += [(f.name, term, None, (sigma * t) ** 2, sigma * t)
                         for term, t in zip(names, f.theta)]
        if result.factors:
            self.random_effects_ = random_effects_table(
                [f.name for f in result.factors], [f.levels for f in result.factors],
                [list(f.term.names) for f in result.factors],
                [f.modes for f in result.factors], [f.cond_var for f in result.factors])
            self.group_levels_ = {f.name: f.levels for f in result.factors}
            self.n_groups_ = {f.name: len(f.levels) for f in result.factors}
            self.random_effects_matrix_ = {f.name: f.modes for f in result.factors}
        if self._family().residual_row:
            rows.append(("Residual", None, None, sigma ** 2, sigma))
        # lme4's as.data.frame(VarCorr()): a row with var2 is a correlation (its "sd")
        self.variance_components_ = variance_components_frame(
            rows, ["group", "var1", "var2", "variance", "sd"])
        self.sigma_ = float(sigma)
        family = self._family()
        self.dispersion_ = (float(sigma) ** 2 if family.scale_estimated
                            else extra["fpar"] if family.param == "size" else 1.0)
        if self.family == "tweedie":  # given, or estimated (tw())
            self.power_ = float(self.power if self.power is not None else extra["fpar"])
        self.reml_criterion_ = float(result.criterion)
        self.edf_ = float(extra["edf_total"])
        self.n_iter_ = int(result.opt.n_iter)
        self.converged_ = bool(result.opt.converged)
        self._keep_for_prediction(result, X, labels, scaling, target)

    # ------------------------------------------------------------ predict
    def score(self, X, y=None, sample_weight=None):
        """R² of [`predict`][skmixed.AdditiveMixed.predict] (``RegressorMixin.score``); a chunked
        source raises the TypeError ``predict`` raises."""
        return super().score(X, score_target(X, y, type(self).__name__), sample_weight)

    def predict(self, X, *, random_effects=True, return_std=False):
        """The mean of y: fitted smooths (beyond the data's range: "ps" extrapolated from
        its end polynomials, "cr" and "tp" linearly, "cc" wrapped into its cycle),
        parametric effects and the group's random intercept (groups not seen in fit, or
        ``random_effects=False``: population level).

        With ``return_std=True`` also the standard error of that mean from the posterior
        covariance (mgcv's ``predict(se.fit = TRUE)``; other families than Gaussian by the
        delta method, ``|dμ/dη|`` times the SE of η)."""
        family = self._family()
        if not return_std:
            return family.mean(self._eta(X, random_effects))
        eta, se = self._eta(X, random_effects, return_std=True)
        return family.mean(eta), np.abs(family.mean_derivative(eta)) * se

    def partial_effect(self, term, grid, level=0.95):
        """The smooth of column ``term`` on ``grid`` (link scale, centred as fitted) with
        a pointwise confidence band from the posterior covariance (mgcv's ``plot.gam``
        band uses ±2 SE).

        Returns
        -------
        DataFrame with columns ``x``, ``effect``, ``std_error``, ``lower``, ``upper``.
        """
        check_is_fitted(self)
        return self._partial_effect(term, grid, level)

    def summary(self):
        """mgcv's printout (``print(summary(gam))``): family, formula, parametric
        coefficients (``t value`` and ``Pr(>|t|)`` on the residual df ``n − edf_`` when the
        scale is estimated, else ``z value``), ``Approximate significance of smooth terms:``
        (``edf``, ``Ref.df``, ``F`` or ``Chi.sq``, ``p-value``; λ is in ``smooths_``) with
        significance stars, numbers as R prints them; then the variance components and the
        REML criterion."""
        check_is_fitted(self)
        return self._summary_text()

    def plot_partial_effects(self, n_points=200, level=0.95, axes=None):
        """Plot every smooth with its pointwise confidence band over the range of the
        fitted covariate (needs matplotlib: ``pip install "skmixed[plot]"``).

        Parameters
        ----------
        n_points : int, default=200
        level : float, default=0.95
        axes : sequence of matplotlib Axes, default=None
            One per smooth; None: a new figure with a row of panels.

        Returns
        -------
        list of matplotlib Axes
        """
        check_is_fitted(self)
        return self._plot_partial_effects(n_points, level, axes)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        # a grouping column holds categories (as MixedLM's tags say)
        tags.input_tags.categorical = self.groups is not None
        tags.target_tags.required = True
        # proportions and counts; an invalid family (refused by fit) must not raise here:
        # check_is_fitted and the HTML repr read the tags of any estimator
        if self.family != "gaussian":
            tags.target_tags.positive_only = True
        return tags
