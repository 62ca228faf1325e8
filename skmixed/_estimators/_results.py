"""Tidy result tables (lme4's fixef/VarCorr/ranef layouts) and the lme4-style summary text."""

import numpy as np
import pandas as pd
from scipy import stats

from ._rprint import abbreviate, coef_table, format_real, matrix_lines

__all__ = ["fixed_effects_table", "variance_component_rows", "variance_components_frame",
           "random_effects_table", "summary_text", "coef_lines", "n_obs_text", "VC_COLUMNS"]


def fixed_effects_table(names, estimate, cov):
    """Estimate, standard error, Wald z and two-sided normal p-value per fixed effect."""
    se = np.sqrt(np.diag(cov))
    with np.errstate(divide="ignore", invalid="ignore"):  # an exact fit: se = 0
        z = estimate / se
    return pd.DataFrame(
        {"estimate": estimate, "std_error": se, "z": z, "p_value": 2.0 * stats.norm.sf(np.abs(z))},
        index=pd.Index(names, name="term"),
    )


VC_COLUMNS = ["group", "var1", "var2", "variance", "sd_cor"]


def variance_component_rows(group_name, re_names, covariance, rel_cov, sigma):
    """One factor's rows as lme4's ``as.data.frame(VarCorr(m))``: variances and SDs first,
    then covariances/correlations (unstructured only); tuples of :data:`VC_COLUMNS`.

    ``rel_cov`` is ``T T'`` (relative to σ²). With ``covariance="diagonal"`` each term is its
    own lme4 term, named ``g``, ``g.1``, ``g.2``… as lme4 names them.
    """
    cov = sigma**2 * rel_cov
    q = len(re_names)
    rows = []
    for a in range(q):
        grp = group_name if (covariance == "unstructured" or a == 0) else f"{group_name}.{a}"
        rows.append((grp, re_names[a], None, cov[a, a], np.sqrt(cov[a, a])))
    if covariance == "unstructured":
        for b in range(q):
            for a in range(b + 1, q):
                denom = np.sqrt(cov[a, a] * cov[b, b])
                corr = cov[a, b] / denom if denom > 0 else np.nan
                rows.append((group_name, re_names[b], re_names[a], cov[a, b], corr))
    return rows


def variance_components_frame(rows, columns=VC_COLUMNS):
    """The variance components' DataFrame from rows of ``columns`` (:data:`VC_COLUMNS`;
    AdditiveMixed names the last "sd"): the names as object columns with None where a row
    has none (lme4's NA), whatever string dtype pandas would infer."""
    cols = list(zip(*rows)) if rows else [()] * len(columns)
    data = {name: pd.Series(list(col), dtype=object)
            for name, col in zip(columns[:3], cols[:3])}
    data.update({name: pd.Series(col, dtype=float) for name, col in zip(columns[3:],
                                                                         cols[3:])})
    frame = pd.DataFrame(data)
    frame["group"] = frame["group"].astype(str)
    return frame


def random_effects_table(group_name, levels, re_names, modes, cond_var):
    """Long form like lme4's ``as.data.frame(ranef(m, condVar=TRUE))``: term-major. Several
    factors: ``group_name``, ``levels``, ``re_names``, ``modes``, ``cond_var`` are lists of
    each factor's, stacked in order (one table, no concatenation of frames)."""
    if isinstance(group_name, str):
        group_name, levels, re_names = [group_name], [levels], [re_names]
        modes, cond_var = [modes], [cond_var]
    parts = []
    for g, lv, names, m, cv in zip(group_name, levels, re_names, modes, cond_var):
        G, q = m.shape
        parts.append((np.full(G * q, g, dtype=object),
                      np.tile(np.asarray(lv, dtype=object), q),
                      np.repeat(np.asarray(names, dtype=object), G), m.T.ravel(),
                      np.sqrt(np.maximum(cv, 0.0)).T.ravel()))
    cols = [np.concatenate(c) for c in zip(*parts)]
    return pd.DataFrame(dict(zip(["group", "level", "term", "mode", "cond_sd"], cols)))


#: lme4's ``lme4.summary.cor.max``: more fixed effects than this and the correlation
#: matrix is not printed unless asked for
COR_MAX = 12


def n_obs_text(n_obs, n_rows=None):
    """The number of observations as lme4's ``%d`` prints it (never ``2e+06``). A weighted
    fit (``n_rows`` given and other than the sum of weights) says so: its frequency weights'
    sum, a non-integer one with R's 7 significant digits, and the rows."""
    n = float(n_obs)
    if n.is_integer():
        text = str(int(n))
    else:
        decimals = max(0, 7 - len(str(int(n))))  # R's 7 significant digits, no exponent
        text = f"{n:.{decimals}f}"
        text = text.rstrip("0").rstrip(".") if "." in text else text
    if n_rows is None or float(n_rows) == n:
        return text
    return f"{text} (sum of frequency weights; {int(n_rows)} rows)"


def frequency_quantiles(x, weights, probs):
    """R's type 7 quantiles of ``x`` with each value repeated ``weights`` times (the
    estimators' weights are frequency weights), without repeating them; NaNs dropped."""
    x = np.asarray(x, dtype=float)
    w = np.ones_like(x) if weights is None else np.asarray(weights, dtype=float)
    keep = ~np.isnan(x) & (w > 0)
    order = np.argsort(x[keep], kind="stable")
    xs, cum = x[keep][order], np.cumsum(w[keep][order])
    h = (cum[-1] - 1.0) * np.asarray(probs, dtype=float)
    lo = np.floor(h)

    def at(i):  # the value at 0-based position i of the repeated, sorted data
        return xs[np.minimum(np.searchsorted(cum, i, side="right"), xs.size - 1)]

    return at(lo) + (h - lo) * (at(np.minimum(lo + 1, cum[-1] - 1)) - at(lo))


def _zapsmall(x, digits):
    """R's ``zapsmall``: round to ``digits`` significant digits of the largest value."""
    mx = np.max(np.abs(x)) if x.size else 0.0
    return np.round(x, max(0, digits - int(np.ceil(np.log10(mx)))) if mx > 0 else digits)


def residual_lines(resid, weights=None, digits=4, hint=None):
    """lme4's ``Scaled residuals:`` block: the quantiles (Min 1Q Median 3Q Max, R's type 7,
    rows counted ``weights`` times) zapped to ``digits + 1`` and printed with ``digits``;
    without residuals, ``hint``."""
    if resid is None:
        return [f"Scaled residuals: not shown ({hint})", ""]
    q = _zapsmall(frequency_quantiles(resid, weights, [0.0, 0.25, 0.5, 0.75, 1.0]),
                  digits + 1)
    values = format_real(q, digits)
    names = ["Min", "1Q", "Median", "3Q", "Max"]
    w = max(len(v) for v in values + names)
    return ["Scaled residuals:", " ".join(n.rjust(w) for n in names),
            " ".join(v.rjust(w) for v in values), ""]


def random_effects_lines(vc, digits=4):
    """lme4's ``Random effects:`` table: variances and SDs with ``digits`` significant
    digits in a common format per column, correlations to 2 decimals."""
    rows = vc[vc["var2"].isna()]
    variances = format_real(rows["variance"].to_numpy(), digits)
    sds = format_real(rows["sd_cor"].to_numpy(), digits)
    table = [[row["group"], "" if pd.isna(row["var1"]) else str(row["var1"]), v, sd, ""]
             for (_, row), v, sd in zip(rows.iterrows(), variances, sds)]
    for _, row in vc[vc["var2"].notna()].iterrows():
        for t in table:
            if t[1] == row["var2"] and t[0] == row["group"]:
                t[4] = (t[4] + " " if t[4] else "") + f"{row['sd_cor']:.2f}"
    header = ["Groups", "Name", "Variance", "Std.Dev.", "Corr"]
    if not any(t[4] for t in table):
        header, table = header[:4], [t[:4] for t in table]
    previous = None
    for t in table:
        group = t[0]
        if group == previous:
            t[0] = ""
        previous = group
    return ["Random effects:"] + matrix_lines([""] * len(table), header, table, right=False)


def coef_lines(fixed, stat, with_p, digits=4):
    """A ``fixed_effects_``-like table (``estimate``, ``std_error``, optional ``df``,
    the statistic ``stat``, ``p_value``) printed as ``printCoefmat`` does: lme4's
    ``Estimate Std. Error t value``, lmerTest's ``... df t value Pr(>|t|)``, glmer's
    ``z value Pr(>|z|)``, with significance stars and their legend."""
    cols = ["estimate", "std_error"] + (["df"] if "df" in fixed.columns else [])
    names = ["Estimate", "Std. Error"] + (["df"] if "df" in fixed.columns else [])
    k = len(cols)
    cols.append("t" if "t" in fixed.columns else "z")
    names.append(f"{stat} value")
    if with_p:
        cols.append("p_value")
        names.append(f"Pr(>|{stat}|)")
    return coef_table(fixed[cols].to_numpy(dtype=float), [str(n) for n in fixed.index],
                      names, digits=digits, cs_ind=range(k), tst_ind=(k,), has_p=with_p)


def correlation_lines(names, cov, correlation=None, how_to_show=""):
    """lme4's ``Correlation of Fixed Effects:`` (lower triangle, 3 decimals, names
    abbreviated as lme4 does); by default only up to :data:`COR_MAX` fixed effects, with
    lme4's message beyond."""
    p = len(names)
    if correlation is None:
        correlation = p <= COR_MAX
        if not correlation:
            return ["", f"Correlation matrix not shown by default, as p = {p} > {COR_MAX}.",
                    f"Use {how_to_show} if you need it"]
    if not correlation or p < 2:
        return []
    cov = np.asarray(cov, dtype=float)
    sd = np.sqrt(np.diag(cov))
    with np.errstate(divide="ignore", invalid="ignore"):
        corr = cov / np.outer(sd, sd)
    cells = np.array(format_real([round(v, 3) if np.isfinite(v) else v
                                  for v in corr.ravel()], 7, nsmall=3),
                     dtype=object).reshape(p, p)
    cells[~np.tri(p, k=-1, dtype=bool)] = ""
    rows = abbreviate([str(n) for n in names], 11)
    cols = abbreviate([str(n) for n in names], 6)
    return ["", "Correlation of Fixed Effects:"] + matrix_lines(
        rows[1:], cols[:-1], [list(r[:-1]) for r in cells[1:]], right=False)


def _r_cat(x):
    """``cat(round(x, 1))`` as R prints it (lme4's criterion line): 7 significant digits,
    no exponent — ``5685833`` for 5685832.958, ``1743.6`` for 1743.628."""
    x = round(float(x), 1)
    if abs(x) >= 1e7:
        return str(int(round(x)))
    text = f"{x:.7g}"
    return f"{x:.0f}" if "e" in text else text


def summary_text(*, title, formula, criterion_name, criterion, vc, fixed, n_obs, group_name,
                 n_groups, n_rows=None, extra_lines=(), stat="z", with_p=True, residuals=None,
                 residual_weights=None, residuals_hint="", fixed_cov=None, correlation=None,
                 correlation_hint="summary(correlation=True) or fixed_cov_"):
    """lme4's printout of a fitted mixed model (``print(summary(m))``): title, formula,
    criterion, scaled residuals, random effects, numbers of observations and groups,
    fixed effects (``printCoefmat``) and their correlations."""
    shown = _r_cat(criterion) if np.isfinite(criterion) else "not evaluated"
    lines = [title, f"Formula: {formula}", "", f"{criterion_name}: {shown}", ""]
    lines += residual_lines(residuals, residual_weights, hint=residuals_hint)
    lines += random_effects_lines(vc)
    if isinstance(group_name, (list, tuple)):  # several grouping factors
        shown = "; ".join(f"{g}, {n}" for g, n in zip(group_name, n_groups))
    else:
        shown = f"{group_name}, {n_groups}"
    lines.append(f"Number of obs: {n_obs_text(n_obs, n_rows)}, groups:  {shown}")
    lines.extend(extra_lines)
    lines += ["", "Fixed effects:"] + coef_lines(fixed, stat, with_p)
    if fixed_cov is not None:
        lines += correlation_lines(list(fixed.index), fixed_cov, correlation,
                                   correlation_hint)
    return "\n".join(lines)
