"""MixedLM with several grouping factors (crossed and nested) against lme4:

* Penicillin (crossed, ``diameter ~ 1 + (1|plate) + (1|sample)``) and Pastes (nested,
  ``strength ~ 1 + (1|batch/cask)``, i.e. ``(1|cask:batch) + (1|batch)``) from
  ``tests/reference`` (``make_ref.R``);
* the study's 200,000 rows with a crossed factor h and random slopes in g
  (``tests/reference/lme4_crossed_slopes.R``): ``(1 + x | g) + (1 | h)`` by REML and ML,
  ``(1 + x || g) + (1 | h)`` — the general (non-scalar) path.

Tolerances (measured in brackets): Penicillin and Pastes' criterion within 1e-8 relative,
ours never higher (ours 2.6e-11 lower), θ 1e-4 relative (2.9e-5: lme4 stops short,
Penicillin's sample θ 3.51252 vs the optimum 3.51242, whose criterion is lower), fixed
effects 1e-6 (8e-14), standard errors, SDs and σ 1e-4 (2.9e-5), conditional modes 1e-5 of
the term's SD (1.3e-6), conditional SDs 1e-5 (8.8e-7); the crossed slopes' criterion 1e-8
(4e-13), θ 2e-3 or 1e-4 absolute (8.7e-4 relative on a small θ), fixed effects 1e-5
(4.5e-8), SEs 1e-4 (4.2e-5), σ and fitted values 1e-5.
"""

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import sparse
import pytest
from sklearn.exceptions import ConvergenceWarning

from skmixed import MixedLM
from skmixed._model.multilevel import (FactorColumns, MultiCrossproducts,
                                       MultiProfiledDeviance, ScalarFactorsDeviance)
from skmixed._model.terms import RandomEffectTerm

CROSSED = Path(__file__).resolve().parents[1] / "reference" / "lme4_crossed_slopes.json"


def _check_against_lme4(model, ref, names_map=None):
    names_map = names_map or {}
    assert model.reml_criterion_ <= ref["REMLcrit"] + 1e-6
    assert model.reml_criterion_ == pytest.approx(ref["REMLcrit"], rel=1e-8)
    np.testing.assert_allclose(model.theta_, ref["theta"], rtol=1e-4)
    fe = model.fixed_effects_
    np.testing.assert_allclose(fe["estimate"], list(ref["fixef"].values()), rtol=1e-6)
    np.testing.assert_allclose(fe["std_error"], list(ref["se"].values()), rtol=1e-4)
    assert model.sigma_ == pytest.approx(ref["sigma"], rel=1e-4)
    vc = model.variance_components_
    for row in ref["varcorr"]:
        grp = names_map.get(row["grp"], row["grp"])
        mine = vc[(vc["group"] == grp)]
        assert len(mine) == 1
        assert mine["sd_cor"].iloc[0] == pytest.approx(row["sdcor"], rel=1e-4)
    re = model.random_effects_.set_index(["group", "level"])
    for row in ref["ranef"]:
        grp = names_map.get(row["grpvar"], row["grpvar"])
        sd = vc.loc[vc["group"] == grp, "sd_cor"].iloc[0]
        mine = re.loc[(grp, str(row["grp"]))]
        assert abs(mine["mode"] - row["condval"]) <= 1e-5 * sd
        assert mine["cond_sd"] == pytest.approx(row["condsd"], rel=1e-5)


def test_penicillin_crossed(data_file, load_reference):
    df = pd.read_csv(data_file("Penicillin.csv"))
    model = MixedLM(groups=["plate", "sample"]).fit(df[["plate", "sample"]], df["diameter"])
    _check_against_lme4(model, load_reference("lme4_penicillin.json")["reml"])
    assert model.n_groups_ == {"plate": 24, "sample": 6}
    assert list(model.variance_components_["group"]) == ["plate", "sample", "Residual"]


def test_pastes_nested(data_file, load_reference):
    """``(1 | batch/cask)``: the interaction cask:batch as a tuple of columns, named and
    labelled as lme4 does (levels ``a:A``)."""
    df = pd.read_csv(data_file("Pastes.csv"))
    model = MixedLM(groups=["batch", ("cask", "batch")]).fit(df[["batch", "cask"]],
                                                              df["strength"])
    _check_against_lme4(model, load_reference("lme4_pastes.json")["reml"])
    # predictions: the fixed part plus both factors' modes; a new cask of a seen batch gets
    # the batch's effect only
    re = model.random_effects_.set_index(["group", "level"])["mode"]
    row = df[["batch", "cask"]].iloc[[0]]
    expected = model.intercept_ + re[("batch", "A")] + re[("cask:batch", "a:A")]
    assert model.predict(row)[0] == pytest.approx(expected, rel=1e-12)
    new = pd.DataFrame({"batch": ["A"], "cask": ["z"]})
    assert model.predict(new)[0] == pytest.approx(model.intercept_ + re[("batch", "A")])
    assert model.predict(new, random_effects=False)[0] == pytest.approx(model.intercept_)


@pytest.mark.parametrize("offset", [1e4, 1e6])
def test_a_response_with_a_large_mean(data_file, offset):
    """y + a constant is the same model with the intercept moved: y is centred before its
    sums, as the columns are. Before, y'y − ‖c‖² − ‖c_β‖² cancelled: Pastes' strength +
    1e4 stopped ABNORMAL with θ 1.3e-3 off, + 1e6 with θ 27 % off (observed now: θ 1e-11,
    the criterion 2e-12)."""
    df = pd.read_csv(data_file("Pastes.csv"))
    groups = ["batch", ("cask", "batch")]
    base = MixedLM(groups=groups).fit(df[["batch", "cask"]], df["strength"])
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        moved = MixedLM(groups=groups).fit(df[["batch", "cask"]], df["strength"] + offset)
    assert moved.reml_criterion_ == pytest.approx(base.reml_criterion_, rel=1e-10)
    np.testing.assert_allclose(moved.theta_, base.theta_, rtol=1e-8)
    assert moved.intercept_ - offset == pytest.approx(base.intercept_, rel=1e-8)
    np.testing.assert_allclose(moved.random_effects_["mode"], base.random_effects_["mode"],
                               rtol=1e-7, atol=1e-8)


@pytest.fixture(scope="module")
def crossed(data_file):
    df = pd.read_csv(data_file("study_2e5.csv.gz"), usecols=["g", "x", "b", "y"])
    df["h"] = np.arange(len(df)) % 37 + 1
    df["y2"] = df["y"] + np.sin(df["h"])
    return df


@pytest.mark.parametrize("entry, reml, covariance", [
    ("reml_rs", True, "unstructured"), ("ml_rs", False, "unstructured"),
    ("reml_diag", True, "diagonal")])
def test_crossed_with_random_slopes(crossed, entry, reml, covariance):
    ref = json.loads(CROSSED.read_text())[entry]
    model = MixedLM(groups=["g", "h"], random_slopes={"g": ["x"]},
                    covariance={"g": covariance}, reml=reml).fit(
        crossed[["x", "b", "g", "h"]], crossed["y2"])
    crit = model.reml_criterion_ if reml else model.deviance_
    assert crit <= ref["crit"] + 1e-6
    assert crit == pytest.approx(ref["crit"], rel=1e-8)
    np.testing.assert_allclose(model.theta_, ref["theta"], rtol=2e-3, atol=1e-4)
    fe = model.fixed_effects_
    np.testing.assert_allclose(fe["estimate"], list(ref["fixef"].values()), rtol=1e-5)
    np.testing.assert_allclose(fe["std_error"], list(ref["se"].values()), rtol=1e-4)
    assert model.sigma_ == pytest.approx(ref["sigma"], rel=1e-5)
    np.testing.assert_allclose(model.predict(crossed[["x", "b", "g", "h"]].iloc[:20]),
                               ref["fitted_head"], rtol=1e-5)


def test_dense_or_sparse_rest_by_its_pattern(monkeypatch):
    """Past ``DENSE_LIMIT`` columns the rest block is dense when its pattern is (crossed
    factors: users meet most item pairs) and sparse when it is not (nested factors)."""
    from skmixed._model import multilevel

    monkeypatch.setattr(multilevel, "DENSE_LIMIT", 10)
    rng = np.random.default_rng(3)
    crossed = sparse.csr_matrix((np.ones(4000), (rng.integers(0, 200, 4000),
                                                 rng.integers(0, 40, 4000))), shape=(200, 40))
    nested = sparse.csr_matrix((np.ones(10_000), (np.arange(10_000),
                                                  np.arange(10_000) // 5)),
                               shape=(10_000, 2000))
    diagonal = sparse.identity(40, format="csr")
    assert multilevel.dense_rest(crossed, diagonal)
    assert not multilevel.dense_rest(nested, sparse.identity(2000, format="csr"))
    monkeypatch.setattr(multilevel, "_physical_memory", lambda: 40 * 40 * 8 * 3)
    assert not multilevel.dense_rest(crossed, diagonal)  # two dense copies would not fit


def test_scalar_fit_reuses_the_optimizers_last_state(data_file):
    """The scalar path's conditional modes and variances at the optimum are those of the
    optimizer's last evaluation when it stopped there (no second factorization), and equal
    a fresh evaluation's."""
    df = pd.read_csv(data_file("Penicillin.csv"))
    n = len(df)
    factors = []
    for name in ("plate", "sample"):
        codes, levels = pd.factorize(df[name], sort=True)
        factors.append(FactorColumns(codes.astype(np.int64), len(levels), np.ones((n, 1)),
                                     RandomEffectTerm(("(Intercept)",))))
    stats = MultiCrossproducts.from_rows(np.ones((n, 1)), df["diameter"].to_numpy(float),
                                         None, factors)
    fast = ScalarFactorsDeviance(stats, factors)
    theta = np.array([1.5, 3.5])
    fast.value_and_grad(theta)
    last = fast.last_state(theta)
    assert last is fast._last
    fresh = ScalarFactorsDeviance(stats, factors).last_state(theta)
    assert fresh is not last
    for (m1, v1), (m2, v2) in zip(fast.conditional_modes(last),
                                  fast.conditional_modes(fresh)):
        np.testing.assert_allclose(m1, m2, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(v1, v2, rtol=1e-12)
    assert fast.last_state(theta * 1.01) is not last


@pytest.mark.parametrize("reml", [True, False])
def test_scalar_path_equals_general_path_and_its_gradient(data_file, reml):
    """The intercept-only fast path (:class:`ScalarFactorsDeviance`) has the general
    blocked deviance's value, and its exact gradient matches central differences."""
    df = pd.read_csv(data_file("Pastes.csv"))
    n = len(df)
    factors = []
    for values in (df["cask"] + ":" + df["batch"], df["batch"]):
        codes, levels = pd.factorize(values, sort=True)
        factors.append(FactorColumns(codes.astype(np.int64), len(levels), np.ones((n, 1)),
                                     RandomEffectTerm(("(Intercept)",))))
    stats = MultiCrossproducts.from_rows(np.ones((n, 1)), df["strength"].to_numpy(float),
                                         None, factors)
    fast = ScalarFactorsDeviance(stats, factors, reml=reml)
    general = MultiProfiledDeviance(stats, factors, reml=reml)
    for theta in ([1.0, 1.0], [3.5, 1.6], [0.2, 2.5]):
        theta = np.array(theta)
        value, grad = fast.value_and_grad(theta)
        assert value == pytest.approx(general(theta), rel=1e-12)
        h = 1e-5
        fd = [(general(theta + h * e) - general(theta - h * e)) / (2 * h) for e in np.eye(2)]
        np.testing.assert_allclose(grad, fd, rtol=1e-5, atol=1e-5)


def test_recovers_crossed_variances():
    """Simulated crossed factors (300 × 40 levels, SDs 0.7 and 0.4, σ = 1): the SDs within
    4 approximate standard errors (SD/√(2G)), σ within 2 %."""
    rng = np.random.default_rng(7)
    n = 40_000
    a, b = rng.integers(0, 300, n), rng.integers(0, 40, n)
    x = rng.normal(size=n)
    y = 1.0 + 0.5 * x + rng.normal(0, 0.7, 300)[a] + rng.normal(0, 0.4, 40)[b] \
        + rng.normal(size=n)
    model = MixedLM(groups=["a", "b"]).fit(pd.DataFrame({"x": x, "a": a, "b": b}), y)
    vc = model.variance_components_.set_index("group")["sd_cor"]
    assert abs(vc["a"] - 0.7) < 4 * 0.7 / np.sqrt(600)
    assert abs(vc["b"] - 0.4) < 4 * 0.4 / np.sqrt(80)
    assert abs(vc["Residual"] - 1.0) < 0.02
    assert abs(model.coef_[0] - 0.5) < 4 * model.fixed_effects_["std_error"]["x"]


@pytest.mark.parametrize("params, match", [
    (dict(groups=["a", "b"], random_slopes=["x"]), "must be a dict"),
    (dict(groups=["a", "b"], random_slopes={"c": ["x"]}), "not factors"),
    (dict(groups=["a", "a"]), "twice"),
    (dict(groups=["a", "nope"]), "nope"),
    (dict(groups=["a", "b"], covariance={"zz": "diagonal"}), "not factors"),
    (dict(groups="a", covariance={"a": "diagonal"}), "several grouping factors"),
])
def test_bad_multilevel_input(params, match):
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"x": rng.normal(size=100), "a": rng.integers(0, 5, 100),
                      "b": rng.integers(0, 4, 100)})
    model = MixedLM(**params)
    with pytest.raises(ValueError, match=match):
        model.fit(X, rng.normal(size=100))
    assert not hasattr(model, "coef_")


def test_summary_lists_every_factor(data_file):
    df = pd.read_csv(data_file("Pastes.csv"))
    text = MixedLM(groups=["batch", ("cask", "batch")]).fit(df[["batch", "cask"]],
                                                            df["strength"]).summary()
    assert "strength ~ 1 + (1 | batch) + (1 | cask:batch)" in text
    assert "groups:  batch, 10; cask:batch, 30" in text


def test_sparse_rest_block_equals_the_dense_one(monkeypatch):
    """Beyond ``DENSE_LIMIT`` columns a sparse pattern of the other factors' Schur
    complement is factored by SciPy's sparse LU: the same fit as the dense path (here forced
    with a limit of 0 and no pattern counted dense, on a nested design whose inner factor
    has 1,200 levels)."""
    from skmixed._model import multilevel

    rng = np.random.default_rng(9)
    n = 12_000
    a = rng.integers(0, 60, n)
    b = a * 20 + rng.integers(0, 20, n)  # 20 levels of b within each a
    x = rng.normal(size=n)
    y = 0.3 * x + rng.normal(0, 0.8, 60)[a] + rng.normal(0, 0.5, 1200)[b] + rng.normal(size=n)
    # a few rows of b's levels under another a: not purely nested, so the Schur complement
    # is sparse but not diagonal (purely nested factors take the diagonal path)
    moved = rng.choice(n, 40, replace=False)
    a[moved] = rng.integers(0, 60, moved.size)
    X = pd.DataFrame({"x": x, "a": a, "b": b})
    dense = MixedLM(groups=["a", "b"]).fit(X, y)
    monkeypatch.setattr(multilevel, "DENSE_LIMIT", 0)
    monkeypatch.setattr(multilevel, "DENSE_SHARE", 2.0)
    sparse_fit = MixedLM(groups=["a", "b"]).fit(X, y)
    # the general path ran (sparse LU, finite-difference gradient)
    assert sparse_fit.optimization_.optimizer != dense.optimization_.optimizer
    assert sparse_fit.reml_criterion_ == pytest.approx(dense.reml_criterion_, rel=1e-9)
    np.testing.assert_allclose(sparse_fit.theta_, dense.theta_, rtol=1e-4)
    np.testing.assert_allclose(sparse_fit.coef_, dense.coef_, rtol=1e-6)
    re_s = sparse_fit.random_effects_.set_index(["group", "level"])
    re_d = dense.random_effects_.set_index(["group", "level"])
    np.testing.assert_allclose(re_s["mode"], re_d["mode"], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(re_s["cond_sd"], re_d["cond_sd"], rtol=1e-4)


def test_clone_and_cross_validation_with_several_factors():
    from sklearn.base import clone
    from sklearn.model_selection import KFold, cross_val_score

    rng = np.random.default_rng(1)
    n = 3000
    X = pd.DataFrame({"x": rng.normal(size=n), "a": rng.integers(0, 50, n),
                      "b": rng.integers(0, 10, n)})
    y = (0.5 + rng.normal(0, 0.3, 50)[X["a"]]) * X["x"] + rng.normal(0, 0.6, 50)[X["a"]] \
        + rng.normal(0, 0.4, 10)[X["b"]] + rng.normal(size=n)
    model = MixedLM(groups=["a", "b"], random_slopes={"a": ["x"]},
                    covariance={"a": "diagonal"})
    twin = clone(model)
    assert twin.get_params() == model.get_params()
    scores = cross_val_score(model, X, y, cv=KFold(3, shuffle=True, random_state=0))
    assert np.all(scores > 0.2)


@pytest.mark.parametrize("reml", [True, False])
@pytest.mark.parametrize("covariance", ["unstructured", "diagonal"])
def test_one_factor_is_the_blocked_scheme_without_a_rest(reml, covariance):
    """The blocked scheme (`multilevel`) with one factor is the one-factor fast path: the several-
    factor deviance, given a single factor (no Schur complement after it), equals the
    one-factor deviance from the per-group sums at every θ, with the same β and modes —
    its first step is the one-factor kernel (ProfiledDeviance.factor_groups)."""
    from skmixed._kernels.crossprod import grouped_crossprods
    from skmixed._model.lmm import GroupedCrossproducts, ProfiledDeviance

    rng = np.random.default_rng(4)
    n, G = 2000, 37
    g = rng.integers(0, G, n)
    x = rng.normal(size=n)
    w = rng.integers(1, 4, n).astype(float)
    y = 1 + (0.5 + rng.normal(0, 0.4, G)[g]) * x + rng.normal(0, 0.7, G)[g] \
        + rng.normal(size=n)
    term = RandomEffectTerm(("(Intercept)", "x"), covariance)
    X = np.column_stack([np.ones(n), x])
    blocked = MultiProfiledDeviance(
        MultiCrossproducts.from_rows(X, y, w, [FactorColumns(g, G, X, term)]),
        [FactorColumns(g, G, X, term)], reml=reml)
    sums = grouped_crossprods([x], y, w, g.astype(np.int32), G, np.array([0, 1]))
    fast = ProfiledDeviance(GroupedCrossproducts.from_crossprods(
        sums.group_xv, sums.total_vv, np.array([0, 1]), np.array([0, 1])), term, reml=reml)
    for theta in [term.theta_start(), rng.uniform(0.1, 2.0, term.n_theta)]:
        a, b = blocked.evaluate(theta, keep=True), fast.evaluate(theta)
        assert a.deviance == pytest.approx(b.deviance, rel=1e-12)
        np.testing.assert_allclose(a.beta, b.beta, rtol=1e-10)
        (modes_a, cov_a), = blocked.conditional_modes(a)
        modes_b, cov_b = fast.conditional_modes(b)
        np.testing.assert_allclose(modes_a, modes_b, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(cov_a, cov_b, rtol=1e-9, atol=1e-12)


def test_one_interaction_factor_fits_without_lapack_complaints(capfd):
    """One factor given as a list (an interaction, ``[("a", "b")]``) takes the several-
    factor path with nothing after the first factor: its empty Schur complement is not
    handed to LAPACK, which printed "On entry to DPOTRI parameter number 4 had an illegal
    value" at every gradient evaluation."""
    rng = np.random.default_rng(2)
    n = 600
    X = pd.DataFrame({"x": rng.normal(size=n), "a": rng.integers(0, 6, n),
                      "b": rng.integers(0, 5, n)})
    y = X["x"] + rng.normal(0, 0.7, 30)[X["a"] * 5 + X["b"]] + rng.normal(size=n)
    model = MixedLM(groups=[("a", "b")]).fit(X, y)
    captured = capfd.readouterr()
    assert "DPOTRI" not in captured.out + captured.err
    # the same fit as the interaction given as one column (the one-factor path)
    one = MixedLM(groups="a:b").fit(
        X[["x"]].assign(**{"a:b": X["a"].astype(str) + ":" + X["b"].astype(str)}), y)
    assert model.reml_criterion_ == pytest.approx(one.reml_criterion_, rel=1e-9)
    np.testing.assert_allclose(model.theta_, one.theta_, rtol=1e-5)


def test_variance_components_keep_their_column_types(data_file):
    """The names are object columns with None where a row has none (lme4's NA), as before
    the table was built from rows: not a string dtype with NaN."""
    df = pd.read_csv(data_file("Penicillin.csv"))
    vc = MixedLM(groups=["plate", "sample"]).fit(df[["plate", "sample"]],
                                                 df["diameter"]).variance_components_
    assert vc["var1"].dtype == object and vc["var2"].dtype == object
    assert vc["var1"].iloc[-1] is None and vc["var2"].iloc[0] is None
    assert list(vc.columns) == ["group", "var1", "var2", "variance", "sd_cor"]


def test_a_variance_of_zero_reaches_the_boundary():
    """No variance in b: θ_b is exactly 0 (the log-scale search stopped at ~2e-4, the
    criterion 4e-5 above its value at 0), with lme4's singular-fit warning."""
    from skmixed.exceptions import SingularFitWarning

    rng = np.random.default_rng(0)
    n = 3000
    a, b, x = rng.integers(0, 100, n), rng.integers(0, 30, n), rng.normal(size=n)
    y = 0.5 * x + 0.6 * rng.normal(size=100)[a] + rng.normal(size=n)
    df = pd.DataFrame({"a": a, "b": b, "x": x})
    with pytest.warns(SingularFitWarning):
        model = MixedLM(groups=["a", "b"]).fit(df, y)
    assert model.theta_[1] == 0.0 and model.theta_[0] > 0.5


def _nested(seed=9, n=12_000, slope_sd=0.0):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 60, n)
    b = a * 20 + rng.integers(0, 20, n)  # 20 levels of b within each a: purely nested
    x = rng.normal(size=n)
    y = (0.3 * x + rng.normal(0, 0.8, 60)[a] + rng.normal(0, 0.5, 1200)[b]
         + slope_sd * rng.normal(size=60)[a] * x + rng.normal(size=n))
    return pd.DataFrame({"x": x, "a": a, "b": b}), y


def test_nested_factors_take_the_diagonal_rest_path(monkeypatch):
    """Purely nested intercept-only factors: the rest block's Schur complement is diagonal
    (each b meets one a): evaluated by bincounts with the exact gradient — the dense path's
    fit (criterion 1e-10, θ 1e-6, modes and conditional SDs 1e-6)."""
    from skmixed._model import multilevel

    X, y = _nested()
    diagonal = MixedLM(groups=["a", "b"]).fit(X, y)
    monkeypatch.setattr(multilevel, "nested_diagonal_rest", lambda *args: False)
    dense = MixedLM(groups=["a", "b"]).fit(X, y)
    assert diagonal.reml_criterion_ == pytest.approx(dense.reml_criterion_, rel=1e-10)
    np.testing.assert_allclose(diagonal.theta_, dense.theta_, rtol=1e-6)
    np.testing.assert_allclose(diagonal.coef_, dense.coef_, rtol=1e-8)
    np.testing.assert_allclose(diagonal.fixed_effects_["std_error"],
                               dense.fixed_effects_["std_error"], rtol=1e-6)
    re_g = diagonal.random_effects_.set_index(["group", "level"])
    re_d = dense.random_effects_.set_index(["group", "level"])
    np.testing.assert_allclose(re_g["mode"], re_d["mode"], rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(re_g["cond_sd"], re_d["cond_sd"], rtol=1e-6)


def test_nested_slopes_block_diagonal_rest_equals_dense(monkeypatch):
    """Random slopes in the outer factor of two nested ones: the sparse rest block is block
    diagonal (2 × 2 per level of a), factored and inverted blockwise instead of by sparse
    LU — the dense path's fit (criterion 1e-9, θ 1e-4, conditional SDs 1e-4)."""
    from skmixed._model import multilevel

    X, y = _nested(slope_sd=0.4)
    params = dict(groups=["a", "b"], random_slopes={"a": ["x"]})
    dense = MixedLM(**params).fit(X, y)
    monkeypatch.setattr(multilevel, "DENSE_LIMIT", 0)
    monkeypatch.setattr(multilevel, "DENSE_SHARE", 2.0)
    calls = []
    original = multilevel._block_size
    monkeypatch.setattr(multilevel, "_block_size",
                        lambda S: calls.append(original(S)) or calls[-1])
    blocks = MixedLM(**params).fit(X, y)
    assert calls and all(q == 2 for q in calls)
    assert blocks.reml_criterion_ == pytest.approx(dense.reml_criterion_, rel=1e-9)
    np.testing.assert_allclose(blocks.theta_, dense.theta_, rtol=1e-4, atol=1e-6)
    re_b = blocks.random_effects_.set_index(["group", "level", "term"])
    re_d = dense.random_effects_.set_index(["group", "level", "term"])
    np.testing.assert_allclose(re_b["cond_sd"], re_d["cond_sd"], rtol=1e-4)
    np.testing.assert_allclose(re_b["mode"], re_d["mode"], rtol=1e-4, atol=1e-6)


def test_theta_at_the_search_bound_is_not_called_converged():
    """Random-effect SDs 10⁴ times the residual SD: the log-scale search stops at its upper
    bound (θ = e⁸); that is reported as not converged (ConvergenceWarning), not as an
    optimum (a review found it reported converged, the criterion 2,678 above the optimum)."""
    rng = np.random.default_rng(0)
    n = 6000
    a = np.r_[np.arange(400), rng.integers(0, 400, n - 400)]
    b = np.r_[np.arange(150), rng.integers(0, 150, n - 150)]
    x = rng.normal(size=n)
    y = (1 + 0.5 * x + 10 * rng.normal(size=400)[a] + 10 * rng.normal(size=150)[b]
         + 0.001 * rng.normal(size=n))
    with pytest.warns(ConvergenceWarning, match="upper bound"):
        model = MixedLM(groups=["a", "b"], solver="exact").fit(
            pd.DataFrame({"a": a, "b": b, "x": x}), y)
    assert not model.converged_
