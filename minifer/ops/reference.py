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

**Winograd F(2x2, 3x3)** (Lavin & Gray 2016) computes a 3x3 stride-1
convolution tile by tile: each 2x2 block of outputs comes from a 4x4 input
tile ``d`` (tiles overlap by 2) and the 3x3 filter ``g`` as

    Y = A^T [ (G g G^T) * (B^T d B) ] A        (* elementwise on 4x4)

with 16 multiplications per tile and channel pair instead of 36. Summed over
input channels, the 16 elementwise products become 16 GEMMs::

    V  = winograd_tiles(x)   (16, T, C)   B^T d B of every tile, T = N*TH*TW
    U  = G g G^T             (16, C, F)   once per filter
    M  = V @ U               (16, T, F)   16 GEMMs, 8/18 of im2col's FLOPs
    out = winograd_untile(M) (N, OH, OW, F)   A^T m A of every tile

``winograd_untile_adjoint`` (``A dY A^T``) and ``winograd_tiles_adjoint``
(``B dV B^T``, added back onto the input) are the backward passes of the last
and the first step: ``dM = untile_adjoint(dY)``, ``dU = V^T dM``,
``dx = tiles_adjoint(dM U^T)``. Tiles are ordered (n, ty, tx); tile
(ty, tx) reads input rows ``2ty - P .. 2ty - P + 3`` and columns likewise
(0 outside), and writes output rows ``2ty, 2ty + 1`` where they exist.

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
    # exercise: conv_forward_im2col
    xpad = xp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    cols = xp.empty((n, oh, ow, kh, kw, c), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            # every output pixel's (i, j) tap, for all pixels at once
            cols[:, :, :, i, j, :] = xpad[:, i:i + stride * oh:stride, j:j + stride * ow:stride, :]
    return cols.reshape(n * oh * ow, kh * kw * c)
    # end exercise


def col2im(cols, x_shape, kh, kw, stride=1, pad=0):
    """cols (N*OH*OW, KH*KW*C) -> dx (N,H,W,C): the adjoint of :func:`im2col`."""
    xp = backend.get_array_module(cols)
    n, h, w, c = x_shape
    oh, ow = out_size(h, kh, stride, pad), out_size(w, kw, stride, pad)
    # exercise: conv_backward_col2im
    cols = cols.reshape(n, oh, ow, kh, kw, c)
    dxp = xp.zeros((n, h + 2 * pad, w + 2 * pad, c), dtype=cols.dtype)
    for i in range(kh):
        for j in range(kw):
            dxp[:, i:i + stride * oh:stride, j:j + stride * ow:stride, :] += cols[:, :, :, i, j, :]
    return dxp[:, pad:pad + h, pad:pad + w, :]
    # end exercise


# ---- Winograd F(2x2, 3x3) tiles ------------------------------------------------------
WINO_BT = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], np.float32)   # B^T (4, 4)
WINO_G = np.array([[1, 0, 0], [.5, .5, .5], [.5, -.5, .5], [0, 0, 1]], np.float32)              # G (4, 3)
WINO_AT = np.array([[1, 1, 1, 0], [0, 1, -1, -1]], np.float32)                                 # A^T (2, 4)


def winograd_grid(h, w, pad):
    """-> (OH, OW, TH, TW): a 3x3 stride-1 convolution's output size and its 2x2 tiles."""
    oh, ow = out_size(h, 3, 1, pad), out_size(w, 3, 1, pad)
    return oh, ow, (oh + 1) // 2, (ow + 1) // 2


def winograd_filter(w):
    """w (3, 3, C, F) -> U (16, C, F): ``G g G^T`` of every filter (device-generic).

    As two small matrix products over all filters at once (``einsum`` would not use BLAS)."""
    xp = backend.get_array_module(w)
    g = xp.asarray(WINO_G, dtype=w.dtype)                              # (4, 3)
    c, f = w.shape[2:]
    gw = (g @ w.reshape(3, 3 * c * f)).reshape(4, 3, c * f)            # G g, for every (c, f)
    return (g @ gw).reshape(16, c, f)                                  # (G g) G^T


def winograd_filter_adjoint(du):
    """dU (16, C, F) -> dW (3, 3, C, F): ``G^T dU G``, the backward pass of :func:`winograd_filter`."""
    xp = backend.get_array_module(du)
    g = xp.asarray(WINO_G, dtype=du.dtype)
    c, f = du.shape[1:]
    gd = (g.T @ du.reshape(4, 4 * c * f)).reshape(3, 4, c * f)         # G^T dU
    return (g.T @ gd).reshape(3, 3, c, f)                              # (G^T dU) G


def winograd_tiles(x, pad=1):
    """x (N,H,W,C) -> V (16, N*TH*TW, C): ``B^T d B`` of every 4x4 input tile ``d``."""
    xp = backend.get_array_module(x)
    n, h, w, c = x.shape
    _, _, th, tw = winograd_grid(h, w, pad)
    xpad = xp.zeros((n, 2 * th + 2, 2 * tw + 2, c), x.dtype)
    rows, cols = min(h, 2 * th + 2 - pad), min(w, 2 * tw + 2 - pad)
    xpad[:, pad:pad + rows, pad:pad + cols] = x[:, :rows, :cols]
    d = xp.stack([xp.stack([xpad[:, i:i + 2 * th:2, j:j + 2 * tw:2] for j in range(4)])
                  for i in range(4)])                                      # (4, 4, N, TH, TW, C)
    bt = xp.asarray(WINO_BT, dtype=x.dtype)
    v = xp.einsum("ai,ijntwc,bj->abntwc", bt, d, bt)
    return v.reshape(16, n * th * tw, c)


def winograd_tiles_adjoint(dv, x_shape, pad=1, out=None):
    """dV (16, N*TH*TW, C) -> dx ``x_shape`` (N,H,W,C): the backward pass of :func:`winograd_tiles`.
    Every tile's ``B dV B^T`` (4x4) is added back onto the input pixels it was read from (tiles
    overlap, so they sum; the padding drops out). Written into ``out`` if given."""
    xp = backend.get_array_module(dv)
    n, h, w, c = x_shape
    _, _, th, tw = winograd_grid(h, w, pad)
    bt = xp.asarray(WINO_BT, dtype=dv.dtype)
    d = xp.einsum("ai,abntwc,bj->ijntwc", bt, dv.reshape(4, 4, n, th, tw, c), bt)   # (4, 4, N, TH, TW, C)
    xpad = xp.zeros((n, 2 * th + 2, 2 * tw + 2, c), dv.dtype)
    for i in range(4):
        for j in range(4):
            xpad[:, i:i + 2 * th:2, j:j + 2 * tw:2] += d[i, j]
    dx = xp.zeros(x_shape, dv.dtype) if out is None else out
    dx[...] = 0
    rows, cols = min(h, 2 * th + 2 - pad), min(w, 2 * tw + 2 - pad)
    dx[:, :rows, :cols] = xpad[:, pad:pad + rows, pad:pad + cols]
    return dx


def winograd_untile(m, out_shape, out=None, b=None, relu=False):
    """M (16, N*TH*TW, F) -> out ``out_shape`` (N, OH, OW, F): ``A^T m A`` of every tile, plus
    the bias b (F,) and then ``max(., 0)`` if given (:func:`bias_relu`); written into ``out`` if given."""
    xp = backend.get_array_module(m)
    n, oh, ow, f = out_shape
    th, tw = (oh + 1) // 2, (ow + 1) // 2
    at = xp.asarray(WINO_AT, dtype=m.dtype)
    y = xp.einsum("ia,abntwf,jb->ntiwjf", at, m.reshape(4, 4, n, th, tw, f), at)   # (N, TH, 2, TW, 2, F)
    y = bias_relu(xp.ascontiguousarray(y.reshape(n, 2 * th, 2 * tw, f)[:, :oh, :ow]), b, relu)
    if out is None:
        return y
    out[...] = y
    return out


def winograd_untile_adjoint(dout):
    """dout (N,OH,OW,F) -> dM (16, N*TH*TW, F): ``A dY A^T`` of every 2x2 tile (0 past the edge)."""
    xp = backend.get_array_module(dout)
    n, oh, ow, f = dout.shape
    th, tw = (oh + 1) // 2, (ow + 1) // 2
    dy = xp.zeros((n, 2 * th, 2 * tw, f), dout.dtype)
    dy[:, :oh, :ow] = dout
    at = xp.asarray(WINO_AT, dtype=dout.dtype)
    dm = xp.einsum("ia,ntiwjf,jb->abntwf", at, dy.reshape(n, th, 2, tw, 2, f), at)
    return dm.reshape(16, n * th * tw, f)


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
    # exercise: maxpool_backward
    rel = arg - _window_origin(xp, dout.shape[1], dout.shape[2], w, s)
    t = (rel // w) * k + rel % w                               # back to the tap index
    dx = xp.zeros(x_shape, dout.dtype)
    for tap, view in enumerate(window_taps(dx, k, s)):
        view += dout * (t == tap)                              # views write into dx
    return dx
    # end exercise


# ---- batch-norm over the columns of a (m, C) matrix ----------------------------------
def _relu_gate(x, mu, relu):
    """1 where the batch-norm output ``(x - mu) * scale + shift`` is > 0, for ``relu = (scale,
    shift)``: where a ReLU fused after the batch-norm passes its gradient; None without one."""
    if relu is None:
        return None
    scale, shift = relu
    return ((x - mu) * scale + shift > 0).astype(x.dtype)


def channel_sums(a, b, mu, inv, relu=None):
    """Per-column ``sum(a)`` and ``sum(a * (b - mu) * inv)`` -> (2, C), float64.

    Statistics: a = b = x, mu = 0, inv = 1 -> sum(x), sum(x^2).
    Gradients: a = dout, b = x -> dbeta = sum(dout), dgamma = sum(dout * xhat).
    ``relu = (scale, shift)``: a ReLU follows the batch-norm ``(b - mu) * scale + shift``, and
    ``a`` (its output's gradient) counts only where that is > 0.
    """
    xp = backend.get_array_module(a)
    gate = _relu_gate(b, mu, relu)
    a64 = (a if gate is None else a * gate).astype(xp.float64)
    # exercise: batchnorm_backward
    return xp.stack([a64.sum(axis=0), (a64 * ((b - mu) * inv)).sum(axis=0)])
    # end exercise


def affine(x, mu, scale, shift, relu=False):
    """``(x - mu) * scale + shift``, column-wise: x (m, C) -> (m, C); then ``max(., 0)`` if ``relu``."""
    out = (x - mu) * scale + shift
    return backend.get_array_module(x).maximum(out, 0, out=out) if relu else out


def bn_input_grad(g, x, mu, inv, gamma, dbeta, dgamma, relu=None):
    """Training-mode dx = gamma * inv / m * (m * g - dbeta - xhat * dgamma), xhat = (x - mu) * inv.

    ``relu = (scale, shift)`` as in :func:`channel_sums`: g counts only where the ReLU passed."""
    m = g.shape[0]
    gate = _relu_gate(x, mu, relu)
    g = g if gate is None else g * gate
    # exercise: batchnorm_backward
    xhat = (x - mu) * inv
    return (gamma * inv / m) * (m * g - dbeta - xhat * dgamma)
    # end exercise


def bias_relu(out, b=None, relu=False):
    """A layer's epilogue, in place: ``out += b`` (b (F,) over the last axis), then ``max(out, 0)``
    if ``relu``. Run on each chunk of a convolution right after its GEMM, while it is in the cache."""
    if b is not None:
        out += b
    if relu:
        backend.get_array_module(out).maximum(out, 0, out=out)
    return out
