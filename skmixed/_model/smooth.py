"""Penalized regression splines for additive mixed models: what every smooth basis shares
(`SmoothBasis`: the sum-to-zero constraint, the mixed-model split) and mgcv's "ps" basis.

A smooth ``s(z)`` is ``B(z) c`` with B the B-spline basis of `PSpline` and the
wiggliness penalty ``λ c'Sc``. ``S = D'D`` for the ``m[1]``-th order differences of the
coefficients (Eilers & Marx's P-splines, as mgcv's ``bs = "ps"``). Identifiability with an
intercept: the basis is constrained to sum to zero over the fitting data, ``Σ_rows B c = 0``,
by reparametrizing ``c = Z c̃`` with Z an orthonormal basis of the constraint's null space
(mgcv absorbs the same constraint by a Householder QR; any orthonormal Z gives the same fit).

A smooth is a random effect in disguise (`PSpline.mixed_parts`): the eigenvectors of
the constrained penalty split the basis into an unpenalized null space (fixed-effect columns;
for a 2nd-order difference penalty the linear trend) and a penalized range space whose
coefficients, rescaled by the penalty's eigenvalues, are i.i.d. with variance σ²/λ.
"""

import numpy as np
from scipy import linalg
from scipy.interpolate import BSpline

__all__ = ["SmoothBasis", "PSpline", "smoothcon_scale", "drop_constraint"]


def drop_constraint(basis):
    """The fitted ``basis`` without its sum-to-zero constraint (Z = I), as mgcv's smoothCon
    leaves a smooth multiplied by a non-constant numeric ``by`` variable: the product is
    not confounded with the intercept, and its penalty's null space keeps the constant."""
    basis.constraint_ = np.eye(basis.constraint_.shape[0])
    basis.centred_ = False
    return basis


def smoothcon_scale(penalty, basis):
    """mgcv's ``smoothCon`` penalty scale ``‖S‖₁ / ‖X‖∞²`` (S the unconstrained penalty, X
    the basis at the data): the penalty divided by it has the size of the basis."""
    return float(np.abs(penalty).sum(axis=0).max() / np.abs(basis).sum(axis=1).max() ** 2)


class SmoothBasis:
    """What every smooth basis shares once its subclass's ``fit`` has set its knots and
    ``penalty_`` (k × k, of the unconstrained coefficients) and called `_constrain`: the
    sum-to-zero constraint, the constrained design and penalty and the mixed-model split.
    A subclass defines ``bs`` (mgcv's name), ``min_k``, ``fit(x, weights)``, ``basis(x)``
    (the unconstrained basis, n × k_coef) and ``domain`` (the covariate interval the basis
    was placed over, for plots)."""

    bs = None
    min_k = 3
    #: whether the penalty is rescaled to the size of the basis as mgcv's smoothCon does
    #: (``scale.penalty = TRUE``): S / (‖S‖₁ / ‖X‖∞²), X the basis at the data. Then λ
    #: (1/τ²) is mgcv's ``sp``, and the search over log τ starts at a λ of the basis's
    #: scale (a cubic spline's ∫f''² is of order (k/range)³: unscaled, a binomial fit from
    #: λ = 1 stopped at a local optimum). The P-spline keeps its unscaled difference
    #: penalty, whose size is already that of its basis (and whose λ skmixed reported first).
    scale_penalty = True

    def _check_k(self, k):
        if not (isinstance(k, (int, np.integer)) and k >= self.min_k):
            raise ValueError(f"k={k!r} is too small for a bs = {self.bs!r} smooth: k must be "
                             f"an integer >= {self.min_k}.")
        return int(k)

    def _covariate(self, x, weights):
        """x checked (finite, 1-D, not constant) and its distinct values with positive
        weight (the data's; the occupied bins of a binned covariate), at least k."""
        x = np.asarray(x, dtype=float)
        if x.ndim != 1 or x.size == 0 or not np.all(np.isfinite(x)):
            raise ValueError("a smooth's covariate must be a non-empty 1-D array of finite "
                             "values.")
        lo, hi = float(x.min()), float(x.max())
        if not hi > lo:
            raise ValueError(f"a smooth of a constant covariate (every value is {lo:g}) "
                             "has no shape to estimate.")
        if hi - lo <= 1e-9 * max(abs(lo), abs(hi)):
            raise ValueError(f"a smooth of a nearly constant covariate (values from {lo!r} to "
                             f"{hi!r}) has no shape to estimate: rescale or drop it.")
        distinct = np.unique(x if weights is None else x[np.asarray(weights) > 0])
        if distinct.size < self.k:
            raise ValueError(f"k={self.k} basis functions but the covariate has only "
                             f"{distinct.size} distinct values: use k <= {distinct.size}.")
        return x, distinct

    def _constrain(self, x, weights):
        """Σ_rows B(x) c = 0 (rows weighted by ``weights``): Z spans the null space of the
        column sums (one Householder QR); and the penalty's scale (`scale_penalty`) from
        the basis at the values of positive weight."""
        B = self.basis(x)
        sums = B.sum(axis=0) if weights is None else np.asarray(weights, dtype=float) @ B
        q, _ = linalg.qr(sums[:, None], mode="full")
        self.constraint_ = q[:, 1:]
        self.centred_ = True
        self.penalty_scale_ = 1.0
        if self.scale_penalty:
            used = B if weights is None else B[np.asarray(weights) > 0]
            self.penalty_scale_ = smoothcon_scale(self.penalty_, used)

    def design(self, x):
        """The constrained basis ``B(x) Z`` (n × (k_coef − 1))."""
        return self.basis(x) @ self.constraint_

    def constrained_penalty(self):
        """``Z'SZ / penalty_scale_``, the penalty of the constrained coefficients."""
        Z = self.constraint_
        return Z.T @ self.penalty_ @ Z / self.penalty_scale_

    def mixed_parts(self, tol=1e-10):
        """``(F, R, d)``: the constrained basis split as a mixed model, ``design(x) c̃ =
        design(x) (F β + R b)`` with F the penalty's null space (unpenalized, fixed; it may
        have no column, e.g. a cyclic smooth's) and ``R = U_+ diag(d)^{-1/2}`` its range
        space scaled so that ``c̃' constrained_penalty() c̃ = b'b``."""
        S = self.constrained_penalty()
        eigval, eigvec = linalg.eigh(S)
        positive = eigval > tol * eigval.max()
        d = eigval[positive]
        return eigvec[:, ~positive], eigvec[:, positive] / np.sqrt(d), d


class PSpline(SmoothBasis):
    """mgcv's P-spline basis (``s(z, bs = "ps", k, m)``) fitted to a covariate.

    Parameters
    ----------
    k : int, default=10
        Number of basis functions (mgcv's basis dimension).
    m : tuple of 2 int, default=(2, 2)
        ``m[0] + 2`` is the B-spline order (2: cubic) and ``m[1]`` the order of the
        coefficient differences penalized, as mgcv's ``m``.

    Attributes (after `fit`)
    ------------------------------
    knots_ : ndarray (k + m[0] + 2,)
        Equally spaced over the covariate's range widened by 0.1 % each side, with
        ``m[0] + 1`` more on each side (mgcv's layout).
    penalty_ : ndarray (k, k)
        ``D'D`` of the unconstrained coefficients.
    constraint_ : ndarray (k, k - 1)
        Z, orthonormal, spanning the coefficients whose basis sums to zero over the data.
    """

    bs = "ps"
    min_k = 4
    scale_penalty = False

    def __init__(self, k=10, m=(2, 2)):
        m = tuple(int(v) for v in m)
        if len(m) != 2 or m[0] < 0 or m[1] < 0:
            raise ValueError(f"m={m!r}: two non-negative integers (B-spline order - 2, "
                             "difference order), as mgcv's m.")
        if int(k) - m[0] <= 1:
            raise ValueError(f"k={k} is too small for B-splines of order {m[0] + 2}: "
                             f"k must exceed {m[0] + 1}.")
        if m[1] >= int(k):
            raise ValueError(f"a difference penalty of order {m[1]} needs k > {m[1]}; "
                             f"got k={k}.")
        self.k = int(k)
        self.m = m

    @property
    def degree(self):
        return self.m[0] + 1

    def fit(self, x, weights=None):
        """Knots, penalty and the sum-to-zero constraint from the covariate's values;
        ``weights`` (e.g. the row counts of binned values) weight the constraint's sums."""
        x, _ = self._covariate(x, weights)
        lo, hi = float(x.min()), float(x.max())
        n_interior = self.k - self.m[0]
        width = hi - lo
        lo, hi = lo - 0.001 * width, hi + 0.001 * width
        step = (hi - lo) / (n_interior - 1)
        outer = self.m[0] + 1
        self.knots_ = np.linspace(lo - step * outer, hi + step * outer,
                                  n_interior + 2 * outer)
        D = np.diff(np.eye(self.k), n=self.m[1], axis=0)
        self.penalty_ = D.T @ D
        self._constrain(x, weights)
        return self

    def basis(self, x):
        """The unconstrained B-spline basis at x (n × k); values beyond the outer knots are
        extrapolated from the end polynomials."""
        x = np.asarray(x, dtype=float)
        return BSpline.design_matrix(x, self.knots_, self.degree, extrapolate=True).toarray()

    @property
    def domain(self):
        """The covariate's range widened by 0.1 % each side (the inner knots' span)."""
        outer = self.m[0] + 1
        return float(self.knots_[outer]), float(self.knots_[-outer - 1])
