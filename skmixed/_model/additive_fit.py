"""One additive mixed model fit, to one
`FitResult` on the user's columns: from the rows in memory
(`fit_rows`: exact or binned smooths; a Gaussian y by one REML fit, a binomial or
Poisson one by ``bam``'s performance iteration when binned, else by ``gam``'s
Laplace-approximate REML) or from basis-free bin tables summed over chunks or Dask
partitions (`fit_tables`, Gaussian).

The fit runs on centred, scaled parametric columns (`skmixed._model.scaling`, the
caller's `ColumnScaling`), on random-slope columns divided by
their power of ten (`slope_scale`) and on a Gaussian y minus a constant near its
values (`response_shift`); the result maps them back. Its ``extra`` holds what the
additive model alone reports:

* ``"smooths"``: per smooth ``edf``, ``ref_df``, ``statistic`` (mgcv's F when the
  family's scale is estimated, Gaussian, else its Chi.sq), ``p_value``, ``lambda`` and
  ``variance`` (arrays);
* ``"edf_total"``; ``"note"``, why a fit did not converge (or None);
* for prediction on the fit's internal columns: ``"reml_fit"`` (the
  `REMLFit`: coefficients, posterior covariance, group
  modes), ``"layout"`` (``p0`` kept parametric columns, per smooth its spline and
  constraint ``F``, ``R``, the null and range widths, and whether the smooths were
  binned), ``"kept"`` (the kept parametric columns' positions, intercept first) and
  ``"factors"`` (a `RandomLayout`: the grouping factors' levels, slopes' scales and how the
  fit holds them).
"""

import warnings
from dataclasses import dataclass

import numpy as np

from ..families import Family
from .additive import LOG_TAU_BOUNDS, DenseREML
from .additive_cross import (crossproducts_from_tables, discretize,
                             discretize_factor_smooth, discretize_margins, discretize_points)
from .._kernels.threads import single_threaded_blas
from .additive_pirls import laplace_reml, performance_iteration
from .additive_system import (AdditiveSystem, coefficient_width, null_positions,
                              penalized_blocks)
from .identifiability import check_residual_variation
from .optimize import OptSummary
from .result import FactorFit, FitResult
from .scaling import SAMPLE_ROWS, ColumnScaling
from .terms import RandomEffectTerm

__all__ = ["AdditiveSpec", "RandomLayout", "random_effects_system", "response_shift",
           "slope_scale", "smooth_bases", "row_bases",
           "fit_rows", "fit_tables"]


@dataclass(frozen=True)
class AdditiveSpec:
    """An additive mixed model apart from its data: ``family``, a
    [`Family`][skmixed.families.Family] (Gaussian, binomial logit, Poisson log, Gamma
    log or negative binomial log);
    ``fixed_names``, the parametric coefficients' names, the intercept first
    (before collinear ones are dropped); ``smooths``, per smooth its `SmoothTerm` (column
    label, basis dimension k, basis, a cyclic basis's ends); ``factors``, per grouping
    factor (crossed or nested, in the user's order) its name, the names of its random
    slopes and their covariance ("diagonal": lme4's ``(1 + x || g)``, "unstructured":
    ``(1 + x | g)``, one factor at most);
    ``tol`` and ``max_iter`` of the performance iteration; ``select``: mgcv's
    ``select = TRUE``, each smooth's null space penalized too (its own τ), so that a smooth
    can be removed entirely."""

    family: Family
    fit_intercept: bool
    fixed_names: tuple
    smooths: tuple = ()
    factors: tuple = ()
    tol: float = 1e-8
    max_iter: int = 100
    select: bool = False

    def term(self, i):
        """Factor i's random-effect term: intercept and slopes (independent, or
        correlated: its covariance)."""
        _, slopes, covariance = self.factors[i]
        return RandomEffectTerm(("(Intercept)",) + tuple(slopes), covariance)

    @property
    def correlated(self):
        """The factor with correlated random effects (covariance "unstructured"), or
        None."""
        hits = [i for i, f in enumerate(self.factors) if f[2] == "unstructured"]
        return hits[0] if hits else None


def response_shift(y, fit_intercept):
    """What a Gaussian fit subtracts from y: with an intercept, the mean of a strided sample
    of at most SAMPLE_ROWS values (as MixedLM centres y; any constant near y's values
    keeps the cross-products free of cancellation), so that y + 1e9 fits as y does; the
    REML criterion does not change and the constant is added back to the intercept. Without
    an intercept nothing can absorb it: 0 (y is fitted as it is, and the exact-fit check
    compares with Σ w y²)."""
    if not fit_intercept or not y.size:
        return 0.0
    return float(np.mean(y[::max(1, y.shape[0] // SAMPLE_ROWS)]))


def slope_scale(columns):
    """Each random-slope column's scale (the power of ten of its root mean square): the fit
    runs on the slopes ``x / s``, whose variance parameters do not depend on the user's
    unit."""
    return ColumnScaling.from_columns(columns, intercept=False,
                                      slope_pos=range(len(columns))).scale


def smooth_bases(spec, values, counts, indexes=None, by=None, binned=False):
    """Per smooth of ``spec``: its basis on the covariate's distinct (or binned)
    ``values`` with their summed weights ``counts``, sum-to-zero constrained (not when
    multiplied by a non-constant numeric ``by``, as mgcv) and split into the penalty's null
    and range spaces — a dict of ``label``, ``spline``, ``F``, ``R``, the basis at the
    values in null and range coordinates (``null``, ``range``) and ``by`` (the rows'
    multiplier: None, ``("num", values)`` or ``("fac", codes, level)``); with ``indexes``,
    each row's value (``index``). The copies of one smooth for the levels of a ``by``
    factor (one covariate: the same array of values) share one basis, constrained over all
    rows as mgcv's. ``binned``: the values are bins (`row_bases`' discrete fits). A
    factor-smooth interaction (``by[j]`` ``("fs", codes, n_levels)``) has one level's basis
    in ``range`` and ``levels``, the rows' level codes and the levels' count: its
    coefficients are the levels' in turn (`coefficient_width`)."""
    by = [None] * len(spec.smooths) if by is None else by
    bases, shared = [], {}
    for j, (term, v, cnt) in enumerate(zip(spec.smooths, values, counts)):
        # (a factor-smooth interaction is never constrained: its basis is its own)
        centred = by[j] is None or by[j][0] in ("fac", "fs") or _constant(by[j][1])
        key = (id(v), term.k, term.bs, term.ends, term.margins, centred)
        if key not in shared:
            # binned points of several covariates: centred by their plain mean, as bam
            options = dict(centre_points=True) if binned and np.ndim(v) == 2 else {}
            # small dense algebra (a thin-plate basis: the eigenvectors of ≤ 2,000 knots'
            # radial matrix), where BLAS threads beside Numba's cost more than they give
            with single_threaded_blas():
                spline = term.fit(v, weights=cnt, centred=centred, **options)
                F, R, _ = spline.mixed_parts()
            basis = spline.design(v)
            shared[key] = dict(spline=spline, null=basis @ F, range=basis @ R, F=F, R=R)
            if hasattr(spline, "range_penalties"):  # a tensor product: one per margin
                shared[key]["penalties"] = spline.range_penalties()
            if by[j] is not None and by[j][0] == "fs":  # mgcv's, over every level
                shared[key]["penalties"] = spline.penalties(by[j][2])
            if spec.select and F.shape[1]:
                shared[key] = _select_blocks(shared[key])
        bases.append(dict(shared[key], label=term.label, by=by[j]))
        if by[j] is not None and by[j][0] == "fs":  # the rows' levels, the levels' count
            bases[-1].update(by=None, levels=(by[j][1], by[j][2]))
        if indexes is not None:
            bases[-1]["index"] = indexes[j]
    return bases


def _select_blocks(basis):
    """mgcv's ``select = TRUE`` for one smooth: its null-space columns penalized too, with
    their own smoothing parameter, so they join the range columns as a second penalized
    block (``blocks``: the two widths) and the smooth has no fixed columns. mgcv's extra
    penalty is the projector on the penalty's null space in its coefficients, which are
    this basis's up to the constraint's orthogonal rotation (the same columns: tp's are
    scaled as mgcv's); with F orthonormal it is ``β'β`` on the null-space coefficients —
    already the identity of the mixed-model form."""
    return dict(basis, null=basis["null"][:, :0], F=basis["F"][:, :0],
                range=np.hstack([basis["range"], basis["null"]]),
                R=np.hstack([basis["R"], basis["F"]]),
                blocks=[basis["R"].shape[1], basis["F"].shape[1]])


def _constant(by_values):
    """mgcv's test of a numeric ``by`` that leaves the smooth's constraint in place (its
    sd at most 1000 ε × its mean: a constant multiplier)."""
    return not np.std(by_values, ddof=1) > np.mean(by_values) * np.finfo(float).eps * 1000


def row_bases(spec, columns, weights, discrete, n_bins, by=None):
    """`smooth_bases` from the smooths' covariate columns, each binned to at most
    ``n_bins`` values (`discretize`,
    ``bam(discrete = TRUE)``) or at its distinct values; ``by`` as `smooth_bases`'s. A
    column passed for several smooths (the levels of a ``by`` factor) is binned once; a
    factor level whose rows (of positive weight) hold one value (bin) of the covariate is
    a ValueError: its copy of the smooth has no shape."""
    by = [None] * len(columns) if by is None else by
    values, counts, indexes, done, spans = [], [], [], {}, {}
    for term, col, mult in zip(spec.smooths, columns, by):
        if mult is not None and mult[0] == "fs":  # binned with its factor, as bam's
            if mult[2] * term.k > MAX_DENSE_EFFECTS:
                raise ValueError(
                    f"the factor-smooth interaction {term.label!r} has {mult[2]:,} levels × "
                    f"k={term.k} = {mult[2] * term.k:,} coefficients, which the fit holds as "
                    f"dense penalized columns: at most {MAX_DENSE_EFFECTS:,} (use a smaller "
                    "k, or random intercepts and slopes by groups= and random_slopes=).")
            if discrete:
                v, index, cnt = discretize_factor_smooth(col, mult[1])
            else:
                v, index = np.unique(np.asarray(col, dtype=float), return_inverse=True)
                cnt = np.bincount(index, weights=weights, minlength=v.shape[0])
            values.append(v)
            indexes.append(np.asarray(index, dtype=np.int32).ravel())
            counts.append(cnt)
            continue
        if id(col) not in done:
            x = np.asarray(col, dtype=float)
            if x.ndim == 2 and discrete and term.margins is not None:
                # a tensor product: each margin binned as a smooth of one covariate (bam's
                # discrete method bins the margins separately), then the distinct points
                v, index = discretize_margins(x, n_bins)
            elif x.ndim == 2:  # a smooth of several covariates: bam's grid per covariate
                v, index = (discretize_points(x) if discrete
                            else np.unique(x, axis=0, return_inverse=True))
                index = np.asarray(index).ravel()
            else:
                v, index = (discretize(x, n_bins) if discrete
                            else np.unique(x, return_inverse=True))
            done[id(col)] = (v, index, np.bincount(index, weights=weights,
                                                   minlength=v.shape[0]))
        v, index, cnt = done[id(col)]
        if mult is not None and mult[0] == "fac":
            key = (id(col), id(mult[1]))
            if key not in spans:
                spans[key] = _level_spans(index, mult[1], weights)
            lo, hi = spans[key]
            if not hi[mult[2]] > lo[mult[2]]:
                value = v[index[np.argmax(np.asarray(mult[1]) == mult[2])]]
                raise ValueError(
                    f"the smooth of {term.label!r} by {term.by!r}: level {term.level!r} has a "
                    f"single {'bin' if discrete else 'value'} of {term.label!r} "
                    f"({np.round(value, 6).tolist()}), so its copy of the smooth has no shape "
                    "to estimate.")
        values.append(v)
        indexes.append(index)
        counts.append(cnt)
    return smooth_bases(spec, values, counts, indexes, by, binned=bool(discrete))


def _level_spans(index, codes, weights):
    """Per factor level the smallest and largest value index over its rows of positive
    weight (one grouped pass; a level without rows: (+big, −1))."""
    keep = np.asarray(weights) > 0
    index, codes = np.asarray(index)[keep], np.asarray(codes)[keep]
    n_levels = int(codes.max()) + 1 if codes.size else 0
    lo = np.full(n_levels, np.iinfo(np.int64).max)
    hi = np.full(n_levels, -1, dtype=np.int64)
    np.minimum.at(lo, codes, index)
    np.maximum.at(hi, codes, index)
    return lo, hi


#: the most random effects the factors besides the eliminated one may have in all (dense
#: penalized columns: an evaluation of the REML costs O(G q²); 1,000 of them beside 2,000
#: groups took 12 s at 200,000 rows, 3,000 beside 3,000 152 s and 1.2 GB in a review), and
#: the most entries of their table crossed with the eliminated factor's random effects
#: (G r × q, float64)
MAX_DENSE_EFFECTS = 2_000
MAX_CROSS_TABLE = 5e7


@dataclass
class RandomLayout:
    """How a fit holds its grouping factors (in the user's order): ``levels`` and the
    slopes' ``scales`` per factor; ``main``, the factor whose random effects the REML
    eliminates group by group (None: no factor); ``extras``, per penalized block after
    the smooths' its factor and term (0: intercept, a: slope a)."""

    levels: list
    scales: list
    main: int = None
    extras: tuple = ()


def random_effects_system(groups, correlated=None):
    """The factors' random effects as the fit holds them: ``groups`` per factor ``(codes,
    levels, slope columns)``. The factor with correlated random effects (``correlated``,
    its index) or else the one with the most random effects (levels × terms) is
    eliminated group by group (its q × q cost is then linear in its levels); every other
    factor's terms are indicator blocks among the penalized ones (cost cubic in their
    levels). Returns ``(RandomLayout, main codes, main levels count, main slope values,
    extras)`` for `AdditiveSystem` (slopes divided by their scale, `slope_scale`)."""
    # a correlated factor's slopes by the power of ten of their spread about the mean (its
    # fit centres them: x + 1e6 would otherwise be divided by 1e6)
    scales = [slope_scale([np.asarray(c, dtype=float) - np.mean(c) for c in slopes]
                          if i == correlated else slopes)
              for i, (_, _, slopes) in enumerate(groups)]
    values = [np.column_stack([np.asarray(c, dtype=float) / sc
                               for c, sc in zip(slopes, scale)]) if len(slopes) else None
              for (_, _, slopes), scale in zip(groups, scales)]
    layout = RandomLayout(levels=[lv for _, lv, _ in groups], scales=scales)
    if not groups:
        return layout, None, 0, None, []
    main = (int(np.argmax([len(lv) * (1 + len(sl)) for _, lv, sl in groups]))
            if correlated is None else correlated)
    extras, owners = [], []
    for i, (codes, levels, slopes) in enumerate(groups):
        if i == main:
            continue
        codes32 = np.asarray(codes, dtype=np.int32)
        for a in range(1 + len(slopes)):
            extras.append(dict(codes=codes32, G=len(levels),
                               mult=None if a == 0 else values[i][:, a - 1]))
            owners.append((i, a))
    layout.main, layout.extras = main, tuple(owners)
    codes, levels, slopes = groups[main]
    dense = sum(e["G"] for e in extras)
    eliminated = ("the factor with correlated slopes (eliminated group by group)"
                  if correlated is not None else "the largest (eliminated group by group)")
    if dense > MAX_DENSE_EFFECTS or dense * len(levels) * (1 + len(slopes)) > MAX_CROSS_TABLE:
        raise ValueError(
            f"the grouping factors other than {eliminated} have {dense:,} random "
            f"effects in all, which the fit holds as dense penalized columns (as mgcv's s(g, "
            f"bs = \"re\")), crossed with its {len(levels):,} groups: at most "
            f"{MAX_DENSE_EFFECTS:,} columns and {MAX_CROSS_TABLE:.0e} table entries (beyond, a "
            "fit takes minutes and gigabytes). Use fewer levels, or MixedLM (sparse crossed "
            "factors) for a model without smooths.")
    return layout, codes, len(levels), values[main], extras


def fit_rows(spec, X, y, weights, bases, *, discrete, scaling, kept, dropped, groups=()):
    """The fit from the rows: ``X`` the kept internal parametric columns (n × p0; ``kept``
    their positions among ``spec.fixed_names``, ``dropped`` the others' names), ``bases``
    from `row_bases`, ``groups`` per factor of ``spec.factors`` the rows' codes among its
    levels, the levels and its random-slope columns (user's units)."""
    family = spec.family
    n_coef = X.shape[1] + sum(b["null"].shape[1] + coefficient_width(b) for b in bases)
    if n_coef > X.shape[0]:
        raise ValueError(f"the model has {n_coef} coefficients (parametric and smooths') but "
                         f"the data have {X.shape[0]} rows: use smaller k (mgcv refuses "
                         "it too: more coefficients than data).")
    for (name, slope_names, _), (_, _, slopes) in zip(spec.factors, groups):
        for label, column in zip(slope_names, slopes):
            used = np.asarray(column, dtype=float)[np.asarray(weights) > 0]
            if used.size and np.ptp(used) == 0:  # a review: its SD came out arbitrary
                raise ValueError(f"the random slope {label!r} of {name!r} is constant "
                                 f"({used[0]:g}): its variance is not identified beside the "
                                 "random intercept's; drop it from random_slopes.")
    layout, codes, n_groups, slope_values, extras = random_effects_system(groups,
                                                                          spec.correlated)
    model = AdditiveSystem(X, bases, codes, n_groups, discrete, slope_values, extras,
                           unstructured=spec.correlated is not None)
    note = None
    if family.linear:  # one REML fit, on y minus a constant near it
        y_shift = response_shift(y, spec.fit_intercept)
        fit, converged, note = _gaussian_fit(model.reml(y - y_shift, weights), y_shift, spec)
        n_iter, n_evals, method = 1, _n_evals(fit), "L-BFGS-B + Newton"
    elif discrete or not family.canonical:
        # bam (binned: discrete = TRUE): performance iteration (PQL-type); a non-canonical
        # family (Gamma, negative binomial: log link; the dispersion estimated by each
        # working REML, the size at each step's means) always, as bam — gam(method =
        # "REML")'s Laplace REML serves the canonical links only
        def pql(newton):
            return performance_iteration(
                model.reml, model.linear_predictor, y, family.start_eta(y), weights=weights,
                family=family, tol=spec.tol, max_iter=spec.max_iter, newton=newton)

        newton = bool(discrete) and family.extended
        try:
            fit, _, n_iter, converged = pql(newton)
        except ValueError:  # the linear predictor ran off (a fitted mean at 0)
            if newton or not family.extended:
                raise
            fit, n_iter, converged = None, 0, False
        n_evals, method = n_iter, "performance iteration"
        if family.extended and not newton and not converged:
            # Fisher scoring diverged (an exact negative binomial fit: the size → 0 while η
            # ran off, where bam's converges); Newton steps (observed information, as
            # bam's discrete method takes) converge there, to other smoothing parameters
            # than bam's Fisher scoring would give
            fit, _, n_iter, converged = pql(True)
            n_evals, method = n_iter, "performance iteration (Newton weights)"
            warnings.warn("Fisher scoring (bam's exact method) diverged for this "
                          f"{family.label} model; fitted with Newton steps (observed "
                          "information, as bam(discrete = TRUE)): the smoothing parameters "
                          "may differ slightly from bam's.", UserWarning, stacklevel=4)
    else:  # gam(method = "REML"): the Laplace-approximate REML, outer iteration, from the
        # performance iteration's τ (from τ = 1 alone a nearly linear smooth's search could
        # end at λ = ∞, edf 1, where gam finds an interior optimum)
        eta0, log_tau0 = family.start_eta(y), None
        try:
            start = performance_iteration(model.reml, model.linear_predictor, y, eta0,
                                          weights=weights, family=family, tol=spec.tol,
                                          max_iter=spec.max_iter)
            eta0, log_tau0 = start[1], start[0].theta
        except ValueError:  # the PQL's linear predictor ran off: the Laplace REML's own start
            pass
        fit, _, n_evals, converged = laplace_reml(
            model.reml, model.linear_predictor, y, eta0, weights=weights, family=family,
            log_tau0=log_tau0)
        n_iter, method = fit.result.n_iter + 1, "L-BFGS-B (Laplace REML)"
    opt = _opt_summary(fit, method, n_iter, n_evals, converged, note)
    return _result(spec, fit, _layout(bases, X.shape[1], discrete), layout, scaling, kept,
                   dropped, opt, note)


def fit_tables(spec, tables, bases, *, levels, scaling, scales, y_shift, check_rank):
    """The Gaussian fit from `BinTables` (after
    ``finish``; y summed minus ``y_shift``; the slopes divided by ``scales``) and ``bases``
    from `smooth_bases` at their bin values. ``check_rank(XtX)`` returns ``(kept,
    dropped names)`` of the parametric columns from their cross-product (the caller's rank
    check, which warns)."""
    cross = crossproducts_from_tables(tables, [(b["null"], b["range"]) for b in bases])
    p0 = len(spec.fixed_names)
    kept, dropped = check_rank(cross.M[:p0, :p0])
    if len(kept) < p0:
        cross, p0 = cross.subset_fixed(kept), len(kept)
    layout = _layout(bases, p0, True)
    sizes, smooth_blocks, penalties = penalized_blocks(bases)
    reml = DenseREML.from_crossproducts(cross, sizes, null_positions(p0, layout["null_widths"]),
                                        smooth_blocks, penalties)
    fit, converged, note = _gaussian_fit(reml, y_shift, spec)
    opt = _opt_summary(fit, "L-BFGS-B + Newton", 1, _n_evals(fit), converged, note)
    factors = RandomLayout([levels], [scales], 0) if spec.factors else RandomLayout([], [])
    return _result(spec, fit, layout, factors, scaling, kept, dropped, opt, note)


def _gaussian_fit(reml, y_shift, spec):
    """The REML fit of a Gaussian model whose response is y − ``y_shift`` (the
    intercept's constant, added back), after `_check_residual_variation`. Returns
    ``(fit, converged, note)``: with a group's σ-relative SD at the upper bound of the
    search the residual variance is (numerically) 0 — y is an exact function of the fixed
    effects and the groups — and the fit is that bound's, not an estimate: not converged,
    ``note`` says so (MixedLM's optimizer reports a ConvergenceWarning on such a y)."""
    _check_residual_variation(reml)
    fit = reml.fit()
    if y_shift:
        fit.beta[0] += y_shift
    note = None
    # the random effects' τ: the further factors' blocks (after the smooths') and the groups'
    first = reml.extra_taus.start
    if np.any((fit.theta >= LOG_TAU_BOUNDS[1] - 1e-6)[first:] & reml.log_mask[first:]):
        names = ", ".join(repr(f[0]) for f in spec.factors)
        note = (f"the residual variance is (numerically) 0 next to the variance of the "
                f"{names} random effects: y is an exact function of the other terms "
                "and the groups, so the residual SD is the optimizer's bound (the random "
                f"effects' SD / e^{LOG_TAU_BOUNDS[1]:g}), not an estimate, and the variances "
                "are not identified.")
    elif not fit.result.converged:  # e.g. L-BFGS-B's line search on a criterion whose
        # rounding is above its steps (random effects' SDs ~1e3 times the residual SD)
        note = (f"the REML search stopped before its convergence test passed "
                f"({fit.result.message}): the fit may not be the optimum (it often is: the "
                "criterion's rounding can stop the search there). A residual SD far below "
                "the random effects' (a nearly exact fit) or correlated slopes of very "
                "different scales can stop it short: compare with covariance='diagonal', "
                "fewer correlated slopes, or MixedLM (no smooths), and prefer the fit with "
                "the lower reml_criterion_.")
    return fit, fit.result.converged and note is None, note


def _check_residual_variation(reml):
    """Refuse a y that the fixed part (parametric columns and the smooths' linear trends)
    fits exactly when there are smoothing parameters or group variances to estimate (a
    linear model alone may fit exactly): its least-squares residual sum of squares from the
    REML's cross-products, ``y'Wy − F'Wy' (F'WF)⁻¹ F'Wy`` (F'WF has full rank: DenseREML
    checks it), F's columns scaled to unit norm so that their scales stay out of the
    solve's rounding. With an intercept y'Wy is that of y minus `response_shift`'s
    constant, a scale that does not depend on y's origin."""
    if not reml.n_tau:
        return
    rss = reml.yy
    if reml.p:
        d = 1.0 / np.sqrt(np.diag(reml.FF))
        Fy = d * reml.Fy
        rss = reml.yy - Fy @ np.linalg.solve(d[:, None] * reml.FF * d[None, :], Fy)
    check_residual_variation(rss, reml.yy)


def _layout(bases, p0, discrete):
    """What prediction needs of the columns: the kept parametric count, per smooth its
    spline, constraint and null/range widths, and whether the smooths were binned."""
    return dict(p0=p0, bases=[dict(label=b["label"], spline=b["spline"], F=b["F"], R=b["R"])
                              for b in bases],
                by=[None if b.get("by") is None else b["by"][0] for b in bases],
                null_widths=[b["null"].shape[1] for b in bases],
                range_widths=[coefficient_width(b) for b in bases],
                levels=[b["levels"][1] if "levels" in b else None for b in bases],
                discrete=bool(discrete))


def _n_evals(fit):
    return int(fit.result.n_evals)


def _opt_summary(fit, method, n_iter, n_evals, converged, note):
    """The optimizer's record over τ (the σ-relative SDs: smooths, then the groups')."""
    tau = np.asarray(fit.tau, dtype=float)
    jac = fit.result.gradient
    return OptSummary(
        optimizer=method, theta_start=np.ones_like(tau), theta_final=tau.copy(),
        lower=np.full(tau.size, np.exp(LOG_TAU_BOUNDS[0])), fmin=float(fit.criterion),
        gradient=(np.asarray(jac, dtype=float) if jac is not None else np.zeros(tau.size)),
        decrement=np.nan, n_evals=int(n_evals), n_iter=int(n_iter),
        converged=bool(converged), message=note or fit.result.message)


def _result(spec, fit, layout, factors, scaling, kept, dropped, opt, note):
    """The `FitResult` of a REML fit on the internal columns (module docstring);
    ``factors``, a `RandomLayout`."""
    p0, J = layout["p0"], len(spec.smooths)
    beta, fixed_cov = scaling.to_original(fit.beta[:p0], fit.cov[:p0, :p0], kept)
    sigma = float(fit.sigma)
    ref_df, tests = fit.significance()
    scale_estimated = spec.family.scale_estimated
    blocks = fit.reml.smooth_blocks
    tau = fit.tau[[b[0] for b in blocks]]  # each smooth's range block (its main penalty)
    smooths = {"edf": fit.edf[:J], "ref_df": ref_df,
               "statistic": tests[:, 0] / (ref_df if scale_estimated else 1.0),
               "p_value": tests[:, 1], "lambda": 1.0 / tau ** 2,
               "variance": (sigma * tau) ** 2}
    reml = fit.reml
    # per smooth the τ of its range block (one; a tensor product's margins) and the rest
    # (select=True: its null space's)
    main = [[t for t in b if reml.tau_block[t] == reml.tau_block[b[0]]] for b in blocks]
    rest = [[t for t in b if t not in m] for b, m in zip(blocks, main)]
    tensor = [reml.penalties[reml.tau_block[b[0]]] is not None for b in blocks]
    if any(tensor):  # a tensor product: one λ per margin (the first is "lambda")
        smooths["variance"] = np.where(tensor, np.nan, smooths["variance"])
        smooths["lambda_margins"] = [tuple(1.0 / fit.tau[m] ** 2) if t else None
                                     for m, t in zip(main, tensor)]
    if spec.select:  # the null-space penalty's λ (none: a smooth without a null space)
        smooths["lambda_null"] = np.array([1.0 / fit.tau[r[0]] ** 2 if r else np.nan
                                           for r in rest])
    fits = _factor_fits(spec, fit, factors)
    kept = [int(j) for j in kept]
    return FitResult(
        names=[spec.fixed_names[j] for j in kept], beta=beta, fixed_cov=fixed_cov,
        dropped=list(dropped), factors=fits, sigma=sigma,
        criterion=float(fit.criterion) + scaling.reml_offset(kept),
        # β (parametric and the smooths' null spaces), the τ, and σ when estimated
        n_params=int(fit.beta.size + fit.tau.size + scale_estimated), n_obs=float(fit.reml.n),
        opt=opt,
        extra=dict(smooths=smooths, edf_total=float(fit.edf_total), note=note,
                   fpar=float(fit.fpar),
                   reml_fit=fit, layout=layout, kept=kept, factors=factors))


def _factor_fits(spec, fit, factors):
    """Per grouping factor (the user's order) its `FactorFit`: the eliminated factor's
    from the REML's groups, the others' from their penalized blocks (modes b = Λu,
    conditional variances from the posterior covariance). The internal slopes are x / s:
    θ and modes × 1/s, conditional variances × 1/s²."""
    reml = fit.reml
    J = reml.n_smooth_tau  # the eliminated factor's τ come after every block's
    theta, modes, cond_var = {}, {}, {}
    if factors.main is not None:
        theta[factors.main] = fit.tau[J:]
        modes[factors.main] = fit.group
        cond_var[factors.main] = np.diagonal(fit.group_cov[1], axis1=1, axis2=2)
    starts, p = reml.block_starts, fit.beta.size
    for t, k, (i, a) in zip(reml.extra_taus, reml.extra_blocks, factors.extras):
        G, m = len(factors.levels[i]), 1 + len(spec.factors[i][1])
        if i not in theta:
            theta[i], modes[i], cond_var[i] = np.empty(m), np.empty((G, m)), np.empty((G, m))
        rng = np.arange(starts[k], starts[k + 1])
        theta[i][a] = fit.tau[t]
        modes[i][:, a] = fit.b[rng]
        cond_var[i][:, a] = np.diag(fit.cov)[p + rng]
    out = []
    for i, (name, _, _) in enumerate(spec.factors):
        d = np.concatenate([[1.0], 1.0 / np.asarray(factors.scales[i], dtype=float)])
        term = spec.term(i)
        # θ: T's entries (lme4's order within the term), row a × 1/s_a
        out.append(FactorFit(name=name, levels=factors.levels[i], term=term,
                             theta=theta[i] * d[term.rows], theta_internal=theta[i].copy(),
                             modes=modes[i] * d, cond_var=cond_var[i] * d * d))
    return out
