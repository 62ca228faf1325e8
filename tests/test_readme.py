"""The README's Python examples run as written."""

import re

import pytest

from conftest import REPO_ROOT

BLOCKS = re.findall(r"```python\n(.*?)```", (REPO_ROOT / "README.md").read_text(), re.S)


def test_readme_has_examples():
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("code", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_readme_example_runs(code, capsys):
    namespace = {}
    exec(compile(code, "README.md", "exec"), namespace)
    fitted = [v for v in namespace.values() if hasattr(v, "converged_")]
    assert fitted and all(m.converged_ for m in fitted)
