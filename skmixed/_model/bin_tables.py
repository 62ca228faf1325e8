"""Basis-free binned sufficient statistics of a Gaussian additive mixed model, accumulated
over chunks of rows (out of core), and the cross-products built from them afterwards.

A chunk's rows are reduced to tables indexed by the smooths' bins and the groups — per bin
``Σw`` and ``Σw [X, y]``, per pair of smooths the (bin, bin) table of ``Σw``, per group and
random-effect column z (1, slopes) ``Σ w z z'``, ``Σ w z [X, y]`` and the (group, bin)
tables of ``Σ w z`` — none of which needs the smooths' bases, which depend on the bin counts
of all rows. After the last chunk the bases are built and every product of
`CrossProducts` follows from the tables: ``B'diag(n)B``,
``B'S``, ``B_j'T_jl B_l`` and ``(G × bin) @ B``. The tables are what
``bam(discrete = TRUE)``'s compressed data hold, summed instead of stored.

Binning is mgcv's (`discretize`): a smooth's distinct values
while there are at most ``n_bins`` of them (tables indexed by value, in order of first
appearance), else ``n_bins`` equally spaced values over the covariate's range, which must
be known before the first chunk (Parquet statistics, or the source's ``ranges``); the
value-indexed tables are then summed into the grid's bins, so the result equals the
in-memory binning exactly.
"""

import numpy as np

__all__ = ["SmoothAxis", "BinTables", "RunningLevels"]


def _padded_sum(a, b):
    """a + b for tables of the same bins whose leading sizes may differ (empty start)."""
    if a.shape == b.shape:
        return a + b
    shape = np.maximum(a.shape, b.shape)
    out = np.zeros(shape)
    out[tuple(slice(0, k) for k in a.shape)] += a
    out[tuple(slice(0, k) for k in b.shape)] += b
    return out


class RunningLevels:
    """Group labels met over chunks → running codes (order of first appearance);
    `sort_order` gives the order an in-memory fit sorts them in."""

    def __init__(self):
        self.position, self.levels = {}, []

    def codes(self, labels):
        out = np.empty(len(labels), dtype=np.int64)
        for i, level in enumerate(labels):
            code = self.position.get(level)
            if code is None:
                code = self.position[level] = len(self.levels)
                self.levels.append(level)
            out[i] = code
        return out

    def sort_order(self):
        try:
            return np.argsort(np.asarray(self.levels), kind="stable")
        except TypeError:  # unorderable mixed labels: order of appearance
            return np.arange(len(self.levels))


class SmoothAxis:
    """The bins of one smooth covariate across chunks."""

    def __init__(self, label, n_bins, value_range=None, values=None, grid=False, note=None):
        self.label, self.n_bins, self.range = label, int(n_bins), value_range
        self.note = note  # why the source does not know the range (for the error)
        self.position = {}  # exact value → bin (order of first appearance)
        self.values = []
        self.exact = not grid  # grid: the bins span the range from the start
        for v in sorted(values) if values is not None else ():  # known beforehand
            self.position[v] = len(self.values)
            self.values.append(v)

    @property
    def size(self):
        return len(self.values) if self.exact else self.n_bins

    def grid(self):
        lo, hi = self.range
        return np.linspace(lo, hi, self.n_bins)

    def grid_index(self, x, where):
        lo, hi = self.range
        step = (hi - lo) / (self.n_bins - 1)
        if np.any(x < lo - 1e-9 * step) or np.any(x > hi + 1e-9 * step):
            raise ValueError(f"{where}: values of {self.label!r} outside the range "
                             f"[{lo:g}, {hi:g}] given for its bins.")
        return np.clip(np.rint((x - lo) / step), 0, self.n_bins - 1).astype(np.int64)

    def index(self, x, where):
        """Bins of the chunk's values; returns ``(index, to_grid)`` where ``to_grid`` (or
        None) maps the bins so far onto the grid when this chunk ends the exact phase."""
        if not self.exact:
            return self.grid_index(x, where), None
        uniq, inverse = np.unique(x, return_inverse=True)
        new = [v for v in uniq.tolist() if v not in self.position]
        if len(self.values) + len(new) <= self.n_bins:
            for v in new:
                self.position[v] = len(self.values)
                self.values.append(v)
            lookup = np.array([self.position[v] for v in uniq.tolist()], dtype=np.int64)
            return lookup[inverse], None
        if self.range is None:
            known = f"; {self.note}" if self.note else ""
            raise ValueError(f"{where}: the smooth of {self.label!r} has more than "
                             f"n_bins={self.n_bins} distinct values, so its bins span its "
                             "range, which a chunked source must give before the first "
                             f"chunk{known}: pass from_parquet(..., ranges={{{self.label!r}: "
                             "(min, max)}) or from_chunks(..., ranges=...) (from_parquet "
                             "reads the ranges from the files' min/max statistics when "
                             "every file has them).")
        to_grid = self.grid_index(np.asarray(self.values, dtype=float), where)
        self.exact = False
        return self.grid_index(x, where), to_grid

    def finish(self):
        """The bin values and the permutation that sorts the exact-phase bins."""
        if not self.exact:
            return self.grid(), None
        order = np.argsort(np.asarray(self.values), kind="stable")
        return np.asarray(self.values)[order], order


class BinTables:
    """The tables (see the module docstring) for ``p`` plain columns (``[X, y]``, y
    last), the smooths' axes, and optionally groups with ``r`` random-effect columns."""

    def __init__(self, p, axes, grouped, r=1):
        self.p, self.axes, self.grouped, self.r = p, axes, grouped, r
        J = len(axes)
        self.plain = np.zeros((p, p))
        self.n = 0.0
        self.cnt = [np.zeros(0) for _ in range(J)]
        self.sums = [np.zeros((0, p)) for _ in range(J)]
        self.pairs = {(j, l): np.zeros((0, 0)) for j in range(J) for l in range(j + 1, J)}
        self.groups = RunningLevels()
        self.zz = np.zeros((0, r, r))
        self.zsum = np.zeros((0, r, p))
        self.zbin = [np.zeros((0, r, 0)) for _ in range(J)]

    # -- growth and re-binning along an axis
    def _resize_bins(self, j, m, to_grid=None):
        def along(a, axis):
            if to_grid is not None:  # sum the exact-phase bins into the grid's
                shape = list(a.shape)
                shape[axis] = m
                out = np.zeros(shape)
                idx = [slice(None)] * a.ndim
                for b, g in enumerate(to_grid):
                    idx[axis] = b
                    src = a[tuple(idx)]
                    idx[axis] = g
                    out[tuple(idx)] += src
                return out
            pad = [(0, 0)] * a.ndim
            pad[axis] = (0, m - a.shape[axis])
            return np.pad(a, pad)
        self.cnt[j] = along(self.cnt[j], 0)
        self.sums[j] = along(self.sums[j], 0)
        self.zbin[j] = along(self.zbin[j], 2)
        for (a, b), t in self.pairs.items():
            if a == j:
                self.pairs[a, b] = along(t, 0)
            elif b == j:
                self.pairs[a, b] = along(t, 1)

    def _group_codes(self, levels):
        codes = self.groups.codes(levels)
        G = len(self.groups.levels)
        if G > self.zz.shape[0]:
            size = max(G, 2 * self.zz.shape[0], 64)
            grow = size - self.zz.shape[0]
            self.zz = np.concatenate([self.zz, np.zeros((grow,) + self.zz.shape[1:])])
            self.zsum = np.concatenate([self.zsum, np.zeros((grow,) + self.zsum.shape[1:])])
            self.zbin = [np.concatenate([t, np.zeros((grow,) + t.shape[1:])])
                         for t in self.zbin]
        return codes

    def add(self, V, w, smooth_x, where, group_codes=None, group_levels=None, z=None):
        """One chunk: ``V`` (n × p, ``[X, y]``), weights ``w``, the smooths' covariates,
        and the chunk's group codes (into ``group_levels``) and random-effect columns
        ``z`` (n × r, first column 1)."""
        idx = []
        for j, (axis, x) in enumerate(zip(self.axes, smooth_x)):
            index, to_grid = axis.index(np.asarray(x, dtype=float), where)
            if to_grid is not None:
                self._resize_bins(j, axis.size, to_grid)
            elif axis.size > self.cnt[j].shape[0]:
                self._resize_bins(j, axis.size)
            idx.append(index)
        Vw = V * w[:, None]
        self.plain += Vw.T @ V
        self.n += float(w.sum())
        for j, index in enumerate(idx):
            m = self.axes[j].size
            self.cnt[j] += np.bincount(index, weights=w, minlength=m)
            for c in range(self.p):
                self.sums[j][:, c] += np.bincount(index, weights=Vw[:, c], minlength=m)
            for l in range(j + 1, len(idx)):
                ml = self.axes[l].size
                self.pairs[j, l] += np.bincount(index * ml + idx[l], weights=w,
                                                minlength=m * ml).reshape(m, ml)
        if group_codes is None:
            return
        local = np.unique(group_codes)
        glob = self._group_codes([group_levels[k] for k in local])
        dense = np.searchsorted(local, group_codes)
        Gc = local.size
        for a in range(self.r):
            wa = w * z[:, a]
            for b in range(self.r):
                self.zz[glob, a, b] += np.bincount(dense, weights=wa * z[:, b], minlength=Gc)
            for c in range(self.p):
                self.zsum[glob, a, c] += np.bincount(dense, weights=wa * V[:, c],
                                                     minlength=Gc)
            for j, index in enumerate(idx):
                m = self.axes[j].size
                self.zbin[j][glob, a, :] += np.bincount(dense * m + index, weights=wa,
                                                        minlength=Gc * m).reshape(Gc, m)

    def merge(self, other):
        """Add the tables of ``other`` (the same axes, fixed beforehand: a Dask partition's)
        into these, its groups matched by label."""
        self.plain += other.plain
        self.n += other.n
        for j in range(len(self.axes)):
            self.cnt[j] = _padded_sum(self.cnt[j], other.cnt[j])
            self.sums[j] = _padded_sum(self.sums[j], other.sums[j])
        for key in self.pairs:
            self.pairs[key] = _padded_sum(self.pairs[key], other.pairs[key])
        if not self.grouped or not other.groups.levels:
            return
        G = len(other.groups.levels)
        codes = self._group_codes(other.groups.levels)
        m = [self.axes[j].size for j in range(len(self.axes))]
        for j in range(len(self.axes)):
            if self.zbin[j].shape[2] < m[j]:
                self._resize_bins(j, m[j])
        self.zz[codes] += other.zz[:G]
        self.zsum[codes] += other.zsum[:G]
        for j in range(len(self.axes)):
            self.zbin[j][codes] += other.zbin[j][:G]

    def finish(self):
        """Bin values per smooth, tables in sorted-bin and sorted-group order."""
        values = []
        for j, axis in enumerate(self.axes):
            v, order = axis.finish()
            values.append(v)
            if order is not None:
                self.cnt[j] = self.cnt[j][order]
                self.sums[j] = self.sums[j][order]
                self.zbin[j] = self.zbin[j][:, :, order]
                for (a, b), t in self.pairs.items():
                    if a == j:
                        self.pairs[a, b] = t[order]
                    elif b == j:
                        self.pairs[a, b] = t[:, order]
        G = len(self.groups.levels)
        self.group_levels = []
        if self.grouped:
            perm = self.groups.sort_order()
            self.group_levels = [self.groups.levels[i] for i in perm]
            self.zz, self.zsum = self.zz[:G][perm], self.zsum[:G][perm]
            self.zbin = [t[:G][perm] for t in self.zbin]
        return values
