"""The summaries read as R prints them: each block of ``summary()`` (scaled residuals, random
effects, fixed effects, their correlations, mgcv's parametric and smooth tables) against R's
printout of the same model on the same data (``tests/reference/r_summary_*.txt``, written by
``r_summaries.R``). Lines are compared by their *shape* — every digit replaced by 9 — so
column names, widths, decimals, notation, ``< 2e-16``/``<2e-16`` and stars must match while
the last digits may differ (cbpp's standard errors differ from lme4's by a known 1 %, the
intercept of mgcv's model with its random-effect smooth by its centring)."""

import re

import numpy as np
import pandas as pd
import pytest

from skmixed import AdditiveMixed, MixedGLM, MixedLM
from skmixed._estimators._inference import format_p_value
from skmixed._estimators._results import correlation_lines, n_obs_text
from conftest import REFERENCE_DIR


def r_print(name):
    return [line.rstrip() for line in (REFERENCE_DIR / name).read_text().splitlines()]


def block(lines, header, until=None):
    """The lines from ``header`` to the next blank line or line starting with ``until``."""
    lines = [line.rstrip() for line in lines]
    start = lines.index(header)
    end = start + 1
    while end < len(lines) and lines[end] and not (until and lines[end].startswith(until)):
        end += 1
    return lines[start:end]


def shape(lines):
    return [re.sub(r"\d", "9", line) for line in lines]


def assert_same_layout(ours, r):
    assert shape(ours) == shape(r), "\n".join(["skmixed:"] + ours + ["R:"] + r)


@pytest.fixture(scope="module")
def sleep(data_file):
    d = pd.read_csv(data_file("sleepstudy.csv"))
    d["Subject"] = d["Subject"].astype("category")
    X, y = d[["Days", "Subject"]], d["Reaction"]
    return MixedLM(groups="Subject", random_slopes=["Days"]).fit(X, y), X, y


@pytest.fixture(scope="module")
def cbpp(data_file):
    d = pd.read_csv(data_file("cbpp.csv"))
    period = d["period"].astype("category")
    X = pd.concat([pd.get_dummies(period, prefix="period", prefix_sep="", drop_first=True,
                                  dtype=float), d[["herd", "size"]]], axis=1)
    return MixedGLM(groups="herd", trials="size").fit(X, d["incidence"]), X, d["incidence"]


def test_p_values_as_format_pval():
    cases = [[1e-20, 0.308], [1e-20, 6.21e-7], [1e-300], [1.47e-9, 0.001068, 0.000474, 0.000182],
             [0.04, 0.00005, 0.2], [1e-20, 1e-20, 0.0123], [0.5181503], [3.2638e-06]]
    for p, r in zip(cases, r_print("r_format_pval.txt")):
        assert "|".join(format_p_value(p)) == r


def test_lmm_summary_is_lme4s(sleep):
    model, X, y = sleep
    ours, r = model.summary(X, y).splitlines(), r_print("r_summary_lmer.txt")
    assert "Pr(>" not in "\n".join(ours) and "Signif. codes" not in "\n".join(ours)
    for header in ("Scaled residuals:", "Fixed effects:", "Correlation of Fixed Effects:"):
        assert_same_layout(block(ours, header), block(r, header))
    assert_same_layout(block(ours, "Random effects:", "Number of obs"),
                       block(r, "Random effects:", "Number of obs"))
    assert "Number of obs: 180, groups:  Subject, 18" in ours
    quantiles = [float(v) for v in block(ours, "Scaled residuals:")[2].split()]
    r_quantiles = [float(v) for v in block(r, "Scaled residuals:")[2].split()]
    np.testing.assert_allclose(quantiles, r_quantiles, atol=2e-4)
    assert ours[0] == "Linear mixed model fit by REML [skmixed.MixedLM]"
    assert ours[3] == r[4] == "REML criterion at convergence: 1743.6"


@pytest.mark.parametrize("ddf", ["Satterthwaite", "Kenward-Roger"])
def test_lmm_summary_with_ddf_is_lmertests(sleep, ddf):
    model, _, _ = sleep
    ours, r = model.summary(ddf=ddf).splitlines(), r_print("r_summary_lmertest.txt")
    assert ours[0].startswith(f"Linear mixed model fit by REML. t-tests use {ddf}'s method")
    assert_same_layout(block(ours, "Fixed effects:"), block(r, "Fixed effects:"))
    assert block(ours, "Fixed effects:")[1].split() == [
        "Estimate", "Std.", "Error", "df", "t", "value", "Pr(>|t|)"]
    assert ours[ours.index("Scaled residuals: not shown (summary(X, y) with the fitted data "
                           "prints them)") + 1] == ""


def test_asymptotic_p_values_are_asked_for(sleep):
    model, _, _ = sleep
    fixed = block(model.summary(ddf="asymptotic").splitlines(), "Fixed effects:")
    assert fixed[1].split()[-3:] == ["z", "value", "Pr(>|z|)"]
    assert fixed[-1].startswith("Signif. codes:  0 ‘***’ 0.001")
    assert "Wald z tests" in model.summary(ddf="asymptotic").splitlines()[0]
    with pytest.raises(TypeError, match=r"summary\(ddf='Satterthwaite'\)"):
        model.summary("Satterthwaite")


def test_glmm_summary_is_glmers(cbpp):
    model, X, y = cbpp
    ours, r = model.summary(X, y).splitlines(), r_print("r_summary_glmer.txt")
    assert " Family: binomial  ( logit )" in ours
    for header in ("Scaled residuals:", "Fixed effects:", "Correlation of Fixed Effects:"):
        assert_same_layout(block(ours, header), block(r, header))
    assert_same_layout(block(ours, "Random effects:", "Number of obs"),
                       block(r, "Random effects:", "Number of obs"))
    quantiles = [float(v) for v in block(ours, "Scaled residuals:")[2].split()]
    r_quantiles = [float(v) for v in block(r, "Scaled residuals:")[2].split()]
    np.testing.assert_allclose(quantiles, r_quantiles, atol=1e-3)  # lme4's optimum is 3e-4 off


def test_weighted_rows_count_as_repeated_rows(sleep):
    """Frequency weights: rows of weight 1 and 3 print what the repeated rows print."""
    model, X, y = sleep
    w = np.where(np.arange(len(y)) % 2, 3.0, 1.0)
    weighted = MixedLM(groups="Subject", random_slopes=["Days"]).fit(X, y, sample_weight=w)
    rows = np.repeat(np.arange(len(y)), w.astype(int))
    repeated = MixedLM(groups="Subject", random_slopes=["Days"]).fit(X.iloc[rows], y.iloc[rows])
    text = weighted.summary(X, y, sample_weight=w).splitlines()
    again = repeated.summary(X.iloc[rows], y.iloc[rows]).splitlines()
    assert block(text, "Scaled residuals:") == block(again, "Scaled residuals:")
    # a weighted fit says it is one (the same count in observations, unlike lme4's rows)
    assert any(line.startswith("Number of obs: 360 (sum of frequency weights; 180 rows), "
                               "groups:") for line in text)
    assert any(line.startswith("Number of obs: 360, groups:") for line in again)


def test_number_of_observations_is_never_in_exponent_form():
    assert n_obs_text(2_000_000.0) == "2000000"
    assert n_obs_text(180) == "180"
    assert n_obs_text(180, 180) == "180"
    assert n_obs_text(1234.5, 1000) == "1234.5 (sum of frequency weights; 1000 rows)"
    assert n_obs_text(360.0, 180) == "360 (sum of frequency weights; 180 rows)"
    assert n_obs_text(2_000_000.25) == "2000000"  # R's 7 digits


def test_summary_refuses_data_other_than_the_fitted(sleep):
    """summary(X, y): the scaled residuals only from the fitted data — other rows, another
    order, X without y, weights of another length are refused, naming what differs."""
    model, X, y = sleep
    shuffled = y.sample(frac=1.0, random_state=0).reset_index(drop=True)
    for args, match in [((X, shuffled), "not the response"),
                        ((X.iloc[:90], y.iloc[:90]), "not the response"),
                        ((X, None), "both X and y"),
                        ((X, y, np.ones(5)), "sample_weight has shape")]:
        with pytest.raises(ValueError, match=match):
            model.summary(*args)


def test_correlation_as_lme4_shows_it(sleep):
    names = [f"x{j}" for j in range(13)]
    hidden = correlation_lines(names, np.eye(13))
    assert hidden[1] == "Correlation matrix not shown by default, as p = 13 > 12."
    shown = correlation_lines(names, np.eye(13), correlation=True)
    assert shown[1] == "Correlation of Fixed Effects:" and len(shown) == 2 + 13
    assert shown[2].split() == names[:-1] and shown[-1].split()[1:] == ["0.000"] * 12
    model, _, _ = sleep
    assert "Correlation of Fixed Effects:" not in model.summary(correlation=False)


@pytest.mark.parametrize("family,reference", [("gaussian", "r_summary_bam.txt"),
                                              ("binomial", "r_summary_bam_binomial.txt")])
def test_additive_summary_is_mgcvs(data_file, family, reference):
    d = pd.read_csv(data_file("gamsim1.csv"))
    d["fac"] = d["fac"].astype("category")
    cols = (["x3"] if family == "gaussian" else []) + ["x0", "x1", "x2", "fac"]
    model = AdditiveMixed(smooths=["x0", "x1", "x2"], groups="fac", family=family,
                          discrete=True).fit(d[cols], d["y" if family == "gaussian" else "yb"])
    ours, r = model.summary().splitlines(), r_print(reference)
    for line in (f"Family: {family}", "Formula:", "Parametric coefficients:"):
        assert line in ours and line in r
    assert_same_layout(block(ours, "Parametric coefficients:"),
                       block(r, "Parametric coefficients:"))
    # mgcv lists s(fac) among the smooths; skmixed among the variance components
    smooth_ours = block(ours, "Approximate significance of smooth terms:")
    smooth_r = [line for line in block(r, "Approximate significance of smooth terms:")
                if not line.startswith("s(fac)")]
    assert [line.split() for line in shape(smooth_ours)] == [
        line.split() for line in shape(smooth_r)]
    np.testing.assert_allclose([float(line.split()[1]) for line in smooth_ours[2:5]],
                               [float(line.split()[1]) for line in smooth_r[2:5]], atol=2e-3)
