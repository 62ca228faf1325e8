"""The Tweedie density for 1 < p < 2 (a compound Poisson–Gamma law) and the row kernels of its
log-likelihood's derivatives in (φ, p), which mgcv's ``tw()`` maximizes over the power and
dispersion at fixed means (`skmixed._model.tweedie_power`).

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

from .._cache import cached_njit
from ._kernel_terms import special_digamma

__all__ = ["tweedie_log_density", "loglik_derivs_blocks", "POWER_BOUNDS"]

#: mgcv's tw() search interval of the power (its a and b)
POWER_BOUNDS = (1.01, 1.99)


@cached_njit(nogil=True)
def _log_term(j, log_z, alpha):
    """log W_j."""
    return j * log_z - math.lgamma(j + 1.0) - math.lgamma(-j * alpha)


@cached_njit(nogil=True)
def _trigamma(x):
    """ψ'(x) for x > 0: the recurrence to x ≥ 12, then the asymptotic series."""
    acc = 0.0
    while x < 12.0:
        acc += 1.0 / (x * x)
        x += 1.0
    s = 1.0 / (x * x)
    return acc + 1.0 / x + 0.5 * s + s / x * (1.0 / 6 - s * (1.0 / 30 - s * (1.0 / 42
                                                                          - s / 30)))


@cached_njit(nogil=True)
def _series_derivs(y, phi, p, out):
    """log Σ_j W_j for one y > 0 and its derivatives in (φ, p) into ``out`` (6: value,
    ∂φ, ∂p, ∂φφ, ∂φp, ∂pp), from the terms' weights over j (the log-sum's derivatives are
    the weighted means of the terms', the second ones plus their weighted covariance)."""
    alpha = (2.0 - p) / (1.0 - p)
    a1 = 1.0 / (1.0 - p) ** 2  # dα/dp
    a2 = 2.0 / (1.0 - p) ** 3
    base = -math.log(y) + math.log(p - 1.0) + math.log(phi)
    log_z = (-alpha * math.log(y) + alpha * math.log(p - 1.0) - (1.0 - alpha) * math.log(phi)
             - math.log(2.0 - p))
    z_phi = -(1.0 - alpha) / phi  # ∂ log z / ∂φ
    z_p = a1 * base + alpha / (p - 1.0) + 1.0 / (2.0 - p)
    z_pp = a2 * base + 2.0 * a1 / (p - 1.0) - alpha / (p - 1.0) ** 2 + 1.0 / (2.0 - p) ** 2
    peak = max(1.0, math.floor(y ** (2.0 - p) / (phi * (2.0 - p))))
    top = _log_term(peak, log_z, alpha)
    s0 = s_f = s_p = s_ff = s_fp = s_pp = 0.0
    for direction in (1.0, -1.0):
        j = peak if direction > 0 else peak - 1.0
        while j >= 1.0:
            e = math.exp(_log_term(j, log_z, alpha) - top)
            psi = special_digamma(-j * alpha)
            d_f = j * z_phi
            d_p = j * z_p + j * a1 * psi
            s0 += e
            s_f += e * d_f
            s_p += e * d_p
            s_ff += e * (j * (1.0 - alpha) / (phi * phi) + d_f * d_f)
            s_fp += e * (j * a1 / phi + d_f * d_p)
            s_pp += e * (j * z_pp + j * a2 * psi - j * j * a1 * a1 * _trigamma(-j * alpha)
                         + d_p * d_p)
            if e < 8.5e-17 and j != peak:  # e^-37
                break
            j += direction
    m_f, m_p = s_f / s0, s_p / s0
    out[0] = top + math.log(s0)
    out[1] = m_f
    out[2] = m_p
    out[3] = s_ff / s0 - m_f * m_f
    out[4] = s_fp / s0 - m_f * m_p
    out[5] = s_pp / s0 - m_p * m_p


@cached_njit(nogil=True)
def _row_derivs(y, mu, phi, p, row, series):
    """log f(y; μ, φ, p) of one row and its derivatives in (φ, p) into ``row`` (6, as
    `_series_derivs`; ``series``: a buffer of 6)."""
    u, v = 1.0 - p, 2.0 - p
    L = math.log(mu)
    eu, ev = math.exp(u * L), math.exp(v * L)
    theta, kappa = eu / u, ev / v
    theta_p = eu * (1.0 - u * L) / (u * u)
    kappa_p = ev * (1.0 - v * L) / (v * v)
    theta_pp = eu * (L * L * u * u - 2.0 * L * u + 2.0) / (u * u * u)
    kappa_pp = ev * (L * L * v * v - 2.0 * L * v + 2.0) / (v * v * v)
    c, c_p, c_pp = y * theta - kappa, y * theta_p - kappa_p, y * theta_pp - kappa_pp
    row[0] = c / phi
    row[1] = -c / (phi * phi)
    row[2] = c_p / phi
    row[3] = 2.0 * c / (phi * phi * phi)
    row[4] = -c_p / (phi * phi)
    row[5] = c_pp / phi
    if y > 0.0:
        _series_derivs(y, phi, p, series)
        row[0] += series[0] - math.log(y)
        for k in range(1, 6):
            row[k] += series[k]


@cached_njit(nogil=True)
def _loglik_derivs(y, mu, w, phi, p, out):
    """Σ w log f(y; μ, φ, p) and its first and second derivatives in (φ, p) into ``out``
    (6, as `_series_derivs`)."""
    row, series = np.empty(6), np.empty(6)
    for k in range(6):
        out[k] = 0.0
    for i in range(y.shape[0]):
        _row_derivs(y[i], mu[i], phi, p, row, series)
        for k in range(6):
            out[k] += w[i] * row[k]


@cached_njit(nogil=True)
def _log_density(y, mu, phi, p, out):
    """log f(y; μ, φ, p) of every row into ``out`` (`_row_derivs`' value)."""
    row, series = np.empty(6), np.empty(6)
    for i in range(y.shape[0]):
        _row_derivs(y[i], mu[i], phi, p, row, series)
        out[i] = row[0]


@cached_njit(nogil=True)
def loglik_derivs_blocks(y, mu, w, phi, p, edges, out, first, last):
    """`_loglik_derivs` of the rows ``edges[b]:edges[b + 1]`` into ``out[b]``, for the blocks
    ``first <= b < last`` (`skmixed._kernels.threads.over_blocks`)."""
    for b in range(first, last):
        lo, hi = edges[b], edges[b + 1]
        _loglik_derivs(y[lo:hi], mu[lo:hi], w[lo:hi], phi, p, out[b])


def tweedie_log_density(y, mu, phi, p):
    """log f(y; μ, φ, p) per row (1 < p < 2, φ > 0, μ > 0, y ≥ 0)."""
    y = np.ascontiguousarray(y, dtype=float)
    mu = np.ascontiguousarray(np.broadcast_to(mu, y.shape), dtype=float)
    out = np.empty_like(y)
    _log_density(y, mu, float(phi), float(p), out)
    return out
