"""Numba CPU kernels: the same ops as :mod:`minifer.ops.reference`, fast.

Each kernel is parallel (``prange``) over rows that belong to one thread only,
so threads never write to the same output element and col2im needs no atomics.
The convolution and pooling kernels also have a serial build (``nogil``), which
runs for small inputs and on minifer's worker threads (``_pick``).
``cache=True`` keeps the compiled machine code on disk: only the very first run
on a machine pays for compilation. :mod:`minifer.ops` imports this module on
the first op call, so ``import minifer`` stays fast. Importing it changes no
process-wide state; :func:`minifer.backend.set_cpu_policy` is the one place
that sets thread and allocator policy.
"""
import types

import numpy as np
from numba import njit, prange

from .. import backend
from . import reference
from .reference import out_size, winograd_grid

# The serial builds run for small inputs (a face or a few) and on minifer's workers. The serial
# build compiles in a fraction of the time and never starts the thread pool, so a one-photo
# `predict` does not wait for the parallel build on its first run: 1.96 s instead of 3.29 s
# from an empty Numba cache, the same per face afterwards (4.25 vs 4.23 ms).
SERIAL_MAX = 1 << 18          # input elements up to which the serial build runs


def _builds(fn):
    """``(parallel, serial)`` compiled builds of one kernel (``prange`` is ``range`` in the serial one,
    which releases the GIL so that minifer's worker threads run it side by side).

    The serial build compiles a renamed copy of ``fn``: Numba's on-disk cache files a function
    under its name and line, not its options, so the two builds of one function would load each
    other's machine code (numba issue 6845)."""
    serial = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__ + "_serial")
    serial.__qualname__ = fn.__qualname__ + "_serial"
    return njit(parallel=True, cache=True)(fn), njit(cache=True, nogil=True)(serial)


def _pick(builds, size):
    """The serial build for small inputs and on minifer's worker threads (the workers are then
    the parallelism: :func:`minifer.backend.set_workers`), else the parallel one."""
    return builds[1] if size <= SERIAL_MAX or backend.in_worker() else builds[0]


def _im2col_py(x, kh, kw, stride, pad, oh, ow):
    """Parallel over output rows (image, oh), so one image alone still uses every core."""
    n, h, w, c = x.shape
    cols = np.empty((n * oh * ow, kh * kw * c), dtype=x.dtype)
    for r in prange(n * oh):
        b = r // oh
        i = r - b * oh
        for j in range(ow):
            row = r * ow + j
            for p in range(kh):
                hi = i * stride - pad + p
                for q in range(kw):
                    wi = j * stride - pad + q
                    base = (p * kw + q) * c
                    if 0 <= hi < h and 0 <= wi < w:
                        for ch in range(c):
                            cols[row, base + ch] = x[b, hi, wi, ch]
                    else:
                        for ch in range(c):
                            cols[row, base + ch] = 0
    return cols


_im2col = _builds(_im2col_py)


def _col2im_py(cols, n, h, w, c, kh, kw, stride, pad, oh, ow):
    """Gather form: each input pixel (b, hi, wi) sums the column entries copied
    from it, those of output pixels i = (hi + pad - p) / S, j = (wi + pad - q) / S
    for every tap (p, q) where these are whole and in range. Every thread writes
    its own input rows, so there are no races and no zero-fill pass."""
    dx = np.empty((n, h, w, c), dtype=cols.dtype)
    for r in prange(n * h):
        b = r // h
        hi = r - b * h
        for wi in range(w):
            for ch in range(c):
                dx[b, hi, wi, ch] = 0
            for p in range(kh):
                t = hi + pad - p
                if t < 0 or t % stride != 0 or t // stride >= oh:
                    continue
                for q in range(kw):
                    u = wi + pad - q
                    if u < 0 or u % stride != 0 or u // stride >= ow:
                        continue
                    row = (b * oh + t // stride) * ow + u // stride
                    base = (p * kw + q) * c
                    for ch in range(c):
                        dx[b, hi, wi, ch] += cols[row, base + ch]
    return dx


_col2im = _builds(_col2im_py)


def im2col(x, kh, kw, stride=1, pad=0):
    """x (N,H,W,C) -> cols (N*OH*OW, KH*KW*C), as the reference."""
    n, h, w, c = x.shape
    return _pick(_im2col, x.size)(np.ascontiguousarray(x), kh, kw, stride, pad,
                                  out_size(h, kh, stride, pad), out_size(w, kw, stride, pad))


def col2im(cols, x_shape, kh, kw, stride=1, pad=0):
    """cols -> dx (N,H,W,C), the adjoint of im2col, as the reference."""
    n, h, w, c = x_shape
    return _pick(_col2im, cols.size)(np.ascontiguousarray(cols), n, h, w, c, kh, kw, stride, pad,
                                     out_size(h, kh, stride, pad), out_size(w, kw, stride, pad))


# ---- Winograd F(2x2, 3x3) tiles (the math: minifer.ops.reference) -----------------------
# Parallel over rows of tiles (image, ty); each tile is copied into a small (4, 4, C) buffer
# (zeros outside the image) and transformed one 4-vector at a time, with the channels as the
# innermost, contiguous loop.

def _wino_tiles_py(x, pad, th, tw):
    n, h, w, c = x.shape
    v = np.empty((16, n * th * tw, c), dtype=x.dtype)
    for r in prange(n * th):
        b = r // th
        ty = r - b * th
        d = np.empty((4, 4, c), dtype=x.dtype)            # one input tile
        e = np.empty((4, 4, c), dtype=x.dtype)            # B^T d
        for tx in range(tw):
            t = r * tw + tx
            for i in range(4):
                hi = 2 * ty - pad + i
                for j in range(4):
                    wi = 2 * tx - pad + j
                    if 0 <= hi < h and 0 <= wi < w:
                        for ch in range(c):
                            d[i, j, ch] = x[b, hi, wi, ch]
                    else:
                        for ch in range(c):
                            d[i, j, ch] = 0
            for j in range(4):                            # e = B^T d, column by column
                for ch in range(c):
                    e[0, j, ch] = d[0, j, ch] - d[2, j, ch]
                    e[1, j, ch] = d[1, j, ch] + d[2, j, ch]
                    e[2, j, ch] = d[2, j, ch] - d[1, j, ch]
                    e[3, j, ch] = d[1, j, ch] - d[3, j, ch]
            for i in range(4):                            # v = e B, row by row
                for ch in range(c):
                    v[4 * i, t, ch] = e[i, 0, ch] - e[i, 2, ch]
                    v[4 * i + 1, t, ch] = e[i, 1, ch] + e[i, 2, ch]
                    v[4 * i + 2, t, ch] = e[i, 2, ch] - e[i, 1, ch]
                    v[4 * i + 3, t, ch] = e[i, 1, ch] - e[i, 3, ch]
    return v


def _wino_untile_py(m, out, b, relu):
    """Writes into out (N, OH, OW, F), adding b (F,) and clamping at 0 if relu as it goes."""
    n, oh, ow, f = out.shape
    th, tw = (oh + 1) // 2, (ow + 1) // 2
    lo = np.float32(0) if relu else np.float32(-np.inf)
    for r in prange(n * th):
        b_ = r // th
        ty = r - b_ * th
        e = np.empty((2, 4, f), dtype=m.dtype)            # A^T m
        for tx in range(tw):
            t = r * tw + tx
            for j in range(4):
                for ch in range(f):
                    e[0, j, ch] = m[j, t, ch] + m[4 + j, t, ch] + m[8 + j, t, ch]
                    e[1, j, ch] = m[4 + j, t, ch] - m[8 + j, t, ch] - m[12 + j, t, ch]
            for i in range(2):                            # out = e A + b, where the tile is inside
                hi = 2 * ty + i
                if hi >= oh:
                    continue
                for ch in range(f):
                    out[b_, hi, 2 * tx, ch] = max(e[i, 0, ch] + e[i, 1, ch] + e[i, 2, ch] + b[ch], lo)
                if 2 * tx + 1 < ow:
                    for ch in range(f):
                        out[b_, hi, 2 * tx + 1, ch] = max(e[i, 1, ch] - e[i, 2, ch] - e[i, 3, ch] + b[ch], lo)
    return out


def _wino_untile_adjoint_py(dy, th, tw):
    n, oh, ow, f = dy.shape
    dm = np.empty((16, n * th * tw, f), dtype=dy.dtype)
    for r in prange(n * th):
        b = r // th
        ty = r - b * th
        g = np.empty((2, 2, f), dtype=dy.dtype)           # one 2x2 gradient tile
        e = np.empty((4, 2, f), dtype=dy.dtype)           # A g
        for tx in range(tw):
            t = r * tw + tx
            for i in range(2):
                for j in range(2):
                    if 2 * ty + i < oh and 2 * tx + j < ow:
                        for ch in range(f):
                            g[i, j, ch] = dy[b, 2 * ty + i, 2 * tx + j, ch]
                    else:
                        for ch in range(f):
                            g[i, j, ch] = 0
            for j in range(2):
                for ch in range(f):
                    e[0, j, ch] = g[0, j, ch]
                    e[1, j, ch] = g[0, j, ch] + g[1, j, ch]
                    e[2, j, ch] = g[0, j, ch] - g[1, j, ch]
                    e[3, j, ch] = -g[1, j, ch]
            for i in range(4):                            # dm = e A^T
                for ch in range(f):
                    dm[4 * i, t, ch] = e[i, 0, ch]
                    dm[4 * i + 1, t, ch] = e[i, 0, ch] + e[i, 1, ch]
                    dm[4 * i + 2, t, ch] = e[i, 0, ch] - e[i, 1, ch]
                    dm[4 * i + 3, t, ch] = -e[i, 1, ch]
    return dm


def _wino_tiles_adjoint_py(dv, dx, pad, th, tw):
    """dx = the sum of every tile's B dV B^T at the pixels it was read from. Tile rows
    ty and ty + 2 share no input rows, so each pass (even rows, then odd) is parallel over
    (image, tile row) without two threads adding to one pixel."""
    n, h, w, c = dx.shape
    for parity in range(2):
        rows = (th - parity + 1) // 2                     # tile rows ty = parity, parity + 2, ...
        for r in prange(n * rows):
            b = r // rows
            ty = parity + 2 * (r - b * rows)
            if parity == 0:                               # zero the rows this pass covers first:
                lo = max(2 * ty - pad, 0)                 # the even tile rows cover every row
                hi = h if ty + 2 >= th else min(2 * ty - pad + 4, h)
                dx[b, lo:hi] = 0
            e = np.empty((4, 4, c), dtype=dv.dtype)       # dV B^T, row by row
            for tx in range(tw):
                t = (b * th + ty) * tw + tx
                for a in range(4):
                    for ch in range(c):
                        v0, v1 = dv[4 * a, t, ch], dv[4 * a + 1, t, ch]
                        v2, v3 = dv[4 * a + 2, t, ch], dv[4 * a + 3, t, ch]
                        e[a, 0, ch] = v0
                        e[a, 1, ch] = v1 - v2 + v3
                        e[a, 2, ch] = v1 + v2 - v0
                        e[a, 3, ch] = -v3
                for j in range(4):                        # B e, column by column, added in place
                    wi = 2 * tx - pad + j
                    if wi < 0 or wi >= w:
                        continue
                    hi = 2 * ty - pad
                    if 0 <= hi < h:
                        for ch in range(c):
                            dx[b, hi, wi, ch] += e[0, j, ch]
                    if 0 <= hi + 1 < h:
                        for ch in range(c):
                            dx[b, hi + 1, wi, ch] += e[1, j, ch] - e[2, j, ch] + e[3, j, ch]
                    if 0 <= hi + 2 < h:
                        for ch in range(c):
                            dx[b, hi + 2, wi, ch] += e[1, j, ch] + e[2, j, ch] - e[0, j, ch]
                    if 0 <= hi + 3 < h:
                        for ch in range(c):
                            dx[b, hi + 3, wi, ch] -= e[3, j, ch]
    return dx


_wino_tiles = _builds(_wino_tiles_py)
_wino_untile = _builds(_wino_untile_py)
_wino_untile_adjoint = _builds(_wino_untile_adjoint_py)
_wino_tiles_adjoint = _builds(_wino_tiles_adjoint_py)


def winograd_tiles(x, pad=1):
    """x (N,H,W,C) -> V (16, N*TH*TW, C), as the reference."""
    _, _, th, tw = winograd_grid(x.shape[1], x.shape[2], pad)
    return _pick(_wino_tiles, x.size)(np.ascontiguousarray(x), pad, th, tw)


def winograd_untile(m, out_shape, out=None, b=None, relu=False):
    """M (16, N*TH*TW, F) -> out (N, OH, OW, F) (+ b, then ReLU if given; into ``out`` if given),
    as the reference."""
    if out is None:
        out = np.empty(out_shape, m.dtype)
    b = np.zeros(out_shape[-1], m.dtype) if b is None else b
    return _pick(_wino_untile, m.size)(np.ascontiguousarray(m), out, b, relu)


def winograd_tiles_adjoint(dv, x_shape, pad=1, out=None):
    """dV (16, N*TH*TW, C) -> dx (N,H,W,C) (into ``out`` if given), as the reference."""
    _, _, th, tw = winograd_grid(x_shape[1], x_shape[2], pad)
    out = np.empty(x_shape, dv.dtype) if out is None else out
    return _pick(_wino_tiles_adjoint, dv.size)(np.ascontiguousarray(dv), out, pad, th, tw)


def winograd_untile_adjoint(dout):
    """dout (N,OH,OW,F) -> dM (16, N*TH*TW, F), as the reference."""
    _, oh, ow, _ = dout.shape
    return _pick(_wino_untile_adjoint, dout.size)(np.ascontiguousarray(dout), (oh + 1) // 2, (ow + 1) // 2)


@njit(cache=True, nogil=True)
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


def _maxpool_fwd_py(x, k, stride, oh, ow):
    """Parallel over output rows (image, i); the first tap of each window is the running
    maximum, later taps replace it where strictly larger (the first maximum wins, as in the
    reference), with the channels as the innermost, contiguous loop."""
    n, h, w, c = x.shape
    out = np.empty((n, oh, ow, c), dtype=x.dtype)
    arg = np.empty((n, oh, ow, c), dtype=np.int32)   # flat h*w index of the max
    for r in prange(n * oh):
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
    return out, arg


_maxpool_fwd = _builds(_maxpool_fwd_py)


@njit(parallel=True, cache=True)
def _maxpool_bwd(dout, arg, h, w):
    n, oh, ow, c = dout.shape
    dx = np.zeros((n, h * w, c), dtype=dout.dtype)
    for b in prange(n):
        for i in range(oh):
            for j in range(ow):
                for ch in range(c):
                    dx[b, arg[b, i, j, ch], ch] += dout[b, i, j, ch]
    return dx.reshape(n, h, w, c)


def maxpool_forward(x, k, stride):
    """x (N,H,W,C) -> out, arg (flat h*W+w index of each max), as the reference."""
    n, h, w, c = x.shape
    return _pick(_maxpool_fwd, x.size)(np.ascontiguousarray(x), k, stride,
                                       out_size(h, k, stride, 0), out_size(w, k, stride, 0))


def maxpool_backward(dout, arg, x_shape, k, stride):
    """Each gradient to its window's max (k and stride are implied by ``arg``)."""
    return _maxpool_bwd(np.ascontiguousarray(dout), arg, x_shape[1], x_shape[2])


# ---- batch-norm over the last axis of a (m, C) matrix ---------------------------------
_CHUNKS = 16  # row blocks; each thread sums its blocks into its own partial sums


@njit(parallel=True, cache=True)
def _col_sums(a, b, mu, inv, scale, shift, relu):
    """Per-column sum(a) and sum(a * (b - mu) * inv) with float64 partial sums.

    Forward statistics: a = b = x, mu = 0, inv = 1 -> sum(x), sum(x^2).
    Backward: a = dout, b = x -> dbeta = sum(dout), dgamma = sum(dout * xhat).
    ``relu``: a counts only where (b - mu) * scale + shift > 0 (a ReLU fused after the batch-norm).
    """
    m, c = a.shape
    part = np.zeros((_CHUNKS, 2, c), dtype=np.float64)
    for k in prange(_CHUNKS):
        s1 = np.zeros(c, dtype=np.float64)
        s2 = np.zeros(c, dtype=np.float64)
        for i in range(k * m // _CHUNKS, (k + 1) * m // _CHUNKS):
            for j in range(c):
                d = b[i, j] - mu[j]
                ai = a[i, j]
                if relu and d * scale[j] + shift[j] <= 0:
                    ai = 0
                s1[j] += ai
                s2[j] += ai * (d * inv[j])
        part[k, 0] = s1
        part[k, 1] = s2
    return part.sum(axis=0)


@njit(parallel=True, cache=True)
def _bn_apply(x, mu, scale, shift, relu):
    """out = (x - mu) * scale + shift, column-wise; max(out, 0) if relu."""
    m, c = x.shape
    out = np.empty_like(x)
    lo = np.float32(0) if relu else np.float32(-np.inf)
    for k in prange(_CHUNKS):
        for i in range(k * m // _CHUNKS, (k + 1) * m // _CHUNKS):
            for j in range(c):
                out[i, j] = max((x[i, j] - mu[j]) * scale[j] + shift[j], lo)
    return out


@njit(parallel=True, cache=True)
def _bn_dx(g, x, mu, inv, gamma, dbeta, dgamma, scale, shift, relu):
    """dx = gamma * inv / m * (m * g - dbeta - xhat * dgamma), xhat = (x - mu) * inv; with
    ``relu``, g counts only where (x - mu) * scale + shift > 0."""
    m, c = g.shape
    dx = np.empty_like(g)
    for k in prange(_CHUNKS):
        for i in range(k * m // _CHUNKS, (k + 1) * m // _CHUNKS):
            for j in range(c):
                d = x[i, j] - mu[j]
                gi = g[i, j]
                if relu and d * scale[j] + shift[j] <= 0:
                    gi = 0
                dx[i, j] = gamma[j] * inv[j] / m * (m * gi - dbeta[j] - d * inv[j] * dgamma[j])
    return dx


def _gate(mu, relu):
    """Numba's arguments for an optional fused ReLU gate: (scale, shift, on)."""
    return (mu, mu, False) if relu is None else (relu[0], relu[1], True)


def channel_sums(a, b, mu, inv, relu=None):
    """Per-column sum(a) and sum(a * (b - mu) * inv) -> (2, C) float64; a, b (m, C), as the reference."""
    return _col_sums(np.ascontiguousarray(a), np.ascontiguousarray(b), mu, inv, *_gate(mu, relu))


def affine(x, mu, scale, shift, relu=False):
    """(x - mu) * scale + shift (then max(., 0) if relu) in one parallel pass; x (m, C)."""
    return _bn_apply(np.ascontiguousarray(x), mu, scale, shift, relu)


def bn_input_grad(g, x, mu, inv, gamma, dbeta, dgamma, relu=None):
    """Training-mode batch-norm dx in one parallel pass; g, x (m, C), as the reference."""
    return _bn_dx(np.ascontiguousarray(g), np.ascontiguousarray(x), mu, inv, gamma, dbeta, dgamma,
                  *_gate(mu, relu))
