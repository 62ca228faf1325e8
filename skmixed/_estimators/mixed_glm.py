"""``MixedGLM``: generalized linear mixed models (lme4's ``glmer``), one grouping factor.

Rows are put in group order once (a counting sort, skipped when already sorted); each
evaluation of the deviance runs warm-started per-group Newton steps for the conditional
modes and, for the Laplace approximation, one more pass for its exact gradient over (β, θ)
(:mod:`skmixed._model.glmm`). Standard errors come from the Hessian of the deviance over
(β, θ) (finite differences of the exact gradient), as lme4's.
"""

import time
import warnings
from numbers import Integral
from types import SimpleNamespace

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, _fit_context
from sklearn.metrics import accuracy_score, r2_score
from sklearn.utils._available_if import available_if
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils._tags import ClassifierTags, RegressorTags
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import check_is_fitted, column_or_1d

from .._kernels.threads import numba_threads, single_threaded_blas
from .._model.glmm import GroupedRows, family_param_start, group_order
from .._model.glmm_fit import fit_one_factor
from .._model.optimize import minimize
from .._model.spaces import ParamSpace, ThetaSpace
from .._model.result import fixed_covariance, information_criteria
from .._model.scaling import ColumnScaling
from .._model.terms import RandomEffectTerm
from ..exceptions import PerfectSeparationWarning
from ..families import get_family
from ..sources import READS_CHUNKED, ChunkedData, chunk_columns, score_target
from . import _design, _identifiability, _multi
from ._chunked import dask_frame, is_dask
from ._dask_glmm import DaskLaplace, partition_arrays, shuffle_by_group
from ._base import GROUPED_CONSTRAINTS, GroupedModelMixin, independent_fixed_columns
from ._results import summary_text

__all__ = ["MixedGLM"]

def _separating_columns(columns, labels, success, failure):
    """Fixed columns that on their own (with the intercept) separate the rows with a success
    from the rows with a failure: all successes on one side of a threshold, all failures on
    the other (ties at the threshold: quasi-complete separation). Such a coefficient has an
    infinite maximum-likelihood estimate (Albert & Anderson 1984). One O(n) pass per column;
    separation by a combination of columns is not detected here (it needs a linear program).

    Returns ``(label, kind, side, threshold)`` tuples; ``side`` is ">=" when the successes
    lie at or above the threshold.
    """
    found = []
    for col, label in zip(columns, labels):
        col = np.asarray(col, dtype=np.float64)
        xs, xf = col[success], col[failure]
        lo_s, hi_s, lo_f, hi_f = xs.min(), xs.max(), xf.min(), xf.max()
        if min(lo_s, lo_f) == max(hi_s, hi_f):  # constant: dropped as the intercept's twin
            continue
        if hi_f <= lo_s:
            found.append((label, "complete" if hi_f < lo_s else "quasi-complete", ">=",
                          lo_s))
        elif hi_s <= lo_f:
            found.append((label, "complete" if hi_s < lo_f else "quasi-complete", "<=",
                          hi_s))
    return found


def _partition_xtx(frame, spec, label):
    """X'WX of a partition's fixed-effect block (intercept first)."""
    X, _, _, _, w, _, _ = partition_arrays(frame, spec, label)
    return X.T @ (X * (w if w.size else np.ones(X.shape[0]))[:, None])


class MixedGLM(GroupedModelMixin, BaseEstimator):
    """Generalized linear mixed model with one grouping factor (lme4's ``glmer``).

    ``g(E[y | b]) = offset + Xβ + Z b`` with ``b_i ~ N(0, Σ)`` per group; families binomial
    (links logit, probit, cloglog), Poisson (log) and Gamma (log). The marginal likelihood is
    approximated by the Laplace method (``n_agq=1``, lme4's default) or adaptive
    Gauss–Hermite quadrature (``n_agq > 1``, a single random intercept), and maximized over
    (β, θ). For probit and cloglog the approximation is lme4's: the conditional modes
    maximize the penalized log-likelihood, and the log determinant and the quadrature's
    scale use the expected (Fisher) information, as lme4's PIRLS weights do. Gamma's
    dispersion φ is a parameter of the Laplace approximation of the likelihood (as
    glmmTMB; lme4's ``glmer`` uses a different, plug-in criterion — see the README).

    With ``family="binomial"`` and no ``trials`` the estimator is a classifier: y holds two
    class labels, ``predict`` returns labels, ``predict_proba`` probabilities. With ``trials``
    (aggregated binomial: y = successes out of trials) and for Poisson it is a regressor
    predicting the mean of y.

    Parameters
    ----------
    family : {"binomial", "poisson", "gamma", "nbinom2"}, default="binomial"
        ``"nbinom2"``: the negative binomial with Var y = μ + μ²/k, the size k estimated
        with the fit (glmmTMB's ``nbinom2``; Laplace approximation only, as Gamma).
    link : {"logit", "probit", "cloglog", "log"}, default=None
        Binomial: "logit", "probit" or "cloglog"; Poisson, Gamma and nbinom2: "log". None:
        logit for binomial, log otherwise.
    groups : str or int, default=None
        The grouping column of X (required).
    random_slopes : sequence of str or int, default=()
        Columns with a random slope within groups (they stay fixed effects too).
    covariance : {"unstructured", "diagonal"}, default="unstructured"
    n_agq : int, default=1
        1: Laplace approximation; > 1: adaptive Gauss–Hermite quadrature with that many
        nodes (only with a single random intercept); 0: Laplace deviance optimized over θ
        only, with β from the joint penalized IRLS (fast, slightly less accurate) — lme4's
        nAGQ.
    trials : str or int, default=None
        Column of X with the number of binomial trials (y = successes).
    offset : str or int, default=None
        Column of X added to the linear predictor with coefficient 1.
    fit_intercept : bool, default=True
    n_jobs : int, default=None
        Threads for the per-group kernels (None or -1: all).
    tol : float, default=1e-6
        Convergence: predicted further decrease of the deviance (Newton decrement).
    max_iter : int, default=1000

    Attributes
    ----------
    coef_, intercept_, theta_, fixed_effects_, fixed_cov_, variance_components_,
    random_effects_, random_effects_matrix_, group_levels_, n_groups_, n_iter_,
    converged_, optimization_, fixed_feature_names_, dropped_features_ :
        As :class:`MixedLM`. ``sigma_`` is 1 for binomial and Poisson; for Gamma it is
        √φ (φ the dispersion; the shape is 1/φ) and, as in lme4's output, ``theta_`` is
        relative to it: the random-effect SDs on the link scale are ``sigma_ * theta_``
        (``variance_components_``, which has a ``Residual`` row with φ for Gamma only).
    dispersion_ : float
        The family's estimated parameter: Gamma's dispersion φ (= ``sigma_**2``), the
        negative binomial's size k (glmmTMB's ``sigma()``, lme4's ``glmer.nb.theta``); 1
        for binomial and Poisson.
    loglik_ : float
        Full log-likelihood approximation (binomial coefficients included).
    deviance_ : float
        ``-2 * loglik_``.
    aic_, bic_ : float
    classes_ : ndarray of shape (2,)
        Class labels (binomial without ``trials`` only).
    n_obs_ : float

    Notes
    -----
    lme4 reports for ``nAGQ > 1`` the log-likelihood relative to the saturated model (its
    unit-deviance form); ``loglik_`` is always the full log-likelihood — for 0/1 responses
    both agree. As ``glmer``, a grouping factor may have a level per observation (an
    overdispersion term). Grouping factors with the same groups warn
    ``IdentifiabilityWarning`` and, with equal terms, are fitted once with their variance
    split equally.
    """

    _parameter_constraints = {
        "family": [StrOptions({"binomial", "poisson", "gamma", "nbinom2"})],
        "link": [str, None],
        "n_agq": [Interval(Integral, 0, 50, closed="both")],
        "trials": [str, Integral, None],
        "offset": [str, Integral, None],
        **GROUPED_CONSTRAINTS,
        # several grouping factors (Laplace, binomial logit / Poisson log): as MixedLM's
        "groups": GROUPED_CONSTRAINTS["groups"] + [list, tuple],
        "random_slopes": GROUPED_CONSTRAINTS["random_slopes"] + [dict],
        "covariance": GROUPED_CONSTRAINTS["covariance"] + [dict],
    }

    def __init__(self, *, family="binomial", link=None, groups=None, random_slopes=(),
                 covariance="unstructured", n_agq=1, trials=None, offset=None,
                 fit_intercept=True, n_jobs=None, tol=1e-6, max_iter=1000):
        self.family = family
        self.link = link
        self.groups = groups
        self.random_slopes = random_slopes
        self.covariance = covariance
        self.n_agq = n_agq
        self.trials = trials
        self.offset = offset
        self.fit_intercept = fit_intercept
        self.n_jobs = n_jobs
        self.tol = tol
        self.max_iter = max_iter

    def _is_classifier(self):
        return self._family().kind == "proportion" and self.trials is None

    # ------------------------------------------------------------------ fit
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None, sample_weight=None):
        """Fit the model.

        Parameters
        ----------
        X : DataFrame or array-like of shape (n_samples, n_features), or Dask DataFrame
            Fixed-effect columns, the grouping column and (if named) trials and offset; or
            a Dask DataFrame with y (and sample_weight) Dask Series from the same frame
            (a ``dask.distributed`` Client active). A chunked source
            (:mod:`skmixed.sources`) is refused: the Laplace deviance revisits the rows at
            every evaluation, a chunked source is read once.
        y : array-like of shape (n_samples,)
            Two class labels (binomial classifier), successes (with ``trials``) or counts.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative frequency weights.

        Returns
        -------
        self : MixedGLM
        """
        t0 = time.perf_counter()
        name = type(self).__name__
        family = get_family(self.family, self.link)
        self._multi_design = None
        if isinstance(X, ChunkedData):
            raise TypeError(f"{name} cannot fit from a chunked source: its Laplace deviance "
                            "revisits every row at each evaluation and a chunked source is "
                            "read once. Read the data into memory (e.g. pandas.read_parquet"
                            "(path, columns=[...])) or pass a Dask DataFrame X and Series y; "
                            f"chunked sources are read by {READS_CHUNKED}.")
        if is_dask(X):
            return self._fit_dask(X, y, sample_weight)
        if _multi.is_multi(self.groups):
            return self._fit_multi(X, y, sample_weight)
        if isinstance(self.covariance, dict) or isinstance(self.random_slopes, dict):
            raise ValueError("covariance and random_slopes as dicts (by factor) need "
                             "several grouping factors in groups.")
        # one factor given as a one-element list
        groups = self.groups[0] if isinstance(self.groups, (list, tuple)) else self.groups
        if groups is None:
            raise ValueError(f"{name} needs groups=<the grouping column of X>.")
        if self.trials is not None and self._family().kind != "proportion":
            raise ValueError(f"trials={self.trials!r} is for family='binomial' only (y = "
                             f"successes out of trials); family={self.family!r} takes y "
                             "as it is.")
        X_table = _design.as_table(X, name)
        n = _design.n_rows(X_table)
        w = _design.check_weights(sample_weight, n)
        extra = self._extra_columns(X_table, groups)
        design = _design.make_design(X_table, groups=groups,
                                     random_slopes=self.random_slopes,
                                     exclude=list(extra.values()), estimator_name=name)
        extra_cols = {k: _design.fixed_columns(X_table, [v])[0].astype(np.float64)
                      for k, v in extra.items()}
        _design.check_finite_columns(list(extra_cols.values()), list(extra.values()))
        _design.check_finite_columns(design.columns, design.fixed_labels)
        y_num, classes = self._encode_target(y, n, extra_cols.get("trials"))
        term = RandomEffectTerm(tuple(["(Intercept)"] + design.slope_names), self.covariance)
        if self.n_agq > 1 and term.q > 1:
            raise ValueError(f"n_agq={self.n_agq} > 1 (adaptive Gauss-Hermite quadrature) "
                             "needs a single scalar random effect (a random intercept), as "
                             f"lme4's nAGQ; this model has {term.q} per group "
                             f"{list(term.names)}: use n_agq=1 (Laplace) or n_agq=0.")
        if self.n_agq != 1 and family.param is not None:
            raise ValueError(f"n_agq={self.n_agq} with family={family.name!r}: the "
                             f"{family.label} model is fitted by the Laplace approximation "
                             f"(n_agq=1) only, with its {family.param} as a parameter "
                             "(adaptive quadrature and the joint PIRLS of n_agq=0 are not "
                             "implemented for it).")
        if w.size:
            n_weighted = np.unique(np.asarray(design.codes)[w > 0]).size
            if n_weighted < 2:
                raise ValueError(f"{name} needs at least 2 groups with positive weight in "
                                 f"column {design.group_label!r}; found {n_weighted}.")
        self._check_separation(design, y_num, w, extra_cols.get("trials"), classes)

        with numba_threads(self.n_jobs):
            codes = np.asarray(design.codes, dtype=np.int64)  # encode_groups checked them
            used = _design.drop_unused_levels(
                design, np.bincount(codes, minlength=len(design.levels)), name)
            if not used.all():
                codes = (np.cumsum(used) - 1)[codes]
            order, starts = group_order(codes, len(design.levels))
            rows, names, dropped, back = self._grouped_rows(design, y_num, w, extra_cols,
                                                            order, starts)
            t1 = time.perf_counter()
            result = back.result(fit_one_factor(family, rows, term, n_agq=self.n_agq, tol=self.tol,
                                                 max_iter=self.max_iter), term, design.slope_pos)
            result["timings"] = {"prepare": t1 - t0, **result["timings"],
                                 "total": time.perf_counter() - t0}
        n_obs = float(rows.weights.sum()) if rows.weights.size else float(rows.y.shape[0])
        self._set_glm_fitted(X, y, design, term, names, dropped, n_obs, result, classes,
                             extra)
        return self

    def _fit_dask(self, X, y, sample_weight):
        """A Dask DataFrame: rows shuffled by group, one actor per partition holding its
        groups' Laplace deviance (skmixed._estimators._dask_glmm); the optimizer on the
        client sums their deviances and gradients."""
        import dask
        from distributed import get_client

        name = type(self).__name__
        t0 = time.perf_counter()
        if _multi.is_multi(self.groups) or self.groups is None:
            raise ValueError("a Dask fit of MixedGLM takes one grouping factor.")
        family = get_family(self.family, self.link)
        if family.kind not in ("proportion", "count") or family.link not in ("logit", "log") \
                or self.n_agq != 1:
            raise ValueError("a Dask fit of MixedGLM supports binomial logit, Poisson log and "
                             "nbinom2 by the Laplace approximation (n_agq=1).")
        try:
            client = get_client()
        except ValueError:
            raise ValueError("a Dask fit of MixedGLM needs a dask.distributed Client "
                             "(e.g. Client(LocalCluster())): its partitions are actors on "
                             "the workers.") from None
        meta = X._meta
        group = _design.resolve_column(meta, self.groups, "groups")
        extra = {p: _design.resolve_column(meta, getattr(self, p), p)
                 for p in ("trials", "offset") if getattr(self, p) is not None}
        frame = dask_frame(X, y, sample_weight, name)
        head = frame.head(100_000, npartitions=-1)  # the layout and the start values
        if len(head) == 0:
            raise ValueError(f"{name}: the Dask DataFrame has no rows.")
        design = _design.make_design(head[list(meta.columns)], groups=group,
                                     random_slopes=self.random_slopes,
                                     exclude=list(extra.values()), estimator_name=name)
        classes = None
        if self._is_classifier():
            classes = np.sort(np.asarray(y.unique().compute()))
            if classes.size != 2:
                raise ValueError(f"{name} (binomial, no trials) is a binary classifier; y "
                                 f"has {classes.size} classes.")
        names = (["(Intercept)"] if self.fit_intercept else []) + list(design.fixed_names)
        spec = dict(kinds=chunk_columns(frame._meta, "metadata", None),
                    fixed=list(design.fixed_labels), intercept=self.fit_intercept,
                    target="__y__", classes=classes, trials=extra.get("trials"),
                    offset=extra.get("offset"),
                    weight="__w__" if sample_weight is not None else None, group=group,
                    zcol=None, family=family, term=None,
                    scaling=ColumnScaling.from_columns(design.columns,
                                                       intercept=self.fit_intercept,
                                                       slope_pos=design.slope_pos))
        # the fixed effects' rank check on X'WX summed over the partitions
        XtX = sum(dask.compute(*[dask.delayed(_partition_xtx)(part, spec, f"partition {i}")
                                 for i, part in enumerate(frame.to_delayed())]))
        kept, dropped = independent_fixed_columns(XtX, names, stacklevel=4)
        offset = int(self.fit_intercept)
        spec["fixed"] = [lab for j, lab in enumerate(design.fixed_labels)
                         if offset + j in set(kept)]
        spec["intercept"] = bool(self.fit_intercept and 0 in set(kept))
        back = _multi.BackTransform(spec["scaling"], kept)
        spec["scaling"] = spec["scaling"].subset([k - offset for k in kept if k >= offset])
        zcol = [-1]
        for nm, j in zip(design.slope_names, design.slope_pos):
            if offset + j not in set(kept):
                raise ValueError(f"random-slope column {nm!r} was dropped as collinear.")
            zcol.append(list(kept).index(offset + j))
        spec["zcol"] = np.array(zcol, dtype=np.int64)
        term = RandomEffectTerm(tuple(["(Intercept)"] + design.slope_names), self.covariance)
        spec["term"] = term
        Xh, yh, mh, oh, wh, _, _ = partition_arrays(head, spec, "the first rows")
        beta0 = _multi.glm_start(Xh, yh, mh, oh, wh, family)
        extra0 = family_param_start(family, Xh, yh, oh, wh, beta0)  # from the first rows
        shuffled = shuffle_by_group(frame, group, head)
        objective = DaskLaplace(client, shuffled.to_delayed(),
                                dict(spec, kinds=chunk_columns(shuffled._meta, "metadata",
                                                               None)))
        opt = minimize(objective, ParamSpace(ThetaSpace(term), beta0, extra0), method="newton",
                       tol=self.tol, max_iter=self.max_iter)
        x = opt.theta_final
        p = beta0.size
        cov = fixed_covariance(opt.hessian, slice(0, p))
        levels, modes, cond_var = objective.modes(x)
        dispersion = None
        if extra0:
            dispersion = float(np.exp(x[-1]))
            opt.theta_final = x[:p + term.n_theta].copy()
        _design.check_label_types(levels, group)  # each partition's labels were checked
        design.levels = levels
        opt.timings = {"total": time.perf_counter() - t0}
        n_obs = float(frame["__w__"].sum().compute() if sample_weight is not None
                      else len(frame))
        result = back.result(dict(opt=opt, deviance=opt.fmin, fixed_cov=cov, modes=modes,
                                  cond_var=cond_var, beta=x[:p], timings=opt.timings,
                                  sigma=1.0, dispersion=dispersion), term, design.slope_pos)
        self._set_glm_fitted(head[list(meta.columns)].iloc[:0], y._meta, design, term,
                             [names[j] for j in kept], dropped, n_obs, result, classes, extra)
        return self

    def _fit_multi(self, X, y, sample_weight):
        """Several grouping factors: binomial logit or Poisson log by the Laplace
        approximation (skmixed._model.multilevel_glmm)."""
        name = type(self).__name__
        family = get_family(self.family, self.link)
        if family.kind not in ("proportion", "count") or family.link not in ("logit", "log"):
            raise ValueError(f"several grouping factors: family={self.family!r} with link="
                             f"{family.link!r} is not supported (binomial logit, Poisson "
                             "log and nbinom2 are).")
        if self.n_agq != 1:
            raise ValueError(f"several grouping factors: n_agq={self.n_agq} is not "
                             "supported; the Laplace approximation (n_agq=1) is, as lme4 "
                             "allows nAGQ > 1 only for a single scalar random effect.")
        if self.trials is not None and self._family().kind != "proportion":
            raise ValueError(f"trials={self.trials!r} is for family='binomial' only.")
        X_table = _design.as_table(X, name)
        n = _design.n_rows(X_table)
        w = _design.check_weights(sample_weight, n)
        extra = {p: _design.resolve_column(X_table, getattr(self, p), p)
                 for p in ("trials", "offset") if getattr(self, p) is not None}
        if len(set(extra.values())) < len(extra):
            raise ValueError("trials and offset name the same column: a column has one role.")
        design = _multi.make_multi_design(X_table, groups=list(self.groups),
                                          random_slopes=self.random_slopes,
                                          covariance=self.covariance, estimator_name=name,
                                          exclude=list(extra.values()))
        extra_cols = {k: _design.fixed_columns(X_table, [v])[0].astype(np.float64)
                      for k, v in extra.items()}
        _design.check_finite_columns(list(extra_cols.values()), list(extra.values()))
        _design.check_finite_columns(design.columns, design.fixed_labels)
        y_num, classes = self._encode_target(y, n, extra_cols.get("trials"))
        self._check_separation(design, y_num, w, extra_cols.get("trials"), classes)
        m = extra_cols.get("trials", np.ones(n))
        offset = extra_cols.get("offset", np.zeros(n))
        sets = _multi.identical_factors(design, w)
        # copies with the same term (slopes, covariance) are fitted once, then split
        once = [s for s in sets if len({(tuple(design.factors[j].slope_names),
                                          design.factors[j].covariance) for j in s}) == 1]
        _identifiability.warn_identical(design.factors, once, stacklevel=4, refit_note=(
            " They are fitted as one factor and its variance split equally among them, as "
            "lme4's symmetric fit splits it."))
        _identifiability.warn_identical(design.factors, [s for s in sets if s not in once],
                                        stacklevel=4)
        with numba_threads(self.n_jobs):
            if once:
                r = self._fit_identical_once(design, once, y_num, w, extra_cols, m, offset,
                                             family)
            else:
                r = _multi.fit_multi_glmm(design, y_num, w, m, offset, family=family,
                                          fit_intercept=self.fit_intercept, tol=self.tol,
                                          max_iter=self.max_iter, estimator_name=name)
        n_params = len(r["beta"]) + self._set_multi_fitted(X, y, design, r,
                                                           keep_residual=False)
        dev = float(r["deviance"])
        if r.get("dispersion") is not None:  # the negative binomial's size
            n_params += 1
        self.dispersion_ = 1.0 if r.get("dispersion") is None else float(r["dispersion"])
        self.loglik_ = -0.5 * dev
        self.deviance_ = dev
        self.aic_, self.bic_ = information_criteria(dev, n_params, r["n_obs"])
        if classes is not None:
            self.classes_ = classes
        elif hasattr(self, "classes_"):
            del self.classes_
        self._extra_labels = dict(extra)
        columns = list(X.columns) if isinstance(X, pd.DataFrame) else None
        self._extra_positions = {k: (columns.index(v) if columns is not None else v)
                                 for k, v in extra.items()}
        return self

    def _fit_identical_once(self, design, sets, y, w, extra_cols, m, offset, family):
        """A several-factor fit with sets of identical factors (same rows, same term): the
        model with each set's first factor only — through the single-factor path when one
        factor is left, seconds instead of minutes on 10⁵ rows — its θ and modes then split
        among the copies (:func:`~skmixed._estimators._identifiability.split_identical`).
        """
        name = type(self).__name__
        for f in design.factors:
            _multi._drop_unused(f, w if w.size else np.ones(y.shape[0]), name)
        copies = {j for s in sets for j in s[1:]}
        reduced = _multi.MultiDesign(**{**vars(design), "factors": [
            f for j, f in enumerate(design.factors) if j not in copies]})
        if len(reduced.factors) > 1:
            r = _multi.fit_multi_glmm(reduced, y, w, m, offset, family=family,
                                      fit_intercept=self.fit_intercept, tol=self.tol,
                                      max_iter=self.max_iter, estimator_name=name)
        else:
            f = reduced.factors[0]
            order, starts = group_order(f.codes, len(f.levels))
            rows, names, dropped, back = self._grouped_rows(
                SimpleNamespace(fixed_names=design.fixed_names, columns=design.columns,
                                slope_names=f.slope_names, slope_pos=f.slope_pos),
                y, w, extra_cols, order, starts)
            res = back.result(fit_one_factor(family, rows, f.term, n_agq=self.n_agq,
                                             tol=self.tol, max_iter=self.max_iter), f.term, f.slope_pos)
            # the single-factor path keeps the modes' conditional variances only: the
            # diagonals of their covariances (all that the random-effects table reads)
            cond = np.zeros(res["cond_var"].shape + res["cond_var"].shape[-1:])
            idx = np.arange(cond.shape[-1])
            cond[:, idx, idx] = res["cond_var"]
            r = dict(names=names, dropped=dropped, beta=res["beta"],
                     fixed_cov=res["fixed_cov"], sigma=1.0,
                     theta_of=[res["opt"].theta_final[len(names):]],
                     theta_internal_of=[res["theta_internal"]],
                     modes=[(res["modes"], cond)], cond_scale=1.0, opt=res["opt"],
                     deviance=res["deviance"], timings=res["timings"],
                     dispersion=res["dispersion"],
                     n_obs=float(w.sum()) if w.size else float(y.shape[0]))
        r["theta_of"], r["modes"] = _identifiability.split_identical(r, design.factors, sets,
                                                                     w)
        r.pop("theta_internal_of", None)  # per kept factor only: the copies' θ are split
        return r

    def _extra_columns(self, X_table, groups):
        """Labels of the trials and offset columns in X, each distinct from the grouping
        and random-slope columns and from each other."""
        extra = {}
        for param in ("trials", "offset"):
            key = getattr(self, param)
            if key is not None:
                extra[param] = _design.resolve_column(X_table, key, param)
        if not extra:
            return extra
        slopes = self.random_slopes
        if isinstance(slopes, (str, Integral)):
            slopes = (slopes,)
        roles = {"groups": [_design.resolve_column(X_table, groups, "groups")]}
        roles["random_slopes"] = [_design.resolve_column(X_table, s, "random_slopes")
                                  for s in slopes]
        for param, label in extra.items():
            for other, labels in roles.items():
                if label in labels:
                    raise ValueError(f"{param}={getattr(self, param)!r} names the column "
                                     f"{label!r}, which is already given as {other}: a "
                                     "column has one role.")
            roles[param] = [label]
        return extra

    def _encode_target(self, y, n, trials):
        """y as float64 successes / counts, with the family's checks; class labels for the
        binomial classifier."""
        name = type(self).__name__
        if y is None:
            raise ValueError(f"This {name} estimator requires y to be passed, but the target "
                             "y is None.")
        if self._is_classifier():
            y_arr = column_or_1d(y, warn=True)  # DataConversionWarning for a column vector
            if y_arr.shape[0] != n:
                raise ValueError(f"y has {y_arr.shape[0]} rows but X has {n}: Found input "
                                 "variables with inconsistent numbers of samples.")
            if (y_arr.dtype.kind == "f" and not np.isfinite(y_arr).all()) or (
                    y_arr.dtype.kind == "O" and pd.isna(y_arr).any()):
                raise ValueError("Input y contains NaN, infinity or missing labels.")
            # sklearn's target checks see the distinct labels only (one hash pass over y,
            # not the sorts of np.unique on millions of rows): the target's type depends on
            # the set of values alone
            labels = pd.unique(y_arr)
            check_classification_targets(labels)  # "Unknown label type: continuous ..."
            y_type = type_of_target(labels, input_name="y")
            if y_type != "binary":
                raise ValueError(
                    "Only binary classification is supported. The type of the target is "
                    f"{y_type}: binomial {name} without trials needs exactly 2 classes in y "
                    f"(found {len(labels)}). For successes out of a number of "
                    "trials name the trials column with trials=; for counts use "
                    "family='poisson'.")
            classes = np.sort(labels)
            if len(classes) != 2:
                raise ValueError(f"binomial {name} without trials needs exactly 2 classes in "
                                 f"y; found {len(classes)}: {classes.tolist()}.")
            return (y_arr == classes[1]).astype(np.float64), classes
        y_arr = _design.check_target(y, n, name)
        if not np.isfinite(y_arr).all():
            raise ValueError("Input y contains NaN or infinity.")
        get_family(self.family, self.link).check_y(y_arr, trials, self.trials)
        return y_arr, None

    def _check_separation(self, design, y, w, trials, classes):
        """Refuse a y without successes or without failures; warn when a fixed-effect
        column alone separates successes from failures (its coefficient's estimate is
        infinite). Rows with zero weight do not count."""
        rows = w > 0 if w.size else slice(None)
        y_pos, m_pos = y[rows], (trials[rows] if trials is not None else None)
        family = self._family()
        if family.kind == "positive":
            if np.ptp(y_pos) == 0:
                weighted = " with positive sample_weight" if w.size else ""
                raise ValueError(f"y has the same value in every row{weighted}: a Gamma "
                                 "model's dispersion would be 0.")
            return
        if self._is_classifier():
            success, failure = y_pos > 0, y_pos == 0
            s_text, f_text = (f"y = {c!r}" for c in classes.tolist()[::-1])
        elif family.kind == "proportion":
            success, failure = y_pos > 0, y_pos < m_pos
            s_text, f_text = "a success", "a failure"
        else:  # Poisson: every row could have a lower count
            success, failure = y_pos > 0, np.ones(y_pos.shape[0], dtype=bool)
            s_text = f_text = None
        if not success.any() or not failure.any():
            what = ("no success (y is 0 in every row)" if not success.any()
                    else "no failure (y equals the trials in every row)")
            if self._is_classifier():
                present = classes.tolist()[1 if success.any() else 0]
                what = f"only the class {present!r}"
            elif family.kind == "count":
                what = "only zero counts"
            raise _identifiability.boundary_response_error(what, bool(w.size))
        weighted = " with positive sample_weight" if w.size else ""
        columns = [np.asarray(c)[rows] for c in design.columns]
        for label, kind, side, threshold in _separating_columns(
                columns, design.fixed_labels, success, failure):
            if family.kind == "count":
                where = (f"every row with a positive count has {label!r} = {threshold:g}, "
                         f"the column's {'largest' if side == '>=' else 'smallest'} value")
            else:
                where = (f"the fixed-effect column {label!r} alone separates the rows with "
                         f"{s_text} (all {side} {threshold:g}) from the rows with {f_text}")
            warnings.warn(
                f"{kind} separation: {where}{weighted}. The maximum-likelihood estimate of "
                "its coefficient is infinite: the fit stops at an arbitrary large value, with "
                "meaningless standard errors and fitted probabilities (or means) near their "
                "bounds. Drop or recode the column (e.g. merge rare levels).",
                PerfectSeparationWarning, stacklevel=4)

    def _grouped_rows(self, design, y, w, extra_cols, order, starts):
        """The fixed-effect block (intercept first) and the per-row vectors in group order;
        constant or collinear fixed columns dropped (lme4's rank check)."""
        n = y.shape[0]
        names = (["(Intercept)"] if self.fit_intercept else []) + list(design.fixed_names)
        cols = ([np.ones(n)] if self.fit_intercept else []) + list(design.columns)
        take = (lambda a: a) if order is None else (lambda a: np.asarray(a)[order])
        X = np.empty((n, len(cols)), order="F")
        for j, col in enumerate(cols):
            X[:, j] = take(col)
        # the fit runs on centred, scaled columns (skmixed._model.scaling), mapped back after
        scaling = ColumnScaling.from_columns(design.columns, intercept=self.fit_intercept,
                                             slope_pos=design.slope_pos)
        scaling.transform(X, first=int(self.fit_intercept))
        with single_threaded_blas():
            # rows of zero weight do not count (frequency weights: they are absent)
            XtX = X.T @ X if not w.size else X.T @ (X * take(w)[:, None])
        kept, dropped = independent_fixed_columns(XtX, names, stacklevel=4)
        if dropped:
            X = np.asfortranarray(X[:, kept])
        offset_pos = int(self.fit_intercept)
        zcol = [-1]
        for name, j in zip(design.slope_names, design.slope_pos):
            pos = int(np.searchsorted(kept, offset_pos + j))
            if pos >= len(kept) or kept[pos] != offset_pos + j:
                raise ValueError(f"random-slope column {name!r} was dropped as collinear "
                                 "with other fixed columns; drop it or the columns it "
                                 "duplicates.")
            zcol.append(pos)
        rows = GroupedRows(
            X, np.array(zcol, dtype=np.int64), np.ascontiguousarray(take(y)),
            np.ascontiguousarray(take(extra_cols["trials"])) if "trials" in extra_cols
            else np.empty(0),
            np.ascontiguousarray(take(extra_cols["offset"])) if "offset" in extra_cols
            else np.empty(0),
            np.ascontiguousarray(take(w)) if w.size else np.empty(0), starts)
        return rows, [names[j] for j in kept], dropped, _multi.BackTransform(scaling, kept)

    def _set_glm_fitted(self, X, y, design, term, names, dropped, n_obs, r, classes, extra):
        opt = r["opt"]
        self._set_common_fitted(
            X, y, design, term=term, names=names, beta=r["beta"], fixed_cov=r["fixed_cov"],
            modes=r["modes"], cond_var=r["cond_var"], opt=opt, dropped=dropped,
            sigma=r["sigma"])
        if self._family().param != "dispersion":
            # no residual row in a binomial, Poisson or NB GLMM's table (lme4's VarCorr)
            vc = self.variance_components_
            self.variance_components_ = vc[vc["group"] != "Residual"].reset_index(drop=True)
        # lme4 and glmmTMB count Gamma's dispersion and the NB size as a parameter
        n_params = len(r["beta"]) + term.n_theta + (r.get("dispersion") is not None)
        self.dispersion_ = 1.0 if r.get("dispersion") is None else float(r["dispersion"])
        dev = float(r["deviance"])
        self.n_obs_ = n_obs
        self.loglik_ = -0.5 * dev
        self.deviance_ = dev
        self.aic_, self.bic_ = information_criteria(dev, n_params, n_obs)
        if classes is not None:
            self.classes_ = classes
        elif hasattr(self, "classes_"):
            del self.classes_  # a refit as a regressor (trials= or Poisson)
        self._extra_labels = dict(extra)
        columns = list(X.columns) if isinstance(X, pd.DataFrame) else None
        self._extra_positions = {k: (columns.index(v) if columns is not None else v)
                                 for k, v in extra.items()}
        opt.timings = r["timings"]
        self._warn_fit_state(term, r["theta_internal"])

    # ------------------------------------------------------------ predict
    def _extra_values(self, X_table, param):
        """The fitted trials or offset column of X as float64, checked finite. Found by the
        label seen in fit when fit and X are both DataFrames, otherwise by its position
        (sklearn has warned about the names then), as the other columns."""
        label = self._extra_labels[param]
        if not (isinstance(X_table, pd.DataFrame) and self._fitted_on_frame):
            label = self._extra_positions[param]  # positions, as _predict_columns
        col = _design.resolve_column(X_table, label, param)
        return _design.fixed_block(X_table, [col])[:, 0]

    def _offset_of(self, X_table):
        if self.offset is None:
            return 0.0
        return self._extra_values(X_table, "offset")

    def _eta(self, X, random_effects):
        if getattr(self, "_multi_design", None) is not None:
            return self._multi_linear_predictor(X, random_effects, extra=self._offset_of)
        return self._linear_predictor(X, random_effects, extra=self._offset_of)

    @available_if(lambda est: est._is_classifier())
    def decision_function(self, X, *, random_effects=True):
        """The linear predictor η on the link scale, offset included (binomial classifier
        only: sklearn's regressors have no decision function; a Poisson model's η is
        ``np.log(predict(X))``). Positive values predict ``classes_[1]``."""
        return self._eta(X, random_effects)

    def _family(self):
        return get_family(self.family, self.link)

    def _mean(self, eta):
        return self._family().mean(eta)

    @available_if(lambda est: est._is_classifier())
    def predict_proba(self, X, *, random_effects=True):
        """Class probabilities, columns in ``classes_`` order (binomial classifier only)."""
        p1 = self._mean(self._eta(X, random_effects))
        return np.column_stack([1.0 - p1, p1])

    def predict(self, X, *, random_effects=True):
        """Class labels (binomial classifier) or the mean of y: expected successes with
        ``trials`` (the trials column of X times the probability), expected counts for
        Poisson; the offset column of X enters η. ``random_effects=False``: population
        level for every row; groups not seen in fit get it anyway."""
        eta = self._eta(X, random_effects)
        if self._is_classifier():
            return self.classes_[(eta > 0).astype(int)]
        mu = self._mean(eta)
        if self.trials is not None:
            mu = mu * self._extra_values(_design.as_table(X, type(self).__name__), "trials")
        return mu

    def score(self, X, y=None, sample_weight=None):
        """Accuracy (classifier) or R² of the predicted mean."""
        y = score_target(X, y, type(self).__name__)
        if self._is_classifier():
            return accuracy_score(y, self.predict(X), sample_weight=sample_weight)
        return r2_score(y, self.predict(X), sample_weight=sample_weight)

    def _glm_formula(self):
        """lme4's formula text: ``cbind(k, m - k)`` with trials, ``offset(o)``."""
        y = self._target_name
        lhs = None
        if self.trials is not None:
            m = self._extra_labels["trials"]
            lhs = f"cbind({y}, {m} - {y})"
        extra = [f"offset({self._extra_labels['offset']})"] if self.offset is not None else []
        return self._formula(lhs=lhs, extra_terms=extra)

    def summary(self):
        """lme4-style text summary."""
        check_is_fitted(self)
        method = {0: "Laplace approximation, nAGQ = 0: β from the joint PIRLS",
                  1: "Laplace approximation"}.get(
            self.n_agq, f"adaptive Gauss-Hermite quadrature (nAGQ = {self.n_agq})")
        extra = [f"AIC {self.aic_:.2f}  BIC {self.bic_:.2f}  logLik {self.loglik_:.2f}",
                 f"optimizer {self.optimization_.optimizer}: {self.n_iter_} iterations, "
                 f"{'converged' if self.converged_ else 'NOT converged'}"]
        return summary_text(
            title=f"Generalized linear mixed model fit by maximum likelihood ({method}) "
                  f"[skmixed.MixedGLM]\n Family: {self.family} "
                  f"({get_family(self.family, self.link).link})",
            formula=self._glm_formula(), criterion_name="deviance (-2 logLik)",
            criterion=self.deviance_, vc=self.variance_components_, fixed=self.fixed_effects_,
            n_obs=self.n_obs_, group_name=self._summary_groups()[0],
            n_groups=self._summary_groups()[1], extra_lines=extra)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        tags.target_tags.required = True
        if self._is_classifier():
            tags.estimator_type = "classifier"
            tags.classifier_tags = ClassifierTags(multi_class=False)
        else:
            tags.estimator_type = "regressor"
            tags.regressor_tags = RegressorTags()
            # counts and successes are non-negative (as sklearn's PoissonRegressor)
            tags.target_tags.positive_only = True
        return tags

