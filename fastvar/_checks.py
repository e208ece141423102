"""Argument checks shared by the public API: one clear error saying what to change."""
from __future__ import annotations

import math
import numbers


def check_real(name: str, value, minimum: float, strict: bool) -> float:
    """``value`` as a finite float >= ``minimum`` (> if ``strict``), else TypeError/ValueError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if value < minimum or (strict and value == minimum):
        relation = ">" if strict else ">="
        raise ValueError(f"{name} must be {relation} {minimum:g}, got {shown(value)}")
    return value


def shown(value: float) -> str:
    """``value`` as short as it reads back exactly: 1e-05, not 1.0000000000000001e-05, but
    -1.0000001, not -1 (which would contradict a message saying it is out of range)."""
    short = f"{value:g}"
    return short if float(short) == value else repr(value)


def check_int(name: str, value, minimum: int, maximum: int) -> int:
    """``value`` as an int in [minimum, maximum] (bool refused), else TypeError/ValueError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if not minimum <= value <= maximum:
        raise ValueError(f"{name} must be between {minimum} and {maximum}, got "
                         f"{_whole(int(value))}")
    return int(value)


def _whole(value: int) -> str:
    # an integer, its digits beyond 30 as an exponent: 1e400 is not printed in 401 digits
    digits = str(abs(value))
    if len(digits) <= 30:
        return str(value)
    return f"{'-' if value < 0 else ''}{digits[0]}.{digits[1:4]}e+{len(digits) - 1}"
