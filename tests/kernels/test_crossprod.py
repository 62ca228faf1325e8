"""``crossprod_grouped`` / ``reduce_crossprods`` against a dense NumPy reference.

The reference builds ``v_r = [1, x_r, y_r]`` explicitly and sums ``w_r z_r v_r'`` per group
(``z_r = v_r[z_pos]``) and ``w_r v_r v_r'`` over all rows with plain NumPy. Both entry points
are checked: ``reduce_crossprods`` (one 2-D block) and ``grouped_crossprods`` (a list of
columns, as ``MixedLM.fit`` calls it), and the code-generated kernels of ``codegen`` that
``grouped_crossprods`` picks for few columns on many rows.
"""

import os

import numpy as np
import pytest

from skmixed._kernels import blocks, crossprod
from skmixed._kernels.blocks import sum_spans
from skmixed._kernels.crossprod import crossprod_grouped, grouped_crossprods, reduce_crossprods
from skmixed._kernels.threads import numba_threads


def reference_crossprods(X, y, w, codes, z_pos, n_groups):
    """Dense per-group ``Σ w z v'`` and total ``Σ w v v'``."""
    n = y.shape[0]
    V = np.column_stack([np.ones(n), np.asarray(X, dtype=float).reshape(n, -1), y])
    weights = np.ones(n) if w.shape[0] == 0 else w
    group_xv = np.zeros((n_groups, len(z_pos), V.shape[1]))
    for g in range(n_groups):
        rows = codes == g
        Vg = V[rows]
        group_xv[g] = (Vg[:, z_pos] * weights[rows, None]).T @ Vg
    total_vv = (V * weights[:, None]).T @ V
    return group_xv, total_vv


def make_problem(rng, n, p, n_groups, weighted, order="C", empty=(), code_dtype=np.int32):
    """Random rows with unsorted codes; the groups in ``empty`` never occur."""
    X = rng.normal(size=(n, p)) * rng.uniform(0.5, 3.0, size=p) + rng.normal(size=p)
    X = np.asfortranarray(X) if order == "F" else np.ascontiguousarray(X)
    y = rng.normal(size=n) + 2.0
    present = np.array([g for g in range(n_groups) if g not in set(empty)])
    codes = rng.choice(present, size=n).astype(code_dtype)
    if weighted:
        w = rng.uniform(0.0, 3.0, size=n)
        w[rng.random(n) < 0.1] = 0.0  # zero weights must not contribute
    else:
        w = np.empty(0)
    return X, y, w, codes


def row_pass(entry, X, y, w, codes, z_pos, n_groups, n_blocks):
    """``(group_xv, total_vv)`` through one of the two public entry points."""
    if entry == "reduce":
        return reduce_crossprods(X, y, w, codes, z_pos, n_groups, n_blocks)
    sums = grouped_crossprods([X[:, j] for j in range(X.shape[1])], y, w, codes, n_groups,
                              z_pos, n_blocks)
    np.testing.assert_array_equal(
        sums.group_rows, np.bincount(codes[(codes >= 0) & (codes < n_groups)],
                                     minlength=n_groups))
    return sums.group_xv, sums.total_vv


def assert_matches_reference(X, y, w, codes, z_pos, n_groups, n_blocks, entry="reduce"):
    group_xv, total_vv = row_pass(entry, X, y, w, codes, z_pos, n_groups, n_blocks)
    ref_group, ref_total = reference_crossprods(X, y, w, codes, z_pos, n_groups)
    assert group_xv.shape == ref_group.shape
    assert total_vv.shape == ref_total.shape
    np.testing.assert_allclose(group_xv, ref_group, rtol=1e-12, atol=1e-10)
    np.testing.assert_allclose(total_vv, ref_total, rtol=1e-12, atol=1e-10)
    return group_xv, total_vv


@pytest.mark.parametrize("entry", ["reduce", "grouped"])
@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("extra_blocks", [0, 5], ids=["blocks=threads", "blocks>threads"])
@pytest.mark.parametrize("weighted", [False, True], ids=["unit", "weights"])
@pytest.mark.parametrize("z_pos", [[0], [0, 1, 3]], ids=["q1", "q3"])
@pytest.mark.parametrize("order", ["C", "F"])
def test_matches_numpy_reference(entry, n_threads, extra_blocks, weighted, z_pos, order):
    rng = np.random.default_rng(1234 + 7 * len(z_pos) + weighted)
    n_groups = 9
    X, y, w, codes = make_problem(rng, n=157, p=3, n_groups=n_groups, weighted=weighted,
                                  order=order, empty=(0, 4, 8))
    assert not np.all(np.diff(codes) >= 0)  # unsorted on purpose
    z_pos = np.array(z_pos, dtype=np.int64)
    with numba_threads(n_threads) as used:
        n_blocks = used + extra_blocks
        group_xv, total_vv = assert_matches_reference(X, y, w, codes, z_pos, n_groups,
                                                      n_blocks, entry)
    # groups that never occur stay exactly zero
    assert np.all(group_xv[[0, 4, 8]] == 0.0)
    assert np.all(np.abs(group_xv[[1, 2, 3]]).sum(axis=(1, 2)) > 0)
    # the first row of the total is the sum of the groups' intercept rows, n = Σ w
    n_eff = y.shape[0] if w.shape[0] == 0 else w.sum()
    np.testing.assert_allclose(total_vv[0, 0], n_eff, rtol=1e-13)
    np.testing.assert_allclose(total_vv, total_vv.T, rtol=0, atol=0)


@pytest.mark.parametrize("code_dtype", [np.int32, np.int64])
def test_code_dtypes(code_dtype):
    rng = np.random.default_rng(5)
    X, y, w, codes = make_problem(rng, n=40, p=2, n_groups=4, weighted=True,
                                  code_dtype=code_dtype)
    assert_matches_reference(X, y, w, codes, np.array([0, 2], dtype=np.int64), 4, 2)


@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("weighted", [False, True], ids=["unit", "weights"])
def test_no_fixed_columns(n_threads, weighted):
    """p = 0: v = [1, y]; the kernel must still produce n, Σ w y and Σ w y²."""
    rng = np.random.default_rng(11)
    X, y, w, codes = make_problem(rng, n=50, p=0, n_groups=5, weighted=weighted, empty=(2,))
    assert X.shape == (50, 0)
    z_pos = np.array([0], dtype=np.int64)
    with numba_threads(n_threads) as used:
        group_xv, total_vv = assert_matches_reference(X, y, w, codes, z_pos, 5, used + 1)
    assert group_xv.shape == (5, 1, 2)
    assert total_vv.shape == (2, 2)
    wt = np.ones_like(y) if w.shape[0] == 0 else w
    np.testing.assert_allclose(total_vv[1, 1], np.sum(wt * y * y), rtol=1e-12)
    np.testing.assert_allclose(total_vv[0, 1], np.sum(wt * y), rtol=1e-12)


@pytest.mark.parametrize("n_threads", [1, 2])
def test_fewer_rows_than_blocks(n_threads):
    rng = np.random.default_rng(3)
    X, y, w, codes = make_problem(rng, n=3, p=2, n_groups=4, weighted=True)
    z_pos = np.array([0, 1], dtype=np.int64)
    with numba_threads(n_threads):
        assert_matches_reference(X, y, w, codes, z_pos, 4, 8)


@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_raw_kernel_more_blocks_than_rows(n_threads, order):
    """Called directly (no clamping of n_blocks), the idle blocks have empty spans and write
    nothing else; each block touches its table only within its span (the rest keeps the
    caller's garbage)."""
    rng = np.random.default_rng(4)
    n, p, G, n_blocks = 3, 2, 3, 7
    X, y, w, codes = make_problem(rng, n=n, p=p, n_groups=G, weighted=False, order=order)
    z_pos = np.array([0, 2], dtype=np.int64)
    group_out = np.full((n_blocks, G, 2, p + 2), np.nan)
    count_out = np.full((n_blocks, G), -7, dtype=np.int64)
    total_out = np.zeros((n_blocks, p + 2, p + 2))
    bad_out = np.full(n_blocks, -1, dtype=np.int64)
    span_out = np.full((n_blocks, 2), -1, dtype=np.int64)
    with numba_threads(n_threads):
        crossprod_grouped(X, y, w, codes, z_pos, np.zeros(X.shape[1] + 2), group_out, count_out,
                          total_out, bad_out, span_out)
    ref_group, ref_total = reference_crossprods(X, y, w, codes, z_pos, G)
    busy = span_out[:, 1] > span_out[:, 0]
    assert busy.sum() == n  # one row per busy block
    for b in range(n_blocks):
        lo, hi = span_out[b]
        assert np.isnan(group_out[b, :lo]).all() and np.isnan(group_out[b, hi:]).all()
        assert np.all(count_out[b, :lo] == -7) and np.all(count_out[b, hi:] == -7)
    group_xv = np.zeros((G, 2 * (p + 2)))
    sum_spans(group_out.reshape(n_blocks, G, -1), span_out, group_xv)
    np.testing.assert_allclose(group_xv.reshape(ref_group.shape), ref_group, rtol=1e-13,
                               atol=1e-13)
    counts = np.zeros((G, 1), dtype=np.int64)
    sum_spans(count_out.reshape(n_blocks, G, 1), span_out, counts)
    np.testing.assert_array_equal(counts[:, 0], np.bincount(codes, minlength=G))
    np.testing.assert_array_equal(bad_out, 0)
    # rows 1.. of the upper triangle are written (row 0 is the groups' intercept rows)
    rows, cols = np.triu_indices(p + 2)
    keep = rows >= 1
    rows, cols = rows[keep], cols[keep]
    np.testing.assert_allclose(total_out[:, rows, cols].sum(axis=0), ref_total[rows, cols],
                               rtol=1e-13)
    assert np.all(total_out[~busy] == 0.0)


@pytest.mark.parametrize("entry", ["reduce", "grouped"])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_out_of_range_codes_are_skipped_and_counted(entry, n_threads):
    rng = np.random.default_rng(12)
    G = 5
    X, y, w, codes = make_problem(rng, n=90, p=2, n_groups=G, weighted=True)
    bad = rng.choice(90, size=7, replace=False)
    codes[bad[:4]] = -1  # missing labels
    codes[bad[4:]] = G  # one past the end
    valid = np.ones(90, dtype=bool)
    valid[bad] = False
    z_pos = np.array([0, 1], dtype=np.int64)
    with numba_threads(n_threads) as used:
        group_xv, total_vv = row_pass(entry, X, y, w, codes, z_pos, G, used + 1)
        sums = grouped_crossprods([X[:, 0], X[:, 1]], y, w, codes, G, z_pos, used + 1)
    ref_group, ref_total = reference_crossprods(X[valid], y[valid], w[valid], codes[valid],
                                                z_pos, G)
    np.testing.assert_allclose(group_xv, ref_group, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(total_vv, ref_total, rtol=1e-12, atol=1e-12)
    assert sums.n_bad_codes == 7
    np.testing.assert_array_equal(sums.group_rows,
                                  np.bincount(codes[valid], minlength=G))


@pytest.fixture
def specialized(monkeypatch, tmp_path_factory):
    """Route ``grouped_crossprods`` to the code-generated kernels even for a few rows.

    The generated sources go to a temporary folder rather than the home folder, unless the
    caller chose one with ``SKMIXED_CACHE_DIR`` (then Numba's disk cache makes reruns fast).
    """
    if not os.environ.get("SKMIXED_CACHE_DIR"):
        monkeypatch.setenv("SKMIXED_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "codegen"))
    monkeypatch.setattr(crossprod, "SPECIALIZE_MIN_ROWS", 0)


@pytest.mark.parametrize("p, z_pos, weighted", [
    (3, [0, 1, 3], True),
    (2, [0], False),
    (0, [0], True),
])
def test_specialized_kernel_matches_reference(specialized, p, z_pos, weighted):
    rng = np.random.default_rng(40 + p)
    G = 6
    X, y, w, codes = make_problem(rng, n=131, p=p, n_groups=G, weighted=weighted, empty=(3,))
    codes[:2] = [-1, G]  # skipped and counted, as in the generic kernel
    valid = np.ones(131, dtype=bool)
    valid[:2] = False
    # columns of mixed numeric dtypes, read in place (integers and booleans are exact in
    # float64; float32 has its own test below)
    raw = rng.normal(size=(3, 131))
    columns = [raw[0], np.round(3.0 * raw[1]).astype(np.int32),
               (raw[2] > 0.0).astype(np.uint8)][:p]
    Xcast = np.column_stack([c.astype(np.float64) for c in columns]) if p else X
    z_pos = np.array(z_pos, dtype=np.int64)
    for n_threads in (1, 2):
        with numba_threads(n_threads) as used:
            sums = grouped_crossprods(columns, y, w, codes, G, z_pos, used + 2)
        wv = w[valid] if weighted else w
        ref_group, ref_total = reference_crossprods(Xcast[valid], y[valid], wv, codes[valid],
                                                    z_pos, G)
        np.testing.assert_allclose(sums.group_xv, ref_group, rtol=1e-12, atol=1e-10)
        np.testing.assert_allclose(sums.total_vv, ref_total, rtol=1e-12, atol=1e-10)
        assert sums.n_bad_codes == 2
        np.testing.assert_array_equal(sums.group_rows, np.bincount(codes[valid], minlength=G))
        assert np.all(sums.group_xv[3] == 0.0)
    # same blocks as the generic kernel: the same spans, sums that agree to rounding
    n_blocks = 3
    group_out = np.empty((n_blocks, G, len(z_pos), p + 2))
    count_out = np.empty((n_blocks, G), dtype=np.int64)
    total_out = np.zeros((n_blocks, p + 2, p + 2))
    bad_out = np.zeros(n_blocks, dtype=np.int64)
    span_out = np.zeros((n_blocks, 2), dtype=np.int64)
    crossprod_grouped(np.ascontiguousarray(Xcast), y, w, codes, z_pos, np.zeros(p + 2),
                      group_out, count_out, total_out, bad_out, span_out)
    generic = np.zeros((G, len(z_pos) * (p + 2)))
    sum_spans(group_out.reshape(n_blocks, G, -1), span_out, generic)
    sums = grouped_crossprods(columns, y, w, codes, G, z_pos, n_blocks)
    np.testing.assert_allclose(sums.group_xv.reshape(G, -1), generic, rtol=1e-14, atol=1e-13)
    assert sums.n_bad_codes == bad_out.sum() == 2


@pytest.mark.parametrize("dtype", [
    np.int16, np.float32, np.bool_,
])
def test_specialized_kernel_column_dtypes(specialized, dtype):
    """A column of any numeric dtype enters the sums as its exact float64 value, as in the
    generic kernel (which copies the columns into a float64 block)."""
    rng = np.random.default_rng(43)
    G, n = 4, 101
    raw = rng.normal(scale=4.0, size=(2, n))
    if dtype == np.bool_:
        columns = [raw[0] > 0.0, raw[1] > 0.5]
    elif np.issubdtype(dtype, np.integer):
        columns = [np.abs(np.round(raw[0])).astype(dtype), np.abs(np.round(raw[1])).astype(dtype)]
    else:
        columns = [raw[0].astype(dtype), raw[1].astype(dtype)]
    Xcast = np.column_stack([c.astype(np.float64) for c in columns])
    y = rng.normal(size=n)
    codes = rng.integers(0, G, size=n).astype(np.int8)  # categorical codes can be int8
    sums = grouped_crossprods(columns, y, np.empty(0), codes, G, np.array([0, 1]), 2)
    ref_group, ref_total = reference_crossprods(Xcast, y, np.empty(0), codes, [0, 1], G)
    np.testing.assert_allclose(sums.group_xv, ref_group, rtol=1e-13, atol=1e-12)
    np.testing.assert_allclose(sums.total_vv, ref_total, rtol=1e-13, atol=1e-12)


@pytest.mark.parametrize("kernel", ["generic", "specialized"])
@pytest.mark.parametrize("n_blocks", [None, 1, 3, 7])
def test_bit_identical_on_any_thread_count(request, monkeypatch, kernel, n_blocks):
    """The blocks, not the threads, fix the summation order: 1 and 2 threads (and 7 blocks
    on 2 threads, more blocks than threads) give bit-identical sums. The default block
    count is made small enough that these rows split into several blocks."""
    if kernel == "specialized":
        request.getfixturevalue("specialized")
    monkeypatch.setattr(blocks, "MIN_BLOCK_ROWS", 40)
    monkeypatch.setattr(blocks, "TABLE_RATIO", 1)
    # threads run ranges of the blocks however few the rows (over_blocks)
    monkeypatch.setattr("skmixed._kernels.threads.THREAD_MIN_ROWS", 0)
    rng = np.random.default_rng(8)
    X, y, w, codes = make_problem(rng, n=301, p=3, n_groups=11, weighted=True)
    codes[::3] = np.sort(codes[::3])  # runs of a group and scattered rows
    z_pos = np.array([0, 1, 3], dtype=np.int64)
    columns = [X[:, j] for j in range(3)]
    if n_blocks is None:
        assert blocks.n_blocks(301, 11 * (3 * 5 + 1)) == 7
    runs = []
    for n_threads in (1, 2, 1, 2):
        with numba_threads(n_threads):
            sums = grouped_crossprods(columns, y, w, codes, 11, z_pos, n_blocks)
        runs.append(sums)
    for other in runs[1:]:
        np.testing.assert_array_equal(other.group_xv, runs[0].group_xv)
        np.testing.assert_array_equal(other.total_vv, runs[0].total_vv)
        np.testing.assert_array_equal(other.group_rows, runs[0].group_rows)
    ref_group, ref_total = reference_crossprods(X, y, w, codes, z_pos, 11)
    np.testing.assert_allclose(runs[0].group_xv, ref_group, rtol=1e-12, atol=1e-10)
    np.testing.assert_allclose(runs[0].total_vv, ref_total, rtol=1e-12, atol=1e-10)


def test_row_order_and_group_relabelling():
    rng = np.random.default_rng(21)
    G = 6
    X, y, w, codes = make_problem(rng, n=120, p=3, n_groups=G, weighted=True)
    z_pos = np.array([0, 1, 3], dtype=np.int64)
    g0, t0 = reduce_crossprods(X, y, w, codes, z_pos, G, 3)
    perm = rng.permutation(len(y))
    relabel = rng.permutation(G).astype(codes.dtype)
    g1, t1 = reduce_crossprods(np.ascontiguousarray(X[perm]), y[perm], w[perm],
                               relabel[codes[perm]], z_pos, G, 3)
    np.testing.assert_allclose(g1[relabel], g0, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(t1, t0, rtol=1e-12)


def test_integer_weights_equal_repeated_rows():
    rng = np.random.default_rng(13)
    G = 5
    X, y, _, codes = make_problem(rng, n=60, p=2, n_groups=G, weighted=False)
    counts = rng.integers(0, 4, size=60)
    z_pos = np.array([0, 2], dtype=np.int64)
    gw, tw = reduce_crossprods(X, y, counts.astype(float), codes, z_pos, G, 2)
    rep = np.repeat(np.arange(60), counts)
    gr, tr = reduce_crossprods(np.ascontiguousarray(X[rep]), y[rep], np.empty(0), codes[rep],
                               z_pos, G, 2)
    np.testing.assert_allclose(gw, gr, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(tw, tr, rtol=1e-12)


def test_unit_weights_equal_explicit_ones():
    rng = np.random.default_rng(17)
    X, y, _, codes = make_problem(rng, n=80, p=3, n_groups=7, weighted=False, order="F")
    z_pos = np.array([0, 1, 3], dtype=np.int64)
    ge, te = reduce_crossprods(X, y, np.empty(0), codes, z_pos, 7, 2)
    go, to = reduce_crossprods(X, y, np.ones(80), codes, z_pos, 7, 2)
    np.testing.assert_array_equal(ge, go)
    np.testing.assert_array_equal(te, to)


def test_z_pos_must_start_with_intercept():
    rng = np.random.default_rng(0)
    X, y, w, codes = make_problem(rng, n=10, p=2, n_groups=2, weighted=False)
    with pytest.raises(ValueError, match="z_pos"):
        reduce_crossprods(X, y, w, codes, np.array([1, 0], dtype=np.int64), 2, 1)
    with pytest.raises(ValueError, match="z_pos"):
        reduce_crossprods(X, y, w, codes, np.array([2], dtype=np.int64), 2, 1)
