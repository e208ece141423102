"""One-pass accumulators as Numba functions on float64 arrays.

Three kinds of state, all merged exactly with the Chan / Pebay formulas. For moments
A and B, n = nA + nB, d = meanB - meanA::

    mean = meanA + d nB / n
    M2   = M2A + M2B + d^2 nA nB / n
    M3   = M3A + M3B + d^3 nA nB (nA - nB) / n^2 + 3 d (nA M2B - nB M2A) / n
    M4   = M4A + M4B + d^4 nA nB (nA^2 - nA nB + nB^2) / n^3
           + 6 d^2 (nA^2 M2B + nB^2 M2A) / n^2 + 4 d (nA M3B - nB M3A) / n

so var = M2 / (n - ddof), skew = sqrt(n) M3 / M2^1.5, excess kurtosis = n M4 / M2^2 - 3,
never E[x^2] - E[x]^2 on raw sums. Values are reduced a block of 1024 at a time with a
two-pass mean and central sums in registers, then merged: one pass over the data, none
stored. The exact engine reduces each trial in one pass instead, into power sums of
d = x - K ... d^4 about a shift K fixed for its block (:func:`flush_sums`), turned into
central sums once per block; a trial whose mean lies farther than sd / sqrt(7) from K, or
that holds a non-finite value, takes the two passes, so the cancellation costs at most a
few bits.

* moments, float64[5] = (count, mean, M2, M3, M4) of a stream of values;
* welford, float64[3] = (count, mean, M2) of a stream of scalars;
* pair, float64[6] = (count, mean_x, mean_y, Cxx, Cxy, Cyy) of a stream of (x, y).

The engines keep, per layer and per quantity (z, a, delta), one *stats row* of
``STATS_SIZE`` floats: the pooled unit moments, a welford state of the per-trial
lengths ||x||^2/n, a pair state of per-network (mean x, mean x^2) for between-network
standard errors, and the count of non-finite values skipped. Two more rows per layer
hold per-network statistics in the same layout (so one merge serves every row):

* NET: moments of the fraction of the network's trials whose a^l is all zero (dead); a
  welford state of the cosine c^l = <z, z'> / (||z|| ||z'||) of an input pair; a pair
  state of (c^{l-1}, c^l) (c^0: the inputs' cosine) for the measured slope of the c map;
  the counts of cosines left out as non-finite and as undefined (a zero vector);
* LINK: a pair state of (g^{l+1}, g^l), g = ||delta||^2 / n averaged over the network's
  trials, for the measured backward gain g^l / g^{l+1} with its exact covariance.

With ``simulate(jacobian=True)`` each layer's stats end with one more row, JAC (the last),
in the same layout, of per-network statistics of the input-output Jacobian's squared
singular values (:func:`add_jacobian`): moments of m1, a welford state of the spread
m2 / m1^2 - 1, a pair state of (sqrt(lambda_max), m1), the counts of networks left out as
non-finite and of spreads undefined (m1 = 0).

With histograms (``simulate(histograms=True)``) each layer's stats carry HIST_ROWS more
rows (before the JAC row): for z, a and delta in turn, HIST_SLOTS counts (below,
HIST_BINS bins, above) of the finite values binned on fixed edges (:func:`add_histogram`),
stored as float64 (exact integers below 2**53). They merge by adding, so their sums are
the same in any order.

Users' own ``@numba.njit`` code can call :func:`update_moments` and
:func:`merge_moments` on the ``state`` array of a :class:`fastvar.Moments`.
"""
import numba
import numpy as np
from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic

from .activations import _fma

MOMENTS, WELFORD, PAIR = 0, 5, 8  # offsets of the three parts of a stats row
NONFINITE = 14
UNDEFINED = 15  # values left out because undefined (the cosine of a zero vector)
STATS_SIZE = 16
Z, A, DELTA, NET, LINK = range(5)  # row index of a stats array (L, ROWS, STATS_SIZE)
ROWS = 5

_BLOCK = 1024  # values reduced in registers before one Pebay merge

# Histograms: HIST_BINS uniform bins over [-HIST_RANGE, HIST_RANGE] scales of the layer; a
# value x falls in slot floor(x * factor + HIST_BINS / 2) + 1 with factor = HIST_BINS /
# (2 HIST_RANGE scale), slot 0 below the range, slot HIST_BINS + 1 above. 0 is an edge
# (exact zeros, dead ReLU units, start bin HIST_BINS / 2), and z, a, delta take 12 rows each.
HIST_BINS = 190
HIST_RANGE = 9.5
HIST_SLOTS = HIST_BINS + 2
HIST_QUANTITIES = 3  # z, a, delta, in the order of the rows Z, A, DELTA
HIST_ROWS = HIST_QUANTITIES * HIST_SLOTS // STATS_SIZE
JAC_ROWS = 1  # the Jacobian's row, last in a layer's stats when there is one


@numba.njit(cache=True, inline="always")
def _merge_moments_raw(s, o, nb, mean_b, m2b, m3b, m4b):
    # Merge (nb, mean_b, M2b, M3b, M4b) into s[o:o+5] (Pebay 2008).
    na = s[o]
    if nb == 0.0:
        return
    if na == 0.0:
        s[o], s[o + 1], s[o + 2], s[o + 3], s[o + 4] = nb, mean_b, m2b, m3b, m4b
        return
    n = na + nb
    d = mean_b - s[o + 1]
    dn = d / n
    m2a, m3a = s[o + 2], s[o + 3]
    s[o + 4] += (m4b + d * dn * dn * dn * na * nb * (na * na - na * nb + nb * nb)
                 + 6.0 * dn * dn * (na * na * m2b + nb * nb * m2a)
                 + 4.0 * dn * (na * m3b - nb * m3a))
    s[o + 3] += m3b + d * dn * dn * na * nb * (na - nb) + 3.0 * dn * (na * m2b - nb * m2a)
    s[o + 2] += m2b + d * dn * na * nb
    s[o + 1] += dn * nb
    s[o] = n


@numba.njit(cache=True, _nrt=False)
def merge_moments(state, other):
    """state <- state merged with other (Chan/Pebay: count, mean, M2, M3, M4).

    Parameters
    ----------
    state : numpy.ndarray
        float64, shape (5,), updated in place.
    other : numpy.ndarray
        float64, shape (5,).
    """
    _merge_moments_raw(state, 0, other[0], other[1], other[2], other[3], other[4])


# The block reductions keep four partial sums in a fixed order instead of fastmath
# reassociation: value i goes to lane i % 4 (the tail to lane 0) and the lanes are added as
# (0 + 1) + (2 + 3), so every build (fresh compile or cache, any caller, any CPU) rounds
# identically and results stay bitwise reproducible. numba runs LLVM without its SLP
# vectorizer, so the four lanes are written as one 4-wide vector (``_lanes``): each lane does
# the scalar code's IEEE operations in the scalar code's order (no reassociation, no fused
# multiply-add), so the sums are bitwise those of four scalar accumulators, 2-3x faster.
_SUMS, _CENTRAL = 0, 1  # what _lanes accumulates: (x, x^2), or (d^2, d^3, d^4) with d = x - mean


@intrinsic
def _lanes(typingctx, kind, values, start, quads, mean):
    # Four lanes of sums over values[start + 4 t + l], t < quads, l < 4: kind _SUMS gives
    # (sum x, sum x^2) per lane, _CENTRAL (sum d^2, sum d^3, sum d^4) with d = x - mean; as a
    # tuple of the lanes of each sum in turn (8 or 12 floats).
    if not isinstance(kind, types.IntegerLiteral) or not isinstance(values, types.Array):
        return None
    central = kind.literal_value == _CENTRAL
    sums = 3 if central else 2
    sig = types.UniTuple(types.float64, 4 * sums)(kind, values, start, quads, mean)

    def codegen(context, builder, signature, args):
        _, arr_v, start_v, quads_v, mean_v = args
        arr_t = signature.args[1]
        arr = context.make_array(arr_t)(context, builder, arr_v)
        f64 = ir.DoubleType()
        vty = ir.VectorType(f64, 4)
        i64 = ir.IntType(64)
        zero = ir.Constant(vty, [0.0] * 4)
        accs = [cgutils.alloca_once_value(builder, zero) for _ in range(sums)]
        splat = zero
        for lane in range(4):
            splat = builder.insert_element(splat, mean_v, ir.Constant(ir.IntType(32), lane))
        shape = cgutils.unpack_tuple(builder, arr.shape)
        strides = cgutils.unpack_tuple(builder, arr.strides)
        with cgutils.for_range(builder, quads_v) as loop:
            first = builder.add(start_v, builder.mul(loop.index, ir.Constant(i64, 4)))
            if arr_t.layout == "C":
                ptr = cgutils.get_item_pointer2(context, builder, arr.data, shape, strides,
                                                arr_t.layout, [first])
                x = builder.load(builder.bitcast(ptr, vty.as_pointer()), align=8)
            else:
                x = zero
                for lane in range(4):
                    ptr = cgutils.get_item_pointer2(
                        context, builder, arr.data, shape, strides, arr_t.layout,
                        [builder.add(first, ir.Constant(i64, lane))])
                    x = builder.insert_element(x, builder.load(ptr),
                                               ir.Constant(ir.IntType(32), lane))
            if central:
                d = builder.fsub(x, splat)
                d2 = builder.fmul(d, d)
                terms = (d2, builder.fmul(d2, d), builder.fmul(d2, d2))
            else:
                terms = (x, builder.fmul(x, x))
            for acc, term in zip(accs, terms):
                builder.store(builder.fadd(builder.load(acc), term), acc)
        out = []
        for acc in accs:
            vec = builder.load(acc)
            out += [builder.extract_element(vec, ir.Constant(ir.IntType(32), lane))
                    for lane in range(4)]
        return context.make_tuple(builder, signature.return_type, out)

    return sig, codegen


@numba.njit(cache=True, _nrt=False)
def _block_sums(values, start, stop):
    quads = (stop - start) // 4
    s0, s1, s2, s3, q0, q1, q2, q3 = _lanes(_SUMS, values, start, quads, 0.0)
    for i in range(start + 4 * quads, stop):
        s0 += values[i]
        q0 += values[i] * values[i]
    return (s0 + s1) + (s2 + s3), (q0 + q1) + (q2 + q3)


@numba.njit(cache=True, inline="always")
def _central_terms(x, mean):
    d = x - mean
    d2 = d * d
    return d2, d2 * d, d2 * d2


@numba.njit(cache=True, _nrt=False)
def _block_central(values, start, stop, mean):
    quads = (stop - start) // 4
    a2, b2, c2, e2, a3, b3, c3, e3, a4, b4, c4, e4 = _lanes(_CENTRAL, values, start, quads,
                                                            mean)  # lanes of M2, M3, M4
    for i in range(start + 4 * quads, stop):
        t2, t3, t4 = _central_terms(values[i], mean)
        a2, a3, a4 = a2 + t2, a3 + t3, a4 + t4
    return (a2 + b2) + (c2 + e2), (a3 + b3) + (c3 + e3), (a4 + b4) + (c4 + e4)


# The exact engine reduces a trial in one pass instead (:func:`add_trial` with ``sums``):
# the power sums of d = x - K, ..., d^4 about a shift K fixed for the block, in eight lanes
# (value i to lane i % 8, two 4-wide vectors; d^3 and d^4 added by fused multiply-adds,
# llvm.fma: one instruction where the CPU has it, libm's correctly rounded fma where not,
# the same bits either way), the lanes added as ((0 + 4) + (1 + 5)) + ((2 + 6) + (3 + 7)),
# then the tail. Eight lanes, as four ran at the latency of the fused adds.
@intrinsic
def _shifted_lanes(typingctx, values, octs, shift):
    # (sum d, sum d^2, sum d^3, sum d^4), d = values[i] - shift, over i < 8 octs
    if not (isinstance(values, types.Array) and values.ndim == 1 and values.layout == "C"):
        return None
    sig = types.UniTuple(types.float64, 4)(values, octs, shift)

    def codegen(context, builder, signature, args):
        arr = context.make_array(signature.args[0])(context, builder, args[0])
        f64 = ir.DoubleType()
        vty = ir.VectorType(f64, 4)
        i64, i32 = ir.IntType(64), ir.IntType(32)
        fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vty, [vty] * 3),
                                             "llvm.fma.v4f64")
        zero = ir.Constant(vty, [0.0] * 4)
        accs = [[cgutils.alloca_once_value(builder, zero) for _ in range(2)] for _ in range(4)]
        splat = zero
        for lane in range(4):
            splat = builder.insert_element(splat, args[2], ir.Constant(i32, lane))
        count = context.cast(builder, args[1], signature.args[1], types.intp)
        with cgutils.for_range(builder, count) as loop:
            first = builder.mul(loop.index, ir.Constant(i64, 8))
            for half in range(2):
                at = builder.add(first, ir.Constant(i64, 4 * half))
                x = builder.load(builder.bitcast(builder.gep(arr.data, [at]), vty.as_pointer()),
                                 align=8)
                d = builder.fsub(x, splat)
                d2 = builder.fmul(d, d)
                s1, s2, s3, s4 = (acc[half] for acc in accs)
                builder.store(builder.fadd(builder.load(s1), d), s1)
                builder.store(builder.fadd(builder.load(s2), d2), s2)
                builder.store(builder.call(fma, [d2, d, builder.load(s3)]), s3)
                builder.store(builder.call(fma, [d2, d2, builder.load(s4)]), s4)
        out = []
        for low, high in accs:
            vec = builder.fadd(builder.load(low), builder.load(high))
            e = [builder.extract_element(vec, ir.Constant(i32, lane)) for lane in range(4)]
            out.append(builder.fadd(builder.fadd(e[0], e[1]), builder.fadd(e[2], e[3])))
        return context.make_tuple(builder, signature.return_type, out)

    return sig, codegen


@numba.njit(cache=True, _nrt=False)
def flush_sums(s, sums):
    """Merge the power sums ``sums`` (shift K, count, sums of d ... d^4 with d = x - K) into
    the moments s[MOMENTS:MOMENTS + 5], and zero them.

    M2 = S2 - n e^2, M3 = S3 - 3 e S2 + 2 n e^3, M4 = S4 - 4 e S3 + 6 e^2 S2 - 3 n e^4 with
    e = S1 / n: every trial summed in had n e^2 <= S2 / 8 (its mean within sd / sqrt(7) of
    K), so the sums do too and the cancellation costs at most a few bits.

    Parameters
    ----------
    s : numpy.ndarray
        A stats row, float64 shape (STATS_SIZE,), updated in place.
    sums : numpy.ndarray
        float64, shape (6,): (K, n, S1, S2, S3, S4); the count and sums are zeroed.
    """
    n = sums[1]
    if n == 0.0:
        return
    s2, s3, s4 = sums[3], sums[4], sums[5]
    e = sums[2] / n
    m2 = s2 - n * e * e
    m3 = s3 - 3.0 * e * s2 + 2.0 * n * e * e * e
    m4 = s4 - 4.0 * e * s3 + 6.0 * e * e * s2 - 3.0 * n * e * e * e * e
    _merge_moments_raw(s, MOMENTS, n, sums[0] + e, m2, m3, m4)
    for i in range(1, 6):
        sums[i] = 0.0


@numba.njit(cache=True, _nrt=False)
def _update_shifted(s, sums, values):
    # _update_moments_at through the power sums (flush_sums): one pass; a trial holding a
    # non-finite value, or whose mean is farther than sd / sqrt(7) from K, flushes the sums
    # and takes the two passes (the next trial then shifts by the moments' mean so far)
    n = values.shape[0]
    if sums[1] == 0.0:
        sums[0] = s[MOMENTS + 1]
    shift = sums[0]
    octs = n // 8
    s1, s2, s3, s4 = _shifted_lanes(values, octs, shift)
    for i in range(8 * octs, n):
        d = values[i] - shift
        d2 = d * d
        s1, s2, s3, s4 = s1 + d, s2 + d2, _fma(d2, d, s3), _fma(d2, d2, s4)
    e = s1 / n if n > 0 else 0.0
    if np.isfinite(s4) and np.isfinite(s3) and n * e * e <= 0.125 * s2:
        sums[1] += n
        sums[2] += s1
        sums[3] += s2
        sums[4] += s3
        sums[5] += s4
        return n * shift + s1, s2 + shift * (2.0 * s1 + n * shift), n, 0
    flush_sums(s, sums)
    return _update_moments_at(s, MOMENTS, values)


@numba.njit(cache=True, _nrt=False)
def _finite_block(values, start, stop, s, o):
    # Slow path for a block holding a non-finite value: merge its finite values one by one.
    bad = 0
    for i in range(start, stop):
        x = values[i]
        if np.isfinite(x):
            _merge_moments_raw(s, o, 1.0, x, 0.0, 0.0, 0.0)
        else:
            bad += 1
    return bad


@numba.njit(cache=True, _nrt=False)
def _update_moments_at(s, o, values):
    # Merge the finite entries of 1-D ``values`` into s[o:o+5]; return (sum, sum of
    # squares, count) of those finite entries and the number of non-finite ones.
    total = 0.0
    total2 = 0.0
    count = 0
    bad = 0
    n = values.shape[0]
    for start in range(0, n, _BLOCK):
        stop = min(start + _BLOCK, n)
        b_sum, b_sum2 = _block_sums(values, start, stop)
        if np.isfinite(b_sum2):
            nb = stop - start
            mean = b_sum / nb
            c2, c3, c4 = _block_central(values, start, stop, mean)
            _merge_moments_raw(s, o, float(nb), mean, c2, c3, c4)
        else:
            b_bad = _finite_block(values, start, stop, s, o)
            b_sum = 0.0
            b_sum2 = 0.0
            for i in range(start, stop):
                if np.isfinite(values[i]):
                    b_sum += values[i]
                    b_sum2 += values[i] * values[i]
            bad += b_bad
            nb = stop - start - b_bad
        total += b_sum
        total2 += b_sum2
        count += nb
    return total, total2, count, bad


@numba.njit(cache=True, _nrt=False)
def update_moments(state, values):
    """Merge the finite entries of the 1-D array ``values`` into the moments ``state``.

    Returns the number of non-finite entries, which are skipped.

    Parameters
    ----------
    state : numpy.ndarray
        float64 moments, shape (5,), updated in place.
    values : numpy.ndarray
        float64, 1-D.

    Returns
    -------
    int
        Non-finite entries skipped.
    """
    return _update_moments_at(state, 0, values)[3]


@numba.njit(cache=True, inline="always")
def _push_welford(s, o, x):
    n = s[o] + 1.0
    d = x - s[o + 1]
    s[o] = n
    s[o + 1] += d / n
    s[o + 2] += d * (x - s[o + 1])


@numba.njit(cache=True, inline="always")
def _push_pair(s, o, x, y):
    n = s[o] + 1.0
    dx = x - s[o + 1]
    dy = y - s[o + 2]
    s[o] = n
    s[o + 1] += dx / n
    s[o + 2] += dy / n
    s[o + 3] += dx * (x - s[o + 1])
    s[o + 4] += dx * (y - s[o + 2])
    s[o + 5] += dy * (y - s[o + 2])


# The per-trial functions below (add_trial, add_network, add_networks, add_network_level,
# add_links) are inlined into their numba callers: as calls, the exact engine spent about
# 60 ns a layer in them at width 256 beyond their work (a third of its per-trial
# bookkeeping, measured: the same work inlined by hand took that much less). Called from
# Python they compile as usual.
@numba.njit(cache=True, inline="always")
def add_trial(row, values, sums=None):
    """Add the unit values of one trial (1-D array) to a stats ``row``.

    Updates the pooled moments (over finite entries) and the non-finite count. The
    per-trial length ||x||^2/n is only known when every entry is finite: only such a
    *complete* trial adds its length. Returns (mean, mean square, complete) of the trial,
    which the caller averages over a network's inputs for :func:`add_network`.

    Parameters
    ----------
    row : numpy.ndarray
        A stats row, float64 shape (STATS_SIZE,), updated in place.
    values : numpy.ndarray
        float64, 1-D: the unit values of one trial (C-contiguous with ``sums``).
    sums : numpy.ndarray or None
        With an array (float64 (6,), :func:`flush_sums`), the moments go to these power
        sums in one pass instead (the exact engine's reduction, rounded otherwise), to be
        flushed into ``row`` by :func:`flush_sums`.

    Returns
    -------
    mean : float
        Mean of the values.
    mean_sq : float
        Their mean square, ||x||^2 / n.
    complete : bool
        Every value was finite.
    """
    if sums is None:
        total, total2, count, bad = _update_moments_at(row, MOMENTS, values)
    else:
        total, total2, count, bad = _update_shifted(row, sums, values)
    row[NONFINITE] += bad
    if bad > 0 or count == 0:
        return 0.0, 0.0, False
    _push_welford(row, WELFORD, total2 / count)
    return total / count, total2 / count, True


@numba.njit(cache=True, inline="always")
def add_network(row, mean, mean_sq):
    """Add one network's average (over its inputs) of trial mean and mean square.

    Parameters
    ----------
    row : numpy.ndarray
        A stats row, float64 shape (STATS_SIZE,), updated in place.
    mean : float
        The network's mean of the trial means.
    mean_sq : float
        Its mean of the trial mean squares.
    """
    _push_pair(row, PAIR, mean, mean_sq)


@numba.njit(cache=True, inline="always")
def add_networks(stats_row, values, lengths, sums=None):
    """Add ``values`` of shape (networks, inputs_per_network, units) to one stats row.

    A network enters the between-network state only if all its trials are complete (an
    average over the rest would be biased towards the inputs that did not overflow).
    ``lengths`` (networks,) receives each network's mean over its trials of ||x||^2 / n
    (NaN for an incomplete network).

    Parameters
    ----------
    stats_row : numpy.ndarray
        A stats row, float64 shape (STATS_SIZE,), updated in place.
    values : numpy.ndarray
        float64, shape (networks, inputs_per_network, units).
    lengths : numpy.ndarray
        float64, shape (networks,), overwritten.
    sums : numpy.ndarray or None
        As in :func:`add_trial`.
    """
    for net in range(values.shape[0]):
        s1 = 0.0
        s2 = 0.0
        complete = True
        for j in range(values.shape[1]):
            m1, m2, ok = add_trial(stats_row, values[net, j], sums)
            s1 += m1
            s2 += m2
            complete = complete and ok
        k = values.shape[1]
        lengths[net] = s2 / k if complete else np.nan
        if complete:
            add_network(stats_row, s1 / k, s2 / k)


@numba.njit(cache=True, _nrt=False)
def cosine(x, y):
    """The cosine of two vectors, and whether it is defined.

    Parameters
    ----------
    x, y : numpy.ndarray
        float64, 1-D, of one length.

    Returns
    -------
    cos : float
        <x, y> / (||x|| ||y||); NaN unless defined.
    code : int
        0 if defined, 1 if a value is not finite, 2 if x or y is all zero (undefined).
    """
    xy = 0.0
    xx = 0.0
    yy = 0.0
    for i in range(x.shape[0]):
        xy += x[i] * y[i]
        xx += x[i] * x[i]
        yy += y[i] * y[i]
    if not (np.isfinite(xy) and np.isfinite(xx) and np.isfinite(yy)):
        return np.nan, 1
    if xx == 0.0 or yy == 0.0:
        return np.nan, 2
    return xy / (np.sqrt(xx) * np.sqrt(yy)), 0


@numba.njit(cache=True, inline="always")
def add_network_level(net_row, z, a, a_lengths, cos_prev, pairs):
    """Per-network statistics of one layer into the NET row, for z, a of shape
    (networks, inputs_per_network, units).

    Dead: the fraction of the network's trials whose a is all zero. ``a_lengths``
    (networks,) is what :func:`add_networks` left for a: NaN marks a network with a NaN or
    infinite activation, which is neither dead nor alive and is left out. With ``pairs``
    (two inputs per network): the cosine c of its two z vectors, and (c_prev, c) where
    ``cos_prev`` (networks,) holds the previous layer's cosines, replaced by this layer's.

    Parameters
    ----------
    net_row : numpy.ndarray
        The NET stats row, float64 shape (STATS_SIZE,), updated in place.
    z, a : numpy.ndarray
        float64, shape (networks, inputs_per_network, units).
    a_lengths : numpy.ndarray
        float64, shape (networks,).
    cos_prev : numpy.ndarray
        float64, shape (networks,), replaced by this layer's cosines.
    pairs : bool
        Two inputs per network whose cosine is measured.
    """
    for net in range(z.shape[0]):
        if np.isfinite(a_lengths[net]):
            dead = 0
            for j in range(a.shape[1]):
                alive = False
                for i in range(a.shape[2]):
                    if a[net, j, i] != 0.0:
                        alive = True
                        break
                dead += 0 if alive else 1
            _merge_moments_raw(net_row, MOMENTS, 1.0, dead / a.shape[1], 0.0, 0.0, 0.0)
        if not pairs:
            continue
        c, code = cosine(z[net, 0], z[net, 1])
        if code == 1:
            net_row[NONFINITE] += 1
        elif code == 2:
            net_row[UNDEFINED] += 1
        else:
            _push_welford(net_row, WELFORD, c)
            if np.isfinite(cos_prev[net]):
                _push_pair(net_row, PAIR, cos_prev[net], c)
        cos_prev[net] = c


@numba.njit(cache=True, inline="always")
def add_links(link_row, upper, lower):
    """(g^{l+1}, g^l) per network into the LINK row: ``upper`` and ``lower`` (networks,)
    are the networks' mean lengths at layers l+1 and l (NaN: left out).

    Parameters
    ----------
    link_row : numpy.ndarray
        The LINK stats row, float64 shape (STATS_SIZE,), updated in place.
    upper, lower : numpy.ndarray
        float64, shape (networks,).
    """
    for net in range(upper.shape[0]):
        if np.isfinite(upper[net]) and np.isfinite(lower[net]):
            _push_pair(link_row, PAIR, upper[net], lower[net])


@numba.njit(cache=True, _nrt=False)
def _merge_row(dst, src):
    _merge_moments_raw(dst, MOMENTS, src[MOMENTS], src[MOMENTS + 1], src[MOMENTS + 2],
                       src[MOMENTS + 3], src[MOMENTS + 4])
    # Chan et al. merge of the welford part
    na, nb = dst[WELFORD], src[WELFORD]
    if nb > 0.0:
        n = na + nb
        d = src[WELFORD + 1] - dst[WELFORD + 1]
        dst[WELFORD + 2] += src[WELFORD + 2] + d * d * na * nb / n
        dst[WELFORD + 1] += d * nb / n
        dst[WELFORD] = n
    na, nb = dst[PAIR], src[PAIR]
    if nb > 0.0:
        n = na + nb
        dx = src[PAIR + 1] - dst[PAIR + 1]
        dy = src[PAIR + 2] - dst[PAIR + 2]
        w = na * nb / n
        dst[PAIR + 3] += src[PAIR + 3] + dx * dx * w
        dst[PAIR + 4] += src[PAIR + 4] + dx * dy * w
        dst[PAIR + 5] += src[PAIR + 5] + dy * dy * w
        dst[PAIR + 1] += dx * nb / n
        dst[PAIR + 2] += dy * nb / n
        dst[PAIR] = n
    dst[NONFINITE] += src[NONFINITE]
    dst[UNDEFINED] += src[UNDEFINED]


@numba.njit(cache=True)
def add_jacobian(jac_row, m1, spread, top, m2):
    """Per-network Jacobian statistics of one layer into its JAC row.

    A network with a non-finite m1, m2 or top is left out and counted (NONFINITE); a NaN
    spread with finite m1 (m1 = 0: the Jacobian is 0) is left out of the spread only and
    counted (UNDEFINED).

    Parameters
    ----------
    jac_row : numpy.ndarray
        float64 (STATS_SIZE,), updated in place: moments of m1, a welford state of the
        spread, a pair state of (top, m1), the two counts.
    m1, spread, top, m2 : numpy.ndarray
        float64 (networks,): each network's average over its inputs of m1, of the spread
        m2 / m1^2 - 1, of sqrt(lambda_max) and of m2.
    """
    for net in range(m1.shape[0]):
        if not (np.isfinite(m1[net]) and np.isfinite(m2[net]) and np.isfinite(top[net])):
            jac_row[NONFINITE] += 1
            continue
        _merge_moments_raw(jac_row, MOMENTS, 1.0, m1[net], 0.0, 0.0, 0.0)
        _push_pair(jac_row, PAIR, top[net], m1[net])  # y = m1: heavy tails, as for q
        if np.isfinite(spread[net]):
            _push_welford(jac_row, WELFORD, spread[net])
        else:
            jac_row[UNDEFINED] += 1


@numba.njit(cache=True, _nrt=False)
def merge_stats(dst, src):
    """dst <- dst merged with src, for stats arrays of equal shape (..., rows, STATS_SIZE):
    the first ROWS rows of each layer (and the JAC row, last, when there is one) by the
    moment merges, histogram rows by adding.

    Parameters
    ----------
    dst : numpy.ndarray
        Stats, shape (..., rows, STATS_SIZE), updated in place.
    src : numpy.ndarray
        Stats of the same shape.
    """
    rows = dst.shape[dst.ndim - 2]
    jac = rows == ROWS + JAC_ROWS or rows == ROWS + HIST_ROWS + JAC_ROWS
    d = dst.reshape(-1, STATS_SIZE)
    s = src.reshape(-1, STATS_SIZE)
    for r in range(d.shape[0]):
        if r % rows < ROWS or (jac and r % rows == rows - 1):
            _merge_row(d[r], s[r])
        else:
            for i in range(STATS_SIZE):
                d[r, i] += s[r, i]


@numba.njit(cache=True, _nrt=False)
def merge_blocks(total, block_stats):
    """Merge per-block stats into ``total`` in block order (reproducible).

    Parameters
    ----------
    total : numpy.ndarray
        Stats, shape (L, rows, STATS_SIZE), updated in place.
    block_stats : numpy.ndarray
        Shape (blocks, L, rows, STATS_SIZE).
    """
    for b in range(block_stats.shape[0]):
        merge_stats(total, block_stats[b])


@numba.njit(cache=True, _nrt=False)
def add_histogram(counts, values, factor, slots):
    """Count the finite entries of 1-D ``values`` into ``counts`` (int64, HIST_SLOTS): slot
    floor(x * factor + HIST_BINS / 2) + 1, 0 below the range, HIST_SLOTS - 1 above it.
    Non-finite entries are left out (:func:`add_trial` counts them). ``slots`` (int64, at
    least as long as ``values``) is scratch.

    Parameters
    ----------
    counts : numpy.ndarray
        int64, shape (HIST_SLOTS,), updated in place.
    values : numpy.ndarray
        float64, 1-D.
    factor : float
        Slots per value unit.
    slots : numpy.ndarray
        int64 scratch.
    """
    # two passes: the slots branch-free (vectorized), then the scatter; a NaN or infinite
    # value (rare) goes to slot 0 or the last, and is taken out again at the end
    half = HIST_BINS / 2.0
    top = float(HIST_BINS)
    n = values.shape[0]
    bad = 0
    for i in range(n):
        x = values[i]
        bad += np.int64((x - x) != 0.0)  # NaN for NaN and +-inf
        y = x * factor + half
        y = y if y >= -1.0 else -1.0  # NaN too
        y = y if y <= top else top
        slots[i] = np.int64(np.floor(y)) + 1
    for i in range(n):
        counts[slots[i]] += 1
    if bad:
        for i in range(n):
            if not np.isfinite(values[i]):
                counts[slots[i]] -= 1


@numba.njit(cache=True)
def new_histograms(depth, histograms, values):
    """A block's histogram state: (counts (L, 3, HIST_SLOTS) int64, scratch slots for
    :func:`add_histogram` of up to ``values`` values); no layers if not ``histograms``.

    Parameters
    ----------
    depth : int
        L.
    histograms : bool
        Whether the block counts histograms.
    values : int
        The most values one call of :func:`add_histogram` takes.

    Returns
    -------
    counts : numpy.ndarray
        int64, shape (L, 3, HIST_SLOTS) (L = 0 without histograms).
    slots : numpy.ndarray
        int64 scratch.
    """
    layers = depth if histograms else 0
    return (np.zeros((layers, HIST_QUANTITIES, HIST_SLOTS), np.int64),
            np.empty(values if histograms else 0, np.int64))


@numba.njit(cache=True)
def store_histograms(stats, counts):
    """Write ``counts`` (L, HIST_QUANTITIES, HIST_SLOTS) into the histogram rows of one
    block's ``stats`` (L, ROWS + HIST_ROWS, STATS_SIZE), as floats.

    Parameters
    ----------
    stats : numpy.ndarray
        One block's stats, shape (L, ROWS + HIST_ROWS, STATS_SIZE), updated in place.
    counts : numpy.ndarray
        int64, shape (L, HIST_QUANTITIES, HIST_SLOTS).
    """
    for layer in range(counts.shape[0]):
        flat = 0
        for q in range(HIST_QUANTITIES):
            for slot in range(HIST_SLOTS):
                stats[layer, ROWS + flat // STATS_SIZE, flat % STATS_SIZE] = counts[layer, q,
                                                                                    slot]
                flat += 1


@numba.njit(cache=True)
def stats_rows(histograms):
    """Rows of a layer's stats: ROWS, plus HIST_ROWS with histograms.

    Parameters
    ----------
    histograms : bool
        Whether the run counts histograms.

    Returns
    -------
    int
    """
    return ROWS + HIST_ROWS if histograms else ROWS


def new_stats(depth: int, blocks: "int | None" = None, rows: int = ROWS) -> np.ndarray:
    """Zeroed stats.

    Parameters
    ----------
    depth : int
        L.
    blocks : int or None
        With a number, one stats array per block.
    rows : int
        Rows per layer (:func:`stats_rows`).

    Returns
    -------
    numpy.ndarray
        float64, shape (depth, rows, STATS_SIZE), or (blocks, depth, rows, STATS_SIZE).
    """
    shape = (depth, rows, STATS_SIZE) if blocks is None else (blocks, depth, rows, STATS_SIZE)
    return np.zeros(shape, dtype=np.float64)
