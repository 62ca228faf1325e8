"""The linear mixed model's profiled deviance over θ, from per-group sufficient statistics.

Bates, Mächler, Bolker & Walker (2015), "Fitting linear mixed-effects models using lme4",
J. Stat. Softw. 67(1), section 3: for fixed θ, β and the spherical random effects u solve a
penalized least-squares problem whose blocked Cholesky factor gives

    ML:   d(θ) = Σ 2 log|L_i| + n (1 + log(2π r²/n))
    REML: d(θ) = Σ 2 log|L_i| + log|S| + (n − p)(1 + log(2π r²/(n − p)))

with ``S = R_X'R_X`` and the penalized RSS ``r²`` (Bates et al. 2015 §3). ``n = Σ w`` (frequency
weights). Every evaluation costs O(G q³ + G q² p + p³) and never touches the rows.
"""

from dataclasses import dataclass

import numpy as np
from scipy import linalg

from .._kernels import blocks
from .._kernels.pls import conditional_modes_groups, pls_gradient_groups, pls_groups

__all__ = ["GroupedCrossproducts", "ProfiledDeviance", "independent_columns"]

_LOG_2PI = np.log(2.0 * np.pi)
_PARALLEL_WORK = 500_000


@dataclass
class GroupedCrossproducts:
    """Sufficient statistics of a Gaussian model with one grouping factor.

    Attributes
    ----------
    C : ndarray (G, q, q)   ``Z_i'WZ_i``
    D : ndarray (G, q, p)   ``Z_i'WX_i``
    e : ndarray (G, q)      ``Z_i'Wy_i``
    XtX : ndarray (p, p); Xty : ndarray (p,); yty : float
    n : float               ``Σ w``
    group_n : ndarray (G,)  ``Σ w`` per group
    """

    C: np.ndarray
    D: np.ndarray
    e: np.ndarray
    XtX: np.ndarray
    Xty: np.ndarray
    yty: float
    n: float
    group_n: np.ndarray

    @classmethod
    def from_crossprods(cls, group_xv, total_vv, z_pos, fixed_pos):
        """Select the blocks from the row pass's output.

        ``group_xv`` (G, q, m) and ``total_vv`` (m, m) are over ``v = [1, x…, y]``;
        ``z_pos`` and ``fixed_pos`` index the random-effect and fixed-effect columns of v.
        """
        y_pos = total_vv.shape[0] - 1
        z_pos = np.asarray(z_pos)
        fixed_pos = np.asarray(fixed_pos, dtype=np.int64)
        return cls(
            C=np.ascontiguousarray(group_xv[:, :, z_pos]),
            D=np.ascontiguousarray(group_xv[:, :, fixed_pos]),
            e=np.ascontiguousarray(group_xv[:, :, y_pos]),
            XtX=total_vv[np.ix_(fixed_pos, fixed_pos)].copy(),
            Xty=total_vv[fixed_pos, y_pos].copy(),
            yty=float(total_vv[y_pos, y_pos]),
            n=float(total_vv[0, 0]),
            group_n=group_xv[:, 0, 0].copy(),
        )

    @property
    def n_groups(self):
        return self.C.shape[0]

    @property
    def p(self):
        return self.XtX.shape[0]


def independent_columns(XtX, rtol=1e-10):
    """Indices of a maximal set of linearly independent columns, in column order.

    Column j is kept if its squared residual norm after projection on the kept earlier
    columns exceeds ``rtol`` times its squared norm (lme4 likewise drops the later of
    collinear columns). Works on the cross-product, so it never touches the rows.
    """
    p = XtX.shape[0]
    kept = []
    for j in range(p):
        ajj = XtX[j, j]
        if ajj <= 0.0:
            continue
        if kept:
            A = XtX[np.ix_(kept, kept)]
            a = XtX[kept, j]
            try:
                resid = ajj - a @ linalg.solve(A, a, assume_a="pos")
            except linalg.LinAlgError:
                continue
        else:
            resid = ajj
        if resid > rtol * ajj:
            kept.append(j)
    return np.array(kept, dtype=np.int64)


@dataclass
class PLSState:
    """The solution of the penalized least-squares problem at one θ."""

    theta: np.ndarray
    T: np.ndarray
    logdet_L: float
    S: np.ndarray
    S_chol: np.ndarray
    beta: np.ndarray
    penalized_rss: float
    deviance: float


class ProfiledDeviance:
    """Profiled ML/REML deviance of a one-factor LMM as a function of θ.

    Preallocates the per-group blocks once; `evaluate` fills them for a θ.
    """

    def __init__(self, stats, term, reml=True, n_blocks=None):
        self.stats = stats
        self.term = term
        self.reml = bool(reml)
        G, q, p = stats.n_groups, term.q, stats.p
        # The groups are swept in fixed blocks (their partial sums added in block order, so
        # the deviance is the same on any number of threads). Threads pay only when the
        # per-evaluation work is large: starting the pool costs tens of microseconds, the
        # whole sweep for 2,000 scalar groups about as much.
        if n_blocks is None:
            work = G * q * (q + p + 1) ** 2
            n_blocks = (blocks.n_blocks(work, min_rows=_PARALLEL_WORK // 8)
                        if work >= _PARALLEL_WORK else 1)
        self.n_blocks = max(1, min(int(n_blocks), G))
        self._L = np.zeros((G, q, q))
        self._c = np.zeros((G, q))
        self._R = np.zeros((G, q, p))
        self._logdet = np.zeros(self.n_blocks)
        self._RtR = np.zeros((self.n_blocks, p, p))
        self._Rtc = np.zeros((self.n_blocks, p))
        self._cc = np.zeros(self.n_blocks)
        self._dlogdet = np.zeros((self.n_blocks, term.n_theta))
        self._dr2 = np.zeros((self.n_blocks, term.n_theta))
        self.n_evals = 0

    @property
    def dof(self):
        """``n − p`` (REML) or ``n`` (ML): the residual degrees of freedom of the criterion."""
        return self.stats.n - self.stats.p if self.reml else self.stats.n

    def factor_groups(self, T):
        """The blocked scheme's first step (`multilevel`) at the factor ``T``: every group's
        ``L_i``, ``c_i``, ``R_i`` (left in `blocks`) and their reductions
        ``(Σ 2 log|L_i|, Σ R_i'R_i, Σ R_i'c_i, Σ ‖c_i‖²)``. With one grouping factor this is
        the whole random-effect part; with several (`skmixed._model.multilevel`) it
        eliminates the first factor before the others' Schur complement."""
        st = self.stats
        pls_groups(T, st.C, st.D, st.e, self._L, self._c, self._R,
                   self._logdet, self._RtR, self._Rtc, self._cc)
        return (float(self._logdet.sum()), self._RtR.sum(axis=0), self._Rtc.sum(axis=0),
                float(self._cc.sum()))

    @property
    def blocks(self):
        """``(L, c, R)``: (G, q, q) lower triangular, (G, q), (G, q, p) of the last θ."""
        return self._L, self._c, self._R

    def evaluate(self, theta):
        """Solve the PLS problem at θ; return a `PLSState` (deviance inf if degenerate)."""
        st = self.stats
        theta = np.asarray(theta, dtype=float)
        T = self.term.factor(theta)
        logdet_L, RtR, Rtc, _ = self.factor_groups(T)
        self.n_evals += 1
        S = st.XtX - RtR
        rhs = st.Xty - Rtc
        p = st.p
        try:
            S_chol = linalg.cholesky(S, lower=False) if p else np.zeros((0, 0))
        except linalg.LinAlgError:
            return PLSState(theta, T, logdet_L, S, None, np.full(p, np.nan), np.nan, np.inf)
        beta = linalg.cho_solve((S_chol, False), rhs) if p else np.zeros(0)
        r2 = st.yty - self._cc.sum() - rhs @ beta
        dof = self.dof
        if not (r2 > 0.0 and dof > 0):
            return PLSState(theta, T, logdet_L, S, S_chol, beta, r2, np.inf)
        dev = logdet_L + dof * (1.0 + _LOG_2PI + np.log(r2 / dof))
        if self.reml:
            dev += 2.0 * np.log(np.abs(np.diag(S_chol))).sum()
        return PLSState(theta, T, logdet_L, S, S_chol, beta, r2, dev)

    def __call__(self, theta):
        return self.evaluate(theta).deviance

    def value_and_grad(self, theta):
        """Deviance and its exact gradient over θ (one extra sweep over the groups)."""
        state = self.evaluate(theta)
        if not np.isfinite(state.deviance):
            return np.inf, np.zeros(self.term.n_theta)
        return state.deviance, self.gradient(state)

    def gradient(self, state):
        """Gradient of the deviance at an evaluated state (module docstring of the kernel)."""
        dlogdet, dr2 = self.gradient_parts(state)
        return dlogdet + self.dof * dr2 / state.penalized_rss

    def gradient_parts(self, state):
        """``(∂ℓ/∂θ, ∂r²/∂θ)`` at an evaluated state: the log-determinant part ℓ of the
        deviance (with log|S| for REML) and the penalized RSS (the unprofiled deviance's
        gradient, `lmm_inference`)."""
        st = self.stats
        p = st.p
        if p:
            S_inv = linalg.cho_solve((state.S_chol, False), np.eye(p))
        else:
            S_inv = np.zeros((0, 0))
        pls_gradient_groups(state.T, st.C, st.D, st.e, self._L, self._c, self._R,
                            state.beta, S_inv, self.term.rows, self.term.cols, self.reml,
                            self._dlogdet, self._dr2)
        return self._dlogdet.sum(axis=0), self._dr2.sum(axis=0)

    def conditional_modes(self, state):
        """Conditional modes ``b_i`` (G, q) and relative conditional covariances (G, q, q).

        The buffers must hold ``state``'s θ (call `evaluate` at it first).
        """
        G, q = self.stats.n_groups, self.term.q
        modes = np.empty((G, q))
        cond_cov = np.empty((G, q, q))
        conditional_modes_groups(state.T, self._L, self._c, self._R, state.beta, modes, cond_cov)
        return modes, cond_cov
