"""Fixtures for the pytest-benchmark suites.

Run ``pytest benchmarks`` for the quick grid, ``pytest benchmarks --bench-full`` for the whole
grid (rows 1e4…2e6, groups 20…20,000). Numba compilation is never timed: every benchmark uses
``benchmark.pedantic(..., warmup_rounds=1)``. Each records the thread count, Numba version and
CPU in ``extra_info`` and asserts the fitted objective, so a fast wrong kernel fails.
"""

import functools
import platform

import numba
import pytest

from skmixed.datasets import make_multilevel


def pytest_addoption(parser):
    parser.addoption("--bench-full", action="store_true", default=False,
                     help="run the full benchmark grid instead of the quick one")


def grid(request, quick, full):
    return full if request.config.getoption("--bench-full") else quick


@functools.lru_cache(maxsize=4)
def simulated(n_obs, n_groups, slope_sd=0.0):
    """The study's simulated data (cached: the same frame for every benchmark of a size)."""
    return make_multilevel(n_obs, n_groups, slope_sd=slope_sd, random_state=12358)


def _cpu_name():
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@pytest.fixture
def machine_info(benchmark):
    """Fill ``extra_info`` with what a reader needs to interpret the timing."""
    def record(**extra):
        benchmark.extra_info.update(
            numba=numba.__version__, cpu=_cpu_name(),
            max_threads=numba.config.NUMBA_NUM_THREADS,
            threading_layer=numba.config.THREADING_LAYER, **extra)
    return record
