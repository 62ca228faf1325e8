"""The same fit whatever ``n_jobs``: every parallel pass sums fixed blocks in block order
(:mod:`skmixed._kernels.blocks`), so a fit on 1 or 2 threads gives bit-identical estimates
(issue 13: ``n_jobs=1`` and ``2`` differed by 1e-9 in the coefficients at 2e6 rows). The
block sizes and the thresholds of threading are lowered here so that 60,000 rows split
into several blocks, and over the threads, in every pass (row passes, the fixed-effects
GLM's start, the sweep over groups)."""

import warnings

import numba
import numpy as np
import pandas as pd
import pytest

from skmixed import AdditiveMixed, MixedGLM, MixedLM
from skmixed._kernels import blocks
from skmixed._model import lmm
from skmixed.datasets import make_multilevel
from skmixed.sources import from_chunks

pytestmark = pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2,
                                reason="needs 2 Numba threads")

ATTRIBUTES = ("coef_", "intercept_", "theta_", "sigma_", "loglik_", "reml_criterion_",
              "edf_", "fixed_effects_", "random_effects_", "variance_components_")


@pytest.fixture(scope="module")
def data():
    df = make_multilevel(60_000, 300, slope_sd=0.3, random_state=1)
    # half the rows in group order (runs of a group), half shuffled
    tail = df.iloc[30_000:].sample(frac=1.0, random_state=0)
    return pd.concat([df.iloc[:30_000], tail], ignore_index=True)


@pytest.fixture
def small_blocks(monkeypatch):
    monkeypatch.setattr(blocks, "MIN_BLOCK_ROWS", 5_000)
    monkeypatch.setattr(lmm, "_PARALLEL_WORK", 5_000)
    # every pass threaded however small: the kernel pool's parts and Numba's parallel
    # compilation of the prange kernels
    monkeypatch.setattr("skmixed._kernels.threads.THREAD_MIN_ROWS", 0)
    monkeypatch.setattr("skmixed._kernels.threads.LAPLACE_THREAD_MIN_ROWS", 0)
    monkeypatch.setattr("skmixed._cache.PARALLEL_MIN_SIZE", 0)


def _numbers(model, name):
    value = getattr(model, name, None)
    if isinstance(value, pd.DataFrame):
        return value.select_dtypes("number").to_numpy()
    return None if value is None else np.asarray(value, dtype=float)


def _assert_same_fit(make, fit):
    fits = []
    for n_jobs in (1, 2, 1):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            fits.append(fit(make(n_jobs)))
    compared = 0
    for name in ATTRIBUTES:
        first = _numbers(fits[0], name)
        if first is None:
            continue
        compared += 1
        for other in fits[1:]:
            np.testing.assert_array_equal(_numbers(other, name), first, err_msg=name)
    assert compared >= 5


@pytest.mark.parametrize("slopes", [[], ["x"]], ids=["intercept", "slope"])
def test_mixedlm(data, small_blocks, slopes):
    _assert_same_fit(lambda n: MixedLM(groups="g", random_slopes=slopes, n_jobs=n),
                     lambda m: m.fit(data[["g", "x", "b"]], data["y"]))


def test_mixedlm_from_chunks(data, small_blocks):
    chunks = [data[["g", "x", "b", "y"]].iloc[i:i + 20_000] for i in range(0, 60_000, 20_000)]
    _assert_same_fit(lambda n: MixedLM(groups="g", random_slopes=["x"], n_jobs=n),
                     lambda m: m.fit(from_chunks(chunks, target="y", progress=False)))


@pytest.mark.parametrize("slopes", [[], ["x"]], ids=["intercept", "slope"])
def test_mixedglm(data, small_blocks, slopes):
    _assert_same_fit(lambda n: MixedGLM(groups="g", random_slopes=slopes, n_jobs=n),
                     lambda m: m.fit(data[["g", "x", "b"]], data["y_bin"]))


@pytest.mark.parametrize("family, target", [("gaussian", "y_nl"), ("binomial", "y_bin")])
def test_additive_mixed(data, small_blocks, family, target):
    _assert_same_fit(lambda n: AdditiveMixed(smooths=["z"], groups="g", family=family,
                                             n_jobs=n),
                     lambda m: m.fit(data[["g", "x", "b", "z"]], data[target]))
