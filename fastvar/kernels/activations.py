"""Activation functions phi and their derivatives phi' as scalar Numba functions.

An activation is identified by an integer code (:mod:`fastvar.kernels.codes`) plus one
float parameter (the slope of leaky_relu, the alpha of elu; ignored by the others), so
kernels can take it as plain scalars. ``phi_ufunc``/``dphi_ufunc`` expose the same code
to NumPy arrays.

phi and phi' of NaN or of +-inf are NaN, for every activation. Weights, biases and inputs
are finite, so an infinite pre-activation can only come from overflow: mapping it to NaN
(rather than to tanh(inf) = 1 or relu(-inf) = 0) keeps the overflow visible, and
counted as non-finite, in every later layer and in the backward pass.
"""
import math

import numba
import numpy as np
from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic

from .codes import (ELU, ERF, GELU, LEAKY_RELU, LINEAR, RELU, SELU, SIGMOID, SILU,
                    SOFTPLUS, TANH)

SELU_LAMBDA = 1.0507009873554805
SELU_ALPHA = 1.6732632423543772
_INV_SQRT2 = 0.7071067811865476
_INV_SQRT2PI = 0.3989422804014327
_TWO_OVER_SQRTPI = 1.1283791670955126
_MAX = 1.7976931348623157e308  # largest finite double: not abs(x) <= _MAX is NaN or inf


@numba.njit(cache=True, inline="always")
def _sigmoid(x):
    if x >= 0.0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


@numba.njit(cache=True)
def phi(code, param, x):
    """phi(x) for one activation; NaN if x is not finite.

    Parameters
    ----------
    code : int
        The activation's code (:mod:`fastvar.kernels.codes`).
    param : float
        Its parameter (leaky_relu's slope, elu's alpha; else ignored).
    x : float
        A pre-activation.

    Returns
    -------
    float
    """
    if not abs(x) <= _MAX:
        return math.nan
    if code == TANH:
        return math.tanh(x)
    if code == RELU:
        return x if x > 0.0 else 0.0
    if code == LINEAR:
        return x
    if code == LEAKY_RELU:
        return x if x > 0.0 else param * x
    if code == SIGMOID:
        return _sigmoid(x)
    if code == GELU:
        return 0.5 * x * (1.0 + math.erf(x * _INV_SQRT2))
    if code == SILU:
        return x * _sigmoid(x)
    if code == ELU:
        return x if x > 0.0 else param * math.expm1(x)
    if code == SELU:
        return SELU_LAMBDA * (x if x > 0.0 else SELU_ALPHA * math.expm1(x))
    if code == SOFTPLUS:
        return max(x, 0.0) + math.log1p(math.exp(-abs(x)))
    if code == ERF:
        return math.erf(x)
    return math.nan


@numba.njit(cache=True)
def dphi(code, param, x):
    """phi'(x) for one activation; NaN if x is not finite.

    Parameters
    ----------
    code : int
        The activation's code.
    param : float
        Its parameter.
    x : float
        A pre-activation.

    Returns
    -------
    float
    """
    if not abs(x) <= _MAX:
        return math.nan
    if code == TANH:
        t = math.tanh(x)
        return 1.0 - t * t
    if code == RELU:
        return 1.0 if x > 0.0 else 0.0
    if code == LINEAR:
        return 1.0
    if code == LEAKY_RELU:
        return 1.0 if x > 0.0 else param
    if code == SIGMOID:
        s = _sigmoid(x)
        return s * (1.0 - s)
    if code == GELU:
        return 0.5 * (1.0 + math.erf(x * _INV_SQRT2)) + x * _INV_SQRT2PI * math.exp(-0.5 * x * x)
    if code == SILU:
        s = _sigmoid(x)
        return s + x * s * (1.0 - s)
    if code == ELU:
        return 1.0 if x > 0.0 else param * math.exp(x)
    if code == SELU:
        return SELU_LAMBDA * (1.0 if x > 0.0 else SELU_ALPHA * math.exp(x))
    if code == SOFTPLUS:
        return _sigmoid(x)
    if code == ERF:
        return _TWO_OVER_SQRTPI * math.exp(-x * x)
    return math.nan


@numba.njit(cache=True, inline="always")
def dphi_given_phi(code, param, x, phi_x):
    """phi'(x) when phi(x) is already known: cheaper for tanh and sigmoid (no exp).

    Parameters
    ----------
    code : int
        The activation's code.
    param : float
        Its parameter.
    x : float
        A pre-activation.
    phi_x : float
        phi(x).

    Returns
    -------
    float
    """
    if code == TANH:
        return 1.0 - phi_x * phi_x
    if code == SIGMOID:
        return phi_x * (1.0 - phi_x)
    if code == RELU:  # as dphi, without its call in the caller's loop
        return (1.0 if x > 0.0 else 0.0) if abs(x) <= _MAX else math.nan
    return dphi(code, param, x)


@numba.njit(cache=True)
def phi_dphi(code, param, x):
    """phi(x) and phi'(x) together, sharing the transcendental where they use the same one.

    Equal to :func:`phi` and :func:`dphi` (tanh, sigmoid and silu share their exp): a
    brute-force pass needs both.

    Parameters
    ----------
    code : int
        The activation's code.
    param : float
        Its parameter.
    x : float
        A pre-activation.

    Returns
    -------
    phi_x, dphi_x : float
    """
    if not abs(x) <= _MAX:
        return math.nan, math.nan
    if code == TANH:
        t = math.tanh(x)
        return t, 1.0 - t * t
    if code == SIGMOID:
        s = _sigmoid(x)
        return s, s * (1.0 - s)
    if code == SILU:
        s = _sigmoid(x)
        return x * s, s + x * s * (1.0 - s)
    return phi(code, param, x), dphi(code, param, x)


# tanh over arrays, vectorizable (libm's scalar tanh costs ~15 ns, this ~1.5 ns): 2|x| = k ln2 + r,
# e^(2|x|) - 1 = 2^k expm1(r) + 2^k - 1 with a degree-13 Taylor expm1 on |r| <= ln2/2, then
# tanh = (e^(2x) - 1) / (e^(2x) + 1). Within 3 ulp of math.tanh (tests/test_direct.py; mean
# 0.23 ulp, 77% of values exact on [-25, 25]); tanh(x) = x below 2^-28. The polynomial runs
# in Estrin's scheme with fused multiply-adds (_fma), 30% faster than Horner's scheme with
# separate multiplies and adds (13 dependent steps, 26 operations): 379 against 543 ns for
# 256 values in the same run (2026-12, the 2-core VM), with the same accuracy. |x| and the
# sign by abs and copysign (one instruction each) instead of compares and selects: 347
# against 390 ns, bitwise the same (2026-12-03).
_LN2_HI, _LN2_LO = 6.93147180369123816490e-01, 1.90821492927058770002e-10
_INV_LN2 = 1.4426950408889634


@intrinsic
def _pow2(typingctx, k):
    # 2.0 ** k for an int64 0 <= k < 1024, exactly, from its bits ((k + 1023) << 52): a table
    # lookup would make the vectorized loop gather (slower), and math.ldexp is a libm call
    if not isinstance(k, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        i64 = ir.IntType(64)
        kv = context.cast(builder, args[0], signature.args[0], types.int64)
        bits = builder.shl(builder.add(kv, ir.Constant(i64, 1023)), ir.Constant(i64, 52))
        return builder.bitcast(bits, ir.DoubleType())

    return types.float64(k), codegen


@intrinsic
def _fma(typingctx, a, b, c):
    # a b + c rounded once (IEEE fused multiply-add, llvm.fma): one instruction where the CPU
    # has it (and vectorized), libm's correctly rounded fma where not, so the bits are the
    # same on every CPU (numba never lets LLVM fuse a b + c written out by itself)
    if not all(isinstance(t, types.Float) for t in (a, b, c)):
        return None

    def codegen(context, builder, signature, args):
        f64 = ir.DoubleType()
        fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(f64, [f64] * 3),
                                             "llvm.fma.f64")
        return builder.call(fma, [context.cast(builder, v, t, types.float64)
                                  for v, t in zip(args, signature.args)])

    return types.float64(types.float64, types.float64, types.float64), codegen


_E2, _E3, _E4, _E5, _E6, _E7, _E8, _E9, _E10, _E11, _E12, _E13 = (
    1.0 / math.factorial(i) for i in range(2, 14))


@numba.njit(cache=True, error_model="numpy", _nrt=False)
def _tanh_array(z, a):
    for i in range(z.shape[0]):
        x = z[i]
        ax = abs(x)
        y = ax + ax
        y = y if y < 40.0 else 40.0  # tanh(20) rounds to 1
        kf = np.floor(y * _INV_LN2 + 0.5)
        r = _fma(-kf, _LN2_LO, _fma(-kf, _LN2_HI, y))
        r2 = r * r  # Estrin's scheme: short dependency chains (Horner's are 13 deep)
        r4 = r2 * r2
        p = _fma(r4, _fma(r2, _fma(r, _E13, _E12), _fma(r, _E11, _E10)),
                 _fma(r2, _fma(r, _E9, _E8), _fma(r, _E7, _E6)))
        p = _fma(r2, _fma(r4, p, _fma(r2, _fma(r, _E5, _E4), _fma(r, _E3, _E2))), r)
        s = _pow2(np.int64(kf) & 63)
        em1 = _fma(s, p, s - 1.0)
        t = math.copysign(em1 / (em1 + 2.0), x)
        t = t if ax >= 3.725290298461914e-09 else x  # tiny, +-0 and NaN pass through
        a[i] = t if ax <= _MAX else x - x  # +-inf gives NaN, as phi() does


@numba.njit(cache=True, _nrt=False)
def phi_array(code, param, z, a):
    """a[i] = phi(z[i]) for 1-D arrays; tanh vectorized (see above).

    Parameters
    ----------
    code : int
        The activation's code.
    param : float
        Its parameter.
    z : numpy.ndarray
        float64, 1-D.
    a : numpy.ndarray
        float64, the length of ``z``, overwritten.
    """
    if code == TANH:
        _tanh_array(z, a)
        return
    if code == RELU:  # as phi, inline: the loop vectorizes (a call per value does not)
        for i in range(z.shape[0]):
            x = z[i]
            a[i] = (x if x > 0.0 else 0.0) if abs(x) <= _MAX else math.nan
        return
    for i in range(z.shape[0]):
        a[i] = phi(code, param, z[i])


@numba.njit(cache=True, _nrt=False)
def times_dphi_array(code, param, x, phi_x, out):
    """``out[i] *= phi'(x[i])`` given ``phi_x[i] = phi(x[i])``, for 1-D arrays of one length.

    As :func:`dphi_given_phi` value by value, with the activation chosen once outside the
    loop, so that the loops of tanh, sigmoid and ReLU vectorize.

    Parameters
    ----------
    code : int
        The activation's code.
    param : float
        Its parameter.
    x : numpy.ndarray
        float64, 1-D: pre-activations.
    phi_x : numpy.ndarray
        float64, 1-D: phi of them.
    out : numpy.ndarray
        float64, 1-D, multiplied in place.
    """
    if code == TANH:
        for i in range(out.shape[0]):
            out[i] *= 1.0 - phi_x[i] * phi_x[i]
    elif code == SIGMOID:
        for i in range(out.shape[0]):
            out[i] *= phi_x[i] * (1.0 - phi_x[i])
    elif code == RELU:
        for i in range(out.shape[0]):
            out[i] *= dphi_given_phi(RELU, param, x[i], phi_x[i])
    else:
        for i in range(out.shape[0]):
            out[i] *= dphi_given_phi(code, param, x[i], phi_x[i])


@numba.njit(cache=True, _nrt=False)
def _times_dphi_sum(code, param, x, phi_x, m, c, coef, out):
    # out[i] = ((0 + c m[i]) + coef phi_x[i]) phi'(x[i]), for m at least as long as out:
    # bitwise that sum written to out, then times_dphi_array, in one pass instead of two
    if code == TANH:
        for i in range(out.shape[0]):
            out[i] = ((0.0 + c * m[i]) + coef * phi_x[i]) * (1.0 - phi_x[i] * phi_x[i])
    elif code == RELU:
        for i in range(out.shape[0]):
            out[i] = (((0.0 + c * m[i]) + coef * phi_x[i])
                      * dphi_given_phi(RELU, param, x[i], phi_x[i]))
    else:
        for i in range(out.shape[0]):
            out[i] = 0.0 + c * m[i] + coef * phi_x[i]
        times_dphi_array(code, param, x, phi_x, out)


@numba.njit(cache=True, _nrt=False)
def phi_dphi_array(code, param, z, a, d):
    """a[i], d[i] = phi(z[i]), phi'(z[i]) for 1-D arrays.

    tanh vectorized (see above), the others through :func:`phi_dphi`.

    Parameters
    ----------
    code : int
        The activation's code.
    param : float
        Its parameter.
    z : numpy.ndarray
        float64, 1-D.
    a, d : numpy.ndarray
        float64, the length of ``z``, overwritten.
    """
    if code == TANH:
        _tanh_array(z, a)
        for i in range(z.shape[0]):
            d[i] = 1.0 - a[i] * a[i]
        return
    for i in range(z.shape[0]):
        a[i], d[i] = phi_dphi(code, param, z[i])


@numba.vectorize(["float64(int64, float64, float64)"], cache=True)
def phi_ufunc(code, param, x):
    return phi(code, param, x)


@numba.vectorize(["float64(int64, float64, float64)"], cache=True)
def dphi_ufunc(code, param, x):
    return dphi(code, param, x)
