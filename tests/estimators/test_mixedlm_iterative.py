"""MixedLM(solver=...) with crossed intercept-only factors: the iterative REML
(skmixed._model.crossed_iterative) as the estimator reports it — chosen by "auto" past
``ITERATIVE_FROM`` rest columns of a crossed design, never for nested ones; equal to
lme4 on Penicillin (exact traces on small systems); within the stated Monte-Carlo error of
the exact fit with random probes; the same from chunks; refused where it does not apply."""

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from skmixed import MixedLM
from skmixed._model import crossed_iterative, multilevel_fit
from skmixed.datasets import make_crossed
from skmixed.exceptions import SingularFitWarning
from skmixed.sources import ChunkedData

CROSSED = ["user", "item", "x"]


@pytest.fixture(scope="module")
def crossed():
    df = make_crossed(20_000, 1_000, 300, random_state=4)
    df.attrs = {}
    return df[CROSSED + ["y"]]


def test_penicillin_against_lme4(data_file, load_reference):
    """7 columns in S: exact traces, so lme4's optimum (θ 1e-5 relative; measured 1e-7,
    the exact path's 2.9e-5 from lme4 is lme4 stopping short), fixed effects 1e-6, SEs and
    σ 1e-4; the criterion is not evaluated."""
    ref = load_reference("lme4_penicillin.json")["reml"]
    df = pd.read_csv(data_file("Penicillin.csv"))
    it = MixedLM(groups=["plate", "sample"], solver="iterative").fit(
        df[["plate", "sample"]], df["diameter"])
    ex = MixedLM(groups=["plate", "sample"], solver="exact").fit(
        df[["plate", "sample"]], df["diameter"])
    assert it.optimization_.optimizer == "ai-reml-pcg"
    assert "exact traces" in it.optimization_.message
    np.testing.assert_allclose(it.theta_, ex.theta_, rtol=1e-5)
    np.testing.assert_allclose(it.theta_, ref["theta"], rtol=1e-4)
    assert it.intercept_ == pytest.approx(ref["fixef"]["(Intercept)"], rel=1e-6)
    assert it.sigma_ == pytest.approx(ref["sigma"], rel=1e-4)
    assert it.fixed_effects_["std_error"].iloc[0] == pytest.approx(
        ref["se"]["(Intercept)"], rel=1e-4)
    assert np.isnan(it.reml_criterion_) and np.isnan(it.aic_)
    assert it.random_effects_["cond_sd"].isna().all()
    np.testing.assert_allclose(it.random_effects_["mode"], ex.random_effects_["mode"],
                               rtol=1e-4, atol=1e-5)
    assert "not evaluated" in it.summary()


def test_auto_is_iterative_past_the_limit_and_close_to_exact(crossed, monkeypatch):
    """Random probes (S has 301 + 2 columns; the exact-trace limit lowered): variance
    components 5e-3, fixed effects 1e-3 of an SE, SEs 1e-3 relative from the exact fit."""
    monkeypatch.setattr(multilevel_fit, "ITERATIVE_FROM", 100)
    monkeypatch.setattr(crossed_iterative, "EXACT_TRACES_UP_TO", 0)
    X, y = crossed[CROSSED], crossed["y"]
    auto = MixedLM(groups=["user", "item"]).fit(X, y)
    exact = MixedLM(groups=["user", "item"], solver="exact").fit(X, y)
    assert auto.optimization_.optimizer == "ai-reml-pcg"
    assert "32 random probes" in auto.optimization_.message and auto.converged_
    assert exact.optimization_.optimizer != "ai-reml-pcg"
    np.testing.assert_allclose(auto.variance_components_["variance"],
                               exact.variance_components_["variance"], rtol=5e-3)
    se = exact.fixed_effects_["std_error"]
    assert np.all(np.abs(auto.fixed_effects_["estimate"] - exact.fixed_effects_["estimate"])
                  < 1e-3 * se)
    np.testing.assert_allclose(auto.fixed_effects_["std_error"], se, rtol=1e-3)
    # predictions with the modes: within 1e-3 of the residual SD
    assert np.max(np.abs(auto.predict(X) - exact.predict(X))) < 1e-3 * exact.sigma_


def test_auto_stays_exact_below_the_limit_and_for_nested_factors(monkeypatch):
    monkeypatch.setattr(multilevel_fit, "ITERATIVE_FROM", 100)
    rng = np.random.default_rng(0)
    n = 6000
    outer = rng.integers(0, 30, n)
    inner = outer * 10 + rng.integers(0, 10, n)  # 300 levels nested in 30
    y = rng.normal(size=30)[outer] + rng.normal(size=300)[inner] + rng.normal(size=n)
    X = pd.DataFrame({"a": outer, "b": inner})
    model = MixedLM(groups=["b", "a"]).fit(X, y)
    assert model.optimization_.optimizer != "ai-reml-pcg"
    small = MixedLM(groups=["user", "item"]).fit(
        *(lambda d: (d[CROSSED], d["y"]))(make_crossed(3000, 200, 50, random_state=1)))
    assert small.optimization_.optimizer != "ai-reml-pcg"


@pytest.mark.parametrize("params, match", [
    (dict(reml=False), "REML"),
    (dict(random_slopes={"user": ["x"]}), "random intercepts only"),
    (dict(groups="user"), "at least two"),
])
def test_iterative_refused_where_it_does_not_apply(crossed, params, match):
    model = MixedLM(**{"groups": ["user", "item"], "solver": "iterative", **params})
    with pytest.raises(ValueError, match=match):
        model.fit(crossed[CROSSED], crossed["y"])


def test_bad_solver_is_an_sklearn_parameter_error(crossed):
    with pytest.raises(ValueError, match="solver"):
        MixedLM(groups=["user", "item"], solver="cg").fit(crossed[CROSSED], crossed["y"])


def test_chunks_and_threads_give_the_same_iterative_fit(crossed, monkeypatch):
    monkeypatch.setattr(crossed_iterative, "EXACT_TRACES_UP_TO", 0)
    X, y = crossed[CROSSED], crossed["y"]
    base = MixedLM(groups=["user", "item"], solver="iterative", n_jobs=1).fit(X, y)
    two = clone(base).set_params(n_jobs=2).fit(X, y)
    np.testing.assert_array_equal(base.theta_, two.theta_)
    np.testing.assert_array_equal(base.coef_, two.coef_)
    parts = [crossed.iloc[i:i + 5000] for i in range(0, len(crossed), 5000)]
    source = ChunkedData(lambda: ((f"chunk {i}", p) for i, p in enumerate(parts)), "y",
                         progress=False)
    chunked = MixedLM(groups=["user", "item"], solver="iterative").fit(source)
    # the same probes; the sums differ in rounding, the probe solves stop at a relative
    # residual of 1e-6: θ 1e-5 relative (measured 3e-6)
    np.testing.assert_allclose(chunked.theta_, base.theta_, rtol=1e-5)
    np.testing.assert_allclose(chunked.coef_, base.coef_, rtol=1e-7)
    assert chunked.intercept_ == pytest.approx(base.intercept_, rel=1e-6, abs=1e-9)
    assert chunked.sigma_ == pytest.approx(base.sigma_, rel=1e-6)


def _boundary_data(item_sd, seed=0, n=20_000):
    rng = np.random.default_rng(seed)
    a, b, x = rng.integers(0, 1000, n), rng.integers(0, 300, n), rng.normal(size=n)
    y = (1 + 0.5 * x + 0.5 * rng.normal(size=1000)[a] + item_sd * rng.normal(size=300)[b]
         + rng.normal(size=n))
    return pd.DataFrame(dict(user=a, item=b, x=x)), y


@pytest.mark.parametrize("item_sd", [0.0, 0.01])
def test_a_variance_at_the_boundary_is_zero_as_exact(item_sd, monkeypatch):
    """No (or nearly no) item variance: the Newton steps push it through 0; it is fixed
    there (it had crashed with exact traces and cycled to 6 % wrong variances at 300,000
    rows): the exact path's boundary fit (θ_item = 0 both; the others within 1e-3)."""
    monkeypatch.setattr(crossed_iterative, "EXACT_TRACES_UP_TO", 0)
    X, y = _boundary_data(item_sd)
    with pytest.warns(SingularFitWarning):
        it = MixedLM(groups=["user", "item"], solver="iterative").fit(X, y)
    with pytest.warns(SingularFitWarning):
        ex = MixedLM(groups=["user", "item"], solver="exact").fit(X, y)
    assert it.converged_ and it.theta_[1] == 0.0 and ex.theta_[1] == 0.0
    np.testing.assert_allclose(it.variance_components_["variance"],
                               ex.variance_components_["variance"], rtol=1e-3)


@pytest.mark.parametrize("response", ["constant", "linear", "exact effects"])
def test_degenerate_responses_are_refused_clearly(response):
    rng = np.random.default_rng(0)
    n = 3000
    a, b, x = rng.integers(0, 100, n), rng.integers(0, 40, n), rng.normal(size=n)
    y = {"constant": np.ones(n), "linear": 1 + 0.5 * x,
         "exact effects": 1 + 0.5 * x + rng.normal(size=100)[a] + rng.normal(size=40)[b]}
    with pytest.raises(ValueError, match="residual variance is zero"):
        MixedLM(groups=["user", "item"], solver="iterative").fit(
            pd.DataFrame(dict(user=a, item=b, x=x)), y[response])


def test_repeated_factor_is_refused_by_iterative_and_exact_under_auto(monkeypatch):
    """A factor given twice (the variances' split is not identified; the Newton steps had
    cycled for 100 steps): solver="iterative" refuses it, "auto" fits it exactly."""
    monkeypatch.setattr(multilevel_fit, "ITERATIVE_FROM", 10)
    rng = np.random.default_rng(0)
    n = 3000
    a, b, x = rng.integers(0, 100, n), rng.integers(0, 40, n), rng.normal(size=n)
    y = 1 + x + rng.normal(size=n) + rng.normal(size=100)[a]
    X = pd.DataFrame(dict(user=a, item=b, x=x, user2=a))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match="same levels on the same rows"):
            MixedLM(groups=["user", "item", "user2"], solver="iterative").fit(X, y)
        auto = MixedLM(groups=["user", "item", "user2"]).fit(X, y)
    assert auto.optimization_.optimizer != "ai-reml-pcg"


def test_auto_is_iterative_for_sparse_crossed_data(monkeypatch):
    """Few rows per user (a sparse users × items table) is still crossed: "auto" fits it
    iteratively (the exact path's sparse LU had not finished in 15 minutes on 100,000
    rows × 20,000 × 5,000); here 6,000 rows × 2,000 × 500 with the limit lowered."""
    monkeypatch.setattr(multilevel_fit, "ITERATIVE_FROM", 100)
    df = make_crossed(6_000, 2_000, 500, random_state=3)
    model = MixedLM(groups=["user", "item"]).fit(df[CROSSED], df["y"])
    assert model.optimization_.optimizer == "ai-reml-pcg"


def test_a_small_third_factor_gets_exact_traces(monkeypatch):
    """Users × items and a 12-level factor (months): its columns and β's get unit probes
    among the random ones, so its variance is the exact fit's (to 1e-4; it was 0.8 % off
    with 32 random probes) and the SEs 1e-3."""
    monkeypatch.setattr(crossed_iterative, "EXACT_TRACES_UP_TO", 0)
    d = make_crossed(20_000, 1_000, 300, random_state=0)
    rng = np.random.default_rng(0)
    month = rng.integers(0, 12, len(d))
    y = d["y"].to_numpy() + 0.3 * rng.normal(size=12)[month]
    X = d[CROSSED].assign(month=month)
    fits = {s: MixedLM(groups=["user", "item", "month"], solver=s).fit(X, y)
            for s in ("iterative", "exact")}
    vc = {s: m.variance_components_.set_index("group")["variance"] for s, m in fits.items()}
    assert vc["iterative"]["month"] == pytest.approx(vc["exact"]["month"], rel=1e-4)
    np.testing.assert_allclose(fits["iterative"].fixed_effects_["std_error"],
                               fits["exact"].fixed_effects_["std_error"], rtol=1e-3)
