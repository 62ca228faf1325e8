"""The one optimizer interface (:func:`skmixed._model.optimize.minimize`): every method
reaches the optimum of a known function within its space and fills the record; an unknown
method is refused by name; the saddle escape at a zero diagonal element of θ."""

import numpy as np
import pytest

from skmixed import MixedLM
from skmixed._model.optimize import METHODS, _escape_saddle, _hessian, minimize
from skmixed._model.spaces import BoxSpace, ParamSpace, ThetaSpace
from skmixed._model.terms import RandomEffectTerm
from skmixed.datasets import make_multilevel

M = np.array([0.7, 2.0])  # the minimizing |θ| of EvenWells


class DoubleWell:
    """f(θ) = (θ² − 0.25)²: stationary (a maximum) at θ = 0, minima at θ = ±0.5 — the shape
    of a profiled criterion in a diagonal element of T whose variance is positive."""

    def value_and_grad(self, theta):
        t = float(theta[0])
        return (t * t - 0.25) ** 2, np.array([4.0 * t * (t * t - 0.25)])


class EvenWells:
    """x = (β..., θ...): Σ (β − b)² + Σ (θ² − m²)² + (θ₀²θ₁² − m₀²m₁²)² / 2 — even in each θ
    (as a criterion of T T' is), minimum 0 at β = b, |θ| = m; counts its evaluations."""

    def __init__(self, b=()):
        self.b = np.asarray(b, dtype=float)
        self.calls = 0

    def value(self, x):
        self.calls += 1
        return self._fg(x)[0]

    def value_and_grad(self, x):
        self.calls += 1
        return self._fg(x)

    def _fg(self, x):
        p = self.b.size
        d, t = x[:p] - self.b, x[p:]
        t2 = t * t
        c = t2[0] * t2[1] - (M[0] * M[1]) ** 2
        r = t2 - M * M
        f = d @ d + r @ r + 0.5 * c * c
        g_t = 4.0 * t * r + 2.0 * c * t * t2[::-1]
        return float(f), np.concatenate([2.0 * d, g_t])


class Bowl:
    """(x₀ − 1)² + (x₁ + 5)² + x₀x₁/4 on a box whose bound cuts off the free minimum."""

    def __init__(self, gradient=True):
        if gradient:
            self.value_and_grad = self._fg

    def value(self, x):
        return self._fg(x)[0]

    def _fg(self, x):
        f = (x[0] - 1.0) ** 2 + (x[1] + 5.0) ** 2 + 0.25 * x[0] * x[1]
        return float(f), np.array([2.0 * (x[0] - 1.0) + 0.25 * x[1],
                                   2.0 * (x[1] + 5.0) + 0.25 * x[0]])


def _scalar_terms(k=2):
    return [RandomEffectTerm(("(Intercept)",)) for _ in range(k)]


def test_escape_saddle_leaves_a_maximum_at_zero():
    term = RandomEffectTerm(("(Intercept)",))
    fun = DoubleWell().value_and_grad
    theta = np.zeros(1)
    f0, g0 = fun(theta)
    assert g0[0] == 0.0  # stationary: a gradient-only test would call this converged
    H = _hessian(fun, theta, g0)
    escaped = _escape_saddle(fun, ThetaSpace(term), theta, f0, H)
    assert escaped is not None
    assert escaped[1] < f0 and escaped[0][0] > 0.0


def test_escape_saddle_keeps_a_minimum():
    term = RandomEffectTerm(("(Intercept)",))
    fun = DoubleWell().value_and_grad
    theta = np.array([0.5])
    f, g = fun(theta)
    assert _escape_saddle(fun, ThetaSpace(term), theta, f, _hessian(fun, theta, g)) is None


@pytest.mark.parametrize("method", ["newton", "lbfgs-newton"])
def test_gradient_methods_leave_the_zero_variance_saddle(method):
    """From θ = 0 exactly (gradient 0, a maximum) both Newton methods reach θ = 0.5."""
    opt = minimize(DoubleWell(), ThetaSpace(RandomEffectTerm(("(Intercept)",)), [0.0]),
                   method=method, tol=1e-12)
    assert opt.converged, opt.message
    np.testing.assert_allclose(opt.theta_final, [0.5], rtol=1e-6)


def _check_record(opt, objective, space, method):
    assert opt.converged, opt.message
    assert isinstance(opt.optimizer, str) and opt.optimizer and opt.message
    f = objective.value(opt.theta_final)
    assert opt.fmin == pytest.approx(f, rel=1e-12, abs=1e-14)
    np.testing.assert_array_equal(opt.lower, space.lower())
    assert opt.theta_final.shape == opt.gradient.shape == space.start().shape
    assert opt.n_evals == objective.calls - 1  # all but the check above
    assert opt.n_iter >= 1 and opt.timings["optimize"] > 0.0


@pytest.mark.parametrize("method, options", [
    ("newton", {}), ("newton", {"final_hessian": False}),
    ("lbfgs-newton", {}), ("lbfgs-newton", {"polish": True}),
    ("log-lbfgs", {})])
def test_each_theta_method_reaches_the_minimum(method, options):
    before = [1.5] if method == "newton" else []
    objective = EvenWells(before)
    space = ParamSpace(ThetaSpace(_scalar_terms()), before=[0.0] * len(before))
    opt = minimize(objective, space, method=method, tol=1e-10, **options)
    _check_record(opt, objective, space, method)
    # decrement ≤ tol leaves x about √(2 tol / curvature) away; by the BFGS model's
    # decrement (final_hessian=False) a few times more
    rtol = 1e-4 if options.get("final_hessian") is False else 1e-6
    np.testing.assert_allclose(opt.theta_final, before + list(M), rtol=rtol)
    np.testing.assert_array_equal(opt.theta_start, space.start())
    if method != "log-lbfgs":
        assert 0.0 <= opt.decrement <= 1e-10


def test_newton_returns_a_hessian_near_the_optimum():
    """The standard errors come from it: within finite-difference error of the exact one."""
    objective = EvenWells([1.5])
    opt = minimize(objective, ParamSpace(ThetaSpace(_scalar_terms()), before=[0.0]),
                   method="newton", tol=1e-10)
    v = 2.0 * M * M[::-1] ** 2  # the gradient of θ₀²θ₁² at the minimum
    exact = np.zeros((3, 3))
    exact[0, 0] = 2.0
    exact[1:, 1:] = np.diag(8.0 * M * M) + np.outer(v, v)
    np.testing.assert_allclose(opt.hessian, exact, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("gradient, polish", [(True, False), (True, True), (False, False)])
def test_lbfgs_stops_at_the_bound_and_at_the_free_minimum(gradient, polish):
    """x₁ runs to its bound −2; x₀ minimizes 2(x₀ − 1) + x₁/4 = 0 there: 1.25 (values only:
    SciPy's forward differences; the Newton polish needs the exact gradient)."""
    space = BoxSpace([0.0, 0.0], -2.0, 2.0)
    objective = Bowl(gradient)
    opt = minimize(objective, space, method="lbfgs", tol=1e-9, polish=polish,
                   eps=None if gradient else 1e-7)
    assert opt.converged, opt.message
    np.testing.assert_allclose(opt.theta_final, [1.25, -2.0], rtol=1e-6 if gradient else 1e-5)
    assert opt.fmin == pytest.approx(objective.value(opt.theta_final))
    assert np.all(opt.theta_final >= space.lower()) and np.all(opt.theta_final <= space.upper())


def test_brent_reaches_a_scalar_minimum_from_values_only():
    class Values:
        calls = 0

        def value(self, theta):
            self.calls += 1
            return float((theta[0] - 0.7) ** 2 + 1.0)

    objective = Values()
    space = ThetaSpace(RandomEffectTerm(("(Intercept)",)))
    opt = minimize(objective, space, method="brent")
    assert opt.converged
    np.testing.assert_allclose(opt.theta_final, [0.7], atol=1e-6)
    assert opt.fmin == pytest.approx(1.0) and opt.n_evals == objective.calls
    # an optimum beyond the search's upper bound is not converged
    assert not minimize(objective, space, method="brent", upper=0.5).converged


def test_unknown_method_is_refused_by_name_before_any_evaluation():
    objective = EvenWells()
    with pytest.raises(ValueError, match="'bfgs'") as err:
        minimize(objective, ThetaSpace(_scalar_terms()), method="bfgs")
    for name in METHODS:
        assert repr(name) in str(err.value)
    assert objective.calls == 0


def test_gradient_method_on_values_only_is_refused():
    class Values:
        def value(self, x):
            return 0.0

    with pytest.raises(TypeError, match="value_and_grad"):
        minimize(Values(), ThetaSpace(_scalar_terms()), method="newton")


def test_nothing_to_optimize_is_one_evaluation():
    objective = EvenWells()
    objective._fg = lambda x: (3.0, np.zeros(0))
    opt = minimize(objective, BoxSpace(np.zeros(0), -1.0, 1.0), method="lbfgs")
    assert opt.converged and opt.fmin == 3.0 and opt.n_evals == objective.calls == 1


def test_fit_does_not_stop_on_the_zero_variance_saddle():
    """Regression: 10,000 rows in 2,000 groups (5 rows each); the first L-BFGS-B step landed
    on θ = 0, where the gradient is exactly 0, and the fit reported a singular optimum with
    a REML criterion 579 units above the real one (θ ≈ 0.49)."""
    df = make_multilevel(10_000, 2_000, random_state=12358)
    model = MixedLM(groups="g").fit(df[["g", "x", "b"]], df["y"])
    assert model.converged_
    assert model.theta_[0] > 0.3
    assert model.reml_criterion_ < 29_900  # θ = 0 gives 30,412.6 on these data


@pytest.mark.parametrize("covariance", ["unstructured", "diagonal"])
def test_canonical_theta_has_nonnegative_diagonal_and_same_covariance(covariance):
    term = RandomEffectTerm(("(Intercept)", "x", "z"), covariance)
    rng = np.random.default_rng(0)
    theta = rng.normal(size=term.n_theta)
    canon = term.canonical(theta)
    T, Tc = term.factor(theta), term.factor(canon)
    assert np.all(np.diag(Tc) >= 0)
    np.testing.assert_allclose(Tc @ Tc.T, T @ T.T, rtol=1e-14)


def test_spaces_start_bounds_and_canonical():
    terms = [RandomEffectTerm(("(Intercept)", "x")), RandomEffectTerm(("(Intercept)",))]
    theta = ThetaSpace(terms)
    np.testing.assert_array_equal(theta.start(), [1.0, 0.0, 1.0, 1.0])
    np.testing.assert_array_equal(theta.lower(), [0.0, -np.inf, 0.0, 0.0])
    space = ParamSpace(theta, before=[5.0], after=[-1.0])
    np.testing.assert_array_equal(space.start(), [5.0, 1.0, 0.0, 1.0, 1.0, -1.0])
    np.testing.assert_array_equal(space.lower(), [-np.inf, 0.0, -np.inf, 0.0, 0.0, -np.inf])
    np.testing.assert_array_equal(space.canonical(np.array([-5.0, -1.0, 0.5, 2.0, -3.0, 2.0])),
                                  [-5.0, 1.0, -0.5, 2.0, 3.0, 2.0])
    box = BoxSpace([20.0, 0.0], -15.0, 10.0)
    np.testing.assert_array_equal(box.start(), [10.0, 0.0])  # clipped into the box


def test_newton_skips_a_last_step_below_the_rounding_of_the_criterion():
    """Converged with a predicted decrease above 1e-3 tol "newton" takes one more step —
    but not where that decrease is below 1e-14 |f| (a deviance of millions: accepting it
    would compare values at rounding level): one evaluation fewer, the same optimum."""
    counts = []
    for offset in (0.0, 1e9):
        objective = EvenWells([1.5])
        objective_f = objective.value_and_grad

        def shifted(x, objective_f=objective_f, offset=offset):
            f, g = objective_f(x)
            return f + offset, g

        objective.value_and_grad = shifted
        opt = minimize(objective, ParamSpace(ThetaSpace(_scalar_terms()), before=[0.0]),
                       method="newton", tol=1e-8)
        np.testing.assert_allclose(opt.theta_final, [1.5, *M], rtol=1e-4)
        counts.append(opt.n_evals)
    assert counts[1] == counts[0] - 1, counts


class LogQuadratic:
    """f(θ) = d'Cd + Σ d⁴ C_jj + f₀, d = log θ − c: nearly quadratic in log θ (as the
    variance criteria are), coupled; minimum at θ = exp(c); counts evaluations."""

    def __init__(self, c):
        self.c = np.log(np.asarray(c, dtype=float))
        self.C = np.array([[3.0, 1.0], [1.0, 2.0]]) * 1e3
        self.calls = 0

    def value_and_grad(self, theta):
        self.calls += 1
        with np.errstate(divide="ignore"):
            d = np.log(theta) - self.c
        quartic = np.diag(self.C)
        return (float(d @ self.C @ d + quartic @ d ** 4) + 1e4,
                (2.0 * (self.C @ d) + 4.0 * quartic * d ** 3) / theta)

    def value(self, theta):
        return self.value_and_grad(theta)[0]


def test_log_lbfgs_stop_step_stops_near_the_minimum_in_fewer_evaluations():
    """``stop_step`` (a first stage's start for a second): the search stops once its model
    predicts a step below it, within a few times that of the minimum, in fewer
    evaluations than to the full tolerance."""
    space = ThetaSpace(_scalar_terms())
    full, early = LogQuadratic([0.3, 2.0]), LogQuadratic([0.3, 2.0])
    opt_full = minimize(full, space, method="log-lbfgs")
    opt_early = minimize(early, space, method="log-lbfgs", stop_step=1e-4)
    assert opt_early.converged
    np.testing.assert_allclose(np.log(opt_early.theta_final), early.c, atol=5e-4)
    np.testing.assert_allclose(np.log(opt_full.theta_final), full.c, atol=1e-6)
    assert early.calls < full.calls


def test_log_lbfgs_stop_step_leaves_a_vanishing_variance_to_the_full_search():
    """A θ heading for 0 is not stopped early (the bound and the boundary trial decide):
    the same result as without ``stop_step``."""
    space = ThetaSpace(_scalar_terms())
    opts = [minimize(LogQuadratic([0.01, 2.0]), space, method="log-lbfgs", **o)
            for o in ({}, {"stop_step": 1e-4})]
    np.testing.assert_array_equal(opts[0].theta_final, opts[1].theta_final)


@pytest.mark.parametrize("stop_step", [None, 1e-4])
def test_log_lbfgs_searches_off_diagonal_theta_of_either_sign(stop_step):
    """``(1 + x | g)``'s θ = (T₁₁, T₂₁, T₂₂): the diagonal on log scale, the off-diagonal
    T₂₁ (a covariance: negative here) on its own. On a log scale it could not turn negative
    (and the line search tried e⁸)."""
    target = np.array([0.8, -0.5, 0.3])

    class Quadratic:
        def value_and_grad(self, theta):
            d = theta - target
            return float(d @ d) * 1e3 + 1.0, 2e3 * d

    opt = minimize(Quadratic(), ThetaSpace(RandomEffectTerm(("(Intercept)", "x"))),
                   method="log-lbfgs", stop_step=stop_step)
    assert opt.converged
    np.testing.assert_allclose(opt.theta_final, target, atol=1e-3 if stop_step else 1e-6)



@pytest.mark.parametrize("multiple, converged", [(2.0, True), (40.0, False)])
def test_log_lbfgs_accepts_an_abnormal_end_only_at_the_rounding_noise(monkeypatch, multiple,
                                                                       converged):
    """L-BFGS-B ending ABNORMAL (no decrease along its line search) with the gradient in log
    θ within 10 × gtol (4e-9 |f|) is the criterion's rounding noise — a crossed fit from
    chunks ended so on one CPU, θ 4e-8 from the converged fit on two —: converged, and the
    message says so; with a larger gradient, not converged. The search is replaced by its
    end state (where L-BFGS-B stopped, the gradient it saw there)."""
    from scipy.optimize import OptimizeResult

    from skmixed._model import optimize as opt_module

    objective = LogQuadratic([0.3, 2.0])
    space = ThetaSpace(_scalar_terms())
    gtol = max(4e-9 * objective.value(space.start()), 1e-4)  # as _log_lbfgs sets it

    def ended_abnormal(fun, x0, **kwargs):
        x = objective.c.copy()  # log θ at the minimum
        f_scaled, _ = fun(x)  # the search sees f and g divided by one scale
        scale = objective.value(np.exp(x)) / f_scaled
        return OptimizeResult(x=x, fun=f_scaled, jac=np.array([multiple * gtol, 0.0]) / scale,
                              success=False, status=2, message="ABNORMAL: ", nit=6)

    monkeypatch.setattr(opt_module.optimize, "minimize", ended_abnormal)
    opt = minimize(objective, space, method="log-lbfgs")
    assert opt.message.startswith("ABNORMAL")
    assert opt.converged is converged
    assert ("rounding noise" in opt.message) is converged
