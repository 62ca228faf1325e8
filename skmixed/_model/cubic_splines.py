"""mgcv's cubic regression spline (``bs = "cr"``) and cyclic cubic spline (``bs = "cc"``)
bases, parametrized by the spline's values at its knots (Wood 2017, *Generalized Additive
Models*, 2nd ed., §5.3.1 and §5.3.2; Lancaster & Šalkauskas 1986, §4.7).

On knots ``x_0 < … < x_{K−1}`` with spacings ``h_j = x_{j+1} − x_j``, a natural cubic spline
with values ``β_j`` and second derivatives ``δ_j`` at the knots is, for x in
``[x_j, x_{j+1}]``,

    f(x) = a⁻ β_j + a⁺ β_{j+1} + c⁻ δ_j + c⁺ δ_{j+1},
    a⁻ = (x_{j+1} − x)/h_j,  a⁺ = (x − x_j)/h_j,
    c⁻ = ((x_{j+1} − x)³/h_j − h_j (x_{j+1} − x))/6,  c⁺ = ((x − x_j)³/h_j − h_j (x − x_j))/6,

and continuity of f' ties δ to β: ``B δ = D β`` with B tridiagonal (``B_ii = (h_{i} +
h_{i+1})/3``, ``B_{i,i+1} = h_{i+1}/6``) and D the second-difference operator
(``D_ii = 1/h_i``, ``D_{i,i+1} = −1/h_i − 1/h_{i+1}``, ``D_{i,i+2} = 1/h_{i+1}``) over the
interior knots. The penalty ``∫ f''² = β'D'B⁻¹Dβ``.

* ``cr``: δ_0 = δ_{K−1} = 0 (natural), K = k coefficients, knots at the quantiles of the
  covariate's distinct values (mgcv's ``place.knots``); beyond the end knots f is linear
  (value and slope of the end knot). The penalty's null space is the lines.
* ``cc``: f, f' and f'' periodic over ``[x_0, x_{K−1}]``: k knots, k − 1 coefficients (the
  values at all knots but the last, which equals the first), B and D cyclic. The ends of the
  cycle are the covariate's range, or given (mgcv's ``knots = list(x = c(a, b))``: the
  knots are then placed over the distinct values of ``c(a, b, x)``); x outside the cycle is
  wrapped into it. The penalty's null space is the constant, which the sum-to-zero
  constraint removes: a cyclic smooth has no fixed (unpenalized) part.
"""

import numpy as np
from scipy import linalg

from .smooth import SmoothBasis

__all__ = ["CubicRegressionSpline", "CyclicCubicSpline", "place_knots"]


def place_knots(values, k):
    """mgcv's ``place.knots``: k knots at the quantiles (R's type 7) of the sorted distinct
    ``values``, the first and last at their extremes."""
    return np.quantile(np.unique(values), np.linspace(0.0, 1.0, k))


def _cubic_pieces(x, knots):
    """Per x, the interval ``[knots[j], knots[j+1]]`` it lies in (x in the knots' span) and the
    weights ``(a⁻, a⁺, c⁻, c⁺)`` of the module docstring."""
    j = np.clip(np.searchsorted(knots, x, side="left") - 1, 0, knots.size - 2)
    h = knots[j + 1] - knots[j]
    right, left = knots[j + 1] - x, x - knots[j]
    return (j, right / h, left / h, (right ** 3 / h - h * right) / 6.0,
            (left ** 3 / h - h * left) / 6.0)


class CubicRegressionSpline(SmoothBasis):
    """mgcv's cubic regression spline (``s(z, bs = "cr", k)``) fitted to a covariate.

    Parameters
    ----------
    k : int, default=10
        Number of knots = basis functions (at least 3, as mgcv's).

    Attributes (after `fit`)
    ------------------------
    knots_ : ndarray (k,)
        At the quantiles of the covariate's distinct values (mgcv's ``place.knots``).
    second_derivatives_ : ndarray (k, k)
        F with δ = Fβ: zero first and last rows, ``B⁻¹D`` between.
    penalty_ : ndarray (k, k)
        ``D'B⁻¹D`` (∫ f''²).
    penalty_scale_ : float
        The fit's penalty is ``penalty_ / penalty_scale_`` (mgcv's scaling).
    constraint_ : ndarray (k, k - 1)
        Z, orthonormal, spanning the coefficients whose basis sums to zero over the data.
    """

    bs = "cr"
    min_k = 3

    def __init__(self, k=10):
        self.k = self._check_k(k)

    def fit(self, x, weights=None):
        """Knots, penalty and the sum-to-zero constraint from the covariate's values;
        ``weights`` (e.g. the row counts of binned values) weight the constraint's sums and
        values of weight 0 (empty bins) place no knots."""
        x, distinct = self._covariate(x, weights)
        self.knots_ = place_knots(distinct, self.k)
        h = np.diff(self.knots_)
        m = self.k - 2
        D = np.zeros((m, self.k))
        idx = np.arange(m)
        D[idx, idx] = 1.0 / h[:-1]
        D[idx, idx + 1] = -1.0 / h[:-1] - 1.0 / h[1:]
        D[idx, idx + 2] = 1.0 / h[1:]
        # B tridiagonal, in the banded form scipy's solver takes
        band = np.zeros((3, m))
        band[0, 1:] = h[1:-1] / 6.0
        band[1] = (h[:-1] + h[1:]) / 3.0
        band[2, :-1] = h[1:-1] / 6.0
        BD = linalg.solve_banded((1, 1), band, D)
        self.second_derivatives_ = np.vstack([np.zeros(self.k), BD, np.zeros(self.k)])
        S = D.T @ BD
        self.penalty_ = (S + S.T) / 2.0
        self._constrain(x, weights)
        return self

    def basis(self, x):
        """The unconstrained basis at x (n × k): f(x) per unit knot value; linear beyond the
        end knots."""
        x = np.asarray(x, dtype=float)
        knots, F = self.knots_, self.second_derivatives_
        inside = np.clip(x, knots[0], knots[-1])
        j, am, ap, cm, cp = _cubic_pieces(inside, knots)
        rows = np.arange(x.size)
        X = cm[:, None] * F[j] + cp[:, None] * F[j + 1]
        X[rows, j] += am
        X[rows, j + 1] += ap
        # beyond an end: its value plus (x − end) × the end's slope, from its interval's cubic
        h0, h1 = knots[1] - knots[0], knots[-1] - knots[-2]
        below, above = x < knots[0], x > knots[-1]
        if below.any():
            slope = -F[1] * h0 / 6.0
            slope[0] -= 1.0 / h0
            slope[1] += 1.0 / h0
            X[below] += (x[below] - knots[0])[:, None] * slope
        if above.any():
            slope = F[-2] * h1 / 6.0
            slope[-2] -= 1.0 / h1
            slope[-1] += 1.0 / h1
            X[above] += (x[above] - knots[-1])[:, None] * slope
        return X

    @property
    def domain(self):
        """The end knots: the covariate's range."""
        return float(self.knots_[0]), float(self.knots_[-1])


class CyclicCubicSpline(SmoothBasis):
    """mgcv's cyclic cubic spline (``s(z, bs = "cc", k)``) fitted to a covariate: f, f' and
    f'' agree at the two ends of the cycle.

    Parameters
    ----------
    k : int, default=10
        Number of knots (at least 4, as mgcv's); the basis has k − 1 functions.
    ends : tuple of 2 float, default=None
        The ends of the cycle ``(a, b)``, ``a < b``, covering the covariate's values (mgcv's
        ``knots = list(z = c(a, b))``, e.g. ``(0, 24)`` for the hour of the day); None: the
        covariate's range.

    Attributes (after `fit`)
    ------------------------
    knots_ : ndarray (k,)
        ``knots_[0]`` and ``knots_[-1]`` are the ends, the others at the quantiles of the
        distinct values of the covariate and the ends (mgcv's ``place.knots``).
    second_derivatives_ : ndarray (k - 1, k - 1)
        ``B⁻¹D`` (cyclic): δ = that × β.
    penalty_ : ndarray (k - 1, k - 1)
        ``D'B⁻¹D``.
    penalty_scale_ : float
        The fit's penalty is ``penalty_ / penalty_scale_`` (mgcv's scaling).
    constraint_ : ndarray (k - 1, k - 2)
        Z, orthonormal, spanning the coefficients whose basis sums to zero over the data.
    """

    bs = "cc"
    min_k = 4
    cyclic = True

    def __init__(self, k=10, ends=None):
        self.k = self._check_k(k)
        if ends is not None:
            try:
                a, b = (float(v) for v in ends)
            except (TypeError, ValueError):
                raise ValueError(f"the ends of a cyclic smooth are two numbers (a, b); got "
                                 f"{ends!r}.") from None
            if not (np.isfinite(a) and np.isfinite(b) and a < b):
                raise ValueError(f"the ends of a cyclic smooth (a, b) need a < b, both "
                                 f"finite; got {ends!r}.")
            ends = (a, b)
        self.ends = ends

    def fit(self, x, weights=None):
        """Knots, penalty and the sum-to-zero constraint from the covariate's values (as
        `CubicRegressionSpline.fit`)."""
        x, distinct = self._covariate(x, weights)
        if self.ends is not None:
            a, b = self.ends
            if distinct[0] < a or distinct[-1] > b:
                raise ValueError(f"the cycle's ends ({a:g}, {b:g}) do not cover the "
                                 f"covariate's values, from {distinct[0]:g} to "
                                 f"{distinct[-1]:g}: give ends with a <= min and b >= max.")
            distinct = np.concatenate([[a, b], distinct])
        self.knots_ = place_knots(distinct, self.k)
        h = np.diff(self.knots_)
        n = self.k - 1
        prev = np.roll(h, 1)  # h_{i−1}, cyclic
        B, D = np.zeros((n, n)), np.zeros((n, n))
        idx, nxt, bef = np.arange(n), (np.arange(n) + 1) % n, (np.arange(n) - 1) % n
        B[idx, idx] = (prev + h) / 3.0
        B[idx, nxt] = h / 6.0
        B[idx, bef] = prev / 6.0
        D[idx, idx] = -(1.0 / prev + 1.0 / h)
        D[idx, nxt] = 1.0 / h
        D[idx, bef] = 1.0 / prev
        self.second_derivatives_ = linalg.solve(B, D)
        S = D.T @ self.second_derivatives_
        self.penalty_ = (S + S.T) / 2.0
        self._constrain(x, weights)
        return self

    def basis(self, x):
        """The unconstrained basis at x (n × (k − 1)); x outside the cycle is wrapped into
        it (mgcv's ``cwrap``)."""
        x = np.asarray(x, dtype=float)
        lo, hi = self.knots_[0], self.knots_[-1]
        period = hi - lo
        x = np.where(x > hi, lo + np.mod(x - hi, period), x)
        x = np.where(x < lo, hi - np.mod(lo - x, period), x)
        j, am, ap, cm, cp = _cubic_pieces(x, self.knots_)
        n = self.k - 1
        nxt = (j + 1) % n  # the last knot is the first
        BD = self.second_derivatives_
        X = cm[:, None] * BD[j] + cp[:, None] * BD[nxt]
        rows = np.arange(x.size)
        X[rows, j] += am
        X[rows, nxt] += ap
        return X

    @property
    def domain(self):
        """The ends of the cycle."""
        return float(self.knots_[0]), float(self.knots_[-1])
