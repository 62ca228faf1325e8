"""The row pass of MixedLM over a chunked source (skmixed.sources): each chunk's per-group
sums from the in-memory kernel, mapped onto the groups seen so far and added up.

Groups are labelled per chunk (its own codes) and mapped to running codes by their labels,
so a group may appear in any number of chunks; at the end the levels are sorted as an
in-memory fit sorts them. The centring shift (see ``mixed_lm._centring_shift``) comes from
the first chunk: any value near the means keeps the sums free of cancellation, and the
shift is undone exactly afterwards.
"""

from dataclasses import dataclass

import numpy as np
import pandas as pd
from .._kernels.crossprod import GroupedSums, grouped_crossprods
from .._model.bin_tables import RunningLevels
from ..sources import checked_chunks, chunk_columns
from . import _design

__all__ = ["ChunkedPass", "chunked_pass", "dask_pass", "dask_frame", "split_frame",
           "is_dask"]


@dataclass
class ChunkedPass:
    design: object  # the first chunk's GroupedDesign with the running levels
    sums: GroupedSums
    shift: np.ndarray
    X_first: pd.DataFrame  # the first chunk's columns (feature names for validate_data)
    y_name: str
    n_chunks: int


class _Accumulator:
    """Per-group sums over a growing set of group labels."""

    def __init__(self, q, m):
        self.groups = RunningLevels()
        self.xv = np.zeros((1024, q, m))
        self.rows = np.zeros(1024, dtype=np.int64)
        self.total = np.zeros((m, m))

    @property
    def order(self):
        return self.groups.levels

    def add(self, levels, group_xv, group_rows, total_vv):
        codes = self.groups.codes(levels)
        G = len(self.groups.levels)
        if G > self.xv.shape[0]:
            size = max(G, 2 * self.xv.shape[0])
            self.xv = np.concatenate([self.xv, np.zeros((size - self.xv.shape[0],)
                                                        + self.xv.shape[1:])])
            self.rows = np.concatenate([self.rows, np.zeros(size - self.rows.shape[0],
                                                            dtype=np.int64)])
        self.xv[codes] += group_xv  # codes are distinct within a chunk
        self.rows[codes] += group_rows
        self.total += total_vv

    def finish(self):
        """Sums and levels in the order an in-memory fit gives them (sorted labels)."""
        G = len(self.groups.levels)
        perm = self.groups.sort_order()
        levels = pd.Index(self.groups.levels)
        return (levels[perm], self.xv[:G][perm], self.rows[:G][perm], self.total)


def is_dask(obj):
    """A Dask DataFrame or Series (without importing dask)."""
    return type(obj).__module__.split(".")[0] == "dask" and hasattr(obj, "to_delayed")


def _partition_sums(frame, y, w, label, kinds, groups, random_slopes, z_pos, shift,
                    estimator_name):
    """One partition's (or chunk's) per-group sums — run where the partition lives (a Dask
    worker) or in the loop over chunks: ``(levels, group_xv, group_rows, total_vv)`` over
    the groups present, or None for no rows."""
    chunk_columns(frame, label, kinds)
    n = len(frame)
    if n == 0:
        return None
    y = _design.check_target(y, n, estimator_name)
    w = _design.check_weights(None if w is None else np.asarray(w), n)
    design = _chunk_design(frame, label, groups, random_slopes, estimator_name)
    sums = grouped_crossprods(design.columns, y, w, design.codes, len(design.levels), z_pos,
                              shift=shift)
    if sums.n_bad_codes:
        raise ValueError(f"{label}: {_design.missing_groups_error(design.group_label)}")
    if not (np.isfinite(sums.total_vv).all() and np.isfinite(sums.group_xv).all()):
        try:
            _design.check_finite_columns(design.columns, design.fixed_labels, y)
        except ValueError as exc:
            raise ValueError(f"{label}: {exc}") from None
        raise ValueError(f"{label}: the cross-products overflowed: rescale the columns.")
    present = sums.group_rows > 0
    return (list(design.levels[present]), sums.group_xv[present], sums.group_rows[present],
            sums.total_vv)


def _chunk_design(frame, label, groups, random_slopes, estimator_name):
    try:
        return _design.make_design(frame, groups=groups, random_slopes=random_slopes,
                                   estimator_name=estimator_name, part=True)
    except (ValueError, TypeError) as exc:
        raise type(exc)(f"{label}: {exc}") from None


def dask_frame(X, y, w, estimator_name):
    """X's columns with y as ``__y__`` (and w as ``__w__``): one Dask DataFrame whose
    partitions hold matching rows, joined by position (never aligned by index: a Parquet
    dataset's index restarts in every file).

    X, y and w that are columns of one frame (``ddf[cols]``, ``ddf["y"]``: the same input
    collection, however filtered or projected) are joined as one expression, so the query
    optimizer partitions them together (on their own, two column projections of a Parquet
    dataset may be fused into different partitions); each partition must then hold as many
    rows of each (X filtered and y not is an error naming the partition). Others — another
    frame, a second ``read_parquet`` of the same files — are joined partition by partition,
    which needs as many partitions of as many rows."""
    import dask
    import dask.dataframe as dd

    if not is_dask(y) or (w is not None and not is_dask(w)):
        raise ValueError(f"{estimator_name}.fit with a Dask DataFrame X needs y (and "
                         "sample_weight) as Dask Series of the same frame (e.g. X = "
                         "ddf[cols], y = ddf['y']).")
    extra = {"__y__": y} if w is None else {"__y__": y, "__w__": w}
    taken = [c for c in extra if c in X.columns]
    if taken:
        raise ValueError(f"X has column(s) {taken}, the names a Dask fit gives y and "
                         "sample_weight: rename them.")
    meta = X._meta.assign(**{k: s._meta for k, s in extra.items()})
    if _one_frame(X, *extra.values()):
        return X.map_partitions(_join_partition, *extra.values(), names=list(extra),
                                meta=meta, align_dataframes=False, enforce_metadata=False)
    parts = [X.to_delayed()] + [s.to_delayed() for s in extra.values()]
    if len({len(p) for p in parts}) > 1:
        counts = ", ".join(f"{role} {len(p)}" for role, p in zip(("X", "y", "sample_weight"),
                                                                 parts))
        raise ValueError(f"the numbers of partitions differ ({counts}) and X and y are not "
                         "columns of one frame (a second read_parquet of the same files is "
                         "another frame): take them from one Dask DataFrame (f = "
                         "dd.read_parquet(...); X = f[cols]; y = f['y']) or partition them "
                         "alike.")
    joined = [dask.delayed(_join_partition)(*ps, names=list(extra),
                                            partition_info={"number": i})
              for i, ps in enumerate(zip(*parts))]
    return dd.from_delayed(joined, meta=meta, verify_meta=False)


def _one_frame(*collections):
    """Whether the collections are columns of one input collection, modulo blockwise
    steps (filters, projections): Dask's ``are_co_aligned``, which lets it join them
    partition-wise, and the same input expressions — ``are_co_aligned`` also accepts two
    reads of one Parquet dataset with different columns, which the optimizer then fuses
    into different partitions. False without the query planner (there a projection keeps
    its partitions, and the partition-wise join serves)."""
    try:
        from dask.dataframe.dask_expr._expr import are_co_aligned
        from dask.dataframe.dask_expr.io import IO
    except ImportError:  # pragma: no cover - dask before the planner moved into it
        return False
    exprs = [getattr(c, "expr", None) for c in collections]
    if any(e is None for e in exprs) or not are_co_aligned(*exprs):
        return False
    inputs = [{e._name for e in expr.walk() if isinstance(e, IO)} for expr in exprs]
    return all(found == inputs[0] for found in inputs)


def _join_partition(frame, *series, names, partition_info=None):
    """One partition of X with its y (and w) put beside it by position."""
    label = f"partition {(partition_info or {}).get('number', '?')}"
    for name, s in zip(names, series):
        if len(s) != len(frame):
            role = "y" if name == "__y__" else "sample_weight"
            raise ValueError(f"{label}: X has {len(frame)} rows but {role} has {len(s)}: X "
                             f"and {role} must hold the same rows — take both from one frame "
                             "after any filtering (f = f[mask]; X = f[cols]; y = f['y']) or "
                             "partition them alike.")
    return frame.assign(**{name: np.asarray(s) for name, s in zip(names, series)})


def split_frame(frame):
    """A joined partition (`dask_frame`) back into X, y and w (or None)."""
    w = frame["__w__"] if "__w__" in frame.columns else None
    return frame.drop(columns=[c for c in ("__y__", "__w__") if c in frame.columns]), \
        frame["__y__"], w


def _joined_partition_sums(frame, label, kinds, *args):
    X, y, w = split_frame(frame)
    return _partition_sums(X, y, w, label, kinds, *args)


def dask_pass(X, y, w, *, groups, random_slopes, fit_intercept, centring_shift,
              estimator_name):
    """One pass over a Dask DataFrame X and Series y (and weights w), joined by
    `dask_frame`: every partition reduced to its per-group sums where it lives (one
    task each), the small results gathered and added by group label as for chunks. The
    centring shift comes from the first rows (``head``)."""
    import dask

    frame = dask_frame(X, y, w, estimator_name)
    head, y_head, _ = split_frame(frame.head(4096, npartitions=-1))
    if len(head) == 0:
        raise ValueError(f"{estimator_name}: the Dask DataFrame has no rows.")
    template = _design.make_design(head, groups=groups, random_slopes=random_slopes,
                                   estimator_name=estimator_name, part=True)
    shift = centring_shift(template, np.asarray(y_head, dtype=float), fit_intercept)
    z_pos = np.concatenate([[0], 1 + template.slope_pos]).astype(np.int64)
    kinds = chunk_columns(X._meta, "the Dask DataFrame's metadata", None)
    parts = frame.to_delayed()
    tasks = [dask.delayed(_joined_partition_sums)(part, f"partition {i}", kinds, groups,
                                                  random_slopes, z_pos, shift, estimator_name)
             for i, part in enumerate(parts)]
    results = dask.compute(*tasks)
    acc = _Accumulator(len(z_pos), len(template.columns) + 2)
    for r in results:
        if r is not None:
            acc.add(*r)
    if not acc.order:
        raise ValueError(f"{estimator_name}: the Dask DataFrame has no rows.")
    levels, group_xv, group_rows, total_vv = acc.finish()
    # each partition's labels are checked; labels of one type per partition could differ
    _design.check_label_types(levels, template.group_label)
    template.levels = levels
    template.codes = np.empty(0, dtype=np.int32)
    return ChunkedPass(template, GroupedSums(group_xv, total_vv, group_rows, 0), shift,
                       X._meta, getattr(y, "name", None) or "y", len(parts))


def chunked_pass(source, *, groups, random_slopes, fit_intercept, centring_shift,
                 estimator_name):
    """One pass over ``source`` (a [`ChunkedData`][skmixed.sources.ChunkedData])."""
    acc, template, shift, X_first, z_pos = None, None, None, None, None
    n_chunks = 0
    for label, frame, kinds in checked_chunks(source, f"{estimator_name}: row pass"):
        X = frame.drop(columns=[c for c in (source.target, source.weight) if c is not None])
        y = frame[source.target]
        if template is None:  # the first rows: the design's layout and the centring shift
            template = _chunk_design(X, label, groups, random_slopes, estimator_name)
            X_first = X.iloc[:0]
            shift = centring_shift(template, _design.check_target(y, len(y), estimator_name),
                                   fit_intercept)
            z_pos = np.concatenate([[0], 1 + template.slope_pos]).astype(np.int64)
            acc = _Accumulator(len(z_pos), len(template.columns) + 2)
        result = _partition_sums(
            X, y, None if source.weight is None else frame[source.weight], label,
            {c: k for c, k in kinds.items() if c in X.columns}, groups, random_slopes,
            z_pos, shift, estimator_name)
        acc.add(*result)
        n_chunks += 1
    if template is None:
        raise ValueError(f"{estimator_name}: the source has no rows.")
    levels, group_xv, group_rows, total_vv = acc.finish()
    _design.check_label_types(levels, template.group_label)  # across chunks too
    template.levels = levels
    template.codes = np.empty(0, dtype=np.int32)  # the rows are gone
    return ChunkedPass(template, GroupedSums(group_xv, total_vv, group_rows, 0), shift,
                       X_first, source.target, n_chunks)
