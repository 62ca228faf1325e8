"""Optimization of the profiled deviance over θ, and the record of it (lme4's optinfo,
MixedModels.jl's OptSummary).

θ is optimized without bounds: the deviance depends on ``T`` only through ``T T'``, which a
sign flip of any column leaves unchanged, so a variance at zero is an interior point of the
unconstrained problem (a bounded search stalls there: the gradient of a diagonal element at 0
vanishes). L-BFGS-B with the exact gradient runs close to the optimum; then Newton steps
with a finite-difference Hessian of the exact gradient polish the optimum and give the
convergence test: the predicted further decrease of the criterion, ``½ g'H⁻¹g``, in the
criterion's own units (−2 log-likelihood), which do not depend on the scale of y or on n.
"""

import time
from dataclasses import dataclass, field

import numpy as np
from scipy import linalg, optimize

from .._kernels.threads import blas_threads as blas_threads_ctx
from .._kernels.threads import single_threaded_blas

__all__ = ["OptSummary", "FiniteDifferenceGradient", "TermsSpace", "minimize_theta",
           "minimize_criterion", "minimize_newton", "minimize_scalar_theta",
           "minimize_log_theta"]

_MAX_RESTARTS = 4
_NEWTON_STEPS = 4
_POLISH_STEPS = 2
_POLISH_RTOL = 2e-11  # polish while a Newton step would move θ by more than this (relative)
_POLISH_ROUNDING = 1e-13  # relative rounding of the criterion allowed to a polishing step


@dataclass
class OptSummary:
    """Everything about one optimization of the profiled deviance.

    Attributes
    ----------
    optimizer : str
    theta_start, theta_final : ndarray
    lower : ndarray
        lme4's bounds on θ (0 for diagonal elements); ``theta_final`` respects them.
    fmin : float
        The criterion at ``theta_final`` (REML criterion or deviance).
    gradient : ndarray
        Gradient at ``theta_final``.
    decrement : float
        ``½ g'H⁻¹g`` at ``theta_final``: the decrease still predicted by a Newton step.
    n_evals, n_iter : int
        Criterion evaluations (each with its gradient) and optimizer iterations.
    converged : bool
    message : str
    timings : dict
        Wall seconds per phase of the fit.
    hessian : ndarray or None
        The finite-difference Hessian (of the exact gradient) used by the last Newton steps,
        computed within a few tiny steps of ``theta_final``.
    """

    optimizer: str
    theta_start: np.ndarray
    theta_final: np.ndarray
    lower: np.ndarray
    fmin: float
    gradient: np.ndarray
    decrement: float
    n_evals: int
    n_iter: int
    converged: bool
    message: str
    timings: dict = field(default_factory=dict)
    hessian: np.ndarray = None


class _Counted:
    """Wraps the objective to count evaluations, and remembers the last one: the optimizer
    asks again for the point L-BFGS-B started or stopped at, and a GLMM evaluation costs
    passes over all rows."""

    def __init__(self, objective):
        self.objective = objective
        self.n_evals = 0
        self._last = None

    def __call__(self, theta):
        theta = np.array(theta, dtype=float)
        if self._last is not None and np.array_equal(self._last[0], theta):
            f, g = self._last[1], self._last[2]
            return f, g.copy()
        self.n_evals += 1
        f, g = self.objective.value_and_grad(theta)
        g = np.asarray(g, dtype=float)
        self._last = (theta, f, g.copy())
        return f, g


def _hessian(fun, theta, grad, rel_step=1e-5, central=True):
    """Symmetric finite-difference Hessian from the exact gradient: central differences
    (2k evaluations) or forward differences from ``grad`` at theta (k evaluations)."""
    k = theta.size
    H = np.empty((k, k))
    for j in range(k):
        h = rel_step * max(1.0, abs(theta[j]))
        e = np.zeros(k)
        e[j] = h
        if central:
            H[:, j] = (fun(theta + e)[1] - fun(theta - e)[1]) / (2.0 * h)
        else:
            H[:, j] = (fun(theta + e)[1] - grad) / h
    return 0.5 * (H + H.T)


def _newton_step(H, g):
    """``H⁻¹g`` (least squares if H is singular) and ``½ g'H⁻¹g``."""
    try:
        step = linalg.solve(H, g, assume_a="sym")
    except (linalg.LinAlgError, ValueError):
        step = linalg.lstsq(H, g)[0]
    return step, 0.5 * float(g @ step)


class _ThetaSpace:
    """θ alone: start, lme4's bounds, sign canonicalization (see RandomEffectTerm)."""

    def __init__(self, term):
        self.term = term

    def start(self):
        return self.term.theta_start()

    def lower(self):
        return self.term.theta_lower()

    def canonical(self, x):
        return self.term.canonical(x)


class TermsSpace:
    """θ of several random-effect terms, concatenated: start, lme4's bounds and the sign
    canonicalization term by term."""

    def __init__(self, terms):
        self.terms = list(terms)
        self.edges = np.cumsum([0] + [t.n_theta for t in self.terms])

    def start(self):
        return np.concatenate([t.theta_start() for t in self.terms])

    def lower(self):
        return np.concatenate([t.theta_lower() for t in self.terms])

    def canonical(self, x):
        return np.concatenate([t.canonical(x[a:b]) for t, a, b in
                               zip(self.terms, self.edges[:-1], self.edges[1:])])


class FiniteDifferenceGradient:
    """An objective ``f(θ)`` with ``value_and_grad`` by central differences (relative step
    ``step``), for criteria without an exact gradient (the general several-factor
    deviance: random slopes in several factors)."""

    def __init__(self, objective, step=1e-6):
        self.objective, self.step = objective, step

    def value_and_grad(self, theta):
        f = self.objective(theta)
        if not np.isfinite(f):
            return np.inf, np.zeros(theta.size)
        g = np.empty(theta.size)
        for j in range(theta.size):
            e = np.zeros(theta.size)
            e[j] = self.step * max(1.0, abs(theta[j]))
            g[j] = (self.objective(theta + e) - self.objective(theta - e)) / (2 * e[j])
        return f, g


def minimize_theta(objective, term, *, tol=1e-8, max_iter=1000):
    """Minimize ``objective.value_and_grad`` over θ (see the module docstring).

    Parameters
    ----------
    objective : object with ``value_and_grad(theta) -> (float, ndarray)``
    term : RandomEffectTerm
        Gives the start, lme4's bounds and the sign canonicalization of θ.
    tol : float
        Convergence: the predicted further decrease of the criterion is at most ``tol``.
    max_iter : int
        Iteration budget over all L-BFGS-B runs and Newton steps together.

    Converged, θ is polished (:func:`_polish`): an evaluation costs no pass over the rows, and
    the polish makes the optimum independent of where L-BFGS-B happened to stop.
    """
    return minimize_criterion(objective, _ThetaSpace(term), tol=tol, max_iter=max_iter,
                              polish=True)


def minimize_criterion(objective, space, *, tol=1e-8, max_iter=1000, hessian_step=1e-5,
                       lbfgs_gtol=1e-10, polish=False):
    """Minimize ``objective.value_and_grad`` over a parameter space.

    ``space`` gives ``start()``, ``lower()`` (lme4's bounds, for the record) and
    ``canonical(x)`` (the sign canonicalization of the θ part). ``lbfgs_gtol`` (relative to
    the criterion at the start) is where L-BFGS-B hands over to the Newton steps: a looser
    value saves evaluations where each one is expensive (a GLMM's passes over the rows).
    ``polish`` takes Newton steps below ``tol`` too (:func:`_polish`), for criteria whose
    evaluations are cheap and whose gradient is exact.
    """
    start = time.perf_counter()
    with single_threaded_blas():
        summary = _minimize(_Counted(objective), space, tol, max_iter, hessian_step,
                            lbfgs_gtol, polish)
    summary.timings["optimize"] = time.perf_counter() - start
    return summary


def _escape_saddle(fun, space, theta, f, H):
    """Leave a stationary point that is not a minimum along H's most negative curvature.

    A zero diagonal element of θ is always stationary (the criterion depends on it through
    its square), so the search can land on θ_j = 0 where the criterion has a maximum in θ_j.
    Returns the new (θ, f, g) or None when H has no clearly negative curvature.
    """
    eigval, eigvec = linalg.eigh(H)
    if eigval[0] >= -1e-8 * max(1.0, np.abs(eigval).max()):
        return None
    direction = eigvec[:, 0]
    for alpha in (1.0, 0.3, 0.1, 0.03, 0.01):
        trial = space.canonical(theta + alpha * direction)
        f_trial, g_trial = fun(trial)
        if f_trial < f:
            return trial, f_trial, g_trial
    return None


def _polish(fun, space, theta, f, g, H, decrement):
    """Newton steps below the convergence tolerance, to the criterion's rounding level.

    ``tol`` bounds the decrease still to be had, not the distance to the optimum: a stop at a
    decrement δ leaves θ about ``√(2δ/h)`` away (h: the curvature), so two fits whose sums
    differ only in rounding (in memory and from chunks) could stop 1e-7 apart. A step is
    taken only while it would move θ by more than ``_POLISH_RTOL`` (most fits stop closer
    than that and pay nothing). Below ``tol`` the decrease is under the criterion's own
    rounding and ``f`` cannot judge a step; it is kept when ``f`` does not rise beyond its
    rounding and the decrement shrinks (the exact gradient resolves what ``f`` no longer
    can). Returns ``(θ, f, g, decrement, steps)``."""
    steps = 0
    for _ in range(_POLISH_STEPS):
        step, _ = _newton_step(H, g)
        if not np.max(np.abs(step)) > _POLISH_RTOL * max(1.0, np.max(np.abs(theta))):
            break
        trial = space.canonical(theta - step)
        f_trial, g_trial = fun(trial)
        _, dec_trial = _newton_step(H, g_trial)
        slack = _POLISH_ROUNDING * max(1.0, abs(f))
        if not (f_trial <= f + slack and abs(dec_trial) < abs(decrement)):
            break
        theta, f, g, decrement = trial, f_trial, g_trial, dec_trial
        steps += 1
    return theta, f, g, decrement, steps


def _minimize(fun, space, tol, max_iter, hessian_step, lbfgs_gtol, polish=False):
    theta = space.start()
    n_iter = 0
    message = ""
    f, g, decrement, at_minimum, H = np.inf, None, np.inf, False, None
    # L-BFGS-B stops a little short of rounding level (its line search thrashes there, at
    # ~20 evaluations a try); the Newton steps below finish the job.
    f0, _ = fun(theta)
    gtol = lbfgs_gtol * max(1.0, abs(f0)) if np.isfinite(f0) else 1e-8
    for _ in range(_MAX_RESTARTS):
        res = optimize.minimize(fun, theta, jac=True, method="L-BFGS-B",
                                options={"ftol": 1e-13, "gtol": gtol,
                                         "maxiter": max(1, max_iter - n_iter), "maxcor": 20})
        n_iter += int(res.nit)
        message = str(res.message)
        theta = space.canonical(res.x)
        f, g = fun(theta)
        if not np.isfinite(f):
            break
        # Newton polish: accept a step only if it lowers the criterion. The Hessian is
        # computed once per restart (2k evaluations) and reused: near the optimum the
        # steps are tiny and a fixed H still converges linearly at a fast rate.
        H = _hessian(fun, theta, g, hessian_step)
        escaped = _escape_saddle(fun, space, theta, f, H)
        if escaped is not None:
            theta, f, g = escaped
            at_minimum = False
            continue
        at_minimum = True
        for _ in range(_NEWTON_STEPS):
            step, decrement = _newton_step(H, g)
            if abs(decrement) <= tol or not np.isfinite(decrement) or n_iter >= max_iter:
                break
            trial = space.canonical(theta - step)
            f_trial, g_trial = fun(trial)
            if not f_trial < f:
                break
            theta, f, g = trial, f_trial, g_trial
            n_iter += 1
        else:
            step, decrement = _newton_step(H, g)  # at the last accepted point
        if polish and abs(decrement) <= tol and decrement > 0.0 and n_iter < max_iter:
            theta, f, g, decrement, steps = _polish(fun, space, theta, f, g, H, decrement)
            n_iter += steps
        if (at_minimum and abs(decrement) <= tol) or n_iter >= max_iter:
            break
    converged = bool(np.isfinite(f) and at_minimum and abs(decrement) <= tol)
    return OptSummary(
        optimizer="L-BFGS-B + Newton",
        theta_start=space.start(),
        theta_final=theta,
        lower=space.lower(),
        fmin=float(f),
        gradient=np.asarray(g) if g is not None else np.full(len(theta), np.nan),
        decrement=float(decrement),
        n_evals=fun.n_evals,
        n_iter=n_iter,
        converged=converged,
        message=message if converged else f"{message}; predicted decrease {decrement:.3g} > tol",
        hessian=H,
    )


def _positive_definite(H):
    """H with its eigenvalues floored at a small positive fraction of the largest (a
    descent direction where H is indefinite), and whether it had to be changed."""
    eigval, eigvec = linalg.eigh(H)
    floor = 1e-8 * max(1.0, np.abs(eigval).max())
    if eigval[0] >= floor:
        return H, False
    fixed = np.maximum(np.abs(eigval), floor)
    return (eigvec * fixed) @ eigvec.T, True


def _bfgs_update(H, s, y):
    """BFGS update of a Hessian approximation; skipped when the curvature ``s'y`` is not
    clearly positive (the update would lose positive definiteness)."""
    sy = float(s @ y)
    Hs = H @ s
    sHs = float(s @ Hs)
    if not (sy > 1e-10 * np.linalg.norm(s) * np.linalg.norm(y) and sHs > 0.0):
        return H
    return H - np.outer(Hs, Hs) / sHs + np.outer(y, y) / sy


def _line_search(fun, x, f, g, direction, max_halvings=30):
    """Backtracking (Armijo, with quadratic interpolation) along ``direction`` from x.
    Returns (x_new, f_new, g_new) or None."""
    slope = float(g @ direction)
    t = 1.0
    for _ in range(max_halvings):
        trial = x + t * direction
        f_t, g_t = fun(trial)
        if np.isfinite(f_t) and f_t <= f + 1e-4 * t * slope:
            return trial, f_t, g_t
        if np.isfinite(f_t):
            # minimizer of the quadratic through f, slope and f_t, kept in [0.1 t, 0.5 t]
            t_q = -slope * t * t / (2.0 * (f_t - f - slope * t))
            t = min(max(t_q, 0.1 * t), 0.5 * t)
        else:
            t *= 0.1
    return None


def minimize_newton(objective, space, *, tol=1e-8, max_iter=200, hessian_step=1e-5,
                    hessian=None, final_hessian=True):
    """Minimize ``objective.value_and_grad`` by Newton steps from a finite-difference
    Hessian of the exact gradient, updated by BFGS between its refreshes.

    For criteria whose every evaluation passes over the data (a GLMM's deviance) and that
    have few parameters: the forward-difference Hessian costs k evaluations, each cheap
    because the conditional modes move little, and Newton's quadratic convergence needs far
    fewer evaluations than L-BFGS-B. The Hessian is computed at the start (unless given,
    e.g. from a related fit) and again wherever the BFGS model predicts convergence; the
    fit has converged when, with a fresh Hessian at a point without negative curvature,
    the predicted decrease ``½ g'H⁻¹g`` is at most ``tol``. The Hessian returned is that
    fresh one (lme4's standard errors come from it). ``final_hessian=False`` accepts the
    BFGS model's convergence and returns its Hessian (a start for a related fit).
    """
    start = time.perf_counter()
    with single_threaded_blas():
        summary = _newton(_Counted(objective), space, tol, max_iter, hessian_step, hessian,
                          final_hessian)
    summary.timings["optimize"] = time.perf_counter() - start
    return summary


def _newton(fun, space, tol, max_iter, hessian_step, H, final_hessian):
    x = space.start()
    f, g = fun(x)
    fresh = False
    if H is None and np.isfinite(f):
        H = _hessian(fun, x, g, hessian_step, central=False)
        fresh = True
    decrement, n_iter, converged = np.inf, 0, False
    message = "evaluation failed at the start" if not np.isfinite(f) else ""
    while np.isfinite(f) and n_iter < max_iter:
        H_pd, modified = _positive_definite(H)
        step, decrement = _newton_step(H_pd, g)
        if abs(decrement) <= tol:
            if not fresh and not final_hessian:
                # a start for a related fit (Laplace before quadrature): the BFGS model
                # says converged and its Hessian will do as the next fit's first one
                converged = True
                message = "predicted decrease below tol (BFGS Hessian)"
                break
            if not fresh:
                x = space.canonical(x)
                f, g = fun(x)
                H = _hessian(fun, x, g, hessian_step, central=False)
                fresh = True
                continue
            if not modified:
                converged = True
                message = "predicted decrease below tol"
                if abs(decrement) > 1e-3 * tol:
                    # one last Newton step (quadratic convergence: it leaves about the
                    # square of the decrement) where the criterion is flat enough for the
                    # remaining decrement to move the parameters visibly
                    x_new = x - step
                    f_new, g_new = fun(x_new)
                    if f_new <= f:
                        x, f, g = x_new, f_new, g_new
                        decrement = _newton_step(H_pd, g)[1]
                break
            escaped = _escape_saddle(fun, space, x, f, H)
            if escaped is None:
                message = "stationary point with negative curvature"
                break
            x, f, g = escaped
            H = _hessian(fun, x, g, hessian_step, central=False)
            continue
        found = _line_search(fun, x, f, g, -step)
        if found is None:
            if fresh:
                message = "line search failed"
                break
            H = _hessian(fun, x, g, hessian_step, central=False)  # the BFGS model misled
            fresh = True
            continue
        x_new, f_new, g_new = found
        n_iter += 1
        # keep the BFGS model while it predicts well: a full step that achieved at least a
        # quarter of the predicted decrease; otherwise a fresh Hessian at the new point
        full_step = np.array_equal(x_new, x - step)
        if full_step and f - f_new >= 0.25 * decrement:
            H = _bfgs_update(H, x_new - x, g_new - g)
            x, f, g, fresh = x_new, f_new, g_new, False
        else:
            x, f, g = x_new, f_new, g_new
            H = _hessian(fun, x, g, hessian_step, central=False)
            fresh = True
    else:
        if np.isfinite(f):
            message = "iteration limit reached"
    return OptSummary(
        optimizer="Newton (finite-difference Hessian of the exact gradient, BFGS updates)",
        theta_start=space.start(),
        theta_final=space.canonical(x),
        lower=space.lower(),
        fmin=float(f),
        gradient=np.asarray(g),
        decrement=float(decrement),
        n_evals=fun.n_evals,
        n_iter=n_iter,
        converged=converged,
        message=message if converged else f"{message}; predicted decrease {decrement:.3g}",
        hessian=H if (fresh or not final_hessian) else None,
    )


def minimize_scalar_theta(value, term, *, xtol=1e-7, upper=20.0, max_iter=500):
    """Minimize ``value(θ)`` over a scalar θ ∈ [0, upper] by bounded Brent.

    For criteria without a cheap gradient (lme4's nAGQ = 0, where each value is a joint
    penalized IRLS), a derivative-free 1-D search needs a third of the evaluations of
    finite-difference quasi-Newton. θ = −θ gives the same criterion, so [0, upper] is no
    restriction below ``upper`` (a relative SD of 20 on the link scale); an optimum at the
    upper bound is reported as not converged.
    """
    start = time.perf_counter()
    with single_threaded_blas():
        res = optimize.minimize_scalar(lambda t: value(np.array([t])), bounds=(0.0, upper),
                                       method="bounded",
                                       options={"xatol": xtol, "maxiter": max_iter})
    theta = np.array([float(res.x)])
    at_bound = theta[0] > upper * (1.0 - 1e-4)
    converged = bool(res.success and not at_bound)
    message = str(res.message) + ("; θ at the upper search bound" if at_bound else "")
    return OptSummary(
        optimizer="bounded Brent (scalar θ)",
        theta_start=term.theta_start(),
        theta_final=theta,
        lower=term.theta_lower(),
        fmin=float(res.fun),
        gradient=np.full(1, np.nan),
        decrement=np.nan,
        n_evals=int(res.nfev),
        n_iter=int(res.nit),
        converged=converged,
        message=message,
        timings={"optimize": time.perf_counter() - start},
    )


#: log θ below this is a variance of zero (θ = 4.5e-5): the bound of the log-scale search
_LOG_THETA_FLOOR = -10.0
#: convergence: the projected gradient in log θ (criterion units) below this multiple of the
#: criterion. Its rounding noise (~1e-9 relative: 2e-4 on InstEval's 2.4e5) stalls line
#: searches below ~1e-9 |d|; at 4e-9 |d| (1e-3 on InstEval) the remaining decrease is
#: ~1e-8 and θ is within ~1e-5 relative of its optimum.
_LOG_THETA_GTOL = 4e-9


def minimize_log_theta(objective, terms, *, theta0=None, tol=1e-8, max_iter=1000,
                       blas_threads=1):
    """Minimize over θ of scalar random-effect terms (``(1|a) + (1|b) + …``) by L-BFGS-B on
    log θ with the exact gradient (``objective.value_and_grad``).

    Each evaluation of a several-factor deviance factors a dense Schur complement (InstEval:
    1156 × 1156), so evaluations are what count: on the log scale the criterion is close to
    quadratic in each variance; from θ = 1 (lme4's start) InstEval takes 17 evaluations,
    from a moment estimate (``theta0``) 13 (Newton with finite-difference Hessians needed
    twice as many). A log θ at the floor
    (``_LOG_THETA_FLOOR``, θ ≈ 4.5e-5, a variance 2e-9 of σ²) is reported as θ = 0, a
    boundary (singular) fit. Converged: the projected gradient in log θ is below 1e-4 (criterion units:
    −2 log-likelihood per unit of log θ); ``blas_threads`` for the dense factorizations."""
    start = time.perf_counter()
    lower = np.concatenate([t.theta_lower() for t in terms])
    calls = {"n": 0}
    cache = {}

    def fg(x):
        key = x.tobytes()
        if key not in cache:
            calls["n"] += 1
            theta = np.exp(x)
            f, g = objective.value_and_grad(theta)
            cache.clear()
            cache[key] = (f, g * theta)
        return cache[key]

    x0 = (np.zeros(len(lower)) if theta0 is None
          else np.log(np.clip(theta0, np.exp(_LOG_THETA_FLOOR + 1.0), np.exp(7.0))))
    with blas_threads_ctx(blas_threads):
        # scaled so that the first (steepest-descent) step is about one unit of log θ, not
        # the criterion's gradient of hundreds (a wasted evaluation at the bound)
        f0, g0 = fg(x0)
        scale = max(1.0, float(np.max(np.abs(g0)))) if np.isfinite(f0) else 1.0
        gtol = max(_LOG_THETA_GTOL * abs(f0), 1e-4) if np.isfinite(f0) else 1e-4
        res = optimize.minimize(lambda x: tuple(v / scale for v in fg(x)), x0, jac=True,
                                method="L-BFGS-B",
                                bounds=[(_LOG_THETA_FLOOR, 8.0)] * x0.size,
                                options={"ftol": 0.0, "gtol": gtol / scale,
                                         "maxiter": max_iter})
    res.fun, res.jac = res.fun * scale, res.jac * scale
    theta = np.exp(res.x)
    theta[res.x <= _LOG_THETA_FLOOR + 1e-9] = 0.0
    grad = np.asarray(res.jac, dtype=float)
    at_floor = res.x <= _LOG_THETA_FLOOR + 1e-9
    free_grad = np.where(at_floor & (grad > 0), 0.0, grad)
    converged = bool(res.success or np.max(np.abs(free_grad)) <= gtol)
    summary = OptSummary(
        optimizer="L-BFGS-B on log θ (exact gradient)", theta_start=np.exp(x0),
        theta_final=theta, lower=lower, fmin=float(res.fun), gradient=grad,
        decrement=np.nan, n_evals=calls["n"], n_iter=int(res.nit), converged=converged,
        message=str(res.message))
    summary.timings["optimize"] = time.perf_counter() - start
    return summary
