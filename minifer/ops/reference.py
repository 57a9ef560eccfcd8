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

**Winograd F(4x4, 3x3)** (Lavin & Gray 2016) computes a 3x3 stride-1
convolution tile by tile: each 4x4 block of outputs comes from a 6x6 input
tile ``d`` (tiles overlap by 2) and the 3x3 filter ``g`` as

    Y = A^T [ (G g G^T) * (B^T d B) ] A        (* elementwise on 6x6)

with 36 multiplications per tile and channel pair instead of 16 x 9 = 144.
Summed over input channels, the 36 elementwise products become 36 GEMMs::

    V  = winograd_tiles(x)   (36, T, C)   B^T d B of every tile, T = N*TH*TW
    U  = G g G^T             (36, C, F)   once per filter
    M  = V @ U               (36, T, F)   36 GEMMs, 1/4 of im2col's FLOPs
    out = winograd_untile(M) (N, OH, OW, F)   A^T m A of every tile

``winograd_untile_adjoint`` (``A dY A^T``) and ``winograd_tiles_adjoint``
(``B dV B^T``, added back onto the input) are the backward passes of the last
and the first step: ``dM = untile_adjoint(dY)``, ``dU = V^T dM``,
``dx = tiles_adjoint(dM U^T)``. Tiles are ordered (n, ty, tx); tile
(ty, tx) reads input rows ``4ty - P .. 4ty - P + 5`` and columns likewise
(0 outside), and writes output rows ``4ty .. 4ty + 3`` where they exist.
The functions below follow the matrices' shapes: F(2x2, 3x3), the smaller
variant docs chapter 15 derives by hand, is the three matrices ``WINO_F2``
(``tests/test_kernels.py`` checks one tile of each against a direct correlation).

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


# ---- Winograd F(4x4, 3x3) tiles ------------------------------------------------------
# B^T (6, 6), G (6, 3) and A^T (4, 6), from the interpolation points 0, 1, -1, 2, -2 and infinity.
WINO_BT = np.array([[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
                    [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]], np.float32)
WINO_G = np.array([[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
                   [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]], np.float32)
WINO_AT = np.array([[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]],
                   np.float32)
WINO_F2 = (np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], np.float32),   # B^T, G, A^T
           np.array([[1, 0, 0], [.5, .5, .5], [.5, -.5, .5], [0, 0, 1]], np.float32),          # of F(2x2, 3x3)
           np.array([[1, 1, 1, 0], [0, 1, -1, -1]], np.float32))
WINO_TILE, WINO_OUT = WINO_AT.shape[1], WINO_AT.shape[0]       # 6x6 input tiles, 4x4 outputs each
WINO_PLANES = WINO_TILE * WINO_TILE                            # 36 GEMMs


def winograd_grid(h, w, pad):
    """-> (OH, OW, TH, TW): a 3x3 stride-1 convolution's output size and its 4x4 tiles."""
    oh, ow = out_size(h, 3, 1, pad), out_size(w, 3, 1, pad)
    return oh, ow, -(-oh // WINO_OUT), -(-ow // WINO_OUT)


def winograd_filter(w):
    """w (3, 3, C, F) -> U (36, C, F): ``G g G^T`` of every filter (device-generic).

    As two small matrix products over all filters at once (``einsum`` would not use BLAS)."""
    xp = backend.get_array_module(w)
    g = xp.asarray(WINO_G, dtype=w.dtype)                              # (6, 3)
    c, f = w.shape[2:]
    gw = (g @ w.reshape(3, 3 * c * f)).reshape(WINO_TILE, 3, c * f)    # G g, for every (c, f)
    return (g @ gw).reshape(WINO_PLANES, c, f)                         # (G g) G^T


def winograd_filter_adjoint(du):
    """dU (36, C, F) -> dW (3, 3, C, F): ``G^T dU G``, the backward pass of :func:`winograd_filter`."""
    xp = backend.get_array_module(du)
    g = xp.asarray(WINO_G, dtype=du.dtype)
    c, f = du.shape[1:]
    gd = (g.T @ du.reshape(WINO_TILE, WINO_TILE * c * f)).reshape(3, WINO_TILE, c * f)   # G^T dU
    return (g.T @ gd).reshape(3, 3, c, f)                                                # (G^T dU) G


def _padded(n, th, tw, c, xp, dtype):
    """Zeros (N, 4 TH + 2, 4 TW + 2, C): room for every tile's rows and columns."""
    return xp.zeros((n, WINO_OUT * th + 2, WINO_OUT * tw + 2, c), dtype)


def winograd_tiles(x, pad=1):
    """x (N,H,W,C) -> V (36, N*TH*TW, C): ``B^T d B`` of every 6x6 input tile ``d``."""
    xp = backend.get_array_module(x)
    n, h, w, c = x.shape
    _, _, th, tw = winograd_grid(h, w, pad)
    xpad = _padded(n, th, tw, c, xp, x.dtype)
    rows, cols = min(h, xpad.shape[1] - pad), min(w, xpad.shape[2] - pad)
    xpad[:, pad:pad + rows, pad:pad + cols] = x[:, :rows, :cols]
    s, a = WINO_OUT, WINO_TILE
    d = xp.stack([xp.stack([xpad[:, i:i + s * th:s, j:j + s * tw:s] for j in range(a)])
                  for i in range(a)])                                      # (6, 6, N, TH, TW, C)
    bt = xp.asarray(WINO_BT, dtype=x.dtype)
    v = xp.einsum("ai,ijntwc,bj->abntwc", bt, d, bt)
    return v.reshape(WINO_PLANES, n * th * tw, c)


def winograd_tiles_adjoint(dv, x_shape, pad=1, out=None):
    """dV (36, N*TH*TW, C) -> dx ``x_shape`` (N,H,W,C): the backward pass of :func:`winograd_tiles`.
    Every tile's ``B dV B^T`` (6x6) is added back onto the input pixels it was read from (tiles
    overlap, so they sum; the padding drops out). Written into ``out`` if given."""
    xp = backend.get_array_module(dv)
    n, h, w, c = x_shape
    _, _, th, tw = winograd_grid(h, w, pad)
    s, a = WINO_OUT, WINO_TILE
    bt = xp.asarray(WINO_BT, dtype=dv.dtype)
    d = xp.einsum("ai,abntwc,bj->ijntwc", bt, dv.reshape(a, a, n, th, tw, c), bt)   # (6, 6, N, TH, TW, C)
    xpad = _padded(n, th, tw, c, xp, dv.dtype)
    for i in range(a):
        for j in range(a):
            xpad[:, i:i + s * th:s, j:j + s * tw:s] += d[i, j]
    dx = xp.zeros(x_shape, dv.dtype) if out is None else out
    dx[...] = 0
    rows, cols = min(h, xpad.shape[1] - pad), min(w, xpad.shape[2] - pad)
    dx[:, :rows, :cols] = xpad[:, pad:pad + rows, pad:pad + cols]
    return dx


def winograd_untile(m, out_shape, out=None, b=None, relu=False):
    """M (36, N*TH*TW, F) -> out ``out_shape`` (N, OH, OW, F): ``A^T m A`` of every tile, plus
    the bias b (F,) and then ``max(., 0)`` if given (:func:`bias_relu`); written into ``out`` if given."""
    xp = backend.get_array_module(m)
    n, oh, ow, f = out_shape
    s, a = WINO_OUT, WINO_TILE
    th, tw = -(-oh // s), -(-ow // s)
    at = xp.asarray(WINO_AT, dtype=m.dtype)
    y = xp.einsum("ia,abntwf,jb->ntiwjf", at, m.reshape(a, a, n, th, tw, f), at)   # (N, TH, 4, TW, 4, F)
    y = bias_relu(xp.ascontiguousarray(y.reshape(n, s * th, s * tw, f)[:, :oh, :ow]), b, relu)
    if out is None:
        return y
    out[...] = y
    return out


def winograd_untile_adjoint(dout):
    """dout (N,OH,OW,F) -> dM (36, N*TH*TW, F): ``A dY A^T`` of every 4x4 tile (0 past the edge)."""
    xp = backend.get_array_module(dout)
    n, oh, ow, f = dout.shape
    s = WINO_OUT
    th, tw = -(-oh // s), -(-ow // s)
    dy = xp.zeros((n, s * th, s * tw, f), dout.dtype)
    dy[:, :oh, :ow] = dout
    at = xp.asarray(WINO_AT, dtype=dout.dtype)
    dm = xp.einsum("ia,ntiwjf,jb->abntwf", at, dy.reshape(n, th, s, tw, s, f), at)
    return dm.reshape(WINO_PLANES, n * th * tw, f)


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
