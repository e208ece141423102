"""Reproducible per-block random streams (DESIGN.md section 4).

Block ``b`` of a run with seed ``s`` draws from its own xoshiro256** stream whose state
is filled by SplitMix64 from a hash of (s, b). Results therefore depend only on
(seed, block), never on which thread ran the block. Normal deviates use a 256-layer
ziggurat (the layout NumPy uses), uniform deviates the top 53 bits of a draw.

A stream state is a ``uint64`` array of length 4, created with :func:`new_state`.
"""
import math

import numba
import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_SEED_SALT = np.uint64(0x5851F42D4C957F2D)
_TWO_POW_M53 = 1.0 / 9007199254740992.0


@numba.njit(cache=True, inline="always")
def _mix64(z):
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


@numba.njit(cache=True, inline="always")
def _rotl(x, k):
    return (x << np.uint64(k)) | (x >> np.uint64(64 - k))


def new_state() -> np.ndarray:
    """An uninitialised stream state (uint64[4]); fill it with :func:`seed_block`."""
    return np.zeros(4, dtype=np.uint64)


@numba.njit(cache=True)
def seed_block(seed, block, state):
    """Fill ``state`` (uint64[4]) with the stream of block ``block`` of seed ``seed``."""
    key = _mix64(np.uint64(seed) ^ _SEED_SALT)
    x = _mix64(key + np.uint64(block) * _GOLDEN)
    for i in range(4):
        x += _GOLDEN
        state[i] = _mix64(x)
    if state[0] == 0 and state[1] == 0 and state[2] == 0 and state[3] == 0:
        state[0] = _GOLDEN  # the all-zero state is xoshiro's one fixed point


@numba.njit(cache=True, inline="always")
def next_u64(state):
    """Next 64 random bits of xoshiro256** (advances ``state``)."""
    s0, s1, s2, s3 = state[0], state[1], state[2], state[3]
    result = _rotl(s1 * np.uint64(5), 7) * np.uint64(9)
    t = s1 << np.uint64(17)
    s2 ^= s0
    s3 ^= s1
    s1 ^= s2
    s0 ^= s3
    s2 ^= t
    s3 = _rotl(s3, 45)
    state[0], state[1], state[2], state[3] = s0, s1, s2, s3
    return result


@numba.njit(cache=True, inline="always")
def uniform(state):
    """A uniform deviate in [0, 1) with 53 random bits."""
    return float(next_u64(state) >> np.uint64(11)) * _TWO_POW_M53


def _ziggurat_tables():
    # Marsaglia & Tsang (2000) with 256 layers and 52-bit comparisons, as in NumPy.
    r, area = 3.6541528853610088, 0.00492867323399
    m = 2.0 ** 52
    ki = np.zeros(256, dtype=np.uint64)
    wi = np.zeros(256)
    fi = np.zeros(256)
    f = math.exp(-0.5 * r * r)
    q = area / f
    ki[0] = np.uint64(int((r / q) * m))
    wi[0], wi[255] = q / m, r / m
    fi[0], fi[255] = 1.0, f
    dn = tn = r
    for i in range(254, 0, -1):
        dn = math.sqrt(-2.0 * math.log(area / dn + math.exp(-0.5 * dn * dn)))
        ki[i + 1] = np.uint64(int((dn / tn) * m))
        tn = dn
        fi[i] = math.exp(-0.5 * dn * dn)
        wi[i] = dn / m
    return ki, wi, fi, r


_KI, _WI, _FI, _ZIG_R = _ziggurat_tables()
_ZIG_INV_R = 1.0 / _ZIG_R
_MASK52 = np.uint64((1 << 52) - 1)


@numba.njit(cache=True)
def _normal_slow(state, idx, x, rabs):
    # Rejection part of the ziggurat (about 1% of draws).
    if idx == 0:
        while True:
            xx = -_ZIG_INV_R * math.log1p(-uniform(state))
            yy = -math.log1p(-uniform(state))
            if yy + yy > xx * xx:
                return -(_ZIG_R + xx) if (rabs >> np.uint64(8)) & np.uint64(1) else _ZIG_R + xx
    if (_FI[idx - 1] - _FI[idx]) * uniform(state) + _FI[idx] < math.exp(-0.5 * x * x):
        return x
    return math.nan  # rejected: the caller draws again


@numba.njit(cache=True, inline="always")
def normal(state):
    """A standard normal deviate (ziggurat)."""
    while True:
        r = next_u64(state)
        idx = r & np.uint64(0xFF)
        r >>= np.uint64(8)
        rabs = (r >> np.uint64(1)) & _MASK52
        x = float(rabs) * _WI[idx]
        if r & np.uint64(1):
            x = -x
        if rabs < _KI[idx]:
            return x
        x = _normal_slow(state, idx, x, rabs)
        if x == x:
            return x


@numba.njit(cache=True)
def fill_normal(state, out):
    """Fill the 1-D float64 array ``out`` with standard normal deviates."""
    for i in range(out.shape[0]):
        out[i] = normal(state)


@numba.njit(cache=True)
def fill_uniform(state, out):
    """Fill the 1-D float64 array ``out`` with uniform deviates in [0, 1)."""
    for i in range(out.shape[0]):
        out[i] = uniform(state)
