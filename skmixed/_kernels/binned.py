"""One pass over the rows for additive models with binned covariates (mgcv's
``bam(discrete = TRUE)``).

Each row r has the plain columns ``v_r = [x_r1 … x_rp, y_r]``, a weight ``w_r``, one bin
index per smooth covariate and (optionally) a group code; smooth j's basis row is multiplied
by the row's ``m_rj`` (mgcv's ``by =``: a numeric variable's value, or 1 at a factor's
level and 0 elsewhere; 1 without ``by``). The pass accumulates what every cross-product
with a smooth's columns needs — never the n × k basis:

* ``plain``: ``Σ w v v'`` (upper triangle, then mirrored);
* per smooth j and bin b: ``Σ w m²`` and ``Σ w m v`` over the rows in the bin;
* per pair of smooths (j < l): ``Σ w m_j m_l B_j(z_j)' B_l(z_l)`` — each row adds the
  outer product of its bins' basis rows (k_j k_l numbers; k_l for an indicator basis, a
  random effect's factor; an m_j × m_l bin table per
  thread would cost a megabyte of page faults per pair); a smooth whose multiplier is 0
  (another level of its factor) adds nothing and costs nothing;
* per group g: ``Σ w``, ``Σ w v`` and ``Σ w m B(z)`` — each row adds its bin's row of the
  smooths' (m-row) bases, so the group × basis product needs no group × bin table (whose
  first touch, G × m pages per thread, serializes the threads on page faults).

The rows are split into fixed blocks (:mod:`.blocks`: their number depends on the rows and
the tables' sizes, never on the thread count) and every block writes its own slice of the
outputs (no two threads touch the same memory), zeroing it first — the group tables only
over the span of group codes the block meets; :func:`sum_binned_blocks` adds the slices in
block order, so the sums are bit-identical on any number of threads.
"""

import numpy as np

from .blocks import block_bounds, cover, sum_spans
from .._cache import cached_njit

__all__ = ["binned_sums", "bin_layout", "binned_table_size", "sum_binned_blocks"]


def bin_layout(sizes):
    """Where each smooth's bins (or basis columns) start in the flat outputs: the offsets
    ``[0, sizes[0], sizes[0] + sizes[1], …]``."""
    return np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)


@cached_njit(nogil=True)
def binned_sums(X, y, w, bins, bin_offsets, codes, basis, col_offsets, smooth_by, by_num,
                by_fac, plain_out, bin_cnt_out, bin_sum_out, pair_out, grp_cnt_out,
                grp_sum_out, grp_basis_out, span_out, first=0, last=-1):
    """Accumulate the per-block sums (see the module docstring).

    Parameters
    ----------
    X : ndarray (n, p), float64, y : ndarray (n,) — the plain columns are ``[X, y]``
        (read in place: no (n, p + 1) copy per PIRLS step)
    w : ndarray (n,) or (0,) — weights (empty: 1)
    bins : ndarray (C, n), int32 — bin of each row per binned covariate
    bin_offsets : ndarray (J + 1,), int64 — smooth j's bins are
        ``bin_offsets[j]:bin_offsets[j + 1]`` of the flat per-bin outputs
    codes : ndarray (n,) or (0,), int64 — group codes (empty: no groups)
    basis : ndarray (M, Kb) — the smooths' bases at their bins, smooth j in rows
        ``bin_offsets[j]:bin_offsets[j + 1]`` and columns ``col_offsets[j]:col_offsets[j + 1]``
        (Kb: up to the first indicator)
    col_offsets : ndarray (J + 1,), int64 — smooth j's columns in the pair and group tables
    smooth_by : ndarray (J, 5), int64 — per smooth: its covariate's row of ``bins``, the
        row of ``by_num`` multiplying its basis (−1: none), the row of ``by_fac`` and the
        level its basis is nonzero at (−1: none) — mgcv's ``by =`` a numeric variable or a
        factor; a row's basis row is multiplied by that number (0 off the level) and the
        smooth is skipped where it is 0 — and 1 for an indicator basis (a random effect's
        factor, mgcv's ``s(g, bs = "re")``: the basis row of bin b is the unit vector e_b,
        so a row adds to one column of the pair and group tables and ``basis`` holds no
        columns for it; indicators come after every other smooth), else 0
    by_num : ndarray (B, n), float64; by_fac : ndarray (F, n), int32
    plain_out : (n_blocks, c, c); bin_cnt_out : (n_blocks, M); bin_sum_out : (n_blocks, M, c)
    pair_out : (n_blocks, K, K) — the (j < l) blocks get Σ w B_j' B_l
    grp_cnt_out : (n_blocks, G); grp_sum_out : (n_blocks, G, c)
    grp_basis_out : (n_blocks, G, K) — M = Σ bins, K = Σ basis columns; none need be
        zeroed: block b zeroes its slices, the group tables only over its span
    span_out : (n_blocks, 2), int64 — the range of group codes block b met
    first, last : the blocks computed, ``first`` to ``last - 1`` (default: all; threads run
        ranges of them: :func:`skmixed._kernels.threads.over_blocks`)
    """
    n = y.shape[0]
    p = X.shape[1]
    c = p + 1
    J = smooth_by.shape[0]
    n_blk = plain_out.shape[0]
    weighted = w.shape[0] > 0
    grouped = codes.shape[0] > 0
    for k in range(first, n_blk if last < 0 else last):
        start, stop = block_bounds(n, n_blk, k)
        # the small per-row sums live in the thread's own array, written out at the end:
        # neighbouring blocks' slices of plain_out could share a cache line
        plain = np.zeros((c, c))
        cnt = bin_cnt_out[k]
        sums = bin_sum_out[k]
        pairs = pair_out[k]
        cnt[:] = 0.0
        sums[:] = 0.0
        pairs[:] = 0.0
        gcnt = grp_cnt_out[k]
        gsum = grp_sum_out[k]
        gbasis = grp_basis_out[k]
        lo = 0
        hi = 0
        v = np.empty(c)
        mult = np.empty(J)
        indicator = smooth_by[:, 4] > 0
        for r in range(start, stop):
            for a in range(p):
                v[a] = X[r, a]
            v[p] = y[r]
            wr = w[r] if weighted else 1.0
            for a in range(c):
                wv = wr * v[a]
                for b in range(a, c):
                    plain[a, b] += wv * v[b]
            for j in range(J):
                m = 1.0
                if smooth_by[j, 2] >= 0 and by_fac[smooth_by[j, 2], r] != smooth_by[j, 3]:
                    m = 0.0
                elif smooth_by[j, 1] >= 0:
                    m = by_num[smooth_by[j, 1], r]
                mult[j] = m
            for j in range(J):
                mj = mult[j]
                if mj == 0.0:
                    continue
                row_j = bin_offsets[j] + bins[smooth_by[j, 0], r]
                wm = wr * mj
                cnt[row_j] += wm * mj
                for a in range(c):
                    sums[row_j, a] += wm * v[a]
                for l in range(j + 1, J):
                    if mult[l] == 0.0:
                        continue
                    row_l = bin_offsets[l] + bins[smooth_by[l, 0], r]
                    wml = wm * mult[l]
                    if indicator[j]:  # two indicators (they come last): one entry
                        pairs[col_offsets[j] + row_j - bin_offsets[j],
                              col_offsets[l] + row_l - bin_offsets[l]] += wml
                    elif indicator[l]:  # a smooth's basis row into one column
                        b = col_offsets[l] + row_l - bin_offsets[l]
                        for a in range(col_offsets[j], col_offsets[j + 1]):
                            pairs[a, b] += wml * basis[row_j, a]
                    else:
                        for a in range(col_offsets[j], col_offsets[j + 1]):
                            wb = wml * basis[row_j, a]
                            for b in range(col_offsets[l], col_offsets[l + 1]):
                                pairs[a, b] += wb * basis[row_l, b]
            if grouped:
                g = codes[r]
                if g < lo or g >= hi:
                    lo, hi, new_lo, new_hi = cover(lo, hi, g)
                    gcnt[new_lo:new_hi] = 0.0
                    gsum[new_lo:new_hi] = 0.0
                    gbasis[new_lo:new_hi] = 0.0
                gcnt[g] += wr
                for a in range(c):
                    gsum[g, a] += wr * v[a]
                for j in range(J):
                    if mult[j] == 0.0:
                        continue
                    row = bin_offsets[j] + bins[smooth_by[j, 0], r]
                    wm = wr * mult[j]
                    if indicator[j]:
                        gbasis[g, col_offsets[j] + row - bin_offsets[j]] += wm
                        continue
                    for col in range(col_offsets[j], col_offsets[j + 1]):
                        gbasis[g, col] += wm * basis[row, col]
        for a in range(c):
            for b in range(c):
                plain_out[k, a, b] = plain[min(a, b), max(a, b)]
        span_out[k, 0] = lo
        span_out[k, 1] = hi


def binned_table_size(c, M, K, G):
    """Float64 entries of one block's outputs of :func:`binned_sums` (for
    :func:`skmixed._kernels.blocks.n_blocks`)."""
    return c * c + M * (1 + c) + K * K + G * (1 + c + K)


def sum_binned_blocks(out):
    """The per-block outputs of :func:`binned_sums` (a dict: ``plain``, ``cnt``, ``sums``,
    ``pairs``, ``gcnt``, ``gsum``, ``gbasis``, ``span``) added in block order; the group
    tables over each block's span only."""
    total = {key: out[key].sum(axis=0) for key in ("plain", "cnt", "sums", "pairs")}
    k, G = out["gcnt"].shape
    for key in ("gcnt", "gsum", "gbasis"):
        width = int(np.prod(out[key].shape[2:]))
        summed = np.zeros((G, width))
        sum_spans(out[key].reshape(k, G, width), out["span"], summed)
        total[key] = summed.reshape(out[key].shape[1:])
    return total
