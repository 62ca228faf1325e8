"""Inference for a fitted linear mixed model from its sufficient statistics: the ML refit
of a REML fit, the unprofiled deviance over (θ, σ), profile-likelihood intervals,
Satterthwaite's degrees of freedom, and the parametric bootstrap.

What a fit keeps (`GaussianInference`) is the cross-products of its internal
(centred and scaled) columns — O(levels), never the rows — so every method here costs what
a few fits from sums cost, whatever the number of rows.

* **Unprofiled deviance.** With ``d(θ)`` the profiled criterion (``dof`` = n for ML, n − p
  for REML; Bates et al. 2015, section 3), ``r²(θ)`` the penalized RSS and ``ℓ(θ)`` its
  log-determinant part, ``D(θ, σ) = ℓ(θ) + r²(θ)/σ² + dof·log(2πσ²)``; minimizing over σ
  gives back ``d(θ)``. ``ℓ(θ) = d(θ) − dof·(1 + log(2π r²/dof))``.
* **Profiles** (lme4's ``profile``/``confint(method = "profile")``): the model is refitted by
  ML; for a variance parameter (an SD, a correlation or σ on the user's scale) the ML
  deviance is minimized over the others, for a fixed effect ``β_j = v`` over θ with σ and
  the other β profiled: at fixed θ the deviance is quadratic in β, so with ``l`` the
  internal contrast of ``β_j``, ``r²_v(θ) = r²(θ) + (v − l'β̂(θ))² / (l'S(θ)⁻¹l)``. The
  signed root ``ζ(v) = sign(v − v̂)·√(D_prof(v) − D̂)`` is solved for ``±z_{(1+level)/2}``
  by bracketing and Brent's method (lme4 interpolates a spline through a grid of ζ).
* **Satterthwaite** (lmerTest): ``df = 2 (l'Cl)² / (g'A g)`` with ``C(θ, σ) = σ² A S⁻¹A'``
  the fixed effects' covariance, ``g`` its gradient along the contrast over (θ, σ) and
  ``A = 2 H⁻¹``, H the Hessian of the fit's (REML or ML) deviance ``D(θ, σ)`` — both by
  Richardson-extrapolated central differences (as numDeriv's, which lmerTest uses).
* **Parametric bootstrap** of a one-factor model, exactly in distribution from the sums:
  the estimator is a function of ``Z_i'y``, ``X'y`` and ``y'y`` (given the design's
  ``Z_i'Z_i``, ``Z_i'X``, ``X'X``), and for ``y* = Xβ̂ + Zb* + ε*`` these are linear in
  ``b*`` and in ``(Z_i'ε, X'ε)`` — Gaussian with covariance ``σ²M'M`` (M = [Z X]) —
  plus ``ε'ε = ‖P_Mε‖² + ‖(I − P_M)ε‖²``, whose second part is ``σ²χ²`` on
  ``n − rank M`` degrees of freedom, independent of the first. With per-group
  eigendecompositions ``Z_i'Z_i = V_iΛ_iV_i'`` and ``S₀ = X'X − Σ X_i'Z_i(Z_i'Z_i)⁺Z_i'X_i
  = L_S L_S'``: ``Z_i'ε = σV_iΛ_i^{½}z_i``, ``X'ε = σ(Σ X_i'Z_iV_iΛ_i^{−½}z_i + L_S z₀)``,
  ``‖P_Mε‖² = σ²(Σ‖z_i‖² + ‖z₀‖²)`` with standard normal z. A replicate costs O(G q p),
  not a pass over the rows (frequency weights: the rows repeated, as in the fit).
"""

from contextlib import ExitStack
from dataclasses import dataclass

import numpy as np
from scipy import linalg, optimize

from .._kernels.threads import blas_threads, numba_threads
from .lmm import GroupedCrossproducts, ProfiledDeviance
from .optimize import FiniteDifferenceGradient, minimize
from .profiles import (VarianceMap, nearest_solution, profile_intervals, profile_traces,
                       richardson_gradient, richardson_hessian, signed_root)
from .spaces import ThetaSpace

__all__ = ["GaussianInference"]

_LOG_2PI = np.log(2.0 * np.pi)


@dataclass
class GaussianInference:
    """What an LMM fit keeps for inference (module docstring).

    ``kind``: "one" (one factor: ``stats`` a GroupedCrossproducts), "scalar" or "multi"
    (several factors: a MultiCrossproducts and ``cols``, the factors' FactorColumns without
    their rows). ``theta``: the fit's internal optimum (objective order); ``factors``:
    FactorMaps in lme4's reporting order; user ``β = A β_int + c``; ``names`` the kept
    fixed effects; ``n_levels`` per reporting factor.
    """

    kind: str
    stats: object
    cols: list
    theta: np.ndarray
    reml: bool
    factors: list
    A: np.ndarray
    c: np.ndarray
    names: list

    @property
    def vmap(self):
        """The variance parameters (SDs, correlations, σ) on the user's scale."""
        return VarianceMap(self.factors, self.theta.size, with_sigma=True)

    # ---------------------------------------------------------------- the criterion
    def objective(self, reml):
        """The profiled criterion over internal θ (ML or REML) of the kept statistics."""
        if self.kind == "one":
            return ProfiledDeviance(self.stats, self.cols[0], reml=reml)
        from .multilevel import MultiProfiledDeviance, ScalarFactorsDeviance
        cls = ScalarFactorsDeviance if self.kind == "scalar" else MultiProfiledDeviance
        return cls(self.stats, self.cols, reml=reml)

    def terms(self):
        return list(self.cols) if self.kind == "one" else [c.term for c in self.cols]

    def threads(self):
        """The threads the criterion's evaluations run on, as in the fit: one BLAS thread
        (small dense algebra: L-BFGS-B took 1 ms per step beside BLAS threads), and one
        Numba thread for the several-factor pair kernels (7 ms instead of 0.7 ms per
        evaluation on Penicillin beside a busy core)."""
        stack = ExitStack()
        stack.enter_context(blas_threads(1))
        if self.kind == "scalar":
            stack.enter_context(numba_threads(1))
        return stack

    def fit_theta(self, objective, start, tol=1e-10, max_iter=1000):
        """θ minimizing ``objective`` from ``start`` (the fit's own search for its kind);
        an OptSummary."""
        space = ThetaSpace(self.terms(), start)
        if self.kind == "one":
            return minimize(objective, space, method="lbfgs-newton", tol=tol,
                            max_iter=max_iter, polish=True)
        if self.kind == "scalar":
            return minimize(objective, space, method="log-lbfgs", tol=tol,
                            max_iter=max_iter)
        return minimize(FiniteDifferenceGradient(objective), space, method="lbfgs-newton",
                        tol=tol, max_iter=max_iter)

    @staticmethod
    def pieces(objective, theta):
        """``(ℓ(θ), r²(θ), state)`` (module docstring), None where the criterion is not
        finite."""
        state = objective.evaluate(np.asarray(theta, dtype=float))
        if not np.isfinite(state.deviance):
            return None
        dof = objective.dof
        r2 = state.penalized_rss
        return state.deviance - dof * (1.0 + _LOG_2PI + np.log(r2 / dof)), r2, state

    def _unprofiled(self, objective, theta, sigma):
        """``(D(θ, σ), r², state)``, None outside (no correlation matrix, σ ≤ 0, a criterion
        that is not finite)."""
        if not (np.all(np.isfinite(theta)) and sigma > 0):
            return None
        got = self.pieces(objective, theta)
        if got is None:
            return None
        logdet, r2, state = got
        return (logdet + r2 / sigma ** 2 + objective.dof * np.log(2.0 * np.pi * sigma ** 2),
                r2, state)

    def deviance_and_grad(self, objective, theta, sigma):
        """``D(θ, σ)`` and its gradient over (θ, σ) (one factor: the kernel's exact parts;
        ``(inf, None)`` outside)."""
        got = self._unprofiled(objective, theta, sigma)
        if got is None:
            return np.inf, None
        f, r2, state = got
        dlogdet, dr2 = objective.gradient_parts(state)
        return f, np.concatenate([dlogdet + dr2 / sigma ** 2,
                                  [-2.0 * r2 / sigma ** 3 + 2.0 * objective.dof / sigma]])

    def deviance(self, objective, theta, sigma):
        """The unprofiled deviance ``D(θ, σ)`` of ``objective`` (inf outside)."""
        got = self._unprofiled(objective, theta, sigma)
        return np.inf if got is None else got[0]

    # ---------------------------------------------------------------- fits
    def ml_fit(self):
        """The ML refit: ``(objective, θ, σ, deviance)``; the fit itself when it was ML."""
        with self.threads():
            return self._ml_fit()

    def _ml_fit(self):
        objective = self.objective(reml=False)
        theta = self.theta
        if self.reml:
            theta = self.fit_theta(objective, self.theta).theta_final
        logdet, r2, state = self.pieces(objective, theta)
        sigma = np.sqrt(r2 / objective.dof)
        return objective, theta, sigma, float(state.deviance)

    def state(self, reml=None):
        """The fit's criterion object, θ, σ and evaluated state."""
        reml = self.reml if reml is None else reml
        objective = self.objective(reml)
        _, r2, state = self.pieces(objective, self.theta)
        return objective, np.sqrt(r2 / objective.dof), state

    def fixed_cov(self, objective, theta, sigma):
        """``C(θ, σ)``: the fixed effects' covariance on the user's columns."""
        state = objective.evaluate(theta)
        return sigma ** 2 * (self.A @ linalg.inv(state.S) @ self.A.T)

    def prediction_covariances(self):
        """One factor: the joint covariance of the errors of (β̂, b̂_i) on the user's scale
        (Henderson's inverse of the mixed-model equations, θ and σ fixed): ``C_ββ``
        (p, p), ``C_βb`` (G, p, q), ``C_bb`` (G, q, q). With ``M_i = I + T'C_iT`` and
        ``W_i = D_i'T M_i⁻¹T'``: ``C_ββ = σ²S⁻¹``, ``C_βb,i = −σ²S⁻¹W_i``,
        ``C_bb,i = σ²(T M_i⁻¹T' + W_i'S⁻¹W_i)``."""
        st, term = self.stats, self.cols[0]
        _, sigma, state = self.state()
        s2 = sigma ** 2
        T = term.factor(self.theta)
        M = np.eye(term.q) + np.einsum("ab,gac,cd->gbd", T, st.C, T)
        TMT = T @ np.linalg.solve(M, np.broadcast_to(T.T, M.shape))  # T M⁻¹ T'
        W = np.einsum("gqp,gqr->gpr", st.D, TMT)
        Sinv = linalg.inv(state.S)
        d = self.factors[0].scale
        C_bb = s2 * (TMT + np.einsum("gpa,pk,gkb->gab", W, Sinv, W)) * np.outer(d, d)
        C_bbeta = -s2 * np.einsum("pk,gkr->gpr", self.A @ Sinv, W) * d
        return s2 * self.A @ Sinv @ self.A.T, C_bbeta, C_bb

    # ---------------------------------------------------------------- Satterthwaite
    def satterthwaite(self, L):
        """Estimates, SEs and Satterthwaite's df of the contrasts ``L`` (k × p, user
        scale) of the fit's (REML or ML) criterion (module docstring)."""
        with self.threads():
            return self._satterthwaite(L)

    def _satterthwaite(self, L):
        L = np.atleast_2d(np.asarray(L, dtype=float))
        objective, sigma, state = self.state()
        x0 = np.concatenate([self.theta, [sigma]])

        def dev(x):
            return self.deviance(objective, x[:-1], x[-1])

        # steps relative to each parameter: θ is unit-free (floor 1e-2), σ has y's units
        floor = np.concatenate([np.full(self.theta.size, 1e-2), [sigma]])
        H = richardson_hessian(dev, x0, floor=floor)
        try:
            Avar = 2.0 * linalg.inv(H)
        except linalg.LinAlgError:
            Avar = 2.0 * linalg.pinv(H)
        C0 = self.fixed_cov(objective, self.theta, sigma)
        beta = self.A @ state.beta + self.c

        def contrast_vars(x):
            C = self.fixed_cov(objective, x[:-1], x[-1])
            return np.einsum("ij,jk,ik->i", L, C, L)

        J = richardson_gradient(contrast_vars, x0, floor=floor)  # (k params, contrasts)
        var = np.einsum("ij,jk,ik->i", L, C0, L)
        denom = np.einsum("ai,ab,bi->i", J, Avar, J)
        with np.errstate(divide="ignore", invalid="ignore"):
            df = 2.0 * var ** 2 / denom
        return L @ beta, np.sqrt(var), df

    # ---------------------------------------------------------------- Kenward–Roger
    def kenward_roger(self, L):
        """Estimates, adjusted SEs and Kenward–Roger df of the contrasts ``L`` (k × p, user
        scale) of a REML fit, as pbkrtest's ``vcovAdj`` and ``Lb_ddf``.

        ``V = Σ_k γ_k G_k`` over the covariance entries of each factor's Σ
        (``G_k = Z E_k Z'``) and σ² (``G = I``); every trace and product pbkrtest forms
        over the rows is, by Woodbury (``V⁻¹ = σ⁻²(I − Z K Z')``, ``K = Λ(I + Λ'Z'ZΛ)⁻¹Λ'``),
        one of ``Z'Z``, ``Z'X`` and ``X'X``: with one factor a sum over its groups of
        q × q blocks; with several, one dense block of all their columns (up to
        `KR_DENSE_COLUMNS`)."""
        if not self.reml:
            raise ValueError("ddf='Kenward-Roger' needs a REML fit (pbkrtest's), not ML; "
                             "refit with reml=True or use ddf='Satterthwaite'.")
        st = self.stats
        _, sigma, state = self.state()
        if self.kind == "one":
            term = self.cols[0]
            T = term.factor(self.theta)[None]
            C, D = st.C, st.D
            E = _patterns(term)
        else:
            Q = int(st.offsets[-1])
            if Q > KR_DENSE_COLUMNS:
                raise ValueError(f"ddf='Kenward-Roger' with several grouping factors forms "
                                 f"dense {Q} × {Q} matrices (their random effects); "
                                 f"implemented up to {KR_DENSE_COLUMNS}: use "
                                 "ddf='Satterthwaite'.")
            C, D = st.ZZ.toarray()[None], np.asarray(st.ZX)[None]
            T = np.zeros((1, Q, Q))
            E = []
            for k, col in enumerate(self.cols):
                a, b = self._slices[k]
                term, G, q = col.term, col.n_levels, col.term.q
                off = int(st.offsets[k])
                Tk = term.factor(self.theta[a:b])
                T[0, off:off + G * q, off:off + G * q] = np.kron(np.eye(G), Tk)
                for e in _patterns(term):
                    full = np.zeros((Q, Q))
                    full[off:off + G * q, off:off + G * q] = np.kron(np.eye(G), e)
                    E.append(full)
        Phi, PhiA, P, W = _kr_adjustment(C, D, st.XtX, st.n, T, E, sigma ** 2)
        L = np.atleast_2d(np.asarray(L, dtype=float))
        Li = L @ self.A  # the contrasts of the internal coefficients
        est = L @ (self.A @ state.beta + self.c)
        se = np.sqrt(np.einsum("ij,jk,ik->i", Li, PhiA, Li))
        df = np.array([_kr_ddf(l, Phi, P, W) for l in Li])
        return est, se, df

    @property
    def _slices(self):
        edges = np.cumsum([0] + [c.term.n_theta for c in self.cols])
        return list(zip(edges[:-1], edges[1:]))

    # ---------------------------------------------------------------- profiles
    def profile_intervals(self, level, which=None):
        """Profile-likelihood intervals (lme4's ``confint(method = "profile")``) of the
        variance parameters (``vmap.names()``) and the fixed effects, at ``level``;
        ``which``: names to profile (default all). A dict name → (estimate, lower,
        upper)."""
        with self.threads():
            return profile_intervals(self._zetas(which), level)

    def profile_traces(self, level, which=None, n_points=21):
        """ζ on a grid between each parameter's ``level`` profile interval's ends: a list
        of (name, values, ζ)."""
        with self.threads():
            return profile_traces(self._zetas(which), level, n_points)

    def _zetas(self, which):
        """(name, ML estimate, ζ, first step, bounds) per profiled parameter."""
        objective, theta_ml, sigma_ml, dev_ml = self._ml_fit()
        phi_hat = self.vmap.to_user(theta_ml, sigma_ml)
        bounds = self.vmap.bounds()
        kinds = self.vmap.kinds()
        for j, name in enumerate(self.vmap.names()):
            if which is not None and name not in which:
                continue
            step = 0.25 if kinds[j] == "cor" else 0.25 * max(phi_hat[j], 0.05 * sigma_ml)
            yield (name, phi_hat[j], _VarianceProfile(self, objective, phi_hat, j, dev_ml),
                   step, bounds[j])
        _, r2, state_ml = self.pieces(objective, theta_ml)
        Sinv = linalg.inv(state_ml.S)
        for j, name in enumerate(self.names):
            if which is not None and name not in which:
                continue
            l = self.A[j]
            yield (name, l @ state_ml.beta + self.c[j],
                   _FixedProfile(self, objective, theta_ml, l, self.c[j], dev_ml),
                   sigma_ml * np.sqrt(l @ Sinv @ l), (-np.inf, np.inf))

    # ---------------------------------------------------------------- bootstrap
    def bootstrap_plan(self):
        """The per-fit constants of `bootstrap_replicate` (one factor only)."""
        st = self.stats
        lam, V = np.linalg.eigh(st.C)  # (G, q), (G, q, q)
        tol = 1e-12 * np.maximum(lam.max(axis=1, keepdims=True), 1e-300)
        keep = lam > tol
        root = np.where(keep, np.sqrt(np.where(keep, lam, 1.0)), 0.0)
        inv_root = np.where(keep, 1.0 / np.where(keep, root, 1.0), 0.0)
        Zroot = V * root[:, None, :]                 # V Λ^{½}: Z_i'ε = σ Zroot z_i
        W = np.einsum("gqp,gqr,gr->gpr", st.D, V, inv_root)  # X_i'Z_i V Λ^{−½}
        S0 = st.XtX - np.einsum("gpr,gkr->pk", W, W)
        s_lam, s_V = np.linalg.eigh((S0 + S0.T) / 2.0)
        s_keep = s_lam > 1e-12 * max(s_lam.max(initial=0.0), 1e-300)
        LS = s_V[:, s_keep] * np.sqrt(s_lam[s_keep])
        rank = int(keep.sum()) + int(s_keep.sum())
        objective, sigma, state = self.state()
        T = self.cols[0].factor(self.theta)
        return dict(Zroot=Zroot, W=W, LS=LS, keep=keep, rest_df=st.n - rank, beta=state.beta,
                    sigma=sigma, T=T)

    def simulated_stats(self, plan, rng):
        """The sums of one response simulated from the fit (module docstring)."""
        st = self.stats
        G, q = st.e.shape
        sigma, beta = plan["sigma"], plan["beta"]
        b = sigma * rng.standard_normal((G, q)) @ plan["T"].T
        z = rng.standard_normal((G, q)) * plan["keep"]
        z0 = rng.standard_normal(plan["LS"].shape[1])
        chi2 = rng.chisquare(plan["rest_df"]) if plan["rest_df"] > 0 else 0.0
        Zeps = sigma * np.einsum("gqr,gr->gq", plan["Zroot"], z)
        Xeps = sigma * (np.einsum("gpr,gr->p", plan["W"], z) + plan["LS"] @ z0)
        ee = sigma ** 2 * (float(np.sum(z * z)) + float(z0 @ z0) + chi2)
        Cb = np.einsum("gqr,gr->gq", st.C, b)
        Db = np.einsum("gqp,gq->p", st.D, b)
        XtXb = st.XtX @ beta
        e = np.einsum("gqp,p->gq", st.D, beta) + Cb + Zeps
        Xty = XtXb + Db + Xeps
        yty = (beta @ XtXb + 2.0 * beta @ Db + float(np.sum(b * Cb)) + 2.0 * beta @ Xeps
               + 2.0 * float(np.sum(b * Zeps)) + ee)
        return GroupedCrossproducts(C=st.C, D=st.D, e=e, XtX=st.XtX, Xty=Xty, yty=yty,
                                    n=st.n, group_n=st.group_n)

    def bootstrap_replicate(self, plan, rng):
        """One replicate's (variance parameters, fixed effects) on the user's scale; NaN
        where its fit fails."""
        sim = self.simulated_stats(plan, rng)
        objective = ProfiledDeviance(sim, self.cols[0], reml=self.reml)
        p = len(self.names)
        try:
            opt = minimize(objective, ThetaSpace(self.cols[0], self.theta),
                           method="lbfgs-newton", tol=1e-8, max_iter=1000)
            got = self.pieces(objective, opt.theta_final)
        except (linalg.LinAlgError, ValueError, FloatingPointError):
            got = None
        if got is None:
            return np.full(len(self.vmap.names()) + p, np.nan)
        _, r2, state = got
        sigma = np.sqrt(r2 / objective.dof)
        theta = self.cols[0].canonical(opt.theta_final)
        return np.concatenate([self.vmap.to_user(theta, sigma),
                               self.A @ state.beta + self.c])


class _VarianceProfile:
    """ζ of one variance parameter: the ML deviance minimized over the others (SDs,
    correlations, σ on the user's scale), the better of searches started at the nearest
    solved point and at the optimum."""

    def __init__(self, inf, objective, phi_hat, j, dev_min):
        self.inf, self.objective, self.j, self.dev_min = inf, objective, j, dev_min
        self.phi_hat = phi_hat
        self.free = np.array([k for k in range(phi_hat.size) if k != j], dtype=np.int64)
        kinds = inf.vmap.kinds()
        # the searches run on x = φ / scale: SDs and σ relative to the fit's σ
        self.scale = np.array([1.0 if kinds[k] == "cor" else phi_hat[-1]
                               for k in self.free])
        bounds = inf.vmap.bounds()
        if kinds[-1] == "sigma":  # σ > 0: the deviance is infinite at 0
            bounds[-1] = (1e-8 * phi_hat[-1], np.inf)
        self.bounds = [(lo / s, hi / s) for (lo, hi), s in
                       zip([bounds[k] for k in self.free], self.scale)]
        self.is_sd = np.array([kinds[k] == "sd" for k in self.free], dtype=bool)
        self.is_cor = np.array([kinds[k] == "cor" for k in self.free], dtype=bool)
        self.last, self.last_f = {}, {}
        # the widest step between solved points (continuation: a search from a point a
        # quarter SD away stopped in a curved valley near |ρ| = 1, 1.3 deviance units high)
        self.max_gap = 0.05 if kinds[j] == "cor" else 0.05 * max(phi_hat[j],
                                                                  0.05 * phi_hat[-1])

    def _phi(self, v, x):
        phi = self.phi_hat.copy()
        phi[self.free] = x * self.scale
        phi[self.j] = v
        return phi

    def deviance(self, v, x):
        theta, sigma = self.inf.vmap.from_user(self._phi(v, x))
        return self.inf.deviance(self.objective, theta, sigma)

    def deviance_and_grad(self, v, x):
        """One factor: the deviance and its exact gradient over x (the kernel's over
        (θ, σ), chained through the map φ → (θ, σ), differenced: it is a few small
        matrices)."""
        phi = self._phi(v, x)
        theta, sigma = self.inf.vmap.from_user(phi)
        f, g = self.inf.deviance_and_grad(self.objective, theta, sigma)
        if g is None:
            return np.inf, np.zeros_like(x)
        # the map φ → (θ, σ) differenced (a few small matrices), chained with the kernel's
        J = self.inf.vmap.jacobian(phi, self.free, floor=1e-3 * self.scale)
        grad = self.scale * (J @ g)
        return f, grad

    def profiled(self, v):
        if not self.free.size:
            return self.deviance(v, np.zeros(0))
        if v not in self.last:  # continuation from the nearest solved v (or the optimum)
            near = min(self.last, key=lambda u: abs(u - v), default=self.phi_hat[self.j])
            n = int(np.ceil(abs(v - near) / self.max_gap))
            for t in range(1, n):
                self._search(near + (v - near) * t / n)
        return self._search(v)

    def _search(self, v):
        # from the nearest solved point (the optimum first) and, with correlations, from it
        # with their signs flipped (ρ = +1 and ρ = −1 are apart on this scale, not in θ's:
        # near |ρ| = 1 the profile may jump between them) and set to 0 (from ρ near ±1 a
        # search a quarter SD away stopped at a point 1.3 deviance units too high, on one
        # machine: sleepstudy's (Days − 30 | Subject)); where the search ends on the
        # boundary (an SD at 0: a stationary point of the deviance, which depends on SD²,
        # where a search stays) also from the optimum. Every start lifts SDs off 0 (to
        # 5 % of σ̂).
        lo = np.array([b[0] for b in self.bounds])
        hi = np.array([b[1] for b in self.bounds])
        hat = self.phi_hat[self.free] / self.scale
        first = nearest_solution(self.last, v)
        first = hat if first is None else first
        starts = [first]
        if self.is_cor.any():
            flipped = first.copy()
            flipped[self.is_cor] = -flipped[self.is_cor]
            uncorrelated = first.copy()
            uncorrelated[self.is_cor] = 0.0
            starts.extend([flipped, uncorrelated])
        exact = self.inf.kind == "one"
        best = None
        k = 0
        while k < len(starts):
            x0 = np.clip(np.where(self.is_sd & (starts[k] < 0.05), 0.05, starts[k]), lo, hi)
            with np.errstate(invalid="ignore", over="ignore"):  # inf beyond a bound
                if exact:
                    res = optimize.minimize(lambda x: self.deviance_and_grad(v, x), x0,
                                            method="L-BFGS-B", jac=True, bounds=self.bounds,
                                            options=dict(ftol=1e-15, gtol=1e-9,
                                                         maxiter=500))
                else:
                    res = optimize.minimize(lambda x: self.deviance(v, x), x0,
                                            method="L-BFGS-B", jac="3-point",
                                            bounds=self.bounds,
                                            options=dict(ftol=1e-15, gtol=1e-9,
                                                         maxiter=500))
            if best is None or res.fun < best.fun:
                best = res
            k += 1
            if k == len(starts) and len(starts) < 5 and self.last and \
                    np.any(best.x[self.is_sd] < 1e-3):
                starts.append(hat)
        # ζ must be a function of v (Brent re-evaluates its bracket's ends): a v searched
        # before keeps the lowest deviance any of its searches found
        if v in self.last_f and self.last_f[v] <= best.fun:
            return self.last_f[v]
        self.last[v], self.last_f[v] = best.x, float(best.fun)
        return float(best.fun)

    def __call__(self, v):
        return signed_root(v, self.phi_hat[self.j], self.profiled(v), self.dev_min)


class _FixedProfile:
    """ζ of one fixed effect ``β_j = v`` (``l'β_int + c = v``): the ML deviance minimized
    over θ, σ and the other β profiled (module docstring)."""

    def __init__(self, inf, objective, theta_hat, l, c, dev_min):
        self.inf, self.objective, self.l, self.c = inf, objective, l, c
        self.dev_min, self.theta_hat = dev_min, theta_hat
        state = objective.evaluate(theta_hat)
        self.est = l @ state.beta + c
        lower = ThetaSpace(inf.terms()).lower()
        self.bounds = list(zip(lower, np.full(lower.size, np.inf)))
        self.diagonal = lower == 0.0
        self.last = {}

    def deviance(self, v, theta):
        got = self.inf.pieces(self.objective, theta)
        if got is None:
            return np.inf
        logdet, r2, state = got
        l = self.l
        Sinv_l = linalg.solve(state.S, l, assume_a="pos")
        r2v = r2 + (v - self.c - l @ state.beta) ** 2 / (l @ Sinv_l)
        n = self.objective.dof
        return logdet + n * (1.0 + _LOG_2PI + np.log(r2v / n))

    def __call__(self, v):
        # from the nearest solved θ (the optimum first); where that search ends with a
        # diagonal element at 0 — a stationary point, where a search stays — also from the
        # optimum; zero diagonal elements of a start lifted to 0.1
        near = nearest_solution(self.last, v)
        starts = [self.theta_hat if near is None else near]
        best = None
        k = 0
        while k < len(starts):
            x0 = np.where(self.diagonal & (np.abs(starts[k]) < 0.1), 0.1, starts[k])
            with np.errstate(invalid="ignore", over="ignore"):
                res = optimize.minimize(lambda t: self.deviance(v, t), x0,
                                        method="L-BFGS-B", jac="3-point", bounds=self.bounds,
                                        options=dict(ftol=1e-15, gtol=1e-9, maxiter=500))
            if best is None or res.fun < best.fun:
                best = res
            k += 1
            if k == 1 and self.last and np.any(best.x[self.diagonal] < 1e-3):
                starts.append(self.theta_hat)
        self.last[v] = best.x
        return signed_root(v, self.est, float(best.fun), self.dev_min)


def _patterns(term):
    """The q × q patterns ``E_k`` of a term's covariance parameters (Σ's entry (r, c) and
    (c, r)): pbkrtest's ``G_k = Z E_k Z'``."""
    out = []
    for r, c in zip(term.rows, term.cols):
        e = np.zeros((term.q, term.q))
        e[r, c] = e[c, r] = 1.0
        out.append(e)
    return out


#: Kenward–Roger with several grouping factors forms dense matrices of all their random
#: effects' columns, up to this many
KR_DENSE_COLUMNS = 3000


def _kr_adjustment(C, D, XtX, n, T, E, s2):
    """pbkrtest's ``vcovAdj`` from blocks: ``C`` (G, q, q) = Z_i'Z_i, ``D`` (G, q, p) =
    Z_i'X_i, ``T`` (G, q, q) the relative covariance factor (Λ's block), ``E`` the q × q
    patterns of the covariance parameters (σ² last, implied), ``s2`` = σ². Returns
    (Φ, Φ_A, P, W): the unadjusted and adjusted covariance of β, pbkrtest's P_k and W."""
    q = C.shape[1]
    A = np.eye(q) + np.einsum("gba,gbc,gcd->gad", T, C, T)
    K = T @ np.linalg.solve(A, np.transpose(T, (0, 2, 1)))  # T A⁻¹ T'
    CK = C @ K
    KD = K @ D
    CKD = C @ KD
    Cv = C - CK @ C
    Dv = D - CKD
    D2 = D - 2.0 * CKD + CK @ CKD
    C2 = C - 2.0 * CK @ C + CK @ CK @ C
    DKD = np.einsum("gqp,gqr->pr", D, KD)
    DKCKD = np.einsum("gqp,gqr->pr", KD, CKD)
    DKCKCKD = np.einsum("gqp,gqr->pr", KD, C @ K @ CKD)
    Phi = s2 * linalg.inv(XtX - DKD)
    m = len(E) + 1
    P = [-np.einsum("gqp,qr,grk->pk", Dv, e, Dv) / s2 ** 2 for e in E]
    P.append(-(XtX - 2.0 * DKD + DKCKD) / s2 ** 2)
    Q = {}
    Kt = np.empty((m, m))
    CvE = [Cv @ e for e in E]  # (G, q, q) each: Cv E_k
    for a, ea in enumerate(E):
        DvEa = np.einsum("gqp,qr->gpr", Dv, ea)
        for b in range(a, len(E)):
            Q[a, b] = np.einsum("gpr,grs,gsk->pk", DvEa, CvE[b], Dv) / s2 ** 3
            Kt[a, b] = Kt[b, a] = np.einsum("gqr,grq->", CvE[a], CvE[b]) / s2 ** 2
        Q[a, m - 1] = np.einsum("gpr,grk->pk", DvEa, D2) / s2 ** 3
        Kt[a, m - 1] = Kt[m - 1, a] = np.einsum("qr,grq->", ea, C2) / s2 ** 2
    Q[m - 1, m - 1] = (XtX - 3.0 * DKD + 3.0 * DKCKD - DKCKCKD) / s2 ** 3
    KC = K @ C
    Kt[m - 1, m - 1] = (n - 2.0 * np.trace(KC, axis1=1, axis2=2).sum()
                        + np.einsum("gab,gba->", KC, KC)) / s2 ** 2
    IE2 = np.empty((m, m))
    for a in range(m):
        PhiPa = Phi @ P[a]
        for b in range(a, m):
            IE2[a, b] = IE2[b, a] = (Kt[a, b] - 2.0 * np.sum(Phi * Q[a, b])
                                     + np.sum(PhiPa * (P[b] @ Phi)))
    ev = np.linalg.eigvalsh(IE2)
    W = 2.0 * (linalg.inv(IE2) if np.min(np.abs(ev)) > 1e-10 else linalg.pinv(IE2))
    U = np.zeros_like(Phi)
    for a in range(m - 1):
        for b in range(a + 1, m):
            U += W[a, b] * (Q[a, b] - P[a] @ Phi @ P[b])
    U = U + U.T
    for a in range(m):
        U += W[a, a] * (Q[a, a] - P[a] @ Phi @ P[a])
    return Phi, Phi + 2.0 * Phi @ U @ Phi, P, W


def _kr_ddf(l, V0, P, W):
    """Kenward–Roger's denominator df of one contrast ``l`` (pbkrtest's ``Lb_ddf`` with
    q = 1): from the unadjusted covariance ``V0``, the ``P_k`` and ``W`` of the adjustment."""
    v = l @ V0 @ l
    Theta = np.outer(l, l) / v
    ThV = Theta @ V0
    m = len(P)
    A1 = A2 = 0.0
    for a in range(m):
        ua = ThV @ P[a] @ V0
        for b in range(a, m):
            e = 1.0 if a == b else 2.0
            ub = ThV @ P[b] @ V0
            A1 += e * W[a, b] * np.trace(ua) * np.trace(ub)
            A2 += e * W[a, b] * np.sum(ua * ub.T)
    B = (A1 + 6.0 * A2) / 2.0
    g = (2.0 * A1 - 5.0 * A2) / (3.0 * A2)
    c1 = g / (3.0 + 2.0 * (1.0 - g))
    c2 = (1.0 - g) / (3.0 + 2.0 * (1.0 - g))
    c3 = (3.0 - g) / (3.0 + 2.0 * (1.0 - g))
    v0 = 1.0 + c1 * B
    v0 = 0.0 if abs(v0) < 1e-10 else v0
    v1 = 1.0 - c2 * B
    v2 = 1.0 - c3 * B
    ratio = (1.0 - A2) / v1 if v1 != 0 else 0.0
    rho = ratio ** 2 * v0 / v2
    return 4.0 + 3.0 / (rho - 1.0)
