"""A GLMM group's rows: the linear predictor, the family's weighted row terms, and the
conditional mode by guarded Newton steps (:func:`_mode`, warm-started by :func:`_refine_mode`);
the model and its derivatives are described in :mod:`.glmm`."""

import numpy as np

from .._cache import cached_njit
from .dense import chol_lower as _chol
from .dense import chol_solve as _chol_solve
from .dense import lower_matvec, tct_plus_identity
from ..families import row_derivs, row_terms


@cached_njit
def _fixed_eta(X, off, beta, r):
    """``o_r + x_r'β`` (an empty offset array means no offset)."""
    eta = off[r] if off.shape[0] > 0 else 0.0
    for j in range(X.shape[1]):
        eta += X[r, j] * beta[j]
    return eta


@cached_njit
def _re_covariate(X, zcol, r, a):
    """Random-effect covariate ``a`` of row r (``zcol[a] < 0``: the constant 1)."""
    return 1.0 if zcol[a] < 0 else X[r, zcol[a]]


@cached_njit
def _row_eta(X, zcol, off, beta, Tu, r, z):
    """η of row r at random effects ``Tu`` (``o_r + x_r'β + z_r'Tu``), its random-effect
    covariates written into z."""
    eta = _fixed_eta(X, off, beta, r)
    for a in range(zcol.shape[0]):
        z[a] = _re_covariate(X, zcol, r, a)
        eta += z[a] * Tu[a]
    return eta


@cached_njit
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
