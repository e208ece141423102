"""The calibration of the cost model: measured rates, in one place.

:meth:`fastvar.engines.base.Engine.seconds_per_network` turns these into seconds of one
core per network; :func:`fastvar.api.estimate` (the refusal of year-long runs, the time
printed before a run) and the Dask task size (:func:`fastvar.dask_runner.task_pieces`) use
only that. Remeasure with ``fastvar bench`` (engines) and ``fastvar bench --dask`` (tasks).
Block sizes are not calibrated: they follow the request alone, so results never depend on
the machine (:func:`fastvar.engines.base.networks_per_block`).
"""

# exact engine, ns of one core per step of ExactEngine.work_per_network and per layer.
# Measured 2026-12 on the 2-core VM (shared, load 2.8-4.3), simulate(threads=1), medians
# of 5 calls in 3 rounds interleaved with the engine before the kernels dropped numba's
# reference counting (numbers then in brackets): width 256, depth 10, tanh, k = 1,
# gradients: 57 us a network [95], so 3.1 ns a step after the per-layer cost; width 1,
# depth 2000: 1.34 us a layer [3.8]; width 64, depth 10, ReLU: 18 us a network [51] (1.4 ns
# a step: the model overestimates narrow networks). At load 1: 29 us, 0.66 us, 9.1 us.
# 2026-12-03 (dot products in partial sums, tanh with fused multiply-adds; load 3.9-4.1, the
# same calls, 3 rounds interleaved with the code before): width 256 takes 0.74 [0.53-0.77]
# of the time it took (21-30 us a network), width 1 depth 2000 0.98 [0.70-1.36] (per-layer
# costs unchanged), width 64 ReLU 0.93 [0.62-1.32]: the step cost scaled by 0.74. Then
# the moments in one pass of power sums per block and tanh's sign by copysign (one thread,
# 9 rounds paired in one process, load 2.7): width 256 1.125 [1.03-1.20] times as fast,
# width 64 ReLU 1.10 [0.97-1.25]: the step cost scaled by 0.9. Then the k = 1 backward
# step in three passes and the per-trial statistics inlined (the same paired method, 21
# rounds in each order, load 3-5): width 256 1.09-1.13 times as fast, width 64 ReLU
# 1.12-1.21: the step cost scaled by 0.9 again.
EXACT_NS_PER_STEP = 1.9
EXACT_NS_PER_LAYER = 1300.0

# Orthogonal weights cost this many times as much (Gram-Schmidt forward, a k x k frame
# backward). Measured 2026-12 on the 2-core VM (one thread, load 3.6-5.3), width 256,
# depth 10, tanh, bias 0.1, medians of 3 interleaved rounds: normal / orthogonal speed 1.27
# (k = 1) and 1.47 (k = 4) with gradients, 1.44 and 1.69 forward only.
# Against the direct engine (medians of 5 interleaved rounds, two sessions at load 3.6 and
# 4.5, tanh, width 256, depth 10, gain 1.1, one thread): 59-62x with one input and no bias,
# 49x with a bias of 0.1, 28-31x for input pairs and 19-21x for k = 4 with that bias.
# Remeasured after the kernels dropped reference counting (one thread, load 4.0, no bias,
# k = 1, 5 interleaved rounds): 1.20 [1.18-1.22]; the factor keeps covering k = 4.
EXACT_ORTHOGONAL_FACTOR = 1.5

# direct engine, ns of one core per weight per network (forward and backward), per weight
# and input, and per layer. Measured 2026-05 on the 2-core VM (shared, load 1.7-2.5),
# width 256, depth 10, tanh, gradients: 4.0-7.6 at k = 1 (two sessions, 3 runs of ~0.3 s
# each), 12.8-13.3 at k = 64; so about 6 to draw (and regenerate) a weight and 0.15 per
# input it multiplies; width 1, depth 2000: 1.1 us per layer. The packed FMA product
# (kernels/gemm.py) cut a network at k = 256 from 28.7 to 20.9 ms (one thread, 2026-12,
# load 4.5, fastest of 20 interleaved rounds: 44 and 32 ns per weight, so 0.15 and 0.10
# per weight and input after the 6 of drawing).
DIRECT_NS_PER_WEIGHT = 6.0
# With 1 < k <= 64 the forward pass keeps the packed weights for the backward pass where
# they fit (kernels/direct.py kept_shape): a network at width 256, depth 10, tanh took 0.72
# (k = 2), 0.75 (k = 16), 0.92 (k = 64) of its time (one thread, 7 paired rounds, 2026-12-03,
# load 4-5; two threads at load 1: 0.74, 0.73, 0.87): about 1.7 ns a weight less.
DIRECT_NS_PER_WEIGHT_KEPT = 4.3
DIRECT_NS_PER_WEIGHT_INPUT = 0.10
DIRECT_NS_PER_LAYER = 1100.0

# NumPy engine, ns per step of Engine.work_per_network and per layer. Measured 2026-05 on
# the 2-core VM (shared, load ~2): width 256, depth 10, tanh, k = 1, gradients: 3.8-3.9 ns
# per step (3 runs of ~0.5 s); Python's per-layer work is spread over the networks of a
# block. Counted as one core: NumPy's own threads vary.
NUMPY_NS_PER_STEP = 4.0
NUMPY_NS_PER_LAYER = 2000.0

# Jacobians (simulate(jacobian=True)), ns of one core per multiply-add of
# fastvar.engines.base.jacobian_work (O(L n^3) per input: carrying J through each layer, its
# Gram matrix, the tridiagonal reduction for lambda_max). Measured 2026-12 on the 2-core VM
# (shared, load 4-6), width 256, depth 10, tanh, one thread, four rounds: direct 39-73 ms per
# network with Gaussian weights (0.2-2.5 without the Jacobian; 0.09-0.16 ns per multiply-add,
# once 0.39 at load 6), orthogonal 165-702 ms (0.36-1.5 ns: the Householder reflectors are
# applied row by row, 3.9-4.1x the Gaussian rate in the same round), numpy 208-307 ms
# (11-29 without; 0.44-0.62 ns).
JACOBIAN_NS_PER_MULADD_DIRECT = 0.2
JACOBIAN_NS_PER_MULADD_ORTHOGONAL = 0.8
JACOBIAN_NS_PER_MULADD_NUMPY = 0.45

# Histograms (simulate(histograms=True)), ns of one core per value counted (z, a and delta of
# every unit, layer and trial). Measured 2026-12 on the 2-core VM (shared, load 3-7): the
# counting kernel alone 0.8-1.0 ns a value (256 values a call); in the exact engine at
# width 256, depth 10, tanh, 0.9 ns a value (one thread), which keeps 86-92% of its speed
# (fastvar bench --quick: 92% [89-101] at load 3.5; 79% [56-91] at load 7).
HIST_NS_PER_VALUE = 1.0

# The theory step (fastvar.theory), measured 2026-05 on the 2-core VM (shared, load ~2):
# 92-100 us per layer for the q and g maps from one input length; a data set's rows add
# about 17 us per layer per interpolation node (up to 2 x 257 of them, 65 typical).
THEORY_NS_PER_LAYER = 100_000.0
THEORY_NS_PER_NODE = 17_000.0
THEORY_NODES = 65

# Work per Dask task on one worker (estimated by seconds_per_network): long enough that the
# per-task overhead (scheduling, shipping the per-block stats back, the in-order merge) is
# a small fraction of it; measure with fastvar bench --dask.
TASK_SECONDS = 2.0
