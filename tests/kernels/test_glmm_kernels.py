"""The GLMM kernels (:mod:`skmixed._kernels.glmm`) against scipy.stats and NumPy references.

* ``row_terms``: ``ℓ`` against ``scipy.stats.binom.logpmf`` (logit, probit, cloglog) /
  ``poisson.logpmf`` (so the full log-likelihood, log C(m, k) included); ``ℓ'``,
  ``v = −ℓ''`` and ``v_F' = ∂v_F/∂η`` against central finite differences of the kernel's own
  ``ℓ``, ``ℓ'`` and ``v_F``; the expected information ``v_F = m μ'²/(μ(1 − μ))``.
* ``fixed_glm_sums``: per-block log-likelihood, score ``X'(w ℓ')`` and information
  ``X' diag(w v) X`` against NumPy, several blocks (some empty), bit-identical on 1 and 2
  threads.
* ``laplace_groups`` / ``agq_groups``: an empty group contributes nothing; a one-node
  quadrature (node 0, weight 1) is the Laplace approximation, group by group.

The Laplace deviance, its gradient and the quadrature against integrals are tested through
the model layer in ``tests/model/test_glmm_model.py``.
"""

import math

import numba
import numpy as np
import pytest
from scipy import special, stats

from skmixed._kernels.glmm import agq_groups, fixed_glm_sums, laplace_groups
from skmixed.families import (BINOMIAL_CLOGLOG, BINOMIAL_LOGIT, BINOMIAL_PROBIT, GAMMA_LOG,
                              POISSON_LOG, row_derivs, row_terms)
from skmixed._kernels.threads import numba_threads

ETAS = np.array([-6.0, -2.3, -0.7, 0.0, 0.4, 1.9, 5.5])
two_threads = pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2,
                                 reason="needs 2 Numba threads")


def terms(family, y, m, eta):
    return np.array(row_terms(family, 0.0, float(y), float(m), float(eta)))


def central(fun, eta, h=1e-5):
    return (fun(eta + h) - fun(eta - h)) / (2.0 * h)


# ----------------------------------------------------------------------------- row_terms
# log μ(η), log(1 − μ(η)) and dμ/dη per binomial link, from scipy (accurate logs in both
# tails: binom.logpmf's log(1 − μ) cancels where μ is near 1)
LINKS = {
    BINOMIAL_LOGIT: (lambda e: -np.logaddexp(0.0, -e), lambda e: -np.logaddexp(0.0, e),
                     lambda e: special.expit(e) * special.expit(-e)),
    BINOMIAL_PROBIT: (special.log_ndtr, lambda e: special.log_ndtr(-e),
                      lambda e: np.exp(-0.5 * e * e) / np.sqrt(2 * np.pi)),
    BINOMIAL_CLOGLOG: (lambda e: np.log(-np.expm1(-np.exp(e))), lambda e: -np.exp(e),
                       lambda e: np.exp(e - np.exp(e))),
}


def check_derivatives(family, y, m, eta):
    """ℓ', v = −ℓ'' and v_F' = ∂v_F/∂η against central differences of the kernel's own ℓ,
    ℓ' and v_F."""
    ll, l1, v, vf, vf1 = terms(family, y, m, eta)
    np.testing.assert_allclose(l1, central(lambda e: terms(family, y, m, e)[0], eta),
                               rtol=1e-7, atol=1e-8)
    np.testing.assert_allclose(v, -central(lambda e: terms(family, y, m, e)[1], eta),
                               rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(vf1, central(lambda e: terms(family, y, m, e)[3], eta),
                               rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("family", list(LINKS), ids=["logit", "probit", "cloglog"])
@pytest.mark.parametrize("m, ys", [(1, [0, 1]), (2, [0, 1, 2]), (7, [0, 3, 7]),
                                   (25, [0, 11, 25])])
def test_row_terms_binomial_against_scipy(family, m, ys):
    log_mu, log_1mu, dmean = LINKS[family]
    for y in ys:
        for eta in ETAS:
            ll, l1, v, vf, vf1 = terms(family, y, m, eta)
            mu = np.exp(log_mu(eta))
            log_c = special.gammaln(m + 1) - special.gammaln(y + 1) - special.gammaln(m - y + 1)
            np.testing.assert_allclose(ll, y * log_mu(eta) + (m - y) * log_1mu(eta) + log_c,
                                       rtol=1e-12, atol=1e-12)
            if 1e-6 < mu < 1 - 1e-6:  # away from the tails binom.logpmf is accurate too
                np.testing.assert_allclose(ll, stats.binom.logpmf(y, m, mu), rtol=1e-11)
            check_derivatives(family, y, m, eta)
            # the expected information m μ'² / (μ(1 − μ))
            var = np.exp(log_mu(eta) + log_1mu(eta))  # μ(1 − μ) without cancellation
            np.testing.assert_allclose(vf, m * dmean(eta) ** 2 / var, rtol=1e-9,
                                       atol=1e-300)
            assert v >= 0.0  # ℓ is concave in η for these links
            if family == BINOMIAL_LOGIT:  # canonical: observed = expected
                np.testing.assert_allclose([l1, v, vf], [y - m * mu] + 2 * [m * mu * (1 - mu)],
                                           rtol=1e-12, atol=1e-300)


def test_row_terms_binomial_includes_log_binomial_coefficient():
    # same η and y, m = 1 versus m = 5: the difference is log C(5, 1) plus the m-part
    eta, y = 0.3, 1.0
    ll5 = terms(BINOMIAL_LOGIT, y, 5, eta)[0]
    expected = math.log(5.0) + y * eta - 5 * np.logaddexp(0.0, eta)
    np.testing.assert_allclose(ll5, expected, rtol=1e-13)


def test_row_terms_binomial_extreme_eta_is_finite_and_accurate():
    for eta in (-40.0, -750.0, 40.0, 750.0):
        for y, m in ((0, 1), (1, 1), (0, 3), (3, 3)):
            ll, l1, v, vf, vf1 = terms(BINOMIAL_LOGIT, y, m, eta)
            expected = (y * eta - m * np.logaddexp(0.0, eta)
                        + special.gammaln(m + 1) - special.gammaln(y + 1)
                        - special.gammaln(m - y + 1))
            assert np.isfinite([ll, l1, v, vf, vf1]).all()
            np.testing.assert_allclose(ll, expected, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("family", [BINOMIAL_PROBIT, BINOMIAL_CLOGLOG], ids=["probit", "cloglog"])
def test_row_terms_noncanonical_tails(family):
    """Far tails: finite terms; ℓ of the likely outcome ~0, of the unlikely one ≈ log μ from
    scipy's log-CDF (probit) or η (cloglog, μ ≈ e^η); the derivatives stay consistent where
    the differences are still accurate."""
    for eta in (-45.0, -30.0, -9.0, 9.0, 30.0, 750.0, -750.0):
        for y, m in ((0, 1), (1, 1), (2, 5)):
            ll, l1, v, vf, vf1 = terms(family, y, m, eta)
            assert np.isfinite([ll, l1, v, vf, vf1]).all(), (eta, y, m)
        if family == BINOMIAL_PROBIT:
            np.testing.assert_allclose(terms(family, 1, 1, eta)[0], special.log_ndtr(eta),
                                       rtol=1e-10)
            np.testing.assert_allclose(terms(family, 0, 1, eta)[0], special.log_ndtr(-eta),
                                       rtol=1e-10)
        elif eta < -30:
            np.testing.assert_allclose(terms(family, 1, 1, eta)[0], eta, rtol=1e-12)
    for eta in (-30.0, -9.0, 3.0, 9.0):
        check_derivatives(family, 1.0, 3.0, eta)


@pytest.mark.parametrize("y", [0, 1, 4, 30])
def test_row_terms_poisson_log_against_scipy(y):
    for eta in np.array([-4.0, -1.1, 0.0, 0.8, 2.5, 4.0]):
        ll, l1, v, vf, vf1 = terms(POISSON_LOG, y, 1.0, eta)
        np.testing.assert_allclose(ll, stats.poisson.logpmf(y, np.exp(eta)), rtol=1e-12,
                                   atol=1e-12)
        check_derivatives(POISSON_LOG, y, 1.0, eta)
        np.testing.assert_allclose([l1, v, vf, vf1], [y - np.exp(eta)] + 3 * [np.exp(eta)],
                                   rtol=1e-12)


@pytest.mark.parametrize("y", [0.05, 1.0, 7.5])
def test_row_terms_gamma_log_at_unit_dispersion(y):
    """Gamma, log link, unit dispersion: ℓ = −y/μ − log μ; the observed information y/μ
    stands in v_F (the log determinant of the true Laplace approximation)."""
    for eta in np.array([-3.0, -0.4, 0.0, 1.2, 4.0]):
        ll, l1, v, vf, vf1 = terms(GAMMA_LOG, y, 1.0, eta)
        mu = np.exp(eta)
        # scipy's Gamma density with shape 1 and scale μ, without its log y constant (0 here)
        np.testing.assert_allclose(ll, stats.gamma.logpdf(y, 1.0, scale=mu), rtol=1e-12)
        check_derivatives(GAMMA_LOG, y, 1.0, eta)
        np.testing.assert_allclose([l1, v, vf, vf1], [y / mu - 1, y / mu, y / mu, -y / mu],
                                   rtol=1e-12)


@pytest.mark.parametrize("family", [BINOMIAL_LOGIT, POISSON_LOG, BINOMIAL_PROBIT,
                                    BINOMIAL_CLOGLOG, GAMMA_LOG])
def test_row_derivs_are_row_terms_without_the_log_likelihood(family):
    for eta in ETAS:
        full = terms(family, 2.0, 5.0, eta)
        cheap = row_derivs(family, 0.0, 2.0, 5.0, float(eta))
        np.testing.assert_allclose(cheap, full[[1, 2]], rtol=1e-12, atol=1e-300)


# ----------------------------------------------------------------------------- fixed_glm_sums
def numpy_glm_sums(family, X, y, m, off, w, beta):
    eta = X @ beta + (off if off.size else 0.0)
    mm = m if m.size else np.ones_like(y)
    ww = w if w.size else np.ones_like(y)
    if family == BINOMIAL_LOGIT:
        mu = special.expit(eta)
        ll = stats.binom.logpmf(y, mm, mu)
        l1, v = y - mm * mu, mm * mu * (1 - mu)
    else:
        mu = np.exp(eta)
        ll = stats.poisson.logpmf(y, mu)
        l1, v = y - mu, mu
    return ww @ ll, X.T @ (ww * l1), (X * (ww * v)[:, None]).T @ X


def glm_rows(rng, family, n, trials, offset, weights):
    X = np.asfortranarray(np.column_stack([np.ones(n), rng.normal(size=(n, 2))]))
    beta = np.array([0.2, -0.5, 0.3])
    m = rng.integers(1, 6, size=n).astype(float) if trials else np.empty(0)
    off = rng.uniform(-0.5, 0.5, size=n) if offset else np.empty(0)
    w = rng.integers(0, 4, size=n).astype(float) if weights else np.empty(0)
    eta = X @ beta + (off if off.size else 0.0)
    if family == BINOMIAL_LOGIT:
        y = rng.binomial(m.astype(int) if trials else 1, special.expit(eta)).astype(float)
    else:
        y = rng.poisson(np.exp(eta)).astype(float)
    return X, y, m, off, w, beta


@pytest.mark.parametrize("family, trials, offset, weights", [
    (BINOMIAL_LOGIT, False, False, False),
    (BINOMIAL_LOGIT, True, True, True),
    (POISSON_LOG, False, True, True),
])
@pytest.mark.parametrize("n_blocks", [1, 3, 40])
def test_fixed_glm_sums_against_numpy(family, trials, offset, weights, n_blocks):
    rng = np.random.default_rng(7 + n_blocks)
    X, y, m, off, w, beta = glm_rows(rng, family, 29, trials, offset, weights)
    ll = np.full(n_blocks, np.nan)
    score = np.full((n_blocks, 3), np.nan)
    info = np.full((n_blocks, 3, 3), np.nan)
    fixed_glm_sums(family, 0.0, X, y, m, off, w, beta, ll, score, info)
    ref = numpy_glm_sums(family, X, y, m, off, w, beta)
    np.testing.assert_allclose(ll.sum(), ref[0], rtol=1e-12)
    np.testing.assert_allclose(score.sum(axis=0), ref[1], rtol=1e-11, atol=1e-11)
    np.testing.assert_allclose(info.sum(axis=0), ref[2], rtol=1e-12)
    np.testing.assert_array_equal(info, np.transpose(info, (0, 2, 1)))


@two_threads
@pytest.mark.parametrize("n_blocks", [1, 2, 7])
def test_fixed_glm_sums_threads_identical(n_blocks, monkeypatch):
    """The blocks fix the summation order: bit-identical on 1 and 2 threads (ranges of the
    blocks per thread: over_blocks), with fewer, as many or more blocks than threads."""
    from skmixed._kernels.threads import over_blocks

    monkeypatch.setattr("skmixed._kernels.threads.THREAD_MIN_ROWS", 0)
    rng = np.random.default_rng(3)
    X, y, m, off, w, beta = glm_rows(rng, POISSON_LOG, 101, False, True, True)
    out = []
    for n_jobs in (1, 2, 1, 2):
        ll, score = np.zeros(n_blocks), np.zeros((n_blocks, 3))
        info = np.zeros((n_blocks, 3, 3))
        with numba_threads(n_jobs):
            over_blocks(fixed_glm_sums, (POISSON_LOG, 0.0, X, y, m, off, w, beta, ll, score,
                                         info), n_blocks, X.shape[0])
        out.append((ll, score, info))
    for other in out[1:]:
        for a, b in zip(out[0], other):
            np.testing.assert_array_equal(a, b)


# ----------------------------------------------------------------------------- laplace / agq
def grouped_q1(rng, sizes, family=BINOMIAL_LOGIT):
    starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    n = int(starts[-1])
    X = np.asfortranarray(np.column_stack([np.ones(n), rng.normal(size=n)]))
    codes = np.repeat(np.arange(len(sizes)), sizes)
    b = rng.normal(scale=0.8, size=len(sizes))
    eta = X @ np.array([0.1, 0.7]) + b[codes]
    if family == BINOMIAL_LOGIT:
        y = rng.binomial(1, special.expit(eta)).astype(float)
    else:
        y = rng.poisson(np.exp(eta)).astype(float)
    return X, y, starts


def run_laplace(family, X, zcol, y, starts, beta, T, rows, cols, want_grad=True):
    G, q, p = starts.size - 1, zcol.size, X.shape[1]
    u = np.zeros((G, q))
    dev, grad = np.full(G, np.nan), np.full((G, p + rows.size), np.nan)
    conv, H = np.zeros(G, dtype=np.bool_), np.full((G, q, q), np.nan)
    e = np.empty(0)
    J = np.zeros((G, q, p + rows.size))
    laplace_groups(family, 0.0, X, zcol, y, e, e, e, starts, beta, T, rows, cols, u, J, e,
                   want_grad, 50, 1e-10, dev, grad, conv, H, np.zeros((G, 1 + p + rows.size)))
    return u, dev, grad, conv, H


def test_laplace_groups_empty_group_contributes_nothing():
    rng = np.random.default_rng(11)
    X, y, starts = grouped_q1(rng, [4, 0, 6, 1, 0])
    zcol = np.array([-1], dtype=np.int64)
    rows = cols = np.array([0], dtype=np.int64)
    u, dev, grad, conv, H = run_laplace(BINOMIAL_LOGIT, X, zcol, y, starts,
                                        np.array([0.2, -0.4]), np.array([[0.9]]), rows, cols)
    for i in (1, 4):
        assert dev[i] == 0.0
        assert u[i, 0] == 0.0
        np.testing.assert_array_equal(grad[i], 0.0)
        assert H[i, 0, 0] == 1.0
    assert conv.all()
    assert np.all(dev[[0, 2, 3]] > 0)


@pytest.mark.parametrize("family", [BINOMIAL_LOGIT, POISSON_LOG])
def test_one_node_quadrature_is_laplace(family):
    rng = np.random.default_rng(5)
    X, y, starts = grouped_q1(rng, [1, 3, 0, 8, 15], family)
    zcol = np.array([-1], dtype=np.int64)
    rows = cols = np.array([0], dtype=np.int64)
    beta, T = np.array([0.1, 0.5]), np.array([[1.3]])
    u_lap, dev_lap, *_ = run_laplace(family, X, zcol, y, starts, beta, T, rows, cols, False)
    G = starts.size - 1
    u, dev, conv = np.zeros((G, 1)), np.full(G, np.nan), np.zeros(G, dtype=np.bool_)
    e = np.empty(0)
    agq_groups(family, 0.0, X, zcol, y, e, e, e, starts, beta, T, u, np.array([0.0]),
               np.array([1.0]), 50, 1e-10, dev, conv)
    assert conv.all()
    # the kernels stop their mode searches at different points within their tolerances
    np.testing.assert_allclose(u, u_lap, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dev, dev_lap, rtol=1e-11, atol=1e-11)
