"""Kernels of the exact engine: O(L n k^2) per network by Gaussian conditioning.

DESIGN.md section 5, for k inputs per network. Layer l sees A = a^{l-1} (m x k, stored
here as k rows of length m) only through its Gram matrix G = A^T A: the rows of
Z = W A + b 1^T are iid N(0, v G + sigma_b^2 J) (v = Var(W_ij), J = ones), so they are
drawn with a k x k factor of that covariance. Backward, W given the forward pass is
W = U A^+ + W' (I - P_A) (U = W A drawn from U | Z first when there is a bias), hence

    W^T D = M + A G^+ (U^T D - A^T M),   rows of M (m x k) iid N(0, v D^T D),

which costs O((n + m) k^2 + k^3). The k x k algebra uses a Jacobi eigensolver
(pseudo-inverses and square roots of singular matrices: dead ReLU layers, repeated
inputs, k > m). Orthogonal weights (forward only): Q A = (Q O) Lambda^{1/2} V^T with
Q O a Haar isometry, drawn by Gram-Schmidt on Gaussian vectors.

Each block of networks draws from its own stream ``seed_block(seed, block)`` and writes
only its own stats, so results depend on (seed, block) alone, never on threads.
"""
import math

import numba
import numpy as np

from .accumulators import A, DELTA, STATS_SIZE, Z, add_networks
from .activations import SIGMOID, TANH, dphi, phi
from .rng import normal, seed_block, uniform

INPUTS_NORMAL = 0  # as fastvar.engines.base.INPUTS_NORMAL (kernels import no engine code)
_FAST = {"reassoc", "contract", "nsz", "arcp"}  # no nnan/ninf: NaN checks keep working
_RANK_TOL = 1e-12  # eigenvalues below this fraction of the largest count as zero
_SWEEPS = 60


@numba.njit(cache=True)
def sym_eig(s, work, vals, vecs):
    """Eigen-decomposition of the symmetric k x k ``s`` (cyclic Jacobi): s = V diag(vals) V^T.

    ``work`` (k x k) is scratch; ``vals`` (k,) and ``vecs`` (k x k, columns) are written.
    """
    k = s.shape[0]
    for i in range(k):
        for j in range(k):
            work[i, j] = s[i, j]
            vecs[i, j] = 1.0 if i == j else 0.0
    for _ in range(_SWEEPS):
        off = 0.0
        total = 0.0
        for i in range(k):
            for j in range(k):
                total += work[i, j] * work[i, j]
                if i != j:
                    off += work[i, j] * work[i, j]
        if off <= 1e-32 * total:
            break
        for p in range(k - 1):
            for q in range(p + 1, k):
                apq = work[p, q]
                if apq == 0.0:
                    continue
                theta = (work[q, q] - work[p, p]) / (2.0 * apq)
                t = 1.0 / (abs(theta) + math.hypot(theta, 1.0))
                if theta < 0.0:
                    t = -t
                c = 1.0 / math.sqrt(t * t + 1.0)
                sn = t * c
                for r in range(k):
                    x, y = work[r, p], work[r, q]
                    work[r, p] = c * x - sn * y
                    work[r, q] = sn * x + c * y
                for r in range(k):
                    x, y = work[p, r], work[q, r]
                    work[p, r] = c * x - sn * y
                    work[q, r] = sn * x + c * y
                for r in range(k):
                    x, y = vecs[r, p], vecs[r, q]
                    vecs[r, p] = c * x - sn * y
                    vecs[r, q] = sn * x + c * y
    for i in range(k):
        vals[i] = work[i, i]


@numba.njit(cache=True)
def _rank_cut(vals):
    # Eigenvalues <= this are treated as exact zeros (and negative rounding noise too).
    top = 0.0
    for i in range(vals.shape[0]):
        top = max(top, vals[i])
    return top * _RANK_TOL


@numba.njit(cache=True)
def sqrt_and_pinv(s, work, vals, vecs, root, pinv):
    """root (root root^T = s) and the pseudo-inverse pinv of a symmetric PSD k x k ``s``."""
    k = s.shape[0]
    sym_eig(s, work, vals, vecs)
    cut = _rank_cut(vals)
    for i in range(k):
        for j in range(k):
            root[i, j] = vecs[i, j] * math.sqrt(vals[j]) if vals[j] > cut else 0.0
            acc = 0.0
            for c in range(k):
                if vals[c] > cut:
                    acc += vecs[i, c] * vecs[j, c] / vals[c]
            pinv[i, j] = acc


@numba.njit(cache=True, inline="always")
def _dphi_za(code, param, z, a):
    # phi'(z), from a = phi(z) where that is cheaper (saves a tanh per unit).
    if code == TANH:
        return 1.0 - a * a
    if code == SIGMOID:
        return a * (1.0 - a)
    return dphi(code, param, z)


@numba.njit(cache=True, fastmath=_FAST)
def _gram(buf, off, n, k, out):
    # out = X^T X for X = the k rows of length n stored at buf[off:].
    for p in range(k):
        for q in range(p, k):
            acc = 0.0
            for r in range(n):
                acc += buf[off + p * n + r] * buf[off + q * n + r]
            out[p, q] = acc
            out[q, p] = acc


@numba.njit(cache=True, fastmath=_FAST)
def _draw_inputs(state, inputs_kind, data, k, gram, xi):
    # Gram matrix of the k inputs of one network: fresh N(0, I) or rows of ``data``.
    n0 = data.shape[1]
    gram[:, :] = 0.0
    if inputs_kind == INPUTS_NORMAL:
        for _ in range(n0):
            for j in range(k):
                xi[j] = normal(state)
            for p in range(k):
                for q in range(p, k):
                    gram[p, q] += xi[p] * xi[q]
    else:
        rows = data.shape[0]
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


@numba.njit(cache=True, fastmath=_FAST)
def _draw_columns(state, root, n, buf, off, xi):
    # k rows of n at buf[off:] whose n columns are iid N(0, root root^T)
    k = root.shape[0]
    if k == 1:
        c = root[0, 0]
        for r in range(n):
            buf[off + r] = c * normal(state)
        return
    for r in range(n):
        for i in range(k):
            xi[i] = normal(state)
        for j in range(k):
            acc = 0.0
            for i in range(k):
                acc += root[j, i] * xi[i]
            buf[off + j * n + r] = acc


@numba.njit(cache=True, fastmath=_FAST)
def _forward_normal(state, g_prev, v, sb, n, k, zbuf, zo, cov, ws):
    # z (k rows of n) with rows iid N(0, v G + sb^2 J): a k x k square root, k normals a row.
    work, vals, vecs, root, pinv, xi = ws
    for p in range(k):
        for q in range(k):
            cov[p, q] = v * g_prev[p, q] + sb * sb
    sqrt_and_pinv(cov, work, vals, vecs, root, pinv)
    _draw_columns(state, root, n, zbuf, zo, xi)


@numba.njit(cache=True, fastmath=_FAST)
def _forward_orthogonal(state, g_prev, gain, sb, n, m, k, zbuf, zo, ybuf, ws):
    # gain * Q A (+ b) for a Haar Q (n x m): A = O Lambda^{1/2} V^T, and Q O is a Haar
    # isometry of size max(n, m) x rank (first n rows kept), drawn by Gram-Schmidt.
    work, vals, vecs, root, pinv, xi = ws
    sym_eig(g_prev, work, vals, vecs)
    cut = _rank_cut(vals)
    big = max(n, m)
    rank = 0
    for c in range(k):
        if vals[c] > cut:
            xi[rank] = c  # columns kept
            rank += 1
    for c in range(rank):
        y = ybuf[c * big:(c + 1) * big]
        for r in range(big):
            y[r] = normal(state)
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
        col = int(xi[c])
        y = ybuf[c * big:(c + 1) * big]
        s = math.sqrt(vals[col])
        for j in range(k):
            coef = gain * s * vecs[j, col]
            for r in range(n):
                zbuf[zo + j * n + r] += coef * y[r]
    if sb > 0.0:
        for r in range(n):
            b = sb * normal(state)
            for j in range(k):
                zbuf[zo + j * n + r] += b


@numba.njit(cache=True, fastmath=_FAST)
def _backward_layer(state, zbuf, abuf, dbuf, o, po, g_prev, v, sb, n, m, k, code, param,
                    mbuf, mats, ws):
    # delta^{l-1} = (W^T delta^l) * phi'(z^{l-1}), W drawn given the forward pass; layer l
    # sits at offset o of the buffers, layer l-1 at po.
    work, vals, vecs, root, pinv, xi = ws
    cov, gpinv, kmat, dtd, droot, wvec = mats
    # U | Z: u_r = z_r - b_r 1 with b_r | z_r ~ N(w . z_r, var_b), w = sb^2 S^+ 1.
    b_std = 0.0
    if sb > 0.0:
        for p in range(k):
            for q in range(k):
                cov[p, q] = v * g_prev[p, q] + sb * sb
        sqrt_and_pinv(cov, work, vals, vecs, root, pinv)
        ones = 0.0
        for p in range(k):
            acc = 0.0
            for q in range(k):
                acc += pinv[p, q]
            wvec[p] = sb * sb * acc
            ones += wvec[p]
        b_std = sb * math.sqrt(max(1.0 - ones, 0.0))
    kmat[:, :] = 0.0
    for r in range(n):
        b = 0.0
        if sb > 0.0:
            for p in range(k):
                b += wvec[p] * zbuf[o + p * n + r]
            b += b_std * normal(state)
        for p in range(k):
            u = zbuf[o + p * n + r] - b
            for j in range(k):
                kmat[p, j] += u * dbuf[o + j * n + r]
    # M (k rows of m): its m columns iid N(0, v D^T D), the law of W'^T D
    for p in range(k):
        for q in range(p, k):
            acc = 0.0
            for r in range(n):
                acc += dbuf[o + p * n + r] * dbuf[o + q * n + r]
            dtd[p, q] = v * acc
            dtd[q, p] = v * acc
    sqrt_and_pinv(dtd, work, vals, vecs, droot, pinv)
    _draw_columns(state, droot, m, mbuf, 0, xi)
    # R = G^+ (U^T D - A^T M), then W^T D = M + A R
    sqrt_and_pinv(g_prev, work, vals, vecs, root, gpinv)
    for p in range(k):
        for j in range(k):
            acc = 0.0
            for i in range(m):
                acc += abuf[po + p * m + i] * mbuf[j * m + i]
            kmat[p, j] -= acc
    for p in range(k):
        for j in range(k):
            acc = 0.0
            for q in range(k):
                acc += gpinv[p, q] * kmat[q, j]
            cov[p, j] = acc  # cov now holds R
    for j in range(k):
        for i in range(m):
            acc = mbuf[j * m + i]
            for p in range(k):
                acc += abuf[po + p * m + i] * cov[p, j]
            x = po + j * m + i
            dbuf[x] = acc * _dphi_za(code, param, zbuf[x], abuf[x])


@numba.njit(cache=True)
def _workspace(k):
    # k x k scratch of the eigen-solver (ws) and of the backward step (mats)
    ws = (np.empty((k, k)), np.empty(k), np.empty((k, k)), np.empty((k, k)), np.empty((k, k)),
          np.empty(max(k, 1)))
    mats = (np.empty((k, k)), np.empty((k, k)), np.empty((k, k)), np.empty((k, k)),
            np.empty((k, k)), np.empty(k))
    return ws, mats


@numba.njit(cache=True, fastmath=_FAST)
def network(state, widths, offs, wvar, code, param, sb, orthogonal, gain, k, inputs_kind, data,
            gradients, zbuf, abuf, dbuf, grams, mbuf, ws, mats):
    """One network with k inputs: fill z^l, a^l (and delta^l if ``gradients``) for l = 1..L.

    Layer l's k rows of n_l values sit at offset offs[l-1] of zbuf, abuf, dbuf;
    grams[l] is the Gram matrix of a^l (grams[0]: of the inputs).
    """
    depth = widths.shape[0] - 1
    _draw_inputs(state, inputs_kind, data, k, grams[0], ws[5])
    for layer in range(1, depth + 1):
        n, m, o = widths[layer], widths[layer - 1], offs[layer - 1]
        if orthogonal:
            _forward_orthogonal(state, grams[layer - 1], gain, sb, n, m, k, zbuf, o, mbuf, ws)
        else:
            _forward_normal(state, grams[layer - 1], wvar[layer - 1], sb, n, k, zbuf, o,
                            mats[0], ws)
        for x in range(o, o + k * n):
            abuf[x] = phi(code, param, zbuf[x])
        _gram(abuf, o, n, k, grams[layer])
    if not gradients:
        return
    o = offs[depth - 1]
    for x in range(o, o + k * widths[depth]):
        dbuf[x] = normal(state)  # dL/dz^L of a random linear read-out
    for layer in range(depth, 1, -1):
        _backward_layer(state, zbuf, abuf, dbuf, offs[layer - 1], offs[layer - 2],
                        grams[layer - 1], wvar[layer - 1], sb, widths[layer], widths[layer - 1],
                        k, code, param, mbuf, mats, ws)


@numba.njit(cache=True)
def _buffers(widths, k):
    # offsets of layers 1..L in the per-layer buffers, the buffers, the Gram matrices
    depth = widths.shape[0] - 1
    offs = np.zeros(depth, dtype=np.int64)
    total = 0
    for layer in range(1, depth + 1):
        offs[layer - 1] = total
        total += k * widths[layer]
    big = 0
    for w in widths:
        big = max(big, w)
    return (offs, np.zeros(total), np.zeros(total), np.zeros(total),
            np.zeros((depth + 1, k, k)), np.zeros(k * big))


@numba.njit(cache=True)
def _add_layer(row, buf, o, n, k):
    # the k trials of one network at one layer into a stats row
    add_networks(row, buf[o:o + k * n].reshape((1, k, n)))


@numba.njit(cache=True, parallel=True)
def run_blocks(seed, first_block, n_blocks, networks, networks_per_block, widths, wvar, code,
               param, sb, orthogonal, gain, k, inputs_kind, data, gradients):
    """Stats (n_blocks, L, 3, STATS_SIZE) of blocks first_block .. first_block + n_blocks - 1.

    Block b holds networks b * networks_per_block ... (fewer in the last block) and draws
    from the stream seed_block(seed, b); blocks run in parallel, each writing its own row.
    """
    depth = widths.shape[0] - 1
    out = np.zeros((n_blocks, depth, 3, STATS_SIZE))
    for i in numba.prange(n_blocks):
        block = first_block + i
        state = np.empty(4, dtype=np.uint64)
        seed_block(seed, block, state)
        offs, zbuf, abuf, dbuf, grams, mbuf = _buffers(widths, k)
        ws, mats = _workspace(k)
        count = min(networks_per_block, networks - block * networks_per_block)
        for _ in range(count):
            network(state, widths, offs, wvar, code, param, sb, orthogonal, gain, k,
                    inputs_kind, data, gradients, zbuf, abuf, dbuf, grams, mbuf, ws, mats)
            for layer in range(1, depth + 1):
                n, o = widths[layer], offs[layer - 1]
                _add_layer(out[i, layer - 1, Z], zbuf, o, n, k)
                _add_layer(out[i, layer - 1, A], abuf, o, n, k)
                if gradients:
                    _add_layer(out[i, layer - 1, DELTA], dbuf, o, n, k)
    return out


@numba.njit(cache=True)
def sample_trials(seed, networks, widths, wvar, code, param, sb, orthogonal, gain, k,
                  inputs_kind, data, gradients):
    """Per-trial lengths, for tests of the joint law: one stream, ``networks`` networks.

    Returns q (networks, k, L) = ||z^l||^2 / n_l, g (networks, k, L) = ||delta^l||^2 / n_l
    and c (networks, 2, L): z^l_0 . z^l_1 / n_l and delta^l_0 . delta^l_1 / n_l (the
    first two inputs; 0 when k = 1).
    """
    depth = widths.shape[0] - 1
    state = np.empty(4, dtype=np.uint64)
    seed_block(seed, 0, state)
    offs, zbuf, abuf, dbuf, grams, mbuf = _buffers(widths, k)
    ws, mats = _workspace(k)
    q = np.zeros((networks, k, depth))
    g = np.zeros((networks, k, depth))
    c = np.zeros((networks, 2, depth))
    for t in range(networks):
        network(state, widths, offs, wvar, code, param, sb, orthogonal, gain, k,
                inputs_kind, data, gradients, zbuf, abuf, dbuf, grams, mbuf, ws, mats)
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
