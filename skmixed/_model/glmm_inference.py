"""Profile-likelihood intervals of a GLMM (lme4's ``confint(m, method = "profile")`` for
``glmer``): the Laplace (or adaptive quadrature) deviance — one factor
`glmm.LaplaceDeviance`, several the fit's `multilevel_glmm` deviance — with
its gradient (exact but for the general several-factor path), over the user's parameters
``y = (SDs and correlations, β)``; each profile point minimizes it over the others by
`profiles.NewtonProfile` (the Hessian at the optimum, BFGS-updated), so a point
costs a few passes over the rows (lme4 re-optimizes with a derivative-free method).

Families with a dispersion or size parameter are not profiled (as lme4: "can't (yet)
profile GLMMs with non-fixed scale parameters").
"""

import numpy as np
from scipy import linalg

from .optimize import minimize
from .profiles import NewtonProfile, VarianceMap, profile_intervals, profile_traces
from .spaces import ParamSpace, ThetaSpace

__all__ = ["GLMMProfile"]


class GLMMProfile:
    """The deviance of ``objective`` (one factor: a LaplaceDeviance over internal
    ``x = (β, θ)``; several: a MultiLaplace over ``x = (θ, β)``, ``beta_first=False``)
    over ``y = (φ, β_user)``: ``φ`` the SDs/correlations of ``factors`` (FactorMaps in
    lme4's order, their slices of the objective's θ), ``β_user = A β``; ``beta`` and
    ``theta_user`` the fit's values on the user's scale (θ in lme4's order)."""

    def __init__(self, objective, factors, A, names, beta, theta_user, beta_first=True):
        if objective.param is not None:
            raise ValueError("profile intervals of a GLMM with a dispersion or size "
                             "parameter (Gamma, negative binomial) are not implemented (as "
                             "lme4's); use method='wald'.")
        self.objective, self.A, self.names = objective, A, list(names)
        self.k = sum(f.term.n_theta for f in factors)
        self.vmap = VarianceMap(factors, self.k, with_sigma=False)
        self.p = len(names)
        self.beta_first = bool(beta_first)
        theta_user = np.asarray(theta_user, dtype=float)
        theta_int, pos = np.zeros(self.k), 0
        for f in factors:  # theta_user in lme4's order, the maps too
            n = f.term.n_theta
            theta_int[f.start:f.stop] = theta_user[pos:pos + n] / f.scale[f.term.rows]
            pos += n
        self.x0 = self._x(theta_int, linalg.solve(A, beta))
        self.terms = [f.term for f in sorted(factors, key=lambda f: f.start)]

    def _x(self, theta, beta):
        return (np.concatenate([beta, theta]) if self.beta_first
                else np.concatenate([theta, beta]))

    def _split(self, x):
        """(θ, β) of the objective's x."""
        if self.beta_first:
            return x[self.p:], x[:self.p]
        return x[:self.k], x[self.k:]

    def to_x(self, y):
        theta, _ = self.vmap.from_user(y[:self.k])
        return self._x(theta, linalg.solve(self.A, y[self.k:]))

    def _theta_jacobian(self, phi):
        return self.vmap.jacobian(phi)

    def value_and_grad(self, y):
        x = self.to_x(y)
        if not np.all(np.isfinite(x)):  # correlations that make no correlation matrix
            return np.inf, np.zeros_like(y)
        f, g = self.objective.value_and_grad(x)
        if not np.isfinite(f):
            return np.inf, np.zeros_like(y)
        g_theta, g_beta = self._split(g)
        J = self._theta_jacobian(y[:self.k])  # (k φ, k θ)
        if not np.all(np.isfinite(J)):  # at the edge of the correlation matrices
            return np.inf, np.zeros_like(y)
        return f, np.concatenate([J @ g_theta, linalg.solve(self.A.T, g_beta)])

    def optimum(self, tol=1e-10):
        """The fit's optimum polished by Newton steps: ŷ, the deviance, its Hessian over
        y."""
        theta0, beta0 = self._split(self.x0)
        space = ThetaSpace(self.terms, theta0)
        space = (ParamSpace(space, beta0) if self.beta_first
                 else ParamSpace(space, after=beta0))
        opt = minimize(self.objective, space, method="newton", tol=tol, final_hessian=True)
        theta, beta = self._split(opt.theta_final)
        theta = ThetaSpace(self.terms).canonical(theta)
        y = np.concatenate([self.vmap.to_user(theta), self.A @ beta])
        # dx/dy: θ by φ, β by β_user; the Hessian over x to y
        Jt = self._theta_jacobian(y[:self.k]).T  # (θ, φ)
        Ainv = linalg.inv(self.A)
        J = np.zeros((self.p + self.k, self.k + self.p))
        if self.beta_first:
            J[self.p:, :self.k], J[:self.p, self.k:] = Jt, Ainv
        else:
            J[:self.k, :self.k], J[self.k:, self.k:] = Jt, Ainv
        f, _ = self.objective.value_and_grad(self._x(theta, beta))  # at canonical θ
        return y, min(f, opt.fmin), J.T @ opt.hessian @ J

    def intervals(self, level, which=None):
        """name → (estimate, lower, upper) of the variance parameters and fixed effects."""
        return profile_intervals(self._zetas(which), level)

    def traces(self, level, which=None, n_points=21):
        """(name, values, ζ) per parameter (`profiles.profile_traces`)."""
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
            yield (name, y[j], NewtonProfile(self.value_and_grad, y, f, H, j, bounds,
                                             kinds=self.vmap.kinds() + ["beta"] * self.p),
                   se, bounds[j])
