"""Models the data cannot identify (skmixed._model.identifiability):

* Gaussian models with a grouping factor of as many levels as observations, or a term with
  as many random effects, are refused with lme4's reasons (lmer's check.nobs.vs.nlev and
  check.nobs.vs.nRE) — MixedLM with one and several factors, in memory, chunked and on
  Dask, and AdditiveMixed's Gaussian family; observations are the sum of the frequency
  weights. GLMMs keep observation-level factors (glmer ignores both checks);
* two grouping factors with the same partition of the rows warn (IdentifiabilityWarning)
  and MixedGLM fits them once, the variance split equally;
* AdditiveMixed refuses a y that its fixed part fits exactly (constant y), and a binomial
  y of one class or a Poisson y of zeros, as MixedLM and MixedGLM do.
"""

import warnings

import numpy as np
import pytest

from skmixed import AdditiveMixed, IdentifiabilityWarning, MixedGLM, MixedLM
from skmixed.datasets import make_multilevel
from skmixed.sources import from_chunks

NLEV = "number of levels of each grouping factor must be < number of observations"
NRE = r"number of observations \(=450\) <= number of random effects \(=600"
EXACT = "y is fitted exactly by the fixed effects"
COLS = ["g", "x", "b"]


@pytest.fixture(scope="module")
def one_row():
    """300 rows, one per group."""
    return make_multilevel(300, 300, random_state=0)


@pytest.fixture(scope="module")
def grouped():
    """600 rows in 30 groups; g2 a relabelled copy of g; h crossed with g."""
    df = make_multilevel(600, 30, random_state=1)
    return df.assign(g2=df["g"].cat.codes.astype(np.int64) * 7 + 3,
                     h=np.arange(len(df)) % 13)


# ------------------------------------------------- a level per observation (Gaussian)


def test_mixedlm_refuses_a_level_per_row(one_row):
    """MixedLM split y's variance equally between g and the residual (0.59 / 0.59)."""
    match = NLEV + r" \(problems: 'g' has 300 levels, for 300 observations\)"
    with pytest.raises(ValueError, match=match):
        MixedLM(groups="g").fit(one_row[COLS], one_row["y"])
    arr = np.column_stack([one_row["g"].cat.codes, one_row["x"], one_row["b"]])
    with pytest.raises(ValueError, match=r"'0' has 300 levels"):
        MixedLM(groups=0).fit(arr.astype(float), one_row["y"].to_numpy())
    # the same through the chunked row pass
    frame = one_row[COLS + ["y"]]
    with pytest.raises(ValueError, match=match):
        MixedLM(groups="g").fit(from_chunks([frame.iloc[:100], frame.iloc[100:]], "y",
                                            progress=False))


def test_a_refused_fit_changes_nothing(one_row, grouped):
    model = MixedLM(groups="g").fit(grouped[COLS], grouped["y"])
    theta = model.theta_.copy()
    with pytest.raises(ValueError, match=NLEV):
        model.fit(one_row[COLS], one_row["y"])
    np.testing.assert_array_equal(model.theta_, theta)
    assert model.n_groups_ == 30


def test_mixedlm_on_dask_refuses_a_level_per_row(one_row):
    import dask.dataframe as dd  # of the test extra: a missing Dask fails, never skips
    ddf = dd.from_pandas(one_row[COLS + ["y"]], npartitions=3)
    with pytest.raises(ValueError, match=NLEV + r" \(problems: 'g' has 300 levels"):
        MixedLM(groups="g").fit(ddf[COLS], ddf["y"])


def test_mixedlm_refuses_more_random_effects_than_rows():
    """450 rows, 300 groups: (1 + x | g) has 600 random effects. lme4's (1 + x || g) is
    two terms of 300 each, which lmer fits."""
    df = make_multilevel(450, 300, random_state=2)
    with pytest.raises(ValueError, match=NRE + r": 300 levels x 2 columns\) for term "
                                             r"\(1 \+ x \| g\)"):
        MixedLM(groups="g", random_slopes=["x"]).fit(df[COLS], df["y"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a boundary fit, likely, on these few rows
        MixedLM(groups="g", random_slopes=["x"], covariance="diagonal").fit(df[COLS],
                                                                           df["y"])


def test_several_factors_with_an_observation_level_factor(grouped):
    """A row-id factor next to g took the residual variance to 0 (σ² 4e-7)."""
    X = grouped[COLS].assign(obs=np.arange(len(grouped)))
    with pytest.raises(ValueError, match=NLEV + r" \(problems: 'obs' has 600 levels, for "
                                                r"600 observations\)"):
        MixedLM(groups=["g", "obs"]).fit(X, grouped["y"])


def test_observations_are_the_sum_of_the_weights():
    """Frequency weights count rows: two rows per group with weight 1/2 each are one
    observation per group, as zero weights are absent rows."""
    df = make_multilevel(600, 300, random_state=3)
    with pytest.raises(ValueError, match=r"'g' has 300 levels, for 300 observations \(the "
                                         r"sum of sample_weight"):
        MixedLM(groups="g").fit(df[COLS], df["y"], sample_weight=np.full(600, 0.5))
    first = (np.arange(600) % 2 == 0).astype(float)  # rows in group order, 2 per group
    with pytest.raises(ValueError, match=r"'g' has 300 levels, for 300 observations"):
        MixedLM(groups="g").fit(df[COLS], df["y"], sample_weight=first)
    with pytest.raises(ValueError, match=r"'g' has 300 levels, for 300 observations"):
        MixedLM(groups=["g", "h"]).fit(df[COLS].assign(h=np.arange(600) % 7), df["y"],
                                       sample_weight=first)


@pytest.mark.parametrize("params", [dict(groups="g"), dict(groups="g", smooths=["z"]),
                                    dict(groups="g", discrete=True),
                                    dict(groups="g", random_slopes=["x"])])
def test_additive_mixed_gaussian_refuses_a_level_per_row(one_row, params):
    """s(g, bs = "re") with a level per row reported σ = 0.00025 (exact fit) or split the
    variance; refused as MixedLM refuses it."""
    with pytest.raises(ValueError, match=NLEV + r" \(problems: 'g' has 300 levels"):
        AdditiveMixed(**params).fit(one_row[COLS + ["z"]], one_row["y"])


def test_additive_mixed_chunked_refuses_a_level_per_row(one_row):
    frame = one_row[COLS + ["z", "y"]]
    with pytest.raises(ValueError, match=NLEV + r" \(problems: 'g' has 300 levels"):
        AdditiveMixed(groups="g", smooths=["z"]).fit(
            from_chunks([frame.iloc[:150], frame.iloc[150:]], "y", progress=False))


def test_glmms_keep_observation_level_factors(one_row, grouped):
    """glmer ignores both checks: an observation-level random effect is an overdispersion
    term (binomial, Poisson; Gamma's too, identified by the distribution's shape)."""
    rng = np.random.default_rng(0)
    counts = rng.poisson(np.exp(0.5 + one_row["x"].to_numpy()))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # boundary fits are fine here
        MixedGLM(groups="g", family="poisson").fit(one_row[COLS], counts)
        MixedGLM(groups="g", family="gamma").fit(one_row[COLS], np.exp(one_row["y"]))
        AdditiveMixed(groups="g", family="poisson").fit(one_row[COLS], counts)
        X = grouped[COLS].assign(obs=np.arange(len(grouped)))
        MixedGLM(groups=["g", "obs"]).fit(X.iloc[:240], grouped["y_bin"].iloc[:240])


# ------------------------------------------------------------ identical grouping factors


def test_identical_factors_warn(grouped):
    """The variance was split equally without a word."""
    X = grouped[["g", "g2", "x", "b"]]
    with pytest.warns(IdentifiabilityWarning,
                      match="'g' and 'g2' split the rows into the same 30 groups"):
        model = MixedLM(groups=["g", "g2"]).fit(X, grouped["y"])
    vc = model.variance_components_.set_index("group")["variance"]
    single = MixedLM(groups="g").fit(grouped[COLS], grouped["y"])
    np.testing.assert_allclose(vc["g"] + vc["g2"],
                               single.variance_components_["variance"].iloc[0], rtol=1e-4)


@pytest.mark.filterwarnings("ignore::skmixed.SingularFitWarning")  # a's variance: none
def test_a_factor_equal_to_an_interaction_warns(grouped):
    """g:b is g again (b is constant within g), as b:a is b when b's labels are unique
    across a; a is a coarser factor and does not warn."""
    X = grouped[["g", "b", "x"]].assign(a=grouped["g"].cat.codes // 10)
    with pytest.warns(IdentifiabilityWarning) as record:
        MixedLM(groups=["a", "g", ("g", "b")]).fit(X, grouped["y"])
    messages = [str(w.message) for w in record if w.category is IdentifiabilityWarning]
    assert len(messages) == 1 and "'g' and 'g:b' split" in messages[0]


def test_distinct_factors_do_not_warn(grouped):
    with warnings.catch_warnings():
        warnings.simplefilter("error", IdentifiabilityWarning)
        MixedLM(groups=["g", "h"]).fit(grouped[COLS + ["h"]], grouped["y"])


@pytest.mark.parametrize("family, target", [("binomial", "y_bin"), ("poisson", "y_count")])
def test_mixedglm_fits_identical_factors_once(grouped, family, target):
    """MixedGLM searched the flat ridge with a twice larger random-effect system (78 s
    instead of 0.3 s on the study's data): it now fits g once and splits its variance
    equally, as lme4's symmetric fit does — the criterion, β and predictions are the
    single-factor fit's."""
    df = grouped.assign(y_count=np.random.default_rng(1).poisson(
        np.exp(0.3 * grouped["x"] + grouped["g"].cat.codes % 3 * 0.2)))
    X = df[["g", "g2", "x", "b"]]
    with pytest.warns(IdentifiabilityWarning, match="'g' and 'g2'.*fitted as one factor"):
        model = MixedGLM(groups=["g", "g2"], family=family).fit(X, df[target])
    single = MixedGLM(groups="g", family=family).fit(df[COLS], df[target])
    np.testing.assert_allclose(model.loglik_, single.loglik_, rtol=1e-12)
    np.testing.assert_allclose(model.coef_, single.coef_, rtol=1e-12)
    np.testing.assert_allclose(model.theta_, np.repeat(single.theta_ / np.sqrt(2), 2),
                               rtol=1e-12)
    method = "predict_proba" if family == "binomial" else "predict"
    np.testing.assert_allclose(getattr(model, method)(X), getattr(single, method)(df[COLS]),
                               rtol=1e-12)
    re = model.random_effects_.set_index(["group", "level"])["mode"]
    g2_of_g = dict(zip(df["g"], df["g2"]))
    halves = np.array([re["g2", g2_of_g[lv]] for lv in single.group_levels_])
    np.testing.assert_allclose(re["g"].to_numpy(), halves, rtol=1e-12)
    np.testing.assert_allclose(2 * halves, single.random_effects_matrix_[:, 0], rtol=1e-12)
    # Var(b_1 | y) = Var(b | y)/4 + σ²/4 for b = b_1 + b_2, b_k ~ N(0, σ²/2)
    sd = model.random_effects_.set_index(["group", "level"])["cond_sd"]["g"].to_numpy()
    np.testing.assert_allclose(sd ** 2, single.random_effects_["cond_sd"] ** 2 / 4
                               + single.theta_[0] ** 2 / 4, rtol=1e-10)


def test_mixedglm_identical_factors_with_other_terms_warn(grouped):
    """Copies with different terms (a slope on one) are fitted as given, with the
    warning."""
    df = grouped.iloc[:300]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # boundary, convergence
        warnings.simplefilter("always", IdentifiabilityWarning)
        with pytest.warns(IdentifiabilityWarning, match="'g' and 'g2'") as record:
            model = MixedGLM(groups=["g", "g2"], random_slopes={"g": ["x"]}).fit(
                df[["g", "g2", "x", "b"]], df["y_bin"])
    assert not any("fitted as one factor" in str(w.message) for w in record)
    assert model.theta_.shape == (4,)


# -------------------------------------------------------- AdditiveMixed: y fitted exactly


@pytest.mark.parametrize("params", [dict(groups="g"), dict(groups="g", smooths=["z"]),
                                    dict(groups="g", smooths=["z"], discrete=True),
                                    dict(smooths=["z"])])
@pytest.mark.parametrize("y_of", [lambda d: np.full(len(d), 3.0),
                                  lambda d: 1.0 + 0.5 * d["x"]],
                         ids=["constant", "linear"])
def test_additive_mixed_refuses_a_y_its_fixed_part_fits(params, y_of):
    """A constant y fitted (σ = 1e-8, a smooth of edf 6.4) or died with a raw
    ZeroDivisionError; MixedLM refuses it with this message."""
    df = make_multilevel(2000, 50, random_state=0)
    X = df[["x", "b", "z"] + (["g"] if "groups" in params else [])]
    with pytest.raises(ValueError, match=EXACT):
        AdditiveMixed(**params).fit(X, y_of(df))


def test_additive_mixed_chunked_refuses_a_constant_y():
    df = make_multilevel(2000, 50, random_state=0)[["g", "x", "z"]].assign(y=2.0)
    with pytest.raises(ValueError, match=EXACT):
        AdditiveMixed(groups="g", smooths=["z"]).fit(
            from_chunks([df.iloc[:1000], df.iloc[1000:]], "y", progress=False,
                        ranges={"z": (0.0, 1.0)}))


def test_a_linear_model_alone_may_fit_y_exactly():
    """Without smooths or groups there is no variance parameter to lose: OLS with σ = 0."""
    df = make_multilevel(200, 10, random_state=0)
    model = AdditiveMixed().fit(df[["x", "b"]], 1.0 + 0.5 * df["x"])
    np.testing.assert_allclose(model.coef_, [0.5, 0.0], atol=1e-10)


@pytest.mark.parametrize("family, value, match", [
    ("binomial", 0, r"y has only failures \(y = 0\) among the rows"),
    ("binomial", 1, r"y has only successes \(y = 1\) among the rows"),
    ("poisson", 0, "y has only zero counts among the rows")])
@pytest.mark.parametrize("discrete", [False, True])
def test_additive_mixed_refuses_a_y_at_the_boundary(family, value, match, discrete):
    """The maximum-likelihood mean is 0 or 1: refused before the fit (it used to end in
    "fitted means numerically at the boundary"), as MixedGLM refuses it."""
    df = make_multilevel(600, 30, random_state=0)
    y = np.full(len(df), value)
    with pytest.raises(ValueError, match=match):
        AdditiveMixed(groups="g", family=family, discrete=discrete).fit(df[COLS], y)
    # the only other values in rows of weight 0 do not count
    y[:5] = 1 - value if family == "binomial" else 3
    w = np.r_[np.zeros(5), np.ones(len(df) - 5)]
    with pytest.raises(ValueError, match=match + " with positive sample_weight"):
        AdditiveMixed(groups="g", family=family, discrete=discrete).fit(df[COLS], y,
                                                                        sample_weight=w)
