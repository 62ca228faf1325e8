"""MixedGLM benchmarks: binomial Laplace / AGQ / nAGQ=0 fits of the study's y_bin, scaling in
rows and groups, threads 1 and 2. Quick grid by default, `--bench-full` for rows up to 2e6.
Every fit's deviance is checked against the NumPy Laplace / quadrature deviance of the same
data at its (β, θ), and its optimality along each parameter
(benchmarks/reference_objectives.py)."""

import warnings

import pytest

from skmixed import MixedGLM

from conftest import simulated
from reference_objectives import check_glmm

ROWS_QUICK = [10_000, 200_000]
ROWS_FULL = [10_000, 100_000, 1_000_000, 2_000_000]
GROUPS_QUICK = [20, 2_000]
GROUPS_FULL = [20, 200, 2_000, 20_000]


def pytest_generate_tests(metafunc):
    full = metafunc.config.getoption("--bench-full")
    if "glmm_rows" in metafunc.fixturenames:
        metafunc.parametrize("glmm_rows", ROWS_FULL if full else ROWS_QUICK)
    if "glmm_groups" in metafunc.fixturenames:
        metafunc.parametrize("glmm_groups", GROUPS_FULL if full else GROUPS_QUICK)


def _fit(X, y, **params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return MixedGLM(family="binomial", groups="g", **params).fit(X, y)


def _check(model, df, n_agq=1):
    """A fast wrong fit must fail: converged, its deviance the NumPy deviance at its (β, θ)
    (1e-9 relative), each parameter within 1e-3 SE of that deviance's optimum."""
    assert model.converged_
    check_glmm(model, df, "y_bin", ["x", "b"], n_agq)


@pytest.mark.parametrize("n_jobs", [1, 2])
@pytest.mark.parametrize("n_agq", [0, 1, 10])
def test_glmm_fit_rows(benchmark, machine_info, glmm_rows, n_agq, n_jobs):
    """y_bin ~ x + b + (1 | g) at 2,000 groups (200 for the smallest size)."""
    n_groups = 2_000 if glmm_rows >= 100_000 else 200
    df = simulated(glmm_rows, n_groups)
    X, y = df[["g", "x", "b"]], df["y_bin"]
    rounds = 3  # a 2e6 fit takes about a second
    model = benchmark.pedantic(_fit, args=(X, y), kwargs=dict(n_agq=n_agq, n_jobs=n_jobs),
                               rounds=rounds, warmup_rounds=1)
    machine_info(n_jobs=n_jobs, n_obs=glmm_rows, n_groups=n_groups, n_agq=n_agq,
                 n_evals=model.optimization_.n_evals,
                 phases_ms={k: round(v * 1e3, 1) for k, v in model.optimization_.timings.items()})
    _check(model, df, n_agq)


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_glmm_fit_groups(benchmark, machine_info, glmm_groups, n_jobs):
    """Laplace fit at 200,000 rows, varying the number of groups."""
    df = simulated(200_000, glmm_groups)
    X, y = df[["g", "x", "b"]], df["y_bin"]
    model = benchmark.pedantic(_fit, args=(X, y), kwargs=dict(n_jobs=n_jobs), rounds=3,
                               warmup_rounds=1)
    machine_info(n_jobs=n_jobs, n_obs=200_000, n_groups=glmm_groups,
                 n_evals=model.optimization_.n_evals)
    _check(model, df)


def test_glmm_memory_2e6(benchmark, machine_info):
    """Peak extra memory (numpy allocations, tracemalloc) of the 2e6-row Laplace fit:
    target ≤ 400 MB (lme4's glmer: 1.66 GB peak)."""
    import tracemalloc

    df = simulated(2_000_000, 2_000)
    X, y = df[["g", "x", "b"]], df["y_bin"]
    _fit(X.iloc[:100_000], y.iloc[:100_000])  # compile outside the measurement

    def run():
        tracemalloc.start()
        try:
            model = _fit(X, y, n_jobs=2)
            return tracemalloc.get_traced_memory()[1], model
        finally:
            tracemalloc.stop()

    peak, model = benchmark.pedantic(run, rounds=1, warmup_rounds=0)
    machine_info(peak_mb=peak / 2**20)
    _check(model, df)
    assert peak < 400 * 2**20
