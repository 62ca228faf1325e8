"""AdditiveMixed with more families against mgcv (tests/reference/mgcv_families.R → .json;
the data tests/data/gamsim1_gamma.csv written by it): Gamma with log link, fitted as bam's
performance iteration (Fisher scoring; each working model's REML estimates the
dispersion), binned and not."""

import numpy as np
import pandas as pd
import pytest

from skmixed import AdditiveMixed

COLUMNS = ["x0", "x1", "x2", "fac"]


def _gamsim(data_file, name):
    """A CSV of mgcv_families.R: gamsim1's covariates, its groups as a category, a y."""
    df = pd.read_csv(data_file(name))
    df["fac"] = df["fac"].astype("category")
    return df


def _fit_against_bam(data, ref, family, target, discrete, **params):
    """The fit of ``target ~ s(x0) + s(x1) + s(x2) + s(fac, bs = "re")`` and the checks
    every family shares against bam's ``ref``: converged by iteration, edf 1e-5, the SD of
    fac 1e-5, fitted values (binned: 1e-2 RMS — bam's are at the binned covariates, ours at
    the rows'; exact: 1e-5, and the intercept). Returns the model and its SDs by group."""
    model = AdditiveMixed(smooths=["x0", "x1", "x2"], groups="fac", family=family,
                          discrete=discrete, **params).fit(data[COLUMNS], data[target])
    assert model.converged_ and model.n_iter_ >= 2
    edf = list(ref["edf"].values())
    np.testing.assert_allclose(model.smooths_["edf"], edf[:3], rtol=1e-5)
    sds = {row["_row"]: row["std.dev"] for row in ref["vcomp_sd"]}
    vc = model.variance_components_.set_index("group")["sd"]
    np.testing.assert_allclose(vc["fac"], sds["s(fac)"], rtol=1e-5)
    head = np.asarray(ref["fitted_head"])
    fitted = model.predict(data[COLUMNS].iloc[:head.size])
    if discrete:
        assert np.sqrt(np.mean((fitted - head) ** 2) / np.mean(head ** 2)) < 1e-2
    else:
        np.testing.assert_allclose(fitted, head, rtol=1e-5)
        np.testing.assert_allclose(model.intercept_, ref["coef_parametric"]["(Intercept)"],
                                   rtol=1e-5)
    return model, vc, sds


@pytest.fixture(scope="module")
def gamma_data(data_file):
    return _gamsim(data_file, "gamsim1_gamma.csv")


# measured (2026-12-04): edf ≤ 1.6e-7 relative, SDs of fac and of the scale ≤ 7e-8, fitted
# means of the exact fit ≤ 2.5e-7 and its intercept 7e-8 (binned: bam's intercept and
# fitted values are at its binned covariates, ours at the rows')
@pytest.mark.parametrize("discrete, entry", [(True, "bam_gamma_disc"), (False, "bam_gamma")])
def test_gamma_against_bam(gamma_data, load_reference, discrete, entry):
    ref = load_reference("mgcv_families.json")[entry]
    _, vc, sds = _fit_against_bam(gamma_data, ref, "gamma", "yg", discrete)
    np.testing.assert_allclose(vc["Residual"], sds["scale"], rtol=1e-5)
    np.testing.assert_allclose(vc["Residual"] ** 2, ref["scale"], rtol=1e-5)


def test_gamma_smooth_tests_against_bam(gamma_data, load_reference):
    """Wood's smooth tests of the exact fit: F statistics on the estimated scale (measured:
    s(x0) 1e-8, s(x1) 7e-5; s(x2) 0.27 % below bam's 301.65 — not explained yet)."""
    ref = load_reference("mgcv_families.json")["bam_gamma"]["s_table"]
    model = AdditiveMixed(smooths=["x0", "x1", "x2"], groups="fac", family="gamma",
                          discrete=False).fit(gamma_data[COLUMNS], gamma_data["yg"])
    F = model.smooths_["statistic"].to_numpy()
    np.testing.assert_allclose(F[:2], [row["F"] for row in ref[:2]], rtol=1e-4)
    np.testing.assert_allclose(F[2], ref[2]["F"], rtol=5e-3)
    assert "Family: Gamma" in model.summary() and "exact (bam)" in model.summary()


def test_gamma_response_must_be_positive(gamma_data):
    y = gamma_data["yg"].to_numpy().copy()
    y[7] = 0.0
    model = AdditiveMixed(smooths=["x0"], family="gamma")
    with pytest.raises(ValueError, match="Gamma y must be positive; row 7"):
        model.fit(gamma_data[["x0"]], y)
    assert not hasattr(model, "coef_")


def test_gamma_recovers_a_simulated_dispersion():
    """Shape 4 (dispersion 0.25), a known smooth and group SD 0.3 on 20,000 rows: the
    estimates within a few standard errors of the truth."""
    rng = np.random.default_rng(7)
    n, G = 20_000, 100
    g = rng.integers(0, G, n)
    z = rng.uniform(size=n)
    x = rng.normal(size=n)
    eta = 0.5 + 0.3 * x + np.sin(2 * np.pi * z) + rng.normal(scale=0.3, size=G)[g]
    y = rng.gamma(4.0, np.exp(eta) / 4.0)
    X = pd.DataFrame({"x": x, "z": z, "g": pd.Categorical(g)})
    model = AdditiveMixed(smooths=["z"], groups="g", family="gamma").fit(X, y)
    vc = model.variance_components_.set_index("group")["sd"]
    assert abs(vc["Residual"] ** 2 - 0.25) < 0.01
    assert abs(vc["g"] - 0.3) < 0.06
    assert abs(model.coef_[0] - 0.3) < 4 * model.fixed_effects_["std_error"]["x"]


# ----------------------------------------------------------------------- negative binomial
@pytest.fixture(scope="module")
def nb_data(data_file):
    return _gamsim(data_file, "gamsim1_nb.csv")


# measured (2026-12-04): edf ≤ 1.3e-7 relative, the SD of fac ≤ 1.5e-7, the size k ≤ 1.2e-8;
# the exact fit's fitted means 3.4e-8 and intercept 1.4e-9. bam's discrete method takes
# Newton (observed-information) steps for nb(), its exact one Fisher scoring: with the other
# weights the edf differ by 1.6e-3 (the same fixed point of η, other smoothing parameters)
@pytest.mark.parametrize("discrete, entry", [(True, "bam_nb_disc"), (False, "bam_nb")])
def test_negative_binomial_against_bam(nb_data, load_reference, discrete, entry):
    ref = load_reference("mgcv_families.json")[entry]
    model, vc, _ = _fit_against_bam(nb_data, ref, "nbinom2", "ynb", discrete)
    np.testing.assert_allclose(model.dispersion_, ref["theta"], rtol=1e-5)
    assert "Residual" not in vc.index and model.sigma_ == 1.0
    # bam marks nb()'s scale as estimated and prints F = χ²/Ref.df; ours is χ² (known scale
    # 1, as gam prints it). Measured: within 0.98 % of bam's (as Gamma's s(x2), not
    # explained yet: an open gap, not a tolerance of the method)
    F = [row["F"] for row in ref["s_table"][:3]]
    np.testing.assert_allclose(model.smooths_["statistic"] / model.smooths_["ref_df"], F,
                               rtol=1.5e-2)
    assert "Family: Negative Binomial(1.371)" in model.summary()


def test_negative_binomial_recovers_a_simulated_size():
    """Size 1.5, a known smooth and group SD 0.3 on 20,000 rows: k within 10 %, the slope
    within 4 standard errors."""
    rng = np.random.default_rng(11)
    n, G = 20_000, 100
    g = rng.integers(0, G, n)
    z = rng.uniform(size=n)
    x = rng.normal(size=n)
    mu = np.exp(0.5 + 0.3 * x + np.sin(2 * np.pi * z) + rng.normal(scale=0.3, size=G)[g])
    y = rng.negative_binomial(1.5, 1.5 / (1.5 + mu))
    X = pd.DataFrame({"x": x, "z": z, "g": pd.Categorical(g)})
    model = AdditiveMixed(smooths=["z"], groups="g", family="nbinom2").fit(X, y)
    assert abs(model.dispersion_ / 1.5 - 1) < 0.1
    assert abs(model.variance_components_.set_index("group")["sd"]["g"] - 0.3) < 0.06
    assert abs(model.coef_[0] - 0.3) < 4 * model.fixed_effects_["std_error"]["x"]


def test_negative_binomial_refuses_non_counts(nb_data):
    y = nb_data["ynb"].to_numpy(float).copy()
    y[3] = 2.5
    model = AdditiveMixed(smooths=["x0"], family="nbinom2")
    with pytest.raises(ValueError, match="row 3"):
        model.fit(nb_data[["x0"]], y)
    assert not hasattr(model, "coef_")


def test_a_constant_gamma_response_is_refused():
    model = AdditiveMixed(smooths=["x"], family="gamma")
    with pytest.raises(ValueError, match="every Gamma y is 3: .* no dispersion"):
        model.fit(pd.DataFrame({"x": np.linspace(0, 1, 100)}), np.full(100, 3.0))
    assert not hasattr(model, "coef_")


def test_negative_binomial_falls_back_to_newton_steps_where_fisher_scoring_diverges():
    """docs/additive.md's example data with y = round(exp(y)) as a count,
    ``ynb ~ temp + s(hour, bs = "cc")``: the exact fit's Fisher scoring ran off (the size
    → 0, |η| → 100, then the "separation" error) where bam(nb()) converges (edf 7.316,
    θ 1.039586); Newton steps (observed information) converge — a warning says so — to θ
    within 3e-6 of bam's and edf within 0.01 (measured 7.3066: other weights, other
    smoothing parameters)."""
    rng = np.random.default_rng(0)
    n = 2_000
    data = pd.DataFrame({"hour": rng.uniform(0, 24, n), "temp": rng.normal(15, 5, n),
                         "site": rng.integers(0, 20, n)})
    y = (np.sin(2 * np.pi * data["hour"] / 24) + 0.02 * (data["temp"] - 15) ** 2
         + rng.normal(0, 0.5, 20)[data["site"]] + rng.normal(0, 0.3, n))
    model = AdditiveMixed(smooths=["hour"], bs="cc", family="nbinom2", discrete=False)
    with pytest.warns(UserWarning, match="Fisher scoring .* diverged"):
        model.fit(data[["hour", "temp"]], np.round(np.exp(y)))
    assert model.converged_
    np.testing.assert_allclose(model.dispersion_, 1.039586, rtol=1e-5)
    assert abs(model.smooths_["edf"].iloc[0] - 7.316223) < 0.02


@pytest.fixture(scope="module")
def tweedie_data(data_file):
    return _gamsim(data_file, "gamsim1_tweedie.csv")


# Tweedie with a fixed power (mgcv's Tweedie(p), tests/reference/mgcv_tweedie.R: 4,000 rows,
# 20.5 % zeros): bam's performance iteration as Gamma's; measured (2026-12-04): edf ≤ 1.4e-6
# relative, dispersion ≤ 1.1e-6, SD of fac ≤ 3e-7, fitted means of the exact fit ≤ 2.2e-6
# (binned: bam's are at its binned covariates, ours at the rows': 6.5e-3)
@pytest.mark.parametrize("discrete, entry, power", [(True, "bam_tweedie_disc", 1.5),
                                                    (False, "bam_tweedie", 1.5),
                                                    (True, "bam_tweedie_p12_disc", 1.2)])
def test_tweedie_against_bam(tweedie_data, load_reference, discrete, entry, power):
    ref = load_reference("mgcv_tweedie.json")[entry]
    model, vc, sds = _fit_against_bam(tweedie_data, ref, "tweedie", "yt", discrete,
                                      power=power)
    np.testing.assert_allclose(model.dispersion_, ref["scale"], rtol=1e-5)
    rows = np.asarray(ref["fitted_rows"]) - 1
    fitted = model.predict(tweedie_data[COLUMNS].iloc[rows])
    if not discrete:
        np.testing.assert_allclose(fitted, ref["fitted"], rtol=1e-5)
    assert f"Family: Tweedie({power:g})" in model.summary()


def test_tweedie_recovers_a_simulated_dispersion():
    """Simulated from the family itself (compound Poisson–Gamma draws, 30 % zeros or so):
    the dispersion φ = 1.2 and the group SD 0.3 within their sampling error."""
    from skmixed.families import Tweedie

    rng = np.random.default_rng(11)
    n, G = 20_000, 40
    x = rng.uniform(size=n)
    g = rng.integers(0, G, n)
    mu = np.exp(np.sin(6 * x) + rng.normal(0, 0.3, G)[g])
    y = Tweedie(1.5).sample(rng, mu, fpar=1.2)
    X = pd.DataFrame({"x": x, "g": pd.Categorical(g)})
    model = AdditiveMixed(smooths=["x"], groups="g", family="tweedie", power=1.5).fit(X, y)
    assert abs(model.dispersion_ - 1.2) < 0.05
    sd = model.variance_components_.set_index("group").loc["g", "sd"]
    assert abs(sd - 0.3) < 0.1


# tw() (the power estimated): p and φ by maximum likelihood at each step's means, φ then held
# fixed in the step's REML, as bam; measured (2026-12-04): p ≤ 6.3e-9 relative, φ ≤ 1.7e-8,
# edf ≤ 1.5e-7, SD of fac ≤ 5.9e-8, the exact fit's fitted means 2.2e-7
@pytest.mark.parametrize("discrete, entry", [(True, "bam_tw_disc"), (False, "bam_tw")])
def test_estimated_tweedie_power_against_bam(tweedie_data, load_reference, discrete, entry):
    ref = load_reference("mgcv_tweedie.json")[entry]
    model, vc, sds = _fit_against_bam(tweedie_data, ref, "tweedie", "yt", discrete)
    np.testing.assert_allclose(model.power_, ref["theta"], rtol=1e-5)
    np.testing.assert_allclose(model.dispersion_, ref["scale"], rtol=1e-5)
    rows = np.asarray(ref["fitted_rows"]) - 1
    if not discrete:
        np.testing.assert_allclose(model.predict(tweedie_data[COLUMNS].iloc[rows]),
                                   ref["fitted"], rtol=1e-5)
    assert f"Family: Tweedie(p={model.power_:.3f})" in model.summary()


@pytest.mark.parametrize("discrete, entry", [(False, "bam_tweedie_zero_region"),
                                              (True, "bam_tweedie_zero_region_disc")])
def test_tweedie_with_a_region_of_zeros_against_bam(tweedie_data, load_reference, discrete,
                                                    entry):
    """y = 0 wherever x0 < 0.2: the fitted means there run far towards 0 (η well below
    −30, which the family once refused as divergence); bam converges, and so do we: edf,
    dispersion and the SD of fac to 1e-5 (measured ≤ 6.3e-6), the fitted means of the
    exact fit to 1e-4 relative or 1e-6 absolute (the means are of order 1; measured 4.3e-5,
    and 1e-10 on a mean of 4e-7 in the zero region: mgcv holds a mean at ≥ 2.2e-16 and
    stops while the means there still drift down)."""
    ref = load_reference("mgcv_tweedie.json")[entry]
    data = tweedie_data.assign(yt=tweedie_data["yt"].where(tweedie_data["x0"] >= 0.2, 0.0))
    model = AdditiveMixed(smooths=["x0", "x1", "x2"], groups="fac", family="tweedie",
                          power=1.5, discrete=discrete).fit(data[COLUMNS], data["yt"])
    assert model.converged_
    np.testing.assert_allclose(model.smooths_["edf"], list(ref["edf"].values())[:3],
                               rtol=1e-5)
    np.testing.assert_allclose(model.dispersion_, ref["scale"], rtol=1e-5)
    sds = {row["_row"]: row["std.dev"] for row in ref["vcomp_sd"]}
    np.testing.assert_allclose(model.variance_components_.set_index("group").loc["fac", "sd"],
                               sds["s(fac)"], rtol=1e-5)
    if not discrete:
        head = np.asarray(ref["fitted_head"])
        np.testing.assert_allclose(model.predict(data[COLUMNS].iloc[:head.size]), head,
                                   rtol=1e-4, atol=1e-6)


def test_tweedie_log_density_equals_mgcv(load_reference):
    """The series density (Dunn & Smyth) against mgcv's ldTweedie, p = 1.2, 1.5, 1.8."""
    from skmixed.families._tweedie import tweedie_log_density

    for entry in load_reference("mgcv_tweedie.json")["ld_tweedie"]:
        np.testing.assert_allclose(
            tweedie_log_density(np.array(entry["y"]), np.array(entry["mu"]), entry["phi"],
                                entry["p"]), entry["logd"], rtol=1e-12, atol=1e-12)


def test_tweedie_refuses_bad_powers_and_y(tweedie_data):
    from skmixed.formula import glmer

    X, y = tweedie_data[COLUMNS], tweedie_data["yt"]
    with pytest.raises(ValueError, match="the Tweedie family is AdditiveMixed's"):
        glmer("yt ~ x0 + (1 | fac)", tweedie_data, family="tweedie", power=1.5)
    with pytest.raises(ValueError, match="Tweedie family's; family='gamma'"):
        AdditiveMixed(smooths=["x0"], groups="fac", family="gamma", power=1.5).fit(X, y + 1)
    with pytest.raises(ValueError, match="power"):
        AdditiveMixed(smooths=["x0"], groups="fac", family="tweedie", power=2.0).fit(X, y)
    with pytest.raises(ValueError, match="Tweedie y must be non-negative"):
        AdditiveMixed(smooths=["x0"], groups="fac", family="tweedie", power=1.5).fit(
            X, y - 0.5)
    with pytest.raises(ValueError, match="every Tweedie y is 0"):
        AdditiveMixed(smooths=["x0"], groups="fac", family="tweedie", power=1.5).fit(
            X, 0 * y)


def test_tweedie_likelihood_derivatives_equal_differences():
    """The exact gradient and Hessian in (φ, p) that tw()'s Newton steps take, against
    central differences of the summed log density (1e-5 relative; measured ≤ 5.7e-6, the
    differences' own error)."""
    from skmixed.families import Tweedie
    from skmixed._model.tweedie_power import loglik_derivs
    from skmixed.families._tweedie import tweedie_log_density

    rng = np.random.default_rng(1)
    mu = np.exp(rng.normal(0, 0.5, 300))
    y = Tweedie(1.4).sample(rng, mu, fpar=1.3)
    w = rng.uniform(0.5, 2.0, 300)

    def f(phi, p):
        return float(w @ tweedie_log_density(y, mu, phi, p))

    phi, p, h = 1.1, 1.45, 1e-5
    numeric = [f(phi, p), (f(phi + h, p) - f(phi - h, p)) / (2 * h),
               (f(phi, p + h) - f(phi, p - h)) / (2 * h),
               (f(phi + h, p) - 2 * f(phi, p) + f(phi - h, p)) / h ** 2,
               (f(phi + h, p + h) - f(phi + h, p - h) - f(phi - h, p + h)
                + f(phi - h, p - h)) / (4 * h * h),
               (f(phi, p + h) - 2 * f(phi, p) + f(phi, p - h)) / h ** 2]
    np.testing.assert_allclose(loglik_derivs(y, mu, w, phi, p), numeric, rtol=1e-5)


@pytest.mark.parametrize("power", [1.3, None])
def test_tweedie_fit_does_not_depend_on_the_unit_of_y(power):
    """y × 1e-3 (another unit) is the same model: the means × 1e-3, φ × 1e-3^(2−p), the
    same edf and p. Before, mgcv's start (zeros at 0.1, the rest ~1e-3) put the first
    working REML on a plateau the warm-started steps never left (edf 1 where bam finds
    4.81); the converged step's REML is now also searched from its own start, as bam's."""
    from skmixed.families import Tweedie

    rng = np.random.default_rng(0)
    x, z = rng.uniform(size=1000), rng.uniform(size=1000)
    y = Tweedie(1.3).sample(rng, np.exp(-2.2 + np.sin(2 * np.pi * x) + z), fpar=1.0)
    X = pd.DataFrame({"x": x, "z": z})
    fits = [AdditiveMixed(smooths=["x"], family="tweedie", power=power,
                          discrete=False).fit(X, y * c) for c in (1.0, 1e-3)]
    np.testing.assert_allclose(fits[1].smooths_["edf"], fits[0].smooths_["edf"], rtol=1e-5)
    np.testing.assert_allclose(fits[1].power_, fits[0].power_, rtol=1e-6)
    np.testing.assert_allclose(fits[1].dispersion_ / 1e-3 ** (2 - fits[1].power_),
                               fits[0].dispersion_, rtol=1e-5)
    assert fits[0].smooths_["edf"].iloc[0] > 4
