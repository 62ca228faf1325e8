"""The documentation builds (``mkdocs build --strict``, as .ci/run builds it) and its API
page renders every cross-reference and lists every public name.

mkdocs and mkdocstrings are in the ``test`` extra, so this never skips in CI (with
``SKMIXED_REQUIRE_REFERENCES=1`` a missing package fails it).
"""

import importlib
import re
import subprocess
import sys

import pytest

from conftest import REPO_ROOT, require_package

PUBLIC_MODULES = ["skmixed", "skmixed.formula", "skmixed.exceptions", "skmixed.families",
                  "skmixed.datasets", "skmixed.sources", "skmixed.plots", "skmixed.study"]
# a reST role left as text (Markdown renders its target as <code>…</code> after it)
REST_ROLE = re.compile(r":(?:py:)?(?:class|func|meth|mod|attr|data|exc|obj):(?:`|<code>)")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    require_package("mkdocs", "docs")
    require_package("mkdocstrings_handlers.python", "docs")
    out = tmp_path_factory.mktemp("site")
    run = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet",
                          "--site-dir", str(out)], cwd=REPO_ROOT, capture_output=True,
                         text=True)
    assert run.returncode == 0, f"mkdocs build --strict failed:\n{run.stdout}\n{run.stderr}"
    return out


def test_no_rest_roles_in_any_page(site):
    pages = sorted(site.rglob("*.html"))
    assert (site / "api" / "index.html") in pages
    raw = {page.relative_to(site).as_posix(): sorted(set(REST_ROLE.findall(page.read_text())))
           for page in pages}
    assert not {page: roles for page, roles in raw.items() if roles}


def test_no_sources_in_the_site(site):
    assert not list(site.rglob("*.py"))


def test_api_page_lists_every_public_name(site):
    html = (site / "api" / "index.html").read_text()
    anchors = set(re.findall(r'id="(skmixed[\w.]*)"', html))
    rendered = {}
    for anchor in anchors:  # the objects behind the anchors: a re-export is found by identity
        module, _, name = anchor.rpartition(".")
        if module in PUBLIC_MODULES:
            rendered[anchor] = getattr(importlib.import_module(module), name, None)
    missing = []
    for module in PUBLIC_MODULES:
        mod = importlib.import_module(module)
        for name in mod.__all__:
            obj = getattr(mod, name)
            if f"{module}.{name}" in anchors:
                continue
            if isinstance(obj, type) or callable(obj):
                if any(target is obj for target in rendered.values()):
                    continue
            missing.append(f"{module}.{name}")
    assert not missing, f"not on the API page (docs/api.md): {missing}"
