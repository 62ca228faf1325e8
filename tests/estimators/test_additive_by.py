"""AdditiveMixed's ``by =`` smooths against mgcv 1.8-41 (issue 18; reference made by
tests/reference/mgcv_by.R): a factor ``by`` (one centred smooth per level, the factor's main
effect parametric) and a numeric ``by`` (a varying coefficient, not centred), on mgcv's
gamSim(4) data with a random intercept (tests/data/gamsim4.csv) and on real data
(metacognition.csv: ``confidence ~ sex + s(visibility, by = sex) + s(id, bs = "re")``), by
``gam(method = "REML")`` (exact) and ``bam(discrete = TRUE)`` (binned).

Tolerances (the issue's), measured in brackets (2026-12-04):

* gam, against mgcv run to its exact optimum (the "_tight" entries; the metacognition fit:
  mgcv's default): fitted values 1e-5 relative (≤ 3.6e-7), edf 1e-3 absolute (≤ 1.5e-5),
  REML score never above mgcv's (up to 4e-9 above on a score of 950: rounding; 1e-6
  allowed) and within 1e-3 (≤ 6e-9 apart), SDs 1e-4 relative (≤ 2.9e-8); with mgcv's
  default tolerance its REML score is up to 6.9e-4 above ours (gam stops where the score is
  flat in a nearly linear smooth's smoothing parameter: s(x0) edf 1.014 instead of 1.000,
  fitted values 5e-4 apart);
* bam(discrete = TRUE), at the binned covariates (bam bins a numeric by variable too):
  fitted values 1e-5 relative (≤ 3.2e-6), edf 1e-3 (≤ 8.4e-5), SDs 1e-4 (≤ 2.3e-7); bam's
  fREML score is never below ours but not the same quantity (0.37 above on metacognition,
  where the fits agree to 2e-11: bam scores its padded bin data);
* the binomial factor-by fit (gam's Laplace REML) against the tight fit: fitted 1e-5
  (2.0e-7), edf 1e-3 (1.0e-6) (its REML score is another quantity than skmixed's criterion
  for this family).
"""

import numpy as np
import pandas as pd
import pytest

from skmixed import AdditiveMixed
from skmixed._model.additive_cross import discretize
from skmixed.formula import FormulaError, bam


@pytest.fixture(scope="module")
def reference(load_reference):
    return load_reference("mgcv_by.json")


@pytest.fixture(scope="module")
def gamsim4(data_file):
    d = pd.read_csv(data_file("gamsim4.csv"))
    d["fac"] = d["fac"].astype(str).astype("category")
    d["fac2"] = (d["fac"] == "2").astype(float)
    d["fac3"] = (d["fac"] == "3").astype(float)
    return d


@pytest.fixture(scope="module")
def meta(data_file):
    d = pd.read_csv(data_file("metacognition.csv"))
    d["male"] = (d["sex"] == "male").astype(float)
    return d


#: entry -> (response, columns, estimator parameters, data set)
CASES = {
    "fac_tp": ("y", ["x0", "x2", "fac", "fac2", "fac3", "g"],
               dict(smooths=["x2", "x0"], by={"x2": "fac"}, bs="tp", groups="g"), "gamsim4"),
    "fac_cr": ("y", ["x0", "x2", "fac", "fac2", "fac3"],
               dict(smooths=["x2", "x0"], by={"x2": "fac"}, bs={"x2": "cr", "x0": "ps"}),
               "gamsim4"),
    "num_tp": ("yv", ["x0", "x2", "x1"], dict(smooths=["x2", "x0"], by={"x2": "x1"}, bs="tp"),
               "gamsim4"),
    "num_cr": ("yv", ["x0", "x2", "x1"], dict(smooths=["x2", "x0"], by={"x2": "x1"}, bs="cr"),
               "gamsim4"),
    "meta": ("confidence", ["visibility", "sex", "male", "id"],
             dict(smooths=["visibility"], by={"visibility": "sex"}, bs="tp", groups="id"),
             "meta"),
}


def _fit(case, discrete, data, **extra):
    response, columns, params, _ = CASES[case]
    X = data[columns]
    return AdditiveMixed(**params, discrete=discrete, **extra).fit(X, data[response]), X


def _binned(X, smooths):
    """X with the smooths' covariates on bam's bins (1,000 per covariate)."""
    out = X.copy()
    for c in smooths:
        values, index = discretize(X[c].to_numpy(), 1000)
        out[c] = values[index]
    return out


def _check(model, X, ref, rows_of=None):
    rows = np.asarray(ref["fitted_rows"]) - 1  # R's 1-based rows
    fitted = model.predict(X.iloc[rows])
    np.testing.assert_allclose(fitted, ref["fitted"], rtol=1e-5,
                               atol=1e-5 * np.std(ref["fitted"]))
    edf = dict(zip(model.smooths_.index, model.smooths_["edf"]))
    for term, value in ref["edf"].items():
        if term in edf:
            assert abs(edf[term] - value) < 1e-3, term
    assert set(edf) <= set(ref["edf"])
    sds = {row["_row"]: row["std.dev"] for row in ref["vcomp_sd"]}
    vc = model.variance_components_.set_index("group")["sd"]
    for group in vc.index:
        key = "scale" if group == "Residual" else f"s({group})"
        np.testing.assert_allclose(vc[group], sds[key], rtol=1e-4)


@pytest.mark.parametrize("case", ["fac_tp", "fac_cr", "num_tp", "num_cr", "meta"])
def test_exact_fits_equal_gam(case, reference, gamsim4, meta):
    data = gamsim4 if CASES[case][3] == "gamsim4" else meta
    model, X = _fit(case, False, data)
    tight = reference.get(f"gam_{case}_tight", reference[f"gam_{case}"])
    _check(model, X, tight)
    score = model.reml_criterion_ / 2  # mgcv's REML score is half the criterion
    for ref in (tight, reference[f"gam_{case}"]):  # never above mgcv's, default or tight
        assert score <= ref["reml_score"] + 1e-6
        assert ref["reml_score"] - score < 1e-3
    np.testing.assert_allclose(model.fixed_effects_["estimate"],
                               list(tight["coef_parametric"].values()), rtol=1e-5,
                               atol=1e-5 * np.abs(list(tight["coef_parametric"].values())).max())


@pytest.mark.parametrize("case", ["fac_tp", "fac_cr", "num_tp", "meta"])
def test_binned_fits_equal_bam(case, reference, gamsim4, meta):
    data = gamsim4 if CASES[case][3] == "gamsim4" else meta
    model, X = _fit(case, True, data)
    params = CASES[case][2]
    # bam bins a numeric by variable as it bins a covariate
    numeric_by = [v for v in params["by"].values() if v.startswith("x")]
    ref = reference[f"bam_{case}"]
    _check(model, _binned(X, params["smooths"] + numeric_by), ref)
    # bam's fREML score: never below ours (it is up to 0.018 above: bam stops where the
    # score is flat in s(x0)'s smoothing parameter and scores its padded bin data)
    assert model.reml_criterion_ / 2 <= ref["reml_score"] + 1e-6


def test_binomial_factor_by_equals_gam(reference, gamsim4):
    X = gamsim4[["x2", "fac", "fac2", "fac3"]]
    model = AdditiveMixed(smooths=["x2"], by={"x2": "fac"}, bs="cr", discrete=False,
                          family="binomial").fit(X, gamsim4["yb"])
    _check(model, X, reference["gam_bin_cr_tight"])


def test_predictions_at_new_rows(reference, gamsim4):
    """predict() at rows the fit did not see (every level; a numeric by's values)."""
    for case in ("fac_cr", "num_tp"):
        model, X = _fit(case, False, gamsim4)
        ref = reference[f"gam_{case}_tight"]
        new = pd.DataFrame(ref["new_data"])
        new["fac"] = new["fac"].astype(str)
        new["fac2"] = (new["fac"] == "2").astype(float)
        new["fac3"] = (new["fac"] == "3").astype(float)
        np.testing.assert_allclose(model.predict(new[X.columns]), ref["predicted"], rtol=1e-5)


def test_formula_front_end(reference, gamsim4):
    """``bam("y ~ fac + s(x2, by = fac) + …")`` fits as the column API (the factor's main
    effect from the formula, its levels' smooths named as mgcv names them)."""
    data = gamsim4.assign(fac=gamsim4["fac"].astype(str))
    model = bam("y ~ fac + s(x2, by = fac) + s(x0) + s(g, bs = 're')", data, discrete=False)
    ref = reference["gam_fac_tp_tight"]
    assert list(model.smooths_.index) == ["s(x2):fac1", "s(x2):fac2", "s(x2):fac3", "s(x0)"]
    np.testing.assert_allclose(model.smooths_["edf"], [ref["edf"][t] for t in
                                                       model.smooths_.index], atol=1e-3)
    np.testing.assert_allclose(model.fixed_effects_["estimate"],
                               list(ref["coef_parametric"].values()), rtol=1e-6)
    assert 's(x2, by = fac, bs = "tp")' in model.summary()
    numeric = bam("yv ~ s(x2, by = x1) + s(x0)", gamsim4, discrete=False)
    assert list(numeric.smooths_.index) == ["s(x2):x1", "s(x0)"]
    with pytest.raises(FormulaError, match="'x1' is also a parametric term"):
        bam("yv ~ x1 + s(x2, by = x1)", gamsim4)
    with pytest.raises(FormulaError, match="by = a column name"):
        bam("yv ~ s(x2, by = 'x1')", gamsim4)


def test_partial_effects_per_level_and_plots(gamsim4):
    import matplotlib

    matplotlib.use("Agg")
    model, _ = _fit("fac_cr", False, gamsim4)
    band = model.partial_effect("s(x2):fac3", np.linspace(0, 1, 5))
    assert band.shape == (5, 5) and np.all(band["upper"] > band["lower"])
    with pytest.raises(ValueError, match=r"'x2' has 3 smooths.*s\(x2\):fac1"):
        model.partial_effect("x2", [0.5])
    assert len(model.partial_effect("x0", [0.5])) == 1  # one smooth: its column names it
    axes = model.plot_partial_effects(n_points=20)
    assert len(axes) == 4 and "s(x2):fac2" in axes[1].get_ylabel()


def test_bad_by_input_is_refused_clearly(gamsim4):
    X = gamsim4[["x0", "x2", "fac", "fac2", "fac3"]].copy()
    y = gamsim4["y"]
    empty = X.assign(fac=X["fac"].cat.add_categories(["9"]))
    with pytest.raises(ValueError, match="by factor 'fac' .* no rows at level '9'"):
        AdditiveMixed(smooths=["x2"], by={"x2": "fac"}).fit(empty, y)
    single = X.copy()
    single.loc[single["fac"] == "2", "x2"] = 0.5
    with pytest.raises(ValueError, match="level '2' has a single value of 'x2'"):
        AdditiveMixed(smooths=["x2"], by={"x2": "fac"}).fit(single, y)
    with pytest.raises(ValueError, match=r"by\['x2'\]='nope' is not a column"):
        AdditiveMixed(smooths=["x2"], by={"x2": "nope"}).fit(X, y)
    with pytest.raises(ValueError, match="by names \\['x0'\\], which are not smooths"):
        AdditiveMixed(smooths=["x2"], by={"x0": "fac"}).fit(X, y)
    with pytest.raises(ValueError, match="grouping column 'fac' cannot also be a by"):
        AdditiveMixed(smooths=["x2"], by={"x2": "fac"}, groups="fac").fit(X, y)
    with pytest.raises(ValueError, match="smooth's own column"):
        AdditiveMixed(smooths=["x2"], by={"x2": "x2"}).fit(X, y)
    nan_by = X[["x0", "x2"]].assign(x0=np.where(np.arange(len(X)) == 7, np.nan, X["x0"]))
    with pytest.raises(ValueError, match="x0"):
        AdditiveMixed(smooths=["x2"], by={"x2": "x0"}).fit(nan_by, y)
    model = AdditiveMixed(smooths=["x2"], by={"x2": "fac"}).fit(X, y)
    new = X.head(3).assign(fac=["1", "7", "2"])
    with pytest.raises(ValueError, match=r"by factor 'fac' has level\(s\) \['7'\] not seen"):
        model.predict(new)
    from skmixed.sources import from_chunks

    with pytest.raises(ValueError, match="by= variables or of several covariates from data in memory only"):
        AdditiveMixed(smooths=["x2"], by={"x2": "x0"}).fit(
            from_chunks([X[["x0", "x2"]].assign(y=y)], target="y"))


def test_by_factor_of_numpy_columns_and_clone(gamsim4):
    """Positions for an array X (an object column is a factor; integer codes are numbers)
    and sklearn's clone."""
    from sklearn.base import clone

    X = gamsim4[["x2", "fac", "fac2", "fac3"]].to_numpy(dtype=object)
    X[:, [0, 2, 3]] = X[:, [0, 2, 3]].astype(float)
    est = AdditiveMixed(smooths=[0], by={0: 1}, bs="cr")
    model = est.fit(X, gamsim4["y"].to_numpy())
    assert list(model.smooths_.index) == ["s(0):11", "s(0):12", "s(0):13"]
    frame = AdditiveMixed(smooths=["x2"], by={"x2": "fac"}, bs="cr").fit(
        gamsim4[["x2", "fac", "fac2", "fac3"]], gamsim4["y"])
    np.testing.assert_allclose(model.smooths_["edf"], frame.smooths_["edf"], rtol=1e-10)
    assert clone(est).get_params()["by"] == {0: 1}


def test_nearly_linear_binomial_smooths_are_not_stopped_at_the_bound(reference, data_file):
    """A nearly linear smooth (edf 1.42 in mgcv) whose search passed near λ = ∞ (log τ
    within 2 of the bound, where the criterion is flat) is searched again from inside:
    binned by-factor fit (bam's performance iteration) and exact fit (gam's Laplace REML)
    both stopped at edf 1.000 before."""
    data = pd.read_csv(data_file("by_binomial.csv"))
    X = data[["x", "f"]].assign(**{f"f{k}": (data["f"] == k) * 1.0 for k in "bcd"})
    binned = AdditiveMixed(smooths=["x"], by={"x": "f"}, bs="cr", family="binomial",
                           discrete=True).fit(X, data["yb"])
    ref = reference["bam_bin_by"]
    np.testing.assert_allclose(binned.smooths_["edf"], list(ref["edf"].values()), atol=1e-4)
    level_c = data[data["f"] == "c"]
    exact = AdditiveMixed(smooths=["x"], bs="cr", family="binomial", discrete=False).fit(
        level_c[["x"]], level_c["yb"])
    assert abs(exact.smooths_["edf"].iloc[0] - reference["gam_bin_level_c"]["edf"]["s(x)"]) \
        < 1e-4


def test_ordered_factors_and_wording(gamsim4):
    """An ordered by factor is refused (mgcv gives it no first-level smooth, for
    difference smooths that need one covariate in two smooths); a factor by's errors say
    "by factor", not "grouping column"; s(x, by = x) and a covariate in two smooths are
    refused by the formula with the reason."""
    X = gamsim4[["x2", "fac", "fac2", "fac3"]].copy()
    y = gamsim4["y"]
    ordered = X.assign(fac=X["fac"].cat.as_ordered())
    with pytest.raises(ValueError, match="'fac' is ordered.*as_unordered"):
        AdditiveMixed(smooths=["x2"], by={"x2": "fac"}).fit(ordered, y)
    missing = X.assign(fac=X["fac"].astype(object).where(np.arange(len(X)) != 3, None))
    with pytest.raises(ValueError, match=r"'fac' \(a by factor\) contains NaN"):
        AdditiveMixed(smooths=["x2"], by={"x2": "fac"}).fit(missing, y)
    data = gamsim4.assign(fac=gamsim4["fac"].astype(str))
    with pytest.raises(FormulaError, match="multiplied by its own covariate"):
        bam("y ~ s(x2, by = x2)", data)
    with pytest.raises(FormulaError, match="'x2' is the covariate of two smooths"):
        bam("y ~ fac + s(x2) + s(x2, by = fac)", data)
