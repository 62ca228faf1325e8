"""The families' row terms for the Numba kernels: each family's code, the log-likelihood of one row
and its η-derivatives ([`row_terms`][skmixed.families.row_terms],
[`row_derivs`][skmixed.families.row_derivs]), the derivatives over the family's parameter
([`param_terms`][skmixed.families.param_terms]), which information the Laplace log determinant uses
([`observed_logdet`][skmixed.families.observed_logdet]), and the loops the
[`Family`][skmixed.families.Family] methods run over them. The kernels receive ``family.code`` and
the parameter's value ``fpar`` (the negative binomial's size, 0 otherwise) and branch here; the
code generator of `skmixed._kernels.glmm_codegen` writes out the logit's terms from
`product_row_source`. Its digest covers this file.
"""

import math

from .._cache import cached_njit


__all__ = ["BINOMIAL_LOGIT", "POISSON_LOG", "BINOMIAL_PROBIT", "BINOMIAL_CLOGLOG", "GAMMA_LOG",
           "NBINOM2_LOG", "GAUSSIAN_IDENTITY", "row_terms", "row_derivs", "param_terms",
           "param_rows", "observed_rows", "observed_logdet", "has_param", "special_digamma",
           "product_row_source",
           "laplace_rows"]

# the kernels' family codes
BINOMIAL_LOGIT = 0
POISSON_LOG = 1
BINOMIAL_PROBIT = 2
BINOMIAL_CLOGLOG = 3
GAMMA_LOG = 4
NBINOM2_LOG = 5
GAUSSIAN_IDENTITY = -1  # no kernels: the Gaussian models have their own

_SQRT_HALF = 0.7071067811865476
_LOG_SQRT_2PI = 0.9189385332046728


@cached_njit
def observed_logdet(family):
    """Families whose Laplace log determinant (and quadrature scale) uses the observed information,
    for which [`row_terms`][skmixed.families.row_terms] returns v_F = v: the canonical links, where
    the two coincide, and Gamma and the negative binomial (the true Laplace approximation, as
    glmmTMB's). The binomial probit and cloglog links use the expected information, as lme4's PIRLS
    weights."""
    return (family == BINOMIAL_LOGIT or family == POISSON_LOG or family == GAMMA_LOG
            or family == NBINOM2_LOG)


@cached_njit
def has_param(family):
    """Families whose row terms depend on a parameter ``fpar`` estimated with the fit
    ([`param_terms`][skmixed.families.param_terms] gives the derivatives over its logarithm)."""
    return family == NBINOM2_LOG


@cached_njit
def _log_ndtr(t):
    """log Φ(t), accurate in both tails (asymptotic series below −37)."""
    if t > 0.0:
        return math.log1p(-0.5 * math.erfc(t * _SQRT_HALF))
    if t > -37.0:
        return math.log(0.5 * math.erfc(-t * _SQRT_HALF))
    s = 1.0 / (t * t)
    series = s * (-1.0 + s * (3.0 - 15.0 * s))
    return -0.5 * t * t - _LOG_SQRT_2PI - math.log(-t) + math.log1p(series)


@cached_njit
def _mills(t):
    """λ(t) = φ(t)/Φ(t) (inverse Mills ratio), and its derivative −λ(t + λ)."""
    if t > -37.0:
        lam = math.exp(-0.5 * t * t - _LOG_SQRT_2PI) / (0.5 * math.erfc(-t * _SQRT_HALF))
    else:
        s = 1.0 / (t * t)
        lam = -t / (1.0 + s * (-1.0 + s * (3.0 - 15.0 * s)))
    return lam, -lam * (t + lam)


@cached_njit
def _cloglog_parts(eta):
    """For μ = 1 − exp(−e^η): ``(t, log μ, r, q)`` with t = e^η, r = t/(e^t − 1) and
    q = t/(1 − e^{−t}) = r e^t, each without overflow or cancellation."""
    t = math.exp(min(eta, 700.0))
    if t < 1e-10:
        return t, eta - 0.5 * t, 1.0 - 0.5 * t, 1.0 + 0.5 * t
    em = -math.expm1(-t)  # 1 − e^{−t} = μ
    q = t / em
    return t, math.log(em), q * math.exp(-t), q


@cached_njit
def _log_binomial_coefficient(y, m):
    if m == 1.0:
        return 0.0
    return math.lgamma(m + 1.0) - math.lgamma(y + 1.0) - math.lgamma(m - y + 1.0)


@cached_njit
def _nb2_parts(k, eta):
    """For the negative binomial of size k at η = log μ: ``(μ, log(k + μ))`` without
    overflow."""
    lk = math.log(k)
    hi = max(lk, eta)
    return math.exp(min(eta, 700.0)), hi + math.log1p(math.exp(-abs(lk - eta)))


@cached_njit
def row_terms(family, fpar, y, m, eta):
    """``(ℓ, ℓ', v, v_F, v_F')`` of one row: log-likelihood, its η-derivative, the observed
    information ``v = −ℓ''``, the information the Laplace log determinant uses ``v_F`` (the
    expected one, or v for [`observed_logdet`][skmixed.families.observed_logdet] families) and
    ``v_F' = ∂v_F/∂η``. ``m``: binomial trials; ``fpar``: the family's parameter."""
    if family == BINOMIAL_LOGIT:
        # ℓ = k η − m log(1 + e^η) + log C(m, k); one exp serves μ and log(1 + e^η), and
        # selects instead of a branch on the sign of η (random in real data: mispredicted)
        e = math.exp(-abs(eta))
        inv = 1.0 / (1.0 + e)
        mu = inv if eta >= 0.0 else e * inv
        ll = y * eta - m * (max(eta, 0.0) + math.log1p(e)) + _log_binomial_coefficient(y, m)
        v = m * mu * (1.0 - mu)
        v1 = v * (1.0 - 2.0 * mu)
        return ll, y - m * mu, v, v, v1
    if family == POISSON_LOG:
        # ℓ = y η − e^η − log y!
        mu = math.exp(eta)
        return y * eta - mu - math.lgamma(y + 1.0), y - mu, mu, mu, mu
    if family == BINOMIAL_PROBIT:
        # ℓ = k log Φ(η) + (m − k) log Φ(−η); ℓ' = k λ(η) − (m − k) λ(−η)
        lp, dlp = _mills(eta)
        lm, dlm = _mills(-eta)
        ll = y * _log_ndtr(eta) + (m - y) * _log_ndtr(-eta) + _log_binomial_coefficient(y, m)
        vf = m * lp * lm
        return (ll, y * lp - (m - y) * lm, -(y * dlp + (m - y) * dlm), vf,
                m * (dlp * lm - lp * dlm))
    if family == GAMMA_LOG:
        # unit dispersion, without constants: ℓ = −y e^{−η} − η (the shape ν enters as a
        # factor of the frequency weights, its constants at the model level); the observed
        # information y e^{−η} stands in v_F (see observed_logdet)
        ye = y * math.exp(-eta)
        return -ye - eta, ye - 1.0, ye, ye, -ye
    if family == NBINOM2_LOG:
        # size k: ℓ = log Γ(y + k) − log Γ(k) − log y! + k log(k/(k + μ)) + y log(μ/(k + μ));
        # ℓ' = k(y − μ)/(k + μ), v = kμ(y + k)/(k + μ)² (observed: log is not canonical)
        k = fpar
        mu, lkm = _nb2_parts(k, eta)
        d = 1.0 / (k + mu)
        ll = (math.lgamma(y + k) - math.lgamma(k) - math.lgamma(y + 1.0)
              + k * (math.log(k) - lkm) + y * (eta - lkm))
        v = k * mu * (y + k) * d * d
        return ll, k * (y - mu) * d, v, v, v * (k - mu) * d
    # binomial cloglog: ℓ = k log μ − (m − k) e^η, ℓ' = k r − (m − k) t
    t, logmu, r, q = _cloglog_parts(eta)
    ll = y * logmu - (m - y) * t + _log_binomial_coefficient(y, m)
    vf = m * t * r
    return ll, y * r - (m - y) * t, (m - y) * t + y * r * (q - 1.0), vf, vf * (2.0 - q)


@cached_njit
def row_derivs(family, fpar, y, m, eta):
    """``(ℓ', v)`` of one row without ℓ itself: the Newton passes for the modes need no
    logarithm (logit: one exp per row instead of an exp and a log1p)."""
    if family == BINOMIAL_LOGIT:
        # μ as row_terms computes it (the same bits; one exp, no overflow for η ≪ 0)
        e = math.exp(-abs(eta))
        inv = 1.0 / (1.0 + e)
        mu = inv if eta >= 0.0 else e * inv
        return y - m * mu, m * mu * (1.0 - mu)
    if family == POISSON_LOG:
        mu = math.exp(eta)
        return y - mu, mu
    _, l1, v, _, _ = row_terms(family, fpar, y, m, eta)
    return l1, v


@cached_njit
def param_terms(family, fpar, y, m, eta):
    """``(∂ℓ/∂α, ∂ℓ'/∂α, ∂v/∂α)`` of one row over α = log fpar (zeros for a family
    without a parameter): what the Laplace deviance's α-gradient needs."""
    if family == NBINOM2_LOG:
        k = fpar
        mu, lkm = _nb2_parts(k, eta)
        d = 1.0 / (k + mu)
        dll = (special_digamma(y + k) - special_digamma(k) + math.log(k) - lkm
               + (mu - y) * d)
        dl1 = mu * (y - mu) * d * d
        dv = mu * (y * mu + 2.0 * k * mu - k * y) * d * d * d
        return k * dll, k * dl1, k * dv
    return 0.0, 0.0, 0.0


@cached_njit
def special_digamma(x):
    """ψ(x) for x > 0: the recurrence to x ≥ 12, then the asymptotic series to x⁻¹⁰ (its
    next term is below 3e-15 there)."""
    acc = 0.0
    while x < 12.0:
        acc -= 1.0 / x
        x += 1.0
    s = 1.0 / (x * x)
    series = s * (1.0 / 12 - s * (1.0 / 120 - s * (1.0 / 252 - s * (1.0 / 240
                                                                    - s / 132))))
    return acc + math.log(x) - 0.5 / x - series


@cached_njit
def row_loglik(family, fpar, y, m, eta, out):
    """ℓ of every row (``m`` empty: one trial) into ``out``."""
    for r in range(y.shape[0]):
        mr = m[r] if m.shape[0] > 0 else 1.0
        out[r] = row_terms(family, fpar, y[r], mr, eta[r])[0]


@cached_njit(nogil=True)
def score_information(family, fpar, y, m, eta, l1, v):
    """ℓ' and v_F of every row (the PIRLS working response and weights). The logit's and
    the Poisson's from [`row_derivs`][skmixed.families.row_derivs] (the same bits), without ℓ
    (no log1p, no log-binomial coefficient, no log y!: the terms are not inlined into this
    loop, so the unused ℓ of [`row_terms`][skmixed.families.row_terms] would be computed);
    the others' from `row_terms`."""
    for r in range(y.shape[0]):
        mr = m[r] if m.shape[0] > 0 else 1.0
        if family == POISSON_LOG or family == BINOMIAL_LOGIT:
            l1[r], v[r] = row_derivs(family, fpar, y[r], mr, eta[r])
        else:
            _, l1[r], _, v[r], _ = row_terms(family, fpar, y[r], mr, eta[r])


@cached_njit
def laplace_rows(family, fpar, y, m, eta, ll, l1, v, v1):
    """ℓ, ℓ', v_F and ∂v_F/∂η of every row: what an exact gradient of the Laplace
    deviance needs (v_F' carries the log determinant's dependence on the modes)."""
    for r in range(y.shape[0]):
        mr = m[r] if m.shape[0] > 0 else 1.0
        ll[r], l1[r], _, v[r], v1[r] = row_terms(family, fpar, y[r], mr, eta[r])


@cached_njit
def observed_rows(family, fpar, y, m, eta, v):
    """The observed information ``v = −ℓ''`` of every row (where the PIRLS weights v_F are
    the expected one: an exact gradient's adjoint needs the modes' true Jacobian)."""
    for r in range(y.shape[0]):
        mr = m[r] if m.shape[0] > 0 else 1.0
        v[r] = row_terms(family, fpar, y[r], mr, eta[r])[2]


@cached_njit
def param_rows(family, fpar, y, m, eta, la, l1a, va):
    """[`param_terms`][skmixed.families.param_terms] of every row (the Laplace deviance's gradient
    over the log of the family's parameter)."""
    for r in range(y.shape[0]):
        mr = m[r] if m.shape[0] > 0 else 1.0
        la[r], l1a[r], va[r] = param_terms(family, fpar, y[r], mr, eta[r])


def product_row_source(family, v):
    """For the generated kernels (`skmixed._kernels.glmm_codegen`): the lines (indent 8) setting
    ``l0, l1, <v>, vf, vf1`` of row r as [`row_terms`][skmixed.families.row_terms] does for one
    trial and unit weight, except that ``l0`` leaves out a term ``−log d_`` with ``d_`` in (1, 2],
    which the generated pass multiplies into a running product (a multiply per row instead of a
    log1p); None for a family without such a term. The logit's: ℓ = yη − max(η, 0) − log(1 +
    e^{−|η|})."""
    if family != BINOMIAL_LOGIT:
        return None
    return ["        e_ = math.exp(-abs(eta))",
            "        d_ = 1.0 + e_",
            "        inv_ = 1.0 / d_",
            "        mu_ = inv_ if eta >= 0.0 else e_ * inv_",
            "        l0 = y[r] * eta - max(eta, 0.0)",
            "        l1 = y[r] - mu_",
            f"        {v} = mu_ * (1.0 - mu_)",
            f"        vf = {v}",
            f"        vf1 = {v} * (1.0 - 2.0 * mu_)"]
