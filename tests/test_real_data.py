"""The study's real-data examples (issue 8): the Metacognition experiment
(``tests/data/metacognition.csv``) — the LMM ``confidence ~ visibility + (1 | id)``
against ``tests/reference/lme4_metacognition_lmm.json`` and the GLMM
``correct ~ confidence_z * contrast_z + (confidence_z + contrast_z || id)``, binomial, with
both predictors z-scaled over the whole sample and contrast numeric, against lme4's glmer
(``tests/reference/lme4_metacognition_glmm.R``); by the column API and by formula.

Tolerances as the other lme4 tests (measured in brackets): LMM criterion 1e-8 relative
(7e-15), fixed effects 1e-6 (6.6e-11), SEs and SDs 1e-4 (2.1e-8), θ 1e-4 (2.1e-8); GLMM
deviance never above lme4's and within 1e-6 relative (4.0e-4 below: 6.8e-8), θ 5e-4
(1.5e-4), fixed effects within 5e-3 of their SEs (1.4e-3), SEs 5e-3 (3.1e-3; lme4's from its
finite-difference Hessian), fitted probabilities 1e-3 (1.0e-5).
"""

import json
from pathlib import Path

import numpy as np
import pytest

from skmixed import MixedGLM, MixedLM
from skmixed.datasets import load_metacognition

GLMM_REF = Path(__file__).resolve().parent / "reference" / "lme4_metacognition_glmm.json"


@pytest.fixture(scope="module")
def meta(data_file):
    df = load_metacognition(data_file("metacognition.csv"))
    df["confidence_z"] = (df["confidence"] - df["confidence"].mean()) / df["confidence"].std()
    df["contrast_z"] = (df["contrast"] - df["contrast"].mean()) / df["contrast"].std()
    df["confidence_z:contrast_z"] = df["confidence_z"] * df["contrast_z"]
    return df


def test_metacognition_lmm(meta, load_reference):
    ref = load_reference("lme4_metacognition_lmm.json")["lmm_visibility"]
    model = MixedLM(groups="id").fit(meta[["visibility", "id"]], meta["confidence"])
    assert model.reml_criterion_ == pytest.approx(ref["REMLcrit"], rel=1e-8)
    np.testing.assert_allclose(model.fixed_effects_["estimate"], list(ref["fixef"].values()),
                               rtol=1e-6)
    np.testing.assert_allclose(model.fixed_effects_["std_error"], list(ref["se"].values()),
                               rtol=1e-4)
    np.testing.assert_allclose(model.theta_, [ref["theta"]], rtol=1e-4)
    assert model.sigma_ == pytest.approx(ref["sigma"], rel=1e-4)


def test_metacognition_glmm(meta):
    from skmixed.formula import glmer

    ref = json.loads(GLMM_REF.read_text())
    cols = ["confidence_z", "contrast_z", "confidence_z:contrast_z", "id"]
    model = MixedGLM(groups="id", random_slopes=["confidence_z", "contrast_z"],
                     covariance="diagonal").fit(meta[cols], meta["correct"])
    dev_ref = -2.0 * ref["logLik"]
    assert model.deviance_ <= dev_ref + 1e-6
    assert model.deviance_ == pytest.approx(dev_ref, rel=1e-6)
    np.testing.assert_allclose(model.theta_, ref["theta"], rtol=5e-4)
    se_ref = np.array(list(ref["se"].values()))
    fe = model.fixed_effects_
    assert np.all(np.abs(fe["estimate"].to_numpy() - list(ref["fixef"].values()))
                  <= 5e-3 * se_ref)
    np.testing.assert_allclose(fe["std_error"], se_ref, rtol=5e-3)
    np.testing.assert_allclose(model.predict_proba(meta[cols].iloc[:20])[:, 1],
                               ref["fitted_head"], rtol=1e-3)
    by_formula = glmer("correct ~ confidence_z * contrast_z + "
                       "(confidence_z + contrast_z || id)", meta)
    np.testing.assert_allclose(by_formula.theta_, model.theta_, rtol=1e-6)
    np.testing.assert_allclose(by_formula.fixed_effects_["estimate"],
                               fe["estimate"], rtol=1e-6)
