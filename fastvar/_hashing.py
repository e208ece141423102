"""The one hash of fastvar's names, checksums and seeds, and the JSON text it is taken of."""
from __future__ import annotations

import hashlib
import json
from typing import Any


def hash_hex(data: "str | bytes", size: "int | None" = None) -> str:
    """The hash of fastvar's names, checksums and sweep seeds, as hex.

    Parameters
    ----------
    data : str or bytes
        What is hashed (str as UTF-8).
    size : int or None
        None: SHA-256 (a request's digest, a data set in a request's fingerprint, a piece's
        checksum). A number of bytes (1 to 64): BLAKE2b of that size personalised
        ``fastvar.sweep`` (a sweep configuration's seed, 8 bytes, and its fingerprint and
        data-set digest, 16 bytes).

    Returns
    -------
    str
        ``2 * size`` hex digits (64 for SHA-256). Files already written and seeds already
        published depend on these values: they never change.
    """
    if isinstance(data, str):
        data = data.encode("utf-8")
    if size is None:
        return hashlib.sha256(data).hexdigest()
    return hashlib.blake2b(data, digest_size=size, person=b"fastvar.sweep").hexdigest()


def canonical_json(value: Any) -> str:
    """Strict JSON with sorted keys and no spaces: the text a sweep's hashes are taken of."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)
