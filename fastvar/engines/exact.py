"""The exact engine: O(L n k^2) per network by Gaussian conditioning.

With Gaussian weights drawn fresh per network, a layer's output given its inputs is
exactly Gaussian with a covariance set by their Gram matrix, and the backward pass is
drawn from W conditioned on what the forward pass saw. No weight matrix is ever drawn,
and nothing is approximated: the statistics have the same law as the brute-force
engines'. Orthogonal weights are exact too, forward and backward, with biases, k inputs,
pairs, data rows and residual streams or norms (below). Uniform and truncated
normal weights are not Gaussian, so this engine declines them ("auto" then moves on). So
does it for many inputs per network (k above a quarter of the mean width, and above 8):
its k x k algebra, O(n k^2) per layer, then costs more than drawing the weights (direct).

Orthogonal weights (W = gain Q, Q Haar n x m: orthonormal rows if n <= m, columns if
n > m). Forward, Q A = (Q O) C with A = O C (O an m x r orthonormal basis of A's columns,
r = rank A, C^T C = G = A^T A) and Q O distributed as the first n rows of a Haar
max(n, m) x r isometry: drawn by Gram-Schmidt, O(n k^2). The bias b is drawn apart from
W A, and both are kept: the later layers, the norm and the residual stream see Q only
through U = W A (and b, independent of Q), so the backward pass needs Q given Q O = V.
With P = I - O O^T = I - A G^- A^T and R = Q P,

    W^T D = A G^- U^T D + gain R^T D   (as O V^T D = O O^T Q^T D, O O^T = A G^- A^T).

Given V the law of Q is invariant under Q -> Q T for any rotation T of O's complement E
(dimension m - r) fixing O, so R^T D (k columns in E) has the law of F L_S^T, F a uniform
orthonormal frame of E and L_S L_S^T = S its Gram matrix:

* n <= m: R R^T = I - V V^T, so S = D^T D - D^T V V^T D = D^T D - K^T G^- K / gain^2
  (K = U^T D), fixed given V;
* n > m: Q's complement block maps E onto a uniform (m - r)-subspace of V's complement
  (dimension n - r): R^T D = R^T Y with Y = (I - V V^T) D, Y^T Y the same S, and R^T a
  uniform co-isometry, so R^T D is the first m - r coordinates of a uniform frame of
  dimension n - r times L_S^T.

A uniform frame is X f(X^T X) for a Gaussian X and any f with f^T X^T X f = I; taking its
first m - r rows, both cases are F = X (X^T X + Y2^T Y2)^-1/2 with X = P Gamma
(Gamma m x k, iid normals), Y2 a (n - m)+ x k normal matrix, and the square root
M^-1 L_M (L_M L_M^T = M). So W^T D = A G^- K + gain X M^- L_M L_S^T, on S's rank (at most
min(n, max(n, m) - r): beyond it S is rounding, e.g. n = m and r = n, where W^T D = A G^- K
exactly). O((n + m) k^2 + k^3) per layer. With k = 1 this is W^T d =
a (u . d) / ||a||^2 + gain rest P g / sqrt(||P g||^2 + X), rest^2 = ||d||^2 - (u . d)^2 /
(gain^2 ||a||^2), X ~ chi^2_(n - m)+ : O(n + m), no k x k algebra. With a = 0, r = 0 and
P = I.
"""
from __future__ import annotations

import numba
import numpy as np

from .._threads import cores_busy
from ..kernels import exact as kernel
from . import costs
from .base import Engine, Plan, kernel_args, register


MIN_K_LIMIT = 8  # k up to this always runs here


# Backward, the exact engine takes u = W a out of z = u + b, computing 1 - s_b^2 / (s_u^2 +
# s_b^2) and U^T D = Z^T D - b^T D: both cancel, and past s_u^2 / s_b^2 ~ 1e-15 the gradients
# came out 10-20 SE low (width 8, sigma_w^2 = 1e-20, bias_std 1). Below this ratio the
# engine declines, with a margin of 1000.
MIN_WEIGHT_TO_BIAS = 1e-12

# A run of fewer seconds of one core than this runs serially while other processes hold the
# cores: its parallel launch would then wait milliseconds for their scheduler (a run of 2
# blocks of 50 networks, width 64, depth 4: 0.3 ms serially, 7.7 ms in parallel at load 2)
BUSY_SERIAL_SECONDS = 0.01


def _bias_swamps_weights(plan: Plan) -> bool:
    """Whether some layer's weight share s_u^2 may be below MIN_WEIGHT_TO_BIAS s_b^2.

    s_u^2 is sigma_w^2 q0 at layer 1 (the smallest nonzero input length; an all-zero input
    gives u = 0 exactly) and, from layer 2 on, about sigma_w^2 E[phi(z)^2] at least: with
    Var z >= s_b^2 that is at least about sigma_w^2 min(1, s_b^2) (a bounded phi saturates).
    """
    net = plan.network
    sigma_w2 = np.asarray(net.sigma_w2)
    lengths = ([plan.input_q0] if plan.input_q0_rows is None
               else list(plan.input_q0_rows[0]))
    positive = [q for q in lengths if q > 0.0]
    first = sigma_w2[0] * min(positive) if positive else np.inf
    later = sigma_w2[1:].min() * min(1.0, net.bias_std ** 2) if net.depth > 1 else np.inf
    return min(first, later) < MIN_WEIGHT_TO_BIAS * net.bias_std ** 2


def max_inputs_per_network(widths) -> int:
    """Largest k the exact engine takes: beyond ~ n/4 the direct engine is faster (measured).

    Parameters
    ----------
    widths : sequence of int
        n_0, ..., n_L.

    Returns
    -------
    int
        At least MIN_K_LIMIT.
    """
    return max(MIN_K_LIMIT, sum(widths[1:]) // (len(widths) - 1) // 4)


class ExactEngine(Engine):
    name = "exact"
    priority = 20
    summary = ("Numba, exact in law for normal and orthogonal weights by conditioning: "
               "O(L n k^2) per network, forward and backward")
    ns_per_step, ns_per_layer = costs.EXACT_NS_PER_STEP, costs.EXACT_NS_PER_LAYER

    def unsupported(self, plan: Plan) -> "str | None":
        net = plan.network
        if plan.jacobian:
            return ("jacobian=True needs every weight (the exact sampler never draws W); "
                    "use engine='direct' or 'numpy'")
        orthogonal = net.init == "orthogonal"
        if net.distribution != "normal" and not orthogonal:
            return (f"{net.distribution} weights are not Gaussian, so the exact sampler does "
                    "not apply (it needs distribution='normal')")
        # orthogonal weights keep W a apart from b: no cancellation to guard against
        if (plan.gradients and net.bias_std > 0.0 and not orthogonal
                and _bias_swamps_weights(plan)):
            return ("the biases' variance is over 1e12 times the weights' share of a layer's "
                    "variance, and the exact sampler's backward step (W given W a + b) then "
                    "loses its digits to cancellation; the direct engine draws the weights")
        limit = max_inputs_per_network(net.widths)
        if plan.inputs_per_network > limit:
            return (f"inputs_per_network={plan.inputs_per_network} is above {limit} for these "
                    "widths: the exact engine's k x k algebra (O(n k^2) per layer) would be slower "
                    "than drawing the weights")
        return None

    def work_per_network(self, plan: Plan) -> float:
        k = plan.inputs_per_network
        return float(sum(plan.network.widths)) * k * (k + 4)

    def seconds_per_network(self, plan: Plan) -> float:
        base = super().seconds_per_network(plan)
        return base * (costs.EXACT_ORTHOGONAL_FACTOR if plan.network.init == "orthogonal" else 1.0)

    def memory_bytes(self, plan: Plan) -> int:
        net, k = plan.network, plan.inputs_per_network
        widths = net.widths
        # z, a, delta of every layer, plus the residual branches, N(z) and (orthogonal
        # weights with a bias) W a without b when present
        bare = net.init == "orthogonal" and plan.gradients and net.bias_std > 0.0
        layers = 3 + (net.residual is not None) + (net.norm is not None) + bare
        per_block = (8 * k * (layers * sum(widths[1:]) + max(widths))
                     + 8 * (len(widths) + 12) * k * k)
        return numba.config.NUMBA_NUM_THREADS * per_block

    def _kernels(self, plan: Plan) -> list:
        # a run of one block, or on one thread, skips the thread pool's launch (its fixed
        # cost, milliseconds under load, would dominate small calls); so does a run of
        # under BUSY_SERIAL_SECONDS while other processes hold the cores (then the serial
        # kernel comes first, see run). The choice never changes the stats: both kernels give
        # bitwise the same
        if plan.blocks <= 1 or numba.get_num_threads() <= 1:
            return [kernel.run_blocks_serial]
        if self.seconds_per_network(plan) * plan.networks < BUSY_SERIAL_SECONDS:
            return [kernel.run_blocks_serial, kernel.run_blocks]
        return [kernel.run_blocks]

    def ready(self, plan: Plan) -> bool:
        # KernelArgs has one numba type: one compile serves all (overloads, unlike
        # signatures, is read without building a list of types: 8 us a call)
        return all(run.overloads for run in self._kernels(plan))

    def prepare(self, plan: Plan) -> None:
        # compile (or load from the cache) without a call: even a call on no blocks pays the
        # thread pool's launch
        for run in self._kernels(plan):
            if not run.overloads:
                run.compile((numba.typeof(kernel_args(plan)), numba.types.int64,
                             numba.types.int64))

    def run(self, plan: Plan, first_block: int, n_blocks: int) -> np.ndarray:
        kernels = self._kernels(plan)
        run = kernels[0] if len(kernels) == 1 or cores_busy() else kernels[1]
        return run(kernel_args(plan), first_block, n_blocks)


register(ExactEngine())
