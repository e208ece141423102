"""Engines: the NumPy reference and the Numba engines, registered by name."""
from . import numpy_engine  # noqa: F401  (registers "numpy")
from . import exact  # noqa: F401  (registers "exact")
from . import direct  # noqa: F401  (registers "direct")
from .base import ENGINES, Engine, Plan, choose, register

__all__ = ["ENGINES", "Engine", "Plan", "choose", "register"]
