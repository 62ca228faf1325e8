"""``AdditiveMixed``: additive mixed models (mgcv's ``gam``/``bam`` with ``bs = "ps"`` smooths
and ``s(g, bs = "re")`` random intercepts).

``g(E[y]) = Xβ + Σ_j s_j(z_j) + b_group``: parametric columns, P-spline smooths
(:class:`skmixed._model.smooth.PSpline`, mgcv's ``"ps"`` basis, sum-to-zero constrained) and
an optional random intercept per group. Each smooth is a random effect in disguise; the
smoothing parameters and the group variance are estimated by REML of the mixed-model form
(Gaussian, exact) or of the PIRLS working model at every step (binomial / Poisson,
``bam``'s performance iteration) — :mod:`skmixed._model.additive`. With ``discrete=True``
(default from 50,000 rows) each smooth's covariate is binned as ``bam(discrete = TRUE)`` and
every cross-product comes from per-bin sums: no n × k basis is formed.
"""

import warnings
from numbers import Integral
from types import SimpleNamespace

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.base import BaseEstimator, RegressorMixin, _fit_context
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

from .._model.additive import (LOG_TAU_BOUNDS, DenseREML, crossproducts_from_tables,
                               discretize, laplace_reml, performance_iteration)
from .._model.additive_system import AdditiveSystem
from .._model.bin_tables import BinTables, SmoothAxis
from .._model.scaling import SAMPLE_ROWS, ColumnScaling
from .._model.smooth import PSpline
from .._kernels.threads import numba_threads
from ..families import get_family
from ..sources import ChunkedData, checked_chunks, chunk_columns, score_target
from . import _design, _identifiability
from ._base import GROUPED_CONSTRAINTS, independent_fixed_columns
from ._chunked import dask_frame, is_dask
from ._results import fixed_effects_table, random_effects_table

__all__ = ["AdditiveMixed"]

_DISCRETE_FROM_ROWS = 50_000


def _slope_scale(columns):
    """Each random-slope column's scale (skmixed._model.scaling: the power of ten of its
    root mean square): the fit runs on the slopes ``x / s``, whose variance parameters do
    not depend on the user's unit."""
    return ColumnScaling.from_columns(columns, intercept=False,
                                      slope_pos=range(len(columns))).scale


class AdditiveMixed(RegressorMixin, BaseEstimator):
    """Additive mixed model: parametric effects, P-spline smooths, a random intercept and
    optional independent random slopes per group; smoothing parameters and variance
    components by REML (mgcv's ``gam`` with
    ``method = "REML"``, or ``bam(discrete = TRUE)`` with binned covariates).

    Parameters
    ----------
    smooths : sequence of str or int, default=()
        Columns of X with a smooth ``s(z, bs = "ps")``; the other columns (except
        ``groups``) are parametric (linear) effects.
    k : int or dict, default=10
        Basis dimension per smooth (a dict maps a column to its k), as mgcv's k.
    groups : str or int, default=None
        Grouping column for a random intercept (mgcv's ``s(g, bs = "re")``); None: none.
        A Gaussian model needs fewer groups than observations (the sum of the weights), as
        MixedLM and lme4's ``lmer``; binomial and Poisson ones may have a group per row.
    random_slopes : sequence of str or int, default=()
        Columns of X with a random slope per group, independent of the intercept and of
        each other, each with its own variance (mgcv's ``s(g, x, bs = "re")``; lme4's
        ``(1 + x || g)``). A parametric column stays a fixed effect too; a smooth's column
        keeps its smooth. Needs ``groups``. (Correlated slopes: MixedLM/MixedGLM.)
    family : {"gaussian", "binomial", "poisson"}, default="gaussian"
        Binomial (0/1 y, logit link) and Poisson (log link): with ``discrete`` by
        performance iteration (``bam``'s fREML), otherwise by the Laplace-approximate REML
        optimized directly (``gam(method = "REML")``); the model predicts the mean of y.
    discrete : bool or "auto", default="auto"
        Bin each smooth's covariate to at most ``n_bins`` values (``bam(discrete = TRUE)``);
        "auto": from 50,000 rows on.
    n_bins : int, default=1000
        Bins per smooth covariate when discrete (mgcv's default for one covariate).
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
        Per smooth: ``edf``; ``ref_df``, the reference degrees of freedom of its test (the
        alternative edf ``tr(2F − F²)`` over its coefficients, at most its basis size);
        ``statistic`` and ``p_value`` of the approximate test that the smooth is zero
        (Wood 2013; mgcv's ``summary.gam``): for Gaussian models mgcv's F (the Wald
        statistic over ``ref_df``, referred to an F-type distribution with ``n − edf_``
        residual df), otherwise mgcv's Chi.sq; ``lambda`` (= 1/τ², relative to the
        residual variance, on the constrained basis with the unscaled difference penalty)
        and ``variance``, σ²τ² of its penalized part. The p-values ignore the uncertainty
        of the smoothing parameters (as mgcv's) and are computed to an absolute accuracy of
        about 1e-10 (mgcv's are to about 1e-6).
    variance_components_ : DataFrame
        The group random intercept's and slopes' variances and SDs, and the residual
        (Gaussian).
    random_effects_ : DataFrame
        The groups' predicted random effects, lme4's ``as.data.frame(ranef(m))`` layout
        (group, level, term, mode, cond_sd; cond_sd from the posterior covariance, mgcv's
        Vp, which includes the fixed effects' uncertainty).
    sigma_ : float
        Residual SD (Gaussian; 1 otherwise).
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
        "k": [Interval(Integral, 4, None, closed="left"), dict],
        "groups": [str, Integral, None],
        "random_slopes": [list, tuple, str, Integral],
        "family": [StrOptions({"gaussian", "binomial", "poisson"})],
        "discrete": ["boolean", StrOptions({"auto"})],
        "n_bins": [Interval(Integral, 4, None, closed="left")],
        "fit_intercept": GROUPED_CONSTRAINTS["fit_intercept"],
        "n_jobs": GROUPED_CONSTRAINTS["n_jobs"],
        "tol": GROUPED_CONSTRAINTS["tol"],
        "max_iter": GROUPED_CONSTRAINTS["max_iter"],
    }

    def __init__(self, *, smooths=(), k=10, groups=None, random_slopes=(), family="gaussian",
                 discrete="auto", n_bins=1000, fit_intercept=True, n_jobs=None, tol=1e-8,
                 max_iter=100):
        self.smooths = smooths
        self.k = k
        self.groups = groups
        self.random_slopes = random_slopes
        self.family = family
        self.discrete = discrete
        self.n_bins = n_bins
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
            Parametric columns, the smooths' covariates and (if named) the groups; or a
            chunked source (:mod:`skmixed.sources`) read once, out of core (Gaussian,
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
        y_arr = self._check_target(y, n)
        smooth_labels, group_label, slope_labels, param_labels = self._roles(X_table)
        param_cols = _design.fixed_columns(X_table, param_labels)
        smooth_cols = _design.fixed_columns(X_table, smooth_labels)
        _design.check_finite_columns(param_cols + smooth_cols, param_labels + smooth_labels)
        codes, levels = None, None
        if group_label is not None:
            codes, levels = _design.encode_groups(_design.column_values(X_table, group_label),
                                                  group_label)
            codes = np.asarray(codes, dtype=np.int64)
            # levels without rows of positive weight (unused categories) are not groups
            used = np.bincount(codes, weights=weights, minlength=len(levels)) > 0
            if used.sum() < 2:
                raise ValueError(f"{name} needs at least 2 groups in column "
                                 f"{group_label!r}; found {int(used.sum())}.")
            if not used.all():
                codes = np.where(used[codes], (np.cumsum(used) - 1)[codes], 0)
                levels = levels[used]
        self._check_boundary_response(y_arr, w)
        discrete = (n >= _DISCRETE_FROM_ROWS) if self.discrete == "auto" else self.discrete
        self._check_k_keys(smooth_labels)
        ks = [self._k_of(label) for label in smooth_labels]
        if discrete:
            self._check_bins(smooth_labels)
        X_param = np.column_stack(([np.ones(n)] if self.fit_intercept else [])
                                  + [np.asarray(c, dtype=float) for c in param_cols]) \
            if (self.fit_intercept or param_cols) else np.empty((n, 0))
        # the fit runs on centred, scaled columns (skmixed._model.scaling), mapped back after;
        # random slopes have their own columns (z), so every parametric column is free
        scaling = ColumnScaling.from_columns(param_cols, intercept=self.fit_intercept)
        scaling.transform(X_param, first=int(self.fit_intercept))
        if n <= X_param.shape[1]:
            raise ValueError(f"{name} needs more rows than parametric columns; got "
                             f"n_samples = {n} for {X_param.shape[1]} column(s).")
        # lme4's rank check (MixedLM's): the later of collinear parametric columns dropped
        rank = independent_fixed_columns((X_param * weights[:, None]).T @ X_param,
                                         self._fixed_names(param_labels), stacklevel=3)
        X_param = X_param[:, rank[0]]
        # fixed effects: the parametric columns and each smooth's linear trend (its
        # penalty's null space after the sum-to-zero constraint)
        n_fixed = X_param.shape[1] + len(smooth_labels)
        if weights.sum() <= n_fixed:
            raise ValueError(f"{name} needs more observations ({weights.sum():g}, the sum "
                             "of sample_weight: frequency weights count rows) than fixed "
                             f"effects ({n_fixed}).")
        if group_label is not None:
            self._check_levels(weights.sum(), len(levels), group_label, slope_labels,
                               weighted=bool(w.size))
        bases = []
        for label, col, k in zip(smooth_labels, smooth_cols, ks):
            x = np.asarray(col, dtype=float)
            if discrete:
                values, index = discretize(x, self.n_bins)
            else:
                values, index = np.unique(x, return_inverse=True)
            counts = np.bincount(index, weights=weights, minlength=values.size)
            try:
                spline = PSpline(k).fit(values, weights=counts)
            except ValueError as exc:
                raise ValueError(f"smooth of {label!r}: {exc}") from None
            F, R, _ = spline.mixed_parts()
            basis = spline.design(values)
            bases.append(dict(label=label, spline=spline, index=index, null=basis @ F,
                              range=basis @ R, F=F, R=R))
        with numba_threads(self.n_jobs):
            slope_cols = _design.fixed_columns(X_table, slope_labels)
            slope_scale = _slope_scale(slope_cols)
            slope_values = (np.column_stack([np.asarray(c, dtype=float) / s for c, s in
                                             zip(slope_cols, slope_scale)])
                            if slope_labels else None)
            model = AdditiveSystem(X_param, bases, codes,
                                    len(levels) if levels is not None else 0, discrete,
                                    slope_values)
            note = None
            if self.family == "gaussian":  # one REML fit, on y minus a constant near it
                y_shift = _response_shift(y_arr, self.fit_intercept)
                fit, converged, note = _gaussian_fit(model.reml(y_arr - y_shift, weights),
                                                     y_shift, len(bases), group_label)
                n_iter = 1
            elif discrete:  # bam(discrete = TRUE): performance iteration (PQL-type)
                eta0 = self._start_eta(y_arr)
                fit, _, n_iter, converged = performance_iteration(
                    model.reml, model.linear_predictor, y_arr, eta0, weights=weights,
                    family=get_family(self.family), tol=self.tol,
                    max_iter=self.max_iter)
            else:  # gam(method = "REML"): the Laplace-approximate REML, outer iteration
                fit, _, _, converged = laplace_reml(
                    model.reml, model.linear_predictor, y_arr, self._start_eta(y_arr),
                    weights=weights, family=get_family(self.family))
                n_iter = fit.result.n_iter + 1
        self._set_fitted(X, model, fit, param_labels, smooth_labels, group_label, slope_labels,
                         levels, n_iter, converged, scaling, rank, slope_scale)
        self._target_name = getattr(y, "name", None) or "y"
        if not converged:
            warnings.warn(note or f"{name} did not converge in {n_iter} iterations.",
                          ConvergenceWarning, stacklevel=2)
        return self

    def _fit_chunked(self, source, y, sample_weight):
        """Out of core (Gaussian, binned): one pass over the chunks into basis-free bin
        tables (skmixed._model.bin_tables), then the bases and the REML fit as
        ``bam(discrete = TRUE)``'s."""
        name = type(self).__name__
        if y is not None or sample_weight is not None:
            raise ValueError(f"{name}.fit(source): a chunked source names its target (and "
                             "weight) column; pass y and sample_weight as None.")
        if self.family != "gaussian" or self.discrete is False:
            raise ValueError(f"{name} fits a chunked source for family='gaussian' with "
                             "binned smooths (discrete=True or 'auto') only.")
        tables, info, X_first = None, None, None
        for label, frame, _ in checked_chunks(source, f"{name}: binned pass"):
            X = frame.drop(columns=[c for c in (source.target, source.weight)
                                    if c is not None])
            if info is None:
                info = self._chunk_layout(X, source.ranges or {}, source.range_notes or {})
                info["y_shift"] = _response_shift(self._check_target(frame[source.target],
                                                                     len(frame)),
                                                  self.fit_intercept)
                X_first = X.iloc[:0]
                tables = self._new_tables(info, info["axes"])
            self._add_frame(tables, frame, info, source.target, source.weight, label)
        if tables is None:
            raise ValueError(f"{name}: the source has no rows.")
        values = tables.finish()
        return self._fit_from_tables(tables, values, info, X_first, source.target,
                                     weighted=source.weight is not None)

    def _fit_dask(self, X, y, sample_weight):
        """A Dask DataFrame (Gaussian, binned): the smooth covariates' ranges and distinct
        values first (a reduction over those columns only), then every partition reduced
        to its bin tables where it lives and the tables merged by group label."""
        import dask

        name = type(self).__name__
        if self.family != "gaussian" or self.discrete is False:
            raise ValueError(f"{name} fits a Dask DataFrame for family='gaussian' with "
                             "binned smooths (discrete=True or 'auto') only.")
        frame = dask_frame(X, y, sample_weight, name)
        head = frame.head(1000, npartitions=-1)
        if len(head) == 0:
            raise ValueError(f"{name}: the Dask DataFrame has no rows.")
        info = self._chunk_layout(head[list(X._meta.columns)], {})
        info["y_shift"] = _response_shift(self._check_target(head["__y__"], len(head)),
                                          self.fit_intercept)
        stats = dask.compute(*[(X[c].min(), X[c].max(), X[c].nunique())
                               for c in info["smooth"]])
        few = [c for c, st in zip(info["smooth"], stats) if st[2] <= self.n_bins]
        distinct = dict(zip(few, dask.compute(*[X[c].unique() for c in few])))
        axes = [(c, (float(lo), float(hi)), (sorted(np.asarray(distinct[c]).tolist())
                                             if c in distinct else None))
                for c, (lo, hi, _) in zip(info["smooth"], stats)]
        spec = dict(info={k: v for k, v in info.items() if k != "axes"}, axes=axes,
                    kinds=chunk_columns(frame._meta, "metadata", None),
                    weight="__w__" if sample_weight is not None else None)
        parts = dask.compute(*[dask.delayed(self._partition_tables)(part, spec,
                                                                     f"partition {i}")
                               for i, part in enumerate(frame.to_delayed())])
        tables = self._empty_tables(spec)
        for part in parts:
            if part is not None:
                tables.merge(part)
        if tables.n == 0:
            raise ValueError(f"{name}: the Dask DataFrame has no rows.")
        values = tables.finish()
        info["axes"] = tables.axes
        return self._fit_from_tables(tables, values, info, head[list(X._meta.columns)]
                                     .iloc[:0], getattr(y, "name", None) or "y",
                                     weighted=sample_weight is not None)

    def _new_tables(self, info, axes):
        """Empty bin tables for the layout ``info`` ([intercept, parametric…, y])."""
        return BinTables(len(info["param"]) + self.fit_intercept + 1, axes,
                         info["group"] is not None, 1 + len(info["slopes"]))

    def _empty_tables(self, spec):
        """A Dask partition's (or the merged) tables: the bin axes fixed beforehand."""
        return self._new_tables(spec["info"], [
            SmoothAxis(c, self.n_bins, rng, values=vals, grid=vals is None)
            for c, rng, vals in spec["axes"]])

    def _partition_tables(self, frame, spec, label):
        """One partition's bin tables (runs on a Dask worker)."""
        chunk_columns(frame, label, spec["kinds"])
        if len(frame) == 0:
            return None
        tables = self._empty_tables(spec)
        self._add_frame(tables, frame, spec["info"], "__y__", spec["weight"], label)
        return tables

    def _add_frame(self, tables, frame, info, target, weight, label):
        """One chunk's rows into the bin tables."""
        n = len(frame)
        X = frame.drop(columns=[c for c in (target, weight) if c is not None])
        y_arr = self._check_target(frame[target], n)
        w = (_design.check_weights(frame[weight].to_numpy(), n) if weight is not None
             else np.ones(n))
        if not w.size:
            w = np.ones(n)
        cols = _design.fixed_columns(X, info["param"] + info["smooth"])
        try:
            _design.check_finite_columns(cols, info["param"] + info["smooth"])
        except ValueError as exc:
            raise ValueError(f"{label}: {exc}") from None
        params = cols[:len(info["param"])]
        V = np.column_stack(([np.ones(n)] if self.fit_intercept else [])
                            + [info["scaling"].values(c, j) for j, c in enumerate(params)]
                            + [y_arr - info["y_shift"]])
        codes = levels = z = None
        if info["group"] is not None:
            codes, levels = _design.encode_groups(_design.column_values(X, info["group"]),
                                                  info["group"])
            z = np.column_stack([np.ones(n)] + [
                np.asarray(c, dtype=float) / sc for c, sc in
                zip(_design.fixed_columns(X, info["slopes"]), info["slope_scale"])])
        tables.add(V, w, cols[len(info["param"]):], label, codes, levels, z)

    def _roles(self, X_table):
        """The columns' roles: smooths, the grouping column, random slopes and the
        parametric rest, each resolved and checked (in-memory, chunked and Dask fits)."""
        smooth_labels = [_design.resolve_column(X_table, s, "smooths") for s in self.smooths]
        if len(set(smooth_labels)) != len(smooth_labels):
            raise ValueError(f"smooths lists a column twice: {list(self.smooths)}.")
        group_label = (None if self.groups is None
                       else _design.resolve_column(X_table, self.groups, "groups"))
        if group_label is not None and group_label in smooth_labels:
            raise ValueError(f"the grouping column {group_label!r} cannot also be a smooth.")
        slopes = self.random_slopes
        if isinstance(slopes, (str, int, np.integer)):
            slopes = (slopes,)
        slope_labels = [_design.resolve_column(X_table, c, "random_slopes") for c in slopes]
        if slope_labels and group_label is None:
            raise ValueError(f"random_slopes={list(slopes)} need groups=<the grouping "
                             "column>.")
        if group_label is not None and group_label in slope_labels:
            raise ValueError(f"the grouping column {group_label!r} cannot also be a random "
                             "slope.")
        if len(set(slope_labels)) != len(slope_labels):
            raise ValueError(f"random_slopes lists a column twice: {list(slopes)}.")
        labels = (list(X_table.columns) if isinstance(X_table, pd.DataFrame)
                  else list(range(X_table.shape[1])))
        param_labels = [c for c in labels if c not in smooth_labels and c != group_label]
        return smooth_labels, group_label, slope_labels, param_labels

    def _check_bins(self, smooth_labels):
        """Binned smooths need at least k bins."""
        for label in smooth_labels:
            k = self._k_of(label)
            if self.n_bins < k:
                raise ValueError(f"n_bins={self.n_bins} is smaller than k={k} of the "
                                 f"smooth of {label!r}: use n_bins >= k.")

    def _chunk_layout(self, X, ranges, range_notes=None):
        """The columns' roles from the first chunk (:meth:`_roles`) and the smooths' bin
        axes (``range_notes``: why a source does not know a column's range)."""
        smooth, group, slopes, param = self._roles(X)
        self._check_k_keys(smooth)
        self._check_bins(smooth)
        axes = [SmoothAxis(c, self.n_bins, ranges.get(c), note=(range_notes or {}).get(c))
                for c in smooth]
        scaling = ColumnScaling.from_columns(_design.fixed_columns(X, param),
                                             intercept=self.fit_intercept)
        return dict(smooth=smooth, group=group, slopes=slopes, param=param, axes=axes,
                    scaling=scaling,
                    slope_scale=_slope_scale(_design.fixed_columns(X, slopes)))

    def _fit_from_tables(self, tables, values, info, X_first, target, weighted):
        bases = []
        for label, v, counts in zip(info["smooth"], values, tables.cnt):
            try:
                spline = PSpline(self._k_of(label)).fit(v, weights=counts)
            except ValueError as exc:
                raise ValueError(f"smooth of {label!r}: {exc}") from None
            F, R, _ = spline.mixed_parts()
            basis = spline.design(v)
            bases.append(dict(label=label, spline=spline, null=basis @ F, range=basis @ R,
                              F=F, R=R))
        if info["group"] is not None and len(tables.group_levels) < 2:
            raise ValueError(f"{type(self).__name__} needs at least 2 groups in column "
                             f"{info['group']!r}; found {len(tables.group_levels)}.")
        if info["group"] is not None:
            _design.check_label_types(pd.Index(tables.group_levels, dtype=object),
                                      info["group"])
            self._check_levels(tables.n, int(np.count_nonzero(tables.zz[:, 0, 0] > 0)),
                               info["group"], info["slopes"], weighted=weighted)
        cross = crossproducts_from_tables(tables, [(b["null"], b["range"]) for b in bases])
        p0 = len(info["param"]) + self.fit_intercept
        rank = independent_fixed_columns(cross.M[:p0, :p0], self._fixed_names(info["param"]),
                                         stacklevel=5)
        if len(rank[0]) < p0:
            cross, p0 = cross.subset_fixed(rank[0]), len(rank[0])
        null_widths = [b["null"].shape[1] for b in bases]
        range_widths = [b["range"].shape[1] for b in bases]
        fixed_of, start = [], p0
        for f in null_widths:
            fixed_of.append(list(range(start, start + f)))
            start += f
        reml = DenseREML.from_crossproducts(cross, range_widths, fixed_of)
        with numba_threads(self.n_jobs):
            fit, converged, note = _gaussian_fit(reml, info["y_shift"], len(bases),
                                                 info["group"])
        model = SimpleNamespace(X=np.empty((0, p0)), bases=bases, null_widths=null_widths,
                                range_widths=range_widths, discrete=True)
        levels = (pd.Index(tables.group_levels) if info["group"] is not None else None)
        self._set_fitted(X_first, model, fit, info["param"], info["smooth"], info["group"],
                         info["slopes"], levels, 1, converged, info["scaling"], rank,
                         info["slope_scale"])
        self._target_name = target
        if not converged:
            warnings.warn(note or f"{type(self).__name__} did not converge.",
                          ConvergenceWarning, stacklevel=5)
        return self

    def _check_k_keys(self, smooth_labels):
        if isinstance(self.k, dict):
            unknown = [key for key in self.k if key not in smooth_labels]
            if unknown:
                raise ValueError(f"k names {unknown}, which are not smooths; smooths: "
                                 f"{[_design.column_name(c) for c in smooth_labels]}.")

    def _k_of(self, label):
        if isinstance(self.k, dict):
            k = self.k.get(label, 10)
            if not (isinstance(k, Integral) and k >= 3):
                raise ValueError(f"k[{label!r}]={k!r}: an integer >= 4.")
            return int(k)
        return int(self.k)

    def _check_levels(self, n_obs, n_levels, group_label, slope_labels, *, weighted):
        """Gaussian: refuse as many groups as observations, as MixedLM and lme4's lmer
        (skmixed._estimators._identifiability); mgcv fits ``s(g, bs = "re")`` with a level
        per row, but its group and residual variances are then one variance, split
        arbitrarily. Binomial and Poisson keep observation-level effects (overdispersion),
        as glmer."""
        if self.family != "gaussian":
            return
        terms = ["(Intercept)"] + [_design.column_name(c) for c in slope_labels]
        # independent slopes: mgcv's separate s(g, x, bs = "re") terms, lme4's (1 + x || g)
        _identifiability.check_levels_vs_observations(
            n_obs, [(_design.column_name(group_label), n_levels, terms, "diagonal")],
            type(self).__name__, weighted=weighted)

    def _check_boundary_response(self, y, w):
        """Binomial y of one class, or Poisson y of zeros only (rows of positive weight; ``w``
        empty for unit weights): the maximum-likelihood mean is at the boundary, as
        MixedGLM refuses."""
        if self.family == "gaussian":
            return
        y = y[w > 0] if w.size else y
        if not y.size:
            return  # no observations: refused with the fixed effects' count
        kind = get_family(self.family).kind
        if kind == "proportion" and np.ptp(y) == 0:
            what = f"only {'successes (y = 1)' if y[0] else 'failures (y = 0)'}"
        elif kind == "count" and not np.any(y):
            what = "only zero counts"
        else:
            return
        raise _identifiability.boundary_response_error(what, bool(w.size))

    def _check_target(self, y, n):
        y_arr = _design.check_target(y, n, type(self).__name__)
        if not np.isfinite(y_arr).all():
            raise ValueError("Input y contains NaN or infinity.")
        get_family(self.family).check_y(y_arr)
        return y_arr

    def _start_eta(self, y):
        """The link of the mean-shrunk response (R's mustart)."""
        return get_family(self.family).start_eta(y)

    def _fixed_names(self, param_labels):
        """The parametric coefficients' names, the intercept first."""
        return (["(Intercept)"] if self.fit_intercept else []) + [
            _design.column_name(c) for c in param_labels]

    def _set_fitted(self, X, model, fit, param_labels, smooth_labels, group_label,
                    slope_labels, levels, n_iter, converged, scaling, rank, slope_scale):
        """Every fitted attribute; ``fit`` is on the internal parametric columns of
        ``scaling`` (kept as they are for predict) that ``rank = (kept, dropped names)``
        keeps, and on the slope columns divided by ``slope_scale``; the reported fixed
        effects, slope SDs and modes are mapped back to the user's columns (a dropped
        column's coefficient is 0 in ``coef_`` and absent from ``fixed_effects_``, as
        MixedLM's)."""
        validate_data(self, X, reset=True, skip_check_array=True)
        p0 = model.X.shape[1]
        kept, dropped = rank
        names = self._fixed_names(param_labels)
        beta, fixed_cov = scaling.to_original(fit.beta[:p0], fit.cov[:p0, :p0], kept)
        self.fixed_effects_ = fixed_effects_table([names[j] for j in kept], beta, fixed_cov)
        self.fixed_cov_ = fixed_cov
        self.dropped_features_ = list(dropped)
        full = np.zeros(len(names))
        full[kept] = beta
        self.intercept_ = float(full[0]) if self.fit_intercept else 0.0
        self.coef_ = full[int(self.fit_intercept):].copy()
        J = len(smooth_labels)
        sigma = fit.sigma
        ref_df, tests = fit.significance()
        stat = tests[:, 0] / (ref_df if self.family == "gaussian" else 1.0)
        self.smooths_ = pd.DataFrame({
            "edf": fit.edf[:J], "ref_df": ref_df, "statistic": stat, "p_value": tests[:, 1],
            "lambda": 1.0 / fit.tau[:J] ** 2, "variance": (sigma * fit.tau[:J]) ** 2},
            index=pd.Index([f"s({_design.column_name(c)})" for c in smooth_labels],
                           name="term"))
        rows = []
        for stale in ("random_effects_", "group_levels_"):
            if hasattr(self, stale):
                delattr(self, stale)  # a refit without groups
        if group_label is not None:
            group_name = _design.column_name(group_label)
            terms = ["(Intercept)"] + [_design.column_name(c) for c in slope_labels]
            d = np.concatenate([[1.0], 1.0 / np.asarray(slope_scale, dtype=float)])
            for term, sd in zip(terms, sigma * fit.tau[J:] * d):
                rows.append((group_name, term, sd ** 2, sd))
            cond_var = np.diagonal(fit.group_cov[1], axis1=1, axis2=2) * d * d
            self.random_effects_ = random_effects_table(group_name, levels, terms,
                                                        fit.group * d, cond_var)
            self.group_levels_ = levels
        if self.family == "gaussian":
            rows.append(("Residual", None, sigma ** 2, sigma))
        self.variance_components_ = pd.DataFrame(rows, columns=["group", "var1", "variance",
                                                                "sd"])
        self.sigma_ = float(sigma)
        self.reml_criterion_ = float(fit.criterion) + scaling.reml_offset(kept)
        self.edf_ = float(fit.edf_total)
        self.n_iter_ = int(n_iter)
        self.converged_ = bool(converged)
        self._fit = fit
        self._scaling = scaling
        self._slope_scale = np.asarray(slope_scale, dtype=float)
        # the kept parametric columns (positions among param_labels)
        self._kept_params = [j - int(self.fit_intercept) for j in kept
                             if j >= int(self.fit_intercept)]
        self._model_info = dict(
            p0=p0, bases=[dict(label=b["label"], spline=b["spline"], F=b["F"], R=b["R"])
                          for b in model.bases],
            null_widths=model.null_widths, range_widths=model.range_widths)
        self._labels = dict(param=param_labels, smooth=smooth_labels, group=group_label,
                            slope=slope_labels)
        all_labels = (list(X.columns) if isinstance(X, pd.DataFrame)
                      else list(range(self.n_features_in_)))
        position = {c: i for i, c in enumerate(all_labels)}
        # positions too: predict may get an array after a DataFrame fit, or the reverse
        self._positions = dict(param=[position[c] for c in param_labels],
                               smooth=[position[c] for c in smooth_labels],
                               group=None if group_label is None else position[group_label],
                               slope=[position[c] for c in slope_labels])
        self._discrete = bool(model.discrete)
        self._fitted_on_frame = isinstance(X, pd.DataFrame)

    # ------------------------------------------------------------ predict
    def _keys(self, X_table, kind):
        """The keys of the fitted columns of ``kind`` in X: labels when fit and X are both
        DataFrames, otherwise positions (sklearn has already warned about the names)."""
        labels, positions = self._labels[kind], self._positions[kind]
        if isinstance(X_table, pd.DataFrame):
            if self._fitted_on_frame:
                needed = [labels] if kind == "group" else labels
                missing = [c for c in needed if c not in X_table.columns]
                if missing:
                    raise ValueError(f"X lacks the column(s) {missing} seen in fit.")
                return labels
            cols = X_table.columns
            return cols[positions] if kind == "group" else [cols[i] for i in positions]
        return positions

    def _columns(self, X_table, kind):
        return _design.fixed_columns(X_table, self._keys(X_table, kind))

    def _eta(self, X, random_effects=True, return_std=False):
        """η at the rows of X and, with ``return_std``, its posterior SD: the row's
        coefficient vector ``v`` over (β, b) — parametric values, the smooths' null and range
        bases — with ``v'Vv``, plus the group's random intercept's variance and covariance
        with (β, b) for rows of a seen group."""
        check_is_fitted(self)
        X_table = _design.as_table(X, type(self).__name__)
        validate_data(self, X, reset=False, skip_check_array=True)
        n = _design.n_rows(X_table)
        info, fit = self._model_info, self._fit
        params = [self._scaling.values(c, j)  # the internal columns of the fit
                  for j, c in enumerate(self._columns(X_table, "param"))]
        _design.check_finite_columns(params, self._keys(X_table, "param"))
        params = [params[j] for j in self._kept_params]  # not those dropped as collinear
        smooth_cols = self._columns(X_table, "smooth")
        _design.check_finite_columns(smooth_cols, self._keys(X_table, "smooth"))
        # the rows' coefficient vectors over (β, b): [intercept, parametric, nulls, ranges]
        blocks = [np.ones((n, 1))] if self.fit_intercept else []
        blocks += [c[:, None] for c in params]
        nulls, ranges = [], []
        for basis, col in zip(info["bases"], smooth_cols):
            design = basis["spline"].design(np.asarray(col, dtype=float))
            nulls.append(design @ basis["F"])
            ranges.append(design @ basis["R"])
        V_rows = (np.hstack(blocks + nulls + ranges) if blocks + nulls + ranges
                  else np.zeros((n, 0)))
        eta = V_rows @ np.concatenate([fit.beta, fit.b])
        var = np.einsum("ij,jk,ik->i", V_rows, fit.cov, V_rows) if return_std else None
        if random_effects and self._labels["group"] is not None:
            key = self._keys(X_table, "group")
            codes = _design.lookup_groups(_design.column_values(X_table, key),
                                          self.group_levels_, key)
            seen = codes >= 0  # unseen groups: population level (random effect 0)
            c = codes[seen]
            # the row's random-effect columns z = [1, slopes…]
            z = np.column_stack([np.ones(n)] + [  # the fit's internal slope columns
                np.asarray(col, dtype=float) / sc for col, sc in
                zip(self._columns(X_table, "slope"), self._slope_scale)])[seen]
            eta[seen] += np.sum(z * fit.group[c], axis=1)
            if return_std:
                cross, gvar = fit.group_cov
                r = z.shape[1]
                # Var(v'θ + z'g_i) = v'Vv + z'V_i z + 2 Σ_a z_a v'Cov(θ, g_ia)
                var[seen] += np.einsum("ia,iab,ib->i", z, gvar[c], z)
                for a in range(r):
                    var[seen] += 2.0 * z[:, a] * np.sum(V_rows[seen] * cross[c * r + a],
                                                        axis=1)
        return (eta, np.sqrt(np.maximum(var, 0.0))) if return_std else eta

    def _smooth_coefficients(self, j):
        """Smooth j's coefficients on its constrained basis and their posterior
        covariance: ``c = F β_null + R b``."""
        info, fit = self._model_info, self._fit
        p0 = info["p0"]
        start_f = p0 + sum(info["null_widths"][:j])
        start_r = sum(info["range_widths"][:j])
        f, r = info["null_widths"][j], info["range_widths"][j]
        idx = list(range(start_f, start_f + f)) + [len(fit.beta) + i
                                                   for i in range(start_r, start_r + r)]
        basis = info["bases"][j]
        G = np.hstack([basis["F"], basis["R"]])  # constrained coefficients per (β_null, b)
        coef = np.concatenate([fit.beta[start_f:start_f + f], fit.b[start_r:start_r + r]])
        return G @ coef, G @ fit.cov[np.ix_(idx, idx)] @ G.T

    def _smooth_values(self, j, x):
        coef, cov = self._smooth_coefficients(j)
        design = self._model_info["bases"][j]["spline"].design(x)
        return design @ coef, np.sqrt(np.einsum("ij,jk,ik->i", design, cov, design))

    def _mean(self, eta):
        return get_family(self.family).mean(eta)

    def score(self, X, y=None, sample_weight=None):
        """R² of :meth:`predict` (``RegressorMixin.score``); a chunked source raises the
        TypeError ``predict`` raises."""
        return super().score(X, score_target(X, y, type(self).__name__), sample_weight)

    def predict(self, X, *, random_effects=True, return_std=False):
        """The mean of y: fitted smooths (extrapolated beyond the data's range from the
        end polynomials), parametric effects and the group's random intercept (groups not
        seen in fit, or ``random_effects=False``: population level).

        With ``return_std=True`` also the standard error of that mean from the posterior
        covariance (mgcv's ``predict(se.fit = TRUE)``; binomial and Poisson by the delta
        method, ``|dμ/dη|`` times the SE of η)."""
        if not return_std:
            return self._mean(self._eta(X, random_effects))
        eta, se = self._eta(X, random_effects, return_std=True)
        family = get_family(self.family)
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
        labels = [_design.column_name(c) for c in self._labels["smooth"]]
        key = _design.column_name(term)
        if key not in labels and term in self._positions["smooth"]:
            key = labels[self._positions["smooth"].index(term)]  # a column position
        if key not in labels:
            raise ValueError(f"{term!r} is not a smooth of this model; smooths: {labels}.")
        grid = np.asarray(grid, dtype=float)
        effect, se = self._smooth_values(labels.index(key), grid)
        zq = stats.norm.ppf(0.5 + level / 2.0)
        return pd.DataFrame({"x": grid, "effect": effect, "std_error": se,
                             "lower": effect - zq * se, "upper": effect + zq * se})

    def summary(self):
        """mgcv-style text summary: the model, parametric coefficients, smooth terms (edf,
        reference df, F or χ² statistic, p-value, λ), variance components, REML
        criterion."""
        check_is_fitted(self)
        smooths = [f's({_design.column_name(c)}, bs = "ps")' for c in self._labels["smooth"]]
        group = self._labels["group"]
        terms = ([] if self.fit_intercept else ["0"]) + [
            _design.column_name(c) for c in self._labels["param"]] + smooths
        if group is not None:
            name = _design.column_name(group)
            terms.append(f's({name}, bs = "re")')
            terms += [f's({name}, {_design.column_name(c)}, bs = "re")'
                      for c in self._labels["slope"]]
        method = "binned (bam discrete)" if self._discrete else "exact (gam)"
        lines = [f"Additive mixed model [skmixed.AdditiveMixed], family {self.family}, "
                 f"REML ({method})",
                 f"Formula: {self._target_name} ~ " + (" + ".join(terms) if terms else "1"),
                 "",
                 "Parametric coefficients:",
                 self.fixed_effects_.to_string(float_format=lambda v: f"{v:.6g}"), ""]
        if len(self.smooths_):
            stat = "F" if self.family == "gaussian" else "Chi.sq"
            lines += [f"Smooth terms (approximate significance; statistic = {stat}):",
                      self.smooths_.to_string(float_format=lambda v: f"{v:.6g}"), ""]
        if len(self.variance_components_):
            lines += ["Variance components:",
                      self.variance_components_.to_string(index=False,
                                                          float_format=lambda v: f"{v:.6g}"),
                      ""]
        lines.append(f"REML criterion (-2 restricted log-likelihood of the "
                     f"{'working ' if self.family != 'gaussian' else ''}model): "
                     f"{self.reml_criterion_:.4f}; total edf {self.edf_:.3f}; "
                     f"{'converged' if self.converged_ else 'NOT converged'} after "
                     f"{self.n_iter_} iteration(s)")
        return "\n".join(lines)

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
        try:
            import matplotlib.pyplot as plt
        except ImportError as exc:  # an optional extra
            raise ImportError("plot_partial_effects needs matplotlib: "
                              'pip install "skmixed[plot]"') from exc
        bases = self._model_info["bases"]
        if not bases:
            raise ValueError("this model has no smooths to plot.")
        if axes is None:
            _, axes = plt.subplots(1, len(bases), figsize=(4 * len(bases), 3.2),
                                   squeeze=False)
            axes = list(axes[0])
        for ax, basis, term in zip(axes, bases, self.smooths_.index):
            knots = basis["spline"].knots_
            outer = basis["spline"].m[0] + 1
            # the fitted covariate's range, widened 0.1 % by the basis (mgcv's layout)
            lo, hi = knots[outer], knots[-outer - 1]
            band = self.partial_effect(basis["label"], np.linspace(lo, hi, n_points), level)
            ax.fill_between(band["x"], band["lower"], band["upper"], alpha=0.3, lw=0)
            ax.plot(band["x"], band["effect"])
            ax.set_xlabel(_design.column_name(basis["label"]))
            ax.set_ylabel(f"{term}, edf {self.smooths_.loc[term, 'edf']:.2f}")
        return list(axes)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        # a grouping column holds categories (as MixedLM's tags say)
        tags.input_tags.categorical = self.groups is not None
        tags.target_tags.required = True
        if self.family != "gaussian":
            tags.target_tags.positive_only = True
        return tags


def _response_shift(y, fit_intercept):
    """What a Gaussian fit subtracts from y: with an intercept, the mean of a strided sample
    of at most SAMPLE_ROWS values (as MixedLM centres y; any constant near y's values
    keeps the cross-products free of cancellation), so that y + 1e9 fits as y does; the
    REML criterion does not change and the constant is added back to the intercept. Without
    an intercept nothing can absorb it: 0 (y is fitted as it is, and the exact-fit check
    compares with Σ w y²)."""
    if not fit_intercept or not y.size:
        return 0.0
    return float(np.mean(y[::max(1, y.shape[0] // SAMPLE_ROWS)]))


def _gaussian_fit(reml, y_shift, n_smooths, group_label):
    """The REML fit of a Gaussian model whose response is y − ``y_shift`` (the
    intercept's constant, added back), after :func:`_check_residual_variation`. Returns
    ``(fit, converged, note)``: with a group's σ-relative SD at the upper bound of the
    search the residual variance is (numerically) 0 — y is an exact function of the fixed
    effects and the groups — and the fit is that bound's, not an estimate: not converged,
    ``note`` says so (MixedLM's optimizer reports a ConvergenceWarning on such a y)."""
    _check_residual_variation(reml)
    fit = reml.fit()
    if y_shift:
        fit.beta[0] += y_shift
    note = None
    if np.any(np.log(fit.tau[n_smooths:]) >= LOG_TAU_BOUNDS[1] - 1e-6):
        note = (f"the residual variance is (numerically) 0 next to the variance of the "
                f"{_design.column_name(group_label)!r} random effects: y is an exact "
                "function of the other terms and the groups, so the residual SD is "
                f"the optimizer's bound (the random effects' SD / e^{LOG_TAU_BOUNDS[1]:g}), "
                "not an estimate, and the variances are not identified.")
    return fit, fit.result.converged and note is None, note


def _check_residual_variation(reml):
    """Refuse a y that the fixed part (parametric columns and the smooths' linear trends)
    fits exactly when there are smoothing parameters or group variances to estimate (a
    linear model alone may fit exactly): its least-squares residual sum of squares from the
    REML's cross-products, ``y'Wy − F'Wy' (F'WF)⁻¹ F'Wy`` (F'WF has full rank: DenseREML
    checks it), F's columns scaled to unit norm so that their scales stay out of the
    solve's rounding. With an intercept y'Wy is that of y minus :func:`_response_shift`'s
    constant, a scale that does not depend on y's origin."""
    if not reml.n_tau:
        return
    rss = reml.yy
    if reml.p:
        d = 1.0 / np.sqrt(np.diag(reml.FF))
        Fy = d * reml.Fy
        rss = reml.yy - Fy @ np.linalg.solve(d[:, None] * reml.FF * d[None, :], Fy)
    _identifiability.check_residual_variation(rss, reml.yy)
