"""skmixed._model.dense_laplace: the exact gradient of the several-factor Laplace deviance
on the dense system (random slopes, the negative binomial's size) equals central
differences of the deviance — the Laplace one over (θ, β, log k) and the nAGQ = 0 one
over θ — and a fit by it equals the finite-difference path's in fewer evaluations."""

import numpy as np
import pytest
from test_multilevel_glmm import _slopes_model
from test_scalar_laplace import assert_same_fit

from skmixed import MixedGLM
from skmixed._model import dense_laplace, multilevel_fit, multilevel_glmm
from skmixed._model.dense_laplace import DenseLaplace, dense_laplace_applies
from skmixed._model.multilevel_glmm import MultiLaplace
from skmixed.families import get_family


def _args(family_name, seed):
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


@pytest.mark.parametrize("point", list(POINTS))
@pytest.mark.parametrize("family_name", ["binomial", "poisson", "nbinom2"])
def test_the_gradient_is_the_deviances(family_name, point):
    args = _args(family_name, seed=5)
    lap = DenseLaplace(*args)
    x = np.array(POINTS[point][:6 + lap.n_extra])
    f, g = lap.value_and_grad(x)

    def deviance(x):
        ref = MultiLaplace(*args)
        u, eta, system = ref.modes(x, tol=1e-14)
        return ref.laplace_deviance(eta, u, system)

    assert f == pytest.approx(deviance(x), rel=1e-12)
    scale = np.maximum(1.0, np.abs(g))
    np.testing.assert_array_less(np.abs(g - _central(deviance, x)) / scale, 2e-6)
    if point.startswith("zero"):  # d depends on θ through TT': stationary at T = 0
        zero = np.flatnonzero(x[:4] == 0.0)
        np.testing.assert_array_equal(g[zero], 0.0)


@pytest.mark.parametrize("family_name", ["binomial", "poisson", "nbinom2"])
def test_the_first_stage_gradient_is_the_joint_deviances(family_name):
    """Over θ with β among the modes (lme4's nAGQ = 0), the family's size fixed."""
    args = _args(family_name, seed=7)
    x = np.array(POINTS["interior"])
    lap = DenseLaplace(*args)
    lap.fpar = 2.0
    lap._joint = (x[4:6].copy(), None, None)
    f, g = lap.joint_value_and_grad(x[:4])

    def deviance(theta):
        ref = MultiLaplace(*args)
        ref.fpar = 2.0
        return ref.joint_modes(ref.thetas(theta), x[4:6].copy(), tol=1e-14)[2]

    assert f == pytest.approx(deviance(x[:4]), rel=1e-12)
    np.testing.assert_array_less(np.abs(g - _central(deviance, x[:4])), 2e-6 * np.maximum(1, np.abs(g)))


def test_leverages_of_rows_of_unequal_length(monkeypatch):
    """Rows with different numbers of entries (no row pairs) take the chunked product: the
    same leverages."""
    args = _args("binomial", seed=3)
    lap = DenseLaplace(*args)
    C = np.random.default_rng(0).normal(size=(lap.Z.shape[1],) * 2)
    C = C + C.T
    by_pairs = lap._leverages(C)
    lap._pairs = ()
    monkeypatch.setattr(dense_laplace, "LEVERAGE_CHUNK", 37)
    np.testing.assert_allclose(lap._leverages(C), by_pairs, rtol=1e-12, atol=1e-12)
    Z = lap.Z.toarray()
    np.testing.assert_allclose(by_pairs, np.einsum("ia,ab,ib->i", Z, C, Z), rtol=1e-12)


def test_which_models_take_the_dense_exact_path(monkeypatch):
    args = _args("binomial", seed=3)
    y, w, factors = args[1], args[4], args[5]
    assert dense_laplace_applies(factors, get_family("binomial", None), y, w)
    assert dense_laplace_applies(factors, get_family("poisson", None), y, w)
    assert dense_laplace_applies(factors, get_family("nbinom2", None), y, w)
    # the expected information in PIRLS (lme4's probit): the adjoint would need the observed
    assert not dense_laplace_applies(factors, get_family("binomial", "probit"), y, w)
    monkeypatch.setattr(multilevel_glmm, "DENSE_SYSTEM_COLUMNS", 57)  # 25·2 + 8 columns
    assert not dense_laplace_applies(factors, get_family("binomial", None), y, w)


@pytest.mark.parametrize("family_name", ["binomial", "nbinom2"])
def test_a_fit_equals_the_finite_difference_paths(family_name, monkeypatch):
    _, X, y = _slopes_model(family_name, seed=11, n=800)
    slopes = {"g1": ["x"]}
    exact = MixedGLM(family=family_name, groups=["g1", "g2"], random_slopes=slopes).fit(X, y)
    monkeypatch.setattr(multilevel_fit, "dense_laplace_applies", lambda *a: False)
    general = MixedGLM(family=family_name, groups=["g1", "g2"], random_slopes=slopes).fit(X, y)
    assert exact.optimization_.n_evals < general.optimization_.n_evals / 3
    assert_same_fit(exact, general)
    if family_name == "nbinom2":
        assert exact.dispersion_ == pytest.approx(general.dispersion_, rel=1e-3)
