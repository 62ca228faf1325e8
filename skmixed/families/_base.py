"""The [`Family`][skmixed.families.Family] base class: what every path of a fit asks a family (the
subclasses are in `_glm`), and the response checks they share."""

import numpy as np

from ._kernel_terms import (GAUSSIAN_IDENTITY, laplace_rows, observed_logdet, observed_rows,
                            param_rows, row_loglik, score_information)

__all__ = ["Family"]


def _empty(a):
    return np.empty(0) if a is None else np.ascontiguousarray(a, dtype=np.float64)


class Family:
    """One response family with its link (subclasses in `_glm`; `get_family`).

    Attributes: ``name`` and ``link`` (R's names), ``code`` (the kernels'), ``canonical``
    (observed = expected information), ``kind`` (of the response: ``"proportion"``
    (successes of trials), ``"count"``, ``"positive"``, ``"continuous"``), ``param`` (the
    name of a parameter estimated with the fit, e.g. the negative binomial's ``"size"``;
    None), ``eta_bounds`` (linear predictors beyond which a fitted mean is numerically at
    its boundary, or None); what a model's structure asks of it: ``residual_row``,
    ``linear``, ``scale_estimated``, ``observation_level_effects`` (commented below)."""

    name = ""
    label = ""  # in messages
    link = ""
    kind = "continuous"  # of the response: "proportion", "count", "positive"
    code = GAUSSIAN_IDENTITY
    canonical = True
    param = None
    eta_bounds = None

    def __repr__(self):
        return f"{type(self).__name__}(link={self.link!r})"

    def __eq__(self, other):
        return type(other) is type(self) and other.link == self.link

    def __hash__(self):
        return hash((type(self).__name__, self.link))

    # the link, on NumPy arrays
    def mean(self, eta):
        """The inverse link μ(η) (per trial for the binomial)."""
        raise NotImplementedError

    def mean_derivative(self, eta):
        """dμ/dη (the delta method's slope)."""
        raise NotImplementedError

    # residuals and simulation (``fpar``: the fitted parameter — Gaussian σ, Gamma φ, the
    # negative binomial's k; ``m``: binomial trials, 1 without)
    def variance(self, mu, fpar=1.0):
        """The variance function V(μ) (per trial for the binomial; without the dispersion,
        as lme4's Pearson residuals; the negative binomial's includes k)."""
        raise NotImplementedError

    def unit_deviance(self, y, mu, m=1.0, fpar=1.0):
        """Each row's deviance contribution ``2 (ℓ(y; y) − ℓ(y; μ))`` (unit dispersion;
        ``y`` successes out of ``m`` for the binomial)."""
        raise NotImplementedError

    def sample(self, rng, mu, m=1.0, fpar=1.0):
        """Responses drawn with means ``mu`` (successes out of ``m`` for the binomial)."""
        raise NotImplementedError

    # the likelihood
    def loglik(self, y, eta, m=None, w=None, fpar=0.0, constants=True):
        """Σ w ℓ(y; η) (``m``: binomial trials); ``constants=False`` leaves out the terms
        free of η (log C(m, y), −log y!)."""
        y = np.ascontiguousarray(y, dtype=np.float64)
        m_, w_ = _empty(m), _empty(w)
        rows = np.empty_like(y)
        row_loglik(self.code, float(fpar), y, m_, np.ascontiguousarray(eta, dtype=float), rows)
        if not constants:
            rows -= self._log_base(y, m_ if m_.size else np.ones_like(y))
        # NumPy's sums (pairwise or BLAS), not a running sum: the several-factor fit takes
        # finite differences of this deviance
        return float(w_ @ rows if w_.size else rows.sum())

    def _log_base(self, y, m):
        return np.zeros_like(y)

    def score_information(self, y, eta, m=None, fpar=0.0, over_rows=None):
        """ℓ' and the working weight v_F per row: PIRLS's working response is
        ``η + ℓ'/v_F``. ``over_rows(kernel, n, args_for)``: runs the row kernel over parts
        of the rows (``args_for(rows)``: its arguments for the slice ``rows``), e.g. on
        threads; None: one call."""
        y = np.ascontiguousarray(y, dtype=np.float64)
        m, eta = _empty(m), np.ascontiguousarray(eta, dtype=float)
        l1, v = np.empty_like(y), np.empty_like(y)
        code, fpar = self.code, float(fpar)

        def args_for(r):
            return code, fpar, y[r], m[r] if m.size else m, eta[r], l1[r], v[r]

        if over_rows is None:
            score_information(*args_for(slice(None)))
        else:
            over_rows(score_information, y.shape[0], args_for)
        return l1, v

    def fisher_weights(self, eta, m=None, fpar=1.0):
        """The expected information per row, ``m μ'(η)²/V(μ)`` (unit dispersion): the
        working weights of Fisher scoring (bam's PIRLS); the same as `score_information`'s
        v_F for a canonical link."""
        eta = np.asarray(eta, dtype=float)
        d = self.mean_derivative(eta)
        w = d * d / self.variance(self.mean(eta), fpar)
        return w if m is None else np.asarray(m, dtype=float) * w

    def laplace_terms(self, y, eta, m=None, fpar=0.0):
        """ℓ, ℓ', v_F and ∂v_F/∂η per row (the Laplace deviance and its exact gradient)."""
        y = np.ascontiguousarray(y, dtype=np.float64)
        out = [np.empty_like(y) for _ in range(4)]
        laplace_rows(self.code, float(fpar), y, _empty(m),
                     np.ascontiguousarray(eta, dtype=float), *out)
        return tuple(out)

    def observed(self, y, eta, m=None, fpar=0.0):
        """The observed information ``−∂²ℓ/∂η²`` per row (v_F where
        `observed_information`)."""
        y = np.ascontiguousarray(y, dtype=np.float64)
        v = np.empty_like(y)
        observed_rows(self.code, float(fpar), y, _empty(m),
                      np.ascontiguousarray(eta, dtype=float), v)
        return v

    def laplace_param_terms(self, y, eta, m=None, fpar=0.0):
        """∂ℓ, ∂ℓ' and ∂v_F per row over the log of the family's parameter (zeros for a
        family without one)."""
        y = np.ascontiguousarray(y, dtype=np.float64)
        out = [np.empty_like(y) for _ in range(3)]
        param_rows(self.code, float(fpar), y, _empty(m),
                   np.ascontiguousarray(eta, dtype=float), *out)
        return tuple(out)

    @property
    def observed_information(self):
        """Whether the PIRLS weights v_F are the observed information −∂ℓ'/∂η, which the
        Laplace log determinant uses (the canonical links, the negative binomial, Gamma;
        not the binomial probit and cloglog, whose v_F is the expected one)."""
        return self.code != GAUSSIAN_IDENTITY and bool(observed_logdet(self.code))

    def diverged(self, eta):
        """Whether a linear predictor puts fitted means numerically at their boundary
        (|η| > 30 for a probability, η < −30 for a count's mean): the estimates run to
        infinity and the working weights underflow."""
        return False

    # the parameter estimated with the fit
    glm_fpar = 0.0  # its value in the GLM that gives the start values
    # the variance components end with a residual row (lme4's VarCorr: Gaussian, Gamma)
    residual_row = False

    # what the model's structure asks of the family
    # linear in y (Gaussian, identity link): one (RE)ML fit of y itself, no PIRLS working
    # model; y's cross-products are sufficient statistics (bin tables summed over chunks or
    # Dask partitions fit it), and y may be shifted by a constant the intercept absorbs
    linear = False
    # the scale (σ², a dispersion) is estimated with the fit, profiled out of the REML
    # criterion and counted among the parameters (mgcv's ``scale.estimated``: its smooth
    # terms' F test; a known scale of 1 gets the Chi.sq test): Gaussian, Gamma
    scale_estimated = False
    # a grouping factor with a level per observation is identified (glmer does not check:
    # an overdispersion term, through the mean–variance relation); False for y = η + a
    # normal error, whose level effect and residual would be one draw (lmer's
    # levels-vs-observations check, skmixed._model.identifiability)
    observation_level_effects = True

    def param_start(self, y, mu, w):
        """The start of the optimizer's parameter (``param``; Gamma: ρ = −log φ, negative
        binomial: log k) from the start GLM's means ``mu`` (``w`` empty: unit weights)."""
        raise NotImplementedError

    def laplace_param(self, y, w):
        """How the Laplace deviance carries ``param`` for the rows ``y`` with frequency
        weights ``w`` (empty: unit weights): an object of `_params`, None for a
        family without a parameter."""
        return None

    # one of mgcv's "extended families" (its parameter estimated in the fit: nb(), tw()),
    # whose PIRLS bam's discrete method runs with Newton (observed-information) weights
    extended = False

    # the response
    def check_y(self, y, trials=None, trials_label=None):
        """Refuse a response this family cannot have (ValueError naming the first bad
        row); ``y`` is float64 (successes when ``trials`` is given)."""

    def start_eta(self, y):
        """η of the mean-shrunk response (R's ``mustart``)."""
        raise NotImplementedError

    def glm_start(self, X, y, w):
        """β to start the scoring of the GLM without random effects from (``w`` empty: unit
        weights): 0."""
        return np.zeros(X.shape[1])


def non_integral(a):
    """Rows of ``a`` that are not integers (up to rounding in a float computation)."""
    return np.abs(a - np.round(a)) > 1e-8 * np.maximum(1.0, np.abs(a))


def first_bad(bad, y, what):
    """Raise ``what`` as a ValueError naming the first row where ``bad`` holds."""
    i = int(np.flatnonzero(bad)[0])
    raise ValueError(f"{what}; row {i} has {y[i]:g}.")
