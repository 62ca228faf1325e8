"""The on-disk cache of compiled kernels: the only module of the kernels that touches files
(at the bottom of the layers: :mod:`skmixed.families` and :mod:`skmixed._kernels` compile
through it).

Every kernel is compiled with :func:`cached_njit`, never with Numba's ``cache`` option.
Numba's own cache picks its folder when the module is imported (a writable ``__pycache__``
beside the source, else the home folder) and fails the import when there is none; it
unpickles whatever it finds there, so a truncated file breaks every later call and a folder
other users can write to runs their code. Here instead:

* The folder is ``$SKMIXED_CACHE_DIR`` (else ``$NUMBA_CACHE_DIR/skmixed``, else
  ``~/.cache/skmixed``), with one subfolder per skmixed and Numba version pair, so a new
  version never reads an old cache. It is looked up at the first compilation, not at import.
* If it cannot be created or written, kernels are compiled in memory in each process: for
  the default folder (read-only install and home) without a word; for a folder set by
  ``SKMIXED_CACHE_DIR`` or ``NUMBA_CACHE_DIR`` (a file, a read-only path) with one
  :class:`~skmixed.exceptions.KernelCacheWarning` naming the path.
* If another user owns it or can write to it, it is not used: one
  :class:`~skmixed.exceptions.KernelCacheWarning` names the folder and what to do (for a
  folder shared by all users, such as ``/tmp``, a private folder, never a change of its
  mode), and kernels are compiled in memory.
* Each file is stored with a SHA-256 of its content. A file that is empty, truncated, altered
  or does not unpickle is deleted with the rest of its function's entries, the function is
  compiled again and saved afresh, with one warning per process.

A kernel with a ``prange`` loop (``@cached_njit(parallel=True)``) becomes a
:class:`SizedKernel`: compiled serially for small problems, and with Numba's
``parallel=True`` (its own cache files) only when a call is big enough for threads to pay.
A new user's first small fit thus never waits for a parallel compilation, several times
as long as a serial one.

Files written from here: Numba's index (``.nbi``) and data (``.nbc``) files, in Numba's
layout but sealed with the hash, and the generated kernel sources of
:mod:`skmixed._kernels.codegen` and :mod:`skmixed._kernels.glmm_codegen`
(:func:`source_file`), which Numba needs as real files to key its cache.
"""

import functools
import hashlib
import os
import pickle
import stat
import sys
import tempfile
import types
import warnings
from pathlib import Path

import numba
import numpy as np
from numba.core import caching
from numba.core.dispatcher import Dispatcher

from .exceptions import KernelCacheWarning

__all__ = ["cached_njit", "SizedKernel", "PARALLEL_MIN_SIZE", "cache_folder", "source_file",
           "load_generated", "source_digest"]

_MAGIC = b"skmixed kernel cache 1\n"
_DIGEST_SIZE = 32
_WARNED = set()


class _UnsafeFolder(Exception):
    """A cache folder that another user owns or can write to."""

    def __init__(self, folder, reason, advice):
        super().__init__(f"skmixed does not use the kernel cache folder {folder}: {reason}. "
                         "Kernels are compiled in memory, again in every process, until "
                         f"{advice}.")
        self.folder = folder


class _BrokenEntry(Exception):
    """A cache file whose content does not match its hash."""


def _warn_once(key, message):
    if key not in _WARNED:
        _WARNED.add(key)
        warnings.warn(message, KernelCacheWarning, stacklevel=2)


def _warn_unsafe(exc):
    _warn_once(("unsafe", exc.folder), str(exc))


def _private_folder(path, parents=False):
    """Create ``path`` (mode 0o700) unless it exists; raise :class:`_UnsafeFolder` if
    another user owns it or can write to it (their files would be unpickled and run)."""
    path.mkdir(mode=0o700, parents=parents, exist_ok=True)
    if os.name != "posix":
        return
    st, own = path.stat(), "SKMIXED_CACHE_DIR is set to a folder of your own (skmixed " \
        "creates it private, mode 700)"
    if st.st_uid != os.geteuid():
        raise _UnsafeFolder(path, f"it is owned by user id {st.st_uid}, not by you "
                                  f"({os.geteuid()})", own)
    if st.st_mode & stat.S_ISVTX and st.st_mode & 0o022:  # /tmp, /var/tmp, /dev/shm
        raise _UnsafeFolder(path, f"other users can write to it (mode {st.st_mode & 0o7777:o}:"
                                  " a folder shared by all users, whose mode must stay as "
                                  "it is)", f"{own}, e.g. {path / f'skmixed-{os.geteuid()}'}")
    if st.st_mode & 0o022:
        raise _UnsafeFolder(path, f"other users can write to it (mode "
                                  f"{st.st_mode & 0o777:o})", f"`chmod go-w {path}` makes it "
                                  f"yours alone, or {own}")


def _root():
    """The configured cache root and the variable that set it (None for the default), or
    ``(None, None)``."""
    for variable, sub in (("SKMIXED_CACHE_DIR", ""), ("NUMBA_CACHE_DIR", "skmixed")):
        value = os.environ.get(variable)
        if value:
            return Path(value, sub).expanduser().absolute(), variable
    try:
        home = Path.home()
    except (RuntimeError, KeyError):
        return None, None
    # a missing home is not created (as it would be when running as root)
    return (home / ".cache" / "skmixed" if home.is_dir() else None), None


def cache_folder():
    """The checked cache folder of this skmixed and Numba version, or None (no disk cache).
    Read from the environment at each call (a changed ``SKMIXED_CACHE_DIR`` applies to the
    kernels compiled afterwards), checked once per folder."""
    from . import __version__

    root, variable = _root()
    if root is None:
        return None
    return _checked_folder(root, root / f"skmixed-{__version__}_numba-{numba.__version__}",
                           variable)


@functools.lru_cache(maxsize=None)
def _checked_folder(root, folder, variable=None):
    try:
        _private_folder(root, parents=True)
        _private_folder(folder)
        tempfile.TemporaryFile(dir=folder).close()
    except OSError as exc:
        if variable is not None:  # the user's setting: say that it does not work
            _warn_unusable(root, variable, exc)
        return None  # cannot be created or written: compile in memory
    except _UnsafeFolder as exc:
        _warn_unsafe(exc)
        return None
    return folder


def _warn_unusable(root, variable, exc):
    path = Path(exc.filename) if exc.filename else root
    blocker = next((p for p in (path, *path.parents) if p.is_file()), None)
    reason = (f"{blocker} is a file, not a folder" if blocker else
              f"it cannot be created or written ({exc.strerror or exc})")
    _warn_once(("unusable", root), f"skmixed cannot keep its compiled kernels in {path} (from "
               f"{variable}={os.environ.get(variable)}): {reason}. Kernels are compiled in "
               f"memory, again in every process; set {variable} to a folder you can write to.")


def source_file(name, source):
    """Path of ``<cache>/generated/<name>.py`` holding ``source`` (written if missing or
    different), or None without a usable cache folder. The file is never executed: it
    exists for Numba to key the cache of the functions compiled from ``source``."""
    folder = cache_folder()
    if folder is None:
        return None
    path = folder / "generated" / f"{name}.py"
    data = source.encode()
    try:
        _private_folder(path.parent)
        try:
            current = path.read_bytes()
        except FileNotFoundError:
            current = None
        if current != data:
            if current is not None:
                # the name holds a digest of the source, so a differing file is damaged
                _warn_broken(f"the file {path}", "not the generated source")
            tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
            tmp.write_bytes(data)
            os.replace(tmp, path)
    except OSError:
        return None
    except _UnsafeFolder as exc:
        _warn_unsafe(exc)
        return None
    return path


def load_generated(name, source):
    """Run generated source as the module ``skmixed_generated.<name>``. The code compiled is
    always ``source`` itself; its copy in the cache folder (if there is one) only gives its
    functions a file, which Numba's disk cache needs."""
    path = source_file(name, source)
    module = types.ModuleType(f"skmixed_generated.{name}")
    filename = f"<skmixed generated {name}>" if path is None else str(path)
    module.__file__ = filename
    sys.modules[module.__name__] = module
    exec(compile(source, filename, "exec"), module.__dict__)
    return module


def source_digest(source, *modules):
    """12 hex digits of ``source`` and of the files of ``modules`` (the code a generated
    kernel is compiled against): a change to any of them names a new module, so its
    machine code is never a stale cache entry."""
    h = hashlib.sha1(source.encode())
    for module in modules:
        h.update(Path(module.__file__).read_bytes())
    return h.hexdigest()[:12]


def _warn_broken(what, reason):
    _warn_once("broken", f"skmixed's kernel cache: {what} was unreadable ({reason}); it was "
               "replaced and the kernel compiled again. Other damaged entries in "
               f"{cache_folder()} are replaced the same way, without a further warning.")


def _seal(payload):
    return _MAGIC + hashlib.sha256(payload).digest() + payload


def _unseal(blob, path):
    head = len(_MAGIC)
    payload = blob[head + _DIGEST_SIZE:]
    if blob[:head] != _MAGIC or blob[head:head + _DIGEST_SIZE] != hashlib.sha256(payload).digest():
        raise _BrokenEntry(f"{path} is empty, truncated or altered (hash mismatch)")
    return payload


class _SealedFiles(caching.IndexDataCacheFile):
    """Numba's index and data files, each prefixed with a hash of its content (the index
    keeps Numba's content: the source stamp and the signature → data file mapping; the
    Numba version is in the folder's name)."""

    def _write(self, path, payload):
        with self._open_for_write(path) as f:
            f.write(_seal(payload))

    def _read(self, path):
        with open(path, "rb") as f:
            return pickle.loads(_unseal(f.read(), path))

    def _load_index(self):
        try:
            stamp, overloads = self._read(self._index_path)
        except FileNotFoundError:
            return {}
        # a changed source file makes the entries stale; they are overwritten when saved
        return overloads if stamp == self._source_stamp else {}

    def _save_index(self, overloads):
        self._write(self._index_path, self._dump((self._source_stamp, overloads)))

    def _load_data(self, name):
        return self._read(self._data_path(name))

    def _save_data(self, name, data):
        self._write(self._data_path(name), self._dump(data))


class _Locator(caching._SourceFileBackedLocatorMixin, caching._CacheLocator):
    """Numba's files for the functions of one source file, in :func:`cache_folder`."""

    def __init__(self, py_func, py_file):
        self._py_file = py_file
        self._lineno = py_func.__code__.co_firstlineno
        folder = cache_folder()
        if Path(py_file).parent == folder / "generated":
            # generated sources: a fixed name, so the folder can be moved
            self._cache_path = str(folder / "generated_numba")
        else:
            # the package's modules: one subfolder per installed copy (Numba's naming)
            self._cache_path = str(folder / self.get_suitable_cache_subpath(py_file))

    def ensure_cache_path(self):
        _private_folder(Path(self._cache_path))

    def get_cache_path(self):
        return self._cache_path


class _Impl(caching.CompileResultCacheImpl):
    _locator_classes = [_Locator]


class _CheckedCache(caching.FunctionCache):
    """Numba's per-function cache over :class:`_SealedFiles`; an entry that fails to load
    for any reason is deleted and reported as a miss, so the function is compiled again."""

    _impl_class = _Impl

    def __init__(self, py_func, variant=""):
        super().__init__(py_func)
        if variant:  # another compilation of the same function (its own files)
            self._impl._filename_base += f".{variant}"
        self._cache_file = _SealedFiles(self._cache_path, self._impl.filename_base,
                                        self._impl.locator.get_source_stamp())

    def load_overload(self, sig, target_context):
        try:
            return super().load_overload(sig, target_context)
        except Exception as exc:  # noqa: BLE001 — a cache must never fail a fit
            self._discard(exc)
            return None

    def save_overload(self, sig, data):
        try:
            super().save_overload(sig, data)
        except OSError:
            pass  # disk full or folder gone: the compiled function is still in memory
        except _UnsafeFolder as exc:
            _warn_unsafe(exc)
        except Exception as exc:  # noqa: BLE001
            self._discard(exc)

    def _discard(self, exc):
        """Delete the index and data files of this function (their other signatures are
        compiled again when used)."""
        prefix = self._impl.filename_base + "."
        try:
            with os.scandir(self._cache_path) as entries:
                bad = [e.path for e in entries
                       if e.name.startswith(prefix) and e.name.endswith((".nbi", ".nbc"))]
        except OSError:
            bad = []
        for path in bad:
            try:
                os.remove(path)
            except OSError:
                pass
        _warn_broken(f"the entry {self._impl.filename_base} in {self._cache_path}",
                     f"{type(exc).__name__}: {exc}")


class _LazyCache(caching._Cache):
    """A dispatcher's cache, opened at its first compilation: :class:`_CheckedCache` if
    there is a usable cache folder and the function has a source file, else none."""

    def __init__(self, py_func, variant=""):
        self._py_func = py_func
        self._variant = variant
        self._cache = None

    def _open(self):
        if self._cache is None:
            self._cache = caching.NullCache()
            if cache_folder() is not None and os.path.isfile(self._py_func.__code__.co_filename):
                try:
                    self._cache = _CheckedCache(self._py_func, self._variant)
                except (OSError, RuntimeError):
                    pass  # no locator (folder not writable): compile in memory
                except _UnsafeFolder as exc:
                    _warn_unsafe(exc)
        return self._cache

    @property
    def cache_path(self):
        return self._open().cache_path

    def load_overload(self, sig, target_context):
        return self._open().load_overload(sig, target_context)

    def save_overload(self, sig, data):
        self._open().save_overload(sig, data)

    def enable(self):
        self._open().enable()

    def disable(self):
        self._open().disable()

    def flush(self):
        self._open().flush()


def _njit(f, options, variant=""):
    dispatcher = numba.njit(**options)(f)
    if isinstance(dispatcher, Dispatcher):  # not under NUMBA_DISABLE_JIT
        dispatcher._cache = _LazyCache(dispatcher.py_func, variant)
    return dispatcher


#: the fewest elements of a call's largest array argument for which a ``prange`` kernel runs
#: on Numba's thread pool (and is compiled for it): below, the pool's start and a parallel
#: compilation cost more than threads save
PARALLEL_MIN_SIZE = 100_000


class SizedKernel:
    """A kernel with a ``prange`` loop, compiled on demand serially (``prange`` as ``range``,
    :attr:`serial`) or with ``parallel=True`` (:attr:`parallel`, cached under its own
    name). A call runs the parallel one when an array argument has at least
    :data:`PARALLEL_MIN_SIZE` elements, whatever the thread count (with one thread it runs
    on the calling thread; one compilation per problem size class, not per ``n_jobs``), so
    a small problem never compiles it. The loops run over blocks fixed by the problem,
    never by the threads (:mod:`skmixed._kernels.blocks`): both give the same numbers.
    Called from Python only (a jitted caller would need a dispatcher)."""

    def __init__(self, py_func, options):
        self.py_func = py_func
        self.__name__ = py_func.__name__
        self.__qualname__ = py_func.__qualname__
        self.__doc__ = py_func.__doc__
        self.__module__ = py_func.__module__
        self.__wrapped__ = py_func
        self.serial = _njit(py_func, {k: v for k, v in options.items() if k != "parallel"})
        self._options = options
        self._parallel = None

    @property
    def parallel(self):
        if self._parallel is None:
            self._parallel = _njit(self.py_func, self._options, variant="parallel")
        return self._parallel

    def __call__(self, *args):
        size = max((a.size for a in args if isinstance(a, np.ndarray)), default=0)
        if size >= PARALLEL_MIN_SIZE:
            return self.parallel(*args)
        return self.serial(*args)


def cached_njit(func=None, **options):
    """``numba.njit(**options)`` with skmixed's disk cache (see the module docstring) in
    place of Numba's ``cache`` option. Use as ``@cached_njit`` or
    ``@cached_njit(parallel=True)``."""
    if "cache" in options:
        raise TypeError("cached_njit always caches; do not pass cache=")

    def decorate(f):
        if options.get("parallel"):
            return SizedKernel(f, options)
        return _njit(f, options)

    return decorate if func is None else decorate(func)
