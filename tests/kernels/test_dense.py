"""The small q×q routines of skmixed._kernels.dense against NumPy."""

import numpy as np
import pytest

from skmixed._kernels.dense import (backward_solve, chol_lower, chol_solve, forward_solve,
                                    forward_solve_vector, inverse_from_chol, lower_matvec,
                                    lower_sandwich, tct_plus_identity)


def _spd(q, seed):
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(q, q))
    return A @ A.T + q * np.eye(q)


@pytest.mark.parametrize("q", [1, 2, 3, 5])
def test_cholesky_and_solves_match_numpy(q):
    M = _spd(q, q)
    L = np.full((q, q), np.nan)
    assert chol_lower(M, L)
    np.testing.assert_allclose(L, np.linalg.cholesky(M), rtol=1e-13, atol=1e-14)
    assert np.all(np.triu(L, 1) == 0.0)
    rng = np.random.default_rng(10 + q)
    b = rng.normal(size=q)
    out = np.empty(q)
    chol_solve(L, b, out)
    np.testing.assert_allclose(out, np.linalg.solve(M, b), rtol=1e-12)
    B = rng.normal(size=(q, 3))
    F = B.copy()
    forward_solve(L, F)
    np.testing.assert_allclose(L @ F, B, rtol=1e-12, atol=1e-12)
    x = b.copy()
    backward_solve(L, x)
    np.testing.assert_allclose(L.T @ x, b, rtol=1e-12, atol=1e-12)
    inv = np.empty((q, q))
    inverse_from_chol(L, inv, np.empty((q, q)))
    np.testing.assert_allclose(inv, np.linalg.inv(M), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("M", [np.array([[1.0, 2.0], [2.0, 1.0]]), np.array([[-1.0]]),
                               np.array([[np.nan]])], ids=["indefinite", "negative", "nan"])
def test_cholesky_reports_non_positive_definite(M):
    assert not chol_lower(M, np.zeros_like(M))


@pytest.mark.parametrize("q", [1, 2, 4])
def test_lower_triangular_products_match_numpy(q):
    rng = np.random.default_rng(20 + q)
    T = np.tril(rng.normal(size=(q, q)))
    u = rng.normal(size=q)
    out = np.full(q, np.nan)
    lower_matvec(T, u, out)
    np.testing.assert_allclose(out, T @ u, rtol=1e-13, atol=1e-14)
    A = _spd(q, 30 + q)
    S = np.full((q, q), np.nan)
    lower_sandwich(T, A, S)
    np.testing.assert_allclose(S, T @ A @ T.T, rtol=1e-12, atol=1e-13)
    P = np.full((q, q), np.nan)
    tct_plus_identity(T, A, P)
    np.testing.assert_allclose(P, T.T @ A @ T + np.eye(q), rtol=1e-12, atol=1e-13)
    L = np.linalg.cholesky(_spd(q, 40 + q))
    v = u.copy()
    forward_solve_vector(L, v)
    np.testing.assert_allclose(L @ v, u, rtol=1e-12, atol=1e-13)
