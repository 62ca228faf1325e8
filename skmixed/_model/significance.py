"""Approximate significance of a smooth term (Wood 2013, *Biometrika* 100, 221–228), the
test mgcv's ``summary.gam`` reports, from the smooth's coefficients, their Bayesian
posterior covariance and the Gram matrix of its (weighted) columns.

The Wald statistic of ``f̂ = X_j ĉ`` against zero with a rank-``r`` pseudo-inverse of the
covariance of ``f̂``, where ``r`` is the smooth's "reference df": the alternative effective
degrees of freedom ``tr(2F − F²)`` over its coefficients (``F`` the hat-matrix
decomposition), at most its number of columns. A fractional ``r = k + ν`` keeps the
leading ``k − 1`` eigen-directions exactly and blends the k-th and (k + 1)-th through a
2 × 2 matrix with eigenvalues summing to ``1 + ν``; the statistic is then referred to the
corresponding weighted sum of χ²₁ variables, divided by an independent ``χ²_d / d`` when the
scale is estimated with ``d`` residual degrees of freedom (tail probabilities by Imhof's
method; below 1e-9, where that integral is at its numerical noise, the upper bound from
replacing every weight by the largest); an integer ``r`` refers to χ²_r (F_{r,d}).
"""

import math
import warnings

import numpy as np
from scipy import integrate, linalg, stats

__all__ = ["alternative_edf_terms", "chi2_mixture_sf", "chi2_mixture_f_sf", "smooth_test",
           "penalized_term_test"]


def chi2_mixture_sf(x, weights, dfs=None):
    """``P(Σ_i w_i χ²_{h_i} > x)`` for independent central χ² variables with weights of
    either sign (``dfs`` = the h_i, default 1), by Imhof's (1961) inversion of the
    characteristic function: ``1/2 + (1/π) ∫_0^∞ sin θ(u) / (u ρ(u)) du`` with
    ``θ(u) = ½ Σ h_i arctan(w_i u) − ½ x u`` and ``ρ(u) = Π (1 + w_i² u²)^{h_i/4}``
    (absolute accuracy ~1e-10: smaller tail probabilities come out as 0)."""
    w = np.asarray(weights, dtype=float)
    h = np.ones_like(w) if dfs is None else np.asarray(dfs, dtype=float)

    # θ(u) = φ(u) − ½ s u with the linear part of every negative term moved into the slope
    # s = x − Σ_{w<0} h w, leaving φ slowly varying
    neg = w < 0
    slope = x - np.sum(h[neg] * w[neg])
    if slope <= 0.0:  # x ≤ 0 and no negative weight: Q > x surely
        return 1.0

    # scalar math over the few terms: quad calls these one point at a time
    terms = [(float(wi), float(hi), bool(ni)) for wi, hi, ni in zip(w, h, neg)]

    def phase(u):
        total = 0.0
        for wi, hi, ni in terms:
            total += hi * (math.atan(wi * u) - wi * u if ni else math.atan(wi * u))
        return 0.5 * total

    def amplitude(u):  # 1 / (u ρ(u))
        return math.exp(-0.25 * sum(hi * math.log1p((wi * u) ** 2)
                                    for wi, hi, _ in terms)) / u

    def integrand(u):
        if u == 0.0:  # the limit u → 0
            return 0.5 * (np.sum(h * w) - x)
        return math.sin(phase(u) - 0.5 * slope * u) * amplitude(u)

    # sin(φ − su/2) = sin φ cos(su/2) − cos φ sin(su/2): past a first stretch, two Fourier
    # integrals of slowly varying functions (QUADPACK's QAWF)
    a = 4.0 * np.pi / slope
    value = integrate.quad(integrand, 0.0, a, limit=500, epsabs=1e-13)[0]
    for weight, part, sign in (("cos", math.sin, 1.0), ("sin", math.cos, -1.0)):
        with warnings.catch_warnings():
            # QAWF may report missing its 1e-13 target on few-df cases; the error stays
            # below 1e-10 (tests/model/test_significance.py), far under TAIL_FLOOR
            warnings.simplefilter("ignore", integrate.IntegrationWarning)
            value += sign * integrate.quad(
                lambda u: part(phase(u + a) - 0.5 * slope * a) * amplitude(u + a), 0.0,
                np.inf, weight=weight, wvar=0.5 * slope, limlst=200, epsabs=1e-13)[0]
    return float(min(1.0, max(0.0, 0.5 + value / np.pi)))


def chi2_mixture_f_sf(x, weights, res_df):
    """``P(Σ_i w_i χ²₁ / (χ²_d / d) > x)`` with an independent ``χ²_d`` (d = ``res_df``
    rounded): ``P(Σ_i w_i χ²₁ − (x/d) χ²_d > 0)``."""
    d = max(1, int(round(res_df)))
    w = np.asarray(weights, dtype=float)
    return chi2_mixture_sf(0.0, np.append(w, -x / d), np.append(np.ones_like(w), d))


def alternative_edf_terms(cov_rows):
    """The alternative edf ``(2F − F²)_ii`` of each penalized coefficient ``i`` in the
    mixed-model coordinates (identity penalty, ``M⁻¹`` the inverse penalized normal matrix,
    ``F = I − M⁻¹P``): ``1 − Σ_k (M⁻¹)_ik²`` over the penalized coordinates k.
    ``cov_rows``: an iterable of blocks whose columns are the coefficients and whose rows,
    together, run over every penalized coordinate. (An unpenalized coefficient contributes
    exactly 1.)"""
    total = None
    for block in cov_rows:
        sq = np.sum(np.asarray(block) ** 2, axis=0)
        total = sq if total is None else total + sq
    return 1.0 - total


def _factor(gram):
    """An R with R'R = gram (Cholesky; eigen square root if semi-definite)."""
    try:
        return linalg.cholesky(gram, lower=False)
    except linalg.LinAlgError:
        val, vec = linalg.eigh(gram)
        return np.sqrt(np.maximum(val, 0.0))[:, None] * vec.T


#: below this the Imhof integral is at its numerical noise; an upper bound is used instead
TAIL_FLOOR = 1e-9


def _mixture_tail(x, weights, res_df):
    """The upper tail of the weighted χ²₁ sum at x (over ``χ²_d/d`` with ``res_df``); below
    `TAIL_FLOOR`, the bound from replacing every weight by the largest (a sum that
    dominates stochastically): ``P(w_max χ²_k > x)`` (``F_{k,d}`` with ``res_df``) — taken
    without the integral when the bound itself is below `TAIL_FLOOR`."""
    w = np.asarray(weights, dtype=float)
    k, top = w.size, w.max()
    bound = (stats.chi2.sf(x / top, k) if res_df is None
             else stats.f.sf(x / (top * k), k, res_df))
    if bound < TAIL_FLOOR:  # the tail is below the bound: no integral needed
        return float(bound)
    tail = (chi2_mixture_sf(x, w) if res_df is None else chi2_mixture_f_sf(x, w, res_df))
    return float(bound if tail < TAIL_FLOOR else tail)


def smooth_test(coef, cov, gram, ref_df, res_df=None):
    """Wood's (2013) test that a smooth is zero.

    Parameters
    ----------
    coef, cov : ndarray
        The smooth's coefficients and their posterior covariance (any parameterization of
        the smooth's own columns).
    gram : ndarray
        ``X_j' W X_j`` of the smooth's columns in the same parameterization.
    ref_df : float
        The reference degrees of freedom (``min(#columns, alternative edf)``).
    res_df : float or None
        Residual degrees of freedom of an estimated scale (Gaussian), or None for a known
        scale (binomial, Poisson).

    Returns
    -------
    statistic : float
        The Wald-type statistic (χ² scale; divide by ``ref_df`` for mgcv's F).
    p_value : float
    """
    coef = np.asarray(coef, dtype=float)
    R = _factor(np.asarray(gram, dtype=float))
    Vf = R @ cov @ R.T
    val, vec = linalg.eigh((Vf + Vf.T) / 2.0)
    val, vec = val[::-1], vec[:, ::-1]
    # orient each eigenvector (first element ≥ 0): the statistic below depends on the
    # sign of the two blended directions (its p-value averages both signs)
    vec = vec * np.where(vec[0] < 0, -1.0, 1.0)
    k = max(0, int(np.floor(ref_df)))
    nu = ref_df - k
    k1 = k + 1 if nu > 0 else k
    numerical_rank = int(np.sum(val > val[0] * np.finfo(float).eps ** 0.9))
    if numerical_rank < k1:
        k = k1 = numerical_rank
        nu, ref_df = 0.0, float(numerical_rank)
    a = vec[:, :max(k1, 1)].T @ (R @ coef) / np.sqrt(val[:max(k1, 1)])
    if nu > 0 and k > 0:
        head = float(np.sum(a[:k - 1] ** 2))
        b12 = np.sqrt(max(0.5 * nu * (1.0 - nu), 0.0))
        last = a[k - 1:k1]
        quad = last[0] ** 2 + nu * last[1] ** 2
        stat, stat_flip = head + quad + 2 * b12 * last[0] * last[1], \
            head + quad - 2 * b12 * last[0] * last[1]
    else:
        stat = stat_flip = float(np.sum(a[:max(k, 1)] ** 2))
    df_chi = ref_df
    p = None
    if nu > 0:
        if k1 == 1:
            weights, df_chi = np.ones(1), 1.0
        else:
            rho = nu + 1.0
            weights = np.ones(k1)
            weights[k - 1] = (rho + np.sqrt(rho * (2.0 - rho))) / 2.0
            weights[k] = rho - weights[k - 1]
        p = (_mixture_tail(stat, weights, res_df)
             + _mixture_tail(stat_flip, weights, res_df)) / 2
    if p is None:  # an integer rank: the plain χ² (F) reference
        if res_df is None:
            p = (stats.chi2.sf(stat, df_chi) + stats.chi2.sf(stat_flip, df_chi)) / 2
        else:
            p = (stats.f.sf(stat / df_chi, df_chi, res_df)
                 + stats.f.sf(stat_flip / df_chi, df_chi, res_df)) / 2
    return float(stat), float(min(1.0, p))


def penalized_term_test(coef, info, root, scale, res_df=None):
    """The test mgcv's ``summary.gam`` applies instead to a smooth with no unpenalized part
    (e.g. a cyclic one: its penalty's null space, the constant, is constrained away): Wood's
    (2013, *Biometrika* 100, 1005–1010) test for a random effect (mgcv's ``reTest``).

    With ``I_m`` the smooth's block of the penalized information matrix with the other
    non-random coefficients eliminated (``info``) and ``V_e = B B'`` the frequentist
    covariance of its coefficients (``root``: B, m × r), the statistic ``T = ĉ'I_m ĉ / φ``
    is referred to ``Σ_i e_i χ²_1`` with ``e_i`` the eigenvalues of ``V_e I_m / φ``
    (those of ``B' I_m B / φ``): divided by an
    independent ``χ²_d / d`` (``d = round(res_df)``, at least 1) when the scale φ is
    estimated. The reference df is the number of positive ``e_i`` (above ε^0.8 of the
    largest, as mgcv's).

    Returns
    -------
    rank : int
    statistic : float
        T (χ² scale; divide by ``rank`` for mgcv's F).
    p_value : float
    """
    coef = np.asarray(coef, dtype=float)
    stat = float(coef @ info @ coef) / scale
    ev = linalg.eigvalsh(root.T @ info @ root) / scale
    ev[ev < 0] = 0.0
    rank = int(np.sum(ev > ev.max() * np.finfo(float).eps ** 0.8))
    if res_df is None:
        return rank, stat, chi2_mixture_sf(stat, ev)
    d = max(1, int(round(res_df)))
    return rank, stat, chi2_mixture_sf(0.0, np.append(ev, -stat / d),
                                       np.append(np.ones(ev.size), d))
