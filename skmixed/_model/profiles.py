"""What the profile-likelihood intervals and the numerical derivatives of inference share
(`lmm_inference`, `glmm_inference`): the variance parameters on the user's
scale (lme4's SDs and correlations, and σ) and their map to θ; Richardson-extrapolated
derivatives; the search for the ends of an interval, ``ζ(v) = ±z``; the profile of a
smooth criterion with an exact gradient by Newton steps.

The signed root of the profiled deviance ``ζ(v) = sign(v − v̂)·√(D_prof(v) − D̂)`` is
solved for ``±z_{(1+level)/2}`` by bracketing (secant steps out from ``v̂``) and Brent's
method, to 1e-12 relative; lme4 interpolates a spline through a grid of ζ instead (its
interpolation error, measured against a 20× finer grid, is up to 5e-5 relative on
sleepstudy and cbpp).
"""

import warnings
from dataclasses import dataclass

import numpy as np
from scipy import linalg, optimize, stats

__all__ = ["FactorMap", "VarianceMap", "richardson_gradient", "richardson_hessian",
           "interval_end", "NewtonProfile", "profile_intervals", "profile_traces",
           "nearest_solution"]

#: a correlation is profiled inside (−1, 1) by this margin
COR_EDGE = 1e-9


@dataclass
class FactorMap:
    """One grouping factor as the inference sees it: its name, term, the factor ``d`` that
    maps its internal random effects to the user's (slope columns are scaled), and its θ's
    slice in the objective's θ."""

    name: str
    term: object
    scale: np.ndarray
    start: int
    stop: int


def _psd_cholesky(R):
    """Lower Cholesky factor of a correlation matrix that may be singular (|ρ| = 1): a
    pivot ≈ 0 gives a zero column; None when R is not positive semi-definite (three or
    more correlations, each within ±1, need not make a correlation matrix)."""
    q = R.shape[0]
    L = np.zeros((q, q))
    for j in range(q):
        d = R[j, j] - L[j, :j] @ L[j, :j]
        if d < -1e-10:
            return None
        if d <= 1e-15:
            continue
        L[j, j] = np.sqrt(d)
        for i in range(j + 1, q):
            L[i, j] = (R[i, j] - L[i, :j] @ L[j, :j]) / L[j, j]
    return L


class VarianceMap:
    """The variance parameters of ``factors`` (FactorMaps in lme4's reporting order) on the
    user's scale, θ's order within each factor: SDs and correlations, then σ when
    ``with_sigma`` (Gaussian models; the others have σ = 1)."""

    def __init__(self, factors, n_theta, with_sigma):
        self.factors, self.n_theta, self.with_sigma = factors, int(n_theta), bool(with_sigma)

    def names(self):
        """lme4's ``oldNames = FALSE`` names."""
        out = []
        for f in self.factors:
            nm = f.term.names
            for r, c in zip(f.term.rows, f.term.cols):
                out.append(f"sd_{nm[r]}|{f.name}" if r == c
                           else f"cor_{nm[r]}.{nm[c]}|{f.name}")
        return out + (["sigma"] if self.with_sigma else [])

    def kinds(self):
        kinds = []
        for f in self.factors:
            kinds += ["sd" if r == c else "cor" for r, c in zip(f.term.rows, f.term.cols)]
        return kinds + (["sigma"] if self.with_sigma else [])

    def bounds(self):
        return [(-1.0 + COR_EDGE, 1.0 - COR_EDGE) if k == "cor" else (0.0, np.inf)
                for k in self.kinds()]

    def to_user(self, theta, sigma=1.0):
        """SDs and correlations (and σ) of internal θ."""
        out = []
        for f in self.factors:
            T = f.term.factor(theta[f.start:f.stop]) * f.scale[:, None]
            cov = sigma ** 2 * (T @ T.T)
            sd = np.sqrt(np.diag(cov))
            for r, c in zip(f.term.rows, f.term.cols):
                if r == c:
                    out.append(sd[r])
                else:
                    den = sd[r] * sd[c]
                    out.append(cov[r, c] / den if den > 0 else 0.0)
        return np.array(out + ([sigma] if self.with_sigma else []))

    def from_user(self, phi):
        """(internal θ, σ) of SDs/correlations (/σ): the inverse of `to_user`; θ is
        NaN where the correlations of a factor do not make a correlation matrix (the
        deviance there is infinite)."""
        sigma = float(phi[-1]) if self.with_sigma else 1.0
        theta = np.zeros(self.n_theta)
        pos = 0
        for f in self.factors:
            q, rows, cols = f.term.q, f.term.rows, f.term.cols
            sd, R = np.zeros(q), np.eye(q)
            for k, (r, c) in enumerate(zip(rows, cols)):
                if r == c:
                    sd[r] = phi[pos + k]
                else:
                    R[r, c] = R[c, r] = phi[pos + k]
            L = _psd_cholesky(R)
            if L is None:
                theta[f.start:f.stop] = np.nan
            else:
                T = (sd / sigma)[:, None] * L / f.scale[:, None]
                theta[f.start:f.stop] = T[rows, cols]
            pos += len(rows)
        return theta, sigma


    def jacobian(self, phi, coords=None, floor=None):
        """d(θ[, σ])/dφ_k for each ``k`` of ``coords`` (default all; one row each) by central
        differences of relative step 1e-7 (``floor``: per coordinate, the scale below which
        the step stops shrinking, default 1e-2) — one-sided where a neighbour makes no
        correlation matrix (a correlation at ±1), zero where neither side does."""
        phi = np.asarray(phi, dtype=float)
        coords = np.arange(phi.size) if coords is None else np.asarray(coords)
        floor = np.full(coords.size, 1e-2) if floor is None else np.asarray(floor)

        def point(v):
            theta, sigma = self.from_user(v)
            if not np.all(np.isfinite(theta)):
                return None
            return np.concatenate([theta, [sigma]]) if self.with_sigma else theta

        here = point(phi)
        rows = np.zeros((coords.size, self.n_theta + self.with_sigma))
        for i, k in enumerate(coords):
            h = 1e-7 * max(abs(phi[k]), floor[i])
            up, dn = phi.copy(), phi.copy()
            up[k] += h
            dn[k] -= h
            a, b = point(up), point(dn)
            if a is not None and b is not None:
                rows[i] = (a - b) / (2.0 * h)
            elif a is not None and here is not None:
                rows[i] = (a - here) / h
            elif b is not None and here is not None:
                rows[i] = (here - b) / h
        return rows


def nearest_solution(last, v):
    """The solution stored in ``last`` (value → point) for the value nearest ``v``, or
    None (a profile's searches start where the nearest one ended)."""
    return last[min(last, key=lambda u: abs(u - v))] if last else None


def _richardson(estimate, h0, levels=4):
    """Richardson extrapolation of ``estimate(h)`` (error O(h²)) from ``h0`` halved
    ``levels − 1`` times."""
    table = [np.asarray(estimate(h0 / 2 ** k), dtype=float) for k in range(levels)]
    for m in range(1, levels):
        f = 4.0 ** m
        table = [(f * table[k + 1] - table[k]) / (f - 1.0) for k in range(len(table) - 1)]
    return table[0]


def _steps(x, rel, floor):
    return rel * np.maximum(np.abs(x), 1e-2 if floor is None else floor)


def richardson_gradient(f, x, rel=1e-2, floor=None):
    """Gradient (Jacobian rows by parameter) of a scalar or array-valued ``f`` at ``x`` by
    Richardson-extrapolated central differences (initial relative step ``rel``, as
    numDeriv's, which lmerTest uses; ``floor``: each parameter's scale below which the
    step stops shrinking with it, default 1e-2)."""
    x = np.asarray(x, dtype=float)
    out = []
    for j, h0 in enumerate(_steps(x, rel, floor)):
        def central(h, j=j):
            e = np.zeros_like(x)
            e[j] = h
            return (np.asarray(f(x + e)) - np.asarray(f(x - e))) / (2.0 * h)
        out.append(_richardson(central, h0))
    return np.array(out)


def richardson_hessian(f, x, rel=1e-2, floor=None):
    """Hessian of a scalar ``f`` at ``x`` by Richardson-extrapolated central second
    differences (``floor`` as `richardson_gradient`'s)."""
    x = np.asarray(x, dtype=float)
    k = x.size
    f0 = f(x)
    H = np.empty((k, k))
    hs = _steps(x, rel, floor)
    for a in range(k):
        def diag(h, a=a):
            e = np.zeros(k)
            e[a] = h
            return (f(x + e) - 2.0 * f0 + f(x - e)) / h ** 2
        H[a, a] = _richardson(diag, hs[a])
        for b in range(a):
            def cross(t, a=a, b=b):
                ea, eb = np.zeros(k), np.zeros(k)
                ea[a], eb[b] = t * hs[a], t * hs[b]
                return (f(x + ea + eb) - f(x + ea - eb) - f(x - ea + eb) + f(x - ea - eb)) \
                    / (4.0 * t * t * hs[a] * hs[b])
            H[a, b] = H[b, a] = _richardson(cross, 1.0)
    return H


def signed_root(v, v_hat, dev, dev_min):
    """ζ: the signed square root of the deviance's rise (0 below rounding)."""
    return float(np.sign(v - v_hat) * np.sqrt(max(dev - dev_min, 0.0)))


def interval_end(zeta, v_hat, step, target, bounds, max_steps=60):
    """The v on ``target``'s side of ``v_hat`` with ``zeta(v) = target``: steps out from
    ``v_hat`` (secant extrapolation, doubling when ζ does not grow) until ζ passes the
    target, then Brent's method; the bound itself when ζ stays short of the target there."""
    s = np.sign(target)
    lo_b, hi_b = bounds
    edge = lo_b if s < 0 else hi_b
    v_prev, z_prev = v_hat, 0.0
    v = v_hat + s * step
    for _ in range(max_steps):
        at_edge = (s < 0 and v <= lo_b) or (s > 0 and v >= hi_b)
        if at_edge:
            v = edge
        z = zeta(v)
        if s * z >= s * target:
            scale = max(abs(v), abs(v_prev), 1e-300)
            return optimize.brentq(lambda u: zeta(u) - target, min(v, v_prev),
                                   max(v, v_prev), xtol=1e-12 * scale, rtol=1e-12)
        if at_edge:
            return edge
        slope = (z - z_prev) / (v - v_prev)
        if s * slope <= 0 or not np.isfinite(slope):
            v_next = v + s * 2.0 * abs(v - v_prev)
        else:
            # to the target along the secant, 10 % beyond it (to bracket), at most 4× as far
            jump = min(1.1 * (target - z) / slope, 4.0 * abs(v - v_prev) * s, key=abs)
            v_next = v + jump if s * jump > 0 else v + s * abs(v - v_prev)
        v_prev, z_prev, v = v, z, v_next
    return np.nan


class NewtonProfile:
    """ζ of coordinate ``j`` of a smooth criterion ``F(y)`` with an exact gradient
    (``value_and_grad``), minimized over the other coordinates by Newton steps: the
    Hessian at the optimum ``H`` (BFGS-updated along each search), Armijo halving, the
    other coordinates clipped to ``bounds``; each search starts from the nearest solved
    point, or from the optimum moved along ``−H₋ⱼ₋ⱼ⁻¹H₋ⱼⱼ·(v − ŷ_j)`` (the profile's
    tangent). Stops when the Newton decrement ``½ g'H⁻¹g`` is below ``tol`` (deviance
    units)."""

    def __init__(self, value_and_grad, y_hat, f_hat, H, j, bounds, tol=1e-9, max_iter=100,
                 kinds=None):
        self.value_and_grad, self.y_hat, self.f_hat = value_and_grad, y_hat, f_hat
        self.j, self.tol, self.max_iter = j, tol, max_iter
        self.free = np.array([k for k in range(y_hat.size) if k != j], dtype=np.int64)
        self.H = H[np.ix_(self.free, self.free)]
        self.tangent = (-linalg.solve(self.H, H[self.free, j], assume_a="sym")
                        if self.free.size else np.zeros(0))
        self.lo = np.array([b[0] for b in bounds])[self.free]
        self.hi = np.array([b[1] for b in bounds])[self.free]
        self.last = {}
        self.n_evals = 0
        kinds = list(kinds or [])
        self.has_cor = "cor" in kinds
        self.sd_coords = np.array([i for i, k in enumerate(kinds) if k == "sd"],
                                  dtype=np.int64)

    def _start(self, v, fresh=False):
        near = None if fresh else nearest_solution(self.last, v)
        if near is not None:
            y = near.copy()
        else:
            y = self.y_hat.copy()
            y[self.free] += self.tangent * (v - self.y_hat[self.j])
        y[self.j] = v
        y[self.free] = np.clip(y[self.free], self.lo, self.hi)
        return y

    def minimum(self, v):
        """The criterion minimized over the other coordinates at ``y_j = v``: from the
        nearest solved point, and — with correlations among the coordinates, or where
        that search ends with an SD at 0 — also from the optimum moved along the tangent
        (the better kept: the searches are local, the surface near |ρ| = 1 or SD = 0 is
        not convex)."""
        fresh = not self.last
        f, y = self._search(v, self._start(v))
        near_zero = np.any(y[self.sd_coords] < 1e-6) if self.sd_coords.size else False
        if not fresh and (self.has_cor or near_zero):
            f2, y2 = self._search(v, self._start(v, fresh=True))
            if f2 < f:
                f, y = f2, y2
        self.last[v] = y
        return f

    def _search(self, v, y):
        f, g = self.value_and_grad(y)
        self.n_evals += 1
        B = self.H.copy()
        for _ in range(self.max_iter):
            if not self.free.size or not np.isfinite(f):
                break
            gf = g[self.free]
            try:
                step = linalg.solve(B, gf, assume_a="pos")
            except linalg.LinAlgError:
                B = self.H.copy()
                step = linalg.solve(B, gf, assume_a="sym")
            if 0.5 * gf @ step <= self.tol:
                break
            t = 1.0
            while t > 1e-8:
                trial = y.copy()
                trial[self.free] = np.clip(y[self.free] - t * step, self.lo, self.hi)
                f_new, g_new = self.value_and_grad(trial)
                self.n_evals += 1
                if np.isfinite(f_new) and f_new <= f - 1e-4 * t * (gf @ step) + 1e-12 * abs(f):
                    break
                t *= 0.5
            else:
                break
            s_k = trial[self.free] - y[self.free]
            y_k = g_new[self.free] - gf
            if s_k @ y_k > 1e-12 * np.sqrt((s_k @ s_k) * (y_k @ y_k)):
                Bs = B @ s_k
                B = B - np.outer(Bs, Bs) / (s_k @ Bs) + np.outer(y_k, y_k) / (s_k @ y_k)
            y, f, g = trial, f_new, g_new
        return f, y

    def __call__(self, v):
        return signed_root(v, self.y_hat[self.j], self.minimum(v), self.f_hat)

    def verify(self, v):
        """ζ at ``v`` by a search started afresh from the optimum's tangent (not from the
        solved points): an end where the two disagree is path-dependent."""
        f, _ = self._search(v, self._start(v, fresh=True))
        if not np.isfinite(f):  # the tangent left the correlation matrices: the optimum
            start = self.y_hat.copy()
            start[self.j] = v
            f, _ = self._search(v, start)
        return signed_root(v, self.y_hat[self.j], f, self.f_hat)


def profile_intervals(zetas, level):
    """name → (estimate, lower, upper) from ``zetas``: (name, estimate, ζ, first step,
    bounds) per parameter."""
    z = stats.norm.ppf(0.5 + level / 2.0)
    out = {}
    for name, est, zeta, step, bounds in zetas:
        out[name] = (est, _end(name, zeta, est, step, -z, bounds),
                     _end(name, zeta, est, step, z, bounds))
    return out


def _end(name, zeta, est, step, target, bounds):
    """`interval_end`, or NaN with a warning naming the parameter where ζ does not
    cross the target monotonically (a profile whose searches disagree) — or, for a ζ with
    a ``verify`` (a search started afresh from the optimum), where that search does not
    confirm ζ at the end to 1e-2."""
    side = "lower" if target < 0 else "upper"
    try:
        end = interval_end(zeta, est, step, target, bounds)
    except ValueError as exc:
        warnings.warn(f"the profile of {name!r} did not bracket ζ = {target:+.3g} ({exc}); "
                      f"its {side} end is NaN", RuntimeWarning, stacklevel=4)
        return np.nan
    verify = getattr(zeta, "verify", None)
    if verify is not None and np.isfinite(end) and end not in bounds:
        fresh = verify(end)
        if abs(fresh - target) > 1e-2:
            warnings.warn(f"the profile of {name!r} depends on its search path: at its "
                          f"{side} end {end:.6g} a fresh search gives ζ = {fresh:.4g}, not "
                          f"{target:+.4g} (a near-singular fit); the end is NaN",
                          RuntimeWarning, stacklevel=4)
            return np.nan
    return end


def profile_traces(zetas, level, n_points):
    """(name, values, ζ) per parameter: ζ on ``n_points`` values evenly spaced between
    the ends of its ``level`` interval (and the estimate, ζ = 0)."""
    z = stats.norm.ppf(0.5 + level / 2.0)
    out = []
    for name, est, zeta, step, bounds in zetas:
        lo = _end(name, zeta, est, step, -z, bounds)
        hi = _end(name, zeta, est, step, z, bounds)
        if not (np.isfinite(lo) and np.isfinite(hi)):
            continue
        values = np.linspace(lo, hi, int(n_points))
        if np.min(np.abs(values - est)) > 1e-9 * (hi - lo):
            values = np.sort(np.append(values, est))
        out.append((name, values, np.array([zeta(v) for v in values])))
    return out
