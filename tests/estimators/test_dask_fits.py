"""Fits from a Dask DataFrame on a dask.distributed LocalCluster started here (2 worker
processes):

* MixedLM: every partition reduced to per-group sums on its worker, the same estimates as
  the in-memory fit (1e-8 relative) with every group spread over all partitions, errors
  that name the partition;
* MixedGLM (Laplace): rows shuffled by group, one actor per partition; the same estimates
  as the in-memory fit at the GLMM tolerance (β and θ 1e-6, standard errors 1e-3: both
  from finite-difference Hessians at slightly different points)."""

import numpy as np
import pandas as pd
import pytest

from conftest import require_package

dd = require_package("dask.dataframe", "dask")
distributed = require_package("distributed", "dask")

from skmixed import MixedGLM, MixedLM  # noqa: E402
from skmixed.datasets import make_multilevel  # noqa: E402

COLS = ["x", "b", "g"]


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as cluster:
        with distributed.Client(cluster) as c:
            yield c


@pytest.fixture(scope="module")
def data():
    df = make_multilevel(60_000, 300, random_state=4)
    df.attrs = {}
    return df.sample(frac=1.0, random_state=1).reset_index(drop=True)


@pytest.mark.parametrize("slopes", [(), ("x",)])
def test_dask_equals_the_in_memory_fit(client, data, slopes):
    memory = MixedLM(groups="g", random_slopes=list(slopes)).fit(data[COLS], data["y"])
    ddf = dd.from_pandas(data[COLS + ["y"]], npartitions=5)
    model = MixedLM(groups="g", random_slopes=list(slopes)).fit(ddf[COLS], ddf["y"])
    for a, b in ((model.coef_, memory.coef_), (model.theta_, memory.theta_),
                 (model.sigma_, memory.sigma_), (model.reml_criterion_,
                                                 memory.reml_criterion_)):
        np.testing.assert_allclose(a, b, rtol=1e-8)
    np.testing.assert_allclose(model.random_effects_["mode"], memory.random_effects_["mode"],
                               rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(model.predict(data[COLS].iloc[:20]),
                               memory.predict(data[COLS].iloc[:20]), rtol=1e-8)


def test_dask_weights(client, data):
    w = pd.Series(np.random.default_rng(2).integers(1, 4, len(data)).astype(float))
    memory = MixedLM(groups="g").fit(data[COLS], data["y"], sample_weight=w)
    frame = data[COLS + ["y"]].assign(w=w)
    ddf = dd.from_pandas(frame, npartitions=4)
    model = MixedLM(groups="g").fit(ddf[COLS], ddf["y"], sample_weight=ddf["w"])
    np.testing.assert_allclose(model.coef_, memory.coef_, rtol=1e-8)
    np.testing.assert_allclose(model.theta_, memory.theta_, rtol=1e-8)


def test_a_bad_partition_is_named(client, data):
    import dask

    parts = [data[COLS].iloc[i:i + 10_000] for i in range(0, 30_000, 10_000)]
    parts[2] = parts[2].drop(columns=["b"])
    ddf = dd.from_delayed([dask.delayed(p) for p in parts], meta=parts[0].iloc[:0],
                          verify_meta=False)
    y = dd.from_pandas(data["y"].iloc[:30_000], npartitions=3)
    with pytest.raises(ValueError, match=r"partition 2 lacks the column\(s\) \['b'\]"):
        MixedLM(groups="g").fit(ddf, y)


def test_dask_misuse(client, data):
    ddf = dd.from_pandas(data[COLS + ["y"]], npartitions=3)
    with pytest.raises(ValueError, match="Dask Series"):
        MixedLM(groups="g").fit(ddf[COLS], data["y"])
    y4 = dd.from_pandas(data["y"], npartitions=4)
    with pytest.raises(ValueError, match="partitions"):
        MixedLM(groups="g").fit(ddf[COLS], y4)


@pytest.mark.parametrize("family", ["binomial", "poisson"])
def test_dask_glmm_equals_the_in_memory_fit(client, data, family):
    frame = data[COLS].copy()
    if family == "binomial":
        frame["y"] = data["y_bin"]
        params = dict(groups="g")
    else:
        frame["y"] = np.random.default_rng(3).poisson(np.exp(0.3 * data["x"]))
        frame["lt"] = 0.1 * data["b"]
        params = dict(groups="g", family="poisson", offset="lt")
    cols = [c for c in frame.columns if c != "y"]
    memory = MixedGLM(**params).fit(frame[cols], frame["y"])
    ddf = dd.from_pandas(frame, npartitions=4)
    model = MixedGLM(**params).fit(ddf[cols], ddf["y"])
    np.testing.assert_allclose(model.coef_, memory.coef_, rtol=1e-6)
    np.testing.assert_allclose(model.theta_, memory.theta_, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(model.fixed_effects_["std_error"],
                               memory.fixed_effects_["std_error"], rtol=1e-3)
    assert model.deviance_ == pytest.approx(memory.deviance_, rel=1e-9)
    np.testing.assert_allclose(model.random_effects_["mode"], memory.random_effects_["mode"],
                               atol=1e-6)
    if family == "binomial":
        np.testing.assert_allclose(model.predict_proba(frame[cols].iloc[:10]),
                                   memory.predict_proba(frame[cols].iloc[:10]), rtol=1e-6)


def test_dask_glmm_refusals(client, data):
    ddf = dd.from_pandas(data[COLS + ["y_bin"]], npartitions=2)
    with pytest.raises(ValueError, match="n_agq=1"):
        MixedGLM(groups="g", n_agq=3).fit(ddf[COLS], ddf["y_bin"])
    with pytest.raises(ValueError, match="Dask Series"):
        MixedGLM(groups="g").fit(ddf[COLS], data["y_bin"])


@pytest.mark.parametrize("z_kind", ["continuous", "few values"])
def test_dask_additive_equals_the_binned_in_memory_fit(client, data, z_kind):
    """AdditiveMixed (Gaussian, binned) from Dask: ranges and distinct values of the smooth
    covariate first, then per-partition bin tables merged by group label — the in-memory
    ``discrete=True`` fit to round-off (coefficients 1e-8, edf and SDs 1e-6)."""
    from skmixed import AdditiveMixed

    frame = data[["x", "b", "z", "g", "y_nl"]].copy()
    if z_kind == "few values":
        frame["z"] = np.round(frame["z"] * 39) / 39
    cols = ["x", "b", "z", "g"]
    memory = AdditiveMixed(smooths=["z"], groups="g", discrete=True).fit(frame[cols],
                                                                       frame["y_nl"])
    ddf = dd.from_pandas(frame, npartitions=4)
    model = AdditiveMixed(smooths=["z"], groups="g").fit(ddf[cols], ddf["y_nl"])
    np.testing.assert_allclose(model.coef_, memory.coef_, rtol=1e-8)
    np.testing.assert_allclose(model.smooths_["edf"], memory.smooths_["edf"], rtol=1e-6)
    np.testing.assert_allclose(model.variance_components_["sd"],
                               memory.variance_components_["sd"], rtol=1e-6)
    np.testing.assert_allclose(model.predict(frame[cols].iloc[:20]),
                               memory.predict(frame[cols].iloc[:20]), rtol=1e-8)
