"""Inference benchmarks (issue 16): profile intervals of the study's 2e6-row LMM (≤ 2 s)
and binomial GLMM (≤ 30 s), 1,000 parametric-bootstrap replicates of the 2e6-row LMM
(≤ 60 s; identical for every ``n_jobs``), Satterthwaite and Kenward–Roger t tests; and
lme4's ``confint(method = "profile")`` / ``bootMer`` on sleepstudy beside ours (optional
peer, skipped without R). The model is fitted outside the timed code; the timed call is the
user's (``confint()``, ``bootstrap(1000)``), Numba compilation not timed (a warm-up round).

Checks: at 2e6 rows the likelihood is near quadratic, so every profile interval's ends are
within 2 % of a standard error of the Wald ones (fixed effects); the variance parameters'
intervals contain the estimate; the bootstrap's replicates' SDs of the fixed effects are
within 10 % of their standard errors (1,000 replicates: SE of an SD ≈ 2.2 %)."""

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from skmixed import MixedGLM, MixedLM

from conftest import simulated
from test_bench_peers import _have_r, r_json


@pytest.fixture(scope="module")
def study():
    df = simulated(2_000_000, 2_000)
    return df, df[["g", "x", "b"]]


@pytest.fixture(scope="module")
def lmm(study):
    df, X = study
    return MixedLM(groups="g").fit(X, df["y"])


def _check_profile(ci, model):
    fx = model.fixed_effects_
    wald = model.confint(method="wald")
    for name in fx.index:
        se = fx.loc[name, "std_error"]
        for side in ("lower", "upper"):
            assert abs(ci.loc[name, side] - wald.loc[name, side]) < 0.02 * se
    assert (ci["lower"] < ci["estimate"]).all() and (ci["estimate"] < ci["upper"]).all()


def test_profile_lmm_2e6(benchmark, machine_info, lmm):
    ci = benchmark.pedantic(lmm.confint, rounds=5, warmup_rounds=1)
    machine_info(n_obs=2_000_000, n_groups=2_000, what="confint(method='profile')")
    _check_profile(ci, lmm)


def test_profile_glmm_2e6(benchmark, machine_info, study):
    df, X = study
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        g = MixedGLM(family="binomial", groups="g").fit(X, df["y_bin"])
    ci = benchmark.pedantic(g.confint, args=(X, df["y_bin"]), rounds=2, warmup_rounds=1)
    machine_info(n_obs=2_000_000, n_groups=2_000, what="confint(X, y, method='profile')")
    _check_profile(ci, g)


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_bootstrap_lmm_2e6(benchmark, machine_info, lmm, n_jobs):
    boot = benchmark.pedantic(lmm.bootstrap, args=(1000,),
                              kwargs=dict(random_state=2026, n_jobs=n_jobs, progress=False),
                              rounds=2, warmup_rounds=1)
    machine_info(n_obs=2_000_000, n_groups=2_000, n_boot=1000, n_jobs=n_jobs)
    assert boot.n_failed == 0
    fx = lmm.fixed_effects_
    sds = boot.replicates[list(fx.index)].std()
    np.testing.assert_allclose(sds, fx["std_error"], rtol=0.1)
    other = lmm.bootstrap(50, random_state=2026, n_jobs=3 - n_jobs, progress=False)
    pd.testing.assert_frame_equal(other.replicates, boot.replicates.iloc[:50],
                                  check_exact=True)


@pytest.mark.parametrize("ddf", ["Satterthwaite", "Kenward-Roger"])
def test_t_tests_2e6(benchmark, machine_info, lmm, ddf):
    table = benchmark.pedantic(lmm.fixed_effects_test, args=(ddf,), rounds=5,
                               warmup_rounds=1)
    machine_info(n_obs=2_000_000, n_groups=2_000, ddf=ddf)
    # the group-level covariate b has about G − 2 df, the row-level x about n
    assert 1_900 < table.loc["b", "df"] < 2_100
    assert table.loc["x", "df"] > 1e6


PEER = {
    "profile": ("confint(m, method = 'profile')", lambda m: m.confint()),
    "bootstrap": ("bootMer(m, function(f) c(fixef(f), sigma(f)), nsim = 1000, "
                  "use.u = FALSE, type = 'parametric')",
                  lambda m: m.bootstrap(1000, random_state=1, progress=False)),
}


@pytest.mark.parametrize("what", list(PEER))
def test_sleepstudy_inference_peer(benchmark, machine_info, what):
    """lme4 beside skmixed on sleepstudy ``Reaction ~ Days + (Days | Subject)``: R's time
    of the call (model fitted before) in ``extra_info["peer_seconds"]``."""
    if not _have_r(["lme4", "jsonlite"]):
        pytest.skip("Rscript with lme4 and jsonlite is not installed (optional peer)")
    data = Path(__file__).resolve().parents[1] / "tests" / "data" / "sleepstudy.csv"
    call, ours = PEER[what]
    script = ("suppressMessages({library(lme4); library(jsonlite)}); "
              f"d <- read.csv('{data}'); d$Subject <- factor(d$Subject); "
              "m <- lmer(Reaction ~ Days + (Days | Subject), d); set.seed(1); "
              f"s <- system.time(r <- suppressWarnings(suppressMessages({call})))[['elapsed']]; "
              "cat(toJSON(list(seconds = s), auto_unbox = TRUE))")
    r = r_json(script)
    d = pd.read_csv(data)
    m = MixedLM(groups="Subject", random_slopes=["Days"]).fit(d[["Days", "Subject"]],
                                                              d["Reaction"])
    result = benchmark.pedantic(ours, args=(m,), rounds=3, warmup_rounds=1)
    machine_info(peer="R lme4", peer_seconds=r["seconds"], what=what)
    assert result is not None
