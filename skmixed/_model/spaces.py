"""The parameter spaces the optimizers of `optimize` search: where a search starts,
its bounds, and the canonical form of a point.

A space has ``start()``, ``lower()``, ``upper()`` (arrays of the parameter's length) and
``canonical(x)``. θ of a random-effect term is searched without bounds: the criterion
depends on θ only through ``T T'``, which a sign flip of a column of T leaves unchanged, so
a zero variance is an interior point (a bounded search stalls there: the gradient of a
diagonal element at 0 vanishes); ``canonical`` flips the signs back (`canonical`)
and ``lower`` gives lme4's bounds (0 for a diagonal element), for the record and for the
searches that do use bounds (bounded Brent; L-BFGS-B on the several-factor GLMM's nAGQ = 0
deviance, which has no gradient).
"""

import numpy as np

__all__ = ["ThetaSpace", "ParamSpace", "BoxSpace"]


class ThetaSpace:
    """θ of one random-effect term or of several, concatenated: the terms' starts (or
    ``start``), lme4's bounds, the sign canonicalization term by term."""

    def __init__(self, terms, start=None):
        self.terms = [terms] if hasattr(terms, "n_theta") else list(terms)
        self.edges = np.cumsum([0] + [t.n_theta for t in self.terms])
        self._start = None if start is None else np.asarray(start, dtype=float)

    def start(self):
        if self._start is not None:
            return self._start.copy()
        return np.concatenate([t.theta_start() for t in self.terms])

    def lower(self):
        return np.concatenate([t.theta_lower() for t in self.terms])

    def upper(self):
        return np.full(self.edges[-1], np.inf)

    def canonical(self, x):
        return np.concatenate([t.canonical(x[a:b]) for t, a, b in
                               zip(self.terms, self.edges[:-1], self.edges[1:])])


class ParamSpace:
    """x = (``before``, θ, ``after``): θ from a `ThetaSpace`, the parameters before
    and after it (a GLMM's β; Gamma's ρ, the negative binomial's log k; the several-factor
    GLMM's (β, log k) after θ) unbounded and left as they are."""

    def __init__(self, theta, before=(), after=()):
        self.theta = theta
        self.before = np.asarray(before, dtype=float)
        self.after = np.asarray(after, dtype=float)

    def _around(self, inner, fill):
        return np.concatenate([np.full(self.before.size, fill), inner,
                               np.full(self.after.size, fill)])

    def start(self):
        return np.concatenate([self.before, self.theta.start(), self.after])

    def lower(self):
        return self._around(self.theta.lower(), -np.inf)

    def upper(self):
        return self._around(self.theta.upper(), np.inf)

    def canonical(self, x):
        a, b = self.before.size, self.before.size + self.theta.edges[-1]
        return np.concatenate([x[:a], self.theta.canonical(x[a:b]), x[b:]])


class BoxSpace:
    """A box ``lower ≤ x ≤ upper`` (the additive model's log τ): the canonical form of x is
    its projection on the box; ``start`` is clipped into it."""

    def __init__(self, start, lower, upper):
        start = np.asarray(start, dtype=float)
        self._lower = np.broadcast_to(np.asarray(lower, dtype=float), start.shape).copy()
        self._upper = np.broadcast_to(np.asarray(upper, dtype=float), start.shape).copy()
        self._start = np.clip(start, self._lower, self._upper)

    def start(self):
        return self._start.copy()

    def lower(self):
        return self._lower.copy()

    def upper(self):
        return self._upper.copy()

    def canonical(self, x):
        return np.clip(x, self._lower, self._upper)
