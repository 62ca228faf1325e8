"""skmixed._model.result: FitResult, the fixed effects' covariance from the deviance's
Hessian, and the information criteria."""

import numpy as np
import pandas as pd

from skmixed._model.optimize import OptSummary
from skmixed._model.result import (FactorFit, FitResult, fixed_covariance,
                                   information_criteria, lme4_order)
from skmixed._model.terms import RandomEffectTerm


def test_fixed_covariance_is_twice_the_inverse_block():
    rng = np.random.default_rng(0)
    A = rng.normal(size=(5, 5))
    H = A @ A.T + 5 * np.eye(5)
    np.testing.assert_allclose(fixed_covariance(H, slice(0, 2)),
                               2 * np.linalg.inv(H)[:2, :2], rtol=1e-12)
    np.testing.assert_allclose(fixed_covariance(H, slice(3, 5)),
                               2 * np.linalg.inv(H)[3:, 3:], rtol=1e-12)


def test_a_singular_theta_direction_falls_back_to_the_fixed_block():
    """θ at the boundary with no curvature: H is singular, β's own block is not."""
    H = np.array([[4.0, 1.0, 0.0], [1.0, 3.0, 0.0], [0.0, 0.0, 0.0]])
    np.testing.assert_allclose(fixed_covariance(H, slice(0, 2)),
                               2 * np.linalg.inv(H[:2, :2]), rtol=1e-12)


def test_a_singular_fixed_block_gives_nan():
    H = np.zeros((3, 3))
    assert np.isnan(fixed_covariance(H, slice(0, 2))).all()


def test_information_criteria():
    aic, bic = information_criteria(100.0, 4, 50)
    assert aic == 108.0
    np.testing.assert_allclose(bic, 100.0 + 4 * np.log(50))


def _factor(name, n_levels, theta, internal=None):
    term = RandomEffectTerm(("(Intercept)",))
    return FactorFit(name=name, levels=pd.RangeIndex(n_levels), term=term,
                     theta=np.array([theta]),
                     theta_internal=np.array([theta if internal is None else internal]),
                     modes=np.zeros((n_levels, 1)), cond_var=np.ones((n_levels, 1)))


def _result(factors, criterion=50.0):
    opt = OptSummary(optimizer="test", theta_start=np.ones(1), theta_final=np.ones(1),
                     lower=np.zeros(1), fmin=criterion, gradient=np.zeros(1),
                     decrement=0.0, n_evals=1, n_iter=1, converged=True, message="")
    return FitResult(names=["(Intercept)"], beta=np.zeros(1), fixed_cov=np.eye(1),
                     dropped=[], factors=factors, sigma=1.0, criterion=criterion,
                     n_params=4, n_obs=100.0, opt=opt)


def test_fit_result_theta_in_lme4_order_and_criteria():
    """θ of all factors in lme4's order (more levels first, ties in the user's order)."""
    r = _result([_factor("small", 5, 0.1), _factor("big", 50, 0.2), _factor("tie", 5, 0.3)])
    assert lme4_order(r.factors) == [1, 0, 2]
    np.testing.assert_array_equal(r.theta(), [0.2, 0.1, 0.3])
    assert r.loglik == -25.0
    assert r.information_criteria == information_criteria(50.0, 4, 100.0)


def test_fit_result_singular_reads_the_internal_theta():
    """A θ tiny only because of the slope column's units is not a singular fit."""
    assert not _result([_factor("g", 5, 1e-6, internal=0.5)]).singular()
    assert _result([_factor("g", 5, 0.5, internal=1e-6)]).singular()
    assert _result([_factor("g", 5, 0.5, internal=-1e-6)]).singular()
