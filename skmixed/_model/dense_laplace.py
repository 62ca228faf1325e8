"""The exact gradient of the several-factor Laplace deviance where the random effects have
few columns in all (random slopes: ``(1 + x | subject) + (1 | item)``), for the canonical
links (binomial logit, Poisson log: Newton's information is the log determinant's).

With ``Z̃ = ZΛ``, modes û of ``h(u) = −2ℓ(η) + ‖u‖²`` (``η = offset + Xβ + Z̃u``) and
``A = Z̃'VZ̃ + I`` (dense, :class:`~skmixed._model.multilevel_glmm.DenseSystem`), the
deviance is ``d = h(û) + log|A|``. Λ is linear in θ: ``Λ_j = ∂Λ/∂θ_j`` puts, in every level
of the factor θ_j belongs to, a 1 at θ_j's cell of the template T. Over x = (θ, β):

* ``h`` at fixed modes (the envelope theorem): ``−2 r'ZΛ_j û`` along θ_j, ``−2 X'r``
  along β (r = w ℓ', the rows' scores);
* ``log|A|`` at fixed η: ``2 tr(A⁻¹Λ'MΛ_j)`` (M = Z'VZ);
* ``log|A|`` through η̂: its derivative along η is ``s = w v' ∘ lev`` (lev_i =
  ``z̃_i'A⁻¹z̃_i``, the leverages), η̂ moves by ``ZΛ_j û + Z̃ ∂û/∂θ_j`` with
  ``∂û/∂θ_j = A⁻¹(Λ_j'Z'r − Z̃'VZΛ_j û)`` (the modes' equation ``Z̃'r − u = 0``
  differentiated), and along β by ``X + Z̃ ∂û/∂β``; one adjoint solve ``a = A⁻¹Z̃'s``
  gives every direction.

Summed: ``g_j = (Z'(s − 2r − wv∘Z̃a))'Λ_j û + (Z'r)'Λ_j a + 2 tr(A⁻¹Λ'MΛ_j)`` and
``g_β = X'(s − 2r − wv∘Z̃a)``. Jointly over (β, u) at θ (the ``nAGQ = 0`` deviance of the
first stage) β is among the modes: the adjoint solves the joint Newton system and
``Z̃a`` becomes ``Xa_β + Z̃a_u`` (the same formula). This is the scalar path's gradient
(:mod:`skmixed._model.scalar_laplace`) for a general block-diagonal Λ, on a dense A.
"""

from types import SimpleNamespace

import numpy as np
from scipy import linalg

from . import multilevel_glmm
from .multilevel_glmm import MultiLaplace

__all__ = ["DenseLaplace", "dense_laplace_applies"]

#: leverages of the rows by chunks of this many rows where rows differ in their number
#: of entries (a chunk's ``Z C`` is dense: rows × columns)
LEVERAGE_CHUNK = 8192


def dense_laplace_applies(factors, family, y, w):
    """Whether :class:`DenseLaplace` fits the model: the general path's dense system (at
    most :data:`~skmixed._model.multilevel_glmm.DENSE_SYSTEM_COLUMNS` random-effect
    columns) and PIRLS weights that are the observed information (the canonical links,
    the negative binomial with its size)."""
    param = family.laplace_param(y, w)
    return (sum(f.width for f in factors) <= multilevel_glmm.DENSE_SYSTEM_COLUMNS
            and not family.linear and family.observed_information
            and (param is None or param.in_kernels))


class DenseLaplace(MultiLaplace):
    """:class:`~skmixed._model.multilevel_glmm.MultiLaplace` with the exact gradient (module
    docstring): the Newton search differences it for its Hessian (the standard errors
    by central differences of it at the end)."""

    exact_gradient = True

    def _leverages(self, C):
        """``z_i'Cz_i`` of every row (C: Q × Q symmetric, here ``ΛA⁻¹Λ'``)."""
        if self._pairs is None:
            self._pairs = self._row_pairs() or ()
        if self._pairs:
            cells, pos, prod = self._pairs
            return (prod * C.ravel()[cells][pos]).sum(axis=1)
        n = self.y.shape[0]
        out = np.empty(n)
        for start in range(0, n, LEVERAGE_CHUNK):
            Zc = self.Z[start:start + LEVERAGE_CHUNK]
            out[start:start + LEVERAGE_CHUNK] = np.asarray(
                Zc.multiply(Zc @ C).sum(axis=1)).ravel()
        return out

    def _gradient(self, thetas, u, system, joint=False):
        """The gradient over (θ, β) at the modes u of the last :meth:`modes` (``joint``: of
        :meth:`joint_modes`, β among the modes) from the terms kept there."""
        X = self.X
        _, l1, v, v1 = self._terms
        r, wv = self.w * l1, self.w * v
        Ainv = system.inverse()
        LA = self._lam(thetas, Ainv)
        lev = self._leverages(self._lam(thetas, LA.T))
        s = self.w * v1 * lev
        zs = self._lam(thetas, self.ZT @ s, transpose=True)
        if joint:
            if system.joint is None:
                K = self._lam(thetas, np.asarray(self.ZT @ (X * wv[:, None])),
                              transpose=True)
                system.joint = self._joint_factor(system, wv, K)
            a_b, a_u = self._joint_solve(system, system.joint, X.T @ s, zs)
            za = X @ a_b + self.Z @ self._lam(thetas, a_u)
        else:
            a_u = Ainv @ zs
            za = self.Z @ self._lam(thetas, a_u)
        lhs = s - 2.0 * r - wv * za
        zl, zr = self.ZT @ lhs, self.ZT @ r
        # A⁻¹Λ'M: the trace along θ_j sums its cells (level's column b, level's row a)
        P = Ainv @ self._lam(thetas, self._M, transpose=True)
        g = np.empty(self.n_theta + X.shape[1] + self.n_extra)
        for f, start, t0 in zip(self.factors, self.col_edges, self.theta_edges):
            base = start + np.arange(f.n_levels) * f.term.q
            for j, (a, b) in enumerate(zip(f.term.rows, f.term.cols)):
                ia, ib = base + a, base + b
                g[t0 + j] = zl[ia] @ u[ib] + zr[ia] @ a_u[ib] + 2.0 * P[ib, ia].sum()
        g[self.n_theta:self.n_theta + X.shape[1]] = X.T @ lhs
        if self.n_extra:  # over α = log k: ℓ, log|A| at fixed η, log|A| through η̂
            la, l1a, va = self.family.laplace_param_terms(self.y, self._eta, self.m,
                                                          self.fpar)
            g[-1] = self.w @ (-2.0 * la + va * lev + l1a * za)
        return g

    def value_and_grad(self, x):
        """The Laplace deviance and its exact gradient over x = (θ, β)."""
        x = np.asarray(x, dtype=float)
        self.n_evals += 1
        try:
            u, eta, system = self.modes(x)
            if not np.all(np.isfinite(eta)):
                return np.inf, np.zeros(x.size)
            f = self.laplace_deviance(eta, u, system)
            g = self._gradient(self.split(x)[0], u, system)
        except (np.linalg.LinAlgError, linalg.LinAlgError, FloatingPointError):
            return np.inf, np.zeros(x.size)
        self.u = u  # warm start for the next evaluation
        return f, g

    def joint_value_and_grad(self, theta):
        """The ``nAGQ = 0`` deviance over θ (β and u minimizing it jointly from the last
        joint modes, ``_joint``, set by ``fit`` at the start) and its exact gradient."""
        theta = np.asarray(theta, dtype=float)
        self.n_evals += 1
        try:
            thetas = self.thetas(theta)
            _, u, f = self.joint_modes(thetas, self._joint[0])
            if not np.isfinite(f):
                return np.inf, np.zeros(theta.size)
            g = self._gradient(thetas, u, self._joint[1], joint=True)
        except (np.linalg.LinAlgError, linalg.LinAlgError, FloatingPointError):
            return np.inf, np.zeros(theta.size)
        return f, g[:theta.size]

    def start_hessian(self, x):
        """None: the Newton search's first Hessian by differences of the gradient."""
        return None

    def laplace_objective(self):
        """The Newton search's objective: values, exact gradients (its Hessian by their
        differences)."""
        return SimpleNamespace(value=self.deviance, value_and_grad=self.value_and_grad)
