"""Response families: one class per family and link, the only place a family is named.

A :class:`Family` carries everything the fits need to know of it — the link and its
inverse, the variance, the log-likelihood, the response checks, the PIRLS working response,
its dispersion-type parameter (if any) and, for the Numba kernels, its code and its row
terms (:func:`row_terms`: log-likelihood and the η-derivatives of one row). Estimators ask
:func:`get_family` for the object and pass it down; the kernels receive ``family.code`` and
the parameter's value (``fpar``: the negative binomial's size, 0 otherwise).

Adding a family: its row terms (a branch of :func:`row_terms`, and of :func:`param_terms`
when it has a parameter), a subclass of :class:`Family`, and an entry in ``_LINKS``.
"""

import math

import numpy as np
from scipy import special

from ._cache import cached_njit

__all__ = ["Family", "get_family", "BINOMIAL_LOGIT", "POISSON_LOG", "BINOMIAL_PROBIT",
           "BINOMIAL_CLOGLOG", "GAMMA_LOG", "NBINOM2_LOG", "row_terms", "row_derivs",
           "param_terms", "observed_logdet", "has_param"]

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


# ------------------------------------------------------------------ the kernels' row terms
@cached_njit(inline="always")
def observed_logdet(family):
    """Families whose Laplace log determinant (and quadrature scale) uses the observed
    information, for which :func:`row_terms` returns v_F = v: the canonical links, where
    the two coincide, and Gamma and the negative binomial (the true Laplace approximation,
    as glmmTMB's). The binomial probit and cloglog links use the expected information, as
    lme4's PIRLS weights."""
    return (family == BINOMIAL_LOGIT or family == POISSON_LOG or family == GAMMA_LOG
            or family == NBINOM2_LOG)


@cached_njit(inline="always")
def has_param(family):
    """Families whose row terms depend on a parameter ``fpar`` estimated with the fit
    (:func:`param_terms` gives the derivatives over its logarithm)."""
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


@cached_njit(inline="always")
def row_terms(family, fpar, y, m, eta):
    """``(ℓ, ℓ', v, v_F, v_F')`` of one row: log-likelihood, its η-derivative, the
    observed information ``v = −ℓ''``, the information the Laplace log determinant uses
    ``v_F`` (the expected one, or v for :func:`observed_logdet` families) and
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


@cached_njit(inline="always")
def row_derivs(family, fpar, y, m, eta):
    """``(ℓ', v)`` of one row without ℓ itself: the Newton passes for the modes need no
    logarithm (logit: one exp per row instead of an exp and a log1p)."""
    if family == BINOMIAL_LOGIT:
        mu = 1.0 / (1.0 + math.exp(-eta))
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
def _row_loglik(family, fpar, y, m, eta, out):
    """ℓ of every row (``m`` empty: one trial) into ``out``."""
    for r in range(y.shape[0]):
        mr = m[r] if m.shape[0] > 0 else 1.0
        out[r] = row_terms(family, fpar, y[r], mr, eta[r])[0]


@cached_njit
def _score_information(family, fpar, y, m, eta, l1, v):
    """ℓ' and v_F of every row (the PIRLS working response and weights)."""
    for r in range(y.shape[0]):
        mr = m[r] if m.shape[0] > 0 else 1.0
        _, l1[r], _, v[r], _ = row_terms(family, fpar, y[r], mr, eta[r])


def _empty(a):
    return np.empty(0) if a is None else np.ascontiguousarray(a, dtype=np.float64)


# ------------------------------------------------------------------ the families
class Family:
    """One response family with its link (subclasses below; :func:`get_family`).

    Attributes: ``name`` and ``link`` (R's names), ``code`` (the kernels'), ``canonical``
    (observed = expected information), ``kind`` (of the response: ``"proportion"``
    (successes of trials), ``"count"``, ``"positive"``, ``"continuous"``), ``param`` (the name of a parameter estimated with
    the fit, e.g. the negative binomial's ``"size"``; None), ``eta_bounds`` (linear
    predictors beyond which a fitted mean is numerically at its boundary, or None)."""

    name = ""
    label = ""  # in messages
    link = ""
    kind = "continuous"  # of the response: "proportion", "count", "positive"
    code = GAUSSIAN_IDENTITY
    canonical = True
    param = None
    eta_bounds = None

    def __repr__(self):
        return f"{type(self).__name__}(link={self.link!r})"

    def __eq__(self, other):
        return type(other) is type(self) and other.link == self.link

    def __hash__(self):
        return hash((type(self).__name__, self.link))

    # the link, on NumPy arrays
    def mean(self, eta):
        """The inverse link μ(η) (per trial for the binomial)."""
        raise NotImplementedError

    def mean_derivative(self, eta):
        """dμ/dη (the delta method's slope)."""
        raise NotImplementedError

    # the likelihood
    def loglik(self, y, eta, m=None, w=None, fpar=0.0, constants=True):
        """Σ w ℓ(y; η) (``m``: binomial trials); ``constants=False`` leaves out the terms
        free of η (log C(m, y), −log y!)."""
        y = np.ascontiguousarray(y, dtype=np.float64)
        m_, w_ = _empty(m), _empty(w)
        rows = np.empty_like(y)
        _row_loglik(self.code, float(fpar), y, m_, np.ascontiguousarray(eta, dtype=float),
                    rows)
        if not constants:
            rows -= self._log_base(y, m_ if m_.size else np.ones_like(y))
        # NumPy's sums (pairwise or BLAS), not a running sum: the several-factor fit takes
        # finite differences of this deviance
        return float(w_ @ rows if w_.size else rows.sum())

    def _log_base(self, y, m):
        return np.zeros_like(y)

    def score_information(self, y, eta, m=None, fpar=0.0):
        """ℓ' and the working weight v_F per row: PIRLS's working response is
        ``η + ℓ'/v_F``."""
        y = np.ascontiguousarray(y, dtype=np.float64)
        l1, v = np.empty_like(y), np.empty_like(y)
        _score_information(self.code, float(fpar), y, _empty(m),
                           np.ascontiguousarray(eta, dtype=float), l1, v)
        return l1, v

    def diverged(self, eta):
        """Whether a linear predictor puts fitted means numerically at their boundary
        (|η| > 30 for a probability, η < −30 for a count's mean): the estimates run to
        infinity and the working weights underflow."""
        return False

    # the parameter estimated with the fit
    glm_fpar = 0.0  # its value in the GLM that gives the start values

    def param_start(self, y, mu, w):
        """The start of the optimizer's parameter (``param``; Gamma: ρ = −log φ, negative
        binomial: log k) from the start GLM's means ``mu`` (``w`` empty: unit weights)."""
        raise NotImplementedError

    # the response
    def check_y(self, y, trials=None, trials_label=None):
        """Refuse a response this family cannot have (ValueError naming the first bad
        row); ``y`` is float64 (successes when ``trials`` is given)."""

    def start_eta(self, y):
        """η of the mean-shrunk response (R's ``mustart``)."""
        raise NotImplementedError


def _non_integral(a):
    """Rows of ``a`` that are not integers (up to rounding in a float computation)."""
    return np.abs(a - np.round(a)) > 1e-8 * np.maximum(1.0, np.abs(a))


def _first_bad(bad, y, what):
    i = int(np.flatnonzero(bad)[0])
    raise ValueError(f"{what}; row {i} has {y[i]:g}.")


class Gaussian(Family):
    name, label, link = "gaussian", "Gaussian", "identity"

    def mean(self, eta):
        return np.asarray(eta, dtype=float)

    def mean_derivative(self, eta):
        return np.ones_like(np.asarray(eta, dtype=float))


class Binomial(Family):
    name, label, kind = "binomial", "binomial", "proportion"
    _CODES = {"logit": BINOMIAL_LOGIT, "probit": BINOMIAL_PROBIT, "cloglog": BINOMIAL_CLOGLOG}
    # R's glm.fit: fitted probabilities within 10·eps of 0 or 1, as bounds on η per link —
    # except cloglog's upper tail, where μ = 1 − exp(−e^η) is that close to 1 from η = 3.5
    # on in regular data: there only where μ is exactly 1 in double precision (e^η > 745)
    _BOUNDS = {"logit": (-33.0, 33.0), "probit": (-7.86, 7.86), "cloglog": (-33.74, 6.61)}

    def __init__(self, link="logit"):
        self.link = link
        self.code = self._CODES[link]
        self.canonical = link == "logit"
        self.eta_bounds = self._BOUNDS[link]

    def mean(self, eta):
        eta = np.asarray(eta, dtype=float)
        if self.link == "probit":
            return special.ndtr(eta)
        if self.link == "cloglog":
            return -np.expm1(-np.exp(np.minimum(eta, 700.0)))
        return special.expit(eta)  # no overflow warning for large |η|

    def mean_derivative(self, eta):
        eta = np.asarray(eta, dtype=float)
        if self.link == "probit":
            return np.exp(-0.5 * eta * eta - _LOG_SQRT_2PI)
        if self.link == "cloglog":
            t = np.exp(np.minimum(eta, 700.0))
            return t * np.exp(-t)
        mu = special.expit(eta)
        return mu * (1.0 - mu)

    def _log_base(self, y, m):
        return special.gammaln(m + 1.0) - special.gammaln(y + 1.0) - special.gammaln(m - y + 1.0)

    def check_y(self, y, trials=None, trials_label=None):
        if trials is None:
            if not np.isin(y, (0.0, 1.0)).all():
                _first_bad(~np.isin(y, (0.0, 1.0)), y, "binomial y must hold 0/1 values")
            return
        col = repr(trials_label)
        bad = (trials <= 0) | _non_integral(trials)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(f"the trials column {col} must hold positive integers; "
                             f"row {i} has {trials[i]:g}.")
        bad = (y < 0) | (y > trials) | _non_integral(y)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError("binomial y with trials must hold integer successes between 0 "
                             f"and the trials column {col}; row {i} has y = {y[i]:g} with "
                             f"{trials[i]:g} trials.")

    def diverged(self, eta):
        return bool(np.max(np.abs(eta), initial=0.0) > 30.0)

    def start_eta(self, y):
        mu = (np.asarray(y, dtype=float) + 0.5) / 2.0
        return np.log(mu / (1.0 - mu))


class _LogLink(Family):
    link = "log"

    def mean(self, eta):
        return np.exp(np.asarray(eta, dtype=float))

    def mean_derivative(self, eta):
        return np.exp(np.asarray(eta, dtype=float))

    def start_eta(self, y):
        return np.log(np.asarray(y, dtype=float) + 0.1)


class _Counts(_LogLink):
    kind = "count"

    def diverged(self, eta):
        return bool(np.min(eta, initial=0.0) < -30.0)

    def _log_base(self, y, m):
        return -special.gammaln(y + 1.0)

    def check_y(self, y, trials=None, trials_label=None):
        bad = (y < 0) | _non_integral(y)
        if bad.any():
            _first_bad(bad, y, f"{self.label} y must hold non-negative integer counts")


class Poisson(_Counts):
    name, code, label = "poisson", POISSON_LOG, "Poisson"


class NegativeBinomial(_Counts):
    """NB2 (glmmTMB's ``nbinom2``, lme4's ``glmer.nb``): Var y = μ + μ²/k with the size k
    estimated with the fit (``fpar``; its logarithm is the optimizer's parameter)."""

    name, code, label = "nbinom2", NBINOM2_LOG, "negative binomial"
    canonical = False
    param = "size"
    glm_fpar = 1e6  # the start GLM: a negative binomial this close to the Poisson

    def param_start(self, y, mu, w):
        """log k by the moments of the start GLM's residuals, ``E(y − μ)² − μ = μ²/k``
        (k between e^-5 and e^10: from far beyond the data's overdispersion to Poisson)."""
        w = w if w.size else np.ones_like(y)
        excess = float(w @ ((y - mu) ** 2 - mu))
        k = float(w @ (mu * mu)) / excess if excess > 0 else np.exp(10.0)
        return float(np.clip(np.log(k), -5.0, 10.0))


class Gamma(_LogLink):
    """Gamma with log link; its dispersion φ is a parameter of the fit
    (:class:`skmixed._model.glmm.GammaDispersion`)."""

    name, label, code, kind = "gamma", "Gamma", GAMMA_LOG, "positive"
    param = "dispersion"

    def check_y(self, y, trials=None, trials_label=None):
        if not np.all(y > 0):
            _first_bad(~(y > 0), y, "Gamma y must be positive")

    def param_start(self, y, mu, w):
        """ρ = −log φ from the deviance-based dispersion estimate (R's ``Gamma()$aic``
        plug-in) of the start GLM."""
        w = w if w.size else np.ones_like(y)
        deviance = 2.0 * float(w @ ((y - mu) / mu - np.log(y / mu)))
        rho = -np.log(max(deviance / float(w.sum()), 1e-12))
        if not rho < 25.0:
            raise ValueError("the fixed effects alone fit y exactly (the Gamma GLM without "
                             "random effects has deviance ~0): no dispersion is left to "
                             "estimate.")
        return float(rho)

    def start_eta(self, y):
        return np.log(np.asarray(y, dtype=float))


_LINKS = {"gaussian": {"identity": Gaussian}, "binomial": {lk: Binomial for lk in Binomial._CODES},
          "poisson": {"log": Poisson}, "gamma": {"log": Gamma},
          "nbinom2": {"log": NegativeBinomial}}
# the link used when link=None: the canonical one, except for Gamma and the negative
# binomial (log; Gamma's canonical inverse link is not supported)
_DEFAULT_LINK = {"gaussian": "identity", "binomial": "logit", "poisson": "log",
                 "gamma": "log", "nbinom2": "log"}
FAMILY_NAMES = tuple(_LINKS)


def get_family(name, link=None):
    """The :class:`Family` of a name (``"binomial"``, ``"poisson"``, ``"gamma"``,
    ``"nbinom2"``, ``"gaussian"``) and link (None: the default, R's)."""
    if name not in _LINKS:
        raise ValueError(f"unknown family {name!r}; valid families: {sorted(_LINKS)}.")
    link = link or _DEFAULT_LINK[name]
    if link not in _LINKS[name]:
        raise ValueError(f"unknown link {link!r} for family {name!r}; valid links: "
                         f"{sorted(_LINKS[name])}.")
    cls = _LINKS[name][link]
    return cls(link) if cls is Binomial else cls()
