"""Profile-likelihood intervals of a one-factor GLMM (lme4's ``confint(m, method =
"profile")`` for ``glmer``): the Laplace (or adaptive quadrature) deviance of
:class:`.glmm.LaplaceDeviance`, with its exact gradient, over the user's parameters
``y = (SDs and correlations, β)``; each profile point minimizes it over the others by
:class:`.profiles.NewtonProfile` (the Hessian at the optimum, BFGS-updated), so a point
costs a few passes over the rows (lme4 re-optimizes with a derivative-free method).

Families with a dispersion or size parameter are not profiled (as lme4: "can't (yet)
profile GLMMs with non-fixed scale parameters").
"""

import numpy as np
from scipy import linalg

from .optimize import minimize
from .profiles import (NewtonProfile, VarianceMap, profile_intervals, profile_traces,
                       richardson_gradient)
from .spaces import ParamSpace, ThetaSpace

__all__ = ["GLMMProfile"]


class GLMMProfile:
    """The deviance of ``objective`` (a LaplaceDeviance over internal ``x = (β, θ)``) over
    ``y = (φ, β_user)``: ``φ`` the SDs/correlations of ``factor`` (a FactorMap),
    ``β_user = A β``; ``beta``/``theta`` the fit's values on the user's scale."""

    def __init__(self, objective, factor, A, names, beta, theta_user):
        if objective.param is not None:
            raise ValueError("profile intervals of a GLMM with a dispersion or size "
                             "parameter (Gamma, negative binomial) are not implemented (as "
                             "lme4's); use method='wald'.")
        self.objective, self.A, self.names = objective, A, list(names)
        self.vmap = VarianceMap([factor], factor.term.n_theta, with_sigma=False)
        self.k = factor.term.n_theta
        self.p = len(names)
        theta_int = np.asarray(theta_user, dtype=float) / factor.scale[factor.term.rows]
        self.x0 = np.concatenate([linalg.solve(A, beta), theta_int])

    def to_x(self, y):
        theta, _ = self.vmap.from_user(y[:self.k])
        return np.concatenate([linalg.solve(self.A, y[self.k:]), theta])

    def _theta_jacobian(self, phi):
        return richardson_gradient(lambda v: self.vmap.from_user(v)[0], phi, rel=1e-3)

    def value_and_grad(self, y):
        f, g = self.objective.value_and_grad(self.to_x(y))
        if not np.isfinite(f):
            return np.inf, np.zeros_like(y)
        J = self._theta_jacobian(y[:self.k])  # (k φ, k θ)
        return f, np.concatenate([J @ g[self.p:], linalg.solve(self.A.T, g[:self.p])])

    def optimum(self, tol=1e-10):
        """The fit's optimum polished by Newton steps: ŷ, the deviance, its Hessian over
        y."""
        term = self.vmap.factors[0].term
        opt = minimize(self.objective, ParamSpace(ThetaSpace(term, self.x0[self.p:]),
                                                  self.x0[:self.p]),
                       method="newton", tol=tol, final_hessian=True)
        x = opt.theta_final
        theta = term.canonical(x[self.p:])
        y = np.concatenate([self.vmap.to_user(theta), self.A @ x[:self.p]])
        # dx/dy: θ by φ, β by β_user; the Hessian over x to y
        J = np.zeros((self.p + self.k, self.k + self.p))
        J[self.p:, :self.k] = self._theta_jacobian(y[:self.k]).T
        J[:self.p, self.k:] = linalg.inv(self.A)
        x_sign = np.concatenate([x[:self.p], theta])  # the Hessian at canonical θ
        f, _ = self.objective.value_and_grad(x_sign)
        H = J.T @ opt.hessian @ J
        return y, min(f, opt.fmin), H

    def intervals(self, level, which=None):
        """name → (estimate, lower, upper) of the variance parameters and fixed effects."""
        return profile_intervals(self._zetas(which), level)

    def traces(self, level, which=None, n_points=21):
        """(name, values, ζ) per parameter (:func:`.profiles.profile_traces`)."""
        return profile_traces(self._zetas(which), level, n_points)

    def _zetas(self, which):
        y, f, H = self.optimum()
        names = self.vmap.names() + self.names
        bounds = self.vmap.bounds() + [(-np.inf, np.inf)] * self.p
        try:
            cov = 2.0 * linalg.inv(H)
        except linalg.LinAlgError:
            cov = 2.0 * linalg.pinv(H)
        for j, name in enumerate(names):
            if which is not None and name not in which:
                continue
            se = np.sqrt(cov[j, j]) if cov[j, j] > 0 else 0.1 * max(abs(y[j]), 1.0)
            yield (name, y[j], NewtonProfile(self.value_and_grad, y, f, H, j, bounds), se,
                   bounds[j])
