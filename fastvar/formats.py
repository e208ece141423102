"""The format versions of the files fastvar writes, and the ones this version reads.

Every file carries its version in a top-level ``"format"`` key; readers check it first, so
that a file of a later version is refused with a clear message rather than misread. Files
written before versions existed are read too: a Result's without the key, a Sweep's with
``"fastvar sweep"``.

A file fastvar writes also carries a ``"checksum"``: the SHA-256 (:func:`fastvar.checkpoint.
hash_hex`) of the canonical JSON of the document less that key (:func:`checksum`). A reader
refuses a document whose checksum does not match, which then was edited or damaged after
fastvar wrote it, unless told ``verify=False``: it then loads flagged as unverified, the
reason kept in an ``"unverified"`` key when it is written again (:func:`verification`).
Files written before checksums existed have none and load as before. The format names did
not change with the checksum: it is an extra key, which earlier versions of fastvar ignore.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from ._hashing import canonical_json, hash_hex

RESULT = "fastvar.result/4"  # Result.to_dict (3: optional "histograms", "normal_inputs";
#                              4: optional "jacobian")
SWEEP = "fastvar.sweep/2"  # Sweep.to_dict
# a checkpoint folder's request.json (folders without the key are version 1, read the same);
# its binary pieces start with the line PIECE
CHECKPOINT = "fastvar.checkpoint/2"
PIECE = b"fastvar-checkpoint 1\n"
# the formats whose files fastvar always wrote with a checksum (its absence is an edit)
CHECKSUMMED = (RESULT, "fastvar.result/3", "fastvar.result/2", SWEEP)
# kind -> the "format" values this version reads (None: no key), the current one first
READS = {"result": (RESULT, "fastvar.result/3", "fastvar.result/2", None),
         "sweep": (SWEEP, "fastvar sweep")}


def _readable() -> str:
    return "; ".join(f"{kind}s " + " or ".join("without one" if name is None else repr(name)
                                                 for name in names)
                     for kind, names in READS.items())


def file_kind(data: Mapping[str, Any], expected: "str | None" = None) -> str:
    """What a dict read from a file holds, by its ``"format"``: "result" or "sweep".

    Raises ValueError when the format is none this version reads (a later version's file,
    say), or, if ``expected`` (a kind of :data:`READS`) is given, another kind's; the
    message names the format found and those this version reads.

    Parameters
    ----------
    data : mapping
        The dict read from a file.
    expected : str or None
        The kind wanted ("result" or "sweep"); None takes either.

    Returns
    -------
    str
        "result" or "sweep".
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


def checksum(document: Mapping[str, Any]) -> str:
    """The checksum of a file's document: SHA-256 (hex) of the canonical JSON
    (:func:`fastvar._hashing.canonical_json`) of ``document`` less its ``"checksum"``.

    Raises ValueError for what strict JSON cannot hold (NaN, which no file fastvar writes
    holds) or nests too deeply to serialize.

    Parameters
    ----------
    document : mapping
        A file's document.

    Returns
    -------
    str
        64 hex digits.
    """
    # fastvar.checkpoint imports Result, whose module imports this one

    try:
        text = canonical_json({k: v for k, v in document.items() if k != "checksum"})
    except RecursionError:
        raise ValueError("it is nested too deeply to be a file fastvar wrote") from None
    return hash_hex(text)


def with_checksum(document: Mapping[str, Any]) -> dict[str, Any]:
    """A document with its :func:`checksum` as its second key, after ``"format"``.

    There a reader opening the file sees it.

    Parameters
    ----------
    document : mapping
        A file's document (any ``"checksum"`` in it is replaced).

    Returns
    -------
    dict
    """
    head = {k: v for k, v in document.items() if k == "format"}
    return {**head, "checksum": checksum(document),
            **{k: v for k, v in document.items() if k not in head and k != "checksum"}}


def checksum_problem(document: Mapping[str, Any]) -> "str | None":
    """Why the ``"checksum"`` of a document does not check out.

    Parameters
    ----------
    document : mapping
        A file's document.

    Returns
    -------
    str or None
        The reason; None when it checks out or the document has none (a file written before
        checksums existed).
    """
    if "checksum" not in document:
        return None
    if document["checksum"] is None:
        return ("it has no checksum, which every file of its format carries (the key was "
                "removed)")
    try:
        found = checksum(document)
    except (TypeError, ValueError) as err:
        return f"its content cannot be checksummed ({err})"
    if document["checksum"] != found:
        return "its checksum does not match its content"
    return None


def verification(kind: str, document: Mapping[str, Any], problems: Sequence[str],
                 verify: bool) -> "str | None":
    """The reason a document of ``kind`` ("result" or "sweep") loads flagged as unverified,
    or None; ValueError if ``problems`` (its checksum or metadata not checking out) and
    ``verify``.

    The reason gathers the document's own ``"unverified"`` (it was flagged when it was
    written) and ``problems``; the message of the ValueError says how to load it anyway.

    Parameters
    ----------
    kind : {"result", "sweep"}
        What the document holds.
    document : mapping
        The document.
    problems : sequence of str
        What did not check out (empty: nothing).
    verify : bool
        Refuse a document with problems.

    Returns
    -------
    str or None
        The reason it loads unverified; None when it does not.

    Raises
    ------
    ValueError
        ``problems`` and ``verify``.
    TypeError
        ``verify`` not a bool, or a malformed ``"unverified"``.
    """
    if not isinstance(verify, bool):
        raise TypeError(f"verify must be True or False, got {verify!r}")
    earlier = document.get("unverified")
    if earlier is not None and not isinstance(earlier, str):
        raise TypeError(f"unverified must be null or the reason as a string, got {earlier!r}")
    shown = "; ".join(problems[:3]) + (f"; and {len(problems) - 3} more"
                                       if len(problems) > 3 else "")
    if problems and verify:
        raise ValueError(f"this {kind} was edited or damaged after fastvar wrote it: {shown}. "
                         f"fastvar refuses it; to read it anyway, flagged as unverified, pass "
                         f"verify=False (fastvar.load(path, verify=False), or "
                         f"{kind.capitalize()}.from_dict(data, verify=False))")
    reasons = [earlier] if earlier else []
    if problems:
        reasons.append(shown)
    return "; ".join(reasons) if reasons else None
