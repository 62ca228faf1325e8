"""One type of fitted attribute whatever the number of grouping factors (issue 14 item 3):
``group_levels_``, ``n_groups_`` and ``random_effects_matrix_`` are dicts by factor name
(the names of ``variance_components_``), for one factor as for several, and for MixedLM and
MixedGLM alike; a one-factor fit and the same factor given as a one-element list agree."""

import numpy as np
import pandas as pd
import pytest

from skmixed import MixedGLM, MixedLM


@pytest.fixture(scope="module")
def frame():
    rng = np.random.default_rng(3)
    n, G, H = 3000, 40, 15
    g = rng.integers(0, G, n)
    h = rng.integers(0, H, n)
    x = rng.normal(size=n)
    eta = (0.3 + (0.5 + rng.normal(0, 0.3, G)[g]) * x + rng.normal(0, 0.6, G)[g]
           + rng.normal(0, 0.4, H)[h])
    return pd.DataFrame({"g": g, "h": h, "x": x, "y": eta + rng.normal(size=n),
                         "y_bin": rng.random(n) < 1 / (1 + np.exp(-eta))})


CASES = [
    (MixedLM, "y", {}), (MixedLM, "y", {"random_slopes": ["x"]}),
    (MixedGLM, "y_bin", {}), (MixedGLM, "y_bin", {"random_slopes": ["x"]}),
]


@pytest.mark.parametrize("estimator, target, kwargs", CASES)
@pytest.mark.parametrize("groups", ["g", ["g"], ["g", "h"]])
def test_group_attributes_are_dicts_by_factor(frame, estimator, target, kwargs, groups):
    if isinstance(groups, list) and len(groups) > 1 and kwargs:
        kwargs = {"random_slopes": {"g": kwargs["random_slopes"]}}
    cols = ["g", "h", "x"] if isinstance(groups, list) and len(groups) > 1 else ["g", "x"]
    model = estimator(groups=groups, **kwargs).fit(frame[cols], frame[target])
    names = ["g", "h"][:len(groups) if isinstance(groups, list) else 1]
    assert set(model.group_levels_) == set(names)
    assert set(model.n_groups_) == set(names)
    assert set(model.random_effects_matrix_) == set(names)
    assert set(model.variance_components_["group"]) - {"Residual"} == set(names)
    for name in names:
        levels = model.group_levels_[name]
        assert isinstance(levels, pd.Index)
        assert model.n_groups_[name] == len(levels) == frame[name].nunique()
        modes = model.random_effects_matrix_[name]
        q = 2 if (name == "g" and kwargs) else 1
        assert modes.shape == (len(levels), q)
        # the matrix holds the long table's modes, level by level
        re = model.random_effects_[model.random_effects_["group"] == name]
        first = re[re["term"] == "(Intercept)"]
        np.testing.assert_array_equal(first["level"].to_numpy(), levels.to_numpy())
        np.testing.assert_allclose(first["mode"].to_numpy(), modes[:, 0], rtol=0, atol=0)


@pytest.mark.parametrize("estimator, target, kwargs", CASES)
def test_one_factor_as_a_list_is_the_same_fit(frame, estimator, target, kwargs):
    a = estimator(groups="g", **kwargs).fit(frame[["g", "x"]], frame[target])
    b = estimator(groups=["g"], **kwargs).fit(frame[["g", "x"]], frame[target])
    np.testing.assert_allclose(a.theta_, b.theta_, rtol=1e-12)
    np.testing.assert_allclose(a.loglik_, b.loglik_, rtol=1e-12)
    np.testing.assert_allclose(a.random_effects_matrix_["g"], b.random_effects_matrix_["g"],
                               rtol=1e-12, atol=1e-14)
    pd.testing.assert_frame_equal(a.variance_components_, b.variance_components_)


@pytest.mark.parametrize("estimator, target", [(MixedLM, "y"), (MixedGLM, "y_bin")])
@pytest.mark.parametrize("groups", ["g", ["g", "h"]])
def test_a_level_of_weight_zero_is_not_a_group_in_any_path(frame, estimator, target, groups):
    """Frequency weights: rows of weight 0 are absent, so a level whose rows all have
    weight 0 is not a group — for one factor as for several (the one-factor paths counted
    rows and kept such levels; AdditiveMixed and several factors dropped them)."""
    cols = ["g", "h", "x"] if isinstance(groups, list) else ["g", "x"]
    first, last = frame["g"].min(), frame["g"].max()
    w = np.where(frame["g"].isin([first, last]), 0.0, 1.0)
    model = estimator(groups=groups).fit(frame[cols], frame[target], sample_weight=w)
    assert model.n_groups_["g"] == frame["g"].nunique() - 2
    assert first not in set(model.group_levels_["g"])
    keep = w > 0
    ref = estimator(groups=groups).fit(frame.loc[keep, cols], frame.loc[keep, target])
    np.testing.assert_allclose(model.theta_, ref.theta_, rtol=1e-6)
    np.testing.assert_allclose(model.random_effects_matrix_["g"],
                               ref.random_effects_matrix_["g"], rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("estimator, target", [(MixedLM, "y"), (MixedGLM, "y_bin")])
@pytest.mark.parametrize("groups", ["g", ["g", "h"]])
def test_a_fitted_model_keeps_no_copy_of_the_rows(estimator, target, groups):
    """The fitted state needed by predict is labels, positions, slopes and levels: the
    training columns and row codes are not kept (they were, through the model
    specification, so a pickled model held every row)."""
    import pickle

    rng = np.random.default_rng(5)
    n = 100_000
    df = pd.DataFrame({"g": rng.integers(0, 50, n), "h": rng.integers(0, 20, n),
                       "x": rng.normal(size=n)})
    df["y"] = df["x"] + rng.normal(0, 0.5, 50)[df["g"]] + rng.normal(size=n)
    df["y_bin"] = (rng.random(n) < 1 / (1 + np.exp(-df["y"]))).astype(int)
    cols = ["g", "h", "x"] if isinstance(groups, list) else ["g", "x"]
    model = estimator(groups=groups).fit(df[cols], df[target])
    blob = pickle.dumps(model)
    assert len(blob) < 200_000, len(blob)  # the rows alone are 1.6 MB per column
    np.testing.assert_allclose(pickle.loads(blob).predict(df[cols].head(50)),
                               model.predict(df[cols].head(50)))
