"""The P-spline basis (skmixed._model.smooth) against mgcv's smoothCon (``bs = "ps"``), the
reference made by tests/reference/mgcv_ps_basis.R on the gamsim1 data:

* knots, unconstrained design matrix and penalty equal to mgcv's (1e-12);
* the sum-to-zero constrained basis spans mgcv's column space with the same penalty: there
  is an orthogonal R with ``ours = mgcv · R`` and ``S_ours = R' S_mgcv R`` (mgcv's Householder
  QR picks one orthonormal null-space basis, ours another);
* the mixed-model split: null space = the penalty's kernel (the linear trend for m[1] = 2),
  range space with identity penalty;
* bad covariates raise clear errors.
"""


import numpy as np
import pytest

from skmixed._model.smooth import PSpline

CASES = ["x0_k10", "x2_k20", "x1_k8_m13"]


@pytest.fixture(scope="module")
def reference(load_reference):
    return load_reference("mgcv_ps_basis.json")


@pytest.mark.parametrize("case", CASES)
def test_basis_and_penalty_are_mgcvs(gamsim1, reference, case):
    ref = reference[case]
    x = gamsim1[ref["term"]].to_numpy()
    ps = PSpline(ref["k"], ref["m"]).fit(x)
    np.testing.assert_allclose(ps.knots_, ref["knots"], rtol=1e-13, atol=1e-13)
    rows = reference["rows"]
    # docs/additive.md: basis and penalty to 1e-12 (measured ≤ 5e-16 and 0)
    np.testing.assert_allclose(ps.basis(x[:rows]), ref["X"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(ps.penalty_, ref["S"], atol=1e-13)
    assert np.linalg.matrix_rank(ps.penalty_) == ref["rank"]


@pytest.mark.parametrize("case", CASES)
def test_constrained_basis_spans_mgcvs_with_the_same_penalty(gamsim1, reference, case):
    ref = reference[case]
    x = gamsim1[ref["term"]].to_numpy()
    ps = PSpline(ref["k"], ref["m"]).fit(x)
    ours = ps.design(x[:reference["rows"]])
    theirs = np.asarray(ref["X_constrained"])
    R = np.linalg.lstsq(theirs, ours, rcond=None)[0]
    np.testing.assert_allclose(theirs @ R, ours, atol=1e-12)
    # an orthogonal change of basis (measured 1.9e-13) carrying mgcv's penalty (3.9e-13)
    np.testing.assert_allclose(R.T @ R, np.eye(R.shape[0]), atol=1e-12)
    np.testing.assert_allclose(ps.constrained_penalty(),
                               R.T @ np.asarray(ref["S_constrained"]) @ R, atol=1e-12)
    # the constraint itself, over all the data
    np.testing.assert_allclose(ps.design(x).sum(axis=0), 0.0, atol=1e-9)


def test_mixed_parts_split_the_penalty():
    x = np.random.default_rng(0).uniform(-2, 3, size=500)
    ps = PSpline(12, (2, 2)).fit(x)
    F, R, d = ps.mixed_parts()
    S = ps.constrained_penalty()
    # 2nd-order differences: the null space is the linear trend (the constant is constrained)
    assert F.shape[1] == 1 and R.shape[1] == 12 - 1 - 1 and np.all(d > 0)
    np.testing.assert_allclose(S @ F, 0.0, atol=1e-10)
    np.testing.assert_allclose(R.T @ S @ R, np.eye(R.shape[1]), atol=1e-10)
    trend = ps.design(x) @ F
    slope, intercept = np.polyfit(x, trend[:, 0], 1)
    np.testing.assert_allclose(trend[:, 0], slope * x + intercept, atol=1e-8)


def test_bad_covariates_and_sizes():
    x = np.linspace(0.0, 1.0, 50)
    with pytest.raises(ValueError, match="constant covariate"):
        PSpline().fit(np.full(30, 2.5))
    with pytest.raises(ValueError, match="only 6 distinct values: use k <= 6"):
        PSpline(k=10).fit(np.repeat(np.arange(6.0), 5))
    with pytest.raises(ValueError, match="finite"):
        PSpline().fit(np.append(x, np.nan))
    with pytest.raises(ValueError, match="too small for B-splines of order 4"):
        PSpline(k=3)
    with pytest.raises(ValueError, match="difference penalty of order 5"):
        PSpline(k=5, m=(1, 5))
