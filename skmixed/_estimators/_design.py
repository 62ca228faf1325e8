"""From (X, y, sample_weight) to the arrays the kernels read, with every check on the way.

Nothing here mutates the estimator: a failed check leaves a fitted model as it was.
X is a DataFrame (columns by name, or by position) or anything ``check_array`` accepts
(columns by position). The grouping column becomes int32 codes (a categorical's own codes,
unused categories dropped after the row pass; otherwise ``pandas.factorize``); the
remaining columns are the fixed effects, handed to the row pass as the DataFrame's own
arrays (no copy of X for numeric numpy dtypes). Finiteness is checked after the row pass:
NaN or infinity anywhere shows in the sums, and only then are the columns scanned to name
the culprit.
"""

import warnings
from dataclasses import dataclass
from numbers import Number

import numpy as np
import pandas as pd
from pandas.api import types as ptypes
from sklearn.utils import check_array
from sklearn.utils.validation import column_or_1d

from ..exceptions import GroupLabelWarning
from ..sources import refuse_chunked
from ._sklearn_compat import check_feature_names, check_sample_weight

__all__ = ["GroupedDesign", "as_table", "resolve_column", "encode_groups", "lookup_groups",
           "make_design", "fixed_columns", "check_finite_columns", "fixed_block",
           "check_target", "check_weights", "missing_groups_error", "drop_unused_levels",
           "check_label_types", "interaction", "interaction_levels", "level_name"]


def as_table(X, estimator_name):
    """Return X itself if it is a DataFrame, else a validated 2-D array (dtype kept).

    A DataFrame is not copied; its column labels must be unique (columns are found by
    label), and sklearn's rule on feature names (all strings, or none) is checked here,
    before any work, rather than when the fitted attributes are set.
    """
    refuse_chunked(X, estimator_name)
    if isinstance(X, pd.DataFrame):
        if X.shape[1] == 0:
            raise ValueError(f"0 feature(s) (shape={X.shape}) while a minimum of 1 is required.")
        if X.shape[0] == 0:
            raise ValueError(f"0 sample(s) (shape={X.shape}) while a minimum of 1 is required.")
        if not X.columns.is_unique:
            dup = sorted(map(str, X.columns[X.columns.duplicated()].unique()))
            raise ValueError(f"X has duplicate column names {dup}; column names must be unique.")
        check_feature_names(X)  # raises TypeError for a mix of str and non-str names
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
                     f"(X has n_features = {X.shape[1]}); pass a DataFrame to use column "
                     "names.")


def column_values(X, label):
    return X[label] if isinstance(X, pd.DataFrame) else X[:, label]


def column_name(label):
    return label if isinstance(label, str) else str(label)


def missing_groups_error(label):
    return ValueError(f"Input X column {label!r} (the grouping column) contains NaN, infinity "
                      "or missing labels; every row needs a group.")


def _several_types(labels):
    """One C-level scan: could ``labels`` (object dtype) hold values of several types?"""
    return labels.dtype == object and ptypes.infer_dtype(labels, skipna=True) in (
        "mixed", "mixed-integer")


def _label_kind(kind):
    """The kind of a label type: text, bytes, a boolean or a number (None: another type)."""
    for name, types in (("boolean", (bool, np.bool_)), ("text", str), ("bytes", bytes),
                        ("number", Number)):
        if issubclass(kind, types):
            return name
    return None


def check_label_types(labels, column):
    """Refuse group labels of several kinds — text, bytes, booleans, numbers — in one column:
    ``"1"`` and ``1`` or ``"1"`` and ``b"1"`` are different labels, so one group would
    silently become two, and ``True`` hashes as ``1``, so it would silently join group 1.
    ``labels``: the column's values (an object column's values, as the distinct labels
    may already have merged True into 1) or its distinct labels. One C-level type scan; the
    type of every label is taken only when it finds several (then, as a rule, an error)."""
    labels = labels if isinstance(labels, (pd.Index, np.ndarray)) else np.asarray(
        labels, dtype=object)
    if not _several_types(labels):
        return
    values = np.asarray(labels, dtype=object)
    codes, types = pd.factorize(np.frompyfunc(type, 1, 1)(values))
    first = np.unique(codes, return_index=True)[1]
    kinds = {}
    for kind, row in zip(types, first):
        if _label_kind(kind) is not None:
            kinds.setdefault(_label_kind(kind), []).append((kind.__name__, values[row]))
    if len(kinds) < 2:
        return
    order = ["text", "bytes", "boolean", "number"]
    (a, b), names = [kinds[k][0][1] for k in order if k in kinds][:2], \
        sorted({name for found in kinds.values() for name, _ in found})
    a, b = (getattr(v, "item", lambda v=v: v)() for v in (a, b))  # numpy scalars as plain
    raise ValueError(
        f"the grouping column {column!r} mixes label types ({', '.join(names)}), e.g. "
        f"{a!r} and {b!r}: labels of different types are different groups, except that "
        "True joins 1 (and False 0), so a group could silently count as two or two as one. "
        f"Give the column one type, e.g. X[{column!r}].astype(str).")


def _object_values_or(values, levels):
    """What `check_label_types` scans: an object column's values when its distinct
    labels are not all text (factorizing merges True into 1, so they may hide it), else
    the distinct labels."""
    if getattr(values, "dtype", None) == object and \
            ptypes.infer_dtype(levels, skipna=True) not in ("string", "bytes"):
        return np.asarray(values)
    return levels


def _check_category_types(categories, cat_codes, column):
    """`check_label_types` over the categories in use (a categorical may declare
    categories its rows never take)."""
    if _several_types(categories):
        used = np.bincount(cat_codes, minlength=len(categories)) > 0
        check_label_types(categories[used], column)


def interaction(columns, labels):
    """The interaction of grouping columns as a categorical with lme4's labels ``"v1:v2"``
    (one category per combination present, in the order of the columns' sorted values),
    built from the columns' codes. ``columns``: the columns' values; ``labels``: their
    names (for errors)."""
    codes, levels = interaction_levels(columns, labels)
    return pd.Categorical.from_codes(codes, [":".join(level_name(v) for v in level)
                                             for level in levels])


def level_name(value):
    """A level's name in an interaction's label: a whole float as R prints it (3.0 -> "3";
    below 1e15), so that the same groups stored as int or float (a CSV read back, a predict
    frame, a chunk) get the same label."""
    if (isinstance(value, (float, np.floating)) and np.isfinite(value)
            and value.is_integer() and abs(value) < 1e15):
        return str(int(value))
    return str(value)


def interaction_levels(columns, labels):
    """The rows' codes of the interaction of grouping columns and its levels as tuples of
    the columns' values (one per combination present, in the order of the columns' sorted
    values; `interaction` names them). A chunked fit keeps the tuples: they sort as
    the whole data's combinations do, their names need not."""
    codes, uniques = [], []
    for values, label in zip(columns, labels):
        try:
            c, u = pd.factorize(values, sort=True)
        except TypeError:  # labels of mixed, unorderable types: order of appearance
            c, u = pd.factorize(values, sort=False)
        if c.size and c.min() < 0:
            raise missing_groups_error(label)
        check_label_types(_object_values_or(values, u), label)
        codes.append(c)
        uniques.append(u)
    combined = np.zeros(len(codes[0]), dtype=np.int64)
    for c, u in zip(codes, uniques):
        combined = combined * len(u) + c
    present, inverse = np.unique(combined, return_inverse=True)
    parts = []
    for u in reversed(uniques):
        parts.append(u[present % len(u)])
        present = present // len(u)
    return inverse.reshape(-1), list(zip(*reversed(parts)))


def _unhashable_groups_error(label, exc):
    return TypeError(f"group column {label!r} holds a value that cannot be a group label "
                     f"({exc}): the argument must be a string, a number or another hashable "
                     "value.")


def _check_float_labels(arr, label):
    # factorize gives NaN the code -1 but keeps ±inf as a label: both are data errors here.
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise missing_groups_error(label)


def encode_groups(values, label):
    """Integer codes in ``[0, G)`` and the sorted group labels.

    A categorical's codes and categories are used as they are: unused categories are
    dropped after the row pass, which counts the rows per group anyway. Missing labels
    (NaN, None, a categorical's missing code) and infinite float labels raise ValueError;
    unhashable labels raise TypeError.
    """
    if isinstance(values, pd.Series) and isinstance(values.dtype, pd.CategoricalDtype):
        cat_codes = values.cat.codes.to_numpy()
        if cat_codes.size and cat_codes.min() < 0:
            raise missing_groups_error(label)
        _check_category_types(values.cat.categories, cat_codes, label)
        return cat_codes.astype(np.int32, copy=False), pd.Index(values.cat.categories)
    values = values.to_numpy() if isinstance(values, pd.Series) else np.asarray(values)
    _check_float_labels(values, label)
    try:
        try:
            codes, levels = pd.factorize(values, sort=True)
        except TypeError:  # labels of mixed, unorderable types: keep order of appearance
            codes, levels = pd.factorize(values, sort=False)
    except TypeError as exc:
        raise _unhashable_groups_error(label, exc) from None
    if codes.size and codes.min() < 0:
        raise missing_groups_error(label)
    check_label_types(_object_values_or(values, levels), label)
    return codes.astype(np.int32, copy=False), pd.Index(levels)


def lookup_groups(values, levels, label):
    """Codes of ``values`` among fitted ``levels``; -1 for groups not seen in fit.

    Missing, infinite, unhashable or mixed-type labels raise as in `encode_groups`.
    When most rows are unseen and the labels are of another type than the fitted ones (the
    strings "1", "2" for the integers 1, 2), a GroupLabelWarning says so.
    """
    if isinstance(values, pd.Series) and isinstance(values.dtype, pd.CategoricalDtype):
        cat_codes = values.cat.codes.to_numpy()
        if cat_codes.size and cat_codes.min() < 0:
            raise missing_groups_error(label)
        _check_category_types(values.cat.categories, cat_codes, label)
        codes = levels.get_indexer(values.cat.categories)[cat_codes]
        _warn_other_label_type(codes, values.cat.categories, values.to_numpy(), levels,
                               label)
        return codes
    values = values.to_numpy() if isinstance(values, pd.Series) else np.asarray(values)
    _check_float_labels(values, label)
    if values.dtype.kind not in "biuf" and pd.isna(values).any():
        raise missing_groups_error(label)
    check_label_types(values, label)
    try:
        codes = levels.get_indexer(values)
    except TypeError as exc:
        raise _unhashable_groups_error(label, exc) from None
    _warn_other_label_type(codes, values, values, levels, label)
    return codes


def _warn_other_label_type(codes, labels, rows, levels, label):
    """Warn when most rows fall in unseen groups and the labels' type (``labels``: the
    values, or a categorical's categories) differs from the fitted levels': a type
    mismatch, not new groups, is then the likely cause. ``rows``: the rows' labels."""
    unseen = codes < 0
    if not codes.size or np.count_nonzero(unseen) * 2 <= codes.size:
        return
    seen_type, fit_type = ptypes.infer_dtype(labels, skipna=True), levels.inferred_type
    if seen_type == fit_type:
        return
    example, fitted = (getattr(v, "item", lambda v=v: v)()  # numpy scalars as plain values
                       for v in (rows[np.flatnonzero(unseen)[0]], levels[0]))
    warnings.warn(
        f"{np.mean(unseen):.0%} of the rows have a {label!r} label not seen in fit, and the "
        f"labels' type differs from fit's: {labels.dtype} ({seen_type}) here, "
        f"{levels.dtype} ({fit_type}) in fit (e.g. {example!r} here, {fitted!r} in "
        "fit). Those rows get no random effects (population level). If they are the same "
        f"groups, convert the column to fit's type (e.g. X[{label!r}].astype("
        f"{str(levels.dtype)!r})).", GroupLabelWarning, stacklevel=5)


def _not_numeric_error(label, dtype):
    return ValueError(
        f"column {label!r} is not numeric (dtype {dtype}); encode it first, e.g. with "
        "OneHotEncoder inside a ColumnTransformer, or name it as the grouping column."
    )


def fixed_columns(X, labels):
    """The named columns as 1-D numeric arrays, without copying numeric numpy columns.

    Numeric numpy dtypes (bool, int, float) are handed over as they are (the row pass reads
    any of them); nullable and object columns are converted to float64 (missing → NaN).
    Finiteness is not checked here: see `check_finite_columns`.
    """
    return [_numeric_values(column_values(X, label), label) for label in labels]


def _numeric_values(values, label):
    if isinstance(values, pd.Series):
        dtype = values.dtype
        if isinstance(dtype, np.dtype) and dtype.kind in "biuf":
            return values.to_numpy()
        if getattr(dtype, "kind", None) == "c":
            raise ValueError(f"column {label!r} holds complex numbers (dtype {dtype}), which "
                             "are not supported.")
        if ptypes.is_numeric_dtype(dtype) or ptypes.is_bool_dtype(dtype):
            return values.to_numpy(dtype=np.float64, na_value=np.nan)
        if dtype == object:  # numbers stored as objects are numbers, as in check_array
            try:
                return values.to_numpy(dtype=np.float64, na_value=np.nan)
            except TypeError as exc:  # e.g. a dict in the column (sklearn's TypeError)
                raise TypeError(f"column {label!r}: {exc}") from None
            except ValueError:
                raise _not_numeric_error(label, dtype) from None
        raise _not_numeric_error(label, dtype)
    if values.dtype.kind in "biuf":
        return values
    if values.dtype.kind in "USV":
        raise _not_numeric_error(label, values.dtype)
    try:
        return np.asarray(values, dtype=np.float64)
    except TypeError as exc:
        raise TypeError(f"column {label!r}: {exc}") from None
    except ValueError:
        raise _not_numeric_error(label, values.dtype) from None


def check_finite_columns(columns, labels, y=None):
    """Raise naming the first column (or y) holding NaN or infinity; integers are skipped."""
    for col, label in zip(columns, labels):
        if col.dtype.kind == "f" and not np.isfinite(col).all():
            raise ValueError(f"Input X column {label!r} contains NaN or infinity.")
    if y is not None and not np.isfinite(y).all():
        raise ValueError("Input y contains NaN or infinity.")


def fixed_block(X, labels):
    """Fortran-ordered float64 copy of the named columns, each checked to be numeric and finite."""
    columns = fixed_columns(X, labels)
    check_finite_columns(columns, labels)
    out = np.empty((n_rows(X), len(labels)), dtype=np.float64, order="F")
    for j, col in enumerate(columns):
        out[:, j] = col
    return out


def check_target(y, n, estimator_name):
    """A float64 vector of length n (sklearn's messages and conversions).

    Its finiteness is checked after the row pass (`check_finite_columns`).
    """
    if y is None:
        raise ValueError(f"This {estimator_name} estimator requires y to be passed, "
                         "but the target y is None.")
    y = check_array(y, ensure_2d=False, dtype=np.float64, ensure_all_finite=False,
                    ensure_min_samples=0)
    y = column_or_1d(y, warn=True)
    if y.shape[0] != n:
        raise ValueError(f"y has {y.shape[0]} rows but X has {n}: Found input variables with "
                         "inconsistent numbers of samples.")
    return y


@dataclass
class GroupedDesign:
    """The arrays of one grouped fit.

    Attributes
    ----------
    columns : list of ndarray (n,) — fixed-effect columns without intercept (the frame's
        own arrays for numpy numeric dtypes, converted copies otherwise)
    fixed_labels : list — their labels in X;  fixed_names : list of str
    slope_pos : ndarray — positions of the random slopes within the fixed columns
    slope_names : list of str
    codes : ndarray (n,) int32;  levels : pandas.Index;  group_label, group_name
    group_position : int;  fixed_positions : list of int — where those columns are in X, so
        that predict can find them in an array when fit saw a DataFrame, and vice versa
    """

    columns: list
    fixed_labels: list
    fixed_names: list
    slope_pos: np.ndarray
    slope_names: list
    codes: np.ndarray
    levels: pd.Index
    group_label: object
    group_name: str
    group_position: int
    fixed_positions: list


def make_design(X, *, groups, random_slopes, exclude=(), estimator_name="estimator",
                part=False):
    """Resolve the grouping and slope columns, encode the groups, collect the fixed columns.

    ``exclude`` names further columns (trials, offset) that are neither fixed effects nor
    groups. Random-slope columns stay fixed effects too, as in ``y ~ x + (1 + x | g)``.
    ``part``: X is a chunk or partition of the data, which may hold a single row (the
    whole data's counts are checked after the pass).
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
    labels = list(X.columns) if isinstance(X, pd.DataFrame) else list(range(X.shape[1]))
    fixed_labels = [c for c in labels if c not in excluded]
    position = {c: i for i, c in enumerate(labels)}
    columns = fixed_columns(X, fixed_labels)
    if n < 2 and not part:
        raise ValueError(f"{estimator_name} needs at least 2 groups; got n_samples = {n}.")
    codes, levels = encode_groups(column_values(X, group_label), group_label)
    slope_pos = np.array([fixed_labels.index(s) for s in slope_labels], dtype=np.int64)
    return GroupedDesign(
        columns=columns, fixed_labels=fixed_labels,
        fixed_names=[column_name(c) for c in fixed_labels],
        slope_pos=slope_pos, slope_names=[column_name(c) for c in slope_labels],
        codes=codes, levels=levels, group_label=group_label,
        group_name=column_name(group_label), group_position=position[group_label],
        fixed_positions=[position[c] for c in fixed_labels],
    )


def drop_unused_levels(design, group_rows, estimator_name):
    """Drop the levels with no rows (unused categories of a categorical group column) from
    ``design.levels``; returns the mask of kept levels. Fewer than 2 groups left is an
    error."""
    used = np.asarray(group_rows) > 0
    if not used.all():
        design.levels = design.levels[used]
    if len(design.levels) < 2:
        raise ValueError(f"{estimator_name} needs at least 2 groups in column "
                         f"{design.group_label!r}; found {len(design.levels)}.")
    return used


def check_weights(sample_weight, n):
    """Frequency weights (non-negative, finite) or an empty array for unit weights."""
    if sample_weight is None:
        return np.empty(0)
    w = check_sample_weight(sample_weight, n, ensure_non_negative=True)
    return np.ascontiguousarray(w)


#: rows hashed by `data_key` (a strided sample)
_KEY_ROWS = 4096


def data_key(y, n_obs):
    """A fingerprint of the response a model was fitted to (model comparisons refuse models
    fitted to different data, as lme4's ``anova`` does): the number of observations (the
    sum of the weights), the number of rows and sum of y, and a hash of a strided sample of
    y. None for a response not in memory (chunked sources)."""
    import hashlib
    arr = np.asarray(y)
    if arr.size == 0:
        return None
    flat = arr.reshape(arr.shape[0], -1)
    sample = flat[::max(1, flat.shape[0] // _KEY_ROWS)]
    if flat.dtype.kind in "biuf":
        total = float(flat.sum(dtype=np.float64))  # no copy (y is finite: fit checked it)
        data = np.ascontiguousarray(sample, dtype=np.float64).tobytes()
    else:  # labels (a classifier's strings): hashed by value
        total = 0.0
        data = pd.util.hash_array(np.asarray(sample, dtype=object).ravel()).tobytes()
    digest = hashlib.blake2b(data, digest_size=16).hexdigest()
    return (float(n_obs), int(flat.shape[0]), total, digest)
