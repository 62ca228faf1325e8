"""AdditiveMixed(select=True) — mgcv's ``select = TRUE``, a penalty on each smooth's null
space with its own smoothing parameter, so that REML can remove a smooth — against mgcv
1.8-41 (issue 18; reference made by tests/reference/mgcv_select.R): gamsim1's
``y ~ s(x0, bs = "cr") + s(x1, bs = "ps") + s(x2, bs = "cr") + s(x3, bs = "cr") +
s(fac, bs = "re")`` (x3 has no effect: shrunk to edf ~0), its binomial ``yb``, and
gamsim4's numeric ``by`` ``yv ~ s(x2, by = x1) + s(x0)`` (tp and cr: a two-dimensional
null space, the constant and the slope).

Tolerances, measured in brackets (2026-12-04), against gam run to its exact optimum:
fitted values 1e-5 relative (≤ 2.0e-9; binomial 1.5e-6), edf 1e-3 (≤ 1.2e-7; binomial
4.0e-5), REML score never above mgcv's and within 1e-3 (≤ 3.5e-9 apart; Gaussian), the
null-space λ (``lambda_null``) = mgcv's second ``sp`` 1e-3 relative for the cr and ps
smooths whose null penalty is not at its bound (4e-9), the smooth table's Ref.df (every
smooth gets mgcv's random-effect test: its rank) exactly and its F 1e-3 (≤ 1e-7) and
p-values 1e-6 for the smooths that are not removed (a removed smooth's edf is 1e-7 in
mgcv's, 1e-8 in ours: where the REML score is flat, its test is not comparable).

bam(discrete = TRUE, select = TRUE) stops short of the optimum here (s(x3) at edf 4.3e-4,
s(x0) at 5.197 where the REML optimum of the binned model is 5.207; skmixed's criterion at
bam's smoothing parameters is 2.5e-4 above its own optimum): fitted values 1e-3 (2.1e-4),
edf 2e-2 (9.7e-3).
"""

import numpy as np
import pandas as pd
import pytest

from skmixed import AdditiveMixed
from skmixed._model.additive_cross import discretize
from skmixed.formula import bam

COLS = ["x0", "x1", "x2", "x3", "fac"]
BS = {"x0": "cr", "x1": "ps", "x2": "cr", "x3": "cr"}


@pytest.fixture(scope="module")
def reference(load_reference):
    return load_reference("mgcv_select.json")


@pytest.fixture(scope="module")
def gamsim4(data_file):
    return pd.read_csv(data_file("gamsim4.csv"))


def _fitted(model, X, ref, rtol):
    rows = np.asarray(ref["fitted_rows"]) - 1
    fitted = model.predict(X.iloc[rows])
    np.testing.assert_allclose(fitted, ref["fitted"], rtol=rtol,
                               atol=rtol * np.std(ref["fitted"]))


def _edf(model, ref, atol):
    for term in model.smooths_.index:
        assert abs(model.smooths_.loc[term, "edf"] - ref["edf"][term]) < atol, term


def test_gaussian_select_equals_gam(gamsim1, reference):
    ref = reference["gam_select"]
    X = gamsim1[COLS]
    model = AdditiveMixed(smooths=COLS[:4], bs=BS, groups="fac", select=True,
                          discrete=False).fit(X, gamsim1["y"])
    _fitted(model, X, ref, 1e-5)
    _edf(model, ref, 1e-3)
    assert model.smooths_.loc["s(x3)", "edf"] < 1e-3  # removed, as in mgcv
    score = model.reml_criterion_ / 2
    assert score <= ref["reml_score"] + 1e-6 and ref["reml_score"] - score < 1e-3
    for term in ("s(x0)", "s(x2)"):  # cr: λ's on mgcv's scale
        np.testing.assert_allclose(model.smooths_.loc[term, "lambda"], ref["sp"][term + "1"],
                                   rtol=1e-3)
    for term in ("s(x0)", "s(x1)", "s(x2)"):
        np.testing.assert_allclose(model.smooths_.loc[term, "lambda_null"],
                                   ref["sp"][term + "2"], rtol=1e-3)
    table = ref["s_table"]
    for i, term in enumerate(table["term"][:3]):  # the smooths kept
        row = model.smooths_.loc[term]
        assert row["ref_df"] == table["ref_df"][i]  # mgcv's random-effect test: the rank
        np.testing.assert_allclose(row["statistic"], table["stat"][i], rtol=1e-3)
        assert abs(row["p_value"] - table["p_value"][i]) < 1e-6
    sds = {row["_row"]: row["std.dev"] for row in ref["vcomp_sd"]}
    vc = model.variance_components_.set_index("group")["sd"]
    np.testing.assert_allclose([vc["fac"], vc["Residual"]], [sds["s(fac)"], sds["scale"]],
                               rtol=1e-4)


def test_binned_select_near_bam(gamsim1, reference):
    ref = reference["bam_select"]
    X = gamsim1[COLS]
    model = AdditiveMixed(smooths=COLS[:4], bs=BS, groups="fac", select=True,
                          discrete=True).fit(X, gamsim1["y"])
    binned = X.copy()
    for c in COLS[:4]:
        values, index = discretize(X[c].to_numpy(), 1000)
        binned[c] = values[index]
    _fitted(model, binned, ref, 1e-3)
    _edf(model, ref, 2e-2)


def test_binomial_select_equals_gam(gamsim1, reference):
    ref = reference["gam_bin_select"]
    X = gamsim1[["x0", "x2", "x3"]]
    model = AdditiveMixed(smooths=["x0", "x2", "x3"], bs="cr", select=True, discrete=False,
                          family="binomial").fit(X, gamsim1["yb"])
    _fitted(model, X, ref, 1e-5)
    _edf(model, ref, 1e-3)


@pytest.mark.parametrize("bs", ["tp", "cr"])
def test_numeric_by_select_equals_gam(gamsim4, reference, bs):
    """A numeric by's smooth is not centred: its null space (constant and slope, times
    the by variable) is two-dimensional and penalized as mgcv's projector."""
    ref = reference[f"gam_num_{bs}_select"]
    X = gamsim4[["x0", "x2", "x1"]]
    model = AdditiveMixed(smooths=["x2", "x0"], by={"x2": "x1"}, bs=bs, select=True,
                          discrete=False).fit(X, gamsim4["yv"])
    _fitted(model, X, ref, 1e-5)
    _edf(model, ref, 1e-3)
    score = model.reml_criterion_ / 2
    assert score <= ref["reml_score"] + 1e-6 and ref["reml_score"] - score < 1e-3


def test_select_in_formulas_and_without_null_space(gamsim1):
    """bam(select=True) is the column API's; a cyclic smooth has no null space (nothing
    added: lambda_null NaN); select=False keeps the fit unchanged."""
    data = gamsim1.assign(fac=gamsim1["fac"].astype("category"))
    formula = bam('y ~ s(x0, bs = "cr") + s(x1, bs = "cc") + s(fac, bs = "re")', data,
                  discrete=False, select=True)
    columns = AdditiveMixed(smooths=["x0", "x1"], bs={"x0": "cr", "x1": "cc"}, groups="fac",
                            select=True, discrete=False).fit(data[["x0", "x1", "fac"]],
                                                             data["y"])
    np.testing.assert_allclose(formula.smooths_["edf"], columns.smooths_["edf"], rtol=1e-10)
    assert np.isnan(columns.smooths_.loc["s(x1)", "lambda_null"])
    plain = AdditiveMixed(smooths=["x0"], bs="cr", discrete=False).fit(data[["x0"]], data["y"])
    assert "lambda_null" not in plain.smooths_


def test_chunked_select_equals_in_memory(gamsim1):
    from skmixed.sources import from_chunks

    frame = gamsim1[["x0", "x2", "y"]]
    params = dict(smooths=["x0", "x2"], bs="cr", select=True, discrete=True)
    memory = AdditiveMixed(**params).fit(frame[["x0", "x2"]], frame["y"])
    source = from_chunks([frame.iloc[:200], frame.iloc[200:]], target="y",
                         ranges={c: (frame[c].min(), frame[c].max()) for c in ("x0", "x2")},
                         progress=False)
    chunked = AdditiveMixed(**params).fit(source)
    np.testing.assert_allclose(chunked.smooths_["edf"], memory.smooths_["edf"], rtol=1e-8)
    np.testing.assert_allclose(chunked.reml_criterion_, memory.reml_criterion_, rtol=1e-10)
    assert "s(x0)" in memory.summary()


def test_select_finds_the_removed_optimum(data_file, reference):
    """From a common start the search ends at an interior optimum with s(b) at edf 3.3;
    the lower optimum removes s(b) (mgcv's): each two-block smooth is also tried removed."""
    data = pd.read_csv(data_file("select_tp.csv"))
    ref = reference["gam_tp_select_removes"]
    model = AdditiveMixed(smooths=["x", "b"], bs="tp", select=True, discrete=False).fit(
        data[["x", "b"]], data["y"])
    _fitted(model, data[["x", "b"]], ref, 1e-5)
    _edf(model, ref, 1e-3)
    score = model.reml_criterion_ / 2
    assert score <= ref["reml_score"] + 1e-6 and ref["reml_score"] - score < 1e-3


def test_exact_binomial_starts_from_the_performance_iteration(data_file, reference):
    """gam's Laplace REML searched from the performance iteration's τ: from τ = 1 the
    nearly linear fit ended with s(b) at edf 1.000 (mgcv: 2.850)."""
    data = pd.read_csv(data_file("select_tp.csv"))
    ref = reference["gam_bin_near_linear"]
    X = data[["x", "b", "g"]]
    model = AdditiveMixed(smooths=["x", "b"], bs="cr", groups="g", family="binomial",
                          discrete=False).fit(X, data["yb"])
    _fitted(model, X, ref, 1e-5)
    _edf(model, ref, 1e-3)


def test_select_tensor_of_noise_reaches_mgcvs_optimum(data_file, load_reference):
    """y ~ s(x) + s(z) + ti(x, z) + te(u1, u2), select = TRUE, u1 and u2 pure noise
    (tests/data/select_te.csv, tests/reference/mgcv_select_te.R): a search had left the
    tensor product's margins at their bound (REML 318.7232 against mgcv's 318.6431; every
    removed smooth moved inside together did not reach it); each smooth is now also moved
    inside on its own, and once more after the select restarts find a new optimum. REML
    score never above mgcv's tight fit and within 1e-3 (measured 1.9e-9 below), fitted
    values 1e-5 of their SD (5.2e-8), edf 1e-3 (5.3e-6)."""
    ref = load_reference("mgcv_select_te.json")["gam_tight"]
    d = pd.read_csv(data_file("select_te.csv"))
    model = bam("y ~ s(x) + s(z) + ti(x, z) + te(u1, u2)", d, discrete=False, select=True)
    score = model.reml_criterion_ / 2
    assert score <= ref["reml_score"] + 1e-6 and ref["reml_score"] - score < 1e-3
    rows = np.asarray(ref["fitted_rows"]) - 1
    np.testing.assert_allclose(model.predict(d.iloc[rows][list(model.feature_names_in_)]),
                               ref["fitted"], rtol=0,
                               atol=1e-5 * np.std(ref["fitted"]))
    np.testing.assert_allclose(model.smooths_["edf"], list(ref["edf"].values()), atol=1e-3)
