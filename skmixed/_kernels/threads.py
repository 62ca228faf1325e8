"""Thread count for Numba's parallel kernels, set for the duration of a fit."""

import functools
from contextlib import contextmanager

import numba
from threadpoolctl import ThreadpoolController

__all__ = ["resolve_n_jobs", "numba_threads", "single_threaded_blas", "blas_threads"]


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
