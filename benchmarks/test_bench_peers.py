"""Peers side by side on the same data in the same run: R's lme4 (``lmer``, ``glmer``) and
mgcv (``bam(discrete = TRUE)``) via ``Rscript`` when it is installed with those packages
(skipped otherwise), against skmixed's fit of the same simulated rows. The R fit is timed
inside R (``system.time`` of the fit alone, data already loaded), as skmixed's fit is timed
from the in-memory DataFrame; both are recorded (``peer_seconds``, ``skmixed_seconds``)
and the fixed effects are checked to agree. Quick grid: 200,000 rows × 2,000 groups;
``--bench-full``: 2,000,000 × 2,000. statsmodels is the peer in test_bench_mixedlm.py."""

import json
import shutil
import subprocess
import time

import numpy as np
import pytest

from conftest import simulated

R_MODELS = {
    "lmer": ("library(lme4); f <- function(d) lmer(y ~ x + b + (1 | g), data = d)",
             "fixef(m)[['x']]", "y"),
    "glmer": ("library(lme4); f <- function(d) glmer(y_bin ~ x + b + (1 | g), data = d, "
              "family = binomial)", "fixef(m)[['x']]", "y_bin"),
    "bam": ("library(mgcv); f <- function(d) bam(y_nl ~ x + b + s(z, bs = 'ps') + "
            "s(g, bs = 're'), data = d, discrete = TRUE)", "coef(m)[['x']]", "y_nl"),
}


def _have_r(packages):
    if shutil.which("Rscript") is None:
        return False
    code = "; ".join(f"suppressMessages(library({p}))" for p in packages)
    return subprocess.run(["Rscript", "-e", code], capture_output=True).returncode == 0


@pytest.fixture(scope="module")
def csv_data(request, tmp_path_factory):
    full = request.config.getoption("--bench-full")
    n_obs = 2_000_000 if full else 200_000
    df = simulated(n_obs, 2_000)
    path = tmp_path_factory.mktemp("peers") / "study.csv"
    df[["g", "x", "b", "z", "y", "y_bin", "y_nl"]].to_csv(path, index=False)
    return df, path, n_obs


def _skmixed_fit(kind, df):
    from skmixed import AdditiveMixed, MixedGLM, MixedLM

    if kind == "lmer":
        return MixedLM(groups="g").fit(df[["x", "b", "g"]], df["y"])
    if kind == "glmer":
        return MixedGLM(groups="g").fit(df[["x", "b", "g"]], df["y_bin"])
    return AdditiveMixed(smooths=["z"], groups="g").fit(df[["x", "b", "z", "g"]], df["y_nl"])


@pytest.mark.parametrize("kind", list(R_MODELS))
def test_r_peer(benchmark, machine_info, csv_data, kind):
    packages = ["lme4"] if kind != "bam" else ["mgcv"]
    if not _have_r(packages + ["jsonlite"]):
        pytest.skip(f"Rscript with {packages} and jsonlite is not installed (optional peer)")
    df, path, n_obs = csv_data
    setup, coef, _ = R_MODELS[kind]
    script = (f"{setup}; suppressMessages(library(jsonlite)); d <- read.csv('{path}'); "
              "d$g <- factor(d$g); t <- system.time(m <- f(d))[['elapsed']]; "
              f"cat(toJSON(list(seconds = t, x = {coef}), auto_unbox = TRUE, digits = NA))")

    def run_r():
        out = subprocess.run(["Rscript", "-e", script], capture_output=True, text=True,
                             check=True).stdout
        return json.loads(out.strip().splitlines()[-1])

    r = benchmark.pedantic(run_r, rounds=1, warmup_rounds=0)
    _skmixed_fit(kind, df.iloc[:20_000])  # warm-up: Numba compilation is not timed
    start = time.perf_counter()
    ours = _skmixed_fit(kind, df)
    ours_seconds = time.perf_counter() - start
    machine_info(peer=f"R {kind}", n_obs=n_obs, peer_seconds=r["seconds"],
                 skmixed_seconds=ours_seconds)
    np.testing.assert_allclose(ours.coef_[0], r["x"], rtol=1e-3)
