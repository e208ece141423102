"""A Result in files: its dict and strict JSON (format :data:`fastvar.formats.RESULT`), read
back with every key checked, and its columns as CSV.

The stats array is the file's substance: every column is recomputed from it on reading, so
a file round-trips bitwise (finite floats as JSON floats, NaN as null, +-inf as "inf" /
"-inf"); the columns are written beside it for other readers (pandas, jq, a spreadsheet).
The JSON text carries a checksum of the whole document (:func:`fastvar.formats.checksum`),
checked on reading with the ``layer`` and ``width`` columns against the network.
"""
from __future__ import annotations

import itertools
import json
import math
import os
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from .. import formats
from .._checks import check_int, check_real
from .._files import float_from_json, json_float, write_file
from ..kernels.accumulators import (A, MOMENTS, NET, NONFINITE, PAIR, ROWS, STATS_SIZE,
                                    UNDEFINED, WELFORD)
from ..network import Network
from .histogram import BINS, QUANTITIES, RANGE, bin_scale

if TYPE_CHECKING:
    from .result import Result

# entries of a stats row that count things
_COUNTS = (MOMENTS, WELFORD, PAIR, NONFINITE, UNDEFINED)


def _plain_stats(value: Any, shape: tuple[int, int, int]) -> "np.ndarray | None":
    """The stats of a well-formed list of that shape holding only floats and None (NaN), as
    :meth:`Result.to_dict` writes them unless something overflowed; None for anything else.
    The quick path of :func:`_stats_from_json`: a deep network holds millions of entries."""
    depth, rows, size = shape
    if not (isinstance(value, list) and len(value) == depth and all(
            isinstance(layer, list) and len(layer) == rows
            and all(isinstance(row, list) and len(row) == size for row in layer)
            for layer in value)):
        return None
    cells = list(itertools.chain.from_iterable(itertools.chain.from_iterable(value)))
    if not set(map(type, cells)) <= {float, type(None)}:
        return None
    return np.array(cells, dtype=np.float64).reshape(shape)  # None: NaN, as float_from_json


def _stats_from_json(value: Any, depth: int, rows: int = ROWS) -> np.ndarray:
    """The stats array of a result dict: shape (depth, rows, STATS_SIZE), counts checked."""
    shape = (depth, rows, STATS_SIZE)
    stats = _plain_stats(value, shape)
    if stats is None:
        try:
            cells = np.array(value, dtype=object)
        except ValueError:  # ragged nesting
            cells = np.empty(0, dtype=object)
        if cells.shape != shape:
            raise ValueError(f"stats must have shape {shape} (layers of the network, rows z, "
                             "a, delta, per-network, links; accumulator entries), got "
                             f"{_shape_of(value)}")
        stats = np.empty(shape)
        for index, cell in np.ndenumerate(cells):
            stats[index] = float_from_json(f"stats{list(index)}", cell)
    counts = stats[..., list(_COUNTS)]
    bad = ~(np.isfinite(counts) & (counts >= 0) & (counts == np.floor(counts)))
    if bad.any():
        layer, quantity, which = np.argwhere(bad)[0]
        index = [int(layer), int(quantity), _COUNTS[which]]
        raise ValueError(f"stats{index} is a count and must be a whole number >= 0, "
                         f"got {stats[tuple(index)]}")
    return stats


def _check_consistent(stats: np.ndarray, trials: int, k: int, correlation, engine: str) -> None:
    """ValueError unless the metadata of a result dict agree with its stats."""
    from ..engines import ENGINES

    if engine not in ENGINES:
        raise ValueError(f"engine {engine!r} is none of {', '.join(ENGINES)}")
    networks = trials // k
    # every network adds its dead fraction at layer 1 unless an activation there was NaN
    counted, lost = stats[0, NET, MOMENTS], stats[0, A, NONFINITE]
    if counted > networks or (lost == 0 and counted != networks):
        raise ValueError(f"trials ({trials}) and inputs_per_network ({k}) say {networks} "
                         f"networks, but the stats hold {counted:.0f}")
    measured = stats[:, NET, WELFORD].any() or stats[:, NET, UNDEFINED].any()
    if measured and correlation is None:
        raise ValueError("input_correlation is missing although the stats hold input pairs")
    if correlation is not None and k != 2:
        raise ValueError(f"input_correlation needs inputs_per_network 2 (pairs), got {k}")


def _shape_of(value: Any) -> str:
    """The nesting of a list for an error message, e.g. '(5, 3, 15)' or 'a ragged list'."""
    try:
        return str(np.array(value, dtype=float).shape)
    except (ValueError, TypeError):
        return "a ragged or non-numeric list" if isinstance(value, (list, tuple)) else repr(value)


def _q0_rows_from_json(value: Any) -> "tuple[list, list] | None":
    """The optional per-row input lengths of a data set: None, or {"values": [...],
    "counts": [...]} with finite values >= 0 and whole counts >= 1, as (values, counts)."""
    if value is None:
        return None
    if not isinstance(value, Mapping) or set(value) != {"values", "counts"}:
        raise ValueError(f"input_q0_rows must be null or a dict with 'values' and 'counts', "
                         f"got {value!r}")
    values, counts = value["values"], value["counts"]
    if (not isinstance(values, (list, tuple)) or not isinstance(counts, (list, tuple))
            or not values or len(values) != len(counts)):
        raise ValueError("input_q0_rows: 'values' and 'counts' must be non-empty lists of the "
                         "same length")
    return ([check_real(f"input_q0_rows values[{i}]", x, 0.0, strict=False)
             for i, x in enumerate(values)],
            [check_int(f"input_q0_rows counts[{i}]", n, 1, 2 ** 63 - 1)
             for i, n in enumerate(counts)])


def csv_cell(x: Any) -> str:
    """One CSV value: floats exactly (repr, 'nan', 'inf'), bools as true/false, ints as ints.

    Parameters
    ----------
    x : object
        A value of a Result column.

    Returns
    -------
    str
    """
    if isinstance(x, (bool, np.bool_)):
        return "true" if x else "false"
    if isinstance(x, (float, np.floating)):
        return repr(float(x))
    return str(x)




def result_to_dict(res: Result) -> dict[str, Any]:
    """The dict of :meth:`Result.to_dict`.

    Parameters
    ----------
    res : Result
        The result to write.

    Returns
    -------
    dict
        ``format``, metadata, ``columns`` (lists per layer, non-finite values None) and
        ``stats`` (nested lists of shape (L, ROWS, S), NaN as None, +-inf as "inf"/"-inf");
        JSON-able with ``allow_nan=False``.
    """
    meta = {"format": formats.RESULT, "network": res.network.to_dict(), "trials": res.trials,
            "seed": res.seed, "engine": res.engine, "elapsed_s": res.elapsed_s,
            "compile_s": res.compile_s, "inputs_per_network": res.inputs_per_network,
            "gradients": res.gradients, "input_q0": res.input_q0,
            "input_correlation": res.input_correlation, "partial": res.partial,
            "warnings": res.warnings}
    if res.normal_inputs is not None:  # files of earlier versions did not record it
        meta["normal_inputs"] = res.normal_inputs
    if res.unverified is not None:  # loaded with verify=False: it stays flagged
        meta["unverified"] = res.unverified
    if res.input_q0_rows is not None:  # lossless: JSON floats round-trip exactly
        values, counts = res.input_q0_rows
        meta["input_q0_rows"] = {"values": values.tolist(), "counts": counts.tolist()}
    columns = {k: [None if isinstance(x, float) and not math.isfinite(x) else x
                   for x in res[k].tolist()] for k in res.columns}
    stats = [[[json_float(x) for x in row] for row in layer] for layer in res.stats.tolist()]
    out = {**meta, "columns": columns, "stats": stats}
    if res.histogram_counts is not None:
        out["histograms"] = _histograms_to_json(res)
    if res.jacobian_stats is not None:  # its accumulator row per layer, as stats
        out["jacobian"] = [[json_float(x) for x in row] for row in res.jacobian_stats.tolist()]
    return out


def _histograms_to_json(res: Result) -> dict[str, Any]:
    """The ``histograms`` of a result dict: bins, range, and per quantity (delta only with
    gradients) each layer's scale, its source and the counts below, in and above the bins."""
    out: dict[str, Any] = {"bins": BINS, "range": RANGE}
    scales = res.histogram_scales
    for q, name in enumerate(QUANTITIES[:3 if res.gradients else 2]):
        slots = res.histogram_counts[:, q]
        out[name] = {"scale": bin_scale(scales[:, q]).tolist(),
                     "scale_from": ["unit" if math.isnan(s) else "theory"
                                    for s in scales[:, q]],
                     "below": slots[:, 0].tolist(), "counts": slots[:, 1:-1].tolist(),
                     "above": slots[:, -1].tolist()}
    return out


def _whole_numbers(name: str, value: Any, shape: tuple) -> np.ndarray:
    """A list of JSON integers >= 0 of the given shape, as int64; ValueError if not."""
    try:
        arr = np.array(value)
    except ValueError:  # ragged
        arr = np.empty(0)
    if arr.shape != shape or (arr.size and arr.dtype.kind not in "iu") or (arr < 0).any():
        raise ValueError(f"{name} must be whole numbers >= 0 of shape {shape}")
    return arr.astype(np.int64)


def _histograms_from_json(value: Any, stats: np.ndarray,
                          gradients: bool) -> "tuple[np.ndarray, np.ndarray] | None":
    """(counts (L, 3, BINS + 2), theory scales (L, 3), NaN where in absolute units) of a
    result dict's ``histograms`` (None: none), checked against the stats: each layer's
    histogram holds every finite value the moments counted."""
    if value is None:
        return None
    names = QUANTITIES[:3 if gradients else 2]
    if not isinstance(value, Mapping) or set(value) != {"bins", "range", *names}:
        raise ValueError(f"histograms must be null or a dict with the keys bins, range, "
                         f"{', '.join(names)}")
    if value["bins"] != BINS or value["range"] != RANGE:
        raise ValueError(f"histograms of {value['bins']!r} bins over +-{value['range']!r} "
                         f"scales; this version reads {BINS} bins over +-{RANGE}")
    depth = stats.shape[0]
    counts = np.zeros((depth, 3, BINS + 2), dtype=np.int64)
    scales = np.full((depth, 3), np.nan)
    for q, name in enumerate(names):
        part = value[name]
        keys = {"scale", "scale_from", "below", "counts", "above"}
        if not isinstance(part, Mapping) or set(part) != keys:
            raise ValueError(f"histograms[{name!r}] must be a dict with the keys "
                             f"{', '.join(sorted(keys))}")
        where = f"histograms[{name!r}]"
        counts[:, q, 0] = _whole_numbers(f"{where}['below']", part["below"], (depth,))
        counts[:, q, 1:-1] = _whole_numbers(f"{where}['counts']", part["counts"],
                                            (depth, BINS))
        counts[:, q, -1] = _whole_numbers(f"{where}['above']", part["above"], (depth,))
        source = part["scale_from"]
        if not isinstance(source, list) or len(source) != depth \
                or not set(source) <= {"theory", "unit"}:
            raise ValueError(f"{where}['scale_from'] must list 'theory' or 'unit' per layer")
        if not isinstance(part["scale"], list) or len(part["scale"]) != depth:
            raise ValueError(f"{where}['scale'] must list one scale per layer")
        for layer, (scale, kind) in enumerate(zip(part["scale"], source)):
            scale = check_real(f"{where}['scale'][{layer}]", scale, 0.0, strict=True)
            if not math.isfinite(scale * RANGE):
                raise ValueError(f"{where}['scale'][{layer}] is too large for finite edges")
            if kind == "unit" and scale != 1.0:
                raise ValueError(f"{where}['scale'][{layer}] is {scale} but 'unit' bins "
                                 "have scale 1")
            scales[layer, q] = scale if kind == "theory" else np.nan
        found, held = counts[:, q].sum(axis=1), stats[:, q, MOMENTS]
        if (found != held).any():
            layer = int(np.argmax(found != held))
            raise ValueError(f"{where} counts {found[layer]} values at layer {layer + 1}, "
                             f"but the stats hold {held[layer]:.0f} finite ones")
    return counts, scales


def _jacobian_from_json(value: Any, depth: int) -> "np.ndarray | None":
    """The JAC rows (depth, STATS_SIZE) of a result dict's ``jacobian`` (None: none),
    read as a stats array of one row per layer, its counts checked."""
    if value is None:
        return None
    if not isinstance(value, list):
        raise ValueError(f"jacobian must be null or a list of {depth} rows of {STATS_SIZE} "
                         "accumulator entries")
    try:
        return _stats_from_json([[row] for row in value], depth, rows=1)[:, 0]
    except ValueError as err:
        raise ValueError(f"jacobian: {err}") from None


def _network_from_json(value: Any) -> Network:
    """The Network of a result dict's ``network`` (as :meth:`Network.to_dict` writes it)."""
    if not isinstance(value, Mapping):
        raise ValueError(f"network must be a dict as made by Network.to_dict(), got {value!r}")
    try:
        return Network(**value)
    except (TypeError, ValueError) as err:
        raise ValueError(f"network: {err}") from None


def _columns_problem(columns: Any, net: Network) -> "str | None":
    """Why the ``layer`` and ``width`` columns written in a result dict contradict its
    network (an edited ``widths``), or None. Other columns are not compared: they follow
    from the stats by formulas a later version may refine."""
    if not isinstance(columns, Mapping):
        return None  # not read: only other readers use the columns
    expect = {"layer": list(range(1, net.depth + 1)), "width": list(net.widths[1:])}
    for name, values in expect.items():
        if name in columns and columns[name] != values:
            return (f"its {name} column is {columns[name]!r} but its network has "
                    f"{name}s {values}")
    return None


def result_arguments(data: Mapping[str, Any], verify: bool = True) -> dict[str, Any]:
    """The keyword arguments of :class:`Result` that rebuild the Result of a result dict.

    Every key is checked, then its checksum and the columns that restate its network
    (:func:`fastvar.formats.verification`); see :meth:`Result.from_dict`.

    Parameters
    ----------
    data : mapping
        A result dict (:meth:`Result.to_dict`, or a file's JSON).
    verify : bool
        Raise if the checksum or the columns do not check out (else mark it unverified).

    Returns
    -------
    dict
        Keyword arguments of ``Result(...)``.

    Raises
    ------
    TypeError
        ``data`` is no mapping, or a key has the wrong type.
    ValueError
        A missing or out-of-range key, a format this version does not read, or (with
        ``verify``) a checksum or columns that do not check out.
    """
    if not isinstance(data, Mapping):
        raise TypeError(f"a result dict (from Result.to_dict) is needed, got "
                        f"{type(data).__name__}")
    formats.file_kind(data, "result")
    keys = ("network", "stats", "trials", "seed", "engine", "elapsed_s",
            "inputs_per_network", "gradients", "input_q0")
    missing = [k for k in keys if k not in data]
    if missing:
        raise ValueError(f"result dict lacks the key {missing[0]!r}")
    net = _network_from_json(data["network"])
    trials = check_int("trials", data["trials"], 1, 2 ** 63 - 1)
    k = check_int("inputs_per_network", data["inputs_per_network"], 1, trials)
    if trials % k:
        raise ValueError(f"inputs_per_network ({k}) must divide trials ({trials})")
    if not isinstance(data["gradients"], bool):
        raise TypeError(f"gradients must be true or false, got {data['gradients']!r}")
    if not isinstance(data["engine"], str):
        raise TypeError(f"engine must be an engine name, got {data['engine']!r}")
    if not data["engine"]:
        raise ValueError("engine must be an engine name, got ''")
    kwargs: dict[str, Any] = {}
    if not isinstance(data.get("partial", False), bool):
        raise TypeError(f"partial must be true or false, got {data['partial']!r}")
    kwargs["partial"] = data.get("partial", False)
    correlation = data.get("input_correlation")
    if correlation is not None:
        kwargs["input_correlation"] = check_real("input_correlation", correlation, -1.0,
                                                 strict=False)
        if kwargs["input_correlation"] > 1.0:
            raise ValueError(f"input_correlation must be in [-1, 1], got {correlation}")
    normal = data.get("normal_inputs")
    if normal is not None and not isinstance(normal, bool):
        raise TypeError(f"normal_inputs must be true, false or null, got {normal!r}")
    kwargs["normal_inputs"] = normal
    rows = _q0_rows_from_json(data.get("input_q0_rows"))
    if rows is not None:
        kwargs["input_q0_rows"] = rows
    stats = _stats_from_json(data["stats"], net.depth)
    _check_consistent(stats, trials, k, kwargs.get("input_correlation"), data["engine"])
    histograms = _histograms_from_json(data.get("histograms"), stats, data["gradients"])
    if histograms is not None:
        kwargs["histograms"] = histograms
    jac = _jacobian_from_json(data.get("jacobian"), net.depth)
    if jac is not None:  # every network is counted at every layer, or left out as non-finite
        held = jac[:, MOMENTS] + jac[:, NONFINITE]
        if (held != trials // k).any():
            layer = int(np.argmax(held != trials // k))
            raise ValueError(f"jacobian holds {held[layer]:.0f} networks at layer {layer + 1}, "
                             f"but trials ({trials}) and inputs_per_network ({k}) say "
                             f"{trials // k}")
        kwargs["jacobian"] = jac
    # last, so that a damaged key is named by its own check above
    problems = [p for p in (_columns_problem(data.get("columns"), net),
                            formats.checksum_problem(data)) if p is not None]
    kwargs["unverified"] = formats.verification("result", data, problems, verify)
    return dict(network=net, stats=stats, trials=trials,
                seed=check_int("seed", data["seed"], 0, 2 ** 64 - 1), engine=data["engine"],
                elapsed_s=check_real("elapsed_s", data["elapsed_s"], 0.0, strict=False),
                compile_s=check_real("compile_s", data.get("compile_s", 0.0), 0.0,
                                     strict=False),
                inputs_per_network=k, gradients=data["gradients"],
                input_q0=check_real("input_q0", data["input_q0"], 0.0, strict=False), **kwargs)


def write_json(res: Result, path: "str | os.PathLike | None" = None) -> "str | None":
    """Strict JSON text of :func:`result_to_dict` with its checksum, or a file of it.

    See :meth:`Result.to_json` and :func:`fastvar.formats.with_checksum`.

    Parameters
    ----------
    res : Result
        The result to write.
    path : str, os.PathLike or None
        Write there atomically; None: return the text.

    Returns
    -------
    str or None
        The text without ``path``; None with it.
    """
    text = json.dumps(formats.with_checksum(result_to_dict(res)), indent=1, allow_nan=False)
    if path is None:
        return text
    write_file(path, text + "\n")
    return None


def write_csv(res: Result, path: "str | os.PathLike") -> None:
    """The per-layer columns of ``res`` as CSV, atomically (see :meth:`Result.to_csv`).

    Parameters
    ----------
    res : Result
        The result to write.
    path : str or os.PathLike
        The file.
    """
    names = res.columns
    mark = ["partial"] if res.partial else []
    columns = [res[name] for name in names]
    lines = [",".join(names + mark)]
    for i in range(res.network.depth):
        lines.append(",".join([csv_cell(c[i]) for c in columns] + ["true"] * len(mark)))
    write_file(path, "\n".join(lines) + "\n")
