"""MixedGLM on bad input: a clear error, and a fitted model left exactly as it was.

Each bad refit below is attempted on an already fitted model (the binary classifier, the
aggregated binomial with a trials column, or the Poisson regressor with an offset); the
fitted attributes must be unchanged afterwards (fit sets them all at once, after every check
has passed). Then the fits that are not errors but deserve a warning: separation (a
coefficient whose maximum-likelihood estimate is infinite), boundary (singular) fits and
non-convergence, each with a typed warning.
"""

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit
from sklearn.exceptions import ConvergenceWarning, NotFittedError

from fitted_state import assert_refit_fails, snapshot
from skmixed import MixedGLM, RankDeficientWarning, SingularFitWarning
from skmixed._estimators._sklearn_compat import InvalidParameterError
from skmixed.datasets import make_multilevel

FITTED_ATTRIBUTES = ["coef_", "intercept_", "theta_", "fixed_effects_", "variance_components_",
                     "random_effects_matrix_", "group_levels_", "n_features_in_",
                     "feature_names_in_", "loglik_", "n_iter_"]


@pytest.fixture(scope="module")
def df():
    """600 rows in 30 groups: the binary y_bin, successes y_succ out of n trials,
    Poisson counts y_count with the offset column off (log exposure) and a positive
    Gamma response y_gamma."""
    df = make_multilevel(600, 30, random_state=0)
    rng = np.random.default_rng(1)
    u = rng.normal(0.0, 0.5, size=30)[df["g"].cat.codes.to_numpy()]
    eta = 0.3 * df["x"].to_numpy() + u
    off = np.log(rng.uniform(0.5, 4.0, size=len(df)))
    n = rng.integers(1, 8, size=len(df))
    return df.assign(n=n, y_succ=rng.binomial(n, expit(eta)), off=off,
                     y_count=rng.poisson(np.exp(0.5 + eta + off)),
                     y_gamma=rng.gamma(4.0, np.exp(1.0 + eta) / 4.0))


# Each kind: the estimator's parameters, the columns of X, the target.
KINDS = {
    "classifier": ({}, ["g", "x", "b"], "y_bin"),
    "trials": ({"trials": "n"}, ["g", "x", "b", "n"], "y_succ"),
    "poisson": ({"family": "poisson", "offset": "off"}, ["g", "x", "b", "off"], "y_count"),
    "gamma": ({"family": "gamma"}, ["g", "x", "b"], "y_gamma"),
}


@pytest.fixture(scope="module")
def fitted_models(df):
    models = {}
    for kind, (params, columns, target) in KINDS.items():
        models[kind] = MixedGLM(groups="g", **params).fit(df[columns], df[target])
    return models


@pytest.fixture
def fitted(request, df, fitted_models):
    """(model, snapshot of its fitted attributes, X, y) of the kind named by the test's
    ``kind`` parameter (default: the classifier). The model is a fresh fitted copy."""
    kind = getattr(request, "param", "classifier")
    params, columns, target = KINDS[kind]
    model = MixedGLM(groups="g", **params).fit(df[columns], df[target])
    attributes = FITTED_ATTRIBUTES + (["classes_"] if kind == "classifier" else [])
    return model, snapshot(model, attributes), df[columns].copy(), df[target].copy()


def refit_fails(fitted, exc, match, X, y, **fit_params):
    """Refit the fitted model on bad input: it raises ``exc`` and nothing changes."""
    assert_refit_fails(*fitted[:2], exc, match, X, y, **fit_params)


def refit_with_params_fails(fitted, exc, match, X=None, y=None, **params):
    """Set bad parameters on the fitted model, refit: it raises and nothing changes."""
    fitted[0].set_params(**params)
    refit_fails(fitted, exc, match, fitted[2] if X is None else X,
                fitted[3] if y is None else y)


CLASSIFIER = pytest.mark.parametrize("fitted", ["classifier"], indirect=True)
TRIALS = pytest.mark.parametrize("fitted", ["trials"], indirect=True)
POISSON = pytest.mark.parametrize("fitted", ["poisson"], indirect=True)
GAMMA = pytest.mark.parametrize("fitted", ["gamma"], indirect=True)
ALL_KINDS = pytest.mark.parametrize("fitted", list(KINDS), indirect=True)


# ------------------------------------------------------- the binary classifier's y


@CLASSIFIER
def test_more_than_two_classes(fitted):
    X, y = fitted[2:]
    y3 = np.where(X["x"] > 1, 2, y)
    refit_fails(fitted, ValueError, "Only binary classification is supported. The type of "
                "the target is multiclass: binomial MixedGLM without trials needs exactly 2 "
                r"classes in y \(found 3\). For successes out of a number of trials name the "
                "trials column with trials=", X, y3)


@CLASSIFIER
@pytest.mark.parametrize("label", [1, "a"])
def test_one_class(fitted, label):
    X = fitted[2]
    refit_fails(fitted, ValueError, rf"needs exactly 2 classes in y; found 1: \[{label!r}\]",
                X, np.full(len(X), label, dtype=object if label == "a" else int))


@CLASSIFIER
def test_one_class_among_weighted_rows(fitted):
    X, y = fitted[2:]
    sw = (y == 1).to_numpy(dtype=float)
    refit_fails(fitted, ValueError, "y has only the class 1 among the rows with positive "
                "sample_weight", X, y, sample_weight=sw)


@CLASSIFIER
def test_continuous_target(fitted):
    X = fitted[2]
    refit_fails(fitted, ValueError, "Unknown label type: continuous", X, X["x"].to_numpy())


@CLASSIFIER
@pytest.mark.parametrize("value", [np.nan, np.inf, None])
def test_non_finite_or_missing_class_label(fitted, value):
    X, y = fitted[2:]
    y = y.astype(object if value is None else float)
    y.iloc[3] = value
    refit_fails(fitted, ValueError, "Input y contains NaN, infinity or missing labels", X, y)


@CLASSIFIER
def test_y_with_two_columns(fitted):
    X, y = fitted[2:]
    refit_fails(fitted, ValueError, r"y should be a 1d array, got an array of shape \(600, 2\)",
                X, np.column_stack([y, y]))


# ---------------------------------------------------- successes out of trials


@TRIALS
@pytest.mark.parametrize("change, row_value", [
    (lambda y, n: y.where(y.index != 5, -1), "y = -1 with"),
    (lambda y, n: y.where(y.index != 5, n + 1), r"y = \d+ with \d+ trials"),
    (lambda y, n: y.astype(float).where(y.index != 5, 0.5), "y = 0.5 with"),
], ids=["negative", "above-trials", "non-integer"])
def test_successes_outside_trials(fitted, change, row_value):
    X, y = fitted[2:]
    refit_fails(fitted, ValueError, "binomial y with trials must hold integer successes "
                f"between 0 and the trials column 'n'; row 5 has {row_value}", X,
                change(y, X["n"]))


@TRIALS
@pytest.mark.parametrize("value", [0, -2, 2.5])
def test_bad_trials(fitted, value):
    X, y = fitted[2:]
    X["n"] = X["n"].astype(float)
    X.loc[X.index[4], "n"] = value
    refit_fails(fitted, ValueError, f"the trials column 'n' must hold positive integers; "
                f"row 4 has {value:g}", X, y.clip(upper=X["n"].clip(lower=0)))


@TRIALS
@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_non_finite_trials(fitted, value):
    X, y = fitted[2:]
    X["n"] = X["n"].astype(float)
    X.loc[X.index[4], "n"] = value
    refit_fails(fitted, ValueError, "Input X column 'n' contains NaN or infinity", X, y)


@TRIALS
@pytest.mark.parametrize("successes, what", [(0, "no success"), ("all", "no failure")])
def test_no_successes_or_no_failures(fitted, successes, what):
    X = fitted[2]
    y = X["n"] if successes == "all" else np.zeros(len(X))
    refit_fails(fitted, ValueError, f"y has {what} .* no model can be fitted", X, y)


@TRIALS
def test_trials_column_missing(fitted):
    X, y = fitted[2:]
    refit_fails(fitted, ValueError, r"trials='n' is not a column of X; columns are "
                r"\['g', 'x', 'b'\]", X.drop(columns="n"), y)


@TRIALS
@pytest.mark.parametrize("params, match", [
    ({"trials": "g"}, "trials='g' names the column 'g', which is already given as groups"),
    ({"random_slopes": ["n"]},
     "trials='n' names the column 'n', which is already given as random_slopes"),
    ({"offset": "n"}, "offset='n' names the column 'n', which is already given as trials"),
])
def test_a_column_has_one_role(fitted, params, match):
    refit_with_params_fails(fitted, ValueError, match, **params)


# ------------------------------------------------------------------ Poisson counts


@POISSON
@pytest.mark.parametrize("value, shown", [(-1, "-1"), (2.5, "2.5")])
def test_bad_counts(fitted, value, shown):
    X, y = fitted[2:]
    y = y.astype(float)
    y.iloc[7] = value
    refit_fails(fitted, ValueError, f"Poisson y must hold non-negative integer counts; row 7 "
                f"has {shown}", X, y)


@POISSON
def test_only_zero_counts(fitted):
    X = fitted[2]
    refit_fails(fitted, ValueError, "y has only zero counts among the rows", X,
                np.zeros(len(X)))


@POISSON
def test_trials_for_poisson(fitted):
    refit_with_params_fails(fitted, ValueError, "trials='n' is for family='binomial' only",
                            trials="n")


@POISSON
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_offset(fitted, value):
    X, y = fitted[2:]
    X.loc[X.index[9], "off"] = value
    refit_fails(fitted, ValueError, "Input X column 'off' contains NaN or infinity", X, y)


@POISSON
def test_offset_column_missing(fitted):
    X, y = fitted[2:]
    refit_fails(fitted, ValueError, "offset='off' is not a column of X", X.drop(columns="off"),
                y)


# ------------------------------------------------------------- every kind: X and y


@ALL_KINDS
@pytest.mark.parametrize("column", ["x", "b"])
@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_non_finite_fixed_column(fitted, column, value):
    X, y = fitted[2:]
    X[column] = X[column].astype(float)
    X.loc[X.index[7], column] = value
    refit_fails(fitted, ValueError, f"Input X column '{column}' contains NaN or infinity",
                X, y)


@ALL_KINDS
@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_non_finite_y(fitted, value):
    X, y = fitted[2:]
    y = y.astype(float)
    y.iloc[3] = value
    refit_fails(fitted, ValueError, "Input y contains NaN", X, y)


@ALL_KINDS
def test_missing_group_column(fitted):
    X, y = fitted[2:]
    refit_fails(fitted, ValueError, "groups='g' is not a column of X; columns are "
                r"\['x', 'b'", X.drop(columns="g"), y)


@ALL_KINDS
def test_fewer_than_two_groups(fitted):
    X, y = fitted[2:]
    refit_fails(fitted, ValueError, "needs at least 2 groups in column 'g'; found 1",
                X.assign(g=1), y)


@ALL_KINDS
def test_fewer_than_two_groups_with_positive_weight(fitted):
    X, y = fitted[2:]
    sw = (X["g"] == X["g"].iloc[0]).to_numpy(dtype=float)
    refit_fails(fitted, ValueError, "needs at least 2 groups with positive weight in column "
                "'g'; found 1", X, y, sample_weight=sw)


@ALL_KINDS
def test_missing_group_label(fitted):
    X, y = fitted[2:]
    X["g"] = X["g"].where(X.index != X.index[5])
    refit_fails(fitted, ValueError, "column 'g' \\(the grouping column\\) contains NaN", X, y)


@ALL_KINDS
@pytest.mark.parametrize("n", [599, 601])
def test_y_of_wrong_length(fitted, n):
    X, y = fitted[2:]
    refit_fails(fitted, ValueError, f"y has {n} rows but X has 600",
                X, np.resize(y.to_numpy(), n))


@ALL_KINDS
def test_y_none(fitted):
    refit_fails(fitted, ValueError, "requires y to be passed", fitted[2], None)


@ALL_KINDS
def test_non_numeric_fixed_column(fitted):
    X, y = fitted[2:]
    X["s"] = np.where(np.arange(len(X)) % 2, "low", "high")
    refit_fails(fitted, ValueError, "column 's' is not numeric .*; encode it first", X, y)


@ALL_KINDS
@pytest.mark.parametrize("sample_weight, match", [
    (np.ones(599), r"sample_weight.shape == \(599,\), expected \(600,\)"),
    (np.r_[-1.0, np.ones(599)], "Negative values in data passed to `sample_weight`"),
    (np.r_[np.nan, np.ones(599)], "Input sample_weight contains NaN"),
])
def test_bad_sample_weight(fitted, sample_weight, match):
    refit_fails(fitted, ValueError, match, *fitted[2:], sample_weight=sample_weight)


# ------------------------------------------------------------------- parameters


@CLASSIFIER
@pytest.mark.parametrize("params", [
    {"family": "gaussian"}, {"family": "Binomial"}, {"link": 3}, {"n_agq": -1},
    {"n_agq": 51}, {"n_agq": 2.5}, {"covariance": "full"}, {"fit_intercept": "yes"},
    {"tol": 0.0}, {"max_iter": 0}, {"n_jobs": 1.5}, {"groups": 1.5}, {"trials": 2.5},
    {"offset": 1.5}, {"random_slopes": 2.5},
], ids=lambda p: "-".join(f"{k}={v}" for k, v in p.items()))
def test_invalid_parameter(fitted, params):
    name = next(iter(params))
    refit_with_params_fails(fitted, InvalidParameterError,
                            f"The '{name}' parameter of MixedGLM must be", **params)


@CLASSIFIER
@pytest.mark.parametrize("family, link, valid", [
    ("binomial", "identity", r"\['cloglog', 'logit', 'probit'\]"),
    ("binomial", "log", r"\['cloglog', 'logit', 'probit'\]"),
    ("poisson", "logit", r"\['log'\]"),
    ("poisson", "sqrt", r"\['log'\]"),
    ("gamma", "inverse", r"\['log'\]"),
])
def test_unknown_link(fitted, df, family, link, valid):
    y = {"poisson": df["y_count"], "gamma": df["y_gamma"]}.get(family)
    refit_with_params_fails(fitted, ValueError, f"unknown link '{link}' for family "
                            f"'{family}'; valid links: {valid}", y=y, family=family, link=link)


# ------------------------------------------------------------------ Gamma responses


@GAMMA
@pytest.mark.parametrize("value, shown", [(0.0, "0"), (-2.5, "-2.5")])
def test_non_positive_gamma_response(fitted, value, shown):
    X, y = fitted[2:]
    y = y.copy()
    y.iloc[11] = value
    refit_fails(fitted, ValueError, f"Gamma y must be positive; row 11 has {shown}", X, y)


@GAMMA
def test_constant_gamma_response(fitted):
    X, y = fitted[2:]
    refit_fails(fitted, ValueError, "y has the same value in every row: a Gamma model's "
                "dispersion would be 0", X, pd.Series(np.full(len(y), 3.5), index=y.index))


@GAMMA
def test_gamma_response_fitted_exactly_by_the_fixed_effects(fitted):
    X, y = fitted[2:]
    exact = pd.Series(np.exp(0.2 + 0.4 * X["x"].to_numpy()), index=y.index)
    refit_fails(fitted, ValueError, "the fixed effects alone fit y exactly", X, exact)


@GAMMA
@pytest.mark.parametrize("n_agq", [0, 5])
def test_gamma_needs_the_laplace_approximation(fitted, n_agq):
    refit_with_params_fails(fitted, ValueError, f"n_agq={n_agq} with family='gamma': the "
                            "Gamma model is fitted by the Laplace approximation", n_agq=n_agq)


@ALL_KINDS
@pytest.mark.parametrize("covariance", ["unstructured", "diagonal"])
def test_quadrature_with_a_random_slope(fitted, covariance):
    refit_with_params_fails(fitted, ValueError, r"n_agq=5 > 1 \(adaptive Gauss-Hermite "
                            "quadrature\\) needs a single scalar random effect .* this model "
                            r"has 2 per group \['\(Intercept\)', 'x'\]", n_agq=5,
                            random_slopes=["x"], covariance=covariance)


@CLASSIFIER
def test_groups_none(fitted):
    refit_with_params_fails(fitted, ValueError, "MixedGLM needs groups=<the grouping column "
                            "of X>", groups=None)


# ----------------------------------------------------------------- predict


@POISSON
def test_predict_checks_offset(fitted):
    model, _, X, _ = fitted
    with pytest.raises(ValueError, match="Input X column 'off' contains NaN or infinity"):
        model.predict(X.assign(off=np.where(X.index == X.index[0], np.nan, X["off"])))


@TRIALS
def test_predict_checks_trials(fitted):
    model, _, X, _ = fitted
    with pytest.raises(ValueError, match="Input X column 'n' contains NaN or infinity"):
        model.predict(X.assign(n=np.where(X.index == X.index[0], np.inf, X["n"])))


@pytest.mark.parametrize("method", ["predict", "predict_proba", "decision_function"])
def test_predict_before_fit(df, method):
    with pytest.raises(NotFittedError, match="This MixedGLM instance is not fitted yet"):
        getattr(MixedGLM(groups="g"), method)(df[["g", "x", "b"]])


@CLASSIFIER
def test_predict_with_a_column_missing(fitted):
    model, _, X, _ = fitted
    with pytest.raises(ValueError, match="Feature names seen at fit time, yet now missing:"
                                         "\n- x"):
        model.predict(X.drop(columns="x"))


# ----------------------------------------------------------------- separation


def _fit_recording(model, X, y, **fit_params):
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        model.fit(X, y, **fit_params)
    return [w for w in record if issubclass(w.category, ConvergenceWarning)]


@pytest.fixture
def binary(df):
    return df[["g", "x", "b"]].copy(), df["y_bin"].copy()


def test_complete_separation_by_one_column_warns(binary):
    """A column above 0.5 exactly where y = 1: the coefficient's MLE is +infinity."""
    X, y = binary
    X["s"] = y + 0.1 * X["x"].clip(-3, 3)
    with pytest.warns(ConvergenceWarning, match=r"complete separation: the fixed-effect column "
                      r"'s' alone separates the rows with y = 1 \(all >= 0\.7\d*\) from the "
                      r"rows with y = 0. The maximum-likelihood estimate of its coefficient "
                      "is infinite"):
        model = MixedGLM(groups="g").fit(X, y)
    # What the fit is then: the start values' huge slope, meaningless standard errors.
    assert model.coef_[-1] > 20
    assert model.fixed_effects_["std_error"]["s"] > 1e3
    assert model.score(X, y) == 1.0


def test_quasi_complete_separation_by_a_binary_column_warns(binary):
    """Every row with b = 1 has y = 1 (b = 0 has both): b's coefficient tends to +inf."""
    X, y = binary
    y = y.where(X["b"] == 0, 1)
    with pytest.warns(ConvergenceWarning, match=r"quasi-complete separation: the fixed-effect "
                      r"column 'b' alone separates the rows with y = 1 \(all >= 0\) from the "
                      r"rows with y = 0"):
        model = MixedGLM(groups="g").fit(X, y)
    assert model.coef_[1] > 10
    assert model.fixed_effects_["std_error"]["b"] > 100


def test_separation_in_the_weighted_rows_only(binary):
    """Weight 0 removes the rows that spoil the separation."""
    X, _ = binary
    y = (X["x"] > 0).astype(int)
    y.iloc[:5] = 1 - y.iloc[:5]
    sw = np.r_[np.zeros(5), np.ones(len(y) - 5)]
    # without weights x does not separate y (R's glm would still say "fitted probabilities
    # numerically 0 or 1" here, and so does MixedGLM: the slope is large)
    recorded = _fit_recording(MixedGLM(groups="g"), X, y)
    assert not [w for w in recorded if "alone separates" in str(w.message)]
    with pytest.warns(ConvergenceWarning, match="column 'x' alone separates .* with positive "
                      "sample_weight"):
        MixedGLM(groups="g").fit(X, y, sample_weight=sw)


def test_separation_of_successes_out_of_trials_warns(df):
    X = df[["g", "x", "n"]].copy()
    y = np.where(X["x"] > 0, X["n"], 0)  # all successes above 0, all failures below
    with pytest.warns(ConvergenceWarning, match=r"complete separation: the fixed-effect column "
                      r"'x' alone separates the rows with a success \(all >= 0\.\d+\) from the "
                      "rows with a failure"):
        MixedGLM(groups="g", trials="n").fit(X, y)


def test_poisson_zero_counts_at_one_level_warn(df):
    """Counts 0 wherever b = 1: the rate at b = 1 has MLE 0, b's coefficient -inf."""
    X = df[["g", "x", "b"]]
    y = np.where(X["b"] == 1, 0, df["y_count"])
    with pytest.warns(ConvergenceWarning, match="quasi-complete separation: every row with a "
                      "positive count has 'b' = 0, the column's smallest value"):
        model = MixedGLM(groups="g", family="poisson").fit(X, y)
    assert model.coef_[1] < -5


def test_no_separation_warning_on_overlapping_classes(binary):
    X, y = binary
    assert _fit_recording(MixedGLM(groups="g"), X, y) == []


def test_separation_by_a_combination_of_columns_warns(binary):
    X, y = binary
    X["s2"] = np.where(y == 1, 1.0, -1.0) - X["x"]
    assert len(_fit_recording(MixedGLM(groups="g"), X, y)) > 0


# -------------------------------------------------- boundary fits, non-convergence


def _identical_groups(family, n_groups=20, size=30, seed=0):
    """Every group holds the same rows: the between-group variance estimate is 0."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=size)
    if family == "binomial":
        y = (rng.random(size) < expit(x)).astype(int)
    else:
        y = rng.poisson(np.exp(0.5 + 0.3 * x))
    X = pd.DataFrame({"g": np.repeat(np.arange(n_groups), size), "x": np.tile(x, n_groups)})
    return X, np.tile(y, n_groups)


@pytest.mark.parametrize("family, n_agq", [("binomial", 1), ("binomial", 5), ("poisson", 1)])
def test_boundary_fit_warns(family, n_agq):
    X, y = _identical_groups(family)
    with pytest.warns(SingularFitWarning, match=r"boundary \(singular\) fit"):
        model = MixedGLM(groups="g", family=family, n_agq=n_agq).fit(X, y)
    assert model.theta_[0] < 1e-4
    assert model.variance_components_["variance"].iloc[0] < 1e-8


def test_regular_fit_is_not_singular(binary):
    with warnings.catch_warnings():
        warnings.simplefilter("error", SingularFitWarning)
        model = MixedGLM(groups="g").fit(*binary)
    assert model.theta_[0] > 0.1


@pytest.mark.parametrize("family, target", [("binomial", "y_bin"), ("poisson", "y_count")])
def test_non_convergence_warns(df, family, target):
    X, y = df[["g", "x", "b"]], df[target]
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        model = MixedGLM(groups="g", family=family, max_iter=1).fit(X, y)
    assert not model.converged_
    assert model.n_iter_ == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        assert MixedGLM(groups="g", family=family).fit(X, y).converged_


# ------------------------------------------- regressions found in code review (session 1)


def _small_binary(seed=0):
    rng = np.random.default_rng(seed)
    n = 600
    g = np.repeat(np.arange(30), 20)
    x1 = rng.normal(size=n)
    y = (rng.random(n) < expit(x1)).astype(int)
    return pd.DataFrame({"g": g, "x1": x1, "x2": 2.0 * x1}), y, rng


def test_collinear_random_slope_names_the_dropped_column():
    df, y, _ = _small_binary()
    with pytest.warns(RankDeficientWarning), \
            pytest.raises(ValueError, match="random-slope column 'x2' was dropped"):
        MixedGLM(groups="g", random_slopes=["x2"]).fit(df, y)


def test_nagq0_without_fixed_effects():
    df, y, _ = _small_binary()
    model = MixedGLM(groups="g", fit_intercept=False, n_agq=0).fit(df[["g"]], y)
    assert model.converged_ and model.fixed_effects_.empty


def test_trials_found_by_position_with_non_string_labels():
    df, _, rng = _small_binary()
    m = rng.integers(1, 5, len(df))
    k = rng.binomial(m, 0.4)
    frame = pd.DataFrame({10: df["g"], 20: df["x1"], 30: m})
    model = MixedGLM(groups=10, trials=30).fit(frame, k)
    np.testing.assert_allclose(model.predict(frame.to_numpy()), model.predict(frame))


def test_refit_as_regressor_drops_classes():
    df, y, rng = _small_binary()
    model = MixedGLM(groups="g").fit(df[["g", "x1"]], y)
    assert hasattr(model, "classes_")
    m = rng.integers(1, 5, len(df))
    model.set_params(trials="m").fit(df[["g", "x1"]].assign(m=m), rng.binomial(m, 0.4))
    assert not hasattr(model, "classes_")


def test_n_jobs_zero_is_an_invalid_parameter():
    df, y, _ = _small_binary()
    with pytest.raises(InvalidParameterError):
        MixedGLM(groups="g", n_jobs=0).fit(df[["g", "x1"]], y)


@pytest.mark.parametrize("params", [dict(family="bad"), dict(link="nope")])
def test_an_invalid_family_is_refused_by_fit_not_by_repr_or_tags(params):
    """The HTML repr, the tags and hasattr(decision_function) read the family: an invalid
    one raised there (ValueError from _repr_html_), before fit could refuse it."""
    model = MixedGLM(groups="g", **params)
    model._repr_html_()
    model.__sklearn_tags__()
    assert not hasattr(model, "decision_function")
    X = pd.DataFrame({"g": [0, 0, 1, 1], "x": [0.1, 0.2, 0.3, 0.4]})
    with pytest.raises((InvalidParameterError, ValueError)):
        model.fit(X, [0, 1, 0, 1])
