"""``MixedGLM``: generalized linear mixed models (lme4's ``glmer``), one or several grouping
factors.

Rows are put in group order once (a counting sort, skipped when already sorted); each
evaluation of the deviance runs warm-started per-group Newton steps for the conditional
modes and, for the Laplace approximation, one more pass for its exact gradient over (β, θ)
(`skmixed._model.glmm`). Standard errors come from the Hessian of the deviance over
(β, θ) (finite differences of the exact gradient), as lme4's.
"""

import time
from numbers import Integral

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.base import BaseEstimator
from sklearn.metrics import accuracy_score, r2_score
from sklearn.utils import ClassifierTags, RegressorTags
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import check_is_fitted, column_or_1d

from .._kernels.threads import numba_threads
from .._model import identifiability
from .._model.glmm_fit import fit_glmm, fit_identical_once
from .._model.multilevel_fit import fit_multi_glmm
from .._model.separation import check_separation
from ..families import get_family
from ..sources import READS_CHUNKED, ChunkedData, score_target
from . import _design, _factors, _inference
from ._chunked import is_dask
from ._dask_glmm import fit_dask
from ._base import GROUPED_CONSTRAINTS, GroupedModelMixin
from ._results import summary_text
from ._sklearn_compat import Interval, StrOptions, fit_context

__all__ = ["MixedGLM"]

class MixedGLM(GroupedModelMixin, BaseEstimator):
    """Generalized linear mixed model with one or several grouping factors (``glmer``).

    ``g(E[y | b]) = offset + Xβ + Σ_k Z_k b_k`` with, for each grouping factor k,
    ``b_kj ~ N(0, Σ_k)`` per level j; families binomial (links logit, probit, cloglog),
    Poisson (log), Gamma (log) and the negative binomial ``nbinom2`` (log). The marginal
    likelihood is approximated by the Laplace method (``n_agq=1``, lme4's default) or
    adaptive Gauss–Hermite quadrature (``n_agq > 1``, one factor with a single random
    intercept), and maximized over (β, θ). For probit and cloglog the approximation is lme4's: the conditional modes
    maximize the penalized log-likelihood, and the log determinant and the quadrature's
    scale use the expected (Fisher) information, as lme4's PIRLS weights do. Gamma's
    dispersion φ is a parameter of the Laplace approximation of the likelihood (as
    glmmTMB; lme4's ``glmer`` uses a different, plug-in criterion — see the documentation's
    MixedGLM page).

    Several grouping factors, crossed or nested, are a list in ``groups``, as for
    [`MixedLM`][skmixed.MixedLM]: ``groups=["g1", "g2"]`` is lme4's ``(1 | g1) + (1 | g2)``,
    ``groups=["g1", ("g2", "g1")]`` its ``(1 | g1/g2)``, with ``random_slopes`` and
    ``covariance`` as dicts by factor name; or a formula with several random terms,
    ``skmixed.formula.glmer("y ~ x + (1 | g1) + (1 | g2)", df)``. Several factors are
    fitted by the Laplace approximation (``n_agq=1``) for the binomial (logit, probit,
    cloglog), Poisson and nbinom2 families (not Gamma), as lme4's ``glmer``.

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
    groups : str, int or list, default=None
        The grouping column of X (required), or a list of them for several grouping factors,
        crossed or nested, as for [`MixedLM`][skmixed.MixedLM]: ``["a", "b"]`` is
        ``(1 | a) + (1 | b)``, ``["a", ("b", "a")]`` is ``(1 | a/b)`` (a tuple of columns is
        their interaction). Several factors: binomial with any of its links, Poisson and
        nbinom2, by the Laplace approximation (``n_agq=1``); not Gamma.
    random_slopes : sequence of str or int, or dict, default=()
        Columns with a random slope within groups (they stay fixed effects too); a dict by
        factor name with several factors.
    covariance : {"unstructured", "diagonal"} or dict, default="unstructured"
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
        As [`MixedLM`][skmixed.MixedLM]. ``sigma_`` is 1 for binomial, Poisson and nbinom2; for
        Gamma it is √φ (φ the dispersion; the shape is 1/φ) and, as in lme4's output, ``theta_`` is
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
        # several grouping factors (Laplace; binomial, Poisson, nbinom2): as MixedLM's
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
        try:
            family = self._family()
        except (ValueError, TypeError):  # refused by fit (sklearn's parameter validation);
            return False                 # its repr and tags must not raise before that
        return family.kind == "proportion" and self.trials is None

    # ------------------------------------------------------------------ fit
    @fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None, sample_weight=None):
        """Fit the model.

        Parameters
        ----------
        X : DataFrame or array-like of shape (n_samples, n_features), or Dask DataFrame
            Fixed-effect columns, the grouping column and (if named) trials and offset; or
            a Dask DataFrame with y (and sample_weight) Dask Series from the same frame
            (a ``dask.distributed`` Client active). A chunked source
            (`skmixed.sources`) is refused: the Laplace deviance revisits the rows at
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
        if isinstance(X, ChunkedData):
            raise TypeError(f"{name} cannot fit from a chunked source: its Laplace deviance "
                            "revisits every row at each evaluation and a chunked source is "
                            "read once. Read the data into memory (e.g. pandas.read_parquet"
                            "(path, columns=[...])) or pass a Dask DataFrame X and Series y; "
                            f"chunked sources are read by {READS_CHUNKED}.")
        if is_dask(X):
            return self._fit_dask(X, y, sample_weight)
        if _factors.is_multi(self.groups):
            return self._fit_multi(X, y, sample_weight)
        if isinstance(self.covariance, dict) or isinstance(self.random_slopes, dict):
            raise ValueError("covariance and random_slopes as dicts (by factor) need "
                             "several grouping factors in groups.")
        family, spec, y_num, w, extra_cols, classes, extra = self._one_factor_problem(
            X, y, sample_weight)
        with numba_threads(self.n_jobs):
            t1 = time.perf_counter()
            result = fit_glmm(family, spec, y_num, w, extra_cols, n_agq=self.n_agq,
                              fit_intercept=self.fit_intercept, tol=self.tol,
                              max_iter=self.max_iter)
        result.opt.timings["prepare"] += t1 - t0  # and the checks before
        result.opt.timings["total"] = time.perf_counter() - t0
        self._set_glm_fitted(X, y, spec, result, classes, extra)
        return self

    def _one_factor_problem(self, X, y, sample_weight):
        """The checked one-factor problem of ``fit``: the family, the ModelSpec (unused
        levels dropped), y as numbers, the weights, the trials/offset columns, the classes
        and the extra columns' labels."""
        name = type(self).__name__
        family = get_family(self.family, self.link)
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
        spec = _factors.one_factor_spec(design, self.covariance)
        term = spec.factors[0].term
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
        check_separation(family, design, y_num, w, extra_cols.get("trials"), classes)

        factor = spec.factors[0]
        _factors.drop_unused_levels(  # levels without rows of positive weight
            factor, np.bincount(factor.codes, weights=w if w.size else None,
                                minlength=len(factor.levels)), name)
        return family, spec, y_num, w, extra_cols, classes, extra

    def _fit_dask(self, X, y, sample_weight):
        """A Dask DataFrame (skmixed._estimators._dask_glmm.fit_dask)."""
        model, result, classes, extra, X_empty = fit_dask(self, X, y, sample_weight)
        self._set_glm_fitted(X_empty, y._meta, model, result, classes, extra)
        return self

    def _multi_problem(self, X, y, sample_weight):
        """The checked several-factor problem of ``fit``: the family, the ModelSpec (unused
        levels dropped), y as numbers, the weights, the trials/offset columns, the
        classes, the extra columns' labels and the sets of identical factors fitted once."""
        name = type(self).__name__
        family = get_family(self.family, self.link)
        if family.kind not in ("proportion", "count"):
            raise ValueError(f"several grouping factors: family={self.family!r} with link="
                             f"{family.link!r} is not supported (binomial with the logit, "
                             "probit or cloglog link, Poisson and nbinom2 are).")
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
        design = _factors.make_spec(X_table, groups=list(self.groups),
                                    random_slopes=self.random_slopes,
                                    covariance=self.covariance, estimator_name=name,
                                    exclude=list(extra.values()))
        extra_cols = {k: _design.fixed_columns(X_table, [v])[0].astype(np.float64)
                      for k, v in extra.items()}
        _design.check_finite_columns(list(extra_cols.values()), list(extra.values()))
        _design.check_finite_columns(design.columns, design.fixed_labels)
        y_num, classes = self._encode_target(y, n, extra_cols.get("trials"))
        check_separation(family, design, y_num, w, extra_cols.get("trials"), classes)
        for f in design.factors:
            _factors.drop_unused_levels(
                f, np.bincount(f.codes, weights=w if w.size else None,
                               minlength=len(f.levels)), name)
        sets = identifiability.identical_factor_sets([f.codes for f in design.factors], w)
        # copies with the same term (slopes, covariance) are fitted once, then split
        once = [s for s in sets if len({(tuple(design.factors[j].slope_names),
                                          design.factors[j].covariance) for j in s}) == 1]
        identifiability.warn_identical(design.factors, once, stacklevel=5, refit_note=(
            " They are fitted as one factor and its variance split equally among them, as "
            "lme4's symmetric fit splits it."))
        identifiability.warn_identical(design.factors, [s for s in sets if s not in once],
                                        stacklevel=5)
        return family, design, y_num, w, extra_cols, classes, extra, once

    def _fit_multi(self, X, y, sample_weight):
        """Several grouping factors: binomial (logit, probit, cloglog), Poisson and the
        negative binomial by the Laplace approximation (skmixed._model.multilevel_glmm)."""
        family, design, y_num, w, extra_cols, classes, extra, once = self._multi_problem(
            X, y, sample_weight)
        n = y_num.shape[0]
        t0 = time.perf_counter()
        with numba_threads(self.n_jobs):
            if once:
                result = fit_identical_once(family, design, once, y_num, w, extra_cols,
                                            n_agq=self.n_agq,
                                            fit_intercept=self.fit_intercept, tol=self.tol,
                                            max_iter=self.max_iter)
            else:
                result = fit_multi_glmm(design, y_num, w, extra_cols.get("trials", np.ones(n)),
                                        extra_cols.get("offset", np.zeros(n)), family=family,
                                        fit_intercept=self.fit_intercept, tol=self.tol,
                                        max_iter=self.max_iter)
        result.opt.timings["total"] = time.perf_counter() - t0
        self._set_glm_fitted(X, y, design, result, classes, extra)
        return self

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

    def _set_glm_fitted(self, X, y, design, result, classes, extra):
        """Every fitted attribute at once, after all checks have passed."""
        # no residual row in a binomial, Poisson or NB GLMM's table (lme4's VarCorr)
        self._set_fitted(X, y, design, result,
                         keep_residual=self._family().residual_row, stacklevel=4)
        self.dispersion_ = 1.0 if result.dispersion is None else float(result.dispersion)
        self.deviance_ = float(result.criterion)
        if classes is not None:
            self.classes_ = classes
        elif hasattr(self, "classes_"):
            del self.classes_  # a refit as a regressor (trials= or Poisson)
        self._extra_labels = dict(extra)
        columns = list(X.columns) if isinstance(X, pd.DataFrame) else None
        self._extra_positions = {k: (columns.index(v) if columns is not None else v)
                                 for k, v in extra.items()}

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

    def _trials_of(self, X_table):
        return (self._extra_values(X_table, "trials") if self.trials is not None
                else np.ones(_design.n_rows(X_table)))

    def _fpar(self):
        """The family's fitted parameter for simulation and residuals (φ, k; 1 without)."""
        return self.dispersion_

    def predict_interval(self, X, level=0.95, *, random_effects=True):
        """Confidence intervals of the mean response per row (probability of
        ``classes_[1]`` for a binomial classifier; per trial with ``trials``): normal on
        the link scale — from the fixed effects' covariance and, with ``random_effects``,
        the diagonal of each group's conditional covariance (an approximation: the
        covariances between β̂ and the modes, and between a group's random effects, are
        left out; a group unseen in fit gets Σ) — mapped through the inverse link.
        Prediction intervals of a discrete response are not defined this way: use
        [`simulate`][skmixed.MixedGLM.simulate].

        Returns
        -------
        pandas.DataFrame
            ``fit``, ``lower``, ``upper`` per row on the response scale; ``attrs["level"]``.
        """
        level = _inference._check_level(level)
        eta, var, _ = _inference.prediction_variances(self, X, random_effects,
                                                      extra=self._offset_of)
        half = stats.norm.ppf(0.5 + level / 2.0) * np.sqrt(var)
        mean = self._mean
        return _inference.interval_frame(mean(eta), mean(eta - half), mean(eta + half),
                                         level)

    def simulate(self, X, n_sims=1, *, random_effects="new", random_state=None):
        """Responses simulated from the fitted model (lme4's ``simulate``): successes out
        of the trials column of X (0/1 without ``trials``: 1 is ``classes_[1]``), counts,
        or positive values, drawn around the means of η = Xβ + offset + Zb.

        ``random_effects``: "new" (every group of X drawn from N(0, Σ), lme4's default),
        "conditional" (the modes of the groups seen in fit), "none" (population level).

        Returns
        -------
        ndarray of shape (n_samples, n_sims)
        """
        eta, rng = _inference.simulated_linear_predictors(
            self, X, n_sims, random_effects, random_state, extra=self._offset_of)
        m = self._trials_of(_design.as_table(X, type(self).__name__))[:, None]
        return self._family().sample(rng, self._mean(eta), m=m, fpar=self._fpar())

    def residuals(self, X, y, *, type="deviance", random_effects=True):
        """Residuals (lme4's ``residuals`` of a ``glmer`` fit), conditional on the modes
        (``random_effects=True``) or marginal: "response" ``y/m − μ`` (on the proportion
        scale with trials m), "pearson" ``(y/m − μ)·√m / √V(μ)`` (V the variance
        function, without the dispersion, as lme4), "deviance" (lme4's default)
        ``sign(y/m − μ)·√d`` with d the row's unit deviance."""
        if type not in ("response", "pearson", "deviance"):
            raise ValueError(f"type={type!r}: choose 'response', 'pearson' or 'deviance'.")
        name = self.__class__.__name__
        X_table = _design.as_table(X, name)
        mu = self._mean(self._eta(X, random_effects))
        if self._is_classifier():
            labels = np.asarray(y)
            unknown = ~np.isin(labels, self.classes_)
            if unknown.any():
                raise ValueError(f"y holds labels not seen in fit: "
                                 f"{labels[unknown][:3].tolist()}; classes_ are "
                                 f"{self.classes_.tolist()}.")
            y_num = (labels == self.classes_[1]).astype(float)
        else:
            y_num = _design.check_target(y, mu.shape[0], name)
        m = self._trials_of(X_table)
        family, fpar = self._family(), self._fpar()
        r = y_num / m - mu
        if type == "response":
            return r
        if type == "pearson":
            return r * np.sqrt(m) / np.sqrt(family.variance(mu, fpar))
        d = family.unit_deviance(y_num, mu, m=m, fpar=fpar)
        return np.sign(r) * np.sqrt(np.maximum(d, 0.0))

    def profile(self, X=None, y=None, sample_weight=None, *, parm=None, level=0.99,
                n_points=21):
        """Profile traces (lme4's ``profile``) of the Laplace deviance: ζ on a grid of each
        parameter between its ``level`` profile interval's ends; needs the data the model was
        fitted to (as [`confint`][skmixed.MixedGLM.confint]). A long DataFrame: ``parameter``,
        ``value``, ``zeta``."""
        return _inference.profile_traces(self, parm, level, n_points, X, y, sample_weight)

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

    # ---------------------------------------------------------- inference
    def confint(self, X=None, y=None, sample_weight=None, *, parm=None, level=0.95,
                method="profile", n_boot=1000, random_state=None, n_jobs=None,
                progress=False):
        """Confidence intervals of the variance parameters and fixed effects (lme4's
        ``confint`` of a ``glmer`` fit).

        Parameters
        ----------
        X, y, sample_weight : the data the model was fitted to
            Needed by ``method="profile"`` (a fitted model keeps no copy of the rows);
            checked against the fit's (number of observations and responses).
        parm : str or list of str, default=None
            Parameters to report (default all): ``"sd_<term>|<group>"``,
            ``"cor_<term>.<term>|<group>"`` (lme4's ``oldNames = FALSE``), then the fixed
            effects' names.
        level : float, default=0.95
        method : {"profile", "wald", "bootstrap"}, default="profile"
            "profile": likelihood-profile intervals of the Laplace (or quadrature) deviance
            (binomial and Poisson, any number of factors, as lme4). "wald": estimate ± z·SE for the
            fixed effects, NaN for the variance parameters (as lme4). "bootstrap": percentile
            intervals of [`bootstrap`][skmixed.MixedGLM.bootstrap] on X (``n_boot``,
            ``random_state``, ``n_jobs``, ``progress``).

        Returns
        -------
        pandas.DataFrame
            Indexed by parameter: ``estimate``, ``lower``, ``upper``; ``attrs["level"]``.
        """
        return _inference.glmm_confint(self, X, y, sample_weight, parm, level, method,
                                       n_boot, random_state, n_jobs, progress)

    def bootstrap(self, n_boot=1000, *, X=None, random_state=None, n_jobs=None,
                  progress=True):
        """Parametric bootstrap (lme4's ``bootMer``): ``n_boot`` responses simulated for the rows
        of ``X`` (the data the model was fitted to, unweighted) by
        [`simulate`][skmixed.MixedGLM.simulate] (new random effects), a clone of the model refitted
        to each. Replicate k draws from its own stream of ``SeedSequence(random_state)``: the same
        replicates whatever ``n_jobs``. A [`BootstrapResult`][skmixed.BootstrapResult] (replicates
        of the variance parameters and fixed effects; failed or non-converged refits are NaN rows,
        counted in ``n_failed``)."""
        return _inference.bootstrap(self, n_boot, random_state, n_jobs, progress, X)

    def fixed_effects_test(self, ddf="asymptotic"):
        """The fixed effects' z tests (``fixed_effects_``). Denominator degrees of freedom
        (Satterthwaite, Kenward–Roger) are defined for linear mixed models only: asking
        them of a GLMM is an error, as in lmerTest."""
        check_is_fitted(self)
        if _inference.ddf_key(ddf) != "asymptotic":
            raise ValueError(f"ddf={ddf!r}: Satterthwaite and Kenward-Roger degrees of "
                             "freedom are for linear mixed models (MixedLM); a GLMM's "
                             "fixed effects have asymptotic z tests (ddf='asymptotic').")
        return self.fixed_effects_.copy()

    def summary(self, X=None, y=None, sample_weight=None, *, ddf=None, correlation=None):
        """lme4's printout of the fit (``print(summary(m))`` of a ``glmer`` fit): scaled
        residuals, random effects, the fixed effects' ``z value`` and ``Pr(>|z|)`` with
        significance stars, their correlations; numbers formatted as R prints them.

        ``X, y, sample_weight`` (the data the model was fitted to, optional) give the
        ``Scaled residuals:`` quantiles (Pearson residuals over σ as lme4's; a row of
        weight w counts w times, as in the fit). ``ddf`` other than None or "asymptotic" is
        an error ([`fixed_effects_test`][skmixed.MixedGLM.fixed_effects_test]).
        ``correlation``: print the fixed effects' correlation (None: as lme4, when at most 12
        fixed effects)."""
        check_is_fitted(self)
        if isinstance(X, str):
            raise TypeError(f"summary(X, y): X is the data; the df method is a keyword "
                            f"argument: summary(ddf={X!r}).")
        if ddf is not None:
            self.fixed_effects_test(ddf)
        method = {0: "Laplace approximation, nAGQ = 0: β from the joint PIRLS",
                  1: "Laplace approximation"}.get(
            self.n_agq, f"adaptive Gauss-Hermite quadrature (nAGQ = {self.n_agq})")
        extra = [f"AIC {self.aic_:.2f}  BIC {self.bic_:.2f}  logLik {self.loglik_:.2f}",
                 f"optimizer {self.optimization_.optimizer}: {self.n_iter_} iterations, "
                 f"{'converged' if self.converged_ else 'NOT converged'}"]
        family = self._family()
        if family.param is not None:  # the family's estimated parameter (dispersion_)
            extra.insert(0, f"{family.label} {family.param}: {self.dispersion_:.6g}")
        resid = None
        if _inference.check_fitted_data(self, X, y, sample_weight):
            resid = self.residuals(X, y, type="pearson") / self.sigma_
        return summary_text(
            title=f"Generalized linear mixed model fit by maximum likelihood ({method}) "
                  f"[skmixed.MixedGLM]\n Family: {self.family}  "
                  f"( {get_family(self.family, self.link).link} )",
            formula=self._glm_formula(), criterion_name="deviance (-2 logLik)",
            criterion=self.deviance_, vc=self.variance_components_, fixed=self.fixed_effects_,
            n_obs=self.n_obs_, group_name=self._summary_groups()[0],
            n_rows=None if self._data_key is None else self._data_key[1],
            n_groups=self._summary_groups()[1], extra_lines=extra, stat="z", with_p=True,
            residuals=resid, residual_weights=sample_weight,
            residuals_hint="summary(X, y) with the fitted data prints them",
            fixed_cov=self.fixed_cov_, correlation=correlation)

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

