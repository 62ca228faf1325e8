"""Response families: one class per family and link, the only place a family is named.

A [`Family`][skmixed.families.Family] carries everything the fits need to know of it — the link and
its inverse, the variance, the log-likelihood, the response checks, the PIRLS working response, its
parameter estimated with the fit (if any) and how the Laplace deviance carries it, and, for the
Numba kernels, its code and its row terms ([`row_terms`][skmixed.families.row_terms]:
log-likelihood and the η-derivatives of one row). Estimators ask
[`get_family`][skmixed.families.get_family] for the object and pass it down; the kernels receive
``family.code`` and the parameter's value (``fpar``: the negative binomial's size, 0 otherwise).

The modules: `_base` (the [`Family`][skmixed.families.Family] interface), `_glm` (the families and
[`get_family`][skmixed.families.get_family]), `_params` (the parameters estimated with the fit: the
negative binomial's size, Gamma's dispersion) and `_kernel_terms` (the kernels' codes and row
terms).

Adding a family: its row terms (a branch of [`row_terms`][skmixed.families.row_terms], and of
[`param_terms`][skmixed.families.param_terms] when it has a parameter), a subclass of
[`Family`][skmixed.families.Family] in `_glm` (with
[`Family.laplace_param`][skmixed.families.Family.laplace_param] when it has a parameter), and an
entry in its ``_LINKS``.
"""

from ._base import Family
from ._glm import (FAMILY_NAMES, Binomial, Gamma, Gaussian, NegativeBinomial, Poisson,
                   Tweedie, get_family)
from ._kernel_terms import (BINOMIAL_CLOGLOG, BINOMIAL_LOGIT, BINOMIAL_PROBIT, GAMMA_LOG,
                            GAUSSIAN_IDENTITY, NBINOM2_LOG, POISSON_LOG, has_param,
                            observed_logdet, param_terms, product_row_source, row_derivs,
                            row_terms, special_digamma)

__all__ = ["Family", "get_family", "BINOMIAL_LOGIT", "POISSON_LOG", "BINOMIAL_PROBIT",
           "BINOMIAL_CLOGLOG", "GAMMA_LOG", "NBINOM2_LOG", "row_terms", "row_derivs",
           "param_terms", "observed_logdet", "has_param"]
