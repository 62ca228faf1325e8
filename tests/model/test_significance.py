"""The tail probabilities and the smooth test of skmixed._model.significance, against
closed forms (equal weights: χ²; the F distribution) and an independent numerical
convolution (unequal weights)."""

import numpy as np
import pytest
from scipy import integrate, linalg, stats

from skmixed._model.significance import (alternative_edf_terms, chi2_mixture_f_sf,
                                         chi2_mixture_sf, smooth_test)


@pytest.mark.parametrize("x", [0.3, 2.0, 7.5, 20.0, 45.0])
@pytest.mark.parametrize("k", [1, 3, 6])
def test_equal_weights_are_a_chi2(x, k):
    assert chi2_mixture_sf(x, np.ones(k)) == pytest.approx(stats.chi2.sf(x, k), abs=1e-11)
    # a common weight c: c χ²_k
    assert chi2_mixture_sf(2.5 * x, np.full(k, 2.5)) == pytest.approx(stats.chi2.sf(x, k),
                                                                       abs=1e-11)


@pytest.mark.parametrize("x", [0.8, 4.0, 15.0])
@pytest.mark.parametrize("k", [1, 4])
def test_f_form_is_the_f_distribution(x, k):
    for d in (7, 250, 3900):
        assert chi2_mixture_f_sf(x * k, np.ones(k), d) == pytest.approx(
            stats.f.sf(x, k, d), abs=1e-10)


def _chi2_1_pdf(t):
    return np.exp(-t / 2) / np.sqrt(2 * np.pi * t)


def _convolution_sf(x, w1, w2):
    """P(χ²₂ + w1 χ²₁ + w2 χ²₁ > x) by nested quadrature (χ²₂'s tail is exp(−t/2))."""
    def inner(a):
        r = x - w1 * a
        if r <= 0:
            return 1.0
        f = integrate.quad(lambda b: _chi2_1_pdf(b) * np.exp(-(r - w2 * b) / 2),
                           0, r / w2, limit=200, epsabs=1e-16, epsrel=1e-10)[0]
        return f + stats.chi2.sf(r / w2, 1)
    body = integrate.quad(lambda a: _chi2_1_pdf(a) * inner(a), 0, x / w1, limit=200,
                          epsabs=1e-16, epsrel=1e-9)[0]
    return body + stats.chi2.sf(x / w1, 1)


@pytest.mark.parametrize("x", [1.5, 6.0, 35.6851])
def test_unequal_weights_against_a_convolution(x):
    """The weights of a reference df of 3.98 (1, 1, 1.082, 0.9015); at x = 35.6851 mgcv's
    Davies algorithm gives 4.87e-7 (tests/estimators/test_additive_significance.py). Imhof's
    inversion to 1e-10 absolute (measured ≤ 1.6e-12), as docs/additive.md states."""
    w = [1.0, 1.0, 1.0820641, 0.9014989]
    exact = _convolution_sf(x, w[2], w[3])
    assert chi2_mixture_sf(x, w) == pytest.approx(exact, rel=0, abs=1e-10)


def test_wald_statistic_of_an_integer_rank():
    """Full rank, integer reference df: the plain Wald statistic c'V⁻¹c against χ²_k
    (known scale) or (c'V⁻¹c / k) against F_{k,d}."""
    rng = np.random.default_rng(0)
    A = rng.normal(size=(50, 4))
    gram = A.T @ A
    cov = linalg.inv(gram + np.diag([0.0, 1.0, 2.0, 0.5]))
    coef = rng.normal(size=4) * 0.2
    wald = coef @ linalg.solve(cov, coef)
    stat, p = smooth_test(coef, cov, gram, 4.0)
    assert stat == pytest.approx(wald, rel=1e-10)
    assert p == pytest.approx(stats.chi2.sf(wald, 4), rel=1e-10)
    stat, p = smooth_test(coef, cov, gram, 4.0, res_df=120.0)
    assert p == pytest.approx(stats.f.sf(wald / 4, 4, 120.0), rel=1e-10)


def test_fractional_rank_lies_between_its_integer_neighbours():
    """A fractional reference df blends the k-th and (k+1)-th directions: the p-value of
    r = 2.5 lies between those of r = 2 and r = 3 when all directions carry signal."""
    rng = np.random.default_rng(1)
    A = rng.normal(size=(80, 5))
    gram = A.T @ A
    cov = linalg.inv(gram + np.eye(5))
    coef = linalg.cholesky(cov, lower=True) @ np.full(5, 1.2)
    p = [smooth_test(coef, cov, gram, r)[1] for r in (2.0, 2.5, 3.0)]
    assert min(p[0], p[2]) <= p[1] <= max(p[0], p[2])


def test_tiny_tails_are_an_upper_bound():
    """Far in the tail the reported p-value is the bound P(w_max χ²_k > x): positive,
    tiny, and not below the exact χ² of the smaller weights."""
    coef = np.array([30.0, 25.0, 20.0])
    gram = np.eye(3)
    cov = np.eye(3)
    stat, p = smooth_test(coef, cov, gram, 2.4)
    assert 0.0 < p < 1e-100
    assert p >= stats.chi2.sf(stat, 3)


def test_alternative_edf_of_a_ridge():
    """Ridge y = Xu + e with unit penalty: M = X'X + I, F = M⁻¹X'X; tr(2F − F²) by the
    blocks of M⁻¹ equals the direct computation."""
    rng = np.random.default_rng(2)
    X = rng.normal(size=(30, 6))
    Minv = linalg.inv(X.T @ X + np.eye(6))
    F = Minv @ X.T @ X
    direct = np.diag(2 * F - F @ F)
    by_blocks = alternative_edf_terms([Minv[:2], Minv[2:]])
    np.testing.assert_allclose(by_blocks, direct, rtol=1e-12)
