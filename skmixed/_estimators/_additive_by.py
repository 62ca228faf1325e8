"""mgcv's ``by =`` variables of AdditiveMixed's smooths, on the user's columns: whether a
``by`` column is a factor (one copy of the smooth per level, each zero off its level) or
numeric (the smooth multiplied by it: a varying coefficient), the copies' terms and row
multipliers for the fit, and the same multipliers at new rows for prediction.

A column is a factor when it holds categories — a pandas categorical, strings, objects or
booleans — and numeric otherwise (integer codes are numbers, as in R: convert them with
``astype("category")`` for one smooth per level)."""

from dataclasses import replace

import numpy as np
import pandas as pd

from .._model.additive_cross import discretize
from . import _design

__all__ = ["is_factor", "expand_by", "multipliers_at"]


def is_factor(values):
    """Whether a ``by`` column's values are categories (module docstring)."""
    dtype = values.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return True
    return not (pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype))


def expand_by(X_table, terms, columns, by_labels, weights, discrete, n_bins):
    """The smooths with their ``by`` variables resolved: per smooth of ``terms`` (one per
    covariate column in ``columns``; ``by_labels`` its ``by`` column or None) one term, or
    one per level of a factor. Returns ``(terms, columns, multipliers, info)``: the
    expanded terms and covariate columns (a factor's copies share the column object), the
    fit's row multipliers (None, ``("num", values)`` — binned as a covariate when
    ``discrete``, as bam's — or ``("fac", codes, level code)``)
    and, for prediction, ``(by label, None)`` (numeric) or ``(by label, level)`` per
    smooth (None without ``by``). A factor level without rows of positive weight is a
    ValueError naming both (one whose rows hold a single value of the covariate is
    refused by `skmixed._model.additive_fit.row_bases`)."""
    out_terms, out_cols, mults, info = [], [], [], []
    for term, col, by in zip(terms, columns, by_labels):
        if by is None:
            out_terms.append(term)
            out_cols.append(col)
            mults.append(None)
            info.append(None)
            continue
        name = _design.column_name(by)
        values = _design.column_values(X_table, by)
        if not isinstance(values, pd.Series):
            values = pd.Series(values)
        if term.bs == "fs":
            codes, levels = _factor_codes(values, by, name, term, weights, "factor")
            out_terms.append(term)
            out_cols.append(col)
            mults.append(("fs", codes, len(levels)))
            info.append((by, ("fs", levels)))
            continue
        if not is_factor(values):
            num = np.asarray(_design.fixed_columns(X_table, [by])[0], dtype=float)
            _design.check_finite_columns([num], [by])
            if discrete:  # bam(discrete = TRUE) bins a by variable as a covariate
                values_, index = discretize(num, n_bins)
                num = values_[index]
            out_terms.append(replace(term, by=name))
            out_cols.append(col)
            mults.append(("num", num))
            info.append((by, None))
            continue
        if isinstance(values.dtype, pd.CategoricalDtype) and values.cat.ordered:
            raise ValueError(
                f"the by factor {name!r} is ordered: mgcv gives an ordered factor no smooth "
                "for its first level, for the difference smooths of y ~ f + s(x) + "
                "s(x, by = f), which need one covariate in two smooths — not supported yet. "
                "Make it unordered (one smooth per level): "
                "Series.cat.as_unordered().")
        codes, levels = _factor_codes(values, by, name, term, weights, "by factor")
        for code, level in enumerate(levels):
            out_terms.append(replace(term, by=name, level=level))
            out_cols.append(col)
            mults.append(("fac", codes, code))
            info.append((by, level))
    return out_terms, out_cols, mults, info


def _factor_codes(values, by, name, term, weights, what):
    """A factor column's codes and levels for the copies of a smooth (``what``: "by factor",
    or "factor": an fs smooth's); a level without rows of positive weight is a
    ValueError."""
    if what == "factor" and not is_factor(values):
        raise ValueError(f"the factor {name!r} of the factor-smooth interaction of "
                         f"{term.label!r} (bs='fs') holds numbers: give it as categories "
                         "(e.g. Series.astype('category')), one curve per level.")
    try:
        codes, levels = _design.encode_groups(values, by)
    except ValueError as exc:  # the grouping column's wording, for a by factor
        raise ValueError(_reworded(str(exc), what)) from None
    used = np.bincount(codes, weights=weights, minlength=len(levels))
    for code, level in enumerate(levels):
        if not used[code] > 0:
            raise ValueError(
                f"the {what} {name!r} of the smooth of {term.label!r} has no rows"
                f"{' of positive weight' if np.any(weights != 1) else ''} at level "
                f"{level!r}: its copy of the smooth would be all zero. Drop the unused "
                "level (e.g. Series.cat.remove_unused_categories()).")
    return codes, levels


def _reworded(message, what):
    """A grouping column's error message, for a factor of smooths (``what``)."""
    return (message.replace("(the grouping column)", f"(a {what})")
            .replace("the grouping column", f"the {what}")
            .replace("every row needs a group", "every row needs a level"))


def multipliers_at(X_table, info, key_of):
    """Per smooth the rows' multiplier of its basis at new rows (None without ``by``):
    the numeric ``by`` column's values, or 1 at the smooth's factor level and 0 elsewhere.
    ``key_of(by label)`` gives the column's key in X_table. A factor value not seen in fit
    is a ValueError."""
    out, factors = [], {}
    for entry in info:
        if entry is None:
            out.append(None)
            continue
        by, level = entry
        key = key_of(by)
        values = _design.column_values(X_table, key)
        if isinstance(level, tuple):  # an fs smooth's factor: the rows' level codes
            try:
                out.append(_design.lookup_groups(values, level[1], key))
            except ValueError as exc:
                raise ValueError(_reworded(str(exc), "factor")) from None
            continue
        if level is None:
            num = np.asarray(_design.fixed_columns(X_table, [key])[0], dtype=float)
            _design.check_finite_columns([num], [key])
            out.append(num)
            continue
        if by not in factors:
            factors[by] = np.asarray(values, dtype=object)
            seen = [e[1] for e in info if e is not None and e[0] == by]
            unseen = pd.unique(factors[by][~pd.Series(factors[by]).isin(seen).to_numpy()])
            if unseen.size:
                raise ValueError(f"the by factor {_design.column_name(by)!r} has level(s) "
                                 f"{list(unseen[:5])} not seen in fit.")
        out.append((factors[by] == level).astype(float))
    return out
