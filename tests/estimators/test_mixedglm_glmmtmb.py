"""MixedGLM(family="gamma") against glmmTMB: the Laplace approximation of the Gamma GLMM's
likelihood with the dispersion as a parameter (``tests/reference/glmmtmb_gamma.R`` made the
reference on lme4's sleepstudy, ``Reaction ~ Days + (1 | Subject)``, Gamma log link).

lme4's ``glmer`` is not the reference for Gamma: it finds the modes at unit dispersion and
adds R's ``Gamma()$aic`` at a plug-in dispersion, which penalizes ‖u‖² without the 1/φ of the
likelihood; on this model it reports a random-intercept SD of 0.076 where the likelihood's
Laplace approximation (glmmTMB, MixedGLM) gives 0.125, and its logLik (−870.4) is not a
log-likelihood of the model. The recovery property test (test_mixedglm_properties.py)
shows MixedGLM's Gamma SD is unbiased on simulated data.

Tolerances (measured in brackets): fixed effects, σ, the dispersion and the RE SD 1e-5
relative (≤ 2.0e-6: glmmTMB's optimizer stops there); SEs 1e-4 (3.1e-5: glmmTMB's come
from TMB's Hessian of the marginal likelihood, ours from finite differences of the exact
gradient); logLik within 1e-8 (2.6e-10); conditional modes within 1e-5 of the RE SD
(3.7e-6; glmmTMB's condVar adds the fixed effects' uncertainty, so the conditional SDs are
not compared).
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from skmixed import MixedGLM

REFERENCE = Path(__file__).resolve().parents[1] / "reference" / "glmmtmb_sleepstudy_gamma.json"


@pytest.fixture(scope="module")
def fit_and_ref(data_file):
    frame = pd.read_csv(data_file("sleepstudy.csv"))
    frame["Subject"] = frame["Subject"].astype("category")
    ref = json.loads(REFERENCE.read_text())["gamma_laplace"]
    model = MixedGLM(family="gamma", groups="Subject").fit(frame[["Days", "Subject"]],
                                                           frame["Reaction"])
    return model, ref


def test_converged(fit_and_ref):
    model, ref = fit_and_ref
    assert model.converged_
    assert model.n_obs_ == ref["nobs"]


def test_fixed_effects_and_standard_errors(fit_and_ref):
    model, ref = fit_and_ref
    table = model.fixed_effects_
    assert list(table.index) == list(ref["fixef"])
    np.testing.assert_allclose(table["estimate"], list(ref["fixef"].values()), rtol=1e-5)
    np.testing.assert_allclose(table["std_error"], list(ref["se"].values()), rtol=1e-4)


def test_dispersion_and_random_effect_sd(fit_and_ref):
    model, ref = fit_and_ref
    vc = model.variance_components_.set_index("group")
    np.testing.assert_allclose(model.sigma_, ref["sigma"], rtol=1e-5)
    np.testing.assert_allclose(vc.loc["Residual", "variance"], ref["dispersion"], rtol=1e-5)
    np.testing.assert_allclose(vc.loc["Subject", "sd_cor"], ref["re_sd"], rtol=1e-5)


def test_loglik_and_aic(fit_and_ref):
    model, ref = fit_and_ref
    assert abs(model.loglik_ - ref["logLik"]) < 1e-8
    np.testing.assert_allclose(model.aic_, ref["AIC"], atol=2e-8)  # 4 parameters each


def test_conditional_modes(fit_and_ref):
    model, ref = fit_and_ref
    theirs = {row["grp"]: row["condval"] for row in ref["ranef"]}
    ours = {str(row.level): row.mode for row in model.random_effects_.itertuples()}
    assert set(ours) == set(theirs)
    keys = sorted(theirs)
    np.testing.assert_allclose([ours[k] for k in keys], [theirs[k] for k in keys],
                               rtol=0, atol=1e-5 * ref["re_sd"])
