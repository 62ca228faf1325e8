"""The Python examples of the README and of the documentation pages run as written.

Every ```` ```python ```` block of ``README.md`` and ``docs/**/*.md`` runs on its own, in a
fresh namespace (a block written ```` ```py ```` is shown, not run: it needs files outside
a clone). A README block must fit a model; every fitted model a block leaves behind must
have converged. A block that appears on several pages runs once.
"""

import re

import pytest

from conftest import REPO_ROOT

PAGES = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").rglob("*.md"))]


def python_blocks(path):
    return re.findall(r"```python\n(.*?)```", path.read_text(), re.S)


def collect():
    seen, blocks = set(), []
    for page in PAGES:
        name = page.relative_to(REPO_ROOT).as_posix()
        for i, code in enumerate(python_blocks(page)):
            if code not in seen:
                seen.add(code)
                blocks.append(pytest.param(name, code, id=f"{name}:block{i}"))
    return blocks


BLOCKS = collect()


def test_readme_has_examples():
    # one example per estimator (MixedLM, MixedGLM, AdditiveMixed) and one of the formulas
    assert len(python_blocks(REPO_ROOT / "README.md")) >= 4


def test_readme_keeps_the_two_commands():
    # .ci/run runs the second; the first is the main job
    readme = (REPO_ROOT / "README.md").read_text()
    start = readme.split("## Start here", 1)[1]
    assert "pip install . && python -m skmixed.study" in start
    assert 'pip install ".[test]" && python -m pytest' in start


@pytest.mark.parametrize("page, code", BLOCKS)
def test_example_runs(page, code, capsys):
    namespace = {}
    exec(compile(code, page, "exec"), namespace)
    fitted = [v for v in namespace.values() if hasattr(v, "converged_")]
    if page == "README.md":
        assert fitted
    assert all(m.converged_ for m in fitted)
