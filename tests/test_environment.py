"""Odd environments (issue 8, items 8 and 9): Ctrl-C at any moment, bad NUMBA_NUM_THREADS,
nowhere to write numba's cache. Each is one line on stderr, never a traceback."""
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import fastvar

TINY = ["simulate", "--width", "8", "--depth", "2", "--trials", "10"]
SCRIPT = Path(sys.executable).with_name("fastvar")
ENTRIES = {"module": [sys.executable, "-m", "fastvar"], "script": [str(SCRIPT)]}


def _entry(kind):
    if kind == "script" and not SCRIPT.exists():
        pytest.skip("the fastvar console script is not installed next to this Python")
    return ENTRIES[kind]


def test_import_loads_numpy_and_numba_only_on_use():
    code = ("import sys, fastvar; heavy = {'numpy', 'numba'} & set(sys.modules); "
            "assert not heavy, heavy; fastvar.Moments; "
            "assert fastvar.kernels.accumulators.update_moments and 'numba' in sys.modules; "
            "from fastvar import *; assert mlp and theory.variance_map; "
            "assert not hasattr(fastvar, 'nothing_of_that_name')")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


def test_except_interrupted_imports_nothing_heavy():
    # a Ctrl-C during the first fastvar.simulate's imports made `except fastvar.Interrupted:`
    # itself import the half-loaded NumPy and Numba again (ImportError, RecursionError)
    code = ("import sys, fastvar\n"
            "try:\n    raise fastvar.Interrupted(None)\n"
            "except (fastvar.Interrupted, fastvar.SweepInterrupted) as stop:\n"
            "    assert stop.result is None\n"
            "heavy = {'numpy', 'numba'} & set(sys.modules)\nassert not heavy, heavy\n"
            "assert fastvar.runs and fastvar.sweeps.Sweep\n"  # the modules that raise them
            "assert issubclass(fastvar.Interrupted, KeyboardInterrupt)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("kind", ["module", "script"])
def test_ctrl_c_at_any_moment_is_one_line_and_status_130(kind):
    # from about 0.1 s, when Python has started and runs fastvar's entry point (before that,
    # Python's own start-up is interrupted: nothing of fastvar's can catch it), through the
    # imports of numpy and numba, the loading of the kernels and the run
    cmd = _entry(kind) + TINY
    for delay in (0.15, 0.3, 0.45, 0.6, 0.8, 1.0, 1.3):
        child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(delay)
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=120)
        # a kernel compile (or a cache load) of over a second is announced, piped or not
        err = "".join(line for line in err.splitlines(True)
                      if not line.startswith("fastvar: compiling the "))
        if child.returncode == 0:  # it finished first
            assert "q_mean" in out and err == "", (delay, err)
        else:
            # -SIGINT: now and then CPython ends the process by re-raising SIGINT after main()
            # returned 130 (not a second signal: SIGINT is ignored by then); a shell sees
            # status 130 either way, and stderr still holds the one line
            assert child.returncode in (130, -signal.SIGINT), (delay, child.returncode, err)
            assert err == "fastvar: interrupted\n", (delay, err[-2000:])


@pytest.mark.parametrize("value", ["0", "-1", "abc", "100000"])
@pytest.mark.parametrize("kind", ["module", "script"])
def test_bad_numba_num_threads_is_one_line_and_status_2(kind, value):
    env = dict(os.environ, NUMBA_NUM_THREADS=value)
    done = subprocess.run(_entry(kind) + TINY, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "NUMBA_NUM_THREADS" in done.stderr, done.stderr
    assert "whole number from 1 to" in done.stderr and "Traceback" not in done.stderr


def test_bad_numba_num_threads_is_a_clear_error_in_python():
    env = dict(os.environ, NUMBA_NUM_THREADS="0")
    code = ("import fastvar\ntry:\n    fastvar.mlp(4, 2)\nexcept ValueError as err:\n"
            "    print(err)\nelse:\n    print('no error')")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=120)
    assert "NUMBA_NUM_THREADS='0' is not valid" in done.stdout, done.stdout + done.stderr


def test_runs_without_any_writable_numba_cache(tmp_path):
    # A copy of the package where numba finds no cache folder at all. chmod cannot show it
    # (tests may run as root, who writes anyway), so each folder numba tries is made
    # impossible to create: kernels/__pycache__ is a regular file, and NUMBA_CACHE_DIR,
    # XDG_CACHE_HOME and HOME lead through a regular file. Numba then refused to define the
    # kernels ("no locator available"); now they compile in memory, with one warning.
    package = Path(fastvar.__file__).parent
    shutil.copytree(package, tmp_path / "fastvar", ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "fastvar" / "kernels" / "__pycache__").write_text("not a folder")
    blocker = tmp_path / "blocker"
    blocker.write_text("not a folder")
    env = dict(os.environ, PYTHONPATH=str(tmp_path), NUMBA_CACHE_DIR=str(blocker / "numba"),
               XDG_CACHE_HOME=str(blocker / "cache"), HOME=str(blocker),
               TMPDIR=str(blocker / "tmp"), PYTHONDONTWRITEBYTECODE="1")
    # the numpy engine: only the activation ufuncs compile, in seconds, not the engines' kernels
    done = subprocess.run([sys.executable, "-m", "fastvar"] + TINY + ["--engine", "numpy"],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "q_mean" in done.stdout
    # one warning, wrapped to 100 columns: its continuation lines are indented
    lines = done.stderr.splitlines()
    assert lines[0].startswith("fastvar: warning: numba finds no writable cache folder"), lines
    assert all(line.startswith("  ") and len(line) <= 100 for line in lines[1:]), lines
    assert "set NUMBA_CACHE_DIR to a writable folder" in " ".join(map(str.strip, lines))
    assert not any((tmp_path / "fastvar").rglob("*.nbi"))  # and nothing cached anywhere


def test_a_ctrl_c_that_numba_turns_into_another_error_is_still_an_interrupt(capsys):
    # Ctrl-C while numba loaded a kernel ended in its "RuntimeError: no compiled object yet"
    # with a traceback and status 1
    from fastvar.cli.entry import guard

    def body(name):
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)
        except KeyboardInterrupt:
            raise RuntimeError("no compiled object yet for <Library 'buffers'>") from None
        return 0

    assert guard(body) == 130
    assert capsys.readouterr().err == "fastvar: interrupted\n"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_ctrl_c_that_c_code_prints_as_a_traceback_is_one_line(capsys):
    # numpy's import_array() in an extension module's init printed the Ctrl-C with
    # PyErr_Print (through sys.excepthook), then raised an ImportError: a traceback above
    # "fastvar: interrupted", 2 in 300 Ctrl-Cs while numba loaded
    from fastvar.cli.entry import guard

    def body(name):
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)
        except KeyboardInterrupt as err:
            sys.excepthook(type(err), err, err.__traceback__)  # what PyErr_Print does
            raise ImportError("numpy._core.multiarray failed to import") from None
        return 0

    hook = sys.excepthook
    assert guard(body) == 130
    assert capsys.readouterr().err == "fastvar: interrupted\n"
    assert sys.excepthook is hook


# A Ctrl-C inside numba's compiler leaves llvmlite objects half built, whose finalizers print
# tracebacks ("'PassBuilder' object has no attribute '_as_parameter_'") or crash the process
# once the exception lets go of them; a Ctrl-C in a callback from C (llvmlite's object cache)
# is dropped by ctypes, and numba went on without the object, writing through a null address
# (SIGSEGV, twice in CI). Here the half-built object is one whose finalizer says so, held by
# the interrupted frame only.
_FRAGILE = """
import os, signal, sys, time
from fastvar.cli.entry import exit_process, guard

class HalfBuilt:
    def __del__(self):
        print("finalized", file=sys.stderr)

def compile_kernel():
    half_built = HalfBuilt()
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(5)

def body(name):
    if sys.argv[1] == "in a callback from C":  # llvmlite's object cache, numba loading
        import ctypes                           # a kernel: ctypes drops the exception

        ctypes.CFUNCTYPE(None)(compile_kernel)()
        print("went on without the object the callback was to give", file=sys.stderr)
        time.sleep(1)
        return 0
    if sys.argv[1] == "swallowed":  # caught and raised anew, as Result.compute_theory's
        try:                        # caller does to keep the measurements
            compile_kernel()
        except KeyboardInterrupt:
            pass
        raise KeyboardInterrupt
    compile_kernel()
    return 0

exit_process(lambda: guard(body))
"""


@pytest.mark.parametrize("how", ["propagated", "swallowed", "in a callback from C"])
def test_ctrl_c_never_finalizes_what_the_interrupted_code_held(how):
    done = subprocess.run([sys.executable, "-c", _FRAGILE, how], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 130 and done.stderr == "fastvar: interrupted\n", (
        done.returncode, done.stderr)


@pytest.mark.parametrize("environ, platform, expected", [
    ({"NUMBA_CACHE_DIR": "/mine"}, "linux", None),  # the user's own folder stands
    ({"NUMBA_CACHE_DIR": "", "HOME": "/h"}, "linux", "/h/.cache/fastvar/numba"),
    ({"HOME": "/h"}, "linux", "/h/.cache/fastvar/numba"),
    ({"HOME": "/h", "XDG_CACHE_HOME": "/x"}, "linux", "/x/fastvar/numba"),
    ({"HOME": "/h", "XDG_CACHE_HOME": "rel"}, "linux", "/h/.cache/fastvar/numba"),
    ({"HOME": "/h"}, "darwin", "/h/Library/Caches/fastvar/numba"),
])
def test_numba_cache_dir_is_per_user_unless_numba_cache_dir_is_set(environ, platform, expected):
    from fastvar._env import numba_cache_dir

    assert numba_cache_dir(environ, platform) == expected


def test_numba_cache_stays_out_of_the_installed_package(tmp_path):
    # numba's cache files in site-packages/fastvar/kernels/__pycache__ outlived `pip
    # uninstall` and made the next install's `import fastvar` an empty namespace package
    package = Path(fastvar.__file__).parent
    shutil.copytree(package, tmp_path / "fastvar", ignore=shutil.ignore_patterns("__pycache__"))
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env.update(PYTHONPATH=str(tmp_path), XDG_CACHE_HOME=str(tmp_path / "cache"),
               PYTHONDONTWRITEBYTECODE="1")
    # the numpy engine: only the activation ufuncs compile, in seconds
    done = subprocess.run([sys.executable, "-m", "fastvar"] + TINY + ["--engine", "numpy"],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert not [p for p in (tmp_path / "fastvar").rglob("*") if p.name == "__pycache__"]
    assert list((tmp_path / "cache" / "fastvar" / "numba").rglob("*.nbi"))


def test_an_unwritable_numba_cache_dir_warns_once_and_uses_the_per_user_one(tmp_path):
    # the reported case: NUMBA_CACHE_DIR=/proc/nope said nothing, and numba cached the
    # kernels in the installed package's kernels/__pycache__
    package = Path(fastvar.__file__).parent
    shutil.copytree(package, tmp_path / "fastvar", ignore=shutil.ignore_patterns("__pycache__"))
    blocker = tmp_path / "blocker"
    blocker.write_text("not a folder")
    env = dict(os.environ, PYTHONPATH=str(tmp_path), NUMBA_CACHE_DIR=str(blocker / "numba"),
               XDG_CACHE_HOME=str(tmp_path / "cache"), PYTHONDONTWRITEBYTECODE="1")
    done = subprocess.run([sys.executable, "-m", "fastvar"] + TINY + ["--engine", "numpy"],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    used = tmp_path / "cache" / "fastvar" / "numba"
    said = " ".join(line.strip() for line in done.stderr.splitlines())
    assert said.count("warning") == 1 and "is not a writable folder" in said, said
    assert str(used) in said, said
    assert not [p for p in (tmp_path / "fastvar").rglob("*") if p.name == "__pycache__"]
    assert list(used.rglob("*.nbi"))
    done = subprocess.run([sys.executable, "-m", "fastvar", "info"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=600)
    assert f"cache dir {used}" in done.stdout, done.stdout


def test_an_empty_numba_num_threads_is_unset():
    # the reported case: NUMBA_NUM_THREADS='' was refused (numba's own reading warns)
    env = dict(os.environ, NUMBA_NUM_THREADS="")
    done = subprocess.run([sys.executable, "-m", "fastvar"] + TINY + ["--engine", "numpy"],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0 and done.stderr == "", done.stderr[-3000:]
    assert "q_mean" in done.stdout


def test_cached_kernels_are_keyed_by_the_sources_of_all_kernel_files(tmp_path):
    # Numba checks only a kernel's own file: a change to a function it calls from another
    # file (an upgrade) ran the old compiled code from the shared per-user cache
    package = tmp_path / "copy" / "fastvar"
    shutil.copytree(Path(fastvar.__file__).parent, package,
                    ignore=shutil.ignore_patterns("__pycache__"))
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env.update(PYTHONPATH=str(package.parent), HOME=str(tmp_path), XDG_CACHE_HOME="")

    def folder() -> str:
        out = subprocess.run([sys.executable, "-c", "import fastvar, os; "
                              "print(os.environ['NUMBA_CACHE_DIR'])"], env=env, check=True,
                             capture_output=True, text=True, cwd=tmp_path).stdout.strip()
        return out

    before = folder()
    assert before.startswith(str(tmp_path / ".cache" / "fastvar" / "numba" / "kernels-"))
    with open(package / "kernels" / "activations.py", "a") as source:
        source.write("\n# changed\n")
    after = folder()
    assert after != before and os.path.dirname(after) == os.path.dirname(before)
