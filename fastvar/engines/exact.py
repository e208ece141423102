"""The exact engine: O(L n k^2) per network by Gaussian conditioning.

With Gaussian weights drawn fresh per network, a layer's output given its inputs is
exactly Gaussian with a covariance set by their Gram matrix, and the backward pass is
drawn from W conditioned on what the forward pass saw. No weight matrix is ever drawn,
and nothing is approximated: the statistics have the same law as the brute-force
engines'. Orthogonal weights are exact too: forward always, backward for one input per
network without bias (below). Uniform and truncated
normal weights are not Gaussian, so this engine declines them ("auto" then moves on). So
does it for many inputs per network (k above a quarter of the mean width, and above 8):
its k x k algebra, O(n k^2) per layer, then costs more than drawing the weights (direct).

Orthogonal weights, backward (W = gain Q, Q Haar n x m, one input a, no bias). The later
layers see Q only through u = W a, so the backward pass needs Q given Q e = v, with
e = a / ||a||, v = u / (gain ||a||). Write Q = v e^T + Q (I - e e^T); then

    W^T d = gain (e (v . d) + R^T d),   R = Q (I - e e^T).

R maps e's complement E (dimension m - 1) into R^n with R R^T = I - v v^T (n <= m: the rows
of Q are orthonormal) or R^T R = I_E (n > m: its columns are, and R maps E onto v's
complement). Given v, the law of Q is invariant under Q -> Q O for any rotation O of E
fixing e, so R^T d, a vector of E of fixed length, has a uniform direction in E, and its
length is ||R^T d||^2 = d^T R R^T d:

* n <= m: ||d||^2 - (v . d)^2 exactly, so R^T d = rest P g / ||P g||;
* n > m: R^T d = R^T y with y = (I - v v^T) d, ||y||^2 = ||d||^2 - (v . d)^2, and R^T a Haar
  isometry of v's complement (dimension n - 1) onto E: R^T y is distributed as ||y|| times
  the first m - 1 coordinates of a uniform unit vector of R^(n-1), i.e. rest P g /
  sqrt(||P g||^2 + X) with X ~ chi^2_(n-m) independent (a chi^2_(n-1) split in two).

Both are rest P g / sqrt(||P g||^2 + X) with rest^2 = ||d||^2 - (v . d)^2, g ~ N(0, I_m),
P = I - e e^T and X a sum of max(n - m, 0) squared normals; with a = 0 (u = 0) e drops
out (P = I). O(n + m) per layer. With a bias, u given z = u + b is not Gaussian (||v|| is
bounded), and with k inputs Q is conditioned on a k-frame: those are declined.
"""
from __future__ import annotations

import numba
import numpy as np

from ..kernels import exact as kernel
from . import costs
from .base import Engine, Plan, kernel_args, register


MIN_K_LIMIT = 8  # k up to this always runs here


# Backward, the exact engine takes u = W a out of z = u + b, computing 1 - s_b^2 / (s_u^2 +
# s_b^2) and U^T D = Z^T D - b^T D: both cancel, and past s_u^2 / s_b^2 ~ 1e-15 the gradients
# came out 10-20 SE low (width 8, sigma_w^2 = 1e-20, bias_std 1). Below this ratio the
# engine declines, with a margin of 1000.
MIN_WEIGHT_TO_BIAS = 1e-12


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
    """Largest k the exact engine takes: beyond ~ n/4 the direct engine is faster (measured)."""
    return max(MIN_K_LIMIT, int(np.mean(widths[1:])) // 4)


class ExactEngine(Engine):
    name = "exact"
    priority = 20
    summary = ("Numba, exact in law for normal weights by Gaussian conditioning: "
               "O(L n k^2) per network, forward and backward")
    ns_per_step, ns_per_layer = costs.EXACT_NS_PER_STEP, costs.EXACT_NS_PER_LAYER

    def unsupported(self, plan: Plan) -> "str | None":
        net = plan.network
        if plan.jacobian:
            return ("jacobian=True needs every weight (the exact sampler never draws W); "
                    "use engine='direct' or 'numpy'")
        if net.init == "orthogonal":
            if plan.gradients and (plan.inputs_per_network > 1 or net.bias_std > 0.0):
                return ("gradients with orthogonal weights have an exact O(n) sampler only for "
                        "one input per network and no bias (forward-only runs, "
                        "gradients=False, are supported with both)")
            return None
        if net.distribution != "normal":
            return (f"{net.distribution} weights are not Gaussian, so the exact sampler does "
                    "not apply (it needs distribution='normal')")
        if plan.gradients and net.bias_std > 0.0 and _bias_swamps_weights(plan):
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

    def memory_bytes(self, plan: Plan) -> int:
        net, k = plan.network, plan.inputs_per_network
        widths = net.widths
        # z, a, delta of every layer, plus the residual branches and N(z) when present
        layers = 3 + (net.residual is not None) + (net.norm is not None)
        per_block = (8 * k * (layers * sum(widths[1:]) + max(widths))
                     + 8 * (len(widths) + 12) * k * k)
        return numba.config.NUMBA_NUM_THREADS * per_block

    @staticmethod
    def _kernels(plan: Plan) -> list:
        # a run of one block, or on one thread, skips the thread pool's launch (its fixed
        # cost, milliseconds under load, would dominate small calls); the choice depends on
        # the plan and the thread count only, and both kernels give bitwise the same stats
        if plan.blocks <= 1 or numba.get_num_threads() <= 1:
            return [kernel.run_blocks_serial]
        return [kernel.run_blocks]

    def prepare(self, plan: Plan) -> None:
        # compile (or load from the cache) without a call: even a call on no blocks pays the
        # thread pool's launch
        for run in self._kernels(plan):
            if not run.signatures:  # KernelArgs has one numba type: one compile serves all
                run.compile((numba.typeof(kernel_args(plan)), numba.types.int64,
                             numba.types.int64))

    def run(self, plan: Plan, first_block: int, n_blocks: int) -> np.ndarray:
        return self._kernels(plan)[0](kernel_args(plan), first_block, n_blocks)


register(ExactEngine())
