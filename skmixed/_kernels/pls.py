"""Per-group penalized least squares for one value of θ (Bates et al. 2015, §3), and its
gradient.

With one grouping factor, ``Λ = I_G ⊗ T`` for a lower-triangular q×q factor ``T(θ)``, and the
sufficient statistics of group i are ``C_i = Z_i'WZ_i`` (q×q), ``D_i = Z_i'WX_i`` (q×p) and
``e_i = Z_i'Wy_i`` (q). For each group (Bates et al. 2015, section 3.2):

    M_i = T'C_iT + I = L_i L_i',   c_i = L_i⁻¹T'e_i,   R_i = L_i⁻¹T'D_i,

and the reductions ``Σ 2 log|L_i|``, ``Σ R_i'R_i``, ``Σ R_i'c_i``, ``Σ ‖c_i‖²`` finish the
blocked Cholesky on the p×p block. None of this touches the rows.

Gradient (derived for this package; the envelope theorem for the penalized RSS and
``∂ log det A = tr(A⁻¹ ∂A)`` for the full system matrix ``A``): for θ_k = T[a, b],

    ∂r²/∂θ_k        = −2 Σ_i (Z_i'W r_i)[a] u_i[b],   Z_i'W r_i = e_i − D_iβ − C_iTu_i
    ∂log det A/∂θ_k = Σ_i 2 (P_i T'C_i)[b, a] + 2 (D_i Q_i)[a, b]

with ``P_i = M_i⁻¹ + M_i⁻¹B_i S⁻¹B_i'M_i⁻¹``, ``Q_i = −S⁻¹B_i'M_i⁻¹``, ``B_i = T'D_i``,
``S = R_X'R_X``; for ML only the ``M`` block enters (``P_i = M_i⁻¹``, no Q term).
"""

import math

import numpy as np
from numba import prange

from .blocks import block_bounds
from .._cache import cached_njit
from .dense import backward_solve as _backward
from .dense import chol_lower
from .dense import forward_solve as _forward
from .dense import inverse_from_chol as _inverse_from_chol
from .dense import forward_solve_vector, lower_matvec, lower_sandwich, tct_plus_identity

__all__ = ["pls_groups", "pls_gradient_groups", "conditional_modes_groups"]


@cached_njit
def _pls_block(T, C, D, e, L_out, c_out, R_out, logdet_out, RtR_out, Rtc_out, cc_out, ch):
    """Block ``ch`` of :func:`pls_groups`."""
    G = C.shape[0]
    q = C.shape[1]
    p = D.shape[2]
    start, stop = block_bounds(G, logdet_out.shape[0], ch)
    M = np.empty((q, q))
    RtR = np.zeros((p, p))
    Rtc = np.zeros(p)
    logdet = 0.0
    cc = 0.0
    for i in range(start, stop):
        tct_plus_identity(T, C[i], M)
        Li = L_out[i]
        chol_lower(M, Li)
        ci = c_out[i]
        Ri = R_out[i]
        for a in range(q):
            s = 0.0
            for k in range(a, q):
                s += T[k, a] * e[i, k]
            ci[a] = s
            for j in range(p):
                s = 0.0
                for k in range(a, q):
                    s += T[k, a] * D[i, k, j]
                Ri[a, j] = s
        # forward solves with L_i
        forward_solve_vector(Li, ci)
        _forward(Li, Ri)
        for a in range(q):
            logdet += 2.0 * math.log(Li[a, a])
            cc += ci[a] * ci[a]
        for j in range(p):
            for k in range(p):
                s = 0.0
                for a in range(q):
                    s += Ri[a, j] * Ri[a, k]
                RtR[j, k] += s
            s = 0.0
            for a in range(q):
                s += Ri[a, j] * ci[a]
            Rtc[j] += s
    logdet_out[ch] = logdet
    cc_out[ch] = cc
    for j in range(p):
        Rtc_out[ch, j] = Rtc[j]
        for k in range(p):
            RtR_out[ch, j, k] = RtR[j, k]

@cached_njit(parallel=True)
def _pls_blocks(T, C, D, e, L_out, c_out, R_out, logdet_out, RtR_out, Rtc_out, cc_out):
    for ch in prange(logdet_out.shape[0]):
        _pls_block(T, C, D, e, L_out, c_out, R_out, logdet_out, RtR_out, Rtc_out, cc_out, ch)


def pls_groups(T, C, D, e, L_out, c_out, R_out, logdet_out, RtR_out, Rtc_out, cc_out):
    """Factor every group's block at ``T`` and reduce over groups, per block of groups.

    Writes ``L_out[i]``, ``c_out[i]``, ``R_out[i]`` per group and the per-block partial sums
    ``logdet_out[c] = Σ 2 log|L_i|``, ``RtR_out[c] = Σ R_i'R_i``, ``Rtc_out[c] = Σ R_i'c_i``,
    ``cc_out[c] = Σ ‖c_i‖²``; the number of blocks is ``logdet_out.shape[0]`` (fixed by the
    caller, not by the threads: the partial sums are the same on any thread count).
    """
    args = (T, C, D, e, L_out, c_out, R_out, logdet_out, RtR_out, Rtc_out, cc_out)
    if logdet_out.shape[0] == 1:
        _pls_block(*args, 0)
    else:
        _pls_blocks(*args)


@cached_njit
def _group_mode(T, Li, ci, Ri, beta, u):
    """``u = L_i'⁻¹(c_i − R_i β)``, the spherical conditional mode of one group."""
    q = Li.shape[0]
    p = beta.shape[0]
    for a in range(q):
        s = ci[a]
        for j in range(p):
            s -= Ri[a, j] * beta[j]
        u[a] = s
    _backward(Li, u)


@cached_njit
def _gradient_block(T, C, D, e, L, c, R, beta, S_inv, theta_rows, theta_cols, reml,
                    dlogdet_out, dr2_out, ch):
    """Block ``ch`` of :func:`pls_gradient_groups`."""
    G = C.shape[0]
    q = C.shape[1]
    p = D.shape[2]
    K = theta_rows.shape[0]
    start, stop = block_bounds(G, dlogdet_out.shape[0], ch)
    u = np.empty(q)
    zr = np.empty(q)
    Tu = np.empty(q)
    Minv = np.empty((q, q))
    work = np.empty((q, q))
    B = np.empty((q, p))
    MB = np.empty((q, p))
    P = np.empty((q, q))
    PTt = np.empty((q, q))
    PTtC = np.empty((q, q))
    DQ = np.zeros((q, q))
    SBM = np.empty((p, q))
    dld = np.zeros(K)
    dr2 = np.zeros(K)
    for i in range(start, stop):
        Li = L[i]
        _group_mode(T, Li, c[i], R[i], beta, u)
        lower_matvec(T, u, Tu)
        for a in range(q):
            s = e[i, a]
            for j in range(p):
                s -= D[i, a, j] * beta[j]
            for k in range(q):
                s -= C[i, a, k] * Tu[k]
            zr[a] = s
        _inverse_from_chol(Li, Minv, work)
        for a in range(q):
            for b in range(q):
                P[a, b] = Minv[a, b]
        if reml:
            for a in range(q):
                for j in range(p):
                    s = 0.0
                    for k in range(a, q):
                        s += T[k, a] * D[i, k, j]
                    B[a, j] = s
            for a in range(q):
                for j in range(p):
                    s = 0.0
                    for k in range(q):
                        s += Minv[a, k] * B[k, j]
                    MB[a, j] = s
            # SBM = S⁻¹ (M⁻¹B)'  (p×q); Q = −SBM
            for j in range(p):
                for a in range(q):
                    s = 0.0
                    for k in range(p):
                        s += S_inv[j, k] * MB[a, k]
                    SBM[j, a] = s
            for a in range(q):
                for b in range(q):
                    s = 0.0
                    for j in range(p):
                        s += MB[a, j] * SBM[j, b]
                    P[a, b] += s
                    t = 0.0
                    for j in range(p):
                        t -= D[i, a, j] * SBM[j, b]
                    DQ[a, b] = t
        # P T' C
        for a in range(q):
            for b in range(q):
                s = 0.0
                for k in range(b + 1):  # T'[k, b] = T[b, k], nonzero for k ≤ b
                    s += P[a, k] * T[b, k]
                PTt[a, b] = s
        for a in range(q):
            for b in range(q):
                s = 0.0
                for k in range(q):
                    s += PTt[a, k] * C[i, k, b]
                PTtC[a, b] = s
        for kk in range(K):
            a = theta_rows[kk]
            b = theta_cols[kk]
            dld[kk] += 2.0 * PTtC[b, a]
            if reml:
                dld[kk] += 2.0 * DQ[a, b]
            dr2[kk] -= 2.0 * zr[a] * u[b]
    for kk in range(K):
        dlogdet_out[ch, kk] = dld[kk]
        dr2_out[ch, kk] = dr2[kk]

@cached_njit(parallel=True)
def _gradient_blocks(T, C, D, e, L, c, R, beta, S_inv, theta_rows, theta_cols, reml,
                     dlogdet_out, dr2_out):
    for ch in prange(dlogdet_out.shape[0]):
        _gradient_block(T, C, D, e, L, c, R, beta, S_inv, theta_rows, theta_cols, reml,
                        dlogdet_out, dr2_out, ch)


def pls_gradient_groups(T, C, D, e, L, c, R, beta, S_inv, theta_rows, theta_cols, reml,
                        dlogdet_out, dr2_out):
    """Per-block partial sums of ``∂ log det`` and ``∂ r²`` over θ (module docstring).

    ``theta_rows``/``theta_cols`` give the (a, b) position in ``T`` of each θ component;
    ``L``, ``c``, ``R`` are the outputs of :func:`pls_groups` at the same ``T``.
    """
    args = (T, C, D, e, L, c, R, beta, S_inv, theta_rows, theta_cols, reml, dlogdet_out, dr2_out)
    if dlogdet_out.shape[0] == 1:
        _gradient_block(*args, 0)
    else:
        _gradient_blocks(*args)


@cached_njit(parallel=True)
def conditional_modes_groups(T, L, c, R, beta, modes_out, cond_cov_out):
    """Conditional modes ``b_i = T u_i`` and ``T M_i⁻¹ T'`` (to be scaled by σ²)."""
    G = L.shape[0]
    q = L.shape[1]
    for i in prange(G):
        u = np.empty(q)
        Minv = np.empty((q, q))
        work = np.empty((q, q))
        _group_mode(T, L[i], c[i], R[i], beta, u)
        lower_matvec(T, u, modes_out[i])
        _inverse_from_chol(L[i], Minv, work)
        lower_sandwich(T, Minv, cond_cov_out[i])
