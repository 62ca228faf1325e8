"""The private scikit-learn names skmixed uses, in one place, each with a fallback.

The estimators import everything else from sklearn's public API (public since sklearn 1.6:
``validate_data``, ``check_is_fitted``, ``sklearn.utils.metaestimators.available_if``,
``sklearn.utils.ClassifierTags``/``RegressorTags``). Five names have no public equivalent:

* ``Interval``, ``StrOptions``, ``InvalidParameterError`` (``sklearn.utils._param_validation``)
  and ``_fit_context`` (``sklearn.base``): the declarative parameter validation sklearn's own
  estimators use (``_parameter_constraints``), so skmixed rejects bad parameters with
  sklearn's messages and exception type;
* ``_check_sample_weight`` and ``_get_feature_names`` (``sklearn.utils.validation``).

Tested with scikit-learn 1.7 and 1.9 (pyproject.toml). When a scikit-learn release moves or
removes one of them, the import below fails and the module falls back to the small
implementations here (``SKLEARN_PRIVATE_API`` says which is in use): the estimators keep
validating their parameters, with the fallback's messages, and this module is the only
file to update. tests/estimators/test_sklearn_compat.py runs the fallbacks against sklearn's.
"""

from numbers import Integral, Real

import numpy as np
from sklearn.utils import check_array

__all__ = ["Interval", "StrOptions", "InvalidParameterError", "fit_context",
           "check_sample_weight", "check_feature_names", "SKLEARN_PRIVATE_API"]


# --------------------------------------------------------------------------------------------
# Fallbacks: the subset of sklearn's behaviour skmixed relies on
# --------------------------------------------------------------------------------------------


class _InvalidParameterError(ValueError, TypeError):
    """A parameter of the wrong type or value (sklearn's ``InvalidParameterError``)."""


class _StrOptions:
    """One of a set of strings."""

    def __init__(self, options):
        self.options = set(options)

    def is_satisfied_by(self, value):
        return isinstance(value, str) and value in self.options

    def __str__(self):
        return "a str among {" + ", ".join(repr(o) for o in sorted(self.options)) + "}"


class _Interval:
    """A number of type ``type`` in an interval, ``closed`` in {"left", "right", "both",
    "neither"}; ``None`` bounds are infinite. Booleans are not numbers here (as sklearn)."""

    def __init__(self, type, left, right, *, closed):
        self.type, self.left, self.right, self.closed = type, left, right, closed

    def is_satisfied_by(self, value):
        if isinstance(value, bool) or not isinstance(value, self.type):
            return False
        if self.left is not None:
            if value < self.left or (value == self.left and self.closed in ("right", "neither")):
                return False
        if self.right is not None:
            if value > self.right or (value == self.right and self.closed in ("left", "neither")):
                return False
        return True

    def __str__(self):
        kind = "an int" if self.type is Integral else "a float"
        left = "[" if self.closed in ("left", "both") else "("
        right = "]" if self.closed in ("right", "both") else ")"
        lo = "-inf" if self.left is None else self.left
        hi = "inf" if self.right is None else self.right
        return f"{kind} in the range {left}{lo}, {hi}{right}"


def _satisfies(value, constraint):
    if constraint is None:
        return value is None
    if constraint == "boolean":
        return isinstance(value, (bool, np.bool_))
    if isinstance(constraint, type):
        return isinstance(value, constraint)
    return constraint.is_satisfied_by(value)


def _describe(constraint):
    if constraint is None:
        return "None"
    if constraint == "boolean":
        return "an instance of 'bool'"
    if isinstance(constraint, type):
        return f"an instance of {constraint.__name__!r}"
    return str(constraint)


def _validate_parameters(estimator):
    """Check every parameter of ``estimator`` against its ``_parameter_constraints``."""
    params = estimator.get_params(deep=False)
    for name, constraints in estimator._parameter_constraints.items():
        value = params[name]
        if not any(_satisfies(value, c) for c in constraints):
            allowed = ", ".join(_describe(c) for c in constraints)
            raise _InvalidParameterError(
                f"The {name!r} parameter of {type(estimator).__name__} must be {allowed}. "
                f"Got {value!r} instead.")


def _fit_context_fallback(*, prefer_skip_nested_validation):
    """Validate the parameters, then fit (sklearn's ``_fit_context`` without its global
    configuration handling)."""
    import functools

    def decorator(fit_method):
        @functools.wraps(fit_method)
        def wrapper(estimator, *args, **kwargs):
            _validate_parameters(estimator)
            return fit_method(estimator, *args, **kwargs)
        return wrapper
    return decorator


def _check_sample_weight_fallback(sample_weight, X, *, dtype=None, ensure_non_negative=False):
    """Weights as a float array of ``len(X)`` rows: None -> ones, a scalar -> constant."""
    n = X.shape[0]
    dtype = np.float64 if dtype is None else dtype
    if sample_weight is None:
        return np.ones(n, dtype=dtype)
    if np.ndim(sample_weight) == 0:
        return np.full(n, sample_weight, dtype=dtype)
    w = check_array(sample_weight, ensure_2d=False, dtype=dtype, input_name="sample_weight")
    if w.ndim != 1:
        raise ValueError(f"Sample weights must be 1D array or scalar, got {w.ndim}D array.")
    if w.shape[0] != n:
        raise ValueError(f"sample_weight.shape == {w.shape}, expected ({n},)!")
    if ensure_non_negative and np.any(w < 0):
        raise ValueError("Negative values in data passed to `sample_weight`")
    return w


def _get_feature_names_fallback(X):
    """The column names of a DataFrame as an object array (None without string names);
    a TypeError for a mix of str and non-str names (sklearn's rule)."""
    columns = getattr(X, "columns", None)
    if columns is None:
        return None
    names = np.asarray(columns, dtype=object)
    kinds = {type(name) for name in names}
    if len(kinds) > 1 and str in kinds:
        raise TypeError(
            "Feature names are only supported if all input features have string names, but "
            f"your input has {sorted(t.__name__ for t in kinds)} as feature name / column "
            "name types. If you want feature names to be stored and validated, you must "
            "convert them all to strings, by using X.columns = X.columns.astype(str) for "
            "example. Otherwise you can remove feature / column names from your input data, "
            "or convert them all to a non-string data type.")
    return names if kinds == {str} else None


# --------------------------------------------------------------------------------------------
# sklearn's own, when it still has them
# --------------------------------------------------------------------------------------------

try:
    from sklearn.base import _fit_context as fit_context
    from sklearn.utils._param_validation import Interval, InvalidParameterError, StrOptions
    from sklearn.utils.validation import _check_sample_weight, _get_feature_names
except ImportError:  # pragma: no cover - a scikit-learn newer than the tested ones
    SKLEARN_PRIVATE_API = False
    Interval, StrOptions = _Interval, _StrOptions
    InvalidParameterError = _InvalidParameterError
    fit_context = _fit_context_fallback
    _check_sample_weight = _check_sample_weight_fallback
    _get_feature_names = _get_feature_names_fallback
else:
    SKLEARN_PRIVATE_API = True


def check_sample_weight(sample_weight, n_samples, *, ensure_non_negative=True):
    """Frequency weights as a float64 array of ``n_samples`` (sklearn's checks)."""
    return _check_sample_weight(sample_weight, np.empty((n_samples, 0)), dtype=np.float64,
                                ensure_non_negative=ensure_non_negative)


def check_feature_names(X):
    """Raise TypeError when a DataFrame's column names mix str and non-str."""
    _get_feature_names(X)
