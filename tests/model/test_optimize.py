"""The θ optimizer: saddle escape at a zero diagonal element, convergence record."""

import numpy as np
import pytest

from skmixed import MixedLM
from skmixed._model.optimize import _escape_saddle, _hessian, _ThetaSpace, minimize_theta
from skmixed._model.terms import RandomEffectTerm
from skmixed.datasets import make_multilevel


class DoubleWell:
    """f(θ) = (θ² − 0.25)²: stationary (a maximum) at θ = 0, minima at θ = ±0.5 — the shape
    of a profiled criterion in a diagonal element of T whose variance is positive."""

    def value_and_grad(self, theta):
        t = float(theta[0])
        return (t * t - 0.25) ** 2, np.array([4.0 * t * (t * t - 0.25)])


def test_escape_saddle_leaves_a_maximum_at_zero():
    term = RandomEffectTerm(("(Intercept)",))
    fun = DoubleWell().value_and_grad
    theta = np.zeros(1)
    f0, g0 = fun(theta)
    assert g0[0] == 0.0  # stationary: a gradient-only test would call this converged
    H = _hessian(fun, theta, g0)
    escaped = _escape_saddle(fun, _ThetaSpace(term), theta, f0, H)
    assert escaped is not None
    assert escaped[1] < f0 and escaped[0][0] > 0.0


def test_escape_saddle_keeps_a_minimum():
    term = RandomEffectTerm(("(Intercept)",))
    fun = DoubleWell().value_and_grad
    theta = np.array([0.5])
    f, g = fun(theta)
    assert _escape_saddle(fun, _ThetaSpace(term), theta, f, _hessian(fun, theta, g)) is None


def test_minimize_theta_reaches_the_minimum_and_records_it():
    term = RandomEffectTerm(("(Intercept)",))
    opt = minimize_theta(DoubleWell(), term, tol=1e-12)
    assert opt.converged
    np.testing.assert_allclose(opt.theta_final, [0.5], rtol=1e-6)
    assert opt.fmin < 1e-12 and opt.decrement <= 1e-12
    assert opt.n_evals > 0 and opt.n_iter >= 1


def test_fit_does_not_stop_on_the_zero_variance_saddle():
    """Regression: 10,000 rows in 2,000 groups (5 rows each); the first L-BFGS-B step landed
    on θ = 0, where the gradient is exactly 0, and the fit reported a singular optimum with
    a REML criterion 579 units above the real one (θ ≈ 0.49)."""
    df = make_multilevel(10_000, 2_000, random_state=12358)
    model = MixedLM(groups="g").fit(df[["g", "x", "b"]], df["y"])
    assert model.converged_
    assert model.theta_[0] > 0.3
    assert model.reml_criterion_ < 29_900  # θ = 0 gives 30,412.6 on these data


@pytest.mark.parametrize("covariance", ["unstructured", "diagonal"])
def test_canonical_theta_has_nonnegative_diagonal_and_same_covariance(covariance):
    term = RandomEffectTerm(("(Intercept)", "x", "z"), covariance)
    rng = np.random.default_rng(0)
    theta = rng.normal(size=term.n_theta)
    canon = term.canonical(theta)
    T, Tc = term.factor(theta), term.factor(canon)
    assert np.all(np.diag(Tc) >= 0)
    np.testing.assert_allclose(Tc @ Tc.T, T @ T.T, rtol=1e-14)
