"""Thin-plate regression splines, mgcv's default smooth: ``s(x)``, ``s(x, z)`` (``bs = "tp"``).

Wood (2003), "Thin plate regression splines", JRSS B 65, 95–114. The thin-plate spline of
d covariates with penalty order m (2m > d) minimizes ``‖y − f‖² + λ J_md(f)``, J the
integral of the squared m-th derivatives; it is ``f(x) = Σ_i δ_i η(‖x − x_i‖) + Σ_j α_j
φ_j(x)`` over the knots x_i with ``T'δ = 0`` (``T_ij = φ_j(x_i)``, the M = C(m + d − 1, d)
monomials of degree < m spanning J's null space) and ``J(f) = δ'Eδ``, ``E_ij =
η(‖x_i − x_j‖)``, where

    η(r) = (−1)^{m+1+d/2} / (2^{2m−1} π^{d/2} (m−1)! (m−d/2)!) r^{2m−d} log r   (d even)
    η(r) = Γ(d/2 − m) / (2^{2m} π^{d/2} (m−1)!) r^{2m−d}                      (d odd).

The regression spline of basis dimension k truncates δ to E's leading directions: with
``E = U D U'`` and ``U_k`` the eigenvectors of the k eigenvalues largest in magnitude,
``δ = U_k Z δ̃`` with Z (k × (k − M)) an orthonormal basis of ``{δ̃ : T'U_k δ̃ = 0}``. The
basis at x is ``[η(‖x − x_i‖)_i U_k Z, φ(x)]`` (k columns) with penalty ``Z'D_k Z`` on the
first k − M coefficients and none on the polynomials (with exactly k knots nothing is
truncated: ``U_k = I``, penalty ``Z'EZ``).

As mgcv (``smooth.construct.tp.smooth.spec``, C ``tprs_setup``): the covariates are centred
by their means; the knots are the distinct covariate points, or — with more than
``max_knots`` (2,000) of them — ``max_knots`` of them drawn by R's ``set.seed(1);
sample(nu, max_knots)`` (`r_sample`) from the distinct points in mgcv's order
(``uniquecombs(ordered = TRUE)``: ascending for one covariate, and for several the C-locale
order of the strings ``paste0(x1, "*", x2, …)``, R's 15-significant-digit numbers); each
column is scaled to root mean square 1 over the data. Fitted values depend on the knots
but not on the centring, the scaling or the eigenvectors' signs, only on the span of the
basis and the penalty (J itself, so λ means what mgcv's unscaled ``S`` means). mgcv's
leading eigenvectors come from its own Lanczos iteration (tolerance ε^0.7), ours from ARPACK
(or LAPACK for few knots), so the two bases span the same space to about 1e-10.

Identifiability and the mixed-model split as `PSpline`: the basis is constrained to sum to
zero over the data, then the penalty's null space (the non-constant polynomials) gives fixed
columns and its range space i.i.d. random effects.
"""

import math
from itertools import product

import numpy as np
from scipy import linalg
from scipy.sparse.linalg import ArpackError, ArpackNoConvergence, eigsh

from .r_sample import r_sample
from .smooth import smoothcon_scale

__all__ = ["ThinPlateSmooth", "ThinPlate"]

_DEFAULT_FREE = (8, 27, 100)  # mgcv's default k is M + this, by d = 1, 2, ≥ 3
_DENSE_EIGEN = 400  # knots up to which the full LAPACK eigendecomposition is used
_CHUNK = 1 << 21  # radial values evaluated at once by `ThinPlate.basis`


def default_order(d):
    """mgcv's default penalty order: the smallest m with 2m > d + 1."""
    return (d + 1) // 2 + 1


def default_dimension(d, m=None):
    """mgcv's default k of a thin-plate smooth of d covariates with penalty order m (None:
    `default_order`): M + 8 (d = 1: 10), M + 27 (d = 2: 30), M + 100 (d ≥ 3)."""
    m = default_order(d) if m is None else m
    return null_space_dimension(d, m) + _DEFAULT_FREE[min(d, 3) - 1]


def null_space_dimension(d, m):
    """M = C(m + d − 1, d), the number of monomials of degree < m in d variables."""
    return math.comb(m + d - 1, d)


def polynomial_powers(d, m):
    """The exponents (M × d) of the monomials of total degree < m, by degree."""
    powers = [p for p in product(range(m), repeat=d) if sum(p) < m]
    return np.array(sorted(powers, key=lambda p: (sum(p), p[::-1])), dtype=int).reshape(-1, d)


def eta_constant(d, m):
    """The constant of η (module docstring) that makes δ'Eδ the penalty J_md."""
    if d % 2 == 0:
        sign = -1.0 if (m + 1 + d // 2) % 2 else 1.0
        return sign / (2.0 ** (2 * m - 1) * math.pi ** (d / 2) * math.factorial(m - 1)
                       * math.factorial(m - d // 2))
    return math.gamma(d / 2 - m) / (2.0 ** (2 * m) * math.pi ** (d / 2)
                                    * math.factorial(m - 1))


def radial(x, knots, d, m):
    """η(‖x_a − knot_i‖) (n × n_knots); η(0) = 0. For odd d, ``c r^(2m − d)`` by repeated
    products in place (a float power per element costs several times more: the binned fit's
    1000 × 1000 evaluations)."""
    c = eta_constant(d, m)
    if d == 1:
        r = np.abs(x[:, 0, None] - knots[None, :, 0])
    else:
        r2 = np.zeros((x.shape[0], knots.shape[0]))
        for j in range(d):
            r2 += (x[:, j, None] - knots[None, :, j]) ** 2
        if d % 2 == 0:
            with np.errstate(divide="ignore", invalid="ignore"):
                out = c * 0.5 * np.log(r2) * r2 ** (m - d // 2)
            out[r2 <= 0.0] = 0.0
            return out
        r = np.sqrt(r2, out=r2)
    out = r * c
    for _ in range(2 * m - d - 1):
        out *= r
    return out


def r_mean(v):
    """R's ``mean()`` of doubles: a long-double running sum divided by n, corrected by the
    mean of the residuals, rounded to double (so that centred values are R's bit for bit)."""
    v = np.asarray(v, dtype=np.longdouble)
    s = np.cumsum(v)[-1] / v.size
    s += np.cumsum(v - s)[-1] / v.size
    return float(s)


def r_character(v):
    """R's ``as.character()`` of a double (R 4.2): 15 significant digits, trailing zeros
    dropped, fixed notation unless scientific is strictly narrower (``scipen = 0``)."""
    if v == 0.0:
        return "0"
    mantissa, exponent = f"{v:.14e}".split("e")
    digits = mantissa.lstrip("-").replace(".", "").rstrip("0") or "0"
    nsig, power = len(digits), int(exponent)
    neg = int(v < 0)
    decimals = max(0, nsig - power - 1)
    fixed_width = neg + max(1, power + 1) + decimals + (decimals > 0)
    sci_width = neg + nsig + (nsig > 1) + 4 + (abs(power) >= 100)
    if fixed_width <= sci_width:
        return f"{v:.{decimals}f}"
    return f"{v:.{nsig - 1}e}"


def mgcv_unique_points(x):
    """The distinct rows of x in the order of mgcv's ``uniquecombs(x, ordered = TRUE)``: one
    column sorted ascending; several deduplicated (first occurrence) and sorted (C locale)
    by R's strings ``paste0(x1, "*", x2, …)``, which merge rows equal to 15 digits."""
    if x.shape[1] == 1:
        return np.unique(x[:, 0])[:, None]
    rows, first_row = np.unique(x, axis=0, return_index=True)
    first = {}
    for i in np.argsort(first_row, kind="stable"):
        first.setdefault("*".join(r_character(v) for v in rows[i]), i)
    return rows[[first[key] for key in sorted(first)]]


def leading_eigenpairs(E, k):
    """The k eigenvalues of symmetric E largest in magnitude and their eigenvectors."""
    n = E.shape[0]
    if n > _DENSE_EIGEN:
        start = np.random.default_rng(0).standard_normal(n)  # deterministic, generic start
        try:
            return eigsh(E, k=k, which="LM", tol=0.0, v0=start)
        except (ArpackNoConvergence, ArpackError):
            pass
    values, vectors = linalg.eigh(E)
    keep = np.argsort(-np.abs(values), kind="stable")[:k]
    return values[keep], vectors[:, keep]


class ThinPlate:
    """mgcv's thin-plate regression spline (``s(x, bs = "tp", k, m)``, isotropic in d
    covariates) fitted to the covariates.

    Parameters
    ----------
    k : int or None, default=None
        Basis dimension; None is mgcv's default ``M + 8`` (d = 1: 10), ``M + 27`` (d = 2:
        30), ``M + 100`` (d ≥ 3), M the penalty's null-space dimension. At least M + 1.
    m : int or None, default=None
        Penalty order (derivatives penalized); None is mgcv's default, the smallest m with
        2m > d + 1 (2 for d = 1, 2). Must satisfy 2m > d.
    max_knots : int, default=2000
        mgcv's ``xt$max.knots``: with more distinct covariate points, the knots are this many
        of them drawn as mgcv draws them.
    seed : int, default=1
        mgcv's ``xt$seed``, the R seed of that draw.

    Where mgcv would warn and raise k to M + 1, or silently use the default m when
    2m ≤ d, this raises a ValueError. Not reproduced: ``m = c(m, 0)`` (null space dropped),
    ``bs = "ts"`` (shrinkage), user-supplied knots and ``by`` variables.

    Attributes (after `fit`)
    ------------------------
    d_, m_, k_ : int
        The number of covariates, the penalty order and the basis dimension used.
    shift_ : ndarray (d,)
        The covariates' means, subtracted before anything else.
    knots_ : ndarray (n_knots, d)
        The centred knots (the distinct points, or the drawn subset).
    radial_ : ndarray (n_knots, k − M)
        ``U_k Z``, mapping the penalized coefficients to the knots' η weights.
    powers_ : ndarray (M, d)
        The null-space monomials' exponents.
    scale_ : ndarray (k,)
        The columns' root mean squares over the data, divided out.
    penalty_ : ndarray (k, k)
        The penalty of the (scaled) unconstrained coefficients.
    constraint_ : ndarray (k, k − 1)
        Z, orthonormal, spanning the coefficients whose basis sums to zero over the data.
    """

    def __init__(self, k=None, m=None, max_knots=2000, seed=1):
        if k is not None and int(k) < 2:
            raise ValueError(f"k={k}: a thin-plate basis needs k >= 2.")
        if m is not None and int(m) < 1:
            raise ValueError(f"m={m}: the penalty order must be a positive integer.")
        if int(max_knots) < 1:
            raise ValueError(f"max_knots={max_knots} must be a positive integer.")
        self.k = None if k is None else int(k)
        self.m = None if m is None else int(m)
        self.max_knots = int(max_knots)
        self.seed = int(seed)

    def fit(self, x, weights=None, centre_points=False):
        """Knots, basis and penalty from the covariates ``x`` (n,) or (n × d), one row per
        observation or per distinct point; ``weights`` (e.g. the rows' counts at distinct
        points) weight the sum-to-zero constraint, the centring and the column scaling (the
        last two do not change the fit); points of weight 0 are not knots.
        ``centre_points``: centre by the unweighted mean of the given points, as
        ``bam(discrete = TRUE)`` does for its binned points (with more than ``max_knots``
        points the centring orders them for mgcv's draw of the knots).

        The knots are mgcv's whether x holds the rows or the distinct points, with one
        exception: for d ≥ 2 and more than ``max_knots`` distinct points, mgcv orders them
        by strings of the values centred by R's ``mean()`` of the rows, which only rows
        (``weights=None``) reproduce bit for bit; a weighted mean may differ in the last
        bit and, rarely, move a point in that order and so change the draw."""
        x = self._points(x)
        n, d = x.shape
        w = None if weights is None else np.asarray(weights, dtype=float)
        if w is not None and (w.shape != (n,) or np.any(w < 0) or not w.sum() > 0):
            raise ValueError(f"weights must be {n} non-negative values, not all 0.")
        self.d_ = d
        self.m_ = default_order(d) if self.m is None else self.m
        if 2 * self.m_ <= d:
            raise ValueError(f"m={self.m_}: a thin-plate spline of {d} covariates needs a "
                             f"penalty order m > {d / 2:g}.")
        M = null_space_dimension(d, self.m_)
        k = default_dimension(d, self.m_) if self.k is None else self.k
        if k < M + 1:
            raise ValueError(f"k={k} is too small for a thin-plate spline of order m={self.m_} "
                             f"in {d} covariate(s): its {M} polynomials need k >= {M + 1}.")
        self.k_ = k
        self.shift_ = (np.array([r_mean(c) for c in x.T]) if w is None or centre_points
                       else np.average(x, axis=0, weights=w))
        centred = x - self.shift_
        active = centred if w is None else centred[w > 0]
        distinct = np.unique(active, axis=0)
        if distinct.shape[0] < k:
            what = "distinct values" if d == 1 else "distinct points"
            raise ValueError(f"k={k} basis functions but the covariate{'s' * (d > 1)} "
                             f"{'has' if d == 1 else 'have'} only {distinct.shape[0]} "
                             f"{what}: use k <= {distinct.shape[0]}.")
        points = distinct
        if distinct.shape[0] > self.max_knots:  # mgcv's draw, from its ordering of the points
            points = mgcv_unique_points(active)
            if points.shape[0] > self.max_knots:
                points = points[r_sample(points.shape[0], self.max_knots, self.seed) - 1]
        self.knots_ = points
        self.powers_ = polynomial_powers(d, self.m_)
        self.radial_, penalty = self._truncated_radial(k, M)
        raw = self._raw_basis(centred)
        sq = raw ** 2
        self.scale_ = np.sqrt(sq.mean(axis=0) if w is None else w @ sq / w.sum())
        self.penalty_ = penalty / np.outer(self.scale_, self.scale_)
        B = raw / self.scale_
        sums = B.sum(axis=0) if w is None else w @ B
        q, _ = linalg.qr(sums[:, None], mode="full")
        self.constraint_ = q[:, 1:]
        self.centred_ = True
        return self

    @staticmethod
    def _points(x, d=None):
        """x as an n × d array of finite values (d, when given, the fitted dimension)."""
        x = np.asarray(x, dtype=float)
        if x.ndim == 1:
            x = x[:, None]
        if x.ndim != 2 or x.size == 0 or not np.all(np.isfinite(x)):
            raise ValueError("a thin-plate smooth's covariates must be a non-empty 1-D array "
                             "or n × d array of finite values.")
        if d is not None and x.shape[1] != d:
            raise ValueError(f"the smooth was fitted to {d} covariate(s), not {x.shape[1]}.")
        return x

    def _truncated_radial(self, k, M):
        """``(U_k Z, penalty)`` from E over the knots (unscaled columns)."""
        knots = self.knots_
        E = radial(knots, knots, self.d_, self.m_)
        T = self._polynomials(knots)
        if knots.shape[0] == k:  # as many knots as basis functions: no truncation
            U, values = np.eye(k), None
        else:
            values, U = leading_eigenpairs(E, k)
            order = np.argsort(-np.abs(values), kind="stable")
            values, U = values[order], U[:, order]
        # Z: orthonormal basis of {δ̃ : T'U δ̃ = 0}, the complement of range(U'T)
        q, _ = linalg.qr(U.T @ T, mode="full")
        Z = q[:, M:]
        # Z'(U'EU)Z: U'EU is E itself without truncation (U = I), diag(values) with it
        inner = Z.T @ (E @ Z if values is None else values[:, None] * Z)
        S = np.zeros((k, k))
        S[:k - M, :k - M] = 0.5 * (inner + inner.T)
        return U @ Z, S

    def _polynomials(self, centred):
        return np.prod(centred[:, None, :] ** self.powers_[None, :, :], axis=2)

    def _raw_basis(self, centred):
        """``[η(‖x − knots‖) U_k Z, φ(x)]`` at centred points, in chunks of rows so that
        n × n_knots is never held."""
        width = self.radial_.shape[1]
        out = np.empty((centred.shape[0], width + self.powers_.shape[0]))
        step = max(1, _CHUNK // self.knots_.shape[0])
        for a in range(0, centred.shape[0], step):
            part = centred[a:a + step]
            out[a:a + step, :width] = radial(part, self.knots_, self.d_, self.m_) @ self.radial_
            out[a:a + step, width:] = self._polynomials(part)
        return out

    def basis(self, x):
        """The unconstrained basis at x (n × k): ``[η(‖x − knots‖) U_k Z, φ(x)]`` (centred
        x), columns divided by ``scale_``."""
        return self._raw_basis(self._points(x, self.d_) - self.shift_) / self.scale_

    def design(self, x):
        """The constrained basis ``basis(x) Z`` (n × (k − 1))."""
        return self.basis(x) @ self.constraint_

    def constrained_penalty(self):
        """``Z'SZ``, the penalty of the constrained coefficients."""
        Z = self.constraint_
        return Z.T @ self.penalty_ @ Z

    def mixed_parts(self):
        """``(F, R, d)`` as `PSpline.mixed_parts`: ``design(x) c̃ = design(x) (F β + R b)``
        with F the constrained penalty's null space — its M − 1 smallest eigenvalues' vectors,
        the non-constant polynomials (the constant is constrained away; all M polynomials
        without the constraint, `skmixed._model.smooth.drop_constraint`) — unpenalized
        (fixed), and ``R = U_+ diag(d)^{-1/2}`` the range space, scaled so that the penalty
        is ``b'b``. The null space's size is known, so no tolerance splits the spectrum."""
        eigval, eigvec = linalg.eigh(self.constrained_penalty())
        n_null = self.powers_.shape[0] - int(self.centred_)
        d = eigval[n_null:]
        if not d[0] > 1e3 * np.finfo(float).eps * d[-1]:
            raise ValueError(f"the penalty of the thin-plate smooth (k={self.k_}) is "
                             "numerically singular beyond the polynomials: use a smaller k.")
        return eigvec[:, :n_null], eigvec[:, n_null:] / np.sqrt(d), d


class ThinPlateSmooth(ThinPlate):
    """``s(x, bs = "tp", k)`` (or ``s(x, z, …)``: an isotropic smooth of d covariates) in an
    additive model: `ThinPlate` with the interface of `skmixed._model.smooth.SmoothBasis`
    (``bs``, ``min_k``, ``domain``) and its penalty scaled as mgcv's ``smoothCon`` scales it
    (``S / (‖S‖₁ / ‖X‖∞²)``, X the basis at the data), so that the smoothing parameter is
    mgcv's ``sp``."""

    bs = "tp"
    min_k = 3  # one covariate: the constant and the linear trend, and one penalized function
    cyclic = False

    def __init__(self, k=10):
        if not (isinstance(k, (int, np.integer)) and k >= self.min_k):
            raise ValueError(f"k={k!r} is too small for a bs = 'tp' smooth: k must be an "
                             f"integer >= {self.min_k}.")
        super().__init__(k=int(k))

    def fit(self, x, weights=None, centre_points=False):
        """As `ThinPlate.fit`, x of shape (n,) (one covariate) or (n, d); a covariate that
        is constant over the rows of positive weight is refused."""
        x = np.asarray(x, dtype=float)
        if x.ndim not in (1, 2):
            raise ValueError("a thin-plate smooth's covariates are a 1-D array or n × d.")
        used = x if weights is None else x[np.asarray(weights) > 0]
        cols = used.reshape(used.shape[0], -1)
        if cols.size and np.all(np.isfinite(cols)):
            for j in range(cols.shape[1]):
                if np.ptp(cols[:, j]) == 0:
                    where = "" if cols.shape[1] == 1 else f" (covariate {j + 1})"
                    raise ValueError(f"a smooth of a constant covariate{where} (every value "
                                     f"is {cols[0, j]:g}) has no shape to estimate.")
        super().fit(x, weights, centre_points)
        ranges = [(float(c.min()), float(c.max())) for c in cols.T]
        self.domain_ = ranges[0] if x.ndim == 1 else tuple(ranges)
        self.penalty_scale_ = smoothcon_scale(self.penalty_, self.basis(used))
        return self

    @property
    def domain(self):
        """The covariate's range in the data (for plots); with d covariates, one (lo, hi)
        per covariate."""
        return self.domain_

    def constrained_penalty(self):
        """`ThinPlate.constrained_penalty` divided by ``penalty_scale_``."""
        return super().constrained_penalty() / self.penalty_scale_
