"""Thread count for Numba's parallel kernels, set for the duration of a fit."""

from contextlib import contextmanager

import numba

__all__ = ["resolve_n_jobs", "numba_threads"]


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
