"""The several-factor sums gathered chunk by chunk (skmixed._model.multilevel_sums) equal
the cross-products formed from all rows at once (MultiCrossproducts.from_rows) on the same
internal columns, to 1e-12 relative: levels met in any chunk and in any order, a factor
with a random slope, weights, three factors; identical factors are found from the
contingency tables."""

import numpy as np
import pytest

from skmixed._model.multilevel import FactorColumns, MultiCrossproducts
from skmixed._model.multilevel_sums import (RunningSums, chunk_sums, identical_factors,
                                            multi_crossproducts)
from skmixed._model.terms import RandomEffectTerm


def _data(n=3_000, seed=0):
    rng = np.random.default_rng(seed)
    codes = [rng.integers(0, 40, n), rng.integers(0, 7, n), rng.integers(0, 12, n)]
    x1, x2 = rng.normal(size=n) * 3.0, rng.normal(size=n) * 50.0 + 1e4
    y = 2.0 + x1 - 0.01 * x2 + rng.normal(size=n) + 100.0
    return codes, [x1, x2], y, rng.integers(0, 3, n).astype(float)


Z_POS = [np.array([0, 1]), np.array([0]), np.array([0])]  # a slope on x1 in factor 0


def _chunked(codes, columns, y, w, shift, bounds):
    """The running sums over row ranges ``bounds``, each chunk with its own level codes
    (sorted labels of its rows), mapped by label as a data source would."""
    K = len(codes)
    running = [dict() for _ in range(K)]
    acc = RunningSums([len(z) for z in Z_POS], len(columns) + 2)
    for a, b in bounds:
        local = [np.unique(c[a:b], return_inverse=True) for c in codes]
        part = chunk_sums([c[a:b] for c in columns], y[a:b], w[a:b],
                          [(inv.astype(np.int32), len(lev), z)
                           for (lev, inv), z in zip(local, Z_POS)], shift)
        acc.add(part, [[running[k].setdefault(lab, len(running[k]))
                        for lab in local[k][0][part.present[k]]] for k in range(K)])
    # the final order: sorted labels, levels without weight dropped
    keep = []
    for k in range(K):
        labels = np.array(list(running[k]))
        order = np.array(list(running[k].values()))[np.argsort(labels)]
        keep.append(order[acc.weight(k, len(labels))[order] > 0])
    return acc.finish(keep)


@pytest.mark.parametrize("bounds", [[(0, 3_000)], [(0, 700), (700, 2_100), (2_100, 3_000)],
                                    [(0, 10), (10, 2_990), (2_990, 3_000)]],
                         ids=["one", "three", "tiny-first-and-last"])
def test_chunk_sums_equal_the_row_pass(bounds):
    codes, columns, y, w = _data()
    codes[0] = np.where(np.arange(3_000) >= 2_500, codes[0] + 40, codes[0])  # late levels
    w[codes[2] == 5] = 0.0  # a level without weight
    shift = np.array([0.0, 0.0, 1e4 + 3.0, 101.0])  # slope column x1 not centred
    sums = _chunked(codes, columns, y, w, shift, bounds)
    scale = np.array([1.0, 2.0, 40.0, 1.0])
    order = [0, 2, 1]
    stats = multi_crossproducts(sums, order, Z_POS, scale, [0, 1, 2])

    # the in-memory reference on the same internal columns
    used = [np.unique(c[w > 0]) for c in codes]
    X = np.column_stack([np.ones(3_000), (columns[0] - shift[1]) / scale[1],
                         (columns[1] - shift[2]) / scale[2]])
    rows = [np.searchsorted(u, c) for u, c in zip(used, codes)]
    ok = w > 0
    factors = [FactorColumns(rows[k][ok], len(used[k]),
                             np.column_stack([np.ones(ok.sum())]
                                             + ([X[ok, 1]] if k == 0 else [])),
                             RandomEffectTerm(("(Intercept)", "x1")[:len(Z_POS[k])]))
               for k in order]
    ref = MultiCrossproducts.from_rows(X[ok], y[ok] - shift[3], w[ok], factors)

    np.testing.assert_array_equal(stats.offsets, ref.offsets)
    np.testing.assert_allclose(stats.ZZ.toarray(), ref.ZZ.toarray(), rtol=1e-12, atol=1e-9)
    for name in ("ZX", "Zy", "XtX", "Xty"):
        np.testing.assert_allclose(getattr(stats, name), getattr(ref, name), rtol=1e-12,
                                   atol=1e-9)
    assert stats.yty == pytest.approx(ref.yty, rel=1e-12)
    assert stats.n == ref.n
    assert identical_factors(sums, [2, 1, 1]) == []


def test_identical_factors_from_the_tables():
    codes, columns, y, w = _data()
    codes[1] = (codes[0] * 7 + 3) % 40  # a relabelling of factor 0 (7 is prime to 40)
    w[:] = 1.0
    sums = _chunked(codes, columns, y, w, np.zeros(4), [(0, 1_000), (1_000, 3_000)])
    assert identical_factors(sums, [2, 1, 1]) == [[0, 1]]
