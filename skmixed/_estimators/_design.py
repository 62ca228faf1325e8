"""From (X, y, sample_weight) to the arrays the kernels read, with every check on the way.

Nothing here mutates the estimator: a failed check leaves a fitted model as it was.
X is a DataFrame (columns by name, or by position) or anything ``check_array`` accepts
(columns by position). The grouping column becomes int32 codes via ``pandas.factorize``;
the remaining columns are the fixed effects, copied once into a Fortran-ordered float64
block (one contiguous copy per column, the only copy of X a fit makes).
"""

from dataclasses import dataclass

import numpy as np
import pandas as pd
from pandas.api import types as ptypes
from sklearn.utils import check_array
from sklearn.utils.validation import _check_sample_weight, column_or_1d

__all__ = ["GroupedDesign", "as_table", "resolve_column", "encode_groups", "make_design",
           "fixed_block", "check_target"]


def as_table(X, estimator_name):
    """Return X itself if it is a DataFrame, else a validated 2-D array (dtype kept)."""
    if isinstance(X, pd.DataFrame):
        if X.shape[1] == 0:
            raise ValueError(f"0 feature(s) (shape={X.shape}) while a minimum of 1 is required.")
        if X.shape[0] == 0:
            raise ValueError(f"0 sample(s) (shape={X.shape}) while a minimum of 1 is required.")
        return X
    return check_array(X, dtype=None, ensure_all_finite=False, estimator=estimator_name)


def n_rows(X):
    return X.shape[0]


def resolve_column(X, key, param):
    """Column label of ``key`` in X: a DataFrame label, or an integer position."""
    if isinstance(X, pd.DataFrame):
        if isinstance(key, (str, bytes)) or not isinstance(key, (int, np.integer)):
            if key in X.columns:
                return key
            raise ValueError(
                f"{param}={key!r} is not a column of X; columns are {list(X.columns)}."
            )
        if key in X.columns:
            return key
        if 0 <= key < X.shape[1]:
            return X.columns[key]
        raise ValueError(f"{param}={key!r} is neither a column label nor a position in X "
                         f"(X has {X.shape[1]} columns: {list(X.columns)}).")
    if isinstance(key, (int, np.integer)) and -X.shape[1] <= key < X.shape[1]:
        return int(key) % X.shape[1]
    raise ValueError(f"{param}={key!r} must be an integer column position when X is an array "
                     f"(X has {X.shape[1]} columns); pass a DataFrame to use column names.")


def column_values(X, label):
    return X[label] if isinstance(X, pd.DataFrame) else X[:, label]


def column_name(label):
    return label if isinstance(label, str) else str(label)


def encode_groups(values, label):
    """Integer codes in ``[0, G)`` and the sorted group labels (unused categories dropped)."""
    if isinstance(values, pd.Series) and isinstance(values.dtype, pd.CategoricalDtype):
        cat_codes = values.cat.codes.to_numpy()
        if cat_codes.size and cat_codes.min() < 0:
            raise ValueError(f"group column {label!r} contains missing values.")
        counts = np.bincount(cat_codes, minlength=len(values.cat.categories))
        used = counts > 0
        if used.all():
            return cat_codes.astype(np.int32, copy=False), pd.Index(values.cat.categories)
        remap = np.cumsum(used) - 1
        return remap[cat_codes].astype(np.int32), pd.Index(values.cat.categories[used])
    values = values.to_numpy() if isinstance(values, pd.Series) else np.asarray(values)
    try:
        codes, levels = pd.factorize(values, sort=True)
    except TypeError:  # labels of mixed, unorderable types: keep order of appearance
        codes, levels = pd.factorize(values, sort=False)
    if codes.size and codes.min() < 0:
        raise ValueError(f"group column {label!r} contains missing values.")
    return codes.astype(np.int32, copy=False), pd.Index(levels)


def lookup_groups(values, levels):
    """Codes of ``values`` among fitted ``levels``; -1 for groups not seen in fit."""
    if isinstance(values, pd.Series) and isinstance(values.dtype, pd.CategoricalDtype):
        lut = levels.get_indexer(values.cat.categories)
        cat_codes = values.cat.codes.to_numpy()
        return np.where(cat_codes >= 0, lut[cat_codes], -1)
    values = values.to_numpy() if isinstance(values, pd.Series) else np.asarray(values)
    return levels.get_indexer(values)


def _numeric_column(values, label):
    if isinstance(values, pd.Series):
        if not (ptypes.is_numeric_dtype(values.dtype) or ptypes.is_bool_dtype(values.dtype)):
            raise ValueError(
                f"column {label!r} is not numeric (dtype {values.dtype}); encode it first, "
                "e.g. with OneHotEncoder inside a ColumnTransformer, or name it as the "
                "grouping column."
            )
        arr = values.to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        try:
            arr = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"column {label!r} is not numeric; encode it first, e.g. with "
                             "OneHotEncoder inside a ColumnTransformer.") from None
    if not np.isfinite(arr).all():
        raise ValueError(f"Input X column {label!r} contains NaN or infinity.")
    return arr


def fixed_block(X, labels):
    """Fortran-ordered float64 copy of the named columns, each checked to be numeric and finite."""
    out = np.empty((n_rows(X), len(labels)), dtype=np.float64, order="F")
    for j, label in enumerate(labels):
        out[:, j] = _numeric_column(column_values(X, label), label)
    return out


def check_target(y, n, estimator_name):
    """A finite float64 vector of length n (sklearn's messages and conversions)."""
    if y is None:
        raise ValueError(f"This {estimator_name} estimator requires y to be passed, "
                         "but the target y is None.")
    y = check_array(y, ensure_2d=False, dtype=np.float64, ensure_all_finite=False,
                    ensure_min_samples=0)
    y = column_or_1d(y, warn=True)
    if y.shape[0] != n:
        raise ValueError(f"y has {y.shape[0]} rows but X has {n}: Found input variables with "
                         "inconsistent numbers of samples.")
    if not np.isfinite(y).all():
        raise ValueError("Input y contains NaN or infinity.")
    return y


@dataclass
class GroupedDesign:
    """The arrays of one grouped fit.

    Attributes
    ----------
    X : ndarray (n, p_x), Fortran order — fixed-effect columns without intercept
    fixed_labels : list — their labels in X;  fixed_names : list of str
    slope_pos : ndarray — positions of the random slopes within the fixed columns
    slope_names : list of str
    codes : ndarray (n,) int32;  levels : pandas.Index;  group_label, group_name
    """

    X: np.ndarray
    fixed_labels: list
    fixed_names: list
    slope_pos: np.ndarray
    slope_names: list
    codes: np.ndarray
    levels: pd.Index
    group_label: object
    group_name: str


def make_design(X, *, groups, random_slopes, exclude=(), estimator_name="estimator"):
    """Resolve the grouping and slope columns, encode the groups, copy the fixed columns.

    ``exclude`` names further columns (trials, offset) that are neither fixed effects nor
    groups. Random-slope columns stay fixed effects too, as in ``y ~ x + (1 + x | g)``.
    """
    if groups is None:
        raise ValueError(f"{estimator_name} needs groups=<the grouping column of X>.")
    X = as_table(X, estimator_name)
    n = n_rows(X)
    group_label = resolve_column(X, groups, "groups")
    if isinstance(random_slopes, (str, int, np.integer)):
        random_slopes = (random_slopes,)
    slope_labels = [resolve_column(X, s, "random_slopes") for s in random_slopes]
    if group_label in slope_labels:
        raise ValueError(f"the grouping column {group_label!r} cannot also be a random slope.")
    if len(set(slope_labels)) != len(slope_labels):
        raise ValueError(f"random_slopes lists a column twice: {list(random_slopes)}.")
    excluded = {group_label, *exclude}
    columns = list(X.columns) if isinstance(X, pd.DataFrame) else list(range(X.shape[1]))
    fixed_labels = [c for c in columns if c not in excluded]
    Xf = fixed_block(X, fixed_labels)
    if n < 2:
        raise ValueError(f"{estimator_name} needs at least 2 groups; got n_samples = {n}.")
    codes, levels = encode_groups(column_values(X, group_label), group_label)
    if len(levels) < 2:
        raise ValueError(f"{estimator_name} needs at least 2 groups in column {group_label!r}; "
                         f"found {len(levels)}.")
    slope_pos = np.array([fixed_labels.index(s) for s in slope_labels], dtype=np.int64)
    return GroupedDesign(
        X=Xf, fixed_labels=fixed_labels, fixed_names=[column_name(c) for c in fixed_labels],
        slope_pos=slope_pos, slope_names=[column_name(c) for c in slope_labels],
        codes=codes, levels=levels, group_label=group_label,
        group_name=column_name(group_label),
    )


def check_weights(sample_weight, n):
    """Frequency weights (non-negative, finite) or an empty array for unit weights."""
    if sample_weight is None:
        return np.empty(0)
    w = _check_sample_weight(sample_weight, np.empty((n, 0)), dtype=np.float64,
                             ensure_non_negative=True)
    return np.ascontiguousarray(w)
