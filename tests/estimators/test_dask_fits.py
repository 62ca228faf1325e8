"""Fits from a Dask DataFrame on a dask.distributed LocalCluster started here (2 worker
processes):

* MixedLM: every partition reduced to per-group sums on its worker, the same estimates as
  the in-memory fit (1e-8 relative) with every group spread over all partitions, errors
  that name the partition; with several factors also the factors' contingency tables;
* MixedGLM (Laplace): rows shuffled by group, one actor per partition; the same estimates
  as the in-memory fit at the GLMM tolerance (β and θ 1e-6, standard errors 1e-3: both
  from finite-difference Hessians at slightly different points); a worker killed mid-fit
  is replaced (or, past the rebuild limit, named in a LostWorkerError);
* X and y as columns of one ``read_parquet`` frame, which the query optimizer partitions
  differently when they are projected apart, for all three estimators; X and y from
  different frames are joined partition by partition, never aligned by index."""

import os
import signal

import numpy as np
import pandas as pd
import pytest

from conftest import require_package

dd = require_package("dask.dataframe", "dask")
distributed = require_package("distributed", "dask")

from skmixed import AdditiveMixed, MixedGLM, MixedLM  # noqa: E402
from skmixed._estimators._dask_glmm import DaskLaplace  # noqa: E402
from skmixed.datasets import make_multilevel  # noqa: E402
from skmixed.exceptions import LostWorkerError  # noqa: E402

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


def test_dask_several_factors(client, data):
    """Several factors (a crossed h, a random slope in g, weights): per-level sums and the
    factors' contingency tables made on the workers, added on the client in partition
    order — the in-memory fit (criterion 1e-10, θ 1e-6 relative or 1e-7 absolute: one
    entry is -5e-4; coefficients 1e-7)."""
    frame = data[["x", "g", "y"]].assign(
        h=np.arange(len(data)) % 17, w=np.random.default_rng(5).integers(1, 3, len(data)))
    cols = ["x", "g", "h"]
    params = dict(groups=["g", "h"], random_slopes={"g": ["x"]})
    memory = MixedLM(**params).fit(frame[cols], frame["y"], sample_weight=frame["w"])
    ddf = dd.from_pandas(frame, npartitions=5)
    model = MixedLM(**params).fit(ddf[cols], ddf["y"], sample_weight=ddf["w"])
    assert model.reml_criterion_ == pytest.approx(memory.reml_criterion_, rel=1e-10)
    np.testing.assert_allclose(model.theta_, memory.theta_, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(model.coef_, memory.coef_, rtol=1e-7)
    for name in ("g", "h"):
        pd.testing.assert_index_equal(model.group_levels_[name], memory.group_levels_[name])
    np.testing.assert_allclose(model.random_effects_["mode"], memory.random_effects_["mode"],
                               atol=1e-7)


def _same_glmm_fit(model, reference):
    """The GLMM tolerance: β and θ 1e-6, the deviance 1e-9, the modes 1e-6."""
    np.testing.assert_allclose(model.coef_, reference.coef_, rtol=1e-6)
    np.testing.assert_allclose(model.theta_, reference.theta_, rtol=1e-6, atol=1e-8)
    assert model.deviance_ == pytest.approx(reference.deviance_, rel=1e-9)
    np.testing.assert_allclose(model.random_effects_["mode"],
                               reference.random_effects_["mode"], atol=1e-6)


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
    _same_glmm_fit(model, memory)
    np.testing.assert_allclose(model.fixed_effects_["std_error"],
                               memory.fixed_effects_["std_error"], rtol=1e-3)
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


def _write_parquet(frame, folder, n_files):
    """``n_files`` files of 2 row groups each (the group column stays categorical: Arrow
    dictionaries that differ from file to file)."""
    pa = require_package("pyarrow", "parquet")
    import pyarrow.parquet as pq

    step = -(-len(frame) // n_files)
    for i in range(n_files):
        part = frame.iloc[i * step:(i + 1) * step]
        pq.write_table(pa.Table.from_pandas(part, preserve_index=False),
                       folder / f"part-{i}.parquet", row_group_size=-(-len(part) // 2))
    return folder


@pytest.fixture(scope="module")
def parquet_folder(data, tmp_path_factory):
    frame = data.assign(w=np.random.default_rng(2).integers(1, 4, len(data)).astype(float))
    return _write_parquet(frame, tmp_path_factory.mktemp("dask_parquet"), 10)


def test_columns_of_one_read_parquet_frame(client, data, parquet_folder):
    """docs/outofcore.md's usage on Parquet data: X and y projected from one read_parquet frame,
    which the optimizer fuses into different partitions when they are projected apart
    (issue 13: "X has 4 partitions but y has 3") — MixedLM (with weights), AdditiveMixed
    and MixedGLM equal their in-memory fits."""
    f = dd.read_parquet(parquet_folder)
    assert f[COLS].optimize().npartitions != f["y"].optimize().npartitions
    w = data.assign(w=f["w"].compute().to_numpy())["w"]
    memory = MixedLM(groups="g").fit(data[COLS], data["y"], sample_weight=w)
    model = MixedLM(groups="g").fit(f[COLS], f["y"], sample_weight=f["w"])
    np.testing.assert_allclose(model.coef_, memory.coef_, rtol=1e-8)
    np.testing.assert_allclose(model.theta_, memory.theta_, rtol=1e-8)
    np.testing.assert_allclose(model.random_effects_["mode"], memory.random_effects_["mode"],
                               rtol=1e-8, atol=1e-10)

    cols = ["x", "b", "z", "g"]
    memory = AdditiveMixed(smooths=["z"], groups="g", discrete=True).fit(data[cols],
                                                                       data["y_nl"])
    model = AdditiveMixed(smooths=["z"], groups="g").fit(f[cols], f["y_nl"])
    np.testing.assert_allclose(model.coef_, memory.coef_, rtol=1e-8)
    np.testing.assert_allclose(model.smooths_["edf"], memory.smooths_["edf"], rtol=1e-6)

    memory = MixedGLM(groups="g").fit(data[COLS], data["y_bin"])
    _same_glmm_fit(MixedGLM(groups="g").fit(f[COLS], f["y_bin"]), memory)


def test_x_and_y_that_do_not_match_are_refused_clearly(client, data, parquet_folder):
    """Issue 13 review: y from a second read_parquet of the folder gave a raw AssertionError
    ("Mismatched divisions between multiple Blockwise dependencies"), and X filtered with y
    not a raw pandas "cannot reindex on an axis with duplicate labels". The second read is
    another frame (joined by partition, here refused: the optimizer partitions its columns
    differently); X and y of one frame are joined by position, partition by partition, so
    a filter applied to X alone is named."""
    f = dd.read_parquet(parquet_folder)
    g = dd.read_parquet(parquet_folder, columns=["y"])
    for model in (MixedLM(groups="g"), AdditiveMixed(smooths=["x"], groups="g")):
        with pytest.raises(ValueError, match=r"numbers of partitions differ \(X \d+, y \d+\) "
                           r"and X and y are not columns of one frame \(a second "
                           r"read_parquet"):
            model.fit(f[COLS], g["y"])
        with pytest.raises(ValueError, match=r"partition \d+: X has \d+ rows but y has "
                           r"\d+: X and y must hold the same rows — take both from one "
                           r"frame after any filtering"):
            model.fit(f[f.x > 0][COLS], f["y"])
        assert not hasattr(model, "coef_")
    kept = f[f.x > 0]
    memory = MixedLM(groups="g").fit(data.loc[data.x > 0, COLS], data.loc[data.x > 0, "y"])
    model = MixedLM(groups="g").fit(kept[COLS], kept["y"])
    np.testing.assert_allclose(model.coef_, memory.coef_, rtol=1e-8)


def test_other_frames_are_joined_by_partition_never_by_index(client, data, tmp_path):
    """y from another frame: partition by partition when the partitions match (here two
    from_pandas frames), else refused — the index is never used to align them (issue 13:
    AdditiveMixed aligned a read_parquet X and a from_pandas y by an index that restarts
    in every file, and fitted coefficients 0.048 and 0.009 for 0.494 and 0.255)."""
    memory = MixedLM(groups="g").fit(data[COLS], data["y"])
    X3 = dd.from_pandas(data[COLS], npartitions=3)
    model = MixedLM(groups="g").fit(X3, dd.from_pandas(data["y"], npartitions=3))
    np.testing.assert_allclose(model.coef_, memory.coef_, rtol=1e-8)
    with pytest.raises(ValueError, match=r"partition \d: X has 20000 rows but y has 199\d\d"):
        MixedLM(groups="g").fit(X3, dd.from_pandas(data["y"].iloc[:-10], npartitions=3))

    frame = data.assign(g=data["g"].astype(np.int64))  # an index-aligning shuffle works
    f = dd.read_parquet(_write_parquet(frame, tmp_path, 10))
    y4 = dd.from_pandas(frame["y_nl"], npartitions=4)
    cols = ["x", "b", "z", "g"]
    for model, X in ((MixedLM(groups="g"), f[COLS]),
                     (AdditiveMixed(smooths=["z"], groups="g"), f[cols]),
                     (MixedGLM(groups="g"), f[COLS])):
        y = y4 if not isinstance(model, MixedGLM) else dd.from_pandas(frame["y_bin"], 4)
        with pytest.raises(ValueError, match=r"numbers of partitions differ \(X \d+, y 4\) "
                           "and X and y are not columns of one frame"):
            model.fit(X, y)
        assert not hasattr(model, "coef_")


def _kill_at_evaluation(monkeypatch, client, evaluation):
    """SIGKILL the worker of the first partition's actor at the given deviance
    evaluation of a Dask MixedGLM fit (its nanny starts a new worker)."""
    original = DaskLaplace.value_and_grad
    seen = {"n": 0}

    def value_and_grad(self, x):
        seen["n"] += 1
        if seen["n"] == evaluation:
            address = self.actors[0]._address
            pid = client.run(os.getpid, workers=[address])[address]
            os.kill(pid, signal.SIGKILL)
            seen.update(address=address, objective=self)
        return original(self, x)

    monkeypatch.setattr(DaskLaplace, "value_and_grad", value_and_grad)
    return seen


def test_glmm_fit_rebuilds_the_partitions_of_a_lost_worker(client, data, monkeypatch):
    """A worker killed mid-fit: its partitions are recomputed on the other worker and the
    optimizer continues from where it was — the fit equals the undisturbed one (issue 13:
    a raw "OSError: Unable to contact Actor's worker")."""
    ddf = dd.from_pandas(data[COLS + ["y_bin"]], npartitions=4)
    normal = MixedGLM(groups="g").fit(ddf[COLS], ddf["y_bin"])
    seen = _kill_at_evaluation(monkeypatch, client, 4)
    try:
        with pytest.warns(RuntimeWarning, match=r"was lost .*rebuilding partition\(s\)"):
            model = MixedGLM(groups="g").fit(ddf[COLS], ddf["y_bin"])
    finally:
        client.wait_for_workers(2, timeout=120)
    assert seen["objective"].n_rebuilds >= 1
    _same_glmm_fit(model, normal)


def test_glmm_fit_names_a_lost_worker_past_the_rebuild_limit(client, data, monkeypatch):
    ddf = dd.from_pandas(data[COLS + ["y_bin"]], npartitions=4)
    monkeypatch.setattr(DaskLaplace, "MAX_REBUILDS", 0)
    seen = _kill_at_evaluation(monkeypatch, client, 2)
    model = MixedGLM(groups="g")
    try:
        with pytest.raises(LostWorkerError, match=r"the Dask worker tcp://\S+ holding "
                           r"partition 0 of the MixedGLM fit was lost .*the fit can be "
                           "rerun"):
            model.fit(ddf[COLS], ddf["y_bin"])
    finally:
        client.wait_for_workers(2, timeout=120)
    assert not hasattr(model, "coef_")
    assert issubclass(LostWorkerError, RuntimeError) and seen["address"]
