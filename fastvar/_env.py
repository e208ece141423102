"""The process environment Numba depends on, checked or worked around before the kernels load.

Numba reads ``NUMBA_NUM_THREADS`` once, at import, and answers a bad value with a traceback
(``0``, ``-1``) or a warning that quotes one (``abc``); and a ``cache=True`` function cannot
even be defined where no cache folder is writable. :mod:`fastvar.kernels` calls
:func:`check_numba_threads` and :func:`compile_without_cache_if_unwritable` before any
kernel module imports Numba.

Numba's default cache folder is the ``__pycache__`` beside each module: inside an installed
package, where its files outlive ``pip uninstall`` and turn ``fastvar`` into an empty
namespace package for the next install. ``import fastvar`` therefore points
``NUMBA_CACHE_DIR`` at a per-user folder (:func:`numba_cache_dir`) unless it is set, and
at the first writable of (the user's own, the per-user folder, a temporary folder) when the
one it would use cannot be written (:func:`keep_numba_cache_out_of_package`). Within
fastvar's own folders the kernels are kept under the digest of their sources
(:func:`kernel_sources_digest`): Numba checks only a kernel's own file before it loads a cached
copy, so an upgrade that changed a function the kernel calls from another file would
otherwise run the old compiled code.
"""
from __future__ import annotations

import functools
import hashlib
import os
import sys
import tempfile
import warnings
from typing import Callable

# No hardware needs more; far beyond the cores, each thread only costs memory and start-up.
MAX_NUMBA_THREADS = 1024


def numba_cache_dir(environ: "dict[str, str] | None" = None,
                    platform: str = sys.platform) -> "str | None":
    """The folder for Numba's cache of compiled kernels, or None to leave the user's own.

    Parameters
    ----------
    environ : mapping, optional
        The environment to read (default ``os.environ``).
    platform : str, optional
        ``sys.platform`` of the machine the folder is for.

    Returns
    -------
    str or None
        None where ``NUMBA_CACHE_DIR`` is set (not empty): the user's choice stands.
        Otherwise ``fastvar/numba`` in the per-user cache folder: ``$XDG_CACHE_HOME`` (an
        absolute path) or ``~/.cache`` on Linux and other POSIX systems,
        ``~/Library/Caches`` on macOS, ``%LOCALAPPDATA%`` on Windows.
    """
    environ = os.environ if environ is None else environ
    if environ.get("NUMBA_CACHE_DIR"):
        return None
    home = environ.get("HOME") or os.path.expanduser("~")
    if platform == "win32":
        base = environ.get("LOCALAPPDATA") or os.path.join(home, "AppData", "Local")
    elif platform == "darwin":
        base = os.path.join(home, "Library", "Caches")
    else:
        xdg = environ.get("XDG_CACHE_HOME", "")
        base = xdg if os.path.isabs(xdg) else os.path.join(home, ".cache")
    return os.path.join(base, "fastvar", "numba")


def kernel_sources_digest() -> str:
    """A short digest of the kernels' source files (``fastvar/kernels/*.py``).

    Numba invalidates a cached kernel when its own source file changes, not when a function
    it calls from another file does; fastvar's cache folders are therefore keyed by this
    digest, so that kernels compiled from other sources are never loaded.

    Returns
    -------
    str
        16 hexadecimal digits; "unknown" where the sources cannot be read.
    """
    folder = os.path.join(os.path.dirname(os.path.abspath(__file__)), "kernels")
    digest = hashlib.sha256()
    try:
        for name in sorted(os.listdir(folder)):
            if name.endswith(".py"):
                with open(os.path.join(folder, name), "rb") as source:
                    digest.update(name.encode() + b"\0" + source.read() + b"\0")
    except OSError:
        return "unknown"
    return digest.hexdigest()[:16]


# what keep_numba_cache_out_of_package moved away from, said once by the kernels' import
_moved: "list[str]" = []


def _writable(folder: str) -> bool:
    """Whether a file can be created in ``folder`` (made if missing); not os.access: root."""
    try:
        os.makedirs(folder, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            return True
    except OSError:
        return False


def keep_numba_cache_out_of_package() -> None:
    """Set ``NUMBA_CACHE_DIR`` to the first writable of the user's own (if set),
    :func:`numba_cache_dir` and ``$TMPDIR/fastvar-numba-USER``; in the last two, the
    subfolder named by :func:`kernel_sources_digest` (the user's own is used as it is).

    Numba would fall back to its own search where its folder cannot be written: the
    ``__pycache__`` inside the installed package first. Where the user's own folder is not
    writable and another is, :func:`compile_without_cache_if_unwritable` warns once; where
    none is, Numba's search stands (and that function warns if it finds nothing). Where
    Numba is already imported its configuration is reloaded, so that the kernels defined
    later see the folder.
    """
    own = os.environ.get("NUMBA_CACHE_DIR") or None
    per_user = numba_cache_dir({k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"})
    user = str(os.getuid()) if hasattr(os, "getuid") else os.environ.get("USERNAME", "user")
    temporary = os.path.join(os.environ.get("TMPDIR") or tempfile.gettempdir(),
                             f"fastvar-numba-{user}")
    sources = f"kernels-{kernel_sources_digest()}"
    per_user, temporary = (os.path.join(f, sources) if f else f for f in (per_user, temporary))
    candidates = [f for f in (own, per_user, temporary) if f]
    folder = next((f for f in candidates if _writable(f)), None)
    if folder is None:
        if own is not None:
            return
        folder = per_user
    elif own is not None and folder != own:
        _moved[:] = [own, folder]
    os.environ["NUMBA_CACHE_DIR"] = folder
    config = sys.modules.get("numba.core.config")
    if config is not None:
        config.reload_config()


class NoCacheWarning(RuntimeWarning):
    """Numba finds no writable cache folder (the kernels compile anew in every process), or
    not the one ``NUMBA_CACHE_DIR`` names (they are cached in another)."""


def check_numba_threads() -> None:
    """Raise ValueError, saying what to set, if ``NUMBA_NUM_THREADS`` is set but not valid;
    set but empty, it is unset (as a shell's ``NUMBA_NUM_THREADS=`` means), before Numba
    reads it."""
    text = os.environ.get("NUMBA_NUM_THREADS")
    if text is not None and not text.strip():
        del os.environ["NUMBA_NUM_THREADS"]
        config = sys.modules.get("numba.core.config")
        if config is not None:
            config.reload_config()
        return
    if text is None:
        return
    cores = os.cpu_count() or 1
    limit = max(MAX_NUMBA_THREADS, cores)
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= limit:
        raise ValueError(f"environment variable NUMBA_NUM_THREADS={text!r} is not valid: set it "
                         f"to a whole number from 1 to {limit} (this machine has {cores} cores) "
                         "or unset it")


def compile_without_cache_if_unwritable(probe: Callable[[], None]) -> bool:
    """Let ``cache=True`` kernels beside ``probe``'s file compile where Numba has no cache.

    Numba stores compiled kernels in ``NUMBA_CACHE_DIR``, else in the ``__pycache__`` next
    to the module, else in the user-wide cache folder (``$XDG_CACHE_HOME`` or
    ``~/.cache``); when none is writable (a read-only install, a read-only or missing HOME)
    it refuses to define the function: "cannot cache function ...: no locator available",
    at import. Then, and only for functions in that folder, this leaves the function without
    a cache (compiled in memory, as with ``cache=False``) and warns once with
    :class:`NoCacheWarning`. Returns True when it did so.
    """
    if _moved:
        own, folder = _moved
        _moved.clear()
        warnings.warn(f"NUMBA_CACHE_DIR={own!r} is not a writable folder: numba's cache goes to "
                      f"{folder} instead", NoCacheWarning, stacklevel=2)
    from numba.core import caching, dispatcher
    from numba.np.ufunc import ufuncbuilder

    try:
        caching.FunctionCache(probe)  # numba's own search for a cache folder
        return False
    except RuntimeError as err:
        if "no locator" not in str(err):
            raise
    import inspect  # here, not at the top: `import fastvar` (the command's start) needs none

    folder = os.path.dirname(os.path.abspath(inspect.getfile(probe)))
    for cls in (dispatcher.Dispatcher, ufuncbuilder.UFuncDispatcher):
        if not getattr(cls.enable_caching, "_fastvar_folder", None):
            cls.enable_caching = _skip_missing_cache(cls.enable_caching, folder)
    warnings.warn(f"numba finds no writable cache folder (NUMBA_CACHE_DIR, {folder}/__pycache__, "
                  "the user cache folder): the kernels compile again in every process; set "
                  "NUMBA_CACHE_DIR to a writable folder to keep them", NoCacheWarning, stacklevel=2)
    return True


def _skip_missing_cache(enable_caching, folder: str):
    @functools.wraps(enable_caching)
    def wrapper(self) -> None:
        try:
            enable_caching(self)
        except RuntimeError as err:
            # only our kernels, and only this failure: anything else is numba's to report
            import inspect

            here = os.path.dirname(os.path.abspath(inspect.getfile(self.py_func)))
            if "no locator" not in str(err) or here != folder:
                raise
            # the dispatcher keeps the NullCache it was built with: no load, no save

    wrapper._fastvar_folder = folder
    return wrapper
