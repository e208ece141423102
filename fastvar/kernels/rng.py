"""Reproducible per-block random streams.

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
    """An uninitialised stream state; fill it with :func:`seed_block`.

    Returns
    -------
    numpy.ndarray
        uint64, shape (4,).
    """
    return np.zeros(4, dtype=np.uint64)


@numba.njit(cache=True)
def seed_block(seed, block, state):
    """Fill a state with the stream of one block of a seed.

    Parameters
    ----------
    seed : uint64
        The run's seed.
    block : int
        The block.
    state : numpy.ndarray
        uint64, shape (4,), overwritten.
    """
    key = _mix64(np.uint64(seed) ^ _SEED_SALT)
    x = _mix64(key + np.uint64(block) * _GOLDEN)
    for i in range(4):
        x += _GOLDEN
        state[i] = _mix64(x)
    if state[0] == 0 and state[1] == 0 and state[2] == 0 and state[3] == 0:
        state[0] = _GOLDEN  # the all-zero state is xoshiro's one fixed point


@numba.njit(cache=True, inline="always")
def _step(s0, s1, s2, s3):
    # One xoshiro256** step: (output, next s0, s1, s2, s3).
    result = _rotl(s1 * np.uint64(5), 7) * np.uint64(9)
    t = s1 << np.uint64(17)
    s2 ^= s0
    s3 ^= s1
    s1 ^= s2
    s0 ^= s3
    s2 ^= t
    return result, s0, s1, s2, _rotl(s3, 45)


@numba.njit(cache=True, inline="always")
def next_u64(state):
    """Next 64 random bits of xoshiro256** (advances ``state``).

    Parameters
    ----------
    state : numpy.ndarray
        uint64, shape (4,).

    Returns
    -------
    uint64
    """
    result, state[0], state[1], state[2], state[3] = _step(state[0], state[1], state[2], state[3])
    return result


@numba.njit(cache=True, inline="always")
def uniform(state):
    """A uniform deviate in [0, 1) with 53 random bits.

    Parameters
    ----------
    state : numpy.ndarray
        uint64, shape (4,), advanced.

    Returns
    -------
    float
    """
    return float(next_u64(state) >> np.uint64(11)) * _TWO_POW_M53


def _ziggurat_tables(layers=256, r=3.6541528853610088, area=0.00492867323399):
    # Marsaglia & Tsang (2000) with 52-bit comparisons; 256 layers as in NumPy by default.
    # (r, area) close the construction for that many layers (see tests/test_direct.py).
    m = 2.0 ** 52
    ki = np.zeros(layers, dtype=np.uint64)
    wi = np.zeros(layers)
    fi = np.zeros(layers)
    f = math.exp(-0.5 * r * r)
    q = area / f
    ki[0] = np.uint64(int((r / q) * m))
    wi[0], wi[layers - 1] = q / m, r / m
    fi[0], fi[layers - 1] = 1.0, f
    dn = tn = r
    for i in range(layers - 2, 0, -1):
        dn = math.sqrt(-2.0 * math.log(area / dn + math.exp(-0.5 * dn * dn)))
        ki[i + 1] = np.uint64(int((dn / tn) * m))
        tn = dn
        fi[i] = math.exp(-0.5 * dn * dn)
        wi[i] = dn / m
    return ki, wi, fi, r


_KI, _WI, _FI, _ZIG_R = _ziggurat_tables()
_ZIG_INV_R = 1.0 / _ZIG_R
_MASK52 = np.uint64((1 << 52) - 1)


@numba.njit(cache=True, _nrt=False)
def _zig_slow(state, idx, x, rabs, fi, r, inv_r):
    # Rejection part of a ziggurat with layer heights ``fi`` and base r: the tail
    # (layer 0) or a wedge; NaN when the candidate is rejected and a fresh draw is due.
    if idx == 0:
        while True:
            xx = -inv_r * math.log1p(-uniform(state))
            yy = -math.log1p(-uniform(state))
            if yy + yy > xx * xx:
                return -(r + xx) if (rabs >> np.uint64(8)) & np.uint64(1) else r + xx
    if (fi[idx - 1] - fi[idx]) * uniform(state) + fi[idx] < math.exp(-0.5 * x * x):
        return x
    return math.nan


@numba.njit(cache=True, _nrt=False)
def _normal_slow(state, idx, x, rabs):
    # Rejection part of the 256-layer ziggurat (about 1% of draws).
    return _zig_slow(state, idx, x, rabs, _FI, _ZIG_R, _ZIG_INV_R)


@numba.njit(cache=True, inline="always")
def _zig_candidate(r):
    # (layer, 52-bit magnitude, signed candidate) of the ziggurat from 64 random bits
    idx = r & np.uint64(0xFF)
    r >>= np.uint64(8)
    rabs = (r >> np.uint64(1)) & _MASK52
    x = float(rabs) * _WI[idx]
    if r & np.uint64(1):
        x = -x
    return idx, rabs, x


# _nrt=False on the draws with loops and calls: numba would otherwise wrap each call in an
# atomic incref/decref of ``state`` that its reference-count pruning cannot remove there
# (measured: normal() 14 ns -> 2.6 ns per draw). They allocate nothing, so nothing leaks.
@numba.njit(cache=True, _nrt=False)
def normal(state):
    """A standard normal deviate (ziggurat).

    Parameters
    ----------
    state : numpy.ndarray
        uint64, shape (4,), advanced.

    Returns
    -------
    float
    """
    while True:
        idx, rabs, x = _zig_candidate(next_u64(state))
        if rabs < _KI[idx]:
            return x
        x = _normal_slow(state, idx, x, rabs)
        if x == x:
            return x


@numba.njit(cache=True)
def fill_normal(state, out):
    """Fill a 1-D float64 array with standard normal deviates.

    Parameters
    ----------
    state : numpy.ndarray
        uint64, shape (4,), advanced.
    out : numpy.ndarray
        float64, 1-D, overwritten.
    """
    for i in range(out.shape[0]):
        out[i] = normal(state)


@numba.njit(cache=True)
def fill_uniform(state, out):
    """Fill a 1-D float64 array with uniform deviates in [0, 1).

    Parameters
    ----------
    state : numpy.ndarray
        uint64, shape (4,), advanced.
    out : numpy.ndarray
        float64, 1-D, overwritten.
    """
    for i in range(out.shape[0]):
        out[i] = uniform(state)


# --- Banks of lanes: vectorizable bulk draws for the brute-force engines -------------------
#
# A *bank* is LANES independent xoshiro256** lanes stepped together (the loop over lanes
# vectorizes), plus one scalar stream for the rare draws that cannot be vectorized (the
# ziggurat's rejection path, truncation redraws). It is a uint64 array of BANK_SIZE:
# bank[i * LANES + l] is word i of lane l, bank[4 * LANES:] the scalar stream. A bank is
# seeded from one draw of a block's stream, so its draws still depend only on (seed, block);
# copying a bank replays its draws exactly (used to regenerate weights for a backward pass).
# The functions above are unchanged: these are separate streams with their own layout.

LANES = 64
BANK_SIZE = 4 * LANES + 4
# Bank normals use a 1024-layer ziggurat (10 bits of layer, 1 of sign, 52 of magnitude):
# a quarter of the 256-layer table's slow-path visits, which cost far more than a fast draw.
_KI10, _WI10, _FI10, _ZIG10_R = _ziggurat_tables(1024, 4.038849846109504, 0.0012263246463530893)
_ZIG10_INV_R = 1.0 / _ZIG10_R
_SIGN_EXP_ONE = np.uint64(0x3FF0000000000000)  # bits of 1.0: OR 52 mantissa bits into [1, 2)


def new_bank() -> np.ndarray:
    """An uninitialised bank; fill it with :func:`seed_bank`.

    Returns
    -------
    numpy.ndarray
        uint64, shape (BANK_SIZE,).
    """
    return np.zeros(BANK_SIZE, dtype=np.uint64)


@numba.njit(cache=True)
def seed_bank(state, bank):
    """Seed all lanes of a bank from one draw of a stream (SplitMix64).

    Parameters
    ----------
    state : numpy.ndarray
        uint64, shape (4,), advanced by one draw.
    bank : numpy.ndarray
        uint64, shape (BANK_SIZE,), overwritten.
    """
    x = next_u64(state)
    for i in range(bank.shape[0]):
        x += _GOLDEN
        bank[i] = _mix64(x)
    lanes = (bank.shape[0] - 4) // 4
    for l in range(lanes + 1):
        o = l if l < lanes else 4 * lanes
        step = lanes if l < lanes else 1
        if (bank[o] == 0 and bank[o + step] == 0 and bank[o + 2 * step] == 0
                and bank[o + 3 * step] == 0):
            bank[o] = _GOLDEN


@numba.njit(cache=True, _nrt=False)
def _bank_steps(bank, out, steps):
    # out[step * lanes + l] = next draw of lane l, for step < steps (vectorized over lanes).
    lanes = (bank.shape[0] - 4) // 4
    w0 = bank[0:lanes]
    w1 = bank[lanes:2 * lanes]
    w2 = bank[2 * lanes:3 * lanes]
    w3 = bank[3 * lanes:4 * lanes]
    for step in range(steps):
        o = out[step * lanes:(step + 1) * lanes]
        for l in range(lanes):
            o[l], w0[l], w1[l], w2[l], w3[l] = _step(w0[l], w1[l], w2[l], w3[l])


@numba.njit(cache=True, _nrt=False)
def _zig_fast(bits, out, count):
    # Ziggurat fast path on ``count`` draws; NaN marks a draw that needs the slow path.
    for i in range(count):
        r = bits[i]
        idx = np.int64(r & np.uint64(0x3FF))
        rabs = (r >> np.uint64(11)) & _MASK52
        x = float(np.int64(rabs)) * _WI10[idx]
        x = -x if (r >> np.uint64(10)) & np.uint64(1) else x
        out[i] = x if rabs < _KI10[idx] else math.nan


@numba.njit(cache=True, _nrt=False)
def bank_normal(bank, bits, out, count, limit):
    """out[:count] <- standard normals from ``bank``, each redrawn until ``|x| <= limit``.

    ``limit`` = inf gives N(0, 1), 2.0 the normal truncated at +-2. ``bits`` is uint64
    scratch and ``out`` float64 scratch, both at least ``count`` rounded up to LANES long
    (entries past ``count`` are overwritten). Draws per call depend only on ``count``.

    Parameters
    ----------
    bank : numpy.ndarray
        uint64 lanes (:func:`new_bank`), advanced.
    bits : numpy.ndarray
        uint64 scratch.
    out : numpy.ndarray
        float64; ``out[:count]`` receives the deviates.
    count : int
        Deviates wanted.
    limit : float
        Redraw beyond it (inf: none).
    """
    lanes = (bank.shape[0] - 4) // 4
    steps = (count + lanes - 1) // lanes
    _bank_steps(bank, bits, steps)
    _zig_fast(bits, out, count)
    scalar = bank[4 * lanes:]
    for i in range(count):  # a tight scan: about 1 in 70 draws needs more work
        if not abs(out[i]) <= limit:
            out[i] = _redraw(scalar, bits[i], out[i], limit)


@numba.njit(cache=True, _nrt=False)
def _redraw(scalar, r, x, limit):
    # Finish a draw the fast path left (NaN: the ziggurat's rejection path, as in normal()),
    # then redraw from the scalar stream while |x| > limit.
    if x != x:
        idx = r & np.uint64(0x3FF)
        rabs = (r >> np.uint64(11)) & _MASK52
        x = float(rabs) * _WI10[idx]
        if (r >> np.uint64(10)) & np.uint64(1):
            x = -x
        x = _zig_slow(scalar, idx, x, rabs, _FI10, _ZIG10_R, _ZIG10_INV_R)
        if x != x:  # rejected: a fresh exact draw (any exact sampler will do)
            x = normal(scalar)
    while abs(x) > limit:
        x = normal(scalar)
    return x


@numba.njit(cache=True, _nrt=False)
def bank_uniform(bank, bits, out, count):
    """out[:count] <- uniforms on [-1, 1) with 32 random bits each (two per 64-bit draw).

    Scratch sizes as for :func:`bank_normal`, with ``count`` rounded up to 2 * LANES.

    Parameters
    ----------
    bank : numpy.ndarray
        uint64 lanes (:func:`new_bank`), advanced.
    bits : numpy.ndarray
        uint64 scratch.
    out : numpy.ndarray
        float64; ``out[:count]`` receives the deviates.
    count : int
        Deviates wanted.
    """
    lanes = (bank.shape[0] - 4) // 4
    steps = (count + 2 * lanes - 1) // (2 * lanes)
    half = steps * lanes
    _bank_steps(bank, bits, steps)
    as_bits = out.view(np.uint64)
    for i in range(half):
        r = bits[i]
        as_bits[i] = ((r & np.uint64(0xFFFFFFFF)) << np.uint64(20)) | _SIGN_EXP_ONE
        as_bits[half + i] = ((r >> np.uint64(32)) << np.uint64(20)) | _SIGN_EXP_ONE
    for i in range(2 * half):
        out[i] = 2.0 * out[i] - 3.0
