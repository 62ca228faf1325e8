"""AdditiveMixed's data sources: the rows in memory (`used_group_codes`,
`parametric_columns`: the fit's internal columns; y's checks), a chunked source
(`skmixed.sources`) read once, or a Dask DataFrame reduced where its partitions live,
into basis-free bin tables (`BinTables`, Gaussian, binned
smooths), from which `skmixed._model.additive_fit.fit_tables` fits.

A table source's layout (``info``) comes from the first chunk (or the Dask frame's head):
the roles of the columns, the smooths' bin axes, the parametric columns' scaling, the
slopes' scales and the constant subtracted from y
(`response_shift`); with the estimator's ``family``,
``fit_intercept``, ``n_bins`` and name it is all a Dask worker needs to reduce a partition.
"""

import numpy as np

from .._model.additive_fit import response_shift, slope_scale
from .._model.bin_tables import BinTables, SmoothAxis
from .._model.identifiability import boundary_response_error, independent_fixed_columns
from .._model.scaling import ColumnScaling, weighted_gram
from .._model.spec import Factor
from ..families import Family, get_family
from ..sources import checked_chunks, chunk_columns
from . import _design, _factors
from ._chunked import dask_frame

__all__ = ["check_target", "check_boundary_response", "used_group_codes",
           "parametric_columns", "table_layout", "chunk_tables", "dask_tables"]


def _family_of(family):
    """A `Family`, or the one of a name."""
    return family if isinstance(family, Family) else get_family(family)


def check_target(y, n, family, name):
    """y as a float64 vector of length n, finite and valid for ``family`` (a `Family` or
    a name)."""
    y_arr = _design.check_target(y, n, name)
    if not np.isfinite(y_arr).all():
        raise ValueError("Input y contains NaN or infinity.")
    _family_of(family).check_y(y_arr)
    return y_arr


def check_boundary_response(y, w, family):
    """Binomial y of one class, or Poisson y of zeros only (rows of positive weight; ``w``
    empty for unit weights): the maximum-likelihood mean is at the boundary, as MixedGLM
    refuses; a constant Gamma y: no dispersion to estimate."""
    family = _family_of(family)
    kind = family.kind
    if kind not in ("proportion", "count", "positive"):
        return
    y = y[w > 0] if w.size else y
    if not y.size:
        return  # no observations: refused with the fixed effects' count
    if kind == "positive" and np.ptp(y) == 0:
        raise ValueError(f"every {family.label} y is {y[0]:g}: the model fits it exactly and no "
                         "dispersion is left to estimate.")
    if kind == "proportion" and np.ptp(y) == 0:
        what = f"only {'successes (y = 1)' if y[0] else 'failures (y = 0)'}"
    elif kind == "count" and not np.any(y):
        what = "only zero counts"
    else:
        return
    raise boundary_response_error(what, bool(w.size))


def used_group_codes(values, label, weights, name):
    """The rows' group codes (int64) among the levels with rows of positive weight (unused
    categories are not groups), and those levels; fewer than 2 is an error
    (`drop_unused_levels`)."""
    codes, levels = _design.encode_groups(values, label)
    factor = Factor(name=_design.column_name(label), labels=(label,), positions=(),
                    codes=np.asarray(codes, dtype=np.int64), levels=levels,
                    slope_pos=np.empty(0, dtype=np.int64), slope_names=[],
                    covariance="unstructured")
    _factors.drop_unused_levels(
        factor, np.bincount(factor.codes, weights=weights, minlength=len(levels)), name)
    return factor.codes, factor.levels


def parametric_columns(columns, n, weights, fit_intercept, names, name):
    """The fit's parametric columns ``[1, x…]`` (n × p), centred and scaled
    (`skmixed._model.scaling`; random slopes have their own columns, so every
    parametric column is free), and lme4's rank check (MixedLM's): the later of collinear
    columns dropped with a RankDeficientWarning (``names``: the columns', intercept first)
    that points at the caller of ``fit``. Returns ``(X, scaling, kept, dropped names)``,
    X the kept columns only."""
    X = (np.column_stack(([np.ones(n)] if fit_intercept else [])
                         + [np.asarray(c, dtype=float) for c in columns])
         if (fit_intercept or columns) else np.empty((n, 0)))
    scaling = ColumnScaling.from_columns(columns, intercept=fit_intercept)
    scaling.transform(X, first=int(fit_intercept))
    if n <= X.shape[1]:
        raise ValueError(f"{name} needs more rows than parametric columns; got "
                         f"n_samples = {n} for {X.shape[1]} column(s).")
    kept, dropped = independent_fixed_columns(weighted_gram(X, weights), names, stacklevel=4)
    return (X if len(kept) == X.shape[1] else X[:, kept]), scaling, kept, dropped


def table_layout(X, roles, ranges, range_notes, *, family, fit_intercept, n_bins, name):
    """The layout of the columns of X (the first chunk's): ``roles`` = (smooths, group,
    slopes, parametric) as the estimator resolved them, the smooths' bin axes
    (``ranges``: known ranges; ``range_notes``: why a source does not know one)."""
    smooth, group, slopes, param = roles
    axes = [SmoothAxis(c, n_bins, ranges.get(c), note=(range_notes or {}).get(c))
            for c in smooth]
    scaling = ColumnScaling.from_columns(_design.fixed_columns(X, param),
                                         intercept=fit_intercept)
    return dict(smooth=smooth, group=group, slopes=slopes, param=param, axes=axes,
                scaling=scaling, slope_scale=slope_scale(_design.fixed_columns(X, slopes)),
                family=family, fit_intercept=bool(fit_intercept), n_bins=n_bins, name=name)


def _with_shift(info, y, n):
    """``info`` with the constant a Gaussian fit subtracts from y (from the first rows)."""
    info["y_shift"] = response_shift(check_target(y, n, info["family"], info["name"]),
                                     info["fit_intercept"])
    return info


def chunk_tables(source, layout_of, name):
    """One pass over a chunked source into bin tables. ``layout_of(X, ranges, notes)``
    gives the layout (`table_layout`) from the first chunk's columns; ``name``: the
    estimator's. Returns ``(tables, bin values per smooth, layout, the columns with no
    rows)``."""
    tables, info, X_first = None, None, None
    for label, frame, _ in checked_chunks(source, f"{name}: binned pass"):
        X = frame.drop(columns=[c for c in (source.target, source.weight) if c is not None])
        if info is None:
            info = _with_shift(layout_of(X, source.ranges or {}, source.range_notes or {}),
                               frame[source.target], len(frame))
            X_first = X.iloc[:0]
            tables = _new_tables(info, info["axes"])
        _add_frame(tables, frame, info, source.target, source.weight, label)
    if tables is None:
        raise ValueError(f"{name}: the source has no rows.")
    return tables, tables.finish(), info, X_first


def dask_tables(X, y, sample_weight, layout_of, name):
    """A Dask DataFrame into bin tables: the smooth covariates' ranges and distinct values
    first (a reduction over those columns only), then every partition reduced to its bin
    tables where it lives and the tables merged by group label. Returns as
    `chunk_tables`."""
    import dask

    frame = dask_frame(X, y, sample_weight, name)
    head = frame.head(1000, npartitions=-1)
    if len(head) == 0:
        raise ValueError(f"{name}: the Dask DataFrame has no rows.")
    columns = list(X._meta.columns)
    info = _with_shift(layout_of(head[columns], {}, {}), head["__y__"], len(head))
    stats = dask.compute(*[(X[c].min(), X[c].max(), X[c].nunique())
                           for c in info["smooth"]])
    few = [c for c, st in zip(info["smooth"], stats) if st[2] <= info["n_bins"]]
    distinct = dict(zip(few, dask.compute(*[X[c].unique() for c in few])))
    axes = [(c, (float(lo), float(hi)), (sorted(np.asarray(distinct[c]).tolist())
                                         if c in distinct else None))
            for c, (lo, hi, _) in zip(info["smooth"], stats)]
    spec = dict(info={k: v for k, v in info.items() if k != "axes"}, axes=axes,
                kinds=chunk_columns(frame._meta, "metadata", None),
                weight="__w__" if sample_weight is not None else None)
    parts = dask.compute(*[dask.delayed(_partition_tables)(part, spec, f"partition {i}")
                           for i, part in enumerate(frame.to_delayed())])
    tables = _empty_tables(spec)
    for part in parts:
        if part is not None:
            tables.merge(part)
    if tables.n == 0:
        raise ValueError(f"{name}: the Dask DataFrame has no rows.")
    values = tables.finish()
    info["axes"] = tables.axes
    return tables, values, info, head[columns].iloc[:0]


def _new_tables(info, axes):
    """Empty bin tables for the layout ``info`` ([intercept, parametric…, y])."""
    return BinTables(len(info["param"]) + info["fit_intercept"] + 1, axes,
                     info["group"] is not None, 1 + len(info["slopes"]))


def _empty_tables(spec):
    """A Dask partition's (or the merged) tables: the bin axes fixed beforehand."""
    return _new_tables(spec["info"], [
        SmoothAxis(c, spec["info"]["n_bins"], rng, values=vals, grid=vals is None)
        for c, rng, vals in spec["axes"]])


def _partition_tables(frame, spec, label):
    """One partition's bin tables (runs on a Dask worker)."""
    chunk_columns(frame, label, spec["kinds"])
    if len(frame) == 0:
        return None
    tables = _empty_tables(spec)
    _add_frame(tables, frame, spec["info"], "__y__", spec["weight"], label)
    return tables


def _add_frame(tables, frame, info, target, weight, label):
    """One chunk's rows into the bin tables."""
    n = len(frame)
    X = frame.drop(columns=[c for c in (target, weight) if c is not None])
    y_arr = check_target(frame[target], n, info["family"], info["name"])
    w = (_design.check_weights(frame[weight].to_numpy(), n) if weight is not None
         else np.ones(n))
    if not w.size:
        w = np.ones(n)
    cols = _design.fixed_columns(X, info["param"] + info["smooth"])
    try:
        _design.check_finite_columns(cols, info["param"] + info["smooth"])
    except ValueError as exc:
        raise ValueError(f"{label}: {exc}") from None
    params = cols[:len(info["param"])]
    V = np.column_stack(([np.ones(n)] if info["fit_intercept"] else [])
                        + [info["scaling"].values(c, j) for j, c in enumerate(params)]
                        + [y_arr - info["y_shift"]])
    codes = levels = z = None
    if info["group"] is not None:
        codes, levels = _design.encode_groups(_design.column_values(X, info["group"]),
                                              info["group"])
        z = np.column_stack([np.ones(n)] + [
            np.asarray(c, dtype=float) / sc for c, sc in
            zip(_design.fixed_columns(X, info["slopes"]), info["slope_scale"])])
    tables.add(V, w, cols[len(info["param"]):], label, codes, levels, z)
