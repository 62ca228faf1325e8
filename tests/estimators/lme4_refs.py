"""Helpers shared by the lme4 agreement tests: the data sets of tests/data, reading
jsonlite's NA, VarCorr look-ups, the comparison of conditional modes."""

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class DataSet:
    """A data file (``file`` as named to conftest's ``data_file``), read with pandas, then
    ``prepare``d (if given); ``group`` becomes categorical."""

    file: str
    group: str
    columns: tuple = None  # read only these (the 200,000-row study has unused columns)
    prepare: object = None


def cached_loader(data_file, data_sets):
    """``load(name) -> DataFrame`` for the :class:`DataSet` ``data_sets[name]``, each file
    read once; ``data_file(file) -> Path`` is conftest's fixture (it skips, or fails, when
    the large study data are absent)."""
    cache = {}

    def load(name):
        if name not in cache:
            spec = data_sets[name]
            usecols = list(spec.columns) if spec.columns else None
            frame = pd.read_csv(data_file(spec.file), usecols=usecols)
            if spec.prepare is not None:
                frame = spec.prepare(frame)
            frame[spec.group] = frame[spec.group].astype("category")
            cache[name] = frame
        return cache[name]

    return load


def missing(value):
    """lme4's NA as written by jsonlite: ``null`` (None), ``{}`` or a float NaN."""
    return (value is None or value == {}
            or (isinstance(value, float) and math.isnan(value)))


def label(value):
    """A reference label as a string, None for NA."""
    return None if missing(value) else str(value)


def ref_term_sd(ref, term):
    """The SD of random-effect ``term`` in a reference entry (the scale of its modes)."""
    for row in ref["varcorr"]:
        if row["grp"] != "Residual" and row["var1"] == term and missing(row["var2"]):
            return row["sdcor"]
    raise KeyError(f"no variance component for random-effect term {term!r}")


def assert_conditional_modes(model, ref, full_table, mode_tol_in_sds, cond_sd_rtol, diagnosis):
    """``random_effects_`` against lme4's ``ranef`` rows (matched by term and level as text):
    modes within ``mode_tol_in_sds`` × the term's SD, conditional SDs within
    ``cond_sd_rtol``. ``full_table``: the reference lists every group (not only the first
    rows), so the counts must match too."""
    ours = model.random_effects_.assign(level=lambda d: d["level"].astype(str))
    ours = ours.set_index(["term", "level"])
    expected = pd.DataFrame(ref["ranef"]).set_index(["term", "grp"])
    if full_table:
        assert len(ours) == len(expected)
    assert expected.index.isin(ours.index).all()
    got = ours.loc[expected.index]
    for term, rows in expected.groupby(level="term"):
        atol = mode_tol_in_sds * ref_term_sd(ref, term)
        worst = np.max(np.abs(got.loc[rows.index, "mode"] - rows["condval"]))
        np.testing.assert_allclose(
            got.loc[rows.index, "mode"], rows["condval"], rtol=0, atol=atol,
            err_msg=f"modes of {term}: worst {worst:.3g} (tolerance {atol:.3g})\n"
            + diagnosis)
        np.testing.assert_allclose(got.loc[rows.index, "cond_sd"], rows["condsd"],
                                   rtol=cond_sd_rtol, atol=0,
                                   err_msg=f"conditional SDs of {term}\n" + diagnosis)
