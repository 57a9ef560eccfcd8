"""Numba CPU kernels: the same ops as :mod:`minifer.ops.reference`, fast.

Every kernel is a serial, ``nogil`` Numba function over a range of rows of its
output (``lo`` to ``hi``: image rows, tile rows or matrix rows) that belong to it
alone, so pieces of one call run side by side on minifer's worker threads
(:func:`minifer.backend.map_chunks`, through :func:`_rows`) without two threads
writing the same element, and col2im needs no atomics. Numba's own thread pool
(``parallel=True``) is never used: it would compete for the cores with OpenBLAS's.
Small inputs, and calls from a worker (a convolution's chunk of images), run whole
in the calling thread. ``cache=True`` keeps the compiled machine code on disk:
only the very first run on a machine pays for compilation. :mod:`minifer.ops`
imports this module on the first op call, so ``import minifer`` stays fast.
Importing or running it changes no environment variable.
"""
import numpy as np
from numba import njit

from .. import backend
from . import reference
from .reference import out_size, winograd_grid

SERIAL_MAX = 1 << 18   # input values up to which a kernel runs whole in the calling thread
PIECES = 1             # row ranges per worker thread (more balance a core slowed by another
                       # process, but each costs a hand-over: see minifer.backend.map_chunks)

kernel = njit(cache=True, nogil=True)   # every kernel's build: serial, and releasing the GIL


def _rows(fn, n, size, *args):
    """``fn(*args, lo, hi)`` over row ranges covering ``range(n)``, on minifer's workers, ``PIECES``
    per thread -> the results. One range, in the calling thread, for ``size`` values or fewer, in
    a worker (it is a piece of a larger call already) or with one thread: a face's kernels pay
    for no hand-over."""
    threads = backend.worker_count()
    if size <= SERIAL_MAX or threads < 2 or backend.in_worker():
        return [fn(*args, 0, n)]
    k = min(n, PIECES * threads)
    return backend.map_chunks(lambda r: fn(*args, *r), [(i * n // k, (i + 1) * n // k) for i in range(k)])


@kernel
def _im2col(x, kh, kw, stride, pad, oh, ow, cols, lo, hi):
    """Output rows r = (image, oh) from lo to hi; each copies the C contiguous channels of a pixel."""
    _, h, w, c = x.shape
    for r in range(lo, hi):
        b = r // oh
        i = r - b * oh
        for j in range(ow):
            row = r * ow + j
            for p in range(kh):
                hi_ = i * stride - pad + p
                for q in range(kw):
                    wi = j * stride - pad + q
                    base = (p * kw + q) * c
                    if 0 <= hi_ < h and 0 <= wi < w:
                        for ch in range(c):
                            cols[row, base + ch] = x[b, hi_, wi, ch]
                    else:
                        for ch in range(c):
                            cols[row, base + ch] = 0


@kernel
def _col2im(cols, kh, kw, stride, pad, oh, ow, dx, lo, hi):
    """Gather form, input rows r = (image, h) from lo to hi: each input pixel (b, hi, wi) sums
    the column entries copied from it, those of output pixels i = (hi + pad - p) / S,
    j = (wi + pad - q) / S for every tap (p, q) where these are whole and in range. Every row
    belongs to one range, so there are no races and no zero-fill pass."""
    _, h, w, c = dx.shape
    for r in range(lo, hi):
        b = r // h
        hr = r - b * h
        for wi in range(w):
            for ch in range(c):
                dx[b, hr, wi, ch] = 0
            for p in range(kh):
                t = hr + pad - p
                if t < 0 or t % stride != 0 or t // stride >= oh:
                    continue
                for q in range(kw):
                    u = wi + pad - q
                    if u < 0 or u % stride != 0 or u // stride >= ow:
                        continue
                    row = (b * oh + t // stride) * ow + u // stride
                    base = (p * kw + q) * c
                    for ch in range(c):
                        dx[b, hr, wi, ch] += cols[row, base + ch]


def im2col(x, kh, kw, stride=1, pad=0):
    """x (N,H,W,C) -> cols (N*OH*OW, KH*KW*C), as the reference."""
    n, h, w, c = x.shape
    oh, ow = out_size(h, kh, stride, pad), out_size(w, kw, stride, pad)
    cols = np.empty((n * oh * ow, kh * kw * c), x.dtype)
    _rows(_im2col, n * oh, x.size, np.ascontiguousarray(x), kh, kw, stride, pad, oh, ow, cols)
    return cols


def col2im(cols, x_shape, kh, kw, stride=1, pad=0):
    """cols -> dx (N,H,W,C), the adjoint of im2col, as the reference."""
    n, h, w, c = x_shape
    dx = np.empty(x_shape, cols.dtype)
    _rows(_col2im, n * h, cols.size, np.ascontiguousarray(cols), kh, kw, stride, pad,
          out_size(h, kh, stride, pad), out_size(w, kw, stride, pad), dx)
    return dx


# ---- Winograd F(4x4, 3x3) tiles (the math: minifer.ops.reference) -----------------------
# Over rows of tiles (image, ty). The 1-D transforms, written out (B^T, A^T and their transposes
# in minifer.ops.reference): each line is one output row of a 6- or 4-point transform, and the
# innermost loop runs over the contiguous channels, one output array at a time (so that Numba
# vectorizes it).

@kernel
def _wino_tiles(x, pad, th, tw, v, lo, hi):
    """A tile row's 6 input rows go through B^T once, for every column (e: (6, 4 TW + 2, C));
    each tile's column pass (B^T again, on its 6 columns of e) writes its 36 values of V."""
    _, h, w, c = x.shape
    zero = np.zeros((w, c), dtype=x.dtype)                # a row above or below the image
    e = np.zeros((6, 4 * tw + 2, c), dtype=x.dtype)       # B^T d; 0 in the padding columns
    for r in range(lo, hi):
        b = r // th
        top = 4 * (r - b * th) - pad
        d0 = x[b, top] if 0 <= top < h else zero
        d1 = x[b, top + 1] if 0 <= top + 1 < h else zero
        d2 = x[b, top + 2] if 0 <= top + 2 < h else zero
        d3 = x[b, top + 3] if 0 <= top + 3 < h else zero
        d4 = x[b, top + 4] if 0 <= top + 4 < h else zero
        d5 = x[b, top + 5] if 0 <= top + 5 < h else zero
        for i in range(min(w, 4 * tw + 2 - pad)):        # e = B^T d, one input column at a time
            j = i + pad
            for ch in range(c):
                e[0, j, ch] = 4 * d0[i, ch] - 5 * d2[i, ch] + d4[i, ch]
            for ch in range(c):
                e[1, j, ch] = d3[i, ch] + d4[i, ch] - 4 * (d1[i, ch] + d2[i, ch])
            for ch in range(c):
                e[2, j, ch] = 4 * (d1[i, ch] - d2[i, ch]) + d4[i, ch] - d3[i, ch]
            for ch in range(c):
                e[3, j, ch] = 2 * (d3[i, ch] - d1[i, ch]) + d4[i, ch] - d2[i, ch]
            for ch in range(c):
                e[4, j, ch] = 2 * (d1[i, ch] - d3[i, ch]) + d4[i, ch] - d2[i, ch]
            for ch in range(c):
                e[5, j, ch] = 4 * d1[i, ch] - 5 * d3[i, ch] + d5[i, ch]
        for tx in range(tw):                              # v = e B, tile by tile
            t, j = r * tw + tx, 4 * tx
            for a in range(6):
                ea, k = e[a], 6 * a
                for ch in range(c):
                    v[k, t, ch] = 4 * ea[j, ch] - 5 * ea[j + 2, ch] + ea[j + 4, ch]
                for ch in range(c):
                    v[k + 1, t, ch] = ea[j + 3, ch] + ea[j + 4, ch] - 4 * (ea[j + 1, ch] + ea[j + 2, ch])
                for ch in range(c):
                    v[k + 2, t, ch] = 4 * (ea[j + 1, ch] - ea[j + 2, ch]) + ea[j + 4, ch] - ea[j + 3, ch]
                for ch in range(c):
                    v[k + 3, t, ch] = 2 * (ea[j + 3, ch] - ea[j + 1, ch]) + ea[j + 4, ch] - ea[j + 2, ch]
                for ch in range(c):
                    v[k + 4, t, ch] = 2 * (ea[j + 1, ch] - ea[j + 3, ch]) + ea[j + 4, ch] - ea[j + 2, ch]
                for ch in range(c):
                    v[k + 5, t, ch] = 4 * ea[j + 1, ch] - 5 * ea[j + 3, ch] + ea[j + 5, ch]


@kernel
def _wino_untile(m, out, b, relu, lo, hi):
    """Writes into out (N, OH, OW, F), adding b (F,) and clamping at 0 if relu as it goes."""
    _, oh, ow, f = out.shape
    th, tw = (oh + 3) // 4, (ow + 3) // 4
    bot = np.float32(0) if relu else np.float32(-np.inf)
    e = np.empty((4, 6, f), dtype=m.dtype)                # A^T m
    y = np.empty((4, f), dtype=m.dtype)                   # one output row of the tile: e A
    for r in range(lo, hi):
        b_ = r // th
        ty = r - b_ * th
        for tx in range(tw):
            t = r * tw + tx
            for j in range(6):
                for ch in range(f):
                    e[0, j, ch] = m[j, t, ch] + m[6 + j, t, ch] + m[12 + j, t, ch] + m[18 + j, t, ch] + m[24 + j, t, ch]
                for ch in range(f):
                    e[1, j, ch] = m[6 + j, t, ch] - m[12 + j, t, ch] + 2 * (m[18 + j, t, ch] - m[24 + j, t, ch])
                for ch in range(f):
                    e[2, j, ch] = m[6 + j, t, ch] + m[12 + j, t, ch] + 4 * (m[18 + j, t, ch] + m[24 + j, t, ch])
                for ch in range(f):
                    e[3, j, ch] = (m[6 + j, t, ch] - m[12 + j, t, ch] + 8 * (m[18 + j, t, ch] - m[24 + j, t, ch])
                                   + m[30 + j, t, ch])
            for i in range(min(4, oh - 4 * ty)):          # out = e A + b, where the tile is inside
                ei = e[i]
                for ch in range(f):
                    y[0, ch] = ei[0, ch] + ei[1, ch] + ei[2, ch] + ei[3, ch] + ei[4, ch]
                for ch in range(f):
                    y[1, ch] = ei[1, ch] - ei[2, ch] + 2 * (ei[3, ch] - ei[4, ch])
                for ch in range(f):
                    y[2, ch] = ei[1, ch] + ei[2, ch] + 4 * (ei[3, ch] + ei[4, ch])
                for ch in range(f):
                    y[3, ch] = ei[1, ch] - ei[2, ch] + 8 * (ei[3, ch] - ei[4, ch]) + ei[5, ch]
                for k in range(min(4, ow - 4 * tx)):
                    for ch in range(f):
                        out[b_, 4 * ty + i, 4 * tx + k, ch] = max(y[k, ch] + b[ch], bot)


@kernel
def _wino_untile_adjoint(dy, th, tw, dm, lo, hi):
    """dM = A g A^T of every 4x4 gradient tile g (0 past the edge)."""
    _, oh, ow, f = dy.shape
    g = np.zeros((4, 4, f), dtype=dy.dtype)               # one gradient tile
    e = np.empty((6, 4, f), dtype=dy.dtype)               # A g
    for r in range(lo, hi):
        b = r // th
        ty = r - b * th
        for tx in range(tw):
            t = r * tw + tx
            rows, cols = min(4, oh - 4 * ty), min(4, ow - 4 * tx)
            if rows < 4 or cols < 4:
                g[:] = 0
            for i in range(rows):
                for j in range(cols):
                    for ch in range(f):
                        g[i, j, ch] = dy[b, 4 * ty + i, 4 * tx + j, ch]
            for j in range(4):
                for ch in range(f):
                    e[0, j, ch] = g[0, j, ch]
                for ch in range(f):
                    e[1, j, ch] = g[0, j, ch] + g[1, j, ch] + g[2, j, ch] + g[3, j, ch]
                for ch in range(f):
                    e[2, j, ch] = g[0, j, ch] - g[1, j, ch] + g[2, j, ch] - g[3, j, ch]
                for ch in range(f):
                    e[3, j, ch] = g[0, j, ch] + 2 * g[1, j, ch] + 4 * g[2, j, ch] + 8 * g[3, j, ch]
                for ch in range(f):
                    e[4, j, ch] = g[0, j, ch] - 2 * g[1, j, ch] + 4 * g[2, j, ch] - 8 * g[3, j, ch]
                for ch in range(f):
                    e[5, j, ch] = g[3, j, ch]
            for a in range(6):                            # dm = e A^T
                ea, k = e[a], 6 * a
                for ch in range(f):
                    dm[k, t, ch] = ea[0, ch]
                for ch in range(f):
                    dm[k + 1, t, ch] = ea[0, ch] + ea[1, ch] + ea[2, ch] + ea[3, ch]
                for ch in range(f):
                    dm[k + 2, t, ch] = ea[0, ch] - ea[1, ch] + ea[2, ch] - ea[3, ch]
                for ch in range(f):
                    dm[k + 3, t, ch] = ea[0, ch] + 2 * ea[1, ch] + 4 * ea[2, ch] + 8 * ea[3, ch]
                for ch in range(f):
                    dm[k + 4, t, ch] = ea[0, ch] - 2 * ea[1, ch] + 4 * ea[2, ch] - 8 * ea[3, ch]
                for ch in range(f):
                    dm[k + 5, t, ch] = ea[3, ch]


@kernel
def _wino_tiles_adjoint(dv, dx, pad, th, tw, parity, lo, hi):
    """dx += every tile's B dV B^T at the pixels it was read from, for the tile rows
    ty = parity, parity + 2, ... numbered r = (image, (ty - parity) / 2) from lo to hi. Tile rows
    ty and ty + 2 share no input rows, so the ranges of one pass (even rows, then odd) never add
    to one pixel together. The even pass first zeroes its rows and the two below them (which
    only the odd tile row between reads), down to the bottom after the last even row.

    Per tile row: each tile's column pass (dV B^T) is added into e (6, 4 TW + 2, C), tiles
    overlapping by two columns; then one row pass (B e) per column adds it into dx."""
    _, h, w, c = dx.shape
    rows = (th - parity + 1) // 2
    e = np.empty((6, 4 * tw + 2, c), dtype=dv.dtype)
    for r in range(lo, hi):
        b = r // rows
        ty = parity + 2 * (r - b * rows)
        top = 4 * ty - pad
        if parity == 0:
            dx[b, max(top, 0):h if ty + 2 >= th else min(top + 8, h)] = 0
        e[:] = 0
        for tx in range(tw):
            t, j = (b * th + ty) * tw + tx, 4 * tx
            for a in range(6):
                ea, k = e[a], 6 * a
                for ch in range(c):
                    ea[j, ch] += 4 * dv[k, t, ch]
                for ch in range(c):
                    ea[j + 1, ch] += (4 * (dv[k + 2, t, ch] - dv[k + 1, t, ch] + dv[k + 5, t, ch])
                                      + 2 * (dv[k + 4, t, ch] - dv[k + 3, t, ch]))
                for ch in range(c):
                    ea[j + 2, ch] -= (5 * dv[k, t, ch] + 4 * (dv[k + 1, t, ch] + dv[k + 2, t, ch])
                                      + dv[k + 3, t, ch] + dv[k + 4, t, ch])
                for ch in range(c):
                    ea[j + 3, ch] += (dv[k + 1, t, ch] - dv[k + 2, t, ch] + 2 * (dv[k + 3, t, ch] - dv[k + 4, t, ch])
                                      - 5 * dv[k + 5, t, ch])
                for ch in range(c):
                    ea[j + 4, ch] += dv[k, t, ch] + dv[k + 1, t, ch] + dv[k + 2, t, ch] + dv[k + 3, t, ch] + dv[k + 4, t, ch]
                for ch in range(c):
                    ea[j + 5, ch] += dv[k + 5, t, ch]
        for i in range(min(w, 4 * tw + 2 - pad)):        # dx += B e, one column at a time
            j = i + pad
            if 0 <= top < h:
                for ch in range(c):
                    dx[b, top, i, ch] += 4 * e[0, j, ch]
            if 0 <= top + 1 < h:
                for ch in range(c):
                    dx[b, top + 1, i, ch] += (4 * (e[2, j, ch] - e[1, j, ch] + e[5, j, ch])
                                              + 2 * (e[4, j, ch] - e[3, j, ch]))
            if 0 <= top + 2 < h:
                for ch in range(c):
                    dx[b, top + 2, i, ch] -= (5 * e[0, j, ch] + 4 * (e[1, j, ch] + e[2, j, ch])
                                              + e[3, j, ch] + e[4, j, ch])
            if 0 <= top + 3 < h:
                for ch in range(c):
                    dx[b, top + 3, i, ch] += (e[1, j, ch] - e[2, j, ch] + 2 * (e[3, j, ch] - e[4, j, ch])
                                              - 5 * e[5, j, ch])
            if 0 <= top + 4 < h:
                for ch in range(c):
                    dx[b, top + 4, i, ch] += e[0, j, ch] + e[1, j, ch] + e[2, j, ch] + e[3, j, ch] + e[4, j, ch]
            if 0 <= top + 5 < h:
                for ch in range(c):
                    dx[b, top + 5, i, ch] += e[5, j, ch]


def winograd_tiles(x, pad=1):
    """x (N,H,W,C) -> V (36, N*TH*TW, C), as the reference."""
    n, _, _, c = x.shape
    _, _, th, tw = winograd_grid(x.shape[1], x.shape[2], pad)
    v = np.empty((reference.WINO_PLANES, n * th * tw, c), x.dtype)
    _rows(_wino_tiles, n * th, x.size, np.ascontiguousarray(x), pad, th, tw, v)
    return v


def winograd_untile(m, out_shape, out=None, b=None, relu=False):
    """M (36, N*TH*TW, F) -> out (N, OH, OW, F) (+ b, then ReLU if given; into ``out`` if given),
    as the reference."""
    if out is None:
        out = np.empty(out_shape, m.dtype)
    b = np.zeros(out_shape[-1], m.dtype) if b is None else b
    _rows(_wino_untile, out_shape[0] * ((out_shape[1] + 3) // 4), m.size, np.ascontiguousarray(m), out, b, relu)
    return out


def winograd_tiles_adjoint(dv, x_shape, pad=1, out=None):
    """dV (36, N*TH*TW, C) -> dx (N,H,W,C) (into ``out`` if given), as the reference."""
    _, _, th, tw = winograd_grid(x_shape[1], x_shape[2], pad)
    out = np.empty(x_shape, dv.dtype) if out is None else out
    dv = np.ascontiguousarray(dv)
    for parity in range(2):                               # even tile rows, then odd
        _rows(_wino_tiles_adjoint, x_shape[0] * ((th - parity + 1) // 2), dv.size, dv, out, pad, th, tw, parity)
    return out


def winograd_untile_adjoint(dout):
    """dout (N,OH,OW,F) -> dM (36, N*TH*TW, F), as the reference."""
    n, oh, ow, f = dout.shape
    th, tw = (oh + 3) // 4, (ow + 3) // 4
    dm = np.empty((reference.WINO_PLANES, n * th * tw, f), dout.dtype)
    _rows(_wino_untile_adjoint, n * th, dout.size, np.ascontiguousarray(dout), th, tw, dm)
    return dm


@kernel
def _bias_relu(out, b, relu):
    """out (M, F) += b, then max(., 0) if relu; serial (it runs on each chunk of a convolution)."""
    lo = np.float32(0) if relu else np.float32(-np.inf)
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            out[i, j] = max(out[i, j] + b[j], lo)


def bias_relu(out, b=None, relu=False):
    """In place, one pass, as the reference (NumPy's ``out += b`` broadcasts b row by row:
    48-64 us for a 48x48x32 image, 7 us here)."""
    if not out.flags.c_contiguous:
        return reference.bias_relu(out, b, relu)
    f = out.shape[-1]
    _bias_relu(out.reshape(-1, f), np.zeros(f, out.dtype) if b is None else b, relu)
    return out


@kernel
def _maxpool_fwd(x, k, stride, out, arg, lo, hi):
    """Output rows r = (image, i) from lo to hi; the first tap of each window is the running
    maximum, later taps replace it where strictly larger (the first maximum wins, as in the
    reference), with the channels as the innermost, contiguous loop."""
    _, h, w, c = x.shape
    _, oh, ow, _ = out.shape
    for r in range(lo, hi):
        b = r // oh
        i = r - b * oh
        for j in range(ow):
            h0, w0 = i * stride, j * stride
            for ch in range(c):
                out[b, i, j, ch] = x[b, h0, w0, ch]
                arg[b, i, j, ch] = h0 * w + w0
            for p in range(k):
                for q in range(k):
                    if p + q == 0:
                        continue
                    idx = (h0 + p) * w + w0 + q
                    for ch in range(c):
                        v = x[b, h0 + p, w0 + q, ch]
                        if v > out[b, i, j, ch]:
                            out[b, i, j, ch] = v
                            arg[b, i, j, ch] = idx


@kernel
def _maxpool_bwd(dout, arg, dx, lo, hi):
    """Images lo to hi: dx (N, H*W, C) = each gradient added at its window's max."""
    _, oh, ow, c = dout.shape
    for b in range(lo, hi):
        dx[b] = 0
        for i in range(oh):
            for j in range(ow):
                for ch in range(c):
                    dx[b, arg[b, i, j, ch], ch] += dout[b, i, j, ch]


def maxpool_forward(x, k, stride):
    """x (N,H,W,C) -> out, arg (flat h*W+w index of each max), as the reference."""
    n, h, w, c = x.shape
    oh, ow = out_size(h, k, stride, 0), out_size(w, k, stride, 0)
    out, arg = np.empty((n, oh, ow, c), x.dtype), np.empty((n, oh, ow, c), np.int32)
    _rows(_maxpool_fwd, n * oh, x.size, np.ascontiguousarray(x), k, stride, out, arg)
    return out, arg


def maxpool_backward(dout, arg, x_shape, k, stride):
    """Each gradient to its window's max (k and stride are implied by ``arg``)."""
    n, h, w, c = x_shape
    dx = np.empty((n, h * w, c), dout.dtype)
    _rows(_maxpool_bwd, n, dout.size, np.ascontiguousarray(dout), arg, dx)
    return dx.reshape(x_shape)


# ---- batch-norm over the last axis of a (m, C) matrix ---------------------------------
_BLOCKS = 16  # row blocks, each summed into its own float64 partial sums (the same at any worker count)


@kernel
def _col_sums(a, b, mu, inv, scale, shift, relu, part, lo, hi):
    """Blocks lo to hi of the rows: per-column sum(a) and sum(a * (b - mu) * inv) into part[k].

    Forward statistics: a = b = x, mu = 0, inv = 1 -> sum(x), sum(x^2).
    Backward: a = dout, b = x -> dbeta = sum(dout), dgamma = sum(dout * xhat).
    ``relu``: a counts only where (b - mu) * scale + shift > 0 (a ReLU fused after the batch-norm).
    """
    m, c = a.shape
    for k in range(lo, hi):
        s1 = part[k, 0]
        s2 = part[k, 1]
        for i in range(k * m // _BLOCKS, (k + 1) * m // _BLOCKS):
            for j in range(c):
                d = b[i, j] - mu[j]
                ai = a[i, j]
                if relu and d * scale[j] + shift[j] <= 0:
                    ai = 0
                s1[j] += ai
                s2[j] += ai * (d * inv[j])


@kernel
def _bn_apply(x, mu, scale, shift, relu, out, lo, hi):
    """Rows lo to hi: out = (x - mu) * scale + shift, column-wise; max(out, 0) if relu."""
    bot = np.float32(0) if relu else np.float32(-np.inf)
    for i in range(lo, hi):
        for j in range(x.shape[1]):
            out[i, j] = max((x[i, j] - mu[j]) * scale[j] + shift[j], bot)


@kernel
def _bn_dx(g, x, mu, inv, gamma, dbeta, dgamma, scale, shift, relu, dx, lo, hi):
    """Rows lo to hi: dx = gamma * inv / m * (m * g - dbeta - xhat * dgamma), xhat = (x - mu) * inv;
    with ``relu``, g counts only where (x - mu) * scale + shift > 0."""
    m, c = g.shape
    for i in range(lo, hi):
        for j in range(c):
            d = x[i, j] - mu[j]
            gi = g[i, j]
            if relu and d * scale[j] + shift[j] <= 0:
                gi = 0
            dx[i, j] = gamma[j] * inv[j] / m * (m * gi - dbeta[j] - d * inv[j] * dgamma[j])


def _gate(mu, relu):
    """Numba's arguments for an optional fused ReLU gate: (scale, shift, on)."""
    return (mu, mu, False) if relu is None else (relu[0], relu[1], True)


def channel_sums(a, b, mu, inv, relu=None):
    """Per-column sum(a) and sum(a * (b - mu) * inv) -> (2, C) float64; a, b (m, C), as the reference."""
    part = np.zeros((_BLOCKS, 2, a.shape[1]), np.float64)
    _rows(_col_sums, _BLOCKS, a.size, np.ascontiguousarray(a), np.ascontiguousarray(b), mu, inv,
          *_gate(mu, relu), part)
    return part.sum(axis=0)


def affine(x, mu, scale, shift, relu=False):
    """(x - mu) * scale + shift (then max(., 0) if relu) in one pass; x (m, C)."""
    x = np.ascontiguousarray(x)
    out = np.empty_like(x)
    _rows(_bn_apply, x.shape[0], x.size, x, mu, scale, shift, relu, out)
    return out


def bn_input_grad(g, x, mu, inv, gamma, dbeta, dgamma, relu=None):
    """Training-mode batch-norm dx in one pass; g, x (m, C), as the reference."""
    g = np.ascontiguousarray(g)
    dx = np.empty_like(g)
    _rows(_bn_dx, g.shape[0], g.size, g, np.ascontiguousarray(x), mu, inv, gamma, dbeta, dgamma,
          *_gate(mu, relu), dx)
    return dx
