"""AdditiveMixed benchmarks on the study's data: Gaussian ``y_nl ~ x + b + s(z) + s(g, re)``
(also with ``s(g, x, re)``, a random slope, and the other terms of issue 18: tp, by, te, a
crossed factor, fs) and binomial ``y_bin ~ x + b + s(g, re)`` (and Gamma, the same terms),
rows 1e4…2e6, binned (discrete) or exact, and the peak extra memory at 2e6 rows. Quick grid
by default, ``--bench-full`` for rows up to 2e6.
Targets (issue 5, this 2-core machine): 2e6 × 2000 Gaussian ≤ 1 s, binomial ≤ 3 s,
memory ≤ 500 MB. Every fit is checked against a reference: a binned Gaussian fit against the
same model fitted from chunks (``from_chunks``: NumPy bin tables instead of the binned Numba
pass) — REML criterion 1e-10 relative, coefficients 1e-8, edf and SDs 1e-6 (the README's
chunked claim); an exact or binomial fit by its penalized likelihood equations in NumPy
(benchmarks/reference_objectives.py)."""

import warnings

import numpy as np
import pandas as pd
import pytest

from skmixed import AdditiveMixed
from skmixed.families import Tweedie
from skmixed._estimators._additive_predict import covariate_columns
from skmixed._model.additive_cross import discretize, discretize_factor_smooth

from conftest import simulated, with_by_factor
from reference_objectives import check_additive, check_penalized_scores

BY_DUMMIES = [f"f_l{i}" for i in range(1, 10)]
ROWS_QUICK = [10_000, 200_000]
ROWS_FULL = [10_000, 200_000, 1_000_000, 2_000_000]
MODELS = {
    "gaussian": (dict(smooths=["z"]), ["x", "b", "z", "g"], "y_nl"),
    # mgcv's default basis for s(z), the thin-plate spline (issue 18: as fast as "ps")
    "gaussian_tp": (dict(smooths=["z"], bs="tp"), ["x", "b", "z", "g"], "y_nl"),
    "binomial": (dict(family="binomial"), ["x", "b", "g"], "y_bin"),
    # Gamma (log link, dispersion estimated): bam's performance iteration, Fisher weights
    "gamma": (dict(family="gamma"), ["x", "b", "g"], "y_gamma"),
    # Tweedie, power 1.5 fixed (mgcv's Tweedie(1.5)): as Gamma, weights μ^(2−p)
    "tweedie": (dict(family="tweedie", power=1.5), ["x", "b", "g"], "y_tw"),
    # the power estimated (mgcv's tw()): its likelihood at each step's means, every row
    "tweedie_tw": (dict(family="tweedie"), ["x", "b", "g"], "y_tw"),
    # the negative binomial (mgcv's nb()): its size re-estimated at every step's means
    "nbinom2": (dict(family="nbinom2"), ["x", "b", "g"], "y_nb"),
    # s(g, x, bs = "re") besides: one more binned pass (weights w·x) per fit
    "gaussian_slope": (dict(smooths=["z"], random_slopes=["x"]), ["x", "b", "z", "g"],
                       "y_nl"),
    # issue 18: f + s(z, by = f), f of 10 levels (tp, mgcv's default basis): ≤ 2 s at 2e6
    "gaussian_by10": (dict(smooths=["z"], by={"z": "f"}, bs="tp"),
                      ["x", "b"] + BY_DUMMIES + ["z", "f", "g"], "y_nl"),
    # issue 18: b + te(x, z) + s(g, bs = "re") (mgcv's default te: cubic regression margins
    # of k = 5, each binned to 1,000 values): ≤ 2 s at 2e6
    "gaussian_te": (dict(smooths=[("x", "z")], bs={("x", "z"): "te"}), ["x", "b", "z", "g"],
                    "y_nl"),
    # issue 18: a second, crossed grouping factor h (100 levels) besides g:
    # y ~ x + b + s(z) + s(g, bs = "re") + s(h, bs = "re")
    "gaussian_crossed": (dict(smooths=["z"], groups=["g", "h"]), ["x", "b", "z", "g", "h"],
                         "y_h"),
    # issue 18: random curves of x per level of f (10 levels; mgcv's default tp base):
    # y ~ b + s(z) + s(x, f, bs = "fs") + s(g, bs = "re")
    "gaussian_fs": (dict(smooths=["z", ("x", "f")], bs={("x", "f"): "fs"}),
                    ["b", "z", "x", "f", "g"], "y_nl"),
}


def pytest_generate_tests(metafunc):
    if "am_rows" in metafunc.fixturenames:
        full = metafunc.config.getoption("--bench-full")
        metafunc.parametrize("am_rows", ROWS_FULL if full else ROWS_QUICK)


def _frame(n_obs, n_groups):
    """The study's rows with a Gamma response of shape 3, a negative binomial one of size
    2 and a Tweedie one (p = 1.5, φ = 1) whose log mean is 0.3 of y's standardized value
    (the study has none; drawn the same way every time)."""
    df = with_by_factor(simulated(n_obs, n_groups))
    eta = 0.3 * (df["y"] - df["y"].mean()) / df["y"].std()
    rng = np.random.default_rng(5)
    mu = np.exp(eta)
    # a factor h of 100 levels crossed with g, with random effects of SD 0.5 in y_h
    h = rng.integers(0, 100, len(df))
    return df.assign(y_gamma=rng.gamma(3.0, mu / 3.0),
                     y_nb=rng.negative_binomial(2.0, 2.0 / (2.0 + mu)),
                     y_tw=Tweedie(1.5).sample(rng, mu.to_numpy(), fpar=1.0),
                     h=pd.Categorical.from_codes(h, [f"h{i:03d}" for i in range(100)]),
                     y_h=df["y_nl"] + rng.normal(0.0, 0.5, 100)[h])


def _fit(X, y, **params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return AdditiveMixed(**{"groups": "g", **params}).fit(X, y)


def _check(model, df, cols, target, params):
    """A fast wrong fit must fail: see the module docstring. A ``by`` or tensor-product
    fit (not from chunks) solves its penalized likelihood equations at the binned
    covariates (a tensor product's margins binned one by one), where it fits."""
    assert model.converged_
    tensor = any(isinstance(c, tuple) for c in params.get("smooths", ()))
    crossed = isinstance(params.get("groups"), list)
    if (params.get("by") or tensor or crossed) and model._discrete:
        binned = df.copy()
        bs = params.get("bs")
        fs = [c for c in params["smooths"] if isinstance(bs, dict) and bs.get(c) == "fs"]
        for c in covariate_columns([s for s in params["smooths"] if s not in fs]):
            values, index = discretize(df[c].to_numpy(), model.n_bins)
            binned[c] = values[index]
        for x, f in fs:  # binned with its factor (bam's compress.df of x and f)
            values, index, _ = discretize_factor_smooth(df[x].to_numpy(), df[f].cat.codes)
            binned[x] = values[index]
        check_penalized_scores(model, binned, target, cols)
        return
    check_additive(model, df, cols, target, {"groups": "g", **params})


@pytest.mark.parametrize("model", list(MODELS))
def test_additive_fit_rows(benchmark, machine_info, am_rows, model):
    """Discrete (binned) fits from 50,000 rows on, as the estimator's default."""
    params, cols, target = MODELS[model]
    df = _frame(am_rows, 2_000 if am_rows >= 100_000 else 200)
    fitted = benchmark.pedantic(_fit, args=(df[cols], df[target]), kwargs=params, rounds=3,
                                warmup_rounds=1)
    machine_info(n_obs=am_rows, model=model, n_iter=fitted.n_iter_,
                 edf=[round(e, 3) for e in fitted.smooths_["edf"]])
    _check(fitted, df, cols, target, params)


@pytest.mark.parametrize("discrete", [False, True])
def test_additive_discrete_vs_exact(benchmark, machine_info, discrete):
    """Gaussian s(z) + random intercept at 200,000 rows, exact and binned."""
    params, cols, target = MODELS["gaussian"]
    df = simulated(200_000, 2_000)
    fitted = benchmark.pedantic(_fit, args=(df[cols], df[target]),
                                kwargs=dict(params, discrete=discrete), rounds=3,
                                warmup_rounds=1)
    machine_info(discrete=discrete, edf=round(float(fitted.smooths_["edf"].iloc[0]), 4))
    _check(fitted, df, cols, target, params)


@pytest.mark.parametrize("model", list(MODELS))
def test_additive_memory_2e6(benchmark, machine_info, model):
    """Peak extra memory (tracemalloc) of the 2e6-row fit: target ≤ 500 MB."""
    import tracemalloc

    params, cols, target = MODELS[model]
    df = _frame(2_000_000, 2_000)

    def run():
        tracemalloc.start()
        try:
            return tracemalloc.get_traced_memory, _fit(df[cols], df[target], **params)
        finally:
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            run.peak = peak

    _, fitted = benchmark.pedantic(run, rounds=1, warmup_rounds=0)
    machine_info(model=model, peak_mb=round(run.peak / 2**20, 1))
    _check(fitted, df, cols, target, params)
    assert run.peak < 500 * 2**20


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_binned_pass_threads(benchmark, machine_info, n_jobs):
    """The accumulation pass alone (skmixed._kernels.binned.binned_sums on 2e6 rows: s(z)
    binned to 1000 values with its 11-column basis, 2000 groups) in its fixed blocks, each
    with its own buffers, and their sum in block order. Target: 2 threads ≥ 1.6× faster
    than 1."""
    import numpy as np
    import pandas as pd

    from skmixed._kernels.binned import binned_sums, binned_table_size, sum_binned_blocks
    from skmixed._kernels.blocks import n_blocks
    from skmixed._kernels.threads import numba_threads
    from skmixed._model.additive_cross import discretize

    df = simulated(2_000_000, 2_000)
    _, index = discretize(df["z"].to_numpy(), 1000)
    X = np.asfortranarray(np.column_stack([np.ones(len(df)), df["x"], df["b"]]))
    y = df["y_nl"].to_numpy()
    codes = pd.Categorical(df["g"]).codes.astype(np.int64)
    bins = index[None, :]
    smooth_by = np.array([[0, -1, -1, -1]])  # one smooth, no by variable
    basis = np.random.default_rng(0).random((1000, 11))
    offsets, cols = np.array([0, 1000]), np.array([0, 11])
    k = n_blocks(len(df), binned_table_size(4, 1000, 11, 2000))

    def run():
        with numba_threads(n_jobs):
            out = dict(plain=np.zeros((k, 4, 4)), cnt=np.empty((k, 1000)),
                       sums=np.empty((k, 1000, 4)), pairs=np.empty((k, 11, 11)),
                       gcnt=np.empty((k, 2000)), gsum=np.empty((k, 2000, 4)),
                       gbasis=np.empty((k, 2000, 11)), span=np.zeros((k, 2), dtype=np.int64))
            binned_sums(X, y, np.empty(0), bins, offsets, codes, basis, cols, smooth_by,
                        np.zeros((0, len(df))), np.zeros((0, len(df)), dtype=np.int32),
                        *out.values())
            return sum_binned_blocks(out)

    total = benchmark.pedantic(run, rounds=5, warmup_rounds=1)
    machine_info(n_jobs=n_jobs, n_obs=len(df), n_blocks=k)
    # the per-bin and per-group counts and sums of [X, y] (added over the blocks) against NumPy's
    V = np.column_stack([X, y])
    for cnt, sums, key, size in ((total["cnt"], total["sums"], index, 1000),
                                 (total["gcnt"], total["gsum"], codes, 2000)):
        np.testing.assert_array_equal(cnt, np.bincount(key, minlength=size))
        expected = np.column_stack([np.bincount(key, V[:, c], size) for c in range(4)])
        np.testing.assert_allclose(sums, expected, rtol=1e-10, atol=1e-9)


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_additive_2e6_threads(benchmark, machine_info, n_jobs):
    """The Gaussian s(z) + random intercept fit at 2e6 rows with 1 and 2 threads."""
    params, cols, target = MODELS["gaussian"]
    df = simulated(2_000_000, 2_000)
    fitted = benchmark.pedantic(_fit, args=(df[cols], df[target]),
                                kwargs=dict(params, n_jobs=n_jobs), rounds=3, warmup_rounds=1)
    machine_info(n_jobs=n_jobs, n_obs=len(df))
    _check(fitted, df, cols, target, params)


@pytest.mark.parametrize("n_bins", [100, 1000, 10_000])
def test_additive_n_bins(benchmark, machine_info, n_bins):
    """Gaussian s(z) + random intercept at 200,000 rows, binned to n_bins values."""
    params, cols, target = MODELS["gaussian"]
    df = simulated(200_000, 2_000)
    fitted = benchmark.pedantic(_fit, args=(df[cols], df[target]),
                                kwargs=dict(params, discrete=True, n_bins=n_bins), rounds=3,
                                warmup_rounds=1)
    machine_info(n_bins=n_bins, edf=round(float(fitted.smooths_["edf"].iloc[0]), 4))
    _check(fitted, df, cols, target, dict(params, n_bins=n_bins))


@pytest.mark.parametrize("n_smooths", [1, 2, 3])
def test_additive_smooth_count(benchmark, machine_info, n_smooths):
    """1–3 smooths (of z, x and a uniform noise covariate) + random intercept at 200,000
    rows, binned: two or more smooths add the per-(bin, bin) tables."""
    import numpy as np

    df = simulated(200_000, 2_000).copy()
    df["u"] = np.random.default_rng(1).uniform(size=len(df))
    smooths = ["z", "x", "u"][:n_smooths]
    cols = ["b", "g"] + smooths + ([] if "x" in smooths else ["x"])
    fitted = benchmark.pedantic(_fit, args=(df[cols], df["y_nl"]),
                                kwargs=dict(smooths=smooths, discrete=True), rounds=3,
                                warmup_rounds=1)
    machine_info(n_smooths=n_smooths, edf=[round(e, 3) for e in fitted.smooths_["edf"]])
    _check(fitted, df, cols, "y_nl", dict(smooths=smooths))


@pytest.mark.parametrize("h_levels", [100, 1_000])
def test_additive_second_factor_levels(benchmark, machine_info, h_levels):
    """Issue 18: a second grouping factor's levels are dense penalized columns (the REML
    costs O(G q²) per evaluation): 200,000 rows × 2,000 groups of g with a crossed factor
    h of 100 or 1,000 levels, y ~ x + b + s(z) + s(g, re) + s(h, re), one fit."""
    df = simulated(200_000, 2_000)
    rng = np.random.default_rng(8)
    h = rng.integers(0, h_levels, len(df))
    df = df.assign(h=h, y_h=df["y_nl"] + rng.normal(0.0, 0.5, h_levels)[h])
    cols = ["x", "b", "z", "g", "h"]
    fitted = benchmark.pedantic(_fit, args=(df[cols], df["y_h"]),
                                kwargs=dict(smooths=["z"], groups=["g", "h"]), rounds=1,
                                warmup_rounds=0)
    machine_info(h_levels=h_levels, sd=[round(v, 4) for v in
                                        fitted.variance_components_["sd"]])
    assert fitted.converged_
