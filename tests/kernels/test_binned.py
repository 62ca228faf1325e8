"""The binned pass (skmixed._kernels.binned.binned_sums) against NumPy: plain
cross-products, per-bin sums, the smooths' pairwise basis products, per-group sums of the
bins' basis rows,
with and without weights and groups, one chunk or several (the per-thread buffers), 1 and 2
threads."""

import numba
import numpy as np
import pytest

from skmixed._kernels.binned import bin_layout, binned_sums
from skmixed._kernels.threads import numba_threads


def run(X, y, w, bins, sizes, codes, G, n_chunks, basis, widths):
    """The kernel's outputs summed over chunks, and the smooths' bin offsets."""
    offsets = bin_layout(sizes)
    c, M, K = X.shape[1] + 1, int(offsets[-1]), basis.shape[1]
    col_offsets = bin_layout(widths)
    out = [np.zeros((n_chunks, c, c)), np.zeros((n_chunks, M)), np.zeros((n_chunks, M, c)),
           np.zeros((n_chunks, K, K)), np.zeros((n_chunks, G)), np.zeros((n_chunks, G, c)),
           np.zeros((n_chunks, G, K))]
    binned_sums(X, y, w, bins, offsets, codes, basis, col_offsets, *out)
    return [a.sum(axis=0) for a in out], offsets


def powers_basis(sizes):
    """Per smooth two basis columns: the bin number and its square."""
    basis = np.zeros((sum(sizes), 2 * len(sizes)))
    start = 0
    for j, m in enumerate(sizes):
        basis[start:start + m, 2 * j] = np.arange(m)
        basis[start:start + m, 2 * j + 1] = np.arange(m) ** 2
        start += m
    return basis, [2] * len(sizes)


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("grouped", [False, True])
@pytest.mark.parametrize("n_chunks", [1, 3, 7])
def test_binned_sums_against_numpy(weighted, grouped, n_chunks):
    rng = np.random.default_rng(4)
    n, sizes, G = 503, [6, 9, 4], 5
    X = np.asfortranarray(rng.normal(size=(n, 2)))
    y = rng.normal(size=n)
    V = np.column_stack([X, y])
    bins = np.stack([rng.integers(0, m, n) for m in sizes]).astype(np.int32)
    wv = rng.uniform(0.5, 2.0, n) if weighted else np.ones(n)
    codes = rng.integers(0, G, n) if grouped else np.empty(0, dtype=np.int64)
    basis, widths = powers_basis(sizes)
    (plain, cnt, sums, pairs, gcnt, gsum, gbasis), offsets = run(
        X, y, wv if weighted else np.empty(0), bins, sizes, codes, G if grouped else 0,
        n_chunks, basis, widths)
    np.testing.assert_allclose(plain, (V * wv[:, None]).T @ V, rtol=1e-12)
    for j, m in enumerate(sizes):
        b = slice(offsets[j], offsets[j + 1])
        np.testing.assert_allclose(cnt[b], np.bincount(bins[j], wv, minlength=m), rtol=1e-12)
        for a in range(3):
            np.testing.assert_allclose(sums[b, a], np.bincount(bins[j], wv * V[:, a], m),
                                       rtol=1e-12, atol=1e-12)
        rows_j = basis[offsets[j] + bins[j]][:, 2 * j:2 * j + 2]  # n × 2: each row's basis
        for l in range(j + 1, len(sizes)):
            rows_l = basis[offsets[l] + bins[l]][:, 2 * l:2 * l + 2]
            np.testing.assert_allclose(pairs[2 * j:2 * j + 2, 2 * l:2 * l + 2],
                                       (rows_j * wv[:, None]).T @ rows_l, rtol=1e-12)
        if grouped:
            for col, power in ((2 * j, 1), (2 * j + 1, 2)):
                expected = np.bincount(codes, wv * bins[j].astype(float) ** power, G)
                np.testing.assert_allclose(gbasis[:, col], expected, rtol=1e-12)
    if grouped:
        np.testing.assert_allclose(gcnt, np.bincount(codes, wv, minlength=G), rtol=1e-12)
        np.testing.assert_allclose(gsum[:, 1], np.bincount(codes, wv * V[:, 1], G),
                                   rtol=1e-12, atol=1e-12)


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs 2 Numba threads")
def test_binned_sums_threads_identical():
    rng = np.random.default_rng(5)
    n = 20_000
    X = np.asfortranarray(rng.normal(size=(n, 1)))
    y = rng.normal(size=n)
    bins = rng.integers(0, 50, (1, n)).astype(np.int32)
    codes = rng.integers(0, 30, n)
    basis, widths = powers_basis([50])
    results = []
    for n_jobs in (1, 2):
        with numba_threads(n_jobs):
            results.append(run(X, y, np.empty(0), bins, [50], codes, 30, 2, basis, widths)[0])
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)  # same chunks, same order: bitwise equal
