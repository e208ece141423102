"""fastvar: how variance of signals and gradients propagates through deep random networks.

Monte Carlo over random networks at initialization, per-layer one-pass moments with
honest (between-trial) standard errors, on a NumPy reference engine and Numba engines.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from ._env import keep_numba_cache_out_of_package
from ._version import __version__

# before any module of the package imports numba: its cache files in the installed package
# would outlive `pip uninstall` (see fastvar._env)
keep_numba_cache_out_of_package()

if TYPE_CHECKING:
    from . import theory
    from .activations import ACTIVATION_NAMES, Activation
    from .api import simulate
    from .explain import terms
    from .moments import Moments
    from .network import Network, mlp
    from .plotting import plot
    from .results import Histogram, IncompleteStatisticsWarning, Result
    from .interrupts import Interrupted, SweepInterrupted
    from .sweeps import Sweep, load, sweep

# Public name -> the submodule defining it. They load on first use (PEP 562), so that
# `import fastvar` and the `fastvar` command start without NumPy and Numba (over a second):
# a Ctrl-C or a bad NUMBA_* variable then reaches the command's handler, not a traceback.
_EXPORTS = {"ACTIVATION_NAMES": "activations", "Activation": "activations",
            "Moments": "moments", "Network": "network", "mlp": "network", "simulate": "api",
            "Result": "results", "Histogram": "results",
            "IncompleteStatisticsWarning": "results", "theory": None,
            "plot": "plotting", "terms": "explain", "Interrupted": "interrupts",
            "SweepInterrupted": "interrupts", "sweep": "sweeps", "Sweep": "sweeps",
            "load": "sweeps"}
_SUBMODULES = ("activations", "api", "bench", "checkpoint", "cli", "dask_runner", "engines",
               "explain", "fits", "interrupts", "kernels", "moments", "network", "plotting",
               "results", "runs", "sweeps", "theory")

__all__ = ["__version__", "ACTIVATION_NAMES", "Activation", "Histogram",
           "IncompleteStatisticsWarning",
           "Interrupted", "Moments", "Network", "Result", "Sweep", "SweepInterrupted", "load",
           "mlp", "plot", "simulate", "sweep", "terms", "theory"]


_loaded = False


def _load_all() -> None:
    # everything at once, as an eager import did: fastvar.kernels.accumulators and the
    # engine registry are then there whichever name is touched first; once is enough
    global _loaded
    if _loaded:
        return
    for name, module in _EXPORTS.items():
        importlib.import_module(f".{module or name}", __name__)
    _loaded = True


def __getattr__(name: str):
    # names are looked up in their module on every access, not copied here: a copy would
    # keep whatever the module held at first use (a test's monkeypatch, say) for ever
    if name in _EXPORTS or name in _SUBMODULES:
        module = _EXPORTS.get(name)
        if module != "interrupts":  # `except fastvar.Interrupted:` loads nothing heavy
            _load_all()
        value = importlib.import_module(f".{module or name}", __name__)
        return value if module is None else getattr(value, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    # the public names only: not this module's own imports (importlib, TYPE_CHECKING, ...)
    return sorted(set(__all__) | set(_SUBMODULES))
