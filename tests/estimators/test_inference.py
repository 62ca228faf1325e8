"""The inference methods' behaviour: errors on bad input (before fit, unknown parameters,
levels, methods; models fitted to different data, not nested, of different kinds; a df
method asked of a GLMM or of an ML fit for Kenward–Roger; profile intervals of a GLMM
without its data), results independent of ``n_jobs``, R's p-value printing, pickling,
several grouping factors."""

import pickle

import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import NotFittedError

from skmixed import MixedGLM, MixedLM, RefitMLWarning, anova
from skmixed._estimators._inference import format_p_value
from skmixed.datasets import make_multilevel


@pytest.fixture(scope="module")
def sleep(data_file):
    d = pd.read_csv(data_file("sleepstudy.csv"))
    d["Subject"] = d["Subject"].astype("category")
    return d


@pytest.fixture(scope="module")
def slope(sleep):
    return MixedLM(groups="Subject", random_slopes=["Days"]).fit(
        sleep[["Days", "Subject"]], sleep["Reaction"])


@pytest.fixture(scope="module")
def intercept(sleep):
    return MixedLM(groups="Subject").fit(sleep[["Days", "Subject"]], sleep["Reaction"])


@pytest.fixture(scope="module")
def glmm():
    df = make_multilevel(3000, 40, random_state=3)
    X = df[["g", "x", "b"]]
    return MixedGLM(family="binomial", groups="g").fit(X, df["y_bin"]), X, df["y_bin"]


@pytest.mark.parametrize("call", [
    lambda m: m.confint(), lambda m: m.bootstrap(10), lambda m: m.fixed_effects_test(),
    lambda m: anova(m, m)])
def test_inference_before_fit_raises_not_fitted(call):
    with pytest.raises(NotFittedError):
        call(MixedLM(groups="g"))


def test_glmm_inference_before_fit_raises_not_fitted():
    with pytest.raises(NotFittedError):
        MixedGLM(groups="g").confint()


@pytest.mark.parametrize("kwargs,match", [
    (dict(level=1.5), "level=1.5"), (dict(level=0), "level=0"),
    (dict(method="jackknife"), "method='jackknife'"),
    (dict(parm=["Days", "nope"]), r"unknown parameter\(s\) \['nope'\]"),
    (dict(method="bootstrap", n_boot=0), "n_boot=0"),
    (dict(method="bootstrap", random_state=np.random.RandomState(0)), "legacy RandomState"),
    (dict(parm=0.9), r"parm=0.9: parameter names; the confidence level is level=0.9")])
def test_confint_bad_arguments_name_the_argument(slope, kwargs, match):
    with pytest.raises(ValueError, match=match):
        slope.confint(**kwargs)


def test_confint_parm_selects_rows_in_the_order_asked(slope):
    ci = slope.confint(parm=["Days", "sigma"])
    assert list(ci.index) == ["Days", "sigma"]
    assert (ci["lower"] < ci["estimate"]).all() and (ci["estimate"] < ci["upper"]).all()


def test_confint_estimates_are_the_fit_s(slope):
    """The profile intervals come from the ML refit (as lme4's); the estimate column is the
    fitted (REML) model's."""
    ci = slope.confint()
    vc = slope.variance_components_
    assert ci.loc["sigma", "estimate"] == pytest.approx(slope.sigma_, rel=1e-10)
    assert ci.loc["sd_Days|Subject", "estimate"] == pytest.approx(
        vc.loc[vc["var1"].eq("Days") & vc["var2"].isna(), "sd_cor"].item(), rel=1e-8)
    assert ci.loc["Days", "estimate"] == pytest.approx(slope.coef_[0], rel=1e-12)


def test_ddf_errors(slope, sleep, glmm):
    with pytest.raises(ValueError, match="ddf='welch'"):
        slope.fixed_effects_test("welch")
    ml = MixedLM(groups="Subject", reml=False).fit(sleep[["Days", "Subject"]],
                                                    sleep["Reaction"])
    with pytest.raises(ValueError, match="needs a REML fit"):
        ml.fixed_effects_test("Kenward-Roger")
    g = glmm[0]
    for ddf in ("Satterthwaite", "Kenward-Roger"):
        with pytest.raises(ValueError, match="linear mixed models"):
            g.fixed_effects_test(ddf)
        with pytest.raises(ValueError, match="linear mixed models"):
            g.summary(ddf=ddf)
    assert g.fixed_effects_test("asymptotic").equals(g.fixed_effects_)


def test_anova_refuses_different_data(sleep, slope):
    short = sleep.iloc[:-10]
    m_short = MixedLM(groups="Subject").fit(short[["Days", "Subject"]], short["Reaction"])
    with pytest.raises(ValueError, match="same size of data"):
        anova(m_short, slope)
    other = sleep.assign(Reaction=sleep["Reaction"] + 1.0)
    m_other = MixedLM(groups="Subject").fit(other[["Days", "Subject"]], other["Reaction"])
    with pytest.raises(ValueError, match="different responses"):
        anova(m_other, slope)


@pytest.mark.filterwarnings("ignore::skmixed.SingularFitWarning")
def test_anova_refuses_models_that_are_not_nested(sleep):
    d = sleep.assign(Night=(sleep["Days"] % 2).astype(float))
    a = MixedLM(groups="Subject").fit(d[["Days", "Subject"]], d["Reaction"])
    b = MixedLM(groups="Subject", random_slopes=["Night"]).fit(d[["Night", "Subject"]],
                                                               d["Reaction"])
    with pytest.raises(ValueError, match="not nested"):
        anova(a, b)


def test_anova_refuses_one_model_and_mixed_kinds(slope, glmm):
    with pytest.raises(ValueError, match="at least two"):
        anova(slope)
    with pytest.raises(ValueError, match="one kind"):
        anova(slope, glmm[0])
    with pytest.raises(ValueError, match="MixedLM or MixedGLM"):
        anova(slope, "model")


def test_glmm_profile_needs_the_data_it_was_fitted_to(glmm):
    g, X, y = glmm
    with pytest.raises(ValueError, match="need the data the model was fitted to"):
        g.confint()
    with pytest.raises(ValueError, match="not the data"):
        g.confint(X, 1 - y)
    with pytest.raises(ValueError, match="not the data"):
        g.confint(X.iloc[:-5], y.iloc[:-5])
    with pytest.raises(ValueError, match="pass the X it was fitted to"):
        g.confint(method="bootstrap")


def test_glmm_profile_contains_the_estimates_and_wald_is_close(glmm):
    g, X, y = glmm
    prof = g.confint(X, y)
    wald = g.confint(method="wald")
    assert (prof["lower"] < prof["estimate"]).all() and (prof["estimate"] < prof["upper"]).all()
    fixed = list(g.fixed_effects_.index)
    # a near-quadratic deviance in β: profile and Wald ends within a tenth of an SE
    se = g.fixed_effects_["std_error"]
    for side in ("lower", "upper"):
        assert (np.abs(prof.loc[fixed, side] - wald.loc[fixed, side]) < 0.1 * se).all()


def test_bootstrap_does_not_depend_on_n_jobs(slope):
    a = slope.bootstrap(30, random_state=7, n_jobs=1, progress=False)
    b = slope.bootstrap(30, random_state=7, n_jobs=2, progress=False)
    c = slope.bootstrap(30, random_state=8, n_jobs=1, progress=False)
    pd.testing.assert_frame_equal(a.replicates, b.replicates, check_exact=True)
    assert not np.allclose(a.replicates.to_numpy(), c.replicates.to_numpy())


def test_bootstrap_of_several_factors_refits_simulated_rows(data_file):
    """Several factors: responses simulated for X's rows, clones refitted; the same
    replicates whatever n_jobs; without X a clear error."""
    d = pd.read_csv(data_file("Penicillin.csv"))
    X = d[["plate", "sample"]]
    m = MixedLM(groups=["plate", "sample"]).fit(X, d["diameter"])
    with pytest.raises(ValueError, match="pass the X it was fitted to"):
        m.bootstrap(5)
    a = m.bootstrap(8, X=X, random_state=3, n_jobs=1, progress=False)
    b = m.bootstrap(8, X=X, random_state=3, n_jobs=2, progress=False)
    pd.testing.assert_frame_equal(a.replicates, b.replicates, check_exact=True)
    assert list(a.replicates.columns) == list(m.confint(method="wald").index)
    assert a.n_failed == 0
    ci = m.confint(method="bootstrap", n_boot=8, X=X, random_state=3)
    assert ci.loc["sigma", "lower"] == pytest.approx(np.quantile(a.replicates["sigma"],
                                                                 0.025))


def test_glmm_bootstrap_and_weighted_refusal(glmm, sleep):
    g, X, y = glmm
    boot = g.bootstrap(6, X=X, random_state=1, progress=False)
    assert boot.replicates.shape == (6, 4) and boot.n_failed == 0
    assert np.all(np.abs(boot.replicates["x"] - g.coef_[0]) < 10 * g.fixed_effects_.loc[
        "x", "std_error"])
    w = np.where(np.arange(len(sleep)) % 2, 2.0, 1.0)
    mw = MixedLM(groups=["Subject", "Days"]).fit(sleep[["Subject", "Days"]],
                                                  sleep["Reaction"], sample_weight=w)
    with pytest.raises(ValueError, match="sample weights"):
        mw.bootstrap(3, X=sleep[["Subject", "Days"]])


def test_parametric_bootstrap_likelihood_ratio_test(sleep, slope, intercept):
    X = sleep[["Days", "Subject"]]
    with pytest.warns(RefitMLWarning):
        table = anova(slope, intercept, method="bootstrap", X=[X, X], n_boot=19,
                      random_state=5)
    reps = table.attrs["bootstrap"]
    assert reps.shape == (19,) and np.isfinite(reps).all() and (reps >= 0).all()
    # the observed statistic (42) is far beyond the null's: the smallest p-value possible
    assert table["Pr(boot)"].iloc[1] == pytest.approx(1 / 20)
    with pytest.raises(ValueError, match=r"needs X=\[X of the first model"):
        anova(slope, intercept, method="bootstrap", n_boot=3)
    with pytest.raises(ValueError, match="method='exact'"):
        anova(slope, intercept, method="exact")


def test_several_factors_profile_and_satterthwaite(data_file):
    """Penicillin (crossed): every interval contains the estimate; Satterthwaite's df for
    the intercept lie between the smaller factor's levels − 1 and n − 1."""
    d = pd.read_csv(data_file("Penicillin.csv"))
    m = MixedLM(groups=["plate", "sample"]).fit(d[["plate", "sample"]], d["diameter"])
    ci = m.confint()
    assert list(ci.index) == ["sd_(Intercept)|plate", "sd_(Intercept)|sample", "sigma",
                              "(Intercept)"]
    assert (ci["lower"] < ci["estimate"]).all() and (ci["estimate"] < ci["upper"]).all()
    t = m.fixed_effects_test()
    assert 5 <= t.loc["(Intercept)", "df"] <= len(d) - 1


def test_r_style_p_values_in_summary(slope):
    assert format_p_value(1e-300) == "<2e-16"  # alone: R's format.pval(1e-300, digits = 3)
    assert format_p_value([1e-300, 3.2638e-06]) == ["< 2e-16", "3.26e-06"]
    assert format_p_value(3.2638e-06) == "3.26e-06"
    assert format_p_value(0.5181503) == "0.518"
    assert format_p_value(np.nan) == "NA"
    text = slope.summary(ddf="Satterthwaite")
    assert "Pr(>|t|)" in text and "t value" in text and " df " in text
    assert "< 2e-16" in text and "e-297" not in text
    assert "Pr(>|z|)" in slope.summary(ddf="asymptotic")
    assert "Pr(>" not in slope.summary() and "t value" in slope.summary()  # lme4's table


def test_pickled_model_keeps_its_inference(slope):
    again = pickle.loads(pickle.dumps(slope))
    pd.testing.assert_frame_equal(again.confint(), slope.confint())
    pd.testing.assert_frame_equal(again.fixed_effects_test(), slope.fixed_effects_test())


# ---------------------------------------------------------------- the review's cases
def _brute_zeta(inf, j, v):
    """ζ of variance parameter j at v by an independent search: Nelder–Mead from several
    starts (both correlation signs, SDs away from 0) on the same ML deviance."""
    from scipy import optimize

    from skmixed._model.lmm_inference import _VarianceProfile
    objective, theta, sigma, dev = inf.ml_fit()
    phi = inf.vmap.to_user(theta, sigma)
    prof = _VarianceProfile(inf, objective, phi, j, dev)
    best = np.inf
    free = phi[prof.free] / prof.scale
    for sign in (1.0, -1.0):
        for shrink in (1.0,):
            x0 = free * shrink
            x0[prof.is_cor] = sign * np.clip(np.abs(free[prof.is_cor]), 0.1, 0.95)
            x0[prof.is_sd] = np.maximum(x0[prof.is_sd], 0.1)
            r = optimize.minimize(lambda x: prof.deviance(v, np.concatenate(
                [np.clip(x[prof.is_cor], -1, 1), np.abs(x[~prof.is_cor])])[np.argsort(
                    np.concatenate([np.flatnonzero(prof.is_cor),
                                    np.flatnonzero(~prof.is_cor)]))]),
                x0, method="Nelder-Mead",
                options=dict(xatol=1e-10, fatol=1e-12, maxiter=20000, maxfev=20000))
            best = min(best, r.fun)
    return np.sign(v - phi[j]) * np.sqrt(max(best - dev, 0.0))


@pytest.mark.parametrize("shift", [30, -30])
def test_profile_of_an_uncentred_random_slope(sleep, shift):
    """(Dc | Subject) with Dc = Days − shift: intercept and slope correlated near ±1, the
    intercept SD's profile moves between the ρ > 0 and ρ < 0 sides. Every variance
    parameter's ends are where an independent multi-start search puts ζ = ±1.96 (lme4 for
    shift 30: sd (120.8, 263.5))."""
    d = sleep.assign(Dc=sleep["Days"] - shift)
    m = MixedLM(groups="Subject", random_slopes=["Dc"]).fit(d[["Dc", "Subject"]],
                                                            d["Reaction"])
    ci = m.confint()
    names = list(ci.index)
    for j in (0, 2):  # the SDs
        for side, z in (("lower", -1.959964), ("upper", 1.959964)):
            assert _brute_zeta(m._inference, j, ci.iloc[j][side]) == pytest.approx(z,
                                                                                  abs=2e-4)
    if shift == 30:
        assert ci.loc[names[0], "lower"] == pytest.approx(120.8, abs=0.1)
        assert ci.loc[names[0], "upper"] == pytest.approx(263.5, abs=0.1)


def test_profile_of_a_correlation_without_intercept(sleep):
    """fit_intercept=False: the correlation's interval is not a point stuck where an SD hit
    0 (the review's case), and contains the estimate."""
    m = MixedLM(groups="Subject", random_slopes=["Days"], fit_intercept=False).fit(
        sleep[["Days", "Subject"]], sleep["Reaction"])
    ci = m.confint(parm=["cor_Days.(Intercept)|Subject"])
    lo, est, hi = ci.iloc[0][["lower", "estimate", "upper"]]
    assert lo < est < hi and hi - lo > 1.0
    for v, z in ((lo, -1.959964), (hi, 1.959964)):
        assert _brute_zeta(m._inference, 1, v) == pytest.approx(z, abs=2e-4)


def test_fixed_effect_profile_at_a_singular_fit():
    """A between-group variance estimated at 0 (θ = 0: a stationary point a search stays
    on): the fixed effect's ends are where the deviance minimized over a θ grid puts
    ζ = ±1.96."""
    from scipy import optimize

    from skmixed._model.lmm_inference import _FixedProfile
    rng = np.random.default_rng(4)
    g = np.repeat(np.arange(6), 5)
    y = 5.0 + rng.normal(0, 3.0, g.size)
    X = pd.DataFrame({"g": g})
    with pytest.warns(Warning):
        m = MixedLM(groups="g").fit(X, y)
    assert m.theta_[0] < 1e-4
    ci = m.confint(parm="(Intercept)")
    inf = m._inference
    objective, theta, sigma, dev = inf.ml_fit()
    fp = _FixedProfile(inf, objective, theta, inf.A[0], inf.c[0], dev)
    for side, z in (("lower", -1.959964), ("upper", 1.959964)):
        v = ci.loc["(Intercept)", side]
        best = min(optimize.minimize_scalar(
            lambda t: fp.deviance(v, np.array([t])), bounds=(a, b), method="bounded",
            options=dict(xatol=1e-12)).fun for a, b in ((0, 0.3), (0.3, 1.0), (1.0, 3.0)))
        assert np.sign(z) * np.sqrt(best - dev) == pytest.approx(z, abs=1e-5)


@pytest.mark.parametrize("reml", [True, False])
def test_prediction_standard_errors_are_henderson_s(sleep, reml):
    """One factor: the SE of x'β̂ + z'b̂ is from the joint covariance of (β̂, b̂ − b) — the
    inverse of the mixed-model equations, computed densely here (θ and σ fixed)."""
    X = sleep[["Days", "Subject"]]
    m = MixedLM(groups="Subject", random_slopes=["Days"], reml=reml).fit(X,
                                                                         sleep["Reaction"])
    codes = pd.Categorical(sleep["Subject"], categories=m.group_levels_["Subject"]).codes
    n, G = len(sleep), len(m.group_levels_["Subject"])
    Xm = np.c_[np.ones(n), sleep["Days"]]
    Z = np.zeros((n, 2 * G))
    Z[np.arange(n), 2 * codes] = 1.0
    Z[np.arange(n), 2 * codes + 1] = sleep["Days"]
    Sig, s2 = m._re_covariance["Subject"], m.sigma_ ** 2
    P = np.block([[Xm.T @ Xm, Xm.T @ Z],
                  [Z.T @ Xm, Z.T @ Z + s2 * np.kron(np.eye(G), np.linalg.inv(Sig))]]) / s2
    C = np.c_[Xm, Z]
    exact = np.sqrt(np.einsum("ia,ab,ib->i", C, np.linalg.inv(P), C))
    if not reml:  # REML: cov(β̂) from the REML fit's σ̂², the same formula
        np.testing.assert_allclose(m.predict(X, return_std=True)[1], exact, rtol=1e-6)
    _, std = m.predict(X, return_std=True)
    np.testing.assert_allclose(std, exact, rtol=1e-6)
    pop = m.predict(X, random_effects=False, return_std=True)[1]
    np.testing.assert_allclose(pop, np.sqrt(np.einsum("ia,ab,ib->i", Xm, m.fixed_cov_, Xm)))


def test_glmm_profile_refuses_other_rows(data_file):
    """The deviance at the fitted estimates checks X too: doubled trials, shuffled groups,
    another offset — not the data the model was fitted to."""
    d = pd.read_csv(data_file("cbpp.csv"))
    X = pd.get_dummies(d["period"].astype("category"), prefix="period", drop_first=True,
                       dtype=float).assign(herd=d["herd"], size=d["size"])
    g = MixedGLM(family="binomial", groups="herd", trials="size").fit(X, d["incidence"])
    bad = [X.assign(size=2 * X["size"]),
           X.assign(herd=X["herd"].sample(frac=1, random_state=0).to_numpy()),
           X.assign(period_2=X["period_3"], period_3=X["period_2"])]
    for Xb in bad:
        with pytest.raises(ValueError, match="not the data the model was fitted to"):
            g.confint(Xb, d["incidence"])


def test_classifier_with_string_labels(glmm):
    g, X, y = glmm
    labels = np.where(y == 1, "yes", "no")
    gs = MixedGLM(family="binomial", groups="g").fit(X, labels)
    g0 = MixedGLM(family="binomial", groups="g").fit(X[["g", "x"]], labels)
    table = anova(g0, gs)
    assert table["Df"].iloc[1] == 1
    with pytest.raises(ValueError, match="not the data"):
        gs.confint(X, labels[::-1].copy())
    pd.testing.assert_frame_equal(gs.confint(X, labels), g.confint(X, y), rtol=1e-6)


def test_satterthwaite_does_not_depend_on_the_scale_of_y(sleep):
    X = sleep[["Days", "Subject"]]
    a = MixedLM(groups="Subject", random_slopes=["Days"]).fit(X, sleep["Reaction"])
    b = MixedLM(groups="Subject", random_slopes=["Days"]).fit(X, sleep["Reaction"] * 1e-6)
    for ddf in ("Satterthwaite", "Kenward-Roger"):
        np.testing.assert_allclose(b.fixed_effects_test(ddf)["df"],
                                   a.fixed_effects_test(ddf)["df"], rtol=1e-5)


def test_anova_refuses_mixed_criteria(sleep, slope, glmm):
    ml = MixedLM(groups="Subject", reml=False).fit(sleep[["Days", "Subject"]],
                                                    sleep["Reaction"])
    with pytest.raises(ValueError, match="some models were fitted by REML, some by ML"):
        anova(ml, slope, refit=False)
    g, X, y = glmm
    g10 = MixedGLM(family="binomial", groups="g", n_agq=10).fit(X[["g", "x"]], y)
    with pytest.raises(ValueError, match="different n_agq"):
        anova(g10, g)


def test_iterative_fits_wald_only(data_file):
    from skmixed.datasets import make_crossed
    d = make_crossed(20000, 2000, 1000, random_state=0)
    X = d[["x", "user", "item"]]
    m = MixedLM(groups=["user", "item"], solver="iterative").fit(X, d["y"])
    wald = m.confint(method="wald")
    assert wald.loc["x", "lower"] < m.coef_[0] < wald.loc["x", "upper"]
    assert np.isfinite(m.predict_interval(X.iloc[:3], random_effects=False)).all().all()
    with pytest.raises(ValueError, match="conditional variances of the modes"):
        m.predict_interval(X.iloc[:3])
    with pytest.raises(ValueError, match="solver='iterative'"):
        m.confint()


def test_bootstrap_accepts_a_generator_and_profiles_list_each_point_once(slope):
    a = slope.bootstrap(5, random_state=np.random.default_rng(3), progress=False)
    b = slope.bootstrap(5, random_state=np.random.default_rng(3), progress=False)
    pd.testing.assert_frame_equal(a.replicates, b.replicates)
    prof = slope.profile(parm="Days", n_points=5)
    assert prof["value"].is_unique and len(prof) in (5, 6)
    assert np.min(np.abs(prof["zeta"])) < 1e-6  # the estimate, once


def test_several_factor_glmm_profiles_with_random_slopes(data_file):
    """(1 + x | g1) + (1 | g2), binomial and (diagonal) Poisson: the general and exact
    several-factor paths profile; every interval contains its estimate, the fixed
    effects' ends are within 15 % of an SE of the Wald ones (near-quadratic deviance at
    3,000 rows), and an end is where ζ = ±1.96."""
    d = pd.read_csv(data_file("glmm_slopes.csv"))
    X = d[["g1", "g2", "x"]]
    for family, y, cov in (("binomial", "y", "unstructured"), ("poisson", "c", "diagonal")):
        g = MixedGLM(family=family, groups=["g1", "g2"], random_slopes={"g1": ["x"]},
                     covariance={"g1": cov}).fit(X, d[y])
        ci = g.confint(X, d[y])
        assert (ci["lower"] < ci["estimate"]).all() and (ci["estimate"] < ci["upper"]).all()
        wald = g.confint(method="wald")
        se = g.fixed_effects_["std_error"]
        for side in ("lower", "upper"):
            assert (np.abs(ci.loc[se.index, side] - wald.loc[se.index, side])
                    < 0.15 * se).all()
        trace = g.profile(X, d[y], parm="x", level=0.95, n_points=3)
        assert trace["zeta"].iloc[0] == pytest.approx(-1.959964, abs=1e-6)
        assert trace["zeta"].iloc[-1] == pytest.approx(1.959964, abs=1e-6)


def _q3_data():
    """A 3-column random-effects term (the second review's case): 18 groups of 4–9 rows."""
    rng = np.random.default_rng(5)
    k = rng.integers(4, 10, 18)
    g = np.repeat(np.arange(18), k)
    n = len(g)
    x1, x2 = rng.normal(0, 1, n), rng.uniform(-1, 2, n)
    b = rng.multivariate_normal(np.zeros(3), [[1.0, 0.3, -0.2], [0.3, 0.5, 0.1],
                                              [-0.2, 0.1, 0.4]], 18)
    y = (0.2 + 0.5 * x1 - 0.3 * x2 + b[g, 0] + b[g, 1] * x1 + b[g, 2] * x2
         + rng.normal(0, 0.7, n))
    rng.normal(0, 0.8, 6)[rng.integers(0, 6, n)]  # (the review's crossed response, unused)
    cnt = rng.poisson(np.exp(0.5 + 0.3 * x1 + b[g, 0] * 0.7 + b[g, 1] * 0.6 * x1))
    return pd.DataFrame({"g": [f"g{i}" for i in g], "x1": x1, "x2": x2, "y": y, "cnt": cnt})


@pytest.mark.filterwarnings("ignore::skmixed.SingularFitWarning")
def test_profiles_of_a_three_column_term_stay_among_correlation_matrices():
    """Three correlations within ±1 need not make a correlation matrix: such points have an
    infinite deviance (not a silently projected one), so the profiles do not jump between
    branches. Ends against the review's brute force (dense ML deviance with a positive-
    definiteness check, 12 starts: cor lower −0.6336) and lme4 for the GLMM's fixed effects
    (x1 lower −0.1084, x2 upper 0.4710; brute-force ζ there −1.959, 1.959)."""
    d = _q3_data()
    X = d[["x1", "x2", "g"]]
    m = MixedLM(groups="g", random_slopes=["x1", "x2"]).fit(X, d["y"])
    ci = m.confint(parm=["cor_x2.(Intercept)|g"])
    assert ci.iloc[0]["lower"] == pytest.approx(-0.6336, abs=1e-3)
    g = MixedGLM(family="poisson", groups="g", random_slopes=["x1", "x2"]).fit(X, d["cnt"])
    ci = g.confint(X, d["cnt"], parm=["x1", "x2"])
    assert ci.loc["x1", "lower"] == pytest.approx(-0.1084, abs=1e-3)
    assert ci.loc["x2", "upper"] == pytest.approx(0.4710, abs=1e-3)


def test_approximate_prediction_variances_warn(data_file, slope, sleep):
    from skmixed import ApproximationWarning
    d = pd.read_csv(data_file("Penicillin.csv"))
    X = d[["plate", "sample"]]
    m = MixedLM(groups=["plate", "sample"]).fit(X, d["diameter"])
    with pytest.warns(ApproximationWarning, match="approximate"):
        m.predict_interval(X.iloc[:3])
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error", ApproximationWarning)
        m.predict_interval(X.iloc[:3], random_effects=False)  # exact: no warning
        slope.predict_interval(sleep[["Days", "Subject"]].iloc[:3])  # one factor: exact


def test_row_bootstrap_checks_its_rows(data_file, sleep, slope, intercept):
    d = pd.read_csv(data_file("Penicillin.csv"))
    X = d[["plate", "sample"]]
    m = MixedLM(groups=["plate", "sample"]).fit(X, d["diameter"])
    with pytest.raises(ValueError, match="X has 60 rows; the model was fitted to 144"):
        m.bootstrap(3, X=X.iloc[:60])
    relabelled = X.assign(plate=X["plate"].str.upper())
    with pytest.raises(ValueError, match="levels of 'plate' are not the fit's"):
        m.bootstrap(3, X=relabelled)
    Xs = sleep[["Days", "Subject"]]
    with pytest.raises(ValueError, match="rows"):
        anova(slope, intercept, method="bootstrap", X=[Xs.iloc[:50], Xs], n_boot=3)
