"""Generalized linear mixed models with several grouping factors: the Laplace
approximation (lme4's ``nAGQ = 1``) over the blocked system of `multilevel`.

For fixed (θ, β) the conditional modes û maximize ``ℓ(η) − ‖u‖²/2`` with
``η = offset + Xβ + ZΛu`` (penalized IRLS: Newton steps with
``A = Λ'Z'VZΛ + I``, V the working weights, step-halving when the objective does not
decrease), and

    d(θ, β) = −2 ℓ(η̂) + ‖û‖² + log|A(û)|

is the Laplace deviance (lme4's, for binomial logit and Poisson log: the Fisher and
observed information agree). A is factored as in `skmixed._model.multilevel` — the
factor with most columns block-diagonal, the rest one dense Schur complement — from
``Z'VZ`` recomputed (a sparse product over the rows) at each IRLS step; with few
random-effect columns (`DENSE_SYSTEM_COLUMNS`) A is dense instead
(`DenseSystem`). (θ, β) are optimized by Newton steps (lme4: BOBYQA,
derivative-free); the standard errors come from the Hessian of d over (θ, β), as lme4's
(``use.hessian = TRUE``). Here the gradients and the Hessian are central differences of d;
the exact gradient is in `skmixed._model.scalar_laplace` (intercept-only factors, a
canonical link: a fixed pattern) and `skmixed._model.pair_laplace` (random slopes,
the negative binomial: A⁻¹ on the cells of each row's column pairs, from the dense system or
a blocked one with a dense rest; the probit and cloglog links too). This class alone serves
the rest: rest blocks past the dense limit, pairs of rows past `PAIR_ROWS_LIMIT`. One
grouping factor has MixedGLM's fast path.
"""

from types import SimpleNamespace

import numpy as np
from scipy import linalg, sparse

from .._kernels.threads import over_rows
from .multilevel import (DENSE_LIMIT, RestFactor, first_factor_inverse_blocks,
                         random_effects_matrix)
from .optimize import minimize
from .spaces import ParamSpace, ThetaSpace

__all__ = ["BlockedSystem", "DenseSystem", "MultiLaplace"]

#: with the exact gradient, the first stage (θ by the nAGQ = 0 deviance) stops once its
#: predicted step is below this in log θ (every θ ≥ 0.05): the second stage's Newton steps
#: move θ by more (the Laplace and nAGQ = 0 optima differ: 4e-4 at 1e6 crossed binomial
#: rows), and the stage's last iterations cost ~3 s each there
STAGE1_STOP_STEP = 1e-4


def _kron_terms(factors, thetas):
    """Λ = blockdiag_k(I_{G_k} ⊗ T_k) (sparse CSR)."""
    return sparse.block_diag(
        [sparse.kron(sparse.identity(f.n_levels, format="csr"),
                     sparse.csr_matrix(f.term.factor(t)), format="csr")
         for f, t in zip(factors, thetas)], format="csr")


class BlockedSystem:
    """``A = Λ'MΛ + I`` for a symmetric sparse M (Q × Q, Z'VZ over the factors' columns,
    the first factor's part block diagonal): factored by the blocked scheme; `solve`
    and the log determinant."""

    def __init__(self, M, factors, thetas):
        q1, G1 = factors[0].term.q, factors[0].n_levels
        Q1 = q1 * G1
        Lam = _kron_terms(factors, thetas)
        A = (Lam.T @ M @ Lam).tocsr()
        d1 = A[:Q1, :Q1].tocoo()
        blocks = np.zeros((G1, q1, q1))
        blocks[d1.row // q1, d1.row % q1, d1.col % q1] = d1.data
        blocks += np.eye(q1)
        self.L1 = np.linalg.cholesky(blocks)
        self.L1inv = np.linalg.inv(self.L1)
        P = sparse.bsr_matrix((self.L1inv, np.arange(G1), np.arange(G1 + 1)),
                              shape=(Q1, Q1)).tocsr()
        self.F = (P @ A[:Q1, Q1:]).tocsr()
        Qr = A.shape[0] - Q1
        if Qr <= DENSE_LIMIT:
            Arr = A[Q1:, Q1:].toarray() + np.eye(Qr) - (self.F.T @ self.F).toarray()
        else:
            Arr = (A[Q1:, Q1:] + sparse.identity(Qr) - self.F.T @ self.F).tocsc()
        self.rest = RestFactor(Arr)
        self.P, self.Q1, self.G1, self.q1 = P, Q1, G1, q1
        self.logdet = (2.0 * np.log(np.diagonal(self.L1, axis1=1, axis2=2)).sum()
                       + self.rest.logdet)
        self.joint = None  # the joint (β, u) step's β part, where the gradient needs it

    def solve(self, b):
        if b.ndim == 2:
            return np.column_stack([self.solve(col) for col in b.T]) if b.shape[1] else b
        Q1 = self.Q1
        z1 = self.P @ b[:Q1]
        ur = self.rest.solve(b[Q1:] - self.F.T @ z1)
        t1 = (z1 - self.F @ ur).reshape(self.G1, self.q1)
        u1 = np.einsum("gba,gb->ga", self.L1inv, t1).ravel()  # L1⁻ᵀ per level
        return np.concatenate([u1, ur])

    def inverse_diagonal_blocks(self, factors):
        """Per factor, the q × q diagonal blocks of A⁻¹ (the conditional covariance of u):
        ``L₁⁻ᵀ(I + F S_rr⁻¹ F')L₁⁻¹`` per first-factor level (F's rows in chunks), the
        blocks of ``S_rr⁻¹`` for the others."""
        out = [first_factor_inverse_blocks(self.L1inv, self.F, self.rest)]
        return out + self.rest.diagonal_blocks([(f.n_levels, f.term.q) for f in factors[1:]])

    def inverse_at(self, cells, chunk=512):
        """A⁻¹ at the cells ``r·Q + c`` of a pattern of level pairs (each row's pairs of
        columns: two first-factor columns of a row lie in one level's block), for a dense
        rest block: ``L₁⁻ᵀ(I + F S⁻¹F')L₁⁻¹`` in the first factor's blocks,
        ``−L₁⁻ᵀF S⁻¹`` between it and the rest (F's rows in chunks of levels: S⁻¹F' is
        Q_r × chunk), S⁻¹ among the rest."""
        Q1, q1, G1, rest = self.Q1, self.q1, self.G1, self.rest
        if rest.sparse:
            raise ValueError("A⁻¹ on a pattern needs a dense rest block")
        r, c = np.divmod(cells, Q1 + rest.m)
        out = np.empty(cells.size)
        among_rest = (r >= Q1) & (c >= Q1)
        if np.any(among_rest):
            Sinv, info = linalg.lapack.dpotri(rest.L, lower=1)
            if info != 0:
                raise linalg.LinAlgError(f"LAPACK dpotri failed (info {info})")
            hi, lo = np.maximum(r, c)[among_rest] - Q1, np.minimum(r, c)[among_rest] - Q1
            out[among_rest] = Sinv[hi, lo]  # the lower triangle
        first = (r < Q1) & (c < Q1)
        cross = np.flatnonzero(~among_rest & ~first)
        i1, jr = np.minimum(r, c)[cross], np.maximum(r, c)[cross] - Q1
        order = np.argsort(i1, kind="stable")
        cross, i1, jr = cross[order], i1[order], jr[order]
        inner = np.zeros((G1, q1, q1))
        step = max(1, chunk // q1)
        for a in range(0, G1, step) if rest.m else ():
            b = min(G1, a + step)
            Fc = self.F[a * q1:b * q1]
            Y = rest.solve(Fc.T.toarray())  # S⁻¹F_c'
            W = np.asarray(Fc @ Y)
            for i in range(b - a):
                inner[a + i] = W[i * q1:(i + 1) * q1, i * q1:(i + 1) * q1]
            lo, hi = np.searchsorted(i1, [a * q1, b * q1])
            if hi > lo:
                rows = i1[lo:hi] - a * q1
                lev, k = np.divmod(rows, q1)
                # (L₁⁻ᵀ F S⁻¹)[row, col]: L₁⁻¹ᵀ of the level times its q₁ rows of F S⁻¹
                out[cross[lo:hi]] = -np.einsum("nb,nb->n", self.L1inv[a + lev, :, k],
                                               Y.T.reshape(b - a, q1, -1)[lev, :, jr[lo:hi]])
        blocks = self.L1inv.transpose(0, 2, 1) @ (np.eye(q1) + inner) @ self.L1inv
        out[first] = blocks[r[first] // q1, r[first] % q1, c[first] % q1]
        return out


#: the general path holds ``A = Λ'Z'VZΛ + I`` dense (one LAPACK Cholesky, no sparse
#: matrices built per PIRLS step) when the factors have at most this many columns in all
#: (a 500-column Cholesky takes well under a millisecond; the blocked sparse build of
#: `BlockedSystem` ~5 ms of Python per step: small slope models spent 70 % there)
DENSE_SYSTEM_COLUMNS = 500
#: … and forms ``Z'VZ`` by bincounts over each row's pairs of columns while rows × pairs
#: stay below this (else one sparse product)
PAIR_ROWS_LIMIT = 20_000_000


class DenseSystem:
    """``A = Λ'MΛ + I`` held dense and factored by LAPACK (few random-effect columns):
    `solve`, ``logdet``, `inverse_diagonal_blocks`; ``A`` is Λ'MΛ, written
    over."""

    def __init__(self, A):
        A[np.diag_indices_from(A)] += 1.0
        L, info = linalg.lapack.dpotrf(A, lower=1, clean=1, overwrite_a=1)
        if info != 0 or not np.all(np.isfinite(np.diag(L))):
            raise linalg.LinAlgError("the Laplace system is not positive definite")
        self.L = L
        self.logdet = 2.0 * np.log(np.diag(L)).sum()
        self.joint = None  # the joint (β, u) step's β part, where the gradient needs it
        self._inverse = None

    def solve(self, b):
        return linalg.cho_solve((self.L, True), b, check_finite=False)

    def inverse(self):
        """A⁻¹ (dense, symmetric; computed once)."""
        if self._inverse is None:
            inv, info = linalg.lapack.dpotri(self.L, lower=1)
            if info != 0:
                raise linalg.LinAlgError(f"LAPACK dpotri failed (info {info})")
            self._inverse = np.tril(inv) + np.tril(inv, -1).T
        return self._inverse

    def inverse_at(self, cells):
        """A⁻¹ at the cells ``r·Q + c``."""
        return self.inverse().ravel()[cells]

    def inverse_diagonal_blocks(self, factors):
        """Per factor, the q × q diagonal blocks of A⁻¹ (G_k, q_k, q_k)."""
        inv = self.inverse()
        out, start = [], 0
        for f in factors:
            idx = start + np.arange(f.width).reshape(f.n_levels, f.term.q)
            out.append(inv[idx[:, :, None], idx[:, None, :]])
            start += f.width
        return out


class MultiLaplace:
    """The Laplace deviance over (θ, β) of a GLMM with several grouping factors (see the
    module docstring). ``factors``: `FactorColumns`
    (the first is eliminated block by block); ``family``: a
    [`Family`][skmixed.families.Family] — with a parameter (the negative binomial's size k),
    x ends with log k."""

    #: whether value_and_grad's gradient is exact (else central differences: 2k + 1 values)
    exact_gradient = False

    def __init__(self, X, y, m, offset, w, factors, family):
        self.X, self.y, self.m, self.offset, self.w = X, y, m, offset, w
        self.factors, self.family = factors, family
        # the family's parameter, when the row terms take it (the negative binomial's size
        # k = e^{x[-1]}); one that scales the weights (Gamma's dispersion) is not handled
        self.param = family.laplace_param(y, w)
        if self.param is not None and not self.param.in_kernels:
            raise ValueError(f"several grouping factors: the {family.label} model's "
                             f"{family.param} is not supported (it is with one grouping "
                             "factor).")
        self.n_extra = int(self.param is not None)
        self.fpar = family.glm_fpar
        self.Z = random_effects_matrix(factors, y.shape[0])
        self.ZT = self.Z.T.tocsr()
        self.col_edges = np.cumsum([0] + [f.width for f in factors])
        self.dense = self.Z.shape[1] <= DENSE_SYSTEM_COLUMNS
        self._pairs = None  # each row's column pairs, made at the first dense _cross
        self.theta_edges = np.cumsum([0] + [f.term.n_theta for f in factors])
        self.u = np.zeros(self.Z.shape[1])
        self.n_evals = 0

    @property
    def n_theta(self):
        return int(self.theta_edges[-1])

    @property
    def rest_columns(self):
        """Columns of the dense block factored by LAPACK: all (the dense system), or those
        after the first factor's (the blocked system's rest)."""
        Q = self.Z.shape[1]
        return Q if self.dense else Q - self.factors[0].width

    def thetas(self, x):
        """θ per factor from x's first elements."""
        return [x[a:b] for a, b in zip(self.theta_edges[:-1], self.theta_edges[1:])]

    def split(self, x):
        """(θ per factor, β) of x = (θ, β, extra); sets the family's parameter from x's last
        element."""
        if self.n_extra:
            self.fpar = self.param.fpar(x[-1])
        return self.thetas(x), x[self.n_theta:x.size - self.n_extra]

    def _row_pairs(self):
        """Each row's pairs of Z columns as cells of the dense Q × Q ``Z'VZ`` (cell
        indices, the rows, the products of Z's values), for `_cross`; None where
        rows × pairs is too large or rows differ in their number of entries."""
        Z, Q = self.Z, self.Z.shape[1]
        n = Z.shape[0]
        width = Z.nnz // max(n, 1)
        if n * width * width > PAIR_ROWS_LIMIT or np.any(np.diff(Z.indptr) != width):
            return None
        cols = Z.indices.reshape(n, width).astype(np.int64)
        vals = Z.data.reshape(n, width)
        keys = (cols[:, :, None] * Q + cols[:, None, :]).reshape(n, -1)
        cells, pos = np.unique(keys, return_inverse=True)
        prod = (vals[:, :, None] * vals[:, None, :]).reshape(n, -1)
        return cells, pos.reshape(keys.shape), prod

    def _cross(self, wv):
        """``M = Z'VZ`` for row weights wv: dense (Q × Q) on the dense path, else sparse."""
        if not self.dense:
            return (self.ZT @ self.Z.multiply(wv[:, None])).tocsr()
        Q = self.Z.shape[1]
        if self._pairs is None:
            self._pairs = self._row_pairs() or ()
        if not self._pairs:
            return (self.ZT @ self.Z.multiply(wv[:, None])).toarray()
        cells, pos, prod = self._pairs
        M = np.zeros(Q * Q)
        M[cells] = np.bincount(pos.ravel(), weights=(prod * wv[:, None]).ravel(),
                               minlength=cells.size)
        return M.reshape(Q, Q)

    def _lam(self, thetas, u, transpose=False):
        """``Λu`` (or ``Λ'u``) by each factor's q × q blocks (u: (Q,) or (Q, m))."""
        out = np.empty_like(u, dtype=float)
        for f, t, a, b in zip(self.factors, thetas, self.col_edges[:-1], self.col_edges[1:]):
            if f.term.q == 1:
                out[a:b] = t[0] * u[a:b]
                continue
            T = f.term.factor(t)
            T = T.T if transpose else T
            if u.ndim == 1:
                out[a:b] = (u[a:b].reshape(f.n_levels, f.term.q) @ T.T).ravel()
            else:  # per level T times its q rows
                seg = u[a:b].reshape((f.n_levels, f.term.q) + u.shape[1:])
                out[a:b] = np.matmul(T, seg).reshape((b - a,) + u.shape[1:])
        return out

    def _system_of(self, M, thetas):
        """The factored ``A = Λ'MΛ + I``: `DenseSystem` or `BlockedSystem`."""
        if not self.dense:
            return BlockedSystem(M, self.factors, thetas)
        LtM = self._lam(thetas, M, transpose=True)
        return DenseSystem(np.asfortranarray(self._lam(thetas, LtM.T, transpose=True)))

    def _objective(self, eta, u):
        return (-2.0 * self.family.loglik(self.y, eta, self.m, self.w, fpar=self.fpar)
                + float(u @ u))

    def _joint_step(self, system, wv, resid, K, g_u):
        """The joint Newton step over (β, u) on the blocked system (``K = Λ'Z'VX``,
        ``g_u`` the modes' gradient): u through A⁻¹, β through the fixed effects' Schur
        complement ``X'VX − K'A⁻¹K``. Returns (d_β, d_u, the decrement)."""
        g_b = self.X.T @ resid
        d_b, d_u = self._joint_solve(system, self._joint_factor(system, wv, K), g_b, g_u)
        return d_b, d_u, float(d_u @ g_u + d_b @ g_b)

    def _joint_factor(self, system, wv, K):
        """The β part of the joint Newton system ``[[X'VX, K'], [K, A]]`` at the system's
        point: (K, A⁻¹K, the Cholesky factor of the fixed effects' Schur complement
        ``X'VX − K'A⁻¹K``), for `_joint_solve`."""
        X = self.X
        Y = system.solve(K)
        S = (X * wv[:, None]).T @ X - K.T @ Y
        # Cholesky without SciPy's condition warning: a nearly separated fixed column makes
        # S ill-conditioned, which the separation check has already told the user
        return K, Y, linalg.cho_factor(S)

    def _joint_solve(self, system, joint, b_b, b_u):
        """``[[X'VX, K'], [K, A]] (d_β, d_u) = (b_β, b_u)`` with the β part ``joint``
        (`_joint_factor`; b_u: (Q,) or (Q, m))."""
        K, Y, factor = joint
        r_u = system.solve(b_u)
        d_b = linalg.cho_solve(factor, b_b - K.T @ r_u)
        return d_b, r_u - Y @ d_b

    def _halved_step(self, h, x, step, eta_of, whole=False):
        """Step halving on ``−2ℓ(η) + ‖u‖²`` (u: x's last Q entries, ``η = eta_of(x)``):
        the first ``x + t·step``, t = 1, ½, … (down to 1e-8), not above h beyond rounding;
        ``whole``: the step whole, not compared (a Newton step from a decrement below the
        tolerance: the comparison is rounding there, and halved such steps ~20 times
        each). Returns (its value, it, its η)."""
        Q = self.u.size
        t = 1.0
        while True:
            x_new = x + t * step
            eta = eta_of(x_new)
            h_new = self._objective(eta, x_new[x_new.size - Q:])
            if whole or h_new <= h + 1e-12 * abs(h) or t < 1e-8:
                return h_new, x_new, eta
            t *= 0.5

    def _working_weights(self, eta):
        """ℓ' and the PIRLS weights per row: the family's (lme4's: the expected information
        for the probit and cloglog links)."""
        return self.family.score_information(self.y, eta, self.m, self.fpar,
                                             over_rows=over_rows)

    def _warm_start(self, eta_of, u):
        """The modes' start u (a copy), its η and objective; LinAlgError where a nonzero
        start's objective is not finite (a trial θ far above the last overflows ZΛu: then
        `_from_zero_on_failure` starts from 0). Returns (u, η, h)."""
        with np.errstate(over="ignore", invalid="ignore"):
            eta = eta_of(u)
            h = self._objective(eta, u) if np.all(np.isfinite(eta)) else np.inf
        if not np.isfinite(h) and np.any(u):
            raise linalg.LinAlgError("the last modes overflow at this point")
        return u.copy(), eta, h

    def _from_zero_on_failure(self, solve):
        """``solve(u0)`` from the last modes, else from 0 where that fails (their objective
        overflows at a new θ; or the steps from them reached η ~ 48: the system not
        positive definite, where a start from 0 converges; a review, 2026-12-04)."""
        try:
            return solve(self.u)
        except (np.linalg.LinAlgError, linalg.LinAlgError):
            if not np.any(self.u):
                raise
            return solve(np.zeros_like(self.u))

    def modes(self, x, tol=1e-10, max_iter=100):
        """û at (θ, β) by penalized IRLS from the last modes (from 0 where that fails);
        returns (û, η̂, system)."""
        return self._from_zero_on_failure(lambda u0: self._modes_from(x, u0, tol, max_iter))

    def _modes_from(self, x, u0, tol, max_iter):
        thetas, beta = self.split(x)
        base = self.offset + self.X @ beta

        def eta_of(v):
            return base + self.Z @ self._lam(thetas, v)

        u, eta, h = self._warm_start(eta_of, u0)
        for _ in range(max_iter):
            l1, v = self._working_weights(eta)
            system = self._system_of(self._cross(self.w * v), thetas)
            grad = self._lam(thetas, self.ZT @ (self.w * l1), transpose=True) - u
            step = system.solve(grad)
            decrement = float(step @ grad)
            converged = decrement < tol * (1.0 + abs(h))
            h, u, eta = self._halved_step(h, u, step, eta_of, whole=converged)
            if converged:
                break
        return u, eta, self._final_system(eta, thetas)

    def _final_system(self, eta, thetas):
        """The system at the modes' η; keeps η, the row terms (ℓ, ℓ', v, ∂v/∂η:
        ``_terms``) and ``Z'VZ`` (``_M``) there for the exact gradient."""
        self._terms = self.family.laplace_terms(self.y, eta, self.m, self.fpar)
        self._eta = eta
        self._M = self._cross(self.w * self._terms[2])
        return self._system_of(self._M, thetas)

    def laplace_deviance(self, eta, u, system):
        """``−2ℓ(η̂) + ‖û‖² + log|A(û)|`` from `modes`' output."""
        return self._objective(eta, u) + system.logdet

    def state_at(self, x):
        """(û, the Laplace deviance, A⁻¹'s diagonal blocks per factor: the spherical
        modes' conditional variances) at x = (θ, β[, extra]) (`modes` sets the
        family's parameter from x)."""
        u, eta, system = self.modes(x)
        return (u, self.laplace_deviance(eta, u, system),
                system.inverse_diagonal_blocks(self.factors))

    def deviance(self, x):
        self.n_evals += 1
        try:
            u, eta, system = self.modes(x)
        except (np.linalg.LinAlgError, linalg.LinAlgError, FloatingPointError):
            return np.inf
        if not np.all(np.isfinite(eta)):
            return np.inf
        self.u = u  # warm start for the next evaluation
        return self.laplace_deviance(eta, u, system)

    def value_and_grad(self, x, step=1e-5):
        f = self.deviance(x)
        u0 = self.u.copy()
        g = np.empty(x.size)
        for j in range(x.size):
            e = np.zeros(x.size)
            e[j] = step * max(1.0, abs(x[j]))
            self.u = u0
            up = self.deviance(x + e)
            self.u = u0
            down = self.deviance(x - e)
            g[j] = (up - down) / (2.0 * e[j])
        self.u = u0
        return f, g

    def hessian(self, x, step=1e-4):
        """Central-difference Hessian of the deviance over (θ, β)."""
        k = x.size
        H = np.empty((k, k))
        f0 = self.deviance(x)
        u0 = self.u.copy()
        h = step * np.maximum(1.0, np.abs(x))

        def f(dx):
            self.u = u0
            return self.deviance(x + dx)

        for i in range(k):
            ei = np.zeros(k)
            ei[i] = h[i]
            H[i, i] = (f(ei) - 2.0 * f0 + f(-ei)) / h[i] ** 2
            for j in range(i):
                ej = np.zeros(k)
                ej[j] = h[j]
                H[i, j] = H[j, i] = (f(ei + ej) - f(ei - ej) - f(-ei + ej) + f(-ei - ej)) / (
                    4.0 * h[i] * h[j])
        self.u = u0
        return H

    def laplace_objective(self):
        """The Newton search's objective: values, central-difference gradients and
        Hessian."""
        return SimpleNamespace(value=self.deviance, value_and_grad=self.value_and_grad,
                               hessian=self.hessian)

    def joint_modes(self, thetas, beta, tol=1e-10, max_iter=100):
        """(β̂, û) maximizing ``ℓ − ‖u‖²/2`` jointly at θ (lme4's ``nAGQ = 0`` PIRLS):
        Newton steps on the blocked system with the fixed effects' Schur complement
        ``X'VX − K'A⁻¹K``, ``K = Λ'Z'VX``, from the last modes (from 0 where that fails).
        Returns (β̂, û, the penalized deviance ``−2ℓ + ‖û‖² + log|A|``)."""
        return self._from_zero_on_failure(
            lambda u0: self._joint_modes_from(thetas, beta, u0, tol, max_iter))

    def _joint_modes_from(self, thetas, beta, u0, tol, max_iter):
        p = beta.size

        def eta_of(v):
            return self.offset + self.X @ v[:p] + self.Z @ self._lam(thetas, v[p:])

        u, eta, h = self._warm_start(lambda v: eta_of(np.concatenate([beta, v])), u0)
        for _ in range(max_iter):
            l1, v = self._working_weights(eta)
            wv = self.w * v
            system = self._system_of(self._cross(wv), thetas)
            resid = self.w * l1
            K = self._lam(thetas, np.asarray(self.ZT @ (self.X * wv[:, None])),
                          transpose=True)
            d_b, d_u, decrement = self._joint_step(
                system, wv, resid, K,
                self._lam(thetas, self.ZT @ resid, transpose=True) - u)
            converged = decrement < tol * (1.0 + abs(h))
            h, x, eta = self._halved_step(
                h, np.concatenate([beta, u]), np.concatenate([d_b, d_u]), eta_of,
                whole=converged)
            beta, u = x[:p], x[p:]
            if converged:
                break
        self.u = u
        system = self._final_system(eta, thetas)
        self._joint = (beta, system, np.concatenate(thetas))
        return beta, u, h + system.logdet

    def fit(self, theta0, beta0, max_iter=500, extra0=(), tol=1e-8):
        """lme4's two stages: θ by the ``nAGQ = 0`` deviance (β and u by joint PIRLS, the
        family's parameter at ``extra0``; L-BFGS-B with forward differences), then
        x = (θ, β, extra) by the Laplace deviance from there (Newton steps with
        `hessian`, BFGS-updated; gradients by central differences — with the exact
        gradient of a subclass (``exact_gradient``): L-BFGS on log θ, then Newton steps on
        differences of the gradient). Returns the
        second stage's `OptSummary`: its Hessian, fresh
        near the optimum, gives the standard errors; ``n_iter`` counts both stages,
        ``n_evals`` every deviance evaluation (gradients and Hessians included)."""
        extra0 = np.asarray(extra0, dtype=float)
        if extra0.size:
            self.fpar = float(np.exp(extra0[0]))
        state = {"beta": np.asarray(beta0, dtype=float)}

        def stage1(theta):
            self.n_evals += 1
            try:
                beta, _, dev = self.joint_modes(self.thetas(theta), state["beta"])
            except (np.linalg.LinAlgError, linalg.LinAlgError):
                return np.inf
            if np.isfinite(dev):
                state["beta"] = beta
            return dev

        terms = [f.term for f in self.factors]
        if self.exact_gradient:
            self._joint = (state["beta"], None, None)  # the joint modes' start
            stage = SimpleNamespace(value=stage1, value_and_grad=self.joint_value_and_grad)
        else:
            stage = SimpleNamespace(value=stage1)
        # with the exact gradient on log θ (as the LMM's scalar path): on θ itself the first
        # step could land on the bound θ = 0, where the gradient is 0 (d depends on θ²) and
        # the search stopped there — variances of 0 on Poisson fits with small ones
        # (a trial θ where the modes diverge has an infinite deviance; SciPy's forward
        # differences then subtract inf from inf and warn: the search backs off there)
        with np.errstate(invalid="ignore"):
            first = (minimize(stage, ThetaSpace(terms, theta0), method="log-lbfgs",
                              max_iter=max_iter, blas_threads=None,
                              stop_step=STAGE1_STOP_STEP) if self.exact_gradient
                     else minimize(stage, ThetaSpace(terms, theta0), method="lbfgs",
                                   tol=1e-5, max_iter=max_iter, blas_threads=None,
                                   ftol=1e-10, eps=1e-6))
        if self.exact_gradient:
            state["beta"] = self._joint[0]
        if not (self.exact_gradient and np.array_equal(self._joint[2], first.theta_final)):
            stage1(first.theta_final)  # β at the stage-1 θ (unless its last evaluation)
        space = ParamSpace(ThetaSpace(terms, first.theta_final),
                           after=np.concatenate([state["beta"], extra0]))
        objective = self.laplace_objective()
        opt = minimize(objective, space, method="newton", tol=tol, max_iter=max_iter,
                       blas_threads=None, costly_gradient=not self.exact_gradient,
                       hessian=(self.start_hessian(space.start()) if self.exact_gradient
                                else None))
        opt.optimizer = f"L-BFGS-B over θ (nAGQ = 0 deviance), then {opt.optimizer}"
        opt.n_iter += first.n_iter
        opt.n_evals = self.n_evals
        return opt
