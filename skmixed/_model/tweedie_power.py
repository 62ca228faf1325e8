"""mgcv's ``tw()`` power and dispersion at fixed means (its ``estimate.theta`` at every step
of ``bam``'s iteration): Newton steps on the Tweedie log-likelihood, whose value and exact
derivatives in (φ, p) come from the family's series kernels
(`skmixed.families._tweedie`), summed over fixed blocks of rows on the kernel threads."""

import math

import numpy as np

from .._kernels import blocks
from .._kernels.threads import over_blocks
from ..families._tweedie import POWER_BOUNDS, loglik_derivs_blocks

__all__ = ["loglik_derivs", "tweedie_power_dispersion"]


def loglik_derivs(y, mu, w, phi, p):
    """``Σ w log f`` and its derivatives in (φ, p) (value, ∂φ, ∂p, ∂φφ, ∂φp, ∂pp), summed over
    fixed blocks of rows on the kernel threads (the blocks depend on the row count only,
    so any thread count gives the same sums)."""
    k = blocks.n_blocks(y.shape[0])
    edges = np.linspace(0, y.shape[0], k + 1).astype(np.int64)
    out = np.zeros((k, 6))
    over_blocks(loglik_derivs_blocks, (y, mu, w, float(phi), float(p), edges, out), k,
                y.shape[0])
    return out.sum(axis=0)


def _power(t):
    """mgcv's tw() map of its θ to the power: (a + b e^θ)/(1 + e^θ) in POWER_BOUNDS."""
    a, b = POWER_BOUNDS
    e = math.exp(-abs(t))
    return (b + a * e) / (1.0 + e) if t > 0 else (b * e + a) / (e + 1.0)


def tweedie_power_dispersion(y, mu, w, p0=1.5, phi0=None, tol=1e-10, max_iter=100):
    """The power p and dispersion φ maximizing ``ℓ = Σ w log f(y; μ, φ, p)`` at fixed means μ
    (mgcv's ``estimate.theta`` for ``tw()``): Newton steps over mgcv's θ of p (bounded to
    `POWER_BOUNDS` by its map) and log φ with the exact gradient and Hessian
    (`loglik_derivs`; the Hessian's eigenvalues made positive where it is not concave, a
    step at most 4, halved until ℓ does not decrease), from ``p0`` and ``phi0`` (default:
    the Pearson estimate at p0), until every gradient entry is below ``tol`` |ℓ|. Returns
    ``(p, φ)``."""
    y, mu, w = (np.ascontiguousarray(a, dtype=float) for a in (y, mu, w))
    if phi0 is None:  # the Pearson estimate at p0
        phi0 = float(w @ ((y - mu) ** 2 / mu ** p0)) / float(w.sum())
    a, b = POWER_BOUNDS
    q = (min(max(p0, a + 1e-6), b - 1e-6) - a) / (b - a)
    x = np.array([math.log(q / (1.0 - q)), math.log(max(phi0, 1e-10))])

    def at(x, derivs):
        p, phi = _power(x[0]), math.exp(x[1])
        d = loglik_derivs(y, mu, w, phi, p)
        if not derivs:
            return d[0]
        sg = 1.0 / (1.0 + math.exp(-x[0]))
        dp, ddp = (b - a) * sg * (1 - sg), (b - a) * sg * (1 - sg) * (1 - 2 * sg)
        g = np.array([d[2] * dp, d[1] * phi])
        H = np.array([[d[5] * dp * dp + d[2] * ddp, d[4] * phi * dp],
                      [d[4] * phi * dp, d[3] * phi * phi + d[1] * phi]])
        return d[0], g, H

    ll, g, H = at(x, True)
    for _ in range(max_iter):
        if np.all(np.abs(g) < tol * abs(ll)):
            break
        val, vec = np.linalg.eigh(-H)  # ascent on ℓ: −H positive definite near the top
        val = np.maximum(np.abs(val), 1e-7 * np.abs(val).max())
        step = vec @ ((vec.T @ g) / val)
        step *= min(1.0, 4.0 / np.abs(step).max())
        for _ in range(30):
            if at(x + step, False) >= ll - 1e-13 * abs(ll):
                break
            step = step / 2.0
        else:
            break  # no step increases ℓ: at its maximum to rounding
        x = x + step
        ll, g, H = at(x, True)
    return _power(x[0]), math.exp(x[1])
