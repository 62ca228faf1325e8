"""The sufficient statistics of an LMM with several grouping factors, gathered chunk by
chunk (out of core, Dask partitions): the sums of
`MultiCrossproducts`, added up from parts of the rows.

Over ``v = [1, x − c, y − y₀]`` (the fixed columns shifted by centres c — 0 for random-slope
columns — and y by y₀, both from the first rows: any value near the means keeps the sums
free of cancellation) a chunk gives

* per factor k and level i, ``Z_ki'W v`` (q_k × m; its first row is the level's Σ w v, its
  columns at the term's positions the diagonal block ``Z_ki'WZ_ki``): the one-factor row
  kernel (`grouped_crossprods`), once per factor;
* per pair of factors k < l, the weighted contingency table ``Z_k'WZ_l``
  (G_k q_k × G_l q_l, sparse: only the level pairs some row meets — never n × G);
* ``v'Wv``.

All are sums over rows, so chunks add up once their levels are mapped to running codes
(the caller maps labels; `RunningSums` takes the codes). `multi_crossproducts`
then divides by the columns' scales and keeps the independent fixed columns: the
MultiCrossproducts an in-memory fit forms from its centred and scaled rows, to rounding
(another centre only moves the intercept of the internal parametrization, which the
deviance does not see; another scale is undone by ``ColumnScaling.reml_offset``).
"""

from dataclasses import dataclass

import numpy as np
from scipy import sparse

from .._kernels.crossprod import grouped_crossprods
from .multilevel import MultiCrossproducts

__all__ = ["ChunkSums", "chunk_sums", "RunningSums", "MultiSums", "multi_crossproducts",
           "identical_factors"]


@dataclass
class ChunkSums:
    """One chunk's sums over its own level codes: ``zv[k]`` (G_k, q_k, m), ``tables[(k,
    l)]`` (k < l; CSR, G_k q_k × G_l q_l), ``vv`` (m, m), ``present[k]`` (G_k,) the levels
    with rows; ``finite``: no sum is NaN or infinite."""

    zv: list
    tables: dict
    vv: np.ndarray
    present: list

    @property
    def finite(self):
        return bool(np.isfinite(self.vv).all() and all(np.isfinite(z).all() for z in self.zv))


def _z_values(n, columns, z_pos, shift):
    """The n rows' random-effect covariates [1, slopes…] (n, q) on the scale of ``v``."""
    out = np.ones((n, len(z_pos)))
    for a, pos in enumerate(z_pos[1:], start=1):
        out[:, a] = np.asarray(columns[pos - 1], dtype=np.float64) - shift[pos]
    return out


def chunk_sums(columns, y, w, factors, shift):
    """The sums of one chunk. ``columns``: the fixed columns (1-D arrays), ``y``, ``w``
    (empty: unit weights), ``factors``: per factor ``(codes, n_levels, z_pos)`` with
    ``z_pos`` the term's positions in v (``[0, 1 + slope position…]``), ``shift``: what is
    subtracted from v."""
    zv, present, vv = [], [], None
    for codes, n_levels, z_pos in factors:
        sums = grouped_crossprods(columns, y, w, codes, n_levels, z_pos, shift=shift)
        zv.append(sums.group_xv)
        present.append(sums.group_rows > 0)
        vv = sums.total_vv if vv is None else vv
    weights = np.asarray(w, dtype=np.float64) if len(w) else None
    tables = {}
    for k in range(len(factors)):
        for l in range(k + 1, len(factors)):
            tables[(k, l)] = _table(factors[k], factors[l], len(y), columns, weights,
                                    shift)
    return ChunkSums(zv, tables, vv, present)


def _table(fk, fl, n, columns, w, shift):
    """``Z_k'WZ_l`` of the chunk's rows (CSR; duplicates summed)."""
    (ck, Gk, zk_pos), (cl, Gl, zl_pos) = fk, fl
    qk, ql = len(zk_pos), len(zl_pos)
    zk, zl = _z_values(n, columns, zk_pos, shift), _z_values(n, columns, zl_pos, shift)
    if w is not None:
        zk = zk * w[:, None]
    rows, cols, data = [], [], []
    for a in range(qk):
        for b in range(ql):
            rows.append(np.asarray(ck, dtype=np.int64) * qk + a)
            cols.append(np.asarray(cl, dtype=np.int64) * ql + b)
            data.append(zk[:, a] * zl[:, b])
    return sparse.csr_matrix((np.concatenate(data), (np.concatenate(rows),
                                                     np.concatenate(cols))),
                             shape=(Gk * qk, Gl * ql))


class _SummedTriplets:
    """A sparse table added up from triplets ``(row, col, value)`` over chunks; duplicates
    are summed whenever the pending triplets outnumber the summed ones (each triplet is
    summed O(log chunks) times)."""

    def __init__(self):
        self.summed = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0))
        self.pending, self.n_pending = [], 0

    def add(self, rows, cols, values):
        self.pending.append((rows, cols, values))
        self.n_pending += rows.size
        if self.n_pending > max(self.summed[0].size, 1 << 20):
            self.consolidate()

    def consolidate(self):
        if not self.pending:
            return self.summed
        parts = [self.summed] + self.pending
        r, c, v = (np.concatenate([p[i] for p in parts]) for i in range(3))
        shape = (int(r.max()) + 1 if r.size else 0, int(c.max()) + 1 if c.size else 0)
        coo = sparse.csr_matrix((v, (r, c)), shape=shape).tocoo()
        self.summed = (coo.row.astype(np.int64), coo.col.astype(np.int64), coo.data)
        self.pending, self.n_pending = [], 0
        return self.summed


@dataclass
class MultiSums:
    """The sums of all rows, the levels in their final order (the factors in the user's):
    ``zv[k]`` (G_k, q_k, m), ``tables[(k, l)]`` (k < l, CSR), ``vv`` (m, m)."""

    zv: list
    tables: dict
    vv: np.ndarray


class RunningSums:
    """Sums over chunks whose levels the caller maps to running codes (0, 1, … in order
    of first appearance, per factor). ``qs``: the factors' q; ``m``: len(v)."""

    def __init__(self, qs, m):
        self.qs = list(qs)
        self.zv = [np.zeros((0, q, m)) for q in self.qs]
        self.vv = np.zeros((m, m))
        self.tables = {(k, l): _SummedTriplets() for k in range(len(qs))
                       for l in range(k + 1, len(qs))}

    def add(self, chunk, codes):
        """Add a chunk's sums; ``codes[k]``: the running code of each of the chunk's
        present levels of factor k (in the chunk's level order)."""
        running = []
        for k, (z, keep, c) in enumerate(zip(chunk.zv, chunk.present, codes)):
            c = np.asarray(c, dtype=np.int64)
            need = int(c.max()) + 1 if c.size else 0
            if need > self.zv[k].shape[0]:
                grown = np.zeros((max(need, 2 * self.zv[k].shape[0]),) + z.shape[1:])
                grown[:self.zv[k].shape[0]] = self.zv[k]
                self.zv[k] = grown
            self.zv[k][c] += z[keep]  # a chunk's levels are distinct
            full = np.full(keep.size, -1, dtype=np.int64)
            full[keep] = c
            running.append(full)
        self.vv += chunk.vv
        for (k, l), table in chunk.tables.items():
            coo = table.tocoo()
            qk, ql = self.qs[k], self.qs[l]
            self.tables[(k, l)].add(running[k][coo.row // qk] * qk + coo.row % qk,
                                    running[l][coo.col // ql] * ql + coo.col % ql,
                                    coo.data)

    def weight(self, k, n_levels):
        """Σ w of each of factor k's first ``n_levels`` running levels."""
        return self.zv[k][:n_levels, 0, 0].copy()

    def finish(self, keep):
        """The sums over the levels ``keep[k]`` (running codes, in the final order; the
        other levels have no weight)."""
        zv, inverse = [], []
        for k, kept in enumerate(keep):
            kept = np.asarray(kept, dtype=np.int64)
            zv.append(self.zv[k][kept])
            inv = np.full(max(self.zv[k].shape[0], 1), -1, dtype=np.int64)
            inv[kept] = np.arange(kept.size)
            inverse.append(inv)
        tables = {}
        for (k, l), acc in self.tables.items():
            r, c, v = acc.consolidate()
            qk, ql = self.qs[k], self.qs[l]
            r = inverse[k][r // qk] * qk + r % qk
            c = inverse[l][c // ql] * ql + c % ql
            ok = (r >= 0) & (c >= 0)
            tables[(k, l)] = sparse.csr_matrix((v[ok], (r[ok], c[ok])),
                                               shape=(len(keep[k]) * qk, len(keep[l]) * ql))
        return MultiSums(zv, tables, self.vv.copy())


def multi_crossproducts(sums, order, z_pos, scale, fixed):
    """The `MultiCrossproducts` of ``sums`` (a
    `MultiSums`) on the internal columns: the factors in elimination ``order``,
    ``z_pos[k]`` factor k's positions in v, ``scale`` (m,) what each column of v is divided
    by (1 for the constant and y), ``fixed`` the positions in v of the fixed-effect
    block's columns (the intercept, the kept columns)."""
    m = sums.vv.shape[0]
    fixed = np.asarray(fixed, dtype=np.int64)
    vv = sums.vv / np.outer(scale, scale)
    zv, zs = {}, {}
    for k in order:
        zs[k] = scale[np.asarray(z_pos[k], dtype=np.int64)]
        zv[k] = sums.zv[k] / scale[None, None, :] / zs[k][None, :, None]
    position = {k: i for i, k in enumerate(order)}
    blocks = [[None] * len(order) for _ in order]
    for k in order:
        G, q = zv[k].shape[:2]
        diag = np.ascontiguousarray(zv[k][:, :, np.asarray(z_pos[k], dtype=np.int64)])
        blocks[position[k]][position[k]] = sparse.bsr_matrix(
            (diag, np.arange(G), np.arange(G + 1)), shape=(G * q, G * q))
    for (k, l), table in sums.tables.items():
        T = table.tocoo()
        T = sparse.coo_matrix((T.data / (zs[k][T.row % zs[k].size]
                                         * zs[l][T.col % zs[l].size]), (T.row, T.col)),
                              shape=T.shape)
        blocks[position[k]][position[l]], blocks[position[l]][position[k]] = T, T.T
    ZZ = sparse.bmat(blocks, format="csr")
    ZV = np.concatenate([zv[k].reshape(-1, m) for k in order])
    widths = [zv[k].shape[0] * zv[k].shape[1] for k in order]
    return MultiCrossproducts(
        ZZ=ZZ, ZX=np.ascontiguousarray(ZV[:, fixed]), Zy=ZV[:, m - 1].copy(),
        XtX=vv[np.ix_(fixed, fixed)], Xty=vv[fixed, m - 1], yty=float(vv[m - 1, m - 1]),
        n=float(sums.vv[0, 0]), offsets=np.concatenate([[0], np.cumsum(widths)]))


def identical_factors(sums, qs):
    """Sets (lists of 2 or more indices) of the factors that split the rows with positive
    weight identically (`identical_factor_sets` from
    the rows' codes), from the contingency tables: two factors with G levels each, all
    with weight, are one partition iff their table has G cells with weight (one per level
    of each)."""
    G = [z.shape[0] for z in sums.zv]
    sets = []
    for j in range(len(G)):
        for s in sets:
            k = s[0]
            if G[k] == G[j] and np.count_nonzero(
                    sums.tables[(k, j)][::qs[k], ::qs[j]].data > 0) == G[j]:
                s.append(j)
                break
        else:
            sets.append([j])
    return [s for s in sets if len(s) > 1]
