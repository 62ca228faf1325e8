"""Shared fixtures: the data sets and the lme4/mgcv/glmmTMB reference numbers.

The small data sets are in ``tests/data`` and the reference JSONs, with the R scripts that
wrote them, in ``tests/reference`` (its README lists them), so a clone runs every agreement
test. Only the 200,000-row study data (``study_2e5.csv.gz``, 7 MB) stays out of the
repository, in ``../shared/data`` beside it; the tests that read it skip with the reason when
it is absent. With the environment variable ``SKMIXED_REQUIRE_REFERENCES=1`` (``.ci/run``
sets it) such a skip is a failure instead, as is a missing package of the ``test`` extra
(:func:`require_package`): a run that should check everything cannot pass having checked less.
"""

import importlib
import inspect
import json
import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = REPO_ROOT / "tests" / "data"
REFERENCE_DIR = REPO_ROOT / "tests" / "reference"
LARGE_DATA_DIR = REPO_ROOT.parent / "shared" / "data"
LARGE_DATA = {"study_2e5.csv.gz"}  # too large for the repository: read from LARGE_DATA_DIR
REQUIRE_ENV = "SKMIXED_REQUIRE_REFERENCES"


def references_required():
    """True when ``SKMIXED_REQUIRE_REFERENCES`` is set to anything but empty or ``0``."""
    return os.environ.get(REQUIRE_ENV, "").strip() not in ("", "0")


def skip_or_fail(reason):
    """Skip the test for ``reason`` (something it needs is absent), or fail it when
    ``SKMIXED_REQUIRE_REFERENCES`` is set."""
    if references_required():
        pytest.fail(f"{reason} [{REQUIRE_ENV}=1 makes this a failure, not a skip]",
                    pytrace=False)
    pytest.skip(reason)


def data_path(name):
    """The data file ``name``: ``tests/data/<name>``, or for the large study data
    ``../shared/data/<name>`` (:func:`skip_or_fail` when that is absent)."""
    if name not in LARGE_DATA:
        return DATA_DIR / name
    path = LARGE_DATA_DIR / name
    if not path.is_file():
        skip_or_fail(
            f"{path} not found: the 200,000-row study data is kept out of the repository, "
            "in ../shared/data beside it; `Rscript tests/reference/study_sim.R 200000 200 "
            f"{path}` writes it (see tests/reference/README.md)")
    return path


def _strict_checks():
    """Keyword arguments for ``parametrize_with_checks``: ``xfail_strict=True`` where
    scikit-learn has it (1.8+), so an expected failure that starts passing fails the run and
    the lists cannot go stale; older releases (Python 3.10's newest is 1.7) run the same
    checks without it."""
    from sklearn.utils.estimator_checks import parametrize_with_checks

    return ({"xfail_strict": True}
            if "xfail_strict" in inspect.signature(parametrize_with_checks).parameters else {})


#: ``@parametrize_with_checks([...], expected_failed_checks=..., **STRICT_CHECKS)``
STRICT_CHECKS = _strict_checks()


def require_package(module, extra):
    """Import and return ``module``, a package of the ``test`` extra (and of ``extra``):
    :func:`skip_or_fail` when it is not installed."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        skip_or_fail(f"{module} is not installed (pip install '.[{extra}]'): {exc}")


@pytest.fixture(scope="session")
def data_file():
    """``data_file(name) -> Path``: see :func:`data_path`."""
    return data_path


@pytest.fixture(scope="session")
def gamsim1():
    """mgcv's gamSim(1) data with a grouping factor (``tests/data/gamsim1.csv``, made by
    tests/reference/make_ref.R), read once: tests must not change it."""
    import pandas as pd

    return pd.read_csv(data_path("gamsim1.csv"))


@pytest.fixture(scope="session")
def load_reference():
    """``load_reference(name) -> dict``: the JSON ``tests/reference/<name>``."""

    def load(name):
        return json.loads((REFERENCE_DIR / name).read_text())

    return load
