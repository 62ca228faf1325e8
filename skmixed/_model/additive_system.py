"""The columns of one additive mixed model fit — parametric X, the smooths' bases at their binned
(or unique) values, the groups and their random slopes — and the REML of a (working) response on
them: what [`skmixed.AdditiveMixed`][skmixed.AdditiveMixed] fits, in memory."""

import numpy as np

from .additive import DenseREML
from .additive_cross import CrossProducts, Indicator, SmoothBlocks

__all__ = ["AdditiveSystem", "coefficient_width", "kernel_smooths", "null_positions",
           "penalized_blocks", "multiplier"]


def null_positions(p0, null_widths):
    """Per smooth, the positions of its null-space columns among the fixed columns
    ``[X (p0 columns), null_1 … null_J]``."""
    out, start = [], p0
    for f in null_widths:
        out.append(list(range(start, start + f)))
        start += f
    return out


def coefficient_width(basis):
    """A smooth's penalized (range) coefficients: its range columns, for every level of a
    factor-smooth interaction (a basis's ``levels``)."""
    return basis["range"].shape[1] * (basis["levels"][1] if "levels" in basis else 1)


def kernel_smooths(bases):
    """The smooths as the binned pass takes them, ``(index, null, range)`` and ``by`` each:
    a factor-smooth interaction as one copy of its basis per level (zero off the level,
    mgcv's ``by`` a factor), in level order — its coefficients'."""
    smooths, by = [], []
    for b in bases:
        if "levels" in b:
            codes, n_levels = b["levels"]
            smooths += [(b["index"], b["null"], b["range"])] * n_levels
            by += [("fac", codes, level) for level in range(n_levels)]
        else:
            smooths.append((b["index"], b["null"], b["range"]))
            by.append(b.get("by"))
    return smooths, by


def penalized_blocks(bases):
    """The penalized blocks' sizes, per smooth its τ indices and per block its penalties:
    a smooth's range space is one block, with one τ (identity penalty) or, for a tensor
    product (a basis's ``penalties``), one τ per penalty; with ``select=True`` its null space
    is a second block (a basis's ``blocks``: the widths of its range columns' parts)."""
    sizes, smooth_blocks, penalties, n_tau = [], [], [], 0
    for b in bases:
        parts = b.get("blocks") or [coefficient_width(b)]
        # a tensor product's penalties are its range block's (the first); a null-space
        # block of select=True has the identity
        pens = [b.get("penalties")] + [None] * (len(parts) - 1)
        n = sum(1 if p is None else len(p) for p in pens)
        smooth_blocks.append(list(range(n_tau, n_tau + n)))
        n_tau += n
        sizes.extend(parts)
        penalties.extend(pens)
    return sizes, smooth_blocks, penalties


def multiplier(by):
    """The rows' multiplier of a smooth's basis: a numeric ``by`` variable's values, or 1 at
    a factor's level and 0 elsewhere (``by``: ``("num", values)`` or ``("fac", codes,
    level)``)."""
    if by[0] == "num":
        return np.asarray(by[1], dtype=float)
    return (np.asarray(by[1]) == by[2]).astype(float)


def _rows(basis, part):
    """A smooth's ``part`` ("null" or "range") at the rows, times its ``by`` multiplier."""
    rows = basis[part][basis["index"]]
    return rows if basis.get("by") is None else rows * multiplier(basis["by"])[:, None]


class AdditiveSystem:
    """The columns of one fit: parametric X, the smooths' binned (or unique-value) bases,
    the groups; builds the REML of a (working) response and its linear predictor.

    ``codes``/``n_groups``/``slopes``: the factor whose random effects the REML eliminates
    group by group (`DenseREML`'s groups; ``unstructured``: correlated). ``extras``: the
    random-effect terms of further factors (crossed or nested: mgcv's ``s(g2, bs = "re")``
    and ``s(g2, x, bs = "re")``),
    each a penalized block of its own after the smooths' (identity penalty, one τ) — a
    dict of ``codes`` (int32, each row's level), ``G`` (levels) and ``mult`` (None for
    the intercept, else the rows' slope values). Their columns are indicators, never
    formed: the cross-products come from the binned pass (`CrossProducts.binned`,
    exact when the smooths' "bins" are their distinct values)."""

    def __init__(self, X, bases, codes, n_groups, discrete, slopes=None, extras=(),
                 unstructured=False):
        self.X, self.bases, self.codes, self.G = X, bases, codes, n_groups
        self.slopes, self.unstructured = slopes, unstructured
        self.discrete = discrete
        self.extras = list(extras)
        self._blocks = None
        self.null_widths = [b["null"].shape[1] for b in bases]
        self.range_widths = [coefficient_width(b) for b in bases]
        self.fixed_of = null_positions(X.shape[1], self.null_widths)
        self.sizes, self.smooth_blocks, self.penalties = penalized_blocks(bases)
        self.sizes += [e["G"] for e in self.extras]
        self.penalties += [None] * len(self.extras)

    def reml(self, y, w):
        groups = self.codes if self.G else None
        # further factors and factor-smooth interactions take the binned pass (exact at
        # the distinct values): their columns are never formed
        if self.discrete or self.extras or any("levels" in b for b in self.bases):
            smooths, by = kernel_smooths(self.bases)
            smooths += [(e["codes"], np.zeros((e["G"], 0)), Indicator(e["G"]))
                        for e in self.extras]
            by += [None if e["mult"] is None else ("num", e["mult"]) for e in self.extras]
            cross = CrossProducts.binned(self.X, y, smooths, w=w, groups=groups,
                                         n_groups=self.G or None, slopes=self.slopes, by=by)
            return DenseREML.from_crossproducts(cross, self.sizes, self.fixed_of,
                                                self.smooth_blocks, self.penalties,
                                                self.unstructured)
        return DenseREML(self._dense_blocks(), y, w, groups=groups, n_groups=self.G or None,
                         slopes=self.slopes, unstructured=self.unstructured)

    def _dense_blocks(self):
        """The exact fit's n-row columns, formed once (every PIRLS step of a binomial or
        Poisson fit builds a new working model from them)."""
        if self._blocks is None:
            fixed = np.hstack([self.X] + [_rows(b, "null") for b in self.bases])
            random = (np.hstack([_rows(b, "range") for b in self.bases]) if self.bases
                      else np.empty((self.X.shape[0], 0)))
            self._blocks = SmoothBlocks(fixed, random, self.sizes, self.fixed_of,
                                        self.smooth_blocks, self.penalties)
        return self._blocks

    def linear_predictor(self, fit):
        p0 = self.X.shape[1]
        eta = self.X @ fit.beta[:p0]
        cb, cr = p0, 0
        for b, f, r in zip(self.bases, self.null_widths, self.range_widths):
            if "levels" in b:  # per level its curve, at the rows of the level
                codes, n_levels = b["levels"]
                curves = b["range"] @ fit.b[cr:cr + r].reshape(n_levels, -1).T
                eta = eta + curves[b["index"], codes]
                cb, cr = cb + f, cr + r
                continue
            values = (b["null"] @ fit.beta[cb:cb + f] + b["range"] @ fit.b[cr:cr + r])[
                b["index"]]
            eta = eta + (values if b.get("by") is None else values * multiplier(b["by"]))
            cb, cr = cb + f, cr + r
        for e in self.extras:
            values = fit.b[cr:cr + e["G"]][e["codes"]]
            eta = eta + (values if e["mult"] is None else values * e["mult"])
            cr += e["G"]
        if self.G:
            eta = eta + fit.group[self.codes, 0]
            for a in range(1, fit.group.shape[1]):
                eta = eta + self.slopes[:, a - 1] * fit.group[self.codes, a]
        return eta
