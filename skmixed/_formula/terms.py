"""What a parsed formula stands for: its factors, the terms of its fixed part, its random
effects, smooths, offset and response — checked against the formula's fixed list of
functions, without looking at any data.

A *factor* is one column expression: a column (numeric or categorical by its dtype),
``C(expr)`` (categorical), ``I(expr)`` or a transform (numeric), ``poly(x, d)`` (d
columns). A *term* is a product of factors (``a:b``); the fixed part is the list of terms
R's rules give (``a*b`` = ``a + b + a:b``, ``a/b`` = ``a + a:b``, ``(a + b)^2`` = all
products of at most two, ``- t`` removes t, ``0``/``-1`` remove and ``1`` adds the
intercept), ordered by degree as R's ``terms`` and formulaic order them.
"""

import functools
from dataclasses import dataclass, field
from itertools import product

import numpy as np

from .._model.bases import BASES
from .grammar import BinOp, Call, FormulaError, Name, Num, Random, Str, Sum, Unary, chain, label

__all__ = ["ELEMENTWISE", "Factor", "RandomTerm", "Smooth", "check_arith", "factor",
           "fixed_terms", "random_terms", "smooth", "offset", "response"]

#: element-wise transforms: name -> NumPy function (``np.log`` etc. name the same ones)
ELEMENTWISE = {"log": np.log, "log2": np.log2, "log10": np.log10, "log1p": np.log1p,
               "exp": np.exp, "exp2": np.exp2, "expm1": np.expm1, "sqrt": np.sqrt,
               "abs": np.abs}
ELEMENTWISE.update({f"np.{k}": v for k, v in list(ELEMENTWISE.items())})
COLUMNWISE = ("scale", "center")  # over the whole column: R's scale(x), x - mean(x)
_ARITH_CALLS = set(ELEMENTWISE) | set(COLUMNWISE) | {"I"}
_ARITH_OPS = ("+", "-", "*", "/", "**")
_CONTRASTS = {"Treatment": "reference", "contr.treatment": "base"}
_BOOLEANS = {"True": True, "TRUE": True, "T": True, "False": False, "FALSE": False,
             "F": False}
#: what the names of s()'s smooth bases (those of skmixed._model.bases.BASES) stand for
_BASIS_NAMES = {"ps": "P-spline", "cr": "cubic regression spline", "cc": "cyclic cubic spline",
                "tp": "thin-plate regression spline"}
FUNCTIONS = ("C(x[, Treatment(ref)]), I(expr), poly(x, degree[, raw = TRUE]), scale, "
             "center, " + ", ".join(k for k in ELEMENTWISE if not k.startswith("np."))
             + " (also as np.log etc.)")


def _fail(formula, node, message):
    raise FormulaError(formula, node.pos, message)


def _unknown(formula, node):
    where = {"s": "s() is a smooth: a term of its own (y ~ x + s(z)), for bam()",
             "offset": "offset() is a term of its own (y ~ x + offset(log(t)))",
             "cbind": "cbind() is only a response: cbind(successes, failures) ~ ...",
             "C": "C() makes a categorical factor: a term, not part of arithmetic",
             "poly": "poly() makes columns of the design: a term, not part of arithmetic"}
    if node.func in where:
        _fail(formula, node, where[node.func])
    _fail(formula, node, f"unknown function {node.func}(): a formula may call only "
          f"{FUNCTIONS}; nothing in a formula is run as Python")


def check_arith(formula, node):
    """Check an arithmetic tree: numbers, columns, + - * / ** and the listed transforms."""
    if isinstance(node, Str):
        _fail(formula, node, "a string is not a number or a column; a column with an odd "
              "name is written in backticks: `my x`")
    if isinstance(node, Unary):
        check_arith(formula, node.operand)
    elif isinstance(node, BinOp):
        first, links = chain(node, _ARITH_OPS)
        for operand in [first] + [b.right for b in links]:
            check_arith(formula, operand)
    elif isinstance(node, Call):
        if node.func not in _ARITH_CALLS:
            _unknown(formula, node)
        if len(node.args) != 1 or node.kwargs:
            _fail(formula, node, f"{node.func}() takes one argument")
        check_arith(formula, node.args[0])


@dataclass(frozen=True)
class Factor:
    """One column expression of the design, known by its ``label`` (its column name)."""

    label: str
    kind: str  # column (numeric or categorical by dtype), numeric, categorical, poly
    expr: object = field(compare=False, repr=False)  # the tree evaluated (C/I/poly's arg)
    pos: int = field(compare=False, repr=False)
    reference: tuple = field(default=(), compare=False, repr=False)  # (level, its position)
    degree: int = field(default=1, compare=False, repr=False)
    raw: bool = field(default=False, compare=False, repr=False)


def _literal(formula, node, what):
    if isinstance(node, (Num, Str)):
        return node.value
    if isinstance(node, Unary) and isinstance(node.operand, Num):
        return -node.operand.value
    _fail(formula, node, f"{what} must be a literal (a number or a string)")


def _contrast(formula, node):
    if not isinstance(node, Call) or node.func not in _CONTRASTS:
        _fail(formula, node, "the second argument of C() is the reference level: "
              "Treatment('b'), Treatment(reference = 'b') or contr.treatment('b')")
    key = _CONTRASTS[node.func]
    if len(node.args) + len(node.kwargs) != 1 or any(k != key for k, _, _ in node.kwargs):
        _fail(formula, node, f"{node.func}() takes one argument, the reference level "
              f"({node.func}('b') or {node.func}({key} = 'b'))")
    value = node.args[0] if node.args else node.kwargs[0][1]
    return _literal(formula, value, "the reference level"), value.pos


def _poly(formula, node):
    if not node.args or len(node.args) > 2:
        _fail(formula, node, "poly() takes a covariate and a degree: poly(x, 2)")
    check_arith(formula, node.args[0])
    kwargs = {k: (v, p) for k, v, p in node.kwargs}
    for key, (_, pos) in kwargs.items():
        if key not in ("degree", "raw") or (key == "degree" and len(node.args) == 2):
            raise FormulaError(formula, pos, f"poly(): unsupported argument {key!r} "
                               "(degree and raw are)")
    degree = node.args[1] if len(node.args) == 2 else kwargs.get("degree", (None,))[0]
    d = 1 if degree is None else _literal(formula, degree, "poly()'s degree")
    if not isinstance(d, int) or d < 1:
        _fail(formula, degree, f"poly(): the degree must be a whole number >= 1; got {d!r}")
    raw = kwargs.get("raw", (None,))[0]
    if raw is not None and not (isinstance(raw, Name) and raw.name in _BOOLEANS):
        _fail(formula, raw, "poly(): raw is TRUE or FALSE")
    return Factor(label(node), "poly", node.args[0], node.pos, degree=d,
                  raw=raw is not None and _BOOLEANS[raw.name])


def factor(formula, node):
    """The `Factor` a formula-level leaf (a column or a call) stands for."""
    if isinstance(node, Name):
        return Factor(node.name, "column", node, node.pos)
    if isinstance(node, Call):
        if node.func == "C":
            if not 1 <= len(node.args) <= 2 or node.kwargs:
                _fail(formula, node, "C() takes a column and optionally its reference level: "
                      "C(f) or C(f, Treatment('b'))")
            check_arith(formula, node.args[0])
            ref = _contrast(formula, node.args[1]) if len(node.args) == 2 else ()
            return Factor(label(node), "categorical", node.args[0], node.pos, reference=ref)
        if node.func == "poly":
            return _poly(formula, node)
        check_arith(formula, node)
        return Factor(label(node), "numeric", node.args[0] if node.func == "I" else node,
                      node.pos)
    if isinstance(node, Num):
        _fail(formula, node, "a number as a term is 1 (the intercept) or 0 (none); "
              "arithmetic goes inside I(...): I(2 * x)")
    if isinstance(node, Random):
        _fail(formula, node, "a random-effect term is a term of its own, added with '+'")
    _fail(formula, node, "expected a column, C(), I() or a transform here")


# ------------------------------------------------------------------ the fixed part
def _merge(a, b):
    have = {f.label for f in a}
    return a + tuple(f for f in b if f.label not in have)


def _union(*lists):
    out, seen = [], set()
    for t in (t for terms in lists for t in terms):
        key = frozenset(f.label for f in t)
        if key not in seen:
            seen.add(key)
            out.append(t)
    return out


def _interact(a, b):
    return _union([_merge(x, y) for x, y in product(a, b)])


def _sum(formula, node, intercept):
    """The terms of ``+``/``-`` joined items, and the intercept after its 0/1 items."""
    terms, literal = [], None
    for sign, item in node.items:
        if isinstance(item, Num) and item.value in (0, 1):
            intercept, literal = (item.value == 1) == (sign == "+"), item
            continue
        if isinstance(item, Sum) and sign == "+":
            sub, intercept, lit = _sum(formula, item, intercept)
            literal = lit or literal
        else:
            sub = _expand(formula, item)
        if sign == "+":
            terms = _union(terms, sub)
        else:
            gone = {frozenset(f.label for f in t) for t in sub}
            terms = [t for t in terms if frozenset(f.label for f in t) not in gone]
    return terms, intercept, literal


def _expand(formula, node):
    if isinstance(node, Sum):
        terms, _, literal = _sum(formula, node, None)
        if literal is not None:
            _fail(formula, literal, "0 and 1 (the intercept) are only added or removed at the "
                  "formula's top level, not inside an interaction or a removed group")
        return terms
    if isinstance(node, BinOp):
        first, links = chain(node, (":", "*", "/", "^"))
        left = _expand(formula, first)
        for link in links:
            left = _operator(formula, link, left)
        return left
    return [(factor(formula, node),)]


# Interactions multiply: a*b*…*z of k columns has 2^k − 1 terms (25 columns would not fit
# in memory). A formula is refused at the operator that would pass this many terms.
MAX_TERMS = 10_000


def _check_size(formula, node, n_terms):
    if n_terms > MAX_TERMS:
        _fail(formula, node, f"this operator expands the formula to more than {MAX_TERMS:,} "
              f"terms (at least {n_terms:,}): interactions multiply — write the terms you "
              "want, e.g. (a + b + c)^2 for the pairs")


def _operator(formula, node, left):
    """The terms of ``node`` (``:``, ``*``, ``/`` or ``^``) given its left side's."""
    if node.op == "^":
        out = left
        for _ in range(node.right.value - 1):
            _check_size(formula, node, len(out) * len(left))
            out = _union(out, _interact(out, left))
        return out
    right = _expand(formula, node.right)
    _check_size(formula, node, len(left) * len(right))
    if node.op == ":":
        return _interact(left, right)
    if node.op == "*":
        return _union(left, right, _interact(left, right))
    outer = functools.reduce(_merge, left, ())  # a/b = a + b %in% a
    return _union(left, _interact([outer], right))


def fixed_terms(formula, items):
    """The fixed part's terms (tuples of factors, degree order) and whether it has an
    intercept; ``items`` are its ``(sign, node)``."""
    if not items:
        return [], True
    terms, intercept, _ = _sum(formula, Sum(tuple(items), items[0][1].start,
                                            items[-1][1].end), True)
    return sorted([t for t in terms if t], key=len), intercept


# ------------------------------------------------- random effects, smooths, offset
@dataclass
class RandomTerm:
    slopes: list  # the covariates besides the intercept (their column labels)
    group: tuple  # one column, or the columns of an interaction
    diagonal: bool  # (… || g)
    slope_pos: list = field(default_factory=list, repr=False, compare=False)
    group_pos: list = field(default_factory=list, repr=False, compare=False)


def _group(formula, node):
    first, links = chain(node, (":",))
    names = [first] + [b.right for b in links]
    for name in names:
        if not isinstance(name, Name):
            _fail(formula, name, "a grouping factor is a column or an interaction of columns "
                  "(a:b); nesting is a/b")
    return names


def random_terms(formula, node):
    """``(lhs | group)`` / ``(lhs || group)``: one term, or two for ``a/b`` (lme4:
    ``(1 | a/b)`` = ``(1 | a) + (1 | b:a)``, the slopes going to both)."""
    slopes, positions, intercept = [], [], True
    for sign, item in node.lhs.items:
        if isinstance(item, Num) and item.value in (0, 1):
            intercept = intercept and (item.value == 1) == (sign == "+")
            continue
        if sign == "-":
            _fail(formula, item, "unsupported random-effect covariate: only columns are added "
                  "(1 + x | g); '-' removes nothing here")
        if not isinstance(item, (Name, Call)):
            _fail(formula, item, "a random slope is a column or a transform of one (x, "
                  "log(x)); interactions are not supported")
        f = factor(formula, item)
        if f.kind in ("categorical", "poly"):
            _fail(formula, item, "categorical and poly() random slopes are not supported")
        slopes.append(f.label)
        positions.append(item.pos)
    if not intercept:
        _fail(formula, node.lhs, "random effects without an intercept ((0 + x | g)) are not "
              "supported; use (1 + x | g) or (1 + x || g)")
    if len(node.rhs.items) != 1 or node.rhs.items[0][0] != "+":
        _fail(formula, node.rhs.items[-1][1] if len(node.rhs.items) > 1 else node.rhs,
              "one grouping factor goes after '|': a column, a:b or a/b")
    g, nested = node.rhs.items[0][1], []
    while isinstance(g, BinOp) and g.op == "/":
        nested.insert(0, g.right)
        g = g.left
    nested.insert(0, g)
    if len(nested) > 2:
        _fail(formula, nested[2], "only one level of nesting (a/b) is supported")
    groups = [_group(formula, level) for level in nested]
    terms = [RandomTerm(list(slopes), tuple(n.name for n in names), node.double,
                        list(positions), [n.pos for n in names]) for names in groups]
    if len(terms) == 2:
        outer, inner = terms
        inner.group, inner.group_pos = inner.group + outer.group, inner.group_pos + \
            outer.group_pos
        return [outer, inner]
    return terms


@dataclass
class Smooth:
    covariate: str
    by: str = None  # s(g, x, bs = "re"): the slope column
    bs: str = "tp"  # mgcv's default for s()
    k: int = None
    pos: int = field(default=0, repr=False, compare=False)
    by_var: str = None  # s(z, by = v): mgcv's by variable (numeric or factor)
    more: tuple = ()  # s(x, z): the further covariates of a thin-plate smooth


def _smooth_arguments(formula, node):
    """A smooth term's keyword arguments (k, bs and by only; others a FormulaError) and its
    ``by`` column's name (or None)."""
    kwargs = {k: v for k, v, _ in node.kwargs}
    for key, _, pos in node.kwargs:
        if key not in ("k", "bs", "by", "xt"):
            raise FormulaError(formula, pos, f"{node.func}(): unsupported argument(s) {[key]} "
                               "(k, bs and by are; xt the base of bs = \"fs\")")
    if "by" not in kwargs:
        return kwargs, None
    if not isinstance(kwargs["by"], Name):
        _fail(formula, kwargs["by"], f"{node.func}(): by = a column name (a numeric variable "
              "or a factor)")
    return kwargs, kwargs["by"].name


def smooth(formula, node):
    """``s(z)`` (mgcv's default basis, "tp"), ``s(z, k = 20)``, ``s(z, bs = "ps")`` (or
    another smooth basis), ``s(z, by = v)``,
    ``s(g, bs = "re")``, ``s(g, x, bs = "re")``, ``s(x, f, bs = "fs")`` (``xt = "cr"``: its
    base)."""
    kwargs, by_var = _smooth_arguments(formula, node)
    # no bs: mgcv's default, the thin-plate regression spline
    bs = _literal(formula, kwargs["bs"], "s()'s bs") if "bs" in kwargs else "tp"
    if bs == "fs":
        return _factor_smooth(formula, node, kwargs, by_var)
    if "xt" in kwargs:
        _fail(formula, kwargs["xt"], 's(): xt is the base smooth of bs = "fs" only')
    if bs not in BASES and bs != "re":
        _fail(formula, kwargs["bs"], f"s(): bs = {bs!r} is not supported; the supported are "
              + ", ".join(f'bs = "{b}" ({_BASIS_NAMES.get(b, b)})' for b in BASES)
              + ' and bs = "re" (random effect)')
    if not node.args or (len(node.args) > 2 and bs == "re"):
        _fail(formula, node, "s() takes covariates (bs = \"re\": the group and at most one "
              "slope column)")
    if len(node.args) > 1 and bs not in ("re", "tp"):
        _fail(formula, node, f"s() of {len(node.args)} covariates is an isotropic thin-plate "
              f"spline (bs = \"tp\", the default); bs = {bs!r} takes one")
    for arg in node.args:
        if not isinstance(arg, Name):
            _fail(formula, arg, "s(): a covariate is a column name")
    k = _smooth_k(formula, kwargs, BASES[bs].min_k if bs in BASES else 1, f'bs = "{bs}"')
    if by_var is not None and bs == "re":
        _fail(formula, kwargs["by"], 's(): by = is for smooths; a random slope is s(g, x, '
              'bs = "re")')
    if bs != "re":
        return Smooth(node.args[0].name, None, bs, k, node.pos, by_var,
                      tuple(a.name for a in node.args[1:]))
    return Smooth(node.args[0].name, node.args[1].name if len(node.args) > 1 else None, bs,
                  k, node.pos, by_var)


def _smooth_k(formula, kwargs, least, what):
    """s()'s ``k`` (None when not given): an integer at least ``least``, else a
    FormulaError for ``what`` (the basis)."""
    k = _literal(formula, kwargs["k"], "s()'s k") if "k" in kwargs else None
    if k is not None and (not isinstance(k, int) or isinstance(k, bool) or k < least):
        _fail(formula, kwargs["k"], f"s(): k must be an integer >= {least} for {what}; "
              f"got {k!r}")
    return k


def _factor_smooth(formula, node, kwargs, by_var):
    """``s(x, f, bs = "fs")``, ``xt = "cr"`` its base (mgcv's default: "tp")."""
    if len(node.args) != 2 or not all(isinstance(a, Name) for a in node.args):
        _fail(formula, node, 's(x, f, bs = "fs") takes a covariate and a factor (column names)')
    if by_var is not None:
        _fail(formula, kwargs["by"], 's(x, f, bs = "fs"): by = is not supported (f is its '
              'factor)')
    base = _literal(formula, kwargs["xt"], "s()'s xt") if "xt" in kwargs else "tp"
    if base not in BASES:
        _fail(formula, kwargs["xt"], f's(x, f, bs = "fs"): xt = {base!r} is not a base smooth; '
              "the bases are " + ", ".join(f'"{b}"' for b in BASES))
    k = _smooth_k(formula, kwargs, BASES[base].min_k, f'an fs smooth of base "{base}"')
    return Smooth(node.args[0].name, None, "fs" if base == "tp" else ("fs", base), k, node.pos,
                  None, (node.args[1].name,))


def _literals(formula, node, what, n):
    """A literal or R's ``c(…)`` of n literals, as a tuple of n values (one literal:
    repeated)."""
    if isinstance(node, Call) and node.func == "c":
        if node.kwargs or len(node.args) != n:
            _fail(formula, node, f"{what}: one value or c() of {n} values (one per margin)")
        return tuple(_literal(formula, a, what) for a in node.args)
    return (_literal(formula, node, what),) * n


def tensor(formula, node):
    """mgcv's tensor products ``te(x, z)`` and ``ti(x, z)`` of 2 or 3 covariates, with
    ``k`` and ``bs`` one value or ``c()`` of one per margin (mgcv's defaults: k = 5, cubic
    regression margins) and ``by`` as ``s()``'s."""
    kind = node.func
    kwargs, by_var = _smooth_arguments(formula, node)
    if not 2 <= len(node.args) <= 3:
        _fail(formula, node, f"{kind}() takes 2 or 3 covariates (one per margin)")
    for arg in node.args:
        if not isinstance(arg, Name):
            _fail(formula, arg, f"{kind}(): a covariate is a column name")
    n = len(node.args)
    bs = _literals(formula, kwargs["bs"], f"{kind}()'s bs", n) if "bs" in kwargs else ("cr",) * n
    for b in bs:
        if b not in BASES:
            _fail(formula, kwargs["bs"], f"{kind}(): margin bs = {b!r} is not supported; the "
                  f"supported are {', '.join(repr(v) for v in BASES)}")
    k = _literals(formula, kwargs["k"], f"{kind}()'s k", n) if "k" in kwargs else (5,) * n
    for v, b in zip(k, bs):
        if not isinstance(v, int) or isinstance(v, bool) or v < BASES[b].min_k:
            _fail(formula, kwargs["k"], f"{kind}(): each margin's k must be an integer >= "
                  f"{BASES[b].min_k} for bs = \"{b}\"; got {v!r}")
    return Smooth(node.args[0].name, None, (kind,) + bs, k, node.pos, by_var,
                  tuple(a.name for a in node.args[1:]))


def offset(formula, node):
    """``offset(expr)``: its arithmetic tree."""
    if len(node.args) != 1 or node.kwargs:
        _fail(formula, node, "offset() takes one column or expression: offset(log(t))")
    check_arith(formula, node.args[0])
    return node.args[0]


def response(formula, node):
    """The response's trees: one, or ``cbind``'s two."""
    if isinstance(node, Call) and node.func == "cbind":
        if node.kwargs:
            raise FormulaError(formula, node.kwargs[0][2], "cbind() takes no keyword "
                               "arguments: cbind(successes, failures), each a column or an "
                               "expression of columns such as n - s")
        if len(node.args) != 2:
            _fail(formula, node, "cbind() takes two arguments: successes, failures (columns "
                  "or expressions of columns)")
        for arg in node.args:
            check_arith(formula, arg)
        return node.args
    check_arith(formula, node)
    return (node,)
