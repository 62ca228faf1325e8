"""Shared fixtures: where ``../shared`` is, and the lme4/mgcv reference numbers in it.

The reference files live beside the repository (``<repo>/../shared``), never inside it.
Tests that need them skip with a clear reason when the folder is absent (CI always has it).
"""

import json
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / "shared"
REFERENCE_DIR = SHARED / "reference"
DATA_DIR = SHARED / "data"


def _require(path):
    if not path.exists():
        pytest.skip(
            f"{path} not found: the lme4/mgcv reference files live in ../shared beside the "
            "repository (present in CI)"
        )
    return path


@pytest.fixture(scope="session")
def shared_data_dir():
    """Folder of the shared data files; skips when ``../shared`` is absent."""
    return _require(DATA_DIR)


@pytest.fixture(scope="session")
def load_reference():
    """Return a loader ``load_reference(name) -> dict`` for ``../shared/reference/<name>``."""

    def load(name):
        return json.loads(_require(REFERENCE_DIR / name).read_text())

    return load
