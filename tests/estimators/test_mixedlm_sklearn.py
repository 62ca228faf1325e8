"""MixedLM against scikit-learn's conventions: the estimator checks, and the meta-estimators
and tools a user puts it in (Pipeline, ColumnTransformer, cross_validate with GroupKFold,
GridSearchCV, clone), plus ``n_jobs``'s handling of Numba's thread count."""

import pickle
import warnings

import numba
import numpy as np
import pytest
from numpy.testing import assert_allclose
from sklearn.compose import ColumnTransformer
from sklearn.model_selection import GridSearchCV, GroupKFold, cross_validate
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks
from sklearn.utils.validation import check_is_fitted

from conftest import STRICT_CHECKS
from fitted_state import assert_clone_is_unfitted
from skmixed import MixedLM, RankDeficientWarning, SingularFitWarning
from skmixed.datasets import make_multilevel

# ``MixedLM(groups=0)`` reads column 0 of the checks' arrays as the grouping factor; the
# estimator's categorical tag (its grouping column holds categories) makes the checks' X
# integer valued where they adapt it to the tags, so that column repeats its labels as
# grouped data do (a continuous column 0 has a level per row: a Gaussian model that lme4's
# lmer and MixedLM refuse, "number of levels of each grouping factor must be < number of
# observations"). Every check not listed here passes. The listed ones feed a y that the
# fixed-effect columns fit exactly; MixedLM refuses such a y with a ValueError ("y is fitted
# exactly by the fixed effects"): the residual variance is then 0, the profiled deviance is
# -inf (or rounding noise) and no variance component is identified, so there is no fit to
# return. What the checks are about is tested below on data with residual variation
# (test_sample_weight_shape_is_checked, test_sample_weight_not_overwritten,
# test_integer_weights_equal_repeated_rows, test_pickle_and_pipeline_on_grouped_data).
_BLOBS = (
    "two tight blobs at (0, 0, 0) and (1, 1, 1) with y their 0/1 label, integer valued under "
    "the categorical tag: every column equals y, so y is fitted exactly (zero residual "
    "variance), which MixedLM refuses with a ValueError"
)
EXPECTED_FAILED_CHECKS = {
    "check_sample_weights_shape": (
        "its data are 4 groups (column 0 = 1, 2, 3, 4) in which y = 2.5 - 0.5 * column 1 "
        "exactly: zero residual variance, which MixedLM refuses with a ValueError before "
        "the sample_weight shapes are ever compared"
    ),
    "check_sample_weights_not_overwritten": (
        "same data as check_sample_weights_shape (y = 2.5 - 0.5 * column 1 exactly): "
        "MixedLM refuses a y without residual variation"
    ),
    "check_sample_weight_equivalence_on_dense_data": (
        "X has 15 rows and 30 columns with column 0 continuous (each row its own group, "
        "fewer levels than the 27 weighted rows): after the collinear columns are dropped "
        "the fixed effects interpolate y exactly, a zero-residual y that MixedLM refuses; "
        "the weights/repeats equivalence itself holds on grouped data "
        "(test_integer_weights_equal_repeated_rows)"
    ),
    "check_pipeline_consistency": _BLOBS,
    "check_estimators_pickle": _BLOBS,
}


# Strict: a listed check that starts passing fails here, so the list cannot go stale.
@parametrize_with_checks([MixedLM(groups=0)],
                         expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS,
                         **STRICT_CHECKS)
def test_sklearn_compatible_estimator(estimator, check):
    # The checks' tiny random data give boundary fits and collinear columns by design.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SingularFitWarning)
        warnings.simplefilter("ignore", RankDeficientWarning)
        check(estimator)


# ---------------------------------------------------------------------------- data


@pytest.fixture(scope="module")
def data():
    """600 rows in 30 groups; X holds the grouping column and two fixed effects."""
    df = make_multilevel(600, 30, random_state=0)
    return df[["g", "x", "b"]], df["y"]


# ---------------------------------------------------------------- sample weights


def test_sample_weight_shape_is_checked(data):
    X, y = data
    model = MixedLM(groups="g").fit(X, y, sample_weight=np.ones(len(y)))
    with pytest.raises(ValueError, match=r"sample_weight.shape == \(1200,\), expected \(600,\)"):
        model.fit(X, y, sample_weight=np.ones(2 * len(y)))
    with pytest.raises(ValueError, match="Sample weights must be 1D"):
        model.fit(X, y, sample_weight=np.ones((len(y), 2)))


def test_sample_weight_not_overwritten(data):
    X, y = data
    sw = np.ones(len(y))
    sw[0] = 10.0
    sw_fit = sw.copy()
    MixedLM(groups="g").fit(X, y, sample_weight=sw_fit)
    assert_allclose(sw_fit, sw, rtol=0, atol=0)


def test_integer_weights_equal_repeated_rows(data):
    """Frequency weights: weight k (including 0) is the row repeated k times (or removed)."""
    X, y = data
    sw = np.random.default_rng(1).integers(0, 4, size=len(y))
    repeated = MixedLM(groups="g").fit(X.loc[X.index.repeat(sw)], y.loc[y.index.repeat(sw)])
    weighted = MixedLM(groups="g").fit(X, y, sample_weight=sw)
    # Same cross-products up to rounding; the tolerances leave room for the optimizer.
    assert_allclose(weighted.theta_, repeated.theta_, rtol=1e-5)
    assert_allclose(weighted.coef_, repeated.coef_, rtol=1e-7)
    assert_allclose(weighted.sigma_, repeated.sigma_, rtol=1e-7)
    assert_allclose(weighted.loglik_, repeated.loglik_, rtol=1e-9)
    assert_allclose(weighted.predict(X), repeated.predict(X), rtol=1e-6, atol=1e-8)


def test_pickle_and_pipeline_on_grouped_data(data):
    """sklearn's pickling and Pipeline checks (whose blobs MixedLM refuses: y is fitted
    exactly) on grouped data."""
    X, y = data
    model = MixedLM(groups="g", random_slopes=["x"]).fit(X, y)
    again = pickle.loads(pickle.dumps(model))
    assert_allclose(again.predict(X), model.predict(X), rtol=0, atol=0)
    pipe = make_pipeline(MixedLM(groups="g", random_slopes=["x"])).fit(X, y)
    assert pipe.score(X, y) == model.score(X, y)


# ------------------------------------------------- Pipeline and ColumnTransformer


def _pipeline():
    scale = ColumnTransformer(
        [("num", StandardScaler(), ["x", "b"]), ("grp", "passthrough", ["g"])],
        verbose_feature_names_out=False,
    ).set_output(transform="pandas")
    return Pipeline([("prep", scale), ("lmm", MixedLM(groups="g"))])


def test_pipeline_with_column_transformer(data):
    X, y = data
    pipe = _pipeline().fit(X, y)
    model = pipe.named_steps["lmm"]
    assert list(model.feature_names_in_) == ["x", "b", "g"]
    assert model.fixed_feature_names_ == ["x", "b"]
    assert model.n_groups_ == {"g": 30}
    # Standardizing a fixed column rescales its coefficient and leaves the rest unchanged.
    raw = MixedLM(groups="g").fit(X, y)
    sd = X[["x", "b"]].std(ddof=0).to_numpy()
    assert_allclose(model.coef_, raw.coef_ * sd, rtol=1e-6)
    assert_allclose(model.theta_, raw.theta_, rtol=1e-4)
    assert_allclose(model.sigma_, raw.sigma_, rtol=1e-6)
    assert_allclose(pipe.predict(X), raw.predict(X), rtol=1e-5, atol=1e-7)
    assert np.isfinite(pipe.score(X, y))


# ------------------------------------------------------ cross_validate, GroupKFold


@pytest.mark.parametrize("make", [lambda: MixedLM(groups="g"), _pipeline],
                         ids=["MixedLM", "Pipeline"])
def test_cross_validate_group_kfold(data, make):
    X, y = data
    res = cross_validate(make(), X, y, groups=X["g"], cv=GroupKFold(3),
                         scoring=["r2", "neg_mean_squared_error"],
                         return_estimator=True, return_indices=True)
    assert np.isfinite(res["test_r2"]).all()
    assert np.isfinite(res["test_neg_mean_squared_error"]).all()
    for est, train, test in zip(res["estimator"], res["indices"]["train"],
                                res["indices"]["test"]):
        X_test, X_train = X.iloc[test], X.iloc[train]
        assert not set(X_test["g"]) & set(X_train["g"])
        # Test groups were not seen in fit: population-level predictions...
        assert_allclose(est.predict(X_test), est.predict(X_test, random_effects=False),
                        rtol=0, atol=0)
        # ...whereas the training groups get their conditional modes.
        assert not np.allclose(est.predict(X_train), est.predict(X_train, random_effects=False))


def test_grid_search_over_reml(data):
    X, y = data
    search = GridSearchCV(MixedLM(groups="g"), {"reml": [True, False]}, cv=GroupKFold(3))
    search.fit(X, y, groups=X["g"])
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    assert search.best_params_["reml"] in (True, False)
    best = search.best_estimator_
    assert best.reml == search.best_params_["reml"]
    check_is_fitted(best)
    # The parameter reaches the fit: REML and ML give different variance estimates.
    reml = MixedLM(groups="g", reml=True).fit(X, y)
    ml = MixedLM(groups="g", reml=False).fit(X, y)
    assert np.isfinite(reml.reml_criterion_) and np.isnan(reml.deviance_)
    assert np.isfinite(ml.deviance_) and np.isnan(ml.reml_criterion_)
    assert not np.allclose(reml.theta_, ml.theta_)


# --------------------------------------------------------- clone and parameters


@pytest.mark.filterwarnings("ignore::skmixed.SingularFitWarning")  # no true random slope
def test_clone_is_unfitted_with_equal_params(data):
    X, y = data
    model = MixedLM(groups="g", random_slopes=["x"], reml=False, n_jobs=1, tol=1e-8,
                    max_iter=50, covariance="diagonal").fit(X, y)
    assert_clone_is_unfitted(model, X)


def test_get_and_set_params():
    model = MixedLM(groups="g")
    params = model.get_params()
    assert params == {"groups": "g", "random_slopes": (), "covariance": "unstructured",
                      "reml": True, "fit_intercept": True, "n_jobs": None, "tol": 1e-8,
                      "max_iter": 1000, "solver": "auto"}
    assert model.set_params(reml=False, random_slopes=["x"], covariance="diagonal") is model
    assert model.get_params()["reml"] is False
    assert model.get_params()["random_slopes"] == ["x"]
    assert model.get_params()["covariance"] == "diagonal"
    with pytest.raises(ValueError, match="Invalid parameter 'alpha'"):
        model.set_params(alpha=1.0)


@pytest.mark.filterwarnings("ignore::skmixed.SingularFitWarning")  # no true random slope
def test_set_params_reaches_fit(data):
    X, y = data
    model = MixedLM(groups="g").fit(X, y)
    assert model.theta_.shape == (1,)
    model.set_params(random_slopes=["x"]).fit(X, y)
    assert model.theta_.shape == (3,)  # (1 + x | g): two SDs and a correlation
    model.set_params(covariance="diagonal").fit(X, y)
    assert model.theta_.shape == (2,)
    model.set_params(random_slopes=(), fit_intercept=False).fit(X, y)
    assert model.intercept_ == 0.0 and "(Intercept)" not in model.fixed_effects_.index


# ------------------------------------------------------------------ feature names


def test_feature_names_at_predict(data):
    X, y = data
    frame_fit = MixedLM(groups="g").fit(X, y)
    expected = frame_fit.predict(X)
    X_arr = np.column_stack([X["g"].cat.codes.to_numpy() + 1, X["x"], X["b"]]).astype(float)
    with pytest.warns(UserWarning, match="X does not have valid feature names"):
        assert_allclose(frame_fit.predict(X_arr), expected, rtol=1e-12)
    with pytest.raises(ValueError, match="Feature names must be in the same order"):
        frame_fit.predict(X[["x", "g", "b"]])
    with pytest.raises(ValueError, match="Feature names unseen at fit time:\n- z"):
        frame_fit.predict(X.assign(z=1.0))

    array_fit = MixedLM(groups=0).fit(X_arr, y.to_numpy())
    assert not hasattr(array_fit, "feature_names_in_")
    assert array_fit.n_features_in_ == 3
    assert_allclose(array_fit.predict(X_arr), expected, rtol=1e-7)
    with pytest.warns(UserWarning, match="X has feature names, but MixedLM was fitted without"):
        assert_allclose(array_fit.predict(X), expected, rtol=1e-7)
    with pytest.raises(ValueError, match="X has 2 features, but MixedLM is expecting 3"):
        array_fit.predict(X_arr[:, :2])


# --------------------------------------------------------------------- n_jobs


@pytest.fixture
def restore_numba_threads():
    before = numba.get_num_threads()
    yield
    numba.set_num_threads(before)


@pytest.mark.parametrize("before, n_jobs, during", [
    (1, None, numba.config.NUMBA_NUM_THREADS),
    (numba.config.NUMBA_NUM_THREADS, 1, 1),
])
def test_n_jobs_sets_and_restores_numba_threads(data, monkeypatch, restore_numba_threads,
                                                before, n_jobs, during):
    X, y = data
    seen = []
    original = MixedLM._fit_crossprods

    def spy(self, *args, **kwargs):
        seen.append(numba.get_num_threads())
        return original(self, *args, **kwargs)

    monkeypatch.setattr(MixedLM, "_fit_crossprods", spy)
    numba.set_num_threads(before)
    MixedLM(groups="g", n_jobs=n_jobs).fit(X, y)
    assert seen == [during]
    assert numba.get_num_threads() == before


@pytest.mark.filterwarnings("ignore::skmixed.RankDeficientWarning")  # b, in one group
def test_n_jobs_restores_numba_threads_when_fit_raises(data, monkeypatch,
                                                       restore_numba_threads):
    X, y = data
    top = numba.config.NUMBA_NUM_THREADS
    numba.set_num_threads(top)

    # An error of the fit itself, raised while the threads are set: only one group has
    # positive weight.
    sw = (X["g"] == X["g"].iloc[0]).to_numpy(dtype=float)
    with pytest.raises(ValueError, match="at least 2 groups with positive weight"):
        MixedLM(groups="g", n_jobs=1).fit(X, y, sample_weight=sw)
    assert numba.get_num_threads() == top

    # Any exception from inside the threaded section.
    seen = []

    def boom(self, *args, **kwargs):
        seen.append(numba.get_num_threads())
        raise RuntimeError("boom")

    monkeypatch.setattr(MixedLM, "_fit_crossprods", boom)
    with pytest.raises(RuntimeError, match="boom"):
        MixedLM(groups="g", n_jobs=1).fit(X, y)
    assert seen == [1]
    assert numba.get_num_threads() == top


def test_fit_and_predict_emit_no_warnings_on_regular_data(data):
    X, y = data
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = MixedLM(groups="g").fit(X, y)
        model.predict(X)
        model.score(X, y)
