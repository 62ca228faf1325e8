"""The binned pass (skmixed._kernels.binned.binned_sums) against NumPy: plain
cross-products, per-bin sums, the smooths' pairwise basis products, per-group sums of the
bins' basis rows,
with and without weights and groups, one block or several (each its own buffers, added in
block order), 1 and 2 threads: bit-identical on any thread count."""

import numba
import numpy as np
import pytest

from skmixed._kernels.binned import bin_layout, binned_sums, sum_binned_blocks
from skmixed._kernels.threads import over_blocks
from skmixed._model.additive_cross import by_multipliers
from skmixed._kernels.threads import numba_threads

KEYS = ("plain", "cnt", "sums", "pairs", "gcnt", "gsum", "gbasis")


def run(X, y, w, bins, sizes, codes, G, n_blocks, basis, widths, by=None, indicator=None):
    """The kernel's outputs added over the blocks, and the smooths' bin offsets. The
    buffers start as garbage (NaN): the kernel zeroes what it uses."""
    offsets = bin_layout(sizes)
    col_offsets = bin_layout(widths)
    # K: every smooth's columns in the tables (an indicator's are not in `basis`)
    c, M, K = X.shape[1] + 1, int(offsets[-1]), int(col_offsets[-1])
    k = n_blocks
    out = dict(plain=np.zeros((k, c, c)), cnt=np.full((k, M), np.nan),
               sums=np.full((k, M, c), np.nan), pairs=np.full((k, K, K), np.nan),
               gcnt=np.full((k, G), np.nan), gsum=np.full((k, G, c), np.nan),
               gbasis=np.full((k, G, K), np.nan), span=np.zeros((k, 2), dtype=np.int64))
    # through the thread runner: on several threads (THREAD_MIN_ROWS permitting) each
    # thread computes a range of the blocks
    rows, smooth_by, by_num, by_fac = by_multipliers(
        list(bins), [None] * len(bins) if by is None else by, y.shape[0], indicator)
    over_blocks(binned_sums, (X, y, w, rows, offsets, codes, basis, col_offsets, smooth_by,
                              by_num, by_fac, *[out[key] for key in KEYS + ("span",)]),
                k, y.shape[0])
    total = sum_binned_blocks(out)
    return [total[key] for key in KEYS], offsets


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
@pytest.mark.parametrize("n_blocks", [1, 3, 7])
def test_binned_sums_against_numpy(weighted, grouped, n_blocks):
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
        n_blocks, basis, widths)
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


@pytest.mark.parametrize("n_blocks", [1, 4])
def test_binned_sums_by_multipliers(n_blocks):
    """mgcv's ``by =``: smooth 0 multiplied by a numeric column, smooths 1 and 2 the levels
    1 and 0 of a factor, sharing one covariate's bins — every sum as NumPy's with the rows'
    basis multiplied (0 off the level)."""
    rng = np.random.default_rng(6)
    n, sizes, G = 611, [7, 5, 5], 4
    X = np.asfortranarray(rng.normal(size=(n, 1)))
    y = rng.normal(size=n)
    V = np.column_stack([X, y])
    z_bins = rng.integers(0, 5, n).astype(np.int32)
    bins = [rng.integers(0, 7, n).astype(np.int32), z_bins, z_bins]
    num = rng.normal(size=n)
    fac = rng.integers(0, 3, n).astype(np.int32)
    mult = np.stack([num, (fac == 1).astype(float), (fac == 0).astype(float)])
    wv = rng.uniform(0.5, 2.0, n)
    codes = rng.integers(0, G, n)
    basis, widths = powers_basis(sizes)
    (plain, cnt, sums, pairs, _, _, gbasis), offsets = run(
        X, y, wv, bins, sizes, codes, G, n_blocks, basis, widths,
        by=[("num", num), ("fac", fac, 1), ("fac", fac, 0)])
    np.testing.assert_allclose(plain, (V * wv[:, None]).T @ V, rtol=1e-12)
    rows = [basis[offsets[j] + bins[j]][:, 2 * j:2 * j + 2] * mult[j][:, None]
            for j in range(3)]
    for j, m in enumerate(sizes):
        b = slice(offsets[j], offsets[j + 1])
        np.testing.assert_allclose(cnt[b], np.bincount(bins[j], wv * mult[j] ** 2, m),
                                   rtol=1e-12, atol=1e-12)
        for a in range(2):
            np.testing.assert_allclose(sums[b, a], np.bincount(bins[j], wv * mult[j] * V[:, a],
                                                               m), rtol=1e-12, atol=1e-12)
        for l in range(j + 1, 3):
            np.testing.assert_allclose(pairs[2 * j:2 * j + 2, 2 * l:2 * l + 2],
                                       (rows[j] * wv[:, None]).T @ rows[l], rtol=1e-12,
                                       atol=1e-12)
        for col in range(2):
            np.testing.assert_allclose(gbasis[:, 2 * j + col],
                                       np.bincount(codes, wv * rows[j][:, col], G),
                                       rtol=1e-12, atol=1e-12)
    # two levels of one factor never meet in a row
    np.testing.assert_array_equal(pairs[2:4, 4:6], 0.0)


@pytest.mark.parametrize("n_blocks", [1, 4])
def test_binned_sums_indicator_bases(n_blocks):
    """A random effect's factor as an indicator basis (mgcv's s(h, bs = "re"), its basis
    at level b the unit vector e_b, never formed): smooth 0 an ordinary basis, smooths 1
    (intercept) and 2 (a slope: multiplied by a numeric column) indicators of one factor of
    6 levels — every pair and group sum as NumPy's with the dense identity basis."""
    rng = np.random.default_rng(8)
    n, H, G = 577, 6, 5
    X = np.asfortranarray(rng.normal(size=(n, 1)))
    y = rng.normal(size=n)
    z_bins = rng.integers(0, 7, n).astype(np.int32)
    h = rng.integers(0, H, n).astype(np.int32)
    slope = rng.normal(size=n)
    wv = rng.uniform(0.5, 2.0, n)
    codes = rng.integers(0, G, n)
    smooth_basis, _ = powers_basis([7])
    dense = np.zeros((7 + 2 * H, 2 + 2 * H))  # the identity blocks written out, for NumPy
    dense[:7, :2] = smooth_basis
    dense[7:7 + H, 2:2 + H] = np.eye(H)
    dense[7 + H:, 2 + H:] = np.eye(H)
    (_, cnt, sums, pairs, _, _, gbasis), offsets = run(
        X, y, wv, [z_bins, h, h], [7, H, H], codes, G, n_blocks, smooth_basis, [2, H, H],
        by=[None, None, ("num", slope)], indicator=[False, True, True])
    mult = [np.ones(n), np.ones(n), slope]
    rows = [dense[offsets[j] + b] * mult[j][:, None] for j, b in enumerate([z_bins, h, h])]
    cols = [slice(0, 2), slice(2, 2 + H), slice(2 + H, 2 + 2 * H)]
    rows = [r[:, c] for r, c in zip(rows, cols)]
    for j in range(3):
        for l in range(j + 1, 3):
            np.testing.assert_allclose(pairs[cols[j], cols[l]], (rows[j] * wv[:, None]).T
                                       @ rows[l], rtol=1e-12, atol=1e-12)
        ind = np.eye(G)[codes]
        np.testing.assert_allclose(gbasis[:, cols[j]], (ind * wv[:, None]).T @ rows[j],
                                   rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(cnt[offsets[2]:offsets[3]], np.bincount(h, wv * slope ** 2, H),
                               rtol=1e-12)
    np.testing.assert_allclose(sums[offsets[1]:offsets[2], 1], np.bincount(h, wv * y, H),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs 2 Numba threads")
@pytest.mark.parametrize("n_blocks", [1, 2, 7])
def test_binned_sums_threads_identical(n_blocks, monkeypatch):
    """The blocks fix the summation order: 1 and 2 threads, with as many, fewer or more
    blocks than threads, give bit-identical sums (rows partly in group order, partly not)."""
    rng = np.random.default_rng(5)
    n = 20_000
    X = np.asfortranarray(rng.normal(size=(n, 1)))
    y = rng.normal(size=n)
    bins = rng.integers(0, 50, (1, n)).astype(np.int32)
    codes = rng.integers(0, 30, n)
    codes[: n // 2] = np.sort(codes[: n // 2])
    w = rng.uniform(0.5, 2.0, n)
    basis, widths = powers_basis([50])
    monkeypatch.setattr("skmixed._kernels.threads.THREAD_MIN_ROWS", 0)  # split the blocks
    results = []
    for n_jobs in (1, 2, 1, 2):
        with numba_threads(n_jobs):
            results.append(run(X, y, w, bins, [50], codes, 30, n_blocks, basis, widths)[0])
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_array_equal(a, b)
