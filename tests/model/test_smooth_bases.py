"""mgcv's cubic regression spline (``bs = "cr"``) and cyclic cubic spline (``bs = "cc"``)
bases (skmixed._model.cubic_splines) against smoothCon, the reference made by
tests/reference/mgcv_bases.R on the gamsim1 data:

* knots, the unconstrained basis at the data and at new points (cr: linear beyond the end
  knots; cc: wrapped into the cycle) and the penalty equal to mgcv's: 1e-12 (measured
  ≤ 5e-15);
* the sum-to-zero constrained basis spans mgcv's, and the constrained penalty has mgcv's
  eigenvalues (1e-12 relative; measured ≤ 2e-15);
* the mixed-model split: cr's null space is the line, cc has none (its constant is
  constrained away);
* a cyclic spline's value, slope and curvature agree at the two ends of its cycle;
* bad parameters and covariates raise errors that say what would be valid;
* a gam fit of cr, cc and re smooths evaluated at mgcv's smoothing parameters is mgcv's
  (fitted values, edf, REML score, the smooth table — the cyclic smooth's by mgcv's
  random-effect test — to 1e-6 or better).
"""


from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from skmixed._model.additive_fit import AdditiveSpec, row_bases
from skmixed._model.additive_system import AdditiveSystem
from skmixed._model.bases import BASES, SmoothTerm, make_basis
from skmixed._model.cubic_splines import CubicRegressionSpline, CyclicCubicSpline
from skmixed.families import get_family

CASES = ["cr_x0_k10", "cr_x2_k5", "cc_x1_k10", "cc_x1_k6_ends"]


@pytest.fixture(scope="module")
def reference(load_reference):
    return load_reference("mgcv_bases.json")


def fitted_basis(gamsim1, ref):
    x = gamsim1[ref["term"]].to_numpy()
    ends = ref["ends"] or None  # jsonlite writes R's NULL as {}
    return make_basis(ref["bs"], ref["k"], ends).fit(x), x


@pytest.mark.parametrize("case", CASES)
def test_knots_basis_and_penalty_are_mgcvs(gamsim1, reference, case):
    ref = reference[case]
    basis, x = fitted_basis(gamsim1, ref)
    np.testing.assert_allclose(basis.knots_, ref["knots"], rtol=0, atol=1e-13)
    np.testing.assert_allclose(basis.basis(x[:reference["rows"]]), ref["X"], rtol=0,
                               atol=1e-12)
    np.testing.assert_allclose(basis.basis(ref["new_x"]), ref["X_new"], rtol=0, atol=1e-12)
    S = np.asarray(ref["S"])
    np.testing.assert_allclose(basis.penalty_, S, rtol=0, atol=1e-12 * np.abs(S).max())
    assert np.linalg.matrix_rank(basis.penalty_) == ref["rank"]


@pytest.mark.parametrize("case", CASES)
def test_constrained_basis_spans_mgcvs_with_its_penalty_eigenvalues(gamsim1, reference, case):
    ref = reference[case]
    basis, x = fitted_basis(gamsim1, ref)
    ours = basis.design(x[:reference["rows"]])
    theirs = np.asarray(ref["X_constrained"])
    coef = np.linalg.lstsq(theirs, ours, rcond=None)[0]
    np.testing.assert_allclose(theirs @ coef, ours, atol=1e-12)
    # mgcv's unscaled penalty (scale.penalty = FALSE): ours times its scale
    eig = np.sort(np.linalg.eigvalsh(basis.constrained_penalty() * basis.penalty_scale_))[::-1]
    theirs_eig = np.asarray(ref["S_constrained_eigen"])
    np.testing.assert_allclose(eig, theirs_eig, rtol=0, atol=1e-12 * theirs_eig.max())
    np.testing.assert_allclose(basis.design(x).sum(axis=0), 0.0, atol=1e-9)


def test_mixed_parts_cr_keeps_the_line_cc_has_no_fixed_part():
    x = np.random.default_rng(1).uniform(-2, 3, size=500)
    cr = CubicRegressionSpline(8).fit(x)
    F, R, d = cr.mixed_parts()
    assert F.shape == (7, 1) and R.shape == (7, 6) and np.all(d > 0)
    trend = cr.design(x) @ F[:, 0]
    slope, intercept = np.polyfit(x, trend, 1)
    np.testing.assert_allclose(trend, slope * x + intercept, atol=1e-10)
    cc = CyclicCubicSpline(8).fit(x)
    F, R, _ = cc.mixed_parts()
    assert F.shape == (6, 0) and R.shape == (6, 6)
    np.testing.assert_allclose(R.T @ cc.constrained_penalty() @ R, np.eye(6), atol=1e-10)


def test_a_cyclic_spline_joins_smoothly_at_the_ends_and_wraps():
    x = np.random.default_rng(2).uniform(0.2, 23.5, size=300)
    cc = CyclicCubicSpline(7, ends=(0, 24)).fit(x)
    c = np.random.default_rng(3).normal(size=6)
    eps = 1e-4

    def f(t):
        return cc.basis(np.asarray(t, dtype=float)) @ c

    lo, hi = f([0.0, eps, 2 * eps]), f([24.0 - 2 * eps, 24.0 - eps, 24.0])
    assert lo[0] == pytest.approx(hi[2], abs=1e-12)  # value
    assert (lo[1] - lo[0]) / eps == pytest.approx((hi[2] - hi[1]) / eps, abs=1e-3)  # slope
    curv_lo = (lo[2] - 2 * lo[1] + lo[0]) / eps ** 2
    curv_hi = (hi[2] - 2 * hi[1] + hi[0]) / eps ** 2
    assert curv_lo == pytest.approx(curv_hi, abs=1e-2 * max(1.0, abs(curv_lo)))
    grid = np.linspace(0.0, 24.0, 49)
    np.testing.assert_allclose(cc.basis(grid + 24.0), cc.basis(grid), atol=1e-12)
    np.testing.assert_allclose(cc.basis(grid - 48.0), cc.basis(grid), atol=1e-12)


def test_cr_is_linear_beyond_the_end_knots():
    x = np.linspace(0.0, 1.0, 101)
    cr = CubicRegressionSpline(6).fit(x)
    c = np.random.default_rng(4).normal(size=6)
    out = cr.basis(np.array([1.0, 1.5, 2.0, 3.0])) @ c
    assert out[1] - out[0] == pytest.approx(out[2] - out[1], rel=1e-12)
    assert out[3] - out[2] == pytest.approx(2 * (out[2] - out[1]), rel=1e-12)


def test_registry_names_mgcvs_bases():
    assert {"ps", "cr", "cc"} <= set(BASES)
    for bs, cls in BASES.items():
        assert cls.bs == bs


@pytest.mark.parametrize("make, match", [
    (lambda: CubicRegressionSpline(2), r"k=2 is too small for a bs = 'cr' smooth: k must "
                                       r"be an integer >= 3"),
    (lambda: CyclicCubicSpline(3), r"k=3 is too small for a bs = 'cc' smooth.*>= 4"),
    (lambda: CyclicCubicSpline(5, ends=(1.0, 1.0)), r"a < b"),
    (lambda: CyclicCubicSpline(5, ends=(0.0,)), r"two numbers \(a, b\)"),
    (lambda: CyclicCubicSpline(5, ends=(0.0, 0.5)).fit(np.linspace(0, 1, 20)),
     r"ends \(0, 0.5\) do not cover the covariate's values, from 0 to 1"),
    (lambda: CubicRegressionSpline(10).fit(np.repeat(np.arange(6.0), 5)),
     r"only 6 distinct values: use k <= 6"),
    (lambda: make_basis("cr", 5, ends=(0, 1)), r"cyclic smooths \(bs='cc'\) only"),
    (lambda: make_basis("xx", 5), r"unknown smooth basis bs='xx'"),
    (lambda: SmoothTerm("hour", 3, "cc"), r"smooth of 'hour': k=3 is too small"),
])
def test_bad_parameters_and_covariates(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_knots_skip_empty_bins():
    """Binned: values of weight 0 (empty bins) place no knots, as mgcv places them over
    the occupied bins only."""
    values = np.linspace(0.0, 1.0, 11)
    weights = np.r_[3.0, 0, 0, 0, 0, 1, 2, 1, 1, 2, 5]
    cr = CubicRegressionSpline(4).fit(values, weights=weights)
    np.testing.assert_allclose(cr.knots_, np.quantile(values[weights > 0],
                                                      np.linspace(0, 1, 4)))
    np.testing.assert_allclose(weights @ cr.design(values), 0.0, atol=1e-12)


@pytest.mark.parametrize("entry, columns, bs", [
    ("gam_reml", ["x0", "x1", "x2"], ["cr", "cc", "cr"]),
    ("gam_null_cc", ["x0", "x2", "x3"], ["cr", "cr", "cc"]),
])
def test_the_fit_at_mgcvs_smoothing_parameters_is_mgcvs(gamsim1, reference, entry, columns,
                                                        bs):
    """``gam(... + s(fac, bs = "re"), method = "REML")`` evaluated at mgcv's own smoothing
    parameters (λ_j = sp_j: the cr and cc penalties are scaled as mgcv's; τ = sp^{-1/2}), so
    that the optimizers' stopping points drop out: fitted values 1e-10 relative (measured
    6.1e-13), edf 1e-9 (1.1e-12), the REML score 1e-6 (1.1e-8), Ref.df 1e-9, the statistic
    1e-5 relative (3.9e-7: mgcv's test uses its scale estimate; s(x2) 1e-3, 5.9e-4 — its
    fractional Ref.df blends two eigen-directions, see
    tests/estimators/test_additive_significance.py) and, on gam_null_cc, whose cyclic s(x3)
    (no effect in gamSim(1)) gets mgcv's random-effect test, its p-value 1e-6 absolute
    (0.4088127 vs mgcv's 0.4088129)."""
    ref = reference[entry]
    spec = AdditiveSpec(family=get_family("gaussian"), fit_intercept=True,
                        fixed_names=("(Intercept)",), factors=(("fac", (), "diagonal"),),
                        smooths=tuple(SmoothTerm(c, 10, b) for c, b in zip(columns, bs)))
    n = len(gamsim1)
    bases = row_bases(spec, [gamsim1[c].to_numpy() for c in columns], np.ones(n), False, 1000)
    codes, levels = pd.factorize(gamsim1["fac"], sort=True)
    model = AdditiveSystem(np.ones((n, 1)), bases, codes, len(levels), False)
    reml = model.reml(gamsim1["y"].to_numpy(), np.ones(n))
    log_tau = -0.5 * np.log(list(ref["sp"].values()))
    fit = reml.fit_at(log_tau, SimpleNamespace(fmin=reml.criterion(log_tau)))
    rows = np.asarray(ref["fitted_rows"]) - 1
    np.testing.assert_allclose(model.linear_predictor(fit)[rows], ref["fitted"], rtol=1e-10)
    np.testing.assert_allclose(fit.edf, list(ref["edf"].values()), rtol=0, atol=1e-9)
    assert fit.criterion / 2 == pytest.approx(ref["reml_score"], abs=1e-6)
    ref_df, tests = fit.significance()
    table = ref["s_table"]
    np.testing.assert_allclose(ref_df, table["ref_df"][:3], rtol=0, atol=1e-9)
    fractional = [columns.index("x2")]  # Ref.df 8.99: two eigen-directions blended
    exact = [j for j in range(3) if j not in fractional]
    statistic = tests[:, 0] / ref_df  # mgcv's F
    np.testing.assert_allclose(statistic[exact], np.asarray(table["stat"])[exact], rtol=1e-5)
    np.testing.assert_allclose(statistic[fractional], np.asarray(table["stat"])[fractional],
                               rtol=1e-3)
    np.testing.assert_allclose(tests[:, 1], table["p_value"][:3], rtol=0, atol=1e-6)
