"""Fits with several grouping factors (nested or crossed) from a
`ModelSpec`: the LMM by the profiled deviance of
`skmixed._model.multilevel`, the GLMM by the Laplace approximation of
`skmixed._model.multilevel_glmm`; both return a `FitResult`.
The fixed columns are centred and scaled (`ColumnScaling`)
and collinear ones dropped first (`prepare_fixed`); `BackTransform` maps the
estimates back to the user's columns. The LMM's cross-products come from the rows
(`fit_multi_lmm`) or from the sums of a chunked pass (`fit_multi_sums`,
`skmixed._model.multilevel_sums`); both then run `fit_multi_crossproducts`."""

import time
from contextlib import ExitStack
from dataclasses import dataclass, replace

import numba
import numpy as np
from scipy import linalg

from .._kernels.threads import blas_threads, numba_threads
from . import identifiability, multilevel, multilevel_sums
from .glmm import GroupedRows, family_param_start, fit_fixed_glm
from .lmm_fit import centring_shift, response_shift
from .lmm_inference import GaussianInference
from .profiles import FactorMap
from .multilevel import (FactorColumns, MultiCrossproducts, MultiProfiledDeviance,
                         ScalarFactorsDeviance)
from .multilevel_glmm import MultiLaplace
from .crossed_iterative import IterativeREML, PCGError
from .pair_laplace import PairLaplace, pair_laplace_applies
from .optimize import FiniteDifferenceGradient, OptSummary, minimize
from .result import FactorFit, FitResult, fixed_covariance, lme4_order
from .scalar_laplace import ScalarLaplace, exact_laplace_applies
from .scaling import ColumnScaling, weighted_gram
from .spaces import ThetaSpace

__all__ = ["fit_multi_lmm", "fit_multi_sums", "fit_multi_crossproducts", "check_multi_lmm",
           "fit_multi_glmm", "prepare_fixed", "BackTransform", "glm_start", "slope_columns",
           "multi_centring_shift", "elimination_order", "use_iterative",
           "ITERATIVE_FROM", "ITERATIVE_REFUSAL"]


def fit_multi_lmm(design, y, w, *, reml, fit_intercept, n_threads, tol, max_iter,
                  estimator_name, solver="auto"):
    """The LMM with several factors (``design``: a ModelSpec, unused levels dropped): one
    pass to the cross-products, θ by the profiled deviance; a FitResult."""
    t0 = time.perf_counter()
    weights, Xf, X, names, dropped, back = prepare_fixed(design, y, w, fit_intercept)
    identical = identifiability.identical_factor_sets([f.codes for f in design.factors],
                                                      weights)
    check_multi_lmm(design.factors, weights.sum(), X.shape[1], identical,
                    reml=reml, weighted=bool(w.size), estimator_name=estimator_name,
                    stacklevel=6)
    order, cols = _elimination_order(design, Xf, back.scaling)
    # y less a value near its mean, as the columns: y'Wy − ‖c‖² − ‖c_β‖² (r²) without
    # cancellation when y has a large mean (y + 1e5 had moved the criterion by 0.04)
    y_shift = response_shift(y, fit_intercept)
    stats = MultiCrossproducts.from_rows(X, y - y_shift if y_shift else y, weights, cols)
    return fit_multi_crossproducts(design, order, cols, stats, names, dropped, back,
                                   reml=reml, n_threads=n_threads, tol=tol,
                                   max_iter=max_iter, y_shift=y_shift,
                                   timings={"row_pass": time.perf_counter() - t0},
                                   solver=solver, repeated=bool(identical))


def fit_multi_sums(design, sums, shift, *, reml, fit_intercept, n_threads, tol, max_iter,
                   estimator_name, weighted, stacklevel, solver="auto"):
    """The LMM with several factors from the sums of a chunked row pass (``sums``: a
    `MultiSums` over the levels of ``design``'s
    factors, unused ones dropped; ``shift``: what the pass subtracted from ``v = [1, x…,
    y]``): the columns' scales from the sums (as a one-factor fit's), collinear columns
    dropped, the in-memory fit's checks and optimization on the same cross-products.
    ``stacklevel`` of the warnings counts from the caller."""
    t0 = time.perf_counter()
    p = len(design.fixed_names)
    vv = sums.vv
    n_obs = float(vv[0, 0])
    scaling = ColumnScaling.from_centred_sums(shift[1:p + 1], n_obs, vv[0, 1:p + 1],
                                              np.diagonal(vv)[1:p + 1],
                                              intercept=fit_intercept,
                                              slope_pos=slope_columns(design))
    scale = np.concatenate([[1.0], scaling.scale, [1.0]])
    fixed = np.arange(0 if fit_intercept else 1, p + 1)
    names = (["(Intercept)"] if fit_intercept else []) + list(design.fixed_names)
    kept, dropped = identifiability.independent_fixed_columns(
        vv[np.ix_(fixed, fixed)] / np.outer(scale[fixed], scale[fixed]), names,
        stacklevel=stacklevel + 1)
    identical = multilevel_sums.identical_factors(sums, [f.term.q for f in design.factors])
    check_multi_lmm(design.factors, n_obs, len(kept), identical,
                    reml=reml, weighted=weighted, estimator_name=estimator_name,
                    stacklevel=stacklevel + 2)
    order = elimination_order(design.factors)
    z_pos = [np.concatenate([[0], 1 + np.asarray(f.slope_pos, dtype=np.int64)])
             for f in design.factors]
    stats = multilevel_sums.multi_crossproducts(sums, order, z_pos, scale, fixed[kept])
    cols = [FactorColumns(None, len(design.factors[k].levels), None, design.factors[k].term)
            for k in order]
    return fit_multi_crossproducts(design, order, cols, stats, [names[j] for j in kept],
                                   dropped, BackTransform(scaling, kept), reml=reml,
                                   n_threads=n_threads, tol=tol, max_iter=max_iter,
                                   y_shift=float(shift[-1]),
                                   timings={"sums": time.perf_counter() - t0}, solver=solver,
                                   repeated=bool(identical))


def check_multi_lmm(factors, n_obs, n_fixed, identical, *, reml, weighted, estimator_name,
                    stacklevel):
    """The checks of a several-factor LMM before θ is optimized: lme4's refusals of levels
    vs observations, the warning for identical factors (``identical``: sets of indices
    into ``factors``), REML's observations vs fixed effects. ``stacklevel`` of the warning
    counts from here."""
    identifiability.check_levels_vs_observations(
        n_obs, [(f.name, len(f.levels), list(f.term.names), f.covariance) for f in factors],
        estimator_name, weighted=weighted)
    identifiability.warn_identical(factors, identical, stacklevel=stacklevel)
    if reml and n_obs <= n_fixed:
        raise ValueError(f"REML needs more observations ({n_obs:g}) than fixed "
                         f"effects ({n_fixed}).")


def fit_multi_crossproducts(design, order, cols, stats, names, dropped, back, *, reml,
                            n_threads, tol, max_iter, y_shift=0.0, timings=None,
                            solver="auto", repeated=False):
    """Everything after the row pass (in memory or by chunks): θ by the profiled deviance
    of ``stats`` (a MultiCrossproducts of the internal columns, the factors ``cols`` in
    elimination ``order``), or by the iterative REML of
    `crossed_iterative` (``solver``, `use_iterative`), the
    estimates mapped back by ``back``; ``y_shift``: what was subtracted from y (added to
    the intercept); ``repeated``: two factors split the rows identically (the checks'
    identical sets). A FitResult."""
    timings = dict(timings or {})
    Q1 = stats.offsets[1]
    B, ZZr = stats.ZZ[:Q1, Q1:], stats.ZZ[Q1:, Q1:]
    if use_iterative(solver, cols, B, ZZr, reml=reml, repeated=repeated):
        return _fit_iterative(design, order, cols, stats, names, dropped, back,
                              y_shift=y_shift, timings=timings, max_iter=max_iter)
    # intercept-only factors with a dense rest block: the exact-gradient fast path
    scalar = all(c.term.q == 1 for c in cols) and (multilevel.dense_rest(B, ZZr)
                                                    or multilevel.nested_diagonal_rest(B, cols))
    objective = (ScalarFactorsDeviance if scalar else MultiProfiledDeviance)(stats, cols,
                                                                            reml=reml)
    t1 = time.perf_counter()
    if scalar:
        # the threads go to LAPACK's dense factorization and inverse; the Numba pair
        # kernels run serially beside them (threads in both pools fight for the two cores:
        # 1.0 s → 0.7 s on InstEval with 2 threads)
        with numba_threads(1):
            opt = minimize(objective, ThetaSpace([c.term for c in cols],
                                                 _moment_start(stats, cols)),
                           method="log-lbfgs", tol=tol, max_iter=max_iter,
                           blas_threads=_dense_threads(objective, n_threads))
    else:
        opt = minimize(FiniteDifferenceGradient(objective), ThetaSpace([c.term for c in cols]),
                       method="lbfgs-newton", tol=tol, max_iter=max_iter)
    timings["optimize"] = time.perf_counter() - t1
    # the scalar path's state at the optimum is usually the optimizer's last (its modes and
    # variances computed there); a new one factors Q_r × Q_r densely: BLAS threads pay
    with blas_threads(_dense_threads(objective, n_threads) if scalar else 1):
        state = (objective.last_state(opt.theta_final) if scalar
                 else objective.evaluate(opt.theta_final, keep=True))
        if not np.isfinite(state.deviance):
            raise ValueError("the profiled deviance is not finite at the optimum: the "
                             "response may be constant or perfectly fitted by the fixed "
                             "effects.")
        sigma2 = state.penalized_rss / objective.dof
        modes = objective.conditional_modes(state)
        beta, fixed_cov = back(state.beta, sigma2 * linalg.inv(state.S))
    if y_shift and names and names[0] == "(Intercept)":
        beta[0] += y_shift
    # back to the user's factor order
    factors = [None] * len(order)
    for pos, k in enumerate(order):
        a, b = objective.theta_slices[pos], objective.theta_slices[pos + 1]
        factors[k] = back.factor_fit(design.factors[k], opt.theta_final[a:b], *modes[pos],
                                     scale=sigma2)
    opt.timings = timings
    c = np.zeros(len(names))
    if y_shift and names and names[0] == "(Intercept)":
        c[0] = y_shift
    maps = [None] * len(order)
    for pos, k in enumerate(order):
        f = design.factors[k]
        maps[k] = FactorMap(f.name, f.term, back.scaling.slope_factors(f.slope_pos),
                            int(objective.theta_slices[pos]),
                            int(objective.theta_slices[pos + 1]))
    inference = GaussianInference(
        kind="scalar" if scalar else "multi", stats=stats,
        cols=[replace(c_, codes=None, values=None) for c_ in cols], theta=opt.theta_final,
        reml=reml, factors=[maps[k] for k in lme4_order(factors)],
        A=back.scaling.matrix(back.kept), c=c, names=names)
    return FitResult(names=names, beta=beta, fixed_cov=fixed_cov, dropped=dropped,
                     extra={"inference": inference},
                     factors=factors, sigma=float(np.sqrt(sigma2)),
                     criterion=float(state.deviance
                                     + (back.reml_offset() if reml else 0.0)),
                     n_params=len(beta) + objective.n_theta + 1, n_obs=float(stats.n),
                     opt=opt)


#: ``solver="auto"`` fits crossed intercept-only REML models iteratively from this many
#: columns of the rest block (the factors after the largest): the dense factorization's
#: cost grows as their cube (5,000 columns: ~2 s per evaluation, 20 s per fit at 1e6 rows;
#: 20,000: 30 s per evaluation; 59,000: 28 GB), the iterative fit's with the level pairs
ITERATIVE_FROM = 4000


ITERATIVE_REFUSAL = ("solver='iterative' fits REML models whose grouping factors (at least "
                     "two) all have random intercepts only (no random slopes); use "
                     "solver='exact' or 'auto' for this model.")


def use_iterative(solver, cols, B, ZZr, *, reml, repeated=False):
    """Whether the fit is the iterative one: ``solver`` "iterative" (the model must be one
    it fits: REML, intercept-only factors, at least two), "exact" never, "auto" for such
    models whose rest block (``ZZr``; ``B`` the first factor's pairs with it) has at least
    `ITERATIVE_FROM` columns and is crossed with the first factor — not nested in it
    (`nested_rest`: the exact path's diagonal or sparse
    factorization is cheap there). Sparse crossed data (100,000 users × 10,000 items,
    five ratings each) count as crossed: their sparse LU fills in. ``repeated``: two
    factors split the rows identically — their variances' split is not identified and the
    iterative steps cycle on it: refused by "iterative", exact under "auto"."""
    if solver == "exact":
        return False
    fits = reml and len(cols) >= 2 and all(c.term.q == 1 for c in cols)
    if fits and repeated:
        if solver == "iterative":
            raise ValueError("solver='iterative' cannot fit two grouping factors with the "
                             "same levels on the same rows (their variances are not "
                             "identified); use solver='exact', or drop one.")
        return False
    if solver == "iterative":
        if not fits:
            raise ValueError(ITERATIVE_REFUSAL)
        return True
    return fits and ZZr.shape[0] >= ITERATIVE_FROM and not multilevel.nested_rest(B, cols)


def _fit_iterative(design, order, cols, stats, names, dropped, back, *, y_shift, timings,
                   max_iter):
    """The iterative REML fit (`IterativeREML`)
    as a FitResult: the criterion is not evaluated (NaN), nor the modes' conditional
    variances (NaN); the fixed effects' covariance is exact."""
    t1 = time.perf_counter()
    start = _moment_start(stats, cols)
    try:
        # BLAS only sees thin products (p columns); threads spinning there beside the Numba
        # kernels' made a busy machine's fit 5× slower
        with blas_threads(1):
            fit = IterativeREML(stats, cols).fit(start, max_iter=min(max_iter, 100))
    except (PCGError, FloatingPointError, linalg.LinAlgError) as err:
        raise ValueError(
            f"the iterative solver failed ({err}): the model may be degenerate (a residual "
            "variance near 0, factors that repeat each other); solver='exact' fits it or "
            "says why not.") from err
    timings["optimize"] = time.perf_counter() - t1
    sigma2 = fit.sigma2
    beta, fixed_cov = back(fit.beta, sigma2 * fit.fixed_cov_rel)
    if y_shift and names and names[0] == "(Intercept)":
        beta[0] += y_shift
    factors = [None] * len(order)
    off = stats.offsets
    for pos, k in enumerate(order):
        t = fit.theta[pos]
        u = fit.u[off[pos]:off[pos + 1]]
        factors[k] = back.factor_fit(design.factors[k], fit.theta[pos:pos + 1],
                                     (t * u)[:, None], np.full((u.size, 1), np.nan),
                                     scale=sigma2)
    opt = OptSummary(optimizer="ai-reml-pcg", theta_start=start, theta_final=fit.theta,
                     lower=np.zeros(len(cols)), fmin=np.nan, gradient=fit.gradient,
                     decrement=np.nan, n_evals=fit.n_iter + 2, n_iter=fit.n_iter,
                     converged=fit.converged, timings=timings,
                     message=(f"average-information Newton steps, conjugate-gradient solves "
                              f"({sum(fit.cg_iterations)} iterations), "
                              + ("exact traces" if fit.exact_traces else
                                 f"traces from {fit.n_probes} random probes")))
    return FitResult(names=names, beta=beta, fixed_cov=fixed_cov, dropped=dropped,
                     factors=factors, sigma=float(np.sqrt(sigma2)), criterion=np.nan,
                     n_params=len(beta) + len(cols) + 1, n_obs=float(stats.n), opt=opt)


#: the rest block's dense factorizations get BLAS threads from this many columns (InstEval's
#: 1,156: 0.82 s → 0.59 s with 2); below, one: threads cost more than they give on small
#: matrices, and on a busy machine spinning BLAS threads made the 403-row grouseticks fit
#: (181 columns) 60× slower
DENSE_THREADS_FROM = 500

#: the same for the several-factor GLMM's exact path, whose BLAS calls alternate with
#: passes over the rows (the spinning BLAS thread slows those): crossed binomial fits with
#: 2 threads / 1 thread — 1,000 columns 3.0 / 1.3 s, 2,000 8.6 / 7.4 s, 3,000 16.2 /
#: 18.6 s, 4,000 32.6 / 43.7 s, 5,000 86 / 129 s (this 2-core machine, 2026-12-03)
GLMM_DENSE_THREADS_FROM = 2500


def _dense_threads(objective, n_threads, start=None):
    """BLAS threads for an objective's dense rest block (``objective.rest_columns``): all
    from ``start`` columns (`DENSE_THREADS_FROM`), else one."""
    start = DENSE_THREADS_FROM if start is None else start
    return n_threads if objective.rest_columns >= start else 1


def _moment_start(stats, factors):
    """A start for θ of intercept-only factors (in elimination order, as ``stats``): per
    factor, the variance of its levels' mean residuals (y after least squares on X) less
    their sampling share, over the smallest within-level residual variance (σ²), each at
    least 0.1 σ. From the sums alone — the residuals' sums per level are
    ``Z'Wy − Z'WX β``, their within-level sum of squares ``r'Wr − Σ_i n_i r̄_i²`` — so a
    chunked fit starts where the in-memory one does; on InstEval it saves a quarter of
    the evaluations from θ = 1."""
    beta = linalg.lstsq(stats.XtX, stats.Xty)[0] if stats.p else np.zeros(0)
    rss = max(stats.yty - 2.0 * float(beta @ stats.Xty)
              + float(beta @ stats.XtX @ beta), 0.0)
    counts_all, between, within = stats.ZZ.diagonal(), [], []
    for k, f in enumerate(factors):
        rows = stats.offsets[k] + np.arange(f.n_levels) * f.term.q
        cnt = counts_all[rows]
        seen = cnt > 0
        sums = stats.Zy[rows] - stats.ZX[rows] @ beta
        means = sums / np.where(seen, cnt, 1)
        within.append(max(rss - float(sums @ means), 0.0)
                      / max(stats.n - seen.sum(), 1.0))
        between.append(float(np.var(means[seen])) - within[-1] * float(np.mean(1 / cnt[seen])))
    s2 = max(min(within), 1e-300)
    return np.sqrt(np.maximum(np.array(between), 0.01 * s2) / s2)


def prepare_fixed(design, y, w, fit_intercept):
    """The weights (ones for none), the fixed columns, the fixed-effect block on the
    internal columns (intercept first, centred and scaled by
    `ColumnScaling`, collinear columns dropped), the kept
    names, the dropped ones, and the map of the estimates back (`BackTransform`)."""
    n = y.shape[0]
    weights = w if w.size else np.ones(n)
    Xf = np.column_stack(design.columns) if design.columns else np.empty((n, 0))
    scaling = ColumnScaling.from_columns(design.columns, intercept=fit_intercept,
                                         slope_pos=slope_columns(design))
    X = np.column_stack([np.ones(n), Xf]) if fit_intercept else Xf.copy()
    scaling.transform(X, first=int(fit_intercept))
    names = (["(Intercept)"] if fit_intercept else []) + list(design.fixed_names)
    XtX = weighted_gram(X, weights)
    kept, dropped = identifiability.independent_fixed_columns(XtX, names, stacklevel=6)
    return (weights, Xf, np.ascontiguousarray(X[:, kept]), [names[j] for j in kept], dropped,
            BackTransform(scaling, kept))


@dataclass
class BackTransform:
    """The fixed effects of the internal columns mapped back to the user's."""
    scaling: ColumnScaling
    kept: list

    def __call__(self, beta, cov):
        return self.scaling.to_original(beta, cov, self.kept)

    def factor_fit(self, factor, theta, modes, cond, scale=1.0):
        """A factor's `FactorFit` on the user's columns from
        the fit's own θ, modes (G, q) and their conditional covariances relative to
        ``scale`` — (G, q, q), or their diagonals (G, q)."""
        cond = np.asarray(cond)
        if cond.ndim == 3:
            cond = np.diagonal(cond, axis1=1, axis2=2)
        term = factor.term
        theta_user, modes, cond_var = self.scaling.term_to_original(
            factor.slope_pos, term.rows, theta, modes, scale * cond)
        return FactorFit(name=factor.name, levels=factor.levels, term=term,
                         theta=term.canonical(theta_user), theta_internal=np.array(theta),
                         modes=modes, cond_var=cond_var)

    def reml_offset(self):
        return self.scaling.reml_offset(self.kept)


def slope_columns(design):
    """The fixed columns (positions) with a random slope in some factor: scaled, never
    centred (`ColumnScaling`)."""
    return sorted({int(j) for f in design.factors for j in f.slope_pos})


def multi_centring_shift(design, y, fit_intercept):
    """`centring_shift` of a several-factor ModelSpec."""
    return centring_shift(design, y, fit_intercept, slope_pos=slope_columns(design))


def elimination_order(factors):
    """The factors' positions, the one with most random-effect columns first (ties in
    the user's order)."""
    return sorted(range(len(factors)), key=lambda k: -len(factors[k].levels) * factors[k].term.q)


def _elimination_order(design, Xf, scaling):
    """The factors as FactorColumns, the one with most random-effect columns first; slope
    columns on the internal scale of ``scaling``."""
    n = Xf.shape[0]
    order = elimination_order(design.factors)
    cols = []
    for k in order:
        f = design.factors[k]
        z = np.column_stack([np.ones(n)] + [Xf[:, j] / scaling.scale[j] for j in f.slope_pos])
        cols.append(FactorColumns(f.codes, len(f.levels), z, f.term))
    return order, cols


def multi_laplace(design, y, w, m, offset, *, family, fit_intercept):
    """The Laplace deviance of a several-factor GLMM on the internal columns: the scalar
    path's exact one (ScalarLaplace), PairLaplace or MultiLaplace; with whether it is the
    scalar path's, the internal X, the kept names, the dropped ones, the map back, the
    elimination order, the factors' columns and the weights."""
    weights, Xf, X, names, dropped, back = prepare_fixed(design, y, w, fit_intercept)
    order, cols = _elimination_order(design, Xf, back.scaling)
    pattern = exact_laplace_applies(cols, family, y, weights)
    exact = pattern is not None
    if exact:
        lap = ScalarLaplace(X, y, m, offset, weights, cols, family, pattern)
    else:
        general = PairLaplace if pair_laplace_applies(cols, family, y, weights) \
            else MultiLaplace
        lap = general(X, y, m, offset, weights, cols, family)
    return lap, exact, X, names, dropped, back, order, cols, weights


def laplace_threads(lap, exact):
    """The threads a several-factor Laplace deviance runs on: the scalar path's pair
    kernels serial; BLAS threads for a dense block of at least GLMM_DENSE_THREADS_FROM
    columns (below, one)."""
    blas = (_dense_threads(lap, numba.get_num_threads(), GLMM_DENSE_THREADS_FROM)
            if exact or lap.dense or lap.exact_gradient else None)
    stack = ExitStack()
    if exact:
        stack.enter_context(numba_threads(1))
    if blas is not None:
        stack.enter_context(blas_threads(blas))
    return stack


def fit_multi_glmm(design, y, w, m, offset, *, family, fit_intercept, tol, max_iter):
    """Binomial (logit), Poisson or negative binomial (log) GLMM with several factors by
    the Laplace approximation (`MultiLaplace`);
    start β from the GLM without random effects, θ = 1 (lme4's), the family's parameter
    from the GLM's residuals. A FitResult."""
    t0 = time.perf_counter()
    lap, exact, X, names, dropped, back, order, cols, weights = multi_laplace(
        design, y, w, m, offset, family=family, fit_intercept=fit_intercept)
    beta0 = glm_start(X, y, m, offset, weights, family)
    extra0 = family_param_start(family, X, y, offset, weights, beta0)
    theta0 = np.concatenate([c.term.theta_start() for c in cols])
    # as the LMM's scalar path: the pair kernels serial, the threads to LAPACK's dense
    # factorizations (Numba's and BLAS's pools fight for the two cores otherwise: the
    # 403-row grouseticks fit 1.4 s → 2.3 s)
    # (the thread count read before Numba's is set to 1: `with a, b` enters a before it
    # evaluates b, and BLAS ran on one thread — potri 1.8 s instead of 1.0 s at 5,000
    # columns)
    # the general path's dense system (≤ 500 columns) is factored on one BLAS thread:
    # at 150 columns a second one's synchronization made each factorization 2 ms, not 50 µs
    # (and the blocked system's dense rest block on one BLAS thread below 2,500 columns as
    # the scalar path's: a 100-column potri took 0.25 s on two threads beside a busy core)
    with laplace_threads(lap, exact):
        opt = lap.fit(theta0, beta0, max_iter=max_iter, extra0=extra0, tol=min(tol, 1e-8))
    x = opt.theta_final.copy()
    thetas, beta = lap.split(x)
    fixed_cov = fixed_covariance(opt.hessian, slice(lap.n_theta, lap.n_theta + beta.size))
    u, deviance, blocks = lap.state_at(x)
    factors, start = [None] * len(order), 0
    for pos, k in enumerate(order):
        c = cols[pos]
        T = c.term.factor(thetas[pos])
        q, G = c.term.q, c.n_levels
        uk = u[start:start + G * q].reshape(G, q)
        factors[k] = back.factor_fit(design.factors[k], thetas[pos], uk @ T.T,
                                     T[None] @ blocks[pos] @ T.T[None])
        start += G * q
    opt.timings = {"total": time.perf_counter() - t0}
    beta, fixed_cov = back(beta, fixed_cov)
    dispersion = lap.param.report(x[-1])[1] if lap.n_extra else None
    return FitResult(names=names, beta=beta, fixed_cov=fixed_cov, dropped=dropped,
                     factors=factors, sigma=1.0, criterion=float(deviance),
                     n_params=len(beta) + lap.n_theta + (dispersion is not None),
                     n_obs=float(weights.sum()), opt=opt, dispersion=dispersion)


def glm_start(X, y, m, offset, w, family):
    """β of the GLM without random effects (`fit_fixed_glm` on
    the rows as one block; ``m``, ``offset``, ``w`` may be empty: 0/1 y, no offset, unit
    weights; ``family``: a [`Family`][skmixed.families.Family])."""
    n = y.shape[0]
    rows = GroupedRows(np.asfortranarray(X, dtype=float), np.array([-1], dtype=np.int64),
                       np.ascontiguousarray(y, dtype=float), np.asarray(m, dtype=float),
                       np.asarray(offset, dtype=float), np.asarray(w, dtype=float),
                       np.array([0, n], dtype=np.int64))
    return fit_fixed_glm(family, rows, 1, fpar=family.glm_fpar)
