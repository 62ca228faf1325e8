"""The exact gradient of the several-factor Laplace deviance for a general block-diagonal Λ
(random slopes: ``(1 + x | subject) + (1 | item)``; binomial with any link, Poisson, the
negative binomial with its size).

With ``Z̃ = ZΛ``, modes û of ``h(u) = −2ℓ(η) + ‖u‖²`` (``η = offset + Xβ + Z̃u``) and
``A = Z̃'VZ̃ + I``, the deviance is ``d = h(û) + log|A|``. Λ is linear in θ: ``Λ_j =
∂Λ/∂θ_j`` puts, in every level of the factor θ_j belongs to, a 1 at θ_j's cell of the
template T. Over x = (θ, β):

* ``h`` at fixed modes (the envelope theorem): ``−2 r'ZΛ_j û`` along θ_j, ``−2 X'r``
  along β (r = w ℓ', the rows' scores);
* ``log|A|`` at fixed η: ``2 tr(A⁻¹Λ'MΛ_j)`` with ``M = Z'VZ = Σ_i wv_i z_i z_i'``, so
  ``2 Σ_i wv_i (z_i'Λ_j) A⁻¹z̃_i``;
* ``log|A|`` through η̂: its derivative along η is ``s = w v' ∘ lev`` (lev_i =
  ``z̃_i'A⁻¹z̃_i``, the leverages), η̂ moves by ``ZΛ_j û + Z̃ ∂û/∂θ_j`` with
  ``∂û/∂θ_j = A⁻¹(Λ_j'Z'r − Z̃'VZΛ_j û)`` (the modes' equation ``Z̃'r − u = 0``
  differentiated), and along β by ``X + Z̃ ∂û/∂β``; one adjoint solve ``a = A⁻¹Z̃'s``
  gives every direction.

(Where the PIRLS weights V are the expected information — the binomial probit and cloglog,
as lme4's, whose log|A| uses them — the modes' equation moves by the observed information
V_o: ``∂û/∂θ_j = A_o⁻¹(Λ_j'Z'r − Z̃'V_oZΛ_j û)``, ``A_o = Z̃'V_oZ̃ + I``; the adjoint solves
A_o and V_o replaces V in ``wv∘Z̃a``.)

Summed: ``g_j = (Z'(s − 2r − wv∘Z̃a))'Λ_j û + (Z'r)'Λ_j a + 2 tr(A⁻¹Λ'MΛ_j)`` and
``g_β = X'(s − 2r − wv∘Z̃a)``; over the negative binomial's α = log k,
``−2 w'∂ℓ/∂α + (w ∂v/∂α)'lev + (w ∂ℓ'/∂α)'Z̃a``. Jointly over (β, u) at θ (the
``nAGQ = 0`` deviance of the first stage) β is among the modes: the adjoint solves the joint
Newton system and ``Z̃a`` becomes ``Xa_β + Z̃a_u`` (the same formula).

Both the leverages and the traces need A⁻¹ only where a row has two columns — on the cells of
each row's column pairs (``(A⁻¹z̃_i)`` restricted to row i's columns, ``R_i``: lev_i =
``z̃_i'R_i``, the trace ``Σ_i wv_i z_i[a] R_i[b]`` for θ_j at the template's cell (a, b)):
from the dense system's inverse, or from the blocked one
(`skmixed._model.multilevel_glmm.BlockedSystem.inverse_at`; a dense rest block). This is the scalar path's
gradient (`skmixed._model.scalar_laplace`) for a general Λ.
"""

from types import SimpleNamespace

import numpy as np
from scipy import linalg

from .._kernels.threads import over_rows
from . import multilevel_glmm
from .multilevel import DENSE_LIMIT
from .multilevel_glmm import MultiLaplace

__all__ = ["PairLaplace", "pair_laplace_applies"]

#: the blocked system's A⁻¹ on the pattern costs ~Q₁·Q_r² (S_rr⁻¹F' for every first-factor
#: column): beyond this many, the central differences of the general path
INVERSE_FLOPS = 1e10

#: the modes' Newton decrement at which the last (whole) step is taken: the gradient takes
#: the modes as exact (a decrement of 1e-10 × |d| left the probit deviance 3e-9 off, and the
#: standard errors, from differences of the gradient, amplify such errors ~1e5-fold)
MODES_TOL = 1e-15


def pair_laplace_applies(factors, family, y, w):
    """Whether `PairLaplace` fits the model: a family whose parameter, if any, the
    kernels take (binomial with any link, Poisson, the negative binomial), the rows'
    column pairs within `PAIR_ROWS_LIMIT`, and a
    dense system (at most `DENSE_SYSTEM_COLUMNS`
    random-effect columns) or a blocked one with a dense rest (at most
    `DENSE_LIMIT` columns after the first factor's, A⁻¹ on
    the pattern within `INVERSE_FLOPS`)."""
    param = family.laplace_param(y, w)
    if family.linear or not (param is None or param.in_kernels):
        return False
    width = sum(f.term.q for f in factors)
    Q = sum(f.width for f in factors)
    Q1 = factors[0].width
    return (y.shape[0] * width * width <= multilevel_glmm.PAIR_ROWS_LIMIT
            and (Q <= multilevel_glmm.DENSE_SYSTEM_COLUMNS
                 or (Q - Q1 <= DENSE_LIMIT and Q1 * (Q - Q1) ** 2 <= INVERSE_FLOPS)))


class PairLaplace(MultiLaplace):
    """`MultiLaplace` with the exact gradient (module
    docstring): the Newton search differences it for its Hessian (the standard errors
    by central differences of it at the end)."""

    exact_gradient = True

    def modes(self, x, tol=MODES_TOL, max_iter=100):
        """As the base class's, to `MODES_TOL`."""
        return super().modes(x, tol=tol, max_iter=max_iter)

    def joint_modes(self, thetas, beta, tol=MODES_TOL, max_iter=100):
        """As the base class's, to `MODES_TOL`."""
        return super().joint_modes(thetas, beta, tol=tol, max_iter=max_iter)

    def _working_weights(self, eta):
        """ℓ' and, as PIRLS weights, the observed information: Newton's method on the
        modes' equation, converging quadratically where the family's weights (the expected
        information of the probit and cloglog links) converge linearly and left the modes
        ~1e-5 off at the tolerance — the exact gradient takes them as exact. The modes are
        the same; the log determinant keeps the family's weights (lme4's)."""
        l1, v = self.family.score_information(self.y, eta, self.m, self.fpar,
                                              over_rows=over_rows)
        if not self.family.observed_information:
            v = self.family.observed(self.y, eta, self.m, self.fpar)
        return l1, v

    def _pair_products(self, thetas, system):
        """Per row, ``R_i = A⁻¹z̃_i`` on the row's columns (n × width) and the row's values
        of Z and Z̃ (n × width, factor by factor)."""
        if self._pairs is None:
            self._pairs = self._row_pairs() or ()
        if not self._pairs:
            raise ValueError("rows of unequal length have no pair cells")
        cells, pos, _ = self._pairs
        n = self.y.shape[0]
        z = self.Z.data.reshape(n, -1)
        width = z.shape[1]
        zt = np.empty_like(z)
        start = 0
        for f, t in zip(self.factors, thetas):  # z̃_i' = z_i'Λ: each segment times T
            q = f.term.q
            zt[:, start:start + q] = z[:, start:start + q] @ f.term.factor(t)
            start += q
        inv = system.inverse_at(cells)[pos].reshape(n, width, width)
        return np.einsum("iab,ib->ia", inv, zt), z, zt

    def _gradient(self, thetas, u, system, joint=False):
        """The gradient over (θ, β[, log k]) at the modes u of the last `modes`
        (``joint``: of `joint_modes`, β among the modes) from the terms kept there."""
        X = self.X
        _, l1, v, v1 = self._terms
        r, wv = self.w * l1, self.w * v
        R, z, zt = self._pair_products(thetas, system)
        lev = np.einsum("ia,ia->i", zt, R)
        s = self.w * v1 * lev
        zs = self._lam(thetas, self.ZT @ s, transpose=True)
        # the adjoint solves the modes' true Jacobian: the system of the observed
        # information where the PIRLS weights are the expected one (probit, cloglog)
        adjoint, wo = system, wv
        if not self.family.observed_information:
            wo = self.w * self.family.observed(self.y, self._eta, self.m, self.fpar)
            adjoint = self._system_of(self._cross(wo), thetas)
        if joint:
            if adjoint.joint is None:
                K = self._lam(thetas, np.asarray(self.ZT @ (X * wo[:, None])),
                              transpose=True)
                adjoint.joint = self._joint_factor(adjoint, wo, K)
            a_b, a_u = self._joint_solve(adjoint, adjoint.joint, X.T @ s, zs)
            za = X @ a_b + self.Z @ self._lam(thetas, a_u)
        else:
            a_u = adjoint.solve(zs)
            za = self.Z @ self._lam(thetas, a_u)
        lhs = s - 2.0 * r - wo * za
        zl, zr = self.ZT @ lhs, self.ZT @ r
        g = np.empty(self.n_theta + X.shape[1] + self.n_extra)
        seg = 0
        for f, start, t0 in zip(self.factors, self.col_edges, self.theta_edges):
            base = start + np.arange(f.n_levels) * f.term.q
            for j, (a, b) in enumerate(zip(f.term.rows, f.term.cols)):
                ia, ib = base + a, base + b
                trace = wv @ (z[:, seg + a] * R[:, seg + b])
                g[t0 + j] = zl[ia] @ u[ib] + zr[ia] @ a_u[ib] + 2.0 * trace
            seg += f.term.q
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
