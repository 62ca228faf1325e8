"""Shared pieces of MixedLM and MixedGLM: the one routine that sets the fitted attributes
from a `FitResult`, the linear predictor with the
population-level fallback for unseen levels, formula text. One type of fitted attribute
whatever the number of grouping factors."""

import warnings
from dataclasses import replace
from numbers import Integral, Real

import numpy as np
import pandas as pd
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.validation import check_is_fitted, validate_data

from ..exceptions import SingularFitWarning
from .._model.result import lme4_order
from . import _design, _factors
from ._results import (fixed_effects_table, random_effects_table, variance_component_rows,
                       variance_components_frame)
from ._sklearn_compat import Interval, StrOptions

__all__ = ["GroupedModelMixin", "GROUPED_CONSTRAINTS"]

# Parameters every grouped estimator shares, validated the same way (sklearn's declarative
# checks); each estimator adds its own.
GROUPED_CONSTRAINTS = {
    "groups": [str, Integral, None],
    "random_slopes": [list, tuple, str, Integral],
    "covariance": [StrOptions({"unstructured", "diagonal"})],
    "fit_intercept": ["boolean"],
    # 0 threads has no meaning (as in joblib): reject it with the other bad values.
    "n_jobs": [Interval(Integral, None, -1, closed="right"),
               Interval(Integral, 1, None, closed="left"), None],
    "tol": [Interval(Real, 0, None, closed="neither")],
    "max_iter": [Interval(Integral, 1, None, closed="left")],
}


class GroupedModelMixin:
    """Fitted state and prediction of the grouped estimators (any number of factors)."""

    def _set_fitted(self, X, y, design, result, *, keep_residual, stacklevel):
        """Set the attributes every grouped model has from ``result`` (a FitResult of the
        model ``design``, a ModelSpec), after all checks have passed; the estimator adds
        its criterion's name. ``keep_residual``: the variance components end with the
        residual row (Gaussian and Gamma models). ``stacklevel`` of the warnings, counted
        from the caller."""
        validate_data(self, X, reset=True, skip_check_array=True)
        r = result
        est = dict(zip(r.names, r.beta))
        self.theta_ = r.theta()
        self.sigma_ = float(r.sigma)
        self.intercept_ = float(est.get("(Intercept)", 0.0)) if self.fit_intercept else 0.0
        self.coef_ = np.array([est.get(nm, 0.0) for nm in design.fixed_names])
        self.fixed_feature_names_ = list(design.fixed_names)
        self.dropped_features_ = list(r.dropped)
        self.fixed_effects_ = fixed_effects_table(r.names, r.beta, r.fixed_cov)
        self.fixed_cov_ = r.fixed_cov
        vc, order = [], [r.factors[k] for k in lme4_order(r.factors)]
        for f in order:
            T = f.term.factor(f.theta)
            vc += variance_component_rows(f.name, list(f.term.names), f.term.covariance,
                                          T @ T.T, self.sigma_)
        if keep_residual:
            vc.append(("Residual", None, None, self.sigma_ ** 2, self.sigma_))
        self.variance_components_ = variance_components_frame(vc)
        self.random_effects_ = random_effects_table(
            [f.name for f in order], [f.levels for f in order],
            [list(f.term.names) for f in order], [f.modes for f in order],
            [f.cond_var for f in order])
        self.random_effects_matrix_ = {f.name: f.modes for f in r.factors}
        # each factor's random-effect covariance Σ (user scale) and conditional variances
        # of the modes, for simulate and the prediction intervals
        self._re_covariance = {}
        for f in r.factors:
            T = f.term.factor(f.theta)
            self._re_covariance[f.name] = self.sigma_ ** 2 * (T @ T.T)
        self._re_cond_var = {f.name: f.cond_var for f in r.factors}
        self.group_levels_ = {f.name: f.levels for f in r.factors}
        self.n_groups_ = {f.name: len(f.levels) for f in r.factors}
        self.n_obs_ = float(r.n_obs)
        self.loglik_ = r.loglik
        self.aic_, self.bic_ = r.information_criteria
        self.n_iter_, self.converged_ = r.opt.n_iter, r.opt.converged
        self.optimization_ = r.opt
        # what confint/anova/bootstrap read (LMM: the sums, O(levels); None where a fit
        # keeps none)
        self._inference = r.extra.get("inference")
        self._n_params = int(r.n_params)
        self._data_key = _design.data_key(y, r.n_obs)
        # what predict and the formula text read of the model: labels, positions, slopes,
        # levels — not the training rows' columns and codes (a fitted model keeps no copy
        # of X, and pickles small)
        self._design = replace(design, columns=[], factors=[
            replace(f, codes=None, levels=fit.levels)
            for f, fit in zip(design.factors, r.factors)])
        # Positions too: predict may get an array after a DataFrame fit, or the reverse.
        self._fitted_on_frame = isinstance(X, pd.DataFrame)
        self._target_name = getattr(y, "name", None) or "y"
        if not self.converged_:
            warnings.warn(f"the optimizer did not converge: {r.opt.message}",
                          ConvergenceWarning, stacklevel=stacklevel + 1)
        # lme4's singular check on the fit's own θ (slope columns scaled: unit-free)
        if r.singular():
            warnings.warn("boundary (singular) fit: a random-effect variance is (near) "
                          "zero; see variance_components_", SingularFitWarning,
                          stacklevel=stacklevel + 1)

    def _fixed_rows(self, X):
        """X as a table (checked against fit's features) and its fixed-effect block."""
        check_is_fitted(self)
        X_table = _design.as_table(X, type(self).__name__)
        # On the caller's X: sklearn's feature-name checks need its columns.
        validate_data(self, X, reset=False, skip_check_array=True)
        design = self._design
        if isinstance(X_table, pd.DataFrame) and self._fitted_on_frame:
            needed = [c for f in design.factors for c in f.labels] + list(design.fixed_labels)
            missing = [c for c in dict.fromkeys(needed) if c not in X_table.columns]
            if missing:
                raise ValueError(f"X lacks the column(s) {missing} seen in fit; its "
                                 f"columns are {list(X_table.columns)}.")
            keys = design.fixed_labels
        elif isinstance(X_table, pd.DataFrame):
            keys = [X_table.columns[p] for p in design.fixed_positions]
        else:
            keys = design.fixed_positions
        return X_table, _design.fixed_block(X_table, keys)

    def _linear_predictor(self, X, random_effects, extra=None):
        """Xβ (+ ``extra(X_table)``: an offset) + each factor's modes for the rows of X. A
        level not seen in fit contributes 0 for its factor (population level)."""
        X_table, Xf = self._fixed_rows(X)
        design = self._design
        pred = Xf @ self.coef_ + self.intercept_
        if extra is not None:
            pred = pred + extra(X_table)
        # Checked even without random effects: a row without a group is invalid input.
        modes = [self.random_effects_matrix_[f.name] for f in design.factors]
        pred += _factors.random_effects_of_rows(design, X_table, self._fitted_on_frame,
                                                modes, Xf, add=random_effects)
        return pred

    def _factor_rows(self, X_table, Xf, f):
        """Factor ``f``'s values in X, its label for messages, and its random-effect
        covariates per row ``[1, slopes…]`` (n, q)."""
        labels = _factors.factor_labels(f, X_table, self._fitted_on_frame)
        values = _factors.factor_values(X_table, labels)
        label = labels[0] if len(labels) == 1 else f.name
        n = _design.n_rows(X_table)
        return values, label, np.column_stack([np.ones(n)] + [Xf[:, p] for p in f.slope_pos])

    def _random_effect_rows(self, X_table, Xf, *, draw=None, variance=False,
                            conditional=True):
        """Per row, Σ over the factors of ``z_i'b`` with b drawn by ``draw`` (a Generator:
        new levels N(0, Σ) — or, with ``draw=(rng, True)``, the modes for levels seen in fit,
        lme4's ``use.u``); with ``variance``: ``(Σ z'Σz over the factors, Σ z'V z)`` with V
        the modes' conditional variances (their diagonal; levels unseen in fit get Σ)."""
        n = _design.n_rows(X_table)
        total = np.zeros(n)
        var_new, var_cond = np.zeros(n), np.zeros(n)
        for f in self._design.factors:
            values, label, Z = self._factor_rows(X_table, Xf, f)
            cov = self._re_covariance[f.name]
            if variance:
                seen = _design.lookup_groups(values, f.levels, label)
                cv = self._re_cond_var[f.name][np.where(seen >= 0, seen, 0)]
                if conditional and np.any((seen >= 0) & ~np.isfinite(cv).all(axis=1)):
                    raise ValueError("the conditional variances of the modes were not "
                                     "computed by this fit (solver='iterative'): use "
                                     "random_effects=False.")
                zcz = np.einsum("ia,ab,ib->i", Z, cov, Z)
                var_new += zcz
                var_cond += np.where(seen >= 0, np.einsum("ia,ia->i", Z * Z, cv), zcz)
                continue
            rng, conditional = draw if isinstance(draw, tuple) else (draw, False)
            codes, levels = _design.encode_groups(values, label)
            w, V = np.linalg.eigh(cov)
            root = V * np.sqrt(np.clip(w, 0.0, None))
            b = rng.standard_normal((len(levels), f.term.q)) @ root.T
            if conditional:
                seen = _design.lookup_groups(pd.Series(levels), f.levels, label)
                b[seen >= 0] = self.random_effects_matrix_[f.name][seen[seen >= 0]]
            total += np.einsum("ia,ia->i", Z, b[codes])
        return (var_new, var_cond) if variance else total

    def _summary_groups(self):
        """(group names, level counts) for summary_text's "groups:" line."""
        return list(self.n_groups_), list(self.n_groups_.values())

    def _formula(self, lhs=None, extra_terms=()):
        """lme4-style formula text of the fitted model (one random-effect term per
        grouping factor)."""
        fixed = " + ".join((["1"] if self.fit_intercept else ["0"])
                           + self.fixed_feature_names_ + list(extra_terms))
        terms = []
        for f in self._design.factors:
            bar = " || " if f.covariance == "diagonal" else " | "
            terms.append(f"({' + '.join(['1'] + list(f.slope_names))}{bar}{f.name})")
        return f"{lhs or self._target_name} ~ {fixed} + " + " + ".join(terms)
