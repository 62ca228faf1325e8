"""The specification of a grouped model: its fixed columns and its grouping factors (one or
several, nested or crossed), each with its random-effect term. One type whatever the number
of factors: a single factor is a `ModelSpec` with one `Factor`."""

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .terms import RandomEffectTerm

__all__ = ["Factor", "ModelSpec"]


@dataclass
class Factor:
    """One grouping factor: its name (lme4's: ``g``, or ``b:a`` for an interaction), the
    column(s) of X it is made of (``labels``, and their ``positions`` in X, so that predict
    finds them in an array after a DataFrame fit and the reverse), the rows' level codes,
    the levels, and its random slopes (positions within the fixed columns, names) and
    covariance structure."""

    name: str
    labels: tuple
    positions: tuple
    codes: np.ndarray
    levels: pd.Index
    slope_pos: np.ndarray
    slope_names: list
    covariance: str

    @property
    def term(self):
        return RandomEffectTerm(tuple(["(Intercept)"] + list(self.slope_names)),
                                self.covariance)


@dataclass
class ModelSpec:
    """The fixed-effect columns (labels and positions in X, names, the arrays without the
    intercept) and the grouping factors in the user's order."""

    fixed_labels: list
    fixed_names: list
    fixed_positions: list
    columns: list
    factors: list
