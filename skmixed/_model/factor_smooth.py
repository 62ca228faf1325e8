"""mgcv's factor-smooth interaction ``s(x, f, bs = "fs")``: one smooth of x per level of a
factor f, every level's curve in one basis, with one smoothing parameter for the curves'
wiggliness and one for each function of the base smooth's penalty null space (for "tp",
"cr" and "ps" bases: the constant and the straight line) — random curves, as mgcv's fs.

The basis (`FactorSmooth`) is mgcv's reparametrization of the base smooth (its
``nat.param``): over the data, the base's coefficients are turned into a basis whose
penalized part is orthonormal to the null space and has the identity penalty, every column
scaled to mean square 1. mgcv takes the null-space columns from eigenvectors whose
eigenvalues are rounding noise, so its basis there, and with it the model (each null column
has its own smoothing parameter), follows the last bits of the data; here they are fixed to
the constant 1 and the standardized covariate (x − x̄) / sd(x) (over the data, as mgcv's
columns are orthonormal over them), a per-level random intercept and centred slope.
"""

import numpy as np
from scipy import linalg

from .smooth import drop_constraint

__all__ = ["FactorSmooth"]


class FactorSmooth:
    """The per-level basis of ``s(x, f, bs = "fs")`` on the base smooth ``base`` (an unfitted
    basis of one covariate: mgcv's ``xt``, "tp" by default). After `fit`: ``design(x)``
    (n × k) holds, for one level, the ``rank_`` penalized columns (one penalty) and then
    the null-space columns (1 and the standardized covariate; one penalty each);
    `penalties` gives mgcv's penalties over all levels' coefficients."""

    bs = "fs"

    def __init__(self, base):
        self.base = base

    @property
    def domain(self):
        return self.base.domain

    def fit(self, x, weights=None, **options):
        """The reparametrized basis over the covariate values ``x`` weighted by ``weights``
        (the rows' counts at each value: mgcv's basis is that of the rows)."""
        x = np.asarray(x, dtype=float)
        w = np.ones(x.shape[0]) if weights is None else np.asarray(weights, dtype=float)
        base = drop_constraint(self.base.fit(x, weights=w, **options))
        X = base.design(x)
        k = X.shape[1]
        null, _, _ = base.mixed_parts()
        n_null = null.shape[1]
        if n_null > 2:
            raise ValueError(f"an fs smooth's base with a {n_null}-dimensional penalty null "
                             "space (its null-space basis would be arbitrary): use a base "
                             "with at most a line in its null space ('tp', 'cr', 'ps', 'cc').")
        rank = k - n_null
        sw = np.sqrt(w)
        _, Rq = linalg.qr(sw[:, None] * X, mode="economic")
        if np.min(np.abs(np.diag(Rq))) <= 1e-10 * np.max(np.abs(np.diag(Rq))):
            raise ValueError(f"the fs smooth's base of k={k} functions is rank deficient on "
                             "the covariate's values: use a smaller k.")
        # R⁻ᵀ S R⁻¹: its eigenvectors of positive eigenvalue are the penalized functions,
        # orthonormal over the data and orthogonal to the null space's
        # (the base's own penalty, as mgcv's fs has it: not rescaled as smoothCon's)
        S = base.constrained_penalty() * getattr(base, "penalty_scale_", 1.0)
        half = linalg.solve_triangular(Rq, linalg.solve_triangular(Rq, S, trans="T").T,
                                       trans="T")
        eigval, eigvec = linalg.eigh((half + half.T) / 2.0)
        top = eigval[n_null:]
        P_range = linalg.solve_triangular(Rq, eigvec[:, n_null:]) / np.sqrt(top)
        # every penalized column of mean square 1 together (mgcv's unit.fnorm)
        P_range = P_range / np.sqrt(np.sum(w @ (X @ P_range) ** 2) / (w.sum() * rank))
        P_null = np.zeros((k, 0))
        if n_null:  # 1 and, with a line in the null space, (x − mean) / sd
            mean = float(w @ x / w.sum())
            sd = float(np.sqrt(w @ (x - mean) ** 2 / w.sum()))
            targets = np.column_stack([np.ones_like(x), (x - mean) / sd][:n_null])
            XN = X @ null
            A = np.linalg.lstsq(sw[:, None] * XN, sw[:, None] * targets, rcond=None)[0]
            if not np.allclose(XN @ A, targets, atol=1e-8, rtol=0.0):
                raise ValueError("the fs smooth's base has a penalty null space other than the "
                                 "constant and the line: use 'tp', 'cr', 'ps' or 'cc'.")
            P_null = null @ A
        self.P_ = np.hstack([P_range, P_null])
        self.rank_, self.n_null_, self.k_ = rank, n_null, k
        # each penalty (the identity on its columns) scaled as mgcv's smoothCon scales it,
        # by ‖X‖∞² (‖S‖₁ = 1): the largest row sum of |basis| over the data
        self.penalty_size_ = float(np.max(np.abs(X[w > 0] @ self.P_).sum(axis=1)) ** 2)
        return self

    def design(self, x):
        """One level's columns at x (n × k): the base's basis at x times ``P_``."""
        return self.base.design(x) @ self.P_

    def mixed_parts(self):
        """No unpenalized part; every column penalized (`penalties`)."""
        return np.zeros((self.k_, 0)), np.eye(self.k_), np.ones(self.k_)

    def penalties(self, n_levels):
        """mgcv's penalties over the ``n_levels`` levels' coefficients (level-major, k
        each): the penalized columns' identity, then one per null-space column (the
        identity on that column of every level), each × ``penalty_size_`` (so that the λ
        are mgcv's sp)."""
        masks = [np.arange(self.k_) < self.rank_] + [np.arange(self.k_) == self.rank_ + j
                                                      for j in range(self.n_null_)]
        return [np.diag(np.tile(m * self.penalty_size_, n_levels)) for m in masks]
