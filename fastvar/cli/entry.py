"""Process plumbing of the ``fastvar`` command: exit statuses, Ctrl-C, warnings, pipes.

Bad input exits with status 2 and one line on stderr, never a traceback; Ctrl-C at any
moment prints one line and exits with 130; a closed stdout (``fastvar ... | head``) is not
an error. Only the standard library's lightest modules are imported here: a Ctrl-C while
the rest loads must land inside :func:`guard`.
"""
from __future__ import annotations

import codecs
import contextlib
import logging
import os
import sys
import warnings
from typing import Callable, NoReturn

from .. import _text

_owns_process = False  # set by exit_process(): the command runs the whole process


# what a stream that cannot encode them (PYTHONIOENCODING=ascii, a latin-1 terminal) shows
_ASCII = {"±": "+/-", "≥": ">=", "≤": "<=", "→": "->", "×": "x", "…": "...", "σ": "sigma",
          "χ": "chi", "√": "sqrt", "²": "^2"}


def _transliterate(err: UnicodeError) -> tuple[str, int]:
    text = err.object[err.start:err.end]
    return "".join(_ASCII.get(char, "?") for char in text), err.end


codecs.register_error("fastvar.ascii", _transliterate)


def plain_streams() -> None:
    """Let stdout and stderr print what they cannot encode in ASCII ("+/-" for "±")
    instead of failing after the work is done."""
    for stream in (sys.stdout, sys.stderr):
        try:
            "±".encode(stream.encoding or "ascii")
        except (UnicodeError, LookupError):
            with contextlib.suppress(AttributeError, ValueError):
                stream.reconfigure(errors="fastvar.ascii")
            if stream is sys.stdout:
                _text.use_ascii()  # tables stay aligned


class UsageError(Exception):
    """A bad command-line value: reported as one line, exit status 2."""


@contextlib.contextmanager
def notices(quiet: bool):
    """Show the package's notices (a kernel compile, a resumed checkpoint: the ``fastvar``
    logger's INFO lines) on stderr, whether or not it is a terminal, unless ``quiet``.

    Parameters
    ----------
    quiet : bool
        Show nothing.

    Yields
    ------
    None
    """
    log = logging.getLogger("fastvar")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    level = log.level
    log.addHandler(handler)
    log.setLevel(logging.WARNING if quiet else logging.INFO)
    try:
        yield
    finally:
        log.removeHandler(handler)
        log.setLevel(level)


def guard(body: Callable[[Callable[[str], None]], int]) -> int:
    """Run ``body(name)`` and turn what it raises into an exit status and one line.

    ``body`` calls ``name("fastvar simulate")`` once it knows its subcommand, so that errors
    say which command failed; it returns the exit status.

    Parameters
    ----------
    body : callable
        ``body(name)`` runs the command and returns its exit status.

    Returns
    -------
    int
        The exit status: body's; 2 after an error it reports in one line (a usage error,
        ValueError, TypeError, MemoryError, ImportError, OSError; others propagate); 0
        when stdout's reader went away; 130 on Ctrl-C.
    """
    command = ["fastvar"]
    plain_streams()
    previous_hook = sys.unraisablehook
    sys.unraisablehook = _reraise_interrupt(previous_hook)
    previous_excepthook = sys.excepthook
    sys.excepthook = _quiet_interrupt(previous_excepthook)
    previous_handler = _note_sigint()
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            return body(lambda text: command.__setitem__(0, text))
    except Exception as err:
        if _sigint_seen:
            # a Ctrl-C inside numba's compiler or cache can come out as another error
            # ("no compiled object yet"): it is still the user's Ctrl-C
            return _interrupted()
        if isinstance(err, BrokenPipeError):
            # the reader went away (`fastvar ... | head`): not an error of ours
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0
        if isinstance(err, (UsageError, ValueError, TypeError, MemoryError, ImportError,
                            OSError)):
            print(f"{command[0]}: error: {err}", file=sys.stderr)
            return 2
        raise
    except KeyboardInterrupt as stop:
        return _interrupted(said=getattr(stop, "said", False))
    finally:
        sys.unraisablehook = previous_hook
        sys.excepthook = previous_excepthook
        if previous_handler is not None:
            import signal

            with contextlib.suppress(ValueError, TypeError):
                if signal.getsignal(signal.SIGINT) is _on_sigint:
                    signal.signal(signal.SIGINT, previous_handler)


_sigint_seen = False
# The frames a Ctrl-C interrupted, kept until the process exits: see _on_sigint.
_interrupted_frames: list = []


def _on_sigint(signum, frame) -> None:
    global _sigint_seen
    _sigint_seen = True
    if _owns_process:
        # A Ctrl-C inside numba's compiler or cache loader leaves llvmlite objects half
        # built; their finalizers, run once the exception lets go of them, print tracebacks
        # or crash the process (1 in ~300 tries printed one after "fastvar: interrupted").
        # The command is ending: keep every object of the interrupted frames alive (the
        # frame holds its callers and their locals), and collect no cycles, until
        # _interrupted() leaves by os._exit.
        import gc

        gc.disable()
        _interrupted_frames.append(frame)
    raise KeyboardInterrupt


def _note_sigint():
    """Have SIGINT remembered as it raises KeyboardInterrupt; returns the handler it replaced
    (None where signals cannot be set: not the main thread)."""
    import signal
    import threading

    global _sigint_seen
    _sigint_seen = False
    if threading.current_thread() is not threading.main_thread():
        return None
    previous = signal.getsignal(signal.SIGINT)
    if previous is not signal.default_int_handler:  # someone else's handler: leave it
        return None
    signal.signal(signal.SIGINT, _on_sigint)
    return previous


def _interrupted(said: bool = False) -> int:
    # ``said``: the command has said so in its own words already
    if _owns_process:
        import signal

        # a second SIGINT follows the first at times (seen while numba loads kernels)
        # and would kill the process by the signal before it exits with 130
        with contextlib.suppress(ValueError):  # not the main thread
            signal.signal(signal.SIGINT, signal.SIG_IGN)
    if not said:
        print("fastvar: interrupted", file=sys.stderr)
    if _owns_process:
        # still inside the except clause, which holds the interrupted frames: leave before
        # anything of theirs is released (see _on_sigint)
        _leave(130)
    return 130


def _leave(status: int) -> NoReturn:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(status)


def exit_process(main: Callable[[], int]) -> NoReturn:
    """Run ``main()`` as the whole process, then exit with its status.

    It owns the process, so after main() it ignores Ctrl-C: one that lands while Python
    shuts down (or a second one that LLVM re-raises) would kill the process by the signal,
    with no line said, instead of the exit status main() returned.

    Parameters
    ----------
    main : callable
        Runs the command; returns the exit status.
    """
    import signal

    global _owns_process
    _owns_process = True
    status = 130
    try:
        status = main()
    except KeyboardInterrupt:  # in the instructions around main()'s own handler
        _interrupted()  # owns the process: says the line and leaves
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    if status == 130:
        # an interrupted compile leaves LLVM objects whose finalizers print tracebacks at
        # interpreter shutdown: after the one line, leave without that shutdown
        _leave(status)
    sys.exit(status)


def _quiet_interrupt(previous):
    def hook(exc_type, value, traceback) -> None:
        # C code that prints an error and raises its own prints the user's Ctrl-C as a
        # traceback: numpy's import_array() in an extension module's init (then "ImportError:
        # numpy._core.multiarray failed to import", which guard() reads as the interrupt)
        if _sigint_seen and issubclass(exc_type, KeyboardInterrupt):
            return
        previous(exc_type, value, traceback)

    return hook


def _reraise_interrupt(previous):
    def hook(unraisable) -> None:
        if not issubclass(unraisable.exc_type, KeyboardInterrupt):
            previous(unraisable)
            return
        # A Ctrl-C inside a callback from C (llvmlite's object cache, while numba loads a
        # kernel) is printed and dropped by ctypes, and the run would go on, without the
        # object the callback was to give: numba then wrote through a null address (SIGSEGV,
        # 1 in ~400 Ctrl-Cs here, twice in CI). The command leaves at once; called from
        # Python (not the process's owner) raise it again in the main thread once this hook
        # has returned: raised in here, it would be dropped.
        if _owns_process:
            _interrupted()
        import _thread
        import threading

        timer = threading.Timer(0.01, _thread.interrupt_main)
        timer.daemon = True
        timer.start()

    return hook


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    # a command's warning starts with one line to grep for, continued indented within the
    # terminal's 100 columns; where in fastvar it was raised does not help the user
    print("\n".join(_text.wrapped("fastvar: warning: ", str(message))),
          file=sys.stderr if file is None else file)
