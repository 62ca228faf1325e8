"""MixedGLM against lme4's ``glmer``: a registry of (data set, model) → reference entry.

Like ``test_mixedlm_lme4.py`` (and MixedModels.jl's model cache), every case names a data set
in ``tests/data``, the model (lme4's formula, spelled as MixedGLM arguments) and the entry
of a reference JSON in ``tests/reference`` written by lme4 1.1-31 (``make_ref.R``,
``study_ref.R``, ``lme4_links.R`` for the probit and cloglog links); the 200,000-row study
data come from ``../shared/data`` (skipped without it, see ``tests/conftest.py``). Each case is fitted once per module; every test reads the cached fit.

Tolerances:

* fixed effects, RE SDs/correlations (``VarCorr``'s ``sdcor``) and ``theta_`` ≤ 1e-3
  relative: lme4's optimizer stops short by up to ~2e-4 relative here (4e-4 for cbpp's
  Laplace fit, explained below);
* standard errors (lme4's from ``deriv12``, a finite-difference Hessian of its deviance
  function over (θ, β), ours from finite differences of the exact gradient), relative:
  Laplace 5e-3 (measured ≤ 3.1e-3, besides cbpp's known gap below), adaptive quadrature
  2e-4 (≤ 9.5e-5: deriv12's step), nAGQ = 0 1e-4 (≤ 2.0e-5; lme4's from ``RX``);
* log-likelihood one-sided: ours at least lme4's − 1e-6 (measured: never below; ours may be
  higher because lme4 stops short); a gap above 1e-2 is flagged too, as it would mean a
  convention mismatch;
* conditional modes within 2e-3 × the random effect's SD, conditional SDs ≤ 2e-2 relative.

lme4's log-likelihood convention depends on nAGQ. For nAGQ ≤ 1 (``glmerLaplace``:
``ldL2 + |u|² + aic``) it is the full log-likelihood, our ``loglik_``. For nAGQ > 1
(``glmerAGQ``, built on deviance residuals) it is the log-likelihood minus the saturated
model's, so we compare ``loglik_ - saturated`` (see :func:`saturated_loglik`); measured:
cbpp nAGQ=10 −50.0050149835 vs lme4 −50.0050149860, Poisson nAGQ=7 −3626.5673971073 vs
−3626.5673971098 (both ~2.5e-9). For 0/1 responses the saturated log-likelihood is 0.

Known gap (one xfail, strict): lme4's *Laplace* standard errors for cbpp are 0.5–1.3 % below
ours. The cause is in lme4, not here: ``glmerLaplace`` returns ``ldL2`` of the Cholesky factor
computed with the working weights of the *penultimate* PIRLS iterate, while ``|u|²`` and the
deviance are taken at the final one. Its deviance function is therefore a slightly different
function of (θ, β), ``deriv12`` differentiates that, and so do its reported logLik and optimum.
:func:`test_cbpp_laplace_se_gap_is_lme4s_stale_log_determinant` pins the diagnosis: a NumPy
emulation of lme4's stage-2 deviance function reproduces lme4's logLik to 1e-12 and its SEs to
1e-5; the same emulation with the log-determinant at the final iterate gives our SEs.
Adaptive quadrature is insensitive to that lag, which is why our AGQ SEs match lme4's to
2e-4 (measured ≤ 9.5e-5; cbpp 7.7e-5).

The same quirk moves lme4's Laplace optimum: its (θ, β) for cbpp is the stationary point of
the emulated function (gradient 5e-4, vs 1.7e-2 for the Laplace deviance proper), which is
why cbpp-laplace's fixed effects and θ differ from ours by 3-4e-4 relative and its logLik is
2.8e-4 below ours, while every other case agrees to ≤ 2e-4.

``n_agq=0`` (lme4's nAGQ=0: β and u maximized jointly by PIRLS, θ alone optimized; logLik on
the full convention, SEs from lme4's ``RX`` as it computes no Hessian) follows the same tests.
"""

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit, gammaln, xlogy
from sklearn.base import is_classifier
from sklearn.exceptions import ConvergenceWarning

from skmixed import MixedGLM, SingularFitWarning
from lme4_refs import DataSet, assert_conditional_modes, cached_loader, label

FIXEF_RTOL = 1e-3
VARCORR_RTOL = 1e-3
SE_RTOL = {0: 1e-4, 1: 5e-3, "agq": 2e-4}  # by n_agq
LOGLIK_BELOW_ATOL = 1e-6
# lme4 stopping short (or its Laplace quirk above) costs it < 1e-3 of log-likelihood here;
# ours exceeding lme4's by more than this would mean comparing on different conventions.
LOGLIK_ABOVE_SANITY = 1e-2
MODE_TOL_IN_SDS = 2e-3
COND_SD_RTOL = 2e-2

# --------------------------------------------------------------------------------------------
# The registry
# --------------------------------------------------------------------------------------------


def _cbpp(frame):
    """lme4's treatment coding of ``period``: dummies period2, period3, period4."""
    period = frame["period"].astype("category")
    dummies = pd.get_dummies(period, prefix="period", prefix_sep="", drop_first=True,
                             dtype=float)
    return pd.concat([dummies, frame.drop(columns="period")], axis=1)


def _poisson_sim(frame):
    """``offset(log(expo))`` as a column."""
    return frame.assign(log_expo=np.log(frame["expo"]))


DATA_SETS = {
    "cbpp": DataSet("cbpp.csv", "herd", prepare=_cbpp),
    "poisson_sim": DataSet("poisson_sim.csv", "g", prepare=_poisson_sim),
    "study_2e5": DataSet("study_2e5.csv.gz", "g", ("g", "x", "b", "y_bin")),
}


@dataclass(frozen=True)
class GlmmCase:
    """One glmer fit to reproduce.

    ``fixed`` lists the fixed-effect columns of X (MixedGLM adds the intercept); X is
    ``fixed + (group,)`` plus the ``trials`` and ``offset`` columns when named.
    """

    name: str
    formula: str
    data: str
    reference: str
    entry: str
    response: str
    family: str
    fixed: tuple = ()
    random_slopes: tuple = ()
    n_agq: int = 1
    link: str = None
    trials: str = None
    offset: str = None
    marks: tuple = ()

    @property
    def group(self):
        return DATA_SETS[self.data].group

    @property
    def columns(self):
        extra = [c for c in (self.trials, self.offset) if c is not None]
        return list(self.fixed) + [self.group] + extra

    def estimator(self):
        return MixedGLM(family=self.family, link=self.link, groups=self.group,
                        random_slopes=list(self.random_slopes), n_agq=self.n_agq,
                        trials=self.trials, offset=self.offset)


CBPP = dict(formula="cbind(incidence, size - incidence) ~ period + (1 | herd)", data="cbpp",
            reference="lme4_cbpp.json", response="incidence", family="binomial",
            fixed=("period2", "period3", "period4"), trials="size")
POISSON = dict(data="poisson_sim", reference="lme4_poisson_sim.json", response="count",
               family="poisson", fixed=("x", "z"), offset="log_expo")
POISSON_INT = dict(formula="count ~ x + z + offset(log(expo)) + (1 | g)", **POISSON)
STUDY = dict(formula="y_bin ~ x + b + (1 | g)", data="study_2e5",
             reference="study_2e5.json", response="y_bin", family="binomial",
             fixed=("x", "b"))

CASES = [
    GlmmCase("cbpp-laplace", entry="laplace", **CBPP),
    GlmmCase("cbpp-agq10", entry="agq10", n_agq=10, **CBPP),
    GlmmCase("cbpp-nagq0", entry="nagq0", n_agq=0, **CBPP),
    GlmmCase("poisson-laplace-intercept", entry="laplace_int", **POISSON_INT),
    GlmmCase("poisson-agq7-intercept", entry="agq7_int", n_agq=7, **POISSON_INT),
    GlmmCase("poisson-laplace-slope", "count ~ x + z + offset(log(expo)) + (1 + x | g)",
             entry="laplace_slope", random_slopes=("x",), **POISSON),
    GlmmCase("study2e5-laplace", entry="glmer_ri", **STUDY),
    GlmmCase("study2e5-agq10", entry="glmer_ri_agq10", n_agq=10, **STUDY),
    GlmmCase("study2e5-nagq0", entry="glmer_ri_agq0", n_agq=0, **STUDY),
    *[GlmmCase(f"cbpp-{link}-{kind}", entry=f"{link}_{kind}", n_agq=n_agq, link=link,
               **{**CBPP, "reference": "lme4_cbpp_links.json"})
      for link in ("probit", "cloglog")
      for kind, n_agq in (("laplace", 1), ("agq10", 10), ("nagq0", 0))],
]

CASES_BY_NAME = {case.name: case for case in CASES}

# Single assertions known to fail, with the measured numbers (strict: they must keep failing
# until someone looks again).
KNOWN_SE_GAPS = {
    "cbpp-laplace": pytest.mark.xfail(strict=True, reason=(
        "lme4's Laplace SEs for cbpp are 0.54-1.28% below ours (period4: ours 0.42744, lme4 "
        "0.42205; period2 0.30664 vs 0.30315; period3 0.32664 vs 0.32283; intercept 0.23247 "
        "vs 0.23121): lme4's glmerLaplace evaluates ldL2 at the penultimate PIRLS iterate, "
        "and deriv12 differentiates that deviance (see "
        "test_cbpp_laplace_se_gap_is_lme4s_stale_log_determinant); our AGQ10 SEs match lme4 "
        "to 2e-4 (measured 7.7e-5)")),
}


def _params(cases, known=None):
    known = known or {}
    return [pytest.param(case, id=case.name,
                         marks=list(case.marks) + ([known[case.name]] if case.name in known
                                                   else []))
            for case in cases]


# --------------------------------------------------------------------------------------------
# Fixtures: data read once per module, each case fitted once per module
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def data_sets(data_file):
    """``data_sets(name) -> DataFrame``, each file read once (the study is 200,000 rows)."""
    return cached_loader(data_file, DATA_SETS)


def saturated_loglik(case, frame):
    """The saturated model's log-likelihood, which lme4 subtracts for nAGQ > 1.

    Binomial, k successes of m trials (m = 1 without trials, where this is 0):
    ``Σ xlogy(k, k/m) + xlogy(m-k, 1-k/m) + log C(m, k)``; Poisson:
    ``Σ xlogy(y, y) - y - log y!``.
    """
    y = frame[case.response].to_numpy(dtype=float)
    if case.family == "poisson":
        return float(np.sum(xlogy(y, y) - y - gammaln(y + 1)))
    m = np.ones_like(y) if case.trials is None else frame[case.trials].to_numpy(dtype=float)
    p = y / m
    return float(np.sum(xlogy(y, p) + xlogy(m - y, 1 - p)
                        + gammaln(m + 1) - gammaln(y + 1) - gammaln(m - y + 1)))


@dataclass
class Fitted:
    case: GlmmCase
    model: MixedGLM
    ref: dict
    warnings: list
    saturated: float

    @property
    def loglik_lme4_scale(self):
        """Our log-likelihood on lme4's convention for this nAGQ."""
        shift = self.saturated if self.case.n_agq > 1 else 0.0
        return self.model.loglik_ - shift


@pytest.fixture(scope="module")
def fits(data_sets, load_reference):
    """``fits(case) -> Fitted``: the case's MixedGLM fit and lme4 entry, computed once (a
    failed fit is remembered and raised again, not retried)."""
    cache = {}

    def get(case):
        if case.name not in cache:
            frame = data_sets(case.data)
            try:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    model = case.estimator().fit(frame[case.columns], frame[case.response])
            except Exception as exc:  # noqa: BLE001 - re-raised by every test of the case
                cache[case.name] = exc
            else:
                ref = load_reference(case.reference)[case.entry]
                cache[case.name] = Fitted(case, model, ref, [w.category for w in caught],
                                          saturated_loglik(case, frame))
        if isinstance(cache[case.name], Exception):
            raise cache[case.name]
        return cache[case.name]

    return get


@pytest.fixture
def fitted(request, fits):
    return fits(request.param)


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def _diagnosis(fit):
    """The optimizer's record beside lme4's: says who stopped short."""
    opt, case = fit.model.optimization_, fit.case
    ours, theirs = fit.loglik_lme4_scale, fit.ref["logLik"]
    who = ("ours higher: lme4 stopped short (or its Laplace ldL2 lag, see the module "
           "docstring)" if ours > theirs else "ours lower")
    return (f"[{case.name}: {case.formula}, {case.family}, n_agq={case.n_agq}] optimizer "
            f"{opt.optimizer}: {opt.message!r}, {opt.n_iter} iterations, {opt.n_evals} "
            f"evaluations, decrement {opt.decrement:.3g}, gradient "
            f"{np.array2string(np.asarray(opt.gradient), precision=3)}, theta "
            f"{np.array2string(fit.model.theta_, precision=6)} vs lme4 "
            f"{np.atleast_1d(fit.ref['theta'])}; logLik (lme4's convention) ours - lme4 = "
            f"{ours - theirs:.3g} ({who})")


def _assert_rel(ours, theirs, rtol, what, fit):
    ours, theirs = np.asarray(ours, dtype=float), np.asarray(theirs, dtype=float)
    worst = np.max(np.abs(ours / theirs - 1))
    np.testing.assert_allclose(ours, theirs, rtol=rtol, atol=0, err_msg=(
        f"{what}: worst relative difference {worst:.3g} (tolerance {rtol:g})\n"
        + _diagnosis(fit)))


# --------------------------------------------------------------------------------------------
# The registry's tests
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fitted", _params(CASES), indirect=True)
def test_converged_without_warnings(fitted):
    model = fitted.model
    assert model.converged_, _diagnosis(fitted)
    assert ConvergenceWarning not in fitted.warnings, _diagnosis(fitted)
    # None of these lme4 fits is singular.
    assert SingularFitWarning not in fitted.warnings, _diagnosis(fitted)
    assert model.n_obs_ == fitted.ref["nobs"]


@pytest.mark.parametrize("fitted", _params(CASES), indirect=True)
def test_estimator_kind(fitted):
    # Binomial without trials (0/1 y) is a classifier; with trials, and Poisson, a regressor.
    model, case = fitted.model, fitted.case
    if case.family == "binomial" and case.trials is None:
        assert is_classifier(model)
        np.testing.assert_array_equal(model.classes_, [0, 1])
    else:
        assert not is_classifier(model)
        assert not hasattr(model, "classes_")


@pytest.mark.parametrize("fitted", _params(CASES), indirect=True)
def test_fixed_effects(fitted):
    ref, table = fitted.ref, fitted.model.fixed_effects_
    terms = list(ref["fixef"])
    assert list(table.index) == terms
    _assert_rel(table["estimate"], [ref["fixef"][t] for t in terms], FIXEF_RTOL,
                f"fixed effects {terms}", fitted)


@pytest.mark.parametrize("fitted", _params(CASES, KNOWN_SE_GAPS), indirect=True)
def test_standard_errors(fitted):
    ref, table = fitted.ref, fitted.model.fixed_effects_
    terms = list(ref["se"])
    assert list(table.index) == terms
    rtol = SE_RTOL["agq" if fitted.case.n_agq > 1 else fitted.case.n_agq]
    _assert_rel(table["std_error"], [ref["se"][t] for t in terms], rtol,
                f"standard errors {terms}", fitted)


@pytest.mark.parametrize("fitted", _params(CASES), indirect=True)
def test_variance_components(fitted):
    model, ref = fitted.model, fitted.ref
    expected = {(row["grp"], label(row["var1"]), label(row["var2"])): row["sdcor"]
                for row in ref["varcorr"]}
    ours = {(row.group, label(row.var1), label(row.var2)): row.sd_cor
            for row in model.variance_components_.itertuples(index=False)}
    assert set(ours) == set(expected)
    keys = sorted(expected, key=str)
    _assert_rel([ours[k] for k in keys], [expected[k] for k in keys], VARCORR_RTOL,
                f"SDs/correlations {keys}", fitted)
    _assert_rel(model.theta_, np.atleast_1d(ref["theta"]), VARCORR_RTOL, "theta", fitted)


@pytest.mark.parametrize("fitted", _params(CASES), indirect=True)
def test_loglik_not_below_lme4(fitted):
    ours, theirs = fitted.loglik_lme4_scale, fitted.ref["logLik"]
    assert ours >= theirs - LOGLIK_BELOW_ATOL, (
        f"logLik on lme4's convention: ours {ours!r}, lme4 {theirs!r}\n" + _diagnosis(fitted))
    assert ours <= theirs + LOGLIK_ABOVE_SANITY, (
        f"logLik on lme4's convention: ours {ours!r} far above lme4's {theirs!r}: a "
        "log-likelihood convention mismatch?\n" + _diagnosis(fitted))


@pytest.mark.parametrize("fitted", _params(CASES), indirect=True)
def test_conditional_modes(fitted):
    assert_conditional_modes(fitted.model, fitted.ref, fitted.case.data != "study_2e5",
                             MODE_TOL_IN_SDS, COND_SD_RTOL, _diagnosis(fitted))


# --------------------------------------------------------------------------------------------
# Why lme4's cbpp Laplace SEs differ from ours: an emulation of its deviance function
# --------------------------------------------------------------------------------------------


def _lme4_laplace_deviance(X, codes, k, m, lp0, *, stale):
    """lme4 1.1-31's stage-2 ``glmer`` deviance for a binomial random intercept, x = (θ, β).

    As ``mkdevfun`` (nAGQ > 0) and ``glmerLaplace``/``pwrssUpdate`` (src/external.cpp):
    start from the stage-1 (nAGQ = 0) linear predictor ``lp0``; PIRLS steps for u alone
    (weights and working response at the current η, then the full solve) until the relative
    change of ``Σ devResid + |u|²`` is below tolPwrss = 1e-7; return ``ldL2 + |u|² + aic``.
    lme4's ``ldL2`` comes from the factorization at the start of the last step (``stale``);
    ``stale=False`` recomputes it at the final u (the Laplace approximation proper).
    """
    G, y = codes.max() + 1, k / m

    def deviance(x):
        theta, beta = x[0], x[1:]
        offset = X @ beta
        eta, old = lp0.copy(), np.inf
        for _ in range(100):
            mu = expit(eta)
            w = m * mu * (1 - mu)
            z = eta - offset + (y - mu) / (mu * (1 - mu))
            h = 1 + theta ** 2 * np.bincount(codes, w, G)
            ldl2 = np.sum(np.log(h))
            u = theta * np.bincount(codes, w * z, G) / h
            eta = offset + theta * u[codes]
            mu = expit(eta)
            pdev = np.sum(2 * m * (xlogy(y, y / mu) + xlogy(1 - y, (1 - y) / (1 - mu)))) + u @ u
            if abs((old - pdev) / pdev) < 1e-7:
                break
            old = pdev
        if not stale:
            ldl2 = np.sum(np.log(1 + theta ** 2 * np.bincount(codes, m * mu * (1 - mu), G)))
        aic = -2 * np.sum(gammaln(m + 1) - gammaln(k + 1) - gammaln(m - k + 1)
                          + xlogy(k, mu) + xlogy(m - k, 1 - mu))
        return ldl2 + u @ u + aic

    return deviance


def _deriv12_hessian(fun, x, delta=1e-4):
    """lme4's ``deriv12`` Hessian: central second differences of the value, step 1e-4."""
    n, f0 = x.size, fun(x)
    H = np.empty((n, n))
    e = np.eye(n) * delta
    for j in range(n):
        H[j, j] = (fun(x + e[j]) - 2 * f0 + fun(x - e[j])) / delta ** 2
        for i in range(j):
            H[i, j] = H[j, i] = (fun(x + e[i] + e[j]) - fun(x + e[i] - e[j])
                                 - fun(x - e[i] + e[j]) + fun(x - e[i] - e[j])) / (2 * delta) ** 2
    return H


def _central_gradient(fun, x, delta=1e-5):
    return np.array([(fun(x + e) - fun(x - e)) / (2 * delta) for e in np.eye(x.size) * delta])


def test_cbpp_laplace_se_gap_is_lme4s_stale_log_determinant(data_sets, load_reference, fits):
    frame = data_sets("cbpp")
    refs = load_reference("lme4_cbpp.json")
    laplace, stage1 = refs["laplace"], refs["nagq0"]
    terms = list(laplace["fixef"])
    X = np.column_stack([np.ones(len(frame))] + [frame[t].to_numpy(float) for t in terms[1:]])
    codes = frame["herd"].cat.codes.to_numpy()
    levels = [str(v) for v in frame["herd"].cat.categories]
    b0 = {r["grp"]: r["condval"] for r in stage1["ranef"]}
    lp0 = X @ np.array([stage1["fixef"][t] for t in terms]) + np.array(
        [b0[lv] for lv in levels])[codes]
    k, m = frame["incidence"].to_numpy(float), frame["size"].to_numpy(float)
    x_lme4 = np.r_[laplace["theta"], [laplace["fixef"][t] for t in terms]]
    se_lme4 = np.array([laplace["se"][t] for t in terms])

    def se(fun):
        return np.sqrt(np.diag(2 * np.linalg.inv(_deriv12_hessian(fun, x_lme4))[1:, 1:]))

    as_lme4 = _lme4_laplace_deviance(X, codes, k, m, lp0, stale=True)
    proper = _lme4_laplace_deviance(X, codes, k, m, lp0, stale=False)
    # The emulation is lme4: its logLik at its optimum and its SEs.
    assert abs(-0.5 * as_lme4(x_lme4) - laplace["logLik"]) < 1e-8
    np.testing.assert_allclose(se(as_lme4), se_lme4, rtol=1e-5, atol=0)
    # lme4's optimum is where that function is stationary, not the Laplace deviance proper.
    grad_lme4, grad_proper = (_central_gradient(fun, x_lme4) for fun in (as_lme4, proper))
    assert np.max(np.abs(grad_lme4)) < 0.1 * np.max(np.abs(grad_proper)), (
        f"gradients at lme4's optimum: emulated lme4 {grad_lme4}, Laplace proper {grad_proper}")
    # The log-determinant at the final iterate (the Laplace approximation proper) gives our
    # SEs, ~1 % above lme4's, and a log-likelihood 2.8e-4 higher at lme4's optimum.
    ours = fits(CASES_BY_NAME["cbpp-laplace"]).model
    se_proper = se(proper)
    np.testing.assert_allclose(se_proper, ours.fixed_effects_["std_error"], rtol=1e-3, atol=0)
    assert np.all(se_proper / se_lme4 - 1 > 4e-3)
    assert -0.5 * proper(x_lme4) - laplace["logLik"] > 2e-4
