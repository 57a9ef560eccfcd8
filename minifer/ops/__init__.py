"""The ops: the only device-aware code in minifer.

Every op has three implementations with one contract (shapes and meaning of
every output, documented in :mod:`minifer.ops.reference`):

- :mod:`minifer.ops.reference`: readable NumPy, the math to read and the
  oracle the tests compare against;
- :mod:`minifer.ops.cpu`: Numba kernels, used on the CPU;
- :mod:`minifer.ops.gpu`: CuPy kernels, used on the GPU.

The functions below pick the implementation for the active device
(``minifer.backend.DEVICE``); layers call only these.
"""
from .. import backend
from .reference import (WINO_PLANES, out_size, window_taps,  # device-generic: the same on NumPy and CuPy
                        winograd_filter, winograd_filter_adjoint, winograd_grid)

__all__ = ["bias_relu", "out_size", "window_taps", "batch_chunks", "im2col", "col2im", "maxpool_forward",
           "maxpool_backward", "channel_sums", "affine", "bn_input_grad", "winograd_applies", "winograd_filter",
           "winograd_filter_adjoint", "winograd_grid", "winograd_tiles", "winograd_tiles_adjoint", "winograd_untile",
           "winograd_untile_adjoint"]

CHUNK_BYTES = 3 << 20            # im2col columns per chunk of images on the CPU
WINOGRAD_CHUNK_BYTES = 2 << 20   # Winograd tiles per chunk (see minifer.layers.winograd._chunks)
WINOGRAD_MIN_CHANNELS = 8        # fewer (a gray first layer): im2col, whose GEMM has K = 9C, not K = C


def _impl():
    if backend.DEVICE == "gpu":
        from . import gpu
        return gpu
    from . import cpu
    return cpu


def batch_chunks(n, bytes_per_image, chunk_bytes=None):
    """Slices of a batch of ``n`` images for a conv's im2col (or Winograd tiles) + GEMM.

    On the CPU each chunk's columns take about ``chunk_bytes`` (default
    ``CHUNK_BYTES``), so the GEMM reads them from the cache (see
    :mod:`minifer.layers.conv`); on the GPU the whole batch is one chunk.
    """
    chunk_bytes = CHUNK_BYTES if chunk_bytes is None else chunk_bytes
    step = n if backend.DEVICE == "gpu" else max(1, min(n, chunk_bytes // max(1, bytes_per_image)))
    return [slice(s, s + step) for s in range(0, n, step)]


def winograd_applies(w_shape, stride, pad):
    """Whether a conv with weights ``w_shape`` (KH, KW, C, F) runs as Winograd F(4x4, 3x3):
    3x3, stride 1, padding 0-2, at least ``WINOGRAD_MIN_CHANNELS`` inputs, on the CPU (on the
    GPU, im2col's one large GEMM suits cuBLAS better)."""
    kh, kw, c, _ = w_shape
    return (backend.DEVICE == "cpu" and kh == kw == 3 and stride == 1 and 0 <= pad <= 2
            and c >= WINOGRAD_MIN_CHANNELS)


def im2col(x, kh, kw, stride=1, pad=0):
    """x (N,H,W,C) -> cols (N*OH*OW, KH*KW*C)."""
    return _impl().im2col(x, kh, kw, stride, pad)


def col2im(cols, x_shape, kh, kw, stride=1, pad=0):
    """cols (N*OH*OW, KH*KW*C) -> dx (N,H,W,C), the adjoint of im2col."""
    return _impl().col2im(cols, x_shape, kh, kw, stride, pad)


def winograd_tiles(x, pad=1):
    """x (N,H,W,C) -> V (36, N*TH*TW, C): ``B^T d B`` of every 6x6 input tile."""
    return _impl().winograd_tiles(x, pad)


def winograd_tiles_adjoint(dv, x_shape, pad=1, out=None):
    """dV (36, N*TH*TW, C) -> dx ``x_shape`` (N,H,W,C): the backward pass of :func:`winograd_tiles`
    (each tile's ``B dV B^T`` added back onto the pixels it was read from); into ``out`` if given."""
    return _impl().winograd_tiles_adjoint(dv, x_shape, pad, out)


def winograd_untile(m, out_shape, out=None, b=None, relu=False):
    """M (36, N*TH*TW, F) -> out (N, OH, OW, F): ``A^T m A`` of every tile, plus the bias b (F,)
    and then ``max(., 0)`` if given; written into ``out`` (C-contiguous) if given."""
    return _impl().winograd_untile(m, out_shape, out, b, relu)


def winograd_untile_adjoint(dout):
    """dout (N,OH,OW,F) -> dM (36, N*TH*TW, F): the backward pass of :func:`winograd_untile`."""
    return _impl().winograd_untile_adjoint(dout)


def bias_relu(out, b=None, relu=False):
    """A layer's epilogue, in place on out (M, F) (or any shape ending in F): ``out += b``
    (b (F,)), then ``max(out, 0)`` if ``relu`` -> out."""
    if b is None and not relu:
        return out
    return _impl().bias_relu(out, b, relu)


def maxpool_forward(x, k, stride):
    """x (N,H,W,C) -> out (N,OH,OW,C), arg (N,OH,OW,C) int32 (flat h*W+w index of each max)."""
    return _impl().maxpool_forward(x, k, stride)


def maxpool_backward(dout, arg, x_shape, k, stride):
    """dout (N,OH,OW,C), arg -> dx (N,H,W,C): each gradient goes to its window's max."""
    return _impl().maxpool_backward(dout, arg, x_shape, k, stride)


def channel_sums(a, b, mu, inv, relu=None):
    """a, b (m, C) -> (2, C) float64: sum(a) and sum(a * (b - mu) * inv) per column; with
    ``relu = (scale, shift)``, a counts only where ``(b - mu) * scale + shift > 0``."""
    return _impl().channel_sums(a, b, mu, inv, relu)


def affine(x, mu, scale, shift, relu=False):
    """x (m, C) -> (x - mu) * scale + shift, column-wise (then max(., 0) if ``relu``)."""
    return _impl().affine(x, mu, scale, shift, relu)


def bn_input_grad(g, x, mu, inv, gamma, dbeta, dgamma, relu=None):
    """g, x (m, C) -> training-mode batch-norm dx (m, C); ``relu`` as in :func:`channel_sums`."""
    return _impl().bn_input_grad(g, x, mu, inv, gamma, dbeta, dgamma, relu)
