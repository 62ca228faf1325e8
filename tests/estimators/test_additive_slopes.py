"""AdditiveMixed with independent random slopes (mgcv's ``s(g, bs = "re") +
s(g, x, bs = "re")``; lme4's ``(1 + x || g)``) against mgcv and lme4
(``tests/reference/mgcv_random_slopes.R`` made the references):

* sleepstudy, exact: ``gam(Reaction ~ Days + s(Subject, bs = "re") + s(Subject, Days,
  bs = "re"), method = "REML")`` and lmer's ``(Days || Subject)`` — the same model;
* the study's 200,000 rows with a random slope of x added (its per-group deviations are in
  the reference JSON) and ``s(z)``, binned, Gaussian and binomial: ``bam(discrete = TRUE)``.

Tolerances (measured in brackets): sleepstudy fixed effects 1e-6 (3e-14), SEs 1e-5
(2.1e-6), SDs 1e-5 (2.9e-6; mgcv's own SDs differ from lmer's by 3e-6), REML criterion 1e-6
(4e-10), fitted values and edf 1e-5 (3.6e-7, 1.5e-6); the study, Gaussian: slopes 5e-5
(2.2e-5), edf of s(z) 1e-5 (2.6e-6), SDs 1e-4 (4.3e-5), σ 1e-5 (2.2e-6); binomial: slopes
1e-4 (4.0e-5), the slope SD 1e-4 (4.9e-5), edf of s(z) 2e-2 (1.05 %: the intercept SD is at
its boundary — the response has no random intercept —, where bam stops at 0.013 and we go
to ~0, which moves s(z); both are checked to be below 0.05); fitted 1e-2 RMS (bam's fitted
values are at the binned covariates).
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from skmixed import AdditiveMixed

REFERENCE = Path(__file__).resolve().parents[1] / "reference" / "mgcv_random_slopes.json"


@pytest.fixture(scope="module")
def ref():
    return json.loads(REFERENCE.read_text())


@pytest.fixture(scope="module")
def sleep(data_file):
    df = pd.read_csv(data_file("sleepstudy.csv"))
    df["Subject"] = df["Subject"].astype("category")
    return df


def test_sleepstudy_against_gam_and_lmer(sleep, ref):
    r = ref["sleepstudy_gam"]
    model = AdditiveMixed(groups="Subject", random_slopes=["Days"]).fit(
        sleep[["Days", "Subject"]], sleep["Reaction"])
    fe = model.fixed_effects_
    np.testing.assert_allclose(fe["estimate"], list(r["coef_parametric"].values()), rtol=1e-6)
    np.testing.assert_allclose(fe["std_error"], list(r["se_parametric"].values()), rtol=1e-5)
    vc = model.variance_components_
    assert list(vc["var1"].iloc[:2]) == ["(Intercept)", "Days"]
    lmer = r["lmer"]["sd"]
    np.testing.assert_allclose(vc["sd"], [lmer["(Intercept)"], lmer["Days"], lmer["3"]],
                               rtol=1e-5)
    np.testing.assert_allclose(vc["sd"].iloc[:2], list(r["sd"].values()), rtol=1e-5)
    assert model.reml_criterion_ / 2 == pytest.approx(r["reml_score"], abs=1e-6)
    assert model.reml_criterion_ == pytest.approx(r["lmer"]["reml"], abs=1e-6)
    np.testing.assert_allclose(model.predict(sleep[["Days", "Subject"]].iloc[:20]),
                               r["fitted_head"], rtol=1e-5)
    # the groups' edf per random-effect column (mgcv's s(Subject), s(Subject,Days))
    np.testing.assert_allclose(model._fit.edf, list(r["edf"].values()), rtol=1e-5)
    re = model.random_effects_
    assert set(re["term"]) == {"(Intercept)", "Days"}
    assert len(re) == 2 * sleep["Subject"].nunique()


@pytest.fixture(scope="module")
def study(data_file, ref):
    df = pd.read_csv(data_file("study_2e5.csv.gz"),
                     usecols=["g", "x", "b", "z", "y_nl"])
    dev = np.asarray(ref["study_slope_dev"])[df["g"].to_numpy() - 1]
    df["y_rs"] = df["y_nl"] + dev * df["x"]
    eta = -0.2 + (0.5 + dev) * df["x"] + 0.25 * df["b"] + np.sin(2 * np.pi * df["z"])
    df["yb_rs"] = ((1000 * df["z"]) % 1 < 1 / (1 + np.exp(-eta))).astype(int)
    df["g"] = df["g"].astype("category")
    return df


@pytest.mark.parametrize("family, entry, response", [
    ("gaussian", "study_bam_gau", "y_rs"), ("binomial", "study_bam_bin", "yb_rs")])
def test_study_slopes_against_bam(study, ref, family, entry, response):
    r = ref[entry]
    cols = ["x", "b", "z", "g"]
    model = AdditiveMixed(smooths=["z"], groups="g", random_slopes=["x"], family=family,
                          discrete=True).fit(study[cols], study[response])
    assert model.converged_
    coef = r["coef_parametric"]
    gaussian = family == "gaussian"
    np.testing.assert_allclose(model.coef_, [coef["x"], coef["b"]],
                               rtol=5e-5 if gaussian else 1e-4)
    np.testing.assert_allclose(model.smooths_["edf"], [r["edf"]["s(z)"]],
                               rtol=1e-5 if gaussian else 2e-2)
    sd = model.variance_components_.set_index("var1")["sd"]
    np.testing.assert_allclose(sd["x"], r["sd"]["s(x,g)"], rtol=1e-4)
    if gaussian:
        np.testing.assert_allclose(sd["(Intercept)"], r["sd"]["s(g)"], rtol=1e-4)
        np.testing.assert_allclose(model.sigma_, np.sqrt(r["scale"]), rtol=1e-5)
    else:
        assert sd["(Intercept)"] < 0.05 and r["sd"]["s(g)"] < 0.05
    head = np.asarray(r["fitted_head"])
    fitted = model.predict(study[cols].iloc[:head.size])
    assert np.sqrt(np.mean((fitted - head) ** 2) / np.mean(head ** 2)) < 1e-2


def test_recovers_simulated_slope_variance():
    """Simulated with intercept SD 0.6 and slope SD 0.4 (300 groups): both within 4 of
    their approximate standard errors (SD/√(2G)), smooth and fixed slope recovered."""
    rng = np.random.default_rng(8)
    n, G = 30_000, 300
    g = rng.integers(0, G, n)
    x, z = rng.normal(size=n), rng.uniform(size=n)
    a, c = rng.normal(0, 0.6, G), rng.normal(0, 0.4, G)
    y = 1.0 + (0.5 + c[g]) * x + np.sin(2 * np.pi * z) + a[g] + rng.normal(size=n)
    X = pd.DataFrame({"x": x, "z": z, "g": g})
    for discrete in (False, True):
        model = AdditiveMixed(smooths=["z"], groups="g", random_slopes="x",
                              discrete=discrete).fit(X, y)
        sd = model.variance_components_["sd"].to_numpy()
        assert abs(sd[0] - 0.6) < 4 * 0.6 / np.sqrt(2 * G)
        assert abs(sd[1] - 0.4) < 4 * 0.4 / np.sqrt(2 * G)
        assert abs(sd[2] - 1.0) < 0.02
        assert abs(model.coef_[0] - 0.5) < 4 * model.fixed_effects_["std_error"]["x"]
        grid = np.linspace(0.05, 0.95, 10)
        band = model.partial_effect("z", grid)
        truth = np.sin(2 * np.pi * grid)
        assert np.max(np.abs(band["effect"] - (truth - truth.mean()))) < 0.15


@pytest.mark.parametrize("discrete", [False, True])
def test_predict_return_std_with_slopes_is_the_posterior_sd(discrete):
    """``predict(return_std=True)`` with a random slope against the dense posterior over
    [parametric, smooth null, smooth range, group indicators, indicators × x]."""
    rng = np.random.default_rng(4)
    n, G = 1500, 30
    g = rng.integers(0, G, n)
    x, z = rng.normal(size=n), np.round(rng.uniform(size=n), 2)
    y = (0.5 + rng.normal(0, 0.3, G)[g]) * x + np.cos(3 * z) + rng.normal(0, 0.5, G)[g] \
        + rng.normal(size=n)
    X = pd.DataFrame({"g": pd.Categorical(g), "z": z, "x": x})
    model = AdditiveMixed(smooths=["z"], groups="g", random_slopes=["x"],
                          discrete=discrete).fit(X, y)
    basis = model._model_info["bases"][0]
    design = basis["spline"].design(z)
    ind = np.eye(G)[g]
    # the fit's τ belong to its internal slope column x / s (skmixed._model.scaling)
    xs = x / model._factor_layout.scales[0][0]
    C = np.hstack([np.ones((n, 1)), x[:, None], design @ basis["F"], design @ basis["R"], ind,
                   ind * xs[:, None]])
    tau = model._fit.tau
    penalty = np.concatenate([np.zeros(3), np.full(basis["R"].shape[1], 1 / tau[0] ** 2),
                              np.full(G, 1 / tau[1] ** 2), np.full(G, 1 / tau[2] ** 2)])
    coef = np.linalg.solve(C.T @ C + np.diag(penalty), C.T @ y)
    cov = model.sigma_ ** 2 * np.linalg.inv(C.T @ C + np.diag(penalty))
    rows = slice(0, 40)
    mean, se = model.predict(X.iloc[rows], return_std=True)
    np.testing.assert_allclose(mean, C[rows] @ coef, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(se, np.sqrt(np.einsum("ij,jk,ik->i", C[rows], cov, C[rows])),
                               rtol=1e-6)
    # an unseen group: population level, no random effects
    new = X.iloc[:3].assign(g=pd.Categorical([-1] * 3))
    np.testing.assert_allclose(model.predict(new), model.predict(X.iloc[:3],
                                                                 random_effects=False))


@pytest.mark.parametrize("params, match", [
    (dict(random_slopes=["x"]), "need groups"),
    (dict(groups="g", random_slopes=["g"]), "cannot also be a random slope"),
    (dict(groups="g", random_slopes=["x", "x"]), "twice"),
    (dict(groups="g", random_slopes=["nope"]), "nope"),
])
def test_bad_random_slopes(params, match):
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"x": rng.normal(size=200), "g": rng.integers(0, 10, 200)})
    y = rng.normal(size=200)
    model = AdditiveMixed(**params)
    with pytest.raises(ValueError, match=match):
        model.fit(X, y)
    assert not hasattr(model, "coef_")
