"""The agreement tests carry their own references: R's numbers (``tests/reference``, each
JSON with the script that wrote it, listed in its README) and the data sets
(``tests/data``) are in the repository; only the large study data come from ``../shared``,
and ``SKMIXED_REQUIRE_REFERENCES=1`` (set by ``.ci/run``) turns a skip for anything
missing into a failure."""

import json
import re

import pytest

import conftest
from conftest import (DATA_DIR, LARGE_DATA, REFERENCE_DIR, REPO_ROOT, REQUIRE_ENV, data_path,
                      require_package)


def readme_table():
    """``{json: (scripts, data)}`` from the rows of tests/reference/README.md's table."""
    rows = {}
    for line in (REFERENCE_DIR / "README.md").read_text().splitlines():
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        if cells and cells[0].endswith(".json"):
            rows[cells[0]] = (re.findall(r"\w+\.R\b", cells[1]),
                              re.findall(r"\w+\.csv(?:\.gz)?", cells[2]))
    return rows


def test_every_reference_is_listed_with_the_script_that_made_it():
    table = readme_table()
    assert sorted(table) == sorted(p.name for p in REFERENCE_DIR.glob("*.json"))
    assert all(made_by for made_by, _ in table.values())
    scripts = {s for made_by, _ in table.values() for s in made_by}
    assert scripts <= {p.name for p in REFERENCE_DIR.glob("*.R")}
    readme = (REFERENCE_DIR / "README.md").read_text()
    assert all(p.name in readme for p in REFERENCE_DIR.glob("*.R"))  # study_sim.R: the data
    for path in REFERENCE_DIR.glob("*.json"):
        assert isinstance(json.loads(path.read_text()), dict), path.name


def test_the_data_of_every_reference_are_in_the_repository_but_the_large_study():
    named = {csv for _, data in readme_table().values() for csv in data}
    assert named - LARGE_DATA == {p.name for p in DATA_DIR.iterdir()}
    for name in named - LARGE_DATA:
        assert data_path(name) == DATA_DIR / name and data_path(name).stat().st_size > 0


@pytest.mark.parametrize("setting", ["", "0", "1"])
def test_missing_large_data_skips_or_fails(monkeypatch, tmp_path, setting):
    monkeypatch.setattr(conftest, "LARGE_DATA_DIR", tmp_path)
    monkeypatch.setenv(REQUIRE_ENV, setting)
    outcome = pytest.fail.Exception if setting == "1" else pytest.skip.Exception
    with pytest.raises(outcome, match=r"study_2e5\.csv\.gz not found.*study_sim\.R"):
        data_path("study_2e5.csv.gz")
    (tmp_path / "study_2e5.csv.gz").write_bytes(b"present")
    assert data_path("study_2e5.csv.gz") == tmp_path / "study_2e5.csv.gz"


@pytest.mark.parametrize("setting", ["", "1"])
def test_missing_test_package_skips_or_fails(monkeypatch, setting):
    monkeypatch.setenv(REQUIRE_ENV, setting)
    outcome = pytest.fail.Exception if setting == "1" else pytest.skip.Exception
    with pytest.raises(outcome, match=r"skmixed_absent_module is not installed.*\.\[test\]"):
        require_package("skmixed_absent_module", "test")
    assert require_package("json", "test") is json


def test_ci_requires_every_reference():
    ci = (REPO_ROOT / ".ci" / "run").read_text()
    assert re.search(rf"^export {REQUIRE_ENV}=1$", ci, re.M)
