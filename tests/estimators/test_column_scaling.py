"""Badly scaled fixed-effect columns give the same fit as well scaled ones (issue 13, item 1).

Every estimator and every path (one factor, several, chunked) fits on internally centred and
scaled columns (skmixed._model.scaling) and maps the estimates back; so a column shifted by
1e3 or 1e6, or multiplied by 1e±6 or 1e±12, must give the fit of the original column mapped
back (β_x / a for x·a, the intercept moved by −β_x·s for x + s), to 1e-6 relative, with no
warning.
"""

import warnings

import numpy as np
import pandas as pd
import pytest

from skmixed import AdditiveMixed, MixedGLM, MixedLM
from skmixed.datasets import make_multilevel
from skmixed.sources import from_chunks

from conftest import require_package

RTOL = 1e-6
TRANSFORMS = [("shift", 1e3), ("shift", 1e6), ("scale", 1e6), ("scale", 1e-6),
              ("scale", 1e12), ("scale", 1e-12)]


@pytest.fixture(scope="module")
def data():
    df = make_multilevel(6_000, 60, random_state=3)
    rng = np.random.default_rng(5)
    df["h"] = pd.Categorical(rng.integers(0, 12, len(df)))  # a crossed factor
    df["y_h"] = df["y"] + rng.normal(0, 0.5, 12)[df["h"].cat.codes]  # with its own effect
    df["y_bin_h"] = (df["y_h"] > 0).astype(int)
    # a binary response with the smooth effect sin(2πz) of y_nl: no smooth at its
    # linear limit (λ → ∞), where the optimizer's stopping point is arbitrary
    df["y_bin_nl"] = (df["y_nl"] > 0).astype(int)
    return df


def _transformed(df, kind, a):
    out = df.copy()
    out["x"] = df["x"] + a if kind == "shift" else df["x"] * a
    return out


def _expected_coefs(fe, kind, a):
    """The original fit's (intercept, x) mapped to the transformed column."""
    b0, bx = fe.loc["(Intercept)", "estimate"], fe.loc["x", "estimate"]
    if kind == "shift":
        return b0 - bx * a, bx
    return b0, bx / a


def _expected_ses(fe, cov_names, cov, kind, a):
    """The original SEs mapped: SE(x)/a for a scaling; Var(b0 − a bx) for a shift."""
    i, j = cov_names.index("(Intercept)"), cov_names.index("x")
    if kind == "shift":
        var0 = cov[i, i] - 2 * a * cov[i, j] + a * a * cov[j, j]
        return np.sqrt(var0), np.sqrt(cov[j, j])
    return np.sqrt(cov[i, i]), np.sqrt(cov[j, j]) / a


def _fit_quiet(make, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no ConvergenceWarning, no RankDeficientWarning
        return make().fit(X, y)


def _assert_same_fit(ref, fit, kind, a, theta=True, se_rtol=RTOL):
    fe_ref, fe = ref.fixed_effects_, fit.fixed_effects_
    names = list(fe_ref.index)
    want0, wantx = _expected_coefs(fe_ref, kind, a)
    got0, gotx = fe.loc["(Intercept)", "estimate"], fe.loc["x", "estimate"]
    # a shifted intercept is b0 − a·bx: compare on the scale of its terms
    scale0 = max(abs(want0), abs(a * fe_ref.loc["x", "estimate"]) if kind == "shift" else 0)
    assert abs(got0 - want0) <= RTOL * scale0
    np.testing.assert_allclose(gotx, wantx, rtol=RTOL)
    se0, sex = _expected_ses(fe_ref, names, ref.fixed_cov_, kind, a)
    np.testing.assert_allclose(fe.loc["x", "std_error"], sex, rtol=se_rtol)
    np.testing.assert_allclose(fe.loc["(Intercept)", "std_error"], se0, rtol=se_rtol)
    others = [nm for nm in names if nm not in ("(Intercept)", "x")]
    np.testing.assert_allclose(fe.loc[others, "estimate"], fe_ref.loc[others, "estimate"],
                               rtol=RTOL, atol=1e-9)
    if theta:
        np.testing.assert_allclose(fit.theta_, ref.theta_, rtol=RTOL, atol=1e-9)


@pytest.mark.parametrize("kind,a", TRANSFORMS)
def test_mixedlm_one_factor(data, kind, a):
    cols = ["g", "x", "b"]
    make = lambda: MixedLM(groups="g")  # noqa: E731
    ref = _fit_quiet(make, data[cols], data["y"])
    fit = _fit_quiet(make, _transformed(data, kind, a)[cols], data["y"])
    _assert_same_fit(ref, fit, kind, a)
    # REML's log|X'V⁻¹X| term grows by 2 log a when a column is multiplied by a
    np.testing.assert_allclose(fit.reml_criterion_, ref.reml_criterion_ + 2 * np.log(
        abs(a)) * (kind == "scale"), rtol=1e-10)


@pytest.mark.parametrize("kind,a", TRANSFORMS)
def test_mixedlm_several_factors(data, kind, a):
    cols = ["g", "h", "x", "b"]
    make = lambda: MixedLM(groups=["g", "h"])  # noqa: E731
    ref = _fit_quiet(make, data[cols], data["y_h"])
    fit = _fit_quiet(make, _transformed(data, kind, a)[cols], data["y_h"])
    _assert_same_fit(ref, fit, kind, a)


@pytest.mark.parametrize("kind,a", TRANSFORMS)
def test_mixedlm_chunked(data, kind, a):
    cols = ["g", "x", "b", "y"]
    frames = lambda d: [d[cols].iloc[i:i + 1500] for i in range(0, len(d), 1500)]  # noqa
    make = lambda: MixedLM(groups="g")  # noqa: E731
    ref = _fit_quiet(make, from_chunks(frames(data), "y"), None)
    fit = _fit_quiet(make, from_chunks(frames(_transformed(data, kind, a)), "y"), None)
    _assert_same_fit(ref, fit, kind, a)


@pytest.mark.parametrize("n_agq", [1, 10, 0])
@pytest.mark.parametrize("kind,a", TRANSFORMS)
def test_mixedglm_one_factor(data, kind, a, n_agq):
    cols = ["g", "x", "b"]
    make = lambda: MixedGLM(groups="g", n_agq=n_agq)  # noqa: E731
    ref = _fit_quiet(make, data[cols], data["y_bin"])
    fit = _fit_quiet(make, _transformed(data, kind, a)[cols], data["y_bin"])
    _assert_same_fit(ref, fit, kind, a)
    np.testing.assert_allclose(fit.loglik_, ref.loglik_, rtol=1e-9)


@pytest.mark.parametrize("kind,a", TRANSFORMS)
def test_mixedglm_poisson_slope(data, kind, a):
    """A random slope on another column: the shifted/scaled x is fixed only."""
    d = data.assign(count=np.random.default_rng(1).poisson(np.exp(0.3 + 0.2 * data["x"])))
    cols = ["g", "x", "b"]
    make = lambda: MixedGLM(groups="g", family="poisson", random_slopes=["b"])  # noqa
    ref = _fit_quiet(make, d[cols], d["count"])
    fit = _fit_quiet(make, _transformed(d, kind, a)[cols], d["count"])
    _assert_same_fit(ref, fit, kind, a)


@pytest.mark.parametrize("kind,a", TRANSFORMS)
def test_mixedglm_several_factors(data, kind, a):
    d = data.iloc[:2000]
    cols = ["g", "h", "x", "b"]
    make = lambda: MixedGLM(groups=["g", "h"])  # noqa: E731
    ref = _fit_quiet(make, d[cols], d["y_bin_h"])
    fit = _fit_quiet(make, _transformed(d, kind, a)[cols], d["y_bin_h"])
    # the SEs come from a central-difference Hessian of the Laplace deviance (step 1e-4,
    # as glmer's): rounding-level changes of the columns move them by up to 9.9e-7
    # (measured, ×1e12), the other quantities by at most 2.1e-9
    _assert_same_fit(ref, fit, kind, a, se_rtol=5e-6)


@pytest.mark.parametrize("family,target", [("gaussian", "y_nl"), ("binomial", "y_bin_nl")])
@pytest.mark.parametrize("discrete", [True, False])
@pytest.mark.parametrize("kind,a", TRANSFORMS)
def test_additive_mixed(data, kind, a, family, target, discrete):
    d = data.iloc[:3000]
    cols = ["g", "x", "b", "z"]
    make = lambda: AdditiveMixed(smooths=["z"], groups="g", family=family,  # noqa: E731
                                 discrete=discrete)
    ref = _fit_quiet(make, d[cols], d[target])
    fit = _fit_quiet(make, _transformed(d, kind, a)[cols], d[target])
    _assert_same_fit(ref, fit, kind, a, theta=False)
    np.testing.assert_allclose(fit.smooths_["edf"], ref.smooths_["edf"], rtol=RTOL)
    np.testing.assert_allclose(fit.variance_components_["sd"],
                               ref.variance_components_["sd"], rtol=RTOL)
    np.testing.assert_allclose(fit.predict(_transformed(d, kind, a)[cols]),
                               ref.predict(d[cols]), rtol=RTOL, atol=1e-9)


@pytest.mark.parametrize("kind,a", TRANSFORMS)
def test_additive_chunked(data, kind, a):
    cols = ["g", "x", "b", "z", "y_nl"]
    frames = lambda d: [d[cols].iloc[i:i + 1500] for i in range(0, len(d), 1500)]  # noqa
    make = lambda: AdditiveMixed(smooths=["z"], groups="g")  # noqa: E731
    rng = {"z": (0.0, 1.0)}
    ref = _fit_quiet(make, from_chunks(frames(data), "y_nl", ranges=rng), None)
    fit = _fit_quiet(make, from_chunks(frames(_transformed(data, kind, a)), "y_nl",
                                       ranges=rng), None)
    _assert_same_fit(ref, fit, kind, a, theta=False)


@pytest.fixture(scope="module")
def client():
    distributed = require_package("distributed", "dask")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as cluster:
        with distributed.Client(cluster) as c:
            yield c


@pytest.mark.parametrize("estimator", [MixedLM, MixedGLM])
@pytest.mark.parametrize("kind,a", [("shift", 1e6), ("scale", 1e-12)])
def test_dask(client, data, estimator, kind, a):
    """The Dask paths (MixedLM's per-partition sums, MixedGLM's actors) against the Dask fit
    of the original column, so that only the scaling differs."""
    dd = require_package("dask.dataframe", "dask")
    cols, target = ["g", "x", "b"], "y" if estimator is MixedLM else "y_bin"

    def fit_dask(d):
        ddf = dd.from_pandas(d[cols + [target]].assign(g=d["g"].astype(int)), npartitions=3)
        return _fit_quiet(lambda: estimator(groups="g"), ddf[cols], ddf[target])

    _assert_same_fit(fit_dask(data), fit_dask(_transformed(data, kind, a)), kind, a)


# ---------------------------------------------------------------- random-slope columns
# A random slope on x·a is the model on x with the slope's random effect divided by a
# (scaling, unlike shifting, keeps every covariance structure the same model): the fit
# on x·a must equal the fit on x mapped back — β_x / a, the slope's SD / a, the same
# correlations, criterion (REML: + 2 log a) and predictions — with no warning.
SLOPE_SCALES = [1e6, 1e-6, 1e12, 1e-12]


@pytest.fixture(scope="module")
def slope_data():
    df = make_multilevel(6_000, 60, random_state=3, slope_sd=0.4)
    rng = np.random.default_rng(5)
    df["h"] = pd.Categorical(rng.integers(0, 12, len(df)))
    df["y_h"] = df["y"] + rng.normal(0, 0.5, 12)[df["h"].cat.codes]
    return df


def _assert_same_slope_fit(ref, fit, a, X_ref, X_fit, factor="g", se_rtol=RTOL):
    _assert_same_fit(ref, fit, "scale", a, theta=False, se_rtol=se_rtol)
    vc_ref, vc = ref.variance_components_, fit.variance_components_
    slope = ((vc_ref["var1"] == "x") & vc_ref["var2"].isna()
             & vc_ref["group"].str.startswith(factor))
    want = vc_ref["sd_cor"].to_numpy(dtype=float).copy()
    want[slope.to_numpy()] /= a
    got = vc["sd_cor"].to_numpy(dtype=float)
    sd = vc_ref["var2"].isna().to_numpy()
    np.testing.assert_allclose(got[sd], want[sd], rtol=RTOL)
    np.testing.assert_allclose(got[~sd], want[~sd], atol=RTOL)  # correlations
    # absolute near 0, relative to the largest prediction as the modes below: the two fits
    # (finite-difference gradient with slopes) agree to ~5e-9 in every prediction (max
    # |prediction| ~ 4), and one near 0 (-1e-3) had failed a fixed 1e-9
    pred_ref = ref.predict(X_ref)
    np.testing.assert_allclose(fit.predict(X_fit), pred_ref, rtol=RTOL,
                               atol=1e-8 * np.abs(pred_ref).max())
    re_ref, re = ref.random_effects_, fit.random_effects_
    scale = np.where(re_ref["term"] == "x", 1.0 / a, 1.0)
    np.testing.assert_allclose(re["mode"], re_ref["mode"] * scale, rtol=1e-5,
                               atol=1e-7 * np.abs(re_ref["mode"] * scale).max())


@pytest.mark.parametrize("covariance", ["unstructured", "diagonal"])
@pytest.mark.parametrize("a", SLOPE_SCALES)
def test_mixedlm_slope_column(slope_data, a, covariance):
    cols = ["g", "x", "b"]
    make = lambda: MixedLM(groups="g", random_slopes=["x"], covariance=covariance)  # noqa
    d = _transformed(slope_data, "scale", a)
    ref = _fit_quiet(make, slope_data[cols], slope_data["y"])
    fit = _fit_quiet(make, d[cols], slope_data["y"])
    _assert_same_slope_fit(ref, fit, a, slope_data[cols], d[cols])
    np.testing.assert_allclose(fit.reml_criterion_, ref.reml_criterion_ + 2 * np.log(a),
                               rtol=1e-10)


@pytest.mark.parametrize("a", SLOPE_SCALES)
def test_mixedlm_slope_column_chunked(slope_data, a):
    cols = ["g", "x", "b", "y"]
    frames = lambda d: [d[cols].iloc[i:i + 1500] for i in range(0, len(d), 1500)]  # noqa
    make = lambda: MixedLM(groups="g", random_slopes=["x"])  # noqa: E731
    d = _transformed(slope_data, "scale", a)
    ref = _fit_quiet(make, from_chunks(frames(slope_data), "y"), None)
    fit = _fit_quiet(make, from_chunks(frames(d), "y"), None)
    _assert_same_slope_fit(ref, fit, a, slope_data[cols[:3]], d[cols[:3]])


@pytest.mark.parametrize("a", SLOPE_SCALES)
def test_mixedlm_slope_column_several_factors(slope_data, a):
    cols = ["g", "h", "x", "b"]
    make = lambda: MixedLM(groups=["g", "h"], random_slopes={"g": ["x"]})  # noqa: E731
    d = _transformed(slope_data, "scale", a)
    ref = _fit_quiet(make, slope_data[cols], slope_data["y_h"])
    fit = _fit_quiet(make, d[cols], slope_data["y_h"])
    _assert_same_slope_fit(ref, fit, a, slope_data[cols], d[cols])


@pytest.mark.parametrize("a", SLOPE_SCALES)
def test_mixedglm_slope_column(slope_data, a):
    cols = ["g", "x", "b"]
    make = lambda: MixedGLM(groups="g", random_slopes=["x"])  # noqa: E731
    d = _transformed(slope_data, "scale", a)
    ref = _fit_quiet(make, slope_data[cols], slope_data["y_bin"])
    fit = _fit_quiet(make, d[cols], slope_data["y_bin"])
    _assert_same_slope_fit(ref, fit, a, slope_data[cols], d[cols])
    np.testing.assert_allclose(fit.loglik_, ref.loglik_, rtol=1e-9)


@pytest.mark.parametrize("a", [1e6, 1e-6])
def test_mixedglm_slope_column_several_factors(slope_data, a):
    d0 = slope_data.iloc[:2000]
    cols = ["g", "h", "x", "b"]
    make = lambda: MixedGLM(groups=["g", "h"], random_slopes={"g": ["x"]})  # noqa: E731
    d = _transformed(d0, "scale", a)
    y = (d0["y_h"] > 0).astype(int)
    ref = _fit_quiet(make, d0[cols], y)
    fit = _fit_quiet(make, d[cols], y)
    # SEs from the central-difference Hessian, as in test_mixedglm_several_factors
    _assert_same_slope_fit(ref, fit, a, d0[cols], d[cols], se_rtol=5e-6)


@pytest.mark.parametrize("discrete", [True, False])
@pytest.mark.parametrize("a", SLOPE_SCALES)
def test_additive_slope_column(slope_data, a, discrete):
    d0 = slope_data.iloc[:3000]
    cols = ["g", "x", "b", "z"]
    make = lambda: AdditiveMixed(smooths=["z"], groups="g", random_slopes=["x"],  # noqa
                                 discrete=discrete)
    d = _transformed(d0, "scale", a)
    ref = _fit_quiet(make, d0[cols], d0["y_nl"])
    fit = _fit_quiet(make, d[cols], d0["y_nl"])
    _assert_same_fit(ref, fit, "scale", a, theta=False)
    want = ref.variance_components_["sd"].to_numpy(dtype=float) / np.where(
        ref.variance_components_["var1"] == "x", a, 1.0)
    np.testing.assert_allclose(fit.variance_components_["sd"], want, rtol=RTOL)
    np.testing.assert_allclose(fit.smooths_["edf"], ref.smooths_["edf"], rtol=RTOL)
    np.testing.assert_allclose(fit.predict(d[cols]), ref.predict(d0[cols]), rtol=RTOL,
                               atol=1e-9)
    re_ref = ref.random_effects_
    scale = np.where(re_ref["term"] == "x", 1.0 / a, 1.0)
    np.testing.assert_allclose(fit.random_effects_["mode"], re_ref["mode"] * scale,
                               rtol=1e-5, atol=1e-7 * np.abs(re_ref["mode"] * scale).max())


@pytest.mark.parametrize("a", [1e6, 1e-12])
def test_additive_slope_column_chunked(slope_data, a):
    cols = ["g", "x", "b", "z", "y_nl"]
    frames = lambda d: [d[cols].iloc[i:i + 1500] for i in range(0, len(d), 1500)]  # noqa
    make = lambda: AdditiveMixed(smooths=["z"], groups="g", random_slopes=["x"])  # noqa
    rng = {"z": (0.0, 1.0)}
    d = _transformed(slope_data, "scale", a)
    ref = _fit_quiet(make, from_chunks(frames(slope_data), "y_nl", ranges=rng), None)
    fit = _fit_quiet(make, from_chunks(frames(d), "y_nl", ranges=rng), None)
    _assert_same_fit(ref, fit, "scale", a, theta=False)
    want = ref.variance_components_["sd"].to_numpy(dtype=float) / np.where(
        ref.variance_components_["var1"] == "x", a, 1.0)
    np.testing.assert_allclose(fit.variance_components_["sd"], want, rtol=RTOL)


@pytest.mark.parametrize("estimator", [MixedLM, MixedGLM])
def test_dask_slope_column(client, slope_data, estimator):
    dd = require_package("dask.dataframe", "dask")
    cols, target, a = ["g", "x", "b"], "y" if estimator is MixedLM else "y_bin", 1e-6

    def fit_dask(d):
        ddf = dd.from_pandas(d[cols + [target]].assign(g=d["g"].astype(int)), npartitions=3)
        return _fit_quiet(lambda: estimator(groups="g", random_slopes=["x"]), ddf[cols],
                          ddf[target])

    d = _transformed(slope_data, "scale", a)
    X_ref = slope_data[cols].assign(g=slope_data["g"].astype(int))
    X_fit = d[cols].assign(g=d["g"].astype(int))
    _assert_same_slope_fit(fit_dask(slope_data), fit_dask(d), a, X_ref, X_fit)
