"""Tidy result tables (lme4's fixef/VarCorr/ranef layouts) and the lme4-style summary text."""

import numpy as np
import pandas as pd
from scipy import stats

from ._inference import format_p_value

__all__ = ["fixed_effects_table", "variance_component_rows", "variance_components_frame",
           "random_effects_table", "summary_text", "VC_COLUMNS"]


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


def variance_components_frame(rows):
    """The variance components' DataFrame from rows of :data:`VC_COLUMNS`: the names as
    object columns with None where a row has none (lme4's NA), whatever string dtype pandas
    would infer."""
    cols = list(zip(*rows)) if rows else [()] * len(VC_COLUMNS)
    data = {name: pd.Series(list(col), dtype=object)
            for name, col in zip(VC_COLUMNS[:3], cols[:3])}
    data.update({name: pd.Series(col, dtype=float) for name, col in zip(VC_COLUMNS[3:],
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


def _fmt(x, digits=4):
    return f"{x:.{digits}g}"


def summary_text(*, title, formula, criterion_name, criterion, vc, fixed, n_obs, group_name,
                 n_groups, extra_lines=()):
    """lme4-like printout of a fitted mixed model."""
    shown = f"{criterion:.4f}" if np.isfinite(criterion) else "not evaluated"
    lines = [title, f"Formula: {formula}", "", f"{criterion_name}: {shown}", ""]
    lines.append("Random effects:")
    table = []
    for _, row in vc.iterrows():
        if pd.isna(row["var2"]):
            table.append([row["group"], "" if pd.isna(row["var1"]) else row["var1"],
                          _fmt(row["variance"]),
                          _fmt(row["sd_cor"]), ""])
    corr_rows = vc[vc["var2"].notna()]
    for _, row in corr_rows.iterrows():
        for t in table:
            if t[1] == row["var2"] and t[0] == row["group"]:
                t[4] = (t[4] + " " if t[4] else "") + f"{row['sd_cor']:.2f}"
    header = ["Groups", "Name", "Variance", "Std.Dev.", "Corr"]
    widths = [max(len(str(r[i])) for r in table + [header]) for i in range(5)]

    def fmt_row(r):
        return " " + "  ".join(str(v).ljust(w) for v, w in zip(r, widths)).rstrip()

    lines.append(fmt_row(header))
    previous = None
    for r in table:
        shown = list(r)
        if r[0] == previous:
            shown[0] = ""
        previous = r[0]
        lines.append(fmt_row(shown))
    if isinstance(group_name, (list, tuple)):  # several grouping factors
        shown = "; ".join(f"{g}, {n}" for g, n in zip(group_name, n_groups))
    else:
        shown = f"{group_name}, {n_groups}"
    lines.append(f"Number of obs: {n_obs:g}, groups:  {shown}")
    lines.extend(extra_lines)
    lines += ["", "Fixed effects:"]
    with_df = "df" in fixed.columns
    stat = "t" if with_df else "z"
    ft = fixed.rename(columns={"estimate": "Estimate", "std_error": "Std. Error",
                               stat: f"{stat} value"}).rename_axis(None)
    p_name = f"Pr(>|{stat}|)"
    ft = ft.drop(columns="p_value")
    ft[p_name] = [format_p_value(p) for p in fixed["p_value"]]
    lines.append(ft.to_string(float_format=lambda v: f"{v:.6g}"))
    if with_df:
        lines.append(f"(df: {fixed.attrs.get('ddf', 'Satterthwaite')})")
    return "\n".join(lines)
