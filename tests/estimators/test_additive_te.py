"""AdditiveMixed's tensor-product smooths, mgcv's ``te()`` and ``ti()`` (several
smoothing parameters per smooth: one per margin), against mgcv 1.8-41 (issue 18; reference
made by tests/reference/mgcv_te.R on mgcv's gamSim(2) surface with a random intercept,
tests/data/gamsim2.csv and gamsim2_big.csv.gz, on gamsim1.csv and on the real
metacognition data).

Tolerances (the issue's): fitted values 1e-5 relative, edf 1e-3, REML score never above
mgcv's and within 1e-3, SDs 1e-4, the smooths at new points 1e-5; measured (2026-12-04) in
the comments of each test.
"""

import numpy as np
import pandas as pd
import pytest

from skmixed import AdditiveMixed
from skmixed._model.additive_cross import discretize, discretize_margins
from skmixed.formula import FormulaError, bam

XZ = ("x", "z")


@pytest.fixture(scope="module")
def reference(load_reference):
    return load_reference("mgcv_te.json")


@pytest.fixture(scope="module")
def gamsim2(data_file):
    return pd.read_csv(data_file("gamsim2.csv"))


def _check(model, X, ref, names, score=True):
    """Fitted values, edf, SDs of the groups and the residual, and the REML score."""
    rows = np.asarray(ref["fitted_rows"]) - 1
    np.testing.assert_allclose(model.predict(X.iloc[rows]), ref["fitted"], rtol=1e-5,
                               atol=1e-5 * np.std(ref["fitted"]))
    for ours, theirs in names.items():
        assert abs(model.smooths_.loc[ours, "edf"] - ref["edf"][theirs]) < 1e-3
    sds = {row["_row"]: row["std.dev"] for row in ref["vcomp_sd"]}
    vc = model.variance_components_.set_index("group")["sd"]
    for group in vc.index:
        key = "scale" if group == "Residual" else f"s({group})"
        np.testing.assert_allclose(vc[group], sds[key], rtol=1e-4)
    if score:
        value = model.reml_criterion_ / 2
        assert value <= ref["reml_score"] + 1e-6 and ref["reml_score"] - value < 1e-3


# gam_te .. bam_ti (measured): fitted ≤ 8.2e-12 relative, edf ≤ 1e-10, REML ≤ 2.5e-10
@pytest.mark.parametrize("entry, bs, k, discrete", [
    ("gam_te", "te", None, False),
    ("bam_te", "te", None, True),
    ("gam_te_k", ("te", "tp", "cr"), (6, 4), False),
    ("gam_te_ps_cc", ("te", "ps", "cc"), (6, 5), False)])
def test_tensor_product_equals_mgcv(gamsim2, reference, entry, bs, k, discrete):
    ref = reference[entry]
    X = gamsim2[["x", "z", "g"]]
    params = {} if k is None else {"k": {XZ: k}}
    model = AdditiveMixed(smooths=[XZ], bs={XZ: bs}, groups="g", discrete=discrete,
                          **params).fit(X, gamsim2["y"])
    _check(model, X, ref, {"te(x,z)": "te(x,z)"})
    if not discrete:  # gam centres as we do: the smooth itself at new points
        grid = pd.DataFrame(ref["new_data"])[["x", "z"]].to_numpy()
        np.testing.assert_allclose(model.partial_effect(XZ, grid)["effect"],
                                   ref["terms_new"]["te(x,z)"], rtol=1e-5, atol=1e-7)
    table = model.smooths_.loc["te(x,z)"]
    st = ref["s_table"]
    np.testing.assert_allclose(table["ref_df"], st["ref_df"][0], rtol=1e-4)
    # with a fractional reference df Wood's statistic depends on the signs of the two
    # blended eigenvectors, which follow each program's parameterization of the smooth
    # (as for s(), tests/estimators/test_additive_significance.py): 8.6e-4 measured
    np.testing.assert_allclose(table["statistic"], st["stat"][0], rtol=2e-3)
    assert table["p_value"] < 1e-16 and st["p_value"][0] < 1e-16


@pytest.mark.parametrize("entry, discrete", [("gam_ti", False), ("bam_ti", True)])
def test_interaction_equals_mgcv(gamsim2, reference, entry, discrete):
    """s(x) + s(z) + ti(x, z): the interaction shares its covariates with the main effects;
    the margins' smoothing parameters are mgcv's sp (cubic regression margins)."""
    ref = reference[entry]
    X = gamsim2[["x", "z", "g"]]
    model = AdditiveMixed(smooths=["x", "z", XZ], bs={"x": "tp", "z": "tp", XZ: "ti"},
                          groups="g", discrete=discrete).fit(X, gamsim2["y"])
    _check(model, X, ref, {"s(x)": "s(x)", "s(z)": "s(z)", "ti(x,z)": "ti(x,z)"})
    np.testing.assert_allclose(model.smooths_.loc["ti(x,z)", "lambda_margins"],
                               [ref["sp"]["ti(x,z)1"], ref["sp"]["ti(x,z)2"]], rtol=1e-4)
    formula = bam('y ~ s(x) + s(z) + ti(x, z) + s(g, bs = "re")', gamsim2,
                  discrete=discrete)
    np.testing.assert_allclose(formula.smooths_["edf"], model.smooths_["edf"], rtol=1e-10)


def test_three_margins_equal_mgcv(data_file, reference):
    """te(x0, x1, x2, k = c(4, 4, 4)) + s(x3) (x3 has no effect: edf 1)."""
    ref = reference["gam_te3"]
    d = pd.read_csv(data_file("gamsim1.csv"))
    model = bam("y ~ te(x0, x1, x2, k = c(4, 4, 4)) + s(x3)", d, discrete=False)
    X = d[model.feature_names_in_]
    _check(model, X, ref, {"te(x0,x1,x2)": "te(x0,x1,x2)", "s(x3)": "s(x3)"})


def test_binned_margins_equal_bam(data_file, reference):
    """20,000 rows: each margin binned to 1,000 values as bam(discrete = TRUE) bins a
    tensor product's margins separately; compared at the binned points."""
    big = pd.read_csv(data_file("gamsim2_big.csv.gz"))
    model = AdditiveMixed(smooths=[XZ], bs={XZ: "te"}, discrete=True).fit(
        big[["x", "z"]], big["y"])
    values, index = discretize_margins(big[["x", "z"]].to_numpy())
    assert len(np.unique(values[:, 0])) == 1000
    # bam's fREML score of its padded bin data is not compared
    _check(model, pd.DataFrame(values[index], columns=["x", "z"]), reference["bam_te_big"],
           {"te(x,z)": "te(x,z)"}, score=False)


def test_binomial_equals_gam(data_file, reference):
    ref = reference["gam_te_binomial"]
    d = pd.read_csv(data_file("gamsim1.csv"))
    model = bam('yb ~ te(x1, x2) + s(fac, bs = "re")', d, family="binomial", discrete=False)
    rows = np.asarray(ref["fitted_rows"]) - 1
    np.testing.assert_allclose(model.predict(d.iloc[rows][model.feature_names_in_]), ref["fitted"],
                               rtol=1e-5, atol=1e-7)
    assert abs(model.smooths_.loc["te(x1,x2)", "edf"] - ref["edf"]["te(x1,x2)"]) < 1e-3


@pytest.mark.parametrize("entry, discrete", [("meta_te_gam", False), ("meta_te_bam", True)])
def test_metacognition_equals_mgcv(data_file, reference, entry, discrete):
    """Real data: confidence ~ te(visibility, trial) + s(id, bs = "re") (the trial margin's
    penalty goes to λ = ∞: a surface linear in trial)."""
    ref = reference[entry]
    d = pd.read_csv(data_file("metacognition.csv"))
    model = bam('confidence ~ te(visibility, trial) + s(id, bs = "re")', d,
                discrete=discrete)
    # bam stops with the trial margin's sp at 6.4e7 (gam: 1.2e11; ours: the bound, e^30),
    # its score 0.043 above the optimum: compared for gam only (measured: REML 1.4e-8
    # below gam's, fitted 2e-8 (gam) and 3.8e-5 (bam) absolute, on a SD of 36)
    _check(model, d[model.feature_names_in_], ref,
           {"te(visibility,trial)": "te(visibility,trial)"}, score=not discrete)
    assert model.smooths_.loc["te(visibility,trial)", "lambda_margins"][1] > 1e12


def test_predict_plot_and_errors(gamsim2):
    """Prediction and plots of a tensor product, and bad input: clear errors naming the
    smooth, the margin or the formula token."""
    import matplotlib

    matplotlib.use("Agg")
    X, y = gamsim2[["x", "z", "g"]], gamsim2["y"]
    model = AdditiveMixed(smooths=[XZ], bs={XZ: "te"}, groups="g", discrete=False).fit(X, y)
    formula = bam('y ~ te(x, z, k = c(5, 5), bs = c("cr", "cr")) + s(g, bs = "re")', gamsim2,
                  discrete=False)
    np.testing.assert_allclose(formula.predict(X.head(7)), model.predict(X.head(7)),
                               rtol=1e-10)
    assert 'te(x, z, bs = c("cr", "cr"))' in model.summary()
    other = bam('y ~ te(x, z, k = c(6, 4), bs = c("tp", "cr")) + s(g, bs = "re")', gamsim2,
                discrete=False)
    assert 'te(x, z, k = c(6, 4), bs = c("tp", "cr"))' in other.summary()
    (ax,) = model.plot_partial_effects()
    assert len(ax.figure.axes) == 2  # the filled contour and its colour bar
    # beyond the data's range: finite (cubic regression margins extrapolate linearly)
    assert np.all(np.isfinite(model.partial_effect(XZ, [[-0.5, 0.5], [1.5, 2.0]])["effect"]))
    few = gamsim2.assign(z=np.round(gamsim2["z"] * 2) / 2)  # z with 3 distinct values
    with pytest.raises(ValueError, match=r"margin 2 of the tensor product: k=5 .* only 3 "
                                         r"distinct values"):
        AdditiveMixed(smooths=[XZ], bs={XZ: "te"}, groups="g").fit(few[["x", "z", "g"]], y)
    with pytest.raises(ValueError, match=r"k\[\('x', 'z'\)\]=\(5, 5, 5\): an integer or 2"):
        AdditiveMixed(smooths=[XZ], bs={XZ: "te"}, k={XZ: (5, 5, 5)}).fit(X, y)
    with pytest.raises(ValueError, match="900 coefficients .* 600 rows: use smaller k"):
        AdditiveMixed(smooths=[XZ], bs={XZ: "te"}, k={XZ: 30}, discrete=False).fit(
            X[["x", "z"]], y)
    with pytest.raises(ValueError, match="a tensor product is 'te' or 'ti'"):
        AdditiveMixed(smooths=[XZ], bs={XZ: ("te", "cr", "nope")}).fit(X, y)
    with pytest.raises(ValueError, match="smooths lists a column twice"):
        AdditiveMixed(smooths=[XZ, "x"], bs={XZ: "te"}).fit(X, y)
    for text, match in [("y ~ te(x)", "2 or 3 covariates"),
                        ("y ~ te(x, z, k = c(5, 5, 5))", r"c\(\) of 2 values"),
                        ('y ~ te(x, z, bs = "xx")', "margin bs = 'xx' is not supported"),
                        ("y ~ te(x, z, k = 2)", "k must be an integer >= 3"),
                        ("y ~ te(x, z, m = 2)", "unsupported argument"),
                        ("y ~ te(x, z) + s(x)", "two smooths"),
                        ("y ~ x + ti(x, z)", "ti\\(\\) covariate that is also a parametric")]:
        with pytest.raises(FormulaError, match=match):
            bam(text, gamsim2)


@pytest.mark.parametrize("entry, knots", [("gam_te_cc_knots", {"hour": (0, 24)}),
                                          ("gam_te_cc", None)])
def test_cyclic_margin_with_its_ends_equals_mgcv(data_file, reference, entry, knots):
    """te(x, hour, bs = c("cr", "cc")) on hours 2 to 20: the cycle's ends given by the
    margin's column (mgcv's knots = list(hour = c(0, 24))) or, without, the data's range
    — two different models (edf 7.83 and 6.88)."""
    ref = reference[entry]
    d = pd.read_csv(data_file("te_cyclic.csv"))
    params = {} if knots is None else {"knots": knots}
    model = bam('y ~ te(x, hour, bs = c("cr", "cc"))', d, discrete=False, **params)
    _check(model, d[model.feature_names_in_], ref, {"te(x,hour)": "te(x,hour)"})
    grid = pd.DataFrame(ref["new_data"])[["x", "hour"]].to_numpy()
    np.testing.assert_allclose(model.partial_effect(("x", "hour"), grid)["effect"],
                               ref["terms_new"]["te(x,hour)"], rtol=1e-5, atol=1e-7)
    columns = AdditiveMixed(smooths=[("x", "hour")], bs={("x", "hour"): ("te", "cr", "cc")},
                            discrete=False, **params).fit(d[["x", "hour"]], d["y"])
    np.testing.assert_allclose(columns.smooths_["edf"], model.smooths_["edf"], rtol=1e-10)


def test_poisson_margin_is_not_left_on_a_plateau(data_file, reference):
    """A Poisson te() whose REML search (gam's Laplace REML; bam's performance iteration
    warm-started from it) once stopped with one margin's λ at 1.2e10 on a flat stretch
    (edf 5.418), 0.2 above gam's optimum (edf 5.991): a log τ near the lower bound is
    searched again from inside."""
    ref = reference["gam_te_poisson"]
    d = pd.read_csv(data_file("te_poisson.csv"))
    model = bam("yp ~ te(a, b)", d, family="poisson", discrete=False)
    rows = np.asarray(ref["fitted_rows"]) - 1
    np.testing.assert_allclose(model.predict(d.iloc[rows][model.feature_names_in_]),
                               ref["fitted"], rtol=1e-5)
    assert abs(model.smooths_.loc["te(a,b)", "edf"] - ref["edf"]["te(a,b)"]) < 1e-3
    np.testing.assert_allclose(model.smooths_.loc["te(a,b)", "lambda_margins"],
                               [ref["sp"]["te(a,b)1"], ref["sp"]["te(a,b)2"]], rtol=1e-4)


@pytest.mark.parametrize("entry, discrete", [("gam_te_by", False), ("bam_te_by", True)])
def test_tensor_product_by_a_factor_equals_mgcv(data_file, reference, entry, discrete):
    """y ~ fac + te(x0, x2, by = fac) + s(g, bs = "re") (gamSim(4)): one tensor product
    per level with its own two λ, each centred; bam(discrete = TRUE) compared at the
    binned covariates (each margin binned to 1,000 values of the 1,200 distinct ones)."""
    ref = reference[entry]
    d = pd.read_csv(data_file("gamsim4.csv"))
    d["fac"] = d["fac"].astype(str)
    model = bam('y ~ fac + te(x0, x2, by = fac) + s(g, bs = "re")', d, discrete=discrete)
    # the formula's columns: the factor's indicators beside it
    X = d.assign(**{f"fac[T.{v}]": (d["fac"] == v).astype(float) for v in ("2", "3")})
    X = X[model.feature_names_in_]
    if discrete:
        X = X.assign(**{c: (lambda v: v[0][v[1]])(discretize(d[c].to_numpy(), 1000))
                        for c in ("x0", "x2")})
    names = {f"te(x0,x2):fac{v}": f"te(x0,x2):fac{v}" for v in (1, 2, 3)}
    # bam's fREML score of its binned data is not compared
    _check(model, X, ref, names, score=not discrete)
    # the λ of gam's fit (bam's stop where its score is flat: up to 4.5 % apart, the edf
    # within the tolerance)
    for v in (1, 2, 3) if not discrete else ():
        np.testing.assert_allclose(
            model.smooths_.loc[f"te(x0,x2):fac{v}", "lambda_margins"],
            [ref["sp"][f"te(x0,x2):fac{v}1"], ref["sp"][f"te(x0,x2):fac{v}2"]], rtol=1e-4)


def test_tensor_product_by_a_number_equals_mgcv(data_file, reference):
    """yv ~ te(x0, x2, by = x1): a varying-coefficient surface, not centred (its null space
    holds x1 itself); the x0 margin's λ goes to ∞."""
    ref = reference["gam_te_by_num"]
    d = pd.read_csv(data_file("gamsim4.csv"))
    model = bam("yv ~ te(x0, x2, by = x1)", d, discrete=False)
    _check(model, d[model.feature_names_in_], ref, {"te(x0,x2):x1": "te(x0,x2):x1"})


@pytest.mark.parametrize("entry, formula, data", [
    ("gam_te_select", 'y ~ te(x, z) + s(g, bs = "re")', "gamsim2.csv"),
    ("gam_te_select_x3", "y ~ te(x0, x3) + s(x2)", "gamsim1.csv")])
def test_tensor_product_with_select_equals_mgcv(data_file, reference, entry, formula, data):
    """select = TRUE: the tensor product's null space (its linear part) a penalized block of
    its own, as for s(); in gamsim1 x3 has no effect and REML sends the x3 margin's λ to
    ∞ (measured: fitted 1.4e-14 / 1.2e-5 of their SD, edf 1.8e-14 / 2.6e-4, REML 5e-13 /
    2.3e-7 above gam's: the criterion is flat there)."""
    ref = reference[entry]
    d = pd.read_csv(data_file(data))
    model = bam(formula, d, discrete=False, select=True)
    names = {k: k for k in ref["edf"] if k != "s(g)"}
    _check(model, d[model.feature_names_in_], ref, names)
    label = [k for k in names if k.startswith("te")][0]
    np.testing.assert_allclose(model.smooths_.loc[label, "lambda_null"],
                               ref["sp"][f"{label}3"], rtol=0.05)
