"""The thin-plate regression spline (skmixed._model.thin_plate) against mgcv's ``bs = "tp"``,
the reference made by tests/reference/mgcv_tp.R on tests/data/tp_sim.csv.gz (d = 1 with 500
and 5,000 distinct values, d = 2 with 600 and 2,500 points, d = 3 with 400 points; the
5,000 and 2,500 draw 2,000 knots):

* R's ``set.seed(1); sample(n, 2000)`` reproduced draw for draw, and mgcv's knots exactly;
* the basis and penalty, compared through what does not depend on the basis chosen within
  their span (mgcv's Lanczos eigenvectors, Householder constraint and column scaling are
  not ours): a penalized least-squares fit at a fixed λ (fitted values, predictions at new
  points through PredictMat, edf), the eigenvalues of the penalty against X'X, and the span
  of mgcv's constrained basis;
* a REML fit of ``y ~ s(x)`` (a small profiled REML in NumPy/SciPy below) against
  ``gam(method = "REML")``: fitted values, edf, REML score;
* the sum-to-zero constraint and the mixed-model split; distinct values with counts fit as
  the rows; bad input raises clear errors.
"""

import numpy as np
import pandas as pd
import pytest
from scipy import optimize

from skmixed._model.r_sample import RUniform, r_sample
from skmixed._model.thin_plate import ThinPlate, r_character

CASES = ["d1_500", "d1_5000", "d1_500_k20", "d2_600", "d2_2500", "d3_400"]
COVARIATES = ["x", "z", "w"]


@pytest.fixture(scope="module")
def reference(load_reference):
    return load_reference("mgcv_tp.json")


@pytest.fixture(scope="module")
def sim(data_file):
    return pd.read_csv(data_file("tp_sim.csv.gz"))


def _data(sim, ref):
    rows = sim[sim["set"] == ref["set"]]
    x = rows[COVARIATES[:ref["d"]]].to_numpy()
    return x, rows["y"].to_numpy()


@pytest.fixture(scope="module")
def fitted(sim, reference):
    """``case -> (ThinPlate, x, y)`` (each case fitted once)."""
    out = {}
    for case in CASES:
        ref = reference["cases"][case]
        x, y = _data(sim, ref)
        out[case] = (ThinPlate(k=ref["k"]).fit(x), x, y)
    return out


def _with_intercept(X):
    return np.column_stack([np.ones(X.shape[0]), X])


def _system(tp, x):
    """``X = [1, design(x)]`` and the penalty S of its coefficients."""
    X = _with_intercept(tp.design(x))
    S = np.zeros((X.shape[1],) * 2)
    S[1:, 1:] = tp.constrained_penalty()
    return X, S


def _penalized_fit(tp, x, y, lam, system=None):
    """``[1, design] β`` minimizing ``‖y − Xβ‖² + λ β'Sβ``: (β, X'X + λS, X, S)."""
    X, S = _system(tp, x) if system is None else system
    A = X.T @ X + lam * S
    return np.linalg.solve(A, X.T @ y), A, X, S


def test_r_sample_draws_rs(reference):
    for entry in reference["sample"]:
        np.testing.assert_array_equal(r_sample(entry["n"], 2000, seed=1), entry["draws"])
    # set.seed(1); runif(3) in R: 0.2655087 0.3721239 0.5728534
    np.testing.assert_allclose(RUniform(1).take(3), [0.2655087, 0.3721239, 0.5728534],
                               atol=5e-8)
    with pytest.raises(ValueError, match="cannot draw 5 of 4"):
        r_sample(4, 5, seed=1)


def test_r_character_is_rs():
    # R 4.2's as.character() of these doubles
    cases = {1e5: "1e+05", 1e-4: "1e-04", -1e-4: "-1e-04", 1.2345e-4: "0.00012345",
             1234567890123456.0: "1234567890123456", 0.1 + 0.2: "0.3",
             123456.7: "123456.7", 1.5e-5: "1.5e-05", 0.0: "0",
             -0.123456789012345678: "-0.123456789012346"}
    for value, text in cases.items():
        assert r_character(value) == text, value


@pytest.mark.parametrize("case", CASES)
def test_knots_are_mgcvs(fitted, reference, case):
    ref = reference["cases"][case]
    tp, x, _ = fitted[case]
    np.testing.assert_allclose(tp.shift_, ref["shift"], rtol=1e-15, atol=1e-15)
    assert tp.knots_.shape == (ref["n_knots"], ref["d"])
    if ref["knot_rows"]:  # the 2,000 points mgcv drew, exactly (as sets)
        theirs = x[np.asarray(ref["knot_rows"]) - 1] - tp.shift_
        ours = tp.knots_
        np.testing.assert_array_equal(theirs[np.lexsort(theirs.T[::-1])],
                                      ours[np.lexsort(ours.T[::-1])])
    else:  # every distinct point
        np.testing.assert_array_equal(np.unique(tp.knots_, axis=0),
                                      np.unique(x - tp.shift_, axis=0))


@pytest.mark.parametrize("case", CASES)
def test_penalized_fit_at_fixed_lambda_is_mgcvs(fitted, reference, case):
    ref = reference["cases"][case]
    tp, x, y = fitted[case]
    beta, A, X, _ = _penalized_fit(tp, x, y, ref["lambda"])
    rows = np.asarray(ref["pls_rows"]) - 1
    theirs = np.asarray(ref["pls_fitted"])
    # measured ≤ 4.3e-11 relative (mgcv's Lanczos eigenvectors are converged to ~1e-11)
    np.testing.assert_allclose((X @ beta)[rows], theirs, rtol=0,
                               atol=1e-9 * np.abs(theirs).max())
    np.testing.assert_allclose(np.trace(np.linalg.solve(A, X.T @ X)), ref["pls_edf"],
                               rtol=1e-9)
    new = pd.DataFrame(ref["new_points"])[COVARIATES[:ref["d"]]].to_numpy()
    predicted = _with_intercept(tp.design(new)) @ beta
    theirs = np.asarray(ref["pls_predicted"])
    np.testing.assert_allclose(predicted, theirs, rtol=0, atol=1e-9 * np.abs(theirs).max())


@pytest.mark.parametrize("case", CASES)
def test_penalty_and_span_are_mgcvs(fitted, reference, case):
    ref = reference["cases"][case]
    tp, x, _ = fitted[case]
    X, S = tp.design(x), tp.constrained_penalty()
    # S v = μ X'X v: the penalty's eigenvalues in the data's metric, basis-free
    Li = np.linalg.inv(np.linalg.cholesky(X.T @ X))
    mu = np.sort(np.linalg.eigvalsh(Li @ S @ Li.T))[::-1]
    theirs = np.asarray(ref["penalty_eigenvalues"])
    n_null = tp.powers_.shape[0] - 1  # the non-constant polynomials
    # measured ≤ 2.9e-11 relative
    np.testing.assert_allclose(mu[:-n_null], theirs[:-n_null], rtol=1e-9)
    np.testing.assert_allclose(mu[-n_null:], 0.0, atol=1e-12 * mu[0])
    # mgcv's constrained basis spans ours (measured ≤ 4.0e-9 on columns of RMS ≈ 1)
    theirs = np.asarray(ref["X"])
    ours = X[:ref["rows"]]
    R = np.linalg.lstsq(theirs, ours, rcond=None)[0]
    np.testing.assert_allclose(theirs @ R, ours, rtol=0, atol=1e-8)


def _reml(tp, x, y):
    """mgcv's Gaussian REML over ρ = log λ, the scale profiled (Wood 2011, eq. 4):
    ``V = D_p/(2φ) + (n − M_p)/2 log(2πφ) + ½ log|X'X + λS| − ½ log|λS|_+`` with
    ``D_p = ‖y − Xβ‖² + λβ'Sβ`` and ``φ = D_p/(n − M_p)``."""
    system = _system(tp, x)
    n, p = system[0].shape
    M_p = tp.powers_.shape[0]  # the intercept and the non-constant polynomials
    S_c = tp.constrained_penalty()
    ldet_S = np.sum(np.log(np.linalg.eigvalsh(S_c)[M_p - 1:]))

    def score(rho):
        lam = np.exp(rho)
        beta, A, X, S = _penalized_fit(tp, x, y, lam, system)
        r = y - X @ beta
        dp = r @ r + lam * beta @ S @ beta
        phi = dp / (n - M_p)
        return (dp / (2 * phi) + (n - M_p) / 2 * np.log(2 * np.pi * phi)
                + 0.5 * np.linalg.slogdet(A)[1] - 0.5 * ((p - M_p) * rho + ldet_S))

    best = optimize.minimize_scalar(score, bounds=(-25.0, 10.0), method="bounded",
                                    options={"xatol": 1e-10})
    lam = np.exp(best.x)
    beta, A, X, _ = _penalized_fit(tp, x, y, lam, system)
    return dict(lam=lam, fitted=X @ beta, edf=np.trace(np.linalg.solve(A, X.T @ X)),
                score=best.fun, ldet_S=ldet_S)


@pytest.mark.parametrize("case", ["d1_500", "d1_5000", "d2_600", "d2_2500", "d3_400"])
def test_reml_fit_is_gams(fitted, reference, case):
    ref = reference["cases"][case]
    gam = ref["gam"]
    tp, x, y = fitted[case]
    fit = _reml(tp, x, y)
    rows = np.asarray(ref["pls_rows"]) - 1
    theirs = np.asarray(gam["fitted"])
    # gam's Newton iteration stops at its own tolerance, not at the exact optimum: measured
    # fitted values ≤ 2.6e-7 relative, edf ≤ 4.6e-5, λ ≤ 2.0e-5 relative (d2_600 the worst)
    np.testing.assert_allclose(fit["fitted"][rows], theirs, rtol=0,
                               atol=1e-5 * np.abs(theirs).max())
    np.testing.assert_allclose(fit["edf"], gam["edf"], rtol=0, atol=1e-3)
    np.testing.assert_allclose(fit["lam"], gam["sp_unscaled"], rtol=1e-3)
    # The REML score in mgcv's parametrization: ½ log|X'X + λS| − ½ log|S|_+ depends on
    # the basis by log|det R| − ½ log|S|_+, R mapping mgcv's coefficients to ours
    # (ours = X_mgcv R on the reference rows).
    X_mgcv = np.asarray(ref["X"])
    R = np.linalg.lstsq(X_mgcv, tp.design(x[:ref["rows"]]), rcond=None)[0]
    S_mgcv = np.asarray(ref["S"])
    M_p = tp.powers_.shape[0]
    ldet_S_mgcv = np.sum(np.log(np.linalg.eigvalsh(S_mgcv)[M_p - 1:]))
    score = (fit["score"] - np.linalg.slogdet(R)[1] + 0.5 * fit["ldet_S"]
             - 0.5 * ldet_S_mgcv)
    # flat at the optimum, so equal far beyond λ's agreement: measured ≤ 1.9e-10 relative
    np.testing.assert_allclose(score, gam["reml_score"], rtol=1e-9)


def test_sum_to_zero_and_mixed_parts(fitted):
    for case, n_null in [("d1_500", 1), ("d2_600", 2), ("d3_400", 9)]:
        tp, x, _ = fitted[case]
        D = tp.design(x)
        np.testing.assert_allclose(D.sum(axis=0), 0.0, atol=1e-9 * x.shape[0])
        F, R, d = tp.mixed_parts()
        S = tp.constrained_penalty()
        assert F.shape[1] == n_null and R.shape[1] == tp.k_ - 1 - n_null and np.all(d > 0)
        np.testing.assert_allclose(S @ F, 0.0, atol=1e-10 * np.abs(S).max())
        np.testing.assert_allclose(R.T @ S @ R, np.eye(R.shape[1]), atol=1e-9)
        # the null space is the polynomials of degree < m (linear for d = 1, 2; quadratic
        # for d = 3, where m = 3)
        trend = D @ F
        poly = np.column_stack([np.prod(x ** p, axis=1) for p in tp.powers_])
        coef = np.linalg.lstsq(poly, trend, rcond=None)[0]
        np.testing.assert_allclose(poly @ coef, trend, atol=1e-9)


def test_large_basis_splits_by_the_known_null_space():
    # eigenvalues spanning 1e-11 (k = 200 in one covariate): the split counts the
    # polynomials instead of thresholding the spectrum
    x = np.random.default_rng(1).uniform(size=600)
    tp = ThinPlate(k=200).fit(x)
    F, R, d = tp.mixed_parts()
    assert F.shape[1] == 1 and R.shape[1] == 198 and d[0] < 1e-9 * d[-1]
    # measured 7.4e-7: S's rounding (1e-16 of its largest eigenvalue) is ~1e-5 of its
    # smallest positive ones
    np.testing.assert_allclose(R.T @ tp.constrained_penalty() @ R, np.eye(198), atol=1e-5)
    # refitting to another number of covariates is a new smooth
    assert tp.fit(np.column_stack([x, x ** 2])).design(np.ones((2, 2))).shape == (2, 199)


def test_distinct_values_with_counts_fit_as_rows(sim, reference):
    ref = reference["cases"]["d1_5000"]
    x, y = _data(sim, ref)
    x = np.round(x[:, 0], 3)  # ≤ 1,001 distinct values, each many times
    values, index, counts = np.unique(x, return_inverse=True, return_counts=True)
    rows = ThinPlate().fit(x)
    binned = ThinPlate().fit(values, weights=counts)
    np.testing.assert_allclose(binned.design(values).T @ counts, 0.0, atol=1e-9)
    lam = 1e-3
    beta_rows, _, X_rows, _ = _penalized_fit(rows, x, y, lam)
    # the same fit from the values' sums: X̄'WX̄ and X̄'(Σ y per value)
    Xb = _with_intercept(binned.design(values))
    S = np.zeros((Xb.shape[1],) * 2)
    S[1:, 1:] = binned.constrained_penalty()
    beta_bins = np.linalg.solve(Xb.T @ (counts[:, None] * Xb) + lam * S,
                                Xb.T @ np.bincount(index, weights=y))
    np.testing.assert_allclose((Xb @ beta_bins)[index], X_rows @ beta_rows, rtol=0,
                               atol=1e-9 * np.abs(y).max())


def test_bad_input():
    x = np.linspace(0.0, 1.0, 50)
    with pytest.raises(ValueError, match="has only 6 distinct values: use k <= 6"):
        ThinPlate(k=10).fit(np.repeat(np.arange(6.0), 5))
    with pytest.raises(ValueError, match="have only 8 distinct points: use k <= 8"):
        ThinPlate().fit(np.tile(np.arange(8.0), (2, 5)).T)
    with pytest.raises(ValueError, match="its 2 polynomials need k >= 3"):
        ThinPlate(k=2).fit(x)
    with pytest.raises(ValueError, match="needs a penalty order m > 1"):
        ThinPlate(m=1).fit(np.column_stack([x, x[::-1] ** 2]))
    with pytest.raises(ValueError, match="finite"):
        ThinPlate().fit(np.append(x, np.nan))
    with pytest.raises(ValueError, match="fitted to 1 covariate"):
        ThinPlate().fit(x).design(np.ones((3, 2)))
    with pytest.raises(ValueError, match="k=1"):
        ThinPlate(k=1)
