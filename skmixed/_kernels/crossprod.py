"""One pass over the rows: per-group and total weighted cross-products.

Each row r contributes through the extended row vector ``v_r = [1, x_r1 .. x_rp, y_r]``
(length ``m = p + 2``) and its weight ``w_r``:

* per group g(r), the ``q`` rows of ``Σ w_r z_r v_r'`` where ``z_r = v_r[z_pos]`` are the
  random-effect covariates (Bates et al. 2015, §3: ``Z_i'WZ_i``, ``Z_i'WX_i`` and ``Z_i'Wy_i`` in one
  array), and the number of rows per group;
* in total, the upper triangle of ``Σ w_r v_r v_r'`` (``X'WX``, ``X'Wy``, ``y'Wy``); its
  first row (``Σ w``, ``Σ w x``, ``Σ w y``) is the sum of the groups' intercept rows, so
  ``z_pos[0]`` must be 0.

The rows are split into fixed blocks (:mod:`.blocks`: their number depends on the rows and
the group table's size, never on the thread count); each block accumulates into its own
slice of the per-block outputs — zeroed only over the span of group codes it meets — and
keeps its small total in thread-local storage, so no two threads write the same cache line;
the slices are added in block order, so the sums are bit-identical on any number of
threads. Rows whose group code is out of range are skipped and counted. Two implementations
share these outputs: :func:`crossprod_grouped` (any number of columns, X as one 2-D block)
and the code-generated kernels of :mod:`.codegen` (few columns, each read from the caller's
own array).
"""

import numpy as np

from . import blocks
from .blocks import block_bounds, cover, sum_spans
from .._cache import cached_njit
from .codegen import MAX_SPECIALIZED_COLUMNS, crossprod_kernel
from .threads import over_blocks

__all__ = ["crossprod_grouped", "grouped_crossprods", "GroupedSums"]

# Below this many rows the generic, always-cached kernel is fast enough (a few ms).
SPECIALIZE_MIN_ROWS = 100_000


@cached_njit(nogil=True)
def crossprod_grouped(X, y, w, codes, z_pos, shift, group_out, count_out, total_out,
                      bad_out, span_out, first=0, last=-1):
    """Accumulate per-block grouped cross-products (see module docstring).

    Parameters
    ----------
    X : ndarray of shape (n, p), float64
        Fixed-effect columns without the intercept.
    y : ndarray of shape (n,), float64
    w : ndarray of shape (n,) or (0,), float64
        Frequency weights; an empty array means unit weights.
    codes : ndarray of shape (n,), integer
        Group code of each row; rows need not be sorted.
    z_pos : ndarray of shape (q,), int64
        Positions of the random-effect covariates in ``v = [1, x_1 .. x_p, y]``.
    shift : ndarray of shape (p + 2,), float64
        Subtracted from v before accumulating (centring: keeps ``y'y − …`` free of
        cancellation when y or a column has a large mean); ``shift[0]`` is ignored.
    group_out : ndarray of shape (n_blocks, n_groups, q, p + 2), float64
    count_out : ndarray of shape (n_blocks, n_groups), int64
        Need not be zeroed: block b zeroes and fills the groups ``span_out[b, 0]`` to
        ``span_out[b, 1] - 1`` of its slice and leaves the rest as it was.
    total_out : ndarray of shape (n_blocks, p + 2, p + 2), float64, zeroed
        Rows 1.. of the upper triangle are written.
    bad_out : ndarray of shape (n_blocks,), int64
        Rows skipped because their code is outside ``[0, n_groups)``.
    span_out : ndarray of shape (n_blocks, 2), int64
        The range of group codes each block met (empty: equal bounds).
    first, last : int
        The blocks computed, ``first`` to ``last - 1`` (default: all); threads run ranges
        of them (:func:`skmixed._kernels.threads.over_blocks`).
    """
    n = y.shape[0]
    p = X.shape[1]
    m = p + 2
    q = z_pos.shape[0]
    n_blk = group_out.shape[0]
    n_groups = group_out.shape[1]
    weighted = w.shape[0] > 0
    for c in range(first, n_blk if last < 0 else last):
        start, stop = block_bounds(n, n_blk, c)
        v = np.empty(m)
        total = np.zeros((m, m))
        gbuf = group_out[c]
        cnt = count_out[c]
        nbad = 0
        lo = 0
        hi = 0
        for r in range(start, stop):
            g = codes[r]
            if g < 0 or g >= n_groups:
                nbad += 1
                continue
            if g < lo or g >= hi:
                lo, hi, a, e = cover(lo, hi, g)
                gbuf[a:e] = 0.0
                cnt[a:e] = 0
            wr = w[r] if weighted else 1.0
            cnt[g] += 1
            v[0] = 1.0
            for j in range(p):
                v[1 + j] = X[r, j] - shift[1 + j]
            v[m - 1] = y[r] - shift[m - 1]
            for a in range(q):
                za = wr * v[z_pos[a]]
                for k in range(m):
                    gbuf[g, a, k] += za * v[k]
            for a in range(1, m):
                wa = wr * v[a]
                for k in range(a, m):
                    total[a, k] += wa * v[k]
        for a in range(1, m):
            for k in range(a, m):
                total_out[c, a, k] = total[a, k]
        bad_out[c] = nbad
        span_out[c, 0] = lo
        span_out[c, 1] = hi


class GroupedSums:
    """Reduced output of the row pass.

    Attributes
    ----------
    group_xv : ndarray (G, q, p + 2) — ``Σ_{rows of g} w z v'``
    total_vv : ndarray (p + 2, p + 2) — symmetric ``Σ w v v'``
    group_rows : ndarray (G,) int64 — rows per group
    n_bad_codes : int — rows skipped for an out-of-range group code
    """

    def __init__(self, group_xv, total_vv, group_rows, n_bad_codes):
        self.group_xv = group_xv
        self.total_vv = total_vv
        self.group_rows = group_rows
        self.n_bad_codes = n_bad_codes


def grouped_crossprods(columns, y, w, codes, n_groups, z_pos, n_blocks=None, shift=None):
    """Run the row pass over fixed-effect ``columns`` (a list of 1-D numeric arrays).

    Few columns on many rows use a specialized kernel that reads the arrays in place;
    otherwise the columns are stacked once into a Fortran-ordered float64 block for the
    generic kernel. ``w`` is an empty array for unit weights; ``shift`` (length p + 2,
    default zeros) is subtracted from ``v = [1, x…, y]`` row by row. ``n_blocks`` (default:
    :func:`skmixed._kernels.blocks.n_blocks` of the rows and the group table) fixes the
    summation order: the same blocks give bit-identical sums on any number of threads.
    """
    z_pos = np.asarray(z_pos, dtype=np.int64)
    if z_pos[0] != 0:
        raise ValueError("z_pos[0] must be 0: the group intercept row carries Σ w v.")
    n = y.shape[0]
    p = len(columns)
    m = p + 2
    q = z_pos.shape[0]
    shift = np.zeros(m) if shift is None else np.ascontiguousarray(shift, dtype=np.float64)
    if n_blocks is None:
        n_blocks = blocks.n_blocks(n, n_groups * (q * m + 1))
    k = max(1, min(int(n_blocks), n))
    group_out = np.empty((k, n_groups, q, m))
    count_out = np.empty((k, n_groups), dtype=np.int64)
    total_out = np.zeros((k, m, m))
    bad_out = np.zeros(k, dtype=np.int64)
    span_out = np.zeros((k, 2), dtype=np.int64)
    if p <= MAX_SPECIALIZED_COLUMNS and n >= SPECIALIZE_MIN_ROWS:
        kernel = crossprod_kernel(p, z_pos, w.shape[0] > 0)
        args = (*columns, y, w, codes, shift, group_out, count_out, total_out, bad_out,
                span_out)
    else:
        X = np.empty((n, p), order="F")
        for j, col in enumerate(columns):
            X[:, j] = col
        kernel = crossprod_grouped
        args = (X, np.asarray(y, dtype=np.float64), w, codes, z_pos, shift, group_out,
                count_out, total_out, bad_out, span_out)
    over_blocks(kernel, args, k, n)
    group_xv = np.zeros((n_groups, q, m))
    sum_spans(group_out.reshape(k, n_groups, q * m), span_out,
              group_xv.reshape(n_groups, q * m))
    group_rows = np.zeros(n_groups, dtype=np.int64)
    sum_spans(count_out.reshape(k, n_groups, 1), span_out, group_rows.reshape(n_groups, 1))
    upper = total_out.sum(axis=0)
    upper[0] = group_xv[:, 0, :].sum(axis=0)
    total_vv = np.triu(upper) + np.triu(upper, 1).T
    return GroupedSums(group_xv, total_vv, group_rows, int(bad_out.sum()))


def reduce_crossprods(X, y, w, codes, z_pos, n_groups, n_blocks=None):
    """Row pass over a 2-D block ``X``; returns ``(group_xv, total_vv)``.

    Convenience form of :func:`grouped_crossprods` for arrays already in one block.
    """
    columns = [X[:, j] for j in range(X.shape[1])]
    sums = grouped_crossprods(columns, y, w, codes, n_groups, z_pos, n_blocks)
    return sums.group_xv, sums.total_vv
