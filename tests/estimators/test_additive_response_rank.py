"""AdditiveMixed on a shifted y, collinear parametric columns and a y without residual
noise (issue 13): a Gaussian y is fitted minus a constant near it (the intercept takes it
back), so ``y + 1e9`` fits as ``y``; the later of collinear parametric columns is dropped
with a RankDeficientWarning as MixedLM drops it; a y that the groups fit exactly warns."""

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import ConvergenceWarning

from skmixed import AdditiveMixed, MixedLM, RankDeficientWarning
from skmixed.datasets import make_multilevel
from skmixed.sources import from_chunks

COLS = ["g", "x", "b", "z"]


@pytest.fixture(scope="module")
def data():
    df = make_multilevel(3_000, 60, random_state=1)
    df.attrs = {}
    return df


def _chunked(frame, target, size=1_000):
    return from_chunks([frame.iloc[i:i + size] for i in range(0, len(frame), size)],
                       target=target, ranges={"z": (0.0, 1.0)}, progress=False)


def _silent(fit):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return fit()


def _same_fit_but_intercept(a, b, shift, rtol=1e-6):
    np.testing.assert_allclose(a.coef_, b.coef_, rtol=rtol)
    np.testing.assert_allclose(a.intercept_, b.intercept_ + shift, rtol=1e-12,
                               atol=rtol * abs(b.intercept_))
    np.testing.assert_allclose(a.smooths_["edf"], b.smooths_["edf"], rtol=rtol)
    np.testing.assert_allclose(a.variance_components_["sd"], b.variance_components_["sd"],
                               rtol=rtol)
    np.testing.assert_allclose(a.sigma_, b.sigma_, rtol=rtol)
    np.testing.assert_allclose(a.reml_criterion_, b.reml_criterion_, rtol=rtol)


SHIFTS = (1e3, 1e4, 1e6, 1e7, 1e9)


@pytest.mark.parametrize("discrete", [False, True])
def test_shifted_y_fits_as_y_in_memory(data, discrete):
    def model():
        return AdditiveMixed(groups="g", smooths=["z"], discrete=discrete)
    base = _silent(lambda: model().fit(data[COLS], data["y_nl"]))
    for s in SHIFTS:
        shifted = _silent(lambda: model().fit(data[COLS], data["y_nl"] + s))
        _same_fit_but_intercept(shifted, base, s)
        # predictions to 1e-6 of y's spread (s + y rounds to 1e-16 · s anyway)
        np.testing.assert_allclose(shifted.predict(data[COLS].iloc[:20]) - s,
                                   base.predict(data[COLS].iloc[:20]),
                                   rtol=0, atol=1e-6 * data["y_nl"].std())


def test_shifted_y_fits_as_y_chunked(data):
    frame = data[COLS + ["y_nl"]]
    base = _silent(lambda: AdditiveMixed(groups="g", smooths=["z"]).fit(
        _chunked(frame, "y_nl")))
    for s in SHIFTS:
        shifted = _silent(lambda: AdditiveMixed(groups="g", smooths=["z"]).fit(
            _chunked(frame.assign(y_nl=frame["y_nl"] + s), "y_nl")))
        _same_fit_but_intercept(shifted, base, s)


def test_constant_y_still_refused_when_shifted(data):
    with pytest.raises(ValueError, match="fitted exactly by the fixed effects"):
        AdditiveMixed(groups="g", smooths=["z"]).fit(data[COLS],
                                                     pd.Series(1e9, index=data.index))


def _collinear(data):
    return data.assign(s=data["x"] + data["b"])[["g", "x", "b", "s"]]


def _dropped_like_mixedlm(model, reference, data):
    assert model.dropped_features_ == ["s"]
    assert list(model.fixed_effects_.index) == ["(Intercept)", "x", "b"]
    assert model.coef_[2] == 0.0
    np.testing.assert_allclose(model.coef_, reference.coef_, rtol=1e-8)
    np.testing.assert_allclose(model.fixed_effects_["std_error"],
                               reference.fixed_effects_["std_error"], rtol=1e-6)
    np.testing.assert_allclose(model.reml_criterion_, reference.reml_criterion_, rtol=1e-10)
    np.testing.assert_allclose(model.predict(_collinear(data)),
                               reference.predict(_collinear(data)), rtol=1e-8)


@pytest.mark.parametrize("discrete", [False, True])
def test_collinear_column_dropped_in_memory(data, discrete):
    with pytest.warns(RankDeficientWarning, match=r"dropping 1 column\(s\): \['s'\]"):
        reference = MixedLM(groups="g").fit(_collinear(data), data["y"])
    with pytest.warns(RankDeficientWarning, match=r"dropping 1 column\(s\): \['s'\]") as rec:
        model = AdditiveMixed(groups="g", discrete=discrete).fit(_collinear(data), data["y"])
    assert not [w for w in rec if w.category is not RankDeficientWarning]
    assert rec[0].filename == __file__  # the warning points at the caller
    _dropped_like_mixedlm(model, reference, data)


def test_collinear_column_dropped_chunked(data):
    with pytest.warns(RankDeficientWarning):
        reference = AdditiveMixed(groups="g", discrete=True).fit(_collinear(data), data["y"])
    with pytest.warns(RankDeficientWarning, match=r"dropping 1 column\(s\): \['s'\]") as rec:
        model = AdditiveMixed(groups="g").fit(
            _chunked(_collinear(data).assign(y=data["y"]), "y"))
    assert rec[0].filename == __file__
    _dropped_like_mixedlm(model, reference, data)


def _group_only_y(data):
    effect = np.random.default_rng(0).normal(size=60)
    return pd.Series(effect[pd.factorize(data["g"])[0]], index=data.index, name="y")


@pytest.mark.parametrize("smooths", [[], ["z"]])
def test_y_exactly_a_group_effect_warns(data, smooths):
    with pytest.warns(ConvergenceWarning, match=r"residual variance is \(numerically\) 0"):
        model = AdditiveMixed(groups="g", smooths=smooths).fit(data[COLS], _group_only_y(data))
    assert not model.converged_


def test_y_exactly_a_group_effect_warns_chunked(data):
    with pytest.warns(ConvergenceWarning, match=r"residual variance is \(numerically\) 0"):
        model = AdditiveMixed(groups="g", smooths=["z"]).fit(
            _chunked(data[COLS].assign(y=_group_only_y(data)), "y"))
    assert not model.converged_
