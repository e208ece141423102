"""What fastvar writes to files: up-front path checks, atomic writes, strict-JSON floats.

Every output file goes through :func:`write_file`, and the command line calls
:func:`check_output` on each output path before any simulation starts, so a bad path
costs no run. Writes are atomic for regular files (temporary file in the same folder, then
rename: a reader never sees half a file and a failed write leaves nothing behind) and go
straight through for what cannot be renamed onto: FIFOs, terminals, ``/dev/stdout``,
``/proc/self/fd/N``. A symlink is followed and its target replaced; an existing file keeps
its permission bits; a read-only file is refused.
"""
from __future__ import annotations

import math
import numbers
import os
import re
import stat
import sys
import tempfile
from typing import Any, NamedTuple

# /proc/<pid>/fd/N (also reached as /proc/self/fd/N, /dev/fd/N, /dev/stdout): our own
# descriptor N, to be written through rather than reopened (a reopen with O_TRUNC would
# clobber what a shell redirection `>> log` already holds)
_PROC_FD = re.compile(r"/proc/(\d+)(?:/task/\d+)?/fd/(\d+)")
_MAX_LINKS = 40  # as Linux's ELOOP limit


class Target(NamedTuple):
    """Where :func:`write_file` puts the bytes for an output path."""

    path: str  # the file finally written (symlinks followed)
    in_place: bool  # write straight into it (not a regular file, or a /proc descriptor)
    mode: "int | None"  # permission bits of the existing regular file, None for a new one


def _follow(path: str) -> tuple[str, bool]:
    """The file a path leads to, and whether it lies in /proc (descriptor links)."""
    p = path
    for _ in range(_MAX_LINKS):
        # resolve the folders first: /dev/fd/1 is /proc/<pid>/fd/1 in disguise
        p = os.path.join(os.path.realpath(os.path.dirname(p)), os.path.basename(p))
        if p.startswith("/proc/"):
            return p, True
        if not os.path.islink(p):
            return p, False
        p = os.path.join(os.path.dirname(p), os.readlink(p))
    raise OSError(f"cannot write {path}: too many levels of symbolic links")


def check_output(path: "str | os.PathLike") -> Target:
    """Check, before any work, that ``path`` can be written; returns where the bytes go.

    Raises ValueError for an empty path, IsADirectoryError for a folder (or a name ending
    in a separator), FileNotFoundError for a missing folder, PermissionError for a
    read-only file (no write bit, even for root) or an unwritable folder.
    """
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"an output path must be a str or os.PathLike, got {type(path).__name__}")
    path = os.fspath(path)
    if path == "":
        raise ValueError("the output path is empty; give a file name such as result.json")
    if path.endswith(os.sep) or (os.altsep and path.endswith(os.altsep)):
        raise IsADirectoryError(f"cannot write {path}: it names a folder; add a file name")
    target, in_proc = _follow(os.path.abspath(path))
    try:
        st = os.stat(target)
    except FileNotFoundError:
        st = None
    except OSError as err:
        raise OSError(f"cannot write {path}: {err.strerror}") from None
    if st is None:
        if in_proc:
            raise FileNotFoundError(f"cannot write {path}: {target} does not exist")
        folder = os.path.dirname(target)
        if not os.path.isdir(folder):
            raise FileNotFoundError(f"cannot write {path}: folder {folder} does not exist")
        if not os.access(folder, os.W_OK | os.X_OK):
            raise PermissionError(f"cannot write {path}: folder {folder} is not writable")
        return Target(target, False, None)
    if stat.S_ISDIR(st.st_mode):
        raise IsADirectoryError(f"cannot write {path}: it is a folder; add a file name")
    if not os.access(target, os.W_OK) or not st.st_mode & 0o222:
        raise PermissionError(f"cannot write {path}: the file is read-only; make it writable "
                              "(chmod u+w) or choose another name")
    if in_proc or not stat.S_ISREG(st.st_mode):
        return Target(target, True, None)
    folder = os.path.dirname(target)
    if not os.access(folder, os.W_OK | os.X_OK):
        # the atomic rename needs the folder; rewriting in place could leave half a file
        raise PermissionError(f"cannot write {path}: folder {folder} is not writable (needed "
                              "to replace the file atomically)")
    return Target(target, False, stat.S_IMODE(st.st_mode))


def _write_fd(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def write_file(path: "str | os.PathLike", data: "str | bytes") -> None:
    """Write ``data`` (str as UTF-8) to ``path``, checked first by :func:`check_output`.

    Regular files (and symlinks to them) are replaced atomically, keeping the mode of an
    existing file (a new one gets 0666 less the umask); FIFOs, devices and our own
    ``/proc/self/fd/N`` are written through. Nothing half-written is left on an error.
    """
    try:
        _write(path, data)
    except OSError as err:
        if str(path) in str(err):
            raise
        raise OSError(f"cannot write {os.fsdecode(path)}: {err.strerror or err}") from None


def _write(path: "str | os.PathLike", data: "str | bytes") -> None:
    if isinstance(data, str):
        data = data.encode("utf-8")
    target = check_output(path)
    if target.in_place:
        own = _PROC_FD.fullmatch(target.path)
        if own and int(own.group(1)) == os.getpid():
            fd = int(own.group(2))
            for stream in (sys.stdout, sys.stderr):  # keep the order of what was printed
                if stream is not None and not stream.closed:
                    stream.flush()
            _write_fd(fd, data)
        else:
            with open(target.path, "wb") as fh:
                fh.write(data)
        return
    folder = os.path.dirname(target.path)
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".fastvar-", suffix=".tmp")
    except OSError as err:
        raise OSError(f"cannot write {path}: {err.strerror}") from None
    try:
        mode = target.mode
        if mode is None:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        os.fchmod(fd, mode)  # mkstemp makes 0600
        with os.fdopen(fd, "wb") as fh:
            fd = -1
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())  # the rename must not outrun the data on a crash
        os.replace(tmp, target.path)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        os.unlink(tmp)
        raise


def json_float(x: float) -> "float | str | None":
    """A float as strict JSON: itself if finite, else None (NaN), "inf" or "-inf"."""
    if math.isfinite(x):
        return x
    return None if math.isnan(x) else ("inf" if x > 0 else "-inf")


_NONFINITE = {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}


def float_from_json(name: str, value: Any) -> float:
    """Inverse of :func:`json_float` (NaN and inf floats of lax JSON are accepted too)."""
    if value is None:
        return math.nan
    if isinstance(value, str):
        if value.lower() in _NONFINITE:
            return _NONFINITE[value.lower()]
        raise ValueError(f"{name} must be a number, null, 'inf' or '-inf', got {value!r}")
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {value!r}")
    return float(value)
