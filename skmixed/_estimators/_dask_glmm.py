"""MixedGLM on a Dask DataFrame: the rows are shuffled so that every group lives in one
partition, and each partition becomes a Dask actor (a stateful object on its worker) that
holds its groups' rows in group order with their Laplace deviance
(:class:`~skmixed._model.glmm.LaplaceDeviance`: the conditional modes warm-started from its
last evaluation). The Laplace deviance and its exact gradient are sums over groups, so each
evaluation of the client-side optimizer sends (β, θ) to the actors and adds up their
(deviance, gradient) pairs — only those small summaries travel; the PIRLS steps for the
modes stay partition-local. At the optimum the actors return their groups' modes.
"""

import numpy as np
import pandas as pd

from .._model.glmm import GroupedRows, LaplaceDeviance, group_order
from ..sources import chunk_columns
from . import _design

__all__ = ["DaskLaplace", "partition_arrays"]


def partition_arrays(frame, spec, label):
    """A partition's arrays: X (intercept and the kept fixed columns, centred and scaled
    by ``spec["scaling"]``), z columns, y
    (numeric), trials, offset, weights, group codes and levels."""
    chunk_columns(frame, label, spec["kinds"])
    n = len(frame)
    cols = _design.fixed_columns(frame, spec["fixed"])
    extra = [spec[k] for k in ("trials", "offset", "weight") if spec[k] is not None]
    try:
        _design.check_finite_columns(cols + _design.fixed_columns(frame, extra),
                                     spec["fixed"] + extra)
    except ValueError as exc:
        raise ValueError(f"{label}: {exc}") from None
    X = np.column_stack(([np.ones(n)] if spec["intercept"] else [])
                        + [np.asarray(c, dtype=float) for c in cols]) \
        if (spec["intercept"] or cols) else np.empty((n, 0))
    spec["scaling"].transform(X, first=int(spec["intercept"]))  # the internal columns
    y = frame[spec["target"]]
    if spec["classes"] is not None:
        y = np.asarray(pd.Index(spec["classes"]).get_indexer(y), dtype=float)
        if np.any(y < 0):
            raise ValueError(f"{label}: y has a label outside the classes "
                             f"{list(spec['classes'])} seen in the data.")
    else:
        y = np.asarray(y, dtype=float)
    take = (lambda c: np.asarray(frame[c], dtype=float) if c is not None else np.empty(0))
    codes, levels = _design.encode_groups(frame[spec["group"]], spec["group"])
    return X, y, take(spec["trials"]), take(spec["offset"]), take(spec["weight"]), \
        np.asarray(codes, dtype=np.int64), levels


class _PartitionLaplace:
    """One partition's groups and their Laplace deviance (a Dask actor)."""

    def __init__(self, frame, spec, label):
        X, y, m, offset, w, codes, levels = partition_arrays(frame, spec, label)
        present = np.bincount(codes, minlength=len(levels)) > 0
        self.levels = list(levels[present])
        codes = (np.cumsum(present) - 1)[codes]
        order, starts = group_order(codes, len(self.levels))
        take = (lambda a: a if (order is None or a.size == 0) else a[order])
        self.rows = GroupedRows(np.asfortranarray(take(X)), spec["zcol"],
                                np.ascontiguousarray(take(y)), take(m), take(offset),
                                take(w), starts)
        self.lap = LaplaceDeviance(spec["family"], self.rows, spec["term"], n_agq=1)

    def value_and_grad(self, x):
        if self.rows.n_groups == 0:
            return 0.0, np.zeros(len(x))
        return self.lap.value_and_grad(np.asarray(x, dtype=float))

    def modes(self, x):
        if self.rows.n_groups == 0:
            return [], np.zeros((0, 0)), np.zeros((0, 0))
        modes, cond_var = self.lap.modes(np.asarray(x, dtype=float))
        return self.levels, modes, cond_var


class DaskLaplace:
    """The objective the optimizer sees: ``value_and_grad`` summed over the actors."""

    def __init__(self, client, frames, spec):
        futures = client.compute(frames)
        self.actors = [client.submit(_PartitionLaplace, f, spec, f"partition {i}",
                                     actor=True).result()
                       for i, f in enumerate(futures)]
        self.n_groups = None

    def value_and_grad(self, x):
        parts = [a.value_and_grad(x) for a in self.actors]  # ActorFutures, in parallel
        total_f, total_g = 0.0, None
        for fut in parts:
            f, g = fut.result()
            total_f += f
            total_g = np.asarray(g, dtype=float) if total_g is None else total_g + g
        return total_f, total_g

    def modes(self, x):
        levels, modes, cond = [], [], []
        for fut in [a.modes(x) for a in self.actors]:
            lv, m, c = fut.result()
            if len(lv):
                levels += list(lv)
                modes.append(m)
                cond.append(c)
        modes, cond = np.concatenate(modes), np.concatenate(cond)
        try:
            perm = np.argsort(np.asarray(levels), kind="stable")
        except TypeError:
            perm = np.arange(len(levels))
        return pd.Index([levels[i] for i in perm]), modes[perm], cond[perm]
