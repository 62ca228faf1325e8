"""Several grouping factors (nested or crossed) for MixedLM: the columns, the fit over
skmixed._model.multilevel, and prediction.

``groups`` lists the factors: a column (label or position), or a tuple of columns for
their interaction (lme4's ``a:b``; ``(1 | a/b)`` is ``["a", ("b", "a")]``, named ``b:a`` as
lme4 names it). ``random_slopes`` is then a dict ``{factor name: [columns]}`` (a factor
not in it has a random intercept only) and ``covariance`` a string for all factors or a
dict by factor name. Every column not used by a factor is a fixed effect; slope columns
stay fixed effects too.
"""

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import linalg

from .._kernels.threads import numba_threads, single_threaded_blas
from .._model import multilevel
from .._model.multilevel import (FactorColumns, MultiCrossproducts, MultiProfiledDeviance,
                                 ScalarFactorsDeviance)
from .._model.glmm import GroupedRows, family_param_start, fit_fixed_glm
from .._model.multilevel_glmm import MultiLaplace
from .._model.result import fixed_covariance
from .._model.scaling import ColumnScaling
from .._model.optimize import FiniteDifferenceGradient, minimize
from .._model.spaces import ThetaSpace
from .._model.terms import RandomEffectTerm
from . import _design, _identifiability
from ._identifiability import independent_fixed_columns
from ._results import random_effects_table, variance_components_table

__all__ = ["MultiDesign", "is_multi", "make_multi_design", "fit_multi_lmm", "fit_multi_glmm",
           "multi_random_part"]


def is_multi(groups):
    """Several factors (a list/tuple of entries), or one interaction given as a list."""
    return isinstance(groups, (list, tuple)) and not (len(groups) == 1 and
                                                      not isinstance(groups[0], tuple))


@dataclass
class Factor:
    name: str
    labels: tuple  # the column(s) of X
    positions: tuple
    codes: np.ndarray
    levels: pd.Index
    slope_pos: np.ndarray  # within the fixed columns
    slope_names: list
    covariance: str

    @property
    def term(self):
        return RandomEffectTerm(tuple(["(Intercept)"] + self.slope_names), self.covariance)


@dataclass
class MultiDesign:
    fixed_labels: list
    fixed_names: list
    fixed_positions: list
    columns: list
    factors: list  # in the user's order


def _entry_labels(X, entry):
    keys = entry if isinstance(entry, tuple) else (entry,)
    if not keys:
        raise ValueError("groups contains an empty tuple: an interaction needs columns.")
    return tuple(_design.resolve_column(X, k, "groups") for k in keys)


def _factor_values(X, labels):
    """A factor's values: its column, or the interaction of its columns."""
    if len(labels) == 1:
        return _design.column_values(X, labels[0])
    return pd.Series(_design.interaction([_design.column_values(X, c) for c in labels],
                                         labels))


def make_multi_design(X, *, groups, random_slopes, covariance, estimator_name,
                      exclude=()):
    """Resolve the factors, their slopes and the fixed columns (all but the factors' and
    ``exclude``'s: trials, offset); encode the factors."""
    if len(groups) == 0:
        raise ValueError(f"{estimator_name} needs at least one grouping factor in groups.")
    entries = [_entry_labels(X, e) for e in groups]
    names = [":".join(_design.column_name(c) for c in labs) for labs in entries]
    if len(set(names)) != len(names):
        raise ValueError(f"groups lists a factor twice: {names}.")
    if isinstance(random_slopes, dict):
        unknown = [k for k in random_slopes if k not in names and k not in groups]
        if unknown:
            raise ValueError(f"random_slopes names {unknown}, not factors in groups "
                             f"({names}).")
        slopes_by = {}
        for k, v in random_slopes.items():
            key = names[groups.index(k)] if k in groups else k
            slopes_by[key] = [v] if isinstance(v, (str, int, np.integer)) else list(v)
    elif random_slopes in ((), [], None):
        slopes_by = {}
    else:
        raise ValueError("with several grouping factors, random_slopes must be a dict "
                         "{factor name: [columns]} (e.g. {'g': ['x']}).")
    if isinstance(covariance, dict):
        unknown = [k for k in covariance if k not in names]
        if unknown:
            raise ValueError(f"covariance names {unknown}, not factors in groups ({names}).")
    cov_of = {nm: (covariance.get(nm, "unstructured") if isinstance(covariance, dict)
                   else covariance) for nm in names}
    grouping = {c for labs in entries for c in labs}
    for c in exclude:
        if c in grouping:
            raise ValueError(f"the column {c!r} is given as trials/offset and as a grouping "
                             "factor: a column has one role.")
    labels = list(X.columns) if isinstance(X, pd.DataFrame) else list(range(X.shape[1]))
    position = {c: i for i, c in enumerate(labels)}
    fixed_labels = [c for c in labels if c not in grouping and c not in set(exclude)]
    columns = _design.fixed_columns(X, fixed_labels)
    factors = []
    for labs, nm in zip(entries, names):
        slope_labels = [_design.resolve_column(X, s, "random_slopes")
                        for s in slopes_by.get(nm, [])]
        for s in slope_labels:
            if s in grouping:
                raise ValueError(f"the grouping column {s!r} cannot also be a random slope.")
        if len(set(slope_labels)) != len(slope_labels):
            raise ValueError(f"random_slopes of {nm!r} lists a column twice.")
        codes, levels = _design.encode_groups(_factor_values(X, labs), nm)
        factors.append(Factor(
            name=nm, labels=labs, positions=tuple(position[c] for c in labs),
            codes=np.asarray(codes, dtype=np.int64), levels=levels,
            slope_pos=np.array([fixed_labels.index(s) for s in slope_labels], dtype=np.int64),
            slope_names=[_design.column_name(s) for s in slope_labels], covariance=cov_of[nm]))
    return MultiDesign(fixed_labels=fixed_labels,
                       fixed_names=[_design.column_name(c) for c in fixed_labels],
                       fixed_positions=[position[c] for c in fixed_labels], columns=columns,
                       factors=factors)


def _drop_unused(factor, w, estimator_name):
    rows = np.bincount(factor.codes, weights=w, minlength=len(factor.levels))
    used = rows > 0
    if used.sum() < 2:
        raise ValueError(f"{estimator_name} needs at least 2 levels of each grouping factor "
                         f"with positive weight; {factor.name!r} has {int(used.sum())}.")
    if not used.all():
        factor.codes = (np.cumsum(used) - 1)[factor.codes]
        factor.levels = factor.levels[used]


def identical_factors(design, w):
    """Sets of the design's factors that split the rows (of positive weight) identically
    (:func:`~skmixed._estimators._identifiability.identical_factor_sets`)."""
    return _identifiability.identical_factor_sets([f.codes for f in design.factors], w)


def lme4_order(factors):
    """lme4's order of the random-effect terms: decreasing number of levels (stable)."""
    return sorted(range(len(factors)), key=lambda k: -len(factors[k].levels))


def fit_multi_lmm(design, y, w, *, reml, fit_intercept, n_threads, tol, max_iter,
                  estimator_name):
    """The fit: one pass to the cross-products, θ by the profiled deviance, results."""
    timings = {}
    t0 = time.perf_counter()
    weights, Xf, X, names, dropped, back = _prepared(design, y, w, fit_intercept,
                                                     estimator_name)
    _identifiability.check_levels_vs_observations(
        weights.sum(), [(f.name, len(f.levels), list(f.term.names), f.covariance)
                        for f in design.factors], estimator_name, weighted=bool(w.size))
    # fit → _fit_multi → here: the warning points at the caller of fit
    _identifiability.warn_identical(
        design.factors, identical_factors(design, weights), stacklevel=5)
    if reml and weights.sum() <= X.shape[1]:
        raise ValueError(f"REML needs more observations ({weights.sum():g}) than fixed "
                         f"effects ({X.shape[1]}).")
    order, cols = _elimination_order(design, Xf, back.scaling)
    stats = MultiCrossproducts.from_rows(X, y, weights, cols)
    timings["row_pass"] = time.perf_counter() - t0
    # intercept-only factors with a dense rest block: the exact-gradient fast path
    scalar = (all(c.term.q == 1 for c in cols)
              and stats.offsets[-1] - stats.offsets[1] <= multilevel.DENSE_LIMIT)
    objective = (ScalarFactorsDeviance if scalar else MultiProfiledDeviance)(stats, cols,
                                                                            reml=reml)
    t1 = time.perf_counter()
    if scalar:
        # the threads go to LAPACK's dense factorization and inverse; the Numba pair
        # kernels run serially beside them (threads in both pools fight for the two cores:
        # 1.0 s → 0.7 s on InstEval with 2 threads)
        with numba_threads(1):
            opt = minimize(objective, ThetaSpace([c.term for c in cols],
                                                 _moment_start(X, y, weights, cols)),
                           method="log-lbfgs", tol=tol, max_iter=max_iter,
                           blas_threads=n_threads)
    else:
        opt = minimize(FiniteDifferenceGradient(objective), ThetaSpace([c.term for c in cols]),
                       method="lbfgs-newton", tol=tol, max_iter=max_iter)
    timings["optimize"] = time.perf_counter() - t1
    with single_threaded_blas():
        state = objective.evaluate(opt.theta_final, keep=True)
        if not np.isfinite(state.deviance):
            raise ValueError("the profiled deviance is not finite at the optimum: the "
                             "response may be constant or perfectly fitted by the fixed "
                             "effects.")
        sigma2 = state.penalized_rss / objective.dof
        modes = objective.conditional_modes(state)
        beta, fixed_cov = back(state.beta, sigma2 * linalg.inv(state.S))
    # back to the user's factor order
    per_factor = [None] * len(order)
    theta_of = [None] * len(order)
    theta_internal_of = [None] * len(order)
    for pos, k in enumerate(order):
        a, b = objective.theta_slices[pos], objective.theta_slices[pos + 1]
        theta_internal_of[k] = opt.theta_final[a:b]
        theta_of[k], m, rel_cov = back.factor_to_original(
            design.factors[k], theta_internal_of[k], *modes[pos])
        per_factor[k] = (m, rel_cov)
    return dict(names=names, dropped=dropped, beta=beta, fixed_cov=fixed_cov,
                sigma=float(np.sqrt(sigma2)), theta_of=theta_of, modes=per_factor,
                theta_internal_of=theta_internal_of,
                cond_scale=sigma2, opt=opt, state=state, n_obs=stats.n,
                deviance=state.deviance + (back.reml_offset() if reml else 0.0),
                timings=timings)


def _moment_start(X, y, w, factors):
    """A start for θ of intercept-only factors: per factor, the variance of its levels'
    mean residuals (y after least squares on X) less their sampling share, over the
    smallest within-level residual variance (σ²), each at least 0.1 σ. One pass of
    bincounts; on InstEval it saves a quarter of the evaluations from θ = 1."""
    beta = np.linalg.lstsq(X * np.sqrt(w)[:, None], y * np.sqrt(w), rcond=None)[0]
    r = y - X @ beta
    between, within = [], []
    for f in factors:
        cnt = np.bincount(f.codes, weights=w, minlength=f.n_levels)
        seen = cnt > 0
        means = np.bincount(f.codes, weights=w * r, minlength=f.n_levels) / np.where(seen,
                                                                                  cnt, 1)
        dev = r - means[f.codes]
        within.append(float(w @ (dev * dev)) / max(float(w.sum()) - seen.sum(), 1.0))
        between.append(float(np.var(means[seen])) - within[-1] * float(np.mean(1 / cnt[seen])))
    s2 = max(min(within), 1e-300)
    return np.sqrt(np.maximum(np.array(between), 0.01 * s2) / s2)


def _prepared(design, y, w, fit_intercept, estimator_name):
    """The fixed-effect block on the internal columns (intercept first, centred and scaled
    by :class:`~skmixed._model.scaling.ColumnScaling`, collinear columns dropped), the
    names, and the map of the estimates back (``to_original(beta, cov)``)."""
    n = y.shape[0]
    _design.check_finite_columns(design.columns, design.fixed_labels, y)
    weights = w if w.size else np.ones(n)
    for f in design.factors:
        _drop_unused(f, weights, estimator_name)
    Xf = np.column_stack(design.columns) if design.columns else np.empty((n, 0))
    slopes = sorted({int(j) for f in design.factors for j in f.slope_pos})
    scaling = ColumnScaling.from_columns(design.columns, intercept=fit_intercept,
                                         slope_pos=slopes)
    X = np.column_stack([np.ones(n), Xf]) if fit_intercept else Xf.copy()
    scaling.transform(X, first=int(fit_intercept))
    names = (["(Intercept)"] if fit_intercept else []) + list(design.fixed_names)
    XtX = (X * weights[:, None]).T @ X
    kept, dropped = independent_fixed_columns(XtX, names, stacklevel=6)
    return (weights, Xf, np.ascontiguousarray(X[:, kept]), [names[j] for j in kept], dropped,
            BackTransform(scaling, kept))


@dataclass
class BackTransform:
    """The fixed effects of the internal columns mapped back to the user's."""
    scaling: ColumnScaling
    kept: list

    def __call__(self, beta, cov):
        return self.scaling.to_original(beta, cov, self.kept)

    def result(self, r, term, slope_pos):
        """A one-factor fit's result dict with ``beta``, ``fixed_cov``, the optimizer's
        final point ``opt.theta_final = (β, θ)``, the modes and their conditional variances
        on the user's columns (``term``: the random-effect term, its slopes on the fixed
        columns ``slope_pos``); the fit's own θ stays in ``theta_internal``."""
        p = len(r["beta"])
        r["beta"], r["fixed_cov"] = self(r["beta"], r["fixed_cov"])
        x = r["opt"].theta_final
        r["theta_internal"] = x[p:].copy()
        theta, r["modes"], r["cond_var"] = self.scaling.term_to_original(
            slope_pos, term.rows, x[p:], r["modes"], r["cond_var"])
        r["opt"].theta_final = np.concatenate([r["beta"], theta])
        return r

    def factor_to_original(self, factor, theta, modes, rel_cov):
        """One factor's θ, modes and relative conditional covariances (G, q, q) of a
        several-factor fit on the user's columns."""
        d = self.scaling.slope_factors(factor.slope_pos)
        theta, modes, _ = self.scaling.term_to_original(factor.slope_pos, factor.term.rows,
                                                        theta, modes)
        return theta, modes, rel_cov * d[:, None] * d[None, :]

    def reml_offset(self):
        return self.scaling.reml_offset(self.kept)


def _elimination_order(design, Xf, scaling):
    """The factors as FactorColumns, the one with most random-effect columns first; slope
    columns on the internal scale of ``scaling``."""
    n = Xf.shape[0]
    order = sorted(range(len(design.factors)),
                   key=lambda k: -len(design.factors[k].levels) * design.factors[k].term.q)
    cols = []
    for k in order:
        f = design.factors[k]
        z = np.column_stack([np.ones(n)] + [Xf[:, j] / scaling.scale[j] for j in f.slope_pos])
        cols.append(FactorColumns(f.codes, len(f.levels), z, f.term))
    return order, cols


def fit_multi_glmm(design, y, w, m, offset, *, family, fit_intercept, tol, max_iter,
                   estimator_name):
    """Binomial (logit), Poisson or negative binomial (log) GLMM with several factors by
    the Laplace approximation (:class:`~skmixed._model.multilevel_glmm.MultiLaplace`);
    start β from the GLM without random effects, θ = 1 (lme4's), the family's parameter
    from the GLM's residuals."""
    t0 = time.perf_counter()
    weights, Xf, X, names, dropped, back = _prepared(design, y, w, fit_intercept,
                                                     estimator_name)
    order, cols = _elimination_order(design, Xf, back.scaling)
    lap = MultiLaplace(X, y, m, offset, weights, cols, family)
    beta0 = glm_start(X, y, m, offset, weights, family)
    extra0 = family_param_start(family, X, y, offset, weights, beta0)
    theta0 = np.concatenate([c.term.theta_start() for c in cols])
    opt = lap.fit(theta0, beta0, max_iter=max_iter, extra0=extra0)
    x = opt.theta_final.copy()
    thetas, beta = lap.split(x)
    fixed_cov = fixed_covariance(opt.hessian, slice(lap.n_theta, lap.n_theta + beta.size))
    u, eta, system = lap.modes(x)  # (at x's parameter: split set it)
    deviance = lap.laplace_deviance(eta, u, system)
    blocks = system.inverse_diagonal_blocks(cols)
    modes, start = [None] * len(order), 0
    theta_of, theta_internal_of = [None] * len(order), [None] * len(order)
    for pos, k in enumerate(order):
        c = cols[pos]
        T = c.term.factor(thetas[pos])
        q, G = c.term.q, c.n_levels
        uk = u[start:start + G * q].reshape(G, q)
        theta_internal_of[k] = thetas[pos]
        theta_of[k], mk, rel_cov = back.factor_to_original(
            design.factors[k], thetas[pos], uk @ T.T, T[None] @ blocks[pos] @ T.T[None])
        modes[k] = (mk, rel_cov)
        start += G * q
    beta, fixed_cov = back(beta, fixed_cov)
    return dict(names=names, dropped=dropped, beta=beta, fixed_cov=fixed_cov, sigma=1.0,
                theta_of=theta_of, theta_internal_of=theta_internal_of, modes=modes,
                cond_scale=1.0, opt=opt, deviance=deviance,
                dispersion=lap.fpar if lap.n_extra else None,
                n_obs=float(weights.sum()), eta=eta,
                timings={"total": time.perf_counter() - t0})


def glm_start(X, y, m, offset, w, family):
    """β of the GLM without random effects (:func:`~skmixed._model.glmm.fit_fixed_glm` on
    the rows as one block; ``m``, ``offset``, ``w`` may be empty: 0/1 y, no offset, unit
    weights; ``family``: a :class:`~skmixed.families.Family`)."""
    n = y.shape[0]
    rows = GroupedRows(np.asfortranarray(X, dtype=float), np.array([-1], dtype=np.int64),
                       np.ascontiguousarray(y, dtype=float), np.asarray(m, dtype=float),
                       np.asarray(offset, dtype=float), np.asarray(w, dtype=float),
                       np.array([0, n], dtype=np.int64))
    return fit_fixed_glm(family, rows, 1, fpar=family.glm_fpar)


def multi_random_part(design, result):
    """theta_ (lme4's order), the variance components and the random-effects table."""
    sigma = result["sigma"]
    vc_rows, re_tables, thetas = [], [], []
    for k in lme4_order(design.factors):
        f = design.factors[k]
        term = f.term
        theta = term.canonical(result["theta_of"][k])
        thetas.append(theta)
        T = term.factor(theta)
        vc = variance_components_table(f.name, list(term.names), f.covariance, T @ T.T, sigma)
        vc_rows.append(vc[vc["group"] != "Residual"])
        modes, rel_cov = result["modes"][k]
        re_tables.append(random_effects_table(
            f.name, f.levels, list(term.names), modes,
            result["cond_scale"] * np.diagonal(rel_cov, axis1=1, axis2=2)))
    vc_rows.append(pd.DataFrame([("Residual", None, None, sigma ** 2, sigma)],
                                columns=["group", "var1", "var2", "variance", "sd_cor"]))
    return (np.concatenate(thetas), pd.concat(vc_rows, ignore_index=True),
            pd.concat(re_tables, ignore_index=True))


def multi_random_effects(design, X_table, fitted_on_frame, modes, Xf):
    """Σ over the factors of the rows' random effects (0 for levels not seen in fit)."""
    total = np.zeros(_design.n_rows(X_table))
    for f, m in zip(design.factors, modes):
        if isinstance(X_table, pd.DataFrame) and fitted_on_frame:
            missing = [c for c in f.labels if c not in X_table.columns]
            if missing:
                raise ValueError(f"X lacks the column(s) {missing} seen in fit.")
            labels = f.labels
        elif isinstance(X_table, pd.DataFrame):
            labels = tuple(X_table.columns[p] for p in f.positions)
        else:
            labels = f.positions
        codes = _design.lookup_groups(_factor_values(X_table, labels), f.levels, f.name)
        seen = codes >= 0
        b = m[np.where(seen, codes, 0)]
        b[~seen] = 0.0
        total += b[:, 0]
        for a, pos in enumerate(f.slope_pos, start=1):
            total += b[:, a] * Xf[:, pos]
    return total
