"""Sweeps: :func:`simulate` over a grid of configurations, with stable seeds and resume.

``sweep(grid, trials, **fixed)`` runs the cartesian product of ``grid`` (keyword -> values)
with the ``fixed`` keywords. Each configuration's seed is a hash of the sweep's seed and of
that configuration's resolved parameters (its Network and its simulate options), so adding,
removing or reordering grid points never changes the others, and ``sweep(...).results[i]``
is bitwise ``simulate(net_i, trials, seed=sweep.seeds[i], ...)``. :class:`Sweep` holds the
results, turns them into tidy tables (pandas, xarray, CSV, JSON) and shows the depth scales
xi_q and xi_c fitted to each (:mod:`fastvar.fits`).
"""
from __future__ import annotations

import contextlib
import dataclasses
import html
import itertools
import json
import logging
import math
import numbers
import os
import warnings
from typing import Any, Mapping, NamedTuple, Sequence

import numpy as np

from . import _text, formats
from ._checks import check_int
from ._files import write_file
from .api import MAX_SECONDS, Estimate, plan, request_cost, simulate
from ._hashing import canonical_json, hash_hex
from .checkpoint import Checkpoint, SweepCheckpoint
from .engines import ENGINES
from .interrupts import SweepInterrupted
from .engines.base import Plan
from .fits import measured_depth_scales
from .kernels.codes import INPUTS_NORMAL, INPUTS_PAIR
from .network import NETWORK_OPTIONS, Network, mlp
from .options import RUN_OPTIONS, SHAPE_OPTIONS, Execution
from .results import Result
from .results.files import csv_cell

# keywords of mlp()/Network and of simulate() that a configuration may set, from their
# declarations (fastvar.options): the sweep's own seed is not one
NETWORK_KEYS = tuple(option.name for option in SHAPE_OPTIONS + NETWORK_OPTIONS)
SIMULATE_KEYS = tuple(option.name for option in RUN_OPTIONS if option.sweep != "no")
# not scalars, or pointless to sweep
_FIXED_ONLY = tuple(option.name for option in SHAPE_OPTIONS + NETWORK_OPTIONS + RUN_OPTIONS
                    if option.sweep == "fixed")
MAX_CONFIGURATIONS = 100_000  # validated at about 1 ms each before the first one runs
# per-configuration values: measured depth scales and last/first-layer observables
OBSERVABLES = ("log_q_ratio", "log_g_ratio", "c", "xi_c", "xi_q")
SUMMARY_COLUMNS = ("xi_q", "xi_q_se", "xi_q_map", "xi_q_theory", "xi_q_layers", "xi_q_note",
                   "xi_c", "xi_c_se", "xi_c_map", "xi_c_theory", "xi_c_layers", "xi_c_note")


# ------------------------------------------------------------------ configurations

def _scalar(key: str, value: Any) -> Any:
    """A grid or fixed value as a JSON scalar (NumPy scalars unwrapped), else TypeError."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, (str, bool, numbers.Integral)):
        return int(value) if isinstance(value, numbers.Integral) and not isinstance(
            value, bool) else value
    if isinstance(value, numbers.Real):
        return float(value)
    raise TypeError(f"{key} values must be numbers, strings, True/False or None, got {value!r}")


def _check_grid(grid: Mapping[str, Sequence], fixed: Mapping[str, Any]) -> dict[str, list]:
    """Validate the keys and value lists of a grid against ``fixed``; returns key -> list."""
    if not isinstance(grid, Mapping) or not grid:
        raise TypeError("grid must be a non-empty dict mapping a keyword (e.g. 'init') to a "
                        "list of values")
    valid = NETWORK_KEYS + SIMULATE_KEYS
    for key in list(grid) + list(fixed):
        if key in ("seed", "trials", "client", "checkpoint", "progress"):
            raise ValueError(f"{key!r} is an argument of sweep() itself, not a configuration "
                             "keyword")
        if key not in valid:
            raise ValueError(f"unknown keyword {key!r}; a configuration takes "
                             f"{', '.join(valid)}")
    both = sorted(set(grid) & set(fixed))
    if both:
        raise ValueError(f"{both[0]!r} is both in the grid and fixed; give it once")
    for key, values in grid.items():
        if key in _FIXED_ONLY:
            raise ValueError(f"{key!r} cannot be swept; pass it as a fixed keyword"
                             + (" (sweep width, depth and input_width instead)"
                                if key == "widths" else ""))
        if isinstance(values, (str, bytes)) or not isinstance(
                values, (Sequence, np.ndarray, range)):
            raise TypeError(f"grid[{key!r}] must be a list of values, got {values!r}")
    # the size first: checking ten million values one by one took minutes
    size = math.prod(len(values) for values in grid.values())
    if size > MAX_CONFIGURATIONS:
        raise ValueError(f"this grid holds {size} configurations, more than one sweep takes "
                         f"({MAX_CONFIGURATIONS}: each is validated and estimated before any "
                         "runs); use fewer values or split it into several sweeps")
    out = {}
    for key, values in grid.items():
        values = [_scalar(key, v) for v in values]
        if not values:
            raise ValueError(f"grid[{key!r}] is empty; give at least one value")
        canon = [json.dumps(v) for v in values]
        if len(set(canon)) < len(canon):
            dup = next(v for v, c in zip(values, canon) if canon.count(c) > 1)
            raise ValueError(f"grid[{key!r}] holds {dup!r} twice")
        out[key] = values
    return out


def _split(params: Mapping[str, Any]) -> tuple[Network, dict[str, Any]]:
    """The Network and the simulate() keywords of one configuration's parameters."""
    net_kw = {k: params[k] for k in NETWORK_KEYS if k in params}
    sim_kw = {k: params[k] for k in SIMULATE_KEYS if k in params}
    shape = {k: net_kw.pop(k) for k in ("width", "depth", "input_width") if k in net_kw}
    if "widths" in net_kw:
        if shape:
            raise ValueError("give either widths or width/depth/input_width, not both")
        return Network(**net_kw), sim_kw
    if "width" not in shape or "depth" not in shape:
        raise ValueError("a configuration needs width and depth (in the grid or fixed), "
                         "or widths")
    return mlp(shape.pop("width"), shape.pop("depth"), **shape, **net_kw), sim_kw


def _data_digest(data: np.ndarray) -> str:
    """A data set's name in a configuration's identity and in the sweep's ``fixed``."""
    return hash_hex(repr(data.shape) + data.tobytes().hex(), 16)


def _identity(net: Network, request) -> dict[str, Any]:
    """What a configuration is (not how it runs): its network and inputs, canonical.

    Taken from the validated Network and Plan, so equal configurations written differently
    (init "glorot" or "xavier", bias_std 0 or 0.0, inputs_per_network left out or 1) agree."""
    data = request.data
    inputs = ("normal" if data.shape[0] == 0 else
              "data " + _data_digest(data))
    c0 = request.correlation
    return {"network": net.to_dict(), "inputs": inputs, "kind": int(request.inputs_kind),
            "inputs_per_network": int(request.inputs_per_network),
            "gradients": bool(request.gradients),
            "correlation": None if math.isnan(c0) else float(c0)}


def configuration_seed(seed: int, identity: Mapping[str, Any]) -> int:
    """The seed of one configuration of a sweep.

    Parameters
    ----------
    seed : int
        The sweep's seed.
    identity : mapping
        The configuration's network and inputs (not its place in the grid, nor the engine
        or the threads), as JSON-ready values.

    Returns
    -------
    int
        64 bits of BLAKE2b over the canonical JSON of both, from 0 to 2^64 - 1.
    """
    text = canonical_json({"seed": int(seed), "configuration": identity})
    return int.from_bytes(bytes.fromhex(hash_hex(text, 8)), "little")


class _Config(NamedTuple):
    point: dict  # the grid values of this configuration
    net: Network
    sim: dict  # simulate() keywords
    seed: int
    fingerprint: str  # identity + seed + trials + engine: names its checkpoint file
    cost: Estimate  # its time and memory, calibrated as simulate's
    request: Plan  # its plan, with seed 0: only the seed differs from simulate's


def _configurations(grid: dict[str, list], fixed: Mapping[str, Any], trials: int, seed: int,
                    engine: str) -> list[_Config]:
    """Every configuration, validated by plan() (no work is done), in grid order."""
    keys = list(grid)
    configs: list[_Config] = []
    seen: dict[str, str] = {}  # fingerprint -> where
    for values in itertools.product(*(grid[k] for k in keys)):
        point = dict(zip(keys, values))
        params = {**fixed, **point}
        where = ", ".join(f"{k}={v!r}" for k, v in point.items())
        try:
            net, sim = _split(params)
            sim.setdefault("engine", engine)
            request, chosen = plan(net, trials, seed=0, **{k: v for k, v in sim.items()
                                                           if k != "threads"})
        except (TypeError, ValueError, MemoryError) as err:
            raise type(err)(f"configuration {where}: {err}") from None
        identity = _identity(net, request)
        config_seed = configuration_seed(seed, identity)
        text = canonical_json({"identity": identity, "seed": config_seed, "trials": trials,
                               "engine": chosen.name,
                               **({"histograms": True} if request.histograms else {})})
        fingerprint = hash_hex(text, 16)
        if fingerprint in seen:  # e.g. init xavier and glorot, tanh and TANH, 1 and 1.0
            raise ValueError(f"configurations {seen[fingerprint]} and {where} are the same "
                             "network and inputs; give each once")
        seen[fingerprint] = where
        cost = request_cost(request, chosen, sim.get("threads"))
        configs.append(_Config(point, net, sim, config_seed, fingerprint, cost, request))
    return configs


def _total_cost(configs: Sequence[_Config]) -> Estimate:
    """What the configurations cost one after another: the sum of their times, the most
    memory any one needs."""
    engines = sorted({c.cost.engine for c in configs})
    return Estimate("/".join(engines), sum(c.cost.seconds for c in configs),
                    max(c.cost.threads for c in configs),
                    max(c.cost.memory_bytes for c in configs))


def sweep_estimate(grid: Mapping[str, Sequence], trials: int, *, seed: int = 0,
                   engine: str = "auto", **fixed) -> Estimate:
    """How long :func:`sweep` with these arguments will take, and the memory it needs.

    Parameters
    ----------
    grid, trials, seed, engine, **fixed
        As for :func:`sweep`.

    Returns
    -------
    fastvar.api.Estimate
        The configurations' calibrated times summed (as :func:`fastvar.api.estimate` gives
        each), in seconds, and the most memory one configuration needs, in bytes.

    Raises
    ------
    TypeError, ValueError
        What :func:`sweep` would raise before any work.
    """
    return _total_cost(_checked_configurations(grid, trials, seed, engine, dict(fixed))[1])


def _checked_configurations(grid, trials, seed, engine,
                            fixed) -> tuple[dict[str, list], list[_Config]]:
    """The checked grid and its configurations; refuses a sweep of over a year."""
    seed = check_int("seed", seed, 0, (1 << 64) - 1)
    grid = _check_grid(grid, fixed)
    if "engine" in grid and engine != "auto":
        raise ValueError("engine is a grid key; leave the engine argument at 'auto'")
    configs = _configurations(grid, fixed, trials, seed, engine)
    cost = _total_cost(configs)
    if cost.seconds > MAX_SECONDS:
        raise ValueError(f"this sweep of {len(configs)} configurations would take "
                         f"{cost.describe()}; use fewer configurations or trials, smaller "
                         "widths or fewer layers")
    return grid, configs


# ------------------------------------------------------------------------- the sweep

def _jsonable_fixed(fixed: Mapping[str, Any]) -> dict[str, Any]:
    """The fixed keywords for JSON: a data set as its shape and digest, not its rows."""
    out = {}
    for key, value in fixed.items():
        if key == "inputs" and not isinstance(value, str):
            arr = np.asarray(value)
            value = f"array {arr.shape} blake2b {_data_digest(arr)}"
        elif key == "widths":
            value = [int(w) for w in value]
        else:
            value = _scalar(key, value)
        out[key] = value
    return out


def sweep(grid: Mapping[str, Sequence], trials: int, *, seed: int = 0, engine: str = "auto",
          client=None, checkpoint: "str | os.PathLike | None" = None, progress: bool = False,
          **fixed) -> "Sweep":
    """Run :func:`fastvar.simulate` over the cartesian product of ``grid``.

    Parameters
    ----------
    grid : dict
        keyword -> list of values, for any keyword of :func:`fastvar.mlp` / Network
        (``width``, ``depth``, ``input_width``, ``activation``, ``init`` (sigma_w^2 numbers
        or scheme names), ``distribution``, ``gain``, ``bias_std`` (a standard deviation:
        sigma_b^2 = bias_std^2)) or of :func:`fastvar.simulate` (``correlation``,
        ``inputs_per_network``, ``gradients``, ``engine``). The first key varies slowest.
    trials : int
        Forward passes per configuration.
    seed : int
        The sweep's seed. Configuration i runs with ``Sweep.seeds[i]``, a hash of this seed
        and of the configuration's network and inputs (not of its place in the grid, nor
        of engine or threads), so ``results[i]`` is bitwise what ``simulate`` gives with it.
    engine : str
        Engine of every configuration (unless ``engine`` is a grid key).
    client : dask.distributed.Client or None
        Run every configuration on this Dask cluster, all as one set of tasks (small
        configurations packed several to a task, large ones split into ranges of blocks;
        :func:`fastvar.dask_runner.run_many`); each result is bitwise the local one.
        ``threads`` does not apply then (each worker uses its own).
    checkpoint : path of a folder, or None
        Each finished configuration is written there atomically, with a checksum, as
        ``<fingerprint>.bin`` (fingerprint: a hash of its identity, seed, trials and
        engine; :class:`fastvar.checkpoint.SweepCheckpoint`); a later call with the same
        folder loads those instead of running them. The folder is made if its parent exists.
    progress : bool
        One tqdm bar over all the sweep's trials, on stderr.
    **fixed
        The keywords shared by all configurations (e.g. ``width=256, depth=50``); a key
        cannot be both fixed and in the grid. ``widths``, ``inputs`` (a data set) and
        ``threads`` may only be fixed.

    Returns
    -------
    Sweep
        The configurations' results, in grid order.

    Raises
    ------
    TypeError, ValueError
        Before the first configuration runs, each is validated by simulate's checks: an
        unknown key, an empty value list, a key given twice or an invalid combination,
        naming the configuration, having done no work.
    SweepInterrupted
        On Ctrl-C (a KeyboardInterrupt); its ``.partial`` is the Sweep of the
        configurations finished so far.
    """
    fixed = dict(fixed)
    Execution(progress=progress)  # checks it before any work
    if client is not None:
        from .dask_runner import check_client

        check_client(client)
        if "threads" in fixed:
            raise ValueError("threads applies to local runs; with a Dask client each worker "
                             "uses its own threads (threads_per_worker)")
    grid, configs = _checked_configurations(grid, trials, seed, engine, fixed)
    seed = int(seed)
    store = None if checkpoint is None else SweepCheckpoint(checkpoint)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(configs) * trials, unit="trial", unit_scale=True,
                   desc="fastvar sweep")
    stored = {}
    if store is not None:
        stored = {c.fingerprint: store.load(c.fingerprint) for c in configs}
        resumed = sum(res is not None for res in stored.values())
        if resumed:
            logging.getLogger("fastvar").info(
                f"fastvar: resumed {resumed} of {len(configs)} configurations from {store.path}")
    done: dict[int, Result] = {}  # configuration index -> its result, as they finish

    def finish(i: int, res: Result, found: Sequence[warnings.WarningMessage] = (),
               level: int = 3) -> None:
        config = configs[i]
        where = ", ".join(f"{k}={v!r}" for k, v in config.point.items())
        for line in found:  # a sweep's warnings say which configuration they are of
            warnings.warn(f"configuration {where}: {line.message}", line.category,
                          stacklevel=level)
        if store is not None and stored.get(config.fingerprint) is None:
            store.save(config.fingerprint, res, config.point)
        done[i] = res
        if bar is not None:
            bar.update(trials)

    try:
        if client is None:
            for i, config in enumerate(configs):
                res = stored.get(config.fingerprint)
                if res is not None:
                    finish(i, res)
                    continue
                kwargs = dict(config.sim)
                if store is not None:
                    # simulate's own partial state of this configuration, beside the finished
                    kwargs["checkpoint"] = store.run_folder(config.fingerprint)
                with warnings.catch_warnings(record=True) as seen:
                    warnings.simplefilter("always")
                    res = simulate(config.net, trials, seed=config.seed, **kwargs)
                finish(i, res, seen)
        else:
            _on_cluster(client, configs, trials, stored, store, finish)
    except KeyboardInterrupt as err:
        order = sorted(done)
        partial = Sweep(grid, _jsonable_fixed(fixed), trials, seed,
                        [configs[i].point for i in order], [configs[i].seed for i in order],
                        [done[i] for i in order],
                        pending=[c.point for i, c in enumerate(configs) if i not in done])
        raise SweepInterrupted(partial) from err
    finally:
        if bar is not None:
            bar.close()
    return Sweep(grid, _jsonable_fixed(fixed), trials, seed, [c.point for c in configs],
                 [c.seed for c in configs], [done[i] for i in range(len(configs))])


def _on_cluster(client, configs: Sequence[_Config], trials: int, stored: Mapping[str, Any],
                store: "SweepCheckpoint | None", finish) -> None:
    """Run the configurations not in ``stored`` on a Dask cluster, as one set of tasks
    (:func:`fastvar.dask_runner.run_many`), calling ``finish(i, result, warnings)`` as each
    configuration finishes; on Ctrl-C the unfinished ones keep their blocks in ``store``."""
    from .dask_runner import run_many
    from .results import IncompleteStatisticsWarning
    from .runs import Run

    todo = []
    for i, config in enumerate(configs):
        if stored.get(config.fingerprint) is not None:
            finish(i, stored[config.fingerprint])
        else:
            todo.append(i)
    runs = []
    for i in todo:
        config = configs[i]
        # simulate(net, trials, seed=config.seed, **config.sim) plans this very request
        request = dataclasses.replace(config.request, seed=config.seed)
        engine = ENGINES[config.cost.engine]
        folder = (None if store is None else
                  Checkpoint(store.run_folder(config.fingerprint), request, engine.name))
        runs.append(Run(request, engine, checkpoint=folder))

    def finished(j: int) -> None:
        # the configurations share the cluster's wall time: each reports its own work
        res = runs[j].result(elapsed_s=runs[j].task_s)
        found = [warnings.WarningMessage(line, IncompleteStatisticsWarning, "", 0)
                 for line in res.warnings]  # what simulate warns of its result
        finish(todo[j], res, found, level=6)  # the caller of sweep()

    try:
        run_many(client, runs, finished)
    except KeyboardInterrupt:
        for one in runs:
            with contextlib.suppress(OSError):  # the work done matters more than the file
                one.save(force=True)
        raise


# --------------------------------------------------------- a sweep read from a file

def _expected_identity(params: Mapping[str, Any], net: Network) -> "dict[str, Any] | None":
    """The identity (:func:`_identity`) of the configuration ``params`` (fixed and grid
    values as a Sweep keeps them) with network ``net``, found without running plan(), which
    might refuse on this machine a file written on a larger one; None for a data set, whose
    rows the file does not hold (``fixed`` keeps a digest of them as the user gave them,
    which need not be the digest of the rows as plan() reads them)."""
    c0 = params.get("correlation")
    if params.get("inputs", "normal") != "normal" or isinstance(c0, str):
        return None
    if isinstance(c0, bool) or not isinstance(c0, (numbers.Real, type(None))):
        raise TypeError(f"correlation {c0!r} is not a number")
    k = params.get("inputs_per_network")
    return {"network": net.to_dict(), "inputs": "normal",
            "kind": INPUTS_NORMAL if c0 is None else INPUTS_PAIR,
            "inputs_per_network": 2 if c0 is not None else (1 if k is None else k),
            "gradients": params.get("gradients", True),
            "correlation": None if c0 is None else float(c0)}


def _configuration_problem(sweep: "Sweep", i: int) -> "str | None":
    """Why configuration ``i`` of a Sweep read from a file disagrees with its result, or
    None: the result's trials, seed, network and options must be what the configuration
    (grid values and fixed keywords) and the sweep's trials and seed make."""
    point, seed, res = sweep.configs[i], sweep.seeds[i], sweep.results[i]
    where = f"configuration {i} ({', '.join(f'{k}={v!r}' for k, v in point.items())})"
    if res.trials != sweep.trials:
        return (f"{where} has a result of {res.trials} trials, but the sweep's trials are "
                f"{sweep.trials}")
    if res.seed != seed:
        return f"{where} has the seed {seed}, but its result ran with seed {res.seed}"
    params = {**sweep.fixed, **point}
    try:
        net, _ = _split(params)
        expected = _expected_identity(params, net)
    except (TypeError, ValueError) as err:
        return f"{where} is not a valid configuration ({err})"
    made, found = net.to_dict(), res.network.to_dict()
    if made != found:
        key = next(k for k in {**made, **found} if made.get(k) != found.get(k))
        return (f"{where} makes a network of {key} {made.get(key)!r}, but its result's "
                f"network has {found.get(key)!r}")
    engine = params.get("engine", "auto")
    if isinstance(engine, str) and engine.lower() not in ("auto", res.engine):
        return f"{where} asks for engine {engine!r}, but its result ran on {res.engine!r}"
    if expected is None:
        return None
    found = {"inputs_per_network": res.inputs_per_network, "gradients": res.gradients,
             "correlation": res.input_correlation}
    for key, value in found.items():
        if expected[key] != value:
            return f"{where} makes {key} {expected[key]!r}, but its result has {value!r}"
    if configuration_seed(sweep.seed, expected) != seed:
        return (f"{where} has the seed {seed}, but the sweep's seed {sweep.seed} gives it "
                f"{configuration_seed(sweep.seed, expected)}")
    return None


def _inconsistencies(sweep: "Sweep") -> list[str]:
    """What contradicts itself in a Sweep read from a file: its configurations (finished,
    then pending) must be its grid's cartesian product in order, and each finished one
    agree with its result (:func:`_configuration_problem`)."""
    keys = list(sweep.grid)
    product = [canonical_json(dict(zip(keys, values)))
               for values in itertools.product(*sweep.grid.values())]
    listed = [canonical_json(c) for c in sweep.configs + sweep.pending]
    # the finished ones need not be the first: a cluster finishes configurations out of order
    place = {c: i for i, c in enumerate(product)}
    finished, waiting = listed[:len(sweep.configs)], listed[len(sweep.configs):]
    if listed != product and not (
            sorted(finished, key=lambda c: place.get(c, -1)) == finished
            and sorted(waiting, key=lambda c: place.get(c, -1)) == waiting
            and sorted(listed) == sorted(product)):
        i = next((i for i, (a, b) in enumerate(zip(listed, product)) if a != b),
                 min(len(listed), len(product)))
        found = listed[i] if i < len(listed) else "nothing"
        wanted = product[i] if i < len(product) else "nothing"
        return [(f"its configurations ({len(sweep.configs)} finished, {len(sweep.pending)} "
                 f"pending) are not its grid's {len(product)} in order: configuration {i} is "
                 f"{found}, the grid's is {wanted}")]
    problems = (_configuration_problem(sweep, i) for i in range(len(sweep.configs)))
    found = [p for p in problems if p is not None]
    others = (f" (and {len(found) - 1} other configurations disagree with their results)"
              if len(found) > 1 else "")
    return [found[0] + others] if found else []


class Sweep:
    """The results of :func:`sweep`: one :class:`Result` per configuration.

    Attributes
    ----------
    grid : dict
        keyword -> list of values, as swept (the first key varies slowest).
    fixed : dict
        The keywords shared by all configurations (a data set as its shape and digest).
    trials, seed : int
        Forward passes per configuration; the sweep's seed.
    configs : list of dict
        The grid values of each finished configuration, in grid order.
    seeds : list of int
        The seed each configuration ran with (``simulate(..., seed=seeds[i])``).
    results : list of Result
        One per entry of ``configs``.
    pending : list of dict
        Configurations not run (an interrupted sweep); empty when ``complete``.
    unverified : str or None
        Why a Sweep read with ``verify=False`` (:meth:`from_dict`, :func:`load`) from a file
        that failed its checks may not be what fastvar computed; None otherwise.
    """

    def __init__(self, grid: Mapping[str, list], fixed: Mapping[str, Any], trials: int,
                 seed: int, configs: list, seeds: list, results: list, *,
                 pending: "list | None" = None, unverified: "str | None" = None) -> None:
        if not len(configs) == len(seeds) == len(results):
            raise ValueError("configs, seeds and results must have one entry per configuration")
        self.grid, self.fixed = {k: list(v) for k, v in grid.items()}, dict(fixed)
        self.trials, self.seed = int(trials), int(seed)
        self.configs, self.seeds = [dict(c) for c in configs], [int(s) for s in seeds]
        self.results, self.pending = list(results), list(pending or [])
        self.unverified = None if unverified is None else str(unverified)
        self._scales: "list[dict] | None" = None

    @property
    def verified(self) -> bool:
        """False for a Sweep read with ``verify=False`` from a file whose checksum or
        metadata did not check out; ``unverified`` then says why."""
        return self.unverified is None

    @property
    def complete(self) -> bool:
        """False for the partial Sweep of an interrupted run."""
        return not self.pending

    def __len__(self) -> int:
        return len(self.results)

    def __repr__(self) -> str:
        keys = ", ".join(f"{k} ({len(v)})" for k, v in self.grid.items())
        state = "" if self.complete else f", {len(self.pending)} not run (interrupted)"
        flag = ("" if self.unverified is None else "\nwarning: unverified: this sweep was "
                f"read from a file that failed its checks ({self.unverified}); its numbers "
                "may not be what fastvar computed")
        text = (f"fastvar Sweep over {keys}: {_text.counted(len(self), 'configuration')} of "
                f"{_text.counted(self.trials, 'trial')}, seed {self.seed}{state}{flag}")
        # within 100 columns, broken after commas (four grid keys made 104)
        return "\n".join(wrap for line in text.split("\n")
                          for wrap in _text.wrapped_at_commas(line))

    def __str__(self) -> str:
        """What ``print(sweep)`` shows: the header, the shared keywords, :meth:`table`."""
        fixed = ", ".join(f"{k}={v}" for k, v in self.fixed.items())
        lines = [repr(self)] + (_text.wrapped("fixed: ", fixed) if fixed else [])
        return "\n".join(lines + ([self.table()] if self.results else []))

    def _repr_html_(self) -> str:
        """The header, the table and its notes as HTML, for notebooks."""
        esc = html.escape
        parts = [f"<pre>{esc(repr(self))}</pre>"]
        if self.results:
            heads, rows, notes = self._table_cells()
            cells = ["<tr>" + "".join(f"<th>{esc(h)}</th>" for h in heads) + "</tr>"]
            cells += ["<tr>" + "".join(f"<td>{esc(v)}</td>" for v in row) + "</tr>"
                      for row in rows]
            parts.append(f"<table>{''.join(cells)}</table>")
            parts += [f"<p>{esc(line)}</p>" for line in notes]
        return "\n".join(parts)

    # -- per-configuration values

    def depth_scales(self) -> list[dict[str, Any]]:
        """The measured depth scales of each configuration (computed once, then cached).

        Returns
        -------
        list of dict
            :func:`fastvar.fits.measured_depth_scales` of each result, in configuration
            order (xi in layers).
        """
        if self._scales is None:
            self._scales = [measured_depth_scales(r) for r in self.results]
        return self._scales

    def observable(self, value: str, layer: int = -1) -> np.ndarray:
        """One number per configuration.

        Parameters
        ----------
        value : str
            ``"log_q_ratio"`` = ln(q^L / q^1), ``"log_g_ratio"`` = ln(g^1 / g^L) (gradient
            growth towards the input), ``"c"`` = c^L, ``"xi_c"``/``"xi_q"`` (measured depth
            scales, layers), any ``xi_*`` column of :meth:`depth_scales`, or any Result
            column at layer L.
        layer : int, optional
            L, 1-based; negative counts from the last layer (default: the last).

        Returns
        -------
        float64 array, shape (len(configs),)
            The value of each finished configuration; NaN where it is not defined.

        Raises
        ------
        ValueError
            For an unknown value or a layer outside a configuration's depth.
        """
        if value in SUMMARY_COLUMNS or value in ("xi_c", "xi_q"):
            return np.array([s[value] for s in self.depth_scales()], dtype=float)
        out = []
        for res in self.results:
            depth = res.network.depth
            if not (1 <= layer <= depth or -depth <= layer <= -1):
                raise ValueError(f"layer must be 1..{depth} or -{depth}..-1, got {layer}")
            i = layer - 1 if layer > 0 else depth + layer
            with np.errstate(divide="ignore", invalid="ignore"):
                if value == "log_q_ratio":
                    out.append(math.log(res.q_mean[i] / res.q_mean[0])
                               if res.q_mean[i] > 0 and res.q_mean[0] > 0 else math.nan)
                elif value == "log_g_ratio":
                    out.append(math.log(res.g_mean[0] / res.g_mean[i])
                               if res.g_mean[i] > 0 and res.g_mean[0] > 0 else math.nan)
                elif value == "c":
                    out.append(float(res.c_mean[i]))
                elif value in res.columns:
                    out.append(float(res[value][i]))
                else:
                    raise ValueError(f"unknown value {value!r}; choose one of "
                                     f"{', '.join(OBSERVABLES)} or a Result column")
        return np.array(out, dtype=float)

    # -- tables

    def _rows(self) -> tuple[list[str], list[list]]:
        """The tidy table: one row per configuration x layer."""
        if not self.results:
            raise ValueError("the sweep has no finished configuration")
        keys = list(self.grid)
        columns = self.results[0].columns
        names = keys + ["seed"] + columns
        rows = []
        for point, seed, res in zip(self.configs, self.seeds, self.results):
            cols = [res[c] for c in columns]
            for i in range(res.network.depth):
                rows.append([point[k] for k in keys] + [seed] + [c[i] for c in cols])
        return names, rows

    def to_pandas(self):
        """The sweep as a tidy table (needs pandas).

        Returns
        -------
        pandas.DataFrame
            One row per configuration x layer; the grid keys, ``seed`` and every Result
            column (``layer`` included) as columns.
        """
        pd = _pandas()
        names, rows = self._rows()
        return pd.DataFrame(rows, columns=names)

    def summary(self):
        """The depth scales of each configuration (needs pandas).

        Returns
        -------
        pandas.DataFrame
            One row per configuration: grid keys, ``seed`` and the :meth:`depth_scales`
            columns (xi in layers, with SE, map fit, theory, notes).
        """
        pd = _pandas()
        rows = [{**point, "seed": seed, **scales} for point, seed, scales
                in zip(self.configs, self.seeds, self.depth_scales())]
        return pd.DataFrame(rows, columns=list(self.grid) + ["seed", *SUMMARY_COLUMNS])

    def to_xarray(self):
        """The sweep as an xarray Dataset (needs ``pip install 'fastvar[xarray]'``).

        Returns
        -------
        xarray.Dataset
            Dimensions: the grid keys and ``layer``. Every Result column over all of them,
            and the depth scales of :meth:`summary` over the grid keys only.
            Configurations not run (an interrupted sweep) are NaN.
        """
        try:
            import xarray  # noqa: F401 (pandas' to_xarray needs it)
        except ImportError:
            raise ImportError("to_xarray() needs xarray: pip install 'fastvar[xarray]'") from None
        keys = list(self.grid)
        per_layer = self.to_pandas().set_index(keys + ["layer"]).to_xarray()
        per_config = self.summary().drop(columns="seed").set_index(keys).to_xarray()
        # the whole grid, so that configurations not run show as NaN rather than vanish
        return per_layer.merge(per_config).reindex({k: self.grid[k] for k in keys})

    def to_dict(self) -> dict[str, Any]:
        """The sweep as a strict-JSON-ready dict.

        Returns
        -------
        dict
            ``format``, ``grid``, ``fixed``, ``trials``, ``seed``, ``configs``, ``seeds``,
            ``pending`` and each result's :meth:`Result.to_dict`; :meth:`from_dict` (and
            :func:`fastvar.load`) invert it.
        """
        data = {"format": formats.SWEEP, "grid": self.grid, "fixed": self.fixed,
                "trials": self.trials, "seed": self.seed, "configs": self.configs,
                "seeds": self.seeds, "pending": self.pending,
                "results": [r.to_dict() for r in self.results]}
        if self.unverified is not None:  # read with verify=False: it stays flagged
            data["unverified"] = self.unverified
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], verify: bool = True) -> "Sweep":
        """Rebuild a Sweep from :meth:`to_dict` output (each Result bitwise from its stats).

        Parameters
        ----------
        data : mapping
            The dict. Its ``format`` must be one this version reads
            (:mod:`fastvar.formats`); its metadata must agree (``configs`` and ``pending``
            the grid's configurations in order, each result's trials, seed, network and
            options those of its configuration), and so must its checksum (files written
            by :meth:`to_json` carry one).
        verify : bool, optional
            False reads a dict that fails those checks anyway, flagged: :attr:`verified`
            False, a warning line in its repr, and each result's :attr:`Result.verified`
            False.

        Returns
        -------
        Sweep
            The sweep.

        Raises
        ------
        TypeError, ValueError
            For a dict that is not a sweep's, or (with ``verify``) one edited since it was
            written, saying what is wrong.
        """
        if not isinstance(data, Mapping):
            raise ValueError(f"not a sweep dict: a {type(data).__name__}")
        formats.file_kind(data, "sweep")
        missing = [k for k in ("grid", "fixed", "trials", "seed", "configs", "seeds", "results")
                   if k not in data]
        if missing:
            raise ValueError(f"sweep dict lacks the key {missing[0]!r}")
        grid, configs, pending = data["grid"], data["configs"], data.get("pending") or []
        if not isinstance(grid, Mapping) or not all(
                isinstance(v, list) and v for v in grid.values()):
            raise ValueError("grid must map each key to a non-empty list of values")
        if not isinstance(data["fixed"], Mapping):
            raise TypeError(f"fixed must be a dict of keywords, got {data['fixed']!r}")
        for name in ("configs", "seeds", "results"):
            if not isinstance(data[name], list):
                raise TypeError(f"{name} must be a list, got {type(data[name]).__name__}")
        if not isinstance(pending, list):
            raise TypeError(f"pending must be a list, got {type(pending).__name__}")
        if not all(isinstance(c, Mapping) and set(c) == set(grid) for c in configs + pending):
            raise ValueError("every entry of configs and pending must hold exactly the grid's keys")
        seeds = [check_int(f"seeds[{i}]", x, 0, (1 << 64) - 1)
                 for i, x in enumerate(data["seeds"])]
        results = []
        for i, item in enumerate(data["results"]):
            try:
                results.append(Result.from_dict(item, verify))
            except (TypeError, ValueError) as err:
                raise type(err)(f"results[{i}]: {err}") from None
        out = cls(grid, data["fixed"], check_int("trials", data["trials"], 1, 2 ** 63 - 1),
                  check_int("seed", data["seed"], 0, (1 << 64) - 1), configs, seeds, results,
                  pending=pending)
        problems = _inconsistencies(out)
        problem = formats.checksum_problem(data)
        out.unverified = formats.verification("sweep", data, problems + (
            [] if problem is None else [problem]), verify)
        if out.unverified is not None:  # which result is wrong is not known: flag them all
            for res in out.results:
                if res.unverified is None:
                    res.unverified = f"the file of its sweep: {out.unverified}"
        return out

    def to_json(self, path: "str | os.PathLike | None" = None) -> "str | None":
        """The sweep as strict JSON, with a ``checksum`` of its content.

        :meth:`from_dict` and :func:`fastvar.load` check the checksum.

        Parameters
        ----------
        path : str or os.PathLike, optional
            Where to write it, atomically.

        Returns
        -------
        str or None
            The JSON text without ``path``; None when written to ``path``.
        """
        text = json.dumps(formats.with_checksum(self.to_dict()), allow_nan=False)
        if path is None:
            return text
        write_file(path, text + "\n")
        return None

    def to_csv(self, path: "str | os.PathLike") -> None:
        """Write the tidy table of :meth:`to_pandas` as CSV (no pandas needed).

        Parameters
        ----------
        path : str or os.PathLike
            Where to write it, atomically.
        """
        names, rows = self._rows()
        lines = [",".join(names)] + [",".join(csv_cell(x) for x in row) for row in rows]
        write_file(path, "\n".join(lines) + "\n")

    def _table_cells(self) -> tuple[list[str], list[list[str]], list[str]]:
        """(heads, rows, notes) of :meth:`table`."""
        keys = list(self.grid)
        pairs = any(r.input_correlation is not None for r in self.results)
        # without input pairs c^L and xi_c are NaN in every row: no columns for them
        heads = keys + ["q^L", "ln g1/gL"] + (
            ["c^L", "xi_q", "xi_c", "xi_c map", "xi_c theory"] if pairs
            else ["xi_q", "xi_q theory"])
        q = self.observable("q_mean")
        lg, c = self.observable("log_g_ratio"), self.observable("c")
        # the reason a value is NaN -> its number under the table, and the columns it
        # applies to: each reason said once (a residual network's applies to four columns)
        notes: dict[str, int] = {}
        columns: dict[str, list[str]] = {}

        def noted(reason: str, column: str) -> str:
            if column not in columns.setdefault(reason, []):
                columns[reason].append(column)
            return f"[{notes.setdefault(reason, len(notes) + 1)}]"

        def xi(s, kind):
            if not math.isnan(s[f"xi_{kind}"]):
                return f"{s[f'xi_{kind}']:.4g} {_text.PLUS_MINUS} {s[f'xi_{kind}_se']:.2g}"
            return f"n/a {noted(s[f'xi_{kind}_note'] or 'not fitted', f'xi_{kind}')}"

        def theory(s, kind, name):
            # NaN map and theory with a note: the network has no theory point (a residual
            # stream, a norm, layers of different sigma_w^2), which the note says
            value = s[f"xi_{kind}_{name}"]
            if (math.isnan(value) and math.isnan(s[f"xi_{kind}_theory"])
                    and s[f"xi_{kind}_note"]):
                return f"nan {noted(s[f'xi_{kind}_note'], f'xi_{kind} {name}')}"
            return f"{value:.4g}"

        rows = []
        for i, (point, s) in enumerate(zip(self.configs, self.depth_scales())):
            row = [f"{point[k]:.4g}" if isinstance(point[k], float) else str(point[k])
                   for k in keys] + [f"{q[i]:.4g}", f"{lg[i]:.3g}"]
            if pairs:
                row += [f"{c[i]:.4g}", xi(s, "q"), xi(s, "c"), theory(s, "c", "map"),
                        theory(s, "c", "theory")]
            else:
                row += [xi(s, "q"), theory(s, "q", "theory")]
            rows.append(row)
        lines = [line for text, k in notes.items()
                 for line in _text.wrapped(f"[{k}] ", f"{', '.join(columns[text])}: {text}")]
        return heads, rows, lines

    def table(self) -> str:
        """The sweep as a text table, one line per configuration.

        Returns
        -------
        str
            Lines of grid values, q^L, ln(g^1/g^L), and the depth scales xi ± SE (layers)
            beside the theory's; with input pairs also c^L and xi_c. A fit that gives no
            number shows ``n/a [k]`` (a theory that gives none ``nan [k]``), and note k
            under the table says why, once, naming the columns it applies to.
        """
        heads, rows, notes = self._table_cells()
        # wider than 100 columns, in blocks under the grid keys' columns
        lines = _text.table_lines(heads, rows, keep=len(self.grid), width=_text.WIDTH)
        return "\n".join(lines + notes)

    def plot(self, x: str, y: "str | None" = None, value: str = "xi_c", layer: int = -1,
             where: "Mapping[str, Any] | None" = None, ax=None):
        """Draw a heatmap of a value over two grid keys, or lines over one (needs matplotlib).

        Parameters
        ----------
        x, y : str
            Grid keys of the axes; ``y`` None draws lines over ``x``.
        value, layer
            As for :meth:`observable`.
        where : mapping, optional
            Values of the other grid keys, to pick one slice of the grid.
        ax : matplotlib Axes, optional
            Where to draw (default: a new figure).

        Returns
        -------
        matplotlib Axes
            What :func:`fastvar.plotting.plot_sweep` returns.
        """
        from .plotting import plot_sweep

        return plot_sweep(self, x, y, value=value, layer=layer, where=where, ax=ax)


def _pandas():
    try:
        import pandas as pd
    except ImportError:
        raise ImportError("this needs pandas: pip install 'fastvar[pandas]'") from None
    return pd


def load(path: "str | os.PathLike", verify: bool = True) -> "Result | Sweep":
    """Read a Result or a Sweep back from the JSON that ``to_json(path)`` wrote.

    Its ``"format"`` says which (:mod:`fastvar.formats`; files of earlier versions are read
    too).

    Parameters
    ----------
    path : str or os.PathLike
        The file's path (not an open file or a file descriptor).
    verify : bool, optional
        False reads a file edited or damaged since fastvar wrote it (its checksum, or
        metadata that do not agree, as :meth:`Result.from_dict` and
        :meth:`Sweep.from_dict` check), flagged as unverified: ``verified`` False, a
        warning line in its table or repr.

    Returns
    -------
    Result or Sweep
        What the file holds.

    Raises
    ------
    TypeError
        If ``path`` is not a path.
    ValueError
        For a file that is not JSON, of a format this version does not read, or (with
        ``verify``) edited since fastvar wrote it, saying which.
    OSError
        If the file cannot be read.
    """
    if not isinstance(path, (str, bytes, os.PathLike)):
        raise TypeError(f"fastvar.load takes the path of a file (a str or pathlib.Path), got "
                        f"{type(path).__name__} {path!r}; give the file's path")
    if not isinstance(verify, bool):
        raise TypeError(f"verify must be True or False, got {verify!r}")
    name = os.fsdecode(path)
    with open(path, encoding="utf-8") as fh:
        try:
            data = json.load(fh)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ValueError(f"{name} is not JSON: {err}") from None
        except RecursionError:  # e.g. '[' * 100000: Python's parser recurses per level
            raise ValueError(f"{name} is not a file fastvar wrote: its JSON nests deeper "
                             "than Python's parser can follow (fastvar's files nest a few "
                             "levels)") from None
    where = f"{name}: "
    if (isinstance(data, Mapping) and data.get("format") in formats.CHECKSUMMED
            and "checksum" not in data):
        # files of these formats are always written with one: its absence is an edit
        data = {**data, "checksum": None}
    try:
        if isinstance(data, Mapping) and formats.file_kind(data) == "sweep":
            return Sweep.from_dict(data, verify)
        return Result.from_dict(data, verify)
    except ValueError as err:
        raise ValueError(f"{where}{err}") from None


__all__ = ["Sweep", "load", "sweep", "configuration_seed"]
