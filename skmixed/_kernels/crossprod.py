"""One pass over the rows: per-group and total weighted cross-products.

Each row r contributes through the extended row vector ``v_r = [1, x_r1 .. x_rp, y_r]``
(length ``m = p + 2``) and its weight ``w_r``:

* per group g(r), the ``q`` rows of ``Σ w_r z_r v_r'`` where ``z_r = v_r[z_pos]`` are the
  random-effect covariates (DESIGN §1: ``Z_i'WZ_i``, ``Z_i'WX_i`` and ``Z_i'Wy_i`` in one
  array), and
* in total, the upper triangle of ``Σ w_r v_r v_r'`` (``n = Σ w``, ``X'WX``, ``X'Wy``,
  ``y'Wy``).

The rows are split into one contiguous chunk per thread; each chunk accumulates into its own
slice of ``group_out``/``total_out`` and its small total lives in a thread-local array, so no
two threads ever write the same cache line. The caller sums over the chunk axis.
"""

import numpy as np
from numba import njit, prange

__all__ = ["crossprod_grouped", "reduce_crossprods"]


@njit(parallel=True, cache=True)
def crossprod_grouped(X, y, w, codes, z_pos, group_out, total_out):
    """Accumulate per-chunk grouped cross-products (see module docstring).

    Parameters
    ----------
    X : ndarray of shape (n, p), float64
        Fixed-effect columns without the intercept.
    y : ndarray of shape (n,), float64
    w : ndarray of shape (n,) or (0,), float64
        Frequency weights; an empty array means unit weights.
    codes : ndarray of shape (n,), integer
        Group code of each row, in ``[0, n_groups)``; rows need not be sorted.
    z_pos : ndarray of shape (q,), int64
        Positions of the random-effect covariates in ``v = [1, x_1 .. x_p, y]``;
        ``z_pos[0]`` must be 0 (the group's intercept row, which also yields the first row
        of the total).
    group_out : ndarray of shape (n_chunks, n_groups, q, p + 2), float64, zeroed
    total_out : ndarray of shape (n_chunks, p + 2, p + 2), float64
        Rows 1.. of the upper triangle are written; row 0 and the lower triangle are left
        untouched (row 0 is the sum of the groups' row 0).
    """
    n = y.shape[0]
    p = X.shape[1]
    m = p + 2
    q = z_pos.shape[0]
    n_chunks = group_out.shape[0]
    weighted = w.shape[0] > 0
    chunk = (n + n_chunks - 1) // n_chunks
    for c in prange(n_chunks):
        start = c * chunk
        stop = min(n, start + chunk)
        v = np.empty(m)
        total = np.zeros((m, m))
        gbuf = group_out[c]
        for r in range(start, stop):
            wr = w[r] if weighted else 1.0
            v[0] = 1.0
            for j in range(p):
                v[1 + j] = X[r, j]
            v[m - 1] = y[r]
            g = codes[r]
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


def reduce_crossprods(X, y, w, codes, z_pos, n_groups, n_chunks):
    """Run :func:`crossprod_grouped` and reduce its per-chunk buffers.

    Returns
    -------
    group_xv : ndarray of shape (n_groups, q, p + 2)
        ``Σ_{r in group} w_r z_r v_r'``.
    total_vv : ndarray of shape (p + 2, p + 2)
        Symmetric ``Σ_r w_r v_r v_r'``.
    """
    m = X.shape[1] + 2
    q = z_pos.shape[0]
    if z_pos[0] != 0:
        raise ValueError("z_pos[0] must be 0: the group intercept row carries Σ w v.")
    n_chunks = max(1, min(n_chunks, y.shape[0]))
    group_out = np.zeros((n_chunks, n_groups, q, m))
    total_out = np.zeros((n_chunks, m, m))
    crossprod_grouped(X, y, w, codes, z_pos, group_out, total_out)
    group_xv = group_out[0] if n_chunks == 1 else group_out.sum(axis=0)
    upper = total_out.sum(axis=0)
    upper[0] = group_xv[:, 0, :].sum(axis=0)
    total_vv = np.triu(upper) + np.triu(upper, 1).T
    return group_xv, total_vv
