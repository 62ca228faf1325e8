"""lme4/mgcv-style formulas for skmixed's estimators (optional extra ``formula``).

``"y ~ x * b + (1 + x | g)"`` is split into its response, its fixed-effect part — handed
to `formulaic <https://matthewwardrop.github.io/formulaic/>`_ (R's treatment contrasts for
categorical predictors, interactions, transforms) — and the terms formulaic does not know,
read here:

* random effects ``(1 | g)``, ``(1 + x | g)``, ``(x | g)`` (the intercept is implied, as in
  lme4), ``(1 + x || g)`` (uncorrelated), ``(1 | a:b)`` (an interaction) and ``(1 | a/b)``
  (nested: ``(1 | a) + (1 | b:a)``, named as lme4 names it);
* ``offset(col)`` (MixedGLM);
* ``cbind(successes, failures)`` as a binomial response (MixedGLM's trials);
* smooths (AdditiveMixed): ``s(z)``, ``s(z, k = 20)``, ``s(z, bs = "ps")``,
  ``s(g, bs = "re")`` (a random intercept per g) and ``s(g, x, bs = "re")`` (a random
  slope of x per g).

:func:`lmer`, :func:`glmer` and :func:`bam` return fitted estimators;
:func:`from_formula` returns the configured estimator with its X and y (for pipelines and
cross-validation). Errors in a formula name the offending token and show where it is.
"""

import ast
import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ._estimators._design import interaction

__all__ = ["ParsedFormula", "parse_formula", "from_formula", "lmer", "glmer", "bam",
           "FormulaError"]


class FormulaError(ValueError):
    """A malformed formula; the message points at the offending token."""

    def __init__(self, formula, position, message):
        caret = " " * position + "^"
        super().__init__(f"{message}\n  {formula}\n  {caret}")
        self.position = position


@dataclass
class RandomTerm:
    slopes: list  # the covariates besides the intercept
    group: tuple  # one column, or the columns of an interaction
    diagonal: bool  # (… || g)


@dataclass
class Smooth:
    covariate: str
    by: str = None  # s(g, x, bs = "re"): the slope column
    bs: str = "ps"
    k: int = None


@dataclass
class ParsedFormula:
    """The parts of a formula: ``response`` (a column, or ``cbind`` columns), ``fixed`` (the
    right-hand side formulaic builds), ``random`` terms, ``smooths``, ``offset``."""

    formula: str
    response: tuple
    fixed: str
    random: list = field(default_factory=list)
    smooths: list = field(default_factory=list)
    offset: str = None


def _split_top(text, sep, start, formula):
    """Split ``text`` (at offset ``start`` in ``formula``) on ``sep`` outside parentheses;
    returns ``[(piece, offset)]``. Unbalanced parentheses are errors."""
    depth, pieces, last = 0, [], 0
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise FormulaError(formula, start + i, "unbalanced ')'")
        elif depth == 0 and text.startswith(sep, i):
            pieces.append((text[last:i], start + last))
            last = i + len(sep)
            i = last
            continue
        i += 1
    if depth != 0:
        raise FormulaError(formula, start + len(text), "unbalanced '(': a ')' is missing")
    pieces.append((text[last:], start + last))
    return pieces


def _strip(piece, offset):
    lead = len(piece) - len(piece.lstrip())
    return piece.strip(), offset + lead


_NAME = re.compile(r"^[A-Za-z_.][A-Za-z0-9_.]*$")


def _name(token, offset, formula, what):
    if not _NAME.match(token):
        raise FormulaError(formula, offset, f"{what} must be a column name; got {token!r}")
    return token


def _random_term(inner, offset, formula):
    """``expr | group`` or ``expr || group`` inside the parentheses."""
    double = _split_top(inner, "||", offset, formula)
    if len(double) == 2:
        (lhs, lo), (rhs, ro) = double
        diagonal = True
    else:
        single = _split_top(inner, "|", offset, formula)
        if len(single) != 2:
            raise FormulaError(formula, offset, "a random-effect term needs exactly one '|' "
                               "(or '||') between its covariates and its grouping factor")
        (lhs, lo), (rhs, ro) = single
        diagonal = False
    lhs, lo = _strip(lhs, lo)
    rhs, ro = _strip(rhs, ro)
    if not lhs:
        raise FormulaError(formula, lo, "a random-effect term needs covariates before '|', "
                           "e.g. (1 | g)")
    if not rhs:
        raise FormulaError(formula, ro, "a random-effect term needs a grouping factor "
                           "after '|'")
    slopes, intercept = [], True
    for piece, po in _split_top(lhs, "+", lo, formula):
        piece, po = _strip(piece, po)
        if piece == "1":
            continue
        if piece in ("0", "-1"):
            intercept = False
            continue
        if "-" in piece:
            raise FormulaError(formula, po, f"unsupported random-effect covariate {piece!r}")
        slopes.append(_name(piece, po, formula, "a random slope"))
    if not intercept:
        raise FormulaError(formula, lo, "random effects without an intercept ((0 + x | g)) "
                           "are not supported; use (1 + x | g) or (1 + x || g)")
    nested = [_strip(p, o) for p, o in _split_top(rhs, "/", ro, formula)]
    if len(nested) > 2:
        raise FormulaError(formula, nested[2][1], "only one level of nesting (a/b) is "
                           "supported")
    groups = []
    for piece, po in nested:
        groups.append(tuple(_name(*_strip(p, o), formula, "a grouping factor")
                            for p, o in _split_top(piece, ":", po, formula)))
    if len(nested) == 2:
        outer, inner_ = groups
        # lme4: (1 | a/b) = (1 | a) + (1 | b:a); the slopes go to both
        return [RandomTerm(list(slopes), outer, diagonal),
                RandomTerm(list(slopes), inner_ + outer, diagonal)]
    return [RandomTerm(slopes, groups[0], diagonal)]


def _call_args(inner, offset, formula, fname):
    """Positional and keyword arguments of ``s(...)`` / ``offset(...)`` / ``cbind(...)``."""
    args, kwargs = [], {}
    for piece, po in _split_top(inner, ",", offset, formula):
        piece, po = _strip(piece, po)
        if not piece:
            raise FormulaError(formula, po, f"empty argument in {fname}()")
        if "=" in piece:
            key, value = piece.split("=", 1)
            key = key.strip()
            try:
                kwargs[key] = ast.literal_eval(value.strip())
            except (ValueError, SyntaxError):
                raise FormulaError(formula, po + piece.index("=") + 1,
                                   f"{fname}(): the value of {key} must be a literal") from None
        else:
            if kwargs:
                raise FormulaError(formula, po, f"{fname}(): positional argument after a "
                                   "keyword")
            args.append((_name(piece, po, formula, f"an argument of {fname}()"), po))
    return args, kwargs


def parse_formula(formula):
    """Split a formula into its parts (:class:`ParsedFormula`)."""
    if not isinstance(formula, str):
        raise TypeError(f"a formula is a string; got {type(formula).__name__}")
    sides = _split_top(formula, "~", 0, formula)
    if len(sides) != 2:
        raise FormulaError(formula, len(formula) if len(sides) < 2 else sides[2][1] - 1,
                           "a formula needs exactly one '~' between response and predictors")
    (lhs, lo), (rhs, ro) = sides
    lhs, lo = _strip(lhs, lo)
    if not lhs:
        raise FormulaError(formula, lo, "the response (left of '~') is missing")
    m = re.fullmatch(r"cbind\s*\((.*)\)", lhs)
    if m:
        parts = [_strip(p, o) for p, o in _split_top(m.group(1), ",", lo + lhs.index("(") + 1,
                                                     formula)]
        if len(parts) != 2 or not all(p for p, _ in parts):
            raise FormulaError(formula, lo, "cbind() takes two arguments: successes, "
                               "failures (columns or expressions of columns)")
        response = tuple(p for p, _ in parts)
    else:
        response = (_name(lhs, lo, formula, "the response"),)
    parsed = ParsedFormula(formula=formula, response=response, fixed="")
    fixed = []
    for piece, po in _split_top(rhs, "+", ro, formula):
        piece, po = _strip(piece, po)
        if not piece:
            raise FormulaError(formula, po, "empty term (a '+' with nothing on one side)")
        if piece.startswith("(") and piece.endswith(")") and \
                len(_split_top(piece[1:-1], "|", po + 1, formula)) > 1:
            parsed.random += _random_term(piece[1:-1], po + 1, formula)
        elif re.match(r"^s\s*\(", piece):
            open_at = piece.index("(")
            if not piece.endswith(")"):
                raise FormulaError(formula, po + len(piece), "s(...) must close with ')'")
            args, kwargs = _call_args(piece[open_at + 1:-1], po + open_at + 1, formula, "s")
            unknown = set(kwargs) - {"k", "bs"}
            if unknown:
                raise FormulaError(formula, po, f"s(): unsupported argument(s) "
                                   f"{sorted(unknown)} (k and bs are)")
            bs = kwargs.get("bs", "ps")
            if bs not in ("ps", "re"):
                raise FormulaError(formula, po, f"s(): bs = {bs!r} is not supported; "
                                   "bs = \"ps\" (P-spline) and bs = \"re\" (random effect) are")
            if not args or len(args) > (2 if bs == "re" else 1):
                raise FormulaError(formula, po, "s() takes one covariate (two with "
                                   "bs = \"re\": the group and a slope column)")
            k = kwargs.get("k")
            if k is not None and (not isinstance(k, int) or k < 4):
                raise FormulaError(formula, po, f"s(): k must be an integer >= 4; got {k!r}")
            parsed.smooths.append(Smooth(covariate=args[0][0],
                                         by=args[1][0] if len(args) > 1 else None, bs=bs, k=k))
        elif re.match(r"^offset\s*\(", piece):
            open_at = piece.index("(")
            args, kwargs = _call_args(piece[open_at + 1:-1], po + open_at + 1, formula,
                                      "offset")
            if len(args) != 1 or kwargs:
                raise FormulaError(formula, po, "offset() takes one column")
            if parsed.offset is not None:
                raise FormulaError(formula, po, "only one offset() term is supported")
            parsed.offset = args[0][0]
        else:
            if "|" in piece:
                raise FormulaError(formula, po + piece.index("|"), "a random-effect term "
                                   "must be in parentheses: (1 | g)")
            fixed.append(piece)
    parsed.fixed = " + ".join(fixed) if fixed else "1"
    return parsed


# ---------------------------------------------------------------------------- building
def _fixed_design(parsed, data):
    try:
        import formulaic
    except ImportError as exc:  # pragma: no cover - the extra is missing
        raise ImportError("formulas need the formulaic package: pip install "
                          "'skmixed[formula]'") from exc
    try:
        mm = formulaic.model_matrix(parsed.fixed, data)
    except Exception as exc:  # formulaic's own errors name the factor
        missing = [c for c in re.findall(r"[A-Za-z_.][A-Za-z0-9_.]*", parsed.fixed)
                   if c not in data.columns and c not in ("C", "I", "np", "log", "exp")]
        detail = f" (unknown column(s): {missing})" if missing else ""
        raise ValueError(f"the fixed-effect part {parsed.fixed!r} of {parsed.formula!r} "
                         f"could not be built{detail}: {exc}") from None
    frame = pd.DataFrame(np.asarray(mm, dtype=float), columns=list(mm.columns),
                         index=data.index)
    intercept = "Intercept" in frame.columns
    return frame.drop(columns=["Intercept"]) if intercept else frame, intercept


def _evaluate(parsed, data, expression):
    """A column or an arithmetic expression of columns (``size - incidence``)."""
    try:
        values = data.eval(expression) if expression not in data.columns else data[expression]
    except Exception as exc:
        raise ValueError(f"{expression!r} in {parsed.formula!r} could not be evaluated on "
                         f"the data (its columns: {list(data.columns)}): {exc}") from None
    return np.asarray(values, dtype=float)


def _check_columns(parsed, data, names):
    missing = [c for c in names if c not in data.columns]
    if missing:
        raise ValueError(f"{parsed.formula!r} uses column(s) {missing} that are not in the "
                         f"data (its columns: {list(data.columns)}).")


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
        _check_columns(parsed, data, list(t.group))
        for s in t.slopes:
            if s not in fixed.columns:
                raise ValueError(f"the random slope {s!r} of ({' + '.join(['1'] + t.slopes)}"
                                 f" | {_group_name(t.group)}) must also be a fixed effect "
                                 "(a column of the fixed-effect part) in skmixed; add it to "
                                 "the formula's fixed part.")
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


def from_formula(formula, data, kind="lmer", **params):
    """The estimator a formula describes, with its X and y (not fitted).

    Parameters
    ----------
    formula : str
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
    parsed = parse_formula(formula)
    if len(parsed.response) == 2:
        successes, failures = (_evaluate(parsed, data, e) for e in parsed.response)
        y = pd.Series(successes, index=data.index, name=parsed.response[0])
    else:
        _check_columns(parsed, data, list(parsed.response))
        y = data[parsed.response[0]]
    fixed, intercept = _fixed_design(parsed, data)
    X = fixed.copy()
    if kind == "bam":
        if parsed.random:
            raise ValueError("bam(): write random effects as s(g, bs = \"re\") terms")
        smooths, k, groups, slopes = [], {}, None, []
        for sm in parsed.smooths:
            _check_columns(parsed, data, [sm.covariate] + ([sm.by] if sm.by else []))
            if sm.bs == "re":
                if groups not in (None, sm.covariate):
                    raise ValueError("bam(): random effects of one grouping factor only "
                                     f"(got {groups!r} and {sm.covariate!r})")
                groups = sm.covariate
                if sm.by:
                    if sm.by not in X.columns:
                        X[sm.by] = data[sm.by].to_numpy(dtype=float)
                    slopes.append(sm.by)
                continue
            smooths.append(sm.covariate)
            if sm.k is not None:
                k[sm.covariate] = sm.k
            X[sm.covariate] = data[sm.covariate].to_numpy(dtype=float)
        if groups is not None:
            X[groups] = data[groups]
        base = dict(smooths=smooths, groups=groups, random_slopes=slopes,
                    fit_intercept=intercept)
        if k:
            base["k"] = {**{s: 10 for s in smooths}, **k}
        est = AdditiveMixed(**{**base, **params})
        return est, X, y
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
    if kind != "glmer":
        raise ValueError(f"kind must be 'lmer', 'glmer' or 'bam'; got {kind!r}")
    extra = {}
    if parsed.offset:
        _check_columns(parsed, data, [parsed.offset])
        X["offset(" + parsed.offset + ")"] = data[parsed.offset].to_numpy(dtype=float)
        extra["offset"] = "offset(" + parsed.offset + ")"
    if len(parsed.response) == 2:
        X["cbind_trials"] = successes + failures
        extra["trials"] = "cbind_trials"
    return MixedGLM(**spec, fit_intercept=intercept, **extra, **params), X, y


def lmer(formula, data, REML=True, sample_weight=None, **params):
    """``lme4::lmer``: a fitted :class:`~skmixed.MixedLM` (``REML=False`` for ML)."""
    est, X, y = from_formula(formula, data, "lmer", reml=REML, **params)
    return est.fit(X, y, sample_weight=sample_weight)


def glmer(formula, data, family="binomial", nAGQ=1, sample_weight=None, **params):
    """``lme4::glmer``: a fitted :class:`~skmixed.MixedGLM`."""
    est, X, y = from_formula(formula, data, "glmer", family=family, n_agq=nAGQ, **params)
    return est.fit(X, y, sample_weight=sample_weight)


def bam(formula, data, family="gaussian", discrete=True, sample_weight=None, **params):
    """``mgcv::bam(discrete = TRUE)`` (``discrete=False``: ``gam(method = "REML")``): a
    fitted :class:`~skmixed.AdditiveMixed`."""
    est, X, y = from_formula(formula, data, "bam", family=family, discrete=discrete,
                             **params)
    return est.fit(X, y, sample_weight=sample_weight)
