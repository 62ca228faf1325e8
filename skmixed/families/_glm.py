"""The GLM families, one class per family and link (the link and its inverse, the
log-likelihood's constants, the response checks, start values and the parameter estimated
with the fit), and [`get_family`][skmixed.families.get_family], which names them."""

import numpy as np
from scipy import special

from ._base import Family, first_bad, non_integral
from ._kernel_terms import (_LOG_SQRT_2PI, BINOMIAL_CLOGLOG, BINOMIAL_LOGIT, BINOMIAL_PROBIT,
                            GAMMA_LOG, NBINOM2_LOG, POISSON_LOG)
from ._params import GammaDispersion, SizeParameter

__all__ = ["Gaussian", "Binomial", "Poisson", "NegativeBinomial", "Gamma", "Tweedie",
           "get_family", "FAMILY_NAMES"]

class Gaussian(Family):
    name, label, link = "gaussian", "Gaussian", "identity"
    residual_row = linear = scale_estimated = True
    observation_level_effects = False

    def mean(self, eta):
        return np.asarray(eta, dtype=float)

    def mean_derivative(self, eta):
        return np.ones_like(np.asarray(eta, dtype=float))

    def variance(self, mu, fpar=1.0):
        return np.ones_like(np.asarray(mu, dtype=float))

    def unit_deviance(self, y, mu, m=1.0, fpar=1.0):
        return (np.asarray(y, dtype=float) - mu) ** 2

    def sample(self, rng, mu, m=1.0, fpar=1.0):
        return mu + fpar * rng.standard_normal(np.shape(mu))


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

    def variance(self, mu, fpar=1.0):
        return mu * (1.0 - mu)

    def unit_deviance(self, y, mu, m=1.0, fpar=1.0):
        p = np.asarray(y, dtype=float) / m
        return 2.0 * m * (special.xlogy(p, p) - special.xlogy(p, mu)
                          + special.xlogy(1.0 - p, 1.0 - p) - special.xlogy(1.0 - p, 1.0 - mu))

    def sample(self, rng, mu, m=1.0, fpar=1.0):
        return rng.binomial(np.broadcast_to(np.asarray(m, dtype=np.int64), np.shape(mu)),
                            mu).astype(float)

    def check_y(self, y, trials=None, trials_label=None):
        if trials is None:
            if not np.isin(y, (0.0, 1.0)).all():
                first_bad(~np.isin(y, (0.0, 1.0)), y, "binomial y must hold 0/1 values")
            return
        col = repr(trials_label)
        bad = (trials <= 0) | non_integral(trials)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(f"the trials column {col} must hold positive integers; "
                             f"row {i} has {trials[i]:g}.")
        bad = (y < 0) | (y > trials) | non_integral(y)
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
        bad = (y < 0) | non_integral(y)
        if bad.any():
            first_bad(bad, y, f"{self.label} y must hold non-negative integer counts")


class Poisson(_Counts):
    name, code, label = "poisson", POISSON_LOG, "Poisson"

    def variance(self, mu, fpar=1.0):
        return np.asarray(mu, dtype=float)

    def unit_deviance(self, y, mu, m=1.0, fpar=1.0):
        y = np.asarray(y, dtype=float)
        return 2.0 * (special.xlogy(y, y) - special.xlogy(y, mu) - (y - mu))

    def sample(self, rng, mu, m=1.0, fpar=1.0):
        return rng.poisson(mu).astype(float)


class NegativeBinomial(_Counts):
    """NB2 (glmmTMB's ``nbinom2``, lme4's ``glmer.nb``): Var y = μ + μ²/k with the size k
    estimated with the fit (``fpar``; its logarithm is the optimizer's parameter)."""

    name, code, label = "nbinom2", NBINOM2_LOG, "negative binomial"
    canonical = False
    extended = True  # mgcv's nb()
    param = "size"
    glm_fpar = 1e6  # the start GLM: a negative binomial this close to the Poisson

    def param_start(self, y, mu, w):
        """log k by the moments of the start GLM's residuals, ``E(y − μ)² − μ = μ²/k``
        (k between e^-5 and e^10: from far beyond the data's overdispersion to Poisson)."""
        w = w if w.size else np.ones_like(y)
        excess = float(w @ ((y - mu) ** 2 - mu))
        k = float(w @ (mu * mu)) / excess if excess > 0 else np.exp(10.0)
        return float(np.clip(np.log(k), -5.0, 10.0))

    def laplace_param(self, y, w):
        return SizeParameter()

    def variance(self, mu, fpar=1.0):
        return mu + mu * mu / fpar

    def unit_deviance(self, y, mu, m=1.0, fpar=1.0):
        y = np.asarray(y, dtype=float)
        return 2.0 * (special.xlogy(y, y) - special.xlogy(y, mu)
                      - (y + fpar) * np.log((y + fpar) / (mu + fpar)))

    def sample(self, rng, mu, m=1.0, fpar=1.0):
        return rng.negative_binomial(fpar, fpar / (fpar + mu)).astype(float)


class Gamma(_LogLink):
    """Gamma with log link; its dispersion φ is a parameter of the fit
    (`GammaDispersion`)."""

    name, label, code, kind = "gamma", "Gamma", GAMMA_LOG, "positive"
    canonical = False  # log link: the observed information y/μ, the expected one 1
    residual_row = scale_estimated = True
    param = "dispersion"

    def check_y(self, y, trials=None, trials_label=None):
        if not np.all(y > 0):
            first_bad(~(y > 0), y, "Gamma y must be positive")

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

    def laplace_param(self, y, w):
        return GammaDispersion(y, w)

    def variance(self, mu, fpar=1.0):
        return mu * mu

    def unit_deviance(self, y, mu, m=1.0, fpar=1.0):
        y = np.asarray(y, dtype=float)
        return 2.0 * (-np.log(y / mu) + (y - mu) / mu)

    def sample(self, rng, mu, m=1.0, fpar=1.0):
        return rng.gamma(1.0 / fpar, mu * fpar)

    def start_eta(self, y):
        return np.log(np.asarray(y, dtype=float))

    def glm_start(self, X, y, w):
        """The least-squares fit of log y (R's ``mustart = y``): β = 0 (μ = 1) is far from
        typical positive responses and the scoring steps from there overshoot."""
        sw = np.sqrt(w) if w.size else 1.0
        return np.linalg.lstsq(X * np.asarray(sw)[..., None] if w.size else X,
                               self.start_eta(y) * sw, rcond=None)[0]


class Tweedie(_LogLink):
    """Tweedie with log link and a power ``1 < p < 2`` (a compound Poisson–Gamma response:
    exact zeros and positive values): ``Var y = φ μ^p``, the dispersion φ estimated with the
    fit. A given power is mgcv's ``Tweedie(p)``: its fits use the quasi-likelihood score
    ``(y − μ) μ^(1−p)`` and weights ``μ^(2−p)``. ``power=None`` is mgcv's ``tw()``: p and φ
    estimated with the fit by maximum likelihood of the Tweedie density at each step's means
    (`skmixed.families._tweedie`; an "extended family": `at_power` gives each step's
    fixed-power family). Additive models only (``bam``'s performance iteration); no Numba
    row terms (not a MixedGLM family)."""

    name, label, kind = "tweedie", "Tweedie", "nonnegative"
    canonical = False
    residual_row = scale_estimated = True
    code = -1  # no kernel row terms

    def __init__(self, power=1.5):
        if power is not None:
            power = float(power)
            if not 1.0 < power < 2.0:
                raise ValueError(f"the Tweedie power must be between 1 and 2 (a compound "
                                 f"Poisson–Gamma response); got {power!r}.")
        self.power = power
        # tw(): the power estimated with the fit (an extended family, as the negative
        # binomial: bam's discrete method takes Newton steps)
        self.extended = power is None
        self.param = "power" if power is None else None

    def at_power(self, power):
        """The family with the power fixed at ``power`` (a step of the estimated power's
        iteration)."""
        return Tweedie(power)

    def __repr__(self):
        return f"Tweedie(power={self.power!r}, link='log')"

    def __eq__(self, other):
        return type(other) is type(self) and other.power == self.power

    def __hash__(self):
        return hash(("Tweedie", self.power))

    def check_y(self, y, trials=None, trials_label=None):
        if not np.all(y >= 0):
            first_bad(~(y >= 0), y, "Tweedie y must be non-negative")
        if not np.any(y > 0):
            raise ValueError("every Tweedie y is 0: a mean of 0 has no log.")

    def diverged(self, eta):
        """A mean that underflows (η below −700): a Tweedie fit may run far down where y is
        0 over a whole region (mgcv's converges there at η ≈ −380)."""
        return bool(np.any(np.asarray(eta) < -700.0))

    def variance(self, mu, fpar=1.0):
        return np.asarray(mu, dtype=float) ** self.power

    def unit_deviance(self, y, mu, m=1.0, fpar=1.0):
        y, mu, p = np.asarray(y, dtype=float), np.asarray(mu, dtype=float), self.power
        return 2.0 * (y ** (2.0 - p) / ((1.0 - p) * (2.0 - p)) - y * mu ** (1.0 - p) / (1.0 - p)
                      + mu ** (2.0 - p) / (2.0 - p))

    def sample(self, rng, mu, m=1.0, fpar=1.0):
        """Compound Poisson–Gamma draws: N ~ Poisson(μ^(2−p)/(φ(2−p))) Gamma terms of shape
        (2−p)/(p−1) and scale φ(p−1)μ^(p−1) (``fpar``: φ)."""
        mu, p = np.asarray(mu, dtype=float), self.power
        counts = rng.poisson(mu ** (2.0 - p) / (fpar * (2.0 - p)))
        shape = counts * (2.0 - p) / (p - 1.0)
        out = np.zeros_like(mu)
        hit = counts > 0
        out[hit] = rng.gamma(shape[hit], (fpar * (p - 1.0) * mu ** (p - 1.0))[hit])
        return out

    def start_eta(self, y):
        """mgcv's ``mustart``: y, and 0.1 where y is 0."""
        y = np.asarray(y, dtype=float)
        return np.log(y + 0.1 * (y == 0))

    def score_information(self, y, eta, m=None, fpar=0.0, over_rows=None):
        """ℓ' = ``(y − μ) μ^(1−p)`` (the score in η, unit dispersion) and the observed
        information ``(2 − p) μ^(2−p) + (p − 1) y μ^(1−p)`` per row."""
        y, eta = np.asarray(y, dtype=float), np.asarray(eta, dtype=float)
        mu = np.exp(eta)
        p = self.power
        # the observed information −∂²ℓ/∂η² (Newton steps: bam's discrete method for tw());
        # Fisher scoring takes `fisher_weights`, μ^(2−p)
        return ((y - mu) * mu ** (1.0 - p),
                (2.0 - p) * mu ** (2.0 - p) + (p - 1.0) * y * mu ** (1.0 - p))

    def loglik(self, y, eta, m=None, w=None, fpar=0.0, constants=True):
        raise NotImplementedError("the Tweedie family has no row log-likelihood here "
                                  "(additive models fit it by quasi-likelihood).")


_LINKS = {"gaussian": {"identity": Gaussian}, "binomial": {lk: Binomial for lk in Binomial._CODES},
          "poisson": {"log": Poisson}, "gamma": {"log": Gamma},
          "nbinom2": {"log": NegativeBinomial}, "tweedie": {"log": Tweedie}}
# the link used when link=None: the canonical one, except for Gamma and the negative
# binomial (log; Gamma's canonical inverse link is not supported)
_DEFAULT_LINK = {"gaussian": "identity", "binomial": "logit", "poisson": "log",
                 "gamma": "log", "nbinom2": "log", "tweedie": "log"}
FAMILY_NAMES = tuple(_LINKS)


def get_family(name, link=None, power=None):
    """The [`Family`][skmixed.families.Family] of a name (``"binomial"``, ``"poisson"``,
    ``"gamma"``, ``"nbinom2"``, ``"tweedie"``, ``"gaussian"``) and link (None: the default,
    R's); ``power``: the Tweedie power (None: estimated, mgcv's ``tw()``; refused for the
    other families)."""
    if power is not None and name != "tweedie":
        raise ValueError(f"power={power!r} is the Tweedie family's; family={name!r} has none.")
    if name not in _LINKS:
        raise ValueError(f"unknown family {name!r}; valid families: {sorted(_LINKS)}.")
    link = link or _DEFAULT_LINK[name]
    if link not in _LINKS[name]:
        raise ValueError(f"unknown link {link!r} for family {name!r}; valid links: "
                         f"{sorted(_LINKS[name])}.")
    cls = _LINKS[name][link]
    if cls is Tweedie:
        return cls(power)
    return cls(link) if cls is Binomial else cls()
