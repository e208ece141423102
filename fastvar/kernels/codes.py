"""What the Numba kernels take: the integer codes they branch on, and one request's arguments.

Names become codes once, on the Python side (:class:`fastvar.Network`, :mod:`fastvar.api`,
:func:`fastvar.engines.base.kernel_args`); a kernel branches on them at run time, so one
compiled kernel serves every network. Both Numba engines take a request as one
:class:`KernelArgs`, built in one place from a Plan, with the names of the maths.
"""
from typing import NamedTuple

import numpy as np

# inputs_kind: fresh x ~ N(0, I) per trial; rows of a data set (a fixed input is one row);
# a pair x, x' = c0 x + sqrt(1 - c0^2) xi of fresh N(0, I) inputs per network; two
# distinct rows of a data set per network
INPUTS_NORMAL, INPUTS_DATA, INPUTS_PAIR, INPUTS_ROW_PAIR = range(4)

# norm before each layer l >= 2: none, LayerNorm, RMSNorm (fastvar.kernels.norms)
NORM_NONE, NORM_LAYER, NORM_RMS = range(3)
NORM_CODES = {None: NORM_NONE, "layer": NORM_LAYER, "rms": NORM_RMS}

# distribution of the unit-scale weights the direct kernel draws: N(0, 1), U[-1, 1), and
# N(0, 1) cut at +-2 (whose std is TRUNC_STD)
WEIGHTS_NORMAL, WEIGHTS_UNIFORM, WEIGHTS_TRUNCATED = range(3)
DISTRIBUTION_CODES = {"normal": WEIGHTS_NORMAL, "uniform": WEIGHTS_UNIFORM,
                      "truncated_normal": WEIGHTS_TRUNCATED}
TRUNC_STD = 0.87962566103423978  # std of N(0, 1) cut at +-2

# activation phi (fastvar.kernels.activations; names in fastvar.activations)
LINEAR, RELU, LEAKY_RELU, TANH, SIGMOID, GELU, SILU, ELU, SELU, SOFTPLUS, ERF = range(11)


class KernelArgs(NamedTuple):
    """One simulation request as both Numba engines' kernels take it.

    Every field is a NumPy array or a scalar (Numba passes the record as a struct, and
    caches kernels compiled for it). Shapes use L = number of layers.

    Attributes
    ----------
    seed : numpy.uint64
        Block b draws from the stream ``rng.seed_block(seed, b)``.
    networks : int
        Independent networks drawn in the whole run (all blocks).
    networks_per_block : int
        Networks in each block (fewer in the last).
    widths : int64 array, shape (L + 1,)
        n_0 (the input width), n_1, ..., n_L.
    weight_var : float64 array, shape (L,)
        Var(W^l_ij): the exact engine's layer covariances.
    weight_scale : float64 array, shape (L,)
        Factor on the direct engine's unit-scale weights of layer l: the std (normal), the
        bound sqrt(3 Var) (uniform), std / TRUNC_STD (truncated normal), the gain
        (orthogonal, both engines).
    distribution : int
        WEIGHTS_NORMAL, WEIGHTS_UNIFORM or WEIGHTS_TRUNCATED.
    orthogonal : bool
        Scaled Haar-orthogonal weights instead of iid entries.
    bias_std : float
        Standard deviation of the iid N(0, bias_std^2) biases; 0 for none.
    activation : int
        The activation code (LINEAR ... ERF).
    activation_param : float
        Its parameter (leaky_relu's slope, elu's alpha; 0 otherwise).
    alpha : float
        Residual branch scale: h^l = h^{l-1} + alpha (W^l a^{l-1} + b^l); 0 for none.
    norm : int
        NORM_NONE, NORM_LAYER or NORM_RMS.
    norm_eps : float
        Added to the mean square inside the norm's root.
    inputs_kind : int
        INPUTS_NORMAL, INPUTS_DATA, INPUTS_PAIR or INPUTS_ROW_PAIR.
    c0 : float
        The cosine of an INPUTS_PAIR pair (unused by the other kinds).
    data : float64 array, shape (rows, n_0)
        The input rows of INPUTS_DATA and INPUTS_ROW_PAIR (C-ordered; may be empty).
    k : int
        Inputs per network.
    gradients : bool
        Also run the backward pass from a N(0, I) cotangent at the output.
    histogram_factor : float64 array, shape (L, 3) or (0, 3)
        Per layer, for z, a and delta: HIST_BINS / (2 HIST_RANGE scale), the slot factor of
        :func:`~fastvar.kernels.accumulators.add_histogram`; no rows: no histograms.
    jacobian : bool
        Also measure the spectrum of each input's input-output Jacobian per layer (the
        direct engine; :mod:`fastvar.kernels.jacobian`).
    """

    seed: np.uint64
    networks: int
    networks_per_block: int
    widths: np.ndarray
    weight_var: np.ndarray
    weight_scale: np.ndarray
    distribution: int
    orthogonal: bool
    bias_std: float
    activation: int
    activation_param: float
    alpha: float
    norm: int
    norm_eps: float
    inputs_kind: int
    c0: float
    data: np.ndarray
    k: int
    gradients: bool
    histogram_factor: np.ndarray
    jacobian: bool
