"""Writes tests/data/correlated_slopes.csv, the data of lme4_correlated_slopes.R: six small
data sets (column ``set``) with two or three random slopes correlated with the intercept,
drawn as a review's random searches drew them (numpy ``default_rng``): ``two_*`` with slopes
x1, x2 (x3 = 0), ``three_*`` with x1, x2, x3; random-effect covariances of full rank, of rank
two (a slope without variance) or one; slopes shifted and scaled (x + 5, x × 10). On the
``three_*`` sets gradient searches from one start had stopped in local optima up to 2.5
above lmer's criterion. Values rounded to 10 significant digits. Run from the repository
root: ``python tests/reference/make_correlated_slopes.py``."""

import numpy as np
import pandas as pd


def _two(seed, kind):
    rng = np.random.default_rng(500 + seed)
    G, n = int(rng.integers(3, 10)), int(rng.integers(30, 150))
    g = rng.integers(0, G, n)
    x1 = rng.normal(size=n) + rng.choice([0, 5, 50])
    x2 = rng.uniform(-1, 1, n) * rng.choice([1, 10, 0.1])
    L = np.tril(rng.normal(size=(3, 3)))
    if kind == 1:
        L[:, 2] = 0  # x2's slope without variance
    if kind == 3:
        L = np.outer(rng.normal(size=3), [1, 0, 0])  # rank one
    b = rng.normal(size=(G, 3)) @ L.T * rng.uniform(0.2, 2)
    y = 1 + 0.5 * x1 - 0.3 * x2 + b[g, 0] + b[g, 1] * x1 + b[g, 2] * x2 + rng.normal(size=n)
    return pd.DataFrame(dict(y=y, x1=x1, x2=x2, x3=0.0, g=[f"g{i}" for i in g]))


def _three(seed):
    rng = np.random.default_rng(900 + seed)
    G, n = int(rng.integers(4, 14)), int(rng.integers(40, 200))
    g = rng.integers(0, G, n)
    X = rng.normal(size=(n, 3)) * rng.choice([0.1, 1, 10], 3) + rng.choice([0, 3, 30], 3)
    L = np.tril(rng.normal(size=(4, 4)))
    if seed % 3 == 1:
        L[:, 3] = 0
    if seed % 3 == 2:
        L[:, 2:] = 0
    b = rng.normal(size=(G, 4)) @ L.T * rng.uniform(0.2, 2)
    Z = np.column_stack([np.ones(n), X])
    y = 1 + X @ [0.5, -0.3, 0.2] + np.sum(b[g] * Z, axis=1) + rng.normal(size=n)
    return pd.DataFrame(dict(y=y, x1=X[:, 0], x2=X[:, 1], x3=X[:, 2], g=[f"g{i}" for i in g]))


sets = {"two_a": _two(1, 1), "two_b": _two(3, 3), "two_c": _two(4, 0),
        "three_a": _three(2), "three_b": _three(19), "three_c": _three(0)}
out = pd.concat([d.assign(set=name) for name, d in sets.items()], ignore_index=True)
for c in ("y", "x1", "x2", "x3"):
    out[c] = out[c].map(lambda v: float(f"{v:.10g}"))
out.to_csv("tests/data/correlated_slopes.csv", index=False)
