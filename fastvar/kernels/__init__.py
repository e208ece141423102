"""Numba kernels: random streams, activations, accumulators and engine loops.

Kernels take only arrays and scalars, are compiled with ``cache=True`` and never
call ``np.random`` (see DESIGN.md section 4).
"""
