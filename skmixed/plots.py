"""Diagnostic plots of fitted mixed models (matplotlib: the ``plot`` extra), as lme4 users
draw them: residuals against fitted values (``plot(m)``), a normal QQ plot of the
conditional modes (``qqmath(ranef(m))``), a caterpillar plot of the modes with intervals
(``dotplot(ranef(m, condVar = TRUE))``), profile traces (``xyplot(profile(m))``) and the
bootstrap replicates' distributions.

Every function draws on ``ax`` (or new axes) and returns the axes (a list for the
one-panel-per-parameter plots); every panel has axis labels and a title, and its reference
lines (zero, the fitted value, ζ = ±z) are in a legend.
"""

import numpy as np
from scipy import stats

__all__ = ["plot_residuals", "plot_qq", "plot_caterpillar", "plot_profile",
           "plot_bootstrap"]


def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:  # the plot extra
        raise ImportError("skmixed.plots needs matplotlib: pip install 'skmixed[plot]'") \
            from exc
    return plt


def _axes(ax):
    return _pyplot().subplots(layout="constrained")[1] if ax is None else ax


def _panels(n, axes, title):
    """``n`` axes: the caller's, or a new grid of up to 3 columns titled ``title`` (spare
    cells removed)."""
    if axes is not None:
        return np.ravel(axes)[:n]
    cols = min(3, n)
    rows = -(-n // cols)
    fig, grid = _pyplot().subplots(rows, cols, figsize=(4 * cols, 3.2 * rows),
                                   squeeze=False, layout="constrained")
    grid = grid.ravel()
    for spare in grid[n:]:
        spare.remove()
    fig.suptitle(title)
    return grid[:n]


def _parameter_axis(name):
    """What a ``confint``/``profile`` parameter is, for an axis label (the variance
    parameters and fixed effects are on the linear predictor's scale: y's units for a
    MixedLM)."""
    if name.startswith("sd_"):
        return f"{name}: SD of a random effect"
    if name.startswith("cor_"):
        return f"{name}: correlation"
    if name == "sigma":
        return "sigma: residual SD (units of y)"
    return f"{name}: coefficient"


def plot_residuals(model, X, y, *, random_effects=True, ax=None):
    """Residuals against fitted values (conditional on the modes by default; Pearson
    residuals for a MixedGLM, lme4's ``plot(m)``), with a horizontal line at 0."""
    ax = _axes(ax)
    given = "given the groups' modes" if random_effects else "population level"
    if type(model).__name__ == "MixedGLM":
        fitted = model._mean(model._eta(X, random_effects))
        resid = model.residuals(X, y, type="pearson", random_effects=random_effects)
        xlabel = "fitted mean μ̂ (scale of y)"
        ylabel = "Pearson residual (y − μ̂) / √V(μ̂)"
        title = f"Pearson residuals vs fitted means ({given})"
    else:
        fitted = model.predict(X, random_effects=random_effects)
        resid = model.residuals(X, y, random_effects=random_effects)
        xlabel = "fitted value ŷ (units of y)"
        ylabel = "residual y − ŷ (units of y)"
        title = f"Residuals vs fitted values ({given})"
    ax.scatter(fitted, resid, s=6, alpha=0.5, label="observations")
    ax.axhline(0.0, color="grey", lw=1, label="zero residual")
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    ax.legend(loc="upper right", fontsize="small")
    return ax


def _modes(model, factor, term):
    re = model.random_effects_
    factor = factor or re["group"].iloc[0]
    rows = re[(re["group"] == factor) & (re["term"] == term)]
    if rows.empty:
        raise ValueError(f"no random effect {term!r} of factor {factor!r}; the model has "
                         f"{sorted(set(zip(re['group'], re['term'])))}.")
    return factor, rows


def plot_qq(model, factor=None, term="(Intercept)", *, ax=None):
    """Normal QQ plot of one factor's conditional modes of ``term`` (first factor by
    default)."""
    ax = _axes(ax)
    factor, rows = _modes(model, factor, term)
    modes = np.sort(rows["mode"].to_numpy())
    n = modes.size
    theo = stats.norm.ppf((np.arange(1, n + 1) - 0.5) / n)
    ax.scatter(theo, modes, s=10, label=f"{n} levels of {factor}")
    sd = np.std(modes) if n > 1 else 1.0
    ax.plot(theo, theo * sd + np.mean(modes), color="grey", lw=1,
            label="normal with the modes' mean and SD")
    ax.set(xlabel="standard normal quantile", ylabel=f"conditional mode of {term} | {factor}",
           title=f"Normal QQ plot of the conditional modes: {term} | {factor}")
    ax.legend(loc="upper left", fontsize="small")
    return ax


def plot_caterpillar(model, factor=None, term="(Intercept)", *, level=0.95, ax=None):
    """One factor's conditional modes of ``term``, sorted, with ±z·conditional SD
    intervals (lme4's ``dotplot(ranef(m, condVar = TRUE))``)."""
    ax = _axes(ax)
    factor, rows = _modes(model, factor, term)
    rows = rows.sort_values("mode")
    z = stats.norm.ppf(0.5 + level / 2.0)
    pos = np.arange(len(rows))
    ax.errorbar(rows["mode"], pos, xerr=z * rows["cond_sd"], fmt="o", ms=3, lw=1,
                label=f"mode ± {z:.2f} conditional SD")
    ax.axvline(0.0, color="grey", lw=1, label="0: the population mean")
    if len(rows) <= 60:
        ax.set_yticks(pos, [str(v) for v in rows["level"]],
                      fontsize="small" if len(rows) <= 30 else "x-small")
    else:
        ax.set_yticks([])
    ax.set(xlabel=f"conditional mode of {term} | {factor}",
           ylabel=f"level of {factor} ({len(rows)}, sorted by mode)",
           title=f"Conditional modes with {level:.0%} intervals: {term} | {factor}")
    ax.legend(loc="lower right", fontsize="small")
    return ax


def plot_profile(profile, *, axes=None):
    """Profile traces: ζ against each parameter's value (a frame of ``profile()``), one
    panel per parameter, with the interval levels' ζ = ±z marked."""
    names = list(dict.fromkeys(profile["parameter"]))
    level = profile.attrs.get("level", 0.95)
    axes = _panels(len(names), axes, "Profile traces: ζ = signed √(deviance change); "
                   f"the {level:.0%} interval is where |ζ| ≤ z")
    z = stats.norm.ppf(0.5 + level / 2.0)
    for ax, name in zip(axes, names):
        part = profile[profile["parameter"] == name]
        ax.plot(part["value"], part["zeta"], "-o", ms=2, label="ζ")
        ax.axhline(0.0, color="grey", lw=0.8, label="ζ = 0: the estimate")
        ax.axhline(z, color="grey", lw=0.8, ls=":", label=f"ζ = ±{z:.2f} ({level:.0%})")
        ax.axhline(-z, color="grey", lw=0.8, ls=":")
        ax.set(title=name, xlabel=_parameter_axis(name), ylabel="ζ")
    axes[0].legend(loc="upper left", fontsize="x-small")
    return list(axes)


def plot_bootstrap(result, parm=None, *, axes=None, bins=40):
    """Histograms of a [`BootstrapResult`][skmixed.BootstrapResult]'s replicates, the fitted value
    marked."""
    names = list(result.replicates.columns) if parm is None else (
        [parm] if isinstance(parm, str) else list(parm))
    unknown = [k for k in names if k not in result.replicates.columns]
    if unknown:
        raise ValueError(f"parm: unknown parameter(s) {unknown}; the replicates have "
                         f"{list(result.replicates.columns)}.")
    n_ok = len(result.replicates) - result.n_failed
    axes = _panels(len(names), axes, f"Parametric bootstrap: {n_ok} replicates"
                   + (f" ({result.n_failed} failed fits left out)" if result.n_failed else ""))
    for ax, name in zip(axes, names):
        ax.hist(result.replicates[name].dropna(), bins=bins, label="replicates")
        ax.axvline(result.estimates[name], color="black", lw=1, label="fitted value")
        ax.set(title=name, xlabel=_parameter_axis(name), ylabel="replicates (count)")
    axes[0].legend(loc="upper left", fontsize="x-small")
    return list(axes)
