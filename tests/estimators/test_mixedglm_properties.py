"""MixedGLM recovers known parameters, for every family and link (Gamma with shape 4).

Each family/link simulates REPLICATES data sets from one known model (80 groups of 60
rows, a random intercept with SD 0.6, β = (-0.4, 0.7, 0.5) on an intercept, a continuous and
a binary covariate) and fits them:

* the 95 % Wald intervals of the fixed effects cover the truth at about the nominal rate
  (at least 85 % of the 3 × REPLICATES intervals: a coverage this low happens with
  probability < 1e-3 for a correct 95 % interval);
* the mean standardized error of each fixed effect is near 0 (|mean z| < 3 / √REPLICATES);
* the random-intercept SD is recovered on average (mean within 10 % of 0.6; its Laplace
  estimate is slightly biased downwards, less than that here);
* row order does not change the fit.

Fits are deterministic: fixed seeds.
"""

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import special

from skmixed import MixedGLM

BETA = np.array([-0.4, 0.7, 0.5])
GROUP_SD = 0.6
N_GROUPS, GROUP_SIZE = 80, 60
REPLICATES = 24

MEANS = {
    ("binomial", "logit"): special.expit,
    ("binomial", "probit"): special.ndtr,
    ("binomial", "cloglog"): lambda eta: -np.expm1(-np.exp(eta)),
    ("poisson", "log"): np.exp,
    ("gamma", "log"): np.exp,
}
GAMMA_SHAPE = 4.0


def simulate(family, link, seed, trials=False):
    rng = np.random.default_rng(seed)
    n = N_GROUPS * GROUP_SIZE
    g = np.repeat(np.arange(N_GROUPS), GROUP_SIZE)
    x = rng.normal(size=n)
    b = (rng.random(N_GROUPS) < 0.5).astype(float)[g]  # a group-level binary covariate
    eta = BETA[0] + BETA[1] * x + BETA[2] * b + rng.normal(scale=GROUP_SD, size=N_GROUPS)[g]
    mean = MEANS[family, link](eta)
    df = pd.DataFrame({"g": pd.Categorical(g), "x": x, "b": b})
    if family == "poisson":
        y = rng.poisson(mean)
    elif family == "gamma":
        y = rng.gamma(GAMMA_SHAPE, mean / GAMMA_SHAPE)
    elif trials:
        df["m"] = rng.integers(1, 6, size=n).astype(float)
        y = rng.binomial(df["m"].astype(int), mean)
    else:
        y = rng.binomial(1, mean)
    return df, pd.Series(y.astype(float), name="y")


def fit(family, link, df, y, trials=False):
    columns = ["g", "x", "b"] + (["m"] if trials else [])
    model = MixedGLM(family=family, link=link, groups="g", trials="m" if trials else None)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # regular data: no warnings at all
        return model.fit(df[columns], y)


CASES = [("binomial", "logit", False), ("binomial", "probit", True),
         ("binomial", "cloglog", False), ("poisson", "log", False), ("gamma", "log", False)]


@pytest.fixture(scope="module", params=CASES, ids=lambda c: f"{c[0]}-{c[1]}")
def replicates(request):
    family, link, trials = request.param
    out = []
    for rep in range(REPLICATES):
        df, y = simulate(family, link, 1000 * CASES.index(request.param) + rep, trials)
        model = fit(family, link, df, y, trials)
        assert model.converged_
        table = model.fixed_effects_
        out.append((table["estimate"].to_numpy(), table["std_error"].to_numpy(),
                    float(model.variance_components_["sd_cor"].iloc[0])))
    return out


def test_wald_intervals_cover_the_true_fixed_effects(replicates):
    z = np.array([(est - BETA) / se for est, se, _ in replicates])
    coverage = np.mean(np.abs(z) < 1.959964)
    assert coverage >= 0.85, (coverage, z)
    assert np.all(np.abs(z.mean(axis=0)) < 3 / np.sqrt(REPLICATES)), z.mean(axis=0)


def test_random_intercept_sd_is_recovered(replicates):
    sds = np.array([sd for *_, sd in replicates])
    assert abs(sds.mean() / GROUP_SD - 1) < 0.10, sds


@pytest.mark.parametrize("family, link, trials", CASES, ids=lambda c: str(c))
def test_row_order_does_not_change_the_fit(family, link, trials):
    df, y = simulate(family, link, 7, trials)
    order = np.random.default_rng(1).permutation(len(df))
    a = fit(family, link, df, y, trials)
    b = fit(family, link, df.iloc[order], y.iloc[order], trials)
    np.testing.assert_allclose(b.coef_, a.coef_, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(b.theta_, a.theta_, rtol=1e-6)
    np.testing.assert_allclose(b.loglik_, a.loglik_, rtol=1e-10)
