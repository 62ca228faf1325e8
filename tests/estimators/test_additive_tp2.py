"""AdditiveMixed's thin-plate smooth of two covariates (mgcv's ``s(x, z)``, isotropic,
k = 30 by default) against mgcv 1.8-41 (issue 18; reference made by
tests/reference/mgcv_tp2.R on mgcv's gamSim(2) surface with a random intercept,
tests/data/gamsim2.csv, and 20,000 rows of it, tests/data/gamsim2_big.csv.gz).

Tolerances (the issue's), measured in brackets (2026-12-04): gam (to its exact optimum)
and bam(discrete = TRUE) on 600 rows (fewer distinct points than bam's 100 × 100 grid:
bam fits them exactly), k = 30 and 20: fitted values 1e-5 relative (≤ 5.6e-11), edf 1e-3
(≤ 1e-10), REML score never above mgcv's and within 1e-3 (≤ 7.3e-10 apart), SDs 1e-4
(≤ 1e-9), the smooth at new points 1e-5 (gam); bam(discrete = TRUE) on 20,000 rows (more
distinct points than the grid: each covariate rounded to 100 values, and more than 2,000
distinct points, so the knots are mgcv's draw), at the binned points: fitted values 1e-5
(6.4e-11), edf 1e-3 (2.1e-9), residual SD 1e-4 (bam's fREML score of its padded bin data
is not compared).
"""

import numpy as np
import pandas as pd
import pytest

from skmixed import AdditiveMixed
from skmixed._model.additive_cross import discretize_points
from skmixed.formula import FormulaError, bam

XZ = ("x", "z")


@pytest.fixture(scope="module")
def reference(load_reference):
    return load_reference("mgcv_tp2.json")


@pytest.fixture(scope="module")
def gamsim2(data_file):
    return pd.read_csv(data_file("gamsim2.csv"))


def _check(model, X, ref):
    rows = np.asarray(ref["fitted_rows"]) - 1
    np.testing.assert_allclose(model.predict(X.iloc[rows]), ref["fitted"], rtol=1e-5,
                               atol=1e-5 * np.std(ref["fitted"]))
    assert abs(model.smooths_.loc["s(x,z)", "edf"] - ref["edf"]["s(x,z)"]) < 1e-3
    sds = {row["_row"]: row["std.dev"] for row in ref["vcomp_sd"]}
    vc = model.variance_components_.set_index("group")["sd"]
    for group in vc.index:
        key = "scale" if group == "Residual" else f"s({group})"
        np.testing.assert_allclose(vc[group], sds[key], rtol=1e-4)


@pytest.mark.parametrize("entry, discrete, k", [("gam_tp2", False, None),
                                                ("bam_tp2", True, None),
                                                ("gam_tp2_k20", False, 20)])
def test_two_covariate_smooth_equals_mgcv(gamsim2, reference, entry, discrete, k):
    ref = reference[entry]
    X = gamsim2[["x", "z", "g"]]
    params = {} if k is None else {"k": {XZ: k}}
    model = AdditiveMixed(smooths=[XZ], groups="g", discrete=discrete, **params).fit(
        X, gamsim2["y"])
    _check(model, X, ref)
    score = model.reml_criterion_ / 2
    assert score <= ref["reml_score"] + 1e-6 and ref["reml_score"] - score < 1e-3
    if not discrete:  # gam centres as we do: the smooth itself at new points
        grid = pd.DataFrame(ref["new_data"])[["x", "z"]].to_numpy()
        np.testing.assert_allclose(model.partial_effect(XZ, grid)["effect"],
                                   ref["terms_new"], rtol=1e-5, atol=1e-7)


def test_binned_grid_equals_bam(data_file, reference):
    """More distinct points than bam's grid: each covariate binned to 100 values."""
    big = pd.read_csv(data_file("gamsim2_big.csv.gz"))
    model = AdditiveMixed(smooths=[XZ], discrete=True).fit(big[["x", "z"]], big["y"])
    values, index = discretize_points(big[["x", "z"]].to_numpy())
    assert values.shape[0] <= 100 * 100 < len(np.unique(big[["x", "z"]], axis=0))
    _check(model, pd.DataFrame(values[index], columns=["x", "z"]), reference["bam_tp2_big"])


def test_formula_plot_and_errors(gamsim2):
    import matplotlib

    matplotlib.use("Agg")
    X = gamsim2[["x", "z", "g"]]
    columns = AdditiveMixed(smooths=[XZ], groups="g", discrete=False).fit(X, gamsim2["y"])
    formula = bam("y ~ s(x, z) + s(g, bs = 're')", gamsim2, discrete=False)
    np.testing.assert_allclose(formula.smooths_["edf"], columns.smooths_["edf"], rtol=1e-10)
    assert 's(x, z, bs = "tp")' in formula.summary()
    np.testing.assert_allclose(formula.predict(X.head(5)), columns.predict(X.head(5)),
                               rtol=1e-10)
    (ax,) = columns.plot_partial_effects()
    assert len(ax.figure.axes) == 2  # the filled contour and its colour bar
    with pytest.raises(ValueError, match=r"n × 2 array"):
        columns.partial_effect(XZ, [0.5, 0.5])
    with pytest.raises(ValueError, match="'te' or 'ti'"):
        AdditiveMixed(smooths=[XZ], bs={XZ: "cr"}, groups="g").fit(X, gamsim2["y"])
    with pytest.raises(ValueError, match="k=3 is too small"):
        AdditiveMixed(smooths=[XZ], k={XZ: 3}, groups="g").fit(X, gamsim2["y"])
    with pytest.raises(FormulaError, match="isotropic thin-plate"):
        bam('y ~ s(x, z, bs = "cr")', gamsim2)
    with pytest.raises(ValueError, match="smooths lists a column twice"):
        AdditiveMixed(smooths=[XZ, "x"], groups="g").fit(X, gamsim2["y"])
    from skmixed.sources import from_chunks

    with pytest.raises(ValueError, match="several covariates from data in memory only"):
        AdditiveMixed(smooths=[XZ]).fit(from_chunks([gamsim2[["x", "z", "y"]]], target="y"))
