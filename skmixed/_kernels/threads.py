"""Thread count for the parallel kernels, set for the duration of a fit, and the pool that
runs a per-group kernel over parts of the groups (:func:`over_groups`)."""

import functools
import os
import threading
from contextlib import contextmanager

import numba
import numpy as np
from threadpoolctl import ThreadpoolController

__all__ = ["resolve_n_jobs", "numba_threads", "single_threaded_blas", "blas_threads",
           "over_groups", "over_blocks", "over_rows", "THREAD_MIN_ROWS",
           "LAPLACE_THREAD_MIN_ROWS"]


@functools.lru_cache(maxsize=1)
def _controller():
    return ThreadpoolController()


@contextmanager
def single_threaded_blas():
    """Limit BLAS to one thread for the enclosed block.

    The optimizer's linear algebra is on p×p and θ-sized arrays, where BLAS threads only
    cost: with OpenBLAS threads waking for each tiny call, scipy's L-BFGS-B ran 50× slower
    beside Numba's thread pool on two cores.
    """
    with _controller().limit(limits=1, user_api="blas"):
        yield


@contextmanager
def blas_threads(n):
    """Limit BLAS to ``n`` threads for the enclosed block (dense factorizations of a
    thousand columns, where threads pay)."""
    with _controller().limit(limits=max(1, int(n)), user_api="blas"):
        yield


def resolve_n_jobs(n_jobs):
    """Translate sklearn's ``n_jobs`` into a Numba thread count.

    ``None`` and ``-1`` mean all threads Numba was started with; negative values count
    back from that (``-2`` is all but one); values above the maximum are clipped.
    """
    max_threads = numba.config.NUMBA_NUM_THREADS
    if n_jobs is None:
        return max_threads
    if n_jobs == 0:
        raise ValueError("n_jobs == 0 has no meaning; use None, -1 or a positive integer.")
    if n_jobs < 0:
        return max(1, max_threads + 1 + n_jobs)
    return min(int(n_jobs), max_threads)


@contextmanager
def numba_threads(n_jobs):
    """Run the enclosed block with Numba's thread count set from ``n_jobs``.

    The previous count is restored on exit, also when the block raises.
    """
    previous = numba.get_num_threads()
    numba.set_num_threads(resolve_n_jobs(n_jobs))
    try:
        yield numba.get_num_threads()
    finally:
        numba.set_num_threads(previous)


#: the fewest rows for which a pass is split over threads: below, waking a thread costs
#: more than it saves (on a VM whose second core sleeps between passes, ~1-2 ms)
THREAD_MIN_ROWS = 100_000
#: the same for the Laplace deviance's passes, run many times per fit (threads stay awake):
#: a second thread pays from ~10,000 rows (a 20,000-row binomial fit: 34–36 → 25–26 ms)
LAPLACE_THREAD_MIN_ROWS = 10_000


_POOL = {}  # process id → the pool (a forked child starts its own: threads do not fork)


def _pool():
    pool = _POOL.get(os.getpid())
    if pool is None:
        from concurrent.futures import ThreadPoolExecutor

        _POOL.clear()
        pool = _POOL[os.getpid()] = ThreadPoolExecutor(
            max_workers=numba.config.NUMBA_NUM_THREADS, thread_name_prefix="skmixed-kernel")
    return pool


def _threads_for(n_rows, n_parts, min_rows=None):
    """The threads a pass of ``n_rows`` rows in ``n_parts`` separable parts runs on: the
    current count, or 1 when there is one thread, one part or fewer than ``min_rows``
    rows (default :data:`THREAD_MIN_ROWS`)."""
    min_rows = THREAD_MIN_ROWS if min_rows is None else min_rows
    n_threads = numba.get_num_threads()
    return 1 if n_threads == 1 or n_parts < 2 or n_rows < min_rows else n_threads


def _run_parts(kernel, parts, args_for):
    if threading.current_thread().name.startswith("skmixed-kernel"):
        # a kernel's part never waits for the pool it runs on
        for a, b in parts:
            kernel(*args_for(a, b))
        return
    futures = [_pool().submit(kernel, *args_for(a, b)) for a, b in parts]
    for future in futures:
        future.result()


def over_groups(kernel, starts, args_for, min_rows=None):
    """Run a per-group kernel (compiled with ``nogil=True``) over all groups, on
    ``numba.get_num_threads()`` threads when there are :data:`THREAD_MIN_ROWS` rows.

    ``starts``: the groups' first rows (G + 1 offsets); ``args_for(starts_part, groups)``
    gives the kernel's arguments for the groups ``groups`` (a slice) with their offsets
    ``starts_part``: the per-group outputs sliced alike, so each call writes only its own
    groups. Every group's numbers are computed alone, so they do not depend on how the
    groups are split: any thread count gives the same bits. The kernel is compiled once,
    serially, for every problem size (a ``parallel=True`` compilation costs several times
    as much). ``min_rows``: the fewest rows split (default :data:`THREAD_MIN_ROWS`; lower for
    a kernel called many times per fit, whose threads stay awake between calls)."""
    n_groups = starts.shape[0] - 1
    n_threads = _threads_for(starts[-1] - starts[0], n_groups, min_rows)
    if n_threads == 1:
        return kernel(*args_for(starts, slice(0, n_groups)))
    # two parts per thread, of about equal rows (one slow part does not hold the rest)
    cuts = np.searchsorted(starts, np.linspace(starts[0], starts[-1], 2 * n_threads + 1))
    cuts = np.unique(np.clip(cuts, 0, n_groups))
    cuts[0], cuts[-1] = 0, n_groups
    parts = [(int(a), int(b)) for a, b in zip(cuts[:-1], cuts[1:]) if b > a]
    _run_parts(kernel, parts, lambda a, b: args_for(starts[a:b + 1], slice(a, b)))


def over_blocks(kernel, args, n_blocks, n_rows):
    """Run a blocked kernel (``nogil=True``) whose last two arguments are the range of
    blocks ``first, last`` it computes (each block writes its own outputs, added in block
    order by the caller: :mod:`.blocks`): all ``n_blocks`` at once, or contiguous ranges on
    the threads of :func:`over_groups` from :data:`THREAD_MIN_ROWS` rows on. The blocks
    are fixed by the problem, so any thread count gives the same bits."""
    n_threads = _threads_for(n_rows, n_blocks)
    if n_threads == 1:
        return kernel(*args, 0, n_blocks)
    cuts = np.linspace(0, n_blocks, min(n_blocks, n_threads) + 1).astype(np.int64)
    _run_parts(kernel, list(zip(cuts[:-1], cuts[1:])), lambda a, b: (*args, int(a), int(b)))


def over_rows(kernel, n_rows, args_for):
    """Run a per-row kernel (``nogil=True``; each row's outputs computed alone) over the
    rows ``args_for(rows)`` gives the arguments for (``rows``: a slice), on the threads
    of :func:`over_groups`, from :data:`THREAD_MIN_ROWS` rows on."""
    n_threads = _threads_for(n_rows, n_rows)
    if n_threads == 1:
        return kernel(*args_for(slice(0, n_rows)))
    cuts = np.linspace(0, n_rows, 2 * n_threads + 1).astype(np.int64)
    _run_parts(kernel, list(zip(cuts[:-1], cuts[1:])), lambda a, b: args_for(slice(a, b)))
