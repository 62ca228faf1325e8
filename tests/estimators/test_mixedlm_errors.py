"""MixedLM on bad input: a clear error, and a fitted model left exactly as it was.

Each bad refit below is attempted on an already fitted model; the fitted attributes must be
unchanged afterwards (fit sets them all at once, after every check has passed). Then the
inputs that are not errors: constant and collinear columns (dropped with a warning, as lme4
does), unseen groups at predict (population level), singular fits and non-convergence
(typed warnings).
"""

import warnings

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.exceptions import ConvergenceWarning

from fitted_state import assert_refit_fails, snapshot
from skmixed import GroupLabelWarning, MixedLM, RankDeficientWarning, SingularFitWarning
from skmixed._estimators._sklearn_compat import InvalidParameterError
from skmixed.datasets import make_multilevel

FITTED_ATTRIBUTES = ["coef_", "intercept_", "theta_", "sigma_", "fixed_effects_",
                     "variance_components_", "group_levels_", "n_features_in_",
                     "feature_names_in_", "loglik_"]


@pytest.fixture(scope="module")
def df():
    return make_multilevel(600, 30, random_state=0)


@pytest.fixture
def X(df):
    return df[["g", "x", "b"]].copy()


@pytest.fixture
def y(df):
    return df["y"].copy()


@pytest.fixture
def fitted(X, y):
    """A fitted model and a deep snapshot of its fitted attributes."""
    model = MixedLM(groups="g").fit(X, y)
    return model, snapshot(model, FITTED_ATTRIBUTES)


def refit_fails(fitted, exc, match, X, y, **fit_params):
    """Refit the fitted model on bad input: it raises ``exc`` and nothing changes."""
    model = fitted[0]
    assert_refit_fails(*fitted, exc, match, X, y, **fit_params)
    assert model.n_features_in_ == 3
    assert list(model.feature_names_in_) == ["g", "x", "b"]


# ------------------------------------------------------------- bad X and y


@pytest.mark.parametrize("column", ["x", "b"])
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_fixed_column(fitted, X, y, column, value):
    X[column] = X[column].astype(float)
    X.loc[X.index[7], column] = value
    refit_fails(fitted, ValueError, f"Input X column '{column}' contains NaN or infinity",
                X, y)


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_non_finite_y(fitted, X, y, value):
    y.iloc[3] = value
    refit_fails(fitted, ValueError, "Input y contains NaN or infinity", X, y)


def test_missing_group_label(fitted, X, y):
    X["g"] = X["g"].where(X.index != X.index[5])  # a categorical's missing code
    assert X["g"].isna().sum() == 1
    refit_fails(fitted, ValueError, "column 'g' \\(the grouping column\\) contains NaN", X, y)


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_non_finite_float_group_label(fitted, X, y, value):
    X["g"] = X["g"].astype(float)
    X.loc[X.index[5], "g"] = value
    refit_fails(fitted, ValueError, "column 'g' \\(the grouping column\\) contains NaN", X, y)


def test_unhashable_group_label(fitted, X, y):
    X["g"] = X["g"].astype(object)
    X.at[X.index[5], "g"] = {"a": 1}
    refit_fails(fitted, TypeError, "group column 'g' holds a value that cannot be a group "
                "label \\(unhashable type: 'dict'\\)", X, y)


def test_missing_group_column(fitted, X, y):
    refit_fails(fitted, ValueError,
                r"groups='g' is not a column of X; columns are \['x', 'b'\]",
                X.drop(columns="g"), y)


def test_group_column_named_wrongly(fitted, X, y):
    fitted[0].set_params(groups="group")
    refit_fails(fitted, ValueError,
                r"groups='group' is not a column of X; columns are \['g', 'x', 'b'\]", X, y)


def test_random_slope_column_absent(fitted, X, y):
    fitted[0].set_params(random_slopes=["w"])
    refit_fails(fitted, ValueError,
                r"random_slopes='w' is not a column of X; columns are \['g', 'x', 'b'\]", X, y)


def test_random_slope_on_group_column(fitted, X, y):
    fitted[0].set_params(random_slopes=["g"])
    refit_fails(fitted, ValueError, "grouping column 'g' cannot also be a random slope", X, y)


def test_fewer_than_two_groups(fitted, X, y):
    X["g"] = 1
    refit_fails(fitted, ValueError, "needs at least 2 groups in column 'g'; found 1", X, y)


def test_fewer_than_two_groups_with_positive_weight(fitted, X, y):
    sw = (X["g"] == X["g"].iloc[0]).to_numpy(dtype=float)
    with warnings.catch_warnings():
        # b is constant within the one weighted group, and dropped as collinear first.
        warnings.simplefilter("ignore", RankDeficientWarning)
        refit_fails(fitted, ValueError, "at least 2 groups with positive weight; found 1",
                    X, y, sample_weight=sw)


@pytest.mark.parametrize("n", [599, 601])
def test_y_of_wrong_length(fitted, X, df, n):
    y = np.resize(df["y"].to_numpy(), n)
    refit_fails(fitted, ValueError, f"y has {n} rows but X has 600", X, y)


def test_y_none(fitted, X):
    refit_fails(fitted, ValueError, "requires y to be passed", X, None)


@pytest.mark.parametrize("values", [
    lambda n: np.where(np.arange(n) % 2, "low", "high"),                      # str dtype
    lambda n: pd.Categorical(np.where(np.arange(n) % 2, "low", "high")),     # categorical
    lambda n: np.array(["a", 1.0] * (n // 2), dtype=object),                  # mixed objects
    lambda n: pd.date_range("2020-01-01", periods=n),                         # datetimes
], ids=["str", "category", "object", "datetime"])
def test_non_numeric_fixed_column(fitted, X, y, values):
    X["s"] = values(len(X))
    refit_fails(fitted, ValueError, "column 's' is not numeric .*; encode it first", X, y)


def test_numbers_stored_as_objects_are_numbers(X, y):
    as_objects = X.assign(x=X["x"].astype(object))
    assert_allclose(MixedLM(groups="g").fit(as_objects, y).coef_,
                    MixedLM(groups="g").fit(X, y).coef_, rtol=1e-12)


def test_y_fitted_exactly(fitted, X):
    y = 1.0 + 2.0 * X["x"] - X["b"]
    refit_fails(fitted, ValueError, "y is fitted exactly by the fixed effects", X, y)


def test_constant_y(fitted, X):
    refit_fails(fitted, ValueError, "y is constant or a linear function", X,
                np.full(len(X), 3.0))


def test_groups_none(fitted, X, y):
    fitted[0].set_params(groups=None)
    refit_fails(fitted, ValueError, r"MixedLM needs groups=<the grouping column of X>", X, y)


@pytest.mark.parametrize("params", [
    {"covariance": "full"}, {"reml": "yes"}, {"fit_intercept": 1.5}, {"tol": 0.0},
    {"tol": "small"}, {"max_iter": 0}, {"max_iter": 2.5}, {"n_jobs": 0},
    {"n_jobs": 1.5}, {"groups": 1.5}, {"random_slopes": 2.5},
], ids=lambda p: "-".join(f"{k}={v}" for k, v in p.items()))
def test_invalid_parameter(fitted, X, y, params):
    name = next(iter(params))
    fitted[0].set_params(**params)
    refit_fails(fitted, InvalidParameterError,
                f"The '{name}' parameter of MixedLM must be", X, y)


@pytest.mark.parametrize("sample_weight, match", [
    (np.ones(599), r"sample_weight.shape == \(599,\), expected \(600,\)"),
    (np.ones((600, 2)), "Sample weights must be 1D"),
    (np.r_[-1.0, np.ones(599)], "Negative values in data passed to `sample_weight`"),
    (np.r_[np.nan, np.ones(599)], "Input sample_weight contains NaN"),
])
def test_bad_sample_weight(fitted, X, y, sample_weight, match):
    refit_fails(fitted, ValueError, match, X, y, sample_weight=sample_weight)


def test_duplicate_column_names(fitted, X, y):
    bad = pd.concat([X, X[["x"]]], axis=1)
    refit_fails(fitted, ValueError, r"duplicate column names \['x'\]", bad, y)


def test_mixed_type_column_names(fitted, X, y):
    bad = X.rename(columns={"b": 0})
    refit_fails(fitted, TypeError, "Feature names are only supported if all input features "
                "have string names", bad, y)


def test_empty_input(fitted, X, y):
    refit_fails(fitted, ValueError, "0 sample", X.iloc[:0], y.iloc[:0])


# ---------------------------------------------- dropped columns (lme4's behaviour)


@pytest.mark.parametrize("extra, expr", [
    ("c", lambda X: np.full(len(X), 3.0)),                  # constant: the intercept's twin
    ("x2", lambda X: 2.0 * X["x"] - X["b"]),                # a combination of x and b
])
def test_constant_and_collinear_columns_are_dropped(X, y, extra, expr):
    reference = MixedLM(groups="g").fit(X, y)
    X_extra = X.assign(**{extra: expr(X)})
    with pytest.warns(RankDeficientWarning,
                      match=rf"rank deficient so dropping 1 column\(s\): \['{extra}'\]"):
        model = MixedLM(groups="g").fit(X_extra, y)
    assert model.dropped_features_ == [extra]
    assert model.fixed_feature_names_ == ["x", "b", extra]
    assert model.coef_[-1] == 0.0
    assert extra not in model.fixed_effects_.index
    # The fit is the fit without that column (up to the optimizer's tolerance).
    pd.testing.assert_frame_equal(model.fixed_effects_, reference.fixed_effects_, rtol=1e-6)
    assert_allclose(model.coef_[:-1], reference.coef_, rtol=1e-7)
    assert_allclose(model.theta_, reference.theta_, rtol=1e-5)
    assert_allclose(model.sigma_, reference.sigma_, rtol=1e-7)
    assert_allclose(model.loglik_, reference.loglik_, rtol=1e-9)
    assert_allclose(model.predict(X_extra), reference.predict(X), rtol=1e-6, atol=1e-8)


def test_no_rank_warning_without_dropped_columns(X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("error", RankDeficientWarning)
        assert MixedLM(groups="g").fit(X, y).dropped_features_ == []


# ----------------------------------------------------------------- predict


def test_unseen_groups_get_population_predictions(df):
    train = df[df["g"].cat.codes < 24]
    model = MixedLM(groups="g").fit(train[["g", "x", "b"]], train["y"])
    X_all = df[["g", "x", "b"]]
    unseen = (df["g"].cat.codes >= 24).to_numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no error and no warning either
        pred = model.predict(X_all)
        population = model.predict(X_all, random_effects=False)
    assert unseen.sum() == 120
    assert_array_equal(pred[unseen], population[unseen])
    assert not np.allclose(pred[~unseen], population[~unseen])
    # Labels outside the fitted categories, given as plain values, too.
    relabelled = X_all.assign(g=np.where(unseen, "new", X_all["g"].astype(str)))
    # as strings the fitted integer labels are unseen too: every row loses its random
    # effects, which GroupLabelWarning says
    with pytest.warns(GroupLabelWarning, match="100% of the rows have a 'g' label"):
        assert_array_equal(model.predict(relabelled)[unseen], population[unseen])


def test_unused_categories_are_not_groups(df, X, y):
    reference = MixedLM(groups="g").fit(X, y)
    X_more = X.assign(g=X["g"].cat.add_categories([99, 100]))
    model = MixedLM(groups="g").fit(X_more, y)
    assert model.n_groups_ == {"g": 30}
    pd.testing.assert_index_equal(model.group_levels_["g"], reference.group_levels_["g"])
    assert_allclose(model.theta_, reference.theta_, rtol=1e-8)
    assert_allclose(model.random_effects_matrix_["g"], reference.random_effects_matrix_["g"],
                    rtol=1e-8)
    # A row in an unused category is a group not seen in fit.
    row = X_more.iloc[:1].assign(g=pd.Categorical([99], categories=X_more["g"].cat.categories))
    assert_array_equal(model.predict(row), model.predict(row, random_effects=False))


def test_population_prediction_is_fixed_part(X, y):
    model = MixedLM(groups="g").fit(X, y)
    expected = model.intercept_ + X[["x", "b"]].to_numpy() @ model.coef_
    assert_allclose(model.predict(X, random_effects=False), expected, rtol=1e-12)


@pytest.mark.parametrize("column", ["g", "x", "b"])
def test_predict_with_a_column_missing(X, y, column):
    model = MixedLM(groups="g").fit(X, y)
    with pytest.raises(ValueError, match=f"Feature names seen at fit time, yet now missing:"
                                         f"\n- {column}"):
        model.predict(X.drop(columns=column))


def test_predict_with_a_column_missing_non_string_labels(X, y):
    # No feature_names_in_ for integer labels, so sklearn cannot name the column: we do.
    X_int = X.set_axis([10, 11, 12], axis=1)
    model = MixedLM(groups=10).fit(X_int, y)
    assert not hasattr(model, "feature_names_in_")
    with pytest.raises(ValueError, match=r"X lacks the column\(s\) \[12\] seen in fit"):
        model.predict(X_int.set_axis([10, 11, 13], axis=1))


def test_predict_with_non_finite_values(X, y):
    model = MixedLM(groups="g").fit(X, y)
    bad = X.assign(x=X["x"].where(X.index != X.index[0], np.nan))
    with pytest.raises(ValueError, match="Input X column 'x' contains NaN or infinity"):
        model.predict(bad)
    bad = X.assign(g=X["g"].astype(float).where(X.index != X.index[0], np.nan))
    with pytest.raises(ValueError, match="column 'g' \\(the grouping column\\) contains NaN"):
        model.predict(bad, random_effects=False)


def test_predict_before_fit(X):
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError, match="This MixedLM instance is not fitted yet"):
        MixedLM(groups="g").predict(X)


# ----------------------------------------------------------------- warnings


def _no_between_group_variance(seed=0, n_groups=20, size=15):
    """x and the noise centred within each group: the group means of y are equal up to the
    intercept, so the between-group variance estimate is exactly at its boundary, 0."""
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(n_groups), size)
    x = rng.normal(size=g.size)
    e = rng.normal(size=g.size)
    x -= pd.Series(x).groupby(g).transform("mean").to_numpy()
    e -= pd.Series(e).groupby(g).transform("mean").to_numpy()
    return pd.DataFrame({"g": g, "x": x}), 1.0 + 0.5 * x + e


def test_singular_fit_warns():
    X, y = _no_between_group_variance()
    with pytest.warns(SingularFitWarning, match=r"boundary \(singular\) fit"):
        model = MixedLM(groups="g").fit(X, y)
    assert model.theta_[0] < 1e-4
    assert model.variance_components_["variance"].iloc[0] < 1e-8


def test_regular_fit_is_not_singular(X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("error", SingularFitWarning)
        model = MixedLM(groups="g").fit(X, y)
    assert model.theta_[0] > 0.1


def test_non_convergence_warns(X, y):
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        model = MixedLM(groups="g", max_iter=1).fit(X, y)
    assert not model.converged_
    assert model.n_iter_ == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        assert MixedLM(groups="g").fit(X, y).converged_
