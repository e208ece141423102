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


def wrapped_at_commas(text: str) -> list[str]:
    """``text`` as lines of at most WIDTH characters, broken after its commas where it can
    (so that a phrase such as "layer norm" stays on one line), continued with an indent."""
    lines: list[str] = []
    for part in text.split(", "):
        joined = f"{lines[-1]}, {part}" if lines else part
        if lines and len(joined) < WIDTH:  # room for the comma a continued line ends with
            lines[-1] = joined
        else:
            if lines:
                lines[-1] += ","
            lines += wrapped("  " if lines else "", part)
    return lines or [""]


def wrapped(prefix: str, text: str) -> list[str]:
    """``prefix + text`` as lines of at most WIDTH characters, continued with an indent."""
    return textwrap.wrap(prefix + text, WIDTH, subsequent_indent="  ", break_long_words=False,
                         break_on_hyphens=False) or [prefix]


def table_lines(heads: list[str], rows: list[list[str]], keep: int = 2,
                width: "int | None" = WIDTH) -> list[str]:
    """A right-aligned text table: a header line, then one line per row.

    Wider than ``width`` characters, its columns after the first ``keep`` (the row labels,
    repeated) are cut into blocks that fit, one under the other with a blank line between
    them, as pandas prints a wide frame; ``width=None`` never cuts.
    """
    sizes = [max([len(h)] + [len(r[j]) for r in rows]) for j, h in enumerate(heads)]
    blocks, block = [], list(range(keep))
    for j in range(keep, len(heads)):
        wider = sum(sizes[i] for i in block + [j]) + 2 * len(block)
        if width is not None and len(block) > keep and wider > width:
            blocks.append(block)
            block = list(range(keep))
        block.append(j)
    lines: list[str] = []
    for block in blocks + [block]:
        lines += [""] if lines else []
        lines += ["  ".join(cells[j].rjust(sizes[j]) for j in block) for cells in [heads] + rows]
    return lines
