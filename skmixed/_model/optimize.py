"""The one optimizer interface of the models, and the record of an optimization (lme4's
optinfo, MixedModels.jl's OptSummary).

`minimize` minimizes a criterion (−2 log-likelihood, REML criterion, deviance) over a
parameter space (`spaces`) by a named method; every fit goes through it, and a new
method is a function here plus its entry in ``METHODS``. θ is searched without bounds
where the criterion has an exact gradient (`spaces`); Newton steps with a
finite-difference Hessian finish those searches and give the convergence test: the
predicted further decrease ``½ g'H⁻¹g``, in the criterion's own units.
"""

import time
import warnings
from contextlib import nullcontext
from dataclasses import dataclass, field

import numpy as np
from scipy import linalg, optimize

from .._kernels.threads import blas_threads as _blas_threads

__all__ = ["OptSummary", "FiniteDifferenceGradient", "minimize", "METHODS"]

_MAX_RESTARTS = 4
_NEWTON_STEPS = 4
_POLISH_STEPS = 2
_POLISH_RTOL = 2e-11  # polish while a Newton step would move θ by more than this (relative)
_POLISH_ROUNDING = 1e-13  # relative rounding of the criterion allowed to a polishing step
#: log θ below this is a variance of zero (θ = 4.5e-5): the bound of the log-scale search
_LOG_THETA_FLOOR = -10.0
#: … and above this (θ = 2981: a random-effect SD 3,000 times the residual one; beyond, the
#: fit says it did not converge rather than report the bound: raising it sent L-BFGS-B astray)
_LOG_THETA_CEILING = 8.0
#: … and |θ| for the off-diagonal elements of T, searched on their own scale
_THETA_CEILING = float(np.exp(_LOG_THETA_CEILING))
#: "log-lbfgs" tries θ_k = 0 for every θ_k it ends below this (kept where no worse)
_BOUNDARY_TRY = 1e-2
#: "log-lbfgs" converged: the projected gradient in log θ below this multiple of the
#: criterion, its rounding noise (~1e-9 relative stalls line searches; at 4e-9 |d| the
#: remaining decrease is ~1e-8 and θ within ~1e-5 relative of its optimum)
_LOG_THETA_GTOL = 4e-9
#: "log-lbfgs" with ``stop_step`` stops early only while every θ is above this (log θ;
#: θ = 0.05)
_STOP_LOG_THETA_FROM = np.log(0.05)

#: "newton"'s last step is skipped where its predicted decrease is below this multiple of
#: |f| (~50 units in the last place): the comparison of values that accepts it is then a
#: coin toss of rounding and of the evaluations' own accuracy (1e6 crossed binomial rows:
#: decrements of 2.7e-10 and 9.1e-9 on a deviance of 1.26e6, both rejected)
_ROUNDING_DECREMENT = 1e-14


@dataclass
class OptSummary:
    """Everything about one optimization.

    Attributes
    ----------
    optimizer, message : str
    theta_start, theta_final : ndarray
        The start and final point: θ, a GLMM's (β, θ[, the family's parameter]), log τ...
    lower : ndarray
        The space's lower bounds (lme4's on θ: 0 for diagonal elements).
    fmin, gradient : float, ndarray
        The criterion and its gradient at ``theta_final``.
    decrement : float
        ``½ g'H⁻¹g`` at ``theta_final``, the decrease a Newton step still predicts (NaN
        without a Hessian).
    n_evals, n_iter : int
        Criterion evaluations (with the gradient, where the method uses one), iterations.
    converged : bool
    timings : dict
        Wall seconds per phase of the fit.
    hessian : ndarray or None
        The Hessian of the last Newton steps, from within a few tiny steps of
        ``theta_final`` ("newton": always one).
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


def minimize(objective, space, *, method, tol=1e-8, max_iter=1000, blas_threads=1,
             **options):
    """Minimize ``objective`` over ``space`` by ``method``; returns an `OptSummary`.

    ``objective`` has ``value_and_grad(x) -> (f, g)`` (exact gradient) and/or ``value(x)``,
    optionally ``hessian(x)`` (used by "newton" instead of finite differences of the
    gradient); ``space`` has ``start()``, ``lower()``, ``upper()``, ``canonical(x)``.
    ``tol``, ``max_iter``: as each method reads them; ``blas_threads`` during the search
    (1: small arrays, where threads only cost — L-BFGS-B ran 50× slower beside Numba's
    pool; None: as they are). Methods (their options):

    * ``"newton"`` — Newton steps, Hessian by forward differences of the gradient (k
      evaluations) BFGS-updated while its model predicts well (a full step achieving a
      quarter of the predicted decrease), else refreshed; Armijo backtracking; saddles
      left along the negative curvature. Converged: with a fresh Hessian, positive
      definite, ``½ g'H⁻¹g ≤ tol`` (then one more step if above ``1e-3 tol``). For
      evaluations that pass over the data, few parameters (a GLMM's (β, θ)).
      ``hessian_step`` (1e-5, relative); ``hessian``: the first one (a related fit's);
      ``final_hessian`` (True: the record's Hessian is fresh near the optimum, by central
      differences at the end if need be; False: stop on the BFGS model's convergence and
      return its Hessian); ``costly_gradient`` (False; True where a gradient costs 2k + 1
      values: line-search trials by ``value``, no last step).
    * ``"lbfgs-newton"`` — unbounded L-BFGS-B with the exact gradient to ``lbfgs_gtol``
      (1e-10 of the start's criterion: short of rounding level, where its line search
      thrashes), then Newton steps with a central-difference Hessian (2k evaluations);
      L-BFGS-B restarts from a saddle. Converged: ``½ g'H⁻¹g ≤ tol``. For cheap
      evaluations (the LMM from sufficient statistics). ``hessian_step`` (1e-5);
      ``polish`` (False): Newton steps below ``tol`` to rounding level, so that fits from
      sums in another order stop at the same θ.
    * ``"lbfgs"`` — L-BFGS-B within the space's bounds to a projected gradient ``tol``,
      with the exact gradient or, with ``value`` only, forward differences of step ``eps``;
      also converged at a gradient below ``flat_rtol`` (1e-6) × |criterion| (a smoothing
      parameter running to its bound: L-BFGS-B stops in the criterion's noise). ``ftol``
      (0.0); ``polish`` (False): then Newton steps over the coordinates off the bounds to
      rounding level, as "lbfgs-newton"'s (the additive model's log τ).
    * ``"log-lbfgs"`` — L-BFGS-B on log θ ≥ log θ_floor (scalar terms ``(1|a) + (1|b)``;
      the off-diagonal elements of a term's T, of either sign, on their own scale), exact
      gradient: the criterion is close to quadratic in log variances (InstEval: 13
      evaluations, Newton twice as many); θ at the floor (4.5e-5) is 0, a boundary fit.
      Converged: projected gradient ≤ max(4e-9 |d|, 1e-4) (``tol`` unused). ``stop_step``
      (None): for a first stage, stop once BFGS's model of the iterates predicts a step
      below it in log θ after a step below 100 times it, every θ ≥ 0.05.
    * ``"brent"`` — bounded Brent over a scalar θ ∈ [lower, ``upper`` (20.0)], ``value``
      only, to ``xtol`` (1e-7): a third of the evaluations of finite-difference
      quasi-Newton (lme4's nAGQ = 0: each value a joint PIRLS). θ at ``upper`` is not
      converged.
    """
    if method not in METHODS:
        raise ValueError(f"method={method!r} is not an optimizer method; valid methods: "
                         f"{', '.join(map(repr, METHODS))}.")
    if method not in ("brent", "lbfgs") and not hasattr(objective, "value_and_grad"):
        raise TypeError(f"method={method!r} needs objective.value_and_grad (the gradient); "
                        f"{type(objective).__name__} has none.")
    start = time.perf_counter()
    fun = _Counted(objective)
    x0 = space.start()
    with nullcontext() if blas_threads is None else _blas_threads(blas_threads):
        if x0.size == 0:
            r = dict(name="none", x=x0, f=fun.value(x0), g=x0, n_iter=0, converged=True,
                     message="no parameters to optimize")
        else:
            r = METHODS[method](fun, space, tol, max_iter, **options)
    return OptSummary(
        optimizer=r["name"], theta_start=r.get("start", x0), theta_final=r["x"],
        lower=space.lower(), fmin=float(r["f"]),
        gradient=np.full(x0.size, np.nan) if r["g"] is None else np.asarray(r["g"]),
        decrement=float(r.get("decrement", np.nan)), n_evals=fun.n_evals,
        n_iter=int(r["n_iter"]), converged=bool(r["converged"]), message=r["message"],
        timings={"optimize": time.perf_counter() - start}, hessian=r.get("hessian"))


class _Counted:
    """Wraps the objective to count evaluations, and remembers the last one: the optimizer
    asks again for the point L-BFGS-B started or stopped at, and a GLMM evaluation costs
    passes over all rows. Calling it is ``value_and_grad``."""

    def __init__(self, objective):
        self.objective = objective
        self.n_evals = 0
        self._last = None

    def __call__(self, x):
        x = np.array(x, dtype=float)
        if self._last is not None and np.array_equal(self._last[0], x):
            return self._last[1], self._last[2].copy()
        self.n_evals += 1
        f, g = self.objective.value_and_grad(x)
        g = np.asarray(g, dtype=float)
        self._last = (x, f, g.copy())
        return f, g

    def value(self, x):
        if not hasattr(self.objective, "value"):
            return self(x)[0]
        self.n_evals += 1
        return float(self.objective.value(np.asarray(x, dtype=float)))

    def hessian(self, x, g, step, central):
        """The objective's own Hessian, else `_hessian` of the gradient."""
        if hasattr(self.objective, "hessian"):
            return np.asarray(self.objective.hessian(x), dtype=float)
        return _hessian(self, x, g, step, central)


def _hessian(fun, x, grad, rel_step=1e-5, central=True, coords=None):
    """Symmetric finite-difference Hessian from the exact gradient: central differences
    (2k evaluations) or forward differences from ``grad`` at x (k evaluations); over the
    coordinates ``coords`` only if given."""
    coords = np.arange(x.size) if coords is None else coords
    H = np.empty((coords.size, coords.size))
    for col, j in enumerate(coords):
        h = rel_step * max(1.0, abs(x[j]))
        e = np.zeros(x.size)
        e[j] = h
        if central:
            H[:, col] = (fun(x + e)[1] - fun(x - e)[1])[coords] / (2.0 * h)
        else:
            H[:, col] = (fun(x + e)[1] - grad)[coords] / h
    return 0.5 * (H + H.T)


def _newton_step(H, g):
    """``H⁻¹g`` (least squares if H is singular) and ``½ g'H⁻¹g`` (an ill-conditioned H
    — a flat direction at a singular fit — is no news to the caller: no LinAlgWarning; a
    step is kept only if it lowers the criterion)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", linalg.LinAlgWarning)
            step = linalg.solve(H, g, assume_a="sym")
    except (linalg.LinAlgError, ValueError):
        step = linalg.lstsq(H, g)[0]
    return step, 0.5 * float(g @ step)


def _escape_saddle(fun, space, x, f, H):
    """Leave a stationary point that is not a minimum along H's most negative curvature: a
    zero diagonal element of θ is always stationary (the criterion depends on its square),
    and may be a maximum. Returns the new (x, f, g), or None without clearly negative
    curvature."""
    eigval, eigvec = linalg.eigh(H)
    if eigval[0] >= -1e-8 * max(1.0, np.abs(eigval).max()):
        return None
    direction = eigvec[:, 0]
    for alpha in (1.0, 0.3, 0.1, 0.03, 0.01):
        trial = space.canonical(x + alpha * direction)
        f_trial, g_trial = fun(trial)
        if f_trial < f:
            return trial, f_trial, g_trial
    return None


def _polish(fun, space, x, f, g, H, decrement, free=None):
    """Newton steps below the convergence tolerance, to the criterion's rounding level, with
    a fixed H (over the coordinates ``free``, default all).

    ``tol`` bounds the decrease still to be had, not the distance to the optimum: a stop at a
    decrement δ leaves x about ``√(2δ/h)`` away (h: the curvature), so two fits whose sums
    differ only in rounding (in memory and from chunks) could stop 1e-7 apart. A step is
    taken only while it would move x by more than ``_POLISH_RTOL`` (most fits stop closer
    and pay nothing); it is kept when ``f`` does not rise beyond its rounding and the
    decrement shrinks (the exact gradient resolves what ``f`` no longer can). Returns
    ``(x, f, g, decrement, steps)``."""
    free = np.arange(x.size) if free is None else free
    steps = 0
    for _ in range(_POLISH_STEPS):
        step = np.zeros(x.size)
        step[free] = _newton_step(H, g[free])[0]
        if not np.max(np.abs(step)) > _POLISH_RTOL * max(1.0, np.max(np.abs(x))):
            break
        trial = space.canonical(x - step)
        f_trial, g_trial = fun(trial)
        dec_trial = _newton_step(H, g_trial[free])[1]
        if not (f_trial <= f + _POLISH_ROUNDING * max(1.0, abs(f))
                and abs(dec_trial) < abs(decrement)):
            break
        x, f, g, decrement = trial, f_trial, g_trial, dec_trial
        steps += 1
    return x, f, g, decrement, steps


def _lbfgs_newton(fun, space, tol, max_iter, hessian_step=1e-5, lbfgs_gtol=1e-10,
                  polish=False):
    theta = space.start()
    n_iter = 0
    message = ""
    f, g, decrement, at_minimum, H = np.inf, None, np.inf, False, None
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
        # Newton steps, kept if they lower the criterion, with one Hessian per restart:
        # near the optimum a fixed H still converges linearly at a fast rate
        H = fun.hessian(theta, g, hessian_step, central=True)
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
    return dict(name="L-BFGS-B + Newton", x=theta, f=f, g=g, decrement=decrement,
                n_iter=n_iter, converged=converged, hessian=H,
                message=message if converged else
                f"{message}; predicted decrease {decrement:.3g} > tol")


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


def _line_search(fun, x, f, g, direction, by_value=False, max_halvings=30):
    """Backtracking (Armijo, with quadratic interpolation) along ``direction`` from x;
    ``by_value``: trials by ``fun.value``, the gradient only at the accepted point.
    Returns (x_new, f_new, g_new) or None."""
    slope = float(g @ direction)
    t = 1.0
    for _ in range(max_halvings):
        trial = x + t * direction
        f_t, g_t = (fun.value(trial), None) if by_value else fun(trial)
        if np.isfinite(f_t) and f_t <= f + 1e-4 * t * slope:
            return (trial, *fun(trial)) if by_value else (trial, f_t, g_t)
        if np.isfinite(f_t):
            # minimizer of the quadratic through f, slope and f_t, kept in [0.1 t, 0.5 t]
            t_q = -slope * t * t / (2.0 * (f_t - f - slope * t))
            t = min(max(t_q, 0.1 * t), 0.5 * t)
        else:
            t *= 0.1
    return None


def _newton(fun, space, tol, max_iter, hessian_step=1e-5, hessian=None, final_hessian=True,
            costly_gradient=False):
    x, H = space.start(), hessian
    f, g = fun(x)
    fresh = False
    if H is None and np.isfinite(f):
        H, fresh = fun.hessian(x, g, hessian_step, central=False), True
    decrement, n_iter, converged = np.inf, 0, False
    message = "evaluation failed at the start" if not np.isfinite(f) else ""
    while np.isfinite(f) and n_iter < max_iter:
        H_pd, modified = _positive_definite(H)
        step, decrement = _newton_step(H_pd, g)
        if abs(decrement) <= tol:
            if not fresh and not final_hessian:
                # a start for a related fit (Laplace before quadrature): the BFGS model
                # says converged and its Hessian will do as the next fit's first one
                converged, message = True, "predicted decrease below tol (BFGS Hessian)"
                break
            if not fresh:
                x = space.canonical(x)
                f, g = fun(x)
                H, fresh = fun.hessian(x, g, hessian_step, central=False), True
                continue
            if not modified:
                converged, message = True, "predicted decrease below tol"
                if (not costly_gradient and abs(decrement) > 1e-3 * tol
                        and abs(decrement) > _ROUNDING_DECREMENT * abs(f)):
                    # one last Newton step (quadratic convergence: it leaves about the
                    # square of the decrement) where the criterion is flat enough for the
                    # remaining decrement to move the parameters visibly — and not below
                    # the rounding of f, where comparing values cannot accept it
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
            H = fun.hessian(x, g, hessian_step, central=False)
            continue
        found = _line_search(fun, x, f, g, -step, by_value=costly_gradient)
        if found is None:
            if fresh:
                message = "line search failed"
                break
            H, fresh = fun.hessian(x, g, hessian_step, central=False), True  # BFGS misled
            continue
        x_new, f_new, g_new = found
        n_iter += 1
        # keep the BFGS model while it predicts well: a full step that achieved at least a
        # quarter of the predicted decrease; otherwise a fresh Hessian at the new point
        if np.array_equal(x_new, x - step) and f - f_new >= 0.25 * decrement:
            H = _bfgs_update(H, x_new - x, g_new - g)
            x, f, g, fresh = x_new, f_new, g_new, False
        else:
            x, f, g = x_new, f_new, g_new
            H, fresh = fun.hessian(x, g, hessian_step, central=False), True
    else:
        if np.isfinite(f):
            message = "iteration limit reached"
    x = space.canonical(x)
    if final_hessian and not fresh:
        H = fun.hessian(x, g, hessian_step, central=True)
    name = ("the objective's Hessian" if hasattr(fun.objective, "hessian")
            else "finite-difference Hessian of the exact gradient")
    return dict(name=f"Newton ({name}, BFGS updates)", x=x, f=f, g=g, decrement=decrement,
                n_iter=n_iter, converged=converged, hessian=H,
                message=message if converged else f"{message}; predicted decrease {decrement:.3g}")


def _lbfgs(fun, space, tol, max_iter, ftol=0.0, eps=None, polish=False, flat_rtol=1e-6):
    lower, upper = space.lower(), space.upper()
    exact = hasattr(fun.objective, "value_and_grad")
    options = {"ftol": ftol, "gtol": tol, "maxiter": max_iter}
    options.update({} if eps is None else {"eps": eps})
    res = optimize.minimize(fun if exact else fun.value, space.start(), jac=exact,
                            method="L-BFGS-B", bounds=list(zip(lower, upper)),
                            options=options)
    x, f, g, steps = np.asarray(res.x, dtype=float), float(res.fun), res.jac, 0
    converged, message = bool(res.success), str(res.message)
    if not converged and np.all(np.isfinite(g)) and \
            np.max(np.abs(g)) <= flat_rtol * max(1.0, abs(f)):
        converged = True
        message += " (accepted: gradient at the criterion's numerical noise)"
    free = np.flatnonzero((x > lower + 1e-8) & (x < upper - 1e-8))
    if (polish and free.size and np.isfinite(f)
            and np.max(np.abs(g[free])) >= 1e-12 * max(1.0, abs(f))):
        # L-BFGS-B stops ~1e-7 from the gradient's zero (unless that is the criterion's
        # rounding): Newton steps over the coordinates off the bounds take x to round-off
        f, g = fun(x)
        H = _hessian(fun, x, g, 1e-5, central=False, coords=free)
        if np.min(np.linalg.eigvalsh(H)) > 0:
            x, f, g, _, steps = _polish(fun, space, x, f, g, H,
                                        _newton_step(H, g[free])[1], free)
    return dict(name="L-BFGS-B" + " + Newton polish" * polish, x=x, f=f, g=g,
                n_iter=res.nit + steps, converged=converged, message=message)


def _predicted_step(points):
    """The quasi-Newton step −B⁻¹g from the last of ``points`` ((x, g) of a search's
    iterates), B by BFGS updates over their differences from a scaled identity (as
    L-BFGS-B's model); None before two differences of positive curvature."""
    B, pairs = None, 0
    for (x0, g0), (x1, g1) in zip(points[:-1], points[1:]):
        s, y = x1 - x0, g1 - g0
        if s @ y <= 1e-12 * np.linalg.norm(s) * np.linalg.norm(y):
            continue
        if B is None:
            B = (y @ y) / (s @ y) * np.eye(s.size)
        Bs = B @ s
        B = B - np.outer(Bs, Bs) / (s @ Bs) + np.outer(y, y) / (s @ y)
        pairs += 1
    if pairs < 2:
        return None
    return -np.linalg.solve(B, points[-1][1])


def _log_lbfgs(fun, space, tol, max_iter, stop_step=None):
    # log θ for the θ bounded below by 0 (the terms' diagonals: variances), θ itself for
    # the others (off-diagonal elements of T, of either sign: on a log scale a random
    # slope's covariance could not turn negative, and L-BFGS-B's line search tried it at
    # the ceiling e⁸)
    logged = np.asarray(space.lower(), dtype=float) == 0.0
    evaluated = {}

    def theta_of(x):
        return np.where(logged, np.exp(np.where(logged, x, 0.0)), x)

    def fg(x):
        theta = theta_of(x)
        f, g = fun(theta)
        g = np.where(logged, g * theta, g)
        evaluated[x.tobytes()] = g
        return f, g

    iterates = []

    def early_stop(intermediate_result):
        # a start for a second stage: stop once the search's model predicts a step below
        # ``stop_step`` (log θ) and the last step was small too, every θ away from 0 (a
        # variance heading for 0 is left to the full tolerance and the boundary trial)
        x = np.asarray(intermediate_result.x, dtype=float)
        g = evaluated.get(x.tobytes())
        if g is None:
            return
        iterates.append((x.copy(), g))
        if len(iterates) < 3 or np.any(x[logged] < _STOP_LOG_THETA_FROM):
            return
        step = _predicted_step(iterates)
        if (step is not None and np.max(np.abs(step)) <= stop_step
                and np.max(np.abs(x - iterates[-2][0])) <= 100.0 * stop_step):
            raise StopIteration

    start = space.start()
    x0 = np.where(logged, np.log(np.clip(start, np.exp(_LOG_THETA_FLOOR + 1.0), np.exp(7.0))),
                  start)
    # scaled so that the first (steepest-descent) step is about one unit of log θ, not
    # the criterion's gradient of hundreds (a wasted evaluation at the bound)
    f0, g0 = fg(x0)
    scale = max(1.0, float(np.max(np.abs(g0)))) if np.isfinite(f0) else 1.0
    gtol = max(_LOG_THETA_GTOL * abs(f0), 1e-4) if np.isfinite(f0) else 1e-4
    bounds = [(_LOG_THETA_FLOOR, _LOG_THETA_CEILING) if k else (-_THETA_CEILING, _THETA_CEILING)
              for k in logged]
    res = optimize.minimize(lambda x: tuple(v / scale for v in fg(x)), x0, jac=True,
                            method="L-BFGS-B", bounds=bounds,
                            options={"ftol": 0.0, "gtol": gtol / scale, "maxiter": max_iter},
                            callback=None if stop_step is None else early_stop)
    stopped = res.status == 99  # early_stop
    at_floor = logged & (res.x <= _LOG_THETA_FLOOR + 1e-9)
    theta = np.where(at_floor, 0.0, theta_of(res.x))
    grad = np.asarray(res.jac, dtype=float) * scale
    f = res.fun * scale
    # a variance heading for 0 is stopped short on the log scale (its log-gradient θ·g
    # vanishes with θ: θ ~ 1e-4…1e-3, the criterion up to 1e-4 above its value at 0):
    # θ_k = 0 where that is no worse (lme4's bounded search reaches the boundary)
    small = logged & (theta > 0) & (theta < _BOUNDARY_TRY)
    if small.any():
        trial = np.where(small, 0.0, theta)
        f_trial, g_trial = fun(trial)
        if np.isfinite(f_trial) and f_trial <= f:
            theta, f, at_floor = trial, f_trial, at_floor | small
            grad = np.where(logged, np.asarray(g_trial, dtype=float) * trial, g_trial)
    free_grad = np.where(at_floor & (grad > 0), 0.0, grad)
    # θ at the search's ceiling is not an optimum (it stopped there: a random-effect SD
    # 10⁴ times the residual one was reported converged at θ = e⁸ = 2981)
    at_ceiling = bool(np.any(np.where(logged, res.x >= _LOG_THETA_CEILING - 1e-9,
                                      np.abs(res.x) >= _THETA_CEILING * (1 - 1e-12))))
    message = str(res.message) + ("; θ at the search's upper bound" * at_ceiling)
    # a line search that found no decrease (ABNORMAL) with the gradient within 10 × gtol:
    # the criterion's rounding, not a non-optimum (a crossed fit from chunks ended there
    # with |g| = 1.1 gtol on one CPU and converged with 0.97 gtol on two; its θ 4e-8 apart)
    noise = (not res.success and "ABNORMAL" in str(res.message)
             and np.max(np.abs(free_grad)) <= 10.0 * gtol)
    if noise:
        message += " (accepted: the line search is at the criterion's rounding noise)"
    return dict(name="L-BFGS-B on log θ (exact gradient)", start=theta_of(x0), x=theta,
                f=f, g=grad, n_iter=res.nit, message=message,
                converged=(res.success or stopped or noise
                           or np.max(np.abs(free_grad)) <= gtol) and not at_ceiling)


def _brent(fun, space, tol, max_iter, xtol=1e-7, upper=20.0):
    if space.start().size != 1:
        raise ValueError(f"method='brent' searches a scalar θ; this space has "
                         f"{space.start().size} parameters.")
    lower = float(space.lower()[0])
    res = optimize.minimize_scalar(lambda t: fun.value(np.array([t])), bounds=(lower, upper),
                                   method="bounded", options={"xatol": xtol, "maxiter": max_iter})
    at_bound = bool(res.x > upper * (1.0 - 1e-4))
    return dict(name="bounded Brent (scalar θ)", x=np.array([float(res.x)]), f=res.fun,
                g=None, n_iter=res.nit, converged=res.success and not at_bound,
                message=str(res.message) + ("; θ at the upper search bound" * at_bound))


#: method name → function(fun, space, tol, max_iter, **options) → dict of the results
METHODS = {"newton": _newton, "lbfgs-newton": _lbfgs_newton, "lbfgs": _lbfgs,
           "log-lbfgs": _log_lbfgs, "brent": _brent}
