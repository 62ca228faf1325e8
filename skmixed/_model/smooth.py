"""Penalized regression splines for additive mixed models: mgcv's "ps" basis.

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

__all__ = ["PSpline"]


class PSpline:
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
        n_distinct = np.unique(x if weights is None else x[np.asarray(weights) > 0]).size
        if n_distinct < self.k:
            raise ValueError(f"k={self.k} basis functions but the covariate has only "
                             f"{n_distinct} distinct values: use k <= {n_distinct}.")
        n_interior = self.k - self.m[0]
        width = hi - lo
        lo, hi = lo - 0.001 * width, hi + 0.001 * width
        step = (hi - lo) / (n_interior - 1)
        outer = self.m[0] + 1
        self.knots_ = np.linspace(lo - step * outer, hi + step * outer,
                                  n_interior + 2 * outer)
        D = np.diff(np.eye(self.k), n=self.m[1], axis=0)
        self.penalty_ = D.T @ D
        # Σ_rows B(x) c = 0: Z spans the null space of the column sums (one Householder QR)
        B = self.basis(x)
        sums = B.sum(axis=0) if weights is None else np.asarray(weights, dtype=float) @ B
        q, _ = linalg.qr(sums[:, None], mode="full")
        self.constraint_ = q[:, 1:]
        return self

    def basis(self, x):
        """The unconstrained B-spline basis at x (n × k); values beyond the outer knots are
        extrapolated from the end polynomials."""
        x = np.asarray(x, dtype=float)
        return BSpline.design_matrix(x, self.knots_, self.degree, extrapolate=True).toarray()

    def design(self, x):
        """The constrained basis ``B(x) Z`` (n × (k − 1))."""
        return self.basis(x) @ self.constraint_

    def constrained_penalty(self):
        """``Z'SZ``, the penalty of the constrained coefficients."""
        Z = self.constraint_
        return Z.T @ self.penalty_ @ Z

    def mixed_parts(self, tol=1e-10):
        """``(F, R, d)``: the constrained basis split as a mixed model, ``design(x) c̃ =
        design(x) (F β + R b)`` with F the penalty's null space (unpenalized, fixed) and
        ``R = U_+ diag(d)^{-1/2}`` its range space scaled so that ``c̃'(Z'SZ)c̃ = b'b``."""
        S = self.constrained_penalty()
        eigval, eigvec = linalg.eigh(S)
        positive = eigval > tol * eigval.max()
        d = eigval[positive]
        return eigvec[:, ~positive], eigvec[:, positive] / np.sqrt(d), d
