"""Fixtures for the pytest-benchmark suites.

Run ``pytest benchmarks`` for the quick grid, ``pytest benchmarks --bench-full`` for the whole
grid (rows 1e4…2e6, groups 20…20,000). Numba compilation is never timed: every benchmark uses
``benchmark.pedantic(..., warmup_rounds=1)``. Each records the thread count, Numba version and
CPU in ``extra_info``, and checks its result against a reference computed outside the timed
code, so that a fast wrong kernel (or an optimizer that stops short) fails:

* fits of the simulated data (MixedLM, MixedGLM, AdditiveMixed, the thread study): the fitted
  objective against plain-NumPy references of the same data (``reference_objectives.py``) —
  the REML criterion or Laplace/quadrature deviance at the fitted parameters and their
  optimality; binned Gaussian additive fits against the same fit from chunks (NumPy bin
  tables); binomial and exact additive fits by their penalized likelihood equations;
* lme4's data sets (``test_bench_multilevel.py``): criterion, θ and fixed effects against
  the lme4 reference JSONs in ``tests/reference`` (made by the R scripts beside them);
* out of core and Dask: the in-memory fit of the same rows; peers: the peer's own fit (all
  fixed effects and its criterion);
* kernel-only passes (the row pass, the binned pass): every sum against NumPy's.
"""

import functools
import platform

import numba
import numpy as np
import pandas as pd
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


def with_by_factor(df, n_levels=10):
    """The study's rows with a factor ``f`` of ``n_levels`` levels ("l0", "l1", …: row i at
    level i mod n_levels) and its treatment indicators ``f_l1`` … (the main effect of
    ``f + s(z, by = f)``), for the ``by =`` benchmarks (issue 18)."""
    codes = np.arange(len(df)) % n_levels
    levels = [f"l{i}" for i in range(n_levels)]
    out = df.assign(f=pd.Categorical.from_codes(codes, levels))
    for i in range(1, n_levels):
        out[f"f_l{i}"] = (codes == i).astype(float)
    return out


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
