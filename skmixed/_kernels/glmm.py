"""Per-group penalized IRLS and the Laplace / adaptive Gauss–Hermite deviance of a GLMM.

Rows are grouped (``starts[i]:starts[i+1]`` are group i's rows). For group i with spherical
random effects u, ``η_j = o_j + x_j'β + z_j'T u`` and

    f_i(u) = Σ_j w_j ℓ(y_j; η_j) − ½‖u‖²                         (w: frequency weights)

the conditional mode û_i maximizes f_i by Newton steps with the observed information
``H_i = T'(Σ_j w_j v_j z_j z_j')T + I`` (``v = −∂²ℓ/∂η²``), warm-started from the last
evaluation. The Laplace deviance (lme4's nAGQ = 1) is

    d = Σ_i −2 f_i(û_i) + log det H_i

with ℓ the full log-likelihood (log C(m, k) included). The gradient over (β, θ) (derivation
in this module, for canonical links, where observed = Fisher information):

    ∂d/∂β_k = −2 Σ ℓ'_j x_jk + Σ s_j x_jk + (Σ s_j z_j)'T ∂û/∂β_k
    ∂d/∂θ_m = −2 (Σℓ'_j z_j)_a û_b + 2 (H⁻¹T'C)_{ba} + (Σ s_j z_j)_a û_b + (Σ s_j z_j)'T ∂û/∂θ_m

for θ_m = T[a, b]; ``s_j = w_j v'_j z_j'A z_j`` with ``A = T H⁻¹ T'`` and ``v' = ∂v/∂η``;
``∂û/∂β = −H⁻¹T'(Σ w v z x')``, ``∂û/∂θ_m = H⁻¹(e_b (Σℓ'z)_a − T'C[:, a] û_b)``,
``C = Σ w v z z'``. Adaptive Gauss–Hermite (scalar random effect): nodes at
``û + t_k/√H`` with the probabilists' weights; its exact gradient (differentiating the
nodes through û and H) is in :func:`_agq_group`.

The family enters as its code and parameter ``(family, fpar)``; its row terms are
:mod:`skmixed.families`'. ``m`` holds binomial trials (y are success counts), empty for 0/1
data.

The kernels live in :mod:`.glmm_rows` (a group's rows and its mode), :mod:`.laplace`,
:mod:`.agq` and :mod:`.glmm_sums`; this module gathers their names: :mod:`.glmm_codegen`
takes the drivers' source and the generated passes' globals from it.
"""

from ..families import (has_param, observed_logdet, param_terms,  # noqa: F401
                        row_derivs, row_terms)
from .blocks import block_bounds  # noqa: F401
from .._cache import cached_njit  # noqa: F401
from .dense import chol_lower as _chol  # noqa: F401
from .dense import chol_solve as _chol_solve  # noqa: F401
from .dense import (inverse_from_chol, lower_matvec, lower_sandwich,  # noqa: F401
                    tct_plus_identity)
from .glmm_rows import (  # noqa: F401 (the drivers' names for glmm_codegen)
    _fixed_eta,
    _re_covariate,
    _row_eta,
    _weighted_terms,
    _group_pass,
    _newton_step,
    _step_size,
    _mode,
    _refine_mode,
    _NEAR,
    _ACCEPT,
    _FAR,
    _FULL_PASSES)
from .laplace import (  # noqa: F401 (the drivers' names for glmm_codegen)
    _laplace_pass,
    _logdet_slope,
    _laplace_gradient,
    _param_pass,
    _param_gradient,
    laplace_groups)
from .agq import (  # noqa: F401 (the drivers' names for glmm_codegen)
    _agq_mode_sums,
    _agq_node_pass,
    _agq_group,
    agq_groups,
    agq_grad_groups)
from .glmm_sums import (  # noqa: F401 (the drivers' names for glmm_codegen)
    fixed_glm_sums,
    _joint_pass,
    pirls_joint_sums,
    count_extreme_eta)

__all__ = ["laplace_groups", "agq_groups", "agq_grad_groups", "fixed_glm_sums",
           "pirls_joint_sums", "count_extreme_eta"]
