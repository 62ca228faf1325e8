"""Group labels of the wrong type (skmixed._estimators._design.check_label_types and
lookup_groups), for every estimator and the several-factor path:

* labels of mixed kinds in one column ("1" next to 1 or b"1": two different groups; True
  next to 1: silently one group) are refused in fit and predict, naming the column — object columns, categoricals with such categories
  in use, interactions, and across the chunks of a chunked source;
* at predict, labels of another type than fit's (the strings "1", "2" for the integers 1,
  2) that leave most rows in unseen groups warn (GroupLabelWarning) naming the column and
  both dtypes; new groups of the fitted type, or a few odd rows, do not.
"""

import warnings

import numpy as np
import pandas as pd
import pytest

from skmixed import AdditiveMixed, GroupLabelWarning, MixedGLM, MixedLM
from skmixed.datasets import make_multilevel
from skmixed.sources import from_chunks

MIXED = r"the grouping column 'g' mixes label types \(int, str\), e.g. '1' and 2"


@pytest.fixture(scope="module")
def df():
    """600 rows in 30 groups labelled by the integers 1..30 (int64), a crossed factor h."""
    d = make_multilevel(600, 30, random_state=0)
    return d.assign(g=d["g"].astype(np.int64), h=np.arange(len(d)) % 7)


ESTIMATORS = {
    "MixedLM": (lambda: MixedLM(groups="g"), "y", ["g", "x", "b"]),
    "MixedGLM": (lambda: MixedGLM(groups="g"), "y_bin", ["g", "x", "b"]),
    "AdditiveMixed": (lambda: AdditiveMixed(groups="g"), "y", ["g", "x", "b"]),
    "MixedLM-several": (lambda: MixedLM(groups=["g", "h"]), "y", ["g", "h", "x", "b"]),
    "MixedGLM-several": (lambda: MixedGLM(groups=["g", "h"]), "y_bin", ["g", "h", "x", "b"]),
}


@pytest.fixture(scope="module", params=list(ESTIMATORS))
def fitted(request, df):
    make, target, cols = ESTIMATORS[request.param]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # boundary fits of h
        return make().fit(df[cols], df[target]), cols


def _predict(model, X):
    return (model.predict_proba(X)[:, 1] if hasattr(model, "predict_proba")
            else model.predict(X))


def test_string_labels_for_integer_groups_warn(fitted, df):
    """Every row silently lost its random effects."""
    model, cols = fitted
    X = df[cols].assign(g=df["g"].astype(str))
    with pytest.warns(GroupLabelWarning, match=r"100% of the rows have a 'g' label not seen "
                                               r"in fit.*here, int64 \(integer\) in fit"):
        pred = _predict(model, X)
    # what they get: the population level for g (h's modes still apply)
    population = df[cols].assign(g=df["g"] + 1000)
    np.testing.assert_allclose(pred, _predict(model, population), rtol=1e-12)
    with pytest.warns(GroupLabelWarning, match=r"'g' label.*str \(string\) here"):
        _predict(model, df[cols].assign(g=df["g"].astype(str).astype("category")))


def test_new_groups_of_the_fitted_type_do_not_warn(fitted, df):
    model, cols = fitted
    with warnings.catch_warnings():
        warnings.simplefilter("error", GroupLabelWarning)
        _predict(model, df[cols].assign(g=df["g"] + 1000))  # all unseen, same type
        floats = df["g"].astype(float)
        floats.iloc[:10] = 1.5  # another type, but most rows are seen groups
        _predict(model, df[cols].assign(g=floats))


def _other_kinds(g):
    """Review of issue 13: str + bytes ("1" and b"1": 50 groups instead of 40) and int +
    bool (True joins group 1, False becomes a group of its own) were not caught."""
    text = g.astype(str).astype(object)
    first = text[g != 1].iloc[0]
    return {"bytes": (text.where(g != 1, b"1"),
                      rf"mixes label types \(bytes, str\), e.g. {first!r} and b'1'"),
            "bool": (g.astype(object).where(g != 2, True),
                     rf"mixes label types \(bool, int\), e.g. True and {g[g != 2].iloc[0]}.*"
                     r"True joins 1")}


def test_mixed_type_labels_are_refused_at_predict(fitted, df):
    model, cols = fitted
    mixed = df["g"].astype(object).where(df["g"] != 1, "1")
    with pytest.raises(ValueError, match=MIXED):
        _predict(model, df[cols].assign(g=mixed))
    for labels, message in _other_kinds(df["g"]).values():
        with pytest.raises(ValueError, match=message):
            _predict(model, df[cols].assign(g=labels))


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_mixed_type_labels_are_refused_in_fit(df, name):
    """ "1" and 1 became two groups."""
    make, target, cols = ESTIMATORS[name]
    mixed = df["g"].astype(object).where(df["g"] != 1, "1")
    with pytest.raises(ValueError, match=MIXED + r".*astype\(str\)"):
        make().fit(df[cols].assign(g=mixed), df[target])
    categorical = pd.Series(pd.Categorical(mixed))  # categories 2..30 and "1", all used
    with pytest.raises(ValueError, match=MIXED):
        make().fit(df[cols].assign(g=categorical), df[target])


@pytest.mark.parametrize("kind", ["bytes", "bool"])
@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_text_and_bytes_or_numbers_and_booleans_are_refused_in_fit(df, name, kind):
    make, target, cols = ESTIMATORS[name]
    labels, message = _other_kinds(df["g"])[kind]
    with pytest.raises(ValueError, match=message + r".*astype\(str\)"):
        make().fit(df[cols].assign(g=labels), df[target])
    with pytest.raises(ValueError, match=message):
        MixedLM(groups=["h", ("g", "h")]).fit(df[["g", "h", "x"]].assign(g=labels), df["y"])


def test_mixed_type_labels_in_an_interaction(df):
    mixed = df["g"].astype(object).where(df["g"] != 1, "1")
    with pytest.raises(ValueError, match=MIXED):
        MixedLM(groups=["h", ("g", "h")]).fit(df[["g", "h", "x"]].assign(g=mixed), df["y"])


def test_mixed_type_labels_across_chunks(df):
    """Each chunk has one type, the source two (object columns both: the sources refuse
    columns of different dtype kinds across chunks already)."""
    frame = df[["g", "x", "b", "y"]]
    chunks = [frame.iloc[:300].assign(g=frame["g"].iloc[:300].astype(object)),
              frame.iloc[300:].assign(g=frame["g"].iloc[300:].astype(str).astype(object))]
    with pytest.raises(ValueError, match=r"the grouping column 'g' mixes label types"):
        MixedLM(groups="g").fit(from_chunks(chunks, "y", progress=False))
    with pytest.raises(ValueError, match=r"the grouping column 'g' mixes label types"):
        AdditiveMixed(groups="g").fit(from_chunks(chunks, "y", progress=False))


def test_missing_labels_are_still_named_as_missing(df):
    mixed = df["g"].astype(object).where(df["g"] != 1, "1")
    mixed.iloc[5] = None
    with pytest.raises(ValueError, match="'g'.*contains NaN, infinity or missing labels"):
        MixedLM(groups="g").fit(df[["g", "x"]].assign(g=mixed), df["y"])


def test_unused_categories_of_another_type_are_fine(df):
    g = pd.Categorical(df["g"], categories=[*range(1, 31), "spare"])
    MixedLM(groups="g").fit(df[["g", "x"]].assign(g=g), df["y"])
