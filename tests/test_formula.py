"""skmixed.formula: parsing (random terms, nesting, smooths, offsets, cbind), errors that
point at the offending token, formulas that are read and never run as Python, the fixed
part's columns equal to formulaic's (names and values) and R's model.matrix, and the same
fits from formula strings as from the column API (and, through them, lme4/mgcv's
numbers)."""

import os
import re

import numpy as np
import pandas as pd
import pytest

from conftest import require_package

from skmixed import AdditiveMixed, MixedGLM, MixedLM
from skmixed.formula import FormulaError, bam, from_formula, glmer, lmer, parse_formula


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
        ("z", None, "tp", 20), ("g", None, "re", None), ("g", "x", "re", None)]
    assert p.offset == "lt" and p.fixed == "x"
    assert parse_formula("y ~ (1 | g)").fixed == "1"


@pytest.mark.parametrize("formula, token, message", [
    ("y ~ x + (1 | g", 14, "unbalanced"),
    ("y ~ x + 1 | g", 10, "in parentheses"),
    ("y ~ x ~ z", 6, "exactly one '~'"),
    ("y ~ x + (0 + x | g)", 9, "without an intercept"),
    ("y ~ s(z, bs = 'ts')", 14, "not supported"),
    ("y ~ s(z, k = 2)", 13, "k must be"),
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
    for formula, token, message in [("y ~ nope + (1 | g)", 4, "'nope' is not in the data"),
                                     ("y ~ x + (1 | h)", 13, "'h' is not in the data"),
                                     ("y ~ 1 + (x | g)", 9, "must also be a fixed effect"),
                                     ("nope ~ x + (1 | g)", 0, "'nope' is not in the data"),
                                     ("y ~ x + (1 | g:k.real)", 15, "attribute access")]:
        with pytest.raises(FormulaError, match=re.escape(message)) as info:
            lmer(formula, df)
        assert info.value.position == token


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
    # s(z) is mgcv's default basis, the thin-plate spline
    ref = AdditiveMixed(smooths=["z"], k=12, bs="tp", groups="g", random_slopes=["x"],
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


# ------------------------------------------------------------ formulas are never run
@pytest.fixture
def small():
    rng = np.random.default_rng(1)
    df = pd.DataFrame({"x": rng.normal(size=60), "g": np.repeat(np.arange(6), 10),
                       "n": rng.integers(5, 9, 60), "f": rng.choice(list("abc"), 60)})
    df["k"] = rng.binomial(df["n"], 0.4)
    df["kk"] = df["k"] // 2
    df["y"] = df["x"] + rng.normal(size=6)[df["g"]] + rng.normal(size=60)
    return df


def test_a_formula_is_parsed_never_executed(small, tmp_path, monkeypatch):
    """Issue 13 item 5: formulaic evaluated the fixed part as Python, so this formula ran
    a shell command. Now it is a FormulaError at ``__import__`` and nothing runs."""
    calls = []
    monkeypatch.setattr(os, "system", lambda command: calls.append(command) or 0)
    monkeypatch.chdir(tmp_path)
    sentinel = tmp_path / "pwned"
    formula = "y ~ I(__import__('os').system('touch pwned')) + (1|g)"
    with pytest.raises(FormulaError, match="__import__") as info:
        lmer(formula, small)
    assert info.value.position == formula.index("__import__")
    touch = f"y ~ x + I(__import__('pathlib').Path({str(sentinel)!r}).touch()) + (1 | g)"
    with pytest.raises(FormulaError):
        lmer(touch, small)
    assert calls == [] and not sentinel.exists()


@pytest.mark.parametrize("formula, token, message", [
    ("y ~ x + k.__class__ + (1 | g)", "__class__", "'__'"),
    ("y ~ I(x.__add__(1)) + (1 | g)", "__add__", "'__'"),
    ("y ~ eval('x') + (1 | g)", "eval", "unknown function eval()"),
    ("y ~ I(eval('x')) + (1 | g)", "eval", "unknown function eval()"),
    ("y ~ __import__('os') + (1 | g)", "__import__", "'__'"),
    ("y ~ getattr(x, 'real') + (1 | g)", "getattr", "unknown function getattr()"),
    ("y ~ log(getattr(x, 'real')) + (1 | g)", "getattr", "unknown function"),
    ("y ~ x[0] + (1 | g)", "[", "subscripts"),
    ("y ~ I(x[0]) + (1 | g)", "[", "subscripts"),
    ("y ~ I(lambda: 1) + (1 | g)", ":", "not arithmetic"),
    ("y ~ open('f') + (1 | g)", "open", "unknown function"),
    ("y ~ np.os.system('ls') + (1 | g)", "np.os.system", "unknown function"),
    ("y ~ x + 'x' + (1 | g)", "'x'", "a string is not a term"),
    ("y ~ I('x') + (1 | g)", "'x'", "a string is not a number"),
    ("y ~ x$a + (1 | g)", "$", "'$'"),
    ("y ~ x + (1 | g.__class__)", "__class__", "'__'"),
    ("y ~ . + (1 | g)", ".", "'.'"),
    ("y ~ x; import os", ";", "';'"),
    ("y ~ log(x).real + (1 | g)", ".real", "attribute access"),
])
def test_anything_off_the_grammar_is_a_formula_error(small, formula, token, message):
    with pytest.raises(FormulaError, match=re.escape(message)) as info:
        parse_formula(formula)
    assert info.value.position == formula.index(token)
    caret_line = str(info.value).splitlines()[-1]
    assert caret_line.index("^") - 2 == formula.index(token)
    with pytest.raises(FormulaError):
        lmer(formula, small)


@pytest.mark.parametrize("deep", [lambda n: "(" * n + "x" + ")" * n,
                                  lambda n: "I(" + "-" * n + "x)",
                                  lambda n: "I(x" + " ** x" * n + ")",
                                  lambda n: "abs(" * n + "x" + ")" * n])
def test_deep_nesting_is_a_formula_error_not_a_recursion_error(small, deep):
    """A formula is bounded in depth (40), so a hostile one cannot exhaust the stack."""
    from_formula("y ~ " + deep(30) + " + (1 | g)", small.assign(x=1 + small["x"].abs() / 100))
    with pytest.raises(FormulaError, match="nested more than 40 levels deep"):
        parse_formula("y ~ " + deep(2000))


def test_long_operator_chains_are_read_without_recursion(small):
    """Review of issue 13, defect 6: ``I(x + x + … + x)`` with 1000 terms, ``x:x:…:x`` and
    ``*`` inside I() raised a raw RecursionError (chains were walked recursively). A chain
    is walked in a loop, so its length is not bounded; it stays left-associative."""
    n = 2000
    chained = " - ".join(["x"] * n)
    est, X, y = from_formula(f"I({' + '.join(['x'] * n)}) ~ I({chained}) + "
                             f"{':'.join(['x'] * n)} + {'*'.join(['n'] * n)} + "
                             f"{'/'.join(['k'] * n)} + (1 | {':'.join(['g'] * n)})", small)
    x = small["x"].to_numpy()
    np.testing.assert_allclose(y, n * x, rtol=1e-12)
    assert list(X.columns[:4]) == [f"I({chained})", "x", "n", "k"]
    np.testing.assert_allclose(X[f"I({chained})"], (2 - n) * x, rtol=1e-12)  # (x - x) - x …
    assert est.groups == ":".join(["g"] * n)
    offset = parse_formula(f"k ~ x + offset({' * '.join(['n'] * n)}) + (1 | g)").offset
    assert offset == " * ".join(["n"] * n)


@pytest.mark.parametrize("formula, token, message", [
    ("cbind(kk, q = k - kk) ~ x + (1 | g)", "q", "no keyword arguments"),
    ("cbind(kk, k.__class__) ~ x + (1 | g)", "__class__", "'__'"),
    ("cbind(kk, k - f) ~ x + (1 | g)", "f)", "'f' is not numeric"),
    ("cbind(kk, k - nope) ~ x + (1 | g)", "nope", "'nope' is not in the data"),
    ("cbind(kk) ~ x + (1 | g)", "cbind", "two arguments"),
    # review of issue 13: raw ValueErrors about the internal column 'cbind_trials'
    ("cbind(kk, x) ~ x + (1 | g)", "x)", "the failures, x, must be whole numbers >= 0"),
    ("cbind(kk, n - kk - 20) ~ x + (1 | g)", "n - kk", "the failures, n - kk - 20, must be"),
    ("cbind(-kk, n + kk) ~ x + (1 | g)", "-kk", "the successes, -kk, must be whole numbers"),
    ("cbind(kk - kk, n - n) ~ x + (1 | g)", "cbind", "have no trials"),
    # a proportion: sklearn's "Unknown label type: continuous"
    ("kk / n ~ x + (1 | g)", "kk", "for a proportion write cbind(kk, n - kk)"),
    ("I(kk / n) ~ x + (1 | g)", "I", "weights = trials, is not supported"),
])
def test_cbind_errors_point_at_the_token(small, formula, token, message):
    """Issue 13 item 8: ``cbind(kk, q = k - kk)`` failed with "operands could not be
    broadcast" and ``cbind(kk, k.__class__)`` with a raw TypeError."""
    with pytest.raises(FormulaError, match=re.escape(message)) as info:
        glmer(formula, small)
    assert info.value.position == formula.index(token)
    assert "cbind_trials" not in str(info.value)


def test_cbind_is_a_binomial_response(small):
    with pytest.raises(FormulaError, match="family='poisson' takes one response"):
        glmer("cbind(kk, n - kk) ~ x + (1 | g)", small, family="poisson")


def test_backticks_for_odd_names_also_in_random_terms(small):
    """`my g` in a random-effect term was refused ("must be a column name")."""
    odd = small.rename(columns={"x": "my x", "g": "my g"})
    est, X, _ = from_formula("y ~ `my x` + (1 | `my g`)", odd)
    assert list(X.columns) == ["my x", "my g"] and est.groups == "my g"
    _same_fit(est.fit(X, odd["y"]),
              MixedLM(groups="my g").fit(odd[["my x", "my g"]], odd["y"]))
    assert parse_formula("y ~ `my x` + (1 + `my x` || `my g`)").random[0].slopes == ["my x"]
    p = parse_formula("y ~ 1 + (1 | `my g`:`a b`) + (1 | `my g`/h)")
    assert [t.group for t in p.random] == [("my g", "a b"), ("my g",), ("h", "my g")]


def test_transforms_and_arithmetic(small):
    df = small.assign(z=np.linspace(0.5, 3.0, len(small)))
    est, X, y = from_formula("log(z) ~ x + I(x ** 2 - z / 2) + I(-x^3) + log1p(z) + "
                             "np.sqrt(z) + abs(x) + exp(x) + center(z) + scale(x) + "
                             "C(f, Treatment('b')) + (1 | g)", df)
    z, x = df["z"].to_numpy(), df["x"].to_numpy()
    np.testing.assert_allclose(y, np.log(z))
    expected = {"x": x, "I(x ** 2 - z / 2)": x ** 2 - z / 2, "I(-x ** 3)": -x ** 3,
                "log1p(z)": np.log1p(z), "np.sqrt(z)": np.sqrt(z), "abs(x)": np.abs(x),
                "exp(x)": np.exp(x), "center(z)": z - z.mean(),
                "scale(x)": (x - x.mean()) / x.std(ddof=1),
                "C(f, Treatment('b'))[T.a]": (df["f"] == "a").astype(float),
                "C(f, Treatment('b'))[T.c]": (df["f"] == "c").astype(float)}
    assert list(X.columns) == list(expected) + ["g"]
    for name, values in expected.items():
        np.testing.assert_allclose(X[name], values, rtol=1e-14, err_msg=name)
    assert est.fit_intercept


@pytest.mark.parametrize("formula, token, message", [
    ("y ~ log(x) + (1 | g)", "log", "NaN or infinite on"),
    ("y ~ I(1 / (x - x)) + (1 | g)", "/", "division by 0"),
    ("y ~ I(f * 2) + (1 | g)", "f", "'f' is not numeric"),
    ("y ~ C(f, Treatment('q')) + (1 | g)", "'q'", "not a level of"),
    ("y ~ poly(x, 99) + (1 | g)", "poly", "less than the number of distinct values"),
    ("y ~ poly(x, 0) + (1 | g)", "0", "whole number >= 1"),
    ("y ~ x + I(2) ^ 1.5 + (1 | g)", "1.5", "whole number >= 1"),
    ("y ~ 2 + x + (1 | g)", "2", "1 (the intercept) or 0"),
    ("y ~ x + (1 | g) - (1 | h)", "(1 | h)", "added with '+'"),
    ("y ~ (0 + x):f + (1 | g)", "0", "top level"),
])
def test_data_and_value_errors_point_at_the_token(small, formula, token, message):
    with pytest.raises(FormulaError, match=re.escape(message)) as info:
        lmer(formula, small)
    assert info.value.position == formula.index(token)


def test_offset_takes_an_expression(small):
    """``offset(log(t))`` as lme4 writes it (the old parser took a column only)."""
    df = small.assign(t=np.linspace(1.0, 4.0, len(small)))
    est, X, _ = from_formula("k ~ x + offset(log(t)) + (1 | g)", df, "glmer", family="poisson")
    np.testing.assert_allclose(X["offset(log(t))"], np.log(df["t"]))
    assert est.offset == "offset(log(t))"


# ------------------------------------------------- the columns as formulaic, R build them
_FORMULAIC_CASES = [
    "x*z", "x:z + x", "z:x", "f", "C(n)", "x:f", "f:x + x", "f*h", "f:h", "0 + f", "-1 + f + h",
    "x*f", "C(f, contr.treatment('b'))", "C(f, Treatment(reference='b')):x", "I(x**2)",
    "I(x*z - 1)", "log(z)", "np.log(z)", "poly(x, 2)", "poly(x, degree=3)", "scale(x)",
    "center(x)", "(x + z + f)**2", "x + z - x", "bb", "g", "C(g)", "I(-x)", "x/z", "f/x",
    "exp(x) + np.sqrt(z)", "x + f:h", "h:f", "C(n):x", "x:z:f", "`my x`", "`my x`:x",
    "C(nf)", "C(f):C(nf)", "I(x/2)", "I(x - -1)", "I((x + 1)*2)", "I(x**-1)", "I(-x**2)",
    "I(2 ** 3 ** z)", "I((2 ** 3) ** z)", "I(1e3*x)", "I(x*0.1)", "log(z + 1)",
    "np.log1p(z)", "x - 1", "x + 0", "0 + x", "x - 0", "(x + nf):f", "x:(nf + f)",
    "f*x - f", "C(n, contr.treatment(2))", "f*h*x", "(f + h + x)**3", "poly(z, 2):f",
    "f:poly(z, 2)", "x:f + f:h", "0 + f:h", "0 + x:f + h", "h + f:h:x", "scale(x):center(z)",
    "1", "0", "f + h + f:h - f", "abs(x) + np.exp(z) + log2(z) + log10(z) + exp2(x)",
    "C(f):x + C(f)"]


@pytest.mark.parametrize("rhs", _FORMULAIC_CASES)
def test_fixed_columns_equal_formulaics(rhs):
    """The fixed part used to be formulaic's model matrix: the columns built here keep its
    names, order, values and intercept (R's rule for which factors of a term get contrasts,
    as patsy/formulaic apply it)."""
    formulaic = require_package("formulaic", "test")
    rng = np.random.default_rng(0)
    n = 40
    d = pd.DataFrame({"x": rng.normal(size=n), "z": rng.uniform(1, 2, n),
                      "f": rng.choice(list("abc"), n), "h": rng.choice(list("uv"), n),
                      "nf": rng.integers(1, 4, n).astype(float), "n": rng.integers(1, 4, n),
                      "bb": rng.integers(0, 2, n).astype(bool), "my x": rng.normal(size=n),
                      "g": pd.Categorical(rng.choice(list("bad"), n),
                                          categories=["b", "a", "d", "z"]),
                      "y": rng.normal(size=n), "grp": rng.integers(0, 4, n)})
    reference = formulaic.model_matrix(rhs, d)
    _, X, _ = from_formula(f"y ~ {rhs} + (1 | grp)", d)
    X = X.drop(columns="grp")
    names = [c for c in reference.columns if c != "Intercept"]
    assert list(X.columns) == names
    np.testing.assert_allclose(X.to_numpy(), np.asarray(reference[names], dtype=float),
                               rtol=1e-12, atol=1e-12)
    assert parse_formula(f"y ~ {rhs}").intercept == ("Intercept" in reference.columns)


def test_fixed_columns_equal_rs_model_matrix(load_reference):
    """R's poly (orthogonal and raw), scale, log, I(x^2), relevel's reference and x:f with
    and without its margin (tests/reference/r_formula_design.R)."""
    ref = load_reference("r_formula_design.json")
    d = pd.DataFrame(ref["data"]).assign(y=0.0, g=0)
    ours = {"transforms": "poly(x, 3) + scale(x) + log(x) + I(x^2) + log1p(x) + sqrt(x) + "
                          "exp(x)",
            "raw_poly": "0 + poly(x, 2, raw = TRUE)", "reference": "C(f, Treatment('b'))",
            "slope_by_level": "x:f", "with_margin": "f * x"}
    for key, rhs in ours.items():
        _, X, _ = from_formula(f"y ~ {rhs} + (1 | g)", d)
        expected = np.array(ref[key]["matrix"])
        if ref[key]["columns"][0] == "(Intercept)":
            expected = expected[:, 1:]
        np.testing.assert_allclose(X.drop(columns="g").to_numpy(), expected, rtol=1e-12,
                                   atol=1e-14, err_msg=key)


def test_an_exploding_interaction_is_refused_at_its_operator():
    """a*b*…*z of k columns has 2^k − 1 terms: 25 columns would not fit in memory. Refused at
    the operator that passes MAX_TERMS, quickly and naming it; 13 columns (8,191) still
    parse."""
    from skmixed._formula.terms import MAX_TERMS

    names = [f"x{i}" for i in range(25)]
    formula = "y ~ " + "*".join(names) + " + (1 | g)"
    with pytest.raises(FormulaError, match=f"more than {MAX_TERMS:,} terms") as info:
        parse_formula(formula)
    assert "*" in str(info.value)
    assert len(parse_formula("y ~ " + "*".join(names[:13]) + " + (1 | g)").terms) == 2**13 - 1
    with pytest.raises(FormulaError, match="interactions multiply"):
        parse_formula("y ~ (" + " + ".join(names) + ")^5 + (1 | g)")


def test_a_smooths_covariate_as_a_parametric_term_is_refused():
    """``s(temp) + temp``: the parametric column was silently replaced by the smooth's (no
    coefficient for it); the column API refuses the collinear model, so does the formula."""
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"temp": rng.uniform(size=300)})
    df["y"] = np.sin(5 * df["temp"]) + rng.normal(size=300)
    with pytest.raises(FormulaError, match="'temp' is both a parametric term and a smooth"):
        bam('y ~ s(temp, bs = "cr") + temp', df)


def test_bam_random_slope_needs_its_fixed_slope():
    """mgcv's s(g, v, bs = "re") alone has no fixed slope; AdditiveMixed keeps one beside
    every random slope, so the formula must say so (not a silently different model)."""
    rng = np.random.default_rng(1)
    df = pd.DataFrame({"g": rng.integers(0, 10, 200), "v": rng.normal(size=200),
                       "y": rng.normal(size=200)})
    with pytest.raises(FormulaError, match="needs 'v' as a parametric term too"):
        bam('y ~ s(g, bs = "re") + s(g, v, bs = "re")', df)
    # an integer-coded nested factor reads as a slope (as in mgcv): the message says how to
    # make it a factor
    with pytest.raises(FormulaError, match="give 'v' as categories"):
        bam('y ~ s(g, bs = "re") + s(g, v, bs = "re")', df.assign(v=df["g"] % 3))
