"""Checkpoints: finished work saved as it goes, so that a killed run or sweep resumes.

A checkpoint is a folder of small files, each written atomically (:func:`fastvar._files.
write_file`: temporary file, fsync, rename), so a kill at any moment (SIGKILL included)
leaves every file whole or absent. A run's folder (:class:`Checkpoint`) holds

* ``request.json``: the request's fingerprint (:func:`fingerprint`) and the format
  (``"format": FORMAT``; folders written before it had none and are read the same), to
  refuse another request with a clear error rather than mix its blocks in;
* ``prefix.bin``: the merged stats of blocks 0 .. P-1 (the running total of the in-order
  merge, so resuming and merging blocks P, P+1, ... gives bitwise the uninterrupted result);
* ``range-FIRST-COUNT.bin``: per-block stats of a range completed beyond the prefix (Dask
  tasks finish out of order); removed once the prefix has grown past it.

A sweep's folder (:class:`SweepCheckpoint`) holds ``NAME.bin``, the finished Result of the
configuration whose fingerprint is NAME, and ``NAME.run``, the run folder of that
configuration while it runs.

Every ``.bin`` file (a piece) starts with the line ``fastvar-checkpoint 1`` (its format),
a SHA-256 of the rest and a JSON header naming the digest of the request (or the
configuration) it belongs to; a file whose checksum, digest or shape does not check out (a
truncated copy, a flipped byte) is not trusted: it is removed with a warning and its work
is done again. A readable piece of another request is refused.

:func:`hash_hex` is the one hash of fastvar's names, checksums and sweep seeds.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import re
import warnings
from typing import Any, Mapping

import numpy as np

from . import formats
from ._files import write_file
from ._hashing import canonical_json, hash_hex
from ._version import __version__
from .engines.base import Plan
from .kernels.accumulators import STATS_SIZE
from .results import Result

FORMAT = formats.CHECKPOINT  # request.json's "format" (the unversioned ones are 1)
_MAGIC = formats.PIECE  # the first line, and format, of every piece
_REQUEST = "request.json"
_PREFIX = "prefix.bin"
_RANGE = re.compile(r"range-(\d+)-(\d+)\.bin")


class CheckpointWarning(RuntimeWarning):
    """A checkpoint file was damaged (truncated, altered): its work is done again."""


def fingerprint(request: Plan, engine: str) -> dict[str, Any]:
    """Everything a block's stats depend on, as a JSON-able dict.

    Network, trials, seed, engine (its resolved name) and block size, the inputs (kind and a
    SHA-256 of the data rows), inputs_per_network, correlation, gradients, histograms (only
    when on, so that the fingerprints of earlier requests stay what they were) and the
    fastvar version (kernels may change between versions); jacobian likewise only when on.

    Parameters
    ----------
    request : Plan
        The planned request.
    engine : str
        The resolved engine name.

    Returns
    -------
    dict
        JSON-able; equal for two requests exactly when their blocks' stats are equal.
    """
    data = np.ascontiguousarray(request.data, dtype=np.float64)
    c0 = request.correlation
    return {"network": request.network.to_dict(), "trials": request.trials,
            "seed": request.seed, "engine": engine,
            "networks_per_block": request.networks_per_block,
            "inputs_kind": request.inputs_kind, "inputs_shape": list(data.shape),
            "inputs_sha256": hash_hex(data.tobytes()),
            "inputs_per_network": request.inputs_per_network,
            "correlation": None if math.isnan(c0) else c0.hex(),  # exact, and JSON-safe
            "gradients": request.gradients, "fastvar": __version__,
            **({"histograms": True} if request.histograms else {}),
            **({"jacobian": True} if request.jacobian else {})}


_INPUTS = ("normal", "data", "pair", "row pair")  # inputs_kind, by its code


def _shown(key: str, value: Any) -> str:
    """A fingerprint's value as the user set it: an option left off reads False or off."""
    if key in ("histograms", "jacobian"):  # present only when on
        return repr(bool(value))
    if key == "correlation":  # float.hex, or None when off
        return "off" if value is None else repr(float.fromhex(value))
    if key == "inputs_kind" and isinstance(value, int) and 0 <= value < len(_INPUTS):
        return repr(_INPUTS[value])
    return "absent" if value is None else repr(value)


SHOWN_CHARS = 120  # one value in a mismatch message, at most (a deep network's lists)
DIFFERENCES_CHARS = 2000  # the whole message, at most


def _brief(value: Any) -> str:
    """A value for a message: lists as runs (``[4x3001]``), cut to SHOWN_CHARS."""
    if not isinstance(value, (list, tuple)):
        text = repr(value)
        return text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS] + "…"
    runs: list[list] = []
    for item in value:
        if runs and runs[-1][0] == item:
            runs[-1][1] += 1
        else:
            runs.append([item, 1])
    text = "[" + ", ".join(repr(v) if n == 1 else f"{v!r}x{n}" for v, n in runs) + "]"
    if len(text) > SHOWN_CHARS:
        text = text[:SHOWN_CHARS] + f"… ({len(value)} values)"
    return text


def _field(name: str, there: Any, here: Any) -> str:
    """``the network differs in NAME: ...`` with short values (and, for two lists, where)."""
    said = f"the network differs in {name}: {_brief(there)} there, {_brief(here)} now"
    if isinstance(there, list) and isinstance(here, list) and max(len(there), len(here)) > 8:
        first = next((i for i, (a, b) in enumerate(zip(there, here)) if a != b),
                     min(len(there), len(here)))
        said += f" ({len(there)} and {len(here)} values, first differing at index {first})"
    return said


def differences(saved: Mapping[str, Any], now: Mapping[str, Any]) -> str:
    """What differs between two fingerprints, as ``key=THERE there, NOW now`` phrases.

    Parameters
    ----------
    saved, now : mapping
        Fingerprints (:func:`fingerprint`): the one a checkpoint holds, and this request's.

    Returns
    -------
    str
        The differing options separated by ``"; "``, each with its saved and current value
        as the user would write it (an option off reads ``False`` or ``off``, not
        ``None``); the network's differing fields as ``the network differs in FIELD: ...``,
    long lists summarized as runs (``[4x3001]``), their lengths and first differing index;
    the whole cut to DIFFERENCES_CHARS characters.
    """
    said = []
    for key in sorted(set(saved) | set(now)):
        there, here = saved.get(key), now.get(key)
        if key == "network" and isinstance(there, dict) and isinstance(here, dict):
            said += [_field(k, there.get(k), here.get(k))
                     for k in sorted(set(there) | set(here)) if there.get(k) != here.get(k)]
        elif _shown(key, there) != _shown(key, here):
            said.append(f"{key}={_shown(key, there)} there, {_shown(key, here)} now")
    text = "; ".join(said) or "nothing differs"
    return text if len(text) <= DIFFERENCES_CHARS else text[:DIFFERENCES_CHARS] + "…"


def digest(print_: dict[str, Any]) -> str:
    """SHA-256 of a fingerprint: names the request in files and in Dask task keys.

    Parameters
    ----------
    print_ : dict
        A :func:`fingerprint`.

    Returns
    -------
    str
        64 hex digits.
    """
    return hash_hex(json.dumps(print_, sort_keys=True))


def _pack(header: dict[str, Any], payload: np.ndarray) -> bytes:
    rest = json.dumps(header, sort_keys=True).encode() + b"\n" + payload.astype("<f8").tobytes()
    return _MAGIC + hash_hex(rest).encode() + b"\n" + rest


def _unpack(blob: bytes) -> tuple[dict[str, Any], np.ndarray]:
    """(header, float64 payload) of a file made by :func:`_pack`; ValueError saying why
    not if it is damaged."""
    if not blob.startswith(_MAGIC):
        raise ValueError("it does not start as a fastvar checkpoint piece")
    body = blob[len(_MAGIC):]
    check, _, rest = body.partition(b"\n")
    if hash_hex(rest).encode() != check:
        raise ValueError("its checksum does not match: truncated or altered")
    head, _, payload = rest.partition(b"\n")
    try:
        header = json.loads(head)
        shape = tuple(int(n) for n in header["shape"])
    except (ValueError, KeyError, TypeError):
        raise ValueError("its header is unreadable") from None
    if len(payload) != 8 * math.prod(shape):
        raise ValueError(f"its payload does not have the shape {shape}")
    return header, np.frombuffer(payload, dtype="<f8").reshape(shape).astype(np.float64)


def _read_piece(path: str, kind: str, again: str,
                stacklevel: int) -> "tuple[dict[str, Any], np.ndarray] | None":
    """A piece's header and payload; None if it is gone, or damaged (then removed, with a
    CheckpointWarning ending in ``again``: what is done instead)."""
    try:
        with open(path, "rb") as fh:
            found = _unpack(fh.read())
        if found[0].get("kind") != kind:
            raise ValueError(f"it is no {kind} piece")
        return found
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        warnings.warn(f"checkpoint {path} is damaged ({err}); {again}", CheckpointWarning,
                      stacklevel=stacklevel + 1)
        _remove(path)
        return None


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _open_folder(path: "str | os.PathLike") -> str:
    """Make (one level) or check a checkpoint folder before any work; its absolute path."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"checkpoint must be a folder path (str or os.PathLike), "
                        f"got {type(path).__name__}")
    if not os.fspath(path):
        raise ValueError("checkpoint is an empty path; give a folder name")
    path = os.path.abspath(os.fspath(path))
    if os.path.exists(path) and not os.path.isdir(path):
        raise NotADirectoryError(f"checkpoint {path} is a file, not a folder; give a "
                                 "folder (created if missing)")
    if not os.path.isdir(path):
        parent = os.path.dirname(path)
        if not os.path.isdir(parent):
            raise FileNotFoundError(f"cannot make checkpoint {path}: folder {parent} "
                                    "does not exist")
        try:
            os.mkdir(path)
        except FileExistsError:  # made meanwhile by another process: checked below
            pass
        except OSError as err:
            raise OSError(f"cannot make checkpoint {path}: {err.strerror}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise PermissionError(f"checkpoint folder {path} is not writable")
    return path


class Checkpoint:
    """The checkpoint folder of one request.

    Opening it checks, before any work, that the folder can be created and written and
    that it belongs to this request (ValueError naming what differs, if not).

    Parameters
    ----------
    path : str or os.PathLike
        The folder (made if missing, one level).
    request : Plan
        The planned request.
    engine : str
        The resolved engine name.

    Raises
    ------
    TypeError, ValueError, OSError
        A path that cannot be a checkpoint folder (a file, a missing parent, not writable),
        a folder of other files, of another format, or of another request (the message names
        what differs, with the values as the user set them).
    """

    def __init__(self, path: "str | os.PathLike", request: Plan, engine: str) -> None:
        existed = os.path.isdir(path) if isinstance(path, (str, os.PathLike)) else True
        self.path = _open_folder(path)
        self.request = request
        self.fingerprint = fingerprint(request, engine)
        self.digest = digest(self.fingerprint)
        self._shape = (request.network.depth, request.stats_rows, STATS_SIZE)
        try:
            self._open()
        except BaseException:
            if not existed:  # the folder made for this run, empty (a full disk, say): gone
                with contextlib.suppress(OSError):
                    os.rmdir(self.path)
            raise

    def _open(self) -> None:
        path = self.path
        mine = os.path.join(path, _REQUEST)
        try:
            with open(mine, "rb") as fh:
                saved = json.loads(fh.read())
            if not isinstance(saved, dict):
                raise ValueError("not a JSON object")
        except FileNotFoundError:
            saved = None
            strange = [n for n in os.listdir(path) if not n.startswith(".fastvar-")]
            if strange:  # never take over (and later delete in) a folder of someone else's
                raise ValueError(f"checkpoint folder {path} holds other files ({strange[0]}, "
                                 "...) but no fastvar request.json; give a new or empty folder")
        except (ValueError, OSError):
            saved = None  # damaged: pieces still carry the digest and are checked one by one
            warnings.warn(f"checkpoint {mine} was damaged; written again", CheckpointWarning,
                          stacklevel=3)
        if saved is not None and saved.pop("format", FORMAT) != FORMAT:
            raise ValueError(f"checkpoint {path} has another format than {FORMAT} (a newer "
                             "fastvar's?); use another folder, or delete it to start over")
        if saved is not None and saved != self.fingerprint:
            # the same request cut into other blocks: written by a fastvar that sized the
            # blocks of small runs otherwise (a run of fewer networks than one block is cut
            # for the threads since December 2026)
            blocks_only = ({k for k in set(saved) | set(self.fingerprint)
                            if saved.get(k) != self.fingerprint.get(k)} == {"networks_per_block"})
            why = (": the same request cut into other blocks, by another version of fastvar; "
                   "finish it with that version, or" if blocks_only else "; use another folder, or")
            raise ValueError(f"checkpoint {path} belongs to another request "
                             f"({differences(saved, self.fingerprint)}){why} delete it to start "
                             "over")
        if saved is None:
            write_file(mine, json.dumps({"format": FORMAT, **self.fingerprint}, indent=1,
                                        sort_keys=True) + "\n")

    def _file(self, name: str) -> str:
        return os.path.join(self.path, name)

    def _read(self, name: str, kind: str) -> "tuple[dict[str, Any], np.ndarray] | None":
        """A piece's header and payload, None if it is gone or damaged (then removed)."""
        found = _read_piece(self._file(name), kind, "its blocks are computed again", 4)
        if found is not None and found[0].get("request") != self.digest:
            raise ValueError(f"checkpoint {self._file(name)} belongs to another request "
                             f"(digest {str(found[0].get('request'))[:12]}..., this one "
                             f"{self.digest[:12]}...); use another folder")
        return found

    def _remove(self, name: str) -> None:
        _remove(self._file(name))

    def load(self) -> tuple[int, np.ndarray, dict[int, np.ndarray]]:
        """The work saved so far.

        Damaged pieces are removed with a :class:`CheckpointWarning` (their blocks are computed
        again), as are ranges the prefix already holds or that overlap.

        Returns
        -------
        blocks : int
            P: blocks 0 .. P-1 are merged in the prefix.
        total : numpy.ndarray
            Their merged stats, shape (L, ROWS, S) (zeros for P = 0).
        ranges : dict of int to numpy.ndarray
            First block -> per-block stats of shape (count, L, ROWS, S), of the saved ranges
            beyond P that do not overlap.

        Raises
        ------
        ValueError
            A readable piece of another request.
        """
        done, total = 0, np.zeros(self._shape)
        found = self._read(_PREFIX, "prefix")
        if found is not None:
            header, stats = found
            if stats.shape == self._shape and 0 < header.get("blocks", 0) <= self.request.blocks:
                done, total = int(header["blocks"]), stats
            else:
                self._remove(_PREFIX)
        ranges: dict[int, np.ndarray] = {}
        end = done
        names = [(int(m[1]), int(m[2]), n) for n in os.listdir(self.path)
                 if (m := _RANGE.fullmatch(n))]
        for first, count, name in sorted(names):
            if first < end or first + count > self.request.blocks:
                self._remove(name)  # folded into the prefix already, or overlapping
                continue
            found = self._read(name, "range")
            if found is None:
                continue
            stats = found[1]
            if stats.shape != (count,) + self._shape or found[0].get("first") != first:
                self._remove(name)
                continue
            ranges[first], end = stats, first + count
        return done, total, ranges

    def save_prefix(self, blocks: int, total: np.ndarray) -> None:
        """Replace the prefix with the merge of blocks 0 .. blocks - 1, atomically.

        Parameters
        ----------
        blocks : int
            How many blocks it holds.
        total : numpy.ndarray
            Their merged stats, shape (L, ROWS, S).
        """
        header = {"kind": "prefix", "request": self.digest, "blocks": int(blocks),
                  "shape": list(total.shape)}
        write_file(self._file(_PREFIX), _pack(header, total))

    def save_range(self, first: int, stats: np.ndarray) -> None:
        """Save the per-block stats of a range of blocks beyond the prefix, atomically.

        Parameters
        ----------
        first : int
            The range's first block.
        stats : numpy.ndarray
            Per-block stats of blocks first .. first + count - 1, shape (count, L, ROWS, S).
        """
        header = {"kind": "range", "request": self.digest, "first": int(first),
                  "shape": list(stats.shape)}
        write_file(self._file(f"range-{first}-{stats.shape[0]}.bin"), _pack(header, stats))

    def drop_ranges_below(self, blocks: int) -> None:
        """Remove the range files that the prefix now holds.

        Parameters
        ----------
        blocks : int
            The prefix holds blocks 0 .. blocks - 1.
        """
        for name in os.listdir(self.path):
            m = _RANGE.fullmatch(name)
            if m and int(m[1]) < blocks:
                self._remove(name)



class SweepCheckpoint:
    """The checkpoint folder of a sweep: the finished Result of each configuration.

    Keyed by a configuration's fingerprint ``name`` (a hash of its identity, seed, trials
    and engine), so sweeps that share a configuration share its Result. ``name.bin`` is a
    piece of kind "result": the Result's metadata (:meth:`Result.to_dict` less its stats
    and columns) in the header, its stats as the payload. ``name.json`` files (the format
    "fastvar sweep checkpoint" of fastvar 0.1: one JSON record with its own checksum) are
    still read. Opening makes the folder (one level) or checks it, before any work.

    Parameters
    ----------
    path : str or os.PathLike
        The folder.
    """

    def __init__(self, path: "str | os.PathLike") -> None:
        self.path = _open_folder(path)

    def run_folder(self, name: str) -> str:
        """The :class:`Checkpoint` folder of a configuration while it runs.

        Parameters
        ----------
        name : str
            The configuration's fingerprint.

        Returns
        -------
        str
            The path ``PATH/name.run``.
        """
        return os.path.join(self.path, f"{name}.run")

    def save(self, name: str, result: Result, configuration: Mapping[str, Any]) -> None:
        """Keep the finished Result of a configuration, atomically.

        Parameters
        ----------
        name : str
            The configuration's fingerprint.
        result : Result
            Its Result.
        configuration : mapping
            Its grid values, kept for whoever reads the header.
        """
        meta = result.to_dict()
        del meta["stats"], meta["columns"]  # columns follow from the stats
        header = {"kind": "result", "request": name, "configuration": dict(configuration),
                  "result": meta, "shape": list(result.stats.shape)}
        write_file(os.path.join(self.path, f"{name}.bin"), _pack(header, result.stats))

    def load(self, name: str) -> "Result | None":
        """The Result saved for a configuration.

        Parameters
        ----------
        name : str
            The configuration's fingerprint.

        Returns
        -------
        Result or None
            None if there is none, or if it is damaged, altered or another's (then it is removed
            with a :class:`CheckpointWarning`).
        """
        again = "its configuration runs again"
        path = os.path.join(self.path, f"{name}.bin")
        found = _read_piece(path, "result", again, 3)
        try:
            if found is not None:
                if found[0].get("request") != name:
                    raise ValueError("it belongs to another configuration")
                return Result.from_dict({**found[0]["result"], "stats": found[1]})
            path = os.path.join(self.path, f"{name}.json")
            with open(path, encoding="utf-8") as fh:
                data = json.load(fh)
            if data.get("fingerprint") != name:
                raise ValueError("it belongs to another configuration")
            if data.get("checksum") != hash_hex(canonical_json(data["result"])):
                raise ValueError("its checksum does not match: it was altered or damaged")
            return Result.from_dict(data["result"])
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as err:
            warnings.warn(f"checkpoint {path} is damaged ({err}); {again}", CheckpointWarning,
                          stacklevel=2)
            _remove(path)
            return None
