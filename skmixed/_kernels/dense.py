"""Small dense linear algebra on q×q blocks inside the per-group kernels.

Plain loops: the blocks are tiny (q = 1 + random slopes), so calling LAPACK per group would
cost more than the arithmetic. No fastmath here (STYLE.md: never in Cholesky factors).
"""

import math

from .._cache import cached_njit


__all__ = ["chol_lower", "forward_solve", "backward_solve", "chol_solve",
           "inverse_from_chol", "lower_matvec", "lower_sandwich", "forward_solve_vector",
           "tct_plus_identity"]


@cached_njit
def chol_lower(M, L):
    """Cholesky factor of a small symmetric matrix into the lower triangle of ``L`` (the
    upper triangle is zeroed). Returns False, leaving ``L`` partial, if M is not positive
    definite."""
    q = M.shape[0]
    for j in range(q):
        s = M[j, j]
        for k in range(j):
            s -= L[j, k] * L[j, k]
        if not s > 0.0:
            return False
        d = math.sqrt(s)
        L[j, j] = d
        for i in range(j + 1, q):
            t = M[i, j]
            for k in range(j):
                t -= L[i, k] * L[j, k]
            L[i, j] = t / d
        for i in range(j):
            L[i, j] = 0.0
    return True


@cached_njit
def forward_solve(L, B):
    """Solve ``L X = B`` in place (B of shape (q, k))."""
    q = L.shape[0]
    for col in range(B.shape[1]):
        for i in range(q):
            t = B[i, col]
            for k in range(i):
                t -= L[i, k] * B[k, col]
            B[i, col] = t / L[i, i]


@cached_njit
def backward_solve(L, b):
    """Solve ``L' x = b`` in place (vector b)."""
    q = L.shape[0]
    for i in range(q - 1, -1, -1):
        t = b[i]
        for k in range(i + 1, q):
            t -= L[k, i] * b[k]
        b[i] = t / L[i, i]


@cached_njit
def forward_solve_vector(L, b):
    """Solve ``L x = b`` in place (vector b)."""
    q = L.shape[0]
    for i in range(q):
        t = b[i]
        for k in range(i):
            t -= L[i, k] * b[k]
        b[i] = t / L[i, i]


@cached_njit
def chol_solve(L, b, out):
    """``out = (L L')⁻¹ b`` for a vector b."""
    for i in range(b.shape[0]):
        out[i] = b[i]
    forward_solve_vector(L, out)
    backward_solve(L, out)


@cached_njit
def inverse_from_chol(L, out, work):
    """``out = (L L')⁻¹``; ``work`` is a q×q scratch array (no allocation per group)."""
    q = L.shape[0]
    for col in range(q):
        for i in range(q):
            work[i, col] = 1.0 if i == col else 0.0
    forward_solve(L, work)
    # work now holds L⁻¹; (LL')⁻¹ = L⁻ᵀL⁻¹
    for i in range(q):
        for j in range(q):
            s = 0.0
            for k in range(max(i, j), q):
                s += work[k, i] * work[k, j]
            out[i, j] = s


@cached_njit
def lower_matvec(T, u, out):
    """``out = T u`` for a lower-triangular T (the random effects ``b = Λ u`` of a group)."""
    q = T.shape[0]
    for a in range(q):
        s = 0.0
        for k in range(a + 1):
            s += T[a, k] * u[k]
        out[a] = s


@cached_njit
def lower_sandwich(T, A, out):
    """``out = T A T'`` for a lower-triangular T (e.g. a conditional covariance Λ H⁻¹ Λ')."""
    q = T.shape[0]
    for a in range(q):
        for b in range(q):
            s = 0.0
            for k in range(a + 1):
                for l in range(b + 1):
                    s += T[a, k] * A[k, l] * T[b, l]
            out[a, b] = s


@cached_njit
def tct_plus_identity(T, C, out):
    """``out = T'CT + I`` for a lower-triangular T: a group's penalized block
    (Λ'Z'WZΛ + I; Bates et al. 2015, §3)."""
    q = T.shape[0]
    for a in range(q):
        for b in range(q):
            s = 0.0
            for k in range(a, q):
                for l in range(b, q):
                    s += T[k, a] * C[k, l] * T[l, b]
            out[a, b] = s + (1.0 if a == b else 0.0)
