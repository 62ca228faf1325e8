"""R's printing rules for the summaries: ``format`` of a numeric vector (R's ``formatReal``:
common significant digits, fixed or scientific notation, whichever is narrower),
``format.pval``, ``printCoefmat`` (coefficient tables with significance stars and their
legend), ``abbreviate`` and the layout of ``print`` for a matrix.

Ported from R 4.2's ``src/main/format.c`` (``scientific``, ``formatReal``),
``src/library/base/R/format.R`` (``format.pval``), ``stats::printCoefmat`` and
``src/main/character.c`` (``stripchars``), so that ``summary()`` reads as lme4, lmerTest and
mgcv print it.
"""

import math

import numpy as np

__all__ = ["format_real", "format_pval", "coef_table", "abbreviate", "matrix_lines",
           "SIGNIF_LEGEND"]

EPS = float(np.finfo(float).eps)  # R's .Machine$double.eps, format.pval's eps
SIGNIF_LEGEND = ["---", "Signif. codes:  0 ‘***’ 0.001 ‘**’ 0.01 ‘*’ 0.05 ‘.’ 0.1 ‘ ’ 1"]


def _scientific(x, digits):
    """(negative, power of ten, significant digits needed ≤ digits) of a finite x, as R's
    ``scientific()``: the mantissa rounded to ``digits`` digits, trailing zeros dropped."""
    if x == 0.0:
        return False, 0, 1
    mantissa, exponent = f"{abs(x):.{digits - 1}e}".split("e")
    sig = mantissa.replace(".", "").rstrip("0")
    return x < 0, int(exponent), max(len(sig), 1)


def format_real(values, digits=7, nsmall=0, na="NA"):
    """R's ``format(x, digits = digits, nsmall = nsmall)`` of a numeric vector: one
    notation and number of decimals for all, right-justified to a common width."""
    values = [float(v) for v in np.ravel(np.asarray(values, dtype=float))]
    finite = [v for v in values if math.isfinite(v)]
    neg = mxsl = mxns = 0
    rgt, mxl, mnl = -(10**9), -(10**9), 10**9
    for v in finite:
        is_neg, kp, nsig = _scientific(v, digits)
        left = kp + 1
        sleft = int(is_neg) + (1 if left <= 0 else left)
        neg = max(neg, int(is_neg))
        rgt, mxl, mnl = max(rgt, nsig - left), max(mxl, left), min(mnl, left)
        mxsl, mxns = max(mxsl, sleft), max(mxns, nsig)
    out = []
    if finite:
        if mxl < 0:
            mxsl = 1 + neg
        rgt = max(rgt, 0)
        width_fixed = mxsl + rgt + (rgt != 0)
        e = 2 if (mxl > 100 or mnl <= -99) else 1
        d = mxns - 1
        width_sci = neg + (d > 0) + d + 4 + e
        fixed = width_fixed <= width_sci  # R's scipen = 0
        if fixed:
            rgt = max(rgt, nsmall)
    for v in values:
        if math.isnan(v):
            out.append(na)
        elif math.isinf(v):
            out.append("Inf" if v > 0 else "-Inf")
        elif fixed:
            out.append(f"{v:.{rgt}f}")
        else:
            out.append(f"{v:.{d}e}")
    width = max((len(s) for s in out), default=0)
    return [s.rjust(width) for s in out]


def format_pval(pv, digits=3, eps=EPS):
    """R's ``format.pval``: values below ``eps`` as ``< 2e-16`` (or ``<2e-16`` when the
    others are short), the rest by ``format`` in two groups (≥ 1e-4 and below)."""
    pv = np.asarray(pv, dtype=float).ravel()
    out = ["NA"] * pv.size
    ok = ~np.isnan(pv)
    tiny = ok & (pv < eps)
    rest = ok & ~tiny
    shown = []
    if rest.any():
        vals = pv[rest]
        with np.errstate(divide="ignore"):
            expo = np.floor(np.log10(np.where(vals > 0, vals, 1e-50)))
        fixp = (expo >= -3) | ((expo == -4) & (digits > 1))
        texts = np.empty(vals.size, dtype=object)
        for group in (fixp, ~fixp):
            if group.any():
                texts[group] = format_real(vals[group], digits)
        shown = list(texts)
        for i, s in zip(np.flatnonzero(rest), shown):
            out[i] = s
    if tiny.any():
        d = max(1, digits - 2)
        if shown:
            nc = max(len(s) for s in shown)
            if d > 1 and d + 6 > nc:
                d = max(1, nc - 7)
            sep = "" if (d == 1 and nc <= 6) else " "
        else:
            sep = "" if d == 1 else " "
        text = "<" + sep + format_real([eps], d)[0]
        for i in np.flatnonzero(tiny):
            out[i] = text
    return out


def _stars(p):
    if not np.isfinite(p):
        return ""
    for cut, star in ((0.001, "***"), (0.01, "**"), (0.05, "*"), (0.1, ".")):
        if p <= cut:
            return star
    return " "


def matrix_lines(row_names, col_names, cells, right=True):
    """The lines of R's ``print`` of a character matrix (``quote = FALSE``): row names
    left-justified, each column as wide as its widest entry or name, one space apart."""
    rw = max((len(r) for r in row_names), default=0)
    cols = list(zip(*cells)) if cells else [()] * len(col_names)
    widths = [max([len(h)] + [len(c) for c in col]) for h, col in zip(col_names, cols)]

    def just(s, w):
        return s.rjust(w) if right else s.ljust(w)

    lines = [" " * rw + "".join(" " + just(h, w) for h, w in zip(col_names, widths))]
    for name, row in zip(row_names, cells):
        lines.append(name.ljust(rw) + "".join(" " + just(c, w) for c, w in zip(row, widths)))
    return [line.rstrip() for line in lines]


def coef_table(values, row_names, col_names, *, digits=4, cs_ind=(0, 1), tst_ind=(2,),
               has_p=True, signif_stars=True):
    """R's ``printCoefmat``: ``values`` (rows × columns, the p-values last when ``has_p``);
    estimates and standard errors (``cs_ind``) rounded to a common number of decimals,
    test statistics (``tst_ind``) to ``digits − 1`` decimals at most, other columns by
    ``format``, p-values by :func:`format_pval` and significance stars with R's legend
    when any p-value is below 0.1. Returns the lines."""
    xm = np.asarray(values, dtype=float).reshape(len(row_names), len(col_names))
    n, nc = xm.shape
    dig_tst = max(1, min(5, digits - 1))
    cf = np.full((n, nc), "", dtype=object)
    cs_ind, tst_ind = list(cs_ind), list(tst_ind)
    if cs_ind:
        coef_se = xm[:, cs_ind]
        acs = np.abs(coef_se)
        if np.isfinite(acs).any():
            nonzero = acs[np.isfinite(acs) & (acs != 0)]
            digmin = 1 + (np.floor(np.log10([nonzero.min(), nonzero.max()]))
                          if nonzero.size else np.array([0.0]))
            decimals = int(max(1, *(digits - digmin)))
            rounded = [round(v, decimals) if np.isfinite(v) else v for v in coef_se.ravel()]
            cf[:, cs_ind] = np.array(format_real(rounded, digits),
                                     dtype=object).reshape(coef_se.shape)
    if tst_ind:
        tst = xm[:, tst_ind]
        rounded = [round(v, dig_tst) if np.isfinite(v) else v for v in tst.ravel()]
        cf[:, tst_ind] = np.array(format_real(rounded, digits),
                                  dtype=object).reshape(tst.shape)
    p_col = [nc - 1] if has_p else []
    for j in range(nc):
        if j not in cs_ind + tst_ind + p_col:
            cf[:, j] = format_real(xm[:, j], digits)
    # a non-zero value shown as zero (or the reverse): R formats those with one digit less
    check = [j for j in range(nc) if j not in tst_ind + p_col]
    redo = [(i, j) for j in check for i in range(n)
            if np.isfinite(xm[i, j]) and (xm[i, j] == 0) != (float(cf[i, j]) == 0)]
    if redo:
        texts = format_real([xm[i, j] for i, j in redo], max(1, digits - 1))
        for (i, j), s in zip(redo, texts):
            cf[i, j] = s
    cf[np.isnan(xm)] = "NA"
    names = list(col_names)
    stars = False
    if has_p:
        pv = xm[:, -1]
        ok = np.isfinite(pv)
        if ok.any():
            cf[ok, -1] = format_pval(pv[ok], dig_tst)
            stars = signif_stars and bool((pv[ok] < 0.1).any())
            if stars:
                marks = [_stars(p) for p in pv]
                w = max(len(m) for m in marks)
                cf = np.column_stack([cf, [m.ljust(w) for m in marks]])
                names.append("")
    lines = matrix_lines(list(row_names), names, [list(r) for r in cf])
    return lines + (SIGNIF_LEGEND if stars else [])


_VOWELS = set("aeiou")


def _abbreviate_one(name, minlength):
    """R's ``stripchars``: drop lower-case vowels from the ends of words, then from the
    right, then lower-case letters the same way, then anything, never a word's first
    character, until ``minlength`` characters remain."""
    chars = list(name.strip())
    if len(chars) <= minlength:
        return "".join(chars)
    nspace = 0
    j = True
    for i in range(len(chars) - 1, 0, -1):  # trailing spaces go, inner ones count
        if chars[i].isspace():
            if j:
                del chars[i]
            else:
                nspace += 1
        else:
            j = False
        if len(chars) - nspace <= minlength:
            return _drop_spaces(chars, minlength)

    def first(i):
        return chars[i - 1].isspace()

    def last(i):
        return (not chars[i - 1].isspace()
                and (i + 1 == len(chars) or chars[i + 1].isspace()))

    tests = [lambda i: chars[i] in _VOWELS and last(i),
             lambda i: chars[i] in _VOWELS and not first(i),
             lambda i: chars[i].islower() and last(i),
             lambda i: chars[i].islower() and not first(i),
             lambda i: not first(i) and not chars[i].isspace()]
    for test in tests:
        for i in range(len(chars) - 1, 0, -1):
            if i < len(chars) and test(i):
                del chars[i]
            if len(chars) - nspace <= minlength:
                return _drop_spaces(chars, minlength)
    return _drop_spaces(chars, minlength)


def _drop_spaces(chars, minlength):
    if len(chars) > minlength:
        chars = [chars[0]] + [c for c in chars[1:] if not c.isspace()]
    return "".join(chars)


def abbreviate(names, minlength=4):
    """R's ``abbreviate(names, minlength)``: abbreviations made unique by lengthening those
    that collide."""
    names = list(names)
    out = [_abbreviate_one(s, minlength) for s in names]
    todo = [i for i in range(len(out)) if out[i] in out[:i]]
    while todo and minlength < max(len(s) for s in names):
        minlength += 1
        clash = {out[i] for i in todo}
        idx = [i for i in range(len(out)) if out[i] in clash]
        for i in idx:
            out[i] = _abbreviate_one(names[i], minlength)
        todo = [i for i in range(len(out)) if out[i] in out[:i]]
    return out
