"""Kernels of the exact engine: O(L n k^2) per network by Gaussian conditioning.

Gaussian conditioning, for k inputs per network. Layer l sees A = a^{l-1} (m x k, stored
here as k rows of length m) only through its Gram matrix G = A^T A: the rows of
Z = W A + b 1^T are iid N(0, v G + sigma_b^2 J) (v = Var(W_ij), J = ones), so they are
drawn with a k x k factor of that covariance. Backward, W given the forward pass is
W = U A^+ + W' (I - P_A) (U = W A drawn from U | Z first when there is a bias), hence

    W^T D = M + A G^+ (U^T D - A^T M),   rows of M (m x k) iid N(0, v D^T D),

which costs O((n + m) k^2 + k^3). The k x k algebra is a pivoted Cholesky factorization
with a generalized inverse (A G^- A^T = P_A for any choice), so singular matrices are
fine: dead ReLU layers, repeated inputs, k > m. Orthogonal weights: forward,
Q A = (Q O) R with G = R^T R and Q O a Haar isometry, drawn by Gram-Schmidt; backward by
conditioning Q on Q O, with W A kept apart from the bias (see :mod:`fastvar.engines.exact`).

Each block of networks draws from its own stream ``seed_block(seed, block)`` (normals in
bulk from a bank of lanes seeded by that stream) and writes only its own stats, so
results depend on (seed, block) alone, never on threads.

Where the time goes (perf samples of the JIT code, width 256, depth 10, tanh, k = 1,
gradients, one thread; 2026-12, 2-core VM, numba 0.68): the RNG 42% (``bank_normal`` 28%,
its xoshiro lanes 12%, redraws and the ziggurat's slow path 2%), the vectorized tanh 19%,
the moment blocks 20% (``_block_central`` 8%, ``_block_sums`` 5.5%, their merges and
per-trial bookkeeping 6.5%), this module's own loops 10% (the column draws, the dot
products, the last backward pass), phi' 1.5%, the 1 x 1 factorizations 3.5%, the inputs'
draw 3%: 40% of the RNG's own rate (``fastvar bench``, was 32%). At width 64, ReLU: the
RNG 34%, the moment blocks and their per-trial bookkeeping 32%, own loops 16%, the 1 x 1
factorizations 11.5% (since inline for k = 1 in ``psd_factor``: the network 15% faster).
Since 2026-12-03 the dot products u.d, d.d, a.m and the Gram matrix a.a run in eight
partial sums (``_dot``, 5x faster than one latency-bound sequential sum each), tanh's
polynomial in Estrin's scheme with fused multiply-adds (30% faster), and two passes per
layer are fused into others; before, at width 256 (same method): tanh 25%, the RNG 32%, own
loops 20%, the moment blocks 16%. That changed the rounding (1e-14 relative), hence the
recorded bits of the known answers. Before that, numba's atomic reference counts took 38%
(``_nrt=False``, below), the moment blocks 27% (scalar: numba runs LLVM without its SLP
vectorizer; now one 4-wide vector), numba's reshape helper 2-8% (now ``_view``), and the
tanh loop gathered 2^k from a table.

Then (2026-12-03; one thread, paired in one process, 2-core VM): the moments of z, a and
delta go in one pass per trial into power sums about a shift fixed for the block
(``add_networks(..., sums)``, merged once per block by ``flush_sums``; a trial far from the
shift or holding a non-finite value takes the two passes), 51 against 103 ns a vector of
256, and tanh takes the absolute value and the sign by abs and copysign, 347 against 390
ns: the network 1.125 [1.03-1.20] times as fast at width 256, tanh, 1.10 [0.97-1.25] at
width 64, ReLU (9 rounds, load 2.7), 46% [44-48] of the RNG's own rate against 43% [40-46],
and 43% [41-44] against 39% [37-41] (``bench`` with the RNG bound, 2 threads, alternated
with the code before at load 3). A layer now takes about 1.8 us at width 256 (0.55 us at
width 64): without any statistics it would be 1.14x (1.42x) as fast, the passes 3 x 51 ns,
the rest per-trial bookkeeping (the welford and pair pushes 1% at width 256, 8% at width
64, their divisions hidden: one instead of three changed nothing); tanh 343 ns, its
division 3% of that. Did not pay: adding each layer's statistics inside the network's loop,
while the layer is in cache (0.98x, 0.91x at width 64), inlining the trial's reduction
(0.99x), and 512-bit vectors on AVX-512 (LLVM's prefer-vector-width and
min-legal-vector-width function attributes; the same bits): tanh alone 343 -> 260 ns, but
the network 1.02x at width 256, 0.96x at width 64 and 0.94x at width 16 (tanh); with the
dot products and the moments 512-bit too 1.07x at width 256 and 0.90x at width 64, ReLU
(presumably the CPU's lower clock for 512-bit work). What is left: the RNG, tanh's
polynomial (its operations, not its division, bound it), the per-trial bookkeeping (about
25 ns a vector beyond its pass), the backward pass's own loops.

Then (2026-12-03, later; one thread, the two versions in alternating processes, thread CPU
time, the fastest of 8 calls a round, load 3-5): the k = 1 backward step in three passes
instead of five (u.d with d.d, A^T M from the normals times M's factor without storing M,
and M + A R times phi' in one pass), the same bits, 1.047 [1.03-1.07] times as fast at
width 256, tanh; and the accumulators' per-trial functions inlined into ``_add_network``
(as calls they took about 60 ns a layer at width 256 beyond their work), the same bits.
Together 1.13 [1.09-1.20] at width 256, tanh (1.09 [1.03-1.19] with the order of the
processes swapped) and 1.12 [1.09-1.19] (1.21 [0.98-1.24]) at width 64, ReLU, 21 rounds
each. A layer at width 256, tanh, now takes 1.81 us with its statistics (the code before
2.01; minima of 7 runs, one version after the other): the RNG alone 1.01 us of that (56%),
tanh 0.25, the statistics 0.21 (their three passes 0.09). ``fastvar bench`` (2 threads,
one run each): 54% [50-55] of the RNG's own rate at load 2.3-3.3, the code before 49%
[40-57] at load 3.2-3.7. Did not pay: drawing z already scaled, in the ziggurat's own pass
(one pass fewer, the same bits): 0.94 [0.69-0.99] (1 / 1.08 with the order swapped);
tanh's k rounded by adding and subtracting 1.5 2^52, 2^k from the sum's bits, instead of
floor and a conversion (the same bits; tanh alone 5% faster): 0.97 [0.89-1.12] on the
network. What is left: the RNG, tanh's polynomial, the per-trial bookkeeping (about 40 ns
a vector beyond its pass).
"""
import math

import numba
import numpy as np
from llvmlite import ir
from numba.core import cgutils, types
from numba.core.imputils import impl_ret_borrowed
from numba.extending import intrinsic
from numba.np.arrayobj import populate_array

from .accumulators import (A, DELTA, LINK, NET, STATS_SIZE, Z, add_histogram, add_links,
                           add_network_level, add_networks, flush_sums, new_histograms,
                           stats_rows, store_histograms)
from .activations import _times_dphi_sum, phi_array, times_dphi_array
from .codes import INPUTS_NORMAL, INPUTS_PAIR, INPUTS_ROW_PAIR, NORM_NONE
from .norms import normalize, normalize_backward
from .rng import BANK_SIZE, LANES, bank_normal, seed_bank, seed_block, uniform

_RANK_TOL = 1e-12  # a pivot below this fraction of the largest diagonal counts as zero

# _nrt=False on every kernel that allocates nothing (here and in the accumulators, rng,
# activations and norms): with numba's runtime on, each array argument, view or tuple item
# costs an atomic incref and decref, which its pruning removes only within a function. Per
# layer that was over a hundred atomic operations, 38% of the time at width 256, tanh
# (perf, one thread): 9.4 -> 7.1 us per layer propagation under load 6. Such a kernel can
# allocate nothing (numba refuses to compile it: "NRT required") and must not return an
# array; slices are copied by loops (_copy), as a slice assignment may allocate a copy.


@numba.njit(cache=True, inline="always")
def psd_factor(s, work, perm, root):
    """Pivoted Cholesky of the symmetric PSD k x k ``s``: root root^T = s; returns the rank r.

    Columns r.. of ``root`` are zero and perm[:r] lists the pivots: the rows perm[:r] of
    root form a lower-triangular r x r block L11 (used by :func:`ginv_apply`). Pivots below
    _RANK_TOL times the largest diagonal count as zero, so singular s (dead ReLU layers,
    repeated inputs, k > width) are fine. A non-finite s gives a NaN root (it is counted
    as non-finite downstream, not hidden). ``work`` (k x k) is scratch; O(k^3 / 3).

    Parameters
    ----------
    s : numpy.ndarray
        float64, shape (k, k), symmetric positive semi-definite.
    work : numpy.ndarray
        float64 scratch, shape (k, k).
    perm : numpy.ndarray
        int64, shape (k,), overwritten with the pivots.
    root : numpy.ndarray
        float64, shape (k, k), overwritten with the factor.

    Returns
    -------
    int
        The rank r.
    """
    # k = 1 inline, the general case's operations without its call and loops (10% of the
    # time at width 64, ReLU, where three 1 x 1 factorizations a layer weigh)
    if s.shape[0] != 1:
        return _psd_factor(s, work, perm, root)
    x = s[0, 0]
    perm[0] = 0
    if not math.isfinite(x):
        root[0, 0] = math.nan
        return 1
    if not x > max(0.0, x) * _RANK_TOL:
        root[0, 0] = 0.0
        return 0
    root[0, 0] = x * (1.0 / math.sqrt(x))
    return 1


@numba.njit(cache=True, _nrt=False)
def _psd_factor(s, work, perm, root):
    k = s.shape[0]
    top = 0.0
    finite = True
    for i in range(k):
        perm[i] = i
        finite = finite and math.isfinite(s[i, i])
        top = max(top, s[i, i])
        for j in range(k):
            work[i, j] = s[i, j]
            root[i, j] = 0.0
    if not finite:
        root[:, :] = math.nan
        return k
    cut = top * _RANK_TOL
    for c in range(k):
        best = c
        for t in range(c + 1, k):
            if work[perm[t], perm[t]] > work[perm[best], perm[best]]:
                best = t
        p = perm[best]
        pivot = work[p, p]
        if not pivot > cut:
            return c
        perm[best] = perm[c]
        perm[c] = p
        scale = 1.0 / math.sqrt(pivot)
        for t in range(c, k):
            root[perm[t], c] = work[perm[t], p] * scale
        for t1 in range(c + 1, k):
            q1 = perm[t1]
            l1 = root[q1, c]
            for t2 in range(c + 1, k):
                q2 = perm[t2]
                work[q1, q2] -= l1 * root[q2, c]
    return k


@numba.njit(cache=True, inline="always")
def ginv_apply(root, perm, rank, x, out, tmp):
    """out = S^- x for a generalized inverse S^- of S = root root^T (from :func:`psd_factor`).

    S^- inverts the leading pivot block, (L11 L11^T)^{-1}, and is zero elsewhere; for the
    products the engine needs (A S^- A^T, Cov(b, z) S^- z) every generalized inverse gives
    the same result. x and out are (k, c); ``tmp`` is (k,) scratch.

    Parameters
    ----------
    root : numpy.ndarray
        The factor of :func:`psd_factor`, shape (k, k).
    perm : numpy.ndarray
        Its pivots, int64 shape (k,).
    rank : int
        Its rank.
    x : numpy.ndarray
        float64, shape (k, c).
    out : numpy.ndarray
        float64, shape (k, c), overwritten.
    tmp : numpy.ndarray
        float64 scratch, shape (k,).
    """
    if root.shape[0] != 1:
        _ginv_apply(root, perm, rank, x, out, tmp)
        return
    r = root[0, 0]  # k = 1 inline, the general case's operations in its order
    for j in range(x.shape[1]):
        out[0, j] = (x[0, j] / r) / r if rank > 0 else 0.0


@numba.njit(cache=True, _nrt=False)
def _ginv_apply(root, perm, rank, x, out, tmp):
    k = root.shape[0]
    for j in range(x.shape[1]):
        for i in range(rank):  # L11 y = x[perm]
            acc = x[perm[i], j]
            for c in range(i):
                acc -= root[perm[i], c] * tmp[c]
            tmp[i] = acc / root[perm[i], i]
        for i in range(rank - 1, -1, -1):  # L11^T w = y
            acc = tmp[i]
            for c in range(i + 1, rank):
                acc -= root[perm[c], i] * tmp[c]
            tmp[i] = acc / root[perm[i], i]
        for i in range(k):
            out[i, j] = 0.0
        for i in range(rank):
            out[perm[i], j] = tmp[i]


@intrinsic
def _view(typingctx, buf, off, k, n, lead):
    # buf[off:off + k n] as a C-contiguous (k, n) view, or (1, k, n) with lead 1, for a
    # C-contiguous 1-D buf that holds them: what slicing and reshape give, without the call
    # of numba's reshape helper each time (8% of the time at width 64)
    if not (isinstance(buf, types.Array) and buf.ndim == 1 and buf.layout == "C"
            and isinstance(lead, types.IntegerLiteral)):
        return None
    ndim = 2 + lead.literal_value
    retty = types.Array(buf.dtype, ndim, "C")

    def codegen(context, builder, signature, args):
        src = context.make_array(signature.args[0])(context, builder, args[0])
        off_v, k_v, n_v = (context.cast(builder, v, t, types.intp)
                           for v, t in zip(args[1:4], signature.args[1:4]))
        itemsize = context.get_constant(types.intp, context.get_abi_sizeof(
            context.get_data_type(signature.args[0].dtype)))
        one = context.get_constant(types.intp, 1)
        shape = [one, k_v, n_v][3 - ndim:]
        row = builder.mul(n_v, itemsize)
        strides = [builder.mul(k_v, row), row, itemsize][3 - ndim:]
        view = context.make_array(retty)(context, builder)
        populate_array(view, data=builder.gep(src.data, [off_v]),
                       shape=cgutils.pack_array(builder, shape),
                       strides=cgutils.pack_array(builder, strides), itemsize=itemsize,
                       meminfo=src.meminfo, parent=src.parent)
        return impl_ret_borrowed(context, builder, retty, view._getvalue())

    return retty(buf, off, k, n, lead), codegen


@intrinsic
def _dot_lanes(typingctx, x, y, w, octs, scale):
    # Eight partial sums of x[i] y[i] over i < 8 octs, lane l summing i = l (mod 8), as two
    # 4-wide vectors (numba runs LLVM without its SLP vectorizer): each lane does IEEE
    # multiplies and adds in order, no reassociation, no fused multiply-add, so the sums are
    # those of eight scalar accumulators on any CPU. With an array ``w`` the lanes of
    # w[i] y[i] follow (y loaded once for both); with a float ``scale`` y[i] is taken as
    # scale y[i] (rounded, as a stored product would be)
    arrays = (x, y) + ((w,) if isinstance(w, types.Array) else ())
    if not all(isinstance(t, types.Array) and t.ndim == 1 and t.layout == "C" for t in arrays):
        return None
    scaled = isinstance(scale, types.Float)
    sums = len(arrays) - 1

    def codegen(context, builder, signature, args):
        views = [context.make_array(t)(context, builder, v)
                 for t, v in zip(signature.args[:3], args[:3]) if isinstance(t, types.Array)]
        vty = ir.VectorType(ir.DoubleType(), 4)
        i64 = ir.IntType(64)
        factor = ir.Constant(vty, [0.0] * 4)
        if scaled:
            for lane in range(4):
                factor = builder.insert_element(factor, args[4], ir.Constant(ir.IntType(32), lane))
        accs = [[cgutils.alloca_once_value(builder, ir.Constant(vty, [0.0] * 4))
                 for _ in range(2)] for _ in range(sums)]
        count = context.cast(builder, args[3], signature.args[3], types.intp)
        with cgutils.for_range(builder, count) as loop:
            first = builder.mul(loop.index, ir.Constant(i64, 8))
            for half in range(2):
                at = builder.add(first, ir.Constant(i64, 4 * half))
                xv, yv, *wv = (builder.load(builder.bitcast(builder.gep(arr.data, [at]),
                                                            vty.as_pointer()), align=8)
                               for arr in views)
                if scaled:
                    yv = builder.fmul(factor, yv)
                for acc, other in zip(accs, [xv] + wv):
                    builder.store(builder.fadd(builder.load(acc[half]), builder.fmul(other, yv)),
                                  acc[half])
        lanes = [builder.extract_element(builder.load(half), ir.Constant(ir.IntType(32), lane))
                 for acc in accs for half in acc for lane in range(4)]
        return context.make_tuple(builder, signature.return_type, lanes)

    return types.UniTuple(types.float64, 8 * sums)(x, y, w, octs, scale), codegen


@numba.njit(cache=True, inline="always")
def _dot(x, y):
    # x . y for 1-D C-contiguous arrays of one length, in eight partial sums (_dot_lanes):
    # 5x a single sum's speed, whose every add waits for the one before
    n = x.shape[0]
    octs = n // 8
    s0, s1, s2, s3, s4, s5, s6, s7 = _dot_lanes(x, y, None, octs, None)
    for i in range(8 * octs, n):
        s0 += x[i] * y[i]
    return ((s0 + s4) + (s1 + s5)) + ((s2 + s6) + (s3 + s7))


@numba.njit(cache=True, inline="always")
def _dot2(x, w, y):
    # (x . y, w . y) in one pass over the three, each summed as _dot sums it
    n = y.shape[0]
    octs = n // 8
    (s0, s1, s2, s3, s4, s5, s6, s7,
     t0, t1, t2, t3, t4, t5, t6, t7) = _dot_lanes(x, y, w, octs, None)
    for i in range(8 * octs, n):
        s0 += x[i] * y[i]
        t0 += w[i] * y[i]
    return (((s0 + s4) + (s1 + s5)) + ((s2 + s6) + (s3 + s7)),
            ((t0 + t4) + (t1 + t5)) + ((t2 + t6) + (t3 + t7)))


@numba.njit(cache=True, inline="always")
def _dot_scaled(x, y, c, n):
    # x[:n] . (c y[:n]) summed as _dot sums it, without storing c y
    octs = n // 8
    s0, s1, s2, s3, s4, s5, s6, s7 = _dot_lanes(x, y, None, octs, c)
    for i in range(8 * octs, n):
        s0 += x[i] * (c * y[i])
    return ((s0 + s4) + (s1 + s5)) + ((s2 + s6) + (s3 + s7))


@numba.njit(cache=True, inline="always")
def _rows(buf, off, k, n):
    # the k rows of length n stored at buf[off:], as a (k, n) view
    return _view(buf, off, k, n, 0)


@numba.njit(cache=True, inline="always")
def _copy(dst, at, src, start, count):
    # dst[at:at + count] = src[start:start + count], as a loop: a slice assignment may copy
    # its source first (numba cannot rule out an overlap), which needs the runtime (NRT)
    for i in range(count):
        dst[at + i] = src[start + i]


@numba.njit(cache=True, inline="always")
def _gram(x, out):
    # out = X X^T for the (k, n) array x (the Gram matrix of its k rows)
    k = x.shape[0]
    for p in range(k):
        for q in range(p, k):
            acc = _dot(x[p], x[q])
            out[p, q] = acc
            out[q, p] = acc


@numba.njit(cache=True, inline="always")
def _normals(gen, count):
    # ``count`` standard normals from the block's bank (vectorized draws), in gen[3][:count]
    state, bank, bits, out = gen
    bank_normal(bank, bits, out, count, np.inf)
    return out


@numba.njit(cache=True, _nrt=False)
def _draw_inputs(gen, inputs_kind, c0, data, k, gram, xi):
    # Gram matrix of the k inputs of one network: fresh N(0, I), rows of ``data``, a pair
    # (x, c0 x + sqrt(1 - c0^2) xi) of fresh normals, or two distinct rows of ``data``.
    n0 = data.shape[1]
    gram[:, :] = 0.0
    if inputs_kind == INPUTS_NORMAL and k == 1:
        x = _normals(gen, n0)
        gram[0, 0] = _dot(x[:n0], x[:n0])
    elif inputs_kind == INPUTS_NORMAL:
        x = _normals(gen, n0 * k)
        for r in range(n0):
            for p in range(k):
                for q in range(p, k):
                    gram[p, q] += x[r * k + p] * x[r * k + q]
    elif inputs_kind == INPUTS_PAIR:
        x = _normals(gen, n0 * 2)
        s = math.sqrt(1.0 - c0 * c0)
        for r in range(n0):
            u = x[2 * r]
            v = c0 * u + s * x[2 * r + 1]
            gram[0, 0] += u * u
            gram[0, 1] += u * v
            gram[1, 1] += v * v
    else:
        state = gen[0]
        rows = data.shape[0]
        if inputs_kind == INPUTS_ROW_PAIR:
            first = min(int(uniform(state) * rows), rows - 1)
            second = min(int(uniform(state) * (rows - 1)), rows - 2)
            xi[0] = first
            xi[1] = second + (1 if second >= first else 0)
        else:
            for j in range(k):
                xi[j] = min(int(uniform(state) * rows), rows - 1)
        for p in range(k):
            for q in range(p, k):
                acc = 0.0
                for r in range(n0):
                    acc += data[int(xi[p]), r] * data[int(xi[q]), r]
                gram[p, q] = acc
    for p in range(k):
        for q in range(p):
            gram[p, q] = gram[q, p]


@numba.njit(cache=True, inline="always")
def _draw_columns(gen, root, out):
    # out (k, n): its n columns iid N(0, root root^T)
    k, n = out.shape
    x = _normals(gen, n * k)
    for j in range(k):
        row, c = out[j], root[j, 0]
        for r in range(n):  # 0 + c x: the bits of zeroing the row first, one pass fewer
            row[r] = 0.0 + c * x[r]
        for i in range(1, k):
            c = root[j, i]
            xi = x[i * n:(i + 1) * n]
            for r in range(n):
                row[r] += c * xi[r]


@numba.njit(cache=True, inline="always")
def _forward_normal(gen, g_prev, weight_var, bias_std, z, cov, ws):
    # z (k, n) with columns iid N(0, v G + sigma_b^2 J): a k x k square root, k normals a unit
    work, perm, root, tmp, xi = ws
    k = z.shape[0]
    for p in range(k):
        for q in range(k):
            cov[p, q] = weight_var * g_prev[p, q] + bias_std * bias_std
    psd_factor(cov, work, perm, root)
    _draw_columns(gen, root, z)


@numba.njit(cache=True, _nrt=False)
def _forward_orthogonal(gen, g_prev, gain, bias_std, n, m, k, zbuf, zo, ybuf, ws, wbuf):
    # gain * Q A (+ b) for a Haar Q (n x m): A = O R with R^T R = G (R = root^T, r x k)
    # and O orthonormal, so Q A = (Q O) R with Q O a Haar isometry of size max(n, m) x r
    # (first n rows kept), drawn by Gram-Schmidt on Gaussian vectors. A non-empty ``wbuf``
    # receives gain Q A (without b) at the same offset.
    work, perm, root, tmp, xi = ws
    rank = psd_factor(g_prev, work, perm, root)
    big = max(n, m)
    for c in range(rank):
        y = ybuf[c * big:(c + 1) * big]
        _copy(y, 0, _normals(gen, big), 0, big)
        for _ in range(2):  # classical Gram-Schmidt, twice (stable to rounding)
            for d in range(c):
                prev = ybuf[d * big:(d + 1) * big]
                proj = 0.0
                for r in range(big):
                    proj += y[r] * prev[r]
                for r in range(big):
                    y[r] -= proj * prev[r]
        norm = 0.0
        for r in range(big):
            norm += y[r] * y[r]
        scale = 1.0 / math.sqrt(norm)
        for r in range(big):
            y[r] *= scale
    for j in range(k):
        for r in range(n):
            zbuf[zo + j * n + r] = 0.0
    for c in range(rank):
        y = ybuf[c * big:(c + 1) * big]
        for j in range(k):
            coef = gain * root[j, c]
            for r in range(n):
                zbuf[zo + j * n + r] += coef * y[r]
    if wbuf.shape[0] > 0:  # the backward pass needs W A without the bias
        _copy(wbuf, zo, zbuf, zo, k * n)
    if bias_std > 0.0:
        x = _normals(gen, n)
        for r in range(n):
            b = bias_std * x[r]
            for j in range(k):
                zbuf[zo + j * n + r] += b


@numba.njit(cache=True, _nrt=False)
def _backward_orthogonal(gen, u, d, a_prev, d_prev, gain):
    # d_prev = W^T d for W = gain Q, Q Haar (n x m), given u = W a_prev (one input; u
    # without the bias): W^T d = a (u . d) / ||a||^2 + gain rest P g / sqrt(||P g||^2 + X), with
    # rest^2 = ||d||^2 - (v . d)^2, v = u / (gain ||a||), P the projection off a, g ~ N(0, I_m)
    # and X ~ chi^2 with max(n - m, 0) degrees of freedom (see the engine's docstring)
    n, m = d.shape[0], a_prev.shape[0]
    aa = 0.0
    ud = 0.0
    dd = 0.0
    for i in range(m):
        aa += a_prev[i] * a_prev[i]
    for r in range(n):
        ud += u[r] * d[r]
        dd += d[r] * d[r]
    x = _normals(gen, max(n, m))
    extra = 0.0
    for r in range(m, n):
        extra += x[r] * x[r]
    coef = 0.0
    ge = 0.0
    vd = 0.0
    if aa > 0.0:
        coef = ud / aa
        vd = ud / (gain * math.sqrt(aa))
        for i in range(m):
            ge += x[i] * a_prev[i]
        ge /= aa
    pp = 0.0
    for i in range(m):
        d_prev[i] = x[i] - ge * a_prev[i]
        pp += d_prev[i] * d_prev[i]
    rest = math.sqrt(max(dd - vd * vd, 0.0))
    scale = gain * rest / math.sqrt(pp + extra) if rest > 0.0 else 0.0
    for i in range(m):
        d_prev[i] = coef * a_prev[i] + scale * d_prev[i]


@numba.njit(cache=True, _nrt=False)
def _backward_orthogonal_frame(gen, u, d, a_prev, d_prev, g_prev, gain, xrows, mats, ws):
    # d_prev = W^T D for W = gain Q, Q Haar (n x m), given U = W A (k inputs, the bias taken
    # out): W^T D = A H + gain X B with H = G^- U^T D, X = P_A Gamma (m x k), Gamma2
    # ((n - m)+ x k) and Gamma iid normals, S = D^T D - K^T H / gain^2 = L_S L_S^T,
    # M = X^T X + Gamma2^T Gamma2 = L_M L_M^T on S's rank, B = M^- L_M L_S^T (see the
    # engine's docstring). All (k, width) rows; xrows (k, m) scratch.
    work, perm, root, tmp, xi = ws
    kmat, hmat, smat, sroot = mats[0], mats[1], mats[2], mats[3]
    tmat, mmat, mroot, bmat = mats[6], mats[7], mats[8], mats[9]
    k, n = u.shape
    m = a_prev.shape[1]
    big = max(n, m)
    for p in range(k):  # K = U^T D, and D^T D in smat
        up, dp = u[p], d[p]
        for j in range(k):
            acc = 0.0
            dj = d[j]
            for r in range(n):
                acc += up[r] * dj[r]
            kmat[p, j] = acc
            if j >= p:
                acc = 0.0
                for r in range(n):
                    acc += dp[r] * dj[r]
                smat[p, j] = acc
                smat[j, p] = acc
    rank = psd_factor(g_prev, work, perm, root)
    ginv_apply(root, perm, rank, kmat, hmat, tmp)  # H = G^- K
    # Gamma's column c is x[c big:c big + m], Gamma2's x[c big + m:c big + n]
    x = _normals(gen, big * k)
    for p in range(k):
        ap = a_prev[p]
        for c in range(k):
            acc = 0.0
            for i in range(m):
                acc += ap[i] * x[c * big + i]
            tmat[p, c] = acc
    ginv_apply(root, perm, rank, tmat, bmat, tmp)  # G^- A^T Gamma
    for c in range(k):  # X = P_A Gamma = Gamma - A G^- A^T Gamma
        xc = xrows[c]
        _copy(xc, 0, x, c * big, m)
        for p in range(k):
            coef, ap = bmat[p, c], a_prev[p]
            for i in range(m):
                xc[i] -= coef * ap[i]
    inv = 1.0 / (gain * gain)
    for p in range(k):  # S = D^T D - K^T G^- K / gain^2 (symmetrized)
        for j in range(p, k):
            acc = 0.0
            for i in range(k):
                acc += kmat[i, p] * hmat[i, j] + kmat[i, j] * hmat[i, p]
            smat[p, j] -= 0.5 * acc * inv
            smat[j, p] = smat[p, j]
    # R^T D has rank at most min(n, max(n, m) - rank): past it, S is rounding (e.g. n = m
    # with A of full rank, where W^T D = A H exactly)
    srank = min(psd_factor(smat, work, perm, sroot), n, big - rank)
    for c1 in range(k):
        for c2 in range(c1, k):
            acc = 0.0
            if c2 < srank:
                x1, x2 = xrows[c1], xrows[c2]
                for i in range(m):
                    acc += x1[i] * x2[i]
                for r in range(m, n):
                    acc += x[c1 * big + r] * x[c2 * big + r]
            mmat[c1, c2] = acc
            mmat[c2, c1] = acc
    mrank = psd_factor(mmat, work, perm, mroot)
    for i in range(k):  # L_M L_S^T over S's rank
        for j in range(k):
            acc = 0.0
            for c in range(srank):
                acc += mroot[i, c] * sroot[j, c]
            tmat[i, j] = acc
    ginv_apply(mroot, perm, mrank, tmat, bmat, tmp)  # B = M^- L_M L_S^T
    for j in range(k):
        out = d_prev[j]
        out[:] = 0.0
        for p in range(k):
            coef, ap = hmat[p, j], a_prev[p]
            for i in range(m):
                out[i] += coef * ap[i]
        for c in range(srank):
            coef, xc = gain * bmat[c, j], xrows[c]
            for i in range(m):
                out[i] += coef * xc[i]


@numba.njit(cache=True, inline="always")
def _backward_layer(gen, z, d, a_prev, d_prev, g_prev, weight_var, bias_std, mrows, mats, ws,
                    x_prev, activation, param):
    # d_prev = (W^T d) phi'(x_prev), W drawn given the forward pass (all (k, width) arrays: z
    # (the layer's W a_prev + b) and d of layer l; a_prev = phi(x_prev), d_prev of layer l-1;
    # mrows scratch like a_prev).
    work, perm, root, tmp, xi = ws
    cov, kmat, dtd, droot, wvec, ones = mats[0], mats[1], mats[2], mats[3], mats[4], mats[5]
    k, n = z.shape
    # K = U^T D with U = Z - b 1^T, b_r | z_r ~ N(w . z_r, var_b), w = sigma_b^2 S^- 1
    for p in range(k):
        for j in range(p, k):
            dd, kmat[p, j] = _dot2(d[p], z[p], d[j])
            dtd[p, j] = weight_var * dd
            dtd[j, p] = weight_var * dd
            if j != p:
                kmat[j, p] = _dot(z[j], d[p])
    if bias_std > 0.0:
        for p in range(k):
            for q in range(k):
                cov[p, q] = weight_var * g_prev[p, q] + bias_std * bias_std
        rank = psd_factor(cov, work, perm, root)
        ginv_apply(root, perm, rank, ones, wvec, tmp)
        total = 0.0
        for p in range(k):
            wvec[p, 0] *= bias_std * bias_std
            total += wvec[p, 0]
        b_std = bias_std * math.sqrt(max(1.0 - total, 0.0))
        b = _normals(gen, n)
        for r in range(n):
            b[r] *= b_std
        for p in range(k):
            w, zp = wvec[p, 0], z[p]
            for r in range(n):
                b[r] += w * zp[r]
        for j in range(k):
            acc = _dot(b[:n], d[j])
            for p in range(k):
                kmat[p, j] -= acc
    # M (k, m): its m columns iid N(0, v D^T D), the law of W'^T D
    psd_factor(dtd, work, perm, droot)
    m = a_prev.shape[1]
    if k == 1:  # M = c x never stored: A^T M, M + A R and phi' in two passes, the same bits
        x, c = _normals(gen, m), droot[0, 0]
        kmat[0, 0] -= _dot_scaled(a_prev[0], x, c, m)
        rank = psd_factor(g_prev, work, perm, root)
        ginv_apply(root, perm, rank, kmat, cov, tmp)
        _times_dphi_sum(activation, param, x_prev[0], a_prev[0], x, c, cov[0, 0], d_prev[0])
        return
    _draw_columns(gen, droot, mrows)
    # R = G^- (U^T D - A^T M), then W^T D = M + A R
    for p in range(k):
        for j in range(k):
            kmat[p, j] -= _dot(a_prev[p], mrows[j])
    rank = psd_factor(g_prev, work, perm, root)
    ginv_apply(root, perm, rank, kmat, cov, tmp)  # cov now holds R
    for j in range(k):
        out, mj, c, a0 = d_prev[j], mrows[j], cov[0, j], a_prev[0]
        for i in range(m):  # the copy of M and its first term in one pass
            out[i] = mj[i] + c * a0[i]
        for p in range(1, k):
            c, ap = cov[p, j], a_prev[p]
            for i in range(m):
                out[i] += c * ap[i]
        times_dphi_array(activation, param, x_prev[j], a_prev[j], out)


@numba.njit(cache=True)
def workspace(k):
    """k x k scratch of the factorization (ws) and of the backward step (mats).

    Parameters
    ----------
    k : int
        Inputs per network.

    Returns
    -------
    ws : tuple of numpy.ndarray
        Scratch of :func:`psd_factor` and :func:`ginv_apply`.
    mats : tuple of numpy.ndarray
        Scratch of the backward step.
    """
    ws = (np.empty((k, k)), np.empty(k, dtype=np.int64), np.empty((k, k)), np.empty(k),
          np.empty(k))
    mats = (np.empty((k, k)), np.empty((k, k)), np.empty((k, k)), np.empty((k, k)),
            np.empty((k, 1)), np.ones((k, 1)), np.empty((k, k)), np.empty((k, k)),
            np.empty((k, k)), np.empty((k, k)))
    return ws, mats


@numba.njit(cache=True, _nrt=False)
def network(args, gen, bufs, ws, mats):
    """One network with k inputs: fill z^l, a^l (and delta^l if ``args.gradients``), l = 1..L.

    ``args``: the request (:class:`~fastvar.kernels.codes.KernelArgs`); ``gen``, ``bufs``,
    ``ws``, ``mats``: the block's stream and buffers (:func:`generator`, :func:`buffers`,
    :func:`workspace`). Layer l's k rows of n_l values sit at offset offs[l-1] of zbuf
    (z^l, or the residual stream h^l), abuf (a^l = phi(N(z^l))), dbuf (dL/dz^l); grams[l] is
    the Gram matrix of a^l (grams[0]: of the inputs). With a residual stream (alpha > 0)
    ubuf keeps each layer's branch W a + b, with a norm ybuf keeps N(z^l) and rbuf (L, k)
    its scales, with orthogonal weights, a bias and gradients wbuf keeps W a; otherwise
    those buffers are empty.

    Parameters
    ----------
    args : KernelArgs
        The request.
    gen : tuple
        The block's stream, bank and scratch (:func:`generator`).
    bufs : tuple
        The block's buffers (:func:`buffers`), overwritten.
    ws, mats : tuple
        Scratch (:func:`workspace`).
    """
    widths, weight_var, k = args.widths, args.weight_var, args.k
    bias_std, alpha, norm = args.bias_std, args.alpha, args.norm
    activation, activation_param = args.activation, args.activation_param
    offs, zbuf, ubuf, ybuf, rbuf, abuf, dbuf, grams, mbuf, wbuf = bufs
    depth = widths.shape[0] - 1
    _draw_inputs(gen, args.inputs_kind, args.c0, args.data, k, grams[0], ws[4])
    for layer in range(1, depth + 1):
        n, m, o = widths[layer], widths[layer - 1], offs[layer - 1]
        z, a = _rows(zbuf, o, k, n), _rows(abuf, o, k, n)
        stream = alpha > 0.0 and layer > 1
        branch_buf = ubuf if stream else zbuf  # where W a + b goes
        if args.orthogonal:
            _forward_orthogonal(gen, grams[layer - 1], args.weight_scale[layer - 1], bias_std,
                                n, m, k, branch_buf, o, mbuf, ws, wbuf)
        else:
            _forward_normal(gen, grams[layer - 1], weight_var[layer - 1], bias_std,
                            _rows(branch_buf, o, k, n), mats[0], ws)
        if stream:  # h^l = h^{l-1} + alpha (W a + b): equal widths, so rows line up
            u, h = _rows(ubuf, o, k, n), _rows(zbuf, offs[layer - 2], k, n)
            for j in range(k):
                for i in range(n):
                    z[j, i] = h[j, i] + alpha * u[j, i]
        for j in range(k):
            if norm != NORM_NONE:
                y = _rows(ybuf, o, k, n)[j]
                rbuf[layer - 1, j] = normalize(norm, args.norm_eps, z[j], y)
                phi_array(activation, activation_param, y, a[j])
            else:
                phi_array(activation, activation_param, z[j], a[j])
        _gram(a, grams[layer])
    if not args.gradients:
        return
    o, count = offs[depth - 1], k * widths[depth]
    _copy(dbuf, o, _normals(gen, count), 0, count)  # dL/dz^L of a random linear read-out
    for layer in range(depth, 1, -1):
        n, m, o, po = widths[layer], widths[layer - 1], offs[layer - 1], offs[layer - 2]
        branch_buf = ubuf if alpha > 0.0 else zbuf
        d, d_prev, a_prev = _rows(dbuf, o, k, n), _rows(dbuf, po, k, m), _rows(abuf, po, k, m)
        x_prev = _rows(ybuf if norm != NORM_NONE else zbuf, po, k, m)  # what phi saw at layer - 1
        if args.orthogonal:  # given W A: from wbuf when a bias was added to it
            u = _rows(wbuf if bias_std > 0.0 else branch_buf, o, k, n)
            if k == 1:  # O(n + m), no k x k algebra
                _backward_orthogonal(gen, u[0], d[0], a_prev[0], d_prev[0],
                                     args.weight_scale[layer - 1])
            else:
                _backward_orthogonal_frame(gen, u, d, a_prev, d_prev, grams[layer - 1],
                                           args.weight_scale[layer - 1], _rows(mbuf, 0, k, m),
                                           mats, ws)
            for j in range(k):
                times_dphi_array(activation, activation_param, x_prev[j], a_prev[j], d_prev[j])
        else:  # d_prev times phi' too
            _backward_layer(gen, _rows(branch_buf, o, k, n), d, a_prev, d_prev,
                            grams[layer - 1], weight_var[layer - 1], bias_std,
                            _rows(mbuf, 0, k, m), mats, ws, x_prev, activation, activation_param)
        for j in range(k):
            out, xj = d_prev[j], x_prev[j]
            if norm != NORM_NONE:
                normalize_backward(norm, out, xj, rbuf[layer - 2, j])
            if alpha > 0.0:  # dL/dh^{l-1} = dL/dh^l + alpha (the branch's gradient)
                for i in range(m):
                    out[i] = d[j, i] + alpha * out[i]


@numba.njit(cache=True)
def buffers(args):
    """Per-layer buffers of one block, in the order :func:`network` unpacks them.

    (offs, z, residual branches, N(z), the norm's scales (L, k), a, delta, Gram matrices
    (L + 1, k, k), scratch): offs[l-1] is layer l's offset in the flat (k rows of n_l)
    buffers; the residual branches, N(z) and its scales are empty without a residual
    stream or a norm.

    Parameters
    ----------
    args : KernelArgs
        The request.

    Returns
    -------
    tuple of numpy.ndarray
        In the order above.
    """
    widths, k = args.widths, args.k
    depth = widths.shape[0] - 1
    offs = np.zeros(depth, dtype=np.int64)
    total = 0
    for layer in range(1, depth + 1):
        offs[layer - 1] = total
        total += k * widths[layer]
    big = 0
    for w in widths:
        big = max(big, w)
    normed = args.norm != NORM_NONE
    bare = args.orthogonal and args.gradients and args.bias_std > 0.0
    return (offs, np.zeros(total), np.zeros(total if args.alpha > 0.0 else 0),
            np.zeros(total if normed else 0), np.zeros((depth, k if normed else 0)),
            np.zeros(total), np.zeros(total), np.zeros((depth + 1, k, k)), np.zeros(k * big),
            np.zeros(total if bare else 0))


@numba.njit(cache=True)
def generator(args, block):
    """The random streams of one block.

    The scalar stream seed_block(seed, block) draws data rows and seeds the bank of
    vectorized lanes.

    Parameters
    ----------
    args : KernelArgs
        The request.
    block : int
        The block.

    Returns
    -------
    state : numpy.ndarray
        The scalar stream, uint64 shape (4,).
    bank : numpy.ndarray
        The vectorized lanes, uint64 shape (BANK_SIZE,).
    bits : numpy.ndarray
        uint64 scratch.
    normals : numpy.ndarray
        float64 scratch.
    """
    state = np.empty(4, dtype=np.uint64)
    seed_block(args.seed, block, state)
    bank = np.empty(BANK_SIZE, dtype=np.uint64)
    seed_bank(state, bank)
    big = 0
    for w in args.widths:
        big = max(big, w)
    size = (args.k * big // LANES + 1) * LANES
    return state, bank, np.empty(size, dtype=np.uint64), np.empty(size)


@numba.njit(cache=True, _nrt=False)
def _add_network(out, args, bufs, lengths, upper, cos, hist, sums):
    # one network's trials into the stats (L, ROWS, S) of its block (the moments of z, a and
    # delta into the power sums ``sums`` (L, 3, 6), :func:`~.accumulators.flush_sums`), and
    # into its histogram state ``hist`` (:func:`~.accumulators.new_histograms`; no layers
    # without histograms)
    widths, k = args.widths, args.k
    offs, zbuf, ubuf, ybuf, rbuf, abuf, dbuf, grams, mbuf, wbuf = bufs
    depth = widths.shape[0] - 1
    pairs = args.inputs_kind == INPUTS_PAIR or args.inputs_kind == INPUTS_ROW_PAIR
    counts, slots = hist
    histograms = counts.shape[0] > 0
    factor = args.histogram_factor
    if pairs:
        gram0 = grams[0]
        cos[0] = gram0[0, 1] / (math.sqrt(gram0[0, 0]) * math.sqrt(gram0[1, 1]))
    for layer in range(1, depth + 1):
        n, o = widths[layer], offs[layer - 1]
        z = _view(zbuf, o, k, n, 1)
        a = _view(abuf, o, k, n, 1)
        add_networks(out[layer - 1, Z], z, lengths, sums[layer - 1, Z])
        add_networks(out[layer - 1, A], a, lengths, sums[layer - 1, A])
        add_network_level(out[layer - 1, NET], z, a, lengths, cos, pairs)
        if histograms:
            add_histogram(counts[layer - 1, Z], zbuf[o:o + k * n], factor[layer - 1, Z], slots)
            add_histogram(counts[layer - 1, A], abuf[o:o + k * n], factor[layer - 1, A], slots)
    if not args.gradients:
        return
    for layer in range(depth, 0, -1):
        n, o = widths[layer], offs[layer - 1]
        add_networks(out[layer - 1, DELTA], _view(dbuf, o, k, n, 1), lengths,
                     sums[layer - 1, DELTA])
        if histograms:
            add_histogram(counts[layer - 1, DELTA], dbuf[o:o + k * n], factor[layer - 1, DELTA],
                          slots)
        if layer < depth:
            add_links(out[layer - 1, LINK], upper, lengths)
        upper[0] = lengths[0]


@numba.njit(cache=True)
def run_block(args, block, out):
    """Stats of one block into ``out``, zeroed first.

    Its networks are block * networks_per_block ... (fewer in the last block), drawn from
    the stream seed_block(seed, block).

    Parameters
    ----------
    args : KernelArgs
        The request.
    block : int
        The block.
    out : numpy.ndarray
        float64, shape (L, rows, STATS_SIZE), overwritten.
    """
    depth = args.widths.shape[0] - 1
    histograms = args.histogram_factor.shape[0] > 0
    bufs = buffers(args)
    gen = generator(args, block)
    ws, mats = workspace(args.k)
    lengths, upper, cos = np.empty(1), np.empty(1), np.full(1, np.nan)
    hist = new_histograms(depth, histograms, bufs[8].shape[0])  # k x the widest layer
    sums = np.zeros((depth, DELTA + 1, 6))
    count = min(args.networks_per_block, args.networks - block * args.networks_per_block)
    for _ in range(count):
        network(args, gen, bufs, ws, mats)
        _add_network(out, args, bufs, lengths, upper, cos, hist, sums)
    for layer in range(depth):
        for q in range(DELTA + 1):
            flush_sums(out[layer, q], sums[layer, q])
    if histograms:
        store_histograms(out, hist[0])


@numba.njit(cache=True)
def new_block_stats(args, n_blocks):
    """Zeroed stats of ``n_blocks`` blocks of a request.

    Parameters
    ----------
    args : KernelArgs
        The request.
    n_blocks : int
        Blocks.

    Returns
    -------
    numpy.ndarray
        float64, shape (n_blocks, L, rows, STATS_SIZE).
    """
    depth = args.widths.shape[0] - 1
    return np.zeros((n_blocks, depth, stats_rows(args.histogram_factor.shape[0] > 0),
                     STATS_SIZE))


@numba.njit(cache=True, parallel=True)
def run_blocks(args, first_block, n_blocks):
    """Stats (n_blocks, L, rows, STATS_SIZE) of blocks first_block .. first_block + n_blocks - 1
    (rows: ROWS, and the histogram rows when ``args.histogram_factor`` has layers).

    ``args`` is the request (:class:`~fastvar.kernels.codes.KernelArgs`). Blocks run in
    parallel (:func:`run_block`), each writing its own row.

    Parameters
    ----------
    args : KernelArgs
        The request.
    first_block : int
        The first block.
    n_blocks : int
        Blocks to run.

    Returns
    -------
    numpy.ndarray
        float64, shape (n_blocks, L, rows, STATS_SIZE).
    """
    out = new_block_stats(args, n_blocks)
    for i in numba.prange(n_blocks):
        run_block(args, first_block + i, out[i])
    return out


@numba.njit(cache=True)
def run_blocks_serial(args, first_block, n_blocks):
    """:func:`run_blocks` on the calling thread, bitwise the same.

    No thread-pool launch (milliseconds under load), for one block or one thread.

    Parameters
    ----------
    args : KernelArgs
        The request.
    first_block : int
        The first block.
    n_blocks : int
        Blocks to run.

    Returns
    -------
    numpy.ndarray
        float64, shape (n_blocks, L, rows, STATS_SIZE).
    """
    out = new_block_stats(args, n_blocks)
    for i in range(n_blocks):
        run_block(args, first_block + i, out[i])
    return out


@numba.njit(cache=True)
def sample_trials(args):
    """Per-trial lengths, for tests of the joint law.

    ``args.networks`` networks are drawn from one stream (block 0's).

    Parameters
    ----------
    args : KernelArgs
        The request.

    Returns
    -------
    q : numpy.ndarray
        ||z^l||^2 / n_l, shape (networks, k, L).
    g : numpy.ndarray
        ||delta^l||^2 / n_l, shape (networks, k, L).
    c : numpy.ndarray
        Shape (networks, 2, L): z^l_0 . z^l_1 / n_l and delta^l_0 . delta^l_1 / n_l (the first
        two inputs; 0 when k = 1).
    """
    widths, k, networks = args.widths, args.k, args.networks
    depth = widths.shape[0] - 1
    bufs = buffers(args)
    offs, zbuf, dbuf = bufs[0], bufs[1], bufs[6]
    gen = generator(args, 0)
    ws, mats = workspace(k)
    q = np.zeros((networks, k, depth))
    g = np.zeros((networks, k, depth))
    c = np.zeros((networks, 2, depth))
    for t in range(networks):
        network(args, gen, bufs, ws, mats)
        for layer in range(1, depth + 1):
            n, o = widths[layer], offs[layer - 1]
            for j in range(k):
                sq = 0.0
                sd = 0.0
                for r in range(n):
                    sq += zbuf[o + j * n + r] ** 2
                    sd += dbuf[o + j * n + r] ** 2
                q[t, j, layer - 1] = sq / n
                g[t, j, layer - 1] = sd / n
            if k > 1:
                cz = 0.0
                cd = 0.0
                for r in range(n):
                    cz += zbuf[o + r] * zbuf[o + n + r]
                    cd += dbuf[o + r] * dbuf[o + n + r]
                c[t, 0, layer - 1] = cz / n
                c[t, 1, layer - 1] = cd / n
    return q, g, c
