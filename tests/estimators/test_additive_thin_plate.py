"""AdditiveMixed with mgcv's thin-plate regression spline (``bs="tp"``, mgcv's default for
``s()``) against ``gam(y ~ s(x, bs = "tp", k), method = "REML")``
(tests/reference/mgcv_tp.R → mgcv_tp.json; data tests/data/tp_sim.csv.gz): 500 distinct
covariate values (k = 10 and 20) and 5,000, where mgcv places its knots at 2,000 of them
drawn with R's ``set.seed(1); sample()`` (reproduced, skmixed._model.r_sample)."""

import numpy as np
import pandas as pd
import pytest

from skmixed import AdditiveMixed
from skmixed.formula import bam


@pytest.fixture(scope="module")
def tp_ref(load_reference):
    return load_reference("mgcv_tp.json")["cases"]


@pytest.fixture(scope="module")
def tp_rows(data_file):
    return pd.read_csv(data_file("tp_sim.csv.gz"))


def _case(tp_ref, tp_rows, case):
    c = tp_ref[case]
    rows = tp_rows[tp_rows["set"] == case.split("_k")[0]].reset_index(drop=True)
    assert len(rows) == c["n"]
    return c, rows


# measured (2026-12-04): fitted values ≤ 3.2e-6 relative (k = 20; 3.4e-9 and 2.7e-7 at
# k = 10), edf ≤ 7.1e-6 absolute, REML score within 2e-12 relative, λ (mgcv's unscaled
# smoothing parameter) ≤ 2e-5
@pytest.mark.parametrize("case", ["d1_500", "d1_500_k20", "d1_5000"])
def test_thin_plate_against_gam(tp_ref, tp_rows, case):
    c, rows = _case(tp_ref, tp_rows, case)
    gam = c["gam"]
    model = AdditiveMixed(smooths=["x"], bs="tp", k=c["k"], discrete=False).fit(
        rows[["x"]], rows["y"])
    assert model.converged_
    at = np.asarray(c["pls_rows"]) - 1  # the rows whose fitted values the JSON keeps
    np.testing.assert_allclose(model.predict(rows[["x"]].iloc[at]), gam["fitted"], rtol=1e-5)
    np.testing.assert_allclose(model.smooths_["edf"].iloc[0], gam["edf_smooth"], atol=1e-3)
    assert model.reml_criterion_ / 2 <= gam["reml_score"] + 1e-9 * abs(gam["reml_score"])
    assert gam["reml_score"] - model.reml_criterion_ / 2 < 1e-3
    basis = model._model_info["bases"][0]["spline"]
    # λ on the unscaled penalty (the scaled one is relative to the basis's columns, which
    # span mgcv's space in another rotation: smoothCon's norm-based scale differs)
    unscaled = model.smooths_["lambda"].iloc[0] / basis.penalty_scale_
    np.testing.assert_allclose(unscaled, gam["sp_unscaled"], rtol=1e-3)


def test_formula_s_is_a_thin_plate_spline(tp_ref, tp_rows):
    """``s(x)`` without bs is mgcv's default, the thin-plate spline."""
    c, rows = _case(tp_ref, tp_rows, "d1_500")
    model = bam("y ~ s(x)", rows, discrete=False)
    assert model.bs == {"x": "tp"}
    np.testing.assert_allclose(model.smooths_["edf"].iloc[0], c["gam"]["edf_smooth"],
                               atol=1e-3)
    assert 's(x, bs = "tp")' in model.summary()


def test_binned_thin_plate_is_close_to_the_exact_fit(tp_ref, tp_rows):
    """5,000 distinct values binned to 1,000 (bam(discrete = TRUE)'s default): the fit
    moves by far less than its own uncertainty (measured: edf 3.4e-4, fitted values 9e-4 of
    their spread)."""
    _, rows = _case(tp_ref, tp_rows, "d1_5000")
    exact = AdditiveMixed(smooths=["x"], bs="tp", discrete=False).fit(rows[["x"]], rows["y"])
    binned = AdditiveMixed(smooths=["x"], bs="tp", discrete=True).fit(rows[["x"]], rows["y"])
    assert abs(binned.smooths_["edf"].iloc[0] - exact.smooths_["edf"].iloc[0]) < 0.05
    a, b = exact.predict(rows[["x"]]), binned.predict(rows[["x"]])
    assert np.max(np.abs(a - b)) < 1e-2 * np.ptp(a)


@pytest.mark.parametrize("params, match", [
    (dict(k={"x": 2}), "too small for a bs = 'tp' smooth"),
    (dict(k=12), r"smooth of 'x': k=12 basis functions but the covariate has only 8 "),
])
def test_bad_thin_plate_input(params, match):
    x = np.repeat(np.linspace(0, 1, 8), 10)
    y = np.sin(6 * x) + np.random.default_rng(0).normal(size=x.size)
    model = AdditiveMixed(smooths=["x"], bs="tp", discrete=False, **params)
    with pytest.raises(ValueError, match=match):
        model.fit(pd.DataFrame({"x": x}), y)
    assert not hasattr(model, "coef_")


def test_k_equal_to_the_distinct_values(tmp_path):
    """k = the number of distinct values: every value a knot, nothing truncated (it crashed
    on a shape mismatch); mgcv's gam(y ~ s(x, k = 4), method = "REML") on these data gives
    edf 2.738075."""
    rng = np.random.default_rng(1)
    d = pd.DataFrame({"x": rng.integers(0, 4, 200).astype(float)})
    d["y"] = np.sin(d["x"]) + rng.normal(0, 1, 200)
    model = bam("y ~ s(x, k = 4)", d, discrete=False)
    np.testing.assert_allclose(model.smooths_["edf"].iloc[0], 2.738075, atol=1e-5)


def test_a_constant_covariate_is_named():
    X = pd.DataFrame({"x": np.full(50, 2.0)})
    with pytest.raises(ValueError, match="smooth of 'x': a smooth of a constant covariate"):
        AdditiveMixed(smooths=["x"], bs="tp").fit(X, np.arange(50.0))
