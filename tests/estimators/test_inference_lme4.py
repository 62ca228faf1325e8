"""Inference against lme4 1.1-31, lmerTest 3.1-3 and pbkrtest 0.5.2: profile and Wald
intervals, Satterthwaite and Kenward–Roger t tests, likelihood-ratio tests, the parametric
bootstrap. References: ``tests/reference/lme4_inference.json`` written by
``lme4_inference.R`` from ``tests/data/sleepstudy.csv``, ``sleepstudy_unbalanced.csv``
(rows dropped by a stated rule: 5 to 10 days per subject) and ``cbpp.csv``.

Tolerances (the issue's, and what they rest on):

* profile intervals ≤ 1e-3 relative of lme4's ``confint(m, method = "profile")`` (measured
  ≤ 6e-5: lme4 interpolates a spline through its profile, we solve ζ(v) = ±z; cbpp's
  Laplace deviance in lme4 also carries its stale log-determinant, see
  test_mixedglm_lme4.py);
* Satterthwaite and Kenward–Roger df, SEs and p-values ≤ 1e-4 relative of lmerTest's at
  lme4's exact optimum (the "_tight" entries: bobyqa with rhoend = 1e-12; at lme4's
  default stopping point its θ is off in the 7th digit, which moves a p-value of 1e-17 by
  5e-4 relative);
* likelihood-ratio statistics ≤ 1e-6 relative of ``anova(m0, m1)`` (exact ML optima);
* the bootstrap within Monte-Carlo error of ``bootMer``'s 2,000 replicates (derived in
  :func:`test_bootstrap_within_monte_carlo_error_of_bootmer`).
"""


import numpy as np
import pandas as pd
import pytest
from scipy import stats

from skmixed import MixedGLM, MixedLM, RefitMLWarning, anova

PROFILE_RTOL = 1e-3
DF_RTOL = 1e-4
LRT_RTOL = 1e-6
WALD_RTOL = 1e-4

LME4_NAMES = {".sigma": "sigma"}


@pytest.fixture(scope="module")
def ref(load_reference):
    return load_reference("lme4_inference.json")


@pytest.fixture(scope="module")
def frames(data_file):
    out = {}
    for key, name in [("sleepstudy", "sleepstudy.csv"),
                      ("sleepstudy_unbalanced", "sleepstudy_unbalanced.csv")]:
        d = pd.read_csv(data_file(name))
        d["Subject"] = d["Subject"].astype("category")
        out[key] = d
    d = pd.read_csv(data_file("cbpp.csv"))
    dummies = pd.get_dummies(d["period"].astype("category"), prefix="period",
                             prefix_sep="", drop_first=True, dtype=float)
    out["cbpp"] = pd.concat([dummies, d.drop(columns="period")], axis=1)
    return out


MODELS = {"slope": dict(random_slopes=["Days"]), "intercept": {}}


@pytest.fixture(scope="module")
def lmm(frames):
    cache = {}

    def get(data, model, reml=True):
        key = (data, model, reml)
        if key not in cache:
            d = frames[data]
            cache[key] = MixedLM(groups="Subject", reml=reml, **MODELS[model]).fit(
                d[["Days", "Subject"]], d["Reaction"])
        return cache[key]

    return get


def lme4_param_names(model, rows):
    """lme4's .sig01… row names in our names (θ's order within the term, then σ)."""
    ours = list(model.confint(method="wald").index)
    return dict(zip(rows, ours))


def _rel(a, b):
    return abs(a - b) / max(abs(b), 1e-300)


CASES = [("sleepstudy", "slope", True), ("sleepstudy", "intercept", True),
         ("sleepstudy_unbalanced", "slope", True),
         ("sleepstudy_unbalanced", "intercept", True), ("sleepstudy", "slope", False)]


def _entry(data, model, reml, tight=False):
    return f"{data}_{model}_{'reml' if reml else 'ml'}" + ("_tight" if tight else "")


@pytest.mark.parametrize("data,model,reml", CASES)
@pytest.mark.parametrize("level", [0.95, 0.8])
def test_profile_intervals_match_lme4(ref, lmm, data, model, reml, level):
    entry = ref[_entry(data, model, reml)][f"confint_profile_{int(level * 100)}"]
    m = lmm(data, model, reml)
    ci = m.confint(level=level)
    names = lme4_param_names(m, entry["rows"])
    worst = 0.0
    for row, ours in names.items():
        for side in ("lower", "upper"):
            worst = max(worst, _rel(ci.loc[ours, side], entry[side][row]))
    assert worst < PROFILE_RTOL
    assert ci.attrs["level"] == level


@pytest.mark.parametrize("data,model,reml", CASES)
def test_wald_intervals_match_lme4(ref, lmm, data, model, reml):
    entry = ref[_entry(data, model, reml)]["confint_wald_95"]
    m = lmm(data, model, reml)
    ci = m.confint(method="wald")
    for row, ours in lme4_param_names(m, entry["rows"]).items():
        for side in ("lower", "upper"):
            if entry[side][row] is None:  # lme4's NA for the variance parameters
                assert np.isnan(ci.loc[ours, side])
            else:
                assert _rel(ci.loc[ours, side], entry[side][row]) < WALD_RTOL


# Kenward–Roger is defined for REML fits only (an ML fit raises: test_inference.py)
@pytest.mark.parametrize("data,model,reml,ddf", [
    case + (ddf,) for case in CASES for ddf in ("Satterthwaite", "Kenward-Roger")
    if case[2] or ddf == "Satterthwaite"])
def test_t_tests_match_lmertest(ref, lmm, data, model, reml, ddf):
    key = "satterthwaite" if ddf == "Satterthwaite" else "kenward_roger"
    entry = ref[_entry(data, model, reml, tight=True)][key]
    table = lmm(data, model, reml).fixed_effects_test(ddf)
    for term in entry["rows"]:
        assert _rel(table.loc[term, "df"], entry["df"][term]) < DF_RTOL
        assert _rel(table.loc[term, "std_error"], entry["std_error"][term]) < DF_RTOL
        assert _rel(table.loc[term, "p_value"], entry["p_value"][term]) < DF_RTOL
    assert table.attrs["ddf"] == ddf


def _anova_matches(table, entry, rtol):
    rows = entry["rows"]
    for k, row in enumerate(rows):
        assert table["npar"].iloc[k] == entry["npar"][row]
        for col in ("AIC", "BIC", "logLik", "deviance"):
            assert _rel(table[col].iloc[k], entry[col][row]) < rtol
    last = rows[-1]
    assert _rel(table["Chisq"].iloc[-1], entry["Chisq"][last]) < rtol
    assert table["Df"].iloc[-1] == entry["Df"][last]
    assert _rel(table["Pr(>Chisq)"].iloc[-1], entry["Pr(>Chisq)"][last]) < 1e-4


LRT_CASES = {
    # lme4's anova(m0, m1) of two REML fits: both refitted by ML
    "anova_intercept_vs_slope_tight": ((["Days", "Subject"], {}),
                                       (["Days", "Subject"], MODELS["slope"])),
    "anova_intercept_vs_days_tight": ((["Subject"], {}), (["Days", "Subject"], {})),
}


@pytest.mark.parametrize("entry_name", sorted(LRT_CASES))
def test_likelihood_ratio_tests_match_lme4(ref, frames, entry_name):
    d = frames["sleepstudy"]
    m0, m1 = (MixedLM(groups="Subject", **kw).fit(d[cols], d["Reaction"])
              for cols, kw in LRT_CASES[entry_name])
    with pytest.warns(RefitMLWarning, match="refitting model"):
        table = anova(m1, m0)  # any order: sorted by the number of parameters
    _anova_matches(table, ref[entry_name], LRT_RTOL)
    assert table.attrs["refit"]


def test_likelihood_ratio_test_without_refit_compares_reml_criteria(ref, lmm):
    table = anova(lmm("sleepstudy", "intercept"), lmm("sleepstudy", "slope"), refit=False)
    _anova_matches(table, ref["anova_intercept_vs_slope_norefit"], LRT_RTOL)
    assert not table.attrs["refit"]


@pytest.fixture(scope="module")
def cbpp_fits(frames):
    d = frames["cbpp"]
    return [MixedGLM(family="binomial", groups="herd", trials="size").fit(d[cols],
                                                                         d["incidence"])
            for cols in (["herd", "size"], ["period2", "period3", "period4", "herd", "size"])]


def test_glmm_likelihood_ratio_test_matches_lme4(ref, cbpp_fits):
    """cbpp, Laplace: against glmer at its exact optimum (tolPwrss = 1e-12: lme4's default
    PIRLS tolerance leaves its deviance ~6e-4 above the minimum, the "_tight" entry)."""
    _anova_matches(anova(*cbpp_fits), ref["anova_cbpp_tight"], LRT_RTOL)


@pytest.mark.parametrize("entry_name", ["cbpp_period", "cbpp_period_tight"])
def test_glmm_profile_intervals_match_lme4(ref, frames, cbpp_fits, entry_name):
    d = frames["cbpp"]
    X = d[["period2", "period3", "period4", "herd", "size"]]
    g = cbpp_fits[1]
    ci = g.confint(X, d["incidence"])
    entry = ref[entry_name]["confint_profile_95"]
    assert list(ci.index) == ["sd_(Intercept)|herd", "(Intercept)", "period2", "period3",
                              "period4"]
    for row, ours in zip(entry["rows"], ci.index):
        for side in ("lower", "upper"):
            assert _rel(ci.loc[ours, side], entry[side][row]) < PROFILE_RTOL
    wald = g.confint(method="wald")
    assert wald.loc["sd_(Intercept)|herd"].isna()[["lower", "upper"]].all()


def test_bootstrap_within_monte_carlo_error_of_bootmer(ref, lmm):
    """2,000 replicates here and in bootMer (seed 2026 there, 0 here). For a statistic with
    replicate SD s, independent Monte-Carlo errors give: means differ by N(0, 2s²/N), SDs
    by ≈ N(0, s²/N) (normal replicates), the 2.5 % and 97.5 % quantiles by N(0, 2 p(1−p) /
    (N f²)) with f the density there (≈ φ(1.96)/s for near-normal replicates: SE 0.085 s).
    Bounds at 4.5 standard errors (a false alarm ~1e-5 per comparison); and a two-sample
    Kolmogorov–Smirnov test per statistic (p > 1e-4)."""
    entry = ref["bootstrap_sleepstudy_slope_reml"]
    n = entry["nsim"]
    boot = lmm("sleepstudy", "slope").bootstrap(n, random_state=0, progress=False)
    assert boot.n_failed == 0
    ours = {"(Intercept)": "(Intercept)", "Days": "Days", "sigma": "sigma",
            "sd.(Intercept)": "sd_(Intercept)|Subject", "sd.Days": "sd_Days|Subject"}
    z = 4.5
    for theirs, name in ours.items():
        reps = boot.replicates[name].to_numpy()
        s = entry["sd"][theirs]
        assert abs(reps.mean() - entry["mean"][theirs]) < z * s * np.sqrt(2.0 / n)
        assert abs(reps.std(ddof=1) - s) < z * s / np.sqrt(n)
        se_q = np.sqrt(2 * 0.025 * 0.975 / n) / (stats.norm.pdf(1.96) / s)
        q_lo, q_hi = np.quantile(reps, [0.025, 0.975])
        assert abs(q_lo - entry["q025"][theirs]) < z * se_q
        assert abs(q_hi - entry["q975"][theirs]) < z * se_q
        assert stats.ks_2samp(reps, entry["replicates"][theirs]).pvalue > 1e-4
    ci = boot.confint()
    assert ci.loc["Days", "lower"] == pytest.approx(np.quantile(boot.replicates["Days"],
                                                                0.025))


def test_lmm_residuals_match_lme4(ref, lmm, frames):
    d = frames["sleepstudy"]
    m = lmm("sleepstudy", "slope")
    entry = ref["residuals_sleepstudy_slope"]
    X, y = d[["Days", "Subject"]], d["Reaction"]
    # lme4's default fit (its θ off in the 7th digit) moves its modes by up to 5e-6 σ
    atol = 1e-5 * m.sigma_
    np.testing.assert_allclose(m.residuals(X, y), entry["response"], atol=atol)
    np.testing.assert_allclose(m.residuals(X, y, type="pearson"), entry["pearson"], atol=atol)
    np.testing.assert_allclose(m.residuals(X, y, scaled=True), entry["scaled"], atol=1e-5)
    np.testing.assert_allclose(m.predict(X), entry["fitted"], atol=atol)


def test_glmm_residuals_match_lme4(ref, frames, cbpp_fits):
    """Residuals of the cbpp fit (y = successes of trials) on lme4's proportion scale."""
    d = frames["cbpp"]
    X = d[["period2", "period3", "period4", "herd", "size"]]
    g = cbpp_fits[1]
    entry = ref["residuals_cbpp_g1_tight"]
    for kind in ("response", "pearson", "deviance"):
        np.testing.assert_allclose(g.residuals(X, d["incidence"], type=kind), entry[kind],
                                   rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(g.predict(X) / d["size"], entry["fitted"], rtol=1e-5)


# ---------------------------------------------------------------- several grouping factors
def _penicillin_unbalanced(frame):
    """Penicillin without plates a–f × samples A, B, and x = (R's row number mod 7) / 7 —
    as lme4_inference.R builds it."""
    rownum = np.arange(1, len(frame) + 1)
    keep = ~(frame["plate"].isin(list("abcdef")) & frame["sample"].isin(["A", "B"]))
    return frame.assign(x=(rownum % 7) / 7.0)[keep].reset_index(drop=True)


MULTI = {
    "penicillin_tight": ("Penicillin.csv", ["plate", "sample"], [], "diameter", None),
    "pastes_tight": ("Pastes.csv", ["batch", ("cask", "batch")], [], "strength", None),
    "penicillin_unbalanced_tight": ("Penicillin.csv", ["plate", "sample"], ["x"],
                                    "diameter", _penicillin_unbalanced),
}


@pytest.mark.parametrize("entry_name", sorted(MULTI))
def test_several_factors_match_lmertest_and_lme4(ref, data_file, entry_name):
    """Satterthwaite and Kenward–Roger (pbkrtest) t tests at 1e-4, profile intervals at
    1e-3, with crossed, nested and unbalanced crossed factors."""
    file, groups, fixed, response, prepare = MULTI[entry_name]
    d = pd.read_csv(data_file(file))
    if prepare is not None:
        d = prepare(d)
    cols = [c for g in groups for c in ((g,) if isinstance(g, str) else g)]
    X = d[list(dict.fromkeys(cols)) + fixed]
    m = MixedLM(groups=groups).fit(X, d[response])
    entry = ref[entry_name]
    assert entry["rows_used"] == len(d)
    for ddf, key in (("Satterthwaite", "satterthwaite"), ("Kenward-Roger", "kenward_roger")):
        table = m.fixed_effects_test(ddf)
        rows = entry[key]["rows"]
        for term in [rows] if isinstance(rows, str) else rows:  # jsonlite unboxes one
            for col, theirs in (("df", "df"), ("std_error", "std_error"),
                                ("p_value", "p_value")):
                assert _rel(table.loc[term, col], entry[key][theirs][term]) < DF_RTOL
    ci = m.confint()
    prof = entry["confint_profile_95"]
    ours = list(ci.index)
    assert len(ours) == len(prof["rows"])
    # lme4's .sig rows follow its terms' order (by number of levels), as ours
    for row, name in zip(prof["rows"], ours):
        for side in ("lower", "upper"):
            assert _rel(ci.loc[name, side], prof[side][row]) < PROFILE_RTOL


def test_crossed_glmm_profile_intervals_match_lme4(ref, data_file):
    """y ~ x + (1 | g1) + (1 | g2), binomial, 3,000 rows: the profile of the several-factor
    Laplace deviance. Compared with lme4's fine profile (delta = 0.05) within 1e-3 of each
    interval's width (an end near 0 makes a relative comparison meaningless)."""
    d = pd.read_csv(data_file("glmm_slopes.csv"))
    X = d[["g1", "g2", "x"]]
    g = MixedGLM(family="binomial", groups=["g1", "g2"]).fit(X, d["y"])
    ci = g.confint(X, d["y"])
    entry = ref["glmm_crossed_binomial_tight"]
    assert g.loglik_ >= entry["fit"]["logLik"] - 1e-6
    for key in ("confint_profile_fine_95", "confint_profile_95"):
        prof = entry[key]
        for row, name in zip(prof["rows"], ci.index):
            width = prof["upper"][row] - prof["lower"][row]
            tol = 1e-3 if key.endswith("fine_95") else 3e-3  # lme4's coarse spline
            for side in ("lower", "upper"):
                assert abs(ci.loc[name, side] - prof[side][row]) < tol * width
    # and the ends are where an independent search (L-BFGS-B with the exact gradient, three
    # starts) puts ζ = ±z — lme4's are not quite (ζ = 1.9578 at its g2 SD's upper end)
    from scipy import optimize

    from skmixed._estimators._inference import glmm_profile
    prof = glmm_profile(g, X, d["y"], None)
    with prof.threads():
        y_hat, f_hat, _ = prof.optimum()
        for j, name in enumerate(ci.index[:2]):
            free = [k for k in range(y_hat.size) if k != j]
            for side, z in (("lower", -1.959964), ("upper", 1.959964)):
                v = ci.loc[name, side]

                def fun(x, v=v, j=j, free=free):
                    point = y_hat.copy()
                    point[free], point[j] = x, v
                    value, grad = prof.value_and_grad(point)
                    return value, grad[free]

                best = min((optimize.minimize(fun, y_hat[free] + shift, jac=True,
                                              method="L-BFGS-B",
                                              options=dict(ftol=1e-15, gtol=1e-10))
                            for shift in (0.0, 0.05, -0.05)), key=lambda r: r.fun)
                assert np.sign(z) * np.sqrt(best.fun - f_hat) == pytest.approx(z, abs=1e-4)
