"""The Laplace deviance of a GLMM per group and its exact gradient over (β, θ) and the
family's parameter (:func:`laplace_groups`; the formulas in :mod:`.glmm`)."""

import math

import numpy as np

from .._cache import cached_njit
from .dense import chol_lower as _chol
from .dense import chol_solve as _chol_solve
from .dense import inverse_from_chol, lower_matvec, lower_sandwich, tct_plus_identity
from .glmm_rows import (_row_eta, _weighted_terms, _newton_step, _step_size, _mode, _refine_mode,
                        _NEAR, _ACCEPT, _FULL_PASSES)
from ..families import observed_logdet, param_terms


@cached_njit
def _laplace_pass(family, fpar, X, zcol, y, m, off, fw, lo, hi, beta, T, u, want_grad, z, Tu,
                  sl_z, C, CF, sl_x, wzx, v1zzx, v1zzz):
    """The full pass at (near) the mode: returns Σ w ℓ; fills Σ w ℓ' z, the observed
    ``C = Σ w v z z'`` and expected ``CF = Σ w v_F z z'`` information (the same for
    canonical links), Σ w v_F' z z' z and, if want_grad, Σ w ℓ' x, Σ w v z x' and
    Σ w v_F' z z' x — the log determinant's derivatives need ``s_j = w v_F'_j z_j'A z_j``
    with A = T H_F⁻¹ T', which is known only after the pass, so its sums are kept
    uncontracted (q²(p + q) numbers)."""
    q = zcol.shape[0]
    p = X.shape[1]
    fisher = not observed_logdet(family)
    lower_matvec(T, u, Tu)
    sl_z[:] = 0.0
    C[:, :] = 0.0
    CF[:, :] = 0.0
    v1zzz[:, :, :] = 0.0
    if want_grad:
        sl_x[:] = 0.0
        wzx[:, :] = 0.0
        v1zzx[:, :, :] = 0.0
    ll = 0.0
    for r in range(lo, hi):
        eta = _row_eta(X, zcol, off, beta, Tu, r, z)
        wr, l0, l1, v, vf, vf1 = _weighted_terms(family, fpar, y, m, fw, r, eta)
        ll += wr * l0
        wl1 = wr * l1
        for a in range(q):
            sl_z[a] += wl1 * z[a]
            wvz = wr * v * z[a]
            for b in range(a, q):
                C[a, b] += wvz * z[b]
            if fisher:
                wvz = wr * vf * z[a]
                for b in range(a, q):
                    CF[a, b] += wvz * z[b]
        for a in range(q):
            for b in range(a, q):
                t = wr * vf1 * z[a] * z[b]
                for c in range(q):
                    v1zzz[a, b, c] += t * z[c]
                if want_grad:
                    for j in range(p):
                        v1zzx[a, b, j] += t * X[r, j]
        if want_grad:
            for j in range(p):
                sl_x[j] += wl1 * X[r, j]
            for a in range(q):
                wvz = wr * v * z[a]
                for j in range(p):
                    wzx[a, j] += wvz * X[r, j]
    for a in range(q):
        for b in range(a):
            C[a, b] = C[b, a]
            CF[a, b] = CF[b, a]
            for c in range(q):
                v1zzz[a, b, c] = v1zzz[b, a, c]
            if want_grad:
                for j in range(p):
                    v1zzx[a, b, j] = v1zzx[b, a, j]
    if not fisher:
        for a in range(q):
            for b in range(q):
                CF[a, b] = C[a, b]
    return ll


@cached_njit
def _logdet_slope(T, LF, v1zzz, Hinv, A, s_z, c_t):
    """From the Cholesky factor of H_F: ``Hinv = H_F⁻¹``, ``A = T H_F⁻¹ T'``,
    ``s_z = Σ s_j z_j`` (s_j = w v_F'_j z_j'A z_j) and ``c_t = T's_z = ∂ log det H_F/∂u``."""
    q = T.shape[0]
    scratch = np.empty((q, q))
    inverse_from_chol(LF, Hinv, scratch)
    lower_sandwich(T, Hinv, A)
    s_z[:] = 0.0
    for a in range(q):
        for b in range(q):
            for c in range(q):
                s_z[c] += A[a, b] * v1zzz[a, b, c]
    c_t[:] = 0.0
    for b in range(q):
        for a in range(b, q):
            c_t[b] += s_z[a] * T[a, b]


@cached_njit
def _laplace_gradient(T, u, L, Hinv, A, s_z, c_t, C, CF, sl_z, sl_x, wzx, v1zzx, step,
                      theta_rows, theta_cols, grad, jac, dll):
    """One group's deviance gradient over (β, θ) into ``grad`` and ∂û/∂(β, θ) into ``jac``
    (q × (p + K)), from the sums of :func:`_laplace_pass` at u, :func:`_logdet_slope`'s
    H_F⁻¹, A, s_z, c_t, and the Newton step δ there (û ≈ u + δ): the O(n) terms
    ``−2Σℓ'x`` and ``−2(Σℓ'z)_a u_b`` are corrected by their derivative along δ. ``L``:
    Cholesky factor of the observed H (û's derivatives, by the implicit function theorem);
    the log determinant is that of the expected H_F (lme4's, from its PIRLS weights).
    ``dll``: the total derivative of Σ w ℓ(û(x), x) over (β, θ) (the Gamma criterion needs
    the log-likelihood apart from the penalty)."""
    q = u.shape[0]
    p = sl_x.shape[0]
    K = theta_rows.shape[0]
    # s_x = Σ s_j x_j with s_j = w v_F'_j z_j'A z_j
    s_x = np.zeros(p)
    for a in range(q):
        for b in range(q):
            for j in range(p):
                s_x[j] += A[a, b] * v1zzx[a, b, j]
    # T'C, T'C_F and C T δ
    TtC = np.zeros((q, q))
    TtCF = np.zeros((q, q))
    for c in range(q):
        for b in range(q):
            for l in range(c, q):
                TtC[c, b] += T[l, c] * C[l, b]
                TtCF[c, b] += T[l, c] * CF[l, b]
    Td = np.empty(q)
    lower_matvec(T, step, Td)
    CTd = np.zeros(q)
    for a in range(q):
        for b in range(q):
            CTd[a] += C[a, b] * Td[b]
    rhs = np.empty(q)
    du = np.empty(q)
    # β: ∂û/∂β_k = −H⁻¹ T' Σ w v z x_k
    for k in range(p):
        corr = 0.0
        for a in range(q):
            s = 0.0
            for l in range(a, q):
                s += T[l, a] * wzx[l, k]
            rhs[a] = -s
            corr += s * step[a]
        _chol_solve(L, rhs, du)
        g = -2.0 * sl_x[k] + s_x[k] + 2.0 * corr
        d = sl_x[k] - corr
        for a in range(q):
            g += c_t[a] * du[a]
            d += (u[a] + step[a]) * du[a]
            jac[a, k] = du[a]
        grad[k] = g
        dll[k] = d
    # θ_m = T[a, b]: ∂û/∂θ_m = H⁻¹ (e_b (Σℓ'z)_a − T'C[:, a] û_b)
    for kk in range(K):
        a = theta_rows[kk]
        b = theta_cols[kk]
        for c in range(q):
            rhs[c] = -TtC[c, a] * u[b]
        rhs[b] += sl_z[a]
        _chol_solve(L, rhs, du)
        htc = 0.0  # (H_F⁻¹ T'C_F)[b, a]
        for c in range(q):
            htc += Hinv[b, c] * TtCF[c, a]
        explicit = sl_z[a] * u[b] + sl_z[a] * step[b] - u[b] * CTd[a]  # (Σℓ'z)_a û_b at û
        g = -2.0 * explicit + 2.0 * htc + s_z[a] * u[b]
        d = explicit
        for c in range(q):
            g += c_t[c] * du[c]
            d += (u[c] + step[c]) * du[c]
            jac[c, p + kk] = du[c]
        grad[p + kk] = g
        dll[p + kk] = d


@cached_njit
def _param_pass(family, fpar, X, zcol, y, m, off, fw, lo, hi, beta, Tu, z, s_z, V):
    """At u (``Tu = T u``), over α = log fpar: returns Σ w ∂ℓ/∂α; fills
    ``s_z = Σ w (∂ℓ'/∂α) z`` and ``V = Σ w (∂v/∂α) z z'``."""
    q = zcol.shape[0]
    s_z[:] = 0.0
    V[:, :] = 0.0
    total = 0.0
    for r in range(lo, hi):
        eta = _row_eta(X, zcol, off, beta, Tu, r, z)
        wr = fw[r] if fw.shape[0] > 0 else 1.0
        la, l1a, va = param_terms(family, fpar, y[r], m[r] if m.shape[0] > 0 else 1.0, eta)
        total += wr * la
        for a in range(q):
            s_z[a] += wr * l1a * z[a]
            for b in range(q):
                V[a, b] += wr * va * z[a] * z[b]
    return total


@cached_njit
def _param_gradient(family, fpar, X, zcol, y, m, off, fw, lo, hi, beta, T, Tu, z, L, A, c_t,
                    step):
    """∂d/∂α of one group's Laplace deviance (α = log fpar; observed information in the
    log determinant): ``−2 Σ w ∂ℓ/∂α + Σ_ab A_ab V_ab + c_t·∂û/∂α`` with
    ``∂û/∂α = H⁻¹T' s_α`` (:func:`_param_pass`' sums at u; the first term corrected along
    the Newton step δ to û, as the β terms are)."""
    q = zcol.shape[0]
    s_a = np.empty(q)
    V = np.empty((q, q))
    total = _param_pass(family, fpar, X, zcol, y, m, off, fw, lo, hi, beta, Tu, z, s_a, V)
    ts = np.zeros(q)
    for b in range(q):
        for a in range(b, q):
            ts[b] += T[a, b] * s_a[a]
    du = np.empty(q)
    _chol_solve(L, ts, du)
    g = 0.0
    for a in range(q):
        total += ts[a] * step[a]
        g += c_t[a] * du[a]
        for b in range(q):
            g += A[a, b] * V[a, b]
    return g - 2.0 * total


@cached_njit(nogil=True)
def laplace_groups(family, fpar, X, zcol, y, m, off, fw, starts, beta, T, theta_rows, theta_cols,
                   u, J, dx, want_grad, max_steps, tol, dev_out, grad_out, conv_out, H_out,
                   ll_out, param_grad=None):
    """Laplace deviance per group (``dev_out[i]``) and, if ``want_grad``, its gradient over
    (β, θ) per group (``grad_out[i]``) and ∂û_i/∂(β, θ) (``J[i]``, q × (p + K)); conditional
    modes updated in place in ``u``, the information ``H_F`` at the mode in ``H_out[i]``,
    and ``Σ w ℓ`` at the mode in ``ll_out[i, 0]`` with (if want_grad) its total derivative
    over (β, θ) in ``ll_out[i, 1:1 + p + K]``; a last column beyond those gets
    ``c_t·H⁻¹û`` (∂ log det H_F/∂u along H⁻¹û: the Gamma dispersion's derivative).

    The mode maximizes f; the deviance is ``−2 f(û) + log det H_F`` with the expected
    information in H_F (lme4's Laplace approximation, whose PIRLS weights are the Fisher
    weights; for canonical links H_F = H, the observed information).

    Each group's mode starts from ``u[i] + J[i]·dx`` (a first-order prediction from the
    point where u was found; empty ``dx``: from ``u[i]``), takes Newton steps with
    derivative-only passes, and ends with the full pass (ℓ and the gradient's sums) at the
    converged point: usually one cheap and one full pass per evaluation, and a single full
    pass when the prediction moves the mode by less than _NEAR."""
    G = starts.shape[0] - 1
    p = X.shape[1]
    q = zcol.shape[0]
    for i in range(G):
        lo = starts[i]
        hi = starts[i + 1]
        work = np.zeros((6 + 3 * q, max(q, 1)))
        z, Tu, sl_z, gu, step = work[0], work[1], work[2], work[3], work[4]
        C, H, L = work[6:6 + q], work[6 + q:6 + 2 * q], work[6 + 2 * q:6 + 3 * q]
        CF = np.zeros((q, q))
        HF = np.zeros((q, q))
        LF = np.zeros((q, q))
        ui = u[i]
        u0 = ui.copy()
        moved = np.inf
        if dx.shape[0] > 0:
            moved = 0.0
            for a in range(q):
                d = 0.0
                for k in range(dx.shape[0]):
                    d += J[i, a, k] * dx[k]
                ui[a] += d
                moved = max(moved, abs(d) / (1.0 + abs(ui[a])))
        if not (moved < _NEAR or _refine_mode(family, fpar, X, zcol, y, m, off, fw, lo, hi, beta,
                                               T, ui, max_steps, work)):
            for a in range(q):
                ui[a] = u0[a]
            f, _ = _mode(family, fpar, X, zcol, y, m, off, fw, lo, hi, beta, T, ui, max_steps, tol,
                         work)
            if not np.isfinite(f):
                dev_out[i] = np.inf
                conv_out[i] = False
                continue
        sl_x = np.empty(p if want_grad else 0)
        wzx = np.empty((q, p) if want_grad else (0, 0))
        v1zzx = np.empty((q, q, p) if want_grad else (0, 0, 0))
        v1zzz = np.empty((q, q, q))
        ll = -np.inf
        conv = False
        for it in range(_FULL_PASSES):
            ll = _laplace_pass(family, fpar, X, zcol, y, m, off, fw, lo, hi, beta, T, ui, want_grad,
                               z, Tu, sl_z, C, CF, sl_x, wzx, v1zzx, v1zzz)
            if not _newton_step(T, C, sl_z, ui, H, L, gu, step):
                ll = -np.inf
                break
            conv = _step_size(step, ui) <= _ACCEPT
            if conv or it == _FULL_PASSES - 1:
                break
            for a in range(q):
                ui[a] += step[a]
        conv_out[i] = conv
        tct_plus_identity(T, CF, HF)
        if not (np.isfinite(ll) and _chol(HF, LF)):
            dev_out[i] = np.inf
            continue
        if not conv:
            step[:] = 0.0  # report the point itself: no first-order correction
        # f(û) ≈ f(u) + ½ g'δ; log det H_F(û) ≈ log det H_F(u) + c_t·δ
        Hinv = np.empty((q, q))
        A = np.empty((q, q))
        s_z = np.empty(q)
        c_t = np.empty(q)
        _logdet_slope(T, LF, v1zzz, Hinv, A, s_z, c_t)
        f = ll
        logdet = 0.0
        for a in range(q):
            f += -0.5 * ui[a] * ui[a] + 0.5 * gu[a] * step[a]
            logdet += 2.0 * math.log(LF[a, a]) + c_t[a] * step[a]
            ll += (gu[a] + ui[a]) * step[a]  # T'Σ w ℓ' z = g + u: ℓ's own slope
        ll_out[i, 0] = ll
        if want_grad and ll_out.shape[1] > 1 + grad_out.shape[1]:
            # c_t · H⁻¹ û: with weights scaled by ν, ∂û/∂ν = H⁻¹û/ν (Gamma's dispersion)
            hu = np.empty(q)
            _chol_solve(L, ui, hu)
            ct_hu = 0.0
            for a in range(q):
                ct_hu += c_t[a] * hu[a]
            ll_out[i, ll_out.shape[1] - 1] = ct_hu
        if want_grad:
            _laplace_gradient(T, ui, L, Hinv, A, s_z, c_t, C, CF, sl_z, sl_x, wzx, v1zzx,
                              step, theta_rows, theta_cols, grad_out[i], J[i],
                              ll_out[i, 1:1 + grad_out.shape[1]])
            if param_grad is not None:
                grad_out[i, p + theta_rows.shape[0]] = _param_gradient(
                    family, fpar, X, zcol, y, m, off, fw, lo, hi, beta, T, Tu, z, L, A,
                    c_t, step)
        dev_out[i] = -2.0 * f + logdet
        for a in range(q):
            for b in range(q):
                H_out[i, a, b] = HF[a, b]
            ui[a] += step[a]
