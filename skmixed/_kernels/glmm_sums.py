"""Row sums of a GLMM outside the per-group deviance: the GLM without random effects
(start values), lme4's nAGQ = 0 joint PIRLS step, and the count of extreme linear
predictors (separation)."""

import numpy as np
from numba import prange

from .blocks import block_bounds
from .._cache import cached_njit
from .dense import lower_matvec, tct_plus_identity
from .glmm_rows import _fixed_eta, _row_eta, _weighted_terms


@cached_njit(nogil=True)
def fixed_glm_sums(family, fpar, X, y, m, off, fw, beta, ll_out, score_out, info_out, first=0,
                   last=-1):
    """Per-block log-likelihood, score and information of the GLM without random effects
    (start values); the rows are split into ``ll_out.shape[0]`` fixed blocks
    (:mod:`.blocks`), so the caller's sums over blocks do not depend on the threads. Blocks
    ``first`` to ``last - 1`` (default: all; threads run ranges of them:
    :func:`.threads.over_blocks`)."""
    n = X.shape[0]
    p = X.shape[1]
    n_blk = ll_out.shape[0]
    for c in range(first, n_blk if last < 0 else last):
        ll = 0.0
        sc = np.zeros(p)
        info = np.zeros((p, p))
        start, stop = block_bounds(n, n_blk, c)
        for r in range(start, stop):
            eta = _fixed_eta(X, off, beta, r)
            wr, l0, l1, _, v, _ = _weighted_terms(family, fpar, y, m, fw, r, eta)
            ll += wr * l0
            for j in range(p):
                sc[j] += wr * l1 * X[r, j]
                wvx = wr * v * X[r, j]
                for k in range(j, p):
                    info[j, k] += wvx * X[r, k]
        ll_out[c] = ll
        for j in range(p):
            score_out[c, j] = sc[j]
            for k in range(p):
                info_out[c, j, k] = info[min(j, k), max(j, k)]


@cached_njit
def _joint_pass(family, fpar, X, zcol, y, m, off, fw, lo, hi, beta, Tu, z, slz, C, wzx, sc, xvx):
    """A group's pass for the joint PIRLS step (Fisher weights v_F, as lme4's PIRLS):
    returns Σ w ℓ; adds Σ w ℓ' z, C = Σ w v_F z z', Σ w v_F z x', Σ w ℓ' x and the upper
    triangle of Σ w v_F x x' into the (zeroed) arrays."""
    p = X.shape[1]
    q = zcol.shape[0]
    ll = 0.0
    for r in range(lo, hi):
        eta = _row_eta(X, zcol, off, beta, Tu, r, z)
        wr, l0, l1, _, v, _ = _weighted_terms(family, fpar, y, m, fw, r, eta)
        ll += wr * l0
        for a in range(q):
            slz[a] += wr * l1 * z[a]
            wvz = wr * v * z[a]
            for b in range(q):
                C[a, b] += wvz * z[b]
            for j in range(p):
                wzx[a, j] += wvz * X[r, j]
        for j in range(p):
            xj = X[r, j]
            sc[j] += wr * l1 * xj
            wvx = wr * v * xj
            for k in range(j, p):
                xvx[j, k] += wvx * X[r, k]
    return ll


@cached_njit(parallel=True)
def pirls_joint_sums(family, fpar, X, zcol, y, m, off, fw, starts, beta, T, u, f_out, H_out, g_out,
                     B_out, score_out, xvx_out):
    """One pass per group at the current (β, u) for a joint Newton step of the penalized
    log-likelihood (lme4's PIRLS, nAGQ = 0): ``f_out[i] = Σ w ℓ − ½‖u_i‖²``,
    ``H_out[i] = T'(Σ w v z z')T + I``, ``g_out[i] = T'Σ w ℓ' z − u_i``,
    ``B_out[i] = T'Σ w v z x'``, ``score_out[i] = Σ w ℓ' x``, ``xvx_out[i] = Σ w v x x'``."""
    G = starts.shape[0] - 1
    p = X.shape[1]
    q = zcol.shape[0]
    for i in prange(G):
        ui = u[i]
        z = np.zeros(q)
        Tu = np.zeros(q)
        lower_matvec(T, ui, Tu)
        C = np.zeros((q, q))
        slz = np.zeros(q)
        wzx = np.zeros((q, p))
        sc = np.zeros(p)
        xvx = np.zeros((p, p))
        ll = _joint_pass(family, fpar, X, zcol, y, m, off, fw, starts[i], starts[i + 1], beta, Tu,
                         z, slz, C, wzx, sc, xvx)
        for a in range(q):
            ll -= 0.5 * ui[a] * ui[a]
        f_out[i] = ll
        tct_plus_identity(T, C, H_out[i])
        for a in range(q):
            s = 0.0
            for k in range(a, q):
                s += T[k, a] * slz[k]
            g_out[i, a] = s - ui[a]
            for j in range(p):
                s = 0.0
                for k in range(a, q):
                    s += T[k, a] * wzx[k, j]
                B_out[i, a, j] = s
        for j in range(p):
            score_out[i, j] = sc[j]
            for k in range(p):
                xvx_out[i, j, k] = xvx[min(j, k), max(j, k)]


@cached_njit(nogil=True)
def count_extreme_eta(X, zcol, off, fw, starts, beta, B, low, high, counts):
    """Per group (``counts[i]``), the number of rows (with positive weight) whose linear
    predictor ``o + x'β + z'b_i`` (B: the groups' random effects, G × q) lies outside
    ``[low, high]`` (threads run parts of the groups: :func:`.threads.over_groups`)."""
    G = starts.shape[0] - 1
    for i in range(G):
        z = np.empty(zcol.shape[0])
        c = 0
        for r in range(starts[i], starts[i + 1]):
            if fw.shape[0] > 0 and not fw[r] > 0.0:
                continue
            eta = _row_eta(X, zcol, off, beta, B[i], r, z)
            if eta < low or eta > high:
                c += 1
        counts[i] = c
