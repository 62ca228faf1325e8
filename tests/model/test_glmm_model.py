"""The GLMM deviance model (:mod:`skmixed._model.glmm`) against pure NumPy/scipy references.

Reference for one group i (rows in group order, η = o + Xβ + Z T u, frequency weights w)::

    f_i(u) = Σ_j w_j log p(y_j | η_j) − ½‖u‖²       (scipy.stats log-pmfs: full likelihood)
    H_i(u) = T'Z_i' diag(w v) Z_i T + I              (v = m μ(1−μ) or e^η)
    Laplace deviance  d = Σ_i −2 f_i(û_i) + log det H_i(û_i)
    AGQ deviance      d = Σ_i −2 log ∫ exp(Σ_j w_j ℓ_j(u)) φ(u) du   (scalar u, by quad)

û_i comes from scipy.optimize.minimize of −f_i (then two NumPy Newton steps, so the
reference log det is not blurred by the optimizer's tolerance). Also: group_order, the
fixed-effect GLM against statsmodels, ParamSpace, and the "newton" optimizer against
Nelder–Mead.
"""

from pathlib import Path

import numba
import numpy as np
import pytest
from scipy import integrate, optimize, special, stats

from conftest import require_package
from glmm_problems import glmm_response, grouped_rows

from skmixed.families import (BINOMIAL_CLOGLOG, BINOMIAL_LOGIT, BINOMIAL_PROBIT, POISSON_LOG,
                              Gamma, get_family)
from skmixed._kernels.threads import numba_threads
from skmixed._model.glmm import (GroupedRows, JointPIRLSDeviance, LaplaceDeviance,
                                 fit_fixed_glm, group_order)
from skmixed._model.multilevel import FactorColumns
from skmixed._model.multilevel_glmm import MultiLaplace
from skmixed._model.optimize import minimize
from skmixed._model.spaces import ParamSpace, ThetaSpace
from skmixed._model.terms import RandomEffectTerm

two_threads = pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2,
                                 reason="needs 2 Numba threads")

# group sizes: a 1-row group, an empty group (in the middle and last), different sizes
SIZES = (1, 6, 0, 3, 11, 2, 17, 5, 0)
TRUE_BETA = np.array([-0.3, 0.6, -0.4])


# ----------------------------------------------------------------------------- problems
def make_rows(rng, kind, q, sizes=SIZES, weight_low=1):
    """A small GLMM problem in group order (built unsorted, then sorted by group_order).

    kind: "binomial" (0/1), "trials" (successes of m = 1…6 trials, some with m = 1),
    "poisson" (with an offset and integer frequency weights), "poisson_plain".
    """
    G = len(sizes)
    codes = np.repeat(np.arange(G), sizes)
    rng.shuffle(codes)
    n = codes.size
    Xraw = np.column_stack([np.ones(n), rng.normal(size=n), rng.uniform(-1, 1, size=n)])
    b = rng.normal(size=(G, 2)) * np.array([0.9, 0.5])
    eta = Xraw @ TRUE_BETA + b[codes, 0] + (b[codes, 1] * Xraw[:, 1] if q == 2 else 0.0)
    family, y, m, off, w = glmm_response(rng, kind, eta, weight_low)
    return family, grouped_rows(codes, G, Xraw, [-1, 1][:q], y, m, off, w)


def x_at(term, theta=None):
    if theta is None:
        theta = {(1, "unstructured"): [0.8], (1, "diagonal"): [0.8],
                 (2, "unstructured"): [0.9, -0.3, 0.6],
                 (2, "diagonal"): [0.9, 0.5]}[(term.q, term.covariance)]
    return np.concatenate([TRUE_BETA + np.array([0.05, -0.1, 0.08]), theta])


def make_term(q, covariance):
    return RandomEffectTerm(("(Intercept)", "x1")[:q], covariance)


def glm_terms(family, y, m, eta):
    """ℓ (scipy), ℓ', the observed information −ℓ'' and the expected information, in the
    textbook form of a binomial GLM with mean μ(η): ℓ' = (y − mμ) μ'/V, V = μ(1 − μ),
    −ℓ'' = m μ'²/V − (y − mμ) (μ''V − μ'²(1 − 2μ))/V²."""
    family = family.code
    if family == POISSON_LOG:
        mu = np.exp(eta)
        return stats.poisson.logpmf(y, mu), y - mu, mu, mu
    with np.errstate(divide="ignore", invalid="ignore"):  # μ(1 − μ) = 0 far in the tails
        return _binomial_terms(family, y, m, eta)


def _binomial_terms(family, y, m, eta):
    if family == BINOMIAL_LOGIT:
        mu = special.expit(eta)
        d1 = mu * (1 - mu)
        d2 = d1 * (1 - 2 * mu)
    elif family == BINOMIAL_PROBIT:
        mu = special.ndtr(eta)
        d1 = np.exp(-0.5 * eta ** 2) / np.sqrt(2 * np.pi)
        d2 = -eta * d1
    else:
        mu = -np.expm1(-np.exp(eta))
        d1 = np.exp(eta - np.exp(eta))
        d2 = d1 * (1 - np.exp(eta))
    V = mu * (1 - mu)
    fisher = m * d1 ** 2 / V
    observed = fisher - (y - m * mu) * (d2 * V - d1 ** 2 * (1 - 2 * mu)) / V ** 2
    return stats.binom.logpmf(y, m, mu), (y - m * mu) * d1 / V, observed, fisher


class Reference:
    """Pure NumPy/scipy per-group f_i, its gradient and H_i (observed information; the
    Laplace deviance's log determinant uses the expected one, as lme4's)."""

    def __init__(self, family, rows, term):
        self.family, self.rows, self.term = family, rows, term

    def group(self, i):
        r = self.rows
        lo, hi = r.starts[i], r.starts[i + 1]
        n = r.X.shape[0]
        Z = np.column_stack([np.ones(n) if c < 0 else r.X[:, c] for c in r.zcol])
        cut = (lambda a, fill: a[lo:hi] if a.size else np.full(hi - lo, fill))
        return r.X[lo:hi], Z[lo:hi], r.y[lo:hi], cut(r.m, 1.0), cut(r.offset, 0.0), \
            cut(r.weights, 1.0)

    def parts(self, i, x, u):
        X, Z, y, m, o, w = self.group(i)
        p = X.shape[1]
        beta, T = x[:p], self.term.factor(x[p:])
        eta = o + X @ beta + Z @ (T @ u)
        ll, l1, v, vf = glm_terms(self.family, y, m, eta)
        f = w @ ll - 0.5 * u @ u
        grad = T.T @ (Z.T @ (w * l1)) - u
        H = T.T @ (Z.T * (w * v)) @ Z @ T + np.eye(len(u))
        self.fisher = T.T @ (Z.T * (w * vf)) @ Z @ T + np.eye(len(u))
        return f, grad, H

    def fisher_H(self, i, x, u):
        """H_F: the penalized expected information (lme4's PIRLS factor) at u."""
        self.parts(i, x, u)
        return self.fisher

    def f(self, i, x, u):
        return self.parts(i, x, u)[0]

    def mode(self, i, x):
        q = self.term.q
        res = optimize.minimize(lambda u: -self.f(i, x, u), np.zeros(q),
                                jac=lambda u: -self.parts(i, x, u)[1],
                                hess=lambda u: self.parts(i, x, u)[2],
                                method="trust-exact", options={"gtol": 1e-9})
        assert np.abs(res.jac).max() < 1e-6, res.message
        u = res.x
        for _ in range(2):  # Newton polish
            _, g, H = self.parts(i, x, u)
            u = u + np.linalg.solve(H, g)
        assert np.abs(self.parts(i, x, u)[1]).max() < 1e-10
        return u

    def laplace(self, x):
        dev, modes = 0.0, []
        for i in range(self.rows.n_groups):
            u = self.mode(i, x)
            f = self.parts(i, x, u)[0]
            dev += -2.0 * f + np.linalg.slogdet(self.fisher_H(i, x, u))[1]
            modes.append(u)
        return dev, np.array(modes)

    def integral_deviance(self, x):
        """−2 Σ log ∫ exp(Σ w ℓ) φ(u) du by adaptive quadrature (scalar u)."""
        total = 0.0
        for i in range(self.rows.n_groups):
            u_hat = self.mode(i, x)[0]
            f_hat, _, H = self.parts(i, x, np.array([u_hat]))
            s = 1.0 / np.sqrt(H[0, 0])
            # f is concave with curvature ≥ 1, so ±12 around the mode holds all the mass
            val, _ = integrate.quad(lambda u: np.exp(self.f(i, x, np.array([u])) - f_hat),
                                    u_hat - 12.0, u_hat + 12.0,
                                    points=[u_hat - s, u_hat, u_hat + s],
                                    epsabs=0.0, epsrel=1e-13, limit=200)
            total += -2.0 * (f_hat + np.log(val) - 0.5 * np.log(2 * np.pi))
        return total


LAPLACE_CASES = [
    ("binomial", 1, "unstructured"),
    ("binomial", 2, "unstructured"),
    ("binomial", 2, "diagonal"),
    ("trials", 1, "unstructured"),
    ("trials", 2, "unstructured"),
    ("poisson", 2, "unstructured"),
    ("poisson", 2, "diagonal"),
    ("poisson_plain", 1, "unstructured"),
    ("probit", 1, "unstructured"),
    ("probit", 2, "unstructured"),
    ("cloglog", 1, "unstructured"),
    ("cloglog", 2, "diagonal"),
]


@pytest.fixture(params=LAPLACE_CASES, ids=lambda c: "-".join(map(str, c)))
def problem(request):
    kind, q, covariance = request.param
    rng = np.random.default_rng(100 + LAPLACE_CASES.index(request.param))
    family, rows = make_rows(rng, kind, q)
    term = make_term(q, covariance)
    return family, rows, term


# ----------------------------------------------------------------------------- group_order
def test_group_order_unsorted_is_stable_counting_sort_with_empty_groups():
    rng = np.random.default_rng(0)
    G = 7
    codes = rng.choice([0, 1, 3, 4, 1, 0, 4, 4], size=60).astype(np.int64)  # 2, 5, 6 empty
    assert np.any(np.diff(codes) < 0)
    order, starts = group_order(codes, G)
    np.testing.assert_array_equal(order, np.argsort(codes, kind="stable"))
    np.testing.assert_array_equal(starts, np.concatenate(
        [[0], np.cumsum(np.bincount(codes, minlength=G))]))
    assert starts.dtype == np.int64 and order.dtype == np.int64
    for g in range(G):
        block = order[starts[g]:starts[g + 1]]
        assert np.all(codes[block] == g)
        assert np.all(np.diff(block) > 0)  # stable: original order kept within a group
    assert starts[3] - starts[2] == 0 and starts[7] - starts[5] == 0


def test_group_order_sorted_input_returns_none():
    codes = np.array([1, 1, 2, 2, 2, 4], dtype=np.int64)  # 0, 3, 5 empty
    order, starts = group_order(codes, 6)
    assert order is None
    np.testing.assert_array_equal(starts, [0, 0, 2, 5, 5, 6, 6])


def test_group_order_edge_cases():
    order, starts = group_order(np.zeros(0, dtype=np.int64), 3)
    assert order is None
    np.testing.assert_array_equal(starts, [0, 0, 0, 0])
    order, starts = group_order(np.zeros(5, dtype=np.int64), 1)
    assert order is None
    np.testing.assert_array_equal(starts, [0, 5])
    order, starts = group_order(np.array([2, 1, 0], dtype=np.int64), 3)
    np.testing.assert_array_equal(order, [2, 1, 0])
    np.testing.assert_array_equal(starts, [0, 1, 2, 3])


# ----------------------------------------------------------------------------- Laplace
def test_laplace_modes_and_deviance_against_reference(problem):
    family, rows, term = problem
    ref = Reference(family, rows, term)
    x = x_at(term)
    obj = LaplaceDeviance(family, rows, term)
    dev = obj.value(x)
    assert obj._conv.all()
    ref_dev, ref_modes = ref.laplace(x)
    # (a) the kernel's modes maximize f_i
    np.testing.assert_allclose(obj.u, ref_modes, rtol=0, atol=1e-8)
    for i in range(rows.n_groups):
        assert ref.f(i, x, obj.u[i]) >= ref.f(i, x, ref_modes[i]) - 1e-11
        assert np.abs(ref.parts(i, x, obj.u[i])[1]).max() < 1e-8
    empty = np.diff(rows.starts) == 0
    np.testing.assert_array_equal(obj.u[empty], 0.0)
    # (b) the Laplace deviance
    np.testing.assert_allclose(dev, ref_dev, rtol=1e-11)
    # modes(): b = T û and diag(T H⁻¹ T')
    b, cond_var = obj.modes(x)
    T = term.factor(x[3:])
    np.testing.assert_allclose(b, ref_modes @ T.T, atol=1e-8)
    for i in range(rows.n_groups):
        H = ref.fisher_H(i, x, ref_modes[i])  # lme4's condVar: the PIRLS factor
        np.testing.assert_allclose(cond_var[i], np.diag(T @ np.linalg.solve(H, T.T)),
                                   rtol=1e-8, atol=1e-12)


def central_gradient(fun, x, h=1e-4):
    g = np.empty_like(x)
    for j in range(x.size):
        e = np.zeros_like(x)
        e[j] = h
        g[j] = (fun(x + e) - fun(x - e)) / (2 * h)
    return g


def zero_diagonal_thetas(term):
    if term.q == 1:
        return [[0.0]]
    if term.covariance == "diagonal":
        return [[0.0, 0.5], [0.9, 0.0]]
    return [[0.9, -0.3, 0.0], [0.0, 0.4, 0.6]]


def test_laplace_gradient_matches_finite_differences(problem):
    family, rows, term = problem
    obj = LaplaceDeviance(family, rows, term)
    fd_obj = LaplaceDeviance(family, rows, term)
    for x in [x_at(term)] + [x_at(term, th) for th in zero_diagonal_thetas(term)]:
        f, g = obj.value_and_grad(x)
        assert f == pytest.approx(fd_obj.value(x), rel=1e-12)
        g_fd = central_gradient(fd_obj.value, x)
        np.testing.assert_allclose(g, g_fd, rtol=1e-5, atol=1e-5 * max(1.0, np.abs(g).max()))


def test_value_independent_of_warm_start(problem):
    family, rows, term = problem
    x0 = x_at(term)
    x1 = x0 + np.linspace(-0.4, 0.5, x0.size)
    warm = LaplaceDeviance(family, rows, term)
    warm.value(x1)
    cold = LaplaceDeviance(family, rows, term)
    np.testing.assert_allclose(warm.value(x0), cold.value(x0), rtol=1e-12)
    np.testing.assert_allclose(warm.u, cold.u, atol=1e-9)


def test_deviance_invariant_under_column_sign_flip(problem):
    family, rows, term = problem
    obj = LaplaceDeviance(family, rows, term)
    x = x_at(term)
    p = rows.X.shape[1]
    flipped = x.copy()
    flipped[p:] = -x[p:]  # every column of T flips: T T' unchanged
    np.testing.assert_allclose(obj.value(flipped), obj.value(x), rtol=1e-12)
    canonical = ParamSpace(ThetaSpace(term), x[:p]).canonical(flipped)
    np.testing.assert_allclose(obj.value(canonical), obj.value(x), rtol=1e-12)


@pytest.mark.parametrize("kind, q, covariance", [("poisson", 2, "unstructured"),
                                                  ("poisson", 1, "unstructured"),
                                                  ("poisson", 2, "diagonal")])
def test_frequency_weights_equal_repeated_rows(kind, q, covariance):
    rng = np.random.default_rng(21 + q)
    family, rows = make_rows(rng, kind, q, weight_low=0)  # weights 0…3
    assert np.any(rows.weights == 0) and np.any(rows.weights > 1)
    term = make_term(q, covariance)
    rep = np.repeat(np.arange(rows.X.shape[0]), rows.weights.astype(int))
    codes = np.repeat(np.arange(rows.n_groups), np.diff(rows.starts))[rep]
    order, starts = group_order(codes, rows.n_groups)
    assert order is None  # repeating rows in place keeps group order
    expanded = GroupedRows(np.asfortranarray(rows.X[rep]), rows.zcol, rows.y[rep],
                           rows.m, rows.offset[rep], np.empty(0), starts)
    x = x_at(term)
    weighted = LaplaceDeviance(family, rows, term)
    repeated = LaplaceDeviance(family, expanded, term)
    fw, gw = weighted.value_and_grad(x)
    fr, gr = repeated.value_and_grad(x)
    np.testing.assert_allclose(fw, fr, rtol=1e-12)
    np.testing.assert_allclose(gw, gr, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(weighted.u, repeated.u, atol=1e-10)


@two_threads
def test_one_and_two_threads_identical(problem):
    family, rows, term = problem
    x = x_at(term)
    for n_agq in (1, 7) if term.q == 1 else (1,):  # quadrature: scalar random effect only
        out = []
        for n_jobs in (1, 2):
            with numba_threads(n_jobs):
                obj = LaplaceDeviance(family, rows, term, n_agq=n_agq)
                f = obj.value(x)
                g = obj.value_and_grad(x)[1] if n_agq == 1 else None
                out.append((f, g, obj.u.copy()))
        assert out[0][0] == out[1][0]
        if n_agq == 1:
            np.testing.assert_array_equal(out[0][1], out[1][1])
        np.testing.assert_array_equal(out[0][2], out[1][2])


# ----------------------------------------------------------------------------- AGQ
@pytest.mark.parametrize("kind", ["binomial", "trials", "poisson", "probit", "cloglog"])
def test_agq_matches_integral_and_converges_with_nodes(kind):
    rng = np.random.default_rng({"binomial": 1, "trials": 2, "poisson": 3, "probit": 5,
                                 "cloglog": 6}[kind])
    family, rows = make_rows(rng, kind, 1)
    term = make_term(1, "unstructured")
    ref = Reference(family, rows, term)
    x = x_at(term, [1.1])
    exact = ref.integral_deviance(x)
    errors = {}
    for n_agq in (1, 2, 3, 5, 9, 25):
        obj = LaplaceDeviance(family, rows, term, n_agq=n_agq)
        errors[n_agq] = abs(obj.value(x) - exact)
    assert errors[25] < 1e-6, errors
    assert errors[1] > 1e-4, errors  # the test distinguishes Laplace from the integral
    # convergence need not be monotone at few nodes (a skewed one-row Poisson group makes 2
    # and 3 nodes worse than Laplace here), but it is from 9 nodes on
    assert errors[25] < errors[9] < errors[5] < errors[1] or errors[9] < 1e-9, errors
    assert errors[25] == min(errors.values()) and errors[25] < 1e-3 * errors[1], errors
    # the quadrature itself, node by node, against a NumPy rule at the reference modes
    for n_agq in (2, 3, 5):
        nodes, weights = np.polynomial.hermite_e.hermegauss(n_agq)
        weights = weights / weights.sum()
        obj = LaplaceDeviance(family, rows, term, n_agq=n_agq)
        obj.value(x)
        for i in range(rows.n_groups):
            u_hat = ref.mode(i, x)
            s = 1.0 / np.sqrt(ref.fisher_H(i, x, u_hat)[0, 0])  # lme4's node scale
            vals = [ref.f(i, x, u_hat + s * t) + 0.5 * t * t + np.log(w)
                    for t, w in zip(nodes, weights)]
            assert obj._dev[i] == pytest.approx(-2.0 * (np.log(s) + special.logsumexp(vals)),
                                                rel=1e-11, abs=1e-11)
    # the value does not depend on the modes left by the previous evaluation
    obj = LaplaceDeviance(family, rows, term, n_agq=25)
    obj.value(x + 0.3)
    assert abs(obj.value(x) - exact) < 1e-6


def test_agq_value_and_grad_leaves_modes_at_x():
    rng = np.random.default_rng(4)
    family, rows = make_rows(rng, "binomial", 1)
    term = make_term(1, "unstructured")
    obj = LaplaceDeviance(family, rows, term, n_agq=5)
    x = x_at(term)
    f, g = obj.value_and_grad(x)
    u = obj.u.copy()
    assert f == pytest.approx(LaplaceDeviance(family, rows, term, n_agq=5).value(x),
                              rel=1e-12)
    np.testing.assert_allclose(u, Reference(family, rows, term).laplace(x)[1], atol=1e-8)
    np.testing.assert_allclose(g, central_gradient(obj.value, x, 1e-4), rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------- fixed GLM
@pytest.mark.parametrize("kind", ["binomial", "trials", "poisson", "poisson_plain", "probit",
                                  "cloglog"])
@pytest.mark.parametrize("n_blocks", [1, 3])
def test_fit_fixed_glm_matches_statsmodels(kind, n_blocks):
    sm = require_package("statsmodels.api", "test")
    rng = np.random.default_rng(8)
    family, rows = make_rows(rng, kind, 2, sizes=(30, 25, 40, 10))
    beta = fit_fixed_glm(family, rows, n_blocks)
    kw = {}
    if rows.offset.size:
        kw["offset"] = rows.offset
    if rows.weights.size:
        kw["freq_weights"] = rows.weights
    if family.code != POISSON_LOG:
        endog = np.column_stack([rows.y, rows.m - rows.y]) if rows.m.size else rows.y
        link = {BINOMIAL_LOGIT: sm.families.links.Logit, BINOMIAL_PROBIT: sm.families.links.Probit,
                BINOMIAL_CLOGLOG: sm.families.links.CLogLog}[family.code]
        fam = sm.families.Binomial(link=link())
    else:
        endog, fam = rows.y, sm.families.Poisson()
    res = sm.GLM(endog, np.asarray(rows.X), family=fam, **kw).fit(tol=1e-13, maxiter=100)
    np.testing.assert_allclose(beta, res.params, rtol=0, atol=1e-6)


# ----------------------------------------------------------------------------- optimization
def test_param_space_canonical_flips_only_theta_columns():
    term = make_term(2, "unstructured")
    beta = np.array([-2.0, -0.5, 3.0])
    space = ParamSpace(ThetaSpace(term), beta)
    np.testing.assert_array_equal(space.start(), [-2.0, -0.5, 3.0, 1.0, 0.0, 1.0])
    np.testing.assert_array_equal(space.lower(), [-np.inf] * 3 + [0.0, -np.inf, 0.0])
    x = np.array([-1.0, -2.0, -3.0, -0.8, 0.4, 1.2])
    c = space.canonical(x)
    np.testing.assert_array_equal(c, [-1.0, -2.0, -3.0, 0.8, -0.4, 1.2])
    np.testing.assert_array_equal(space.canonical(np.array([-1, -2, -3, 0.8, 0.4, -1.2])),
                                  [-1, -2, -3, 0.8, 0.4, 1.2])
    T, Tc = term.factor(x[3:]), term.factor(c[3:])
    np.testing.assert_allclose(T @ T.T, Tc @ Tc.T)
    np.testing.assert_array_equal(x, [-1.0, -2.0, -3.0, -0.8, 0.4, 1.2])  # input untouched
    diag = ParamSpace(ThetaSpace(make_term(2, "diagonal"), np.array([0.5, 0.5])), beta[:2])
    np.testing.assert_array_equal(diag.start(), [-2.0, -0.5, 0.5, 0.5])
    np.testing.assert_array_equal(diag.canonical(np.array([-1.0, -1.0, -0.3, 0.7])),
                                  [-1.0, -1.0, 0.3, 0.7])


@pytest.mark.parametrize("q, covariance", [(1, "unstructured"), (2, "unstructured")])
def test_newton_reaches_nelder_mead_optimum(q, covariance):
    rng = np.random.default_rng(30 + q)
    family, rows = make_rows(rng, "binomial", q, sizes=(14, 20, 9, 16, 25, 12, 18, 11, 15, 20))
    term = make_term(q, covariance)
    p = rows.X.shape[1]
    beta0 = fit_fixed_glm(family, rows, 1)
    space = ParamSpace(ThetaSpace(term), beta0)
    opt = minimize(LaplaceDeviance(family, rows, term), space, method="newton", tol=1e-6,
                   max_iter=1000)
    assert opt.converged, opt.message
    check = LaplaceDeviance(family, rows, term)
    f, g = check.value_and_grad(opt.theta_final)
    assert f == pytest.approx(opt.fmin, rel=1e-12)
    # converged: the Newton decrement from a fresh evaluation's gradient is below tol
    assert 0.5 * g @ np.linalg.solve(opt.hessian, g) < 1e-6
    diag = opt.theta_final[p:][term.rows == term.cols]
    assert np.all(diag >= 0)
    nm = optimize.minimize(LaplaceDeviance(family, rows, term).value, space.start(),
                           method="Nelder-Mead",
                           options={"xatol": 1e-9, "fatol": 1e-11, "maxiter": 20000,
                                    "maxfev": 20000, "adaptive": True})
    assert opt.fmin <= nm.fun + 1e-6
    assert opt.fmin < check.value(space.start()) - 0.05  # it actually moved


@pytest.mark.parametrize("n_agq", [0, 3])
def test_quadrature_needs_a_scalar_random_effect(n_agq):
    """agq_groups' workspace is sized for q = 1: a vector term must be refused, not read
    out of bounds."""
    from skmixed._model.glmm import GroupedRows, LaplaceDeviance
    from skmixed._model.terms import RandomEffectTerm
    rows = GroupedRows(np.ones((4, 2), order="F"), np.array([-1, 1]), np.array([0., 1, 1, 0]),
                       np.empty(0), np.empty(0), np.empty(0), np.array([0, 2, 4]))
    with pytest.raises(ValueError, match="n_agq"):
        LaplaceDeviance(get_family("binomial"), rows, RandomEffectTerm(("(Intercept)", "x1")),
                        n_agq=n_agq)


def test_joint_pirls_reaches_the_joint_mode_and_its_laplace_deviance(problem):
    """nAGQ = 0: (β̃, ũ) is stationary for the penalized log-likelihood jointly — the
    profiled score Σ w ℓ' x and every group's T'Σ w ℓ' z − u vanish — and the criterion is
    the Laplace deviance at (β̃, θ), whose own modes at β̃ are ũ."""
    family, rows, term = problem
    theta = term.theta_start() * 0.7
    beta0 = fit_fixed_glm(family, rows, 1)
    joint = JointPIRLSDeviance(family, rows, term, beta0)
    deviance, info = joint.solve(theta)
    scale = 1.0 + np.abs(joint._score).sum()
    assert np.abs(joint._score.sum(axis=0)).max() < 1e-7 * scale
    assert np.abs(joint._g).max() < 1e-7 * scale
    laplace = LaplaceDeviance(family, rows, term)
    x = np.concatenate([joint.beta, theta])
    np.testing.assert_allclose(laplace.value(x), deviance, rtol=1e-10)
    np.testing.assert_allclose(laplace.u, joint.u, atol=1e-6)
    np.testing.assert_allclose(info, info.T, rtol=1e-12, atol=1e-12)
    assert np.all(np.linalg.eigvalsh(info) > 0)


# ----------------------------------------------------------------------------- Gamma
def gamma_x(term, shape=3.0):
    """(β, θ, ρ) with ρ = log(shape) = −log(dispersion)."""
    return np.append(x_at(term), np.log(shape))


@pytest.mark.parametrize("q, covariance", [(1, "unstructured"), (2, "unstructured"),
                                           (2, "diagonal")])
def test_gamma_gradient_matches_finite_differences(q, covariance):
    """Over (β, θ, ρ): the dispersion's derivative includes the modes' move with ν."""
    rng = np.random.default_rng(70 + q)
    family, rows = make_rows(rng, "gamma", q, sizes=(4, 9, 0, 6, 12, 3, 8))
    term = make_term(q, covariance)
    obj = LaplaceDeviance(family, rows, term)
    fd_obj = LaplaceDeviance(family, rows, term)
    x = gamma_x(term)
    f, g = obj.value_and_grad(x)
    assert g.shape == x.shape
    assert f == pytest.approx(fd_obj.value(x), rel=1e-12)
    g_fd = central_gradient(fd_obj.value, x)
    np.testing.assert_allclose(g, g_fd, rtol=1e-5, atol=1e-5 * max(1.0, np.abs(g).max()))


def test_gamma_deviance_is_the_laplace_approximation_of_the_likelihood():
    """−2 [Σ w log dgamma(y; ν, μ/ν) at û − ½‖û‖²] + log det H with H the observed
    information of the integrand (1 + θ² ν Σ w y/μ per group), from scipy and the
    reference's own mode search."""
    rng = np.random.default_rng(77)
    family, rows = make_rows(rng, "gamma", 1, sizes=(4, 9, 6, 12, 3, 8))
    term = make_term(1, "unstructured")
    obj = LaplaceDeviance(family, rows, term)
    x = gamma_x(term, shape=2.5)
    value = obj.value(x)
    nu, theta = 2.5, x[3]
    sizes = np.diff(rows.starts)
    y, w = rows.y, rows.weights
    total = 0.0
    for i in range(len(sizes)):
        lo, hi = rows.starts[i], rows.starts[i + 1]

        def f(u):
            mu = np.exp(rows.X[lo:hi] @ x[:3] + theta * u)
            return w[lo:hi] @ stats.gamma.logpdf(y[lo:hi], nu, scale=mu / nu) - 0.5 * u * u

        res = optimize.minimize_scalar(lambda u: -f(u), bounds=(-10, 10), method="bounded",
                                       options={"xatol": 1e-12})
        mu = np.exp(rows.X[lo:hi] @ x[:3] + theta * res.x)
        H = 1.0 + theta ** 2 * nu * np.sum(w[lo:hi] * y[lo:hi] / mu)
        total += -2.0 * f(res.x) + np.log(H)
        np.testing.assert_allclose(obj.u[i, 0], res.x, atol=1e-6)
    np.testing.assert_allclose(value, total, rtol=1e-9)



def test_the_deviance_takes_the_family_parameter_from_the_family():
    """LaplaceDeviance carries a family's parameter as the family's ``laplace_param`` says,
    never by its name: a family defined here — Gamma's row terms, its parameter under
    another name — has Gamma's deviance and gradient over (β, θ, ρ)."""

    class Renamed(Gamma):
        param = "shape"

    rng = np.random.default_rng(71)
    family, rows = make_rows(rng, "gamma", 1, sizes=(4, 9, 6, 12, 3, 8))
    term = make_term(1, "unstructured")
    x = gamma_x(term)
    f, g = LaplaceDeviance(family, rows, term).value_and_grad(x)
    f_r, g_r = LaplaceDeviance(Renamed(), rows, term).value_and_grad(x)
    assert g_r.shape == x.shape
    np.testing.assert_allclose([f_r, *g_r], [f, *g], rtol=1e-12)


def test_several_factors_refuse_a_parameter_outside_the_row_terms():
    """MultiLaplace takes the family's parameter as the row terms' fpar (the negative
    binomial's size); Gamma's dispersion scales the weights instead, which it does not do:
    refused with the family and parameter named, rather than fitted at dispersion 1."""
    rng = np.random.default_rng(72)
    n = 40
    codes = [rng.integers(0, 4, n).astype(np.int64), rng.integers(0, 5, n).astype(np.int64)]
    factors = [FactorColumns(c, int(c.max()) + 1, np.ones((n, 1)), make_term(1, "unstructured"))
               for c in codes]
    X, y = np.ones((n, 1)), rng.gamma(2.0, size=n)
    with pytest.raises(ValueError, match="Gamma model's dispersion is not supported"):
        MultiLaplace(X, y, np.empty(0), np.zeros(n), np.empty(0), factors,
                     get_family("gamma"))
    nb = MultiLaplace(X, np.round(y), np.empty(0), np.zeros(n), np.empty(0), factors,
                      get_family("nbinom2"))
    assert nb.n_extra == 1
    nb.split(np.array([1.0, 1.0, 0.2, np.log(3.0)]))
    assert nb.fpar == pytest.approx(3.0)


# ----------------------------------------------------------------------------- generated
@pytest.mark.parametrize("kind, q, covariance, n_agq", [
    # each shape compiles its own kernels (~15 s): one in the default run, the rest slow
    ("binomial", 1, "unstructured", 5),
    *[pytest.param(*case, marks=pytest.mark.slow) for case in [
        ("trials", 2, "unstructured", 1), ("poisson", 2, "diagonal", 1),
        ("poisson_plain", 1, "unstructured", 3), ("probit", 1, "unstructured", 4),
        ("cloglog", 2, "unstructured", 1), ("gamma", 2, "unstructured", 1)]],
])
def test_generated_kernels_agree_with_the_generic_ones(monkeypatch, kind, q, covariance,
                                                       n_agq):
    """The passes written out for a shape (skmixed._kernels.glmm_codegen, used from 100,000
    rows on) give the generic kernels' deviance, gradient, modes and information."""
    rng = np.random.default_rng(90 + q)
    family, rows = make_rows(rng, kind, q)
    term = make_term(q, covariance)
    x = gamma_x(term) if kind == "gamma" else x_at(term)
    results = []
    for min_rows in (10 ** 12, 0):
        monkeypatch.setattr(LaplaceDeviance, "specialize_min_rows", min_rows)
        obj = LaplaceDeviance(family, rows, term, n_agq=n_agq)
        assert (obj._kernels.__name__ == "skmixed._kernels.glmm") == (min_rows > 0)
        f, g = obj.value_and_grad(x)
        results.append((f, g, obj.u.copy(), obj._H.copy(), obj.value(x + 0.01)))
    for generic, generated in zip(*results):
        np.testing.assert_allclose(generated, generic, rtol=1e-10, atol=1e-12)


def test_generated_kernels_scale_an_unweighted_gamma_by_its_shape(monkeypatch):
    """Gamma's dispersion enters the kernels as frequency weights w·ν even when the rows
    have none: the passes written out for unweighted rows must read them too. (They did
    not, so a Gamma fit without sample_weight from 100,000 rows on optimized a wrong
    deviance: dispersion → 0, deviance −1e14, not converged.)"""
    rng = np.random.default_rng(93)
    family, rows = make_rows(rng, "gamma", 1)
    rows.weights = np.empty(0)
    term = make_term(1, "unstructured")
    x = gamma_x(term, shape=2.5)
    results = []
    for min_rows in (10 ** 12, 0):
        monkeypatch.setattr(LaplaceDeviance, "specialize_min_rows", min_rows)
        obj = LaplaceDeviance(family, rows, term)
        assert (obj._kernels.__name__ == "skmixed._kernels.glmm") == (min_rows > 0)
        f, g = obj.value_and_grad(x)
        results.append((f, g, obj.u.copy()))
    for generic, generated in zip(*results):
        np.testing.assert_allclose(generated, generic, rtol=1e-10, atol=1e-12)


def test_fit_fixed_glm_takes_steps_at_rounding_whole(monkeypatch):
    """The negative binomial's start GLM at k = 1e6 on Salamanders: ℓ's terms cancel to
    ~1e-12 relative, so comparing ℓ halved every step ~20 times for 100 steps (2,270
    passes) and stopped short of the optimum. Steps whose predicted increase is at
    rounding are taken whole: a few passes, the score ~0, the Poisson GLM's β."""
    import pandas as pd

    from skmixed._model import glmm
    from skmixed._model.multilevel_fit import glm_start

    data = pd.read_csv(Path(__file__).parents[1] / "data" / "salamanders.csv")
    X = np.column_stack([np.ones(len(data)), (data["mined"] == "no").to_numpy(float)])
    y = data["count"].to_numpy(float)
    passes = []
    sums = glmm.fixed_glm_sums
    monkeypatch.setattr(glmm, "fixed_glm_sums", lambda *a: passes.append(1) or sums(*a))
    empty = np.empty(0)
    beta = glm_start(X, y, empty, empty, empty, get_family("nbinom2", None))
    assert len(passes) < 20
    mu = np.exp(X @ beta)
    k = get_family("nbinom2", None).glm_fpar
    assert np.abs(X.T @ (k * (y - mu) / (k + mu))).max() < 1e-6
    poisson = glm_start(X, y, empty, empty, empty, get_family("poisson", None))
    np.testing.assert_allclose(beta, poisson, atol=1e-5)
