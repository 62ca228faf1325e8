"""Models whose parameters the data cannot identify, caught before the fit.

**Levels against observations (Gaussian models).** lme4's ``lmer`` refuses, by its
``lmerControl`` defaults ``check.nobs.vs.nlev = "stop"`` and ``check.nobs.vs.nRE = "stop"``,

* a grouping factor with as many levels as observations or more: with one observation per
  level, the level's effect and the residual error are one draw from N(0, σ_g² + σ²), so
  only the sum of the two variances is identified (the fit splits it arbitrarily);
* a random-effect term with at least as many random effects (levels × the term's columns)
  as observations: its covariance parameters and the residual variance are probably not
  identified.

MixedLM and AdditiveMixed's Gaussian family refuse the same models with lme4's reasons
(mgcv's ``gam`` does not check, but ``s(g, bs = "re")`` with a level per row is the same
unidentified model). A diagonal covariance is lme4's ``(1 + x || g)``, separate terms of one
column each, so only the first check applies to it. ``glmer`` ignores both checks
(``glmerControl``): a factor with a level per observation in a binomial or Poisson model is
an overdispersion term, identified through the mean–variance relation; a Gamma model's is
too, more weakly — a log-normal mixture of Gammas is not a Gamma, so its variance and the
dispersion differ in the distribution's shape. MixedGLM and AdditiveMixed's binomial and
Poisson families therefore accept them, as ``glmer`` does.

The number of observations n is the sum of the frequency weights: an integer weight is that
many repeated rows, and a weighted fit is checked as its repeated rows would be (rows of
weight 0 are absent; so are levels with no positive weight).

**Identical factors.** Two grouping factors that split the rows into the same groups (up to
relabelling: ``g`` and a recoded copy, or ``b`` and ``b:a`` when ``b``'s labels are unique across
``a``) contribute the same random-intercept column twice: only the sum of their intercept variances
is identified. lme4 fits such a model silently and splits the variance; here an
[`IdentifiabilityWarning`][skmixed.exceptions.IdentifiabilityWarning] names the factors. With equal
terms the split is symmetric — each of m copies gets ``Σ/m`` — and every criterion equals that of
the model with one copy and ``Σ``, which `split_identical` expands (used by MixedGLM, whose Laplace
fit would otherwise search the flat ridge with an m-times larger random-effect system).
"""

import warnings

import numpy as np

from .lmm import independent_columns
from .result import FactorFit
from ..exceptions import IdentifiabilityWarning, RankDeficientWarning

__all__ = ["independent_fixed_columns", "check_levels_vs_observations",
           "check_residual_variation", "boundary_response_error", "identical_factor_sets",
           "warn_identical", "split_identical"]

# A residual sum of squares is a difference of cross-products, exact to a few eps · y'Wy (up
# to ~1e3 eps seen with 30 collinear-ish columns on 15 rows): a fixed-effects residual sum of
# squares below this multiple of y'Wy is rounding noise (y constant, or a linear function of
# the fixed columns). Real data are refused only if their residual SD is below ~5e-7 times
# the RMS of y (e.g. y = 1e6 + noise of SD 0.5), where the fit would be noise too.
_EXACT_FIT_RTOL = 1e3 * np.finfo(np.float64).eps


def check_levels_vs_observations(n_obs, factors, estimator_name, *, weighted=False):
    """Refuse a Gaussian model that lme4's ``lmer`` refuses (module docstring).

    ``n_obs``: the sum of the weights; ``factors``: ``(name, n_levels, term column names,
    covariance)`` per grouping factor, levels with positive weight only; ``weighted``:
    sample weights were given (the message says how they count).
    """
    counted = " (the sum of sample_weight: frequency weights count rows)" if weighted else ""
    problems = [(name, G) for name, G, _, _ in factors if G >= n_obs]
    if problems:
        detail = "; ".join(f"{name!r} has {G} levels" for name, G in problems)
        raise ValueError(
            "number of levels of each grouping factor must be < number of observations "
            f"(problems: {detail}, for {n_obs:g} observations{counted}). With one "
            "observation per level a level's effect and the residual error are a single "
            "draw, so their variances cannot be told apart; lme4's lmer refuses this model "
            "too. Drop the factor: an observation-level random effect (overdispersion) "
            "belongs to a binomial or Poisson model (MixedGLM, or a non-Gaussian family), "
            f"not to {estimator_name}'s Gaussian one.")
    for name, G, columns, covariance in factors:
        n_re = G * len(columns)
        if covariance == "unstructured" and len(columns) > 1 and n_re >= n_obs:
            term = f"({' + '.join(['1', *columns[1:]])} | {name})"
            raise ValueError(
                f"number of observations (={n_obs:g}){counted} <= number of random effects "
                f"(={n_re}: {G} levels x {len(columns)} columns) for term {term}; the "
                "random-effects parameters and the residual variance are probably "
                "unidentifiable (lme4's lmer refuses this model too). Drop a random slope, "
                "or make the covariance diagonal (lme4's ||).")


def check_residual_variation(rss, yty):
    """Refuse a Gaussian y that the fixed effects alone fit exactly: ``rss``, the residual
    sum of squares of their least-squares fit (weighted), at the rounding level of
    ``yty = Σ w y²``. The residual variance is then 0 and no variance component or
    smoothing parameter is identified (the criterion is -inf, or rounding noise)."""
    if np.isfinite(rss) and rss <= _EXACT_FIT_RTOL * yty:
        raise ValueError(
            "y is fitted exactly by the fixed effects (residual sum of squares "
            f"{max(rss, 0.0):.3g}, at the rounding level of sum(w*y**2) = {yty:.3g}): y is "
            "constant or a linear function of the fixed-effect columns, so the residual "
            "variance is 0 and no variance component can be estimated."
        )


def boundary_response_error(what, weighted):
    """The error for a binomial y without successes or failures, or a Poisson y of zeros:
    the maximum-likelihood mean is 0 or 1 (count 0), an infinite intercept. ``what``: what
    y holds; ``weighted``: sample weights were given."""
    rows = " with positive sample_weight" if weighted else ""
    return ValueError(f"y has {what} among the rows{rows}: the maximum-likelihood mean is "
                      "at the boundary (probability 0 or 1, count 0) and no model can be "
                      "fitted.")


def identical_factor_sets(codes, w=None):
    """Sets (lists of indices, each of 2 or more) of the factors whose codes split the rows
    with positive weight identically, up to relabelling. ``codes``: each factor's integer
    codes (n,). O(n) per pair of factors with the same number of levels."""
    rows = np.flatnonzero(w > 0) if w is not None and w.size else None
    codes = [np.asarray(c, dtype=np.int64) if rows is None else np.asarray(c)[rows]
             for c in codes]
    n_levels = [int(np.count_nonzero(np.bincount(c))) if c.size else 0 for c in codes]
    sets = []
    for j in range(len(codes)):
        for s in sets:
            if _same_partition(codes[s[0]], n_levels[s[0]], codes[j], n_levels[j]):
                s.append(j)
                break
        else:
            sets.append([j])
    return [s for s in sets if len(s) > 1]


def _same_partition(a, n_a, b, n_b):
    """Do codes ``a`` and ``b`` (rows alike) define the same groups? Each level of a maps to
    the b-code of its last row; the partitions are equal iff that map reproduces b on every
    row and both have as many levels (the map is then a bijection)."""
    if n_a != n_b or a.size != b.size:
        return False
    to_b = np.zeros(int(a.max()) + 1 if a.size else 0, dtype=np.int64)
    to_b[a] = b
    return bool(np.array_equal(to_b[a], b))


def warn_identical(factors, sets, stacklevel, refit_note=""):
    """An IdentifiabilityWarning per set of identical factors (``sets``: indices into
    ``factors``, which have ``name`` and ``levels``). ``stacklevel`` counts from the
    caller."""
    for s in sets:
        shown = " and ".join(repr(factors[j].name) for j in s)
        warnings.warn(
            f"the grouping factors {shown} split the rows into the same "
            f"{len(factors[s[0]].levels)} groups (up to relabelling): their random "
            "intercepts are one column counted twice, so only the sum of their variances is "
            "identified, not each (lme4 fits this model and splits the variance)."
            f"{refit_note} Drop all but one of them.", IdentifiabilityWarning,
            stacklevel=stacklevel + 1)


def split_identical(fitted, factors, sets, w, sigma=1.0):
    """Expand a fit of the model with one copy of each set of identical factors (the
    set's first) to every copy, the covariance Σ split equally: with m copies each has
    ``Σ/m`` (θ/√m), modes ``b/m``, and conditional variances ``c/m² + diag(Σ)(m − 1)/m²``
    (b_k given the copies' sum b is normal with mean b/m and covariance Σ(m − 1)/m²).

    ``fitted``: the reduced fit's `FactorFit` list (one per kept factor, in
    the order of ``factors`` without the dropped copies); ``factors``: the full design's
    factors (`Factor`), their codes on rows alike, unused levels dropped;
    ``w``: the weights (rows of weight 0 do not count); ``sigma``: the scale of θ
    (Σ = σ²TT'). Returns a FactorFit for every factor, in ``factors``' order.
    """
    rows = np.flatnonzero(w > 0) if w.size else slice(None)
    copies = {j: s for s in sets for j in s[1:]}
    kept = [j for j in range(len(factors)) if j not in copies]
    by_factor = dict(zip(kept, fitted))
    out = [None] * len(factors)
    for s in sets:
        first = factors[s[0]]
        fit = by_factor[s[0]]
        m = len(s)
        T = first.term.factor(fit.theta)
        cond = (fit.cond_var / m ** 2
                + sigma ** 2 * np.diagonal(T @ T.T)[None, :] * (m - 1) / m ** 2)
        for j in s:
            # the level of copy j that holds each level of the set's first factor
            level = np.zeros(len(first.levels), dtype=np.int64)
            level[first.codes[rows]] = factors[j].codes[rows]
            bj, cj = np.empty_like(fit.modes), np.empty_like(cond)
            bj[level], cj[level] = fit.modes / m, cond
            out[j] = FactorFit(name=factors[j].name, levels=factors[j].levels,
                               term=factors[j].term, theta=fit.theta / np.sqrt(m),
                               theta_internal=fit.theta_internal / np.sqrt(m), modes=bj,
                               cond_var=cj)
    for j in kept:
        if out[j] is None:
            out[j] = by_factor[j]
    return out


def independent_fixed_columns(XtX, names, stacklevel):
    """Indices of the fixed columns kept by lme4's rank check on the cross-product ``XtX``,
    with a RankDeficientWarning naming the dropped ones; returns ``(kept, dropped names)``.
    ``stacklevel`` is counted from the caller."""
    kept = independent_columns(XtX)
    dropped = [names[j] for j in range(len(names)) if j not in set(kept)]
    if dropped:
        warnings.warn(f"fixed-effect model matrix is rank deficient so dropping "
                      f"{len(dropped)} column(s): {dropped}", RankDeficientWarning,
                      stacklevel=stacklevel + 1)
    return kept, dropped
