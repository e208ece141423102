"""The direct engine's matrix product: c = scale * a @ B with B packed in column panels.

Every element of the product is one chain of fused multiply-adds in index order,
``s = fma(a[r, i], B[i, j], s)`` for i = 0, 1, ... from s = 0, then ``scale * s``: the
result does not depend on the tile shapes, the vector width or the CPU (``llvm.fma`` is
correctly rounded in hardware or in software), so a seed gives the same bits whatever
the machine's SIMD.

B (K x N) is stored in panels of NR = 8 NV columns: panel p holds B[i, p NR + q] at
``b[p K NR + i NR + q]`` (q < NR; the columns past N are padding, computed and dropped).
The caller writes B there directly (the direct engine draws its weights into that
layout), so a panel is read contiguously and stays in L1 while the rows of a
run through it. The micro-kernel (:func:`_tile`) keeps an MR x NR block of c in MR NV
8-wide vector registers, loads one row of the panel and broadcasts MR values of ``a`` per
step; the rows of ``a`` are read in place (its row stride), tiles of 4, 2 and 1 rows take
the remainder.
"""
import numba
from llvmlite import binding, ir
from numba.core import cgutils, types
from numba.extending import intrinsic

# The tile fills the vector registers: with AVX-512 (32 of them), 8 x 24 takes 24
# accumulators, 3 panel loads and a broadcast; with 16 registers 8-wide vectors take two
# each, so 6 x 8 (12 accumulators). The bits are the same either way.
_AVX512 = bool(binding.get_host_cpu_features().get("avx512f", False))
MR = 8 if _AVX512 else 6  # rows of a per tile
NV = 3 if _AVX512 else 1  # 8-wide vectors per row of a tile
NR = 8 * NV  # columns of B per panel


@numba.njit(cache=True)
def panel_size(k, n):
    """Floats a packed (k x n) B takes: its columns rounded up to whole panels.

    Parameters
    ----------
    k, n : int
        Rows and columns of B.

    Returns
    -------
    int
    """
    return k * (-(-n // NR) * NR)


@intrinsic
def _tile(typingctx, mr, nv, a, a_off, lda, a_panel, b, b_off, kk, c):
    # c[r * 8 nv + q] = sum over i < kk of A[r, i] * b[b_off + i 8 nv + q], for r < mr and
    # q < 8 nv, each a chain of fused multiply-adds in order i = 0, 1, ..., where A[r, i] is
    # a[a_off + r lda + i] for a_panel = 0, else a[a_off + r lda + (i // 8 nv) a_panel +
    # i % 8 nv]: a read in place as the rows of a B packed in panels (B^T's columns)
    if not (isinstance(mr, types.IntegerLiteral) and isinstance(nv, types.IntegerLiteral)):
        return None
    sig = types.void(mr, nv, a, a_off, lda, a_panel, b, b_off, kk, c)

    def codegen(context, builder, signature, args):
        rows, vecs = mr.literal_value, nv.literal_value
        _, _, a_v, a_off_v, lda_v, a_panel_v, b_v, b_off_v, kk_v, c_v = args
        f64 = ir.DoubleType()
        i32, i64 = ir.IntType(32), ir.IntType(64)
        vty = ir.VectorType(f64, 8)
        a_arr = context.make_array(signature.args[2])(context, builder, a_v)
        b_arr = context.make_array(signature.args[6])(context, builder, b_v)
        c_arr = context.make_array(signature.args[9])(context, builder, c_v)
        a_ptr = builder.gep(a_arr.data, [a_off_v])
        b_ptr = builder.gep(b_arr.data, [b_off_v])
        zero = ir.Constant(vty, [0.0] * 8)
        splat_mask = ir.Constant(ir.VectorType(i32, 8), [0] * 8)
        fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vty, [vty] * 3),
                                             "llvm.fma.v8f64")
        accs = [[cgutils.alloca_once_value(builder, zero) for _ in range(vecs)]
                for _ in range(rows)]
        a_rows = [builder.gep(a_ptr, [builder.mul(lda_v, ir.Constant(i64, r))])
                  for r in range(rows)]

        def step(i, a_at):
            # one i: a row of the panel of b, times A[r, i] (at a_at[r]) for every r
            row = builder.gep(b_ptr, [builder.mul(i, ir.Constant(i64, 8 * vecs))])
            bv = [builder.load(builder.bitcast(builder.gep(row, [ir.Constant(i64, 8 * v)]),
                                               vty.as_pointer()), align=8)
                  for v in range(vecs)]
            for r in range(rows):
                s = builder.load(a_at[r])
                s = builder.insert_element(ir.Constant(vty, ir.Undefined), s,
                                           ir.Constant(i32, 0))
                s = builder.shuffle_vector(s, ir.Constant(vty, ir.Undefined), splat_mask)
                for v in range(vecs):
                    acc = accs[r][v]
                    builder.store(builder.call(fma, [s, bv[v], builder.load(acc)]), acc)

        nr = ir.Constant(i64, 8 * vecs)
        plain = builder.icmp_signed("==", a_panel_v, ir.Constant(i64, 0))
        with builder.if_else(plain) as (then, otherwise):
            with then:
                with cgutils.for_range(builder, kk_v) as loop:
                    step(loop.index, [builder.gep(a_rows[r], [loop.index]) for r in range(rows)])
            with otherwise:  # panel by panel of A's columns, 8 nv of them contiguous
                panels = builder.sdiv(builder.add(kk_v, ir.Constant(i64, 8 * vecs - 1)), nr)
                with cgutils.for_range(builder, panels) as outer:
                    i0 = builder.mul(outer.index, nr)
                    left = builder.sub(kk_v, i0)
                    count = builder.select(builder.icmp_signed("<", left, nr), left, nr)
                    at = [builder.gep(a_rows[r], [builder.mul(outer.index, a_panel_v)])
                          for r in range(rows)]
                    with cgutils.for_range(builder, count) as inner:
                        step(builder.add(i0, inner.index),
                             [builder.gep(at[r], [inner.index]) for r in range(rows)])
        for r in range(rows):
            for v in range(vecs):
                ptr = builder.gep(c_arr.data, [ir.Constant(i64, r * 8 * vecs + 8 * v)])
                builder.store(builder.load(accs[r][v]),
                              builder.bitcast(ptr, vty.as_pointer()), align=8)
        return context.get_dummy_value()

    return sig, codegen


@numba.njit(cache=True)
def _rows(a, b, c, scale, ct, t0, rows, p, kk, n):
    # c[t0:t0 + rows, panel p] from the tile kernel with ``rows`` in (MR, 4, 2, 1)
    af = a.reshape(a.size)
    lda = a.shape[1]
    if rows == MR:
        _tile(MR, NV, af, t0 * lda, lda, 0, b, p * kk * NR, kk, ct)
    elif rows == 4:
        _tile(4, NV, af, t0 * lda, lda, 0, b, p * kk * NR, kk, ct)
    elif rows == 2:
        _tile(2, NV, af, t0 * lda, lda, 0, b, p * kk * NR, kk, ct)
    else:
        _tile(1, NV, af, t0 * lda, lda, 0, b, p * kk * NR, kk, ct)
    j0 = p * NR
    cols = min(NR, n - j0)
    for r in range(rows):
        for q in range(cols):
            c[t0 + r, j0 + q] = scale * ct[r * NR + q]


@numba.njit(cache=True, inline="always")
def column_start(j, kk):
    """Where column j of a packed B with ``kk`` rows starts: B[i, j] is at that + i NR.

    Parameters
    ----------
    j, kk : int
        The column, and the rows of B.

    Returns
    -------
    int
        An offset into the packed storage (see the module).
    """
    return (j - j % NR) * kk + j % NR


@numba.njit(cache=True)
def pack_transposed(x, b):
    """b <- B = x^T packed in column panels, for a C-ordered x (N x K): B is K x N.

    Parameters
    ----------
    x : numpy.ndarray
        float64, shape (N, K), C-ordered.
    b : numpy.ndarray
        float64, 1-D, at least :func:`panel_size` (K, N); the padding columns are left as
        they are.
    """
    n, kk = x.shape
    for j in range(n):
        row, base = x[j], column_start(j, kk)
        for i in range(kk):
            b[base + i * NR] = row[i]


@numba.njit(cache=True)
def zero_padding(b, kk, n):
    """Zero the padding columns of a packed (kk x n) B, which the tile kernel computes and
    drops: garbage there could be subnormal, and slow every step.

    Parameters
    ----------
    b : numpy.ndarray
        float64, 1-D, at least :func:`panel_size` (kk, n).
    kk, n : int
        Rows and columns of B.
    """
    p, used = n // NR, n % NR
    if used == 0:
        return
    for i in range(kk):
        b[(p * kk + i) * NR + used:(p * kk + i + 1) * NR] = 0.0


@numba.njit(cache=True)
def gemm_packed(a, b, c, scale, ct):
    """c = scale * a @ B for C-ordered a (k x K), c (k x N) and B (K x N) packed in ``b``.

    Parameters
    ----------
    a : numpy.ndarray
        float64, shape (k, K), C-ordered.
    b : numpy.ndarray
        float64, 1-D, at least :func:`panel_size` (K, N): B packed (see the module).
    c : numpy.ndarray
        float64, shape (k, N), C-ordered; overwritten.
    scale : float
        Multiplies every sum.
    ct : numpy.ndarray
        float64, 1-D, at least MR x NR: scratch.
    """
    k, kk = a.shape
    n = c.shape[1]
    for p in range((n + NR - 1) // NR):
        t0 = 0
        while t0 + MR <= k:
            _rows(a, b, c, scale, ct, t0, MR, p, kk, n)
            t0 += MR
        for rows in (4, 2, 1):
            while t0 + rows <= k:
                _rows(a, b, c, scale, ct, t0, rows, p, kk, n)
                t0 += rows


@numba.njit(cache=True)
def _rows_transposed(b, xb, c, scale, ct, t0, rows, p, kk):
    # c[panel p's rows, t0:t0 + rows] from the tile kernel, its A = rows t0.. of the packed
    # B (K x kk, see gemm_transposed), with ``rows`` in (MR, 4, 2, 1)
    K = c.shape[1]
    if rows == MR:
        _tile(MR, NV, b, t0 * NR, NR, K * NR, xb, p * kk * NR, kk, ct)
    elif rows == 4:
        _tile(4, NV, b, t0 * NR, NR, K * NR, xb, p * kk * NR, kk, ct)
    elif rows == 2:
        _tile(2, NV, b, t0 * NR, NR, K * NR, xb, p * kk * NR, kk, ct)
    else:
        _tile(1, NV, b, t0 * NR, NR, K * NR, xb, p * kk * NR, kk, ct)
    j0 = p * NR
    cols = min(NR, c.shape[0] - j0)
    for r in range(rows):
        for q in range(cols):
            c[j0 + q, t0 + r] = scale * ct[r * NR + q]


@numba.njit(cache=True)
def gemm_transposed(b, x, c, scale, xb, ct):
    """c = scale * x @ B^T for C-ordered x (k x N), c (k x K) and B (K x N) packed in ``b``.

    B is read in place, as the rows of the tile kernel's A, from the panels
    :func:`gemm_packed` reads it from; x^T is packed into ``xb`` as the tile kernel's B.
    Each element of c is the chain of fused multiply-adds that ``gemm_packed`` with B^T
    packed would give (fma(u, v, s) = fma(v, u, s)), so the direct engine's backward
    product reads the weights its forward product was given.

    Parameters
    ----------
    b : numpy.ndarray
        float64, 1-D, at least :func:`panel_size` (K, N): B packed (see the module).
    x : numpy.ndarray
        float64, shape (k, N), C-ordered.
    c : numpy.ndarray
        float64, shape (k, K), C-ordered; overwritten.
    scale : float
        Multiplies every sum.
    xb : numpy.ndarray
        float64, 1-D, at least :func:`panel_size` (N, k): scratch.
    ct : numpy.ndarray
        float64, 1-D, at least MR x NR: scratch.
    """
    k, kk = x.shape
    K = c.shape[1]
    pack_transposed(x, xb)
    zero_padding(xb, kk, k)
    for p in range((k + NR - 1) // NR):
        t0 = 0
        while t0 + MR <= K:
            _rows_transposed(b, xb, c, scale, ct, t0, MR, p, kk)
            t0 += MR
        for rows in (4, 2, 1):
            while t0 + rows <= K:
                _rows_transposed(b, xb, c, scale, ct, t0, rows, p, kk)
                t0 += rows
