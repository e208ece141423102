"""The direct engine: brute force at machine speed (Numba, parallel over blocks).

Every weight is drawn, so it serves every distribution and init; it is the ground truth
the exact sampler is checked against. Kernels: :mod:`fastvar.kernels.direct`.
"""
from __future__ import annotations

import numba
import numpy as np

from ..kernels import direct as kernel
from ..kernels import gemm
from ..kernels import rng
from . import costs
from .base import Engine, Plan, jacobian_work, kernel_args, register


class DirectEngine(Engine):
    name = "direct"
    priority = 10
    summary = "Numba brute force: every weight drawn, parallel over blocks, every option"

    def seconds_per_network(self, plan: Plan) -> float:
        net, k = plan.network, plan.inputs_per_network
        # the backward pass draws the weights again, unless they are kept (kernel.kept_shape)
        forward_share = 1.0 if plan.gradients else 0.5
        per_weight = (costs.DIRECT_NS_PER_WEIGHT_KEPT if self._kept(plan)[0]
                      else costs.DIRECT_NS_PER_WEIGHT)
        return 1e-9 * (forward_share * net.n_weights * (per_weight
                                                         + costs.DIRECT_NS_PER_WEIGHT_INPUT * k)
                       + costs.DIRECT_NS_PER_LAYER * net.depth
                       + jacobian_work(plan) * (costs.JACOBIAN_NS_PER_MULADD_ORTHOGONAL
                                                if net.init == "orthogonal"
                                                else costs.JACOBIAN_NS_PER_MULADD_DIRECT))

    @staticmethod
    def _kept(plan: Plan) -> tuple[int, int]:
        # kernel.kept_shape; k = 1 never keeps, and skips a call into Numba (small calls)
        net = plan.network
        if plan.inputs_per_network == 1:
            return 0, 0
        return kernel.kept_shape(np.asarray(net.widths, dtype=np.int64), plan.inputs_per_network,
                                 net.init == "orthogonal", plan.gradients)

    def memory_bytes(self, plan: Plan) -> int:
        net, k = plan.network, plan.inputs_per_network
        w = net.widths
        wmax = max(w)
        # per block (one per thread at a time): phi'(z^l) of every layer for the backward
        # pass, four (k, width) work matrices, the weight chunk, saved banks; a k > 1 run
        # also holds one n x m weight matrix, an orthogonal one its reflector states
        per_block = 8 * ((net.depth if plan.gradients else 0) * k * wmax + 4 * k * wmax
                         + 2 * kernel.CHUNK + net.depth * rng.BANK_SIZE)
        if net.init == "orthogonal":
            per_block += 8 * 6 * net.depth * wmax
        elif k > 1:  # packed in whole panels, forward (W^T) and backward (W)
            per_block += 8 * max(max(gemm.panel_size(a, b), gemm.panel_size(b, a))
                                 for a, b in zip(w[:-1], w[1:]))
            rows, cols = self._kept(plan)  # and W^2 .. W^L kept for backward, if they fit
            per_block += 8 * (rows * cols + (gemm.panel_size(wmax, k) if rows else 0))
        if net.norm is not None and plan.gradients:  # N(z^l) of every layer, for backward
            per_block += 8 * net.depth * k * wmax
        if plan.jacobian:  # J^T twice, a packed matrix, the Gram matrix, orthogonal work
            n0 = w[0]
            per_block += 8 * (3 * n0 * wmax + gemm.panel_size(wmax, wmax) + wmax * wmax
                              + 8 * wmax)
            if not plan.gradients:  # phi'(z^l) of every layer is kept for the Jacobian
                per_block += 8 * net.depth * k * wmax
        # the per-block stats of a chunk of blocks are counted by the API (depth-dependent)
        return numba.config.NUMBA_NUM_THREADS * per_block

    def run(self, plan: Plan, first_block: int, n_blocks: int) -> np.ndarray:
        return kernel.run_blocks(kernel_args(plan), first_block, n_blocks,
                                 numba.get_num_threads())


register(DirectEngine())
