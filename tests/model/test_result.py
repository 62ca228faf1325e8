"""skmixed._model.result: the fixed effects' covariance from the deviance's Hessian, and the
information criteria."""

import numpy as np

from skmixed._model.result import fixed_covariance, information_criteria


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
