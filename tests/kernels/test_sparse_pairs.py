"""skmixed._kernels.sparse_pairs against NumPy/SciPy references, with 1 and 2 threads,
empty rows and unsorted row order of the levels."""

import numba
import numpy as np
import pytest
from scipy import sparse

from skmixed._kernels.sparse_pairs import (csr_dense_product, row_outer_sum,
                                           row_quadratic_forms, scaled_schur_lower)


def _random_csr(seed, n_rows=60, m=25, density=0.15):
    rng = np.random.default_rng(seed)
    F = sparse.random(n_rows, m, density=density, random_state=rng, format="csr")
    F.data = rng.normal(size=F.data.size)
    F = F.tolil()
    F[3, :] = 0.0  # an empty row
    F = F.tocsr()
    F.eliminate_zeros()
    F.sort_indices()
    return F


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("n_chunks", [1, 3])
def test_row_outer_sum(threads, n_chunks):
    F = _random_csr(0)
    out = np.zeros((n_chunks, F.shape[1], F.shape[1]))
    previous = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        row_outer_sum(F.indptr, F.indices, F.data, out)
    finally:
        numba.set_num_threads(previous)
    full = (F.T @ F).toarray()
    np.testing.assert_allclose(out.sum(axis=0), np.tril(full), atol=1e-12)


@pytest.mark.parametrize("threads", [1, 2])
def test_row_quadratic_forms(threads):
    F = _random_csr(1)
    rng = np.random.default_rng(2)
    A = rng.normal(size=(F.shape[1], F.shape[1]))
    S = A @ A.T
    lower = np.tril(S) + np.triu(rng.normal(size=S.shape), 1)  # the upper part is ignored
    out = np.empty(F.shape[0])
    previous = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        row_quadratic_forms(F.indptr, F.indices, F.data, lower, out)
    finally:
        numba.set_num_threads(previous)
    Fd = F.toarray()
    np.testing.assert_allclose(out, np.einsum("ij,jk,ik->i", Fd, S, Fd), rtol=1e-12,
                               atol=1e-12)
    assert out[3] == 0.0


@pytest.mark.parametrize("n_parts", [1, 2, 3])
def test_scaled_schur_lower(n_parts):
    F = _random_csr(3)
    rng = np.random.default_rng(4)
    A = rng.normal(size=(F.shape[1], F.shape[1]))
    ZZ = A @ A.T
    lam = rng.uniform(0.2, 2.0, F.shape[1])
    ZZ[np.abs(ZZ) < 0.5] = 0.0  # sparse, as the rest factors' cross-products are
    out = np.full(ZZ.shape, 7.0, order="F")
    low = sparse.csr_matrix(np.tril(ZZ))
    scaled_schur_lower(lam, low.indptr, low.indices, low.data, F.indptr, F.indices, F.data,
                       out, n_parts)
    want = lam[:, None] * ZZ * lam[None, :] + np.eye(len(lam)) - (F.T @ F).toarray()
    np.testing.assert_allclose(np.tril(out), np.tril(want), atol=1e-12)
    assert np.all(np.triu(out, 1)[np.triu_indices(len(lam), 1)] == 7.0)


def test_csr_dense_product_is_scipys_and_thread_free():
    F = _random_csr(4)
    V = np.random.default_rng(5).normal(size=(F.shape[1], 7))
    outs = []
    previous = numba.get_num_threads()
    for threads in (1, 2):
        numba.set_num_threads(threads)
        try:
            out = np.full((F.shape[0], 7), np.nan)  # every entry written, the empty row too
            csr_dense_product(F.indptr, F.indices, F.data, V, out)
        finally:
            numba.set_num_threads(previous)
        outs.append(out)
    np.testing.assert_allclose(outs[0], F @ V, rtol=1e-13, atol=1e-13)
    np.testing.assert_array_equal(outs[0], outs[1])
