"""The inference methods of the fitted estimators as tables: confidence intervals (Wald,
profile, parametric bootstrap), t tests of the fixed effects with Satterthwaite's degrees
of freedom, likelihood-ratio tests between nested models ([`anova`][skmixed.anova]), and R's way of
printing p-values. The computations are `skmixed._model.lmm_inference`'s."""

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.utils.validation import check_is_fitted

from ..exceptions import ApproximationWarning, RefitMLWarning
from . import _design
from ._rprint import format_pval

__all__ = ["anova", "format_p_value", "BootstrapResult", "DDF_METHODS", "check_fitted_data"]

#: lmerTest's names of the denominator-df methods, by lower-case key
DDF_METHODS = {"satterthwaite": "Satterthwaite", "kenward-roger": "Kenward-Roger",
               "asymptotic": "asymptotic"}

def format_p_value(p, digits=3):
    """p-values as R's ``format.pval`` prints them in coefficient tables (``printCoefmat``
    of lme4's and mgcv's summaries, ``digits`` significant digits): a scalar gives a string,
    an array the list of strings formatted together — those below ``.Machine$double.eps``
    as ``< 2e-16``, or ``<2e-16`` when the others are at most 6 characters wide, exactly
    as R spaces it."""
    if np.ndim(p) == 0:
        return format_pval([p], digits)[0]
    return format_pval(p, digits)


def inference_of(model, what):
    """The fitted LMM's kept statistics, or a clear error naming why there are none."""
    check_is_fitted(model)
    inf = getattr(model, "_inference", None)
    if inf is None:
        raise ValueError(f"{what} needs the fit's sufficient statistics, which this fit "
                         "does not keep (solver='iterative', or a model fitted before "
                         "they were kept); refit with solver='exact'.")
    return inf


def ddf_key(ddf):
    key = str(ddf).lower().replace("_", "-").replace(" ", "-")
    if key == "kr":
        key = "kenward-roger"
    if key not in DDF_METHODS:
        raise ValueError(f"ddf={ddf!r}: choose 'Satterthwaite', 'Kenward-Roger' or "
                         "'asymptotic'.")
    return key


def fixed_effects_test(model, ddf):
    """The fixed effects' t tests (lmerTest's ``summary(m, ddf = ...)`` table)."""
    check_is_fitted(model)
    key = ddf_key(ddf)
    table = model.fixed_effects_
    if key == "asymptotic":
        return table.copy()
    inf = inference_of(model, f"ddf={ddf!r}")
    L = np.eye(len(inf.names))
    if key == "satterthwaite":
        est, se, df = inf.satterthwaite(L)
    else:
        est, se, df = inf.kenward_roger(L)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = est / se
    frame = pd.DataFrame({"estimate": est, "std_error": se, "df": df, "t": t,
                          "p_value": 2.0 * stats.t.sf(np.abs(t), df)},
                         index=pd.Index(inf.names, name="term"))
    frame.attrs["ddf"] = DDF_METHODS[key]
    return frame


def _check_level(level):
    if not (isinstance(level, (int, float, np.floating)) and 0 < level < 1):
        raise ValueError(f"level={level!r}: a confidence level strictly between 0 and 1.")
    return float(level)


def _interval_frame(rows, level):
    names = list(rows)
    data = np.array([rows[k] for k in names], dtype=float).reshape(len(names), 3)
    frame = pd.DataFrame(data, columns=["estimate", "lower", "upper"],
                         index=pd.Index(names, name="parameter"))
    frame.attrs["level"] = level
    return frame


def _select(names, parm):
    if parm is None:
        return None
    if isinstance(parm, (float, np.floating)):
        raise ValueError(f"parm={parm!r}: parameter names; the confidence level is "
                         f"level={parm!r}.")
    wanted = [parm] if isinstance(parm, str) else list(parm)
    unknown = [p for p in wanted if p not in names]
    if unknown:
        raise ValueError(f"parm: unknown parameter(s) {unknown}; the parameters are "
                         f"{names}.")
    return wanted


def confint(model, parm, level, method, n_boot, random_state, n_jobs, progress, X=None):
    """lme4's ``confint``: a DataFrame indexed by parameter (variance parameters first, as
    lme4's ``oldNames = FALSE`` names them, then the fixed effects) with the estimate and
    the interval's ``lower`` and ``upper`` ends; ``attrs["level"]``."""
    level = _check_level(level)
    method = str(method).lower()
    if method not in ("wald", "profile", "bootstrap", "boot"):
        raise ValueError(f"method={method!r}: choose 'profile', 'wald' or 'bootstrap'.")
    if method in ("bootstrap", "boot"):
        boot = bootstrap(model, n_boot, random_state, n_jobs, progress, X)
        return boot.confint(level, parm)
    if method == "wald":
        return _wald(model, parm, level, with_sigma=True)
    inf = inference_of(model, f"confint(method={method!r})")
    vnames = inf.vmap.names()
    names = vnames + list(inf.names)
    which = _select(names, parm)
    rows = inf.profile_intervals(level, which)
    est = fitted_values(inf)
    rows = {k: (est[k],) + tuple(rows[k][1:]) for k in (which or names) if k in rows}
    return _interval_frame(rows, level)


def fitted_values(inf):
    """The fit's variance parameters and fixed effects by confint's names (the REML ones
    for a REML fit, whatever the intervals are computed from)."""
    objective, sigma, state = inf.state()
    values = np.concatenate([inf.vmap.to_user(inf.theta, sigma), inf.A @ state.beta + inf.c])
    return pd.Series(values, index=inf.vmap.names() + list(inf.names))


@dataclass
class BootstrapResult:
    """A parametric bootstrap (lme4's ``bootMer``, MixedModels.jl's
    ``parametricbootstrap``).

    Attributes
    ----------
    replicates : pandas.DataFrame
        One row per replicate, one column per parameter (variance parameters then fixed
        effects, the names of ``confint``); NaN rows for replicates whose fit failed.
    estimates : pandas.Series
        The fitted model's values of the same parameters.
    n_failed : int
    random_state : int or None
    """

    replicates: pd.DataFrame
    estimates: pd.Series
    n_failed: int
    random_state: object = None

    def confint(self, level=0.95, parm=None):
        """Percentile intervals (lme4's ``boot.type = "perc"``) over the replicates that
        succeeded; a DataFrame as [`MixedLM.confint`][skmixed.MixedLM.confint]'s."""
        level = _check_level(level)
        which = _select(list(self.replicates.columns), parm) or list(self.replicates.columns)
        reps = self.replicates[which].dropna()
        lo, hi = np.quantile(reps.to_numpy(), [0.5 - level / 2, 0.5 + level / 2], axis=0)
        rows = {k: (self.estimates[k], a, b) for k, a, b in zip(which, lo, hi)}
        return _interval_frame(rows, level)


def _seeds(n_boot, random_state):
    if not (isinstance(n_boot, (int, np.integer)) and not isinstance(n_boot, bool)
            and n_boot >= 1):
        raise ValueError(f"n_boot={n_boot!r}: a positive number of replicates.")
    if isinstance(random_state, np.random.Generator):  # its next draw seeds the streams
        random_state = int(random_state.integers(2 ** 63))
    if random_state is None or isinstance(random_state, (int, np.integer)):
        return np.random.SeedSequence(random_state).spawn(int(n_boot))
    raise ValueError("random_state: an int, None or a numpy Generator — each replicate "
                     "draws from its own stream of numpy's SeedSequence(random_state); a "
                     "legacy RandomState is not used.")


def _quiet_fit(model, X, y, n_jobs=None):
    """A clone of ``model`` fitted to (X, y), its warnings (singular fits at the boundary,
    expected in a bootstrap) silenced; None when the fit fails."""
    from sklearn.base import clone
    from sklearn.exceptions import ConvergenceWarning

    from ..exceptions import SingularFitWarning
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SingularFitWarning)
        warnings.simplefilter("ignore", ConvergenceWarning)
        try:
            params = {} if n_jobs is None else {"n_jobs": n_jobs}
            return clone(model).set_params(**params).fit(X, y)
        except (ValueError, np.linalg.LinAlgError, FloatingPointError):
            return None


def _check_rows(model, X):
    """The rows of X are the fit's, as far as a model without its rows can tell: their
    number, and every grouping factor's levels (a subset or relabelled groups refused)."""
    key = model._data_key
    X_table, Xf = model._fixed_rows(X)
    n = _design.n_rows(X_table)
    if key is not None and n != key[1]:
        raise ValueError(f"X has {n} rows; the model was fitted to {key[1]}: pass the X it "
                         "was fitted to.")
    for f in model._design.factors:
        values, label, _ = model._factor_rows(X_table, Xf, f)
        seen = _design.lookup_groups(values, f.levels, label)
        if np.any(seen < 0) or np.any(np.bincount(seen, minlength=len(f.levels)) == 0):
            raise ValueError(f"X's levels of {f.name!r} are not the fit's: pass the X the "
                             "model was fitted to.")


def check_fitted_data(model, X, y, sample_weight=None):
    """X, y (and sample_weight) are the data the model was fitted to, as far as a fitted
    model (which keeps no rows) can tell: both or neither given, as many weights as rows,
    the fingerprint of y with the sum of the weights (number, sum and a sample of the
    responses, in order), the rows of X and every grouping factor's levels. Returns whether
    data were given; raises ValueError naming what differs."""
    if X is None and y is None:
        if sample_weight is not None:
            raise ValueError("sample_weight without X and y: pass the data the model was "
                             "fitted to as X, y (and sample_weight).")
        return False
    if X is None or y is None:
        raise ValueError(f"pass both X and y (the data the model was fitted to), not only "
                         f"{'X' if y is None else 'y'}.")
    n = len(y)
    if sample_weight is None:
        n_obs = float(n)
    else:
        w = np.asarray(sample_weight, dtype=float)
        if w.shape != (n,):
            raise ValueError(f"sample_weight has shape {w.shape}; y has {n} rows.")
        n_obs = float(w.sum())
    key = model._data_key
    if key is not None and _design.data_key(y, n_obs) != key:
        raise ValueError(f"y (with {n} rows, {n_obs:g} observations) is not the response the "
                         f"model was fitted to ({key[1]} rows, {key[0]:g} observations): "
                         "other rows, another order or other weights. Pass X, y and "
                         "sample_weight as given to fit.")
    _check_rows(model, X)
    return True


def _check_unweighted(model):
    key = model._data_key
    if key is None or key[0] != key[1]:
        raise ValueError("the bootstrap from rows refits unweighted rows; this model was "
                         "fitted with sample weights (or out of core), which it does not "
                         "reproduce.")


def bootstrap(model, n_boot, random_state, n_jobs, progress, X=None):
    """``n_boot`` replicates simulated from the fitted model and refitted; replicate k
    draws from its own stream of ``SeedSequence(random_state)``, so results do not depend
    on ``n_jobs``. A one-factor MixedLM draws its sums (module docstring of
    `skmixed._model.lmm_inference`); otherwise responses for the rows of ``X`` (the
    fit's data) are simulated (``simulate``) and a clone of the model refitted."""
    from tqdm.auto import tqdm

    from .._kernels.threads import blas_threads, numba_threads
    check_is_fitted(model)
    seeds = _seeds(n_boot, random_state)
    bar = dict(disable=not progress, desc="bootstrap", unit="fit")
    inf = getattr(model, "_inference", None)
    if type(model).__name__ == "MixedLM" and inf is not None and inf.kind == "one":
        names = inf.vmap.names() + list(inf.names)
        out = np.empty((int(n_boot), len(names)))
        with numba_threads(n_jobs), blas_threads(1):
            plan = inf.bootstrap_plan()
            for k in tqdm(range(int(n_boot)), **bar):
                out[k] = inf.bootstrap_replicate(plan, np.random.default_rng(seeds[k]))
        estimates = fitted_values(inf)
    else:
        if X is None:
            raise ValueError("this model's bootstrap simulates responses for its rows and "
                             "refits them (several grouping factors, or a MixedGLM): pass "
                             "the X it was fitted to, bootstrap(n_boot, X=X).")
        _check_unweighted(model)
        _check_rows(model, X)
        estimates = model.confint(method="wald")["estimate"]
        names = list(estimates.index)
        out = np.full((int(n_boot), len(names)), np.nan)
        for k in tqdm(range(int(n_boot)), **bar):
            y = model.simulate(X, 1, random_state=np.random.default_rng(seeds[k]))[:, 0]
            fit = _quiet_fit(model, X, y, n_jobs)
            if fit is not None and fit.converged_:
                vals = fit.confint(method="wald")["estimate"]
                out[k] = vals.reindex(names).to_numpy()
    reps = pd.DataFrame(out, columns=names)
    return BootstrapResult(reps, estimates, int(reps.isna().any(axis=1).sum()),
                           random_state)


# ------------------------------------------------------------------- model comparison
def _n_params(model):
    return int(model._n_params)


def _terms(model):
    """Fixed names and random terms {factor: (names, covariance)} of a fitted model."""
    random = {f.name: (set(f.term.names), f.term.covariance) for f in model._design.factors}
    return set(model.fixed_effects_.index), random


def _nested(small, big):
    fs, rs = _terms(small)
    fb, rb = _terms(big)
    if not fs <= fb:
        return False
    for name, (names, cov) in rs.items():
        if name not in rb:
            return False
        bnames, bcov = rb[name]
        if not names <= bnames or (cov == "unstructured" and bcov == "diagonal"
                                   and len(names) > 1):
            return False
    return True


def _same_kind(models):
    kinds = {type(m).__name__ for m in models}
    if len(kinds) > 1:
        raise ValueError(f"anova compares models of one kind; got {sorted(kinds)}.")
    if kinds == {"MixedGLM"}:
        fams = {(m.family, m._family().link) for m in models}
        if len(fams) > 1:
            raise ValueError(f"anova compares models of one family and link; got "
                             f"{sorted(fams)}.")


def _criterion(m, refit):
    """−2 log L as anova compares it: the ML deviance (a REML fit refitted by ML from its
    sums when ``refit``), else the fit's criterion."""
    if bool(getattr(m, "reml", False)):
        return (inference_of(m, "anova's ML refit").ml_fit()[3] if refit
                else m.reml_criterion_)
    return -2.0 * m.loglik_


def _bootstrap_lrt(small, big, data, refit, n_boot, random_state, progress):
    """Likelihood-ratio statistics of ``n_boot`` responses simulated from ``small`` (new
    random effects) for its rows, both models refitted (pbkrtest's ``PBmodcomp``)."""
    from tqdm.auto import tqdm
    seeds = _seeds(n_boot, random_state)
    X_small, X_big = data
    for m, rows in ((small, X_small), (big, X_big)):
        _check_unweighted(m)
        _check_rows(m, rows)
    stats_ = np.full(int(n_boot), np.nan)
    for k in tqdm(range(int(n_boot)), disable=not progress, desc="bootstrap LRT",
                  unit="pair"):
        y = small.simulate(X_small, 1, random_state=np.random.default_rng(seeds[k]))[:, 0]
        f0, f1 = _quiet_fit(small, X_small, y), _quiet_fit(big, X_big, y)
        if f0 is not None and f1 is not None:
            stats_[k] = max(_criterion(f0, refit) - _criterion(f1, refit), 0.0)
    return stats_


def anova(*models, refit=True, method="chisq", X=None, n_boot=1000, random_state=None,
          progress=False):
    """Likelihood-ratio tests between nested fitted models (lme4's ``anova(m0, m1, …)``).

    Parameters
    ----------
    *models : fitted MixedLM or MixedGLM (at least two), fitted to the same data
    refit : bool, default=True
        MixedLM fitted by REML are refitted by maximum likelihood from their sums first
        (a ``RefitMLWarning`` says so, as lme4's message): REML criteria of models with
        different fixed effects are not comparable. ``refit=False`` compares the REML
        criteria (only valid when the fixed effects are the same).

    Returns
    -------
    pandas.DataFrame
        One row per model, in increasing number of parameters: ``npar``, ``AIC``, ``BIC``,
        ``logLik``, ``deviance`` (−2 logLik), ``Chisq``, ``Df``, ``Pr(>Chisq)`` (each test
        against the previous row); with ``method="bootstrap"`` also ``Pr(boot)``
        (``attrs["bootstrap"]``: the replicates' statistics).

    Other Parameters
    ----------------
    method : {"chisq", "bootstrap"}, default="chisq"
        "bootstrap" (two models): the p-value of a parametric bootstrap (pbkrtest's
        ``PBmodcomp``) — responses simulated from the smaller model for its rows, both
        refitted, ``(1 + #{LRT* ≥ LRT}) / (1 + n)`` — for variance components on the
        boundary, where the χ² reference is conservative. Needs ``X=[X0, X1]``, the rows
        each model was fitted to (in the order given), ``n_boot``, ``random_state``.
    """
    if len(models) < 2:
        raise ValueError("anova needs at least two fitted models.")
    for k, m in enumerate(models):
        if type(m).__name__ not in ("MixedLM", "MixedGLM"):
            raise ValueError(f"anova: model {k + 1} is a {type(m).__name__}; it compares "
                             "MixedLM or MixedGLM fits.")
        check_is_fitted(m)
    _same_kind(models)
    keys = [m._data_key for m in models]
    if any(k is None for k in keys):
        sizes = [float(m.n_obs_) for m in models]
        if len(set(sizes)) > 1:
            raise ValueError("anova: the models were not all fitted to the same size of "
                             f"data (observations: {sizes}).")
        warnings.warn("anova: a model fitted out of core keeps no copy of its response; "
                      "only the number of observations was checked to be the same (as "
                      "lme4 checks).", UserWarning, stacklevel=2)
    elif any(k[:2] != keys[0][:2] for k in keys):
        raise ValueError("anova: the models were not all fitted to the same size of data "
                         f"(observations, rows: {[k[:2] for k in keys]}).")
    elif any(k != keys[0] for k in keys):
        raise ValueError("anova: the models were fitted to different responses (same size, "
                         "other values — or the same values in another row order).")
    reml_fits = {bool(getattr(m, "reml", False)) for m in models}
    if not refit and len(reml_fits) > 1:
        raise ValueError("anova(refit=False): some models were fitted by REML, some by ML; "
                         "their criteria are not comparable (refit=True refits the REML "
                         "ones by ML).")
    agq = {getattr(m, "n_agq", 1) for m in models}
    if len(agq) > 1:
        raise ValueError(f"anova: the models were fitted with different n_agq {sorted(agq)}: "
                         "their log-likelihoods are different approximations.")
    order = sorted(range(len(models)), key=lambda k: _n_params(models[k]))
    ms = [models[k] for k in order]
    for a, b in zip(ms[:-1], ms[1:]):
        if not _nested(a, b):
            raise ValueError(f"anova: the models are not nested: {a._formula()} is not a "
                             f"special case of {b._formula()} (its fixed effects and random "
                             "terms must be among the larger model's).")
    if method not in ("chisq", "bootstrap"):
        raise ValueError(f"method={method!r}: choose 'chisq' or 'bootstrap'.")
    if method == "bootstrap" and len(models) != 2:
        raise ValueError("anova(..., method='bootstrap') compares two models.")
    if method == "bootstrap" and (X is None or len(X) != 2):
        raise ValueError("anova(..., method='bootstrap') needs X=[X of the first model, X "
                         "of the second], the rows each was fitted to.")
    rows = []
    reml = [bool(getattr(m, "reml", False)) for m in ms]
    if refit and any(reml):
        warnings.warn("refitting model(s) with ML (instead of REML)", RefitMLWarning,
                      stacklevel=2)
    for m in ms:
        crit = _criterion(m, refit)
        k = _n_params(m)
        n = m.n_obs_
        rows.append((k, crit + 2 * k, crit + np.log(n) * k, -0.5 * crit, crit))
    frame = pd.DataFrame(rows, columns=["npar", "AIC", "BIC", "logLik", "deviance"],
                         index=pd.Index([f"model{k + 1}" for k in order], name="model"))
    dev = frame["deviance"].to_numpy()
    npar = frame["npar"].to_numpy()
    chisq = np.concatenate([[np.nan], np.maximum(dev[:-1] - dev[1:], 0.0)])
    ddf = np.concatenate([[np.nan], np.diff(npar)]).astype(float)
    with np.errstate(invalid="ignore"):
        p = np.where(ddf > 0, stats.chi2.sf(chisq, np.where(ddf > 0, ddf, 1)), np.nan)
    frame["Chisq"], frame["Df"], frame["Pr(>Chisq)"] = chisq, ddf, p
    frame.attrs["refit"] = bool(refit and any(reml))
    if method == "bootstrap":
        data = [X[k] for k in order]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RefitMLWarning)
            reps = _bootstrap_lrt(ms[0], ms[1], data, refit, n_boot, random_state,
                                  progress)
        ok = reps[np.isfinite(reps)]
        frame["Pr(boot)"] = [np.nan, (1.0 + np.sum(ok >= chisq[1] * (1 - 1e-12)))
                             / (1.0 + ok.size)]
        frame.attrs["bootstrap"] = reps
    return frame


# ------------------------------------------------------------------- GLMM
def _variance_map(model, with_sigma):
    """The variance parameters of a fitted model from its θ (user scale): SDs and
    correlations per factor in lme4's order (``theta_``'s: decreasing number of levels),
    and σ for a MixedLM."""
    from .._model.profiles import FactorMap, VarianceMap
    factors = sorted(model._design.factors, key=lambda f: -model.n_groups_[f.name])
    maps, start = [], 0
    for f in factors:
        k = f.term.n_theta
        maps.append(FactorMap(f.name, f.term, np.ones(f.term.q), start, start + k))
        start += k
    return VarianceMap(maps, start, with_sigma=with_sigma)


def glmm_profile(model, X, y, sample_weight, check_only=False):
    """The GLMMProfile of a fitted MixedGLM on its data (X, y again: checked to be the
    fit's, also by the deviance at the fitted estimates); ``prof.threads()`` the context
    its evaluations run in (the fit's)."""
    from contextlib import nullcontext

    from .._model.glmm import LaplaceDeviance, group_order
    from .._model.glmm_fit import grouped_rows
    from .._model.glmm_inference import GLMMProfile
    from .._model.multilevel_fit import laplace_threads, multi_laplace
    from .._model.profiles import FactorMap
    if model.n_agq == 0:
        raise ValueError("profiles need the Laplace or quadrature deviance; this model was "
                         "fitted with n_agq=0 (refit with n_agq=1).")
    if X is None or y is None:
        raise ValueError("a MixedGLM's profiles need the data the model was fitted to (a "
                         "fitted model keeps no copy of the rows); pass X, y (and "
                         "sample_weight) as given to fit.")
    several = len(model._design.factors) > 1
    if several:
        family, spec, y_num, w, extra_cols, _, _, once = model._multi_problem(
            X, y, sample_weight)
        if once and check_only:
            return None
        if once:
            raise ValueError("profiles of a model with identical grouping factors (fitted "
                             "as one) are not implemented; use method='wald'.")
    else:
        family, spec, y_num, w, extra_cols, _, _ = model._one_factor_problem(
            X, y, sample_weight)
    n_obs = float(w.sum()) if w.size else float(y_num.shape[0])
    if _design.data_key(y, n_obs) != model._data_key:
        raise ValueError("X, y (and sample_weight) are not the data the model was fitted to "
                         "(another number of observations or other responses).")
    if several:
        n = y_num.shape[0]
        objective, exact, _, kept_names, _, back, order, _, _ = multi_laplace(
            spec, y_num, w, extra_cols.get("trials", np.ones(n)),
            extra_cols.get("offset", np.zeros(n)), family=family,
            fit_intercept=model.fit_intercept)
        maps = [None] * len(order)
        for pos, k in enumerate(order):
            f = spec.factors[k]
            a, b = objective.theta_edges[pos], objective.theta_edges[pos + 1]
            maps[k] = FactorMap(f.name, f.term, back.scaling.slope_factors(f.slope_pos),
                                int(a), int(b))
        maps = sorted(maps, key=lambda fm: -model.n_groups_[fm.name])  # lme4's order
        value = objective.deviance

        def threads():
            return laplace_threads(objective, exact)
    else:
        factor = spec.factors[0]
        order, starts = group_order(np.asarray(factor.codes, dtype=np.int64),
                                    len(factor.levels))
        rows, kept_names, _, back = grouped_rows(spec, y_num, w, extra_cols, order, starts,
                                                 model.fit_intercept, stacklevel=4)
        objective = LaplaceDeviance(family, rows, factor.term, n_agq=model.n_agq)
        maps = [FactorMap(factor.name, factor.term,
                          back.scaling.slope_factors(factor.slope_pos), 0,
                          factor.term.n_theta)]
        value = objective.value
        threads = nullcontext
    if kept_names != list(model.fixed_effects_.index):
        raise ValueError(f"X's fixed effects {kept_names} are not the fit's "
                         f"{list(model.fixed_effects_.index)}: not the data the model was "
                         "fitted to.")
    prof = GLMMProfile(objective, maps, back.scaling.matrix(back.kept), kept_names,
                       model.fixed_effects_.loc[kept_names, "estimate"].to_numpy(),
                       np.asarray(model.theta_, dtype=float), beta_first=not several)
    prof.threads = threads
    # X too (trials, offset, groups, columns): the deviance at the fit's estimates is the
    # fit's on its own data
    with threads():
        dev = value(prof.x0)
    if not abs(dev - model.deviance_) <= 1e-6 * max(1.0, abs(model.deviance_)):
        raise ValueError(f"X, y (and sample_weight) are not the data the model was fitted "
                         f"to: the deviance at the fitted estimates is {dev:.10g} on them, "
                         f"{model.deviance_:.10g} in the fit.")
    return prof


def profile_traces(model, parm, level, n_points, X=None, y=None, sample_weight=None):
    """lme4's ``profile``: a long DataFrame (parameter, value, zeta)."""
    from .._kernels.threads import numba_threads
    check_is_fitted(model)
    level = _check_level(level)
    if not (isinstance(n_points, (int, np.integer)) and n_points >= 3):
        raise ValueError(f"n_points={n_points!r}: at least 3 points per parameter.")
    if type(model).__name__ == "MixedGLM":
        with numba_threads(model.n_jobs):
            prof = glmm_profile(model, X, y, sample_weight)
            names = prof.vmap.names() + prof.names
            with prof.threads():
                traces = prof.traces(level, _select(names, parm), n_points)
    else:
        inf = inference_of(model, "profile")
        names = inf.vmap.names() + list(inf.names)
        traces = inf.profile_traces(level, _select(names, parm), n_points)
    frame = pd.DataFrame({"parameter": np.concatenate([[nm] * len(v) for nm, v, _ in traces]),
                          "value": np.concatenate([v for _, v, _ in traces]),
                          "zeta": np.concatenate([z for _, _, z in traces])})
    frame.attrs["level"] = level
    return frame


def _wald(model, parm, level, with_sigma):
    """Wald intervals from the fit alone: estimate ± z·SE for the fixed effects, NaN for
    the variance parameters (lme4's)."""
    vmap = _variance_map(model, with_sigma)
    fx = model.fixed_effects_
    names = vmap.names() + list(fx.index)
    which = _select(names, parm)
    # θ is relative to σ (σ = 1 but for the Gamma's √φ); σ is a row of a MixedLM's
    values = vmap.to_user(np.asarray(model.theta_, dtype=float), model.sigma_)
    rows = {k: (v, np.nan, np.nan) for k, v in zip(vmap.names(), values)}
    z = stats.norm.ppf(0.5 + level / 2.0)
    for k in fx.index:
        e, se = fx.loc[k, "estimate"], fx.loc[k, "std_error"]
        rows[k] = (e, e - z * se, e + z * se)
    return _interval_frame({k: rows[k] for k in (which or names)}, level)


def glmm_confint(model, X, y, sample_weight, parm, level, method, n_boot=1000,
                 random_state=None, n_jobs=None, progress=False):
    """MixedGLM's ``confint``: Wald from the fit; profile from the rows (X, y again)."""
    from .._kernels.threads import numba_threads
    check_is_fitted(model)
    level = _check_level(level)
    method = str(method).lower()
    if method in ("bootstrap", "boot"):
        if X is not None and y is not None:  # check X (trials, offset, …) by the deviance
            with numba_threads(model.n_jobs):
                glmm_profile(model, X, y, sample_weight, check_only=True)
        return bootstrap(model, n_boot, random_state, n_jobs, progress, X).confint(level,
                                                                                  parm)
    if method not in ("wald", "profile"):
        raise ValueError(f"method={method!r}: choose 'profile', 'wald' or 'bootstrap'.")
    if method == "wald":
        return _wald(model, parm, level, with_sigma=False)
    vmap = _variance_map(model, with_sigma=False)
    fx = model.fixed_effects_
    names = vmap.names() + list(fx.index)
    which = _select(names, parm)
    est = dict(zip(vmap.names(), vmap.to_user(np.asarray(model.theta_, dtype=float),
                                              model.sigma_)))
    est.update(fx["estimate"].to_dict())
    with numba_threads(model.n_jobs):
        prof = glmm_profile(model, X, y, sample_weight)
        with prof.threads():
            rows = prof.intervals(level, which)
    rows = {k: (est[k],) + tuple(v[1:]) for k, v in rows.items()}
    return _interval_frame({k: rows[k] for k in (which or names) if k in rows}, level)


# ------------------------------------------------------------------- rows: simulate,
# residuals, prediction intervals
RANDOM_EFFECTS_SIM = ("new", "conditional", "none")


def as_generator(random_state):
    """numpy's Generator of ``random_state`` (None, an int or a Generator)."""
    if isinstance(random_state, np.random.RandomState):
        raise ValueError("random_state: an int, None or a numpy Generator "
                         "(numpy.random.default_rng); a legacy RandomState is not used.")
    return np.random.default_rng(random_state)


def simulated_linear_predictors(model, X, n_sims, random_effects, random_state,
                                extra=None):
    """``(n_samples, n_sims)`` linear predictors: Xβ (+ ``extra(X_table)``) plus random
    effects drawn per simulation — ``"new"``: every level of X from N(0, Σ) (lme4's
    ``use.u = FALSE``), ``"conditional"``: the conditional modes for levels seen in fit and
    new draws for the others (``use.u = TRUE``), ``"none"``: none."""
    if random_effects not in RANDOM_EFFECTS_SIM:
        raise ValueError(f"random_effects={random_effects!r}: choose 'new', 'conditional' "
                         "or 'none'.")
    if not (isinstance(n_sims, (int, np.integer)) and n_sims >= 1):
        raise ValueError(f"n_sims={n_sims!r}: a positive number of simulations.")
    rng = as_generator(random_state)
    X_table, Xf = model._fixed_rows(X)
    base = Xf @ model.coef_ + model.intercept_
    if extra is not None:
        base = base + extra(X_table)
    out = np.empty((base.shape[0], int(n_sims)))
    for s in range(int(n_sims)):
        out[:, s] = base
        if random_effects != "none":
            out[:, s] += model._random_effect_rows(
                X_table, Xf, draw=(rng, random_effects == "conditional"))
    return out, rng


def _fixed_rows_kept(model, Xf):
    """The rows' covariates of the kept fixed effects (``fixed_effects_``'s order)."""
    cols = [np.ones(Xf.shape[0]) if name == "(Intercept)"
            else Xf[:, model.fixed_feature_names_.index(name)]
            for name in model.fixed_effects_.index]
    return np.column_stack(cols) if cols else np.zeros((Xf.shape[0], 0))


def prediction_variances(model, X, random_effects, extra=None):
    """(the prediction on the link scale, the variance of its error, Σ z'Σz of a new
    group) per row. A one-factor MixedLM: exact for θ and σ fixed — the joint covariance
    of (β̂, b̂ − b) (`GaussianInference.prediction_covariances`); a group unseen in
    fit adds z'Σz. Otherwise x'C(β̂)x plus each factor's z'Vz with V the diagonal of the
    modes' conditional covariance (the covariances between β̂ and the modes, and between a
    group's random effects, left out)."""
    X_table, Xf = model._fixed_rows(X)
    eta = model._linear_predictor(X, random_effects, extra)
    Xk = _fixed_rows_kept(model, Xf)
    var_new, var_cond = model._random_effect_rows(X_table, Xf, variance=True,
                                                  conditional=random_effects)
    inf = getattr(model, "_inference", None)
    if random_effects and inf is not None and inf.kind == "one":
        C_bb_fixed, C_fb, C_bb = inf.prediction_covariances()
        f = model._design.factors[0]
        values, label, Z = model._factor_rows(X_table, Xf, f)
        seen = _design.lookup_groups(values, f.levels, label)
        g = np.where(seen >= 0, seen, 0)
        var = np.einsum("ia,ab,ib->i", Xk, C_bb_fixed, Xk)
        within = (2.0 * np.einsum("ia,iab,ib->i", Xk, C_fb[g], Z)
                  + np.einsum("ia,iab,ib->i", Z, C_bb[g], Z))
        var = var + np.where(seen >= 0, within, var_new)
        return eta, var, var_new
    var = np.einsum("ia,ab,ib->i", Xk, model.fixed_cov_, Xk)
    if random_effects:
        warnings.warn("prediction variances with random effects of a model with several "
                      "grouping factors, or of a MixedGLM, are approximate: the covariance "
                      "between the fixed effects and the modes (and between a group's "
                      "random effects) is left out, which can overstate the standard error "
                      "several-fold (e.g. with uncentred random-slope covariates); exact for "
                      "a one-factor MixedLM.", ApproximationWarning, stacklevel=3)
        var = var + var_cond
    return eta, var, var_new


def interval_frame(fit, lower, upper, level):
    frame = pd.DataFrame({"fit": fit, "lower": lower, "upper": upper})
    frame.attrs["level"] = level
    return frame
