"""skmixed.formula: parsing (random terms, nesting, smooths, offsets, cbind), errors that
point at the offending token, and the same fits from formula strings as from the column
API (and, through them, lme4/mgcv's numbers)."""

import re

import numpy as np
import pandas as pd
import pytest

from conftest import require_package

require_package("formulaic", "formula")

from skmixed import AdditiveMixed, MixedGLM, MixedLM  # noqa: E402
from skmixed.formula import (FormulaError, bam, from_formula, glmer, lmer,  # noqa: E402
                             parse_formula)


def test_parse_random_terms():
    p = parse_formula("y ~ x * b + (1 + x | g) + (1 | a/c) + (z || h)")
    assert p.response == ("y",) and p.fixed == "x * b"
    terms = [(t.slopes, t.group, t.diagonal) for t in p.random]
    assert terms == [(["x"], ("g",), False), ([], ("a",), False), ([], ("c", "a"), False),
                     (["z"], ("h",), True)]


def test_parse_smooths_offset_cbind():
    p = parse_formula('cbind(s, n - s) ~ x + s(z, k = 20) + s(g, bs = "re") + '
                      's(g, x, bs = "re") + offset(lt)')
    assert p.response == ("s", "n - s")
    assert [(s.covariate, s.by, s.bs, s.k) for s in p.smooths] == [
        ("z", None, "ps", 20), ("g", None, "re", None), ("g", "x", "re", None)]
    assert p.offset == "lt" and p.fixed == "x"
    assert parse_formula("y ~ (1 | g)").fixed == "1"


@pytest.mark.parametrize("formula, token, message", [
    ("y ~ x + (1 | g", 14, "unbalanced"),
    ("y ~ x + 1 | g", 10, "in parentheses"),
    ("y ~ x ~ z", 6, "exactly one '~'"),
    ("y ~ x + (0 + x | g)", 9, "without an intercept"),
    ("y ~ s(z, bs = 'tp')", 4, "not supported"),
    ("y ~ s(z, k = 2)", 4, "k must be"),
    ("y ~ x + ", 8, "empty term"),
    ("y ~ x + (1 | a/b/c)", 17, "nesting"),
    ("y ~ x)", 5, "unbalanced ')'"),
])
def test_malformed_formulas_point_at_the_token(formula, token, message):
    with pytest.raises(FormulaError, match=re.escape(message)) as info:
        parse_formula(formula)
    assert info.value.position == token
    caret_line = str(info.value).splitlines()[-1]
    assert caret_line.index("^") - 2 == token


def test_unknown_columns_are_named():
    df = pd.DataFrame({"y": [1.0, 2, 3, 4], "x": [1.0, 2, 3, 5], "g": [1, 1, 2, 2]})
    with pytest.raises(ValueError, match="nope"):
        lmer("y ~ nope + (1 | g)", df)
    with pytest.raises(ValueError, match=r"\['h'\]"):
        lmer("y ~ x + (1 | h)", df)
    with pytest.raises(ValueError, match="must also be a fixed effect"):
        lmer("y ~ 1 + (x | g)", df)


def _same_fit(a, b, rtol=1e-10):
    np.testing.assert_allclose(a.theta_, b.theta_, rtol=rtol)
    np.testing.assert_allclose(a.fixed_effects_["estimate"], b.fixed_effects_["estimate"],
                               rtol=rtol)
    np.testing.assert_allclose(a.fixed_effects_["std_error"], b.fixed_effects_["std_error"],
                               rtol=rtol)


def test_lmer_equals_the_column_api(data_file, load_reference):
    ss = pd.read_csv(data_file("sleepstudy.csv"))
    by_formula = lmer("Reaction ~ Days + (Days | Subject)", ss)
    by_columns = MixedLM(groups="Subject", random_slopes=["Days"]).fit(
        ss[["Days", "Subject"]], ss["Reaction"])
    _same_fit(by_formula, by_columns)
    diag = lmer("Reaction ~ Days + (Days || Subject)", ss, REML=False)
    assert diag.covariance == "diagonal" and not diag.reml
    pen = pd.read_csv(data_file("Penicillin.csv"))
    ref = load_reference("lme4_penicillin.json")["reml"]
    m = lmer("diameter ~ 1 + (1|plate) + (1|sample)", pen)
    _same_fit(m, MixedLM(groups=["plate", "sample"]).fit(pen[["plate", "sample"]],
                                                          pen["diameter"]))
    assert m.reml_criterion_ == pytest.approx(ref["REMLcrit"], rel=1e-8)
    pastes = pd.read_csv(data_file("Pastes.csv"))
    ref = load_reference("lme4_pastes.json")["reml"]
    m = lmer("strength ~ 1 + (1|batch/cask)", pastes)
    assert list(m.variance_components_["group"]) == ["cask:batch", "batch", "Residual"]
    assert m.reml_criterion_ == pytest.approx(ref["REMLcrit"], rel=1e-8)
    np.testing.assert_allclose(m.theta_, ref["theta"], rtol=1e-5)


def test_glmer_cbind_with_factor_contrasts(data_file, load_reference):
    """lme4's cbpp model, ``cbind(incidence, size - incidence) ~ period + (1 | herd)``
    with period a factor (treatment contrasts): the same fit as the column API and lme4's
    estimates at MixedGLM's tolerance (lme4 stops short by up to 4e-4 here)."""
    cb = pd.read_csv(data_file("cbpp.csv"))
    ref = load_reference("lme4_cbpp.json")["laplace"]
    m = glmer("cbind(incidence, size - incidence) ~ C(period) + (1 | herd)", cb)
    assert isinstance(m, MixedGLM)
    np.testing.assert_allclose(m.fixed_effects_["estimate"], list(ref["fixef"].values()),
                               rtol=1e-3)
    X = pd.get_dummies(cb["period"].astype("category"), prefix="p", drop_first=True,
                       dtype=float)
    X["herd"] = cb["herd"]
    X["trials"] = cb["size"]
    by_columns = MixedGLM(groups="herd", trials="trials").fit(X, cb["incidence"])
    _same_fit(m, by_columns, rtol=1e-8)


def test_bam_equals_the_column_api():
    rng = np.random.default_rng(0)
    n, G = 3000, 30
    df = pd.DataFrame({"g": rng.integers(0, G, n), "z": rng.uniform(size=n),
                       "x": rng.normal(size=n)})
    df["y"] = np.sin(2 * np.pi * df["z"]) + (0.5 + rng.normal(0, 0.2, G)[df["g"]]) * df["x"] \
        + rng.normal(0, 0.5, G)[df["g"]] + rng.normal(size=n)
    m = bam('y ~ x + s(z, k = 12) + s(g, bs = "re") + s(g, x, bs = "re")', df,
            discrete=False)
    ref = AdditiveMixed(smooths=["z"], k=12, groups="g", random_slopes=["x"],
                        discrete=False).fit(df[["x", "z", "g"]], df["y"])
    np.testing.assert_allclose(m.coef_, ref.coef_, rtol=1e-10)
    np.testing.assert_allclose(m.variance_components_["sd"], ref.variance_components_["sd"],
                               rtol=1e-8)
    np.testing.assert_allclose(m.smooths_["edf"], ref.smooths_["edf"], rtol=1e-8)


def test_from_formula_gives_an_unfitted_estimator_for_pipelines():
    df = pd.DataFrame({"y": np.arange(8.0), "x": np.arange(8.0) ** 0.5,
                       "g": [1, 1, 2, 2, 3, 3, 4, 4]})
    est, X, y = from_formula("y ~ x + (1 | g)", df)
    assert isinstance(est, MixedLM) and not hasattr(est, "coef_")
    assert list(X.columns) == ["x", "g"] and y.name == "y"
    est, X, _ = from_formula("y ~ x + (1 | g) + (1 | h)", df.assign(h=df["g"] % 2), "glmer")
    assert isinstance(est, MixedGLM) and est.groups == ["g", "h"]
    with pytest.raises(ValueError, match="both a fixed effect and a grouping factor"):
        from_formula("y ~ x + (1 | g) + (1 | x)", df)
