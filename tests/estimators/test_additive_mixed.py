"""AdditiveMixed: the estimator surface over skmixed._model.additive.

* mgcv agreement through the estimator (the model layer's own tests are in
  tests/model/test_additive.py): the study's ``y_nl ~ x + b + s(z, bs = "ps") + s(g, bs =
  "re")`` exact (``gam(method = "REML")``) and binned (``bam(discrete = TRUE)``), and the
  binomial ``y_bin ~ x + b + s(g, bs = "re")`` (``bam``);
* sklearn: ``parametrize_with_checks`` (expected failures listed with reasons), clone,
  cross-validation;
* prediction: unseen groups at population level, the partial effect's band;
* bad input: clear errors, nothing changed.
"""

import pickle
import re

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.model_selection import GroupKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks

from conftest import STRICT_CHECKS, require_package

from skmixed import AdditiveMixed
from skmixed.sources import from_chunks

_TOO_FEW_ROWS = (
    "X has 15 rows and 30 columns (27 rows once repeated): more parametric columns than rows, "
    "which AdditiveMixed refuses with a ValueError (before dropping collinear columns); the "
    "weights/repeats equivalence holds on regular data (test_integer_weights_equal_repeated_rows)"
)
_EXACT_Y = (
    "its 16 rows are 4 groups (column 0 = 1, 2, 3, 4) in which y = 2.5 - 0.5 * column 1 "
    "exactly: zero residual variance, so the group variance is not identified and "
    "AdditiveMixed refuses the y with a ValueError, as MixedLM does (without groups, a "
    "linear model alone, it fits); the weights' checks run on regular data "
    "(test_sample_weight_shape_and_not_overwritten)"
)
_BLOBS = (
    "two tight blobs at (0, 0, 0) and (1, 1, 1), made integer-valued by the categorical tag "
    "(the grouping column): columns 1 and 2 then both equal y's 0/1 label; AdditiveMixed "
    "drops the collinear copy (RankDeficientWarning, as MixedLM) and refuses the y, which "
    "the kept column fits exactly, with a ValueError as MixedLM does; pickling and Pipeline "
    "are tested on grouped data "
    "(test_pickle_and_pipeline_on_grouped_data)"
)


def _expected_failed(estimator):
    if estimator.groups is None:
        return {"check_sample_weight_equivalence_on_dense_data": _TOO_FEW_ROWS}
    return {"check_sample_weight_equivalence_on_dense_data": _TOO_FEW_ROWS,
            "check_sample_weights_shape": _EXACT_Y,
            "check_sample_weights_not_overwritten": _EXACT_Y,
            "check_pipeline_consistency": _BLOBS, "check_estimators_pickle": _BLOBS}


@parametrize_with_checks([AdditiveMixed(), AdditiveMixed(groups=0),
                          AdditiveMixed(groups=0, random_slopes=[1])],
                         expected_failed_checks=_expected_failed, **STRICT_CHECKS)
def test_sklearn_compatible_estimator(estimator, check):
    """Without smooths (the checks' random data have too few distinct values for a basis):
    the linear model by REML, with and without a random intercept (and slope) per
    row-group. With groups the estimator's categorical tag makes the checks' X integer
    valued, so column 0 repeats its labels as a grouping column does (continuous, it has
    a level per row: a Gaussian model that AdditiveMixed refuses, as lme4's lmer)."""
    check(estimator)


@pytest.fixture(scope="module")
def study(data_file):
    df = pd.read_csv(data_file("study_2e5.csv.gz"),
                     usecols=["g", "x", "b", "z", "y_nl", "y_bin"])
    df["g"] = df["g"].astype("category")
    return df


# edf of s(z): gam's 5e-4 (measured 1.9e-4: mgcv's λ stops short, our REML score is
# 3.6e-5 lower), bam's 1e-5 (3.3e-6); slopes (≤ 5.6e-6), SDs (≤ 1.8e-6) 1e-5
@pytest.mark.parametrize("discrete, entry, edf_rtol", [(False, "gam_gau_nl_reml", 5e-4),
                                                       (True, "bam_gau_nl_disc", 1e-5)])
def test_study_gaussian_against_mgcv(study, load_reference, discrete, entry, edf_rtol):
    ref = load_reference("study_2e5.json")[entry]
    model = AdditiveMixed(smooths=["z"], groups="g", discrete=discrete).fit(
        study[["x", "b", "z", "g"]], study["y_nl"])
    coef = ref["coef_parametric"]
    np.testing.assert_allclose(model.coef_, [coef["x"], coef["b"]], rtol=1e-5)
    np.testing.assert_allclose(model.smooths_["edf"], [ref["edf"]["s(z)"]], rtol=edf_rtol)
    sds = {row["_row"]: row["std.dev"] for row in ref["vcomp_sd"]}
    vc = model.variance_components_.set_index("group")["sd"]
    np.testing.assert_allclose(vc["g"], sds["s(g)"], rtol=1e-5)
    np.testing.assert_allclose(vc["Residual"], sds["scale"], rtol=1e-5)
    head = np.asarray(ref["fitted_head"])
    fitted = model.predict(study[["x", "b", "z", "g"]].iloc[:head.size])
    # bam's fitted values are at the binned z, predict's at the rows' z
    assert np.sqrt(np.mean((fitted - head) ** 2) / np.mean(head ** 2)) < 1e-2
    if not discrete:
        np.testing.assert_allclose(fitted, head, rtol=0, atol=1e-5)  # measured 5.6e-6
        assert model.reml_criterion_ / 2 <= ref["reml_score"] + 1e-6
        assert ref["reml_score"] - model.reml_criterion_ / 2 < 2e-3
        np.testing.assert_allclose(model.intercept_, coef["(Intercept)"], rtol=1e-5)


def test_study_binomial_against_bam(study, load_reference):
    ref = load_reference("study_2e5.json")["bam_bin_re_disc"]
    model = AdditiveMixed(groups="g", family="binomial").fit(study[["x", "b", "g"]],
                                                             study["y_bin"])
    coef = ref["coef_parametric"]
    # measured: slopes 4.9e-5 (x) and 1.1e-5, SD 6.7e-6
    np.testing.assert_allclose(model.coef_, [coef["x"], coef["b"]], rtol=1e-4)
    np.testing.assert_allclose(model.variance_components_["sd"].iloc[0],
                               ref["vcomp_sd"][0]["std.dev"], rtol=1e-4)
    assert model.converged_ and model.n_iter_ >= 2
    head = np.asarray(ref["fitted_head"])
    fitted = model.predict(study[["x", "b", "g"]].iloc[:head.size])
    assert np.sqrt(np.mean((fitted - head) ** 2) / np.mean(head ** 2)) < 1e-2


# ----------------------------------------------------------------------------- behaviour
@pytest.fixture(scope="module")
def small():
    """2,000 rows in 40 groups: y = sin(2πz) + 0.5 x + group effect + noise."""
    rng = np.random.default_rng(0)
    n, G = 2000, 40
    g = rng.integers(0, G, n)
    z = rng.uniform(0, 1, n)
    x = rng.normal(size=n)
    y = np.sin(2 * np.pi * z) + 0.5 * x + rng.normal(0, 0.4, G)[g] + rng.normal(0, 0.3, n)
    return pd.DataFrame({"g": pd.Categorical(g), "z": z, "x": x, "y": y})


@pytest.fixture(scope="module")
def fitted(small):
    return AdditiveMixed(smooths=["z"], groups="g").fit(small[["g", "z", "x"]], small["y"])


def test_recovers_the_simulated_model(fitted, small):
    assert abs(fitted.coef_[0] - 0.5) < 4 * fitted.fixed_effects_["std_error"]["x"]
    vc = fitted.variance_components_.set_index("group")["sd"]
    assert abs(vc["g"] - 0.4) < 0.15 and abs(vc["Residual"] - 0.3) < 0.02
    grid = np.linspace(0.05, 0.95, 19)
    band = fitted.partial_effect("z", grid)
    truth = np.sin(2 * np.pi * grid)
    truth -= truth.mean()  # the smooth is centred over the data
    inside = (band["lower"] <= truth + 0.05) & (truth - 0.05 <= band["upper"])
    assert inside.mean() >= 0.9
    assert 5 < fitted.smooths_["edf"].iloc[0] < 10


def test_unseen_groups_get_population_predictions(fitted, small):
    X = small[["g", "z", "x"]].iloc[:5].copy()
    population = fitted.predict(X, random_effects=False)
    X["g"] = pd.Categorical([-1] * 5)  # a group of the fitted labels' type, not seen
    np.testing.assert_allclose(fitted.predict(X), population)


@pytest.mark.parametrize("family", ["tweedie", None])
def test_tags_of_an_invalid_family_do_not_raise(family):
    """fit refuses the family; the tags (read by check_is_fitted and the HTML repr) of the
    unfitted estimator are still available."""
    est = AdditiveMixed(family=family)
    assert est.__sklearn_tags__().target_tags.positive_only
    assert "AdditiveMixed" in est._repr_html_()


def test_clone_and_group_cross_validation(small):
    model = AdditiveMixed(smooths=["z"], groups="g", k=8)
    assert clone(model).get_params() == model.get_params()
    scores = cross_val_score(model, small[["g", "z", "x"]], small["y"],
                             groups=small["g"].cat.codes, cv=GroupKFold(3))
    assert np.all(scores > 0.5)  # population-level R² on unseen groups


def test_integer_weights_equal_repeated_rows(small):
    rng = np.random.default_rng(2)
    sw = rng.integers(0, 3, len(small))
    X, y = small[["g", "z", "x"]], small["y"]
    weighted = AdditiveMixed(smooths=["z"], groups="g").fit(X, y, sample_weight=sw)
    repeated = AdditiveMixed(smooths=["z"], groups="g").fit(X.loc[X.index.repeat(sw)],
                                                             y.loc[y.index.repeat(sw)])
    np.testing.assert_allclose(weighted.coef_, repeated.coef_, rtol=1e-6)
    np.testing.assert_allclose(weighted.smooths_["edf"], repeated.smooths_["edf"], rtol=1e-5)


def test_sample_weight_shape_and_not_overwritten(small):
    """sklearn's two weight checks (which AdditiveMixed(groups=...) cannot run: their y has
    no residual variation) on grouped data."""
    X, y = small[["g", "z", "x"]], small["y"]
    model = AdditiveMixed(groups="g")
    with pytest.raises(ValueError, match=r"sample_weight.shape == \(4000,\), expected"):
        model.fit(X, y, sample_weight=np.ones(2 * len(y)))
    with pytest.raises(ValueError, match="Sample weights must be 1D"):
        model.fit(X, y, sample_weight=np.ones((len(y), 2)))
    sw = np.ones(len(y))
    sw[0] = 10.0
    sw_fit = sw.copy()
    model.fit(X, y, sample_weight=sw_fit)
    np.testing.assert_array_equal(sw_fit, sw)


def test_pickle_and_pipeline_on_grouped_data(small):
    """sklearn's pickling and Pipeline checks (whose blobs AdditiveMixed(groups=...)
    refuses: y is an exact function of a parametric column) on grouped data."""
    X, y = small[["g", "z", "x"]], small["y"]
    model = AdditiveMixed(smooths=["z"], groups="g", k=8).fit(X, y)
    again = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(again.predict(X), model.predict(X))
    pipe = make_pipeline(AdditiveMixed(smooths=["z"], groups="g", k=8)).fit(X, y)
    assert pipe.score(X, y) == model.score(X, y)


@pytest.mark.parametrize("change, params, match", [
    (lambda X: X.assign(z=2.0), {}, "smooth of 'z': a smooth of a constant covariate"),
    (lambda X: X.assign(z=np.round(X["z"] * 4)), {}, "only 5 distinct values: use k <= 5"),
    (lambda X: X.assign(z=np.where(np.arange(len(X)) == 3, np.nan, X["z"])), {},
     "column 'z' contains NaN"),
    (lambda X: X, {"discrete": True, "n_bins": 8}, "n_bins=8 is smaller than k=10"),
    (lambda X: X, {"smooths": ["w"]}, "w"),
    (lambda X: X, {"smooths": ["g"]}, "cannot also be a smooth"),
])
def test_bad_input_raises_and_changes_nothing(fitted, small, change, params, match):
    before = fitted.coef_.copy(), fitted.smooths_.copy()
    model = clone(fitted).set_params(**params)
    with pytest.raises(ValueError, match=match):
        model.fit(change(small[["g", "z", "x"]]), small["y"])
    np.testing.assert_array_equal(fitted.coef_, before[0])
    pd.testing.assert_frame_equal(fitted.smooths_, before[1])


def test_binomial_y_must_be_binary(small):
    with pytest.raises(ValueError, match="binomial y must hold 0/1"):
        AdditiveMixed(family="binomial").fit(small[["x"]], small["y"])


def test_partial_effect_of_an_unknown_term(fitted):
    with pytest.raises(ValueError, match="'x' is not a smooth of this model"):
        fitted.partial_effect("x", [0.1, 0.2])


def test_nearly_constant_smooth_covariate(small):
    X = small[["g", "z", "x"]].assign(z=1000.0 + small["z"] * 1e-10)
    with pytest.raises(ValueError, match="nearly constant covariate"):
        AdditiveMixed(smooths=["z"], groups="g").fit(X, small["y"])


def test_plot_partial_effects(fitted, small):
    matplotlib = require_package("matplotlib", "plot")
    matplotlib.use("Agg")
    axes = fitted.plot_partial_effects(n_points=50)
    assert len(axes) == 1
    line = axes[0].get_lines()[0]
    x, effect = line.get_data()
    assert len(x) == 50 and x.min() < 0.01 and x.max() > 0.99
    band = fitted.partial_effect("z", x)
    np.testing.assert_allclose(effect, band["effect"])
    ax = axes[0]
    assert ax.get_xlabel() == "z" and ax.get_ylabel() == "s(z): effect on y"
    assert "edf" in ax.get_title()
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["95% pointwise band", "estimate", "0 (centred)"]
    with pytest.raises(ValueError, match="no smooths"):
        AdditiveMixed(groups="g").fit(small[["g", "x"]], small["y"]).plot_partial_effects()


def test_summary_names_every_part(fitted):
    text = fitted.summary()
    assert 'Formula:\ny ~ x + s(z, bs = "ps") + s(g, bs = "re")' in text
    for part in ("Family: gaussian", "Link function: identity", "Parametric coefficients:",
                 "Estimate Std. Error t value Pr(>|t|)",
                 "Approximate significance of smooth terms:",
                 "Variance components:", "REML criterion", "(Intercept)", "s(z)",
                 "Residual", "exact (gam)"):
        assert part in text
    assert re.search(r"\n +edf +Ref\.df +F +p-value\n", text)


@pytest.mark.parametrize("with_groups", [False, True])
def test_predict_return_std_is_the_posterior_sd(small, with_groups):
    """``predict(return_std=True)`` against the dense posterior: with the columns
    C = [parametric, smooth null, smooth range, group indicators] and the fitted τ, σ,
    ``Var(η_row) = σ² c'(C'C + diag(0, 1/τ²))⁻¹c`` (mgcv's Vp); the mean is η."""
    X = small[["g", "z", "x"]]
    model = AdditiveMixed(smooths=["z"], groups="g" if with_groups else None,
                          discrete=False).fit(X if with_groups else X[["z", "x"]], small["y"])
    basis = model._model_info["bases"][0]
    design = basis["spline"].design(small["z"].to_numpy())
    n = len(small)
    cols = [np.ones((n, 1)), small[["x"]].to_numpy(), design @ basis["F"], design @ basis["R"]]
    tau = model._fit.tau
    penalty = [np.zeros(3), np.full(basis["R"].shape[1], 1 / tau[0] ** 2)]
    if with_groups:
        G = len(model.group_levels_["g"])
        cols.append(np.eye(G)[small["g"].cat.codes.to_numpy()])
        penalty.append(np.full(G, 1 / tau[1] ** 2))
    C = np.hstack(cols)
    cov = model.sigma_ ** 2 * np.linalg.inv(C.T @ C + np.diag(np.concatenate(penalty)))
    rows = slice(0, 25)
    mean, se = model.predict((X if with_groups else X[["z", "x"]]).iloc[rows],
                             return_std=True)
    np.testing.assert_allclose(se, np.sqrt(np.einsum("ij,jk,ik->i", C[rows], cov, C[rows])),
                               rtol=1e-6)
    np.testing.assert_allclose(mean, model.predict((X if with_groups else X[["z", "x"]])
                                                   .iloc[rows]), rtol=1e-12)


# edf: gam's 1e-4 (measured 2.7e-5), bam's 1e-5 (2.9e-7); the SD 1e-5 (≤ 9.3e-7); gam's
# fitted probabilities 2e-5 (6.9e-6)
@pytest.mark.parametrize("discrete, entry, rtol", [(False, "gam_ps_bin_reml", 1e-4),
                                                   (True, "bam_ps_bin_disc", 1e-5)])
def test_gamsim1_binomial_against_mgcv(data_file, load_reference, discrete, entry,
                                       rtol):
    """``yb ~ s(x0) + s(x1) + s(x2) + s(fac, bs = "re")``, binomial: exact → gam's
    Laplace REML, binned → bam's performance iteration."""
    df = pd.read_csv(data_file("gamsim1.csv"))
    df["fac"] = df["fac"].astype("category")
    ref = load_reference("mgcv_gamsim1_binomial.json")[entry]
    model = AdditiveMixed(smooths=["x0", "x1", "x2"], groups="fac", family="binomial",
                          discrete=discrete).fit(df[["x0", "x1", "x2", "fac"]], df["yb"])
    assert model.converged_
    edf = list(ref["edf"].values())
    np.testing.assert_allclose(model.smooths_["edf"], edf[:3], rtol=rtol)
    sds = [row["std.dev"] for row in ref["vcomp_sd"]]
    np.testing.assert_allclose(model.variance_components_["sd"].iloc[0], sds[-1], rtol=1e-5)
    head = np.asarray(ref["fitted_head"])
    fitted = model.predict(df[["x0", "x1", "x2", "fac"]].iloc[:head.size])
    if discrete:  # bam's fitted values are at the binned covariates, predict's at the rows'
        assert np.sqrt(np.mean((fitted - head) ** 2) / np.mean(head ** 2)) < 1e-2
    else:
        np.testing.assert_allclose(fitted, head, rtol=2e-5)


# ----------------------------------------------------------------------------- review fixes
def test_unused_categories_are_not_groups(small):
    X = small[["g", "z", "x"]].copy()
    X["g"] = X["g"].cat.add_categories(["unused_a", "unused_b"])
    model = AdditiveMixed(smooths=["z"], groups="g").fit(X, small["y"])
    assert len(model.random_effects_) == small["g"].nunique()
    one = small[small["g"] == small["g"].iloc[0]]
    with pytest.raises(ValueError, match="at least 2 groups in column 'g'; found 1"):
        AdditiveMixed(groups="g").fit(one[["g", "x"]], one["y"])


def test_a_column_named_intercept_does_not_replace_the_intercept(small):
    X = small[["z", "x"]].rename(columns={"x": "(Intercept)"})
    model = AdditiveMixed(smooths=["z"]).fit(X, small["y"])
    table = model.fixed_effects_["estimate"]
    assert model.intercept_ == table.iloc[0] and model.coef_[0] == table.iloc[1]
    np.testing.assert_allclose(model.predict(X, random_effects=False),
                               model.intercept_ + X["(Intercept)"] * model.coef_[0]
                               + model.partial_effect("z", X["z"])["effect"], rtol=1e-10)


def test_k_dict_with_an_unknown_column(small):
    with pytest.raises(ValueError, match=r"k names \['zz'\], which are not smooths"):
        AdditiveMixed(smooths=["z"], k={"zz": 5}).fit(small[["z", "x"]], small["y"])


def test_predict_across_array_and_frame(fitted, small):
    X = small[["g", "z", "x"]].iloc[:7]
    expected = fitted.predict(X)
    with pytest.warns(UserWarning, match="feature names"):
        np.testing.assert_allclose(fitted.predict(X.to_numpy()), expected)
    Xn = np.column_stack([small["g"].cat.codes, small["z"], small["x"]])
    on_array = AdditiveMixed(smooths=[1], groups=0).fit(Xn, small["y"])
    frame = pd.DataFrame(Xn[:7], columns=["a", "b", "c"])
    with pytest.warns(UserWarning, match="feature names"):
        np.testing.assert_allclose(on_array.predict(frame), on_array.predict(Xn[:7]))
    assert on_array.partial_effect(1, [0.5])["effect"].size == 1


def test_glm_without_smooths_or_groups(small):
    y = (small["y"] > 0).astype(int)
    for discrete in (False, True):
        model = AdditiveMixed(family="binomial", discrete=discrete).fit(small[["x"]], y)
        assert model.converged_ and model.coef_[0] > 0


def test_partial_effect_by_position(fitted):
    by_name = fitted.partial_effect("z", [0.2, 0.7])
    np.testing.assert_array_equal(fitted.partial_effect(1, [0.2, 0.7]), by_name)


def test_refit_without_groups_clears_group_attributes(small):
    model = AdditiveMixed(smooths=["z"], groups="g").fit(small[["g", "z", "x"]], small["y"])
    model.set_params(groups=None).fit(small[["z", "x"]], small["y"])
    for attribute in ("random_effects_", "group_levels_", "n_groups_",
                      "random_effects_matrix_"):
        assert not hasattr(model, attribute)


@pytest.mark.parametrize("source", ["frame", "array", "chunks"])
def test_group_attributes_are_dicts_by_factor_name(small, source):
    """``group_levels_``, ``n_groups_`` and ``random_effects_matrix_`` have one type
    whatever the model or data path: dicts keyed by the grouping factor's name as
    ``variance_components_["group"]`` shows it (MixedLM's and MixedGLM's; lme4's named
    ``ngrps()``/``ranef()``), the matrix's columns the intercept then the slopes."""
    X, y = small[["g", "z", "x"]], small["y"]
    if source == "frame":
        model = AdditiveMixed(smooths=["z"], groups="g", random_slopes=["x"]).fit(X, y)
        name, slope = "g", "x"
    elif source == "array":
        Xn = np.column_stack([small["g"].cat.codes, small["z"], small["x"]])
        model = AdditiveMixed(smooths=[1], groups=0, random_slopes=[2]).fit(Xn, y)
        name, slope = "0", "2"
    else:
        frame = small[["g", "z", "x", "y"]]
        chunks = from_chunks([frame.iloc[i:i + 500] for i in range(0, len(frame), 500)],
                             target="y", ranges={"z": (0.0, 1.0)}, progress=False)
        model = AdditiveMixed(smooths=["z"], groups="g", random_slopes=["x"]).fit(chunks)
        name, slope = "g", "x"
    assert set(model.variance_components_["group"]) == {name, "Residual"}
    assert list(model.group_levels_) == list(model.n_groups_) == [name]
    assert list(model.random_effects_matrix_) == [name]
    levels = model.group_levels_[name]
    assert isinstance(levels, pd.Index) and len(levels) == 40
    assert model.n_groups_[name] == 40 and isinstance(model.n_groups_[name], int)
    modes = model.random_effects_matrix_[name]
    assert modes.shape == (40, 2)
    re = model.random_effects_
    for column, term in enumerate(["(Intercept)", slope]):
        rows = re[re["term"] == term]
        assert list(rows["level"]) == list(levels)
        np.testing.assert_array_equal(modes[:, column], rows["mode"])


def test_weights_summing_below_the_fixed_effects(small):
    w = np.full(len(small), 1.0 / len(small))
    with pytest.raises(ValueError, match=r"needs more observations \(1, the sum"):
        AdditiveMixed(smooths=["z"], groups="g").fit(small[["g", "z", "x"]], small["y"],
                                                     sample_weight=w)


@pytest.mark.parametrize("discrete", [False, True])
def test_collinear_fixed_part(small, discrete):
    X = small[["g", "z", "x"]].assign(z2=small["z"])
    if not discrete:  # binned, z's trend is no longer exactly the parametric copy's
        with pytest.raises(ValueError, match="fixed part of the model .* is collinear"):
            AdditiveMixed(smooths=["z"], groups="g", discrete=discrete).fit(X, small["y"])
    with pytest.raises(ValueError, match="is collinear"):
        AdditiveMixed(smooths=["z", "z2"], groups="g", discrete=discrete).fit(X, small["y"])


@pytest.mark.parametrize("discrete", [False, True])
def test_binomial_separation_is_a_clear_error(small, discrete):
    y = (small["z"] > 0.5).astype(int)
    with pytest.raises(ValueError, match="complete separation"):
        AdditiveMixed(smooths=["z"], family="binomial", discrete=discrete).fit(
            small[["z", "x"]], y)
