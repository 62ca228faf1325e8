"""Gaussian additive models by exact REML in their mixed-model form.

Each smooth ``s_j(z) = B_j(z) Z_j c_j`` (a basis of `skmixed._model.bases`) splits
into unpenalized null-space columns ``B_j Z_j F_j`` (fixed effects) and penalized range-space
columns ``B_j Z_j R_j`` whose coefficients ``b_j`` have the penalty ``λ_j ‖b_j‖²``. With
``b_j = σ τ_j u_j``, ``u_j ~ N(0, I)``, ``λ_j = 1/τ_j²``, the model is a linear mixed model
with one scalar relative standard deviation ``τ_j`` per smooth, and the restricted likelihood
is profiled over σ and β as lme4's (Bates et al. 2015):

    d_R(τ) = log|L|² + log|R_X|² + (n − p)(1 + log(2π r²/(n − p)))

with ``L L' = Λ R'R Λ + I``, R_X the Cholesky factor of the fixed effects' Schur complement
and r² the penalized residual sum of squares. ``d_R / 2`` is mgcv's REML score for the same
model (the penalty eigenvalues cancel between mgcv's ``log|X'X + S_λ|`` and ``log|S_λ|₊``).
Everything after one pass over the rows uses the cross-products of ``[X, R, y]`` only —
computed exactly, or from binned covariates as ``bam(discrete = TRUE)``
(`skmixed._model.additive_cross`). Binomial and Poisson models iterate REML fits of the
PIRLS working model (`skmixed._model.additive_pirls`, as ``bam``'s fREML).
"""

import copy
from dataclasses import dataclass, field, replace
from types import SimpleNamespace

import numpy as np
from scipy import linalg

from .._kernels.threads import single_threaded_blas
from .additive_cross import CrossProducts
from .optimize import minimize
from .significance import alternative_edf_terms, penalized_term_test, smooth_test
from .spaces import BoxSpace
from .terms import RandomEffectTerm

__all__ = ["DenseREML", "REMLFit", "LOG_TAU_BOUNDS", "at_lower_bound",
           "search_again_from_inside"]

#: The bounds of the REML search over each log τ (σ-relative SD of a smooth or of a group's
#: random effect): a τ at the upper bound is e^10 ≈ 22,026 times σ.
LOG_TAU_BOUNDS = (-15.0, 10.0)


def at_lower_bound(log_tau, bounds=LOG_TAU_BOUNDS, margins=None, active=None):
    """Which log τ end at or near the search's lower bound — within 2 of it (λ ≥ e^26), or
    within 7 (λ ≥ e^16) for a tensor product's (``margins``: a mask of those τ) — a
    smooth or margin reduced to its null space, where the criterion is flat and a search may
    have stopped on the plateau, short of an interior optimum (the fits search again from
    inside; a Poisson te() stopped with a margin at log τ = −12.8, where a search from
    inside found a criterion 0.2 lower)."""
    log_tau = np.asarray(log_tau)
    width = 2.0 if margins is None else np.where(margins, 7.0, 2.0)
    low = log_tau <= bounds[0] + width
    return low if active is None else low & active  # ``active``: the log τ (not T's)


def search_again_from_inside(search, res, bounds=LOG_TAU_BOUNDS, margins=None, smooths=(),
                             active=None):
    """``res`` (an optimizer record) or, where some log τ ended `at_lower_bound`, the lower
    of it and ``search`` (x0 → record) started with those log τ at −2 and at −5: the
    criterion is flat there, and a search may have jumped past an interior optimum. When
    several ``smooths`` (per smooth its τ indices) have such τ, each is also moved inside
    on its own, the others kept (with select=True, a tensor product's margins stayed at
    the bound when every removed smooth was moved inside together: REML 318.7232 where
    moving the tensor product alone found 318.6430, below mgcv's 318.6431)."""
    low = at_lower_bound(res.theta_final, bounds, margins, active)
    for inside in (-2.0, -5.0) if low.any() else ():
        x0 = res.theta_final.copy()
        x0[low] = inside
        res = _lower(res, search(x0))
    touched = [taus for taus in smooths if low[list(taus)].any()]
    for taus in touched if len(touched) > 1 else ():
        x0 = res.theta_final.copy()
        mine = np.zeros(low.size, dtype=bool)
        mine[list(taus)] = low[list(taus)]
        x0[mine] = -2.0
        res = _lower(res, search(x0))
    return res


def _lower(res, again):
    """The record with the lower criterion; ``again`` only when lower beyond rounding (1e-11
    relative: a flat valley of a removed smooth holds optima 4e-10 apart)."""
    return again if again.fmin < res.fmin - 1e-11 * abs(res.fmin) else res


def dominance_basis(lam, pens, cache, tol=1e-9):
    """An orthonormal basis T of a several-penalty block in which ``T'P_λT`` (``P_λ =
    Σ_k λ_k P_k``) has a Cholesky factor accurate to rounding whatever the λ_k (a
    tensor-product margin's λ may be e^30 times another's): the range of the largest
    ``λ_k P_k`` first, then, within its null space, the range of the next, and so on (the
    idea of Wood's 2011 stable log-determinant of a sum of penalties); the huge entries
    then sit in leading diagonal blocks, whose Cholesky step leaves the rest exact.
    Returns T and the ``T'P_kT``. T depends on the penalties' order only: kept in
    ``cache`` (a dict of the block's, keyed by the order)."""
    order = tuple(np.argsort([-l * np.abs(P).max() for l, P in zip(lam, pens)],
                             kind="stable"))
    if order not in cache:
        rest, cols, ends = np.eye(pens[0].shape[0]), [], {}
        for k in order:
            e, V = linalg.eigh(rest.T @ pens[k] @ rest)
            big = e > tol * e.max() if e.size and e.max() > 0 else np.zeros(e.size, bool)
            cols.append(rest @ V[:, big])
            rest = rest @ V[:, ~big]
            ends[k] = sum(c.shape[1] for c in cols)
        T = np.hstack(cols + [rest])
        parts = []
        for k, P in enumerate(pens):
            part = T.T @ P @ T
            # P_k vanishes on the later groups (they lie in its null space): exact zeros
            # there, not rounding, which λ_k ≫ the later λ would blow up
            part[ends[k]:] = 0.0
            part[:, ends[k]:] = 0.0
            parts.append(part)
        cache[order] = (T, parts)
    return cache[order]


class Scales:
    """Λ, the map from the spherical u to a smooth's range-space coefficients b = Λu
    (block diagonal over the penalized blocks): ``τ_j I`` over a block whose penalty is the
    identity (one τ), and a square root of ``P_λ⁻¹`` over a block with several penalties
    (a tensor product's, one λ_k = 1/τ_k² each): ``Λ = T L⁻ᵀ`` with ``T'P_λT = LL'``
    (`dominance_basis`), so that ``b'P_λ b = u'u``.
    ``left(M)`` is ΛM (over M's first axis), ``right(M)`` MΛ (over its last); without
    several-penalty blocks both are products with the vector ``diag``. ``caches``: per
    block, `dominance_basis`'s (the REML's, kept across evaluations)."""

    def __init__(self, tau, sizes, penalties, caches):
        edges = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
        self.diag = np.ones(edges[-1])
        self.full = []  # (a, b, Λ block, λ, P_k list) per several-penalty block
        t = 0
        for j, pens in enumerate(penalties):
            a, b = edges[j], edges[j + 1]
            if pens is None:
                self.diag[a:b] = tau[t]
                t += 1
                continue
            lam = tau[t:t + len(pens)] ** -2.0
            t += len(pens)
            T, parts = dominance_basis(lam, pens, caches[j])
            L = linalg.cholesky(sum(l * P for l, P in zip(lam, parts)), lower=True)
            self.full.append((a, b, T @ linalg.solve_triangular(L, np.eye(b - a),
                                                                 lower=True).T, lam, pens))

    def left(self, M):
        out = self.diag.reshape((-1,) + (1,) * (np.ndim(M) - 1)) * M
        for a, b, Lam, _, _ in self.full:
            out[a:b] = Lam @ M[a:b]
        return out

    def right(self, M):
        out = M * self.diag
        for a, b, Lam, _, _ in self.full:
            out[..., a:b] = M[..., a:b] @ Lam
        return out

    def penalty(self):
        """The penalty of b over all penalized blocks (q × q): ``1/τ_j²`` on an identity
        block's diagonal, ``P_λ`` over a several-penalty block."""
        P = np.diag(np.where(self.diag > 0, 1.0 / self.diag ** 2, 0.0))
        for a, b, _, lam, pens in self.full:
            P[a:b, a:b] = sum(l * Pk for l, Pk in zip(lam, pens))
        return P


@dataclass
class REMLFit:
    """The REML fit: ``tau`` (σ-relative SD per smooth, then the groups'; λ = 1/τ²),
    ``sigma``, ``beta`` (fixed columns), ``b`` (range-space coefficients, Λu), ``group``
    (the groups' random intercepts, or None), ``criterion`` (d_R), ``edf`` (per smooth,
    then the group block), ``edf_total``, the optimizer's record (``result``, an
    `OptSummary`), ``cov``, the
    posterior (Bayesian) covariance of ``(β, b)`` (mgcv's Vp; the groups integrated out) and,
    with groups, ``group_cov = (cross, var)``: each group's random intercept's posterior
    covariance with ``(β, b)`` (G × (p + q)) and its variance (G,); ``reml``, the
    `DenseREML` it came from (for `significance`)."""

    tau: np.ndarray
    sigma: float
    beta: np.ndarray
    b: np.ndarray
    group: np.ndarray
    criterion: float
    edf: np.ndarray
    edf_total: float
    result: object
    cov: np.ndarray = None
    group_cov: tuple = None
    reml: object = field(default=None, repr=False)
    fpar: float = 0.0  # the family's parameter (a negative binomial's size), if any
    theta: np.ndarray = None  # the REML's parameters (log τ; T's off-diagonal as it is)

    def significance(self):
        """Per smooth: the reference df and Wood's test, ``(ref_df, tests)`` with
        ``tests[:, 0]`` the statistic (χ² scale) and ``tests[:, 1]`` the p-value
        (`DenseREML.significance`; computed on demand, once, for the final fit)."""
        return self.reml.significance(self)


def _null_space(G, tol=1e-10):
    """An orthonormal basis of the null space of G (symmetric positive semi-definite), from
    the eigenvalues of G scaled to a unit diagonal (so that it does not depend on the
    columns' units; those below ``tol`` × the largest count as 0: exact collinearity leaves
    ~1e-15)."""
    d = np.sqrt(np.maximum(np.diag(G), np.finfo(float).tiny))
    val, vec = linalg.eigh(G / np.outer(d, d))
    null = vec[:, val <= tol * val.max()] / d[:, None]
    return linalg.orth(null) if null.shape[1] else null


class DenseREML:
    """Profiled REML of ``y = Fβ + R b + Z g + e`` with ``b_j ~ N(0, σ²τ_j² I)`` per smooth
    and, when ``groups`` (integer codes) are given, per group i the random effects
    ``g_i = (g_i0, g_i1 … g_im)`` of the columns ``z = [1, x_1 … x_m]`` (a random intercept
    and independent random slopes), ``g_ia ~ N(0, σ²τ_{g,a}²)`` (mgcv's
    ``s(fac, bs = "re") + s(fac, x, bs = "re")``; lme4's ``(1 + x || fac)``), from
    cross-products only: one pass over the rows, no n × G indicator matrix.

    With ``Λ = diag(τ)`` (τ_j repeated over smooth j's columns, then the groups' τ_{g,a})
    the penalized system ``A = ΛW'WΛ + I`` over ``W = [R, Z]`` has a block-diagonal group
    part (r × r per group, r = 1 + m); it is eliminated first
    (``a_22,i = T Σ_i z z' T + I``) and the smooths' Schur complement
    ``S = A_11 − Σ_i A_12,i a_22,i⁻¹ A_21,i`` (q × q) is factored, so an evaluation costs
    O(G r² q + q³ + p³). Vectors over the group part are laid out group-major
    (index ``i r + a``).
    """

    def __init__(self, blocks, y, weights=None, groups=None, n_groups=None, slopes=None,
                 unstructured=False):
        cross = CrossProducts.dense(blocks.fixed, blocks.random, y, weights, groups, n_groups,
                                    slopes)
        self._setup(cross, blocks.sizes, blocks.fixed_of, blocks.smooth_blocks,
                    blocks.penalties, unstructured)

    @classmethod
    def from_crossproducts(cls, cross, sizes, fixed_of, smooth_blocks=None, penalties=None,
                           unstructured=False):
        """The REML from precomputed cross-products (e.g. `CrossProducts.binned`);
        ``sizes``, ``fixed_of``, ``smooth_blocks`` and ``penalties`` as `SmoothBlocks`';
        ``unstructured``: the groups' random effects correlated (`group_factor`)."""
        self = cls.__new__(cls)
        self._setup(cross, sizes, fixed_of, smooth_blocks, penalties, unstructured)
        return self

    def _setup(self, cross, sizes, fixed_of, smooth_blocks=None, penalties=None,
               unstructured=False):
        M, p, q = cross.M, cross.p, cross.q
        self.n, self.p, self.q = cross.n, p, q
        self.FF, self.RF, self.RR = M[:p, :p], M[p:p + q, :p], M[p:p + q, p:p + q]
        self.Fy, self.Ry, self.yy = M[:p, -1], M[p:p + q, -1], M[-1, -1]
        if p and np.linalg.matrix_rank(self.FF) < p:
            raise ValueError("the fixed part of the model (the parametric columns and the "
                             "smooths' unpenalized parts) is collinear: e.g. a parametric "
                             "copy of a smooth's covariate, two smooths of the same column, "
                             "or a numeric by variable (its smooth holds the variable itself) "
                             "that equals a parametric column or an indicator of a level; "
                             "drop one of them.")
        self.sizes = list(sizes)  # per penalized block
        # per block its penalties (None: the identity, one τ; else several P_k, a τ each)
        self.penalties = [None] * len(self.sizes) if penalties is None else list(penalties)
        # the block of each smooth τ (the groups' come after them)
        # per several-penalty block `dominance_basis`'s bases by the penalties' order
        self._dominance = [{} for _ in self.penalties]
        self.tau_block = [j for j, pens in enumerate(self.penalties)
                          for _ in range(1 if pens is None else len(pens))]
        self.n_smooth_tau = len(self.tau_block)
        self.fixed_of = list(fixed_of)  # per smooth
        # per smooth its τ (one; two with select=True: range and null space; a tensor
        # product's one per margin)
        self.smooth_blocks = ([[j] for j in range(self.n_smooth_tau)] if smooth_blocks is None
                              else [list(b) for b in smooth_blocks])
        self.G, self.r = 0, 0
        if cross.ZZ is not None:
            # per group: Z'Z (r × r) and the sums Z'F, Z'R, Z'y
            self.G, self.r = cross.ZZ.shape[:2]
            self.ZZ = cross.ZZ
            sums = cross.ZW
            self.ZF, self.ZR, self.Zy = sums[:, :, :p], sums[:, :, p:p + q], sums[:, :, -1]
        # the groups' parameters: r log τ (independent), or T's lower triangle column by
        # column (correlated: lme4's θ order), its diagonal on the log scale (`_linear`:
        # as it is, of either sign — `fit`'s last search, where a diagonal entry at the log
        # scale's bound has a zero gradient and would stay there)
        self._linear = False
        self.unstructured = bool(unstructured) and self.r > 1
        self._term = self._group_term(self.unstructured)
        # correlated effects are fitted on the slopes minus their (weighted) means, z' = Mz
        # (the model is the same; its parameters stay moderate: x + 1e5 put the intercept's
        # SD at x = 0 beyond the search's bounds); results map back, g = M'g'
        self._M = np.eye(self.r)
        if self.unstructured:
            self._M[1:, 0] = -self.ZZ[:, 0, 1:].sum(axis=0) / self.ZZ[:, 0, 0].sum()
            self.ZZ = self._M @ self.ZZ @ self._M.T
            self.ZF, self.ZR = self._M @ self.ZF, self._M @ self.ZR
            self.Zy = self.Zy @ self._M.T

    def _group_term(self, correlated):
        """The groups' T layout (`RandomEffectTerm`: its ``rows``/``cols``, lme4's θ
        order, and ``factor``)."""
        return RandomEffectTerm(tuple(str(a) for a in range(self.r)),
                                "unstructured" if correlated else "diagonal")

    @property
    def n_tau(self):
        return self.n_smooth_tau + self._term.n_theta

    @property
    def block_starts(self):
        """Where each penalized block's coordinates start among the q (and q at the
        end)."""
        return np.concatenate([[0], np.cumsum(self.sizes)]).astype(int)

    @property
    def extra_taus(self):
        """The τ of `extra_blocks` (one each, in order: after every smooth's)."""
        return range(self.n_smooth_tau - len(self.extra_blocks), self.n_smooth_tau)

    @property
    def _t_diagonal(self):
        """Which parameters are diagonal entries of the groups' T."""
        return np.concatenate([np.zeros(self.n_smooth_tau, dtype=bool),
                               self._term.rows == self._term.cols])

    @property
    def log_mask(self):
        """Which parameters are on the log scale (all but a correlated block's
        off-diagonal entries of T, and its diagonal in `_linear` mode)."""
        return (np.arange(self.n_tau) < self.n_smooth_tau) | (
            self._t_diagonal & (not self._linear))

    def natural(self, theta):
        """The parameters on their natural scale: τ = e^θ on the log ones, T's other
        entries as they are (lme4's θ for the groups)."""
        theta = np.asarray(theta, dtype=float)
        return np.where(self.log_mask, np.exp(np.where(self.log_mask, theta, 0.0)), theta)

    def reported(self, theta):
        """`natural`, with a correlated block's T in the slopes' own columns: the lower
        triangular L with LL' = M'TT'M (from the QR decomposition of (M'T)'; lme4's θ)."""
        out = self.natural(theta)
        if self.unstructured:
            _, R = np.linalg.qr((self._M.T @ self.group_factor(theta)).T)
            out[self.n_smooth_tau:] = self._term.canonical(R.T[self._term.rows,
                                                                 self._term.cols])
        return out

    def search_bounds(self, bounds=LOG_TAU_BOUNDS):
        """Per parameter the search's (lower, upper): ``bounds`` for the log τ, ±e^upper
        for T's other entries (σ-relative; in `_linear` mode its diagonal too: the sign of a
        column of T does not change TT', and at 0 a bound would stop the search)."""
        wide = np.exp(bounds[1])
        return (np.where(self.log_mask, bounds[0], -wide),
                np.where(self.log_mask, bounds[1], wide))

    def group_factor(self, theta):
        """T (r × r lower triangular), the groups' random effects ``g_i = σ T u_i``
        (``Cov g_i = σ² T T'``): diagonal for independent slopes."""
        return self._term.factor(self.natural(theta)[self.n_smooth_tau:])

    @property
    def margin_taus(self):
        """A mask over the τ: those of a tensor product (its margins', and with
        select=True its null space's)."""
        mask = np.zeros(self.n_tau, dtype=bool)
        for taus in self.smooth_blocks:
            if any(self.penalties[self.tau_block[t]] is not None for t in taus):
                mask[taus] = True
        return mask

    def scales(self, log_tau):
        """Λ at τ (`Scales`)."""
        tau = np.exp(np.asarray(log_tau, dtype=float)[:self.n_smooth_tau])
        return Scales(tau, self.sizes, self.penalties, self._dominance)

    def _system(self, log_tau):
        """The pieces of A and of the right-hand sides at τ, and a solver for A."""
        tau = self.natural(log_tau)
        lam = self.scales(log_tau)
        A11 = lam.right(lam.right(self.RR).T).T + np.eye(self.q)
        K1 = lam.right(self.RF.T).T
        g1 = lam.right(self.Ry)
        if self.G == 0:
            S = linalg.cholesky(A11, lower=True)
            logdet = 2.0 * np.log(np.diag(S)).sum()

            def solve(r1, r2):
                return linalg.cho_solve((S, True), r1), r2

            return dict(lam=lam, tau_g=None, solve=solve, logdet=logdet, K=(K1, None),
                        g=(g1, None), S=S)
        G, r = self.G, self.r
        if self.unstructured:
            return self._correlated_system(log_tau, lam, A11, K1, g1)
        tg = tau[self.n_smooth_tau:]
        a22 = tg[None, :, None] * self.ZZ * tg[None, None, :] + np.eye(r)
        if r == 1:
            Dinv = 1.0 / a22
            logdet_22 = np.log(a22).sum()
        else:
            Dinv = np.linalg.inv(a22)
            logdet_22 = np.linalg.slogdet(a22)[1].sum()
        A21 = lam.right(tg[None, :, None] * self.ZR).reshape(G * r, self.q)
        C = (Dinv @ A21.reshape(G, r, self.q)).reshape(G * r, self.q)  # D⁻¹A_21
        S = linalg.cholesky(A11 - A21.T @ C, lower=True)
        logdet = logdet_22 + 2.0 * np.log(np.diag(S)).sum()
        K2 = (tg[None, :, None] * self.ZF).reshape(G * r, self.p)
        g2 = (tg[None, :] * self.Zy).reshape(G * r)

        def solve(r1, r2):
            t2 = (Dinv @ r2.reshape(G, r, -1)).reshape(r2.shape)
            x1 = linalg.cho_solve((S, True), r1 - A21.T @ t2)
            return x1, t2 - C @ x1

        return dict(lam=lam, tau_g=tg, T=np.diag(tg), solve=solve, logdet=logdet,
                    K=(K1, K2), g=(g1, g2), S=S, A21=A21, C=C, Dinv=Dinv)

    def _correlated_system(self, log_tau, lam, A11, K1, g1):
        """`_system`'s group part for correlated random effects: with T = `group_factor`,
        ``a_22,i = T'Z_i'Z_iT + I``, ``A_21,i = T'Z_i'RΛ``, ``K_2,i = T'Z_i'F``,
        ``g_2,i = T'Z_i'y``."""
        G, r = self.G, self.r
        T = self.group_factor(log_tau)
        a22 = np.einsum("ba,gbc,cd->gad", T, self.ZZ, T) + np.eye(r)
        Dinv = np.linalg.inv(a22)
        logdet_22 = np.linalg.slogdet(a22)[1].sum()
        A21 = lam.right(np.einsum("ba,gbq->gaq", T, self.ZR)).reshape(G * r, self.q)
        C = (Dinv @ A21.reshape(G, r, self.q)).reshape(G * r, self.q)
        S = linalg.cholesky(A11 - A21.T @ C, lower=True)
        logdet = logdet_22 + 2.0 * np.log(np.diag(S)).sum()
        K2 = np.einsum("ba,gbp->gap", T, self.ZF).reshape(G * r, self.p)
        g2 = (self.Zy @ T).reshape(G * r)

        def solve(r1, r2):
            t2 = (Dinv @ r2.reshape(G, r, -1)).reshape(r2.shape)
            x1 = linalg.cho_solve((S, True), r1 - A21.T @ t2)
            return x1, t2 - C @ x1

        return dict(lam=lam, tau_g=None, T=T, solve=solve, logdet=logdet, K=(K1, K2),
                    g=(g1, g2), S=S, A21=A21, C=C, Dinv=Dinv)

    @staticmethod
    def _dot(a, b):
        """Σ over the two blocks of a'b (the group block may be absent)."""
        out = a[0].T @ b[0]
        if a[1] is not None:
            out = out + a[1].T @ b[1]
        return out

    def solve(self, log_tau):
        """The penalized least-squares solution at τ: β, the spherical random effects u
        (in y's units) per block, r², the log determinants and the system."""
        sys = self._system(log_tau)
        K, g = sys["K"], sys["g"]
        AiK = sys["solve"](*K) if K[1] is not None else (sys["solve"](K[0], None)[0], None)
        Aig = sys["solve"](*g) if g[1] is not None else (sys["solve"](g[0], None)[0], None)
        XtX = self.FF - self._dot(K, AiK)
        RX = linalg.cholesky(XtX, lower=True)
        rhs = self.Fy - self._dot(K, Aig)
        beta = linalg.cho_solve((RX, True), rhs)
        r2 = self.yy - self._dot(g, Aig) - rhs @ beta
        u = tuple(None if a is None else a - k @ beta for a, k in zip(Aig, AiK))
        return dict(sys=sys, RX=RX, beta=beta, u=u, r2=r2, AiK=AiK)

    #: None: σ profiled out (Gaussian); a number: σ known (1 for the working model of a
    #: binomial or Poisson PIRLS step), the criterion ``log|L|² + log|R_X|² + r²/σ² +
    #: (n − p) log(2πσ²)``
    scale = None

    def criterion(self, log_tau):
        return self._criterion(log_tau, gradient=False)

    def criterion_and_gradient(self, log_tau):
        """`criterion` and its exact gradient in log τ. With ``ρ_j = log λ_j =
        −2 log τ_j`` and ``M`` the penalized normal matrix in (u, β) coordinates
        (``log|M| = log|X'X + S_λ| − Σ_j q_j ρ_j``), the envelope theorem on the penalized
        residual sum of squares r² gives ``∂d_R/∂ρ_j = tr((M⁻¹)_jj) − q_j + c ‖û_j‖²``,
        ``c = (n − p)/r²`` (σ profiled) or ``1/σ²`` (σ known); j runs over the smooths
        and the group block (q_g = G). One evaluation costs one `criterion` plus the
        diagonal of M⁻¹ (O(G q² + q³))."""
        return self._criterion(log_tau, gradient=True)

    def _criterion(self, log_tau, gradient):
        fail = (np.inf, np.zeros(self.n_tau)) if gradient else np.inf
        try:
            s = self.solve(log_tau)
        except linalg.LinAlgError:
            return fail
        dof = self.n - self.p
        if not s["r2"] > 0:
            return fail
        logdet = s["sys"]["logdet"] + 2.0 * np.log(np.diag(s["RX"])).sum()
        if self.scale is not None:
            phi = self.scale
            value = float(logdet + s["r2"] / phi + dof * np.log(2.0 * np.pi * phi))
            c = 1.0 / phi
        else:
            value = float(logdet + dof * (1.0 + np.log(2.0 * np.pi * s["r2"] / dof)))
            c = dof / s["r2"]
        if not gradient:
            return value
        diag_u, trace_g, factors = self._inverse_diagonal(s)
        edges = self.block_starts
        u = s["u"][0]
        d_rho = []
        for (a, b), pens in zip(zip(edges[:-1], edges[1:]), self.penalties):
            if pens is None:
                d_rho.append(diag_u[a:b].sum() - (b - a) + c * float(u[a:b] @ u[a:b]))
            else:
                d_rho.extend(self._several_penalty_gradient(s, a, b, c, factors))
        if self.unstructured:
            return value, np.concatenate([-2.0 * np.asarray(d_rho),
                                          self._correlated_gradient(s, c)])
        if self.G:
            u_g = s["u"][1].reshape(self.G, self.r)
            d_rho.extend(trace_g - self.G + c * np.sum(u_g ** 2, axis=0))
        return value, -2.0 * np.asarray(d_rho)

    def _correlated_gradient(self, s, c):
        """The criterion's gradient in the correlated groups' parameters (T's lower
        triangle, as it is). With W̃ the columns in (u, β) coordinates and
        ``∂W̃/∂T_ab`` putting group i's column a of Z into its u-column b: ``∂ log|M| /
        ∂T_ab = 2 Σ_i (M⁻¹ W̃'Z_i)_{(i,b),a}`` (M⁻¹'s rows of group i: its covariances with
        the smooths' u, its own block and β, times ``ΛR'Z_i``, ``T'Z_i'Z_i``, ``F'Z_i``) and,
        by the envelope theorem, ``∂r²/∂T_ab = −2 Σ_i (Z_i'r̃)_a u_ib`` (r̃ the PLS
        residual) — no T⁻¹, so it holds on the boundary too."""
        sys, inv = s["sys"], self._inverse(s)
        G, r, T = self.G, self.r, sys["T"]
        u_s, u_g = s["u"][0], s["u"][1].reshape(G, r)
        A = sys["lam"].right(self.ZR)  # Z_i'RΛ, G × r × q
        logdet = (np.einsum("gbq,gaq->ab", inv["cov_gu"].reshape(G, r, -1), A)
                  + np.einsum("gbc,dc,gda->ab", inv["var_g"], T, self.ZZ)
                  + np.einsum("gbp,gap->ab", inv["cov_gb"].reshape(G, r, -1), self.ZF))
        zr = (self.Zy - self.ZF @ s["beta"] - A @ u_s
              - np.einsum("gad,db,gb->ga", self.ZZ, T, u_g))  # Z_i'r̃
        d = 2.0 * logdet - 2.0 * c * (zr.T @ u_g)  # ∂/∂T_ab at [a, b]
        grad = d[self._term.rows, self._term.cols]
        if not self._linear:  # ∂/∂ log T_aa = T_aa ∂/∂T_aa
            diagonal = self._term.rows == self._term.cols
            grad[diagonal] *= np.diag(T)
        return grad

    def _several_penalty_gradient(self, s, a, b, c, factors):
        """``∂d_R/∂ρ_k`` (ρ_k = log λ_k) of the block ``a:b`` with several penalties:
        with ``Q_k = λ_k Λ'P_kΛ`` over the block (``Σ_k Q_k = I``), ``tr(M⁻¹ Q_k) − tr(Q_k)
        + c u'Q_k u`` (the identity block's formula with I split into the Q_k), M⁻¹'s block
        in u coordinates ``L⁻ᵀL⁻¹ + WW'`` from `_inverse_diagonal`'s ``factors`` (L⁻¹ of
        S's Cholesky factor, the groups already eliminated, and W = A⁻¹K R_X⁻ᵀ)."""
        sys = s["sys"]
        Linv, W = factors[0][:, a:b], factors[1][a:b]
        Minv = Linv.T @ Linv + W @ W.T
        u = s["u"][0][a:b]
        _, _, Lam, lam, pens = next(f for f in sys["lam"].full if f[0] == a)
        out = []
        for l, P in zip(lam, pens):
            Q = l * (Lam.T @ P @ Lam)
            out.append(float(np.sum(Minv * Q) - np.trace(Q) + c * u @ Q @ u))
        return out

    def _inverse_diagonal(self, s):
        """The diagonal of ``M⁻¹`` over the smooths' u and the traces of its group block per
        random-effect column (intercept, slopes), without `_inverse`'s off-diagonal
        pieces: with ``S = L L'`` and ``C = D⁻¹A_21`` (Gr × q), ``diag S⁻¹`` = column sums
        of ``(L⁻¹)²`` and ``diag (A⁻¹)_gg = diag D⁻¹ + diag(C S⁻¹ C')``, plus the fixed
        effects' share ``diag(A⁻¹K X⁻¹ K'A⁻¹)``. Also returns ``(L⁻¹, A⁻¹K R_X⁻ᵀ)`` over the
        smooths (the several-penalty blocks' gradient uses them)."""
        sys = s["sys"]
        Linv = linalg.solve_triangular(sys["S"], np.eye(self.q), lower=True)
        RXinv = linalg.solve_triangular(s["RX"], np.eye(self.p), lower=True)
        AiK_s, AiK_g = s["AiK"]
        W = AiK_s @ RXinv.T
        diag_u = np.sum(Linv ** 2, axis=0) + np.sum(W ** 2, axis=1)
        if not self.G:
            return diag_u, 0.0, (Linv, W)
        G, r = self.G, self.r
        diag_g = (np.diagonal(sys["Dinv"], axis1=1, axis2=2)
                  + np.sum((Linv @ sys["C"].T) ** 2, axis=0).reshape(G, r)
                  + np.sum((AiK_g @ RXinv.T) ** 2, axis=1).reshape(G, r))
        return diag_u, diag_g.sum(axis=0), (Linv, W)

    def fit(self, log_tau0=None, bounds=LOG_TAU_BOUNDS):
        """REML over log τ within ``bounds`` from ``log_tau0`` (default: `_start`), L-BFGS-B with
        the exact gradient, then (σ profiled: not the working fits of a PIRLS iteration,
        which change every step) Newton steps to round-off (`optimize.minimize`'s
        "lbfgs"; small dense algebra only: BLAS threads beside Numba's pool cost 20×). No
        smooth and no groups: a linear model, one evaluation. Correlated groups' off-diagonal
        entries of T are searched within ±e^(upper bound)."""
        box, bounds = bounds, self.search_bounds(bounds)

        def search(x0, box_=None):
            res = once(x0, box_)
            for _ in range(3):  # L-BFGS-B can stop on a stalled line search ("relative
                # reduction of f", "abnormal termination") far from the optimum: restarted
                # from there, fresh memory
                if not any(s in str(res.message).upper() for s in ("REDUCTION OF F",
                                                                     "ABNORMAL")):
                    break
                again = _lower(res, once(res.theta_final, box_))
                if again is res:
                    break
                res = again
            return res

        def once(x0, box_):
            return minimize(SimpleNamespace(value=self.criterion,
                                            value_and_grad=self.criterion_and_gradient),
                            BoxSpace(x0, *(bounds if box_ is None else box_)),
                            method="lbfgs", tol=1e-7, max_iter=500,
                            polish=self.scale is None)

        res = search(self._start() if log_tau0 is None else np.asarray(log_tau0, dtype=float))
        if self.unstructured and log_tau0 is None:
            # also from the independent (diagonal) model's optimum, which the correlated one
            # nests: from a common start alone a search stopped 22 above lmer's optimum
            res = _lower(res, search(self._independent_optimum(box)))
        # a log τ at the lower bound (a smooth reduced to its null space, a variance at 0)
        # where the criterion is flat: the search may have jumped there past an interior
        # optimum from its first steepest-descent step (noisy y: edf 1 where mgcv's was
        # 3.2); searched again from inside, the lower criterion kept
        res = search_again_from_inside(search, res, bounds, self.margin_taus,
                                       self.smooth_blocks, self.log_mask)
        # select=True (a smooth of two blocks, range and null space): the criterion may
        # have an interior optimum and a lower one with the smooth removed (both blocks at
        # λ = ∞), which a search from a common start need not reach; each such smooth is
        # tried removed (its blocks near the lower bound, where the search leaves them)
        before = res
        for blocks in self.smooth_blocks:
            several = len({self.tau_block[t] for t in blocks}) > 1  # not a tensor's margins
            if several and not np.all(at_lower_bound(res.theta_final[blocks],
                                                     (bounds[0][blocks], bounds[1][blocks]))):
                x0 = res.theta_final.copy()
                x0[blocks] = bounds[0][blocks] + 3.0
                res = _lower(res, search(x0))
        if res is not before:  # a new optimum: its own plateaus searched from inside
            res = search_again_from_inside(search, res, bounds, self.margin_taus,
                                           self.smooth_blocks, self.log_mask)
        if self.unstructured:
            res = self._linear_search(search, res, box)
        with single_threaded_blas():
            return self.fit_at(res.theta_final, res)

    def _independent_optimum(self, bounds):
        """The parameters of this correlated model at the optimum of the independent one
        (T diagonal: the same REML, of the centred slopes, with one τ per random-effect
        column)."""
        independent = copy.copy(self)
        independent.unstructured = False
        independent._term = self._group_term(False)
        theta = independent.fit(bounds=bounds).theta
        # log T_aa on the diagonal, 0 off it (the log scale's 0 is never read there)
        return np.concatenate([theta[:self.n_smooth_tau],
                               theta[self.n_smooth_tau:][self._term.rows]
                               * (self._term.rows == self._term.cols)])

    def _linear_search(self, search, res, bounds):
        """``res`` or, if lower, the optimum of a search in `_linear` mode from it (T's
        diagonal as it is, of either sign: a diagonal entry at the log scale's bound, where
        its gradient vanishes, can come back), its columns' signs made those of a
        non-negative diagonal and mapped back to the log scale (an entry at 0 to the bound:
        T_aa = e^−15 σ)."""
        diagonal = self._t_diagonal
        x0 = np.where(diagonal, np.exp(np.where(diagonal, res.theta_final, 0.0)),
                      res.theta_final)
        self._linear = True
        try:
            box = self.search_bounds(bounds)
            lin = search(x0, box)
            # with two or more slopes the criterion has local optima (a review's data sets:
            # up to 2.5 above lmer's from the starts above alone): also from lme4's start
            # T = cI, on the centred slopes and on the slopes as given, c = 0.01 … 10 (the
            # smooths' τ as found)
            if self.r > 2:
                Minv = np.linalg.inv(self._M)
                for C in (np.eye(self.r), Minv.T @ Minv):
                    for c in (0.01, 0.1, 1.0, 10.0):
                        start = x0.copy()
                        L = c * np.linalg.cholesky(C)
                        start[self.n_smooth_tau:] = L[self._term.rows, self._term.cols]
                        lin = _lower(lin, search(start, box))
        finally:
            self._linear = False
        x = lin.theta_final.copy()  # T with a non-negative diagonal (the same TT')
        x[self.n_smooth_tau:] = self._term.canonical(x[self.n_smooth_tau:])
        back = np.where(diagonal, np.log(np.maximum(x, np.exp(bounds[0]))), x)
        return _lower(res, replace(lin, theta_final=back, fmin=self.criterion(back)))

    #: the common log τ the search may start from (`_start`)
    START_GRID = (0.0, -2.0, -4.0, -6.0, 2.0)

    def _start(self):
        """The start of the search: the common log τ of `START_GRID` with the lowest
        criterion (from log τ = 0 alone a noisy y's first step jumped to the lower bound)."""
        starts = [np.where(self.log_mask, g, 0.0) for g in self.START_GRID]  # T_ab = 0
        return starts[int(np.argmin([self.criterion(x) for x in starts]))]

    def fit_at(self, log_tau, result):
        """The `REMLFit` at given τ (``result``: the optimizer's record)."""
        s = self.solve(log_tau)
        sys = s["sys"]
        sigma = (float(np.sqrt(self.scale)) if self.scale is not None
                 else float(np.sqrt(max(s["r2"], 0.0) / (self.n - self.p))))  # r² may
        # round to −1e-16 on an exact fit
        coef = self.coefficients(s)
        inv = self._inverse(s)
        edf = self._edf(inv)
        n_fixed_smooth = sum(len(f) for f in self.fixed_of)
        lam, p = sys["lam"], self.p
        # the posterior in (β, b = Λu) coordinates, in units of σ² (mgcv's Vp)
        V = np.empty((p + self.q, p + self.q))
        V[:p, :p] = inv["Xinv"]
        V[p:, :p] = lam.left(inv["cov_ub"])
        V[:p, p:] = V[p:, :p].T
        V[p:, p:] = lam.left(lam.left(inv["cov_uu"]).T)
        group_cov = None
        if self.G:  # g_i = T u_i: its covariances T (u_i's)
            T, G, r = sys["T"], self.G, self.r
            # Cov(g, b = Λu) = Cov(g, u) Λ' (Λ is not symmetric over a tensor block)
            cross = np.hstack([inv["cov_gb"], lam.left(inv["cov_gu"].T).T]).reshape(G, r, -1)
            MT = self._M.T @ T  # the slopes' own columns (centred for correlated effects)
            group_cov = (sigma ** 2 * (MT @ cross).reshape(G * r, -1),
                         sigma ** 2 * (MT @ inv["var_g"] @ MT.T))
        return REMLFit(tau=self.reported(log_tau), theta=np.asarray(log_tau, dtype=float),
                       sigma=sigma,
                       beta=coef.beta, b=coef.b, group=coef.group,
                       criterion=float(result.fmin), edf=edf,
                       edf_total=float(self.p - n_fixed_smooth + edf.sum()), result=result,
                       cov=sigma ** 2 * V, group_cov=group_cov, reml=self)

    def significance(self, fit):
        """Per smooth of a `fit_at` result: the reference df (its alternative edf
        ``tr(2F − F²)``, at most its column count) and Wood's (2013) test that it is zero
        (`smooth_test`: F-type with ``n − edf_total``
        residual df when σ is estimated) from its coefficients ``(β_null, b)``, their block
        of the posterior and the Gram matrix of its columns (its blocks of FF, RF, RR).
        A smooth with no unpenalized columns (a cyclic one) gets mgcv's random-effect
        test instead (`_penalized_term_test`), with its rank as reference df.
        Returns ``(ref_df, tests)``, tests[:, 0] the statistic (χ² scale), [:, 1] the
        p-value."""
        inv = self._inverse(self.solve(fit.theta))
        res_df = None if self.scale is not None else self.n - fit.edf_total
        coef, V = fit, fit.cov
        ref_df, tests, p = [], [], self.p
        for rng, fixed in zip(self._smooth_ranges(), self.fixed_of):
            fixed = list(fixed)
            if not fixed:
                rank, stat, p_value = self._penalized_term_test(fit, rng, res_df)
                ref_df.append(rank)
                tests.append((stat, p_value))
                continue
            blocks = [inv["cov_uu"][:, rng]] + ([inv["cov_gu"][:, rng]] if self.G else [])
            edf1 = len(fixed) + float(np.sum(alternative_edf_terms(blocks)))
            gram = np.block([[self.FF[np.ix_(fixed, fixed)], self.RF[rng][:, fixed].T],
                             [self.RF[rng][:, fixed], self.RR[np.ix_(rng, rng)]]])
            idx = fixed + list(p + rng)
            ref = min(len(idx), edf1)
            ref_df.append(ref)
            tests.append(smooth_test(np.concatenate([coef.beta[fixed], coef.b[rng]]),
                                     V[np.ix_(idx, idx)], gram, ref, res_df))
        return np.array(ref_df), np.array(tests).reshape(-1, 2)

    def _penalized_term_test(self, fit, rng, res_df):
        """mgcv's ``reTest`` of the smooth whose range-space coordinates are ``rng``
        (`penalized_term_test`), the groups' random effects (and further factors') treated
        as part of the error as mgcv's ``recov`` does: with ``X₁`` the non-random columns
        (fixed and range), ``V = I + Z Σ_g Z'`` and ``S₁`` their penalty (``1/τ_j²`` on
        smooth j's range), the information is the smooth's Schur complement in
        ``X₁'V X₁ + S₁`` and its frequentist covariance ``σ²(P − P S₁ P)`` over its block,
        ``σ²P`` the posterior covariance of the non-random coefficients (``fit.cov``)."""
        p = self.p
        penalty = np.zeros((p + self.q, p + self.q))
        penalty[p:, p:] = self.scales(fit.theta).penalty()
        gram = np.block([[self.FF, self.RF.T], [self.RF, self.RR]])
        H = gram + penalty
        if self.G:
            ZX = np.concatenate([self.ZF, self.ZR], axis=2)  # G × r × (p + q)
            T = self.group_factor(fit.theta)
            H += np.einsum("gap,ab,gbq->pq", ZX, T @ T.T, ZX)
        # further factors' random effects (blocks of no smooth) are part of the error too:
        # their columns' Z Σ Z' added as the groups', their coefficients integrated out
        starts = self.block_starts
        extra = []
        for t, k in zip(self.extra_taus, self.extra_blocks):
            cols = p + np.arange(starts[k], starts[k + 1])
            H += fit.tau[t] ** 2 * gram[:, cols] @ gram[cols]
            extra.extend(cols)
        keep = np.setdiff1d(np.arange(p + self.q), extra)
        H, penalty = H[np.ix_(keep, keep)], penalty[np.ix_(keep, keep)]
        m = np.searchsorted(keep, p + rng)
        other = np.setdiff1d(np.arange(keep.size), m)
        info = H[np.ix_(m, m)] - H[np.ix_(m, other)] @ np.linalg.solve(
            H[np.ix_(other, other)], H[np.ix_(other, m)])
        scale = fit.sigma ** 2
        P = fit.cov[np.ix_(keep, keep)] / scale
        cov = scale * (P[np.ix_(m, m)] - P[m] @ penalty @ P[:, m])
        # where the smooth is confounded with unpenalized columns (an fs smooth's level
        # constants and slopes with the intercept and a line: X n = 0 for an n penalized on
        # the smooth's columns alone), V_e S₁n = 0 exactly; rounding left 1e-10 of V_e's
        # largest eigenvalue there (counted as rank, where mgcv's factorization counts
        # none): those directions are taken out
        null = _null_space(H - penalty)  # orthonormal: its part on the other penalized
        # columns may be rounding alone, hence an absolute tolerance
        others = np.setdiff1d(np.flatnonzero(np.any(penalty != 0, axis=0)), m)
        if null.shape[1] and others.size:
            _, sv, vt = linalg.svd(null[others])
            rank = int(np.sum(sv > 1e-8))
            null = null @ vt[rank:].T
        if null.shape[1]:
            confounded = linalg.orth((penalty @ null)[m])
            cov = cov - confounded @ (confounded.T @ cov)
            cov = cov - (cov @ confounded) @ confounded.T
        val, vec = linalg.eigh((cov + cov.T) / 2.0)
        root = vec * np.sqrt(np.maximum(val, 0.0))  # V_e = B B'
        return penalized_term_test(fit.b[rng], info, root, scale, res_df)

    def coefficients(self, s):
        """β, b = Λu and the groups' random intercepts from a `solve` result (as the
        attributes of a `REMLFit`-like namespace, for a linear predictor; the PLS
        solution u is in y's units)."""
        sys = s["sys"]
        return SimpleNamespace(beta=s["beta"], b=sys["lam"].left(s["u"][0]),
                               group=None if self.G == 0
                               else s["u"][1].reshape(self.G, self.r) @ sys["T"].T @ self._M
                               if self.unstructured
                               else sys["tau_g"] * s["u"][1].reshape(self.G, self.r))

    def _inverse(self, s):
        """The pieces of ``M⁻¹`` (the PLS normal matrix in (u, β) coordinates, units of σ²)
        that the results need. With X = R_X R_X': ``Cov(β) = X⁻¹``,
        ``Cov(u, β) = −A⁻¹K X⁻¹``, ``Cov(u) = A⁻¹ + A⁻¹K X⁻¹ K'A⁻¹``; A⁻¹ by the block
        elimination — its smooth block is S⁻¹, and with D = blockdiag(a_22,i) and
        C = D⁻¹A_21: ``(A⁻¹)_gs = −C S⁻¹``, the group blocks of ``(A⁻¹)_gg`` are those of
        ``D⁻¹ + C S⁻¹ C'``. Returns ``Xinv``, ``cov_uu``, ``cov_ub`` (smooths) and with
        groups ``cov_gu``, ``cov_gb`` (Gr rows, group-major) and ``var_g`` (G × r × r, each
        group's block)."""
        sys = s["sys"]
        Sinv = linalg.cho_solve((sys["S"], True), np.eye(self.q))
        Xinv = linalg.cho_solve((s["RX"], True), np.eye(self.p))
        AiK_s, AiK_g = s["AiK"]
        out = dict(Xinv=Xinv, cov_uu=Sinv + AiK_s @ Xinv @ AiK_s.T, cov_ub=-(AiK_s @ Xinv))
        if self.G:
            G, r, C = self.G, self.r, sys["C"]
            CS = C @ Sinv
            AX = AiK_g @ Xinv
            out["cov_gu"] = -CS + AX @ AiK_s.T
            out["cov_gb"] = -AX
            out["var_g"] = (sys["Dinv"]
                            + C.reshape(G, r, -1) @ CS.reshape(G, r, -1).transpose(0, 2, 1)
                            + AiK_g.reshape(G, r, -1) @ AX.reshape(G, r, -1).transpose(0, 2, 1))
        return out

    def _smooth_ranges(self):
        """Per smooth the positions of its penalized coordinates among the q (its blocks')."""
        starts = self.block_starts
        out = []
        for taus in self.smooth_blocks:
            blocks = list(dict.fromkeys(self.tau_block[t] for t in taus))
            out.append(np.concatenate([np.arange(starts[k], starts[k + 1]) for k in blocks])
                       .astype(int) if blocks else np.zeros(0, dtype=int))
        return out

    @property
    def extra_blocks(self):
        """The penalized blocks that belong to no smooth (further grouping factors' random
        effects, after the smooths' blocks)."""
        used = {self.tau_block[t] for taus in self.smooth_blocks for t in taus}
        return [k for k in range(len(self.sizes)) if k not in used]

    def _edf(self, inv):
        """Per smooth, then per block of no smooth (`extra_blocks`), then the group
        columns (one per random-effect column): its
        null-space dimension plus
        ``Σ_i (1 − (M⁻¹)_ii)`` over its random coefficients (u coordinates): the trace of
        its block of the hat-matrix decomposition (mgcv's edf)."""
        diag1 = np.diag(inv["cov_uu"])
        edf = [len(fixed) + np.sum(1.0 - diag1[rng])
               for rng, fixed in zip(self._smooth_ranges(), self.fixed_of)]
        # the penalized blocks of no smooth (further factors' random effects), one each
        starts = self.block_starts
        edf.extend(np.sum(1.0 - diag1[starts[k]:starts[k + 1]]) for k in self.extra_blocks)
        if self.G:
            edf.extend(np.sum(1.0 - np.diagonal(inv["var_g"], axis1=1, axis2=2), axis=0))
        return np.array(edf)
