"""The grouping factors of MixedLM and MixedGLM as a `ModelSpec`
(one factor or several, nested or crossed): resolving them in X, dropping unused levels, and
the rows' random effects in predict.

With several factors ``groups`` lists the factors: a column (label or position), or a tuple of
columns for their interaction (lme4's ``a:b``; ``(1 | a/b)`` is ``["a", ("b", "a")]``, named
``b:a`` as lme4 names it). ``random_slopes`` is then a dict ``{factor name: [columns]}`` (a factor
not in it has a random intercept only) and ``covariance`` a string for all factors or a dict by
factor name. Every column not used by a factor is a fixed effect; slope columns stay fixed effects
too.
"""

import numpy as np
import pandas as pd

from .._model.spec import Factor, ModelSpec
from . import _design

__all__ = ["is_multi", "factor_entries", "make_spec", "one_factor_spec", "drop_unused_levels",
           "random_effects_of_rows"]


def is_multi(groups):
    """Several factors (a list/tuple of entries), or one interaction given as a list."""
    return isinstance(groups, (list, tuple)) and not (len(groups) == 1 and
                                                      not isinstance(groups[0], tuple))


def _entry_labels(X, entry):
    keys = entry if isinstance(entry, tuple) else (entry,)
    if not keys:
        raise ValueError("groups contains an empty tuple: an interaction needs columns.")
    return tuple(_design.resolve_column(X, k, "groups") for k in keys)


def _factor_values(X, labels):
    """A factor's values: its column, or the interaction of its columns."""
    if len(labels) == 1:
        return _design.column_values(X, labels[0])
    return pd.Series(_design.interaction([_design.column_values(X, c) for c in labels],
                                         labels))


def _encode_factor(X, labels, name, level_tuples):
    """A factor's codes and levels; ``level_tuples``: an interaction's levels as a list
    of tuples of its columns' values (`interaction_levels`)."""
    if level_tuples and len(labels) > 1:
        codes, levels = _design.interaction_levels(
            [_design.column_values(X, c) for c in labels], labels)
        return codes, levels
    return _design.encode_groups(_factor_values(X, labels), name)


def factor_entries(X, groups, random_slopes):
    """The factors of ``groups`` (a list) resolved in X: per factor its columns (a tuple)
    and name (``b:a`` for an interaction), and ``random_slopes`` (a dict by factor name or
    column, or empty) as ``{name: [columns]}``."""
    entries = [_entry_labels(X, e) for e in groups]
    names = [":".join(_design.column_name(c) for c in labs) for labs in entries]
    if len(set(names)) != len(names):
        raise ValueError(f"groups lists a factor twice: {names}.")
    if isinstance(random_slopes, dict):
        unknown = [k for k in random_slopes if k not in names and k not in groups]
        if unknown:
            raise ValueError(f"random_slopes names {unknown}, not factors in groups "
                             f"({names}).")
        slopes_by = {}
        for k, v in random_slopes.items():
            key = names[groups.index(k)] if k in groups else k
            slopes_by[key] = [v] if isinstance(v, (str, int, np.integer)) else list(v)
    elif random_slopes in ((), [], None):
        slopes_by = {}
    else:
        raise ValueError("with several grouping factors, random_slopes must be a dict "
                         "{factor name: [columns]} (e.g. {'g': ['x']}).")
    return entries, names, slopes_by


def make_spec(X, *, groups, random_slopes, covariance, estimator_name, exclude=(),
              level_tuples=False):
    """Resolve the factors, their slopes and the fixed columns (all but the factors' and
    ``exclude``'s: trials, offset); encode the factors. ``level_tuples``: interactions'
    levels as tuples of values, not names (a chunk of a chunked fit)."""
    if len(groups) == 0:
        raise ValueError(f"{estimator_name} needs at least one grouping factor in groups.")
    entries, names, slopes_by = factor_entries(X, groups, random_slopes)
    if isinstance(covariance, dict):
        unknown = [k for k in covariance if k not in names]
        if unknown:
            raise ValueError(f"covariance names {unknown}, not factors in groups ({names}).")
    cov_of = {nm: (covariance.get(nm, "unstructured") if isinstance(covariance, dict)
                   else covariance) for nm in names}
    grouping = {c for labs in entries for c in labs}
    for c in exclude:
        if c in grouping:
            raise ValueError(f"the column {c!r} is given as trials/offset and as a grouping "
                             "factor: a column has one role.")
    labels = list(X.columns) if isinstance(X, pd.DataFrame) else list(range(X.shape[1]))
    position = {c: i for i, c in enumerate(labels)}
    fixed_labels = [c for c in labels if c not in grouping and c not in set(exclude)]
    columns = _design.fixed_columns(X, fixed_labels)
    factors = []
    for labs, nm in zip(entries, names):
        slope_labels = [_design.resolve_column(X, s, "random_slopes")
                        for s in slopes_by.get(nm, [])]
        for s in slope_labels:
            if s in grouping:
                raise ValueError(f"the grouping column {s!r} cannot also be a random slope.")
            if s in exclude:
                raise ValueError(f"the column {s!r} is given as trials/offset and as a "
                                 f"random slope of {nm!r}: a column has one role.")
        if len(set(slope_labels)) != len(slope_labels):
            raise ValueError(f"random_slopes of {nm!r} lists a column twice.")
        codes, levels = _encode_factor(X, labs, nm, level_tuples)
        factors.append(Factor(
            name=nm, labels=labs, positions=tuple(position[c] for c in labs),
            codes=np.asarray(codes, dtype=np.int64), levels=levels,
            slope_pos=np.array([fixed_labels.index(s) for s in slope_labels], dtype=np.int64),
            slope_names=[_design.column_name(s) for s in slope_labels], covariance=cov_of[nm]))
    return ModelSpec(fixed_labels=fixed_labels,
                     fixed_names=[_design.column_name(c) for c in fixed_labels],
                     fixed_positions=[position[c] for c in fixed_labels], columns=columns,
                     factors=factors)


def one_factor_spec(design, covariance, codes=True):
    """The ModelSpec of a one-factor `GroupedDesign`
    (``codes=False``: the rows' codes are not kept, e.g. after a row pass)."""
    factor = Factor(name=design.group_name, labels=(design.group_label,),
                    positions=(design.group_position,),
                    codes=np.asarray(design.codes) if codes else None, levels=design.levels,
                    slope_pos=np.asarray(design.slope_pos, dtype=np.int64),
                    slope_names=list(design.slope_names), covariance=covariance)
    return ModelSpec(fixed_labels=list(design.fixed_labels),
                     fixed_names=list(design.fixed_names),
                     fixed_positions=list(design.fixed_positions), columns=design.columns,
                     factors=[factor])


def drop_unused_levels(factor, counts, estimator_name):
    """Drop the levels without rows of positive weight (``counts``: rows or weight per
    level) from the factor, renumbering its codes; returns the mask of kept levels. Fewer
    than 2 levels left is an error naming the column."""
    used = np.asarray(counts) > 0
    if not used.all():
        factor.levels = factor.levels[used]
        if factor.codes is not None:  # rows of a dropped level (weight 0) go to level 0
            factor.codes = np.where(used[factor.codes], (np.cumsum(used) - 1)[factor.codes],
                                    0)
    if len(factor.levels) < 2:
        column = factor.labels[0] if len(factor.labels) == 1 else factor.name
        raise ValueError(f"{estimator_name} needs at least 2 groups in column {column!r}; "
                         f"found {len(factor.levels)}.")
    return used


def factor_labels(f, X_table, fitted_on_frame):
    """The columns of X holding factor ``f``: by the labels seen in fit when fit and X are
    both DataFrames, else by position."""
    if isinstance(X_table, pd.DataFrame) and fitted_on_frame:
        return f.labels
    if isinstance(X_table, pd.DataFrame):
        return tuple(X_table.columns[p] for p in f.positions)
    return f.positions


factor_values = _factor_values


def random_effects_of_rows(design, X_table, fitted_on_frame, modes, Xf, add=True):
    """Σ over the factors of the rows' random effects (``modes``: one (n_levels, q) array
    per factor; 0 for levels not seen in fit). Every factor's column is checked (a row
    without a group is invalid input) also when ``add`` is False (then 0)."""
    total = np.zeros(_design.n_rows(X_table))
    for f, m in zip(design.factors, modes):
        labels = factor_labels(f, X_table, fitted_on_frame)
        codes = _design.lookup_groups(_factor_values(X_table, labels), f.levels,
                                      labels[0] if len(labels) == 1 else f.name)
        if not add:
            continue
        seen = codes >= 0
        b = m[np.where(seen, codes, 0)]
        b[~seen] = 0.0
        total += b[:, 0]
        for a, pos in enumerate(f.slope_pos, start=1):
            total += b[:, a] * Xf[:, pos]
    return total
