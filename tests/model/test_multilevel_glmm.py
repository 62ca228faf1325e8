"""skmixed._model.multilevel_glmm: the general several-factor Laplace path's dense system
(few random-effect columns: ``A`` dense, ``Z'VZ`` by bincounts over each row's column
pairs) equals the blocked sparse one — deviance, modes, conditional variances — for random
slopes and a negative binomial, and a fit by it equals the blocked path's."""

import numpy as np
import pandas as pd
import pytest

from skmixed import MixedGLM
from skmixed._model import multilevel_glmm
from skmixed._model.multilevel import FactorColumns
from skmixed._model.multilevel_glmm import DenseSystem, MultiLaplace
from skmixed._model.terms import RandomEffectTerm
from skmixed.families import get_family


def _slopes_model(family_name, seed=3, n=500):
    rng = np.random.default_rng(seed)
    g1, g2 = rng.integers(0, 25, n), rng.integers(0, 8, n)
    x = rng.normal(size=n)
    eta = 0.2 + 0.4 * x + rng.normal(0, 0.7, 25)[g1] + rng.normal(0, 0.3, 25)[g1] * x \
        + rng.normal(0, 0.5, 8)[g2]
    if family_name == "binomial":
        y = (rng.uniform(size=n) < 1 / (1 + np.exp(-eta))).astype(float)
    else:
        y = rng.negative_binomial(3, 3 / (3 + np.exp(eta))).astype(float)
    slope = RandomEffectTerm(("(Intercept)", "x"))
    factors = [FactorColumns(g1, 25, np.column_stack([np.ones(n), x]), slope),
               FactorColumns(g2, 8, np.ones((n, 1)), RandomEffectTerm(("(Intercept)",)))]
    X = np.column_stack([np.ones(n), x])
    return (X, y, np.empty(0), np.zeros(n), rng.uniform(0.5, 2.0, n), factors,
            get_family(family_name, None)), pd.DataFrame({"g1": g1, "g2": g2, "x": x}), y


@pytest.mark.parametrize("family_name", ["binomial", "nbinom2"])
def test_the_dense_system_equals_the_blocked_one(family_name, monkeypatch):
    args, _, _ = _slopes_model(family_name)
    dense = MultiLaplace(*args)
    monkeypatch.setattr(multilevel_glmm, "DENSE_SYSTEM_COLUMNS", 0)
    blocked = MultiLaplace(*args)
    assert dense.dense and not blocked.dense
    x = np.array([0.8, -0.2, 0.4, 0.6, 0.1, 0.3] + ([0.5] if dense.n_extra else []))
    u, eta, system = dense.modes(x)
    u_b, eta_b, system_b = blocked.modes(x)
    assert isinstance(system, DenseSystem)
    np.testing.assert_allclose(u, u_b, rtol=1e-9, atol=1e-11)
    assert dense.laplace_deviance(eta, u, system) == pytest.approx(
        blocked.laplace_deviance(eta_b, u_b, system_b), rel=1e-12)
    for a, b in zip(system.inverse_diagonal_blocks(args[5]),
                    system_b.inverse_diagonal_blocks(args[5])):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    beta, u, dev = dense.joint_modes([x[:3], x[3:4]], x[4:6].copy())
    beta_b, u_b, dev_b = blocked.joint_modes([x[:3], x[3:4]], x[4:6].copy())
    np.testing.assert_allclose(beta, beta_b, rtol=1e-9)
    assert dev == pytest.approx(dev_b, rel=1e-12)


def test_a_slopes_fit_by_the_dense_system_equals_the_blocked_one(monkeypatch):
    _, X, y = _slopes_model("binomial")
    model = MixedGLM(groups=["g1", "g2"], random_slopes={"g1": ["x"]})
    dense = model.fit(X, y)
    d = dense.deviance_, dense.theta_.copy(), dense.fixed_effects_.copy()
    monkeypatch.setattr(multilevel_glmm, "DENSE_SYSTEM_COLUMNS", 0)
    blocked = model.fit(X, y)
    assert d[0] == pytest.approx(blocked.deviance_, rel=1e-10)
    np.testing.assert_allclose(d[1], blocked.theta_, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(d[2]["std_error"], blocked.fixed_effects_["std_error"],
                               rtol=1e-4)


def test_rows_of_unequal_length_take_the_sparse_product():
    """Z'VZ by each row's column pairs needs every row to hold the same number of entries:
    rows of unequal length (one entry fewer, another one more: the same total) are formed
    by the sparse product instead, equal to Z'VZ (a review's probe, 2026-12-03)."""
    from scipy import sparse

    args, _, _ = _slopes_model("binomial", n=200)
    lap = MultiLaplace(*args)
    Z = lap.Z.tolil()
    row0 = Z.rows[0]
    Z[0, row0[-1]] = 0.0  # one entry fewer in row 0 …
    free = next(c for c in range(Z.shape[1]) if c not in Z.rows[1])
    Z[1, free] = 0.7  # … one more in row 1
    lap.Z = sparse.csr_matrix(Z)
    lap.Z.eliminate_zeros()
    lap.ZT = lap.Z.T.tocsr()
    lap._pairs = None
    assert lap.Z.nnz == lap.Z.shape[0] * 3
    wv = np.random.default_rng(0).uniform(size=lap.Z.shape[0])
    expected = (lap.Z.T @ sparse.diags(wv) @ lap.Z).toarray()
    np.testing.assert_allclose(lap._cross(wv), expected, rtol=1e-12, atol=1e-12)
    assert lap._pairs == ()


def test_modes_start_from_zero_where_the_last_modes_fail(monkeypatch):
    """From the last modes the Newton steps can reach η where the system is not positive
    definite (a review, 2026-12-04: η ~ 48 at a new θ); the modes then start from 0: the
    same modes, deviance and joint modes as a fresh object's."""
    from scipy import linalg

    args, _, _ = _slopes_model("binomial")
    x = np.array([0.8, -0.2, 0.4, 0.6, 0.1, 0.3])
    fresh = MultiLaplace(*args)
    u_f, eta_f, system_f = fresh.modes(x)
    beta_f = fresh.joint_modes(fresh.thetas(x), x[4:].copy())[0]
    lap = MultiLaplace(*args)
    lap.u = np.full(lap.u.size, 3.0)  # a finite start the steps fail from
    starts = []
    for name in ("_modes_from", "_joint_modes_from"):
        solve = getattr(MultiLaplace, name)

        def failing(self, *a, _solve=solve):
            starts.append(np.any(a[-3]))
            if np.any(a[-3]):
                raise linalg.LinAlgError("the Laplace system is not positive definite")
            return _solve(self, *a)

        monkeypatch.setattr(MultiLaplace, name, failing)
    u, eta, system = lap.modes(x)
    assert starts == [True, False]
    np.testing.assert_allclose(u, u_f, rtol=1e-12, atol=1e-14)
    assert lap.laplace_deviance(eta, u, system) == fresh.laplace_deviance(eta_f, u_f, system_f)
    lap.u = np.full(lap.u.size, 3.0)
    beta = lap.joint_modes(lap.thetas(x), x[4:].copy())[0]
    assert starts == [True, False, True, False]
    np.testing.assert_allclose(beta, beta_f, rtol=1e-12)
