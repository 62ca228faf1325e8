"""The Laplace deviance of a GLMM with several intercept-only factors (``(1|a) + (1|b) + …``,
the crossed and nested designs of big data: users × items, VerbAgg's subjects × items) and
its exact gradient, for families whose Newton information is the log determinant's (the
canonical links: binomial logit, Poisson log).

Λ is diagonal (θ_k on factor k's columns), so ``A = ΛZ'VZΛ + I`` keeps one sparsity pattern
for every θ and every PIRLS step: the first factor's diagonal, its level-by-level table with
the other factors (``B``) and theirs among themselves, fixed once (`ScalarPattern`);
each step only recomputes the values (weighted counts of the rows in each cell) and the
blocked factorization of `skmixed._model.multilevel` (the first factor eliminated by
scalings, the rest one Schur complement, dense — crossed factors fill it).

The gradient of ``d(x) = −2ℓ(η̂) + ‖û‖² + log|A(η̂)|`` over x = (θ, β): the first two terms
by the envelope theorem (û is their minimizer); ``∂log|A|/∂θ_k`` at fixed η is
``(2/θ_k)(G_k − tr_k A⁻¹)`` (as the LMM's, since ``ΛZ'VZΛ A⁻¹ = I − A⁻¹``); through η̂ it
is ``Σ_i w_i v'_i h_i ∂η̂_i/∂x`` with ``h_i`` row i's leverage ``z̃_i'A⁻¹z̃_i`` and
``∂û/∂x = A⁻¹ ∂g/∂x`` (g: the mode's equation ``ΛZ'r − u = 0``), all directions at once by
one adjoint solve ``a = A⁻¹ΛZ's``. The leverages need A⁻¹ on the pattern only: the first
factor's diagonal and its cells with the others from ``F S_rr⁻¹`` on F's pattern
(`row_pattern_products`), the rest from ``S_rr⁻¹``.
"""

from types import SimpleNamespace

import numba
import numpy as np
from scipy import linalg, sparse

from .multilevel import PairRows, _schur_inverse, dense_rest
from .multilevel_glmm import MultiLaplace

__all__ = ["ScalarLaplace", "ScalarPattern", "exact_laplace_applies"]

#: evaluations whose modes, deviance and conditional variances are kept for the fit's
#: report (`ScalarLaplace.state_at`; two vectors of Q each)
STATES_KEPT = 16
#: the modes are accepted where a fresh system's Newton decrement is below this multiple of
#: |objective| (rounding leaves ~1e-33 on 1e5 crossed binomial rows)
ACCEPT_DECREMENT = 1e-25
#: a step by an older factorization is taken while the decrement falls at least this much
#: per step (ρ² for a contraction rate ρ) and reaches the acceptance within CHORD_STEPS
#: more; slower, the system is factored afresh (at 1e6 rows × 5,000 items a step costs
#: 0.1 s, a factorization 0.7 s)
CHORD_RATE = 0.1
CHORD_STEPS = 8


def exact_laplace_applies(factors, family, y, w):
    """Whether `ScalarLaplace` fits this model: every factor intercept-only, a
    canonical link (Newton's information is the Laplace log determinant's), no family
    parameter estimated with the fit, and a rest block dense by
    `dense_rest` (nested factors with thousands of outer
    levels have a sparse one: the general path's sparse LU). Returns the
    `ScalarPattern` when it applies, else None."""
    if not (all(f.term.q == 1 for f in factors) and len(factors) > 1
            and family.canonical and not family.linear
            and family.laplace_param(y, w) is None):
        return None
    pattern = ScalarPattern(factors)
    return pattern if dense_rest(pattern.B, pattern.R) else None


def _cells(keys):
    """Sorted distinct keys and each key's position among them."""
    uniq, pos = np.unique(keys, return_inverse=True)
    return uniq, pos.reshape(keys.shape)


class ScalarPattern:
    """The fixed pattern of ``Z'VZ`` for intercept-only factors, from the codes: ``B``
    (first factor's levels × the other factors' columns, CSR, columns sorted) and the rest
    block's lower triangle ``R`` (CSR), with each row's cell in each (``pos_b``: (K−1, n),
    ``pos_r``: one row per pair of other factors, diagonal pairs included), so that the
    values for row weights ``wv`` are bincounts (`values`)."""

    def __init__(self, factors):
        self.G = np.array([f.n_levels for f in factors], dtype=np.int64)
        self.codes1 = np.ascontiguousarray(factors[0].codes, dtype=np.int64)
        off = np.concatenate([[0], np.cumsum(self.G[1:])])
        self.rest_offsets = off
        self.Qr = int(off[-1])
        # each row's column among the rest (K−1, n)
        self.rcols = np.array([off[k - 1] + np.asarray(factors[k].codes, dtype=np.int64)
                               for k in range(1, len(factors))])
        Qr = self.Qr
        uniq, self.pos_b = _cells(self.codes1[None, :] * Qr + self.rcols)
        self.B = self._csr(uniq // Qr, uniq % Qr, (self.G[0], Qr))
        self.B_rows = np.repeat(np.arange(self.B.shape[0]), np.diff(self.B.indptr))
        K1 = self.rcols.shape[0]
        self.pairs = [(k, l) for k in range(K1) for l in range(k + 1)]
        keys = np.array([self.rcols[k] * Qr + self.rcols[l] for k, l in self.pairs])
        uniq, self.pos_r = _cells(keys)
        self.R = self._csr(uniq // Qr, uniq % Qr, (Qr, Qr))
        self.pair_rows = PairRows(self.B)

    @staticmethod
    def _csr(rows, cols, shape):
        indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=shape[0]))])
        return sparse.csr_matrix((np.zeros(rows.size), cols.astype(np.int32),
                                  indptr.astype(np.int32)), shape=shape)

    def values(self, wv):
        """(first factor's Σ wv per level, B's values, R's values) for row weights wv."""
        d1 = np.bincount(self.codes1, weights=wv, minlength=int(self.G[0]))
        b = np.bincount(self.pos_b.ravel(), weights=np.tile(wv, self.pos_b.shape[0]),
                        minlength=self.B.nnz)
        r = np.bincount(self.pos_r.ravel(), weights=np.tile(wv, self.pos_r.shape[0]),
                        minlength=self.R.nnz)
        return d1, b, r


class ScalarSystem:
    """``A = ΛMΛ + I`` for the pattern's values at θ, factored: ``l = √(θ₁² m₁ + 1)``
    per first-factor level, ``F = diag(θ₁/l) B diag(λ_r)``, the Schur complement
    ``S_rr = λ_r R λ_r + I − F'F`` (dense, Cholesky in ``buffer``). `solve`,
    ``logdet`` and, once, A⁻¹ on the pattern (`inverse_on_pattern`)."""

    def __init__(self, pattern, theta, values, buffer):
        d1, bvals, rvals = values
        self.pattern, self.theta = pattern, theta
        self.lamr = np.repeat(theta[1:], pattern.G[1:])
        B, R = pattern.B, pattern.R
        self.l = np.sqrt(theta[0] ** 2 * d1 + 1.0)
        self.Fdata = (theta[0] / self.l)[pattern.B_rows] * bvals * self.lamr[B.indices]
        self.F = sparse.csr_matrix((self.Fdata, B.indices, B.indptr), shape=B.shape)
        pattern.pair_rows.schur_lower(self.lamr, R.indptr, R.indices, rvals, self.Fdata,
                                      buffer, numba.get_num_threads())
        L, info = linalg.lapack.dpotrf(buffer, lower=1, clean=0, overwrite_a=1)
        if info != 0 or not np.all(np.isfinite(np.diag(L))):
            raise linalg.LinAlgError("the Laplace system is not positive definite")
        self.L = L
        self.logdet = 2.0 * (np.log(self.l).sum() + np.log(np.diag(L)).sum())
        self.joint = None  # the joint (β, u) step's β part (ScalarLaplace.joint_modes)

    def solve(self, b):
        """A⁻¹b (b: (Q,) or (Q, m)); after `inverse_on_pattern` by S_rr⁻¹."""
        G1 = self.l.size
        scale = self.l if b.ndim == 1 else self.l[:, None]
        b1 = b[:G1] / scale
        rhs = b[G1:] - self.F.T @ b1
        if self.L is not None:
            xr = linalg.cho_solve((self.L, True), rhs, check_finite=False)
        elif not rhs.size:
            xr = rhs
        elif rhs.ndim == 1:
            xr = linalg.blas.dsymv(1.0, self.Sinv, rhs, lower=1)
        else:
            xr = linalg.blas.dsymm(1.0, self.Sinv, rhs, lower=1)
        return np.concatenate([(b1 - self.F @ xr) / scale, xr])

    def inverse_on_pattern(self):
        """A⁻¹'s diagonal (Q,), its first-factor × rest cells on B's pattern, S_rr⁻¹'s
        lower triangle (written over the factor: `solve` multiplies by it after;
        computed once)."""
        if self.L is None:
            return self._inverse
        Sinv = _schur_inverse(self.L)
        self.L, self.Sinv = None, Sinv
        B, rows = self.pattern.B, self.pattern.B_rows
        FS = np.empty(B.nnz)
        self.pattern.pair_rows.pattern_products(self.Fdata, Sinv, FS)
        quad = np.bincount(rows, weights=self.Fdata * FS, minlength=self.l.size)
        diag = np.concatenate([(1.0 + quad) / self.l ** 2, np.diag(Sinv)])
        cross = -FS / self.l[rows]  # (A⁻¹)_{1r} on B's pattern
        self._inverse = diag, cross, Sinv
        return self._inverse

    def inverse_diagonal_blocks(self, factors):
        """Per factor, A⁻¹'s diagonal as (G_k, 1, 1) blocks (the conditional variances of
        the spherical modes)."""
        diag = self.inverse_on_pattern()[0]
        edges = np.concatenate([[0], np.cumsum([f.n_levels for f in factors])])
        return [diag[a:b, None, None] for a, b in zip(edges[:-1], edges[1:])]


class ScalarLaplace(MultiLaplace):
    """`MultiLaplace` for intercept-only factors and
    a canonical link (`exact_laplace_applies`): the same deviance, the PIRLS steps on
    the fixed pattern (`ScalarSystem`), and the exact gradient (module docstring);
    the Newton search differences the gradient for its Hessian."""

    exact_gradient = True

    def __init__(self, X, y, m, offset, w, factors, family, pattern=None):
        super().__init__(X, y, m, offset, w, factors, family)
        self.pattern = ScalarPattern(factors) if pattern is None else pattern
        Qr = self.pattern.Qr
        self._buffer = np.zeros((Qr, Qr), order="F")
        self.codes = [np.asarray(f.codes, dtype=np.int64) for f in factors]
        self.edges = np.concatenate([[0], np.cumsum([f.n_levels for f in factors])])
        self._tangents, self._states = {}, {}
        self._reusable = None  # the last fresh system, while its factor is in the buffer

    @property
    def rest_columns(self):
        """Columns of the dense rest block."""
        return self.pattern.Qr

    def _theta(self, x):
        return np.asarray(x[:len(self.factors)], dtype=float)

    def _zlam(self, theta, u):
        """ZΛu per row."""
        out = np.zeros(self.y.shape[0])
        for k, c in enumerate(self.codes):
            out += theta[k] * u[self.edges[k] + c]
        return out

    def _lamzt(self, theta, r):
        """ΛZ'r (Q,)."""
        return np.concatenate([theta[k] * np.bincount(c, weights=r, minlength=f.n_levels)
                               for k, (c, f) in enumerate(zip(self.codes, self.factors))])

    def _lamzt_columns(self, theta, wv):
        """``K = ΛZ'VX``: `_lamzt` of each weighted fixed column (Q × p)."""
        X = self.X
        return np.column_stack([self._lamzt(theta, wv * X[:, j]) for j in range(X.shape[1])])

    def _system(self, theta, eta):
        ll, l1, v, v1 = self.family.laplace_terms(self.y, eta, self.m, self.fpar)
        wv = self.w * v
        self._reusable = None  # its factor (in the shared buffer) is overwritten
        return ScalarSystem(self.pattern, theta, self.pattern.values(wv),
                            self._buffer), (ll, l1, v, v1)

    def _h(self, ll, u):
        return -2.0 * float(self.w @ ll) + float(u @ u)

    def _start(self, key, point, v, eta_of):
        """The modes' start at ``point`` (x for `modes`, θ for `joint_modes`):
        the last modes ``v``, or their first-order prediction ``v₀ + D (point − point₀)``
        from the last gradient's point (``_tangents[key]``, `_tangent`) where that
        has the lower objective — a finite-difference step's modes to ~1e-10, a Newton
        step's to a fraction of the PIRLS steps. Returns (v, η, h)."""
        eta = eta_of(v)
        h = self._objective(eta, v[v.size - self.u.size:])
        tangent = self._tangents.get(key)
        if tangent is not None:
            point0, v0, D = tangent
            v_p = v0 + D @ (point - point0)
            with np.errstate(over="ignore", invalid="ignore"):
                eta_p = eta_of(v_p)
                h_p = self._objective(eta_p, v_p[v_p.size - self.u.size:])
            if np.isfinite(h_p) and h_p < h:
                return v_p, eta_p, h_p
        return v.copy(), eta, h

    def _tangent(self, key, point, v, system, theta, joint):
        """Records ∂v̂/∂point at the modes for `_start`: the Newton matrix's inverse
        times ∂g/∂point, g the modes' equations — ``ΛZ'r(η) − u`` (and ``X'r(η)``
        jointly), ``∂r/∂η = −wv`` (canonical link): along θ_k ``Z_k'r − ΛZ'(wv ∘ Z_k u_k)``
        (and ``−X'(wv ∘ Z_k u_k)``), along β_j ``−ΛZ'(wv ∘ x_j)``; solves by S_rr⁻¹
        (formed for the gradient)."""
        _, l1, wv, _ = self._terms
        r, wv = self.w * l1, self.w * wv
        u = v[v.size - self.u.size:]
        K = len(self.factors)
        zu = [u[self.edges[k] + c] * wv for k, c in enumerate(self.codes)]
        g_u = np.empty((u.size, point.size))
        for k, c in enumerate(self.codes):
            g_u[:, k] = -self._lamzt(theta, zu[k])
            g_u[self.edges[k]:self.edges[k + 1], k] += np.bincount(
                c, weights=r, minlength=self.factors[k].n_levels)
        if joint:
            g_b = -self.X.T @ np.column_stack(zu)
            d_b, d_u = self._joint_solve(system, self._joint_of(system, theta, wv), g_b, g_u)
            D = np.vstack([d_b, d_u])
        else:
            g_u[:, K:] = -self._lamzt_columns(theta, wv)
            D = system.solve(g_u)
        self._tangents[key] = (point.copy(), v.copy(), D)

    def _solve_modes(self, theta, v, eta, h, eta_of, step_of, tol, max_iter):
        """Newton's method on the modes' equations (``v``: u, or (β, u) jointly) with the
        factorization refreshed only where it pays: a step by the last factorization (the
        previous evaluation's, or one made at an earlier step) costs a row pass and a solve,
        a new one a dense Cholesky of the rest block (a second at 1e6 rows × 5,000 items).
        A step by an older factorization is taken while it lowers the objective and
        `_chord_pays`; otherwise, and once the decrement is below the acceptance, the
        system is factored at the current point.
        The modes are accepted where the system is fresh and its Newton decrement is below
        `ACCEPT_DECREMENT` × |objective| (the gradient's formulas take them as exact:
        decrements of 1e-18 |d| left gradient errors of 4e-4, a review, 2026-12-03), or,
        where rounding keeps it above that, after a fresh Newton step from a decrement below
        ``tol`` × |objective| (the general path's rule). ``step_of(system, terms, v)``
        returns (the step, its decrement). Returns (v, η, the fresh system at v)."""
        system, fresh = self._reusable, False
        if system is None or not np.isfinite(h):
            system, terms = self._system(theta, eta)
            fresh = True
        else:
            terms = self.family.laplace_terms(self.y, eta, self.m, self.fpar)
        previous, final = np.inf, False
        for _ in range(max_iter):
            accept = ACCEPT_DECREMENT * (1.0 + abs(h))
            try:
                step, decrement = step_of(system, terms, v)
            except (np.linalg.LinAlgError, linalg.LinAlgError, ValueError):
                if fresh:
                    raise
                decrement = np.inf  # an older matrix that fails: factor afresh
            if fresh and decrement <= accept:
                break
            # below tol a step is taken whole: the objective's comparison is rounding there
            # (Poisson counts of 1e7: −2ℓ to ~1e-7, halvings and rejected steps left modes
            # whose gradient was off by 0.13 and an intercept SE of 0.044 for 0.285; a
            # review, 2026-12-03); the modes' objective is convex (canonical link)
            converged = decrement < tol * (1.0 + abs(h))
            if fresh:
                if converged:
                    v = v + step
                    eta = eta_of(v)
                else:
                    h, v, eta = self._halved_step(h, v, step, eta_of)
                terms = self.family.laplace_terms(self.y, eta, self.m, self.fpar)
                if converged:
                    h = self._h(terms[0], v[v.size - self.u.size:])
                # the general path's rule: after a Newton step from a decrement below tol,
                # the modes are final once the system is fresh (steps by this factorization
                # until then, while they converge fast)
                final = final or converged
                fresh, previous = False, decrement
                continue
            if self._chord_pays(decrement, previous, 0.01 * accept):
                v_new = v + step
                with np.errstate(over="ignore", invalid="ignore"):
                    eta_new = eta_of(v_new)
                    terms_new = self.family.laplace_terms(self.y, eta_new, self.m, self.fpar)
                    h_new = self._h(terms_new[0], v_new[v_new.size - self.u.size:])
                if h_new <= h + 1e-12 * abs(h) or (converged and np.isfinite(h_new)):
                    h, v, eta, terms, previous = h_new, v_new, eta_new, terms_new, decrement
                    continue
            # the older factorization converges too slowly, or its step misleads: factor
            # at the current point (no step)
            system, terms = self._system(theta, eta)
            if final:
                break
            fresh, previous = True, np.inf
        else:
            if not fresh:
                system, terms = self._system(theta, eta)
        self._terms, self._reusable = terms, system
        return v, eta, system

    @staticmethod
    def _chord_pays(decrement, previous, floor):
        """Whether to take another step by an older factorization: its decrement is still
        above ``floor`` and, after the first, fell at least `CHORD_RATE`-fold on the
        last step, at a rate that reaches ``floor`` within `CHORD_STEPS` more."""
        if not floor < decrement < np.inf:
            return False
        if not np.isfinite(previous):
            return True
        rate = decrement / previous
        return rate <= CHORD_RATE and np.log(floor / decrement) / np.log(rate) <= CHORD_STEPS

    def modes(self, x, tol=1e-10, max_iter=100):
        """û at (θ, β) by `_solve_modes` on the fixed pattern, from `_start`;
        returns (û, η̂, the system at û)."""
        theta, beta = self._theta(x), x[len(self.factors):]
        base = self.offset + self.X @ beta

        def eta_of(v):
            return base + self._zlam(theta, v)

        def step_of(system, terms, u):
            grad = self._lamzt(theta, self.w * terms[1]) - u
            step = system.solve(grad)
            return step, float(step @ grad)

        u, eta, h = self._start("laplace", x, self.u, eta_of)
        return self._solve_modes(theta, u, eta, h, eta_of, step_of, tol, max_iter)

    def _joint_of(self, system, theta, wv):
        """The joint Newton system's β part (`_joint_factor`, ``K = ΛZ'VX`` by
        per-level sums of each column) kept with the system: formed at its first use, at
        the system's own point (a fresh system is used first where it was factored), and
        reused by the steps by it as an older factorization and by the gradient and tangent
        at the modes."""
        if system.joint is None:
            system.joint = self._joint_factor(system, wv, self._lamzt_columns(theta, wv))
        return system.joint

    def joint_modes(self, thetas, beta, tol=1e-10, max_iter=100):
        """(β̂, û) jointly at θ (lme4's ``nAGQ = 0``) as the base class's, the Newton
        system on the fixed pattern (``K = ΛZ'VX`` by per-level sums of each column), by
        `_solve_modes` from `_start`."""
        theta = np.concatenate(thetas)
        X, w, p = self.X, self.w, beta.size

        def eta_of(v):
            return self.offset + X @ v[:p] + self._zlam(theta, v[p:])

        def step_of(system, terms, v):
            # a step by an older factorization solves with the β part of the point where it
            # was formed (a chord step: one solve, no weighted column sums)
            r = w * terms[1]
            g_b, g_u = X.T @ r, self._lamzt(theta, r) - v[p:]
            d_b, d_u = self._joint_solve(system, self._joint_of(system, theta, w * terms[2]),
                                         g_b, g_u)
            return np.concatenate([d_b, d_u]), float(d_u @ g_u + d_b @ g_b)

        x, eta, h = self._start("joint", theta, np.concatenate([beta, self.u]), eta_of)
        x, eta, system = self._solve_modes(theta, x, eta, h, eta_of, step_of, tol, max_iter)
        beta, u = x[:p], x[p:]
        self.u = u
        self._joint = (beta, system, theta)
        return beta, u, self._h(self._terms[0], u) + system.logdet

    def joint_value_and_grad(self, theta):
        """The ``nAGQ = 0`` deviance over θ (β and u minimizing it jointly, from the last
        joint modes: ``_joint``, set by ``fit`` at the start) and its exact gradient: as
        `value_and_grad`'s, with the adjoint through the joint Newton system (β moves
        with θ too)."""
        theta = np.asarray(theta, dtype=float)
        self.n_evals += 1
        try:
            beta, u, f = self.joint_modes([theta], self._joint[0])
        except (np.linalg.LinAlgError, linalg.LinAlgError, FloatingPointError):
            return np.inf, np.zeros(theta.size)
        if not np.isfinite(f):
            return np.inf, np.zeros(theta.size)
        system = self._joint[1]
        try:
            g = self._gradient(theta, u, system, joint=True)[:theta.size]
        except (np.linalg.LinAlgError, linalg.LinAlgError):
            return np.inf, np.zeros(theta.size)
        self._tangent("joint", theta, np.concatenate([beta, u]), system, theta, joint=True)
        return f, g


    def laplace_deviance(self, eta, u, system):
        return self._h(self._terms[0], u) + system.logdet

    def value_and_grad(self, x):
        """The Laplace deviance and its exact gradient over x = (θ, β) (an x among the
        last `STATES_KEPT` evaluated: kept)."""
        x = np.asarray(x, dtype=float)
        kept = self._states.get(x.tobytes())
        if kept is not None:
            return kept[1], kept[3].copy()
        self.n_evals += 1
        try:
            u, eta, system = self.modes(x)
        except (np.linalg.LinAlgError, linalg.LinAlgError, FloatingPointError):
            return np.inf, np.zeros(x.size)
        if not np.all(np.isfinite(eta)):
            return np.inf, np.zeros(x.size)
        self.u = u
        f = self._h(self._terms[0], u) + system.logdet
        try:
            g = self._gradient(self._theta(x), u, system)
        except (np.linalg.LinAlgError, linalg.LinAlgError):
            return np.inf, np.zeros(x.size)  # e.g. β's Schur complement singular
        # what the fit reports at its optimum, usually one of the last evaluations (the
        # Newton search's last point, or the one before its rejected last step)
        self._states[x.tobytes()] = (u, f, system.inverse_diagonal_blocks(self.factors),
                                     g.copy())
        # x's system (S_rr⁻¹ in the shared buffer): valid until the next evaluation
        self._system_at = (x.copy(), system)
        while len(self._states) > STATES_KEPT:
            self._states.pop(next(iter(self._states)))
        self._tangent("laplace", x, u, system, self._theta(x), joint=False)
        return f, g

    def state_at(self, x):
        """As the base class's, kept from `value_and_grad` when it evaluated x
        among its last `STATES_KEPT` (no PIRLS and inverse again)."""
        kept = self._states.get(np.asarray(x, dtype=float).tobytes())
        return kept[:3] if kept is not None else super().state_at(x)

    def start_hessian(self, x, rel_step=1e-5):
        """A first Hessian for the Newton search over x = (θ, β), from K + 1 evaluations
        instead of K + p + 1: the θ columns by forward differences of the exact gradient
        (as the search's own), the β block ``2 (X'VX − K'A⁻¹K)`` — the curvature of
        ``−2ℓ + ‖u‖²`` with u profiled out, exact but for log|A|'s (of order the number of
        levels, not rows) — from the system at x. The search's BFGS updates and its fresh
        Hessian at the end (the standard errors) do not depend on it. None where x's
        deviance is not finite, or x was kept from an earlier evaluation (its system's
        buffer since overwritten): the search's own differences then."""
        x = np.asarray(x, dtype=float)
        f, g = self.value_and_grad(x)
        x_at, system = getattr(self, "_system_at", (None, None))
        if not np.isfinite(f) or not np.array_equal(x_at, x):
            return None
        K = len(self.factors)
        theta, wv = self._theta(x), self.w * self._terms[2]
        Kx = self._lamzt_columns(theta, wv)
        H = np.zeros((x.size, x.size))
        H[K:, K:] = 2.0 * ((self.X * wv[:, None]).T @ self.X - Kx.T @ system.solve(Kx))
        for k in range(K):
            h = rel_step * max(1.0, abs(x[k]))
            e = np.zeros(x.size)
            e[k] = h
            f_k, g_k = self.value_and_grad(x + e)
            if not np.isfinite(f_k):
                return None
            H[:, k] = (g_k - g) / h
        H[:K, K:] = H[K:, :K].T
        H[:K, :K] = 0.5 * (H[:K, :K] + H[:K, :K].T)
        return H

    def _gradient(self, theta, u, system, joint=False):
        """The gradient over (θ, β) at the modes u of the last `modes` (``joint``:
        of `joint_modes`, β among the modes: the adjoint solves the joint system).
        Overwrites the system's factor (A⁻¹ on the pattern)."""
        K = len(self.factors)
        _, l1, v, v1 = self._terms
        r, wv = self.w * l1, self.w * v
        diag, cross, Sinv = system.inverse_on_pattern()
        s = self.w * v1 * self._leverages(theta, diag, cross, Sinv)
        # a = (the modes' Newton matrix)⁻¹ × (the derivative of log|A| along η, mapped to
        # the modes): za = ZΛa (+ X a_β jointly)
        zs = self._lamzt(theta, s)
        if joint:
            a_b, a_u = self._joint_solve(system, self._joint_of(system, theta, wv),
                                         self.X.T @ s, zs)
            za = self.X @ a_b + self._zlam(theta, a_u)
        else:
            a_u = system.solve(zs)
            za = self._zlam(theta, a_u)
        uk = [u[self.edges[k] + c] for k, c in enumerate(self.codes)]
        ak = [a_u[self.edges[k] + c] for k, c in enumerate(self.codes)]
        G = np.diff(self.edges)
        tr = np.add.reduceat(diag, self.edges[:-1])
        g = np.zeros(K + self.X.shape[1])
        for k in range(K):
            if theta[k] > 1e-8:  # θ_k = 0 is stationary (d depends on θ_k²): gradient 0
                # at fixed modes (envelope), log|A| at fixed η, log|A| through the modes
                g[k] = (-2.0 * (r @ uk[k]) + 2.0 * (G[k] - tr[k]) / theta[k]
                        + s @ uk[k] + r @ ak[k] - (za * wv) @ uk[k])
        g[K:] = -2.0 * (self.X.T @ r) + self.X.T @ (s - wv * za)
        return g

    def _leverages(self, theta, diag, cross, Sinv):
        """``h_i = z̃_i'A⁻¹z̃_i`` of every row from A⁻¹ on the pattern."""
        p = self.pattern
        c1 = self.codes[0]
        h = theta[0] ** 2 * diag[c1]
        for k in range(p.rcols.shape[0]):
            h += 2.0 * theta[0] * theta[k + 1] * cross[p.pos_b[k]]
        for (k, l) in p.pairs:
            rk, rl = p.rcols[k], p.rcols[l]
            term = theta[k + 1] * theta[l + 1] * Sinv[rk, rl]  # rk ≥ rl: the lower triangle
            h += term if k == l else 2.0 * term
        return h

    def laplace_objective(self):
        """The Newton search's objective: values, exact gradients (its Hessian by their
        differences)."""
        return SimpleNamespace(value=self.deviance, value_and_grad=self.value_and_grad)
