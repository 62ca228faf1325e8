"""The Tweedie density for 1 < p < 2 (a compound Poisson–Gamma law) and the maximum-likelihood
power and dispersion at fixed means (mgcv's ``tw()``, whose ``estimate.theta`` does this at
every step of ``bam``'s iteration).

The density of y > 0 is Dunn & Smyth's (2005) series

    log f(y; μ, φ, p) = (y θ − κ)/φ − log y + log Σ_{j ≥ 1} W_j,
    log W_j = j log z − log j! − log Γ(−jα),   α = (2 − p)/(1 − p),
    z = y^(−α) (p − 1)^α / (φ^(1 − α) (2 − p)),

with θ = μ^(1−p)/(1−p) and κ = μ^(2−p)/(2−p); ``P(y = 0) = exp(−κ/φ)``. The terms are
unimodal in j with their peak near ``y^(2−p)/(φ(2−p))``; the sum runs out from the peak until
a term is e^−37 of it (mgcv's ``ldTweedie`` sums the same series).
"""

import math

import numpy as np
from scipy import optimize

from .._cache import cached_njit

__all__ = ["tweedie_log_density", "tweedie_power_dispersion", "POWER_BOUNDS"]

#: mgcv's tw() search interval of the power (its a and b)
POWER_BOUNDS = (1.01, 1.99)


@cached_njit(nogil=True)
def _log_term(j, log_z, alpha):
    """log W_j."""
    return j * log_z - math.lgamma(j + 1.0) - math.lgamma(-j * alpha)


@cached_njit(nogil=True)
def _log_series(y, phi, p):
    """log Σ_j W_j for one y > 0."""
    alpha = (2.0 - p) / (1.0 - p)
    log_z = (-alpha * math.log(y) + alpha * math.log(p - 1.0) - (1.0 - alpha) * math.log(phi)
             - math.log(2.0 - p))
    peak = max(1.0, math.floor(y ** (2.0 - p) / (phi * (2.0 - p))))
    top = _log_term(peak, log_z, alpha)
    total = 1.0  # the peak's, relative to it
    j = peak + 1.0
    while True:
        t = _log_term(j, log_z, alpha) - top
        total += math.exp(t)
        if t < -37.0:
            break
        j += 1.0
    j = peak - 1.0
    while j >= 1.0:
        t = _log_term(j, log_z, alpha) - top
        total += math.exp(t)
        if t < -37.0:
            break
        j -= 1.0
    return top + math.log(total)


@cached_njit(nogil=True)
def _log_density(y, mu, phi, p, out):
    for i in range(y.shape[0]):
        kappa = mu[i] ** (2.0 - p) / (2.0 - p)
        if y[i] == 0.0:
            out[i] = -kappa / phi
        else:
            theta = mu[i] ** (1.0 - p) / (1.0 - p)
            out[i] = ((y[i] * theta - kappa) / phi - math.log(y[i])
                      + _log_series(y[i], phi, p))


def tweedie_log_density(y, mu, phi, p):
    """log f(y; μ, φ, p) per row (1 < p < 2, φ > 0, μ > 0, y ≥ 0)."""
    y = np.ascontiguousarray(y, dtype=float)
    mu = np.ascontiguousarray(np.broadcast_to(mu, y.shape), dtype=float)
    out = np.empty_like(y)
    _log_density(y, mu, float(phi), float(p), out)
    return out


def _power(t):
    """mgcv's tw() map of its θ to the power: (a + b e^θ)/(1 + e^θ) in POWER_BOUNDS."""
    a, b = POWER_BOUNDS
    e = math.exp(-abs(t))
    return (b + a * e) / (1.0 + e) if t > 0 else (b * e + a) / (e + 1.0)


def tweedie_power_dispersion(y, mu, w, p0=1.5, phi0=None):
    """The power p and dispersion φ maximizing ``Σ w log f(y; μ, φ, p)`` at fixed means μ
    (mgcv's ``estimate.theta`` for ``tw()``): L-BFGS-B over mgcv's θ of p (bounded to
    `POWER_BOUNDS` by its map) and log φ (within e^±6 of ``phi0``), from ``p0`` and
    ``phi0`` (default: the Pearson estimate at p0). Returns ``(p, φ)``."""
    y, mu, w = (np.asarray(a, dtype=float) for a in (y, mu, w))
    if phi0 is None:  # the Pearson estimate at p0
        phi0 = float(w @ ((y - mu) ** 2 / mu ** p0)) / float(w.sum())
    a, b = POWER_BOUNDS
    q = (min(max(p0, a + 1e-6), b - 1e-6) - a) / (b - a)
    x0 = np.array([math.log(q / (1.0 - q)), math.log(max(phi0, 1e-10))])

    def nll(x):
        return -float(w @ tweedie_log_density(y, mu, math.exp(x[1]), _power(x[0])))

    # log φ within e^±6 of the start: far out (φ → 0) the series needs ~10^5 terms per row
    # (a quasi-Newton step there once cost two minutes); the maximum is near the start
    bounds = [(-25.0, 25.0), (x0[1] - 6.0, x0[1] + 6.0)]
    res = optimize.minimize(nll, x0, method="L-BFGS-B", bounds=bounds,
                            options=dict(ftol=1e-15, gtol=1e-9, maxiter=500))
    return _power(res.x[0]), math.exp(res.x[1])
