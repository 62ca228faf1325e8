"""The exact gradient of the adaptive Gauss–Hermite deviance (``agq_grad_groups`` and
``LaplaceDeviance.value_and_grad`` for ``n_agq > 1``).

For group i with nodes u_k = û + σ t_k (σ = H^{-1/2}) and π_k ∝ w_k exp(f(u_k) + t_k²/2)::

    ∂d_i/∂φ = −2 [σ_φ/σ + Σ_k π_k (∂f/∂φ|_{u_k} + f'(u_k)(û_φ + t_k σ_φ))]

Checked against central finite differences of the deviance itself (``value``), total and
group by group: binomial 0/1, binomial with trials, Poisson with an offset and frequency
weights, Poisson without; 2, 5 and 10 nodes; θ of ordinary size, near 0, exactly 0 and
negative; a random intercept and a random slope without intercept (z a column of X). Also:
the one-node rule (node 0, weight 1) gives the Laplace gradient of ``laplace_groups``; the
value returned with the gradient is the value-only kernel's, bit for bit, and leaves the same
modes; empty groups contribute nothing; 1 and 2 threads give identical results.
"""

import numba
import numpy as np
import pytest
from glmm_problems import glmm_response, grouped_rows

from skmixed._kernels.glmm import agq_grad_groups, agq_groups, laplace_groups
from skmixed._kernels.threads import numba_threads
from skmixed._model.glmm import LaplaceDeviance
from skmixed._model.terms import RandomEffectTerm

two_threads = pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2,
                                 reason="needs 2 Numba threads")

# a one-row group, empty groups (in the middle and last), a larger group
SIZES = (1, 6, 0, 3, 11, 2, 17, 5, 40, 0)
BETA = np.array([-0.25, 0.5, -0.3])
KINDS = ["binomial", "trials", "poisson", "poisson_plain", "probit", "cloglog"]
THETAS = [0.9, 0.02, 0.0, -0.7]


def make_problem(kind, slope=False, seed=0, sizes=SIZES):
    """(family, rows, term): a small scalar-random-effect GLMM in group order."""
    rng = np.random.default_rng(seed + 10 * KINDS.index(kind) + (5 if slope else 0))
    G = len(sizes)
    codes = np.repeat(np.arange(G), sizes)
    rng.shuffle(codes)
    n = codes.size
    Xraw = np.column_stack([np.ones(n), rng.normal(size=n), rng.uniform(-1, 1, size=n)])
    b = rng.normal(size=G) * 0.9
    eta = Xraw @ BETA + b[codes] * (Xraw[:, 1] if slope else 1.0)
    family, y, m, off, w = glmm_response(rng, kind, eta)
    rows = grouped_rows(codes, G, Xraw, [1 if slope else -1], y, m, off, w)
    term = RandomEffectTerm(("x1",) if slope else ("(Intercept)",), "unstructured")
    return family, rows, term


def x_at(theta):
    return np.concatenate([BETA + np.array([0.05, -0.1, 0.08]), [theta]])


def central_differences(obj, x, u_at_x, h=1e-5):
    """Central differences of the total and of the per-group deviances, each evaluation
    warm-started from the modes at x (so all of them take the same Newton path)."""
    k = x.size
    total = np.empty(k)
    per_group = np.empty((obj.rows.n_groups, k))
    for j in range(k):
        step = h * max(1.0, abs(x[j]))
        e = np.zeros(k)
        e[j] = step
        obj.u[:] = u_at_x
        fp = obj.value(x + e)
        dp = obj._dev.copy()
        obj.u[:] = u_at_x
        fm = obj.value(x - e)
        dm = obj._dev.copy()
        total[j] = (fp - fm) / (2.0 * step)
        per_group[:, j] = (dp - dm) / (2.0 * step)
    return total, per_group


@pytest.mark.parametrize("theta", THETAS)
@pytest.mark.parametrize("n_agq", [2, 5, 10])
@pytest.mark.parametrize("kind", KINDS)
def test_gradient_matches_finite_differences(kind, n_agq, theta):
    family, rows, term = make_problem(kind)
    obj = LaplaceDeviance(family, rows, term, n_agq=n_agq)
    x = x_at(theta)
    f, g = obj.value_and_grad(x)
    grads = obj._grad.copy()
    u = obj.u.copy()
    assert np.isfinite(f) and obj._conv.all()
    fd, fd_groups = central_differences(obj, x, u)
    scale = max(1.0, np.abs(fd).max())
    np.testing.assert_allclose(g, fd, rtol=1e-5, atol=1e-6 * scale)
    np.testing.assert_allclose(grads, fd_groups, rtol=1e-5, atol=1e-6 * scale)
    # the gradient is not trivially zero (θ = 0 is stationary only in θ)
    assert np.abs(g[:-1]).max() > 1e-3


@pytest.mark.parametrize("theta", [0.7, 0.01, -1.1])
@pytest.mark.parametrize("kind", KINDS)
def test_random_slope_gradient_matches_finite_differences(kind, theta):
    """z is a column of X (``(0 + x1 | g)``): the z factors in the derivatives matter."""
    family, rows, term = make_problem(kind, slope=True)
    obj = LaplaceDeviance(family, rows, term, n_agq=7)
    x = x_at(theta)
    f, g = obj.value_and_grad(x)
    fd, _ = central_differences(obj, x, obj.u.copy())
    np.testing.assert_allclose(g, fd, rtol=1e-5, atol=1e-6 * max(1.0, np.abs(fd).max()))


def test_theta_zero_is_stationary_in_theta():
    """The deviance depends on θ through θ² (the rule is symmetric), so ∂d/∂θ = 0 at 0 and
    ∂d/∂θ is odd in θ while the β part is even."""
    family, rows, term = make_problem("trials")
    obj = LaplaceDeviance(family, rows, term, n_agq=5)
    _, g0 = obj.value_and_grad(x_at(0.0))
    assert abs(g0[-1]) < 1e-12
    fp, gp = obj.value_and_grad(x_at(0.6))
    fm, gm = obj.value_and_grad(x_at(-0.6))
    assert fp == pytest.approx(fm, rel=1e-12)
    np.testing.assert_allclose(gp[:-1], gm[:-1], rtol=1e-9, atol=1e-9)
    assert gp[-1] == pytest.approx(-gm[-1], rel=1e-9)


@pytest.mark.parametrize("kind", KINDS)
def test_value_and_grad_value_is_the_value_kernels(kind):
    """Same deviance (bit for bit) and same modes as the value-only kernel."""
    family, rows, term = make_problem(kind)
    x = x_at(0.8)
    for n_agq in (2, 10):
        a = LaplaceDeviance(family, rows, term, n_agq=n_agq)
        b = LaplaceDeviance(family, rows, term, n_agq=n_agq)
        f, _ = a.value_and_grad(x)
        assert f == b.value(x)
        np.testing.assert_array_equal(a._dev, b._dev)
        np.testing.assert_array_equal(a.u, b.u)


@pytest.mark.parametrize("kind", KINDS)
def test_one_node_rule_gives_the_laplace_gradient(kind):
    """Node 0 with weight 1: d = −2 f(û) + log H, whose gradient is laplace_groups'."""
    family, rows, term = make_problem(kind)
    x = x_at(0.8)
    p = rows.X.shape[1]
    beta, T = x[:p], term.factor(x[p:])
    G = rows.n_groups
    r = rows
    u1, dev1, grad1 = np.zeros((G, 1)), np.zeros(G), np.zeros((G, p + 1))
    conv1 = np.zeros(G, dtype=np.bool_)
    agq_grad_groups(family.code, 0.0, r.X, r.zcol, r.y, r.m, r.offset, r.weights, r.starts,
                    beta, T, u1, np.array([0.0]), np.array([1.0]), 50, 1e-10, dev1, grad1, conv1)
    u2, dev2, grad2 = np.zeros((G, 1)), np.zeros(G), np.zeros((G, p + 1))
    conv2, H = np.zeros(G, dtype=np.bool_), np.zeros((G, 1, 1))
    J = np.zeros((G, 1, p + 1))
    laplace_groups(family.code, 0.0, r.X, r.zcol, r.y, r.m, r.offset, r.weights, r.starts,
                   beta, T, term.rows, term.cols, u2, J, np.empty(0), True, 50, 1e-10, dev2, grad2,
                   conv2, H, np.zeros((G, p + 2)))
    assert conv1.all() and conv2.all()
    # the two kernels stop their mode searches at different points within their tolerances
    np.testing.assert_allclose(u1, u2, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(dev1, dev2, rtol=1e-11, atol=1e-11)
    np.testing.assert_allclose(grad1, grad2, rtol=1e-9, atol=1e-10)


def test_empty_groups_contribute_nothing():
    family, rows, term = make_problem("poisson")
    obj = LaplaceDeviance(family, rows, term, n_agq=5)
    obj.value_and_grad(x_at(0.8))
    empty = np.flatnonzero(np.diff(rows.starts) == 0)
    assert empty.size == 2
    np.testing.assert_allclose(obj._dev[empty], 0.0, atol=1e-13)
    np.testing.assert_array_equal(obj._grad[empty], 0.0)


def test_kernel_agrees_with_value_kernel_directly():
    """agq_grad_groups and agq_groups from the same warm start: same deviance and modes."""
    family, rows, term = make_problem("binomial")
    x = x_at(-0.5)
    p = rows.X.shape[1]
    beta, T = x[:p], term.factor(x[p:])
    nodes, weights = np.polynomial.hermite_e.hermegauss(4)
    weights = weights / weights.sum()
    G = rows.n_groups
    r = rows
    u_start = np.random.default_rng(1).normal(size=(G, 1))
    u1, dev1, grad1 = u_start.copy(), np.zeros(G), np.zeros((G, p + 1))
    conv1 = np.zeros(G, dtype=np.bool_)
    agq_grad_groups(family.code, 0.0, r.X, r.zcol, r.y, r.m, r.offset, r.weights, r.starts,
                    beta, T, u1, nodes, weights, 50, 1e-10, dev1, grad1, conv1)
    u2, dev2, conv2 = u_start.copy(), np.zeros(G), np.zeros(G, dtype=np.bool_)
    agq_groups(family.code, 0.0, r.X, r.zcol, r.y, r.m, r.offset, r.weights, r.starts, beta,
               T, u2, nodes, weights, 50, 1e-10, dev2, conv2)
    np.testing.assert_array_equal(dev1, dev2)
    np.testing.assert_array_equal(u1, u2)
    np.testing.assert_array_equal(conv1, conv2)


@two_threads
@pytest.mark.parametrize("kind", KINDS)
def test_one_and_two_threads_identical(kind):
    family, rows, term = make_problem(kind, sizes=SIZES * 5)
    x = x_at(0.8)
    out = []
    for n_jobs in (1, 2):
        with numba_threads(n_jobs):
            obj = LaplaceDeviance(family, rows, term, n_agq=10)
            f, g = obj.value_and_grad(x)
            out.append((f, g, obj._grad.copy(), obj.u.copy()))
    assert out[0][0] == out[1][0]
    for a, b in zip(out[0][1:], out[1][1:]):
        np.testing.assert_array_equal(a, b)
