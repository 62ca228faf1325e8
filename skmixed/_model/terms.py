"""A random-effect term ``(1 + x1 + … | g)`` and its covariance parameters θ.

The relative covariance of the q random effects of one group is ``T T'`` (in units of σ²),
``T`` lower triangular. θ lists the free elements of ``T`` in lme4's order: the lower
triangle column by column (``"unstructured"``, lme4's ``(1 + x | g)``), or only the diagonal
(``"diagonal"``, lme4's ``(1 + x || g)``). Reported θ has a non-negative diagonal, as lme4's
(whose bounds are 0); the optimizer itself runs unconstrained (`canonical`).
"""

from dataclasses import dataclass, field

import numpy as np

__all__ = ["RandomEffectTerm"]


@dataclass(frozen=True)
class RandomEffectTerm:
    """Covariance structure of one grouping factor's random effects.

    Parameters
    ----------
    names : tuple of str
        Names of the random-effect covariates, ``"(Intercept)"`` first.
    covariance : {"unstructured", "diagonal"}
    """

    names: tuple
    covariance: str = "unstructured"
    rows: np.ndarray = field(init=False, repr=False, compare=False)
    cols: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        q = len(self.names)
        if self.covariance == "unstructured":
            pairs = [(a, b) for b in range(q) for a in range(b, q)]
        elif self.covariance == "diagonal":
            pairs = [(a, a) for a in range(q)]
        else:
            raise ValueError(f"unknown covariance {self.covariance!r}")
        object.__setattr__(self, "rows", np.array([a for a, _ in pairs], dtype=np.int64))
        object.__setattr__(self, "cols", np.array([b for _, b in pairs], dtype=np.int64))

    @property
    def q(self):
        return len(self.names)

    @property
    def n_theta(self):
        return len(self.rows)

    def theta_start(self):
        """lme4's start: 1 on the diagonal, 0 elsewhere."""
        return (self.rows == self.cols).astype(float)

    def theta_lower(self):
        """Lower bounds: 0 for diagonal elements, unbounded otherwise."""
        return np.where(self.rows == self.cols, 0.0, -np.inf)

    def factor(self, theta):
        """The lower-triangular relative covariance factor ``T(θ)``."""
        T = np.zeros((self.q, self.q))
        T[self.rows, self.cols] = theta
        return T

    def theta_from_covariance(self, cov):
        """θ of the relative covariance ``cov`` (q × q, positive definite): its lower
        Cholesky factor (``"unstructured"``) or the square roots of its diagonal."""
        cov = np.asarray(cov, dtype=float)
        if self.covariance == "unstructured":
            T = np.linalg.cholesky(cov)
        else:
            T = np.diag(np.sqrt(np.diag(cov)))
        return T[self.rows, self.cols]

    def canonical(self, theta):
        """θ with a non-negative diagonal: ``T T'`` is unchanged when a column of ``T`` flips
        sign, so the optimizer may run unconstrained and the sign is fixed afterwards."""
        T = self.factor(theta)
        T *= np.where(np.diag(T) < 0, -1.0, 1.0)[None, :]
        return T[self.rows, self.cols]

    def is_singular(self, theta, tol=1e-4):
        """lme4's ``isSingular``: a diagonal element of ``T`` at (near) zero."""
        diag = np.asarray(theta)[self.rows == self.cols]
        return bool(np.any(diag < tol))
