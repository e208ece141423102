"""How text meant for a terminal is written: the plus-minus sign, and lines that fit."""
from __future__ import annotations

import textwrap

#: the sign between a value and its standard error; "+/-" where the output stream cannot
#: encode "±" (set by the command line), so that tables stay aligned
PLUS_MINUS = "±"
WIDTH = 100  # characters: what a newcomer's terminal shows


def counted(n: int, noun: str) -> str:
    """``"1 trial"``, ``"2 trials"``: a count and its noun, singular or plural."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def use_ascii() -> None:
    """Write "+/-" instead of "±" from now on."""
    global PLUS_MINUS
    PLUS_MINUS = "+/-"


def wrapped(prefix: str, text: str) -> list[str]:
    """``prefix + text`` as lines of at most WIDTH characters, continued with an indent."""
    return textwrap.wrap(prefix + text, WIDTH, subsequent_indent="  ", break_long_words=False,
                         break_on_hyphens=False) or [prefix]
