"""The package's layers: imports only go down (docs/contributing.md), also inside functions.

From the top: the estimators (``skmixed._estimators``), the models (``skmixed._model``), the
Numba kernels (``skmixed._kernels``), the families (``skmixed.families``), and at the bottom
the kernels' disk cache (``skmixed._cache``), which every compiled function goes through.
"""

import ast
from pathlib import Path

import pytest

import skmixed

PACKAGE = Path(skmixed.__file__).parent
LAYERS = ["_estimators", "_model", "_kernels", "families", "_cache"]


def _layer(module):
    """The layer of a dotted module name of the package, or None."""
    parts = module.split(".")
    if parts[0] != "skmixed" or len(parts) < 2:
        return None
    return LAYERS.index(parts[1]) if parts[1] in LAYERS else None


def _imported(path):
    """The dotted names of the package's modules that ``path`` imports, with line numbers."""
    # a module's relative imports start from its package (an __init__'s: from itself)
    package = ".".join(("skmixed", *path.relative_to(PACKAGE).parent.parts))
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module
            # `from . import x` imports the module x
            out += [(f"{module}.{alias.name}", node.lineno) for alias in node.names]
    return out


def _modules():
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def test_the_layers_are_found():
    layers = {_layer(".".join(("skmixed", *p.relative_to(PACKAGE).with_suffix("").parts)))
              for p in _modules()}
    assert set(range(len(LAYERS))) <= layers


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_only_go_down(path):
    own = _layer(".".join(("skmixed", *path.relative_to(PACKAGE).with_suffix("").parts)))
    if own is None:
        return
    upward = [f"line {line}: {name}" for name, line in _imported(path)
              if _layer(name) is not None and _layer(name) < own]
    assert upward == [], f"{path.name} ({LAYERS[own]}) imports from a layer above it"
