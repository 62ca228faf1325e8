"""Per-group penalized IRLS and the Laplace / adaptive Gauss–Hermite deviance of a GLMM.

Rows are grouped (``starts[i]:starts[i+1]`` are group i's rows). For group i with spherical
random effects u, ``η_j = o_j + x_j'β + z_j'T u`` and

    f_i(u) = Σ_j w_j ℓ(y_j; η_j) − ½‖u‖²                         (w: frequency weights)

the conditional mode û_i maximizes f_i by Newton steps with the observed information
``H_i = T'(Σ_j w_j v_j z_j z_j')T + I`` (``v = −∂²ℓ/∂η²``), warm-started from the last
evaluation. The Laplace deviance (lme4's nAGQ = 1) is

    d = Σ_i −2 f_i(û_i) + log det H_i

with ℓ the full log-likelihood (log C(m, k) included). The gradient over (β, θ) (derivation
in DESIGN §3, for canonical links, where observed = Fisher information):

    ∂d/∂β_k = −2 Σ ℓ'_j x_jk + Σ s_j x_jk + (Σ s_j z_j)'T ∂û/∂β_k
    ∂d/∂θ_m = −2 (Σℓ'_j z_j)_a û_b + 2 (H⁻¹T'C)_{ba} + (Σ s_j z_j)_a û_b + (Σ s_j z_j)'T ∂û/∂θ_m

for θ_m = T[a, b]; ``s_j = w_j v'_j z_j'A z_j`` with ``A = T H⁻¹ T'`` and ``v' = ∂v/∂η``;
``∂û/∂β = −H⁻¹T'(Σ w v z x')``, ``∂û/∂θ_m = H⁻¹(e_b (Σℓ'z)_a − T'C[:, a] û_b)``,
``C = Σ w v z z'``. Adaptive Gauss–Hermite (scalar random effect): nodes at
``û + t_k/√H`` with the probabilists' weights; its exact gradient (differentiating the
nodes through û and H) is in :func:`_agq_group`.

Families (codes): 0 binomial-logit, 1 Poisson-log. ``m`` holds binomial trials (y are
success counts), empty for 0/1 data.
"""

import math

import numpy as np
from numba import njit, prange

from .dense import chol_lower as _chol
from .dense import chol_solve as _chol_solve
from .dense import lower_matvec, lower_sandwich, tct_plus_identity

__all__ = ["BINOMIAL_LOGIT", "POISSON_LOG", "laplace_groups", "agq_groups", "agq_grad_groups",
           "row_terms", "fixed_glm_sums", "pirls_joint_sums"]

BINOMIAL_LOGIT = 0
POISSON_LOG = 1


@njit(cache=True)
def row_terms(family, y, m, eta):
    """``(ℓ, ℓ', v, v')`` of one row: log-likelihood, its η-derivative, the information
    ``v = −ℓ''`` and ``v' = ∂v/∂η``."""
    if family == BINOMIAL_LOGIT:
        # ℓ = k η − m log(1 + e^η) + log C(m, k); one exp serves μ and log(1 + e^η)
        e = math.exp(-abs(eta))
        if eta >= 0.0:
            mu = 1.0 / (1.0 + e)
            ll = y * eta - m * (eta + math.log1p(e))
        else:
            mu = e / (1.0 + e)
            ll = y * eta - m * math.log1p(e)
        if m != 1.0:
            ll += math.lgamma(m + 1.0) - math.lgamma(y + 1.0) - math.lgamma(m - y + 1.0)
        v = m * mu * (1.0 - mu)
        return ll, y - m * mu, v, v * (1.0 - 2.0 * mu)
    # Poisson log: ℓ = y η − e^η − log y!
    mu = math.exp(eta)
    return y * eta - mu - math.lgamma(y + 1.0), y - mu, mu, mu


@njit(cache=True, inline="always")
def _fixed_eta(X, off, beta, r):
    """``o_r + x_r'β`` (an empty offset array means no offset)."""
    eta = off[r] if off.shape[0] > 0 else 0.0
    for j in range(X.shape[1]):
        eta += X[r, j] * beta[j]
    return eta


@njit(cache=True, inline="always")
def _re_covariate(X, zcol, r, a):
    """Random-effect covariate ``a`` of row r (``zcol[a] < 0``: the constant 1)."""
    return 1.0 if zcol[a] < 0 else X[r, zcol[a]]


@njit(cache=True, inline="always")
def _weighted_terms(family, y, m, fw, r, eta):
    """``(w, ℓ, ℓ', v, v')`` of row r: its frequency weight and :func:`row_terms` with its
    trials (empty arrays: weight 1, one trial)."""
    mr = m[r] if m.shape[0] > 0 else 1.0
    wr = fw[r] if fw.shape[0] > 0 else 1.0
    l0, l1, v, v1 = row_terms(family, y[r], mr, eta)
    return wr, l0, l1, v, v1


@njit(cache=True)
def _group_pass(family, X, zcol, y, m, off, fw, lo, hi, beta, T, u, z, Tu, want_c,
                sl_z, C):
    """One pass over a group's rows at u: returns Σ w ℓ; fills Σ w ℓ' z and (if want_c)
    C = Σ w v z z'."""
    q = zcol.shape[0]
    lower_matvec(T, u, Tu)
    for a in range(q):
        sl_z[a] = 0.0
        if want_c:
            for b in range(q):
                C[a, b] = 0.0
    ll = 0.0
    for r in range(lo, hi):
        eta = _fixed_eta(X, off, beta, r)
        for a in range(q):
            z[a] = _re_covariate(X, zcol, r, a)
            eta += z[a] * Tu[a]
        wr, l0, l1, v, _ = _weighted_terms(family, y, m, fw, r, eta)
        ll += wr * l0
        for a in range(q):
            sl_z[a] += wr * l1 * z[a]
            if want_c:
                wvz = wr * v * z[a]
                for b in range(q):
                    C[a, b] += wvz * z[b]
    return ll


@njit(cache=True)
def _mode(family, X, zcol, y, m, off, fw, lo, hi, beta, T, u, max_steps, tol, work):
    """Newton iterations for û (in place in u). Returns (f(û), converged) and leaves C, H,
    L (Cholesky of H) at û in ``work``."""
    q = u.shape[0]
    z, Tu, sl_z, grad, step, unew = work[0], work[1], work[2], work[3], work[4], work[5]
    C, H, L = work[6:6 + q], work[6 + q:6 + 2 * q], work[6 + 2 * q:6 + 3 * q]
    f = _group_pass(family, X, zcol, y, m, off, fw, lo, hi, beta, T, u, z, Tu, True, sl_z, C)
    for a in range(q):
        f -= 0.5 * u[a] * u[a]
    converged = False
    for _ in range(max_steps):
        tct_plus_identity(T, C, H)
        if not _chol(H, L):
            return -np.inf, False
        # gradient T'Σℓ'z − u
        for a in range(q):
            s = 0.0
            for k in range(a, q):
                s += T[k, a] * sl_z[k]
            grad[a] = s - u[a]
        _chol_solve(L, grad, step)
        size = 0.0
        for a in range(q):
            size = max(size, abs(step[a]) / (1.0 + abs(u[a])))
        if size < tol:
            converged = True
            break
        # step halving until f increases
        t = 1.0
        accepted = False
        for _h in range(30):
            for a in range(q):
                unew[a] = u[a] + t * step[a]
            fn = _group_pass(family, X, zcol, y, m, off, fw, lo, hi, beta, T, unew, z, Tu,
                             True, sl_z, C)
            for a in range(q):
                fn -= 0.5 * unew[a] * unew[a]
            if fn >= f - 1e-12 * abs(f):
                accepted = True
                break
            t *= 0.5
        if not accepted:
            # could not improve: recompute the sums at u and stop here
            f = _group_pass(family, X, zcol, y, m, off, fw, lo, hi, beta, T, u, z, Tu, True,
                            sl_z, C)
            for a in range(q):
                f -= 0.5 * u[a] * u[a]
            tct_plus_identity(T, C, H)
            _chol(H, L)
            converged = True
            break
        for a in range(q):
            u[a] = unew[a]
        f = fn
    else:
        tct_plus_identity(T, C, H)
        _chol(H, L)
    return f, converged


@njit(parallel=True, cache=True)
def laplace_groups(family, X, zcol, y, m, off, fw, starts, beta, T, theta_rows, theta_cols,
                   u, want_grad, max_steps, tol, dev_out, grad_out, conv_out, H_out):
    """Laplace deviance per group (``dev_out[i]``) and, if ``want_grad``, its gradient over
    (β, θ) per group (``grad_out[i]``); conditional modes updated in place in ``u``, the
    information ``H_i`` at the mode in ``H_out[i]``."""
    G = starts.shape[0] - 1
    p = X.shape[1]
    q = zcol.shape[0]
    K = theta_rows.shape[0]
    for i in prange(G):
        lo = starts[i]
        hi = starts[i + 1]
        work = np.zeros((6 + 3 * q, max(q, 1)))
        ui = u[i]
        f, conv = _mode(family, X, zcol, y, m, off, fw, lo, hi, beta, T, ui, max_steps, tol,
                        work)
        conv_out[i] = conv
        C, H, L = work[6:6 + q], work[6 + q:6 + 2 * q], work[6 + 2 * q:6 + 3 * q]
        logdet = 0.0
        for a in range(q):
            logdet += 2.0 * math.log(L[a, a])
        dev_out[i] = -2.0 * f + logdet
        for a in range(q):
            for b in range(q):
                H_out[i, a, b] = H[a, b]
        if not want_grad:
            continue
        # A = T H⁻¹ T', Hinv
        Hinv = np.zeros((q, q))
        e = np.zeros(q)
        col = np.zeros(q)
        for b in range(q):
            for a in range(q):
                e[a] = 1.0 if a == b else 0.0
            _chol_solve(L, e, col)
            for a in range(q):
                Hinv[a, b] = col[a]
        A = np.zeros((q, q))
        lower_sandwich(T, Hinv, A)
        # gradient pass at û
        z = np.zeros(q)
        Tu = np.zeros(q)
        lower_matvec(T, ui, Tu)
        sl_x = np.zeros(p)
        s_x = np.zeros(p)
        s_z = np.zeros(q)
        sl_z = np.zeros(q)
        wzx = np.zeros((q, p))
        for r in range(lo, hi):
            eta = _fixed_eta(X, off, beta, r)
            for a in range(q):
                z[a] = _re_covariate(X, zcol, r, a)
                eta += z[a] * Tu[a]
            wr, _, l1, v, v1 = _weighted_terms(family, y, m, fw, r, eta)
            zAz = 0.0
            for a in range(q):
                t = 0.0
                for b in range(q):
                    t += A[a, b] * z[b]
                zAz += z[a] * t
            sr = wr * v1 * zAz
            for j in range(p):
                xj = X[r, j]
                sl_x[j] += wr * l1 * xj
                s_x[j] += sr * xj
            for a in range(q):
                s_z[a] += sr * z[a]
                sl_z[a] += wr * l1 * z[a]
                wvz = wr * v * z[a]
                for j in range(p):
                    wzx[a, j] += wvz * X[r, j]
        # (Σ s z)' T  as a row vector c_t
        c_t = np.zeros(q)
        for b in range(q):
            s = 0.0
            for a in range(b, q):
                s += s_z[a] * T[a, b]
            c_t[b] = s
        # β part: ∂û/∂β_k = −H⁻¹ T' wzx[:, k]
        rhs = np.zeros(q)
        du = np.zeros(q)
        for k in range(p):
            for a in range(q):
                s = 0.0
                for l in range(a, q):
                    s += T[l, a] * wzx[l, k]
                rhs[a] = -s
            _chol_solve(L, rhs, du)
            g = -2.0 * sl_x[k] + s_x[k]
            for a in range(q):
                g += c_t[a] * du[a]
            grad_out[i, k] = g
        # θ part
        HTC = np.zeros((q, q))  # H⁻¹ T' C
        for a in range(q):
            for b in range(q):
                s = 0.0
                for k in range(q):
                    tc = 0.0
                    for l in range(k, q):
                        tc += T[l, k] * C[l, b]
                    s += Hinv[a, k] * tc
                HTC[a, b] = s
        for kk in range(K):
            a = theta_rows[kk]
            b = theta_cols[kk]
            # ∂F/∂θ = e_b (Σℓ'z)_a − T' C[:, a] û_b
            for c in range(q):
                s = 0.0
                for l in range(c, q):
                    s += T[l, c] * C[l, a]
                rhs[c] = -s * ui[b]
            rhs[b] += sl_z[a]
            _chol_solve(L, rhs, du)
            g = -2.0 * sl_z[a] * ui[b] + 2.0 * HTC[b, a] + s_z[a] * ui[b]
            for c in range(q):
                g += c_t[c] * du[c]
            grad_out[i, p + kk] = g


@njit(cache=True)
def _agq_mode_sums(family, X, zcol, y, m, off, fw, lo, hi, beta, bz, svzx, sv1zzx):
    """The pass at û for the AGQ gradient (q = 1), at ``η = o + x'β + z·bz`` (bz = θû).
    Returns ``(Σ w ℓ' z, Σ w v z², Σ w v' z³)``; fills ``svzx = Σ w v z x`` and
    ``sv1zzx = Σ w v' z² x``."""
    p = X.shape[1]
    for j in range(p):
        svzx[j] = 0.0
        sv1zzx[j] = 0.0
    sl_z = 0.0
    c = 0.0
    s3 = 0.0
    for r in range(lo, hi):
        z = _re_covariate(X, zcol, r, 0)
        eta = _fixed_eta(X, off, beta, r) + z * bz
        wr, _, l1, v, v1 = _weighted_terms(family, y, m, fw, r, eta)
        wvz = wr * v * z
        wv1zz = wr * v1 * z * z
        sl_z += wr * l1 * z
        c += wvz * z
        s3 += wv1zz * z
        for j in range(p):
            xj = X[r, j]
            svzx[j] += wvz * xj
            sv1zzx[j] += wv1zz * xj
    return sl_z, c, s3


@njit(cache=True)
def _agq_node_pass(family, X, zcol, y, m, off, fw, lo, hi, beta, bz, sl_x):
    """One quadrature-node pass (q = 1) at ``η = o + x'β + z·bz``: returns ``(Σ w ℓ,
    Σ w ℓ' z)`` and fills ``sl_x = Σ w ℓ' x``. Σ w ℓ is accumulated exactly as in
    :func:`_group_pass`, so the deviance equals the value-only kernel's."""
    p = X.shape[1]
    for j in range(p):
        sl_x[j] = 0.0
    ll = 0.0
    sl_z = 0.0
    for r in range(lo, hi):
        z = _re_covariate(X, zcol, r, 0)
        eta = _fixed_eta(X, off, beta, r) + z * bz
        wr, l0, l1, _, _ = _weighted_terms(family, y, m, fw, r, eta)
        ll += wr * l0
        wl1 = wr * l1
        sl_z += wl1 * z
        for j in range(p):
            sl_x[j] += wl1 * X[r, j]
    return ll, sl_z


@njit(cache=True)
def _agq_group(family, X, zcol, y, m, off, fw, lo, hi, beta, T, ui, nodes, weights,
               max_steps, tol, want_grad, grad):
    """AGQ deviance of one group (q = 1) and, if ``want_grad``, its gradient over (β, θ)
    into ``grad`` (length p + 1). Returns ``(deviance, converged)``.

    With π_k ∝ w_k exp(f(u_k) + t_k²/2) (normalized), u_k = û + σ t_k, σ = H^{-1/2}:

        ∂d/∂φ = −2 [σ_φ/σ + Σ_k π_k (∂f/∂φ|_{u_k} + f'(u_k)(û_φ + t_k σ_φ))]

    with ∂f/∂β|_u = Σ w ℓ' x, ∂f/∂θ|_u = u Σ w ℓ' z, f'(u) = θ Σ w ℓ' z − u (sums at u),
    û_β = −θ H⁻¹ Σ w v z x, û_θ = H⁻¹ (Σ w ℓ' z − θ û Σ w v z²), σ_φ/σ = −½ H_φ/H,
    H_β = θ² (Σ w v' z² x + θ û_β Σ w v' z³),
    H_θ = 2θ Σ w v z² + θ² (û + θ û_θ) Σ w v' z³ (sums at û).
    """
    p = X.shape[1]
    n_nodes = nodes.shape[0]
    work = np.zeros((9, 1))
    f, conv = _mode(family, X, zcol, y, m, off, fw, lo, hi, beta, T, ui, max_steps, tol,
                    work)
    L = work[8]
    sigma = 1.0 / L[0]
    z = np.zeros(1)
    Tu = np.zeros(1)
    slz = np.zeros(1)
    Cd = np.zeros((1, 1))
    un = np.zeros(1)
    vals = np.empty(n_nodes)
    th = T[0, 0]
    n_keep = n_nodes if want_grad else 0
    node_slx = np.empty((n_keep, p))
    node_slz = np.empty(n_keep)
    node_u = np.empty(n_keep)
    top = -np.inf
    for k in range(n_nodes):
        un[0] = ui[0] + sigma * nodes[k]
        if want_grad:
            ll, slz_k = _agq_node_pass(family, X, zcol, y, m, off, fw, lo, hi, beta,
                                       th * un[0], node_slx[k])
            node_slz[k] = slz_k
            node_u[k] = un[0]
            fk = ll - 0.5 * un[0] * un[0]
        else:
            fk = _group_pass(family, X, zcol, y, m, off, fw, lo, hi, beta, T, un, z, Tu,
                             False, slz, Cd) - 0.5 * un[0] * un[0]
        vals[k] = fk + 0.5 * nodes[k] * nodes[k] + math.log(weights[k])
        top = max(top, vals[k])
    s = 0.0
    for k in range(n_nodes):
        s += math.exp(vals[k] - top)
    dev = -2.0 * (math.log(sigma) + top + math.log(s))
    if not want_grad:
        return dev, conv
    # derivatives of û and of log σ at the mode
    u0 = ui[0]
    svzx = np.empty(p)
    sv1zzx = np.empty(p)
    slz0, c, s3 = _agq_mode_sums(family, X, zcol, y, m, off, fw, lo, hi, beta, th * u0,
                                 svzx, sv1zzx)
    H = work[7][0]
    du_t = (slz0 - th * u0 * c) / H
    r_t = -0.5 * (2.0 * th * c + th * th * (u0 + th * du_t) * s3) / H
    du_b = np.empty(p)
    r_b = np.empty(p)
    for j in range(p):
        du_b[j] = -th * svzx[j] / H
        r_b[j] = -0.5 * th * th * (sv1zzx[j] + th * du_b[j] * s3) / H
    # Σ_k π_k (...) over the nodes
    for j in range(p + 1):
        grad[j] = 0.0
    for k in range(n_nodes):
        pk = math.exp(vals[k] - top) / s
        uk = node_u[k]
        fp = th * node_slz[k] - uk
        ts = nodes[k] * sigma
        for j in range(p):
            grad[j] += pk * (node_slx[k, j] + fp * (du_b[j] + ts * r_b[j]))
        grad[p] += pk * (node_slz[k] * uk + fp * (du_t + ts * r_t))
    for j in range(p):
        grad[j] = -2.0 * (r_b[j] + grad[j])
    grad[p] = -2.0 * (r_t + grad[p])
    return dev, conv


@njit(parallel=True, cache=True)
def agq_groups(family, X, zcol, y, m, off, fw, starts, beta, T, u, nodes, weights, max_steps,
               tol, dev_out, conv_out):
    """Adaptive Gauss–Hermite deviance per group for a scalar random effect (q = 1):
    ``−2 log(σ Σ_k w_k exp(f(û + σ t_k) + t_k²/2))`` with σ = H^{-1/2}."""
    G = starts.shape[0] - 1
    unused = np.empty(0)
    for i in prange(G):
        dev, conv = _agq_group(family, X, zcol, y, m, off, fw, starts[i], starts[i + 1], beta,
                               T, u[i], nodes, weights, max_steps, tol, False, unused)
        dev_out[i] = dev
        conv_out[i] = conv


@njit(parallel=True, cache=True)
def agq_grad_groups(family, X, zcol, y, m, off, fw, starts, beta, T, u, nodes, weights,
                    max_steps, tol, dev_out, grad_out, conv_out):
    """:func:`agq_groups` with the exact gradient of each group's deviance over (β, θ) in
    ``grad_out[i]`` (p + 1 columns): the mode passes, one pass at û and one pass per node."""
    G = starts.shape[0] - 1
    for i in prange(G):
        dev, conv = _agq_group(family, X, zcol, y, m, off, fw, starts[i], starts[i + 1], beta,
                               T, u[i], nodes, weights, max_steps, tol, True, grad_out[i])
        dev_out[i] = dev
        conv_out[i] = conv


@njit(parallel=True, cache=True)
def fixed_glm_sums(family, X, y, m, off, fw, beta, n_chunks, ll_out, score_out, info_out):
    """Per-chunk log-likelihood, score and information of the GLM without random effects
    (start values)."""
    n = X.shape[0]
    p = X.shape[1]
    chunk = (n + n_chunks - 1) // n_chunks
    for c in prange(n_chunks):
        ll = 0.0
        sc = np.zeros(p)
        info = np.zeros((p, p))
        for r in range(c * chunk, min(n, (c + 1) * chunk)):
            eta = _fixed_eta(X, off, beta, r)
            wr, l0, l1, v, _ = _weighted_terms(family, y, m, fw, r, eta)
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


@njit(parallel=True, cache=True)
def pirls_joint_sums(family, X, zcol, y, m, off, fw, starts, beta, T, u, f_out, H_out, g_out,
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
        ll = 0.0
        for r in range(starts[i], starts[i + 1]):
            eta = _fixed_eta(X, off, beta, r)
            for a in range(q):
                z[a] = _re_covariate(X, zcol, r, a)
                eta += z[a] * Tu[a]
            wr, l0, l1, v, _ = _weighted_terms(family, y, m, fw, r, eta)
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
