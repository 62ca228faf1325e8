"""Dask fits on a 2-worker LocalCluster (processes, one thread each) started here: MixedLM
(per-partition sums) and MixedGLM (actors per partition, Laplace) on the study's data, with
the in-memory fit of the same rows beside them. Quick: 200,000 rows × 2,000 groups
(MixedGLM 60,000 × 300); ``--bench-full``: 2,000,000 × 2,000 (MixedGLM 200,000 × 2,000).
Each is checked against the in-memory fit at the README's tolerances: MixedLM coefficients
and θ 1e-8, criterion 1e-10; MixedGLM β and θ 1e-6, deviance 1e-9."""

import numpy as np
import pytest

dd = pytest.importorskip("dask.dataframe", reason="Dask fits need the 'dask' extra")
distributed = pytest.importorskip("distributed", reason="Dask fits need the 'dask' extra")

COLS = ["x", "b", "g"]


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as cluster:
        with distributed.Client(cluster) as c:
            yield c


def _data(request, quick, full):
    from skmixed.datasets import make_multilevel

    n_obs, n_groups = full if request.config.getoption("--bench-full") else quick
    df = make_multilevel(n_obs, n_groups, random_state=3)
    df.attrs = {}
    return df, n_obs


def test_dask_mixedlm(benchmark, machine_info, client, request):
    from skmixed import MixedLM

    df, n_obs = _data(request, (200_000, 2_000), (2_000_000, 2_000))
    ddf = dd.from_pandas(df[COLS + ["y"]], npartitions=8).persist()
    model = benchmark.pedantic(lambda: MixedLM(groups="g").fit(ddf[COLS], ddf["y"]),
                               rounds=3, warmup_rounds=1)
    machine_info(n_obs=n_obs, partitions=8)
    memory = MixedLM(groups="g").fit(df[COLS], df["y"])
    np.testing.assert_allclose(model.coef_, memory.coef_, rtol=1e-8)
    np.testing.assert_allclose(model.theta_, memory.theta_, rtol=1e-8)
    np.testing.assert_allclose(model.reml_criterion_, memory.reml_criterion_, rtol=1e-10)


def test_dask_mixedglm(benchmark, machine_info, client, request):
    from skmixed import MixedGLM

    df, n_obs = _data(request, (60_000, 300), (200_000, 2_000))
    ddf = dd.from_pandas(df[COLS + ["y_bin"]], npartitions=4).persist()
    model = benchmark.pedantic(lambda: MixedGLM(groups="g").fit(ddf[COLS], ddf["y_bin"]),
                               rounds=3, warmup_rounds=1)
    machine_info(n_obs=n_obs, partitions=4, n_evals=model.optimization_.n_evals)
    memory = MixedGLM(groups="g").fit(df[COLS], df["y_bin"])
    np.testing.assert_allclose(model.coef_, memory.coef_, rtol=1e-6)
    np.testing.assert_allclose(model.theta_, memory.theta_, rtol=1e-6)
    np.testing.assert_allclose(model.deviance_, memory.deviance_, rtol=1e-9)
