"""lme4/mgcv-style formulas for skmixed's estimators.

``"y ~ x * b + (1 + x | g)"`` is read by this package's own tokenizer and parser — never
evaluated as Python — into its response, its fixed-effect terms, its random-effect terms,
smooths and offset, and computed with NumPy and pandas on the DataFrame's columns:

* the fixed part: columns (`` `my x` `` in backticks for odd names), ``1``/``0``/``-1``
  (intercept), ``a:b``, ``a*b``, ``a/b``, ``(a + b)^2``, ``- a``, categorical columns and
  ``C(f)`` / ``C(f, Treatment("b"))`` (R's treatment contrasts), ``I(expr)`` over
  arithmetic (``+ - * / **``, ``^`` as power, unary minus, numbers), and the transforms
  ``log``, ``log2``, ``log10``, ``log1p``, ``exp``, ``exp2``, ``expm1``, ``sqrt``, ``abs``
  (also as ``np.log`` etc.), ``scale``, ``center`` and ``poly(x, degree)`` (R's orthogonal
  polynomials; ``raw = TRUE`` for powers); columns are named as formulaic names them
  (``C(f)[T.b]``, ``I(x ** 2)``, ``poly(x, 2)[1]``);
* random effects ``(1 | g)``, ``(1 + x | g)``, ``(x | g)`` (the intercept is implied, as in
  lme4), ``(1 + x || g)`` (uncorrelated), ``(1 | a:b)`` (an interaction), ``(1 | a/b)``
  (nested: ``(1 | a) + (1 | b:a)``, named as lme4 names it), ``(1 | `my g`)``;
* ``offset(expr)`` (MixedGLM), e.g. ``offset(log(t))``;
* ``cbind(successes, failures)`` as a binomial response (MixedGLM's trials), each a column
  or an expression of columns (``cbind(k, n - k)``) holding counts; a proportion
  (``k / n ~ …``) is refused with a pointer to ``cbind``;
* smooths (AdditiveMixed): ``s(z)`` (a thin-plate regression spline, mgcv's default),
  ``s(z, k = 20)``, ``s(z, bs = "ps")`` (P-spline), ``s(z, bs = "cr")`` (cubic regression
  spline), ``s(z, bs = "cc")`` (cyclic cubic spline; the ends of its cycle as mgcv's
  ``knots = list(z = c(0, 24))``: ``bam(..., knots={"z": (0, 24)})``), ``s(z, by = v)``
  (mgcv's by variable: numeric, a varying coefficient; a factor, one smooth per level —
  write its main effect too, ``y ~ f + s(z, by = f)``), ``s(x, z)`` (an isotropic
  thin-plate smooth of two or more covariates), ``s(g, bs = "re")`` (a random intercept
  per g) and ``s(g, x, bs = "re")`` (a random slope of x per g, beside x's fixed slope: x
  must be a parametric term too).

Anything else — another function, a string outside ``s(bs = ...)`` and ``C()``'s reference, ``[``,
``$``, a name with a part starting with ``__`` — is a
[`FormulaError`][skmixed.formula.FormulaError] whose message shows the formula with a caret under
the offending token; so is a column that is not in the data. A ``.`` is part of a name, as in R
(``Sepal.Length``), never attribute access. The grammar is in `skmixed._formula.grammar`.

[`lmer`][skmixed.formula.lmer], [`glmer`][skmixed.formula.glmer] and [`bam`][skmixed.formula.bam]
return fitted estimators; [`from_formula`][skmixed.formula.from_formula] returns the configured
estimator with its X and y (for pipelines and cross-validation).
"""

from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
from pandas.api import types as ptypes

from ._estimators._design import interaction
from ._formula import terms as _terms
from ._formula.design import column, fixed_design, numeric
from ._formula.grammar import BinOp, Call, FormulaError, Name, Random, label, parse

__all__ = ["ParsedFormula", "parse_formula", "from_formula", "lmer", "glmer", "bam",
           "FormulaError"]


@dataclass
class ParsedFormula:
    """The parts of a formula: ``response`` (a column or expression, or ``cbind``'s two),
    ``fixed`` (the fixed part's text) and ``terms`` (its terms, tuples of factors, in
    design order; ``intercept``), ``random`` terms, ``smooths``, ``offset`` (its
    expression's text)."""

    formula: str
    response: tuple
    fixed: str
    random: list = field(default_factory=list)
    smooths: list = field(default_factory=list)
    offset: str = None
    terms: list = field(default_factory=list)
    intercept: bool = True
    response_nodes: tuple = field(default=(), repr=False)
    offset_node: object = field(default=None, repr=False)
    response_pos: int = field(default=0, repr=False)  # the response's (or cbind's) token


def parse_formula(formula):
    """Read a formula into its parts ([`ParsedFormula`][skmixed.formula.ParsedFormula]) without
    looking at data."""
    if not isinstance(formula, str):
        raise TypeError(f"a formula is a string; got {type(formula).__name__}")
    lhs, rhs = parse(formula)
    nodes = _terms.response(formula, lhs)
    parsed = ParsedFormula(formula=formula, response=tuple(label(n) if not isinstance(n, Name)
                                                           else n.name for n in nodes),
                           fixed="", response_nodes=tuple(nodes), response_pos=lhs.start)
    fixed = []
    for sign, item in rhs.items:
        special = isinstance(item, Random) or (isinstance(item, Call) and
                                               item.func in ("s", "te", "ti", "offset"))
        if special and sign == "-":
            raise FormulaError(formula, item.pos, "random effects, s() and offset() are added "
                               "with '+', not removed")
        if isinstance(item, Random):
            parsed.random += _terms.random_terms(formula, item)
        elif special and item.func == "s":
            parsed.smooths.append(_terms.smooth(formula, item))
        elif special and item.func in ("te", "ti"):
            parsed.smooths.append(_terms.tensor(formula, item))
        elif special:
            if parsed.offset_node is not None:
                raise FormulaError(formula, item.pos, "only one offset() term is supported")
            parsed.offset_node = _terms.offset(formula, item)
            parsed.offset = label(parsed.offset_node)
        else:
            fixed.append((sign, item))
    parsed.terms, parsed.intercept = _terms.fixed_terms(formula, fixed)
    parsed.fixed = "".join(("" if k == 0 and sign == "+" else
                            sign if k == 0 else f" {sign} ") + formula[item.start:item.end]
                           for k, (sign, item) in enumerate(fixed)) or "1"
    return parsed


# ---------------------------------------------------------------------------- building
def _evaluate(parsed, data, node):
    """An arithmetic expression of columns (``size - incidence``) as a float array."""
    return np.broadcast_to(numeric(parsed.formula, node, data), (len(data),)).astype(float)


def _counts(parsed, data):
    """``cbind(successes, failures)``: two arrays of counts (whole numbers >= 0), at least
    one trial per row; otherwise a FormulaError at the argument (or cbind) at fault."""
    counts = []
    for node, what in zip(parsed.response_nodes, ("successes", "failures")):
        values = _evaluate(parsed, data, node)
        bad = np.flatnonzero(~((values >= 0) & (values == np.round(values))))  # NaN too
        if bad.size:
            raise FormulaError(parsed.formula, node.start, "cbind(successes, failures) takes "
                               f"counts: the {what}, {label(node)}, must be whole numbers "
                               f">= 0 on every row; {bad.size} row(s) are not (the first: "
                               f"index {data.index[bad[0]]!r}, value {values[bad[0]]:g})")
        counts.append(values)
    empty = np.flatnonzero(counts[0] + counts[1] == 0)
    if empty.size:
        raise FormulaError(parsed.formula, parsed.response_pos, "cbind(successes, failures): "
                           f"{empty.size} row(s) have no trials (successes + failures = 0; "
                           f"the first: index {data.index[empty[0]]!r}); drop them")
    return counts


def _check_binomial_labels(parsed, y):
    """A binomial glmer() response without cbind() is two class labels; a proportion is
    refused with the forms that work."""
    values = np.asarray(y)
    if values.dtype.kind != "f":
        return
    fractions = values[np.isfinite(values) & (values != np.round(values))]
    if not fractions.size:
        return
    node = parsed.response_nodes[0]
    if isinstance(node, Call) and node.func == "I":
        node = node.args[0]
    form = "cbind(k, n - k)"
    if isinstance(node, BinOp) and node.op == "/":
        form = f"cbind({label(node.left)}, {label(BinOp('-', node.right, node.left, 0))})"
    raise FormulaError(parsed.formula, parsed.response_pos, f"glmer(): the binomial response "
                       f"{parsed.response[0]} has values that are not class labels (e.g. "
                       f"{fractions[0]:g}). A binomial "
                       "response is two classes (0/1) or counts as cbind(successes, "
                       f"failures); for a proportion write {form}. R's other form, a "
                       "proportion with weights = trials, is not supported: sample_weight "
                       "weights rows, it does not count trials")


def _lookup(parsed, data, name, pos):
    """A column named in the formula at ``pos``; a FormulaError there if it is missing."""
    return column(parsed.formula, Name(name, pos, pos + len(name)), data)


def _group_name(group):
    return ":".join(group)


def _random_spec(parsed, data, fixed):
    """groups / random_slopes / covariance as the estimators take them, and the extra
    grouping columns for X."""
    if not parsed.random:
        raise ValueError(f"{parsed.formula!r} has no random-effect term such as (1 | g).")
    names = [_group_name(t.group) for t in parsed.random]
    if len(set(names)) != len(names):
        raise ValueError(f"{parsed.formula!r} has two random-effect terms for the same "
                         f"grouping factor: {names}")
    for t in parsed.random:
        for name, pos in zip(t.group, t.group_pos):
            _lookup(parsed, data, name, pos)
        for s, pos in zip(t.slopes, t.slope_pos):
            if s not in fixed.columns:
                raise FormulaError(parsed.formula, pos, f"the random slope {s!r} of "
                                   f"({' + '.join(['1'] + t.slopes)} | "
                                   f"{_group_name(t.group)}) must also be a fixed effect (a "
                                   "numeric column of the fixed-effect part) in skmixed; add "
                                   "it to the formula's fixed part")
    # one column per factor; an interaction a:b becomes its own column of lme4's labels
    # ("v_a:v_b"), so a and b stay available as fixed effects (y ~ service + (1|dept:service))
    group_cols = {}
    for t, name in zip(parsed.random, names):
        if len(t.group) == 1:
            group_cols[name] = data[t.group[0]]
        else:
            group_cols[name] = pd.Series(
                interaction([data[c] for c in t.group], list(t.group)), index=data.index,
                name=name)
    if len(parsed.random) == 1:
        t = parsed.random[0]
        return dict(groups=names[0], random_slopes=list(t.slopes),
                    covariance="diagonal" if t.diagonal else "unstructured"), group_cols
    groups = list(names)
    slopes = {n: list(t.slopes) for n, t in zip(names, parsed.random) if t.slopes}
    covariance = {n: ("diagonal" if t.diagonal else "unstructured")
                  for n, t in zip(names, parsed.random)}
    return dict(groups=groups, random_slopes=slopes, covariance=covariance), group_cols


def _is_numeric(values):
    """A numeric column (a random slope's), not a factor (an interaction's)."""
    return ptypes.is_numeric_dtype(values.dtype) and not ptypes.is_bool_dtype(values.dtype)


def _is_interaction(bs):
    """Whether a smooth's ``bs`` is a ti() interaction's."""
    return isinstance(bs, tuple) and bs[0] == "ti"


def _is_factor_smooth(bs):
    """Whether a smooth's ``bs`` is an fs factor-smooth interaction's."""
    return bs == "fs" or isinstance(bs, tuple) and bs[0] == "fs"


def _smooth_columns(parsed, data, X):
    """AdditiveMixed's parameters from the s() terms; their columns are added to X."""
    smooths, k, bs, by_vars, groups, slopes, intercepts = [], {}, {}, {}, [], {}, set()
    parametric = set(X.columns)
    for sm in parsed.smooths:
        values = _lookup(parsed, data, sm.covariate, sm.pos)
        if _is_factor_smooth(sm.bs) and not _is_numeric(values):
            other = _lookup(parsed, data, sm.more[0], sm.pos)
            if _is_numeric(other):  # s(f, x, bs = "fs"): the factor first, as mgcv allows
                sm, values = replace(sm, covariate=sm.more[0], more=(sm.covariate,)), other
        if _is_interaction(sm.bs) and set((sm.covariate,) + sm.more) & parametric:
            raise FormulaError(parsed.formula, sm.pos, "a ti() covariate that is also a "
                               "parametric term is not supported: give the parametric term "
                               "a copy of the column")
        if sm.bs != "re" and sm.covariate in parametric:
            raise FormulaError(parsed.formula, sm.pos, f"{sm.covariate!r} is both a parametric "
                               "term and a smooth's covariate: the smooth holds its linear "
                               "trend (the two are collinear); drop the parametric term")
        if sm.bs == "re":
            factor_by = sm.by and not _is_numeric(_lookup(parsed, data, sm.by, sm.pos))
            for c in [sm.covariate] + ([sm.by] if factor_by else []):
                if c in parametric:
                    raise FormulaError(parsed.formula, sm.pos, f"{c!r} is both a parametric "
                                       "term and a random effect's grouping factor: a column "
                                       "has one role")
            if factor_by:
                # s(g, v, bs = "re") with a factor v: the interaction g:v (mgcv's
                # model matrix of g:v), e.g. a nested (1 | g/v) as s(g) + s(g, v)
                factor = (sm.covariate, sm.by)
                if factor in groups:
                    raise FormulaError(parsed.formula, sm.pos, f"the random effect of "
                                       f"{sm.covariate}:{sm.by} is given twice")
                groups.append(factor)
                continue
            if not sm.by and sm.covariate in intercepts:
                raise FormulaError(parsed.formula, sm.pos, f"s({sm.covariate}, bs = \"re\") "
                                   "is given twice")
            if sm.by and not any(o.bs == "re" and not o.by and o.covariate == sm.covariate
                                 for o in parsed.smooths):
                raise FormulaError(parsed.formula, sm.pos, f"s({sm.covariate}, {sm.by}, bs = "
                                   f"\"re\") needs the random intercept s({sm.covariate}, "
                                   "bs = \"re\") too (AdditiveMixed fits a slope beside "
                                   "the intercept)")
            if not sm.by:
                intercepts.add(sm.covariate)
            if sm.covariate not in groups:
                groups.append(sm.covariate)
            if sm.by:
                if sm.by not in parametric:
                    # AdditiveMixed keeps a random slope's column as a fixed effect too;
                    # mgcv's s(g, v, bs = "re") alone has no fixed slope: not the same model
                    raise FormulaError(parsed.formula, sm.pos, f"s({sm.covariate}, {sm.by}, "
                                       f"bs = \"re\") needs {sm.by!r} as a parametric term "
                                       f"too (y ~ {sm.by} + …): bam() fits a random slope "
                                       "beside its fixed slope (lme4's (1 + v || g)); a random "
                                       "slope without the fixed one is not supported. (A "
                                       f"numeric {sm.by!r} is a slope, as in mgcv; for the "
                                       f"nested factor {sm.covariate}:{sm.by} give {sm.by!r} "
                                       "as categories, R's factor().)")
                slopes.setdefault(sm.covariate, []).append(sm.by)
            continue
        label = (sm.covariate,) + sm.more if sm.more else sm.covariate
        # a covariate in one smooth, apart from ti() interactions (they hold no main effect)
        # (nor fs smooths: no main effect, e.g. s(x) + s(x, f, bs = "fs"))
        interaction = _is_interaction(sm.bs) or _is_factor_smooth(sm.bs)
        used = {c for s in smooths if not (_is_interaction(bs[s]) or _is_factor_smooth(bs[s]))
                for c in (s if isinstance(s, tuple) else (s,))}
        repeated = [] if interaction else [c for c in (sm.covariate,) + sm.more if c in used]
        if label in smooths:
            repeated = [sm.covariate]
        if repeated:
            raise FormulaError(parsed.formula, sm.pos, f"{repeated[0]!r} is the covariate of "
                               "two smooths (e.g. s(x) + s(x, by = f)): not supported yet; "
                               "one smooth per covariate")
        X[sm.covariate] = values.to_numpy(dtype=float)
        for extra in sm.more:
            if _is_factor_smooth(sm.bs):
                X[extra] = _lookup(parsed, data, extra, sm.pos)  # the factor, as it is
                continue
            if extra in parametric:
                raise FormulaError(parsed.formula, sm.pos, f"{extra!r} is both a parametric "
                                   "term and a smooth's covariate: the smooth holds its linear "
                                   "trend (the two are collinear); drop the parametric term")
            X[extra] = _lookup(parsed, data, extra, sm.pos).to_numpy(dtype=float)
        smooths.append(label)
        if sm.k is not None:
            k[label] = sm.k
        bs[label] = sm.bs
        if sm.by_var is not None:
            by_values = _lookup(parsed, data, sm.by_var, sm.pos)
            if sm.by_var == sm.covariate:
                raise FormulaError(parsed.formula, sm.pos, f"s({sm.covariate}, by = "
                                   f"{sm.by_var}): a smooth multiplied by its own covariate is "
                                   "not supported; copy the column under another name")
            if sm.by_var in parametric:
                raise FormulaError(parsed.formula, sm.pos, f"s({sm.covariate}, by = "
                                   f"{sm.by_var}): {sm.by_var!r} is also a parametric term: a "
                                   "numeric by variable's smooth holds its linear effect "
                                   "(drop the parametric term); a factor's main effect is "
                                   "written as the factor, e.g. y ~ f + s(x, by = f)")
            X[sm.by_var] = by_values
            by_vars[label] = sm.by_var
    for g in groups:
        for c in (g if isinstance(g, tuple) else (g,)):
            X[c] = data[c]
    if len(groups) > 1:  # several factors: a list, the slopes by factor name
        base = dict(smooths=smooths, groups=groups,
                    random_slopes={g: v for g, v in slopes.items()})
    else:  # one factor (an interaction in a list: a bare tuple lists two factors)
        base = dict(smooths=smooths,
                    groups=(None if not groups else list(groups) if isinstance(groups[0], tuple)
                            else groups[0]),
                    random_slopes=slopes.get(groups[0], []) if groups else [])
    if k:
        base["k"] = {**{s: 10 for s in smooths if not isinstance(s, tuple)}, **k}
    if bs:
        base["bs"] = bs
    if by_vars:
        base["by"] = by_vars
    return base


def from_formula(formula, data, kind="lmer", **params):
    """The estimator a formula describes, with its X and y (not fitted).

    Parameters
    ----------
    formula : str
        See the module's documentation for what a formula may contain.
    data : pandas.DataFrame
    kind : {"lmer", "glmer", "bam"}
        MixedLM, MixedGLM or AdditiveMixed.
    **params
        Further estimator parameters (e.g. ``reml=False``, ``family="poisson"``,
        ``n_agq=10``, ``discrete=True``).

    Returns
    -------
    estimator, X, y
    """
    from . import AdditiveMixed, MixedGLM, MixedLM

    if not isinstance(data, pd.DataFrame):
        raise TypeError("formulas need the data as a pandas DataFrame")
    if kind not in ("lmer", "glmer", "bam"):
        raise ValueError(f"kind must be 'lmer', 'glmer' or 'bam'; got {kind!r}")
    parsed = parse_formula(formula)
    first = parsed.response_nodes[0]
    if len(parsed.response) == 2:
        successes, failures = _counts(parsed, data)
        y = pd.Series(successes, index=data.index, name=parsed.response[0])
    elif isinstance(first, Name):
        y = column(formula, first, data)
    else:
        y = pd.Series(_evaluate(parsed, data, first), index=data.index,
                      name=parsed.response[0])
    fixed = fixed_design(formula, parsed.terms, parsed.intercept, data)
    intercept = parsed.intercept
    X = fixed.copy()
    if kind == "bam":
        if parsed.random:
            raise ValueError("bam(): write random effects as s(g, bs = \"re\") terms")
        base = _smooth_columns(parsed, data, X)
        return AdditiveMixed(**{**base, "fit_intercept": intercept, **params}), X, y
    if parsed.smooths:
        raise ValueError(f"{kind}(): smooth terms s(...) need bam()")
    spec, group_cols = _random_spec(parsed, data, fixed)
    clash = [c for c in group_cols if c in X.columns]
    if clash:
        raise ValueError(f"{clash} would be both a fixed effect and a grouping factor in "
                         f"{parsed.formula!r}.")
    for name, values in group_cols.items():
        X[name] = values
    if kind == "lmer":
        if parsed.offset or len(parsed.response) > 1:
            raise ValueError("lmer(): offset() and cbind() responses need glmer()")
        return MixedLM(**spec, fit_intercept=intercept, **params), X, y
    extra = {}
    if parsed.offset:
        name = f"offset({parsed.offset})"
        X[name] = _evaluate(parsed, data, parsed.offset_node)
        extra["offset"] = name
    if len(parsed.response) == 2:
        family = params.get("family", "binomial")
        if family != "binomial":
            raise FormulaError(formula, parsed.response_pos, "cbind(successes, failures) is a "
                               f"binomial response; family={family!r} takes one response")
        X["cbind_trials"] = successes + failures
        extra["trials"] = "cbind_trials"
    est = MixedGLM(**spec, fit_intercept=intercept, **extra, **params)
    if est.family == "binomial" and len(parsed.response) == 1:
        _check_binomial_labels(parsed, y)
    return est, X, y


def lmer(formula, data, REML=True, sample_weight=None, **params):
    """``lme4::lmer``: a fitted [`MixedLM`][skmixed.MixedLM] (``REML=False`` for ML)."""
    est, X, y = from_formula(formula, data, "lmer", reml=REML, **params)
    return est.fit(X, y, sample_weight=sample_weight)


def glmer(formula, data, family="binomial", nAGQ=1, sample_weight=None, **params):
    """``lme4::glmer``: a fitted [`MixedGLM`][skmixed.MixedGLM]."""
    if family == "tweedie" or "power" in params:
        raise ValueError("glmer(): the Tweedie family is AdditiveMixed's, e.g. bam('y ~ x + "
                         "s(g, bs = \"re\")', data, family='tweedie'); MixedGLM's families "
                         "are binomial, poisson, gamma and nbinom2.")
    est, X, y = from_formula(formula, data, "glmer", family=family, n_agq=nAGQ, **params)
    return est.fit(X, y, sample_weight=sample_weight)


def bam(formula, data, family="gaussian", discrete=True, sample_weight=None, **params):
    """``mgcv::bam(discrete = TRUE)`` (``discrete=False``: ``gam(method = "REML")``; for
    Gamma and the negative binomial ``bam`` without binning): a
    fitted [`AdditiveMixed`][skmixed.AdditiveMixed]. ``knots={"z": (a, b)}`` gives the
    ends of the cycle of ``s(z, bs = "cc")`` (mgcv's ``knots = list(z = c(a, b))``)."""
    est, X, y = from_formula(formula, data, "bam", family=family, discrete=discrete,
                             **params)
    return est.fit(X, y, sample_weight=sample_weight)
