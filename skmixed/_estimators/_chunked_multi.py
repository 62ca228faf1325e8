"""The row pass of MixedLM with several grouping factors (nested or crossed, interactions,
random slopes by factor) over a chunked source (skmixed.sources) or a Dask DataFrame: each
chunk's or partition's sums (`skmixed._model.multilevel_sums`: per-level sums and
the level-by-level contingency tables, sparse), its levels mapped by label onto the levels
seen so far, added up.

At the end every factor's levels are put in the order an in-memory fit gives them: by
value (an interaction's by its columns' values, in order), or by a categorical column's
categories when every chunk has the same ones — what concatenating the chunks would keep —
and levels without weight are dropped. The centring shift comes from the first rows, as
in the one-factor pass (`skmixed._estimators._chunked`).
"""

import os
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from .._model.bin_tables import RunningLevels
from .._model.multilevel_fit import multi_centring_shift
from .._model.multilevel_sums import RunningSums, chunk_sums
from ..sources import checked_chunks, chunk_columns
from . import _design, _factors
from ._chunked import dask_frame, split_frame

__all__ = ["MultiPass", "multi_chunked_pass", "multi_dask_pass"]


@dataclass
class MultiPass:
    spec: object  # the ModelSpec: the first chunk's layout, the levels of all chunks
    sums: object  # MultiSums over spec's levels
    shift: np.ndarray
    X_first: pd.DataFrame  # the first chunk's columns (feature names for validate_data)
    y_name: str
    n_chunks: int


@dataclass(frozen=True)
class _Model:
    """What every chunk is read with (sent to the Dask workers)."""
    groups: list
    random_slopes: object
    covariance: object
    estimator_name: str

    def spec(self, frame, label):
        """The chunk's ModelSpec (interactions' levels as tuples); errors name the chunk."""
        try:
            return _factors.make_spec(frame, groups=self.groups,
                                      random_slopes=self.random_slopes,
                                      covariance=self.covariance,
                                      estimator_name=self.estimator_name, level_tuples=True)
        except (ValueError, TypeError) as exc:
            raise type(exc)(f"{label}: {exc}") from None


def _z_pos(factor):
    return np.concatenate([[0], 1 + np.asarray(factor.slope_pos, dtype=np.int64)])


def _categories(frame, column):
    values = frame[column]
    return values.cat.categories if isinstance(values.dtype, pd.CategoricalDtype) else None


def _chunk_part(frame, y, w, label, kinds, model, shift):
    """One chunk's (or partition's) sums and levels — run in the loop over chunks or
    where the partition lives: ``(keys, categories, sums)``, per factor the labels of its
    present levels and its columns' categories (None: not categorical); None for no
    rows."""
    chunk_columns(frame, label, kinds)
    n = len(frame)
    if n == 0:
        return None
    y = _design.check_target(y, n, model.estimator_name)
    w = _design.check_weights(None if w is None else np.asarray(w), n)
    spec = model.spec(frame, label)
    sums = chunk_sums(spec.columns, y, w, [(f.codes, len(f.levels), _z_pos(f))
                                           for f in spec.factors], shift)
    if not sums.finite:
        try:
            _design.check_finite_columns(spec.columns, spec.fixed_labels, y)
        except ValueError as exc:
            raise ValueError(f"{label}: {exc}") from None
        raise ValueError(f"{label}: the cross-products overflowed: rescale the columns.")
    keys = []
    for f, present in zip(spec.factors, sums.present):
        levels = f.levels.tolist() if isinstance(f.levels, pd.Index) else f.levels
        keys.append([levels[i] for i in np.flatnonzero(present)])
    return keys, [[_categories(frame, c) for c in f.labels] for f in spec.factors], sums


def _joined_chunk_part(frame, label, kinds, model, shift):
    X, y, w = split_frame(frame)
    return _chunk_part(X, y, w, label, kinds, model, shift)


class _FactorLevels:
    """One factor's labels over the chunks (a tuple of its columns' values for an
    interaction) as running codes, and per column the categories every chunk shared so
    far (False: a chunk had none or others)."""

    def __init__(self, factor):
        self.factor = factor
        self.running = RunningLevels()
        self.categories = None

    def codes(self, keys, categories):
        if self.categories is None:
            self.categories = [False if c is None else c for c in categories]
        else:
            self.categories = [a if a is not False and b is not None and a.equals(b)
                               else False for a, b in zip(self.categories, categories)]
        return self.running.codes(keys)

    def ordered(self):
        """The running codes in the in-memory fit's order, and the levels' labels in it
        (an interaction's named ``"v1:v2"``, as `interaction` names
        them)."""
        levels, labels = self.running.levels, self.factor.labels
        columns = [levels] if len(labels) == 1 else list(zip(*levels))
        ranks = []
        for values, categories, label in zip(columns, self.categories, labels):
            values = pd.Index(list(values), dtype=object)
            _design.check_label_types(values, label)  # labels of one type per chunk
            if categories is not False:
                ranks.append(categories.get_indexer(values))
                continue
            try:
                ranks.append(pd.factorize(values, sort=True)[0])
            except TypeError:  # unorderable mixed labels: order of appearance
                ranks.append(np.arange(len(values)))
        order = np.lexsort(ranks[::-1])
        if len(labels) == 1:
            return order, pd.Index(levels)[order]
        return order, pd.Index([":".join(_design.level_name(v) for v in levels[i])
                                for i in order])


class _Pass:
    """The running sums of the chunks read so far, their levels by factor."""

    def __init__(self, spec, m):
        self.levels = [_FactorLevels(f) for f in spec.factors]
        self.sums = RunningSums([len(_z_pos(f)) for f in spec.factors], m)
        self.n_parts = 0  # with rows

    def add(self, part):
        if part is None:
            return
        self.n_parts += 1
        keys, categories, sums = part
        self.sums.add(sums, [lv.codes(k, c) for lv, k, c in
                             zip(self.levels, keys, categories)])

    def finish(self, template, estimator_name):
        """The ModelSpec (the first chunk's layout, the levels of all chunks in the
        in-memory order, levels without weight dropped; no rows) and the sums."""
        factors, keep = [], []
        for k, lv in enumerate(self.levels):
            order, levels = lv.ordered()
            factor = replace(template.factors[k], codes=None, levels=levels)
            used = _factors.drop_unused_levels(
                factor, self.sums.weight(k, len(order))[order], estimator_name)
            factors.append(factor)
            keep.append(order[used])
        spec = replace(template, columns=[], factors=factors)
        return spec, self.sums.finish(keep)


def multi_chunked_pass(source, *, groups, random_slopes, covariance, fit_intercept,
                       estimator_name):
    """One pass over ``source`` (a [`ChunkedData`][skmixed.sources.ChunkedData])."""
    model = _Model(list(groups), random_slopes, covariance, estimator_name)
    acc = template = shift = X_first = None
    n_chunks = 0
    for label, frame, kinds in checked_chunks(source, f"{estimator_name}: row pass"):
        X = frame.drop(columns=[c for c in (source.target, source.weight) if c is not None])
        y = frame[source.target]
        if template is None:  # the first rows: the model's layout and the centring shift
            template = model.spec(X, label)
            X_first = X.iloc[:0]
            shift = multi_centring_shift(
                template, _design.check_target(y, len(y), estimator_name), fit_intercept)
            acc = _Pass(template, len(template.columns) + 2)
        acc.add(_chunk_part(X, y, None if source.weight is None else frame[source.weight],
                            label, {c: k for c, k in kinds.items() if c in X.columns},
                            model, shift))
        n_chunks += 1
    if template is None:
        raise ValueError(f"{estimator_name}: the source has no rows.")
    spec, sums = acc.finish(template, estimator_name)
    return MultiPass(spec, sums, shift, X_first, source.target, n_chunks)


def _window():
    """Partitions computed at once: twice the cluster's threads (the results of a window
    are added up before the next is computed, so the client holds a few partitions' sums
    at a time, in partition order)."""
    try:
        from distributed import default_client

        return max(4, 2 * sum(default_client().nthreads().values()))
    except (ImportError, ValueError):
        return max(4, 2 * (os.cpu_count() or 1))


def multi_dask_pass(X, y, w, *, groups, random_slopes, covariance, fit_intercept,
                    estimator_name):
    """One pass over a Dask DataFrame X and Series y (and weights w), joined by
    `dask_frame`: every partition reduced to its sums where it lives
    (one task each), added up on the client in partition order. The centring shift comes
    from the first rows (``head``)."""
    import dask

    model = _Model(list(groups), random_slopes, covariance, estimator_name)
    frame = dask_frame(X, y, w, estimator_name)
    head, y_head, _ = split_frame(frame.head(4096, npartitions=-1))
    if len(head) == 0:
        raise ValueError(f"{estimator_name}: the Dask DataFrame has no rows.")
    template = model.spec(head, "the first rows")
    shift = multi_centring_shift(template, np.asarray(y_head, dtype=float), fit_intercept)
    kinds = chunk_columns(X._meta, "the Dask DataFrame's metadata", None)
    parts = frame.to_delayed()
    tasks = [dask.delayed(_joined_chunk_part)(part, f"partition {i}", kinds, model, shift)
             for i, part in enumerate(parts)]
    acc = _Pass(template, len(template.columns) + 2)
    step = _window()
    for start in range(0, len(tasks), step):
        for part in dask.compute(*tasks[start:start + step]):
            acc.add(part)
    if not acc.n_parts:
        raise ValueError(f"{estimator_name}: the Dask DataFrame has no rows.")
    spec, sums = acc.finish(template, estimator_name)
    return MultiPass(spec, sums, shift, X._meta, getattr(y, "name", None) or "y", len(parts))
