"""The parametric bootstrap from sufficient statistics is the bootstrap from rows: the sums
it draws (Z_i'y, X'y, y'y of y* = Xβ̂ + Zb* + ε*) have the distribution of the rows' sums,
so the refitted estimates have the distribution of refits of simulated rows — with random
slopes, a one-row group (a singular Z_i'Z_i), a group-level covariate (X in the span of Z)
and frequency weights (rows repeated). Also the moments of the drawn sums against their
exact values, and Richardson derivatives."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from skmixed import MixedLM
from skmixed._model.profiles import richardson_gradient, richardson_hessian


def _data(seed=5, n_groups=12):
    rng = np.random.default_rng(seed)
    sizes = rng.integers(2, 9, n_groups)
    sizes[0] = 1  # a one-row group: Z_i'Z_i of (1, x) is singular
    g = np.repeat(np.arange(n_groups), sizes)
    n = g.size
    x = rng.normal(size=n)
    b = rng.normal(size=n_groups)[g]  # a group-level covariate
    b0 = rng.normal(0, 0.8, n_groups)[g]
    b1 = rng.normal(0, 0.4, n_groups)[g]
    y = 1.0 + 0.5 * x + 0.3 * b + b0 + b1 * x + rng.normal(0, 0.7, n)
    w = rng.integers(1, 4, n).astype(float)
    return pd.DataFrame({"g": g, "x": x, "b": b, "y": y}), w


def _row_bootstrap(model, X, w, n_boot, seed):
    """Rows repeated by their weights, responses simulated from the fitted model, refits
    without weights (each copy its own noise, as the sums' bootstrap draws)."""
    rep = np.repeat(np.arange(len(X)), w.astype(int))
    Xr = X.iloc[rep].reset_index(drop=True)
    ys = model.simulate(Xr, n_boot, random_state=seed)
    out = []
    for k in range(n_boot):
        m = MixedLM(groups="g", random_slopes=["x"]).fit(Xr, ys[:, k])
        vc = m.variance_components_
        out.append([m.sigma_, vc["sd_cor"].iloc[0], vc["sd_cor"].iloc[1], *m.coef_,
                    m.intercept_])
    return np.array(out)


@pytest.mark.filterwarnings("ignore::skmixed.SingularFitWarning")
def test_bootstrap_from_sums_has_the_distribution_of_row_refits():
    df, w = _data()
    X = df[["g", "x", "b"]]
    model = MixedLM(groups="g", random_slopes=["x"]).fit(X, df["y"], sample_weight=w)
    n_boot = 300
    boot = model.bootstrap(n_boot, random_state=1, progress=False).replicates
    ours = boot[["sigma", "sd_(Intercept)|g", "sd_x|g", "x", "b", "(Intercept)"]].to_numpy()
    rows = _row_bootstrap(model, X, w, n_boot, seed=2)
    for k in range(ours.shape[1]):
        assert stats.ks_2samp(ours[:, k], rows[:, k]).pvalue > 1e-3, k
        # means within 4.5 standard errors of their difference
        se = np.sqrt((ours[:, k].var() + rows[:, k].var()) / n_boot)
        assert abs(ours[:, k].mean() - rows[:, k].mean()) < 4.5 * se


def test_drawn_sums_have_their_exact_moments():
    """E(Z_i'y*) = D_iβ, E(X'y*) = X'Xβ and Cov(X'y*) = X'(σ²I + ZΣZ')X = σ²X'X + Σ_i
    D_i'ΣD_i, on the internal statistics."""
    df, w = _data(seed=7)
    model = MixedLM(groups="g", random_slopes=["x"]).fit(df[["g", "x", "b"]], df["y"],
                                                         sample_weight=w)
    inf = model._inference
    plan = inf.bootstrap_plan()
    rng = np.random.default_rng(0)
    draws = [inf.simulated_stats(plan, rng) for _ in range(20000)]
    st = inf.stats
    beta, sigma, T = plan["beta"], plan["sigma"], plan["T"]
    Sigma = sigma ** 2 * T @ T.T
    Xty = np.array([d.Xty for d in draws])
    cov_exact = sigma ** 2 * st.XtX + np.einsum("gqp,qr,grk->pk", st.D, Sigma, st.D)
    mean_se = np.sqrt(np.diag(cov_exact) / len(draws))
    assert np.all(np.abs(Xty.mean(axis=0) - st.XtX @ beta) < 4.5 * mean_se)
    np.testing.assert_allclose(np.cov(Xty.T), cov_exact, rtol=0.06,
                               atol=0.06 * np.sqrt(np.outer(np.diag(cov_exact),
                                                            np.diag(cov_exact))).max())
    e = np.array([d.e for d in draws])
    np.testing.assert_allclose(e.mean(axis=0), np.einsum("gqp,p->gq", st.D, beta),
                               atol=4.5 * np.sqrt(e.var(axis=0).max() / len(draws)))
    # y'y: E = β'X'Xβ + tr(Σ Σ_i C_i) + σ² n
    yty = np.array([d.yty for d in draws])
    expect = beta @ st.XtX @ beta + np.einsum("qr,grq->", Sigma, st.C) + sigma ** 2 * st.n
    assert abs(yty.mean() - expect) < 4.5 * yty.std() / np.sqrt(len(draws))


def test_richardson_derivatives_are_exact_for_smooth_functions():
    def f(x):
        return np.exp(x[0]) * np.sin(x[1]) + x[0] ** 3 * x[1]

    x = np.array([0.3, 1.1])
    g = np.array([np.exp(x[0]) * np.sin(x[1]) + 3 * x[0] ** 2 * x[1],
                  np.exp(x[0]) * np.cos(x[1]) + x[0] ** 3])
    H = np.array([[np.exp(x[0]) * np.sin(x[1]) + 6 * x[0] * x[1],
                   np.exp(x[0]) * np.cos(x[1]) + 3 * x[0] ** 2],
                  [0.0, -np.exp(x[0]) * np.sin(x[1])]])
    H[1, 0] = H[0, 1]
    np.testing.assert_allclose(richardson_gradient(f, x), g, rtol=1e-10)
    np.testing.assert_allclose(richardson_hessian(f, x), H, rtol=1e-8)
