"""The cross-products an additive model's REML needs from its rows: from the
columns themselves (`CrossProducts.dense`), from binned covariates in one pass over the
rows as ``bam(discrete = TRUE)`` (`CrossProducts.binned`; Wood, Li, Shaddick &
Augustin 2017), or from basis-free bin tables summed over chunks
(`crossproducts_from_tables`); and mgcv's binning of a covariate
(`discretize`)."""

from dataclasses import dataclass

import numpy as np

from .._kernels import blocks
from .._kernels.binned import bin_layout, binned_sums, binned_table_size, sum_binned_blocks
from .._kernels.threads import over_blocks
from .scaling import weighted_gram

__all__ = ["SmoothBlocks", "CrossProducts", "Indicator", "discretize", "discretize_points",
           "discretize_margins", "discretize_factor_smooth", "by_multipliers",
           "crossproducts_from_tables"]

@dataclass
class SmoothBlocks:
    """The columns of an additive model: ``fixed`` (n × p: parametric columns and the
    smooths' null spaces) and ``random`` (n × q, the smooths' penalized blocks one after
    another), ``sizes`` (the columns of each penalized block, each with its own τ),
    ``fixed_of`` (per smooth, the indices of its null-space columns in ``fixed``) and
    ``smooth_blocks`` (per smooth its τ; None: one each — with ``select=True`` a
    smooth's null space is a second block) and ``penalties`` (per block None, the identity,
    or a tensor product's several penalties; None: all the identity)."""

    fixed: np.ndarray
    random: np.ndarray
    sizes: list
    fixed_of: list
    smooth_blocks: list = None
    penalties: list = None


def discretize(x, n_bins=1000):
    """mgcv's ``bam(discrete = TRUE)`` binning of one covariate: its distinct values if
    there are at most ``n_bins``, else rounded to the nearest of ``n_bins`` equally spaced
    values over its range. Returns ``(values, index)`` with ``x ≈ values[index]``."""
    x = np.asarray(x, dtype=float)
    # a strided sample with more distinct values than bins already decides it (no sort of
    # every row: a continuous covariate of millions of rows)
    if np.unique(x[::max(1, x.size // (20 * n_bins))]).size <= n_bins:
        values, index = np.unique(x, return_inverse=True)
        if values.size <= n_bins:
            return values, index.astype(np.int32)
    lo, hi = float(x.min()), float(x.max())
    grid = np.linspace(lo, hi, n_bins)
    index = np.rint((x - lo) / (grid[1] - grid[0])).astype(np.int32)
    return grid, index


def discretize_points(x, m=None):
    """mgcv's ``bam(discrete = TRUE)`` binning of the covariates of one smooth of d ≥ 2 of
    them (its ``compress.df``): the distinct rows if there are at most m^d (m = 100 for
    d = 2, 25 beyond), else each covariate rounded to the nearest of m equally spaced values
    over its range, then the distinct rows. Returns ``(values, index)`` with
    ``x ≈ values[index]`` (values: u × d)."""
    x = np.asarray(x, dtype=float)
    d = x.shape[1]
    m = (100 if d == 2 else 25) if m is None else int(m)
    values, index = np.unique(x, axis=0, return_inverse=True)
    if values.shape[0] > m ** d:
        lo, hi = x.min(axis=0), x.max(axis=0)
        step = (hi - lo) / (m - 1)
        codes = np.rint((x - lo) / step).astype(np.int64)
        flat = codes @ (m ** np.arange(d, dtype=np.int64)[::-1])
        used, index = np.unique(flat, return_inverse=True)
        grid = np.stack([(used // m ** (d - 1 - j)) % m for j in range(d)], axis=1)
        values = lo + grid * step
    return values, np.asarray(index, dtype=np.int32).ravel()


def discretize_factor_smooth(x, codes, m=100):
    """``bam(discrete = TRUE)``'s binning of the covariate of ``s(x, f, bs = "fs")`` (its
    ``compress.df`` of the two columns x and f, ``codes`` the rows' levels): the distinct x
    if the rows hold at most m × (levels) distinct (x, f) pairs, else x rounded to the
    nearest of m equally spaced values over its range. Returns ``(values, index,
    n_levels_at)``: ``x ≈ values[index]`` and per value the number of levels with rows
    there (mgcv builds the basis on the distinct pairs, each once)."""
    x = np.asarray(x, dtype=float)
    codes = np.asarray(codes, dtype=np.int64)
    L = int(codes.max()) + 1
    limit = m * np.unique(codes).size
    # more distinct pairs in the first rows than the limit: more in all (no sort of x)
    head = slice(0, min(x.size, 4 * limit))
    if np.unique(np.column_stack([x[head], codes[head]]), axis=0).shape[0] <= limit:
        values, index = np.unique(x, return_inverse=True)
        index = index.astype(np.int64).ravel()
        pairs = np.unique(index * L + codes)
        if pairs.size <= limit:
            return (values, index.astype(np.int32),
                    np.bincount(pairs // L, minlength=values.size).astype(float))
    lo, hi = float(x.min()), float(x.max())
    grid = np.rint((x - lo) / ((hi - lo) / (m - 1))).astype(np.int64)  # 0 … m − 1
    present = np.bincount(grid * L + codes, minlength=m * L).reshape(m, L) > 0
    used = present.any(axis=1)
    position = np.cumsum(used) - 1
    values = lo + np.flatnonzero(used) * ((hi - lo) / (m - 1))
    return (values, position[grid].astype(np.int32),
            present[used].sum(axis=1).astype(float))


def discretize_margins(x, n_bins=1000):
    """``bam(discrete = TRUE)``'s binning of a tensor product's covariates (n × d): each
    margin binned as one covariate (`discretize`), then the distinct combinations of the
    margins' bins. Returns ``(values, index)`` with ``x ≈ values[index]`` (u × d)."""
    x = np.asarray(x, dtype=float)
    grids, flat = [], np.zeros(x.shape[0], dtype=np.int64)
    for col in x.T:
        grid, idx = discretize(col, n_bins)
        grids.append(grid)
        flat = flat * grid.size + idx
    size = int(np.prod([g.size for g in grids]))
    if size <= 8 * x.shape[0]:  # the combinations counted in a table: no sort of the rows
        seen = np.bincount(flat, minlength=size) > 0
        used = np.flatnonzero(seen)
        index = (np.cumsum(seen) - 1)[flat]
    else:
        used, index = np.unique(flat, return_inverse=True)
    values = np.empty((used.size, x.shape[1]))
    for j in range(x.shape[1] - 1, -1, -1):
        values[:, j] = grids[j][used % grids[j].size]
        used = used // grids[j].size
    return values, np.asarray(index, dtype=np.int32).ravel()


class Indicator:
    """The basis of a random effect's factor of G levels (mgcv's ``s(g, bs = "re")``) in
    `CrossProducts.binned`'s list of smooths: at level (bin) b the unit vector e_b — the
    G × G identity, never formed."""

    def __init__(self, size):
        self.shape = (int(size), int(size))


@dataclass
class CrossProducts:
    """What the REML needs from the rows: ``M = W'diag(w)W`` over ``W = [F, R, y]`` (p fixed
    columns, q random columns), ``n = Σ w`` and, with groups, per group i the products of
    its random-effect columns ``z = [1, x_1 … x_m]`` (intercept, then the random slopes):
    ``ZZ`` (G × r × r, ``Σ_i w z z'``) and ``ZW`` (G × r × (p + q + 1), ``Σ_i w z W'``)."""

    M: np.ndarray
    n: float
    p: int
    q: int
    ZZ: np.ndarray = None
    ZW: np.ndarray = None

    @staticmethod
    def _group_columns(n, slopes):
        """The groups' random-effect columns [1, slopes…] (n × r)."""
        z = [np.ones(n)]
        if slopes is not None:
            z += [np.asarray(c, dtype=float) for c in np.asarray(slopes, dtype=float).T]
        return z

    @classmethod
    def dense(cls, F, R, y, w=None, groups=None, n_groups=None, slopes=None):
        """From the columns themselves (the exact fit); ``slopes`` (n × m): the columns
        with a random slope per group."""
        y = np.asarray(y, dtype=float)
        w = np.ones_like(y) if w is None else np.asarray(w, dtype=float)
        W = np.column_stack([F, R, y])
        out = cls((W * w[:, None]).T @ W, float(w.sum()), F.shape[1], R.shape[1])
        if groups is not None:
            codes = np.asarray(groups, dtype=np.int64)
            G = int(n_groups if n_groups is not None else codes.max() + 1)
            z = cls._group_columns(y.shape[0], slopes)
            out.ZZ = np.stack([np.stack([np.bincount(codes, weights=w * za * zb, minlength=G)
                                         for zb in z], axis=1) for za in z], axis=1)
            out.ZW = np.stack([np.stack([np.bincount(codes, weights=w * za * col,
                                                     minlength=G) for col in W.T], axis=1)
                               for za in z], axis=1)
        return out

    @classmethod
    def binned(cls, X, y, smooths, w=None, groups=None, n_groups=None, n_blocks=None,
               slopes=None, by=None):
        """From binned smooth covariates (``bam(discrete = TRUE)``): ``smooths`` lists per
        smooth ``(index, null, range)`` — the int bin of each row and the basis at the bin
        values in null-space and range-space coordinates (m × f, m × r). No n × k basis is
        formed: one pass over the rows (`skmixed._kernels.binned.binned_sums`, in
        ``n_blocks`` fixed blocks, by default a function of the sizes only, so the sums are
        the same on any number of threads) gives per-bin sums, the smooths' pairwise basis
        products and per-group sums of basis rows, and every product with a smooth's
        columns comes from them and the m-row bases. Each random-slope column x (of
        ``slopes``, n × m) takes one more pass, with weights w·x, for its per-group sums.
        ``by`` lists per smooth its row multipliers (`by_multipliers`; None: all 1).
        Columns are ordered ``[X, null₁ … null_J, range₁ … range_J, y]``."""
        y = np.ascontiguousarray(y, dtype=float)
        X = np.asarray(X, dtype=float)
        c = X.shape[1] + 1  # the columns that are not smooths: [X, y]
        J = len(smooths)
        sizes = np.array([nul.shape[0] for _, nul, _ in smooths], dtype=np.int64)
        bin_offsets = bin_layout(sizes)
        codes = (np.asarray(groups, dtype=np.int64) if groups is not None
                 else np.empty(0, dtype=np.int64))
        G = (int(n_groups if n_groups is not None else codes.max() + 1)
             if groups is not None else 0)
        M = int(bin_offsets[-1])
        widths = [nul.shape[1] + rng.shape[1] for _, nul, rng in smooths]
        col_offsets = bin_layout(widths)
        # an indicator's columns (after every smooth's) are never formed in `basis`
        indicator = [isinstance(rng, Indicator) for _, _, rng in smooths]
        if indicator != sorted(indicator):
            raise ValueError("indicator bases must come after the smooths")
        basis = np.zeros((M, int(col_offsets[indicator.index(True)] if any(indicator)
                                 else col_offsets[-1])))
        Bc = []  # per smooth [null, range] at its bins (a view of `basis`), or an Indicator
        for j, (_, nul, rng) in enumerate(smooths):
            if indicator[j]:
                Bc.append(rng)
                continue
            block = basis[bin_offsets[j]:bin_offsets[j + 1], col_offsets[j]:col_offsets[j + 1]]
            block[:, :nul.shape[1]] = nul
            block[:, nul.shape[1]:] = rng
            Bc.append(block)
        K = int(col_offsets[-1])
        bins, smooth_by, by_num, by_fac = by_multipliers(
            [idx for idx, _, _ in smooths], [None] * J if by is None else by, y.shape[0],
            indicator)
        if n_blocks is None:
            n_blocks = blocks.n_blocks(y.shape[0], binned_table_size(c, M, K, G))
        k = max(1, min(int(n_blocks), y.shape[0]))
        out = dict(plain=np.zeros((k, c, c)), cnt=np.empty((k, M)), sums=np.empty((k, M, c)),
                   pairs=np.empty((k, K, K)), gcnt=np.empty((k, G)),
                   gsum=np.empty((k, G, c)), gbasis=np.empty((k, G, K)),
                   span=np.zeros((k, 2), dtype=np.int64))
        keys = ("plain", "cnt", "sums", "pairs", "gcnt", "gsum", "gbasis", "span")
        weights = np.empty(0) if w is None else np.asarray(w, dtype=float)
        over_blocks(binned_sums, (X, y, weights, bins, bin_offsets, codes, basis, col_offsets,
                                  smooth_by, by_num, by_fac, *[out[key] for key in keys]),
                    k, y.shape[0])
        tot = sum_binned_blocks(out)
        widths = [X.shape[1]] + [b.shape[1] for b in Bc] + [1]
        edges = np.concatenate([[0], np.cumsum(widths)])
        E = np.zeros((edges[-1], edges[-1]))  # over [X, Bc_1 … Bc_J, y]
        plain = list(range(X.shape[1])) + [edges[-1] - 1]
        E[np.ix_(plain, plain)] = tot["plain"]
        for j in range(J):
            b = slice(bin_offsets[j], bin_offsets[j + 1])
            cols = slice(edges[j + 1], edges[j + 2])
            if indicator[j]:  # a factor's levels: its counts and sums themselves
                E[cols, cols] = np.diag(tot["cnt"][b])
                E[cols, plain] = tot["sums"][b]
            else:
                E[cols, cols] = weighted_gram(Bc[j], tot["cnt"][b])
                E[cols, plain] = Bc[j].T @ tot["sums"][b]
            E[plain, cols] = E[cols, plain].T
            for l in range(j + 1, J):
                other = slice(edges[l + 1], edges[l + 2])
                E[cols, other] = tot["pairs"][col_offsets[j]:col_offsets[j + 1],
                                              col_offsets[l]:col_offsets[l + 1]]
                E[other, cols] = E[cols, other].T
        order = _column_order(X.shape[1], [b.shape[1] for _, b, _ in smooths],
                              [r.shape[1] for _, _, r in smooths], edges)
        p = X.shape[1] + sum(nul.shape[1] for _, nul, _ in smooths)
        n_w = float(np.sum(w)) if w is not None else float(y.shape[0])
        result = cls(E[np.ix_(order, order)], n_w, p,
                     sum(rng.shape[1] for _, _, rng in smooths))
        if groups is not None:
            z = cls._group_columns(y.shape[0], slopes)
            w1 = np.ones_like(y) if w is None else np.asarray(w, dtype=float)
            result.ZZ = np.stack([np.stack([np.bincount(codes, weights=w1 * za * zb,
                                                        minlength=G) for zb in z], axis=1)
                                  for za in z], axis=1)
            ZE = np.zeros((G, len(z), edges[-1]))
            for a, za in enumerate(z):
                if a:  # a random slope: the per-group sums again, weighted by w·x
                    over_blocks(binned_sums, (X, y, w1 * za, bins, bin_offsets, codes, basis,
                                              col_offsets, smooth_by, by_num, by_fac,
                                              *[out[key] for key in keys]), k, y.shape[0])
                    tot = sum_binned_blocks(out)
                ZE[:, a, plain] = tot["gsum"]
                for j in range(J):
                    ZE[:, a, edges[j + 1]:edges[j + 2]] = \
                        tot["gbasis"][:, col_offsets[j]:col_offsets[j + 1]]
            result.ZW = ZE[:, :, order]
        return result

    def subset_fixed(self, kept):
        """The cross-products with the fixed columns at positions ``kept`` only (the
        others dropped as collinear)."""
        cols = list(kept) + list(range(self.p, self.p + self.q + 1))
        return CrossProducts(self.M[np.ix_(cols, cols)], self.n, len(kept), self.q,
                             self.ZZ, None if self.ZW is None else self.ZW[:, :, cols])


def by_multipliers(indexes, by, n, indicator=None):
    """The binned pass's view of the smooths' covariates and ``by`` multipliers
    (`skmixed._kernels.binned.binned_sums`): ``(bins, smooth_by, by_num, by_fac)`` —
    the distinct bin-index arrays (C × n; smooths of one covariate, e.g. the levels of a
    ``by`` factor, share one), per smooth its row of ``bins``, of ``by_num`` and of ``by_fac``
    and its level (and whether its basis is an ``indicator``, a random effect's factor:
    per smooth a bool, default none), and the numeric and factor ``by`` columns. ``by[j]``
    is None, ``("num", values)`` or ``("fac", codes, level)``; arrays are shared by
    identity."""
    J = len(indexes)
    smooth_by = np.full((J, 5), -1, dtype=np.int64)
    smooth_by[:, 4] = 0 if indicator is None else np.asarray(indicator, dtype=np.int64)
    rows = {"bins": [], "num": [], "fac": []}
    seen = {"bins": {}, "num": {}, "fac": {}}

    def row_of(kind, array):
        if id(array) not in seen[kind]:
            seen[kind][id(array)] = len(rows[kind])
            rows[kind].append(array)
        return seen[kind][id(array)]

    for j, (idx, spec) in enumerate(zip(indexes, by)):
        smooth_by[j, 0] = row_of("bins", idx)
        if spec is not None and spec[0] == "num":
            smooth_by[j, 1] = row_of("num", spec[1])
        elif spec is not None:
            smooth_by[j, 2], smooth_by[j, 3] = row_of("fac", spec[1]), int(spec[2])

    def stack(kind, dtype):
        if not rows[kind]:
            return np.zeros((0, n), dtype=dtype)
        return np.stack([np.asarray(a, dtype=dtype) for a in rows[kind]])

    return stack("bins", np.int32), smooth_by, stack("num", float), stack("fac", np.int32)


def crossproducts_from_tables(tables, smooths):
    """`CrossProducts` from `BinTables` (after
    ``finish``) and the smooths' ``(null, range)`` bases at their bin values: the same
    products `CrossProducts.binned` forms in its pass, from the summed tables."""
    p = tables.p  # [X, y]
    p0 = p - 1
    Bc = [np.hstack([nul, rng]) for nul, rng in smooths]
    widths = [p0] + [b.shape[1] for b in Bc] + [1]
    edges = np.concatenate([[0], np.cumsum(widths)])
    E = np.zeros((edges[-1], edges[-1]))
    plain = list(range(p0)) + [edges[-1] - 1]
    E[np.ix_(plain, plain)] = tables.plain
    J = len(Bc)
    for j in range(J):
        cols = slice(edges[j + 1], edges[j + 2])
        E[cols, cols] = (Bc[j] * tables.cnt[j][:, None]).T @ Bc[j]
        E[cols, plain] = Bc[j].T @ tables.sums[j]
        E[plain, cols] = E[cols, plain].T
        for l in range(j + 1, J):
            other = slice(edges[l + 1], edges[l + 2])
            E[cols, other] = Bc[j].T @ tables.pairs[j, l] @ Bc[l]
            E[other, cols] = E[cols, other].T
    order = _column_order(p0, [nul.shape[1] for nul, _ in smooths],
                          [rng.shape[1] for _, rng in smooths], edges)
    result = CrossProducts(E[np.ix_(order, order)], tables.n,
                           p0 + sum(nul.shape[1] for nul, _ in smooths),
                           sum(rng.shape[1] for _, rng in smooths))
    if tables.grouped:
        G, r = tables.zz.shape[:2]
        ZE = np.zeros((G, r, edges[-1]))
        ZE[:, :, plain] = tables.zsum
        for j in range(J):
            ZE[:, :, edges[j + 1]:edges[j + 2]] = tables.zbin[j] @ Bc[j]
        result.ZZ = tables.zz
        result.ZW = ZE[:, :, order]
    return result


def _column_order(p0, nulls, ranges, edges):
    """Indices into ``[X, Bc_1 … Bc_J, y]`` (Bc_j = [null_j, range_j]) giving
    ``[X, null_1 … null_J, range_1 … range_J, y]``."""
    order = list(range(p0))
    for j, f in enumerate(nulls):
        order += list(range(edges[j + 1], edges[j + 1] + f))
    for j, (f, r) in enumerate(zip(nulls, ranges)):
        order += list(range(edges[j + 1] + f, edges[j + 1] + f + r))
    return order + [edges[-1] - 1]
