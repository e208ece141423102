"""The Result of a simulation: per-layer columns with standard errors, and their export.

One concern per module: :mod:`.columns` (the statistics and standard errors from the stats
array, the mean-field theory beside them, what makes some incomplete), :mod:`.render` (the
table, its header, notes and warnings), :mod:`.files` (dict, JSON and CSV, format versions
from :mod:`fastvar.formats`), :mod:`.histogram` (per-layer histograms), and :mod:`.result`,
the :class:`Result` that brings them together.
"""
from .columns import (COLUMNS, THEORY_COLUMNS, IncompleteStatisticsWarning, compute_columns,
                      quality_warnings, ratio_of_means)
from .histogram import Histogram
from .result import Result

__all__ = ["COLUMNS", "THEORY_COLUMNS", "Histogram", "IncompleteStatisticsWarning", "Result",
           "compute_columns", "quality_warnings", "ratio_of_means"]
