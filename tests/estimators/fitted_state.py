"""Helpers shared by the estimator tests: "a failed refit changes nothing", and clone()."""

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_array_equal
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted


def snapshot(model, attributes):
    """Copies of the named fitted attributes."""
    return {a: (lambda v: v.copy() if hasattr(v, "copy") else v)(getattr(model, a))
            for a in attributes}


def assert_unchanged(model, before_state):
    """Every attribute in the snapshot still equals its copy."""
    for name, before in before_state.items():
        after = getattr(model, name)
        if isinstance(before, pd.DataFrame):
            pd.testing.assert_frame_equal(after, before)
        elif isinstance(before, pd.Index):
            pd.testing.assert_index_equal(after, before)
        elif isinstance(before, np.ndarray):
            assert_array_equal(after, before)
        else:
            assert after == before, name


def assert_refit_fails(model, before_state, exc, match, X, y, **fit_params):
    """Refitting on bad input raises ``exc`` and leaves the fitted state as it was."""
    with pytest.raises(exc, match=match):
        model.fit(X, y, **fit_params)
    assert_unchanged(model, before_state)


def assert_clone_is_unfitted(model, X):
    """clone() gives an unfitted copy with equal parameters; the original stays fitted."""
    copy = clone(model)
    assert copy is not model
    assert copy.get_params() == model.get_params()
    with pytest.raises(NotFittedError):
        copy.predict(X)
    assert not [a for a in vars(copy) if a.endswith("_") and not a.startswith("_")]
    check_is_fitted(model)
