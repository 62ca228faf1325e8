"""Linear mixed models with several grouping factors (nested or crossed): the blocked
Cholesky factorization (MixedModels.jl's scheme, Bates et al. 2015 §3).

With ``Λ = blockdiag(I_{G_k} ⊗ T_k)`` over the factors and ``A = Λ'Z'WZΛ + I``, the
factor with the most random-effect columns comes first: its part of A is block diagonal
(one q₁ × q₁ block per level) and is eliminated level by level; the remaining factors'
columns (Q_r of them) form one dense Schur complement

    S_rr = Λ_r'Z_r'WZ_rΛ_r + I − F'F,      F = L₁⁻¹ Λ₁'Z₁'WZ_r Λ_r   (sparse: the levels of
                                                                     the other factors met
                                                                     by each first-factor level)

factored densely (Q_r ≤ a few thousand: InstEval's lecturers and departments). The fixed
effects and y follow as in the one-factor case:

    R_X'R_X = X'WX − R₁'R₁ − R_r'R_r,   r² = y'Wy − ‖c₁‖² − ‖c_r‖² − ‖c_β‖²,
    d(θ) = 2 log|L₁| + 2 log|L_r| (+ 2 log|R_X|) + dof (1 + log(2π r²/dof)).

Everything is computed from cross-products formed in one pass over the rows (Z'WZ sparse,
Z'WX, Z'Wy, X'WX, X'Wy, y'Wy): an evaluation never touches the rows.
"""

import os
from dataclasses import dataclass

import numba
import numpy as np
from scipy import linalg, sparse
from scipy.sparse.linalg import splu

from .._kernels.sparse_pairs import (row_pattern_products, row_quadratic_forms,
                                     scaled_schur_lower)
from .lmm import GroupedCrossproducts, ProfiledDeviance

__all__ = ["FactorColumns", "dense_rest", "rest_pattern_share", "nested_diagonal_rest",
           "nested_rest", "MultiCrossproducts", "MultiProfiledDeviance",
           "ScalarFactorsDeviance", "first_factor_inverse_blocks", "random_effects_matrix",
           "PairRows"]

_LOG_2PI = np.log(2.0 * np.pi)


@dataclass
class FactorColumns:
    """One grouping factor's random-effect columns: ``codes`` (n,) in 0..G−1, ``values``
    (n, q): the row's random-effect covariates ([1, slopes…]), ``term`` its covariance
    structure (`RandomEffectTerm`)."""

    codes: np.ndarray
    n_levels: int
    values: np.ndarray
    term: object

    @property
    def width(self):
        return self.n_levels * self.term.q


#: the other factors' Schur complement is factored densely up to this many columns (InstEval:
#: 1,156), and beyond it while its pattern is dense (`dense_rest`)
DENSE_LIMIT = 4000
#: a pattern with at least this share of the lower triangle's entries is dense (crossed
#: factors: every item pair met by some user); a sparser one (nested factors) goes to
#: SciPy's sparse LU (SuperLU, fill-reducing order)
DENSE_SHARE = 0.05


def _physical_memory():
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not POSIX: assume 8 GiB
        return 8 * 2**30


def dense_rest(B, ZZr):
    """Whether the rest factors' Schur complement ``A_rr − F'F`` is factored densely: up to
    `DENSE_LIMIT` columns always; beyond, when its pattern (ZZr's and the pairs of
    each first-factor level's nonzeros in ``B``, an upper bound of F'F's) fills at least
    `DENSE_SHARE` of the triangle and two dense copies take at most half the
    machine's memory (the crossed 20,000 × 5,000 case: 5,000 columns, 0.2 GB each)."""
    Qr = ZZr.shape[0]
    if Qr <= DENSE_LIMIT:
        return True
    fits = 2.0 * 8.0 * Qr * Qr <= 0.5 * _physical_memory()
    return fits and rest_pattern_share(B, ZZr) >= DENSE_SHARE


def nested_diagonal_rest(B, factors):
    """Whether the rest block's Schur complement is diagonal whatever θ: one
    intercept-only factor after the first, nested in it (`nested_rest`: each
    first-factor level meets at most one of its levels) — two nested factors."""
    return len(factors) == 2 and factors[1].term.q == 1 and nested_rest(B, factors)


def nested_rest(B, factors):
    """Whether each first-factor level meets at most one level of each other factor
    (``B``: the first factor × the rest's columns, ``factors`` in elimination order): the
    other factors are nested in the first, as classes in schools."""
    B = B.tocsr()
    if B.shape[0] == 0:
        return True
    rows = np.repeat(np.arange(B.shape[0]), np.diff(B.indptr))
    edges = np.cumsum([f.width for f in factors[1:]])
    which = np.searchsorted(edges, B.indices, side="right")
    counts = np.bincount(rows * len(edges) + which, minlength=B.shape[0] * len(edges))
    return int(counts.max()) <= 1


def rest_pattern_share(B, ZZr):
    """The share of the rest block's lower triangle its pattern may fill: ZZr's and the
    pairs of each first-factor level's nonzeros in ``B`` (an upper bound of F'F's),
    capped at 1 (crossed factors: near 1; nested: small)."""
    Qr = ZZr.shape[0]
    if Qr == 0:
        return 1.0
    per_row = np.diff(B.tocsr().indptr).astype(np.float64)
    pairs = float(per_row @ (per_row + 1.0)) / 2.0 + sparse.tril(ZZr).nnz
    return min(1.0, pairs / (Qr * (Qr + 1.0) / 2.0))


class RestFactor:
    """The other factors' Schur complement ``S = A_rr − F'F``, factored: a dense Cholesky
    factor, or (``S`` sparse: more than `DENSE_LIMIT` columns) SciPy's SuperLU with a
    symmetric fill-reducing order and no pivoting (S is positive definite; a nonpositive
    pivot means it is not, and raises LinAlgError). `solve` gives ``S⁻¹b``."""

    def __init__(self, S):
        self.sparse = sparse.issparse(S)
        self.m = S.shape[0]
        self.inverse = None  # S⁻¹ (sparse) where it is block diagonal
        q = _block_size(S) if self.sparse and self.m else None
        if q is not None:
            # nested factors (e.g. classes in schools: each class meets one school) leave S
            # block diagonal: its blocks factored and inverted at once, no sparse LU
            coo = S.tocoo()
            blocks = np.zeros((self.m // q, q, q))
            blocks[coo.row // q, coo.row % q, coo.col % q] = coo.data
            if not np.all(np.isfinite(blocks)):
                raise linalg.LinAlgError("the Schur complement is not finite")
            L = np.linalg.cholesky(blocks)  # LinAlgError where not positive definite
            self.logdet = 2.0 * float(np.log(np.diagonal(L, axis1=1, axis2=2)).sum())
            inv = np.linalg.inv(blocks)
            G = self.m // q
            self.inverse = sparse.bsr_matrix((inv, np.arange(G), np.arange(G + 1)),
                                             shape=(self.m, self.m)).tocsr()
        elif self.sparse:
            self.lu = splu(sparse.csc_matrix(S), permc_spec="MMD_AT_PLUS_A",
                           diag_pivot_thresh=0.0, options={"SymmetricMode": True})
            d = self.lu.U.diagonal()
            if np.any(d <= 0) or not np.all(np.isfinite(d)):
                raise linalg.LinAlgError("the Schur complement is not positive definite")
            self.logdet = float(np.log(d).sum())
        else:
            if not np.all(np.isfinite(S)):  # e.g. a GLMM's weights overflowed at a wild θ
                raise linalg.LinAlgError("the Schur complement is not finite")
            self.L = linalg.cholesky(S, lower=True) if self.m else np.zeros((0, 0))
            self.logdet = 2.0 * float(np.log(np.diag(self.L)).sum())

    def solve(self, b):
        if not self.m:
            return np.zeros_like(b)
        if self.inverse is not None:
            return np.asarray(self.inverse @ b)
        if self.sparse:
            return self.lu.solve(np.asarray(b, dtype=float))
        return linalg.cho_solve((self.L, True), b)

    def diagonal_blocks(self, sizes, chunk=512):
        """The diagonal blocks of S⁻¹ for consecutive (n_levels, q) factors: a list of
        (n_levels, q, q) arrays (dense: from the full inverse; sparse: solves against
        chunks of unit vectors; block diagonal: from its inverse)."""
        if self.inverse is not None:
            return _sparse_diagonal_blocks(self.inverse, sizes)
        out, start = [], 0
        for G, q in sizes:
            blocks = np.empty((G, q, q))
            for a in range(0, G, max(1, chunk // q)):
                b = min(G, a + max(1, chunk // q))
                cols = np.arange(start + a * q, start + b * q)
                E = np.zeros((self.m, cols.size))
                E[cols, np.arange(cols.size)] = 1.0
                sol = self.solve(E)[cols]
                for i in range(b - a):
                    blocks[a + i] = sol[i * q:(i + 1) * q, i * q:(i + 1) * q]
            out.append(blocks)
            start += G * q
        return out


def _block_size(S):
    """q where the sparse S is block diagonal with q × q blocks (q ≤ 16), else None."""
    coo = S.tocoo()
    if coo.nnz == 0:
        return 1
    span = np.abs(coo.row.astype(np.int64) - coo.col).max() + 1
    for q in range(int(span), 17):
        if S.shape[0] % q == 0 and np.array_equal(coo.row // q, coo.col // q):
            return q
    return None


def _sparse_diagonal_blocks(M, sizes):
    """The diagonal blocks of a sparse M for consecutive (n_levels, q) factors."""
    coo = M.tocoo()
    out, start = [], 0
    for G, q in sizes:
        blocks = np.zeros((G, q, q))
        r, c = coo.row - start, coo.col - start
        keep = (r >= 0) & (r < G * q) & (c >= 0) & (c < G * q) & (r // q == c // q)
        blocks[r[keep] // q, r[keep] % q, c[keep] % q] = coo.data[keep]
        out.append(blocks)
        start += G * q
    return out


def first_factor_inverse_blocks(L1inv, F, rest, chunk=512):
    """The first factor's diagonal blocks of A⁻¹ in the blocked scheme,
    ``L₁⁻ᵀ(I + F S_rr⁻¹ F')L₁⁻¹`` per level (``L1inv``: (G₁, q₁, q₁) the levels' L₁⁻¹;
    ``F``: Q₁ × Q_r sparse; ``rest``: the factored Schur complement), F's rows taken in
    chunks of levels (S_rr⁻¹ F' is dense: Q_r × chunk)."""
    G1, q1 = L1inv.shape[0], L1inv.shape[1]
    if rest.inverse is not None:  # S⁻¹ sparse: F S⁻¹ F' is too (nested factors)
        inner = _sparse_diagonal_blocks((F @ rest.inverse @ F.T).tocsr(), [(G1, q1)])[0]
        return L1inv.transpose(0, 2, 1) @ (np.eye(q1) + inner) @ L1inv
    inner = np.zeros((G1, q1, q1))
    step = max(1, chunk // q1)
    for a in range(0, G1, step) if rest.m else ():
        b = min(G1, a + step)
        Fc = F[a * q1:b * q1]
        W = np.asarray(Fc @ rest.solve(Fc.T.toarray()))
        for i in range(b - a):
            inner[a + i] = W[i * q1:(i + 1) * q1, i * q1:(i + 1) * q1]
    return L1inv.transpose(0, 2, 1) @ (np.eye(q1) + inner) @ L1inv


def _pair_table(fk, fl, w):
    """``Z_k'WZ_l`` (CSR, G_k q_k × G_l q_l) from the rows' codes and covariates."""
    ck, cl = np.asarray(fk.codes, dtype=np.int64), np.asarray(fl.codes, dtype=np.int64)
    qk, ql = fk.term.q, fl.term.q
    if fk is fl and qk == 1:  # an intercept-only factor with itself: diagonal
        return sparse.diags(np.bincount(ck, weights=w * fk.values[:, 0] ** 2,
                                        minlength=fk.n_levels), format="csr")
    rows, cols, data = [], [], []
    for a in range(qk):
        wa = w * fk.values[:, a]
        for b in range(ql):
            rows.append(ck * qk + a if qk > 1 else ck)
            cols.append(cl * ql + b if ql > 1 else cl)
            data.append(wa * fl.values[:, b])
    cat = (lambda parts: parts[0] if len(parts) == 1 else np.concatenate(parts))
    return sparse.coo_matrix((cat(data), (cat(rows), cat(cols))),
                             shape=(fk.width, fl.width)).tocsr()


def _level_sums(f, M):
    """``Z_f'M`` (G q × m) for M (n × m), the rows' weights already in M."""
    G, q = f.n_levels, f.term.q
    out = np.zeros((G * q, M.shape[1]))
    codes = np.asarray(f.codes, dtype=np.int64)
    for a in range(q):
        v = f.values[:, a]
        for j in range(M.shape[1]):
            out[a::q, j] = np.bincount(codes, weights=v * M[:, j], minlength=G)
    return out


def random_effects_matrix(factors, n):
    """Z over all factors' columns (sparse CSR, n × Q; factor-major, then level-major:
    column ``offset_k + level·q_k + a``), ``Σ_k q_k`` entries per row."""
    blocks = []
    for f in factors:
        q = f.term.q
        cols = (f.codes[:, None] * q + np.arange(q)[None, :]).ravel()
        blocks.append(sparse.csr_matrix(
            (np.asarray(f.values, dtype=float).ravel(), cols, np.arange(0, n * q + 1, q)),
            shape=(n, f.width)))
    return sparse.hstack(blocks, format="csr")


@dataclass
class MultiCrossproducts:
    """Sufficient statistics of a Gaussian model with several grouping factors, the factors
    in elimination order (the first is block diagonal).

    ``ZZ`` (Q × Q, sparse CSR) = Z'WZ over all factors' columns (factor-major, then
    level-major: column ``offset_k + level·q_k + a``); ``ZX`` (Q × p), ``Zy`` (Q,);
    ``XtX``, ``Xty``, ``yty``, ``n = Σ w``; ``offsets`` (K + 1,)."""

    ZZ: object
    ZX: np.ndarray
    Zy: np.ndarray
    XtX: np.ndarray
    Xty: np.ndarray
    yty: float
    n: float
    offsets: np.ndarray

    @classmethod
    def from_rows(cls, X, y, w, factors):
        """From the rows: each pair of factors' weighted contingency table (its level pairs'
        sums, duplicates summed by SciPy's COO → CSR conversion) and the per-level sums by
        bincount, O(n Σ_k q_k²) without a sparse n × Q product (10⁷ rows × 100,000 ×
        20,000: 7.7 s → under 1 s)."""
        n = y.shape[0]
        w = np.ones(n) if w is None or len(w) == 0 else np.asarray(w, dtype=float)
        K = len(factors)
        blocks = [[None] * K for _ in range(K)]
        for k in range(K):
            for l in range(k, K):
                table = _pair_table(factors[k], factors[l], w)
                blocks[k][l] = table
                if l != k:
                    blocks[l][k] = table.T
        Xw = X * w[:, None]
        return cls(ZZ=sparse.bmat(blocks, format="csr"),
                   ZX=np.vstack([_level_sums(f, Xw) for f in factors]),
                   Zy=np.concatenate([_level_sums(f, (w * y)[:, None])[:, 0]
                                      for f in factors]),
                   XtX=X.T @ Xw, Xty=Xw.T @ y, yty=float(y @ (w * y)), n=float(w.sum()),
                   offsets=np.concatenate([[0], np.cumsum([f.width for f in factors])]))

    @property
    def p(self):
        return self.XtX.shape[0]


@dataclass
class MultiPLSState:
    theta: np.ndarray
    beta: np.ndarray
    penalized_rss: float
    deviance: float
    S: np.ndarray = None
    pieces: dict = None


class MultiProfiledDeviance:
    """Profiled ML/REML deviance over θ (the factors' θ concatenated in elimination order)
    of an LMM with several grouping factors; see the module docstring."""

    def __init__(self, stats, factors, reml=True):
        self.stats, self.factors, self.reml = stats, factors, bool(reml)
        self.terms = [f.term for f in factors]
        self.theta_slices = np.cumsum([0] + [t.n_theta for t in self.terms])
        off = stats.offsets
        self.q1, self.G1 = factors[0].term.q, factors[0].n_levels
        Q1 = off[1]
        ZZ = stats.ZZ
        # the first factor's diagonal blocks, its cross-product with the rest, the rest
        d1 = ZZ[:Q1, :Q1].tocoo()
        self.C1 = np.zeros((self.G1, self.q1, self.q1))
        self.C1[d1.row // self.q1, d1.row % self.q1, d1.col % self.q1] = d1.data
        # the first factor is eliminated level by level as a one-factor model is: the same
        # per-group kernel (ProfiledDeviance.factor_groups), here on Z₁'s blocks
        p = stats.p
        self.first = ProfiledDeviance(GroupedCrossproducts(
            C=self.C1, D=np.ascontiguousarray(stats.ZX[:Q1].reshape(self.G1, self.q1, p)),
            e=np.ascontiguousarray(stats.Zy[:Q1].reshape(self.G1, self.q1)),
            XtX=stats.XtX, Xty=stats.Xty, yty=stats.yty, n=stats.n,
            group_n=self.C1[:, 0, 0].copy()), factors[0].term, reml=reml)
        self.B = ZZ[:Q1, Q1:].tocsr()
        self.ZrZr = ZZ[Q1:, Q1:].tocsr()
        self.dense = dense_rest(self.B, self.ZrZr)
        if self.dense and type(self) is MultiProfiledDeviance:
            self.ZrZr = self.ZrZr.toarray()
        self.n_evals = 0

    @property
    def n_theta(self):
        return int(self.theta_slices[-1])

    @property
    def dof(self):
        return self.stats.n - self.stats.p if self.reml else self.stats.n

    def _lambda_rest(self, theta):
        """Λ_r (sparse, block diagonal) of the factors after the first."""
        blocks = []
        for k, f in enumerate(self.factors[1:], start=1):
            T = f.term.factor(theta[self.theta_slices[k]:self.theta_slices[k + 1]])
            blocks.append(sparse.kron(sparse.identity(f.n_levels, format="csr"),
                                      sparse.csr_matrix(T), format="csr"))
        if not blocks:  # one factor: nothing after the first
            return sparse.csr_matrix((0, 0))
        return sparse.block_diag(blocks, format="csr")

    def evaluate(self, theta, keep=False):
        """Solve the PLS problem at θ; ``keep`` retains the factors for the conditional
        modes and variances."""
        st = self.stats
        theta = np.asarray(theta, dtype=float)
        self.n_evals += 1
        G1, p = self.G1, st.p
        Q1 = st.offsets[1]
        T1 = self.terms[0].factor(theta[:self.theta_slices[1]])
        # first factor, level by level: L1_i = chol(T1'C1_i T1 + I), R1_i, c1_i
        logdet, RtR, Rtc, cc = self.first.factor_groups(T1)
        L1, c1, R1 = self.first.blocks  # the next evaluation overwrites them: copied to keep
        R1, c1 = R1.reshape(Q1, p), c1.reshape(Q1)
        if keep:
            R1, c1 = R1.copy(), c1.copy()
        L1inv = np.linalg.inv(L1)  # (G1, q1, q1), lower triangular
        P1 = L1inv @ T1.T[None]  # L1⁻¹ T1' per level
        P1s = sparse.bsr_matrix((P1, np.arange(G1), np.arange(G1 + 1)),
                                shape=(Q1, Q1)).tocsr()
        Lr = self._lambda_rest(theta)
        F = (P1s @ self.B @ Lr).tocsr()  # Q1 × Qr
        Qr = Lr.shape[0]
        if self.dense:
            Arr = (np.asarray((Lr.T @ (Lr.T @ self.ZrZr).T).T) if Qr else np.zeros((0, 0)))
            Arr = Arr + np.eye(Qr) - (F.T @ F).toarray()
        else:
            Arr = (Lr.T @ self.ZrZr @ Lr + sparse.identity(Qr) - F.T @ F).tocsc()
        Kr = Lr.T @ st.ZX[Q1:] - F.T @ R1
        gr = Lr.T @ st.Zy[Q1:] - F.T @ c1
        try:
            rest = RestFactor(Arr)
        except (linalg.LinAlgError, RuntimeError):
            return MultiPLSState(theta, np.full(p, np.nan), np.nan, np.inf)
        pieces = dict(T1=T1, L1inv=L1inv, P1s=P1s, Lr=Lr, F=F, R1=R1, c1=c1) if keep else None
        return self._finish(theta, logdet + rest.logdet, rest.solve, (RtR, Rtc, cc), Kr, gr,
                            pieces, rest=rest)

    def _finish(self, theta, logdet, solve, first, Kr, gr, pieces, rest=None):
        """From the first factor's reductions ``first = (Σ R_i'R_i, Σ R_i'c_i, Σ ‖c_i‖²)``
        and the factored rest block (``solve(b) = S_rr⁻¹b``): the fixed effects' Schur
        complement, β, r² and the deviance (the last steps of the blocked
        factorization)."""
        st, p = self.stats, self.stats.p
        RtR, Rtc, cc = first
        Y, z = solve(Kr), solve(gr)
        S = st.XtX - RtR - Kr.T @ Y
        rhs = st.Xty - Rtc - Kr.T @ z
        try:
            RX = linalg.cholesky(S, lower=False) if p else np.zeros((0, 0))
        except linalg.LinAlgError:
            return MultiPLSState(theta, np.full(p, np.nan), np.nan, np.inf)
        beta = linalg.cho_solve((RX, False), rhs) if p else np.zeros(0)
        r2 = st.yty - cc - gr @ z - rhs @ beta
        dof = self.dof
        if not (r2 > 0.0 and dof > 0):
            return MultiPLSState(theta, beta, r2, np.inf)
        dev = logdet + dof * (1.0 + _LOG_2PI + np.log(r2 / dof))
        if self.reml:
            dev += 2.0 * np.log(np.abs(np.diag(RX))).sum()
        if pieces is not None:
            pieces.update(Kr=Kr, gr=gr, Y=Y, solve=solve, rest=rest, RX=RX)
        return MultiPLSState(theta, beta, r2, dev, S, pieces)

    def __call__(self, theta):
        return self.evaluate(theta).deviance

    def conditional_modes(self, state):
        """Per factor: the conditional modes (G_k, q_k) and the relative conditional
        covariance blocks (G_k, q_k, q_k) of ``b = Λu`` (lme4's ranef with condVar, in
        units of σ²). The spherical solution: ``u_r = L_r'⁻¹(c_r − R_r β)``,
        ``u_1 = L_1'⁻¹(c_1 − R_1 β − F u_r)``; the covariance of u is A⁻¹ (its diagonal
        blocks: ``S_rr⁻¹`` for the rest, ``L₁⁻ᵀ(I + F S_rr⁻¹ F')L₁⁻¹`` per first-factor
        level)."""
        pc = state.pieces
        G1, q1 = self.G1, self.q1
        beta, F, rest = state.beta, pc["F"], pc["rest"]
        ur = rest.solve(pc["gr"] - pc["Kr"] @ beta)
        t1 = (pc["c1"] - pc["R1"] @ beta - F @ ur).reshape(G1, q1)
        L1invT = pc["L1inv"].transpose(0, 2, 1)
        u1 = np.einsum("gab,gb->ga", L1invT, t1)
        cov1 = first_factor_inverse_blocks(pc["L1inv"], F, rest)
        out = []
        T1 = pc["T1"]
        out.append((u1 @ T1.T, T1[None] @ cov1 @ T1.T[None]))
        blocks = rest.diagonal_blocks([(f.n_levels, f.term.q) for f in self.factors[1:]])
        start = 0
        for k, f in enumerate(self.factors[1:], start=1):
            T = f.term.factor(state.theta[self.theta_slices[k]:self.theta_slices[k + 1]])
            q, G = f.term.q, f.n_levels
            u = ur[start:start + G * q].reshape(G, q)
            covk = blocks[k - 1]
            out.append((u @ T.T, T[None] @ covk @ T.T[None]))
            start += G * q
        return out


#: rows of the pair table B (first-factor levels) with at least this many nonzeros are
#: "heavy": their share of F'F goes to one dense rank-k update (BLAS syrk) instead of the
#: pair kernel, whose scattered writes into the Q_r × Q_r triangle miss the cache (crossed
#: 1e6 × 20,000 × 5,000: 275 users hold 81 % of the 68 million pairs)
HEAVY_ROW = 256
#: … where the rest block has at least this many columns (below, everything is in cache)
HEAVY_FROM_COLUMNS = 1000


class PairRows:
    """The rows of the pair table ``B`` (CSR, columns sorted) split into light ones, for the
    pair kernels (`skmixed._kernels.sparse_pairs`), and heavy ones (see
    `HEAVY_ROW`), held as a dense block ``H`` (rows × Q_r) for BLAS: the Schur
    complement's ``−F'F``, ``F S`` on F's pattern and the quadratic forms ``f_i'S f_i``
    for values ``data`` on B's pattern."""

    def __init__(self, B):
        B = B.tocsr()
        nnz = np.diff(B.indptr)
        heavy = (nnz >= HEAVY_ROW) & (B.shape[1] >= HEAVY_FROM_COLUMNS)
        row_of = np.repeat(np.arange(B.shape[0]), nnz)
        in_heavy = heavy[row_of]
        self.heavy_rows = np.flatnonzero(heavy)
        self.light_pos = np.flatnonzero(~in_heavy)
        self.heavy_pos = np.flatnonzero(in_heavy)
        self.light_indptr = np.concatenate([[0], np.cumsum(np.where(heavy, 0, nnz))]).astype(
            B.indptr.dtype)
        self.light_indices = np.ascontiguousarray(B.indices[self.light_pos])
        self.heavy_r = np.searchsorted(self.heavy_rows, row_of[self.heavy_pos])
        self.heavy_c = B.indices[self.heavy_pos]
        self.H = np.zeros((self.heavy_rows.size, B.shape[1]), order="F")
        self.all = not self.heavy_rows.size  # no heavy rows: the kernels on B as it is

    def _light(self, data):
        """The light rows' values (all of ``data`` without heavy rows)."""
        return data if self.all else np.ascontiguousarray(data[self.light_pos])

    def _fill(self, data):
        self.H.fill(0.0)
        self.H[self.heavy_r, self.heavy_c] = data[self.heavy_pos]
        return self.H

    def schur_lower(self, lam, zz_indptr, zz_indices, zz_data, data, out, n_parts):
        """`scaled_schur_lower` into ``out`` (Fortran order; ``zz_*``: the rest's
        own cross-products, lower triangle, CSR), heavy rows by syrk."""
        scaled_schur_lower(lam, zz_indptr, zz_indices, zz_data, self.light_indptr,
                           self.light_indices, self._light(data), out, n_parts)
        if self.all:
            return
        res = linalg.blas.dsyrk(-1.0, self._fill(data), beta=1.0, c=out, trans=1, lower=1,
                                overwrite_c=1)
        if res is not out:
            out[...] = res

    def pattern_products(self, data, S, out):
        """`row_pattern_products` (``F S`` on B's pattern; S's lower triangle)."""
        light = out if self.all else np.empty(self.light_pos.size)
        row_pattern_products(self.light_indptr, self.light_indices, self._light(data), S,
                             light)
        if self.all:
            return
        out[self.light_pos] = light
        HS = linalg.blas.dsymm(1.0, S, self._fill(data), side=1, lower=1)
        out[self.heavy_pos] = HS[self.heavy_r, self.heavy_c]

    def quadratic_forms(self, data, S, out):
        """`row_quadratic_forms` (``f_i'S f_i`` per row; S's lower triangle)."""
        row_quadratic_forms(self.light_indptr, self.light_indices, self._light(data), S, out)
        if self.all:
            return
        H = self._fill(data)
        HS = linalg.blas.dsymm(1.0, S, H, side=1, lower=1)
        out[self.heavy_rows] = np.einsum("ij,ij->i", HS, H)


def _schur_inverse(Lrr):
    """S_rr⁻¹'s lower triangle from its Cholesky factor (LAPACK potri), written over it
    (the factor is not used after: one Q_r × Q_r buffer, not two). A single factor
    (e.g. one interaction given as ``[("a", "b")]``) has no rest: S_rr is 0 × 0, which
    LAPACK refuses with a message on the console (its leading dimension 0 is invalid)."""
    if Lrr.shape[0] == 0:
        return np.zeros((0, 0))
    Sinv, info = linalg.lapack.dpotri(Lrr, lower=1, overwrite_c=1)
    if info != 0:
        raise linalg.LinAlgError(f"LAPACK dpotri failed (info {info})")
    return Sinv


class ScalarFactorsDeviance(MultiProfiledDeviance):
    """The common case of intercept-only factors (``(1|a) + (1|b) + …``; InstEval,
    Penicillin, Pastes): Λ is diagonal (θ_k on factor k's columns), so with the first
    factor's ``l_i = √(θ₁² c_i + 1)`` the elimination is by scalings of Z'WZ's blocks:
    ``F = diag(θ₁/l) B diag(λ_r)`` keeps B's sparsity pattern, and every product below is
    over the pattern's per-row pairs (Σ_i nnz_i², fixed across θ).

    Exact gradient (θ_k > 0; the envelope theorem on r² as in the additive REML):
    ``∂d/∂θ_k = (2/θ_k)(G_k − tr_k(M⁻¹)_uu − dof ‖u_k‖²/r²)``, where ``(M⁻¹)_uu`` is
    A⁻¹ (ML) or A⁻¹ + A⁻¹K S_X⁻¹K'A⁻¹ (REML), its diagonal from ``S_rr⁻¹`` (LAPACK
    potri) and the pairs."""

    def __init__(self, stats, factors, reml=True):
        super().__init__(stats, factors, reml)
        B = self.B.tocsr()
        B.sort_indices()
        self.B = B
        self.B_rows = np.repeat(np.arange(B.shape[0]), np.diff(B.indptr))
        self.B_cols = B.indices.astype(np.int64)
        self.c1 = self.C1[:, 0, 0]
        self.col_factor = np.concatenate([np.full(f.n_levels, k) for k, f in
                                          enumerate(factors)])
        low = sparse.tril(self.ZrZr, format="csr")
        low.sort_indices()
        self.zz_lower = low
        Qr = low.shape[0]
        # two nested factors (classes in schools): each first-factor level meets one rest
        # level, so S_rr is diagonal — its diagonal by bincount, no dense block
        self.diagonal = nested_diagonal_rest(B, factors)
        if self.diagonal:
            self.zz_diag = self.ZrZr.diagonal()
        else:
            self._schur = np.empty((Qr, Qr), order="F")
            self._schur.fill(0.0)  # touch every page now, not inside the threaded kernel
            self.pair_rows = PairRows(B)

    @property
    def rest_columns(self):
        """Columns of the dense rest block (0 where it is diagonal)."""
        return 0 if self.diagonal else self.zz_lower.shape[0]

    def _lams(self, theta):
        return np.repeat(theta, [f.n_levels for f in self.factors])

    def evaluate(self, theta, keep=False):
        st = self.stats
        theta = np.asarray(theta, dtype=float)
        self.n_evals += 1
        p, Q1 = st.p, st.offsets[1]
        lam = self._lams(theta)
        lam1, lamr = lam[:Q1], lam[Q1:]
        l = np.sqrt(lam1 * lam1 * self.c1 + 1.0)
        logdet = 2.0 * np.log(l).sum()
        p1 = lam1 / l
        Fdata = p1[self.B_rows] * self.B.data * lamr[self.B_cols]
        F = sparse.csr_matrix((Fdata, self.B.indices, self.B.indptr), shape=self.B.shape)
        R1 = p1[:, None] * st.ZX[:Q1]
        c1 = p1 * st.Zy[:Q1]
        Kr = lamr[:, None] * st.ZX[Q1:] - F.T @ R1
        gr = lamr * st.Zy[Q1:] - F.T @ c1
        first = (R1.T @ R1, R1.T @ c1, c1 @ c1)
        pieces = dict(T1=np.array([[theta[0]]]), L1inv=(1.0 / l)[:, None, None], l=l,
                      F=F, Fdata=Fdata, R1=R1, c1=c1)
        if self.diagonal:
            # S_rr diagonal (nested_diagonal_rest): its diagonal by bincount
            d = (lamr * lamr * self.zz_diag + 1.0
                 - np.bincount(self.B_cols, weights=Fdata * Fdata, minlength=lamr.size))
            if not np.all(d > 0):
                return MultiPLSState(theta, np.full(p, np.nan), np.nan, np.inf)
            pieces["Sdiag"] = d
            return self._finish(theta, logdet + np.log(d).sum(),
                                lambda b: b / (d if b.ndim == 1 else d[:, None]), first,
                                Kr, gr, pieces)
        # the Schur complement's lower triangle, formed and factored in place (LAPACK's
        # potrf reads no other part and writes L there)
        Lrr = self._schur
        zz = self.zz_lower
        self.pair_rows.schur_lower(lamr, zz.indptr, zz.indices, zz.data, Fdata, Lrr,
                                   numba.get_num_threads())
        Lrr, info = linalg.lapack.dpotrf(Lrr, lower=1, clean=0, overwrite_a=1)
        if info != 0 or not np.all(np.isfinite(np.diag(Lrr))):
            return MultiPLSState(theta, np.full(p, np.nan), np.nan, np.inf)
        pieces["Lrr"] = Lrr
        return self._finish(theta, logdet + 2.0 * np.log(np.diag(Lrr)).sum(),
                            lambda b: linalg.cho_solve((Lrr, True), b, check_finite=False),
                            first, Kr, gr, pieces)

    def value_and_grad(self, theta):
        state = self.evaluate(theta)
        if not np.isfinite(state.deviance):
            return np.inf, np.zeros(self.n_theta)
        grad = self.gradient(state)
        self._last = state
        return state.deviance, grad

    def last_state(self, theta):
        """The state of the last `value_and_grad` if it was at θ (the optimizer's
        optimum, usually: its modes and variances are already there), else a new one."""
        last = getattr(self, "_last", None)
        if last is not None and np.array_equal(last.theta, np.asarray(theta, dtype=float)):
            return last
        return self.evaluate(theta, keep=True)

    def _spherical(self, state):
        """The spherical modes ``u`` and the diagonal of A⁻¹ (``var``), once per state:
        ``u_r = S_rr⁻¹(g_r − K_r β)``, ``u_1 = (c_1 − R_1 β − F u_r)/l``; the first factor's
        ``(1 + f_i'S_rr⁻¹f_i)/l_i²`` from the row pairs, the rest's ``diag(S_rr⁻¹)``
        (S_rr⁻¹ by LAPACK potri, written over its factor: no solve after this)."""
        pc = state.pieces
        if "u" not in pc:
            l, F, beta = pc["l"], pc["F"], state.beta
            ur = pc["solve"](pc["gr"] - pc["Kr"] @ beta)
            u1 = (pc["c1"] - pc["R1"] @ beta - F @ ur) / l
            if self.diagonal:
                sinv = 1.0 / pc["Sdiag"]
                quad = np.bincount(self.B_rows, weights=pc["Fdata"] ** 2 * sinv[self.B_cols],
                                   minlength=l.size)
            else:
                Sinv = _schur_inverse(pc["Lrr"])
                quad = np.empty(l.size)
                self.pair_rows.quadratic_forms(pc["Fdata"], Sinv, quad)
                sinv = np.diag(Sinv)
            pc.update(u=np.concatenate([u1, ur]),
                      var=np.concatenate([(1.0 + quad) / (l * l), sinv]),
                      solve=None, Lrr=None)
        return pc["u"], pc["var"]

    def gradient(self, state):
        pc, st, theta = state.pieces, self.stats, state.theta
        u, diag = self._spherical(state)
        if self.reml and st.p:
            Yr = pc["Y"]
            Y1 = (pc["R1"] - pc["F"] @ Yr) / pc["l"][:, None]
            Y = np.vstack([Y1, Yr]) @ linalg.solve_triangular(pc["RX"], np.eye(st.p))
            diag = diag + np.sum(Y * Y, axis=1)
        c = self.dof / state.penalized_rss
        G = np.array([f.n_levels for f in self.factors], dtype=float)
        tr = np.bincount(self.col_factor, weights=diag, minlength=len(G))
        uu = np.bincount(self.col_factor, weights=u * u, minlength=len(G))
        with np.errstate(divide="ignore", invalid="ignore"):
            grad = 2.0 * (G - tr - c * uu) / theta
        small = np.abs(theta) < 1e-8
        grad[small] = 0.0  # θ_k = 0 is stationary (d depends on θ_k through θ_k²)
        return grad

    def conditional_modes(self, state):
        """As `MultiProfiledDeviance.conditional_modes` (scalar terms), from
        `_spherical`."""
        u, var = self._spherical(state)
        out, start = [], 0
        for k, f in enumerate(self.factors):
            t = state.theta[k]
            G = f.n_levels
            out.append((t * u[start:start + G, None],
                        (t * t * var[start:start + G])[:, None, None]))
            start += G
        return out
