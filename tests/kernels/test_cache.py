"""The kernels' disk cache (``skmixed._cache``): damaged files heal, a read-only
install imports and fits, a folder other users can write to is refused, and the folder is
keyed by the skmixed and Numba versions.

The end-to-end tests run a small ``MixedLM`` fit (with the code-generated row pass, so both
the package's kernels and a generated module are cached) in a subprocess whose
``SKMIXED_CACHE_DIR`` and ``NUMBA_CACHE_DIR`` are under ``tmp_path``: the user's cache is
never touched.
"""

import importlib
import json
import os
import pkgutil
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numba
import numpy as np
import pytest
from numba.core.dispatcher import Dispatcher

import skmixed
from skmixed import _cache as cache
from skmixed._kernels import codegen, glmm_codegen
from skmixed.families import BINOMIAL_LOGIT

REPO = Path(__file__).resolve().parents[2]

FIT = """
import json, sys, warnings
import numpy as np, pandas as pd
from numba.core.dispatcher import Dispatcher
import skmixed
from skmixed._kernels import crossprod
crossprod.SPECIALIZE_MIN_ROWS = 0  # the generated row pass even for 600 rows
rng = np.random.default_rng(0)
g = rng.integers(0, 30, 600)
x = rng.normal(size=600)
y = 1.0 + 0.5 * x + rng.normal(size=30)[g] + rng.normal(size=600)
warnings.simplefilter("always")
with warnings.catch_warnings(record=True) as caught:
    model = skmixed.MixedLM(groups="g").fit(pd.DataFrame({"g": g, "x": x}), y)
kernels = {id(v): v for name, m in list(sys.modules.items()) if name.startswith("skmixed")
           for v in vars(m).values() if isinstance(v, Dispatcher)}
print(json.dumps({
    "file": skmixed.__file__,
    "coef": model.coef_.tolist(), "theta": model.theta_.tolist(),
    "warnings": [f"{w.category.__name__}: {w.message}" for w in caught],
    "disk_hits": sum(sum(k.stats.cache_hits.values()) for k in kernels.values()),
}))
"""

# The first compilation opens the cache: one small kernel and a generated module's source.
TOUCH = """
import warnings
import numpy as np
from skmixed._kernels import codegen, dense
warnings.simplefilter("always")
codegen.crossprod_kernel(1, (0,), False)
dense.chol_lower(np.eye(2), np.zeros((2, 2)))
print("ok")
"""


def run_python(script, cwd, **env_vars):
    """Run ``script`` in a fresh interpreter (``cwd`` first on sys.path) with only the given
    cache variables set; return its stdout and stderr."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("SKMIXED_CACHE_DIR", "NUMBA_CACHE_DIR", "XDG_CACHE_HOME", "PYTHONPATH")}
    env.update({k: str(v) for k, v in env_vars.items()})
    proc = subprocess.run([sys.executable, "-c", script], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout, proc.stderr


def fit(cwd=REPO, **env_vars):
    stdout, _ = run_python(FIT, cwd, **env_vars)
    return json.loads(stdout.strip().splitlines()[-1])


def cache_warnings(result):
    return [w for w in result["warnings"] if w.startswith("KernelCacheWarning")]


def cache_env(folder):
    return {"SKMIXED_CACHE_DIR": folder / "skmixed", "NUMBA_CACHE_DIR": folder / "numba"}


@pytest.fixture(scope="module")
def warm(tmp_path_factory):
    """A cache folder filled by one fit, and that fit's result."""
    folder = tmp_path_factory.mktemp("warm")
    return folder, fit(**cache_env(folder))


def test_warm_cache_is_loaded_without_warnings(warm, tmp_path):
    folder, first = warm
    shutil.copytree(folder, tmp_path / "c")
    again = fit(**cache_env(tmp_path / "c"))
    assert again["warnings"] == first["warnings"] == []
    assert again["disk_hits"] > 0  # the machine code came from the disk
    assert again["coef"] == first["coef"] and again["theta"] == first["theta"]


def _empty(data):
    return b""


def _truncate(data):
    return data[:len(data) // 2]


def _flip_middle_byte(data):
    data = bytearray(data)
    data[len(data) // 2] ^= 0xFF
    return bytes(data)


def _garbage(data):
    return np.random.default_rng(1).bytes(300)


@pytest.mark.parametrize("pattern, damage", [
    ("crossprod_p1_*._kernel-*.nbi", _empty),      # generated kernel's index
    ("crossprod_p1_*._kernel-*.nbc", _truncate),   # generated kernel's machine code
    ("pls._pls_block-*.nbi", _truncate),           # a package kernel's index
    ("pls._pls_block-*.nbc", _flip_middle_byte),   # altered machine code (LLVM error before)
    ("crossprod_p1_*.py", _garbage),               # generated source (UnicodeDecodeError)
], ids=["empty-index", "truncated-data", "truncated-index", "altered-data", "garbage-source"])
def test_damaged_entry_is_compiled_again_with_one_warning(warm, tmp_path, pattern, damage):
    folder, first = warm
    shutil.copytree(folder, tmp_path / "c")
    damaged = list((tmp_path / "c").rglob(pattern))
    assert damaged, f"no cache file {pattern}"
    for path in damaged:
        path.write_bytes(damage(path.read_bytes()))
    healed = fit(**cache_env(tmp_path / "c"))
    assert healed["coef"] == first["coef"] and healed["theta"] == first["theta"]
    [warning] = healed["warnings"]
    assert warning.startswith("KernelCacheWarning") and damaged[0].name.split("-")[0] in warning
    # the entry was replaced: the next process loads it without a word
    again = fit(**cache_env(tmp_path / "c"))
    assert again["warnings"] == [] and again["coef"] == first["coef"]


def _copy_package_without_writable_cache(tmp_path):
    """A copy of the package where no ``__pycache__`` can be created (a file stands in its
    place) and a home whose ``.cache`` cannot be created: a read-only install and home, as
    far as Numba's and skmixed's caches can tell, even when the tests run as root."""
    root = tmp_path / "install"
    shutil.copytree(REPO / "skmixed", root / "skmixed",
                    ignore=shutil.ignore_patterns("__pycache__"))
    for package in [root / "skmixed", *(root / "skmixed").rglob("*")]:
        if package.is_dir():
            (package / "__pycache__").touch()
    home = tmp_path / "home"
    home.mkdir()
    (home / ".cache").touch()
    return root, home


def _files(folder):
    return sorted(p for p in folder.rglob("*"))


def test_read_only_install_imports_and_fits(warm, tmp_path):
    root, home = _copy_package_without_writable_cache(tmp_path)
    before = _files(tmp_path)
    result = fit(cwd=root, HOME=home)
    assert Path(result["file"]).is_relative_to(root)
    assert result["warnings"] == []
    assert result["coef"] == warm[1]["coef"]
    assert _files(tmp_path) == before  # compiled in memory, nothing written


def test_missing_home_compiles_in_memory(tmp_path):
    _, stderr = run_python(TOUCH, REPO, HOME=tmp_path / "no-such-home")
    assert "Warning" not in stderr
    assert not (tmp_path / "no-such-home").exists()


@pytest.mark.parametrize("mode", [0o777, 0o775, 0o757], ids=oct)
def test_cache_folder_writable_by_others_is_refused(tmp_path, mode):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(mode)
    stdout, stderr = run_python(TOUCH, REPO, SKMIXED_CACHE_DIR=shared)
    assert stdout.strip() == "ok"
    assert stderr.count("KernelCacheWarning") == 1
    assert f"folder {shared}:" in stderr and "chmod go-w" in stderr
    assert _files(shared) == []  # nothing read or written there


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0,
                    reason="giving a folder to another user needs root")
def test_cache_folder_of_another_user_is_refused(tmp_path):
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o700)
    os.chown(theirs, 65534, 65534)
    stdout, stderr = run_python(TOUCH, REPO, SKMIXED_CACHE_DIR=theirs)
    assert stdout.strip() == "ok"
    assert stderr.count("KernelCacheWarning") == 1
    assert f"folder {theirs}:" in stderr and "owned by user id 65534" in stderr
    assert _files(theirs) == []


@pytest.fixture
def cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("SKMIXED_CACHE_DIR", str(tmp_path / "kernels"))
    cache._checked_folder.cache_clear()
    yield tmp_path / "kernels"
    cache._checked_folder.cache_clear()


def test_cache_folder_is_private_and_keyed_by_versions(cache_dir, monkeypatch):
    folder = cache.cache_folder()
    assert folder == cache_dir / f"skmixed-{skmixed.__version__}_numba-{numba.__version__}"
    assert folder.stat().st_mode & 0o777 == 0o700
    # a new version of either gets a new folder, never reading the old one
    monkeypatch.setattr(numba, "__version__", "99.0")
    assert cache.cache_folder().name == f"skmixed-{skmixed.__version__}_numba-99.0"
    monkeypatch.setattr(skmixed, "__version__", "99.1")
    assert cache.cache_folder().name == "skmixed-99.1_numba-99.0"


def test_cache_folder_falls_back_to_numba_cache_dir_then_home(monkeypatch, tmp_path):
    monkeypatch.delenv("SKMIXED_CACHE_DIR", raising=False)
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "numba"))
    assert cache._root() == (tmp_path / "numba" / "skmixed", "NUMBA_CACHE_DIR")
    monkeypatch.delenv("NUMBA_CACHE_DIR")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert cache._root() == (tmp_path / ".cache" / "skmixed", None)
    monkeypatch.setenv("HOME", str(tmp_path / "absent"))
    assert cache._root() == (None, None)


@pytest.fixture
def fresh_warnings(monkeypatch):
    """cache_folder() checked afresh, its once-per-process warnings not yet given."""
    monkeypatch.setattr(cache, "_WARNED", set())
    cache._checked_folder.cache_clear()
    yield
    cache._checked_folder.cache_clear()


@pytest.mark.skipif(os.name != "posix", reason="folder modes")
def test_shared_folder_such_as_tmp_is_refused_with_a_private_folder_advised(
        fresh_warnings, monkeypatch, tmp_path):
    """Review of issue 13: ``SKMIXED_CACHE_DIR=/tmp`` advised ``chmod go-w /tmp``, which
    would break a folder every user relies on. A sticky folder writable by all gets the
    advice of a private folder; the one named works."""
    shared = tmp_path / "tmp"
    shared.mkdir()
    shared.chmod(0o1777)
    monkeypatch.setenv("SKMIXED_CACHE_DIR", str(shared))
    with pytest.warns(skmixed.KernelCacheWarning) as caught:
        assert cache.cache_folder() is None
        assert cache.cache_folder() is None
    [warning] = [str(w.message) for w in caught]
    private = shared / f"skmixed-{os.geteuid()}"
    assert f"folder {shared}:" in warning and "shared by all users" in warning
    assert "chmod" not in warning and f"e.g. {private}." in warning
    assert sorted(shared.iterdir()) == []
    monkeypatch.setenv("SKMIXED_CACHE_DIR", str(private))
    folder = cache.cache_folder()
    assert folder.parent == private and private.stat().st_mode & 0o777 == 0o700


@pytest.mark.parametrize("variable", ["SKMIXED_CACHE_DIR", "NUMBA_CACHE_DIR"])
@pytest.mark.parametrize("where", ["afile", "afile/sub", "/proc/skmixed-cache"])
def test_an_unusable_cache_setting_is_named_in_one_warning(fresh_warnings, monkeypatch,
                                                            tmp_path, variable, where):
    """Review of issue 13: ``SKMIXED_CACHE_DIR`` set to a file (or a path through one, or
    one that cannot be created) silently compiled every kernel in memory in every process
    (~13 s each)."""
    if where.startswith("/proc") and not Path("/proc/self").exists():
        pytest.skip("needs Linux's /proc")
    a_file = tmp_path / "afile"
    a_file.write_text("not a folder")
    monkeypatch.delenv("SKMIXED_CACHE_DIR", raising=False)
    monkeypatch.setenv(variable, str(tmp_path / where))
    with pytest.warns(skmixed.KernelCacheWarning) as caught:
        assert cache.cache_folder() is None
        assert cache.cache_folder() is None
    [warning] = [str(w.message) for w in caught]
    reason = (f"{a_file} is a file, not a folder" if where.startswith("afile") else
              "it cannot be created or written (")
    assert f"(from {variable}={tmp_path / where})" in warning and reason in warning
    assert "compiled in memory, again in every process" in warning
    assert a_file.read_text() == "not a folder"


def test_sealed_content_rejects_any_change():
    blob = cache._seal(b"payload")
    assert cache._unseal(blob, "f") == b"payload"
    for bad in (b"", blob[:-1], blob[:-1] + b"X", blob[:10]):
        with pytest.raises(cache._BrokenEntry, match="empty, truncated or altered"):
            cache._unseal(bad, "f")


def test_cached_njit_refuses_the_cache_option():
    with pytest.raises(TypeError, match="always caches"):
        cache.cached_njit(cache=True)


def _dispatchers(module):
    found = {}
    for name, obj in vars(module).items():
        if getattr(obj, "py_func", None) is None or obj.py_func.__module__ != module.__name__:
            continue
        if isinstance(obj, Dispatcher):
            found[name] = obj
        elif isinstance(obj, cache.SizedKernel):  # both compilations of a prange kernel
            found[name] = obj.serial
            found[f"{name}[parallel]"] = obj.parallel
    return found


def test_every_kernel_is_compiled_through_cached_njit(monkeypatch, tmp_path):
    """Every Numba kernel of the package and of the generated modules has skmixed's cache
    (a kernel left on Numba's ``cache=True`` would bring back the import failure on a
    read-only install and the unchecked unpickling): the package's modules, one generated
    row pass and one generated GLMM module."""
    monkeypatch.setenv("SKMIXED_CACHE_DIR", str(tmp_path))
    modules = [importlib.import_module(info.name) for info in
               pkgutil.walk_packages(skmixed.__path__, "skmixed.")]
    rows = SimpleNamespace(X=np.zeros((2, 1)), zcol=np.array([0]), m=np.empty(0),
                           offset=np.empty(0), weights=np.empty(0))
    modules += [sys.modules[codegen.crossprod_kernel(1, (0,), False).py_func.__module__],
                glmm_codegen.specialized_kernels(BINOMIAL_LOGIT, rows)]
    kernels = {f"{m.__name__}.{name}": d for m in modules
               for name, d in _dispatchers(m).items()}
    assert len(kernels) > 50 and any("blocks." in k for k in kernels)
    assert any(k.endswith("agq_groups[parallel]") for k in kernels)
    others = sorted(k for k, d in kernels.items() if not isinstance(d._cache, cache._LazyCache))
    assert others == []


def test_the_generated_kernels_digest_covers_the_family_row_terms(monkeypatch):
    """A generated GLMM module's name holds a digest of every file its code is compiled
    against, the families' row terms included (a change there must never load a stale
    compiled module)."""
    from skmixed.families import row_terms

    covered = []

    def spy(source, *modules):
        covered.extend(Path(m.__file__).resolve() for m in modules)
        return "0" * 12

    monkeypatch.setattr(glmm_codegen, "_LOADED", {})
    monkeypatch.setattr(cache, "source_digest", spy)
    monkeypatch.setattr(cache, "load_generated", lambda name, source: SimpleNamespace())
    rows = SimpleNamespace(X=np.zeros((2, 1)), zcol=np.array([0]), m=np.empty(0),
                           offset=np.empty(0), weights=np.empty(0))
    glmm_codegen.specialized_kernels(BINOMIAL_LOGIT, rows)
    assert Path(row_terms.py_func.__code__.co_filename).resolve() in covered
