"""Kernels of the direct (brute-force) engine: every weight drawn, one pass, per-block streams.

:func:`run_blocks` is an ``@njit(parallel=True)`` loop over the blocks of one call; each
block seeds its own streams from (seed, block) and writes its own stats ``out[i]``
(L, ROWS, STATS_SIZE), so results do not depend on the thread count.

Per network:

* weights are drawn row-major in chunks of CHUNK from a *bank* of vectorized lanes
  (:func:`fastvar.kernels.rng.bank_normal` / ``bank_uniform``) at unit scale; the layer's
  scale multiplies the sums. The bank is copied before each layer, so the backward pass
  regenerates W^l instead of storing it (k > 1 keeps it where it fits, see below);
* k = 1 input: generation is fused with use (a dot per row forward, an axpy per row
  backward): memory O(L n) per block;
* k > 1 inputs: W^l is drawn straight into the column panels of :mod:`fastvar.kernels.gemm`
  (as W^T: :func:`_draw_packed`) and the k inputs go through its register-tiled product,
  each element one chain of fused multiply-adds in index order, so its bits do not depend
  on the tile or the CPU. For k <= KEEP_MAX_K, where W^2 .. W^L fit KEEP_BYTES, the block
  keeps them for the backward pass, which reads them transposed (the same chains), else
  it draws W again packed as W: memory O(L n m + L n k) or O(n m + L n k) per block
  (:func:`kept_shape`);
* orthogonal init: a Haar matrix as a product of Householder reflectors drawn from
  Gaussian vectors (the law of QR of a Gaussian matrix with the sign fix) times an
  independent random sign diagonal, applied in O(n m) per input and regenerated backward;
* phi and phi' are applied a layer at a time (tanh vectorized); phi'(z^l) is kept for the
  backward pass, the only per-layer state besides the saved banks;
* with ``jacobian``, after a network's passes, each input's Jacobian J^l = D^l W^l ... D^1 W^1
  is carried transposed (n_0 rows) through the weights regenerated from the saved banks
  (:func:`_jacobian`), and its spectrum statistics come from :mod:`fastvar.kernels.jacobian`
  (O(L n^3) per input).

Where the time goes at k > 1 (width 256, depth 10, tanh, k = 256, gradients; one thread, ms
per network, the fastest of 20-25 rounds interleaving the kernels before and after the
packed product in one process, 2026-12-03 on the shared 2-core VM at load 4-4.7; medians
were 10-50% higher):

=====================================  ==================  ==================
part                                   tiled dot (old)     packed FMA (now)
=====================================  ==================  ==================
whole network (run_blocks)             28.7 (22 GFLOP/s)   20.9 (30 GFLOP/s)
layer products alone, 19 of 256^3      14.6 (44 GFLOP/s)   10.6 (60 GFLOP/s)
the same inside the engine (*)                             12.7 (50 GFLOP/s)
drawing W, 19 x 65 536 normals         4.3                 3.2
phi and phi' (10 layers)               2.0                 2.0
moments of z, a, delta (30 updates)    0.85                0.85
the rest (**)                          ~7                  ~4
=====================================  ==================  ==================

(*) the whole less a build without the products; (**) the whole less the parts: 2 x 65 536
scalar normals (inputs, delta^L) 0.7, buffers 0.3-0.5, deltas x phi' 0.25, per-network
statistics.

Everything takes arrays and scalars only (a request as one
:class:`~fastvar.kernels.codes.KernelArgs`); activation and distribution are runtime codes,
so one compiled kernel serves all networks.
"""
import math

import numba
import numpy as np
from numba import prange

from . import gemm, rng
from .accumulators import (A, DELTA, JAC_ROWS, LINK, NET, STATS_SIZE, Z, add_histogram,
                           add_jacobian, add_links, add_network_level, add_networks, cosine,
                           new_histograms, stats_rows, store_histograms)
from .activations import phi_dphi_array
from .jacobian import gram_statistics, input_statistics
from .codes import (INPUTS_DATA, INPUTS_PAIR, INPUTS_ROW_PAIR, NORM_NONE, WEIGHTS_TRUNCATED,
                    WEIGHTS_UNIFORM)
from .norms import normalize, normalize_backward

CHUNK = 1024  # weights drawn per bank refill (a multiple of 2 * rng.LANES)
# A block keeps its network's packed weights for the backward pass up to this (bytes): a
# few tens of MiB a thread, against the O(L n k) it holds anyway
KEEP_BYTES = 1 << 25
# ... and only up to this many inputs: past it the products dominate, and two threads'
# kept weights streamed from the shared cache cost more than drawing them again (k = 256,
# width 256, depth 10, 2 threads: 0.95-0.98 of the speed; k = 4, 16, 64: 1.35, 1.36, 1.15x)
KEEP_MAX_K = 64


@numba.njit(cache=True)
def _draw(bank, bits, buf, count, distribution):
    # buf[:count] <- unit-scale weights: N(0,1), U[-1,1), or N(0,1) cut at +-2
    if distribution == WEIGHTS_UNIFORM:
        rng.bank_uniform(bank, bits, buf, count)
    elif distribution == WEIGHTS_TRUNCATED:
        rng.bank_normal(bank, bits, buf, count, 2.0)
    else:
        rng.bank_normal(bank, bits, buf, count, np.inf)


@numba.njit(cache=True, fastmath={"reassoc", "contract"})
def _dot(x, y):
    # self-contained, so its vectorized rounding is the same in every build
    # (tests/test_reproducibility.py); slices from 0 let LLVM vectorize
    s = 0.0
    for t in range(x.shape[0]):
        s += x[t] * y[t]
    return s


@numba.njit(cache=True)
def _axpy(alpha, x, y):
    for t in range(x.shape[0]):
        y[t] += alpha * x[t]


@numba.njit(cache=True)
def _matvec_stream(bank, bits, buf, distribution, n, m, x, y, transpose):
    """Fused draw-and-use of an n x m unit-scale W, drawn row-major in chunks.

    transpose=False: y[:n] = W x[:m];  transpose=True: y[:m] = W^T x[:n].
    """
    total = n * m
    if transpose:
        y[:m] = 0.0
    else:
        y[:n] = 0.0
    pos = 0
    while pos < total:
        cnt = min(CHUNK, total - pos)
        _draw(bank, bits, buf, cnt, distribution)
        off = 0
        while off < cnt:
            j, i0 = divmod(pos + off, m)
            seg = min(m - i0, cnt - off)
            if transpose:
                _axpy(x[j], buf[off:off + seg], y[i0:i0 + seg])
            else:
                y[j] += _dot(buf[off:off + seg], x[i0:i0 + seg])
            off += seg
        pos += cnt


@numba.njit(cache=True)
def _draw_packed(bank, bits, buf, distribution, n, m, w, backward):
    """w <- unit-scale W (n x m), drawn as in :func:`_matvec_stream`, packed for gemm_packed.

    As B = W^T (m x n, forward) or B = W (n x m, ``backward``) in the column panels of
    :mod:`fastvar.kernels.gemm`.
    """
    total = n * m
    nr = gemm.NR
    pos = 0
    while pos < total:
        cnt = min(CHUNK, total - pos)
        _draw(bank, bits, buf, cnt, distribution)
        off = 0
        while off < cnt:  # row j of W, columns i0 .. i0 + seg - 1
            j, i0 = divmod(pos + off, m)
            seg = min(m - i0, cnt - off)
            if backward:  # W[j, i] = B[j, i]: runs along the rows of panels
                i, t = i0, off
                while i < i0 + seg:
                    run = min(nr - i % nr, i0 + seg - i)
                    dst = gemm.column_start(i, n) + j * nr
                    for u in range(run):
                        w[dst + u] = buf[t + u]
                    i += run
                    t += run
            else:  # W[j, i] = B[i, j]: one column of a panel
                base = gemm.column_start(j, m)
                for t in range(seg):
                    w[base + (i0 + t) * nr] = buf[off + t]
            off += seg
        pos += cnt


@numba.njit(cache=True)
def kept_shape(widths, k, orthogonal, gradients):
    """The weights a block keeps from the forward pass for the backward pass: W^2 .. W^L,
    one row each, packed as the forward product reads them (B = W^T), or (0, 0).

    Drawing them again for the backward pass took about a quarter of a network at k = 4-16;
    the backward product reads them transposed (:func:`fastvar.kernels.gemm.gemm_transposed`).
    Only for 1 < k <= KEEP_MAX_K inputs, and only where they fit KEEP_BYTES: the memory is
    otherwise O(n m + L n k) per block. The weights and every sum are the same either way,
    so are the results, bitwise.

    Parameters
    ----------
    widths : numpy.ndarray
        int64, the layer widths n_0 .. n_L.
    k : int
        Inputs per network.
    orthogonal, gradients : bool
        The request's init is orthogonal; it has a backward pass.

    Returns
    -------
    tuple of int
        (L - 1, the largest packed W^l) or (0, 0).
    """
    depth = widths.shape[0] - 1
    size = 0
    for l in range(2, depth + 1):
        size = max(size, gemm.panel_size(widths[l - 1], widths[l]))
    if (k == 1 or k > KEEP_MAX_K or orthogonal or not gradients
            or 8 * size * (depth - 1) > KEEP_BYTES):
        return 0, 0
    return depth - 1, size


# --- orthogonal weights --------------------------------------------------------------


@numba.njit(cache=True)
def _reflect(v, y, start):
    # y[:, start:] <- H y[:, start:] for every row, H the Householder reflector mapping
    # the Gaussian vector v to a multiple of e_1 (v is overwritten with the reflector's normal).
    p = v.shape[0]
    norm = math.sqrt(_dot(v, v))
    if norm == 0.0:
        return
    v[0] += norm if v[0] >= 0.0 else -norm
    scale = 2.0 / _dot(v, v)
    for r in range(y.shape[0]):
        row = y[r, start:start + p]
        _axpy(-scale * _dot(v, row), v, row)


@numba.njit(cache=True)
def _orthogonal(scalar, saved, vbuf, y, p, r, reverse, replay):
    """Apply the r reflectors of one Haar layer to the rows of y[:, :p], in place.

    Reflector t (t = 0..r-1) acts on coordinates t..p-1 with a fresh N(0, I) vector.
    Applied in order t = r-1..0 if ``reverse`` else 0..r-1. Forward (replay=False) draws
    from ``scalar`` and saves its state before each reflector into ``saved``; replay
    restores those states, so the backward pass sees the same reflectors.
    """
    for step in range(r):
        t = r - 1 - step if reverse else step
        if replay:
            scalar[:] = saved[t]
        else:
            saved[t, :] = scalar
        v = vbuf[:p - t]
        rng.fill_normal(scalar, v)
        _reflect(v, y, t)


@numba.njit(cache=True)
def _ortho_layer(scalar, saved, signs, vbuf, x, y, n, m, gain, backward, replay):
    """y[:, :n] = gain * Q x (forward, x is k x m) or y[:, :m] = gain * Q^T x (backward).

    Q (n x m) = first columns (n >= m) or rows (n < m) of H_0 ... H_{r-1} E D, Haar
    distributed; D = diag(signs) is drawn by the caller. y is (k, max(n, m)) work space.
    ``replay``: the reflectors come from the states ``saved`` (as backward), else they are
    drawn from ``scalar`` and their states saved.
    """
    k = x.shape[0]
    p, r = max(n, m), min(n, m)
    in_w, out_w = (n, m) if backward else (m, n)
    # n >= m (p = n): Q x = H_0..H_{r-1} [D x; 0] applies H_{r-1} first, and
    # Q^T y = D E^T H_{r-1}..H_0 y applies H_0 first. n < m (p = m): Q is the transpose
    # of that m x n frame, so the roles swap.
    pad_first = (n >= m) != backward
    for row in range(k):
        y[row, :p] = 0.0
        for i in range(in_w):
            y[row, i] = x[row, i] * (signs[i] if pad_first else 1.0)
    _orthogonal(scalar, saved, vbuf, y[:, :p], p, r, pad_first, replay)
    for row in range(k):
        for i in range(out_w):
            y[row, i] *= gain if pad_first else gain * signs[i]


# --- one block ---------------------------------------------------------------------------


@numba.njit(cache=True)
def _view(flat, rows, cols):
    # a C-ordered (rows, cols) view of the start of a flat scratch buffer
    return flat[:rows * cols].reshape((rows, cols))


@numba.njit(cache=True)
def _layer(bank, work, layer, distribution, orthogonal, n, m, scale, x, y, backward):
    """y = scale * x W^T (forward, y is k x n) or y = scale * x W (backward, y is k x m).

    W = W^{layer+1} (n x m, ``layer`` counts from 0) comes from ``bank``: a backward call
    gets a copy of the bank the forward call started from, so it regenerates the same W,
    unless the forward call kept it (k > 1, see :func:`kept_shape`).
    x, y: C-ordered (k, width). ``work``: the block's scratch (see :func:`_buffers`).
    """
    bits, buf, wbuf, tile, owork, osaved, osigns, vbuf, kept, xbuf = work
    k = x.shape[0]
    if orthogonal:
        sc = bank[4 * rng.LANES:]
        if not backward:
            for i in range(min(n, m)):
                osigns[layer, i] = 1.0 if rng.next_u64(sc) >> np.uint64(63) else -1.0
        ywork = _view(owork, k, max(n, m))
        _ortho_layer(sc, osaved[layer], osigns[layer], vbuf, x, ywork, n, m, scale, backward,
                     backward)
        y[:, :] = ywork[:, :y.shape[1]]
    elif k == 1:
        _matvec_stream(bank, bits, buf, distribution, n, m, x[0], y[0], backward)
        y[0] *= scale
    elif backward and kept.shape[1] > 0:  # W^T as the forward call packed it
        gemm.gemm_transposed(kept[layer - 1], x, y, scale, xbuf, tile)
    else:  # W^1 has no backward product: not kept
        keep = kept.shape[1] > 0 and layer > 0 and not backward
        w = kept[layer - 1] if keep else wbuf
        if keep:  # the row is not zeroed (5 MiB a network at width 256, depth 10)
            gemm.zero_padding(w, m, n)
        _draw_packed(bank, bits, buf, distribution, n, m, w, backward)
        gemm.gemm_packed(x, w, y, scale, tile)


@numba.njit(cache=True)
def _draw_inputs(state, inputs_kind, c0, data, x):
    # the k rows of x: fresh N(0, I), rows of data, a pair x, c0 x + s xi, or two distinct
    # rows of data
    k, n0 = x.shape
    rows = data.shape[0]
    if inputs_kind == INPUTS_ROW_PAIR:
        first = min(int(rng.uniform(state) * rows), rows - 1)
        second = min(int(rng.uniform(state) * (rows - 1)), rows - 2)
        x[0, :] = data[first]
        x[1, :] = data[second + (1 if second >= first else 0)]
        return
    for c in range(k):
        if inputs_kind == INPUTS_DATA:
            x[c, :] = data[min(int(rng.uniform(state) * rows), rows - 1)]
        elif inputs_kind == INPUTS_PAIR and c == 1:
            s = np.sqrt(1.0 - c0 * c0)
            for i in range(n0):
                x[1, i] = c0 * x[0, i] + s * rng.normal(state)
        else:
            for i in range(n0):
                x[c, i] = rng.normal(state)


@numba.njit(cache=True)
def _buffers(args, kept, xbuf):
    # one block's scratch: ``work`` for _layer (bank bits, a weight chunk, a k > 1 weight
    # matrix packed for gemm.gemm_packed and its tile, the orthogonal work space,
    # reflector states and signs of every layer, a reflector, and the thread's ``kept``
    # weights and ``xbuf``, see run_blocks), and ``bufs``, flat, viewed
    # per layer as C-ordered (k, width) matrices: z^l (zb), a^l and the deltas (cur),
    # their next layer (nxt), phi'(z^l) of every layer (ds, for backward), a bias, the
    # residual stream h^{l-1} (hb), N(z^l) of the current layer (yb) and of every layer
    # (ys, for backward), the norm's scales (rs)
    widths, k, gradients = args.widths, args.k, args.gradients
    depth = widths.shape[0] - 1
    wmax = 0
    wmat = 0
    for l in range(depth + 1):
        wmax = max(wmax, widths[l])
        if l > 0:
            wmat = max(wmat, gemm.panel_size(widths[l - 1], widths[l]),
                       gemm.panel_size(widths[l], widths[l - 1]))
    rmax = wmax if args.orthogonal else 0
    normed = args.norm != NORM_NONE
    work = (np.empty(CHUNK, dtype=np.uint64), np.empty(CHUNK),
            np.zeros(wmat if k > 1 and not args.orthogonal else 0),
            np.empty(gemm.MR * gemm.NR), np.empty(k * rmax),
            np.empty((depth, rmax, 4), dtype=np.uint64), np.empty((depth, rmax)),
            np.empty(rmax), kept, xbuf)
    bufs = (np.empty(k * wmax), np.empty(k * wmax), np.empty(k * wmax),
            np.empty((depth if gradients or args.jacobian else 0, k * wmax)), np.empty(wmax),
            np.empty(k * wmax if args.alpha > 0.0 else 0), np.empty(k * wmax if normed else 0),
            np.empty((depth if normed and gradients else 0, k * wmax)), np.empty((depth, k)))
    return work, bufs


@numba.njit(cache=True)
def _forward(args, state, bank, saved, work, bufs, out, lengths, cos, hist):
    # one network's inputs and forward pass into the block's stats ``out`` (and histogram
    # state ``hist``, see accumulators.new_histograms); saves the bank each layer started
    # from (for the backward pass) and phi'(z^l) (or N(z^l)) as asked
    widths, k, gradients = args.widths, args.k, args.gradients
    bias_std, alpha, norm = args.bias_std, args.alpha, args.norm
    zb, cur, nxt, ds, bias, hb, yb, ys, rs = bufs
    depth = widths.shape[0] - 1
    pairs = args.inputs_kind == INPUTS_PAIR or args.inputs_kind == INPUTS_ROW_PAIR
    x = _view(cur, k, widths[0])
    _draw_inputs(state, args.inputs_kind, args.c0, args.data, x)
    if pairs:
        cos[0] = cosine(x[0], x[1])[0]
    for l in range(depth):
        m, n = widths[l], widths[l + 1]
        z = _view(zb, k, n)
        saved[l, :] = bank
        _layer(bank, work, l, args.distribution, args.orthogonal, n, m, args.weight_scale[l],
               _view(cur, k, m), z, False)
        if bias_std > 0.0:
            for j in range(n):
                bias[j] = bias_std * rng.normal(state)
            for c in range(k):
                z[c, :] += bias[:n]
        if alpha > 0.0:  # the residual stream: h^l = h^{l-1} + alpha (W a + b)
            if l > 0:
                for i in range(k * n):
                    zb[i] = hb[i] + alpha * zb[i]
            hb[:k * n] = zb[:k * n]
        seen = zb  # what phi sees: z^l, or N(z^l)
        if norm != NORM_NONE:
            seen = ys[l] if gradients else yb
            for c in range(k):
                rs[l, c] = normalize(norm, args.norm_eps, zb[c * n:(c + 1) * n],
                                     seen[c * n:(c + 1) * n])
        a = _view(cur, k, n)
        phi_dphi_array(args.activation, args.activation_param, seen[:k * n], cur[:k * n],
                       ds[l, :k * n] if gradients or args.jacobian else nxt[:k * n])
        add_networks(out[l, Z], z.reshape((1, k, n)), lengths)
        add_networks(out[l, A], a.reshape((1, k, n)), lengths)
        add_network_level(out[l, NET], z.reshape((1, k, n)), a.reshape((1, k, n)), lengths,
                          cos, pairs)
        counts, slots = hist
        if counts.shape[0] > 0:
            add_histogram(counts[l, Z], zb[:k * n], args.histogram_factor[l, Z], slots)
            add_histogram(counts[l, A], cur[:k * n], args.histogram_factor[l, A], slots)


@numba.njit(cache=True)
def _backward(args, state, spare, saved, work, bufs, out, lengths, upper, hist):
    # one network's backward pass after _forward: delta^L ~ N(0, I),
    # delta^{l-1} = (W^l)^T delta^l * phi'(z^{l-1}), W^l regenerated from its saved bank
    widths, k, alpha, norm = args.widths, args.k, args.alpha, args.norm
    zb, cur, nxt, ds, bias, hb, yb, ys, rs = bufs
    depth = widths.shape[0] - 1
    for i in range(k * widths[depth]):
        cur[i] = rng.normal(state)
    for l in range(depth - 1, -1, -1):
        m, n = widths[l], widths[l + 1]
        add_networks(out[l, DELTA], cur[:k * n].reshape((1, k, n)), lengths)
        if hist[0].shape[0] > 0:
            add_histogram(hist[0][l, DELTA], cur[:k * n], args.histogram_factor[l, DELTA],
                          hist[1])
        if l < depth - 1:
            add_links(out[l, LINK], upper, lengths)
        upper[0] = lengths[0]
        if l == 0:
            break
        spare[:] = saved[l]
        _layer(spare, work, l, args.distribution, args.orthogonal, n, m, args.weight_scale[l],
               _view(cur, k, n), _view(nxt, k, m), True)
        dp = ds[l - 1]
        if alpha == 0.0 and norm == NORM_NONE:
            for i in range(k * m):
                cur[i] = nxt[i] * dp[i]
            continue
        for i in range(k * m):
            nxt[i] *= dp[i]
        if norm != NORM_NONE:
            for c in range(k):
                normalize_backward(norm, nxt[c * m:(c + 1) * m], ys[l - 1, c * m:(c + 1) * m],
                                   rs[l - 1, c])
        for i in range(k * m):  # dL/dh^{l-1} = dL/dh^l + alpha (the branch's gradient)
            cur[i] = cur[i] + alpha * nxt[i] if alpha > 0.0 else nxt[i]


@numba.njit(cache=True)
def _jacobian_buffers(args):
    # J^T and its next layer (n_0 x wmax each), a weight matrix or J^T (or J) packed for
    # gemm.gemm_packed (wmax x wmax in whole panels, zeroed: the padding columns are computed
    # and dropped), the Gram matrix (p x p), orthogonal work space (n_0 x wmax), the
    # tridiagonal reduction's scratch, and the per-layer sums over a network's inputs
    # (all empty without jacobian)
    widths = args.widths
    on = 1 if args.jacobian else 0
    n0 = widths[0] * on
    wmax = 0
    for l in range(widths.shape[0]):
        wmax = max(wmax, widths[l] * on)
    return (np.empty(n0 * wmax), np.empty(n0 * wmax), np.zeros(gemm.panel_size(wmax, wmax)),
            np.empty(wmax * wmax), np.empty(n0 * wmax if args.orthogonal else 0),
            np.empty((4, wmax)), np.empty(((widths.shape[0] - 1) * on, 4)), np.empty((4, 1)))


@numba.njit(cache=True)
def _jacobian(args, spare, saved, work, ds, jbufs, out):
    # each input's Jacobian after _forward (phi'(z^l) in ds): J^l = D^l W^l J^{l-1},
    # carried as (J^l)^T, n_0 rows through W^l regenerated from its saved bank (or its
    # reflectors replayed), then the spectrum statistics of its Gram matrix; the
    # network's average over its inputs goes into each layer's JAC row (the last)
    widths, k = args.widths, args.k
    depth = widths.shape[0] - 1
    n0 = widths[0]
    bits, buf, _, tile, _, osaved, osigns, vbuf, _, _ = work
    jt, jn, wbuf, gbuf, obuf, scratch, sums, one = jbufs
    jac = out.shape[1] - JAC_ROWS
    sums[:, :] = 0.0
    for c in range(k):
        x = _view(jt, n0, n0)
        x[:, :] = 0.0
        for i in range(n0):
            x[i, i] = 1.0
        cur, nxt = jt, jn
        for l in range(depth):
            m, n = widths[l], widths[l + 1]
            x, y = _view(cur, n0, m), _view(nxt, n0, n)
            spare[:] = saved[l]
            if args.orthogonal:
                ywork = _view(obuf, n0, max(n, m))
                _ortho_layer(spare[4 * rng.LANES:], osaved[l], osigns[l], vbuf, x, ywork, n, m,
                             args.weight_scale[l], False, True)
                y[:, :] = ywork[:, :n]
            else:
                _draw_packed(spare, bits, buf, args.distribution, n, m, wbuf, False)
                gemm.gemm_packed(x, wbuf, y, args.weight_scale[l], tile)
            dp = ds[l, c * n:(c + 1) * n]
            for r in range(n0):
                y[r, :] *= dp
            cur, nxt = nxt, cur
            if n0 <= n:  # the smaller Gram matrix: J^T J, else J J^T
                g = _view(gbuf, n0, n0)
            else:  # y^T, in J's previous layer's space (no longer needed)
                t = _view(nxt, n, n0)
                for r in range(n0):
                    for j in range(n):
                        t[j, r] = y[r, j]
                y = t
                g = _view(gbuf, n, n)
            gemm.pack_transposed(y, wbuf)
            gemm.gemm_packed(y, wbuf, g, 1.0, tile)
            m1, m2, lam = gram_statistics(g, n, scratch[0], scratch[1], scratch[2], scratch[3])
            input_statistics(m1, m2, lam, sums, l)
    for l in range(depth):
        for q in range(4):
            one[q, 0] = sums[l, q] / k
        add_jacobian(out[l, jac], one[0], one[1], one[2], one[3])


@numba.njit(cache=True)
def _run_block(out, args, block, count, kept, xbuf):
    # ``count`` networks of block ``block`` into its stats ``out`` (L, ROWS, STATS_SIZE),
    # from the block's own streams; ``kept`` and ``xbuf``: its thread's, see run_blocks
    depth = args.widths.shape[0] - 1
    state = np.zeros(4, dtype=np.uint64)
    rng.seed_block(args.seed, block, state)
    bank = np.empty(rng.BANK_SIZE, dtype=np.uint64)
    rng.seed_bank(state, bank)
    spare = np.empty(rng.BANK_SIZE, dtype=np.uint64)
    saved = np.empty((depth, rng.BANK_SIZE), dtype=np.uint64)
    work, bufs = _buffers(args, kept, xbuf)
    lengths = np.empty(1)  # this network's mean ||x||^2 / n at the current layer
    upper = np.empty(1)  # and at the layer above, for the backward links
    cos = np.full(1, np.nan)  # the cosine of its input pair at the previous layer
    histograms = args.histogram_factor.shape[0] > 0
    hist = new_histograms(depth, histograms, bufs[0].shape[0])
    jbufs = _jacobian_buffers(args)
    for _ in range(count):
        _forward(args, state, bank, saved, work, bufs, out, lengths, cos, hist)
        if args.gradients:
            _backward(args, state, spare, saved, work, bufs, out, lengths, upper, hist)
        if args.jacobian:
            _jacobian(args, spare, saved, work, bufs[3], jbufs, out)
    if histograms:
        store_histograms(out, hist[0])


@numba.njit(cache=True, parallel=True)
def run_blocks(args, first_block, n_blocks, threads):
    """Stats (n_blocks, L, rows, STATS_SIZE) of blocks first_block .. first_block + n_blocks - 1
    (rows: ROWS, the histogram rows when ``args.histogram_factor`` has layers, and the JAC
    row with ``args.jacobian``).

    ``args`` is the request (:class:`~fastvar.kernels.codes.KernelArgs`); its
    ``weight_scale[l]`` multiplies the unit-scale weights of layer l + 1. Block b holds
    networks b * networks_per_block ... (fewer in the last block) and draws from its own
    streams seeded by (seed, b); blocks run in parallel, each writing its own row.

    Parameters
    ----------
    args : KernelArgs
        The request.
    first_block : int
        The first block.
    n_blocks : int
        Blocks to run.
    threads : int
        Numba's threads (numba.get_num_threads(), which a cached kernel cannot call).

    Returns
    -------
    numpy.ndarray
        float64, shape (n_blocks, L, rows, STATS_SIZE).
    """
    rows = stats_rows(args.histogram_factor.shape[0] > 0) + (JAC_ROWS if args.jacobian else 0)
    out = np.zeros((n_blocks, args.widths.shape[0] - 1, rows, STATS_SIZE))
    # the weights kept for the backward pass (at least one row, empty if none: kept_shape)
    # and the deltas packed for their product, once per thread, not per block: a block is
    # often one network, and 5 MiB allocated for each cost more in page faults (2000-2700 a
    # network, 4-5 ms of 20) than drawing the weights again. So thread t runs blocks t,
    # t + threads, ... (each still from its own streams into its own row).
    kept_rows, kept_cols = kept_shape(args.widths, args.k, args.orthogonal, args.gradients)
    threads = max(1, min(threads, n_blocks))
    for t in prange(threads):
        kept = np.empty((max(kept_rows, 1), kept_cols))
        xbuf = np.empty(gemm.panel_size(np.max(args.widths), args.k) if kept_rows else 0)
        for i in range(t, n_blocks, threads):
            block = first_block + i
            count = min(args.networks_per_block, args.networks - block * args.networks_per_block)
            _run_block(out[i], args, block, count, kept, xbuf)
    return out
