"""The exceptions a Ctrl-C (or a closed Dask client) raises out of :func:`fastvar.simulate`
and :func:`fastvar.sweep`, carrying the work done so far.

They live apart from the modules that raise them, which import NumPy and Numba, so that
``except fastvar.Interrupted:`` never imports anything heavy: a Ctrl-C that landed while
those loaded (the first ``fastvar.simulate`` of a process) would otherwise make the
``except`` clause itself re-import half-initialized modules and fail.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .results import Result
    from .sweeps import Sweep


class Interrupted(KeyboardInterrupt):
    """Ctrl-C (KeyboardInterrupt) during :func:`fastvar.simulate`, with the work done so far.

    ``result`` is the Result of the blocks completed before the interruption, with
    ``partial`` True and ``trials`` the trials actually done (their standard errors are
    the honest ones of that many trials); None if not one block was complete. It holds
    the longest run of completed blocks from the first one: exactly the numbers of an
    uninterrupted run of that many trials, whichever workers happened to be fast. Blocks
    completed beyond it (Dask tasks finish out of order) are left out, so the kept sample
    can never depend on how long its blocks took; a checkpoint keeps them for the resume.

    Parameters
    ----------
    result : Result or None
        The blocks completed (kept as ``.result``).
    """

    def __init__(self, result: "Result | None") -> None:
        super().__init__("interrupted")
        self.result = result


class ClientClosed(Interrupted):
    """The Dask client of :func:`fastvar.simulate` was closed during the run (from another
    thread, say): as for Ctrl-C, ``result`` holds the blocks completed before (see
    :class:`Interrupted`), and a checkpoint keeps them for a resume. A close after the
    last block is in changes nothing: the run returns its complete result."""


class SweepInterrupted(KeyboardInterrupt):
    """Ctrl-C during :func:`sweep`: ``.partial`` is the :class:`Sweep` of the configurations
    finished so far (``partial.complete`` is False). A KeyboardInterrupt, so code that does
    not know about sweeps still stops; with ``checkpoint`` the finished ones are on disk too.

    Parameters
    ----------
    partial : Sweep
        The configurations finished so far (kept as ``.partial``).
    """

    def __init__(self, partial: "Sweep") -> None:
        super().__init__(f"sweep interrupted after {len(partial.results)} of "
                         f"{len(partial.results) + len(partial.pending)} configurations")
        self.partial = partial
