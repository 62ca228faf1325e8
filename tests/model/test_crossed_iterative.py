"""The iterative REML of crossed intercept-only factors (skmixed._model.crossed_iterative):

* the conjugate-gradient solver against dense solves;
* the Schur operator against the spherical system built densely;
* with exact traces (the probes replaced by the scaled unit vectors, where Hutchinson's
  estimator is the trace itself) the Newton iteration converges to the exact REML optimum
  of :class:`~skmixed._model.multilevel.ScalarFactorsDeviance` (θ 1e-6 relative);
* with the default 32 random probes, the Monte-Carlo error against the exact optimum is
  bounded as the user guide states it (see the test's docstring for what was measured).
"""

import numpy as np
import pytest
from scipy import linalg, sparse

from skmixed._model import crossed_iterative
from skmixed._model.crossed_iterative import IterativeREML, PCGError, block_pcg
from skmixed._model.multilevel import FactorColumns, MultiCrossproducts, ScalarFactorsDeviance
from skmixed._model.multilevel_fit import _moment_start
from skmixed._model.optimize import minimize
from skmixed._model.spaces import ThetaSpace
from skmixed._model.terms import RandomEffectTerm


def _crossed(n=6000, levels=(400, 150, 30), sds=(0.6, 0.4, 0.3), seed=0):
    rng = np.random.default_rng(seed)
    codes = [np.concatenate([np.arange(G), rng.integers(0, G, n - G)]) for G in levels]
    x = rng.normal(size=n)
    y = 1.0 + 0.5 * x + sum(s * rng.normal(size=G)[c] for s, G, c in zip(sds, levels, codes))
    y = y + rng.normal(size=n)
    X = np.column_stack([np.ones(n), x - x.mean()])
    term = RandomEffectTerm(["(Intercept)"], "unstructured")
    cols = [FactorColumns(c, G, np.ones((n, 1)), term) for c, G in zip(codes, levels)]
    return MultiCrossproducts.from_rows(X, y - y.mean(), np.ones(n), cols), cols


def _exact(stats, cols):
    obj = ScalarFactorsDeviance(stats, cols, reml=True)
    opt = minimize(obj, ThetaSpace([c.term for c in cols], _moment_start(stats, cols)),
                   method="log-lbfgs", tol=1e-12, max_iter=1000)
    return obj, opt.theta_final


def test_block_pcg_solves_every_column():
    rng = np.random.default_rng(1)
    A = rng.normal(size=(60, 60))
    A = A @ A.T + 60 * np.eye(60)
    B = rng.normal(size=(60, 5))
    d = np.diag(A).copy()
    X, it = block_pcg(lambda V: A @ V, lambda R: R / d[:, None], B, tol=1e-12)
    np.testing.assert_allclose(X, linalg.solve(A, B), rtol=1e-9, atol=1e-12)
    # a warm start at the solution needs no iteration
    X2, it2 = block_pcg(lambda V: A @ V, lambda R: R / d[:, None], B, X, tol=1e-8)
    assert it2 == 0 and it > 0
    with pytest.raises(PCGError, match="did not converge"):
        block_pcg(lambda V: A @ V, lambda R: R, B, tol=1e-14, max_iter=2)


def test_schur_operator_and_full_solve_equal_the_dense_system():
    stats, cols = _crossed(n=800, levels=(60, 25, 7))
    it = IterativeREML(stats, cols)
    theta = np.array([0.7, 0.4, 1.3])
    op = it.op
    op.set_theta(theta)
    lam = np.repeat(theta, [c.n_levels for c in cols])
    ZZ = stats.ZZ.toarray()
    Q = ZZ.shape[0]
    M = np.block([[lam[:, None] * ZZ * lam[None, :] + np.eye(Q), lam[:, None] * stats.ZX],
                  [(lam[:, None] * stats.ZX).T, stats.XtX]])
    Q1 = op.Q1
    S = M[Q1:, Q1:] - M[Q1:, :Q1] @ linalg.solve(M[:Q1, :Q1], M[:Q1, Q1:])
    V = np.random.default_rng(2).normal(size=(S.shape[0], 3))
    np.testing.assert_allclose(op.matvec(V), S @ V, rtol=1e-10, atol=1e-10)
    rhs = np.random.default_rng(3).normal(size=(M.shape[0], 2))
    x1, xs = it._solve_full(rhs[:Q1], rhs[Q1:], tol=1e-12)
    np.testing.assert_allclose(np.vstack([x1, xs]), linalg.solve(M, rhs), rtol=1e-8,
                               atol=1e-10)


@pytest.mark.parametrize("levels", [(400, 150), (400, 150, 30)])
def test_exact_traces_reach_the_exact_optimum(levels):
    """Probes = √m × the unit vectors: Hutchinson's mean is the exact trace, so the
    iteration's root is the REML optimum itself (measured: θ 2e-8 relative, 4-5 steps)."""
    stats, cols = _crossed(levels=levels, sds=(0.6, 0.4, 0.3)[:len(levels)])
    obj, theta_exact = _exact(stats, cols)
    it = IterativeREML(stats, cols)
    m = it.op.Qr + it.op.p
    it.Zp, it.n_probes, it.pw = np.sqrt(m) * np.eye(m), m, None
    fit = it.fit(_moment_start(stats, cols))
    assert fit.converged and fit.n_iter <= 10
    np.testing.assert_allclose(fit.theta, theta_exact, rtol=1e-6)
    state = obj.evaluate(theta_exact)
    assert fit.sigma2 == pytest.approx(state.penalized_rss / obj.dof, rel=1e-8)
    np.testing.assert_allclose(fit.beta, state.beta, rtol=1e-6, atol=1e-7)
    # the gradient the result reports is the exact criterion's (there, ~0)
    assert np.all(np.abs(fit.gradient) < 1e-4)


def test_random_probes_stay_within_the_stated_error(monkeypatch):
    """32 random probes (the default), 20,000 rows, 1,000 × 300 levels: the exact
    criterion at the iterative θ within 1e-3 of its minimum, θ within 5e-3 relative,
    fixed effects within 1e-3 of their SEs, SEs 1e-3 and σ² 1e-4 relative (measured over
    five data seeds: 1.1e-4, 4.7e-4, 4e-5, 2.7e-4, 1.5e-5)."""
    monkeypatch.setattr(crossed_iterative, "EXACT_TRACES_UP_TO", 0)
    stats, cols = _crossed(n=20000, levels=(1000, 300))
    obj, theta_exact = _exact(stats, cols)
    fit = IterativeREML(stats, cols).fit(_moment_start(stats, cols))
    assert fit.converged and not fit.exact_traces and fit.n_probes == 32
    assert obj(fit.theta) - obj(theta_exact) < 1e-3
    np.testing.assert_allclose(fit.theta, theta_exact, rtol=5e-3)
    state = obj.evaluate(theta_exact)
    sigma2 = state.penalized_rss / obj.dof
    cov = sigma2 * linalg.inv(state.S)
    se = np.sqrt(np.diag(cov))
    assert np.all(np.abs(fit.beta - state.beta) < 1e-3 * se)
    np.testing.assert_allclose(np.sqrt(np.diag(fit.sigma2 * fit.fixed_cov_rel)), se,
                               rtol=1e-3)
    assert fit.sigma2 == pytest.approx(sigma2, rel=1e-4)


def test_small_systems_get_exact_traces():
    """Up to EXACT_TRACES_UP_TO columns of S the probes are its scaled unit vectors."""
    stats, cols = _crossed(n=3000, levels=(200, 40))
    it = IterativeREML(stats, cols)
    m = it.op.Qr + it.op.p
    assert it.exact_traces and it.n_probes == m
    np.testing.assert_array_equal(it.Zp, np.sqrt(m) * np.eye(m))


def test_a_zero_variance_factor_goes_to_the_boundary():
    """A factor without variance: θ → 0 as the exact optimum's (both below 0.02)."""
    stats, cols = _crossed(n=8000, levels=(500, 200), sds=(0.6, 0.0))
    _, theta_exact = _exact(stats, cols)
    fit = IterativeREML(stats, cols).fit(_moment_start(stats, cols))
    assert theta_exact[1] < 0.05 and fit.theta[1] < 0.05
    assert fit.theta[0] == pytest.approx(theta_exact[0], rel=1e-2)


def test_the_probes_are_fixed(monkeypatch):
    """The same data give the same fit (a fixed seed, no dependence on threads)."""
    monkeypatch.setattr(crossed_iterative, "EXACT_TRACES_UP_TO", 0)
    stats, cols = _crossed(n=4000, levels=(300, 100))
    a = IterativeREML(stats, cols).fit(_moment_start(stats, cols))
    b = IterativeREML(stats, cols).fit(_moment_start(stats, cols))
    np.testing.assert_array_equal(a.theta, b.theta)
    np.testing.assert_array_equal(a.beta, b.beta)


def test_sparse_inputs_are_not_densified():
    """The operator keeps the level-pair tables sparse."""
    stats, cols = _crossed(n=4000, levels=(300, 100))
    op = IterativeREML(stats, cols).op
    assert sparse.issparse(op.B) and sparse.issparse(op.Bt) and sparse.issparse(op.ZZr)
