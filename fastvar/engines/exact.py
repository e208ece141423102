"""The exact engine: O(L n) per trial by Gaussian conditioning (DESIGN.md section 5).

Work in progress: registered so the engine list is stable; it declines every request
until its kernel lands, so "auto" never picks it.
"""
from __future__ import annotations

from .base import Engine, Plan, register


class ExactEngine(Engine):
    name = "exact"
    priority = 20
    summary = "Numba, O(L n) per trial: exact in law for Gaussian weights (forward and backward)"

    def unsupported(self, plan: Plan) -> "str | None":
        return "the exact engine is not finished yet"


register(ExactEngine())
