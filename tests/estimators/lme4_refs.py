"""Helpers shared by the lme4 agreement tests: reading jsonlite's NA, VarCorr look-ups."""

import math


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
