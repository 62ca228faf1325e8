"""MixedLM against lme4: a registry of (data set, model) → reference entry.

Like MixedModels.jl's model cache, every case names a data set in ``tests/data``, the
model (lme4's formula, spelled as MixedLM arguments) and the entry of a reference JSON in
``tests/reference`` written by lme4 1.1-31 (``make_ref.R``, ``study_ref.R``); the
200,000-row study data come from ``../shared/data`` (skipped without it, see
``tests/conftest.py``). Each case
is fitted once per module; every test reads the cached fit.

Tolerances (the issue's):

* fixed effects ≤ 1e-5 relative; their standard errors and covariance matrix ≤ 1e-4 relative;
* variance components (variances, SDs and correlations of ``VarCorr``), ``sigma_`` and
  ``theta_`` ≤ 1e-4 relative;
* REML criterion / deviance / logLik / AIC / BIC ≤ 1e-3 absolute;
* conditional modes within 1e-4 × the random effect's SD, conditional SDs ≤ 1e-4 relative.

``study_2e5.json``'s ``lmer_rs`` (``y ~ x + b + (1 + x | g)``, true slope variance 0) is a
near-boundary fit on which lme4's default optimizer stops short; its reference was refitted
with Nelder–Mead at tight tolerances and may itself be slightly off the optimum. It is tested
one-sided (our REML criterion ≤ the reference's + 1e-6) with fixed effects at 1e-4 (the
reference README's instruction), not with the tolerances above.
"""

import math
import warnings
from dataclasses import dataclass

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

from skmixed import MixedLM, SingularFitWarning
from lme4_refs import DataSet, assert_conditional_modes, cached_loader, label

FIXEF_RTOL = 1e-5
BOUNDARY_FIXEF_RTOL = 1e-4
SE_RTOL = 1e-4
VCOV_RTOL = 1e-4
VARCORR_RTOL = 1e-4
CRITERION_ATOL = 1e-3
MODE_TOL_IN_SDS = 1e-4
COND_SD_RTOL = 1e-4
ONE_SIDED_SLACK = 1e-6
# lme4's isSingular(): a diagonal element of the relative covariance factor below 1e-4.
LME4_SINGULAR_TOL = 1e-4


# --------------------------------------------------------------------------------------------
# The registry
# --------------------------------------------------------------------------------------------


DATA_SETS = {
    "sleepstudy": DataSet("sleepstudy.csv", "Subject"),
    "dyestuff": DataSet("Dyestuff.csv", "Batch"),
    "metacognition": DataSet("metacognition.csv", "id",
                             ("id", "visibility", "confidence")),
    "study_2e5": DataSet("study_2e5.csv.gz", "g", ("g", "x", "b", "y")),
}


@dataclass(frozen=True)
class Lme4Case:
    """One lme4 fit to reproduce.

    ``fixed`` lists the fixed-effect columns of X (an intercept is added by MixedLM), so X is
    ``fixed + (group,)``; ``random_slopes`` and ``covariance`` spell lme4's random term.
    ``boundary`` marks a fit whose reference may be off the optimum (tested one-sided).
    """

    name: str
    formula: str
    data: str
    reference: str
    entry: str
    response: str
    fixed: tuple = ()
    random_slopes: tuple = ()
    covariance: str = "unstructured"
    reml: bool = True
    boundary: bool = False

    @property
    def group(self):
        return DATA_SETS[self.data].group

    def estimator(self):
        return MixedLM(groups=self.group, random_slopes=list(self.random_slopes),
                       covariance=self.covariance, reml=self.reml)


SLEEP = dict(data="sleepstudy", reference="lme4_sleepstudy.json", response="Reaction",
             fixed=("Days",))
DYE = dict(data="dyestuff", reference="lme4_dyestuff.json", response="Yield")
STUDY = dict(data="study_2e5", reference="study_2e5.json", response="y", fixed=("x", "b"))

CASES = [
    Lme4Case("sleepstudy-reml-slope", "Reaction ~ Days + (Days | Subject)", entry="reml_slope",
             random_slopes=("Days",), **SLEEP),
    Lme4Case("sleepstudy-ml-slope", "Reaction ~ Days + (Days | Subject)", entry="ml_slope",
             random_slopes=("Days",), reml=False, **SLEEP),
    Lme4Case("sleepstudy-reml-diag", "Reaction ~ Days + (Days || Subject)", entry="reml_diag",
             random_slopes=("Days",), covariance="diagonal", **SLEEP),
    Lme4Case("sleepstudy-reml-intercept", "Reaction ~ Days + (1 | Subject)",
             entry="reml_intercept", **SLEEP),
    Lme4Case("dyestuff-reml", "Yield ~ 1 + (1 | Batch)", entry="reml", **DYE),
    Lme4Case("dyestuff-ml", "Yield ~ 1 + (1 | Batch)", entry="ml", reml=False, **DYE),
    Lme4Case("metacognition-reml", "confidence ~ visibility + (1 | id)",
             data="metacognition", reference="lme4_metacognition_lmm.json",
             entry="lmm_visibility", response="confidence", fixed=("visibility",)),
    Lme4Case("study2e5-reml-intercept", "y ~ x + b + (1 | g)", entry="lmer_ri", **STUDY),
    Lme4Case("study2e5-ml-intercept", "y ~ x + b + (1 | g)", entry="lmer_ri_ml", reml=False,
             **STUDY),
    Lme4Case("study2e5-reml-slope-boundary", "y ~ x + b + (1 + x | g)", entry="lmer_rs",
             random_slopes=("x",), boundary=True, **STUDY),
]

INTERIOR_CASES = [case for case in CASES if not case.boundary]
BOUNDARY_CASES = [case for case in CASES if case.boundary]


def _params(cases):
    return [pytest.param(case, id=case.name) for case in cases]


# --------------------------------------------------------------------------------------------
# Fixtures: data read once per module, each case fitted once per module
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def data_sets(data_file):
    """``data_sets(name) -> DataFrame``, each CSV read once (the study is 200,000 rows)."""
    return cached_loader(data_file, DATA_SETS)


@dataclass
class Fitted:
    case: Lme4Case
    model: MixedLM
    ref: dict
    warnings: list


@pytest.fixture(scope="module")
def fits(data_sets, load_reference):
    """``fits(case) -> Fitted``: the case's MixedLM fit and lme4 entry, computed once."""
    cache = {}

    def get(case):
        if case.name not in cache:
            frame = data_sets(case.data)
            X = frame[list(case.fixed) + [case.group]]
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                model = case.estimator().fit(X, frame[case.response])
            ref = load_reference(case.reference)[case.entry]
            cache[case.name] = Fitted(case, model, ref, [w.category for w in caught])
        return cache[case.name]

    return get


@pytest.fixture
def fitted(request, fits):
    return fits(request.param)


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def _criterion(model, reml):
    return model.reml_criterion_ if reml else model.deviance_


def _ref_criterion(ref):
    return ref["REMLcrit"] if ref["REML"] else ref["deviance"]


def _diagnosis(fit):
    """The optimizer's record beside lme4's criterion: says who stopped short."""
    opt = fit.model.optimization_
    ours = _criterion(fit.model, fit.case.reml)
    theirs = _ref_criterion(fit.ref)
    return (f"[{fit.case.name}: {fit.case.formula}] optimizer {opt.optimizer}: "
            f"{opt.message!r}, {opt.n_iter} iterations, {opt.n_evals} evaluations, "
            f"gradient {np.array2string(np.asarray(opt.gradient), precision=3)}, "
            f"theta {np.array2string(fit.model.theta_, precision=6)} vs lme4 "
            f"{np.atleast_1d(fit.ref['theta'])}; criterion ours - lme4 = {ours - theirs:.3g} "
            f"({'ours lower: lme4 stopped short' if ours < theirs else 'ours higher'})")


def _theta_diagonal(case):
    """Positions of T's diagonal in θ (lme4's order: lower triangle column by column)."""
    q = 1 + len(case.random_slopes)
    if case.covariance == "diagonal":
        return np.arange(q)
    return np.cumsum([0] + [q - k for k in range(q - 1)])


def _ref_varcorr(ref):
    """lme4's ``as.data.frame(VarCorr(m))`` rows keyed by (group, var1, var2)."""
    return {(row["grp"], label(row["var1"]), label(row["var2"])): row
            for row in ref["varcorr"]}


# --------------------------------------------------------------------------------------------
# Interior fits: the tolerances
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fitted", _params(INTERIOR_CASES), indirect=True)
def test_converged_without_warnings(fitted):
    model = fitted.model
    assert model.converged_, _diagnosis(fitted)
    assert ConvergenceWarning not in fitted.warnings, _diagnosis(fitted)
    # None of these lme4 fits is singular (lme4 does not flag them).
    assert SingularFitWarning not in fitted.warnings, _diagnosis(fitted)
    assert model.n_obs_ == fitted.ref["nobs"]


def _assert_fixed_effects(fitted, rtol):
    """Terms in lme4's order and estimates within ``rtol``; returns the reference terms."""
    ref, table = fitted.ref, fitted.model.fixed_effects_
    terms = list(ref["fixef"])
    assert list(table.index) == terms
    np.testing.assert_allclose(table["estimate"], [ref["fixef"][t] for t in terms],
                               rtol=rtol, atol=0, err_msg=_diagnosis(fitted))
    return terms


@pytest.mark.parametrize("fitted", _params(INTERIOR_CASES), indirect=True)
def test_fixed_effects(fitted):
    ref, table = fitted.ref, fitted.model.fixed_effects_
    terms = _assert_fixed_effects(fitted, FIXEF_RTOL)
    np.testing.assert_allclose(table["std_error"], [ref["se"][t] for t in terms],
                               rtol=SE_RTOL, atol=0, err_msg=_diagnosis(fitted))


@pytest.mark.parametrize("fitted", _params(INTERIOR_CASES), indirect=True)
def test_fixed_effects_covariance(fitted):
    np.testing.assert_allclose(fitted.model.fixed_cov_, np.array(fitted.ref["vcov"]),
                               rtol=VCOV_RTOL, atol=0, err_msg=_diagnosis(fitted))


@pytest.mark.parametrize("fitted", _params(INTERIOR_CASES), indirect=True)
def test_variance_components(fitted):
    model, ref = fitted.model, fitted.ref
    expected = _ref_varcorr(ref)
    ours = {(row.group, label(row.var1), label(row.var2)): row
            for row in model.variance_components_.itertuples(index=False)}
    assert set(ours) == set(expected)
    keys = sorted(expected, key=str)
    np.testing.assert_allclose([ours[k].variance for k in keys],
                               [expected[k]["vcov"] for k in keys],
                               rtol=VARCORR_RTOL, atol=0, err_msg=f"variances {keys}\n"
                               + _diagnosis(fitted))
    np.testing.assert_allclose([ours[k].sd_cor for k in keys],
                               [expected[k]["sdcor"] for k in keys],
                               rtol=VARCORR_RTOL, atol=0, err_msg=f"SDs/correlations {keys}\n"
                               + _diagnosis(fitted))
    np.testing.assert_allclose(model.sigma_, ref["sigma"], rtol=VARCORR_RTOL, atol=0,
                               err_msg=_diagnosis(fitted))
    np.testing.assert_allclose(model.theta_, np.atleast_1d(ref["theta"]), rtol=VARCORR_RTOL,
                               atol=0, err_msg=_diagnosis(fitted))


@pytest.mark.parametrize("fitted", _params(INTERIOR_CASES), indirect=True)
def test_criteria(fitted):
    model, ref = fitted.model, fitted.ref
    if ref["REML"]:
        assert math.isnan(model.deviance_)
        ours = {"REMLcrit": model.reml_criterion_}
    else:
        assert math.isnan(model.reml_criterion_)
        ours = {"deviance": model.deviance_}
    ours.update(logLik=model.loglik_, AIC=model.aic_, BIC=model.bic_)
    for name, value in ours.items():
        assert abs(value - ref[name]) <= CRITERION_ATOL, (
            f"{name}: ours {value!r}, lme4 {ref[name]!r}\n" + _diagnosis(fitted))


@pytest.mark.parametrize("fitted", _params(INTERIOR_CASES), indirect=True)
def test_conditional_modes(fitted):
    # the study's reference keeps only 40 rows
    assert_conditional_modes(fitted.model, fitted.ref, fitted.case.data != "study_2e5",
                             MODE_TOL_IN_SDS, COND_SD_RTOL, _diagnosis(fitted))


# --------------------------------------------------------------------------------------------
# The near-boundary fit: one-sided criterion, fixed effects at 1e-4
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fitted", _params(BOUNDARY_CASES), indirect=True)
def test_boundary_fit_reaches_reference_criterion(fitted):
    # lme4's reference may itself be slightly off the optimum, so only "at least as good".
    assert fitted.model.reml_criterion_ <= fitted.ref["REMLcrit"] + ONE_SIDED_SLACK, (
        _diagnosis(fitted))


@pytest.mark.parametrize("fitted", _params(BOUNDARY_CASES), indirect=True)
def test_boundary_fit_fixed_effects(fitted):
    _assert_fixed_effects(fitted, BOUNDARY_FIXEF_RTOL)


@pytest.mark.parametrize("fitted", _params(BOUNDARY_CASES), indirect=True)
def test_boundary_fit_singular_warning_follows_lme4_rule(fitted):
    # The SingularFitWarning must follow lme4's isSingular() rule (a diagonal element of the
    # relative covariance factor below 1e-4) applied to the optimum. For lmer_rs the tightly
    # refitted reference has theta = (0.51447, 0.00047, 0.00340): the slope's diagonal element
    # is 34 times the threshold, and the REML criterion with that element set to 0 is 0.013
    # higher (measured), so the optimum is NOT singular by lme4's rule although the true
    # slope variance is 0. A warning here would mean a fit stuck on the boundary.
    ref_theta = np.atleast_1d(fitted.ref["theta"])
    expect_warning = bool(np.any(ref_theta[_theta_diagonal(fitted.case)] < LME4_SINGULAR_TOL))
    warned = SingularFitWarning in fitted.warnings
    assert warned == expect_warning, _diagnosis(fitted)
