"""simulate, residuals, predict(return_std=True), predict_interval and the diagnostic
plots: simulated responses have the model's moments and are reproducible; prediction
intervals cover new observations at their level; residuals follow lme4's conventions
(checked against lme4 in test_inference_lme4.py); every plot draws."""

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from skmixed import MixedGLM, MixedLM, plots  # noqa: E402
from skmixed.datasets import make_multilevel  # noqa: E402


@pytest.fixture(scope="module")
def lmm_data():
    df = make_multilevel(20_000, 100, random_state=11)
    X = df[["g", "x", "b"]]
    return MixedLM(groups="g").fit(X, df["y"]), X, df


@pytest.fixture(scope="module")
def glmm_data():
    df = make_multilevel(6_000, 60, random_state=12)
    X = df[["g", "x", "b"]]
    return MixedGLM(family="binomial", groups="g").fit(X, df["y_bin"]), X, df


def test_simulate_is_reproducible_and_has_the_model_moments(lmm_data):
    m, X, _ = lmm_data
    rows = X.iloc[:2000]
    a = m.simulate(rows, 3, random_state=4)
    b = m.simulate(rows, 3, random_state=4)
    assert a.shape == (2000, 3)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, m.simulate(rows, 3, random_state=5))
    # "conditional": centred on predict (the modes); "new": on the population mean,
    # variance σ² + σ_g² in both cases' scatter around their centre
    n = 400
    sims = m.simulate(rows.iloc[:50], n, random_effects="conditional", random_state=1)
    centre = m.predict(rows.iloc[:50])
    assert np.abs(sims.mean(axis=1) - centre).max() < 5 * m.sigma_ / np.sqrt(n)
    sims_new = m.simulate(rows.iloc[:50], n, random_state=2)
    sd_g = m.variance_components_["sd_cor"].iloc[0]
    total = np.sqrt(sd_g ** 2 + m.sigma_ ** 2)
    # every row of one group shares a draw: the rows' means scatter by σ_g/√1 around Xβ
    dev = sims_new - m.predict(rows.iloc[:50], random_effects=False)[:, None]
    assert dev.std() == pytest.approx(total, rel=0.05)
    none = m.simulate(rows.iloc[:50], n, random_effects="none", random_state=3)
    assert (none - m.predict(rows.iloc[:50], random_effects=False)[:, None]).std() \
        == pytest.approx(m.sigma_, rel=0.05)


def test_simulate_new_groups_and_bad_arguments(lmm_data):
    m, X, _ = lmm_data
    new = X.iloc[:10].assign(g=np.arange(10) + 10_000)  # groups unseen in fit
    assert m.simulate(new, 2, random_effects="conditional", random_state=0).shape == (10, 2)
    with pytest.raises(ValueError, match="random_effects='modes'"):
        m.simulate(X.iloc[:5], random_effects="modes")
    with pytest.raises(ValueError, match="n_sims=0"):
        m.simulate(X.iloc[:5], 0)
    with pytest.raises(ValueError, match="legacy RandomState"):
        m.simulate(X.iloc[:5], random_state=np.random.RandomState(0))


def test_prediction_intervals_cover_new_observations(lmm_data):
    """New rows from the same simulation (same groups and truth): 95 % intervals for the
    rows' own groups, and population-level ones (a new group) for rows of unseen groups,
    cover new responses at 95 % ± 4.5 binomial standard errors."""
    m, X, df = lmm_data
    new = make_multilevel(20_000, 100, random_state=11)  # the same groups' effects
    fresh = make_multilevel(20_000, 100, random_state=99).assign(
        g=lambda d: d["g"].astype("int64") + 10_000)  # other groups
    for rows, y, re in ((new[["g", "x", "b"]], new["y"], True),
                        (fresh[["g", "x", "b"]], fresh["y"], False)):
        pi = m.predict_interval(rows, 0.95, random_effects=re)
        covered = ((y >= pi["lower"]) & (y <= pi["upper"])).mean()
        assert abs(covered - 0.95) < 4.5 * np.sqrt(0.95 * 0.05 / len(y))
    ci = m.predict_interval(X.iloc[:5], kind="confidence", random_effects=False)
    pred, std = m.predict(X.iloc[:5], random_effects=False, return_std=True)
    np.testing.assert_allclose(ci["fit"], pred)
    np.testing.assert_allclose(ci["upper"] - ci["fit"], 1.959963984540054 * std)
    with pytest.raises(ValueError, match="kind='new'"):
        m.predict_interval(X.iloc[:5], kind="new")


def test_lmm_residuals(lmm_data):
    m, X, df = lmm_data
    r = m.residuals(X, df["y"])
    np.testing.assert_allclose(r, df["y"] - m.predict(X))
    np.testing.assert_allclose(m.residuals(X, df["y"], scaled=True), r / m.sigma_)
    np.testing.assert_allclose(m.residuals(X, df["y"], random_effects=False),
                               df["y"] - m.predict(X, random_effects=False))
    with pytest.raises(ValueError, match="type='studentized'"):
        m.residuals(X, df["y"], type="studentized")


def test_glmm_simulate_residuals_and_intervals(glmm_data):
    g, X, df = glmm_data
    sims = g.simulate(X, 4, random_state=0)
    assert set(np.unique(sims)) <= {0.0, 1.0}
    # the deviance residuals' squares sum to the conditional deviance −2 Σ ℓ(y; μ̂)
    mu = g.predict_proba(X)[:, 1]
    y = df["y_bin"].to_numpy().astype(float)
    d = g.residuals(X, df["y_bin"])
    np.testing.assert_allclose((d ** 2).sum(),
                               -2 * np.sum(y * np.log(mu) + (1 - y) * np.log(1 - mu)))
    p = g.residuals(X, df["y_bin"], type="pearson")
    np.testing.assert_allclose(p, (y - mu) / np.sqrt(mu * (1 - mu)))
    ci = g.predict_interval(X.iloc[:20])
    assert ((ci["lower"] < ci["fit"]) & (ci["fit"] < ci["upper"])).all()
    assert ((ci["lower"] > 0) & (ci["upper"] < 1)).all()
    with pytest.raises(ValueError, match="labels not seen"):
        g.residuals(X.iloc[:3], ["a", "b", "c"])


def test_glmm_simulate_counts_with_trials(data_file):
    d = pd.read_csv(data_file("cbpp.csv"))
    X = d[["herd", "size"]]
    g = MixedGLM(family="binomial", groups="herd", trials="size").fit(X, d["incidence"])
    sims = g.simulate(X, 50, random_state=1)
    assert (sims >= 0).all() and (sims <= d["size"].to_numpy()[:, None]).all()
    assert np.allclose(sims, np.round(sims))


def assert_readable(axes):
    """Every panel has axis labels and a title; the first panel's legend names the
    reference lines (the others share it)."""
    axes = np.ravel(axes)
    for ax in axes:
        assert ax.get_xlabel() and ax.get_ylabel() and ax.get_title(), (
            ax.get_xlabel(), ax.get_ylabel(), ax.get_title())
    legend = axes[0].get_legend()
    assert legend is not None and all(t.get_text() for t in legend.get_texts())
    assert len(legend.get_texts()) >= 2  # the data and at least one reference line


def test_every_plot_draws(lmm_data, glmm_data):
    import matplotlib.pyplot as plt
    m, X, df = lmm_data
    assert_readable(plots.plot_residuals(m, X.iloc[:500], df["y"].iloc[:500]))
    assert_readable(plots.plot_qq(m))
    assert_readable(plots.plot_caterpillar(m, "g"))
    profile = plots.plot_profile(m.profile(n_points=5))
    assert len(profile) == 5  # sd, sigma and three coefficients; no spare panels
    assert len(profile[0].figure.axes) == 5
    assert_readable(profile)
    boot = m.bootstrap(20, random_state=0, progress=False)
    bootstrap = plots.plot_bootstrap(boot)
    assert len(bootstrap) >= 4
    assert_readable(bootstrap)
    assert bootstrap[0].figure.get_suptitle().startswith("Parametric bootstrap")
    g, Xg, dg = glmm_data
    residuals = plots.plot_residuals(g, Xg, dg["y_bin"])
    assert_readable(residuals)
    assert "Pearson" in residuals.get_ylabel()
    with pytest.raises(ValueError, match="no random effect 'x'"):
        plots.plot_qq(m, term="x")
    plt.close("all")
