"""Shared pieces of the grouped estimators: fitted attributes common to all mixed models,
the linear predictor with the population-level fallback for unseen groups, formula text."""

import warnings
from numbers import Integral, Real

import numpy as np
import pandas as pd
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

from ..exceptions import SingularFitWarning
from . import _design, _multi
from .._model.identifiability import independent_fixed_columns
from ._results import fixed_effects_table, random_effects_table, variance_components_table

__all__ = ["GroupedModelMixin", "independent_fixed_columns", "GROUPED_CONSTRAINTS"]

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
    """Fitted-state and prediction helpers for estimators with one grouping factor."""

    def _set_common_fitted(self, X, y, design, *, term, names, beta, fixed_cov, modes,
                           cond_var, opt, dropped, sigma):
        """Set the attributes every grouped model has (after all checks have passed)."""
        validate_data(self, X, reset=True, skip_check_array=True)
        self.theta_ = opt.theta_final[-term.n_theta:].copy()
        self.sigma_ = float(sigma)
        est = dict(zip(names, beta))
        self.intercept_ = float(est.get("(Intercept)", 0.0)) if self.fit_intercept else 0.0
        self.coef_ = np.array([est.get(nm, 0.0) for nm in design.fixed_names])
        self.fixed_feature_names_ = list(design.fixed_names)
        self.dropped_features_ = list(dropped)
        self.fixed_effects_ = fixed_effects_table(names, beta, fixed_cov)
        self.fixed_cov_ = fixed_cov
        T = term.factor(self.theta_)
        self.variance_components_ = variance_components_table(
            design.group_name, list(term.names), self.covariance, T @ T.T, self.sigma_)
        self.random_effects_ = random_effects_table(
            design.group_name, design.levels, list(term.names), modes, cond_var)
        self.random_effects_matrix_ = modes
        self.group_levels_ = design.levels
        self.n_groups_ = len(design.levels)
        self.n_iter_ = opt.n_iter
        self.converged_ = opt.converged
        self.optimization_ = opt
        self._group_label = design.group_label
        self._fixed_labels = list(design.fixed_labels)
        # Positions too: predict may get an array after a DataFrame fit, or the reverse.
        self._fitted_on_frame = isinstance(X, pd.DataFrame)
        self._group_position = design.group_position
        self._fixed_positions = list(design.fixed_positions)
        self._slope_pos = design.slope_pos
        self._term_names = list(term.names)
        self._target_name = getattr(y, "name", None) or "y"

    def _warn_fit_state(self, term, theta):
        """Convergence and lme4's singular-fit check, on the fit's internal θ (slope
        columns scaled: skmixed._model.scaling), which does not depend on their units."""
        if not self.converged_:
            warnings.warn(f"the optimizer did not converge: {self.optimization_.message}",
                          ConvergenceWarning, stacklevel=5)
        if term.is_singular(theta):
            warnings.warn("boundary (singular) fit: a random-effect variance is (near) zero; "
                          "see variance_components_", SingularFitWarning, stacklevel=5)

    def _linear_predictor(self, X, random_effects, extra=None):
        """Xβ (+ the group's random effects) for the rows of X; ``extra(X_table)`` may add
        an offset. Groups not seen in fit get random effects 0 (population level)."""
        check_is_fitted(self)
        X_table = _design.as_table(X, type(self).__name__)
        # On the caller's X: sklearn's feature-name checks need its columns.
        validate_data(self, X, reset=False, skip_check_array=True)
        group_key, fixed_keys = self._predict_columns(X_table)
        Xf = _design.fixed_block(X_table, fixed_keys)
        # Checked even without random effects: a row without a group is invalid input.
        group_values = _design.column_values(X_table, group_key)
        codes = _design.lookup_groups(group_values, self.group_levels_, group_key)
        pred = Xf @ self.coef_ + self.intercept_
        if extra is not None:
            pred += extra(X_table)
        if random_effects:
            seen = codes >= 0
            b = self.random_effects_matrix_[np.where(seen, codes, 0)]
            b[~seen] = 0.0
            pred += b[:, 0]
            for a, pos in enumerate(self._slope_pos, start=1):
                pred += b[:, a] * Xf[:, pos]
        return pred

    def _predict_columns(self, X):
        """Keys of the grouping and fixed columns in X: labels when fit and X are both
        DataFrames, otherwise positions (sklearn has already warned about the names)."""
        if isinstance(X, pd.DataFrame):
            if self._fitted_on_frame:
                needed = [self._group_label, *self._fixed_labels]
                missing = [c for c in needed if c not in X.columns]
                if missing:
                    raise ValueError(f"X lacks the column(s) {missing} seen in fit; its "
                                     f"columns are {list(X.columns)}.")
                return self._group_label, self._fixed_labels
            cols = X.columns
            return cols[self._group_position], [cols[j] for j in self._fixed_positions]
        return self._group_position, self._fixed_positions

    def _set_multi_fitted(self, X, y, design, r, *, keep_residual):
        """The fitted attributes of a several-factor fit (skmixed._estimators._multi's
        result ``r``), shared by MixedLM and MixedGLM; the criterion attributes are the
        caller's."""
        validate_data(self, X, reset=True, skip_check_array=True)
        theta, vc, re = _multi.multi_random_part(design, r)
        est = dict(zip(r["names"], r["beta"]))
        self.theta_ = theta
        self.sigma_ = float(r["sigma"])
        self.intercept_ = float(est.get("(Intercept)", 0.0)) if self.fit_intercept else 0.0
        self.coef_ = np.array([est.get(nm, 0.0) for nm in design.fixed_names])
        self.fixed_feature_names_ = list(design.fixed_names)
        self.dropped_features_ = list(r["dropped"])
        self.fixed_effects_ = fixed_effects_table(r["names"], r["beta"], r["fixed_cov"])
        self.fixed_cov_ = r["fixed_cov"]
        self.variance_components_ = (vc if keep_residual else
                                     vc[vc["group"] != "Residual"].reset_index(drop=True))
        self.random_effects_ = re
        self.random_effects_matrix_ = {f.name: m[0] for f, m in zip(design.factors,
                                                                    r["modes"])}
        self.group_levels_ = {f.name: f.levels for f in design.factors}
        self.n_groups_ = {f.name: len(f.levels) for f in design.factors}
        opt = r["opt"]
        opt.timings = r["timings"]
        self.n_iter_, self.converged_, self.optimization_ = opt.n_iter, opt.converged, opt
        self.n_obs_ = float(r["n_obs"])
        self._multi_design = design
        self._multi_modes = [m[0] for m in r["modes"]]
        self._fitted_on_frame = isinstance(X, pd.DataFrame)
        self._target_name = getattr(y, "name", None) or "y"
        if not self.converged_:
            warnings.warn(f"the optimizer did not converge: {opt.message}",
                          ConvergenceWarning, stacklevel=4)
        # lme4's singular check on the fit's own θ (slope columns scaled: unit-free)
        internal = r.get("theta_internal_of", r["theta_of"])
        if any(np.any(np.abs(internal[k][f.term.rows == f.term.cols]) < 1e-4)
               for k, f in enumerate(design.factors)):
            warnings.warn("boundary (singular) fit: a random-effect variance is (near) "
                          "zero; see variance_components_", SingularFitWarning, stacklevel=4)
        return len(theta)

    def _multi_linear_predictor(self, X, random_effects, extra=None):
        """Xβ (+ ``extra(X_table)``) + each factor's modes for the rows of X (a level not
        seen in fit contributes 0 for its factor)."""
        check_is_fitted(self)
        X_table = _design.as_table(X, type(self).__name__)
        validate_data(self, X, reset=False, skip_check_array=True)
        design = self._multi_design
        if isinstance(X_table, pd.DataFrame) and self._fitted_on_frame:
            missing = [c for c in design.fixed_labels if c not in X_table.columns]
            if missing:
                raise ValueError(f"X lacks the column(s) {missing} seen in fit.")
            keys = design.fixed_labels
        elif isinstance(X_table, pd.DataFrame):
            keys = [X_table.columns[p] for p in design.fixed_positions]
        else:
            keys = design.fixed_positions
        Xf = _design.fixed_block(X_table, keys)
        pred = Xf @ self.coef_ + self.intercept_
        if extra is not None:
            pred = pred + extra(X_table)
        if random_effects:
            pred += _multi.multi_random_effects(design, X_table, self._fitted_on_frame,
                                                self._multi_modes, Xf)
        return pred

    def _summary_groups(self):
        """(group name(s), level count(s)) for summary_text's "groups:" line."""
        if getattr(self, "_multi_design", None) is not None:
            return list(self.n_groups_), list(self.n_groups_.values())
        return self.variance_components_["group"].iloc[0], self.n_groups_

    def _formula(self, lhs=None, extra_terms=()):
        """lme4-style formula text of the fitted model (one random-effect term per
        grouping factor)."""
        design = getattr(self, "_multi_design", None)
        if design is not None:
            fixed = " + ".join((["1"] if self.fit_intercept else ["0"])
                               + self.fixed_feature_names_ + list(extra_terms))
            terms = []
            for f in design.factors:
                bar = " || " if f.covariance == "diagonal" else " | "
                terms.append(f"({' + '.join(['1'] + f.slope_names)}{bar}{f.name})")
            return f"{lhs or self._target_name} ~ {fixed} + " + " + ".join(terms)
        bar = " || " if self.covariance == "diagonal" else " | "
        re_terms = " + ".join(["1"] + self._term_names[1:])
        fixed = " + ".join((["1"] if self.fit_intercept else ["0"]) + self.fixed_feature_names_
                           + list(extra_terms))
        group = self.variance_components_["group"].iloc[0]
        return f"{lhs or self._target_name} ~ {fixed} + ({re_terms}{bar}{group})"
