"""Binomial-logit and Poisson-log additive mixed models: the PIRLS working model at η
(`_working`), ``bam``'s performance iteration (`performance_iteration`, REML of
the working model at every step) and ``gam(method = "REML")``'s Laplace-approximate REML
optimized over the smoothing parameters (`laplace_reml`); each step's REML is a
`DenseREML`."""

from types import SimpleNamespace

import numpy as np
from scipy import linalg, special

from .._kernels.threads import over_rows
from .additive import LOG_TAU_BOUNDS, search_again_from_inside
from .optimize import minimize
from .tweedie_power import tweedie_power_dispersion
from .spaces import BoxSpace

__all__ = ["performance_iteration", "laplace_reml"]


def _working(family, eta, y, m, prior, fpar=0.0, newton=False):
    """The PIRLS working response ``η + ℓ'/w`` and weights ``prior · w`` at η, w the
    expected information (Fisher scoring, as bam's) or with ``newton`` the observed one
    (Newton steps: bam's discrete method for mgcv's extended families) — the same for a
    canonical link, computed with ℓ' in one kernel pass; ``fpar`` the family's parameter
    (the negative binomial's size)."""
    # beyond |η| = 30 a probability is within 1e-13 of 0 or 1 (a Poisson mean below 1e-13):
    # the estimates run to infinity and the working weights underflow
    if family.diverged(eta):
        raise ValueError("fitted means numerically at the boundary (probability 0 or 1, or "
                         "a Poisson mean of 0): the linear predictor diverges — "
                         "(quasi-)complete separation by the covariates or smooths; drop "
                         "or recode the separating terms.")
    l1, info = family.score_information(y, eta, m, fpar=fpar, over_rows=over_rows)
    if not (family.canonical or newton):
        info = family.fisher_weights(eta, m, fpar=fpar)
    return eta + l1 / np.maximum(info, 1e-300), prior * info


#: the search interval of the negative binomial's log size at fixed means: from far beyond
#: any data's overdispersion (k = e^-10) to a Poisson within 1e-11 of its variance
LOG_SIZE_BOUNDS = (-10.0, 25.0)


def size_at_means(y, eta, prior, start=1.0, tol=1e-9, distinct=None):
    """The negative binomial's size k maximizing ``Σ w ℓ(y; μ, k)`` at fixed means μ = e^η
    (mgcv's ``estimate.theta`` in bam's iteration): Newton steps in log k from ``start``,
    halved until ℓ does not decrease, until a step is below ``tol``; within
    `LOG_SIZE_BOUNDS` (at the upper bound the data show no overdispersion). The
    log-gamma and digamma terms depend on the count only: summed over its distinct values
    (weighted; ``distinct``: ``np.unique(y, return_inverse=True)`` if known), the rest is
    O(n) arithmetic per step. Near the optimum a step is at the rounding of ℓ's sums
    (~1e-10 of log k over millions of rows): ``tol`` 1e-9."""
    values, inverse = np.unique(y, return_inverse=True) if distinct is None else distinct
    counts = np.bincount(inverse, weights=prior)
    total = float(prior.sum())
    wy = prior * y
    wy_log_mu = float(wy @ eta)

    mu = np.exp(eta)

    def terms(a, order):
        k = np.exp(a)
        km = k + mu
        log_km = np.log(km)
        ll = (counts @ (special.gammaln(values + k) - special.gammaln(values + 1.0))
              - total * special.gammaln(k) + total * k * np.log(k)
              - k * float(prior @ log_km) - float(wy @ log_km) + wy_log_mu)
        if not order:
            return ll
        # ∂ℓ/∂k and ∂²ℓ/∂k², then in a = log k
        g = (counts @ special.digamma(values + k) - total * special.digamma(k)
             + total * (np.log(k) + 1.0) - float(prior @ log_km)
             - float(prior @ ((k + y) / km)))
        h = (counts @ special.polygamma(1, values + k) - total * special.polygamma(1, k)
             + total / k - float(prior @ (1.0 / km))
             + float(prior @ ((k + y) / km ** 2)) - float(prior @ (1.0 / km)))
        return ll, k * g, k * g + k * k * h

    lo, hi = LOG_SIZE_BOUNDS
    a = float(np.clip(np.log(start), lo, hi))
    ll, g, h = terms(a, 2)
    for _ in range(100):
        step = -g / h if h < 0 else np.sign(g) * 1.0  # ascent: Newton where concave
        step = float(np.clip(a + np.clip(step, -4.0, 4.0), lo, hi) - a)
        for _ in range(60):
            if terms(a + step, 0) >= ll - 1e-12 * abs(ll):
                break
            step *= 0.5
        else:
            break  # no step increases ℓ: at its maximum to rounding
        a += step
        ll, g, h = terms(a, 2)
        if abs(step) < tol:
            break
    return float(np.exp(a))


def performance_iteration(make_reml, linear_predictor, y, eta0, family, m=None, weights=None,
                          tol=1e-8, max_iter=100, newton=False):
    """A non-Gaussian additive mixed model by PIRLS "performance iteration" (Gu 1992;
    mgcv's ``bam(method = "fREML")``): at the current η, the working Gaussian model
    ``z = η + (y − μ)/μ'(η)`` with weights ``μ'(η)²/V(μ)`` (the expected information) is
    fitted by REML — smoothing parameters and variance components re-estimated every step,
    the scale known (1: binomial, Poisson, negative binomial) or estimated with them (Gamma's
    dispersion); the negative binomial's size is re-estimated at the current means before
    every step (`size_at_means`) — and η moves to its fitted linear predictor, until η and
    the size stop changing. ``newton``: the working weights are the observed information
    (bam's discrete method does so for mgcv's extended families, the negative binomial
    here; the fixed point of η is the same, the REML's smoothing parameters are not).

    ``make_reml(z, w)`` returns the `DenseREML` of the
    working model (its cross-products from z and w); ``linear_predictor(fit)`` the fitted η
    at every row; ``family`` a [`Family`][skmixed.families.Family].
    Returns ``(fit, eta, n_iter, converged)``; ``fit.fpar`` is the family's parameter (the
    size; 0 for a family without one)."""
    m = np.ones_like(y) if m is None else m
    prior = np.ones_like(y) if weights is None else weights
    eta = np.asarray(eta0, dtype=float)
    log_tau, fit, fpar = None, None, 0.0
    distinct = np.unique(y, return_inverse=True) if family.param == "size" else None
    step_family, phi = family, None
    for it in range(1, max_iter + 1):
        fpar_old = fpar
        if family.param == "size":
            # the start's means are the data's (η of y itself: no overdispersion left to
            # see), so the first step takes k by the moments of y (as bam, which estimates
            # it from its second step on)
            fpar = (size_at_means(y, eta, prior, start=fpar, distinct=distinct) if fpar
                    else float(np.exp(family.param_start(
                        y, np.full_like(y, prior @ y / prior.sum()), prior))))
        elif family.param == "power":
            # tw(): the first step at p = 1.5 with φ by the working REML; from the second
            # on, p and φ by maximum likelihood at the current means (bam's estimate.theta)
            # and φ held fixed in the step's REML
            if it > 1:
                fpar, phi = tweedie_power_dispersion(y, np.exp(eta), prior, fpar, phi)
            else:
                fpar = 1.5
            step_family = family.at_power(fpar)
        z, w = _working(step_family, eta, y, m, prior, fpar, newton)
        reml = make_reml(z, w)
        reml.scale = (phi if phi is not None
                      else None if family.scale_estimated else 1.0)
        if family.scale_estimated:
            # the observations are the prior weights' (w holds the working information
            # too: μ^(2−p) for a Tweedie, 1 for Gamma), and (n − p) divides the profiled
            # dispersion
            reml.n = float(prior.sum())
        fit = reml.fit(log_tau)
        fit.fpar = fpar
        if phi is None and family.param == "power":
            phi = fit.sigma ** 2  # the first step's REML: where the ML search starts
        log_tau = fit.theta
        eta_new = linear_predictor(fit)
        change = np.max(np.abs(eta_new - eta))
        if family.param in ("size", "power"):  # and the parameter's relative change
            change = max(change, abs(np.log(fpar / fpar_old)) if fpar_old else np.inf)
        eta = eta_new
        if change < tol * (1.0 + np.max(np.abs(eta))):
            # the converged step's REML also searched from its own start (bam starts every
            # step's there): warm-started steps can stay on a plateau that an early step's
            # far-off means put them on (a Tweedie y × 1e-3: edf 1 where bam finds 4.84);
            # if that is lower, the iteration goes on from it
            fresh = reml.fit()
            if not fresh.criterion < fit.criterion - 1e-11 * abs(fit.criterion):
                return fit, eta, it, True
            fresh.fpar = fpar
            fit = fresh
            log_tau = fit.theta
            eta = linear_predictor(fit)
    return fit, eta, max_iter, False


def laplace_reml(make_reml, linear_predictor, y, eta0, family, m=None, weights=None,
                 tol=1e-10, max_iter=200, bounds=LOG_TAU_BOUNDS, log_tau0=None):
    """``gam(method = "REML")`` for binomial logit / Poisson log: the Laplace approximation
    of the restricted likelihood (Wood 2011), optimized over τ ("outer iteration"):

        V(τ) = −2 Σ w ℓ(η̂_τ) + ‖û_τ‖² + log|A| + log|R_X|²

    at the penalized maximum (β̂, û) for τ, found by PIRLS (Newton = Fisher scoring for these
    canonical links) from the previous τ's η. Unlike `performance_iteration` (PQL, as
    ``bam``), the smoothing parameters optimize this criterion itself. ``family``: a
    [`Family`][skmixed.families.Family] of a canonical link. ``log_tau0``: where the
    search starts (default 0; e.g. the performance iteration's τ, near this optimum).
    Returns ``(fit, eta, n_evaluations, converged)``."""
    m = np.ones_like(y) if m is None else m
    prior = np.ones_like(y) if weights is None else weights
    state = {"eta": np.asarray(eta0, dtype=float), "evals": 0}

    def pirls(log_tau):
        eta = state["eta"]
        for _ in range(max_iter):
            z, w = _working(family, eta, y, m, prior)
            reml = make_reml(z, w)
            reml.scale = 1.0
            s = reml.solve(log_tau)
            eta_new = linear_predictor(reml.coefficients(s))
            change = np.max(np.abs(eta_new - eta))
            eta = eta_new
            if change < tol * (1.0 + np.max(np.abs(eta))):
                break
        z, w = _working(family, eta, y, m, prior)
        reml = make_reml(z, w)
        reml.scale = 1.0
        return reml, reml.solve(log_tau), eta

    def criterion(log_tau):
        state["evals"] += 1
        try:
            reml, s, eta = pirls(log_tau)
        except linalg.LinAlgError:
            return np.inf
        state["eta"] = eta
        u2 = sum(float(u @ u) for u in s["u"] if u is not None)
        logdet = s["sys"]["logdet"] + 2.0 * np.log(np.diag(s["RX"])).sum()
        return -2.0 * family.loglik(y, eta, m, prior, constants=False) + u2 + logdet

    reml0 = make_reml(*_working(family, state["eta"], y, m, prior))
    bounds = reml0.search_bounds(bounds)
    # forward differences of step 1e-6 in log τ: with SciPy's 1e-8 the PIRLS's own
    # rounding (~1e-12 of V) made the gradient noisy and the stop wander by ~1e-6 in edf
    # (no smooth and no groups: a GLM, one evaluation, the PIRLS alone)
    def search(x0):
        return minimize(SimpleNamespace(value=criterion), BoxSpace(x0, *bounds),
                        method="lbfgs", tol=1e-7, max_iter=15000, ftol=1e-13, eps=1e-6)

    res = search(np.zeros(reml0.n_tau) if log_tau0 is None
                 else np.clip(np.asarray(log_tau0, dtype=float), *bounds))
    # a log τ at the lower bound (a smooth reduced to its null space, λ = ∞), where the
    # criterion is flat: searched again from inside, the lower criterion kept (as
    # DenseREML.fit: a nearly linear smooth stopped at edf 1.000 where gam finds 1.42)
    res = search_again_from_inside(search, res, bounds, reml0.margin_taus,
                                   reml0.smooth_blocks, reml0.log_mask)
    reml, s, eta = pirls(res.theta_final)
    # the final working model at τ̂: coefficients, edf, Vp (σ = 1)
    return reml.fit_at(res.theta_final, res), eta, state["evals"], res.converged
