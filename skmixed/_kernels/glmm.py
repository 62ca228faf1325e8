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

The family enters as its code and parameter ``(family, fpar)``; its row terms are
:mod:`skmixed.families`'. ``m`` holds binomial trials (y are success counts), empty for 0/1
data.
"""

import math

import numpy as np
from numba import prange

from .blocks import block_bounds
from .cache import cached_njit
from .dense import chol_lower as _chol
from .dense import chol_solve as _chol_solve
from .dense import inverse_from_chol, lower_matvec, lower_sandwich, tct_plus_identity
from ..families import has_param, observed_logdet, param_terms, row_derivs, row_terms

__all__ = ["laplace_groups", "agq_groups", "agq_grad_groups", "fixed_glm_sums",
           "pirls_joint_sums", "count_extreme_eta"]

@cached_njit(inline="always")
def _fixed_eta(X, off, beta, r):
    """``o_r + x_r'β`` (an empty offset array means no offset)."""
    eta = off[r] if off.shape[0] > 0 else 0.0
    for j in range(X.shape[1]):
        eta += X[r, j] * beta[j]
    return eta


@cached_njit(inline="always")
def _re_covariate(X, zcol, r, a):
    """Random-effect covariate ``a`` of row r (``zcol[a] < 0``: the constant 1)."""
    return 1.0 if zcol[a] < 0 else X[r, zcol[a]]


@cached_njit(inline="always")
def _row_eta(X, zcol, off, beta, Tu, r, z):
    """η of row r at random effects ``Tu`` (``o_r + x_r'β + z_r'Tu``), its random-effect
    covariates written into z."""
    eta = _fixed_eta(X, off, beta, r)
    for a in range(zcol.shape[0]):
        z[a] = _re_covariate(X, zcol, r, a)
        eta += z[a] * Tu[a]
    return eta


@cached_njit(inline="always")
def _weighted_terms(family, fpar, y, m, fw, r, eta):
    """``(w, ℓ, ℓ', v, v')`` of row r: its frequency weight and :func:`row_terms` with its
    trials (empty arrays: weight 1, one trial)."""
    mr = m[r] if m.shape[0] > 0 else 1.0
    wr = fw[r] if fw.shape[0] > 0 else 1.0
    l0, l1, v, vf, vf1 = row_terms(family, fpar, y[r], mr, eta)
    return wr, l0, l1, v, vf, vf1


@cached_njit
def _group_pass(family, fpar, X, zcol, y, m, off, fw, lo, hi, beta, T, u, z, Tu, want_c, want_ll,
                sl_z, C):
    """One pass over a group's rows at u: returns Σ w ℓ (0 unless ``want_ll``); fills
    Σ w ℓ' z and (if want_c) C = Σ w v z z'."""
    q = zcol.shape[0]
    lower_matvec(T, u, Tu)
    for a in range(q):
        sl_z[a] = 0.0
        if want_c:
            for b in range(q):
                C[a, b] = 0.0
    ll = 0.0
    for r in range(lo, hi):
        eta = _row_eta(X, zcol, off, beta, Tu, r, z)
        wr = fw[r] if fw.shape[0] > 0 else 1.0
        if want_ll:
            _, l0, l1, v, _, _ = _weighted_terms(family, fpar, y, m, fw, r, eta)
            ll += wr * l0
        else:
            l1, v = row_derivs(family, fpar, y[r], m[r] if m.shape[0] > 0 else 1.0, eta)
        for a in range(q):
            sl_z[a] += wr * l1 * z[a]
            if want_c:
                wvz = wr * v * z[a]
                for b in range(q):
                    C[a, b] += wvz * z[b]
    return ll


@cached_njit
def _newton_step(T, C, sl_z, u, H, L, grad, step):
    """At u with sums Σ w ℓ' z and C: ``H = T'CT + I``, its Cholesky factor L, the gradient
    ``T'Σ w ℓ' z − u`` of f and the Newton step ``H⁻¹·grad``. False if H is not positive
    definite."""
    tct_plus_identity(T, C, H)
    if not _chol(H, L):
        return False
    q = u.shape[0]
    for a in range(q):
        s = 0.0
        for k in range(a, q):
            s += T[k, a] * sl_z[k]
        grad[a] = s - u[a]
    _chol_solve(L, grad, step)
    return True


@cached_njit
def _step_size(step, u):
    size = 0.0
    for a in range(u.shape[0]):
        size = max(size, abs(step[a]) / (1.0 + abs(u[a])))
    return size


@cached_njit
def _mode(family, fpar, X, zcol, y, m, off, fw, lo, hi, beta, T, u, max_steps, tol, work):
    """Guarded Newton iterations for û (in place in u): every pass computes f, and a step is
    halved until f does not decrease. Returns (f(û), converged) and leaves C, H, L
    (Cholesky of H) at û in ``work``."""
    q = u.shape[0]
    z, Tu, sl_z, grad, step, unew = work[0], work[1], work[2], work[3], work[4], work[5]
    C, H, L = work[6:6 + q], work[6 + q:6 + 2 * q], work[6 + 2 * q:6 + 3 * q]
    f = _group_pass(family, fpar, X, zcol, y, m, off, fw, lo, hi, beta, T, u, z, Tu, True, True,
                    sl_z, C)
    for a in range(q):
        f -= 0.5 * u[a] * u[a]
    converged = False
    for _ in range(max_steps):
        if not _newton_step(T, C, sl_z, u, H, L, grad, step):
            return -np.inf, False
        if _step_size(step, u) < tol:
            converged = True
            break
        # step halving until f increases
        t = 1.0
        accepted = False
        for _h in range(30):
            for a in range(q):
                unew[a] = u[a] + t * step[a]
            fn = _group_pass(family, fpar, X, zcol, y, m, off, fw, lo, hi, beta, T, unew, z, Tu,
                             True, True, sl_z, C)
            for a in range(q):
                fn -= 0.5 * unew[a] * unew[a]
            if fn >= f - 1e-12 * abs(f):
                accepted = True
                break
            t *= 0.5
        if not accepted:
            # could not improve: recompute the sums at u and stop here
            f = _group_pass(family, fpar, X, zcol, y, m, off, fw, lo, hi, beta, T, u, z, Tu, True,
                            True, sl_z, C)
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


# Mode search of the Laplace kernel (see laplace_groups): Newton passes without ℓ until a
# step is below _NEAR (the error left is about its square), then full passes at the point
# until their Newton step is below _ACCEPT; the value and the O(n) gradient terms are then
# corrected to first order in that step. Iterates that do not contract, or a first step
# beyond _FAR, hand over to the guarded _mode.
_NEAR = 1e-5
_ACCEPT = 1e-8
_FAR = 8.0
_FULL_PASSES = 4


@cached_njit
def _refine_mode(family, fpar, X, zcol, y, m, off, fw, lo, hi, beta, T, u, max_steps, work):
    """Newton steps for û from a warm start with derivative-only passes (no ℓ). Returns
    True once a step was below _NEAR (u holds the stepped point), False when the steps do
    not shrink (the caller restarts from its warm start with :func:`_mode`)."""
    q = u.shape[0]
    z, Tu, sl_z, grad, step = work[0], work[1], work[2], work[3], work[4]
    C, H, L = work[6:6 + q], work[6 + q:6 + 2 * q], work[6 + 2 * q:6 + 3 * q]
    prev = _FAR
    for _ in range(max_steps):
        _group_pass(family, fpar, X, zcol, y, m, off, fw, lo, hi, beta, T, u, z, Tu, True, False,
                    sl_z, C)
        if not _newton_step(T, C, sl_z, u, H, L, grad, step):
            return False
        size = _step_size(step, u)
        if not size < prev:
            return False
        for a in range(q):
            u[a] += step[a]
        if size < _NEAR:
            return True
        prev = size
    return False


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
        CF[:, :] = C
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


@cached_njit(parallel=True)
def laplace_groups(family, fpar, X, zcol, y, m, off, fw, starts, beta, T, theta_rows, theta_cols,
                   u, J, dx, want_grad, max_steps, tol, dev_out, grad_out, conv_out, H_out,
                   ll_out):
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
    for i in prange(G):
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
            ui[:] = u0
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
            if has_param(family):
                grad_out[i, p + theta_rows.shape[0]] = _param_gradient(
                    family, fpar, X, zcol, y, m, off, fw, lo, hi, beta, T, Tu, z, L, A,
                    c_t, step)
        dev_out[i] = -2.0 * f + logdet
        for a in range(q):
            for b in range(q):
                H_out[i, a, b] = HF[a, b]
            ui[a] += step[a]


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


@cached_njit(parallel=True)
def fixed_glm_sums(family, fpar, X, y, m, off, fw, beta, ll_out, score_out, info_out):
    """Per-block log-likelihood, score and information of the GLM without random effects
    (start values); the rows are split into ``ll_out.shape[0]`` fixed blocks
    (:mod:`.blocks`), so the caller's sums over blocks do not depend on the threads."""
    n = X.shape[0]
    p = X.shape[1]
    n_blk = ll_out.shape[0]
    for c in prange(n_blk):
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


@cached_njit(parallel=True)
def count_extreme_eta(X, zcol, off, fw, starts, beta, B, low, high):
    """The number of rows (with positive weight) whose linear predictor
    ``o + x'β + z'b_i`` (B: the groups' random effects, G × q) lies outside
    ``[low, high]``."""
    G = starts.shape[0] - 1
    counts = np.zeros(G, dtype=np.int64)
    for i in prange(G):
        z = np.empty(zcol.shape[0])
        c = 0
        for r in range(starts[i], starts[i + 1]):
            if fw.shape[0] > 0 and not fw[r] > 0.0:
                continue
            eta = _row_eta(X, zcol, off, beta, B[i], r, z)
            if eta < low or eta > high:
                c += 1
        counts[i] = c
    return counts.sum()

