"""``numba_threads`` and ``resolve_n_jobs``: sklearn's ``n_jobs`` as a Numba thread count."""

import numba
import pytest

from skmixed._kernels.threads import numba_threads, resolve_n_jobs

MAX_THREADS = numba.config.NUMBA_NUM_THREADS


@pytest.fixture(autouse=True)
def restore_thread_count():
    """Leave the process's thread count as found, whatever a failing test did."""
    before = numba.get_num_threads()
    yield
    numba.set_num_threads(before)


def test_resolve_none_and_minus_one_mean_all_threads():
    assert resolve_n_jobs(None) == MAX_THREADS
    assert resolve_n_jobs(-1) == MAX_THREADS


def test_resolve_negative_counts_back_from_all():
    assert resolve_n_jobs(-2) == max(1, MAX_THREADS - 1)
    assert resolve_n_jobs(-MAX_THREADS) == 1
    # never below one thread
    assert resolve_n_jobs(-MAX_THREADS - 5) == 1
    assert resolve_n_jobs(-10_000) == 1


def test_resolve_positive_values_are_clipped():
    assert resolve_n_jobs(1) == 1
    assert resolve_n_jobs(MAX_THREADS) == MAX_THREADS
    assert resolve_n_jobs(MAX_THREADS + 1) == MAX_THREADS
    assert resolve_n_jobs(10_000) == MAX_THREADS
    assert isinstance(resolve_n_jobs(1), int)


def test_resolve_zero_raises():
    with pytest.raises(ValueError, match="n_jobs"):
        resolve_n_jobs(0)


def test_numba_threads_sets_and_restores():
    numba.set_num_threads(MAX_THREADS)
    with numba_threads(1) as n:
        assert n == 1
        assert numba.get_num_threads() == 1
    assert numba.get_num_threads() == MAX_THREADS

    numba.set_num_threads(1)
    with numba_threads(None) as n:
        assert n == MAX_THREADS
        assert numba.get_num_threads() == MAX_THREADS
    assert numba.get_num_threads() == 1

    with numba_threads(10_000) as n:
        assert n == numba.get_num_threads() == MAX_THREADS
    assert numba.get_num_threads() == 1


def test_numba_threads_nested():
    numba.set_num_threads(MAX_THREADS)
    with numba_threads(1):
        with numba_threads(-1) as inner:
            assert inner == numba.get_num_threads() == MAX_THREADS
        assert numba.get_num_threads() == 1
    assert numba.get_num_threads() == MAX_THREADS


def test_numba_threads_restores_on_exception():
    numba.set_num_threads(MAX_THREADS)
    with pytest.raises(RuntimeError, match="boom"):
        with numba_threads(1):
            assert numba.get_num_threads() == 1
            raise RuntimeError("boom")
    assert numba.get_num_threads() == MAX_THREADS


def test_numba_threads_zero_raises_and_leaves_count_alone():
    numba.set_num_threads(1)
    with pytest.raises(ValueError, match="n_jobs"):
        with numba_threads(0):
            pass  # pragma: no cover - never entered
    assert numba.get_num_threads() == 1


@pytest.mark.skipif(MAX_THREADS < 2, reason="Numba was started with a single thread")
def test_numba_threads_two():
    numba.set_num_threads(1)
    with numba_threads(2) as n:
        assert n == numba.get_num_threads() == 2
    with numba_threads(-2) as n:
        assert n == MAX_THREADS - 1
    assert numba.get_num_threads() == 1
