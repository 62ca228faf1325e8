"""Diagnostic plots of fitted mixed models (matplotlib: the ``plot`` extra), as lme4 users
draw them: residuals against fitted values (``plot(m)``), a normal QQ plot of the
conditional modes (``qqmath(ranef(m))``), a caterpillar plot of the modes with intervals
(``dotplot(ranef(m, condVar = TRUE))``), profile traces (``xyplot(profile(m))``) and the
bootstrap replicates' distributions.

Every function draws on ``ax`` (or new axes) and returns the axes.
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
    return _pyplot().subplots()[1] if ax is None else ax


def plot_residuals(model, X, y, *, random_effects=True, ax=None):
    """Residuals against fitted values (conditional on the modes by default; Pearson
    residuals for a MixedGLM, lme4's ``plot(m)``), with a horizontal line at 0."""
    ax = _axes(ax)
    if type(model).__name__ == "MixedGLM":
        fitted = model._mean(model._eta(X, random_effects))
        resid = model.residuals(X, y, type="pearson", random_effects=random_effects)
        ylabel = "Pearson residuals"
    else:
        fitted = model.predict(X, random_effects=random_effects)
        resid = model.residuals(X, y, random_effects=random_effects)
        ylabel = "residuals"
    ax.scatter(fitted, resid, s=6, alpha=0.5)
    ax.axhline(0.0, color="grey", lw=1)
    ax.set_xlabel("fitted values")
    ax.set_ylabel(ylabel)
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
    ax.scatter(theo, modes, s=10)
    sd = np.std(modes) if n > 1 else 1.0
    ax.plot(theo, theo * sd + np.mean(modes), color="grey", lw=1)
    ax.set_xlabel("standard normal quantiles")
    ax.set_ylabel(f"{term} | {factor}")
    return ax


def plot_caterpillar(model, factor=None, term="(Intercept)", *, level=0.95, ax=None):
    """One factor's conditional modes of ``term``, sorted, with ±z·conditional SD
    intervals (lme4's ``dotplot(ranef(m, condVar = TRUE))``)."""
    ax = _axes(ax)
    factor, rows = _modes(model, factor, term)
    rows = rows.sort_values("mode")
    z = stats.norm.ppf(0.5 + level / 2.0)
    pos = np.arange(len(rows))
    ax.errorbar(rows["mode"], pos, xerr=z * rows["cond_sd"], fmt="o", ms=3, lw=1)
    ax.axvline(0.0, color="grey", lw=1)
    if len(rows) <= 60:
        ax.set_yticks(pos, [str(v) for v in rows["level"]])
    ax.set_xlabel(f"{term} | {factor}")
    return ax


def plot_profile(profile, *, axes=None):
    """Profile traces: ζ against each parameter's value (a frame of ``profile()``), one
    panel per parameter, with the interval levels' ζ = ±z marked."""
    plt = _pyplot()
    names = list(dict.fromkeys(profile["parameter"]))
    if axes is None:
        cols = min(3, len(names))
        rows = -(-len(names) // cols)
        axes = plt.subplots(rows, cols, figsize=(4 * cols, 3 * rows), squeeze=False)[1]
    axes = np.ravel(axes)
    z = stats.norm.ppf(0.5 + profile.attrs.get("level", 0.95) / 2.0)
    for ax, name in zip(axes, names):
        part = profile[profile["parameter"] == name]
        ax.plot(part["value"], part["zeta"], "-o", ms=2)
        for h in (-z, 0.0, z):
            ax.axhline(h, color="grey", lw=0.8, ls=":" if h else "-")
        ax.set_title(name, fontsize=9)
        ax.set_ylabel("ζ")
    return axes


def plot_bootstrap(result, parm=None, *, axes=None, bins=40):
    """Histograms of a :class:`~skmixed.BootstrapResult`'s replicates, the fitted value
    marked."""
    plt = _pyplot()
    names = list(result.replicates.columns) if parm is None else (
        [parm] if isinstance(parm, str) else list(parm))
    unknown = [k for k in names if k not in result.replicates.columns]
    if unknown:
        raise ValueError(f"parm: unknown parameter(s) {unknown}; the replicates have "
                         f"{list(result.replicates.columns)}.")
    if axes is None:
        cols = min(3, len(names))
        rows = -(-len(names) // cols)
        axes = plt.subplots(rows, cols, figsize=(4 * cols, 3 * rows), squeeze=False)[1]
    axes = np.ravel(axes)
    for ax, name in zip(axes, names):
        ax.hist(result.replicates[name].dropna(), bins=bins)
        ax.axvline(result.estimates[name], color="black", lw=1)
        ax.set_title(name, fontsize=9)
    return axes
