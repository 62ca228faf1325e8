"""Small simulated GLMM problems for the kernel and model tests: the response of one of
seven kinds given the linear predictor, and the rows put in group order."""

import numpy as np
from scipy import special

from skmixed._model.glmm import GroupedRows, group_order
from skmixed.families import get_family


def glmm_response(rng, kind, eta, weight_low=1):
    """``(family, y, m, offset, weights)`` for linear predictor ``eta`` (``family``: a
    :class:`skmixed.families.Family`).

    kind: "binomial" (0/1), "trials" (successes of m = 1…6 trials), "poisson" (with an
    offset and integer frequency weights from ``weight_low`` to 3), "poisson_plain",
    "probit" (successes of m = 1…6 trials, probit link), "cloglog" (0/1, complementary
    log-log link, with an offset), "gamma" (log link, shape 4, with frequency weights).
    Empty arrays stand for no trials, offset or weights.
    """
    n = eta.shape[0]
    m = off = w = np.empty(0)
    family = get_family("binomial")
    if kind == "binomial":
        y = rng.binomial(1, special.expit(eta))
    elif kind == "trials":
        m = rng.integers(1, 7, size=n).astype(float)
        y = rng.binomial(m.astype(int), special.expit(eta))
    elif kind == "probit":
        family = get_family("binomial", "probit")
        m = rng.integers(1, 7, size=n).astype(float)
        y = rng.binomial(m.astype(int), special.ndtr(eta))
    elif kind == "gamma":
        family = get_family("gamma")
        w = rng.integers(weight_low, 4, size=n).astype(float)
        y = rng.gamma(4.0, np.exp(eta) / 4.0)
    elif kind == "cloglog":
        family = get_family("binomial", "cloglog")
        off = rng.uniform(-0.5, 0.5, size=n)
        y = rng.binomial(1, -np.expm1(-np.exp(eta + off)))
    else:
        family = get_family("poisson")
        if kind == "poisson":
            off = rng.uniform(-0.7, 0.7, size=n)
            w = rng.integers(weight_low, 4, size=n).astype(float)
        y = rng.poisson(np.exp(eta + (off if off.size else 0.0)))
    return family, y.astype(float), m, off, w


def grouped_rows(codes, n_groups, X, zcol, y, m, off, w):
    """The rows in group order (``group_order``) as the kernels read them."""
    order, starts = group_order(codes, n_groups)
    take = (lambda a: a) if order is None else (lambda a: a[order] if a.size else a)
    return GroupedRows(np.asfortranarray(take(X)), np.asarray(zcol, dtype=np.int64), take(y),
                       take(m), take(off), take(w), starts)
