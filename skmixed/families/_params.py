"""How the Laplace deviance carries a family's parameter estimated with the fit (the last
element ``a`` of the optimizer's x; [`laplace_param`][skmixed.families.Family.laplace_param]).

Each object answers, for the generic deviance of `skmixed._model.glmm.LaplaceDeviance`:

* ``in_kernels``: whether the kernels take the parameter as their ``fpar`` and return the
  deviance's derivative over ``a`` as the last column of their gradient;
* ``fpar(a)`` and ``weights(w, a)``: the kernels' ``fpar`` and frequency weights;
  ``scales_weights``: whether those weights are the parameter's even where the rows have
  none (the generated kernels must then read them);
* ``deviance(K, a)``: the deviance from the kernels' sum K;
* ``gradient(g, a, ll, H)``: the deviance's gradient over x from the kernels' summed
  gradient ``g``, their per-group log-likelihood sums ``ll`` (column 0: Σ w ℓ at the mode;
  the last column, when not ``in_kernels``: ``c_t·H⁻¹û``) and the groups' information H;
* ``report(a)``: ``(σ, dispersion)`` as the fit reports them (lme4's and glmmTMB's: θ and
  the variance components are relative to σ).
"""

import numpy as np
from scipy import special

__all__ = ["SizeParameter", "GammaDispersion"]


class SizeParameter:
    """The negative binomial's size k as ``a = log k``: the kernels' ``fpar`` and its exact
    gradient ([`skmixed.families.param_terms`][skmixed.families.param_terms])."""

    in_kernels = True
    scales_weights = False

    def fpar(self, a):
        return float(np.exp(a))

    def report(self, a):
        """σ = 1; the size k (glmmTMB's ``sigma()``)."""
        return 1.0, float(np.exp(a))

    def weights(self, w, a):
        return w

    def deviance(self, K, a):
        return K

    def gradient(self, g, a, ll, H):
        return g


class GammaDispersion:
    """The Gamma family's dispersion φ as one more parameter ``ρ = −log φ`` (so ν = 1/φ =
    e^ρ, the shape) of the Laplace approximation — the true likelihood, as glmmTMB's.

    With shape ν each row's log-density is ``ν ℓ₁ + ν log ν − log Γ(ν) + (ν − 1) log y``
    where ``ℓ₁ = −y/μ − log μ`` is the kernels' unit-dispersion Gamma term. So the kernels,
    given the frequency weights ``w ν``, return ``K = −2 ν S₁ + ‖û‖² + log det H`` (S₁ =
    Σ w ℓ₁ at û, H = I + ν T'Σ w (y/μ) z z'T the observed information, as TMB's Laplace
    approximation), and the deviance is ``K − 2 c(ν)`` with
    ``c(ν) = n_w (ν log ν − log Γ(ν)) + (ν − 1) Σ w log y``. Its ν-derivative: f is
    stationary at û; log det H moves explicitly, by tr(H⁻¹(H − I))/ν, and through
    ∂û/∂ν = H⁻¹û/ν along its u-gradient c_t:
    ``∂d/∂ν = −2 S₁ + Σ_i (q − tr H_i⁻¹ + c_t,i·H_i⁻¹û_i)/ν − 2 c'(ν)``.

    (lme4's ``glmer`` instead finds the modes at unit dispersion and adds R's
    ``Gamma()$aic`` with a plug-in dispersion; that criterion penalizes ‖u‖² without the
    1/φ of the likelihood and is not the Laplace approximation of the model's likelihood.)
    """

    in_kernels = False
    scales_weights = True

    def report(self, rho):
        """σ = √φ (lme4's ``sigma()``) and φ = e^−ρ."""
        sigma = float(np.exp(-0.5 * rho))
        return sigma, sigma * sigma

    def __init__(self, y, w):
        self.w = w if w.size else np.ones_like(y)
        self.n_w = float(self.w.sum())
        self.sum_log_y = float(self.w @ np.log(y))

    def fpar(self, rho):
        return 0.0

    def weights(self, w, rho):
        return self.w * np.exp(rho)

    def constant(self, rho):
        nu = np.exp(rho)
        return self.n_w * (nu * rho - special.gammaln(nu)) + (nu - 1.0) * self.sum_log_y

    def deviance(self, K, rho):
        return K - 2.0 * self.constant(rho)

    def gradient(self, g, rho, ll, H):
        return np.append(g, self.slope(rho, float(ll[:, 0].sum()), H, ll[:, -1]))

    def slope(self, rho, ll_nu, H, ct_hu):
        """∂d/∂ρ from ``ll_nu = ν S₁`` (the kernels' Σ (w ν) ℓ₁), the groups' H and
        ``c_t·H⁻¹û`` per group."""
        nu = np.exp(rho)
        q = H.shape[1]
        trace = np.trace(np.linalg.inv(H), axis1=1, axis2=2) if H.shape[0] else np.zeros(0)
        dc = self.n_w * (rho + 1.0 - special.digamma(nu)) + self.sum_log_y
        d_nu = -2.0 * ll_nu / nu + np.sum(q - trace + ct_hu) / nu - 2.0 * dc
        return nu * d_nu
