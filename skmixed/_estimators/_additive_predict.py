"""AdditiveMixed's prediction side, on a fitted model's internal columns: the linear
predictor and its posterior SD at new rows, the smooths' values with their bands, the
mgcv-style summary and the partial-effect plots (`AdditivePrediction`, a mixin of
[`skmixed.AdditiveMixed`][skmixed.AdditiveMixed] whose public methods carry the documentation)."""

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.utils.validation import check_is_fitted, validate_data

from . import _design
from .._model.thin_plate import default_dimension
from ._additive_by import multipliers_at
from ._factors import factor_values
from ._results import coef_lines
from ._rprint import coef_table

__all__ = ["AdditivePrediction", "smooth_name"]


def smooth_label_name(label):
    """A smooth's covariates as mgcv writes them: ``x``, or ``x,z`` for a tuple."""
    if isinstance(label, tuple):
        return ",".join(_design.column_name(c) for c in label)
    return _design.column_name(label)


def covariate_columns(labels):
    """The columns of the smooths ``labels`` (a tuple: a smooth of several), flattened."""
    return [c for label in labels
            for c in (label if isinstance(label, tuple) else (label,))]


def smooth_arrays(X_table, keys):
    """Each smooth's covariate values from X: a 1-D array, or n × d for a tuple of keys
    (made once per smooth: the levels of a by factor share it)."""
    out = []
    for key in keys:
        if isinstance(key, tuple):
            out.append(np.column_stack([np.asarray(c, dtype=float)
                                        for c in _design.fixed_columns(X_table, list(key))]))
        else:
            out.append(_design.fixed_columns(X_table, [key])[0])
    return out


def smooth_name(label, by, kind="s"):
    """mgcv's name of a smooth of column ``label``: ``s(x)``, ``s(x,z)``, ``s(x):v``
    (numeric ``by`` v), ``s(x):va`` (level a of a factor ``by`` v); ``by`` as
    `expand_by`'s info; ``kind`` "te" or "ti" for a tensor product (``te(x,z)``)."""
    name = f"{kind}({smooth_label_name(label)})"
    if by is None or isinstance(by[1], tuple):  # (an fs smooth's factor is in its label)
        return name
    return f"{name}:{_design.column_name(by[0])}" + ("" if by[1] is None else f"{by[1]}")


def _smooth_text(label, term, spline, by):
    """mgcv's formula term of a smooth: ``s(x, bs = "cr")``, with ``k = …`` when not the
    default (10 for one covariate, mgcv's for several; 5 per tensor margin) and
    ``by = …``; ``te(x, z, k = c(6, 4), bs = c("tp", "cr"))``."""
    covariates = smooth_label_name(label).replace(",", ", ")
    if spline.bs == "fs":  # s(x, f, bs = "fs"), its base as mgcv's xt
        k = "" if term.k == 10 else f", k = {term.k}"
        base = spline.base.bs
        return f's({covariates}{k}, bs = "fs"' + ("" if base == "tp" else f', xt = "{base}"') + ")"
    by_arg = "" if by is None else f", by = {_design.column_name(by[0])}"
    if hasattr(spline, "margins_"):
        k = "" if all(v == 5 for v in term.k) else (
            ", k = c(" + ", ".join(str(v) for v in term.k) + ")")
        return (f"{spline.bs}({covariates}{k}{by_arg}, bs = c("
                + ", ".join(f'"{m.bs}"' for m in spline.margins_) + "))")
    default = default_dimension(len(label)) if isinstance(label, tuple) else 10
    k = "" if term.k == default else f", k = {term.k}"
    return f's({covariates}{k}{by_arg}, bs = "{spline.bs}")'


def _level_columns(design, codes, n_levels):
    """An fs smooth's columns at rows of levels ``codes`` (−1: unseen, all 0): each row's
    basis ``design`` (n × k) in its level's k of the levels' n_levels × k columns."""
    n, k = design.shape
    out = np.zeros((n, n_levels * k))
    seen = np.flatnonzero(codes >= 0)
    out[seen[:, None], codes[seen, None] * k + np.arange(k)] = design[seen]
    return out


class AdditivePrediction:
    """Private methods of a fitted [`skmixed.AdditiveMixed`][skmixed.AdditiveMixed] that read its
    fit."""

    def _keep_for_prediction(self, result, X, labels, scaling, target):
        """What prediction needs: the fit on its internal columns (``scaling``: the
        parametric columns'; ``result.extra``: skmixed._model.additive_fit's), the columns'
        labels and positions in X, the target's name."""
        param_labels, smooth_labels, factors, by_info = labels
        extra = result.extra
        self._fit, self._model_info = extra["reml_fit"], extra["layout"]
        self._scaling, self._factor_layout = scaling, extra["factors"]
        self._discrete = extra["layout"]["discrete"]
        # the kept parametric columns (positions among param_labels)
        self._kept_params = [j - int(self.fit_intercept) for j in extra["kept"]
                             if j >= int(self.fit_intercept)]
        self._labels = dict(param=param_labels, smooth=smooth_labels, factors=list(factors),
                            by=list(by_info))
        all_labels = (list(X.columns) if isinstance(X, pd.DataFrame)
                      else list(range(self.n_features_in_)))
        position = {c: i for i, c in enumerate(all_labels)}
        # positions too: predict may get an array after a DataFrame fit, or the reverse
        self._positions = dict(param=[position[c] for c in param_labels],
                               smooth=[tuple(position[x] for x in c) if isinstance(c, tuple)
                                       else position[c] for c in smooth_labels],
                               factors=[(tuple(position[c] for c in f.labels),
                                         [position[c] for c in f.slopes]) for f in factors],
                               by={b[0]: position[b[0]] for b in by_info if b is not None})
        self._fitted_on_frame = isinstance(X, pd.DataFrame)
        self._target_name = target

    def _partial_effect(self, term, grid, level):
        """`partial_effect`'s table."""
        j = self._smooth_index(term)
        label = self._labels["smooth"][j]
        grid = np.asarray(grid, dtype=float)
        n_levels = self._model_info["levels"][j]
        if n_levels:  # an fs smooth: every level's curve over the grid, level by level
            if grid.ndim != 1:
                raise ValueError(f"the factor-smooth interaction {self.smooths_.index[j]} "
                                 "needs a 1-D grid of its covariate (every level's curve is "
                                 f"given); got shape {grid.shape}.")
            levels = self._labels["by"][j][1][1]  # (columns named as the covariate's and
            # the factor's: a factor named "x" must not take the grid's place)
            columns = {_design.column_name(label[0]): np.tile(grid, n_levels),
                       _design.column_name(label[1]): np.repeat(np.asarray(levels),
                                                                grid.size)}
        elif isinstance(label, tuple):  # a smooth of d covariates: an n × d grid of points
            if grid.ndim != 2 or grid.shape[1] != len(label):
                raise ValueError(f"the smooth of {list(label)} needs grid points as an n × "
                                 f"{len(label)} array; got shape {grid.shape}.")
            columns = {_design.column_name(c): grid[:, i] for i, c in enumerate(label)}
        else:
            columns = {"x": grid}
        effect, se = self._smooth_values(j, grid)
        zq = stats.norm.ppf(0.5 + level / 2.0)
        return pd.DataFrame({**columns, "effect": effect, "std_error": se,
                             "lower": effect - zq * se, "upper": effect + zq * se})

    def _smooth_index(self, term):
        """The position of smooth ``term``: its name in ``smooths_`` (``"s(x)"``,
        ``"s(x):fa"``), or its column (label or position) when one smooth has it."""
        names = list(self.smooths_.index)
        if isinstance(term, str) and term in names:
            return names.index(term)
        labels = [smooth_label_name(c) for c in self._labels["smooth"]]
        key = smooth_label_name(tuple(term) if isinstance(term, list) else term)
        if key not in labels and term in self._positions["smooth"]:
            key = labels[self._positions["smooth"].index(term)]  # a column position
        hits = [j for j, c in enumerate(labels) if c == key]
        if len(hits) == 1:
            return hits[0]
        if hits:
            raise ValueError(f"{term!r} has {len(hits)} smooths (the levels of a by factor); "
                             f"name one of {[names[j] for j in hits]}.")
        raise ValueError(f"{term!r} is not a smooth of this model; smooths: {names}.")

    def _keys(self, X_table, kind):
        """The keys of the fitted columns of ``kind`` in X: labels when fit and X are both
        DataFrames, otherwise positions (sklearn has already warned about the names)."""
        labels, positions = self._labels[kind], self._positions[kind]
        if isinstance(X_table, pd.DataFrame):
            if self._fitted_on_frame:
                needed = covariate_columns(labels) if kind == "smooth" else labels
                missing = [c for c in needed if c not in X_table.columns]
                if missing:
                    raise ValueError(f"X lacks the column(s) {missing} seen in fit.")
                return labels
            cols = X_table.columns
            return [tuple(cols[j] for j in i) if isinstance(i, tuple) else cols[i]
                    for i in positions]
        return positions

    def _by_key(self, X_table):
        """A ``by`` column's key in X (as `_keys`: its label, or its position)."""
        def key_of(label):
            if isinstance(X_table, pd.DataFrame):
                if self._fitted_on_frame:
                    if label not in X_table.columns:
                        raise ValueError(f"X lacks the column(s) {[label]} seen in fit.")
                    return label
                return X_table.columns[self._positions["by"][label]]
            return self._positions["by"][label]
        return key_of

    def _columns(self, X_table, kind):
        return _design.fixed_columns(X_table, self._keys(X_table, kind))

    def _eta(self, X, random_effects=True, return_std=False):
        """η at the rows of X and, with ``return_std``, its posterior SD: the row's
        coefficient vector ``v`` over (β, b) — parametric values, the smooths' null and range
        bases — with ``v'Vv``, plus the group's random intercept's variance and covariance
        with (β, b) for rows of a seen group."""
        check_is_fitted(self)
        X_table = _design.as_table(X, type(self).__name__)
        validate_data(self, X, reset=False, skip_check_array=True)
        n = _design.n_rows(X_table)
        info, fit = self._model_info, self._fit
        params = [self._scaling.values(c, j)  # the internal columns of the fit
                  for j, c in enumerate(self._columns(X_table, "param"))]
        _design.check_finite_columns(params, self._keys(X_table, "param"))
        params = [params[j] for j in self._kept_params]  # not those dropped as collinear
        # (an fs smooth's covariate; its factor comes with the by columns)
        smooth_keys = [k[0] if n_levels else k for k, n_levels in
                       zip(self._keys(X_table, "smooth"), info["levels"])]
        flat = covariate_columns(smooth_keys)
        _design.check_finite_columns(_design.fixed_columns(X_table, flat), flat)
        smooth_cols = smooth_arrays(X_table, smooth_keys)
        # the rows' coefficient vectors over (β, b): [intercept, parametric, nulls, ranges]
        blocks = [np.ones((n, 1))] if self.fit_intercept else []
        blocks += [c[:, None] for c in params]
        nulls, ranges = [], []
        mults = multipliers_at(X_table, self._labels["by"], self._by_key(X_table))
        for basis, col, mult, n_levels in zip(info["bases"], smooth_cols, mults,
                                              info["levels"]):
            design = basis["spline"].design(np.asarray(col, dtype=float))
            if n_levels:  # an fs smooth: the row's level's columns (none at an unseen level)
                nulls.append(design[:, :0])
                ranges.append(_level_columns(design, mult, n_levels))
                continue
            if mult is not None:
                design *= mult[:, None]
            nulls.append(design @ basis["F"])
            ranges.append(design @ basis["R"])
        V_rows = (np.hstack(blocks + nulls + ranges) if blocks + nulls + ranges
                  else np.zeros((n, 0)))
        # (β, b) without b's further factors' blocks (after the smooths')
        P = V_rows.shape[1]
        eta = V_rows @ np.concatenate([fit.beta, fit.b])[:P]
        var = (np.einsum("ij,jk,ik->i", V_rows, fit.cov[:P, :P], V_rows) if return_std
               else None)
        if random_effects and self._labels["factors"]:
            self._add_random_effects(X_table, V_rows, eta, var)
        return (eta, np.sqrt(np.maximum(var, 0.0))) if return_std else eta

    def _factor_keys(self, X_table, i):
        """Factor i's columns and its slopes' columns in X (as `_keys`)."""
        f = self._labels["factors"][i]
        positions, slope_positions = self._positions["factors"][i]
        if isinstance(X_table, pd.DataFrame):
            if self._fitted_on_frame:
                missing = [c for c in list(f.labels) + list(f.slopes)
                           if c not in X_table.columns]
                if missing:
                    raise ValueError(f"X lacks the column(s) {missing} seen in fit.")
                return f.labels, f.slopes
            cols = X_table.columns
            return tuple(cols[j] for j in positions), [cols[j] for j in slope_positions]
        return positions, slope_positions

    def _add_random_effects(self, X_table, V_rows, eta, var):
        """Add to ``eta`` (and ``var``, unless None) the rows' random effects of every
        grouping factor (0 for a level not seen in fit, which is population level). The
        eliminated factor's come from the REML's groups (``fit.group``, their posterior
        ``group_cov``), the others' from their penalized blocks of b (the posterior
        ``fit.cov``); each term is a column of θ = (β, b) times the row's multiplier
        (1, or the slope): ``Var(v'θ + Σ_t m_t θ_t + z'g_i) = v'Vv + Σ_ts m_t m_s V_ts +
        2 Σ_t m_t v'V_·t + z'V_i z + 2 Σ_a z_a (v'C_ia + Σ_t m_t C_ia,t)``."""
        fit, layout = self._fit, self._factor_layout
        n, P = V_rows.shape  # P = p + the smooths' range columns
        # each further-factor term's first column of θ = (β, b): its block's in b, after β
        starts = fit.beta.size + fit.reml.block_starts[fit.reml.extra_blocks]
        theta = np.concatenate([fit.beta, fit.b])
        terms = []  # per further-factor term: the rows' column of θ and multiplier
        main = None
        for i, f in enumerate(self._labels["factors"]):
            keys, slope_keys = self._factor_keys(X_table, i)
            codes = _design.lookup_groups(factor_values(X_table, keys), layout.levels[i],
                                          keys[0] if len(keys) == 1 else f.name)
            seen = codes >= 0  # unseen groups: population level (random effect 0)
            # the row's random-effect columns z = [1, slopes…] (the fit's internal slopes)
            z = np.column_stack([np.ones(n)] + [
                np.asarray(col, dtype=float) / sc for col, sc in
                zip(_design.fixed_columns(X_table, list(slope_keys)), layout.scales[i])])
            z[~seen] = 0.0
            safe = np.where(seen, codes, 0)
            if i == layout.main:
                main = (safe, z)
                eta += np.sum(z * fit.group[safe], axis=1)
                continue
            for t, (owner, a) in enumerate(layout.extras):
                if owner == i:
                    terms.append((starts[t] + safe, z[:, a]))
                    eta += z[:, a] * theta[starts[t] + safe]
        if var is None:
            return
        V = fit.cov
        for idx, m in terms:
            var += 2.0 * m * np.sum(V_rows * V[:P, idx].T, axis=1)
            for idx2, m2 in terms:
                var += m * m2 * V[idx, idx2]
        if main is not None:
            c, z = main
            cross, gvar = fit.group_cov
            r = z.shape[1]
            var += np.einsum("ia,iab,ib->i", z, gvar[c], z)
            for a in range(r):
                rows = cross[c * r + a]
                var += 2.0 * z[:, a] * (np.sum(V_rows * rows[:, :P], axis=1) + sum(
                    m * rows[np.arange(n), idx] for idx, m in terms))

    def _smooth_coefficients(self, j):
        """Smooth j's coefficients on its constrained basis and their posterior
        covariance: ``c = F β_null + R b``."""
        info, fit = self._model_info, self._fit
        p0 = info["p0"]
        start_f = p0 + sum(info["null_widths"][:j])
        start_r = sum(info["range_widths"][:j])
        f, r = info["null_widths"][j], info["range_widths"][j]
        idx = list(range(start_f, start_f + f)) + [len(fit.beta) + i
                                                   for i in range(start_r, start_r + r)]
        basis = info["bases"][j]
        coef = np.concatenate([fit.beta[start_f:start_f + f], fit.b[start_r:start_r + r]])
        if info["levels"][j]:  # an fs smooth: its levels' coefficients are its own
            return coef, fit.cov[np.ix_(idx, idx)]
        G = np.hstack([basis["F"], basis["R"]])  # constrained coefficients per (β_null, b)
        return G @ coef, G @ fit.cov[np.ix_(idx, idx)] @ G.T

    def _smooth_values(self, j, x):
        coef, cov = self._smooth_coefficients(j)
        design = self._model_info["bases"][j]["spline"].design(x)
        n_levels = self._model_info["levels"][j]
        if n_levels:  # an fs smooth: each level's curve in turn
            design = _level_columns(np.tile(design, (n_levels, 1)),
                                    np.repeat(np.arange(n_levels), design.shape[0]), n_levels)
        return design @ coef, np.sqrt(np.einsum("ij,jk,ik->i", design, cov, design))

    def _family_label(self):
        """mgcv's name of the family (``family$family``): ``Gamma``, ``Negative
        Binomial(k)`` with the size fitted, ``Tweedie(1.5)`` (``Tweedie(p=1.554)``: p estimated), the
        others as named."""
        if self.family == "gamma":
            return "Gamma"
        if self.family == "nbinom2":
            return f"Negative Binomial({self.dispersion_:.3f})"
        if self.family == "tweedie":  # as mgcv prints Tweedie(p) and tw()
            return (f"Tweedie({self.power_:g})" if self.power is not None
                    else f"Tweedie(p={self.power_:.3f})")
        return self.family

    def _summary_text(self):
        """The text of `summary`: mgcv's ``print(summary(gam))`` layout, then the variance
        components and the REML criterion."""
        smooths = []
        for c, b, by in zip(self._labels["smooth"], self._model_info["bases"],
                            self._labels["by"]):
            text = _smooth_text(c, self._smooth_term(c), b["spline"], by)
            if text not in smooths:  # a factor by's levels: one term
                smooths.append(text)
        terms = ([] if self.fit_intercept else ["0"]) + [
            _design.column_name(c) for c in self._labels["param"]] + smooths
        for f in self._labels["factors"]:
            slopes = [_design.column_name(c) for c in f.slopes]
            if f.covariance == "unstructured":  # correlated: gamm's random = list(…)
                terms.append(f"(1 + {' + '.join(slopes)} | {f.name})")
                continue
            # mgcv writes an interaction's random effect s(a, b, bs = "re")
            name = ", ".join(_design.column_name(c) for c in f.labels)
            terms.append(f's({name}, bs = "re")')
            terms += [f's({name}, {c}, bs = "re")' for c in slopes]
        family = self._family()
        # a non-canonical family is fitted as bam, binned or not (fit_rows)
        method = ("binned (bam discrete)" if self._discrete
                  else "exact (gam)" if family.canonical else "exact (bam)")
        lines = [f"Additive mixed model [skmixed.AdditiveMixed], REML, {method}", "",
                 f"Family: {self._family_label()}",
                 f"Link function: {family.link}", "",
                 "Formula:",
                 f"{self._target_name} ~ " + (" + ".join(terms) if terms else "1"), ""]
        fixed = self.fixed_effects_
        if len(fixed):
            # mgcv: t tests on the residual df n − edf when the scale is estimated
            stat = "t" if family.scale_estimated else "z"
            if family.scale_estimated:
                fixed = fixed.assign(p_value=2.0 * stats.t.sf(
                    np.abs(fixed["z"]), max(self._fit.reml.n - self.edf_, 1.0)))
            lines += ["Parametric coefficients:"] + coef_lines(fixed, stat, True)
        lines.append("")
        if len(self.smooths_):
            stat = "F" if family.scale_estimated else "Chi.sq"
            table = self.smooths_[["edf", "ref_df", "statistic", "p_value"]]
            lines += ["Approximate significance of smooth terms:"] + coef_table(
                table.to_numpy(dtype=float), [str(t) for t in table.index],
                ["edf", "Ref.df", stat, "p-value"], digits=4, cs_ind=(0,), tst_ind=(2,))
            lines.append("")
        if len(self.variance_components_):
            lines += ["Variance components:",
                      self.variance_components_.to_string(index=False, na_rep="",
                                                          float_format=lambda v: f"{v:.6g}"),
                      ""]
        lines.append(f"REML criterion (-2 restricted log-likelihood of the "
                     f"{'' if family.linear else 'working '}model): "
                     f"{self.reml_criterion_:.4f}; total edf {self.edf_:.3f}; "
                     f"{'converged' if self.converged_ else 'NOT converged'} after "
                     f"{self.n_iter_} iteration(s)")
        return "\n".join(lines)

    def _plot_partial_effects(self, n_points, level, axes):
        """`plot_partial_effects` (matplotlib imported here: an optional extra)."""
        try:
            import matplotlib.pyplot as plt
        except ImportError as exc:  # an optional extra
            raise ImportError("plot_partial_effects needs matplotlib: "
                              'pip install "skmixed[plot]"') from exc
        bases = self._model_info["bases"]
        if not bases:
            raise ValueError("this model has no smooths to plot.")
        if axes is None:
            _, axes = plt.subplots(1, len(bases), figsize=(4 * len(bases), 3.2),
                                   squeeze=False, layout="constrained")
            axes = list(axes[0])
        # the smooths are on the linear predictor's scale, centred (mean 0 over the data)
        scale = {"gaussian": "y", "binomial": "log-odds of y",
                 "poisson": "log mean of y"}.get(self.family, "linear predictor")
        for ax, basis, term, n_levels in zip(axes, bases, self.smooths_.index,
                                             self._model_info["levels"]):
            if n_levels:
                self._plot_levels(ax, basis, term, n_points, scale)
                continue
            if isinstance(basis["label"], tuple):
                self._plot_surface(ax, basis, term, n_points, scale)
                continue
            # the fitted covariate's range (a P-spline's widened 0.1 %, a cycle's ends)
            lo, hi = basis["spline"].domain
            band = self.partial_effect(term, np.linspace(lo, hi, n_points), level)
            ax.fill_between(band["x"], band["lower"], band["upper"], alpha=0.3, lw=0,
                            label=f"{level:.0%} pointwise band")
            ax.plot(band["x"], band["effect"], label="estimate")
            centred = getattr(basis["spline"], "centred_", True)
            ax.axhline(0.0, color="grey", lw=0.8, ls=":",
                       label="0 (centred)" if centred else "0")
            column = _design.column_name(basis["label"])
            # a numeric by: the smooth is the coefficient function of the by variable
            by = self._labels["by"][list(self.smooths_.index).index(term)]
            what = (f"effect on {scale}" if by is None or by[1] is not None
                    else f"coefficient of {_design.column_name(by[0])}")
            ax.set(xlabel=column, ylabel=f"{term}: {what}",
                   title=f"Partial effect of {column} ({term}, "
                         f"edf {self.smooths_.loc[term, 'edf']:.2f})")
            ax.legend(fontsize="x-small")
        return list(axes)

    def _plot_levels(self, ax, basis, term, n_points, scale):
        """An fs smooth: every level's curve in one panel (as mgcv's plot)."""
        lo, hi = basis["spline"].domain
        curves = self.partial_effect(term, np.linspace(lo, hi, n_points))
        covariate, factor = curves.columns[:2]
        for _, curve in curves.groupby(factor, sort=False):
            ax.plot(curve[covariate], curve["effect"], lw=0.8)
        names = [_design.column_name(c) for c in basis["label"]]
        ax.set(xlabel=names[0], ylabel=f"{term}: effect on {scale}",
               title=f"{term}: a curve per level of {names[1]} "
                     f"(edf {self.smooths_.loc[term, 'edf']:.2f})")

    def _plot_surface(self, ax, basis, term, n_points, scale):
        """A smooth of two covariates as a filled contour over their ranges in the data,
        with a colour bar (of more covariates: not drawn)."""
        ranges = basis["spline"].domain
        names = [_design.column_name(c) for c in basis["label"]]
        if len(ranges) != 2:
            ax.set_axis_off()
            ax.set_title(f"{term}: {len(ranges)} covariates (not drawn)")
            return
        side = max(10, int(np.sqrt(n_points * 20)))
        gx, gz = np.meshgrid(np.linspace(*ranges[0], side), np.linspace(*ranges[1], side))
        effect = self.partial_effect(term, np.column_stack([gx.ravel(), gz.ravel()]))
        filled = ax.contourf(gx, gz, effect["effect"].to_numpy().reshape(gx.shape), levels=20,
                             cmap="viridis")
        ax.figure.colorbar(filled, ax=ax, label=f"effect on {scale}")
        ax.set(xlabel=names[0], ylabel=names[1],
               title=f"Partial effect of {names[0]}, {names[1]} ({term}, "
                     f"edf {self.smooths_.loc[term, 'edf']:.2f})")
