"""skmixed.families: each family's NumPy side against scipy, and the negative binomial's
kernel row terms (ℓ against scipy's nbinom; ℓ', v, v' and the derivatives over log k by
central differences)."""

import math

import numpy as np
import pytest
from scipy import special, stats

from skmixed.families import (BINOMIAL_LOGIT, NBINOM2_LOG, POISSON_LOG, get_family,
                              param_terms, product_row_source, row_terms, special_digamma)


def _central(f, x, h=1e-5):
    return (f(x + h) - f(x - h)) / (2 * h)


@pytest.mark.parametrize("k", [0.05, 0.64, 3.0, 250.0])
@pytest.mark.parametrize("y", [0.0, 1.0, 4.0, 37.0])
def test_nbinom2_row_terms(k, y):
    for eta in (-4.0, -0.3, 0.0, 1.7, 5.0):
        mu = np.exp(eta)
        ll, l1, v, vf, vf1 = row_terms(NBINOM2_LOG, k, y, 1.0, eta)
        # scipy's nbinom(n, p): n = k, p = k / (k + μ)
        np.testing.assert_allclose(ll, stats.nbinom.logpmf(y, k, k / (k + mu)), rtol=1e-12,
                                   atol=1e-12)
        f = lambda e, j: row_terms(NBINOM2_LOG, k, y, 1.0, e)[j]  # noqa: E731
        np.testing.assert_allclose(l1, _central(lambda e: f(e, 0), eta), rtol=1e-7, atol=1e-9)
        np.testing.assert_allclose(v, -_central(lambda e: f(e, 1), eta), rtol=1e-7, atol=1e-9)
        assert vf == v  # the observed information in the log determinant (glmmTMB's)
        np.testing.assert_allclose(vf1, _central(lambda e: f(e, 2), eta), rtol=1e-6,
                                   atol=1e-9)
        # the derivatives over α = log k
        la, l1a, va = param_terms(NBINOM2_LOG, k, y, 1.0, eta)
        g = lambda a, j: row_terms(NBINOM2_LOG, np.exp(a), y, 1.0, eta)[j]  # noqa: E731
        alpha = np.log(k)
        # ℓ's lgamma(y + k) − lgamma(k) loses ~1e-16·lgamma(k) to cancellation, which a
        # central difference of step 1e-5 turns into ~1e-11·lgamma(k)
        fd_error = 1e-11 * max(1.0, special.gammaln(k + y))
        np.testing.assert_allclose(la, _central(lambda a: g(a, 0), alpha), rtol=1e-6,
                                   atol=max(1e-9, fd_error))
        np.testing.assert_allclose(l1a, _central(lambda a: g(a, 1), alpha), rtol=1e-6,
                                   atol=1e-9)
        np.testing.assert_allclose(va, _central(lambda a: g(a, 2), alpha), rtol=1e-6,
                                   atol=1e-9)


def test_digamma_against_scipy():
    x = np.concatenate([np.geomspace(1e-3, 1e6, 400), np.linspace(0.5, 30, 300)])
    got = np.array([special_digamma(v) for v in x])
    np.testing.assert_allclose(got, special.digamma(x), rtol=3e-15, atol=3e-15)


@pytest.mark.parametrize("name,link", [("binomial", "logit"), ("binomial", "probit"),
                                       ("binomial", "cloglog"), ("poisson", "log"),
                                       ("nbinom2", "log"), ("gamma", "log"),
                                       ("gaussian", "identity")])
def test_mean_and_its_derivative(name, link):
    fam = get_family(name, link)
    eta = np.linspace(-3, 3, 13)
    np.testing.assert_allclose(fam.mean_derivative(eta), _central(fam.mean, eta), rtol=1e-7,
                               atol=1e-10)


def test_loglik_against_scipy():
    rng = np.random.default_rng(0)
    eta = rng.normal(size=50)
    y = rng.poisson(np.exp(eta)).astype(float)
    w = rng.integers(1, 4, size=50).astype(float)
    pois = get_family("poisson")
    np.testing.assert_allclose(pois.loglik(y, eta, w=w),
                               w @ stats.poisson.logpmf(y, np.exp(eta)), rtol=1e-13)
    np.testing.assert_allclose(pois.loglik(y, eta, w=w, constants=False),
                               w @ (y * eta - np.exp(eta)), rtol=1e-13)
    m = rng.integers(1, 6, size=50).astype(float)
    yb = rng.binomial(m.astype(int), special.expit(eta)).astype(float)
    np.testing.assert_allclose(get_family("binomial").loglik(yb, eta, m=m),
                               stats.binom.logpmf(yb, m, special.expit(eta)).sum(), rtol=1e-13)
    nb = get_family("nbinom2")
    k = 1.7
    np.testing.assert_allclose(nb.loglik(y, eta, fpar=k),
                               stats.nbinom.logpmf(y, k, k / (k + np.exp(eta))).sum(),
                               rtol=1e-13)


def test_unknown_family_and_link_name_what_is_valid():
    with pytest.raises(ValueError, match="valid families"):
        get_family("tweedy")
    assert get_family("tweedie").power is None  # estimated: mgcv's tw()
    with pytest.raises(ValueError, match="the Tweedie family's; family='poisson'"):
        get_family("poisson", power=1.5)
    with pytest.raises(ValueError, match=r"valid links: \['cloglog', 'logit', 'probit'\]"):
        get_family("binomial", "log")


def test_response_checks_name_the_row():
    with pytest.raises(ValueError, match="row 2 has 1.5"):
        get_family("nbinom2").check_y(np.array([0.0, 3.0, 1.5]))
    with pytest.raises(ValueError, match="row 1 has -1"):
        get_family("gamma").check_y(np.array([1.0, -1.0]))


def test_the_generated_logit_row_equals_the_row_terms():
    """The logit's row terms as the code generator writes them out
    (:func:`~skmixed.families.product_row_source`: ℓ without its −log d_, which the
    generated pass accumulates as a product) are :func:`row_terms`' for a 0/1 row."""
    lines = product_row_source(BINOMIAL_LOGIT, "v")
    code = compile("\n".join(line[8:] for line in lines), "<logit row>", "exec")
    for y in (0.0, 1.0):
        for eta in (-40.0, -3.0, -0.2, 0.0, 0.5, 3.0, 40.0):
            ns = {"math": math, "y": [y], "r": 0, "eta": eta}
            exec(code, ns)  # the package's own generated lines, as glmm_codegen runs them
            got = (ns["l0"] - math.log(ns["d_"]), ns["l1"], ns["v"], ns["vf"], ns["vf1"])
            np.testing.assert_allclose(got, row_terms(BINOMIAL_LOGIT, 0.0, y, 1.0, eta),
                                       rtol=1e-14, atol=1e-15)
    assert product_row_source(POISSON_LOG, "v") is None


@pytest.mark.parametrize("name,link", [("binomial", "logit"), ("binomial", "probit"),
                                       ("poisson", "log"), ("nbinom2", "log"),
                                       ("gamma", "log")])
def test_score_information_is_the_row_terms(name, link):
    """PIRLS's ℓ' and v_F (the Poisson's without ℓ) are row_terms' to the last bit."""
    fam = get_family(name, link)
    rng = np.random.default_rng(5)
    eta = rng.normal(0.0, 2.0, 50)
    y = {"binomial": rng.integers(0, 2, 50), "gamma": rng.gamma(2.0, size=50)}.get(
        name, rng.poisson(2.0, 50)).astype(float)
    l1, v = fam.score_information(y, eta, fpar=1.7)
    expected = np.array([row_terms(fam.code, 1.7, yi, 1.0, e) for yi, e in zip(y, eta)])
    np.testing.assert_array_equal(np.column_stack([l1, v]), expected[:, [1, 3]])


@pytest.mark.parametrize("name,linear,scale_estimated,obs_level,residual_row", [
    # mgcv's scale.estimated (F or Chi.sq tests), lmer's levels-vs-observations check,
    # which glmer skips (skmixed._model.identifiability), lme4's VarCorr residual row
    ("gaussian", True, True, False, True), ("binomial", False, False, True, False),
    ("poisson", False, False, True, False), ("nbinom2", False, False, True, False),
    ("gamma", False, True, True, True)])
def test_what_the_model_asks_of_a_family(name, linear, scale_estimated, obs_level,
                                          residual_row):
    family = get_family(name)
    assert family.linear is linear
    assert family.scale_estimated is scale_estimated
    assert family.observation_level_effects is obs_level
    assert family.residual_row is residual_row


def test_the_additive_pirls_needs_its_family():
    """No default family (it was the binomial's, silently, for a caller that passed none)."""
    from skmixed._model.additive_pirls import laplace_reml, performance_iteration

    for fit in (performance_iteration, laplace_reml):
        with pytest.raises(TypeError, match="family"):
            fit(None, None, np.zeros(3), np.zeros(3))
