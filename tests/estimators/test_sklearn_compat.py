"""skmixed/_estimators/_sklearn_compat.py: the only module importing private scikit-learn
names, and fallbacks that behave as sklearn's (so a release that moves them costs one file)."""

import ast
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.utils._param_validation import InvalidParameterError as SklearnInvalidParameter

from skmixed import AdditiveMixed, MixedGLM, MixedLM
from skmixed._estimators import _sklearn_compat as compat

REPO_ROOT = Path(__file__).resolve().parents[2]
COMPAT = Path("skmixed/_estimators/_sklearn_compat.py")


def _private_sklearn_imports(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (
                node.module.split(".")[0] == "sklearn"):
            parts = node.module.split(".")
            for alias in node.names:
                if alias.name.startswith("_") or any(p.startswith("_") for p in parts):
                    yield f"{path.relative_to(REPO_ROOT)}:{node.lineno} {node.module}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "sklearn" and any(p.startswith("_") for p in parts):
                    yield f"{path.relative_to(REPO_ROOT)}:{node.lineno} {alias.name}"


def test_private_sklearn_names_only_in_the_compat_module():
    found = [hit for path in sorted((REPO_ROOT / "skmixed").rglob("*.py"))
             if path.relative_to(REPO_ROOT) != COMPAT
             for hit in _private_sklearn_imports(path)]
    assert not found, f"import these through {COMPAT}: {found}"


def test_installed_sklearn_provides_the_private_names():
    """A tested scikit-learn still has them: the fallbacks are for a future release."""
    assert compat.SKLEARN_PRIVATE_API
    assert compat.InvalidParameterError is SklearnInvalidParameter


# Values that exercise every kind of constraint the estimators declare.
CANDIDATES = [None, True, False, 0, 1, -1, -2, 3, 4, 50, 51, 1000, 0.0, 0.5, -0.5, 1e-8,
              "auto", "bogus", "unstructured", "diagonal", "binomial", "gaussian", "exact",
              "g", "x", [], ["x"], (), ("x",), {}, {"g": "x"}, np.int64(7), np.float64(0.1)]


@pytest.mark.parametrize("estimator", [MixedLM(), MixedGLM(), AdditiveMixed()],
                         ids=lambda e: type(e).__name__)
def test_fallback_validation_accepts_and_rejects_as_sklearn(estimator):
    for name in estimator._parameter_constraints:
        for value in CANDIDATES:
            est = estimator.__class__(**{name: value})
            try:
                est._validate_params()
                sklearn_ok = True
            except SklearnInvalidParameter:
                sklearn_ok = False
            try:
                compat._validate_parameters(est)
                fallback_ok = True
            except compat._InvalidParameterError as exc:
                fallback_ok = False
                assert repr(name) in str(exc)
            assert fallback_ok == sklearn_ok, (type(estimator).__name__, name, value)


def test_fallback_fit_context_validates_before_fitting():
    calls = []

    class Estimator(MixedLM):
        @compat._fit_context_fallback(prefer_skip_nested_validation=True)
        def fit(self, X, y=None):
            calls.append(X)
            return self

    Estimator(tol=1.0).fit("X")
    with pytest.raises(ValueError, match="'tol' parameter of Estimator"):
        Estimator(tol=-1.0).fit("X")
    assert calls == ["X"]


@pytest.mark.parametrize("weights", [None, 2.0, [1, 2, 3], np.array([0.0, 1.5, 2.0])])
def test_fallback_sample_weight_as_sklearn(weights):
    X = np.empty((3, 0))
    expected = compat._check_sample_weight(weights, X, dtype=np.float64)
    got = compat._check_sample_weight_fallback(weights, X, dtype=np.float64)
    np.testing.assert_array_equal(got, expected)
    assert got.dtype == expected.dtype


@pytest.mark.parametrize("weights", [[1, 2], [[1, 2, 3]], [1, -1, 1]])
def test_fallback_sample_weight_rejects_as_sklearn(weights):
    X = np.empty((3, 0))
    with pytest.raises(ValueError):
        compat._check_sample_weight(weights, X, ensure_non_negative=True)
    with pytest.raises(ValueError):
        compat._check_sample_weight_fallback(weights, X, ensure_non_negative=True)


@pytest.mark.parametrize("columns", [["a", "b"], [0, 1], ["a", 1]])
def test_fallback_feature_names_as_sklearn(columns):
    X = pd.DataFrame(np.zeros((2, 2)), columns=columns)
    try:
        expected = compat._get_feature_names(X)
    except TypeError:
        with pytest.raises(TypeError, match="only supported if all input features"):
            compat._get_feature_names_fallback(X)
        return
    got = compat._get_feature_names_fallback(X)
    if expected is None:
        assert got is None
    else:
        np.testing.assert_array_equal(got, expected)


FUTURE_SKLEARN = """
# A scikit-learn without sklearn.base._fit_context: sklearn's own fitted classes already hold
# the decorator, so taking the name away is enough to make skmixed's import of it fail.
import sklearn.base, sklearn.metrics

del sklearn.base._fit_context
import numpy as np
from skmixed import MixedLM
from skmixed._estimators import _sklearn_compat as compat
from skmixed.datasets import make_multilevel
assert not compat.SKLEARN_PRIVATE_API
df = make_multilevel(300, 20, random_state=0)
model = MixedLM(groups="g").fit(df[["x", "g"]], df["y"], sample_weight=np.ones(300))
assert np.isfinite(model.coef_).all()
try:
    MixedLM(groups="g", tol=-1.0).fit(df[["x", "g"]], df["y"])
except ValueError as exc:
    assert "'tol' parameter of MixedLM" in str(exc), exc
else:
    raise AssertionError("a negative tol was accepted")
print("fallbacks ok")
"""


def test_skmixed_works_when_sklearn_moves_its_private_names():
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}
    run = subprocess.run([sys.executable, "-c", FUTURE_SKLEARN], capture_output=True,
                         text=True, env=env, cwd=REPO_ROOT, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "fallbacks ok" in run.stdout
