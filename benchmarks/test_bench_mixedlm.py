"""MixedLM benchmarks: scaling in rows and groups, random slope on/off, threads 1 and 2, the
row pass on its own, the θ optimization's independence of n, memory, and statsmodels. Every
fit's REML criterion is checked against the NumPy criterion of the same data at its θ and
that criterion's minimum (benchmarks/reference_objectives.py)."""

import time
import tracemalloc
import warnings

import numpy as np
import pytest

from skmixed import MixedLM
from skmixed._kernels.crossprod import grouped_crossprods
from skmixed._kernels.threads import numba_threads
from skmixed._estimators import _design

from conftest import simulated
from reference_objectives import check_lmm

ROWS_QUICK = [10_000, 100_000, 2_000_000]
ROWS_FULL = [10_000, 30_000, 100_000, 300_000, 1_000_000, 2_000_000]
GROUPS_QUICK = [20, 2_000, 20_000]
GROUPS_FULL = [20, 200, 2_000, 20_000]


def _fit(X, y, **params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # singular slope fits are expected here
        return MixedLM(groups="g", **params).fit(X, y)


def _check(model, df, slope=False):
    """The fit must be right, not only fast: its REML criterion is the NumPy criterion's
    minimum (benchmarks/reference_objectives.py: check_lmm)."""
    assert model.converged_
    check_lmm(model, df, "y", ["x", "b"], ["x"] if slope else [])


def _rows_params(request):
    full = request.config.getoption("--bench-full")
    return ROWS_FULL if full else ROWS_QUICK


def pytest_generate_tests(metafunc):
    full = metafunc.config.getoption("--bench-full")
    if "n_obs" in metafunc.fixturenames:
        metafunc.parametrize("n_obs", ROWS_FULL if full else ROWS_QUICK)
    if "n_groups" in metafunc.fixturenames:
        metafunc.parametrize("n_groups", GROUPS_FULL if full else GROUPS_QUICK)


@pytest.mark.parametrize("n_jobs", [1, 2])
@pytest.mark.parametrize("slope", [False, True], ids=["intercept", "slope_x"])
def test_fit_rows(benchmark, machine_info, n_obs, slope, n_jobs):
    """End-to-end fit from the DataFrame at 2,000 groups (the study's shape at 2e6)."""
    df = simulated(n_obs, 2_000)
    X, y = df[["g", "x", "b"]], df["y"]
    params = dict(random_slopes=["x"] if slope else [], n_jobs=n_jobs)
    model = benchmark.pedantic(_fit, args=(X, y), kwargs=params, rounds=7,
                               warmup_rounds=1)
    machine_info(n_jobs=n_jobs, n_obs=n_obs, n_groups=2_000, slope=slope,
                 phases_ms={k: round(v * 1e3, 2) for k, v in model.optimization_.timings.items()},
                 n_evals=model.optimization_.n_evals)
    _check(model, df, slope)


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_fit_groups(benchmark, machine_info, n_groups, n_jobs):
    """End-to-end random-intercept fit at 1,000,000 rows, varying the number of groups."""
    df = simulated(1_000_000, n_groups)
    X, y = df[["g", "x", "b"]], df["y"]
    model = benchmark.pedantic(_fit, args=(X, y), kwargs=dict(n_jobs=n_jobs), rounds=5,
                               warmup_rounds=1)
    machine_info(n_jobs=n_jobs, n_obs=1_000_000, n_groups=n_groups,
                 phases_ms={k: round(v * 1e3, 2) for k, v in model.optimization_.timings.items()})
    _check(model, df)


@pytest.mark.parametrize("n_jobs", [1, 2])
@pytest.mark.parametrize("slope", [False, True], ids=["intercept", "slope_x"])
def test_row_pass(benchmark, machine_info, slope, n_jobs):
    """The one pass over 2,000,000 rows on its own (threads 1 vs 2: target ≥ 1.6× speed-up)."""
    df = simulated(2_000_000, 2_000)
    design = _design.make_design(df[["g", "x", "b"]], groups="g",
                                 random_slopes=["x"] if slope else [])
    y = df["y"].to_numpy()
    z_pos = np.array([0, 1] if slope else [0])

    def run():
        with numba_threads(n_jobs):
            return grouped_crossprods(design.columns, y, np.empty(0), design.codes,
                                      len(design.levels), z_pos)

    sums = benchmark.pedantic(run, rounds=15, warmup_rounds=2)
    machine_info(n_jobs=n_jobs, n_obs=2_000_000, slope=slope)
    # every sum against NumPy's: v = [1, x, b, y], Σ v v' and per group Σ z v'
    V = np.column_stack([np.ones(len(df)), df["x"], df["b"], y])
    np.testing.assert_allclose(sums.total_vv, V.T @ V, rtol=1e-10)
    for a, z in enumerate([np.ones(len(df)), df["x"].to_numpy()][:z_pos.size]):
        expected = np.column_stack([np.bincount(design.codes, z * V[:, c], len(design.levels))
                                    for c in range(V.shape[1])])
        np.testing.assert_allclose(sums.group_xv[:, a, :], expected, rtol=1e-10, atol=1e-9)


@pytest.mark.parametrize("n_obs_opt", [100_000, 2_000_000])
def test_theta_optimization_independent_of_rows(benchmark, machine_info, n_obs_opt):
    """Everything after the row pass (θ optimization + results,
    :func:`~skmixed._model.lmm_fit.fit_crossprods`): same cost at 1e5 and 2e6 rows. Its
    result is the whole fit's (the same REML criterion)."""
    from skmixed._estimators.mixed_lm import _checked_after_pass
    from skmixed._model.lmm_fit import centring_shift, fit_crossprods

    df = simulated(n_obs_opt, 2_000)
    X, y = df[["g", "x", "b"]], df["y"]
    model = MixedLM(groups="g", random_slopes=["x"], n_jobs=1)
    design = _design.make_design(_design.as_table(X, "MixedLM"), groups="g",
                                 random_slopes=["x"], estimator_name="MixedLM")
    y_arr = y.to_numpy(dtype=float)
    shift = centring_shift(design, y_arr, True)
    z_pos = np.concatenate([[0], 1 + design.slope_pos]).astype(np.int64)
    sums = grouped_crossprods(design.columns, y_arr, np.empty(0), design.codes,
                              len(design.levels), z_pos, shift=shift)
    spec = _checked_after_pass(design, sums, y_arr, model.covariance, "MixedLM")

    def run():
        return fit_crossprods(spec, sums.group_xv, sums.total_vv, shift, reml=True,
                              fit_intercept=True, tol=model.tol, max_iter=model.max_iter)

    result = benchmark.pedantic(run, rounds=10, warmup_rounds=1)
    machine_info(n_obs=n_obs_opt, n_groups=2_000, n_evals=result.opt.n_evals)
    assert result.opt.converged
    assert result.criterion == pytest.approx(model.fit(X, y).reml_criterion_, rel=1e-12)


def test_memory_2e6(benchmark, machine_info):
    """Peak extra memory (numpy allocations, tracemalloc) of the 2e6-row slope fit: ≤ 200 MB."""
    df = simulated(2_000_000, 2_000)
    X, y = df[["g", "x", "b"]], df["y"]
    _fit(X, y, random_slopes=["x"])

    def run():
        tracemalloc.start()
        try:
            model = _fit(X, y, random_slopes=["x"])
            return tracemalloc.get_traced_memory()[1], model
        finally:
            tracemalloc.stop()

    peak, model = benchmark.pedantic(run, rounds=3, warmup_rounds=0)
    machine_info(peak_mb=peak / 2**20)
    assert peak < 200 * 2**20
    _check(model, df, slope=True)


def test_statsmodels_peer(benchmark, machine_info):
    """statsmodels' MixedLM on the same 200,000 rows (optional peer; skipped if absent): the
    same fixed effects (1e-6 relative; measured 5e-9), REML log-likelihood (1e-6; measured
    3e-10) and group variance (1e-3; measured 3e-5)."""
    sm = pytest.importorskip("statsmodels.formula.api")
    df = simulated(200_000, 2_000)
    data = df[["g", "x", "b", "y"]].assign(g=df["g"].astype(int))

    def run():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return sm.mixedlm("y ~ x + b", data, groups=data["g"]).fit(reml=True)

    start = time.perf_counter()
    ours = _fit(df[["g", "x", "b"]], df["y"])
    ours_seconds = time.perf_counter() - start
    res = benchmark.pedantic(run, rounds=1, warmup_rounds=0)
    machine_info(peer="statsmodels", n_obs=200_000, skmixed_seconds=ours_seconds)
    np.testing.assert_allclose(res.fe_params.to_numpy(),
                               ours.fixed_effects_["estimate"].to_numpy(), rtol=1e-6)
    assert abs(ours.loglik_ - res.llf) < 1e-6
    np.testing.assert_allclose(res.cov_re.iloc[0, 0],
                               ours.variance_components_["variance"].iloc[0], rtol=1e-3)


@pytest.mark.parametrize("slope", [False, True], ids=["intercept", "slope_x"])
def test_row_pass_thread_speedup(benchmark, machine_info, slope):
    """1 vs 2 threads on the 2e6-row pass, interleaved round by round so that both see the
    same machine state; records the ratio of medians (target on an idle machine: ≥ 1.6)."""
    df = simulated(2_000_000, 2_000)
    design = _design.make_design(df[["g", "x", "b"]], groups="g",
                                 random_slopes=["x"] if slope else [])
    y = df["y"].to_numpy()
    z_pos = np.array([0, 1] if slope else [0])

    def one(n_jobs):
        with numba_threads(n_jobs):
            start = time.perf_counter()
            grouped_crossprods(design.columns, y, np.empty(0), design.codes,
                               len(design.levels), z_pos)
            return time.perf_counter() - start

    def interleaved():
        times = {1: [], 2: []}
        for _ in range(25):
            for n_jobs in (1, 2):
                times[n_jobs].append(one(n_jobs))
        return {k: float(np.median(v)) for k, v in times.items()}

    medians = benchmark.pedantic(interleaved, rounds=1, warmup_rounds=1)
    speedup = medians[1] / medians[2]
    machine_info(slope=slope, median_1_thread_ms=medians[1] * 1e3,
                 median_2_threads_ms=medians[2] * 1e3, speedup=speedup)
    print(f"\nrow pass 2e6 ({'slope' if slope else 'intercept'}): 1 thread "
          f"{medians[1] * 1e3:.2f} ms, 2 threads {medians[2] * 1e3:.2f} ms, x{speedup:.2f}")
    # a shared cache line between threads makes 2 threads slower than 1; catch that
    assert speedup > 1.2
