"""Every third-party module skmixed imports belongs to a distribution pyproject.toml declares.

Import names are mapped to distributions as :func:`importlib.metadata.packages_distributions`
does on Python 3.11+ (``sklearn`` -> ``scikit-learn``), so the test needs the imported packages installed — the
``test`` extra installs every optional one. A module-level import (run by ``import skmixed``
or by importing the module) must be a core dependency; the optional features (plots, Parquet,
dask, the R data sets) import theirs inside the functions that need them.
"""

import ast
import functools
import importlib.metadata
import inspect
import re
import sys
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the test extra installs tomli
    import tomli as tomllib

REPO_ROOT = Path(__file__).resolve().parents[1]
PACKAGE_DIR = REPO_ROOT / "skmixed"
# Extras for working on skmixed, not features of it: an import served only by these is a bug.
TOOL_EXTRAS = {"test", "docs"}


def _canonical(name):
    """PEP 503 name: lower case, runs of ``-_.`` as one ``-``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(requirement):
    return _canonical(re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement).group(1))


def _declared():
    """(core distributions, distributions of the feature extras), canonical names."""
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    core = {_requirement_name(r) for r in project["dependencies"]}
    extras = {_requirement_name(r)
              for name, reqs in project["optional-dependencies"].items()
              if name not in TOOL_EXTRAS for r in reqs}
    return core, extras - {"skmixed"}


def _imports(tree):
    """(top-level name, line, at module level) of every absolute import in ``tree``;
    "module level" excludes imports inside functions (run only when called)."""
    found = []

    def visit(node, in_function):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                found.extend((a.name.split(".")[0], child.lineno, not in_function)
                             for a in child.names)
            elif isinstance(child, ast.ImportFrom) and child.level == 0:
                found.append((child.module.split(".")[0], child.lineno, not in_function))
            visit(child, in_function or isinstance(
                child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))

    visit(tree, False)
    return found


def _third_party_imports():
    """{(import name, at module level): [path:line, ...]} over skmixed/."""
    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    where = {}
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for name, line, module_level in _imports(tree):
            if name in stdlib or name == "skmixed":
                continue
            rel = path.relative_to(REPO_ROOT)
            where.setdefault((name, module_level), []).append(f"{rel}:{line}")
    return where


@functools.cache
def _packages_distributions():
    """{import name: [distribution names]}: ``packages_distributions`` with the fallback
    Python 3.11 added — the top-level names of the files a distribution installed, for
    wheels without ``top_level.txt`` (numpy's and scikit-learn's, built with meson), which
    Python 3.10's version leaves out."""
    mapping = {}
    for dist in importlib.metadata.distributions():
        names = set((dist.read_text("top_level.txt") or "").split())
        for file in dist.files or ():
            top = file.parts[0] if len(file.parts) > 1 else inspect.getmodulename(str(file))
            if top and "." not in top:
                names.add(top)
        for name in names:
            mapping.setdefault(name, []).append(dist.metadata["Name"])
    return mapping


def _distributions(import_name):
    dists = _packages_distributions().get(import_name)
    if not dists:
        pytest.fail(f"{import_name!r} is imported by skmixed but no installed distribution "
                    "provides it: install the test extra, or declare the package and "
                    "install it", pytrace=False)
    return {_canonical(d) for d in dists}


def test_the_scan_sees_skmixeds_imports():
    names = {name for name, _ in _third_party_imports()}
    assert {"numpy", "scipy", "sklearn", "numba", "pandas", "threadpoolctl"} <= names


def test_every_import_is_declared():
    core, extras = _declared()
    undeclared = {}
    for (name, _), places in _third_party_imports().items():
        if not _distributions(name) & (core | extras):
            undeclared.setdefault(name, []).extend(places)
    assert not undeclared, (
        "imported by skmixed but not declared in pyproject.toml (dependencies or a feature "
        f"extra; the test and docs extras do not count): {undeclared}")


def test_module_level_imports_are_core_dependencies():
    """``pip install skmixed`` without extras must be able to import every module."""
    core, _ = _declared()
    optional_at_import = {}
    for (name, module_level), places in _third_party_imports().items():
        if module_level and not _distributions(name) & core:
            optional_at_import.setdefault(name, []).extend(places)
    assert not optional_at_import, (
        "imported when the module is imported, but only in an optional extra: import it "
        f"inside the function that needs it, or make it a dependency: {optional_at_import}")


def test_all_extra_covers_every_feature_extra():
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    features = set(extras) - TOOL_EXTRAS - {"all"}
    (spec,) = extras["all"]
    listed = set(re.fullmatch(r"skmixed\[([^\]]*)\]", spec).group(1).split(","))
    assert listed == features
