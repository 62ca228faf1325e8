"""Responses that put a coefficient of a binomial or Poisson model at infinity: no success
or no failure at all (an error), and a fixed column that alone separates successes from
failures (a warning naming it) — found before the fit, in one O(n) pass per column."""

import warnings

import numpy as np

from ..exceptions import PerfectSeparationWarning
from .identifiability import boundary_response_error

__all__ = ["check_separation", "separating_columns"]


def separating_columns(columns, labels, success, failure):
    """Fixed columns that on their own (with the intercept) separate the rows with a success
    from the rows with a failure: all successes on one side of a threshold, all failures on
    the other (ties at the threshold: quasi-complete separation). Such a coefficient has an
    infinite maximum-likelihood estimate (Albert & Anderson 1984). One O(n) pass per column;
    separation by a combination of columns is not detected here (it needs a linear program).

    Returns ``(label, kind, side, threshold)`` tuples; ``side`` is ">=" when the successes
    lie at or above the threshold.
    """
    found = []
    for col, label in zip(columns, labels):
        col = np.asarray(col, dtype=np.float64)
        xs, xf = col[success], col[failure]
        lo_s, hi_s, lo_f, hi_f = xs.min(), xs.max(), xf.min(), xf.max()
        if min(lo_s, lo_f) == max(hi_s, hi_f):  # constant: dropped as the intercept's twin
            continue
        if hi_f <= lo_s:
            found.append((label, "complete" if hi_f < lo_s else "quasi-complete", ">=",
                          lo_s))
        elif hi_s <= lo_f:
            found.append((label, "complete" if hi_s < lo_f else "quasi-complete", "<=",
                          hi_s))
    return found



def check_separation(family, design, y, w, trials, classes):
    """Refuse a y without successes or without failures; warn when a fixed-effect
    column alone separates successes from failures (its coefficient's estimate is
    infinite). Rows with zero weight do not count. ``classes``: a binary classifier's
    two labels (None for successes out of trials and counts); ``design``: the fixed
    columns and their labels."""
    rows = w > 0 if w.size else slice(None)
    y_pos, m_pos = y[rows], (trials[rows] if trials is not None else None)
    if family.kind == "positive":
        if np.ptp(y_pos) == 0:
            weighted = " with positive sample_weight" if w.size else ""
            raise ValueError(f"y has the same value in every row{weighted}: a Gamma "
                             "model's dispersion would be 0.")
        return
    if classes is not None:
        success, failure = y_pos > 0, y_pos == 0
        s_text, f_text = (f"y = {c!r}" for c in classes.tolist()[::-1])
    elif family.kind == "proportion":
        success, failure = y_pos > 0, y_pos < m_pos
        s_text, f_text = "a success", "a failure"
    else:  # Poisson: every row could have a lower count
        success, failure = y_pos > 0, np.ones(y_pos.shape[0], dtype=bool)
        s_text = f_text = None
    if not success.any() or not failure.any():
        what = ("no success (y is 0 in every row)" if not success.any()
                else "no failure (y equals the trials in every row)")
        if classes is not None:
            present = classes.tolist()[1 if success.any() else 0]
            what = f"only the class {present!r}"
        elif family.kind == "count":
            what = "only zero counts"
        raise boundary_response_error(what, bool(w.size))
    weighted = " with positive sample_weight" if w.size else ""
    columns = [np.asarray(c)[rows] for c in design.columns]
    for label, kind, side, threshold in separating_columns(
            columns, design.fixed_labels, success, failure):
        if family.kind == "count":
            where = (f"every row with a positive count has {label!r} = {threshold:g}, "
                     f"the column's {'largest' if side == '>=' else 'smallest'} value")
        else:
            where = (f"the fixed-effect column {label!r} alone separates the rows with "
                     f"{s_text} (all {side} {threshold:g}) from the rows with {f_text}")
        warnings.warn(
            f"{kind} separation: {where}{weighted}. The maximum-likelihood estimate of "
            "its coefficient is infinite: the fit stops at an arbitrary large value, with "
            "meaningless standard errors and fitted probabilities (or means) near their "
            "bounds. Drop or recode the column (e.g. merge rare levels).",
            PerfectSeparationWarning, stacklevel=4)
