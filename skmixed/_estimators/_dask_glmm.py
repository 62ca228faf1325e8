"""MixedGLM on a Dask DataFrame: the rows are shuffled so that every group lives in one
partition, and each partition becomes a Dask actor (a stateful object on its worker) that
holds its groups' rows in group order with their Laplace deviance
(`LaplaceDeviance`: the conditional modes warm-started from its
last evaluation). The Laplace deviance and its exact gradient are sums over groups, so each
evaluation of the client-side optimizer sends (β, θ) to the actors and adds up their
(deviance, gradient) pairs — only those small summaries travel; the PIRLS steps for the
modes stay partition-local. At the optimum the actors return their groups' modes.
"""

import asyncio
import time
import warnings

import numpy as np
import pandas as pd

from .._model import identifiability
from .._model.glmm import GroupedRows, LaplaceDeviance, family_param_start, group_order
from .._model.glmm_fit import fit_objective
from .._model.multilevel_fit import BackTransform, glm_start
from .._model.scaling import ColumnScaling
from ..exceptions import LostWorkerError
from ..families import get_family
from ..sources import chunk_columns
from . import _design, _factors
from ._chunked import dask_frame

__all__ = ["DaskLaplace", "fit_dask", "partition_arrays", "shuffle_by_group"]


def shuffle_by_group(frame, group, head):
    """The rows shuffled so that every group lives in one partition. A categorical group
    column travels as its values: Dask's P2P shuffle cannot concatenate partitions whose
    categories differ (read from several Parquet files, their Arrow dictionaries do not
    combine); ``head`` (the first rows) gives the values' dtype."""
    if isinstance(frame._meta[group].dtype, pd.CategoricalDtype):
        frame = frame.map_partitions(_group_values, group,
                                     meta=_group_values(head.iloc[:0], group))
    return frame.shuffle(on=group)


def _group_values(frame, group):
    column = frame[group]
    if isinstance(column.dtype, pd.CategoricalDtype):
        return frame.assign(**{group: column.to_numpy()})
    return frame


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
    """The objective the optimizer sees: ``value_and_grad`` summed over the actors.

    A worker may be lost mid-fit (killed, out of memory, retired). Every request to an
    actor is watched: when its worker no longer answers, or has left the cluster while
    the request waits (checked every ``POLL_SECONDS``), the actor is rebuilt on the
    workers that remain from its partition (recomputed from the task graph) and asked
    again at the same (β, θ): the partition's Laplace deviance is a function of (β, θ)
    alone (the rebuilt actor's PIRLS starts its modes from zero instead of from the last
    evaluation's, which moves the result by PIRLS's tolerance only), so the optimizer
    continues where it was. After ``MAX_REBUILDS`` rebuilds of one partition within one
    evaluation, or a rebuild that fails or outlasts ``max(REBUILD_SECONDS, 3 × the first
    build)``, a [`LostWorkerError`][skmixed.exceptions.LostWorkerError] names the worker."""

    POLL_SECONDS = 2.0
    MAX_REBUILDS = 2
    REBUILD_SECONDS = 120.0

    def __init__(self, client, frames, spec):
        t0 = time.perf_counter()
        self.client, self.frames, self.spec = client, frames, spec
        futures = client.compute(frames)
        pending = [client.submit(_PartitionLaplace, f, spec, f"partition {i}", actor=True)
                   for i, f in enumerate(futures)]
        self.actors = [future.result() for future in pending]
        self.build_seconds = time.perf_counter() - t0
        self.n_rebuilds = 0
        self.n_groups = None

    def value_and_grad(self, x):
        total_f, total_g = 0.0, None
        for f, g in self._ask_all("value_and_grad", x):  # in partition order
            total_f += f
            total_g = np.asarray(g, dtype=float) if total_g is None else total_g + g
        return total_f, total_g

    def modes(self, x):
        levels, modes, cond = [], [], []
        for lv, m, c in self._ask_all("modes", x):
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

    # ------------------------------------------------------------ lost workers
    def _ask_all(self, method, x):
        """``method(x)`` of every actor (sent to all first, so they run in parallel),
        their answers in partition order; lost actors are rebuilt and asked again."""
        x = np.asarray(x, dtype=float)
        calls = [self._send(i, method, x) for i in range(len(self.actors))]
        answers = []
        for i in range(len(self.actors)):
            for attempt in range(self.MAX_REBUILDS + 1):
                address = self._address(i)
                try:
                    answers.append(self._wait(i, calls[i]))
                    break
                except _WorkerLost as lost:
                    if attempt == self.MAX_REBUILDS:
                        raise LostWorkerError(
                            f"the Dask worker {address} holding partition {i} of the "
                            f"MixedGLM fit was lost ({lost}), after {self.MAX_REBUILDS} "
                            "rebuilds of that partition within one deviance evaluation; "
                            "the fit can be rerun.") from None
                    for j in self._rebuild(i, address, lost):
                        if j >= i:  # answers before i came in before the loss
                            calls[j] = self._send(j, method, x)
        return answers

    def _address(self, i):
        return getattr(self.actors[i], "_address", "?")

    def _send(self, i, method, x):
        try:
            return getattr(self.actors[i], method)(x)
        except (RuntimeError, OSError) as exc:  # "Worker holding Actor was lost"
            return _WorkerLost(str(exc))

    def _wait(self, i, call):
        """The answer of one request, watching the actor's worker while it waits."""
        if isinstance(call, _WorkerLost):
            raise call
        while True:
            try:
                return call.result(timeout=self.POLL_SECONDS)
            except (TimeoutError, asyncio.TimeoutError):
                if self._address(i) not in self._workers():
                    raise _WorkerLost("it left the cluster") from None
            except OSError as exc:  # "Unable to contact Actor's worker", closed comms
                raise _WorkerLost(str(exc) or type(exc).__name__) from None

    def _workers(self):
        return set(self.client.scheduler_info(n_workers=-1)["workers"])

    def _rebuild(self, i, address, cause):
        """Partition ``i`` and every other partition on its worker or on a worker that
        has left, recomputed from the graph (together: one shuffle) and made actors
        again; returns their indices."""
        workers = self._workers()
        lost = [j for j in range(len(self.actors))
                if self._address(j) == address or self._address(j) not in workers]
        limit = max(self.REBUILD_SECONDS, 3.0 * self.build_seconds)
        warnings.warn(f"the Dask worker {address} holding partition {i} of the MixedGLM "
                      f"fit was lost ({cause}); rebuilding partition(s) {lost} on the "
                      "remaining workers and continuing from the current parameters.",
                      RuntimeWarning, stacklevel=2)
        t0 = time.perf_counter()
        try:
            frames = self.client.compute([self.frames[j] for j in lost])
            pending = [self.client.submit(_PartitionLaplace, frame, self.spec,
                                          f"partition {j}", actor=True, pure=False)
                       for j, frame in zip(lost, frames)]
            for j, actor in zip(lost, pending):
                left = limit - (time.perf_counter() - t0)
                self.actors[j] = actor.result(timeout=max(left, self.POLL_SECONDS))
        except Exception as exc:
            raise LostWorkerError(
                f"the Dask worker {address} holding partition {i} of the MixedGLM fit was "
                f"lost ({cause}) and partition(s) {lost} could not be rebuilt within "
                f"{limit:.0f} s ({type(exc).__name__}: {exc}); the fit can be rerun.") \
                from exc
        self.n_rebuilds += len(lost)
        return lost


class _WorkerLost(Exception):
    """An actor that did not answer because its worker is gone (handled inside)."""


def _partition_xtx(frame, spec, label):
    """X'WX of a partition's fixed-effect block (intercept first)."""
    X, _, _, _, w, _, _ = partition_arrays(frame, spec, label)
    return X.T @ (X * (w if w.size else np.ones(X.shape[0]))[:, None])


def fit_dask(est, X, y, sample_weight):
    """MixedGLM ``est`` on a Dask DataFrame: rows shuffled by group, one actor per
    partition holding its groups' Laplace deviance; the optimizer on the client sums their
    deviances and gradients. Returns the ModelSpec, the FitResult, the classes, the trials
    and offset columns and an empty frame of X's columns (for the fitted attributes)."""
    import dask
    from distributed import get_client

    name = type(est).__name__
    t0 = time.perf_counter()
    if _factors.is_multi(est.groups) or est.groups is None:
        raise ValueError("a Dask fit of MixedGLM takes one grouping factor.")
    family = get_family(est.family, est.link)
    if family.kind not in ("proportion", "count") or family.link not in ("logit", "log") \
            or est.n_agq != 1:
        raise ValueError("a Dask fit of MixedGLM supports binomial logit, Poisson log and "
                         "nbinom2 by the Laplace approximation (n_agq=1).")
    try:
        client = get_client()
    except ValueError:
        raise ValueError("a Dask fit of MixedGLM needs a dask.distributed Client "
                         "(e.g. Client(LocalCluster())): its partitions are actors on "
                         "the workers.") from None
    meta = X._meta
    group = _design.resolve_column(meta, est.groups, "groups")
    extra = {p: _design.resolve_column(meta, getattr(est, p), p)
             for p in ("trials", "offset") if getattr(est, p) is not None}
    frame = dask_frame(X, y, sample_weight, name)
    head = frame.head(100_000, npartitions=-1)  # the layout and the start values
    if len(head) == 0:
        raise ValueError(f"{name}: the Dask DataFrame has no rows.")
    design = _design.make_design(head[list(meta.columns)], groups=group,
                                 random_slopes=est.random_slopes,
                                 exclude=list(extra.values()), estimator_name=name)
    classes = None
    if est._is_classifier():
        classes = np.sort(np.asarray(y.unique().compute()))
        if classes.size != 2:
            raise ValueError(f"{name} (binomial, no trials) is a binary classifier; y "
                             f"has {classes.size} classes.")
    names = (["(Intercept)"] if est.fit_intercept else []) + list(design.fixed_names)
    spec = dict(kinds=chunk_columns(frame._meta, "metadata", None),
                fixed=list(design.fixed_labels), intercept=est.fit_intercept,
                target="__y__", classes=classes, trials=extra.get("trials"),
                offset=extra.get("offset"),
                weight="__w__" if sample_weight is not None else None, group=group,
                zcol=None, family=family, term=None,
                scaling=ColumnScaling.from_columns(design.columns,
                                                   intercept=est.fit_intercept,
                                                   slope_pos=design.slope_pos))
    # the fixed effects' rank check on X'WX summed over the partitions
    XtX = sum(dask.compute(*[dask.delayed(_partition_xtx)(part, spec, f"partition {i}")
                             for i, part in enumerate(frame.to_delayed())]))
    kept, dropped = identifiability.independent_fixed_columns(XtX, names, stacklevel=4)
    offset = int(est.fit_intercept)
    spec["fixed"] = [lab for j, lab in enumerate(design.fixed_labels)
                     if offset + j in set(kept)]
    spec["intercept"] = bool(est.fit_intercept and 0 in set(kept))
    back = BackTransform(spec["scaling"], kept)
    spec["scaling"] = spec["scaling"].subset([k - offset for k in kept if k >= offset])
    zcol = [-1]
    for nm, j in zip(design.slope_names, design.slope_pos):
        if offset + j not in set(kept):
            raise ValueError(f"random-slope column {nm!r} was dropped as collinear.")
        zcol.append(list(kept).index(offset + j))
    spec["zcol"] = np.array(zcol, dtype=np.int64)
    model = _factors.one_factor_spec(design, est.covariance, codes=False)
    term = spec["term"] = model.factors[0].term
    Xh, yh, mh, oh, wh, _, _ = partition_arrays(head, spec, "the first rows")
    beta0 = glm_start(Xh, yh, mh, oh, wh, family)
    extra0 = family_param_start(family, Xh, yh, oh, wh, beta0)  # from the first rows
    shuffled = shuffle_by_group(frame, group, head)
    objective = DaskLaplace(client, shuffled.to_delayed(),
                            dict(spec, kinds=chunk_columns(shuffled._meta, "metadata",
                                                           None)))
    n_obs = float(frame["__w__"].sum().compute() if sample_weight is not None
                  else len(frame))
    result = fit_objective(objective, term, beta0, extra0,
                           param=family.laplace_param(yh, wh), back=back,
                           factor=model.factors[0], names=[names[j] for j in kept],
                           dropped=dropped, n_obs=n_obs, tol=est.tol,
                           max_iter=est.max_iter)
    # each partition's labels were checked; all of them together here
    _design.check_label_types(result.factors[0].levels, group)
    result.opt.timings["total"] = time.perf_counter() - t0
    return model, result, classes, extra, head[list(meta.columns)].iloc[:0]
