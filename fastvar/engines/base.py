"""What every engine receives (a validated Plan), what it returns, and the registry.

An engine turns blocks of a Plan into per-block stats arrays of shape
(blocks, L, ROWS, STATS_SIZE) (see :mod:`fastvar.kernels.accumulators`; with histograms
``plan.stats_rows`` rows). The API merges
them serially in block order, so a result depends only on (plan, seed, engine): not on
threads, chunking or partitioning: each block draws from its own stream seeded by
(seed, block), and the block size is a pure function of the request. The Numba engines
take a Plan as one :class:`~fastvar.kernels.codes.KernelArgs`, built by :func:`kernel_args`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..kernels.accumulators import HIST_BINS, HIST_QUANTITIES, HIST_RANGE, JAC_ROWS, stats_rows
from ..kernels.codes import (DISTRIBUTION_CODES, INPUTS_DATA, INPUTS_NORMAL,  # noqa: F401
                             INPUTS_PAIR, INPUTS_ROW_PAIR, TRUNC_STD, KernelArgs)
from ..network import Network


@dataclass(frozen=True, eq=False)
class Plan:
    """A validated simulation request, cut into blocks of ``networks_per_block`` networks.

    ``data`` holds the input rows (shape (rows, n_0)) when ``inputs_kind`` is
    INPUTS_DATA or INPUTS_ROW_PAIR (a fixed input is one row); it is empty for fresh
    N(0, I) inputs. ``correlation`` is the input pair's c0 (INPUTS_PAIR), or the mean cosine
    of two distinct rows (INPUTS_ROW_PAIR); NaN without pairs.

    Parameters
    ----------
    network : Network
        The network.
    trials : int
        Forward passes.
    seed : int
        Seed of the random streams.
    inputs_kind : int
        INPUTS_NORMAL, INPUTS_DATA, INPUTS_PAIR or INPUTS_ROW_PAIR
        (:mod:`fastvar.kernels.codes`).
    data : numpy.ndarray
        Input rows, shape (rows, n_0); shape (0, n_0) for fresh inputs.
    inputs_per_network : int
        Inputs sharing each network.
    gradients : bool
        Run the backward pass.
    networks_per_block : int
        Block size, set by the chosen engine.
    input_q0 : float
        Mean squared input entry, the q^0 of the theory.
    correlation : float
        The pairs' c0; NaN without pairs.
    input_q0_rows : tuple of two numpy.ndarray or None
        A data set's per-row lengths ||x_i||^2 / n_0 as (sorted distinct values, row counts);
        None for fresh normal inputs and a single fixed input.
    histogram_scales : numpy.ndarray or None
        With histograms, each layer's bin scale for z, a, delta, shape (L, 3); None without.
    jacobian : bool
        Measure the spectrum of each input's input-output Jacobian (a JAC row, last, in
        each layer's stats).
    """

    network: Network
    trials: int
    seed: int
    inputs_kind: int
    data: np.ndarray
    inputs_per_network: int
    gradients: bool
    networks_per_block: int = 1
    input_q0: float = 1.0  # mean squared input entry, the q^0 of the theory
    correlation: float = float("nan")
    #: a data set's per-row lengths ||x_i||^2 / n_0 as (sorted distinct values, row counts);
    #: None for fresh normal inputs and a single fixed input
    input_q0_rows: "tuple[np.ndarray, np.ndarray] | None" = None
    #: with histograms, each layer's bin scale for z, a, delta, shape (L, 3) (fixed before
    #: any block runs: :func:`fastvar.results.histogram.bin_scales`); None without
    histogram_scales: "np.ndarray | None" = None
    #: measure the spectrum of each input's input-output Jacobian (a JAC row, last, per layer)
    jacobian: bool = False

    @property
    def histograms(self) -> bool:
        """Whether the blocks count histograms (extra stats rows, see
        :mod:`fastvar.kernels.accumulators`)."""
        return self.histogram_scales is not None

    @property
    def stats_rows(self) -> int:
        """Rows per layer of this plan's stats arrays."""
        # the compiled function's Python original: a call from Python to the compiled one
        # costs a microsecond, and this is read several times in every call
        rows = getattr(stats_rows, "py_func", stats_rows)  # plain Python under NUMBA_DISABLE_JIT
        return rows(self.histograms) + (JAC_ROWS if self.jacobian else 0)

    @property
    def pairs(self) -> bool:
        """Whether each network sees a pair of inputs whose cosine is measured."""
        return self.inputs_kind in (INPUTS_PAIR, INPUTS_ROW_PAIR)

    @property
    def networks(self) -> int:
        """Independent networks drawn: trials / inputs_per_network."""
        return self.trials // self.inputs_per_network

    @property
    def blocks(self) -> int:
        """Number of blocks, the last one possibly partial."""
        return -(-self.networks // self.networks_per_block)

    def block_networks(self, block: int) -> int:
        """Networks in one block (the last one may hold fewer).

        Parameters
        ----------
        block : int
            The block, 0 to ``blocks - 1``.

        Returns
        -------
        int
        """
        return min(self.networks_per_block, self.networks - block * self.networks_per_block)


# A run of less than one block would run on one thread: it is cut into up to SPLIT_BLOCKS
# blocks (a power of two, so 2, 4, 8 or 16 threads share them evenly), each still worth
# MIN_BLOCK_WORK steps: at about 2 ns a step that is 0.13 ms, against a block's fixed cost of
# 2-3 us and the thread pool's launch of a few us on an idle machine. Runs of one block or
# more keep their blocks (and streams): their checkpoints resume as they were, and the
# first B blocks of a run are still a run of B blocks' trials (an interrupted run's result).
SPLIT_BLOCKS = 16
MIN_BLOCK_WORK = 2.0 ** 16


def networks_per_block(work_per_network: float, target: float = 2.0 ** 21, cap: int = 256) -> int:
    """Power-of-two block size so one block costs about ``target`` units of work.

    Depends only on the request (never on the machine), so results are reproducible.

    Parameters
    ----------
    work_per_network : float
        Elementary steps of one network.
    target : float
        Steps a block should take.
    cap : int
        The most networks a block holds.

    Returns
    -------
    int
        A power of two, 1 to ``cap``.
    """
    n = int(max(1.0, min(cap, target / max(work_per_network, 1.0))))
    return 1 << (n.bit_length() - 1)


def cut_for_threads(size: int, networks: int, work_per_network: float) -> int:
    """The block size of a run of fewer networks than one block, cut for the threads.

    Parameters
    ----------
    size : int
        Networks of one block (:func:`networks_per_block`).
    networks : int
        Networks in the run: if fewer than ``size``, they are cut into the most blocks, a
        power of two up to SPLIT_BLOCKS, of at least MIN_BLOCK_WORK steps each.
    work_per_network : float
        Elementary steps of one network.

    Returns
    -------
    int
        ``size``, or ceil(networks / blocks) for a cut run.
    """
    if networks >= size:
        return size
    worth = int(min(SPLIT_BLOCKS, networks * max(work_per_network, 1.0) / MIN_BLOCK_WORK))
    blocks = 1 << (max(worth, 1).bit_length() - 1)
    return min(size, -(-networks // blocks))


def weight_scale(plan: Plan) -> np.ndarray:
    """Per-layer factor on unit-scale weights.

    The std (normal), the bound sqrt(3 Var) (uniform), std / TRUNC_STD (truncated normal),
    the gain (orthogonal).

    Parameters
    ----------
    plan : Plan
        The request.

    Returns
    -------
    numpy.ndarray
        Shape (L,).
    """
    net = plan.network
    var = np.asarray(net.weight_var, dtype=np.float64)
    if net.init == "orthogonal":
        return np.full(net.depth, float(net.gain))
    if net.distribution == "uniform":
        return np.sqrt(3.0 * var)
    if net.distribution == "truncated_normal":
        return np.sqrt(var) / TRUNC_STD
    return np.sqrt(var)


def kernel_args(plan: Plan) -> KernelArgs:
    """A plan as the Numba engines' kernels take it: one record of arrays and scalars.

    Parameters
    ----------
    plan : Plan
        The request.

    Returns
    -------
    KernelArgs
    """
    net, act = plan.network, plan.network.activation_fn
    return KernelArgs(
        seed=np.uint64(plan.seed), networks=int(plan.networks),
        networks_per_block=int(plan.networks_per_block),
        widths=np.asarray(net.widths, dtype=np.int64),
        # a writable copy: KernelArgs keeps one numba type (a read-only array is another)
        weight_var=np.array(net.weight_var, dtype=np.float64), weight_scale=weight_scale(plan),
        distribution=DISTRIBUTION_CODES[net.distribution], orthogonal=net.init == "orthogonal",
        bias_std=float(net.bias_std), activation=int(act.code),
        activation_param=float(act.param), alpha=float(net.alpha), norm=net.norm_code,
        norm_eps=float(net.norm_eps), inputs_kind=int(plan.inputs_kind),
        c0=float(plan.correlation), data=np.ascontiguousarray(plan.data, dtype=np.float64),
        k=int(plan.inputs_per_network), gradients=bool(plan.gradients),
        histogram_factor=histogram_factor(plan), jacobian=bool(plan.jacobian))


def jacobian_work(plan: Plan) -> float:
    """Multiply-adds of one network's Jacobians: O(L n^3).

    Per input and layer, n_0 n_l n_{l-1} to carry J through the layer, p^2 n_l for its Gram
    matrix (p = min(n_0, n_l)) and 2 p^3 / 3 for the reduction that gives lambda_max.

    Parameters
    ----------
    plan : Plan
        The request.

    Returns
    -------
    float
        Multiply-adds per network; 0 without ``plan.jacobian``.
    """
    if not plan.jacobian:
        return 0.0
    w = np.asarray(plan.network.widths, dtype=np.float64)
    p = np.minimum(w[0], w[1:])
    per_input = np.sum(w[0] * w[1:] * w[:-1] + p * p * w[1:] + 2.0 * p ** 3 / 3.0)
    return float(plan.inputs_per_network * per_input)


def histogram_factor(plan: Plan) -> np.ndarray:
    """The kernels' histogram slot factor HIST_BINS / (2 HIST_RANGE scale).

    Parameters
    ----------
    plan : Plan
        The request.

    Returns
    -------
    numpy.ndarray
        Per layer for z, a and delta, shape (L, 3); shape (0, 3) without histograms.
    """
    if plan.histogram_scales is None:
        return np.zeros((0, HIST_QUANTITIES))
    return (HIST_BINS / (2.0 * HIST_RANGE)) / np.asarray(plan.histogram_scales, np.float64)


class Engine:
    """Base class of the engines; subclasses register themselves with :func:`register`."""

    name: str = ""
    #: "auto" picks the supporting engine with the highest priority
    priority: int = 0
    #: one line for `fastvar info` and error messages
    summary: str = ""
    #: the cost model of :meth:`seconds_per_network`: nanoseconds of one core per step of
    #: work_per_network and per layer of one network (values in :mod:`.costs`)
    ns_per_step: float
    ns_per_layer: float
    #: ns of one core per multiply-add of :func:`jacobian_work` (engines that measure it)
    ns_per_jacobian_muladd: float = 0.0
    #: blocks run on all numba threads if ``parallel``, else on one core
    parallel: bool = True

    def unsupported(self, plan: Plan) -> "str | None":
        """Why this engine cannot run a plan.

        Parameters
        ----------
        plan : Plan
            The request.

        Returns
        -------
        str or None
            The reason, or None if it can.
        """
        return None

    def work_per_network(self, plan: Plan) -> float:
        """Cost of one network of a plan in elementary steps.

        A step is a weight drawn and used, or a normal drawn by the exact sampler: it sets the
        block size, a function of the request alone; time comes from
        :meth:`seconds_per_network`.

        Parameters
        ----------
        plan : Plan
            The request.

        Returns
        -------
        float
        """
        net = plan.network
        return (float(net.n_weights) * (1 + plan.inputs_per_network) * (2 if plan.gradients else 1)
                + jacobian_work(plan))

    def seconds_per_network(self, plan: Plan) -> float:
        """Seconds of one core that one network of a plan takes.

        The calibrated estimate (:mod:`fastvar.engines.costs`), the only one the API and the
        runners use.

        Parameters
        ----------
        plan : Plan
            The request.

        Returns
        -------
        float
        """
        jacobian = jacobian_work(plan)  # in work_per_network too, at its own rate here
        return 1e-9 * (self.ns_per_step * (self.work_per_network(plan) - jacobian)
                       + self.ns_per_layer * plan.network.depth
                       + self.ns_per_jacobian_muladd * jacobian)

    def full_block(self, plan: Plan) -> int:
        """Networks of one block for a plan's networks, before a run of fewer is cut for
        the threads (:meth:`networks_per_block`).

        Parameters
        ----------
        plan : Plan
            The request.

        Returns
        -------
        int
            Networks per block.
        """
        return networks_per_block(self.work_per_network(plan))

    def networks_per_block(self, plan: Plan) -> int:
        """Block size for a plan; a pure function of the request: :meth:`full_block`, or,
        for a run of fewer networks than that on an engine whose blocks run in parallel,
        smaller blocks for the threads (:func:`cut_for_threads`).

        Parameters
        ----------
        plan : Plan
            The request.

        Returns
        -------
        int
            Networks per block.
        """
        size = self.full_block(plan)
        if not self.parallel:
            return size
        return cut_for_threads(size, plan.networks, self.work_per_network(plan))

    def memory_bytes(self, plan: Plan) -> int:
        """Estimated peak working memory of a run (for a clear error up front).

        Parameters
        ----------
        plan : Plan
            The request.

        Returns
        -------
        int
            Bytes.
        """
        raise NotImplementedError

    _ready = False  # prepare() has run in this process: the kernels' one type is compiled

    def ready(self, plan: Plan) -> bool:
        """Whether the kernels a plan needs are compiled (or loaded) in this process already.

        Then :meth:`prepare` has nothing to do, and a run skips it: no zero-block call (whose
        thread pool launch costs milliseconds under load) and no timer to announce a compile.

        Parameters
        ----------
        plan : Plan
            The request.

        Returns
        -------
        bool
        """
        return self._ready

    def prepare(self, plan: Plan) -> None:
        """Compile (or load from numba's cache) the kernels a plan needs, doing no work.

        Parameters
        ----------
        plan : Plan
            The request.
        """
        type(self).run(self, plan, 0, 0)  # no blocks: the kernels compile, nothing runs
        self._ready = True  # every plan's kernel arguments have one numba type

    def run(self, plan: Plan, first_block: int, n_blocks: int) -> np.ndarray:
        """Stats of a range of blocks.

        Parameters
        ----------
        plan : Plan
            The request.
        first_block : int
            The first block.
        n_blocks : int
            How many blocks (0 compiles the kernels and runs nothing).

        Returns
        -------
        numpy.ndarray
            Shape (n_blocks, L, plan.stats_rows, STATS_SIZE), block first_block first.
        """
        raise NotImplementedError


ENGINES: dict[str, Engine] = {}
_BY_PRIORITY: list[Engine] = []  # ENGINES, highest priority first: what "auto" tries


def register(engine: Engine) -> Engine:
    """Add an engine instance to the registry under ``engine.name``.

    Parameters
    ----------
    engine : Engine
        The instance.

    Returns
    -------
    Engine
        The same instance.
    """
    ENGINES[engine.name] = engine
    _BY_PRIORITY[:] = sorted(ENGINES.values(), key=lambda e: -e.priority)
    return engine


def choose(name: str, plan: Plan) -> Engine:
    """The engine that runs a plan.

    Parameters
    ----------
    name : str
        An engine name, or "auto": the supporting engine with the highest priority.
    plan : Plan
        The request.

    Returns
    -------
    Engine

    Raises
    ------
    ValueError
        An unknown engine, or one that cannot run the plan (the message says why and which
        can).
    """
    name = name.lower()
    if name == "auto":
        for engine in _BY_PRIORITY:
            if engine.unsupported(plan) is None:
                return engine
        raise ValueError("no engine supports this request")
    if name not in ENGINES:
        raise ValueError(f"unknown engine {name!r}; choose auto or one of {', '.join(ENGINES)}")
    engine = ENGINES[name]
    reason = engine.unsupported(plan)
    if reason is not None:
        able = [e.name for e in ENGINES.values() if e.unsupported(plan) is None]
        raise ValueError(f"engine {name!r} cannot run this: {reason}; engines that can: "
                         f"{', '.join(able)}")
    return engine
