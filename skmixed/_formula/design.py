"""The fixed-effect design matrix of a parsed formula, computed with NumPy and pandas.

Each factor is evaluated once on the DataFrame's columns: arithmetic and the listed
transforms element-wise (a NaN or infinity that its finite inputs do not explain is an
error at the operator or call that made it); ``scale``/``center`` over the whole column
(R's ``scale``: standard deviation with n − 1); ``poly(x, d)`` as R's orthogonal
polynomials (QR of the centred powers, columns of unit norm; ``raw = TRUE``: the powers).
A categorical factor (a string or categorical column, or ``C(...)``) has its
categories' levels (a categorical's own order, else sorted values) and R's treatment
coding with the first level (or ``Treatment(ref)``) as reference.

Which factors of a term are coded by contrasts (reduced: ``f[T.b]``) and which by an
indicator per level (full: ``f[a]``) follows R's ``model.matrix`` as patsy and formulaic
apply it: a term spans every product of its numeric factors with a subset of its
categorical ones (each reduced); what earlier terms (and the intercept) span is removed,
and a subterm that differs from another only by one reduced factor absorbs it, that factor
becoming full. ``y ~ f`` gives ``f[T.b], f[T.c]``, ``y ~ 0 + f`` gives ``f[a], f[b],
f[c]``, ``y ~ x + f:x`` gives ``x, f[T.b]:x, f[T.c]:x`` and ``y ~ f:x`` gives
``f[a]:x, …``. Column names are formulaic's: ``C(f)[T.b]``, ``poly(x, 2)[1]``,
``I(x ** 2)``, ``log(z):x``.
"""

import itertools
import operator

import numpy as np
import pandas as pd
from pandas.api import types as ptypes

from .grammar import BinOp, FormulaError, Name, Num, Unary, chain, label
from .terms import ELEMENTWISE

__all__ = ["column", "numeric", "fixed_design"]

_OPS = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv,
        "**": np.power}


def column(formula, node, data):
    """The data's column a `Name` names."""
    if node.name not in data.columns:
        hint = (" ('.' is part of a name, as in R; attribute access is not supported)"
                if "." in node.name else "")
        raise FormulaError(formula, node.pos, f"column {node.name!r} is not in the data "
                           f"(its columns: {list(data.columns)}){hint}")
    return data[node.name]


def _defined(formula, node, out, inputs, data):
    """Refuse NaN/inf in ``out`` on rows where every input is finite (log of a negative,
    a division by 0)."""
    bad = ~np.isfinite(out)
    for x in inputs:
        bad = bad & np.isfinite(x)
    if np.any(bad):
        rows = np.flatnonzero(np.broadcast_to(bad, (len(data),)))
        raise FormulaError(formula, node.pos, f"{label(node)} is NaN or infinite on "
                           f"{rows.size} row(s) whose inputs are finite (the first: index "
                           f"{data.index[rows[0]]!r}): e.g. log of a value <= 0 or a division "
                           "by 0")
    return out


def numeric(formula, node, data):
    """An arithmetic tree's values: a float array of one per row, or a scalar."""
    if isinstance(node, Num):
        return float(node.value)
    if isinstance(node, Name):
        values = column(formula, node, data)
        if not ptypes.is_numeric_dtype(values.dtype) or \
                isinstance(values.dtype, pd.CategoricalDtype):
            raise FormulaError(formula, node.pos, f"column {node.name!r} is not numeric "
                               f"(dtype {values.dtype}): arithmetic and transforms need "
                               f"numbers ({node.name} alone or C({node.name}) is a "
                               "categorical factor)")
        return values.to_numpy(dtype=float, na_value=np.nan)
    if isinstance(node, Unary):
        return -numeric(formula, node.operand, data)
    with np.errstate(all="ignore"):
        if isinstance(node, BinOp):
            first, links = chain(node, _OPS)
            out = numeric(formula, first, data)
            for link in links:
                b = numeric(formula, link.right, data)
                out = _defined(formula, link, _OPS[link.op](out, b), (out, b), data)
            return out
        x = numeric(formula, node.args[0], data)
        if node.func == "I":
            return x
        if node.func in ELEMENTWISE:
            return _defined(formula, node, ELEMENTWISE[node.func](x), (x,), data)
        x = np.broadcast_to(x, (len(data),))
        out = x - x.mean()
        if node.func == "scale":
            out = out / x.std(ddof=1)
        return _defined(formula, node, out, (x,), data)


def _poly(formula, f, data):
    x = np.broadcast_to(numeric(formula, f.expr, data), (len(data),))
    if f.raw:
        return [x ** d for d in range(1, f.degree + 1)]
    if not np.all(np.isfinite(x)):
        raise FormulaError(formula, f.pos, f"{f.label}: the covariate has NaN or infinite "
                           "values; orthogonal polynomials need every row")
    distinct = np.unique(x).size
    if f.degree >= distinct:
        raise FormulaError(formula, f.pos, f"{f.label}: the degree must be less than the "
                           f"number of distinct values ({distinct})")
    q, r = np.linalg.qr(np.vander(x - x.mean(), f.degree + 1, increasing=True))
    z = q * np.diag(r)  # each power's part orthogonal to the lower ones, R's sign
    z /= np.sqrt(np.sum(z ** 2, axis=0))
    return list(z[:, 1:].T)


def _categorical(formula, f, data):
    """(levels, codes, reference position) of a categorical factor."""
    node = f.expr
    if isinstance(node, Name):
        values = column(formula, node, data)
    else:
        values = np.broadcast_to(numeric(formula, node, data), (len(data),))
    if isinstance(getattr(values, "dtype", None), pd.CategoricalDtype):
        cat = values.array
    else:
        try:
            cat = pd.Categorical(values)
        except TypeError:
            raise FormulaError(formula, f.pos, f"{f.label} mixes values of types that cannot "
                               "be ordered (e.g. 1 and '1'); make them one type") from None
    levels, codes = list(cat.categories), np.asarray(cat.codes)
    missing = np.flatnonzero(codes < 0)
    if missing.size:
        raise FormulaError(formula, f.pos, f"{f.label} has {missing.size} missing value(s) "
                           f"(the first at index {data.index[missing[0]]!r}); a categorical "
                           "factor needs a level on every row")
    ref = 0
    if f.reference:
        value, pos = f.reference
        matches = [k for k, level in enumerate(levels) if level == value]
        if not matches:
            raise FormulaError(formula, pos, f"the reference level {value!r} is not a level "
                               f"of {f.label} (its levels: {levels})")
        ref = matches[0]
    return levels, codes, ref


def _coded(formula, f, data):
    """A factor's columns: ``("numeric", [(suffix, values)])`` or ``("categorical",
    (levels, codes, reference))``."""
    if f.kind == "poly":
        return "numeric", [(f"[{d}]", v) for d, v in enumerate(_poly(formula, f, data), 1)]
    categorical = f.kind == "categorical"
    if f.kind == "column":
        dtype = column(formula, f.expr, data).dtype
        categorical = isinstance(dtype, pd.CategoricalDtype) or \
            not ptypes.is_numeric_dtype(dtype)
    if categorical:
        return "categorical", _categorical(formula, f, data)
    values = np.broadcast_to(numeric(formula, f.expr, data), (len(data),))
    return "numeric", [("", values)]


def _absorb(subterms):
    """The fewest subterms spanning what ``subterms`` span, in their order:
    ``(…):f- + (…)`` becomes ``(…):f+`` (f reduced → full) until nothing merges."""
    kept = []
    for sub in sorted(subterms, key=len):
        for have in kept:
            extra = set(sub) - set(have)
            if len(sub) == len(have) + 1 and len(extra) == 1 and next(iter(extra))[1]:
                gone = next(iter(extra))
                merged = tuple((lab, False) if (lab, red) == gone else (lab, red)
                               for lab, red in sub)
                rest = [k for k in kept if k is not have]
                if set(merged) not in [set(k) for k in rest]:
                    rest.append(merged)
                kept = _absorb(rest)
                break
        else:
            kept.append(sub)
    return kept


def _columns(sub, coded):
    """Names and values of one subterm's columns, its first factor varying fastest."""
    cols = [("", None)]
    for lab, reduced in sub:
        kind, values = coded[lab]
        if kind == "numeric":
            parts = [(lab + suffix, v) for suffix, v in values]
        else:
            levels, codes, ref = values
            parts = [(f"{lab}[T.{lev}]" if reduced else f"{lab}[{lev}]",
                      (codes == k).astype(float))
                     for k, lev in enumerate(levels) if not (reduced and k == ref)]
        cols = [(f"{n1}:{n2}" if n1 else n2, v2 if v1 is None else v1 * v2)
                for n2, v2 in parts for n1, v1 in cols]
    return cols


def fixed_design(formula, terms, intercept, data):
    """The design's columns (without the intercept) as a DataFrame on ``data``'s index."""
    coded, spanned, names, columns = {}, {frozenset()} if intercept else set(), [], []
    for term in terms:
        options = []
        for f in term:
            if f.label not in coded:
                coded[f.label] = _coded(formula, f, data)
            if coded[f.label][0] == "categorical":
                options.append(((f.label, True), None))
            else:
                options.append(((f.label, False),))
        span = list(dict.fromkeys(tuple(x for x in combo if x is not None)
                                  for combo in itertools.product(*options)))
        new = [s for s in span if frozenset(s) not in spanned]
        spanned.update(frozenset(s) for s in span)
        for sub in _absorb(new):
            for name, values in _columns(sub, coded):
                names.append(name or "Intercept")
                columns.append(np.ones(len(data)) if values is None else values)
    matrix = np.column_stack(columns) if columns else np.empty((len(data), 0))
    return pd.DataFrame(matrix, columns=names, index=data.index)
