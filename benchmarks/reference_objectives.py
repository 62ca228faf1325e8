"""Reference objectives for the benchmarks, in plain NumPy (no skmixed kernel), so that a
fast wrong kernel or an optimizer that stops short fails its benchmark:

* :func:`check_lmm` — the profiled REML criterion of a one-factor LMM (Bates et al. 2015, §3, from
  per-group sums by ``np.bincount``) at the fit's θ must equal the fit's criterion, and
  L-BFGS-B on that criterion, started at the fit's θ, must not find a lower one;
* :func:`check_additive` — a binned Gaussian AdditiveMixed fit must equal the same model
  fitted from chunks (NumPy bin tables, not the binned Numba pass) to the README's chunked
  tolerances; an exact or binomial fit must solve its penalized likelihood equations;
* :func:`check_glmm` — the Laplace or adaptive Gauss–Hermite deviance of the binomial logit
  random-intercept model (modes by vectorized Newton steps) at the fit's (β, θ) must equal
  the fit's deviance, and the fit must sit at the optimum of that deviance: along each
  parameter the Newton step from central differences is below ``max_step`` of the
  parameter's standard error (n_agq = 0: β must zero the joint PIRLS score instead).
"""

import numpy as np
from scipy import optimize
from scipy.special import expit


def _columns(df, names):
    return np.column_stack([np.ones(len(df))] + [df[c].to_numpy(float) for c in names])


def _group_sums(codes, G, A, B):
    """Per group Σ a_j b_j' for the columns of A (n × a) and B (n × b): (G, a, b)."""
    out = np.empty((G, A.shape[1], B.shape[1]))
    for i in range(A.shape[1]):
        for j in range(B.shape[1]):
            out[:, i, j] = np.bincount(codes, A[:, i] * B[:, j], minlength=G)
    return out


class LmmCriterion:
    """The profiled REML criterion of ``y ~ fixed + (1 + slopes | g)`` (g categorical),
    unstructured, as a function of lme4's θ (the lower triangle of the relative Cholesky
    factor, column by column)."""

    def __init__(self, df, y, fixed, slopes=(), group="g"):
        codes = df[group].cat.codes.to_numpy()
        G = int(codes.max()) + 1
        X, Z = _columns(df, fixed), _columns(df, slopes)
        yv = df[y].to_numpy(float)[:, None]
        self.ZtZ, self.ZtX = _group_sums(codes, G, Z, Z), _group_sums(codes, G, Z, X)
        self.Zty = _group_sums(codes, G, Z, yv)
        self.XtX, self.Xty, self.yty = X.T @ X, X.T @ yv, float(yv[:, 0] @ yv[:, 0])
        self.n, self.p, self.q = len(df), X.shape[1], Z.shape[1]
        self.rows, self.cols = np.tril_indices(self.q)
        order = np.lexsort((self.rows, self.cols))  # lme4: column-major lower triangle
        self.rows, self.cols = self.rows[order], self.cols[order]

    def __call__(self, theta):
        Lam = np.zeros((self.q, self.q))
        Lam[self.rows, self.cols] = theta
        M = np.einsum("ab,gac,cd->gbd", Lam, self.ZtZ, Lam) + np.eye(self.q)
        L = np.linalg.cholesky(M)
        c = np.linalg.solve(L, np.einsum("ab,gac->gbc", Lam, self.Zty))
        R = np.linalg.solve(L, np.einsum("ab,gac->gbc", Lam, self.ZtX))
        A = self.XtX - np.einsum("gab,gac->bc", R, R)
        b = self.Xty - np.einsum("gab,gac->bc", R, c)
        r2 = self.yty - np.sum(c * c) - float(b[:, 0] @ np.linalg.solve(A, b[:, 0]))
        logdet = 2 * np.sum(np.log(np.diagonal(L, axis1=1, axis2=2)))
        dof = self.n - self.p
        return logdet + np.linalg.slogdet(A)[1] + dof * (1 + np.log(2 * np.pi * r2 / dof))

    def minimum(self, theta0):
        """The criterion's minimum by L-BFGS-B from ``theta0`` (diagonal entries ≥ 0)."""
        bounds = [(0, None) if r == c else (None, None) for r, c in zip(self.rows, self.cols)]
        res = optimize.minimize(self, np.asarray(theta0, float), method="L-BFGS-B",
                                bounds=bounds, options=dict(ftol=1e-15, gtol=1e-10))
        return min(res.fun, self(theta0))


def check_lmm(model, df, y, fixed, slopes=(), rtol=1e-10, atol=1e-6):
    """The fit's REML criterion equals the NumPy criterion at its θ (``rtol``; measured
    ~1e-14) and no criterion lower by more than ``atol`` is found from there (1e-6 in a
    −2 log-likelihood: θ within ~1e-3 SE of the optimum at the benchmarks' sizes)."""
    crit = LmmCriterion(df, y, fixed, slopes)
    ours, at_theta = model.reml_criterion_, crit(model.theta_)
    assert abs(ours - at_theta) <= rtol * abs(at_theta), (ours, at_theta)
    best = crit.minimum(model.theta_)
    assert ours <= best + atol, (ours, best)


class GlmmDeviance:
    """−2 log-likelihood of the binomial logit model ``y ~ fixed + (1 | g)`` (0/1 y) by the
    Laplace approximation (``n_agq = 1``) or adaptive Gauss–Hermite quadrature, at (β, θ)."""

    def __init__(self, df, y, fixed, n_agq=1, group="g"):
        self.codes = df[group].cat.codes.to_numpy()
        self.G = int(self.codes.max()) + 1
        self.X, self.y = _columns(df, fixed), df[y].to_numpy(float)
        self.nodes, self.weights = np.polynomial.hermite.hermgauss(max(n_agq, 1))
        self.u = np.zeros(self.G)  # the last modes: the next Newton steps' start

    def _sum(self, v):
        return np.bincount(self.codes, v, minlength=self.G)

    def _loglik(self, eta):
        return self.y * eta - np.logaddexp(0, eta)

    def modes(self, beta, theta):
        """Conditional modes û (u-scale) and the Hessians 1 + θ² Σ μ(1 − μ) per group."""
        offset, u = self.X @ beta, self.u.copy()
        for _ in range(100):
            mu = expit(offset + theta * u[self.codes])
            hess = 1 + theta ** 2 * self._sum(mu * (1 - mu))
            step = (theta * self._sum(self.y - mu) - u) / hess
            u += step
            if np.max(np.abs(step)) < 1e-13:
                break
        self.u = u
        mu = expit(offset + theta * u[self.codes])
        return u, 1 + theta ** 2 * self._sum(mu * (1 - mu)), offset

    def __call__(self, params):
        beta, theta = np.asarray(params[:-1]), float(params[-1])
        u, hess, offset = self.modes(beta, theta)
        scale = 1 / np.sqrt(hess)
        terms = []
        for t, w in zip(self.nodes, self.weights):  # n_agq = 1: t = 0, w = √π
            v = u + np.sqrt(2) * scale * t
            g = self._sum(self._loglik(offset + theta * v[self.codes])) - v ** 2 / 2
            terms.append(g + t ** 2 + np.log(w / np.sqrt(np.pi)))
        return -2 * np.sum(np.log(scale) + np.logaddexp.reduce(np.array(terms), axis=0))

    def score(self, beta, theta):
        """∂/∂β of Σ log p(y | û) − ‖û‖²/2 at the modes: zero at the joint PIRLS optimum."""
        u, _, offset = self.modes(beta, theta)
        return self.X.T @ (self.y - expit(offset + theta * u[self.codes]))


def check_glmm(model, df, y, fixed, n_agq, rtol=1e-9, max_step=1e-3):
    """The fit's deviance equals the NumPy deviance at its (β, θ) (``rtol``), and the fit is
    at that deviance's optimum: along each parameter the Newton step of central differences
    (h = 0.01 SE: the O(h²) bias stays ~1e-5 SE) is below ``max_step`` × the parameter's SE (for θ the SE comes from the
    curvature over ±5 %, for β from the fit). For ``n_agq = 0`` (θ optimized with β and u by
    joint PIRLS) β must zero the PIRLS score to ``max_step`` SEs instead."""
    beta = model.fixed_effects_["estimate"].to_numpy()
    se = model.fixed_effects_["std_error"].to_numpy()
    theta = float(np.atleast_1d(model.theta_)[0])
    deviance = GlmmDeviance(df, y, fixed, n_agq)
    x = np.r_[beta, theta]
    d0 = deviance(x)
    assert abs(model.deviance_ - d0) <= rtol * abs(d0), (model.deviance_, d0)
    if n_agq == 0:
        steps = np.abs(deviance.score(beta, theta)) * se
        assert np.all(steps < max_step), steps
        return

    def along(k, h):
        """(slope, curvature) of the deviance along parameter k by central differences."""
        e = np.zeros_like(x)
        e[k] = h
        up, down = deviance(x + e), deviance(x - e)
        return (up - down) / (2 * h), (up - 2 * d0 + down) / h ** 2

    se_theta = np.sqrt(2 / along(len(beta), 0.05 * theta)[1])
    for k, s in enumerate(np.r_[se, se_theta]):
        slope, curvature = along(k, 0.01 * s)
        assert curvature > 0, (k, curvature)
        # the Newton step −slope/curvature in units of the SE √(2/curvature) of a deviance
        step = abs(slope) / np.sqrt(2 * curvature)
        assert step < max_step, (k, step)


def check_penalized_scores(model, df, y, columns, max_step=1e-6):
    """An AdditiveMixed fit of ``y ~ … + s(g, bs = "re")`` (and slopes' ``s(g, x, bs =
    "re")``) from ``df[columns]``, Gaussian, binomial, Gamma, Tweedie or negative binomial,
    solves its penalized likelihood equations at its fitted variances: with μ̂ the fitted
    means and r the score residual ∂ℓ/∂η (y − μ̂ for the canonical links), X'r = 0 for the
    parametric columns and Σ_g z r = b̂_g φ / τ² per group and random-effect column z
    (1 or a slope's column; φ = σ² or 1), each score times its standard error (the
    coefficient's; the mode's conditional SD over φ) below ``max_step``. Needs fitted means
    at the rows: not a binned smooth (its fit is at the bins)."""
    X = df[columns]
    parametric = _columns(df, [c for c in model.fixed_effects_.index if c != "(Intercept)"])
    target = df[y].to_numpy(float)
    if model.family == "binomial":
        mu = model.predict_proba(X)[:, 1] if hasattr(model, "classes_") else model.predict(X)
        phi = 1.0
    else:
        mu, phi = model.predict(X), model.sigma_ ** 2
    # the score's working residual ∂ℓ/∂η: y − μ for the canonical links, (y − μ)/μ for
    # Gamma's log link, (y − μ) μ^(1−p) for Tweedie's, k(y − μ)/(k + μ) for the negative
    # binomial's
    resid = target - mu
    if model.family == "gamma":
        resid = resid / mu
    elif model.family == "tweedie":  # the quasi-score (y − μ) μ^(1−p)
        resid = resid * mu ** (1.0 - model.power_)
    elif model.family == "nbinom2":
        resid = model.dispersion_ * resid / (model.dispersion_ + mu)
    se = model.fixed_effects_["std_error"].to_numpy()
    steps = np.abs(parametric.T @ resid) * se / phi
    assert np.all(steps < max_step), steps
    variances = model.variance_components_.set_index(["group", "var1"])["variance"]
    # every grouping factor (several: crossed), each random-effect column
    for (name, term), modes in model.random_effects_.groupby(["group", "term"], sort=False):
        codes = model.group_levels_[name].get_indexer(df[name])
        z = np.ones(len(df)) if term == "(Intercept)" else df[term].to_numpy(float)
        scores = (np.bincount(codes, z * resid, minlength=len(modes))
                  - modes["mode"].to_numpy() * phi / variances[(name, term)])
        worst = np.max(np.abs(scores) * modes["cond_sd"].to_numpy() / phi)
        assert worst < max_step, (name, term, worst)


def check_additive(model, df, columns, target, params):
    """A binned Gaussian fit (``params`` its AdditiveMixed arguments) against the same model
    from chunks (``skmixed.sources.from_chunks``: NumPy bin tables instead of the binned
    Numba pass): REML criterion 1e-10 relative, coefficients 1e-8, edf and SDs 1e-6 (an SD
    at 0: 1e-5 σ); any other fit by :func:`check_penalized_scores`."""
    from skmixed import AdditiveMixed
    from skmixed.sources import from_chunks

    if model.family != "gaussian" or not model._discrete:
        check_penalized_scores(model, df, target, columns)
        return
    frame = df[columns + [target]]
    chunks = [frame.iloc[i:i + 500_000] for i in range(0, len(frame), 500_000)]
    ranges = {c: (df[c].min(), df[c].max()) for c in params.get("smooths", [])}
    source = from_chunks(chunks, target=target, ranges=ranges, progress=False)
    ref = AdditiveMixed(**{k: v for k, v in params.items() if k != "discrete"}).fit(source)
    np.testing.assert_allclose(model.reml_criterion_, ref.reml_criterion_, rtol=1e-10)
    np.testing.assert_allclose(model.coef_, ref.coef_, rtol=1e-8)
    np.testing.assert_allclose(model.smooths_["edf"], ref.smooths_["edf"], rtol=1e-6)
    # an SD at its boundary (the simulated slope variance is 0) is flat in the criterion:
    # there, 1e-5 of σ
    np.testing.assert_allclose(model.variance_components_["sd"],
                               ref.variance_components_["sd"], rtol=1e-6,
                               atol=1e-5 * model.sigma_)
