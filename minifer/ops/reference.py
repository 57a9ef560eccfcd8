"""Readable NumPy versions of every op: the math the fast kernels must match.

Layout is NHWC (batch, height, width, channels). These functions loop only
over kernel taps, never over pixels, and use ``backend.get_array_module`` so
they run on NumPy and CuPy arrays alike. ``tests/test_kernels.py`` checks the
Numba (:mod:`minifer.ops.cpu`) and CuPy (:mod:`minifer.ops.gpu`) kernels
against them.

**im2col** lowers a convolution to one matrix multiply. For a KHxKW kernel,
stride S and zero padding P, every output pixel (n, oh, ow) gets one row of
``cols`` holding the KH*KW*C input values under the kernel, in (kh, kw, c)
order::

    x     (N, H, W, C)
    cols  (N*OH*OW, KH*KW*C)      cols[(n*OH+oh)*OW+ow, (kh*KW+kw)*C+c]
                                   = x[n, oh*S-P+kh, ow*S-P+kw, c]  (0 outside)
    W     (KH, KW, C, F) -> reshape (KH*KW*C, F)
    out   = cols @ W  -> (N*OH*OW, F) -> reshape (N, OH, OW, F)   # already NHWC

Why NHWC: the GEMM result is already the next layer's input (no transpose),
each im2col row copies C contiguous values per kernel tap, and batch-norm's
per-channel sums become column sums of a (N*H*W, C) matrix. Measured with
``python benchmarks/layout.py`` (same GEMMs, same style of Numba kernels, only
the layout differs): forward + backward of minivgg's five 3x3 conv layers at
batch 64 took 477 ms in NHWC and 761 ms in NCHW on the project's 2-core CPU.

**col2im** is the adjoint (the backward pass of im2col): it adds every entry
of ``dcols`` back onto the input pixel it was copied from. Overlapping windows
add up, which is why col2im *sums*.

**Max-pool** keeps, for every output, the flat index ``h*W + w`` of the input
that won (int32, the same meaning on every device); backward routes each
gradient there.

**Batch-norm** over the last axis of a contiguous (m, C) matrix is four
small ops: ``channel_sums`` (statistics and parameter gradients are both
column sums), ``affine`` (normalise: ``(x - mu) * scale + shift``) and
``bn_input_grad`` (dx of training mode).
"""
import numpy as np

from .. import backend


def out_size(h, k, stride, pad):
    """Output length of a convolution/pooling window: floor((h + 2p - k)/s) + 1."""
    return (h + 2 * pad - k) // stride + 1


# ---- convolution lowering ------------------------------------------------------------
def im2col(x, kh, kw, stride=1, pad=0):
    """x (N,H,W,C) -> cols (N*OH*OW, KH*KW*C)."""
    xp = backend.get_array_module(x)
    n, h, w, c = x.shape
    oh, ow = out_size(h, kh, stride, pad), out_size(w, kw, stride, pad)
    xpad = xp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    cols = xp.empty((n, oh, ow, kh, kw, c), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            # every output pixel's (i, j) tap, for all pixels at once
            cols[:, :, :, i, j, :] = xpad[:, i:i + stride * oh:stride, j:j + stride * ow:stride, :]
    return cols.reshape(n * oh * ow, kh * kw * c)


def col2im(cols, x_shape, kh, kw, stride=1, pad=0):
    """cols (N*OH*OW, KH*KW*C) -> dx (N,H,W,C): the adjoint of :func:`im2col`."""
    xp = backend.get_array_module(cols)
    n, h, w, c = x_shape
    oh, ow = out_size(h, kh, stride, pad), out_size(w, kw, stride, pad)
    cols = cols.reshape(n, oh, ow, kh, kw, c)
    dxp = xp.zeros((n, h + 2 * pad, w + 2 * pad, c), dtype=cols.dtype)
    for i in range(kh):
        for j in range(kw):
            dxp[:, i:i + stride * oh:stride, j:j + stride * ow:stride, :] += cols[:, :, :, i, j, :]
    return dxp[:, pad:pad + h, pad:pad + w, :]


# ---- max-pool ------------------------------------------------------------------------
def window_taps(x, k, s):
    """The k*k strided views x[:, p::s, q::s] of shape (N, OH, OW, C), tap t = p*k + q."""
    n, h, w, c = x.shape
    oh, ow = out_size(h, k, s, 0), out_size(w, k, s, 0)
    return [x[:, p:p + s * oh:s, q:q + s * ow:s, :] for p in range(k) for q in range(k)]


def _window_origin(xp, oh, ow, w, s):
    """Flat index of each window's top-left input pixel, shape (1, OH, OW, 1)."""
    i = xp.arange(oh, dtype=xp.int32)[:, None] * s
    j = xp.arange(ow, dtype=xp.int32)[None, :] * s
    return (i * w + j)[None, :, :, None]


def maxpool_forward(x, k, s):
    """x (N,H,W,C) -> out (N,OH,OW,C), arg (N,OH,OW,C) int32: flat h*W+w index of each max."""
    xp = backend.get_array_module(x)
    taps = xp.stack(window_taps(x, k, s))                            # (k*k, N, OH, OW, C)
    t = taps.argmax(axis=0).astype(xp.int32)                   # winning tap p*k + q
    out = xp.take_along_axis(taps, t[None], axis=0)[0]
    w = x.shape[2]
    arg = _window_origin(xp, out.shape[1], out.shape[2], w, s) + (t // k) * w + t % k
    return out, arg.astype(xp.int32)


def maxpool_backward(dout, arg, x_shape, k, s):
    """dout (N,OH,OW,C), arg from :func:`maxpool_forward` -> dx (N,H,W,C)."""
    xp = backend.get_array_module(dout)
    w = x_shape[2]
    rel = arg - _window_origin(xp, dout.shape[1], dout.shape[2], w, s)
    t = (rel // w) * k + rel % w                               # back to the tap index
    dx = xp.zeros(x_shape, dout.dtype)
    for tap, view in enumerate(window_taps(dx, k, s)):
        view += dout * (t == tap)                              # views write into dx
    return dx


# ---- batch-norm over the columns of a (m, C) matrix ----------------------------------
def channel_sums(a, b, mu, inv):
    """Per-column ``sum(a)`` and ``sum(a * (b - mu) * inv)`` -> (2, C), float64.

    Statistics: a = b = x, mu = 0, inv = 1 -> sum(x), sum(x^2).
    Gradients: a = dout, b = x -> dbeta = sum(dout), dgamma = sum(dout * xhat).
    """
    xp = backend.get_array_module(a)
    a64 = a.astype(xp.float64)
    return xp.stack([a64.sum(axis=0), (a64 * ((b - mu) * inv)).sum(axis=0)])


def affine(x, mu, scale, shift):
    """``(x - mu) * scale + shift``, column-wise: x (m, C) -> (m, C)."""
    return (x - mu) * scale + shift


def bn_input_grad(g, x, mu, inv, gamma, dbeta, dgamma):
    """Training-mode dx = gamma * inv / m * (m * g - dbeta - xhat * dgamma), xhat = (x - mu) * inv."""
    m = g.shape[0]
    xhat = (x - mu) * inv
    return (gamma * inv / m) * (m * g - dbeta - xhat * dgamma)
