"""MixedLM with several grouping factors out of core: a chunked source (chunks of
DataFrames, a Parquet dataset of several files) and a Dask DataFrame of several partitions
give the in-memory fit — crossed (Penicillin, make_crossed), nested with an interaction
(Pastes' ``(1 | batch/cask)``), random slopes by factor, weights — with levels first met
in later chunks, sorted as in memory; bad chunks give errors that name the chunk and the
column.

Tolerances (observed in brackets): the criterion 1e-10 relative (≤ 1e-15); the
intercept-only fits (exact gradient) θ, fixed effects, SEs and modes 1e-8 (≤ 5e-15); with
random slopes (finite-difference gradient, which the rounding of the sums moves) θ 1e-6
(≤ 3e-8), fixed effects and SEs 1e-7 (≤ 3e-9), modes 1e-7 absolute (≤ 5e-9); the level
labels and their order exactly.
"""

import warnings

import numpy as np
import pandas as pd
import pytest

from conftest import require_package

from skmixed import MixedLM
from skmixed.datasets import make_crossed
from skmixed.exceptions import IdentifiabilityWarning
from skmixed.sources import ChunkedData, from_parquet

CROSSED = ["user", "item", "x"]


def _source(frame, target, size, weight=None):
    """Chunks of ``size`` rows, each its own chunk (from_chunks would join small ones)."""
    parts = [frame.iloc[i:i + size] for i in range(0, len(frame), size)]
    return ChunkedData(lambda: ((f"chunk {i}", p) for i, p in enumerate(parts)), target,
                       weight=weight, progress=False)


def _same_fit(a, b, tight=True):
    crit = "reml_criterion_" if a.reml else "deviance_"
    assert getattr(a, crit) == pytest.approx(getattr(b, crit), rel=1e-10)
    rtol, theta_rtol, atol = (1e-8, 1e-8, 1e-8) if tight else (1e-7, 1e-6, 1e-7)
    np.testing.assert_allclose(a.theta_, b.theta_, rtol=theta_rtol, atol=atol)
    np.testing.assert_allclose(a.coef_, b.coef_, rtol=rtol, atol=1e-12)
    assert a.intercept_ == pytest.approx(b.intercept_, rel=rtol, abs=1e-12)
    assert a.sigma_ == pytest.approx(b.sigma_, rel=rtol)
    np.testing.assert_allclose(a.fixed_effects_["std_error"], b.fixed_effects_["std_error"],
                               rtol=rtol)
    assert a.n_obs_ == b.n_obs_
    assert list(a.group_levels_) == list(b.group_levels_)
    for name in b.group_levels_:
        pd.testing.assert_index_equal(a.group_levels_[name], b.group_levels_[name])
    pd.testing.assert_frame_equal(a.variance_components_, b.variance_components_,
                                  rtol=theta_rtol)
    pd.testing.assert_frame_equal(a.random_effects_.drop(columns=["mode", "cond_sd"]),
                                  b.random_effects_.drop(columns=["mode", "cond_sd"]))
    np.testing.assert_allclose(a.random_effects_["mode"], b.random_effects_["mode"],
                               rtol=rtol, atol=atol)
    np.testing.assert_allclose(a.random_effects_["cond_sd"], b.random_effects_["cond_sd"],
                               rtol=rtol)


@pytest.fixture(scope="module")
def crossed():
    df = make_crossed(6_000, 300, 40, random_state=2)
    df.attrs = {}  # the simulator's truth (arrays) has no place in Parquet metadata
    return df[CROSSED + ["y"]]


@pytest.fixture(scope="module")
def penicillin(data_file):
    return pd.read_csv(data_file("Penicillin.csv"))


@pytest.fixture(scope="module")
def pastes(data_file):
    return pd.read_csv(data_file("Pastes.csv"))[["batch", "cask", "strength"]]


def test_penicillin_crossed_from_chunks(penicillin):
    """Shuffled into 5 chunks: every plate and sample spread over several."""
    memory = MixedLM(groups=["plate", "sample"]).fit(penicillin[["plate", "sample"]],
                                                     penicillin["diameter"])
    rows = penicillin.sample(frac=1.0, random_state=0)
    chunked = MixedLM(groups=["plate", "sample"]).fit(_source(rows, "diameter", 30))
    _same_fit(chunked, memory)
    assert list(chunked.feature_names_in_) == ["plate", "sample"]
    new = penicillin[["plate", "sample"]].iloc[:20]
    np.testing.assert_allclose(chunked.predict(new), memory.predict(new), rtol=1e-10)


def test_pastes_nested_interaction_from_chunks(pastes):
    """``(1 | batch/cask)``: the interaction's levels ("a:A", …) sorted by its columns'
    values, as in memory, although each chunk meets only some of them."""
    groups = ["batch", ("cask", "batch")]
    memory = MixedLM(groups=groups).fit(pastes[["batch", "cask"]], pastes["strength"])
    chunked = MixedLM(groups=groups).fit(
        _source(pastes.sample(frac=1.0, random_state=1), "strength", 13))
    _same_fit(chunked, memory)
    assert chunked.n_groups_ == {"batch": 10, "cask:batch": 30}


@pytest.mark.parametrize("params", [
    dict(groups=["user", "item"]),
    dict(groups=["user", "item"], reml=False),
    dict(groups=["user", "item"], random_slopes={"user": ["x"]}),
    dict(groups=["item", "user"], random_slopes={"item": "x"}, covariance="diagonal",
         reml=False),
], ids=["crossed", "crossed-ml", "slope-user", "slope-item-diagonal-ml"])
def test_crossed_with_levels_first_seen_in_later_chunks(crossed, params):
    """The rows sorted so that the last chunk holds users and items no earlier chunk has
    (and the first chunk fixes the centring shift without them)."""
    late = (crossed["user"].cat.codes >= 280) | (crossed["item"].cat.codes >= 36)
    rows = pd.concat([crossed[~late], crossed[late]], ignore_index=True)
    chunks = [rows.iloc[i:i + 1_000] for i in range(0, len(rows), 1_000)]
    seen = pd.concat(chunks[:-2])
    for column in ("user", "item"):
        assert set(chunks[-1][column]) - set(seen[column])
    memory = MixedLM(**params).fit(crossed[CROSSED], crossed["y"])
    chunked = MixedLM(**params).fit(_source(rows, "y", 1_000))
    _same_fit(chunked, memory, tight="random_slopes" not in params)


def test_weights_and_a_level_without_weight(crossed):
    """Frequency weights from a column; a user whose rows all have weight 0 is dropped,
    as in memory."""
    rows = crossed.assign(w=np.random.default_rng(3).integers(0, 4, len(crossed)) * 1.0)
    rows.loc[rows["user"] == rows["user"].iloc[-1], "w"] = 0.0
    params = dict(groups=["user", "item"], random_slopes={"user": ["x"]})
    memory = MixedLM(**params).fit(rows[CROSSED], rows["y"], sample_weight=rows["w"])
    chunked = MixedLM(**params).fit(_source(rows, "y", 1_500, weight="w"))
    _same_fit(chunked, memory, tight=False)
    assert rows["user"].iloc[-1] not in set(chunked.group_levels_["user"])


def test_categorical_levels_keep_their_categories_order(penicillin):
    """A categorical column with the same categories in every chunk orders its levels by
    them (reversed here), as in memory; categories that differ between chunks order the
    levels by value, as concatenating the chunks would."""
    reversed_cats = sorted(penicillin["sample"].unique(), reverse=True)
    rows = penicillin.assign(sample=pd.Categorical(penicillin["sample"],
                                                   categories=reversed_cats))
    memory = MixedLM(groups=["plate", "sample"]).fit(rows[["plate", "sample"]],
                                                     rows["diameter"])
    chunked = MixedLM(groups=["plate", "sample"]).fit(_source(rows, "diameter", 50))
    _same_fit(chunked, memory)
    assert list(chunked.group_levels_["sample"]) == reversed_cats

    parts = [rows.iloc[:72], rows.iloc[72:].assign(
        sample=rows["sample"].iloc[72:].cat.reorder_categories(sorted(reversed_cats)))]
    source = ChunkedData(lambda: ((f"chunk {i}", p) for i, p in enumerate(parts)),
                         "diameter", progress=False)
    assert list(MixedLM(groups=["plate", "sample"]).fit(source).group_levels_["sample"]) \
        == sorted(reversed_cats)


def test_parquet_dataset_of_several_files(crossed, tmp_path):
    require_package("pyarrow", "parquet")
    for i in range(4):
        crossed.iloc[i * 1_500:(i + 1) * 1_500].to_parquet(tmp_path / f"part-{i}.parquet",
                                                            index=False)
    params = dict(groups=["user", "item"], random_slopes={"user": ["x"]})
    memory = MixedLM(**params).fit(crossed[CROSSED], crossed["y"])
    from_disk = MixedLM(**params).fit(from_parquet(tmp_path, target="y", columns=CROSSED,
                                                   progress=False))
    _same_fit(from_disk, memory, tight=False)
    assert from_disk.optimization_.timings["row_pass"] > 0


@pytest.mark.parametrize("case", ["crossed", "nested", "slope"])
def test_dask_dataframe_of_several_partitions(crossed, pastes, case):
    dd = require_package("dask.dataframe", "dask")
    if case == "nested":
        data, X_cols, target = pastes, ["batch", "cask"], "strength"
        params = dict(groups=["batch", ("cask", "batch")])
    else:
        data, X_cols, target = crossed, CROSSED, "y"
        params = dict(groups=["user", "item"])
        if case == "slope":
            params["random_slopes"] = {"user": ["x"]}
    memory = MixedLM(**params).fit(data[X_cols], data[target])
    ddf = dd.from_pandas(data.sample(frac=1.0, random_state=4), npartitions=4)
    model = MixedLM(**params).fit(ddf[X_cols], ddf[target])
    _same_fit(model, memory, tight=case != "slope")


def test_identical_factors_warn_from_chunks(penicillin):
    """Two factors that split the rows alike (found from their contingency table) warn as
    in memory, at the caller's line."""
    rows = penicillin.assign(plate2=penicillin["plate"] + "x")
    cols = ["plate", "plate2", "sample"]
    with pytest.warns(IdentifiabilityWarning, match="'plate' and 'plate2'") as record:
        MixedLM(groups=cols).fit(_source(rows[cols + ["diameter"]], "diameter", 50))
    assert {r.filename for r in record if r.category is IdentifiabilityWarning} == {__file__}


def _bad_chunk(frame, index, mutate):
    parts = [frame.iloc[i:i + 1_000] for i in range(0, 4_000, 1_000)]
    parts[index] = mutate(parts[index].copy())
    return ChunkedData(lambda: ((f"chunk {i}", p) for i, p in enumerate(parts)), "y",
                       progress=False)


def _with_nan(column):
    def mutate(part):
        part.iloc[5, part.columns.get_loc(column)] = np.nan  # a categorical's missing code
        return part
    return mutate


@pytest.mark.parametrize("groups, index, mutate, match", [
    (["user", "item"], 2, _with_nan("item"), r"chunk 2: .*column 'item'.* every row needs a group"),
    (["user", ("item", "user")], 1, _with_nan("item"), r"chunk 1: .*column 'item'"),
    (["user", "item"], 1, _with_nan("x"), r"chunk 1: Input X column 'x' contains NaN"),
    (["user", "item"], 3, lambda p: p.drop(columns=["item"]), r"chunk 3 lacks the column\(s\) \['item'\]"),
    (["user", "itm"], 0, lambda p: p, r"chunk 0: groups='itm' is not a column of X"),
], ids=["nan-group", "nan-interaction", "nan-fixed", "missing-column", "unknown-group"])
def test_bad_chunks_name_the_chunk_and_column(crossed, groups, index, mutate, match):
    model = MixedLM(groups=groups)
    with pytest.raises(ValueError, match=match):
        model.fit(_bad_chunk(crossed, index, mutate))
    assert not hasattr(model, "coef_")


def test_label_types_mixed_across_chunks_are_refused(crossed):
    """Chunks whose labels are each of one type, but not the same type: "1" and 1 would be
    two groups."""
    rows = crossed.assign(item=crossed["item"].astype(str).astype(object))

    def as_numbers(part):
        part["item"] = part["item"].str.lstrip("i").astype(int).astype(object)
        return part

    model = MixedLM(groups=["user", "item"])
    with pytest.raises(ValueError, match=r"grouping column 'item' mixes label types"):
        model.fit(_bad_chunk(rows, 1, as_numbers))
    assert not hasattr(model, "coef_")


def test_bad_slopes_and_dask_partition_errors(crossed):
    with pytest.raises(ValueError, match=r"random_slopes names \['itm'\]"):
        MixedLM(groups=["user", "item"], random_slopes={"itm": ["x"]}).fit(
            _source(crossed, "y", 2_000))
    with pytest.raises(ValueError, match="covariance and random_slopes as dicts"):
        MixedLM(groups="user", random_slopes={"user": ["x"]}).fit(_source(crossed, "y", 2_000))
    dd = require_package("dask.dataframe", "dask")
    bad = crossed.assign(x=crossed["x"].where(crossed.index != 4_500))
    ddf = dd.from_pandas(bad, npartitions=3)
    with pytest.raises(ValueError, match=r"partition 2: Input X column 'x' contains NaN"):
        MixedLM(groups=["user", "item"]).fit(ddf[CROSSED], ddf["y"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no fit, no warning
        with pytest.raises(ValueError, match="no rows"):
            MixedLM(groups=["user", "item"]).fit(_source(crossed.iloc[:0], "y", 10))
