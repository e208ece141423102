"""The format versions of the files fastvar writes, and the ones this version reads.

Every file carries its version in a top-level ``"format"`` key; readers check it first, so
that a file of a later version is refused with a clear message rather than misread. Files
written before versions existed are read too: a Result's without the key, a Sweep's with
``"fastvar sweep"``.
"""
from __future__ import annotations

from typing import Any, Mapping

RESULT = "fastvar.result/2"  # Result.to_dict
SWEEP = "fastvar.sweep/2"  # Sweep.to_dict
# kind -> the "format" values this version reads (None: no key), the current one first
READS = {"result": (RESULT, None), "sweep": (SWEEP, "fastvar sweep")}


def _readable() -> str:
    return "; ".join(f"{kind}s " + " or ".join("without one" if name is None else repr(name)
                                                 for name in names)
                     for kind, names in READS.items())


def file_kind(data: Mapping[str, Any], expected: "str | None" = None) -> str:
    """What a dict read from a file holds, by its ``"format"``: "result" or "sweep".

    Raises ValueError when the format is none this version reads (a later version's file,
    say), or, if ``expected`` (a kind of :data:`READS`) is given, another kind's; the
    message names the format found and those this version reads.
    """
    found = data.get("format")
    key = found if found is None or isinstance(found, str) else object()  # lists: unhashable
    kind = next((k for k, names in READS.items() if key in names), None)
    if kind is not None and kind == (expected or kind):
        return kind
    said = "it has no 'format'" if found is None else f"its 'format' is {found!r}"
    if kind is not None:
        raise ValueError(f"not a {expected} dict but a {kind}'s ({said}; fastvar.load reads "
                         "either)")
    what = f"not a {expected} dict: " if expected else ""
    raise ValueError(f"{what}{said}, which this version of fastvar does not read (it reads "
                     f"{_readable()})")
