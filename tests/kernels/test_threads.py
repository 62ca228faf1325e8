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


# --- which compilation runs, and the same bits whatever the threads ------------------------

def _glmm_data(n, groups=40, seed=3):
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    g = np.sort(rng.integers(0, groups, n))
    x = rng.normal(size=n)
    eta = -0.3 + 0.8 * x + rng.normal(scale=0.7, size=groups)[g]
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-eta))).astype(float)
    return pd.DataFrame({"g": g, "x": x}), y


def _fit_both(monkeypatch, make, X, y, **settings):
    """Fits with 1 and 2 threads under the module settings given (``module.NAME``)."""
    for name, value in settings.items():
        monkeypatch.setattr(name, value)
    return [make(n_jobs).fit(X, y) for n_jobs in (1, 2)]


def test_glmm_groups_split_over_threads_give_the_same_bits(monkeypatch):
    """``over_groups`` runs the Laplace kernel on parts of the groups in threads: each group
    is computed alone, so forcing the split (LAPLACE_THREAD_MIN_ROWS = 0) on 2 threads gives the
    bits of one thread, and of the unsplit pass."""
    import numpy as np

    from skmixed import MixedGLM

    X, y = _glmm_data(3_000)

    def make(n_jobs):
        return MixedGLM(groups="g", n_jobs=n_jobs)

    one, two = _fit_both(monkeypatch, make, X, y,
                         **{"skmixed._kernels.threads.LAPLACE_THREAD_MIN_ROWS": 0})
    unsplit = make(2)
    monkeypatch.setattr("skmixed._kernels.threads.LAPLACE_THREAD_MIN_ROWS", 10**12)
    unsplit.fit(X, y)
    for other in (two, unsplit):
        np.testing.assert_array_equal(one.coef_, other.coef_)
        np.testing.assert_array_equal(one.theta_, other.theta_)
        assert one.loglik_ == other.loglik_


def test_over_groups_splits_by_rows_and_covers_every_group(monkeypatch):
    """Every group is passed exactly once, in parts of about equal rows."""
    import numpy as np

    from skmixed._kernels import threads

    monkeypatch.setattr(threads, "THREAD_MIN_ROWS", 0)
    starts = np.array([0, 5, 6, 40, 41, 42, 90, 100], dtype=np.int64)
    seen = []

    def kernel(part_starts, groups):
        seen.append((groups.start, groups.stop, part_starts.tolist()))

    with threads.numba_threads(2):
        threads.over_groups(kernel, starts, lambda s, g: (s, g))
    seen.sort()
    assert seen[0][0] == 0 and seen[-1][1] == 7
    assert all(a[1] == b[0] for a, b in zip(seen[:-1], seen[1:]))
    for lo, hi, part in seen:
        assert part == starts[lo:hi + 1].tolist()


def test_serial_and_parallel_compilations_give_the_same_bits(monkeypatch):
    """A prange kernel (:class:`skmixed._cache.SizedKernel`) runs its serial compilation
    below PARALLEL_MIN_SIZE and the parallel one above: both sum over the same fixed
    blocks, so a fit gives the same bits either way, on 1 or 2 threads."""
    import numpy as np

    from skmixed import MixedLM

    rng = np.random.default_rng(7)
    n = 4_000
    import pandas as pd

    g = rng.integers(0, 30, n)
    X = pd.DataFrame({"g": g, "x": rng.normal(size=n)})
    y = 1.0 + 0.5 * X["x"] + rng.normal(size=30)[g] + rng.normal(size=n)
    # few rows per block, so the row pass really has several blocks
    monkeypatch.setattr("skmixed._kernels.blocks.MIN_BLOCK_ROWS", 256)

    def make(n_jobs):
        return MixedLM(groups="g", n_jobs=n_jobs)

    serial = _fit_both(monkeypatch, make, X, y, **{"skmixed._cache.PARALLEL_MIN_SIZE": 10**12})
    parallel = _fit_both(monkeypatch, make, X, y, **{"skmixed._cache.PARALLEL_MIN_SIZE": 0})
    from skmixed._kernels import pls

    assert pls.conditional_modes_groups.parallel.signatures  # the parallel one did run
    for model in serial[1:] + parallel:
        np.testing.assert_array_equal(serial[0].coef_, model.coef_)
        np.testing.assert_array_equal(serial[0].theta_, model.theta_)


SMALL_FIT = """
import sys, numpy as np, pandas as pd, warnings
import skmixed
from skmixed._cache import SizedKernel
rng = np.random.default_rng(0)
g = np.sort(rng.integers(0, 50, 5000)); x = rng.normal(size=5000)
y = (rng.random(5000) < 1 / (1 + np.exp(-(0.5 * x + rng.normal(size=50)[g])))).astype(int)
skmixed.MixedGLM(groups="g", n_jobs=2).fit(pd.DataFrame({"g": g, "x": x}), y)
skmixed.MixedLM(groups="g", n_jobs=2).fit(pd.DataFrame({"g": g, "x": x}), x + y)
kernels = [v for name, m in list(sys.modules.items()) if name.startswith(("skmixed", "skmixed_"))
           for v in vars(m).values() if isinstance(v, SizedKernel)]
assert len(kernels) > 10, len(kernels)
compiled = [k.__qualname__ for k in kernels if k._parallel is not None and k._parallel.signatures]
print("PARALLEL", compiled)
"""


def test_a_small_fit_never_compiles_a_parallel_kernel(tmp_path):
    """A new user's first small fits (5,000 rows, 2 threads) compile only serial kernels:
    a parallel compilation costs several times a serial one (the first-fit benchmark)."""
    import os
    import subprocess
    import sys

    env = dict(os.environ, SKMIXED_CACHE_DIR=str(tmp_path))
    out = subprocess.run([sys.executable, "-c", SMALL_FIT], env=env, capture_output=True,
                         text=True, check=True).stdout
    assert "PARALLEL []" in out, out


def test_pirls_working_weights_split_over_threads_give_the_same_bits(monkeypatch):
    """``over_rows`` runs the families' per-row PIRLS terms on parts of the rows: a binomial
    AdditiveMixed fit split over 2 threads (THREAD_MIN_ROWS = 0) has the bits of one."""
    import numpy as np

    from skmixed import AdditiveMixed

    X, y = _glmm_data(3_000)

    def make(n_jobs):
        return AdditiveMixed(groups="g", family="binomial", n_jobs=n_jobs)

    calls = []
    from skmixed._kernels import threads

    real = threads._run_parts
    monkeypatch.setattr(threads, "_run_parts", lambda *a: calls.append(1) or real(*a))
    one, two = _fit_both(monkeypatch, make, X, y,
                         **{"skmixed._kernels.threads.THREAD_MIN_ROWS": 0})
    assert calls  # the rows were split
    np.testing.assert_array_equal(one.coef_, two.coef_)
    np.testing.assert_array_equal(one.variance_components_["variance"],
                                  two.variance_components_["variance"])


FORKED = """
import os, numpy as np
from skmixed._kernels import threads
threads.THREAD_MIN_ROWS = 0
starts = np.arange(0, 101, 10, dtype=np.int64)
out = np.zeros(10)

def kernel(s, g):
    out[g] = s[1:] - s[:-1]

with threads.numba_threads(2):
    threads.over_groups(kernel, starts, lambda s, g: (s, g))   # the parent's pool
    pid = os.fork()
    if pid == 0:   # the child: the parent's pool threads did not fork
        out[:] = 0
        threads.over_groups(kernel, starts, lambda s, g: (s, g))
        os._exit(0 if (out == 10).all() else 3)
    _, status = os.waitpid(pid, 0)
print("CHILD", os.waitstatus_to_exitcode(status))
"""


def test_the_pool_works_in_a_forked_child():
    """multiprocessing's fork (sklearn/joblib workers) copies the pool object but not its
    threads: the child starts a pool of its own instead of waiting forever."""
    import os
    import subprocess
    import sys

    if not hasattr(os, "fork"):
        pytest.skip("no fork on this platform")
    out = subprocess.run([sys.executable, "-c", FORKED], capture_output=True, text=True,
                         timeout=120)
    assert "CHILD 0" in out.stdout, out.stderr[-2000:]


NO_OPENMP = """
import warnings
from skmixed import AdditiveMixed, MixedGLM, MixedLM
from skmixed.datasets import make_multilevel
df = make_multilevel(100_000, 200, random_state=1)
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    MixedLM(groups="g", n_jobs=2).fit(df[["x", "b", "g"]], df["y"])
    MixedGLM(groups="g", n_jobs=2).fit(df[["x", "b", "g"]], df["y_bin"])
    AdditiveMixed(groups="g", family="binomial", n_jobs=2).fit(df[["x", "b", "g"]], df["y_bin"])
    AdditiveMixed(smooths=["z"], groups="g", n_jobs=2).fit(df[["x", "b", "z", "g"]], df["y_nl"])
import sys
from skmixed._cache import SizedKernel
kernels = [v for name, m in list(sys.modules.items()) if name.startswith("skmixed")
           for v in vars(m).values() if isinstance(v, SizedKernel)]
print("PARALLEL", [k.__qualname__ for k in kernels if k._parallel is not None
                   and k._parallel.signatures])
"""


def test_the_study_models_run_no_numba_parallel_region():
    """The study's four models on 100,000 rows with 2 threads run their threaded passes on
    skmixed's kernel pool: no Numba-parallel kernel is compiled or run, so Numba's OpenMP
    team never wakes (nor spins beside BLAS or the next serial step)."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", NO_OPENMP], capture_output=True, text=True,
                         timeout=600)
    assert "PARALLEL []" in out.stdout, out.stdout + out.stderr[-2000:]
