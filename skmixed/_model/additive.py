"""Gaussian additive models by exact REML in their mixed-model form (DESIGN §4).

Each smooth ``s_j(z) = B_j(z) Z_j c_j`` (:class:`~skmixed._model.smooth.PSpline`) splits
into unpenalized null-space columns ``B_j Z_j F_j`` (fixed effects) and penalized range-space
columns ``B_j Z_j R_j`` whose coefficients ``b_j`` have the penalty ``λ_j ‖b_j‖²``. With
``b_j = σ τ_j u_j``, ``u_j ~ N(0, I)``, ``λ_j = 1/τ_j²``, the model is a linear mixed model
with one scalar relative standard deviation ``τ_j`` per smooth, and the restricted likelihood
is profiled over σ and β as lme4's (Bates et al. 2015):

    d_R(τ) = log|L|² + log|R_X|² + (n − p)(1 + log(2π r²/(n − p)))

with ``L L' = Λ R'R Λ + I``, R_X the Cholesky factor of the fixed effects' Schur complement
and r² the penalized residual sum of squares. ``d_R / 2`` is mgcv's REML score for the same
model (the penalty eigenvalues cancel between mgcv's ``log|X'X + S_λ|`` and ``log|S_λ|₊``).
Everything after one pass over the rows uses the cross-products of ``[X, R, y]`` only.
"""

from dataclasses import dataclass

import numpy as np
from scipy import linalg, optimize

__all__ = ["SmoothBlocks", "DenseREML", "REMLFit"]


@dataclass
class SmoothBlocks:
    """The columns of an additive model: ``fixed`` (n × p: parametric columns and the
    smooths' null spaces) and ``random`` (n × q, the smooths' range spaces one after
    another), ``sizes`` (q_j per smooth) and ``fixed_of`` (per smooth, the indices of its
    null-space columns in ``fixed``)."""

    fixed: np.ndarray
    random: np.ndarray
    sizes: list
    fixed_of: list


@dataclass
class REMLFit:
    """The REML fit: ``tau`` (σ-relative SD per smooth; λ = 1/τ²), ``sigma``, ``beta``
    (fixed columns), ``b`` (range-space coefficients, Λu), ``criterion`` (d_R),
    ``edf`` (per smooth), ``edf_total`` and the optimizer's result."""

    tau: np.ndarray
    sigma: float
    beta: np.ndarray
    b: np.ndarray
    criterion: float
    edf: np.ndarray
    edf_total: float
    result: object


class DenseREML:
    """Profiled REML of ``y = Fβ + R b + e`` with ``b_j ~ N(0, σ²τ_j² I)`` from the
    cross-products of ``[F, R, y]`` (one pass over the rows; each evaluation O((p + q)³))."""

    def __init__(self, blocks, y, weights=None):
        F, R = blocks.fixed, blocks.random
        W = np.column_stack([F, R, y])
        if weights is not None:
            M = (W * weights[:, None]).T @ W
            self.n = float(np.sum(weights))
        else:
            M = W.T @ W
            self.n = float(W.shape[0])
        self.p, self.q = F.shape[1], R.shape[1]
        p, q = self.p, self.q
        self.FF, self.RF, self.RR = M[:p, :p], M[p:p + q, :p], M[p:p + q, p:p + q]
        self.Fy, self.Ry, self.yy = M[:p, -1], M[p:p + q, -1], M[-1, -1]
        self.sizes = list(blocks.sizes)
        self.fixed_of = list(blocks.fixed_of)

    def _lambda_diag(self, log_tau):
        return np.repeat(np.exp(log_tau), self.sizes)

    def solve(self, log_tau):
        """The penalized least-squares solution at τ: returns a dict with the pieces of
        d_R, β, u and the Cholesky factors."""
        lam = self._lambda_diag(np.asarray(log_tau, dtype=float))
        A = lam[:, None] * self.RR * lam[None, :] + np.eye(self.q)
        L = linalg.cholesky(A, lower=True)
        cu = linalg.solve_triangular(L, lam * self.Ry, lower=True)
        RZX = linalg.solve_triangular(L, lam[:, None] * self.RF, lower=True)
        XtX = self.FF - RZX.T @ RZX
        RX = linalg.cholesky(XtX, lower=True)
        cb = linalg.solve_triangular(RX, self.Fy - RZX.T @ cu, lower=True)
        beta = linalg.solve_triangular(RX.T, cb, lower=False)
        u = linalg.solve_triangular(L.T, cu - RZX @ beta, lower=False)
        r2 = self.yy - cu @ cu - cb @ cb
        return dict(lam=lam, L=L, RX=RX, beta=beta, u=u, r2=r2)

    def criterion(self, log_tau):
        s = self.solve(log_tau)
        dof = self.n - self.p
        if not s["r2"] > 0:
            return np.inf
        logdet = 2.0 * (np.log(np.diag(s["L"])).sum() + np.log(np.diag(s["RX"])).sum())
        return float(logdet + dof * (1.0 + np.log(2.0 * np.pi * s["r2"] / dof)))

    def fit(self, log_tau0=None, bounds=(-15.0, 10.0)):
        J = len(self.sizes)
        x0 = np.zeros(J) if log_tau0 is None else np.asarray(log_tau0, dtype=float)
        res = optimize.minimize(self.criterion, x0, method="L-BFGS-B",
                                bounds=[bounds] * J, options={"ftol": 1e-14, "gtol": 1e-8})
        s = self.solve(res.x)
        sigma = float(np.sqrt(s["r2"] / (self.n - self.p)))
        b = s["lam"] * s["u"]  # the PLS solution u is in y's units: b = Λu
        edf = self._edf(s)
        return REMLFit(tau=np.exp(res.x), sigma=sigma, beta=s["beta"], b=b,
                       criterion=float(res.fun), edf=edf,
                       edf_total=float(self.p + np.sum(edf - [len(f) for f in self.fixed_of])),
                       result=res)

    def _edf(self, s):
        """Per smooth: its null-space dimension plus Σ over its range coefficients of
        ``1 − λ_j (P⁻¹)_ii`` — the trace of its block of ``P⁻¹ C'C`` with P the penalized
        normal matrix ``C'C + diag(0, 1/τ²)`` in (β, b/σ) coordinates."""
        lam = s["lam"]
        p, q = self.p, self.q
        P = np.zeros((p + q, p + q))
        P[:p, :p] = self.FF
        P[p:, :p] = self.RF
        P[:p, p:] = self.RF.T
        P[p:, p:] = self.RR + np.diag(1.0 / lam ** 2)
        Pinv_diag = np.diag(linalg.inv(P))[p:]
        shrink = 1.0 - Pinv_diag / lam ** 2
        edf, start = [], 0
        for size, fixed in zip(self.sizes, self.fixed_of):
            edf.append(len(fixed) + shrink[start:start + size].sum())
            start += size
        return np.array(edf)
