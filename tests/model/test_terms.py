"""``RandomEffectTerm``: θ in lme4's order, bounds, the factor T(θ), singularity."""

import numpy as np
import pytest

from skmixed._model.terms import RandomEffectTerm

NAMES = ("(Intercept)", "x1", "x2")


def term(q, covariance="unstructured"):
    return RandomEffectTerm(NAMES[:q], covariance)


def test_unstructured_theta_order_is_lme4_column_major_lower_triangle():
    t = term(2)
    assert t.q == 2 and t.n_theta == 3
    np.testing.assert_array_equal(t.rows, [0, 1, 1])
    np.testing.assert_array_equal(t.cols, [0, 0, 1])
    # θ = [T00, T10, T11]
    T = t.factor(np.array([2.0, 3.0, 5.0]))
    np.testing.assert_array_equal(T, [[2.0, 0.0], [3.0, 5.0]])
    # lme4: relative covariance T T' = [[T00², T00 T10], [T00 T10, T10² + T11²]]
    np.testing.assert_array_equal(T @ T.T, [[4.0, 6.0], [6.0, 34.0]])


def test_unstructured_q3_order():
    t = term(3)
    assert t.n_theta == 6
    pairs = list(zip(t.rows.tolist(), t.cols.tolist()))
    assert pairs == [(0, 0), (1, 0), (2, 0), (1, 1), (2, 1), (2, 2)]
    T = t.factor(np.arange(1.0, 7.0))
    np.testing.assert_array_equal(T, [[1.0, 0.0, 0.0], [2.0, 4.0, 0.0], [3.0, 5.0, 6.0]])


def test_diagonal_theta():
    t = term(3, "diagonal")
    assert t.n_theta == 3
    np.testing.assert_array_equal(t.rows, [0, 1, 2])
    np.testing.assert_array_equal(t.cols, [0, 1, 2])
    np.testing.assert_array_equal(t.factor(np.array([1.5, 0.0, 2.0])),
                                  np.diag([1.5, 0.0, 2.0]))


def test_scalar_term_is_the_same_under_both_structures():
    for cov in ("unstructured", "diagonal"):
        t = term(1, cov)
        assert t.n_theta == 1
        np.testing.assert_array_equal(t.factor(np.array([0.7])), [[0.7]])
        np.testing.assert_array_equal(t.theta_start(), [1.0])
        np.testing.assert_array_equal(t.theta_lower(), [0.0])


@pytest.mark.parametrize("q", [1, 2, 3])
def test_start_and_bounds(q):
    t = term(q)
    start = t.theta_start()
    lower = t.theta_lower()
    diag = t.rows == t.cols
    np.testing.assert_array_equal(start, np.where(diag, 1.0, 0.0))
    np.testing.assert_array_equal(lower, np.where(diag, 0.0, -np.inf))
    assert start.dtype == np.float64
    np.testing.assert_array_equal(t.factor(start), np.eye(q))
    d = term(q, "diagonal")
    np.testing.assert_array_equal(d.theta_start(), np.ones(q))
    np.testing.assert_array_equal(d.theta_lower(), np.zeros(q))


@pytest.mark.parametrize("covariance", ["unstructured", "diagonal"])
@pytest.mark.parametrize("q", [1, 2, 3])
def test_factor_round_trip(q, covariance):
    t = term(q, covariance)
    theta = np.random.default_rng(q).normal(size=t.n_theta)
    T = t.factor(theta)
    assert T.shape == (q, q)
    np.testing.assert_array_equal(T[t.rows, t.cols], theta)
    # lower triangular, and nothing outside the free elements
    np.testing.assert_array_equal(np.triu(T, 1), 0.0)
    mask = np.zeros((q, q), dtype=bool)
    mask[t.rows, t.cols] = True
    np.testing.assert_array_equal(T[~mask], 0.0)
    # the free elements are distinct positions
    assert mask.sum() == t.n_theta


def test_is_singular():
    t = term(2)
    assert not t.is_singular(np.array([1.0, 0.5, 1.0]))
    assert t.is_singular(np.array([1.0, 0.5, 0.0]))
    assert t.is_singular(np.array([0.0, 0.5, 1.0]))
    # an off-diagonal element at zero is no boundary
    assert not t.is_singular(np.array([1.0, 0.0, 1.0]))
    assert not t.is_singular(np.array([1.0, -1e-9, 1.0]))
    # lme4's default tolerance 1e-4, and a custom one
    assert t.is_singular(np.array([1.0, 0.5, 5e-5]))
    assert not t.is_singular(np.array([1.0, 0.5, 5e-4]))
    assert t.is_singular(np.array([1.0, 0.5, 5e-4]), tol=1e-3)
    assert isinstance(t.is_singular(np.array([1.0, 0.5, 1.0])), bool)
    d = term(3, "diagonal")
    assert d.is_singular(np.array([1.0, 0.0, 1.0]))
    assert not d.is_singular(np.array([1.0, 0.2, 1.0]))


def test_unknown_covariance_raises():
    with pytest.raises(ValueError, match="covariance"):
        RandomEffectTerm(("(Intercept)",), "compound")
