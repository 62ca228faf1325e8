"""One pass over the rows for additive models with binned covariates (DESIGN §4).

Each row r has the plain columns ``v_r = [x_r1 … x_rp, y_r]``, a weight ``w_r``, one bin
index per smooth covariate and (optionally) a group code. The pass accumulates what every
cross-product with a smooth's columns needs — never the n × k basis:

* ``plain``: ``Σ w v v'`` (upper triangle, then mirrored);
* per smooth j and bin b: ``Σ w`` and ``Σ w v`` over the rows in the bin;
* per pair of smooths (j < l): ``Σ w B_j(z_j)' B_l(z_l)`` — each row adds the outer
  product of its bins' basis rows (k_j k_l numbers; an m_j × m_l bin table per thread
  would cost a megabyte of page faults per pair);
* per group g: ``Σ w``, ``Σ w v`` and ``Σ w B(z)`` — each row adds its bin's row of the
  smooths' (m-row) bases, so the group × basis product needs no group × bin table (whose
  first touch, G × m pages per thread, serializes the threads on page faults).

The rows are split into one contiguous chunk per thread and every chunk writes its own
slice of the outputs (per-thread buffers: no two threads touch the same memory); the caller
sums the chunks.
"""

import numpy as np
from numba import prange

from .cache import cached_njit

__all__ = ["binned_sums", "bin_layout"]


def bin_layout(sizes):
    """Where each smooth's bins (or basis columns) start in the flat outputs: the offsets
    ``[0, sizes[0], sizes[0] + sizes[1], …]``."""
    return np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)


@cached_njit(parallel=True)
def binned_sums(X, y, w, bins, bin_offsets, codes, basis, col_offsets, plain_out,
                bin_cnt_out, bin_sum_out, pair_out, grp_cnt_out, grp_sum_out, grp_basis_out):
    """Accumulate the per-chunk sums (see the module docstring).

    Parameters
    ----------
    X : ndarray (n, p), float64, y : ndarray (n,) — the plain columns are ``[X, y]``
        (read in place: no (n, p + 1) copy per PIRLS step)
    w : ndarray (n,) or (0,) — weights (empty: 1)
    bins : ndarray (J, n), int32 — bin of each row per smooth
    bin_offsets : ndarray (J + 1,), int64 — smooth j's bins are
        ``bin_offsets[j]:bin_offsets[j + 1]`` of the flat per-bin outputs
    codes : ndarray (n,) or (0,), int64 — group codes (empty: no groups)
    basis : ndarray (M, K) — the smooths' bases at their bins, smooth j in rows
        ``bin_offsets[j]:bin_offsets[j + 1]`` and columns ``col_offsets[j]:col_offsets[j + 1]``
    col_offsets : ndarray (J + 1,), int64
    plain_out : (n_chunks, c, c); bin_cnt_out : (n_chunks, M); bin_sum_out : (n_chunks, M, c)
    pair_out : (n_chunks, K, K) — the (j < l) blocks get Σ w B_j' B_l
    grp_cnt_out : (n_chunks, G); grp_sum_out : (n_chunks, G, c)
    grp_basis_out : (n_chunks, G, K) — all zeroed; M = Σ bins, K = Σ basis columns
    """
    n = y.shape[0]
    p = X.shape[1]
    c = p + 1
    J = bins.shape[0]
    n_chunks = plain_out.shape[0]
    chunk = (n + n_chunks - 1) // n_chunks
    weighted = w.shape[0] > 0
    grouped = codes.shape[0] > 0
    for k in prange(n_chunks):
        # the small per-row sums live in the thread's own array, written out at the end:
        # neighbouring chunks' slices of plain_out could share a cache line
        plain = np.zeros((c, c))
        cnt = bin_cnt_out[k]
        sums = bin_sum_out[k]
        pairs = pair_out[k]
        v = np.empty(c)
        for r in range(k * chunk, min(n, (k + 1) * chunk)):
            for a in range(p):
                v[a] = X[r, a]
            v[p] = y[r]
            wr = w[r] if weighted else 1.0
            for a in range(c):
                wv = wr * v[a]
                for b in range(a, c):
                    plain[a, b] += wv * v[b]
            for j in range(J):
                bj = bin_offsets[j] + bins[j, r]
                cnt[bj] += wr
                for a in range(c):
                    sums[bj, a] += wr * v[a]
                row_j = bin_offsets[j] + bins[j, r]
                for l in range(j + 1, J):
                    row_l = bin_offsets[l] + bins[l, r]
                    for a in range(col_offsets[j], col_offsets[j + 1]):
                        wb = wr * basis[row_j, a]
                        for b in range(col_offsets[l], col_offsets[l + 1]):
                            pairs[a, b] += wb * basis[row_l, b]
            if grouped:
                g = codes[r]
                grp_cnt_out[k, g] += wr
                for a in range(c):
                    grp_sum_out[k, g, a] += wr * v[a]
                for j in range(J):
                    row = bin_offsets[j] + bins[j, r]
                    for col in range(col_offsets[j], col_offsets[j + 1]):
                        grp_basis_out[k, g, col] += wr * basis[row, col]
        for a in range(c):
            for b in range(c):
                plain_out[k, a, b] = plain[min(a, b), max(a, b)]
