"""The thread study: every estimator's fit on the study's 2,000,000 × 2,000 data with 1 and
2 threads (all this machine has), the wall-time medians recorded for
``python benchmarks/report.py --threads`` to turn into speed-ups and Amdahl serial
fractions (``s = (n/S − 1)/(n − 1)``: where more threads stop paying). Quick grid: 200,000
rows; ``--bench-full``: 2,000,000. Every fit is checked against its reference objective
(benchmarks/reference_objectives.py)."""

import warnings

import pytest

from conftest import simulated
from reference_objectives import check_additive, check_glmm, check_lmm

ESTIMATORS = {
    "MixedLM": (lambda n: _mixed_lm(n), ["x", "b", "g"], "y"),
    "MixedGLM": (lambda n: _mixed_glm(n), ["x", "b", "g"], "y_bin"),
    "AdditiveMixed": (lambda n: _additive(n), ["x", "b", "z", "g"], "y_nl"),
}
CHECKS = {
    "MixedLM": lambda model, df: check_lmm(model, df, "y", ["x", "b"]),
    "MixedGLM": lambda model, df: check_glmm(model, df, "y_bin", ["x", "b"], 1),
    "AdditiveMixed": lambda model, df: check_additive(
        model, df, ["x", "b", "z", "g"], "y_nl", dict(smooths=["z"], groups="g")),
}


def _mixed_lm(n_jobs):
    from skmixed import MixedLM
    return MixedLM(groups="g", n_jobs=n_jobs)


def _mixed_glm(n_jobs):
    from skmixed import MixedGLM
    return MixedGLM(groups="g", n_jobs=n_jobs)


def _additive(n_jobs):
    from skmixed import AdditiveMixed
    return AdditiveMixed(smooths=["z"], groups="g", n_jobs=n_jobs)


@pytest.mark.parametrize("n_jobs", [1, 2])
@pytest.mark.parametrize("estimator", list(ESTIMATORS))
def test_thread_study(benchmark, machine_info, request, estimator, n_jobs):
    n_obs = 2_000_000 if request.config.getoption("--bench-full") else 200_000
    make, cols, target = ESTIMATORS[estimator]
    df = simulated(n_obs, 2_000)

    def fit():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return make(n_jobs).fit(df[cols], df[target])

    model = benchmark.pedantic(fit, rounds=5, warmup_rounds=1)
    machine_info(estimator=estimator, n_jobs=n_jobs, n_obs=n_obs)
    assert model.converged_
    CHECKS[estimator](model, df)
