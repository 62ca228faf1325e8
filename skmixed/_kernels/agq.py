"""Adaptive Gauss–Hermite quadrature for a scalar random effect: the deviance per group and
its exact gradient (:func:`agq_groups`, :func:`agq_grad_groups`; see :mod:`.glmm`)."""

import math

import numpy as np
from numba import prange

from .._cache import cached_njit
from .glmm_rows import (_fixed_eta, _re_covariate, _weighted_terms, _group_pass, _mode,
                        _refine_mode, _ACCEPT, _FULL_PASSES)
from ..families import observed_logdet


@cached_njit
def _agq_mode_sums(family, fpar, X, zcol, y, m, off, fw, lo, hi, beta, bz, svzx, sv1zzx):
    """The pass at û for the AGQ gradient (q = 1), at ``η = o + x'β + z·bz`` (bz = θû).
    Returns ``(Σ w ℓ' z, Σ w v z², Σ w v_F z², Σ w v_F' z³)``; fills ``svzx = Σ w v z x``
    and ``sv1zzx = Σ w v_F' z² x`` (v: observed, v_F: expected information)."""
    p = X.shape[1]
    for j in range(p):
        svzx[j] = 0.0
        sv1zzx[j] = 0.0
    sl_z = 0.0
    c = 0.0
    cf = 0.0
    s3 = 0.0
    for r in range(lo, hi):
        z = _re_covariate(X, zcol, r, 0)
        eta = _fixed_eta(X, off, beta, r) + z * bz
        wr, _, l1, v, vf, vf1 = _weighted_terms(family, fpar, y, m, fw, r, eta)
        wvz = wr * v * z
        wv1zz = wr * vf1 * z * z
        sl_z += wr * l1 * z
        c += wvz * z
        cf += wr * vf * z * z
        s3 += wv1zz * z
        for j in range(p):
            xj = X[r, j]
            svzx[j] += wvz * xj
            sv1zzx[j] += wv1zz * xj
    return sl_z, c, cf, s3


@cached_njit
def _agq_node_pass(family, fpar, X, zcol, y, m, off, fw, lo, hi, beta, bz, sl_x):
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
        wr, l0, l1, _, _, _ = _weighted_terms(family, fpar, y, m, fw, r, eta)
        ll += wr * l0
        wl1 = wr * l1
        sl_z += wl1 * z
        for j in range(p):
            sl_x[j] += wl1 * X[r, j]
    return ll, sl_z


@cached_njit
def _agq_group(family, fpar, X, zcol, y, m, off, fw, lo, hi, beta, T, ui, nodes, weights,
               max_steps, tol, want_grad, grad):
    """AGQ deviance of one group (q = 1) and, if ``want_grad``, its gradient over (β, θ)
    into ``grad`` (length p + 1). Returns ``(deviance, converged)``.

    With π_k ∝ w_k exp(f(u_k) + t_k²/2) (normalized), u_k = û + σ t_k, σ = H_F^{-1/2}
    (H_F from the expected information, as lme4's PIRLS factor; = H for canonical links):

        ∂d/∂φ = −2 [σ_φ/σ + Σ_k π_k (∂f/∂φ|_{u_k} + f'(u_k)(û_φ + t_k σ_φ))]

    with ∂f/∂β|_u = Σ w ℓ' x, ∂f/∂θ|_u = u Σ w ℓ' z, f'(u) = θ Σ w ℓ' z − u (sums at u),
    û_β = −θ H⁻¹ Σ w v z x, û_θ = H⁻¹ (Σ w ℓ' z − θ û Σ w v z²), σ_φ/σ = −½ H_F,φ/H_F,
    H_F,β = θ² (Σ w v_F' z² x + θ û_β Σ w v_F' z³),
    H_F,θ = 2θ Σ w v_F z² + θ² (û + θ û_θ) Σ w v_F' z³ (sums at û).
    """
    p = X.shape[1]
    n_nodes = nodes.shape[0]
    work = np.zeros((9, 1))
    th = T[0, 0]
    # the mode: derivative-only Newton passes from the warm start (guarded steps if they
    # do not contract), then the pass at û, whose Newton step must be negligible
    u_start = ui[0]
    conv = True
    if not _refine_mode(family, fpar, X, zcol, y, m, off, fw, lo, hi, beta, T, ui, max_steps,
                        work):
        ui[0] = u_start
        f, conv = _mode(family, fpar, X, zcol, y, m, off, fw, lo, hi, beta, T, ui, max_steps, tol,
                        work)
        if not np.isfinite(f):
            return np.inf, False
    svzx = np.empty(p)
    sv1zzx = np.empty(p)
    for _ in range(_FULL_PASSES):
        u0 = ui[0]
        slz0, c, cf, s3 = _agq_mode_sums(family, fpar, X, zcol, y, m, off, fw, lo, hi, beta,
                                         th * u0, svzx, sv1zzx)
        H = 1.0 + th * th * c  # observed information at û
        step = (th * slz0 - u0) / H
        if abs(step) / (1.0 + abs(u0)) <= _ACCEPT:
            break
        ui[0] = u0 + step
    else:
        conv = False
    HF = H if observed_logdet(family) else 1.0 + th * th * cf
    sigma = 1.0 / math.sqrt(HF)
    z = np.zeros(1)
    Tu = np.zeros(1)
    slz = np.zeros(1)
    Cd = np.zeros((1, 1))
    un = np.zeros(1)
    vals = np.empty(n_nodes)
    n_keep = n_nodes if want_grad else 0
    node_slx = np.empty((n_keep, p))
    node_slz = np.empty(n_keep)
    node_u = np.empty(n_keep)
    top = -np.inf
    for k in range(n_nodes):
        un[0] = ui[0] + sigma * nodes[k]
        if want_grad:
            ll, slz_k = _agq_node_pass(family, fpar, X, zcol, y, m, off, fw, lo, hi, beta,
                                       th * un[0], node_slx[k])
            node_slz[k] = slz_k
            node_u[k] = un[0]
            fk = ll - 0.5 * un[0] * un[0]
        else:
            fk = _group_pass(family, fpar, X, zcol, y, m, off, fw, lo, hi, beta, T, un, z, Tu,
                             False, True, slz, Cd) - 0.5 * un[0] * un[0]
        vals[k] = fk + 0.5 * nodes[k] * nodes[k] + math.log(weights[k])
        top = max(top, vals[k])
    s = 0.0
    for k in range(n_nodes):
        s += math.exp(vals[k] - top)
    dev = -2.0 * (math.log(sigma) + top + math.log(s))
    if not want_grad:
        return dev, conv
    # derivatives of û and of log σ at the mode
    if observed_logdet(family):
        cf = c
    du_t = (slz0 - th * u0 * c) / H
    r_t = -0.5 * (2.0 * th * cf + th * th * (u0 + th * du_t) * s3) / HF
    du_b = np.empty(p)
    r_b = np.empty(p)
    for j in range(p):
        du_b[j] = -th * svzx[j] / H
        r_b[j] = -0.5 * th * th * (sv1zzx[j] + th * du_b[j] * s3) / HF
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


@cached_njit(parallel=True)
def agq_groups(family, fpar, X, zcol, y, m, off, fw, starts, beta, T, u, nodes, weights, max_steps,
               tol, dev_out, conv_out):
    """Adaptive Gauss–Hermite deviance per group for a scalar random effect (q = 1):
    ``−2 log(σ Σ_k w_k exp(f(û + σ t_k) + t_k²/2))`` with σ = H^{-1/2}."""
    G = starts.shape[0] - 1
    unused = np.empty(0)
    for i in prange(G):
        dev, conv = _agq_group(family, fpar, X, zcol, y, m, off, fw, starts[i], starts[i + 1], beta,
                               T, u[i], nodes, weights, max_steps, tol, False, unused)
        dev_out[i] = dev
        conv_out[i] = conv


@cached_njit(parallel=True)
def agq_grad_groups(family, fpar, X, zcol, y, m, off, fw, starts, beta, T, u, nodes, weights,
                    max_steps, tol, dev_out, grad_out, conv_out):
    """:func:`agq_groups` with the exact gradient of each group's deviance over (β, θ) in
    ``grad_out[i]`` (p + 1 columns): the mode passes, one pass at û and one pass per node."""
    G = starts.shape[0] - 1
    for i in prange(G):
        dev, conv = _agq_group(family, fpar, X, zcol, y, m, off, fw, starts[i], starts[i + 1], beta,
                               T, u[i], nodes, weights, max_steps, tol, True, grad_out[i])
        dev_out[i] = dev
        conv_out[i] = conv
