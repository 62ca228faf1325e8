"""The per-group PLS kernels (through ``ProfiledDeviance``) against a dense NumPy solve.

The reference builds ``Z`` (n × Gq), ``X`` and ``Λ = I_G ⊗ T`` explicitly and solves

    [Λ'Z'WZΛ + I, Λ'Z'WX; X'WZΛ, X'WX] [u; β] = [Λ'Z'Wy; X'Wy],

then ``r² = (y − Xβ − ZΛu)'W(y − Xβ − ZΛu) + ‖u‖²`` and the ML/REML deviances of
Bates et al. (2015, section 3). The sufficient statistics come from the real row pass
(``reduce_crossprods`` → ``GroupedCrossproducts.from_crossprods``), as in ``MixedLM.fit``.
"""

import numpy as np
import pytest

from skmixed._kernels.crossprod import reduce_crossprods
from skmixed._kernels.threads import numba_threads
from skmixed._model import lmm
from skmixed._model.lmm import GroupedCrossproducts, ProfiledDeviance, independent_columns
from skmixed._model.terms import RandomEffectTerm

# positions in v = [1, x1, x2, x3, y] (the raw X has 3 columns)
Z_POS = {1: [0], 2: [0, 2], 3: [0, 1, 3]}
FIXED_POS = {1: [0], 3: [0, 1, 2]}
LOG_2PI = np.log(2.0 * np.pi)


# ----------------------------------------------------------------------------- problems
@pytest.fixture
def force_blocks(monkeypatch):
    """Make ``ProfiledDeviance``'s default split these tiny problems into several blocks.

    It runs one block when the per-evaluation work is below a threshold; the tests need the
    multi-block (parallel) path itself, so the threshold is lowered to the work of the
    23-group problem below (23 · 2 · 6² = 1656), which then splits into 8 blocks.
    """
    monkeypatch.setattr(lmm, "_PARALLEL_WORK", 1600, raising=False)


def make_rows(rng, G, q, weighted, n_per_group=12, empty_group=True):
    """Rows of a random-slope model; the last group has no rows when ``empty_group``."""
    present = G - 1 if empty_group else G
    codes = np.repeat(np.arange(present), rng.integers(n_per_group // 2, n_per_group + 1,
                                                       size=present))
    rng.shuffle(codes)  # unsorted codes
    codes = codes.astype(np.int32)
    n = codes.shape[0]
    X = rng.normal(size=(n, 3)) + np.array([0.5, -1.0, 2.0])
    V = np.column_stack([np.ones(n), X])
    z_cols = Z_POS[q]
    b = rng.normal(size=(G, q)) * np.array([1.0, 0.6, 0.4])[:q]
    y = V[:, :3] @ np.array([1.0, 0.5, -0.3]) + np.sum(V[:, z_cols] * b[codes], axis=1)
    y += rng.normal(scale=0.7, size=n)
    if weighted:
        w = rng.uniform(0.2, 3.0, size=n)
        w[rng.random(n) < 0.1] = 0.0
    else:
        w = np.empty(0)
    return X, y, w, codes


def sufficient_stats(X, y, w, codes, G, q, p, n_blocks=1):
    z_pos = np.array(Z_POS[q], dtype=np.int64)
    group_xv, total_vv = reduce_crossprods(X, y, w, codes, z_pos, G, n_blocks)
    return GroupedCrossproducts.from_crossprods(group_xv, total_vv, z_pos, FIXED_POS[p])


def random_T(rng, q, covariance="unstructured"):
    T = np.tril(rng.normal(scale=0.5, size=(q, q)), -1)
    if covariance == "diagonal":
        T[:] = 0.0
    T[np.diag_indices(q)] = rng.uniform(0.3, 1.5, size=q)
    return T


def make_term(q, covariance="unstructured"):
    names = ("(Intercept)", "x_a", "x_b")[:q]
    return RandomEffectTerm(names, covariance)


def dense_pls(X, y, w, codes, G, q, p, T):
    """Everything the PLS kernels compute, from the explicit n × Gq model matrix."""
    n_rows = y.shape[0]
    V = np.column_stack([np.ones(n_rows), X])
    Zr = V[:, Z_POS[q]]
    Xf = V[:, FIXED_POS[p]]
    Z = np.zeros((n_rows, G * q))
    for a in range(q):
        Z[np.arange(n_rows), codes * q + a] = Zr[:, a]
    wt = np.ones(n_rows) if w.shape[0] == 0 else w
    Lam = np.kron(np.eye(G), T)
    ZL = Z @ Lam
    A11 = ZL.T @ (wt[:, None] * ZL) + np.eye(G * q)
    A12 = ZL.T @ (wt[:, None] * Xf)
    A22 = Xf.T @ (wt[:, None] * Xf)
    A = np.block([[A11, A12], [A12.T, A22]])
    rhs = np.concatenate([ZL.T @ (wt * y), Xf.T @ (wt * y)])
    sol = np.linalg.solve(A, rhs)
    u, beta = sol[:G * q], sol[G * q:]
    resid = y - Xf @ beta - ZL @ u
    r2 = resid @ (wt * resid) + u @ u
    n = wt.sum()
    logdet_M = np.linalg.slogdet(A11)[1]
    logdet_A = np.linalg.slogdet(A)[1]
    S = A22 - A12.T @ np.linalg.solve(A11, A12)
    cond = Lam @ np.linalg.inv(A11) @ Lam.T
    return dict(
        beta=beta, u=u, r2=r2, n=n, logdet_M=logdet_M, logdet_S=np.linalg.slogdet(S)[1], S=S,
        dev_ml=logdet_M + n * (1.0 + LOG_2PI + np.log(r2 / n)),
        dev_reml=logdet_A + (n - p) * (1.0 + LOG_2PI + np.log(r2 / (n - p))),
        modes=(Lam @ u).reshape(G, q),
        cond_cov=np.array([cond[g * q:(g + 1) * q, g * q:(g + 1) * q] for g in range(G)]),
    )


# ----------------------------------------------------------------------------- evaluate
@pytest.mark.parametrize("q", [1, 2, 3])
@pytest.mark.parametrize("p", [1, 3])
@pytest.mark.parametrize("weighted", [False, True], ids=["unit", "weights"])
@pytest.mark.parametrize("singular", [False, True], ids=["interior", "boundary"])
def test_evaluate_matches_dense(q, p, weighted, singular):
    rng = np.random.default_rng(100 * q + 10 * p + 2 * weighted + singular)
    G = 8
    X, y, w, codes = make_rows(rng, G, q, weighted)
    stats = sufficient_stats(X, y, w, codes, G, q, p)
    term = make_term(q)
    T = random_T(rng, q)
    if singular:
        T[q - 1, q - 1] = 0.0
    theta = T[term.rows, term.cols]
    np.testing.assert_array_equal(term.factor(theta), T)
    ref = dense_pls(X, y, w, codes, G, q, p, T)
    np.testing.assert_allclose(stats.n, ref["n"], rtol=1e-13)

    for reml in (False, True):
        obj = ProfiledDeviance(stats, term, reml=reml)
        state = obj.evaluate(theta)
        np.testing.assert_allclose(state.beta, ref["beta"], rtol=1e-9, atol=1e-10)
        np.testing.assert_allclose(state.penalized_rss, ref["r2"], rtol=1e-10)
        np.testing.assert_allclose(state.logdet_L, ref["logdet_M"], rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(state.S, ref["S"], rtol=1e-10, atol=1e-9)
        np.testing.assert_allclose(2.0 * np.log(np.diag(state.S_chol)).sum(), ref["logdet_S"],
                                   rtol=1e-10, atol=1e-10)
        expected = ref["dev_reml"] if reml else ref["dev_ml"]
        np.testing.assert_allclose(state.deviance, expected, rtol=1e-11)
        assert obj(theta) == state.deviance
        np.testing.assert_allclose(obj.dof, ref["n"] - p if reml else ref["n"], rtol=1e-13)


@pytest.mark.parametrize("n_blocks", [2, 3, 50])
def test_blocked_evaluation_matches_single_block(n_blocks):
    rng = np.random.default_rng(7)
    G, q, p = 11, 3, 3
    X, y, w, codes = make_rows(rng, G, q, weighted=True)
    stats = sufficient_stats(X, y, w, codes, G, q, p)
    term = make_term(q)
    theta = random_T(rng, q)[term.rows, term.cols]
    one = ProfiledDeviance(stats, term, reml=True, n_blocks=1)
    ref_dev, ref_grad = one.value_and_grad(theta)
    with numba_threads(2):
        many = ProfiledDeviance(stats, term, reml=True, n_blocks=n_blocks)
        dev, grad = many.value_and_grad(theta)
    assert many.n_blocks == min(n_blocks, G)
    np.testing.assert_allclose(dev, ref_dev, rtol=1e-13)
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("n_blocks", [None, 3, 7])
def test_evaluation_bit_identical_on_any_thread_count(n_blocks, force_blocks):
    """The blocks of groups, not the threads, fix the summation order: the deviance, its
    gradient and the modes are bit-identical with 1 and 2 threads, with more blocks than
    threads (the default split too, made to give several blocks here)."""
    rng = np.random.default_rng(17)
    G, q, p = 23, 2, 3
    X, y, w, codes = make_rows(rng, G, q, weighted=True)
    stats = sufficient_stats(X, y, w, codes, G, q, p)
    term = make_term(q)
    theta = random_T(rng, q)[term.rows, term.cols]
    runs = []
    for n_threads in (1, 2, 1, 2):
        with numba_threads(n_threads):
            obj = ProfiledDeviance(stats, term, reml=True, n_blocks=n_blocks)
            state = obj.evaluate(theta)
            runs.append((state.deviance, obj.gradient(state), state.beta,
                         *obj.conditional_modes(state)))
    assert obj.n_blocks == (n_blocks or 8)
    for other in runs[1:]:
        for a, b in zip(runs[0], other):
            np.testing.assert_array_equal(a, b)


def test_integer_weights_equal_repeated_rows():
    rng = np.random.default_rng(31)
    G, q, p = 6, 2, 3
    X, y, _, codes = make_rows(rng, G, q, weighted=False)
    counts = rng.integers(0, 4, size=y.shape[0])
    rep = np.repeat(np.arange(y.shape[0]), counts)
    term = make_term(q)
    theta = random_T(rng, q)[term.rows, term.cols]
    for reml in (False, True):
        weighted = ProfiledDeviance(
            sufficient_stats(X, y, counts.astype(float), codes, G, q, p), term, reml=reml)
        repeated = ProfiledDeviance(
            sufficient_stats(np.ascontiguousarray(X[rep]), y[rep], np.empty(0), codes[rep],
                             G, q, p), term, reml=reml)
        d1, g1 = weighted.value_and_grad(theta)
        d2, g2 = repeated.value_and_grad(theta)
        np.testing.assert_allclose(d1, d2, rtol=1e-11)
        np.testing.assert_allclose(g1, g2, rtol=1e-8, atol=1e-8)


# ----------------------------------------------------------------------------- gradient
def finite_difference(f, theta, one_sided, h=1e-5):
    """Central differences; second-order forward differences for components in one_sided."""
    grad = np.empty_like(theta)
    for k in range(theta.shape[0]):
        e = np.zeros_like(theta)
        step = h * max(1.0, abs(theta[k]))
        e[k] = step
        if one_sided[k]:
            grad[k] = (-3.0 * f(theta) + 4.0 * f(theta + e) - f(theta + 2.0 * e)) / (2.0 * step)
        else:
            grad[k] = (f(theta + e) - f(theta - e)) / (2.0 * step)
    return grad


def check_gradient(obj, theta, one_sided):
    dev, grad = obj.value_and_grad(theta)
    assert dev == obj.evaluate(theta).deviance
    fd = finite_difference(obj, theta, one_sided)
    assert grad.shape == theta.shape
    np.testing.assert_allclose(grad, fd, rtol=1e-5, atol=1e-5 * max(1.0, np.abs(fd).max()))
    return grad, fd


@pytest.mark.parametrize("reml", [False, True], ids=["ML", "REML"])
@pytest.mark.parametrize("covariance", ["unstructured", "diagonal"])
@pytest.mark.parametrize("q", [2, 3])
@pytest.mark.parametrize("n_blocks", [1, 2])
@pytest.mark.parametrize("boundary", [False, True], ids=["interior", "boundary"])
@pytest.mark.parametrize("weighted", [False, True], ids=["unit", "weights"])
def test_gradient_matches_finite_differences(reml, covariance, q, n_blocks, boundary,
                                             weighted):
    rng = np.random.default_rng(1000 + 100 * q + 10 * boundary + 3 * (covariance == "diagonal")
                                + weighted)
    G, p = 9, 3
    X, y, w, codes = make_rows(rng, G, q, weighted)
    stats = sufficient_stats(X, y, w, codes, G, q, p)
    term = make_term(q, covariance)
    T = random_T(rng, q, covariance)
    if boundary:
        T[1, 1] = 0.0
    theta = T[term.rows, term.cols]
    one_sided = (term.rows == term.cols) & (theta == 0.0)
    assert one_sided.sum() == boundary
    with numba_threads(n_blocks):
        obj = ProfiledDeviance(stats, term, reml=reml, n_blocks=n_blocks)
        assert obj.n_blocks == n_blocks
        grad, _ = check_gradient(obj, theta, one_sided)
    assert np.all(np.isfinite(grad))
    assert np.abs(grad).max() > 1e-3  # not trivially zero


@pytest.mark.parametrize("reml", [False, True], ids=["ML", "REML"])
@pytest.mark.parametrize("p", [1, 3])
def test_gradient_scalar_term(reml, p):
    rng = np.random.default_rng(55 + p + reml)
    G, q = 10, 1
    X, y, w, codes = make_rows(rng, G, q, weighted=True)
    stats = sufficient_stats(X, y, w, codes, G, q, p)
    obj = ProfiledDeviance(stats, make_term(1), reml=reml)
    for theta in (np.array([0.3]), np.array([1.7])):
        check_gradient(obj, theta, np.array([False]))
    # at θ = 0 the deviance is even in θ, so the exact gradient is 0
    _, grad0 = obj.value_and_grad(np.array([0.0]))
    np.testing.assert_allclose(grad0, 0.0, atol=1e-10)


@pytest.mark.parametrize("reml", [False, True], ids=["ML", "REML"])
def test_gradient_all_variances_zero(reml):
    """θ with every diagonal element at 0 (T = 0 apart from the off-diagonals)."""
    rng = np.random.default_rng(77)
    G, q, p = 9, 2, 3
    X, y, w, codes = make_rows(rng, G, q, weighted=False)
    stats = sufficient_stats(X, y, w, codes, G, q, p)
    term = make_term(q)
    theta = np.array([0.0, 0.4, 0.0])
    check_gradient(ProfiledDeviance(stats, term, reml=reml), theta,
                   term.rows == term.cols)


# ----------------------------------------------------------------------------- modes
@pytest.mark.parametrize("q", [1, 2, 3])
@pytest.mark.parametrize("weighted", [False, True], ids=["unit", "weights"])
@pytest.mark.parametrize("reml", [False, True], ids=["ML", "REML"])
def test_conditional_modes_match_dense(q, weighted, reml):
    rng = np.random.default_rng(300 + 10 * q + weighted + 2 * reml)
    G, p = 8, 3
    X, y, w, codes = make_rows(rng, G, q, weighted)
    stats = sufficient_stats(X, y, w, codes, G, q, p)
    term = make_term(q)
    T = random_T(rng, q)
    theta = T[term.rows, term.cols]
    ref = dense_pls(X, y, w, codes, G, q, p, T)
    with numba_threads(2):
        obj = ProfiledDeviance(stats, term, reml=reml, n_blocks=2)
        assert obj.n_blocks == 2
        state = obj.evaluate(theta)
        modes, cond_cov = obj.conditional_modes(state)
    assert modes.shape == (G, q) and cond_cov.shape == (G, q, q)
    np.testing.assert_allclose(modes, ref["modes"], rtol=1e-9, atol=1e-10)
    # relative (to σ²) conditional covariance: diagonal blocks of Λ(Λ'Z'WZΛ + I)⁻¹Λ'
    np.testing.assert_allclose(cond_cov, ref["cond_cov"], rtol=1e-9, atol=1e-12)
    # the empty last group: mode 0, covariance T T' (the prior)
    np.testing.assert_allclose(modes[-1], 0.0, atol=1e-14)
    np.testing.assert_allclose(cond_cov[-1], T @ T.T, rtol=1e-12, atol=1e-14)


def test_conditional_modes_singular_term():
    """A zero column of T gives exactly zero modes and variances for that component."""
    rng = np.random.default_rng(9)
    G, q, p = 7, 2, 3
    X, y, w, codes = make_rows(rng, G, q, weighted=False)
    stats = sufficient_stats(X, y, w, codes, G, q, p)
    term = make_term(q)
    T = np.array([[0.8, 0.0], [0.0, 0.0]])
    obj = ProfiledDeviance(stats, term, reml=True)
    state = obj.evaluate(T[term.rows, term.cols])
    modes, cond_cov = obj.conditional_modes(state)
    ref = dense_pls(X, y, w, codes, G, q, p, T)
    np.testing.assert_allclose(modes, ref["modes"], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(cond_cov, ref["cond_cov"], rtol=1e-9, atol=1e-14)
    assert np.all(modes[:, 1] == 0.0)
    assert np.all(cond_cov[:, 1, :] == 0.0)


# ----------------------------------------------------------------------------- rank
def _xtx(*cols):
    Xm = np.column_stack(cols)
    return Xm.T @ Xm


def test_independent_columns_constant_after_intercept():
    x = np.random.default_rng(0).normal(size=30)
    kept = independent_columns(_xtx(np.ones(30), np.full(30, 3.0), x))
    np.testing.assert_array_equal(kept, [0, 2])
    assert kept.dtype == np.int64


def test_independent_columns_duplicated_and_combinations():
    rng = np.random.default_rng(1)
    x1, x2 = rng.normal(size=(2, 40))
    np.testing.assert_array_equal(independent_columns(_xtx(np.ones(40), x1, x1, x2)),
                                  [0, 1, 3])
    # the later of collinear columns is dropped, also for a linear combination
    np.testing.assert_array_equal(
        independent_columns(_xtx(np.ones(40), x1, x2, 2.0 * x1 - x2 + 3.0)), [0, 1, 2])


def test_independent_columns_zero_column():
    rng = np.random.default_rng(2)
    x = rng.normal(size=25)
    np.testing.assert_array_equal(independent_columns(_xtx(np.ones(25), np.zeros(25), x)),
                                  [0, 2])
    np.testing.assert_array_equal(independent_columns(_xtx(np.zeros(25), x)), [1])


def test_independent_columns_full_rank_keeps_all():
    rng = np.random.default_rng(3)
    Xm = np.column_stack([np.ones(50), rng.normal(size=(50, 4))])
    np.testing.assert_array_equal(independent_columns(Xm.T @ Xm), np.arange(5))
    # the criterion is relative to each column's own norm: a tiny-scale column is kept
    Xs = np.column_stack([np.ones(50), 1e-7 * rng.normal(size=50), 1e5 * rng.normal(size=50)])
    np.testing.assert_array_equal(independent_columns(Xs.T @ Xs), [0, 1, 2])
    assert independent_columns(np.zeros((0, 0))).shape == (0,)
