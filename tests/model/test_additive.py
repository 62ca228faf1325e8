"""Additive mixed models (skmixed._model.additive) against mgcv, at the tolerances the
documentation (docs/additive.md) states (measured figures in the tests' comments):

* Gaussian ``gam(..., method = "REML")``: gamsim1 with four ``bs = "ps"`` smooths, with and
  without ``s(fac, bs = "re")``, and the study's ``y_nl ~ x + b + s(z) + s(g, bs = "re")``
  (exact cross-products);
* ``bam(..., discrete = TRUE)``: the same study model from binned cross-products, which
  equal the dense ones on binned data;
* binomial ``bam(..., discrete = TRUE)`` (performance iteration): the study's
  ``y_bin ~ x + b + s(g, bs = "re")`` and gamsim1's smooths + ``s(fac, bs = "re")``.
"""

import numpy as np
import pandas as pd
import pytest

from skmixed._model.additive import DenseREML
from skmixed._model.additive_cross import CrossProducts, SmoothBlocks, discretize
from skmixed._model.additive_pirls import laplace_reml, performance_iteration
from skmixed._model.smooth import PSpline
from skmixed.families import get_family

BINOMIAL = get_family("binomial")


def additive_blocks(df, terms, k=10):
    n = len(df)
    fixed, random, sizes, fixed_of = [np.ones((n, 1))], [], [], []
    for term in terms:
        x = df[term].to_numpy()
        F, R, _ = PSpline(k).fit(x).mixed_parts()
        design = PSpline(k).fit(x).design(x)
        start = sum(f.shape[1] for f in fixed)
        fixed.append(design @ F)
        random.append(design @ R)
        sizes.append(R.shape[1])
        fixed_of.append(list(range(start, start + F.shape[1])))
    return SmoothBlocks(np.hstack(fixed), np.hstack(random), sizes, fixed_of)


@pytest.fixture(scope="module")
def gam_fit(data_file, load_reference):
    df = pd.read_csv(data_file("gamsim1.csv"))
    ref = load_reference("mgcv_gamsim1.json")["gam_ps_reml"]
    blocks = additive_blocks(df, ["x0", "x1", "x2", "x3"])
    return blocks, DenseREML(blocks, df["y"].to_numpy()).fit(), ref


def assert_gamsim1_edf(edf, ref):
    """The three smooths away from their boundary to 5e-5 (measured ≤ 1.3e-5); s(x3) is a
    straight line where mgcv's λ stops short (5e7: edf 1.0009, with s(fac) 1.0031; ours
    1.0000 at a lower REML score), 5e-3 (measured 3.1e-3); s(fac) 5e-5."""
    theirs = np.array(list(ref["edf"].values()))
    np.testing.assert_allclose(edf[[0, 1, 2]], theirs[[0, 1, 2]], rtol=5e-5)
    np.testing.assert_allclose(edf[3], theirs[3], rtol=5e-3)
    np.testing.assert_allclose(edf[4:], theirs[4:], rtol=5e-5)


def assert_reml_score(criterion, ref):
    """Ours never higher than mgcv's, and within 0.002 (measured: lower by 3.6e-5 to
    1.4e-3, where mgcv's λ stops short)."""
    assert criterion / 2 <= ref["reml_score"] + 1e-6  # at least as good an optimum
    assert ref["reml_score"] - criterion / 2 < 2e-3


def test_edf_per_smooth(gam_fit):
    _, fit, ref = gam_fit
    assert_gamsim1_edf(fit.edf, ref)


def test_reml_score_scale_and_intercept(gam_fit):
    _, fit, ref = gam_fit
    assert_reml_score(fit.criterion, ref)
    np.testing.assert_allclose(fit.sigma ** 2, ref["scale"], rtol=1e-5)
    np.testing.assert_allclose(fit.beta[0], ref["coef_parametric"]["(Intercept)"], rtol=1e-6)


def test_fitted_values(gam_fit):
    blocks, fit, ref = gam_fit
    head = np.asarray(ref["fitted_head"])
    fitted = (blocks.fixed @ fit.beta + blocks.random @ fit.b)[:head.size]
    rms = np.sqrt(np.mean((fitted - head) ** 2)) / np.sqrt(np.mean(head ** 2))
    assert rms < 1e-2
    np.testing.assert_allclose(fitted, head, rtol=1e-4)


def test_fit_records_its_optimization(gam_fit):
    """The REML fit's record is the one optimizer's OptSummary (L-BFGS-B over log τ, then
    Newton steps): at the fitted τ, with the criterion and a gradient at its rounding."""
    blocks, fit, _ = gam_fit
    opt = fit.result
    assert opt.converged and opt.optimizer.startswith("L-BFGS-B")
    np.testing.assert_allclose(np.exp(opt.theta_final), fit.tau, rtol=1e-15)
    assert opt.fmin == fit.criterion
    assert fit.reml.criterion(opt.theta_final) == pytest.approx(opt.fmin, rel=1e-13)
    assert np.max(np.abs(opt.gradient)) < 1e-6 and opt.n_evals > opt.n_iter > 0


def test_random_intercept_block_against_mgcv(data_file, load_reference):
    """``+ s(fac, bs = "re")`` (40 levels): the group block eliminated as a diagonal block."""
    df = pd.read_csv(data_file("gamsim1.csv"))
    ref = load_reference("mgcv_gamsim1.json")["gam_ps_re_reml"]
    blocks = additive_blocks(df, ["x0", "x1", "x2", "x3"])
    codes = pd.Categorical(df["fac"]).codes
    fit = DenseREML(blocks, df["y"].to_numpy(), groups=codes).fit()
    assert_gamsim1_edf(fit.edf, ref)
    assert_reml_score(fit.criterion, ref)
    sds = {row["_row"]: row["std.dev"] for row in ref["vcomp_sd"]}
    # measured 9e-8 and 1.4e-7
    np.testing.assert_allclose(fit.sigma * fit.tau[-1], sds["s(fac)"], rtol=1e-5)
    np.testing.assert_allclose(fit.sigma, sds["scale"], rtol=1e-5)
    head = np.asarray(ref["fitted_head"])
    fitted = blocks.fixed @ fit.beta + blocks.random @ fit.b + fit.group[codes, 0]
    np.testing.assert_allclose(fitted[:head.size], head, rtol=1e-3, atol=1e-4)


def assert_study_fit(fit, ref, edf_rtol):
    """The study's y_nl model against an mgcv entry: parametric slopes 1e-5 (measured:
    gam 1.9e-8, bam 5.6e-6), edf ``edf_rtol``, the group SD and σ 1e-5 (≤ 1.9e-6)."""
    coef = ref["coef_parametric"]
    np.testing.assert_allclose(fit.beta[1:3], [coef["x"], coef["b"]], rtol=1e-5)
    np.testing.assert_allclose(fit.edf, list(ref["edf"].values()), rtol=edf_rtol)
    sds = {row["_row"]: row["std.dev"] for row in ref["vcomp_sd"]}
    np.testing.assert_allclose(fit.sigma * fit.tau[-1], sds["s(g)"], rtol=1e-5)
    np.testing.assert_allclose(fit.sigma, sds["scale"], rtol=1e-5)


def test_study_smooth_and_groups_against_mgcv(data_file, load_reference):
    """The study's ``gam(y_nl ~ x + b + s(z, bs = "ps") + s(g, bs = "re"), method =
    "REML")`` on its 200,000 rows: parametric slopes at 1e-5, edf 5e-4 (s(z) measured
    1.9e-4: mgcv's λ stops short, our REML score is 3.6e-5 lower), SDs, REML score."""
    df = pd.read_csv(data_file("study_2e5.csv.gz"), usecols=["g", "x", "b", "z", "y_nl"])
    ref = load_reference("study_2e5.json")["gam_gau_nl_reml"]
    z = df["z"].to_numpy()
    ps = PSpline().fit(z)
    F, R, _ = ps.mixed_parts()
    design = ps.design(z)
    fixed = np.column_stack([np.ones(len(df)), df["x"], df["b"], design @ F])
    blocks = SmoothBlocks(fixed, design @ R, [R.shape[1]], [[3]])
    fit = DenseREML(blocks, df["y_nl"].to_numpy(), groups=pd.Categorical(df["g"]).codes).fit()
    assert_study_fit(fit, ref, edf_rtol=5e-4)
    assert_reml_score(fit.criterion, ref)


def test_binned_crossproducts_against_bam_discrete(data_file, load_reference):
    """``bam(y_nl ~ x + b + s(z, bs = "ps") + s(g, bs = "re"), discrete = TRUE)``: z binned
    to 1000 values as mgcv does, every product with the smooth's columns from per-bin sums
    (no n × k basis): parametric slopes at 1e-5, edf 1e-5 (measured 3.3e-6), SDs 1e-5."""
    df = pd.read_csv(data_file("study_2e5.csv.gz"), usecols=["g", "x", "b", "z", "y_nl"])
    ref = load_reference("study_2e5.json")["bam_gau_nl_disc"]
    values, index = discretize(df["z"].to_numpy(), 1000)
    assert values.size == 1000 and index.max() == 999
    ps = PSpline().fit(values, weights=np.bincount(index, minlength=values.size))
    F, R, _ = ps.mixed_parts()
    basis = ps.design(values)
    X = np.column_stack([np.ones(len(df)), df["x"], df["b"]])
    cross = CrossProducts.binned(X, df["y_nl"].to_numpy(), [(index, basis @ F, basis @ R)],
                                 groups=pd.Categorical(df["g"]).codes)
    fit = DenseREML.from_crossproducts(cross, [R.shape[1]], [[3]]).fit()
    assert_study_fit(fit, ref, edf_rtol=1e-5)


@pytest.mark.parametrize("with_slopes", [False, True])
def test_binned_crossproducts_equal_dense_ones_on_the_binned_data(with_slopes):
    """With the covariates already on their bins, the binned cross-products are the dense
    ones exactly (two smooths: the per-(bin, bin) table; groups: per-(group, bin) sums;
    random slopes: the same sums weighted by the slope columns)."""
    rng = np.random.default_rng(3)
    n, G = 3000, 17
    z1 = rng.integers(0, 40, n) / 7.0
    z2 = rng.integers(0, 25, n) / 3.0
    X = np.column_stack([np.ones(n), rng.normal(size=n)])
    y = rng.normal(size=n)
    w = rng.uniform(0.5, 2.0, n)
    codes = rng.integers(0, G, n)
    smooths, dense_null, dense_range = [], [], []
    for z in (z1, z2):
        values, index = discretize(z, 1000)
        ps = PSpline(8).fit(values, weights=np.bincount(index, weights=w))
        F, R, _ = ps.mixed_parts()
        basis = ps.design(values)
        smooths.append((index, basis @ F, basis @ R))
        dense_null.append((basis @ F)[index])
        dense_range.append((basis @ R)[index])
    slopes = np.column_stack([X[:, 1], z1]) if with_slopes else None
    binned = CrossProducts.binned(X, y, smooths, w=w, groups=codes, slopes=slopes)
    dense = CrossProducts.dense(np.hstack([X] + dense_null), np.hstack(dense_range), y, w=w,
                                groups=codes, slopes=slopes)
    assert binned.ZZ.shape == (G, 3 if with_slopes else 1, 3 if with_slopes else 1)
    np.testing.assert_allclose(binned.M, dense.M, rtol=1e-10, atol=1e-9)
    np.testing.assert_allclose(binned.ZW, dense.ZW, rtol=1e-10, atol=1e-9)
    np.testing.assert_allclose(binned.ZZ, dense.ZZ, rtol=1e-12)
    assert (binned.p, binned.q, binned.n) == (dense.p, dense.q, dense.n)


# ----------------------------------------------------------------------------- binomial
def binned_smooths(df, terms, n_bins=1000):
    """Per term ``(index, null, range)`` as CrossProducts.binned takes them, and the
    null/range widths."""
    smooths, parts = [], []
    for term in terms:
        values, index = discretize(df[term].to_numpy(), n_bins)
        ps = PSpline().fit(values, weights=np.bincount(index, minlength=values.size))
        F, R, _ = ps.mixed_parts()
        basis = ps.design(values)
        smooths.append((index, basis @ F, basis @ R))
        parts.append((F.shape[1], R.shape[1]))
    return smooths, parts


def binomial_fit(X, y, smooths, parts, codes):
    """``performance_iteration`` with binned cross-products; returns (fit, η, iterations)."""
    p0 = X.shape[1]
    sizes = [r for _, r in parts]
    fixed_of, start = [], p0
    for f, _ in parts:
        fixed_of.append(list(range(start, start + f)))
        start += f

    def make(z, w):
        cross = CrossProducts.binned(X, z, smooths, w=w, groups=codes)
        return DenseREML.from_crossproducts(cross, sizes, fixed_of)

    def linear_predictor(fit):
        eta = X @ fit.beta[:p0] + fit.group[codes, 0]
        cb, cr = p0, 0
        for (index, null, rng), (f, r) in zip(smooths, parts):
            eta = eta + (null @ fit.beta[cb:cb + f] + rng @ fit.b[cr:cr + r])[index]
            cb, cr = cb + f, cr + r
        return eta

    fit, eta, n_iter, converged = performance_iteration(make, linear_predictor, y,
                                                        np.zeros(y.size), BINOMIAL)
    assert converged
    return fit, eta, n_iter


def test_binomial_random_intercept_against_bam(data_file, load_reference):
    """The study's ``bam(y_bin ~ x + b + s(g, bs = "re"), binomial, discrete = TRUE)``:
    performance iteration (PQL with REML steps, as bam's fREML)."""
    df = pd.read_csv(data_file("study_2e5.csv.gz"), usecols=["g", "x", "b", "y_bin"])
    ref = load_reference("study_2e5.json")["bam_bin_re_disc"]
    X = np.column_stack([np.ones(len(df)), df["x"], df["b"]])
    fit, eta, _ = binomial_fit(X, df["y_bin"].to_numpy(float), [], [],
                               pd.Categorical(df["g"]).codes)
    coef = ref["coef_parametric"]
    # measured: slopes 4.9e-5 (x) and 1.1e-5, edf 1.5e-7, SD 6.7e-6
    np.testing.assert_allclose(fit.beta[1:], [coef["x"], coef["b"]], rtol=1e-4)
    np.testing.assert_allclose(fit.edf, list(ref["edf"].values()), rtol=1e-5)
    np.testing.assert_allclose(fit.tau[-1], ref["vcomp_sd"][0]["std.dev"], rtol=1e-4)
    head = np.asarray(ref["fitted_head"])
    mu = 1.0 / (1.0 + np.exp(-eta[:head.size]))
    assert np.sqrt(np.mean((mu - head) ** 2) / np.mean(head ** 2)) < 1e-2


def test_binomial_smooths_against_bam(data_file, load_reference):
    """gamsim1 ``bam(yb ~ s(x0) + s(x1) + s(x2) + s(fac, bs = "re"), binomial, discrete =
    TRUE)`` (bs = "ps"): edf, SDs and fitted probabilities; against gam(method = "REML"),
    whose binomial REML is a Laplace approximation rather than PQL, the edf agree to 1 %."""
    df = pd.read_csv(data_file("gamsim1.csv"))
    refs = load_reference("mgcv_gamsim1_binomial.json")
    smooths, parts = binned_smooths(df, ["x0", "x1", "x2"])
    fit, eta, _ = binomial_fit(np.ones((len(df), 1)), df["yb"].to_numpy(float), smooths,
                               parts, pd.Categorical(df["fac"]).codes)
    bam = refs["bam_ps_bin_disc"]
    # measured: edf ≤ 4.0e-7, SD 5.2e-7, fitted probabilities 1.3e-7
    np.testing.assert_allclose(fit.edf, list(bam["edf"].values()), rtol=1e-5)
    np.testing.assert_allclose(fit.tau[-1], bam["vcomp_sd"][-1]["std.dev"], rtol=1e-5)
    head = np.asarray(bam["fitted_head"])
    mu = 1.0 / (1.0 + np.exp(-eta[:head.size]))
    np.testing.assert_allclose(mu, head, rtol=1e-5)
    np.testing.assert_allclose(fit.edf, list(refs["gam_ps_bin_reml"]["edf"].values()),
                               rtol=1e-2)


def test_binomial_laplace_reml_against_gam(data_file, load_reference):
    """gamsim1 ``gam(yb ~ s(x0) + s(x1) + s(x2) + s(fac, bs = "re"), binomial, method =
    "REML")`` (bs = "ps", exact cross-products): the Laplace-approximate REML optimized
    directly (outer iteration) reproduces gam's edf, SD, intercept and fitted values."""
    df = pd.read_csv(data_file("gamsim1.csv"))
    ref = load_reference("mgcv_gamsim1_binomial.json")["gam_ps_bin_reml"]
    blocks = additive_blocks(df, ["x0", "x1", "x2"])
    codes = pd.Categorical(df["fac"]).codes

    def make(z, w):
        return DenseREML(blocks, z, w, groups=codes)

    def linear_predictor(fit):
        return blocks.fixed @ fit.beta + blocks.random @ fit.b + fit.group[codes, 0]

    fit, eta, _, converged = laplace_reml(make, linear_predictor, df["yb"].to_numpy(float),
                                          np.zeros(len(df)), BINOMIAL)
    assert converged
    np.testing.assert_allclose(fit.edf, list(ref["edf"].values()), rtol=1e-4)
    np.testing.assert_allclose(fit.tau[-1], ref["vcomp_sd"][-1]["std.dev"], rtol=1e-5)
    np.testing.assert_allclose(fit.beta[0], ref["coef_parametric"]["(Intercept)"], rtol=1e-4)
    head = np.asarray(ref["fitted_head"])
    np.testing.assert_allclose(1.0 / (1.0 + np.exp(-eta[:head.size])), head, rtol=1e-5)


@pytest.mark.parametrize("scale", [None, 1.7])
@pytest.mark.parametrize("n_slopes", [0, 2])
def test_reml_gradient_against_finite_differences(scale, n_slopes):
    """The exact gradient of the REML criterion in log τ (smooths, the group intercept and
    slopes) against central differences, σ profiled and σ known."""
    rng = np.random.default_rng(5)
    n, G = 1500, 23
    z = rng.uniform(size=n)
    X = np.column_stack([np.ones(n), rng.normal(size=n), rng.normal(size=n)])
    codes = rng.integers(0, G, n)
    y = (np.sin(5 * z) + X[:, 1] * (0.5 + rng.normal(0, 0.4, G)[codes])
         + rng.normal(0, 0.5, G)[codes] + rng.normal(size=n))
    ps = PSpline(10).fit(z)
    F, R, _ = ps.mixed_parts()
    basis = ps.design(z)
    blocks = SmoothBlocks(np.hstack([X, basis @ F]), basis @ R, [R.shape[1]], [[3]])
    reml = DenseREML(blocks, y, groups=codes, slopes=X[:, 1:1 + n_slopes] if n_slopes
                     else None)
    reml.scale = scale
    assert reml.n_tau == 2 + n_slopes
    for x in (np.zeros(reml.n_tau), np.linspace(-1.0, 0.5, reml.n_tau)):
        value, grad = reml.criterion_and_gradient(x)
        assert value == pytest.approx(reml.criterion(x), rel=1e-14)
        h = 1e-5
        fd = [(reml.criterion(x + h * e) - reml.criterion(x - h * e)) / (2 * h)
              for e in np.eye(x.size)]
        np.testing.assert_allclose(grad, fd, rtol=1e-5, atol=1e-5)
