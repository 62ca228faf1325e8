"""skmixed._model.pair_laplace: the exact gradient of the several-factor Laplace deviance
on the dense system (random slopes, the negative binomial's size) equals central
differences of the deviance — the Laplace one over (θ, β, log k) and the nAGQ = 0 one
over θ — and a fit by it equals the finite-difference path's in fewer evaluations."""

import numpy as np
import pytest
from test_multilevel_glmm import _slopes_model
from test_scalar_laplace import assert_same_fit

from skmixed import MixedGLM
from skmixed._model import multilevel_fit, multilevel_glmm, pair_laplace
from skmixed._model.pair_laplace import PairLaplace, pair_laplace_applies
from skmixed._model.multilevel_glmm import MultiLaplace
from skmixed.families import get_family


def _args(family_name, seed):
    if family_name in ("probit", "cloglog"):  # PIRLS on the expected information
        args = list(_slopes_model("binomial", seed=seed)[0])
        args[6] = get_family("binomial", family_name)
        return tuple(args)
    if family_name != "poisson":
        return _slopes_model(family_name, seed=seed)[0]
    args = list(_slopes_model("binomial", seed=seed)[0])
    args[1] = np.random.default_rng(seed).poisson(2.0, args[1].size).astype(float)
    args[6] = get_family("poisson", None)
    return tuple(args)


def _central(f, x, step=1e-6):
    return np.array([(f(x + e) - f(x - e)) / (2 * step) for e in step * np.eye(x.size)])


POINTS = {  # (θ of (1 + x | g1): T11, T21, T22; θ of (1 | g2); β; log k)
    "interior": [0.8, -0.2, 0.4, 0.6, 0.1, 0.3, 0.5],
    "large": [1.3, 0.5, 0.2, 1.1, -0.3, 0.5, 1.5],
    "zero intercept": [0.0, 0.0, 0.7, 1.1, 0.1, 0.3, 0.2],
    "zero factor": [0.5, 0.1, 0.3, 0.0, 0.1, 0.3, 0.5],
}


@pytest.fixture(params=["dense", "blocked"])
def system(request, monkeypatch):
    """The dense system, or the blocked one (the first factor's blocks, a dense rest)."""
    if request.param == "blocked":
        monkeypatch.setattr(multilevel_glmm, "DENSE_SYSTEM_COLUMNS", 0)
    return request.param


FAMILIES = ["binomial", "poisson", "nbinom2", "probit", "cloglog"]


@pytest.mark.parametrize("point", list(POINTS))
@pytest.mark.parametrize("family_name", FAMILIES)
def test_the_gradient_is_the_deviances(family_name, point, system):
    args = _args(family_name, seed=5)
    lap = PairLaplace(*args)
    assert lap.dense == (system == "dense")
    x = np.array(POINTS[point][:6 + lap.n_extra])
    f, g = lap.value_and_grad(x)

    def deviance(x):
        ref = PairLaplace(*args)  # its modes by Newton steps (observed information)
        u, eta, system = ref.modes(x, tol=1e-14)
        return ref.laplace_deviance(eta, u, system)

    assert f == pytest.approx(deviance(x), rel=1e-12)
    scale = np.maximum(1.0, np.abs(g))
    np.testing.assert_array_less(np.abs(g - _central(deviance, x)) / scale, 2e-6)
    if point.startswith("zero"):  # d depends on θ through TT': stationary at T = 0
        zero = np.flatnonzero(x[:4] == 0.0)
        np.testing.assert_array_equal(g[zero], 0.0)


@pytest.mark.parametrize("family_name", FAMILIES)
def test_the_first_stage_gradient_is_the_joint_deviances(family_name, system):
    """Over θ with β among the modes (lme4's nAGQ = 0), the family's size fixed."""
    args = _args(family_name, seed=7)
    x = np.array(POINTS["interior"])
    lap = PairLaplace(*args)
    lap.fpar = 2.0
    lap._joint = (x[4:6].copy(), None, None)
    f, g = lap.joint_value_and_grad(x[:4])

    def deviance(theta):
        ref = PairLaplace(*args)  # its modes by Newton steps (observed information)
        ref.fpar = 2.0
        return ref.joint_modes(ref.thetas(theta), x[4:6].copy(), tol=1e-14)[2]

    assert f == pytest.approx(deviance(x[:4]), rel=1e-12)
    np.testing.assert_array_less(np.abs(g - _central(deviance, x[:4])), 2e-6 * np.maximum(1, np.abs(g)))


def test_the_blocked_inverse_on_the_pattern_is_the_inverses(monkeypatch):
    """BlockedSystem.inverse_at on every cell of the rows' pairs (within a first-factor
    level, first factor × rest, among the rest) equals the dense A⁻¹ there, also with the
    levels taken in chunks smaller than a level's columns."""
    args = _args("binomial", seed=3)
    x = np.array(POINTS["interior"][:6])
    dense = MultiLaplace(*args)
    monkeypatch.setattr(multilevel_glmm, "DENSE_SYSTEM_COLUMNS", 0)
    blocked = MultiLaplace(*args)
    _, _, system = dense.modes(x)
    _, _, system_b = blocked.modes(x)
    cells = dense._row_pairs()[0]
    Q = dense.Z.shape[1]
    r, c = np.divmod(cells, Q)
    Q1 = args[5][0].width
    assert np.any((r < Q1) & (c < Q1)) and np.any((r < Q1) & (c >= Q1))
    assert np.any((r >= Q1) & (c >= Q1)) and np.any((r >= Q1) & (c < Q1))
    expected = np.linalg.inv(np.linalg.cholesky(system.L @ system.L.T)
                             @ np.linalg.cholesky(system.L @ system.L.T).T)
    np.testing.assert_allclose(system.inverse_at(cells), expected.ravel()[cells], rtol=1e-10)
    for chunk in (512, 3, 1):
        np.testing.assert_allclose(system_b.inverse_at(cells, chunk=chunk),
                                   expected.ravel()[cells], rtol=1e-9, atol=1e-13)


def test_which_models_take_the_exact_path(monkeypatch):
    args = _args("binomial", seed=3)
    y, w, factors = args[1], args[4], args[5]
    assert pair_laplace_applies(factors, get_family("binomial", None), y, w)
    assert pair_laplace_applies(factors, get_family("poisson", None), y, w)
    assert pair_laplace_applies(factors, get_family("nbinom2", None), y, w)
    # the expected information in PIRLS (lme4's probit): the adjoint on the observed one
    assert pair_laplace_applies(factors, get_family("binomial", "probit"), y, w)
    assert not pair_laplace_applies(factors, get_family("gamma", None), y + 1.0, w)
    binomial = get_family("binomial", None)
    monkeypatch.setattr(multilevel_glmm, "DENSE_SYSTEM_COLUMNS", 57)  # 25·2 + 8 columns
    assert pair_laplace_applies(factors, binomial, y, w)  # blocked: a rest of 8 columns
    monkeypatch.setattr(pair_laplace, "INVERSE_FLOPS", 50 * 8 ** 2 - 1)
    assert not pair_laplace_applies(factors, binomial, y, w)  # A⁻¹ on the pattern: Q₁Q_r²
    monkeypatch.setattr(pair_laplace, "INVERSE_FLOPS", 50 * 8 ** 2)
    assert pair_laplace_applies(factors, binomial, y, w)
    monkeypatch.setattr(pair_laplace, "DENSE_LIMIT", 7)  # a sparse rest: no inverse there
    assert not pair_laplace_applies(factors, binomial, y, w)
    monkeypatch.setattr(pair_laplace, "DENSE_LIMIT", 8)
    monkeypatch.setattr(multilevel_glmm, "PAIR_ROWS_LIMIT", y.size * 9 - 1)  # 3 per row
    assert not pair_laplace_applies(factors, binomial, y, w)


@pytest.mark.parametrize("family_name", ["binomial", "nbinom2"])
def test_a_fit_equals_the_finite_difference_paths(family_name, monkeypatch, system):
    """(The probit and cloglog links: against lme4, test_mixedglm_multilevel.py — the
    finite-difference path's Fisher-scoring modes stop short there.)"""
    _, X, y = _slopes_model(family_name, seed=11, n=800)

    def fit():
        return MixedGLM(family=family_name, groups=["g1", "g2"],
                        random_slopes={"g1": ["x"]}).fit(X, y)

    exact = fit()
    monkeypatch.setattr(multilevel_fit, "pair_laplace_applies", lambda *a: False)
    general = fit()
    assert exact.optimization_.n_evals < general.optimization_.n_evals / 3
    assert_same_fit(exact, general)
    if family_name == "nbinom2":
        assert exact.dispersion_ == pytest.approx(general.dispersion_, rel=1e-3)
