"""fastvar: how variance of signals and gradients propagates through deep random networks.

Monte Carlo over random networks at initialization, per-layer one-pass moments with
honest (between-trial) standard errors, on a NumPy reference engine and Numba engines.
"""
from ._version import __version__
from .activations import ACTIVATION_NAMES, Activation
from .moments import Moments
from .network import Network, mlp
from .api import simulate
from .results import IncompleteStatisticsWarning, Result
from . import theory
from .plotting import plot
from .explain import terms

__all__ = ["__version__", "ACTIVATION_NAMES", "Activation", "IncompleteStatisticsWarning", "Moments", "Network", "Result", "mlp",
           "plot", "simulate", "terms", "theory"]
