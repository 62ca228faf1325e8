"""REML for intercept-only grouping factors too large for a dense factorization (crossed
users × items with tens of thousands of levels in the second factor): average-information
Newton steps whose solves are preconditioned conjugate gradients (PCG) and whose traces are
stochastic (Hutchinson's estimator), from the same cross-products as the exact path.

Spherical system (Λ = diag(θ_k) on factor k's columns, u ~ N(0, σ²I), b = Λu)::

    M = [ΛZ'WZΛ + I   ΛZ'WX] ,   M [u; β] = [ΛZ'Wy; X'Wy].
        [X'WZΛ        X'WX ]

The first factor's block of ``ΛZ'WZΛ + I`` is diagonal (``l² = θ₁²c + 1``, c its
levels' weight sums) and is eliminated exactly; PCG runs on the Schur complement ``S`` over
the other factors' columns and β, never formed: a product with S is two passes over the
level-pair table ``B = Z₁'WZ_r`` (its nonzeros are the pairs some row meets, at most the
rows) and the rest's own table. The preconditioner is S's diagonal on the random-effect
columns and S's exact β block (the fixed effects after the first factor).

The REML score in the variance components φ = (σ², σ²θ₁², …) (Gilmour, Thompson & Cullis
1995) needs the traces ``T_k = tr_k (M⁻¹)_uu`` of factor k's diagonal block of the joint
inverse (REML: β included): for the factors in S, ``E z_k'(S⁻¹z)_k`` over Rademacher probes
z; for the first, ``Σ 1/l² + E (S⁻¹z)'E'diag(1/l⁴)Ez`` (E: the first factor's coupling to
S's columns). The probes are drawn once from a fixed seed (where S has at most
`EXACT_TRACES_UP_TO` columns they are its scaled unit vectors: exact traces), so the
score is a deterministic function of φ and Newton steps converge to its root; their Monte-Carlo error (relative
``~ 1/√(probes)`` of the off-diagonal part of M⁻¹, small where levels have many rows) is
what separates the result from the exact REML optimum — the tests and the benchmark check
it against the exact criterion where that can be evaluated. The average-information matrix
``½ y'PV_iPV_jPy`` takes K + 1 more solves per step.

What is not available here: the REML criterion itself (log|M| is never formed: the
result's criterion is NaN, and so are AIC/BIC) and the conditional variances of the modes
(NaN); the fixed effects' covariance is exact (p solves at the end).
"""

from dataclasses import dataclass, field

import numpy as np
from scipy import linalg

from .._kernels.sparse_pairs import csr_dense_product

__all__ = ["IterativeREML", "block_pcg", "PCGError", "EXACT_TRACES_UP_TO", "SMALL_FACTOR", "BOUNDARY",
           "FREEZE_AFTER", "DEGENERATE"]


#: up to this many columns of S (the factors after the first, and β) the traces are exact:
#: one probe per column, the scaled unit vectors (Penicillin's 6 + 1: with 32 random probes
#: its sample θ was 3 % off); beyond, each exact probe is one more right-hand side
EXACT_TRACES_UP_TO = 64
#: factors with at most this many levels get exact traces (unit probes) among random ones
SMALL_FACTOR = 64

DEGENERATE = ("the residual variance is zero or nearly so (a constant response, or one the "
              "fixed and random effects fit exactly): the iterative solver cannot fit it; "
              "solver='exact' reports such fits.")


class PCGError(RuntimeError):
    """The conjugate-gradient solves did not reach their tolerance."""


def block_pcg(matvec, precond, rhs, x0=None, *, tol, max_iter=2000):
    """Preconditioned conjugate gradients on every column of ``rhs`` (m × R) at once
    (one product with the operator per iteration for all columns; the columns' steps are
    independent). ``tol``: relative residual per column (scalar or (R,)). Returns
    ``(X, iterations)``; raises `PCGError` when a column has not converged."""
    R = rhs.shape[1]
    tol = np.broadcast_to(np.asarray(tol, dtype=float), (R,))
    X = np.zeros_like(rhs) if x0 is None else x0.copy()
    res = rhs - matvec(X) if x0 is not None else rhs.copy()
    bnorm = np.sqrt(np.einsum("ij,ij->j", rhs, rhs))
    bnorm[bnorm == 0] = 1.0
    target = tol * bnorm
    rnorm = np.sqrt(np.einsum("ij,ij->j", res, res))
    active = rnorm > target
    if not active.any():
        return X, 0
    Zp = precond(res)
    P = Zp.copy()
    rz = np.einsum("ij,ij->j", res, Zp)
    for it in range(1, max_iter + 1):
        cols = np.flatnonzero(active)
        Pa = P[:, cols]
        SP = matvec(Pa)
        pSp = np.einsum("ij,ij->j", Pa, SP)
        alpha = np.where(pSp > 0, rz[cols] / np.where(pSp > 0, pSp, 1.0), 0.0)
        X[:, cols] += alpha * Pa
        ra = res[:, cols] - alpha * SP
        res[:, cols] = ra
        rn = np.sqrt(np.einsum("ij,ij->j", ra, ra))
        done = rn <= target[cols]
        active[cols[done]] = False
        if not active.any():
            return X, it
        keep = cols[~done]
        za = precond(res[:, keep])
        rz_new = np.einsum("ij,ij->j", res[:, keep], za)
        P[:, keep] = za + (rz_new / rz[keep]) * P[:, keep]
        rz[keep] = rz_new
    raise PCGError(f"conjugate gradients did not converge in {max_iter} iterations "
                   f"({int(active.sum())} of {R} right-hand sides)")


def _times(A, V):
    """``A V`` (A: CSR, V: m × R) by the row-parallel kernel."""
    V = np.ascontiguousarray(V)
    out = np.empty((A.shape[0], V.shape[1]))
    csr_dense_product(A.indptr, A.indices, A.data, V, out)
    return out


class _Schur:
    """The Schur complement S of the spherical system after the first factor, at θ: its
    product with a block of vectors, its preconditioner, and the full system's solve."""

    def __init__(self, stats, factors):
        off = stats.offsets
        Q1 = off[1]
        ZZ = stats.ZZ.tocsr()
        self.Q1, self.Qr, self.p = Q1, off[-1] - Q1, stats.p
        self.c1 = ZZ.diagonal()[:Q1].copy()
        self.B = ZZ[:Q1, Q1:].tocsr()
        self.Bt = self.B.T.tocsr()
        self.B2t = self.Bt.multiply(self.Bt).tocsr()  # squared entries: diag(B'DB)
        self.ZZr = ZZ[Q1:, Q1:].tocsr()
        self.ZZr_diag = self.ZZr.diagonal().copy()
        self.ZX1 = np.ascontiguousarray(stats.ZX[:Q1])
        self.ZXr = np.ascontiguousarray(stats.ZX[Q1:])
        self.XtX = stats.XtX
        self.sizes = [f.n_levels for f in factors]

    def set_theta(self, theta):
        self.t1 = float(theta[0])
        self.lamr = np.repeat(np.asarray(theta[1:], dtype=float), self.sizes[1:])
        self.inv_l2 = 1.0 / (self.t1 * self.t1 * self.c1 + 1.0)
        lr2 = self.lamr * self.lamr
        self.diag_r = (lr2 * self.ZZr_diag + 1.0
                       - self.t1 * self.t1 * lr2 * (self.B2t @ self.inv_l2))
        K1 = self.t1 * self.ZX1
        Sbb = self.XtX - K1.T @ (self.inv_l2[:, None] * K1)
        self.Sbb_factor = linalg.cho_factor(Sbb) if self.p else None

    def E(self, V):
        """The first factor's coupling ``E = [θ₁BΛ_r, θ₁Z₁'WX]`` times V (Qr + p, R)."""
        return self.t1 * (_times(self.B, self.lamr[:, None] * V[:self.Qr])
                          + self.ZX1 @ V[self.Qr:])

    def Et(self, T):
        """``E'T`` for T (Q1, R)."""
        return np.vstack([self.t1 * self.lamr[:, None] * _times(self.Bt, T),
                          self.t1 * (self.ZX1.T @ T)])

    def matvec(self, V):
        Qr, lamr = self.Qr, self.lamr
        Vr, Vb = V[:Qr], V[Qr:]
        W = lamr[:, None] * Vr
        T = self.inv_l2[:, None] * (self.t1 * (_times(self.B, W) + self.ZX1 @ Vb))
        out = np.empty_like(V)
        out[:Qr] = lamr[:, None] * (_times(self.ZZr, W) + self.ZXr @ Vb
                                    - self.t1 * _times(self.Bt, T)) + Vr
        out[Qr:] = self.ZXr.T @ W + self.XtX @ Vb - self.t1 * (self.ZX1.T @ T)
        return out

    def precond(self, Rm):
        out = np.empty_like(Rm)
        out[:self.Qr] = Rm[:self.Qr] / self.diag_r[:, None]
        if self.p:
            out[self.Qr:] = linalg.cho_solve(self.Sbb_factor, Rm[self.Qr:])
        return out

    def reduce(self, r1, rs):
        """The right-hand side of S for the full system's ``[r1; rs]``."""
        return rs - self.Et(self.inv_l2[:, None] * r1)

    def back(self, r1, xs):
        """The first factor's part of the full solution from S's."""
        return self.inv_l2[:, None] * (r1 - self.E(xs))


@dataclass
class IterativeResult:
    theta: np.ndarray
    sigma2: float
    beta: np.ndarray
    u: np.ndarray
    fixed_cov_rel: np.ndarray
    n_iter: int
    converged: bool
    gradient: np.ndarray
    n_probes: int
    exact_traces: bool
    cg_iterations: list = field(default_factory=list)


#: a variance component below this share of σ² is 0 (the boundary)
BOUNDARY = 1e-9
#: … as is one the Newton steps push through 0 this many times in a row
FREEZE_AFTER = 3


def _newton_step(AI, score, rows, delta, fixed=None):
    """The average-information step of the components ``rows`` (bool mask), those in
    ``fixed`` moved by ``delta`` already (their step is given)."""
    r = np.flatnonzero(rows)
    rhs = score[r].copy()
    if fixed is not None and fixed.any():
        f = np.flatnonzero(fixed)
        rhs -= AI[np.ix_(r, f)] @ delta[f]
    A = AI[np.ix_(r, r)]
    try:  # Cholesky: no condition warning where two factors repeat each other
        return linalg.cho_solve(linalg.cho_factor(A), rhs)
    except (linalg.LinAlgError, ValueError):
        return rhs / np.maximum(np.diag(A), 1e-300)


class IterativeREML:
    """REML by average-information Newton steps with PCG solves and stochastic traces;
    see the module docstring. ``stats``: a MultiCrossproducts (factors in elimination
    order, intercept-only), ``factors``: their FactorColumns."""

    def __init__(self, stats, factors, *, n_probes=32, seed=0, cg_tol=1e-9,
                 probe_tol=1e-6):
        self.stats, self.factors = stats, factors
        self.op = _Schur(stats, factors)
        self.G = np.array([f.n_levels for f in factors], dtype=float)
        self.n_probes, self.cg_tol, self.probe_tol = int(n_probes), cg_tol, probe_tol
        # the rest factors' rows in S (Qr part)
        self.rest_slices = np.cumsum([0] + [f.n_levels for f in factors[1:]])
        m = self.op.Qr + self.op.p
        self.pw = None  # the probes' weights in the trace estimates (None: 1/n_probes)
        if m <= EXACT_TRACES_UP_TO:
            # the scaled unit vectors: Hutchinson's mean is then the trace itself
            self.Zp, self.n_probes = np.sqrt(m) * np.eye(m), m
        else:
            # random probes on the large factors' columns; the columns of factors with at
            # most SMALL_FACTOR levels and of β get unit vectors (exact: a 12-level third
            # factor's variance had a Monte-Carlo error of 1 % from 32 random probes)
            edges = self.rest_slices
            exact = [np.arange(edges[k], edges[k + 1]) for k, f in enumerate(factors[1:])
                     if f.n_levels <= SMALL_FACTOR] + [np.arange(self.op.Qr, m)]
            exact = np.concatenate(exact).astype(np.int64)
            rng = np.random.default_rng(seed)
            random = rng.choice(np.array([-1.0, 1.0]), size=(m, self.n_probes))
            random[exact] = 0.0
            units = np.zeros((m, exact.size))
            units[exact, np.arange(exact.size)] = 1.0
            self.Zp = np.hstack([random, units])
            self.pw = np.concatenate([np.full(self.n_probes, 1.0 / self.n_probes),
                                      np.ones(exact.size)])
        self.exact_traces = m <= EXACT_TRACES_UP_TO
        self.dof = stats.n - stats.p
        self._x_data = None
        self._x_probe = None
        self.cg_iterations = []

    # ----------------------------------------------------------------- pieces
    def _solve_full(self, r1, rs, x0=None, tol=None):
        op = self.op
        xs, it = block_pcg(op.matvec, op.precond, op.reduce(r1, rs), x0,
                           tol=self.cg_tol if tol is None else tol)
        self.cg_iterations.append(it)
        return op.back(r1, xs), xs

    def _ZZ_times(self, a1, ar):
        """``Z'WZ [a1; ar]`` split as the first factor's and the rest's parts."""
        op = self.op
        c1 = op.c1 if a1.ndim == 1 else op.c1[:, None]
        return c1 * a1 + op.B @ ar, op.Bt @ a1 + op.ZZr @ ar

    def step_quantities(self, phi):
        """At φ: the solution, the REML score in φ and the average information."""
        st, op = self.stats, self.op
        s2 = phi[0]
        theta = np.sqrt(np.maximum(phi[1:], 0.0) / s2)
        op.set_theta(theta)
        Q1, Qr, p = op.Q1, op.Qr, op.p
        lam1, lamr = op.t1, op.lamr
        # the data and the probes in one block PCG (the probes: S only)
        r1 = lam1 * st.Zy[:Q1]
        rs = np.concatenate([lamr * st.Zy[Q1:], st.Xty])
        rhs = np.column_stack([op.reduce(r1[:, None], rs[:, None]), self.Zp])
        x0 = None
        if self._x_data is not None:
            x0 = np.column_stack([self._x_data, self._x_probe])
        tol = np.full(rhs.shape[1], self.probe_tol)
        tol[0] = self.cg_tol
        xs, it = block_pcg(op.matvec, op.precond, rhs, x0, tol=tol)
        self.cg_iterations.append(it)
        self._x_data, self._x_probe = xs[:, :1].copy(), xs[:, 1:].copy()
        sol_s = xs[:, 0]
        u1 = op.back(r1[:, None], xs[:, :1])[:, 0]
        ur, beta = sol_s[:Qr], sol_s[Qr:]
        u = np.concatenate([u1, ur])
        rhs_full = np.concatenate([r1, rs])
        sol_full = np.concatenate([u1, ur, beta])
        r2 = st.yty - float(sol_full @ rhs_full)
        ee = r2 - float(u @ u)
        if not (np.isfinite(r2) and ee > 1e-12 * max(st.yty, 1e-300)):
            raise ValueError(DEGENERATE)
        # a_k = Z_k'We (robust at θ_k = 0): Z'Wy − Z'WXβ − Z'WZΛu
        zz1, zzr = self._ZZ_times(lam1 * u1, lamr * ur)
        a = st.Zy - st.ZX @ beta - np.concatenate([zz1, zzr])
        # traces of (M⁻¹)_uu per factor
        Xp = xs[:, 1:]
        K = len(self.factors)
        T = np.empty(K)
        pw = (self.pw if self.pw is not None
              else np.full(self.Zp.shape[1], 1.0 / self.n_probes))
        Ez = op.E(self.Zp)
        T[0] = float(op.inv_l2.sum()) + float(np.einsum(
            "ij,ij,j->", Xp, op.Et(op.inv_l2[:, None] ** 2 * Ez), pw))
        for k in range(1, K):
            a0, b0 = self.rest_slices[k - 1], self.rest_slices[k]
            T[k] = float(np.einsum("ij,ij,j->", self.Zp[a0:b0], Xp[a0:b0], pw))
        # the score in φ
        off = st.offsets
        uu = np.array([float(u[off[k]:off[k + 1]] @ u[off[k]:off[k + 1]]) for k in range(K)])
        s = np.empty(K + 1)
        s[0] = -0.5 * ((st.n - p - float((self.G - T).sum())) / s2 - ee / s2 ** 2)
        th2 = theta * theta
        with np.errstate(divide="ignore", invalid="ignore"):
            s[1:] = np.where(th2 > 0, -0.5 * (self.G - T - uu / s2) / (s2 * th2), 0.0)
        # average information: v_0 = e, v_k = Z_k a_k; W_s'v = [ΛZ'Wv; X'Wv]
        lam = np.concatenate([np.full(Q1, lam1), lamr])
        rhs_ai = np.zeros((off[-1] + p, K + 1))
        rhs_ai[:off[-1], 0] = u
        A = np.zeros((off[-1], K))
        for k in range(K):
            A[off[k]:off[k + 1], k] = a[off[k]:off[k + 1]]
        ZZA1, ZZAr = self._ZZ_times(A[:Q1], A[Q1:])
        ZZA = np.vstack([ZZA1, ZZAr])
        rhs_ai[:off[-1], 1:] = lam[:, None] * ZZA
        rhs_ai[off[-1]:, 1:] = st.ZX.T @ A
        vv = np.empty((K + 1, K + 1))
        vv[0, 0] = ee
        for k in range(K):
            ak = a[off[k]:off[k + 1]]
            vv[0, k + 1] = vv[k + 1, 0] = float(ak @ ak)
        vv[1:, 1:] = A.T @ ZZA
        x1, xs_ai = self._solve_full(rhs_ai[:Q1], rhs_ai[Q1:], tol=self.cg_tol)
        sol_ai = np.vstack([x1, xs_ai])
        AI = 0.5 * (vv - rhs_ai.T @ sol_ai) / s2 ** 3
        AI = 0.5 * (AI + AI.T)
        # the profiled criterion's gradient in θ (as the exact path's), with these traces
        c = self.dof / r2
        with np.errstate(divide="ignore", invalid="ignore"):
            grad = np.where(theta > 1e-8, 2.0 * (self.G - T - c * uu) / theta, 0.0)
        return dict(theta=theta, beta=beta, u=u, r2=r2, score=s, AI=AI, T=T, grad=grad)

    def fit(self, theta0, *, max_iter=50, tol=1e-7):
        """Newton (average information) from θ₀ (σ² from the first solve), projected on
        φ ≥ 0: a component a step pushes through 0 goes a tenth of the way there (the
        others' step re-solved with it fixed), and one pushed there `FREEZE_AFTER`
        times in a row, or below `BOUNDARY` σ², is 0 from then on (its score at the
        boundary is rounding noise: the boundary fit, θ_k = 0, as lme4's)."""
        K1 = len(self.factors) + 1
        phi = np.concatenate([[1.0], np.asarray(theta0, dtype=float) ** 2])
        q = self.step_quantities(phi)
        phi = q["r2"] / self.dof * np.concatenate([[1.0], q["theta"] ** 2])
        converged = False
        free = np.ones(K1, dtype=bool)
        pushed = np.zeros(K1, dtype=int)
        n_iter = 0
        for n_iter in range(1, max_iter + 1):
            q = self.step_quantities(phi)
            score, AI = q["score"], q["AI"]
            delta = np.zeros(K1)
            delta[free] = _newton_step(AI, score, free, delta)
            new = phi + delta
            low = free & (new <= 0)
            pushed = np.where(low, pushed + 1, 0)
            if low.any():
                new[low] = phi[low] / 10.0
                delta[low] = new[low] - phi[low]
                others = free & ~low
                delta[others] = _newton_step(AI, score, others, delta, fixed=low)
                new[others] = phi[others] + delta[others]
                bad = others & (new <= 0)
                new[bad] = phi[bad] / 10.0
            if not (np.all(np.isfinite(new)) and new[0] > 0):
                raise FloatingPointError("the variance components diverged")
            zero = free & (np.arange(K1) > 0) & ((new < BOUNDARY * new[0])
                                                  | (pushed >= FREEZE_AFTER))
            new[zero] = 0.0
            free &= ~zero
            scale = np.maximum(phi, 1e-12 * phi[0])
            change = np.max(np.abs(new - phi)[free] / scale[free])
            phi = new
            if change < tol and not zero.any():
                converged = True
                break
        st, op = self.stats, self.op
        q = self.step_quantities(phi)
        # the fixed effects' covariance (relative to σ²): S⁻¹'s β block, p solves
        p, Qr = st.p, op.Qr
        cov_rel = np.zeros((p, p))
        if p:
            E = np.zeros((Qr + p, p))
            E[Qr:] = np.eye(p)
            xs, its = block_pcg(op.matvec, op.precond, E, tol=self.cg_tol)
            self.cg_iterations.append(its)
            cov_rel = xs[Qr:]
            cov_rel = 0.5 * (cov_rel + cov_rel.T)
        sigma2 = q["r2"] / self.dof
        return IterativeResult(theta=q["theta"], sigma2=sigma2, beta=q["beta"], u=q["u"],
                               fixed_cov_rel=cov_rel, n_iter=n_iter, converged=converged,
                               gradient=q["grad"], n_probes=self.n_probes,
                               exact_traces=self.exact_traces,
                               cg_iterations=list(self.cg_iterations))
