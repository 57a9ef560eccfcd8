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
from .reference import out_size, window_taps  # device-generic: the same on NumPy and CuPy

__all__ = ["out_size", "window_taps", "batch_chunks", "im2col", "col2im", "maxpool_forward", "maxpool_backward",
           "channel_sums", "affine", "bn_input_grad"]

CHUNK_BYTES = 3 << 20   # im2col columns per chunk of images on the CPU


def _impl():
    if backend.DEVICE == "gpu":
        from . import gpu
        return gpu
    from . import cpu
    return cpu


def batch_chunks(n, bytes_per_image):
    """Slices of a batch of ``n`` images for a conv's im2col + GEMM.

    On the CPU each chunk's columns take about ``CHUNK_BYTES``, so the GEMM reads
    them from the cache (see :mod:`minifer.layers.conv`); on the GPU the whole
    batch is one chunk.
    """
    step = n if backend.DEVICE == "gpu" else max(1, min(n, CHUNK_BYTES // max(1, bytes_per_image)))
    return [slice(s, s + step) for s in range(0, n, step)]


def im2col(x, kh, kw, stride=1, pad=0):
    """x (N,H,W,C) -> cols (N*OH*OW, KH*KW*C)."""
    return _impl().im2col(x, kh, kw, stride, pad)


def col2im(cols, x_shape, kh, kw, stride=1, pad=0):
    """cols (N*OH*OW, KH*KW*C) -> dx (N,H,W,C), the adjoint of im2col."""
    return _impl().col2im(cols, x_shape, kh, kw, stride, pad)


def maxpool_forward(x, k, stride):
    """x (N,H,W,C) -> out (N,OH,OW,C), arg (N,OH,OW,C) int32 (flat h*W+w index of each max)."""
    return _impl().maxpool_forward(x, k, stride)


def maxpool_backward(dout, arg, x_shape, k, stride):
    """dout (N,OH,OW,C), arg -> dx (N,H,W,C): each gradient goes to its window's max."""
    return _impl().maxpool_backward(dout, arg, x_shape, k, stride)


def channel_sums(a, b, mu, inv):
    """a, b (m, C) -> (2, C) float64: sum(a) and sum(a * (b - mu) * inv) per column."""
    return _impl().channel_sums(a, b, mu, inv)


def affine(x, mu, scale, shift):
    """x (m, C) -> (x - mu) * scale + shift, column-wise."""
    return _impl().affine(x, mu, scale, shift)


def bn_input_grad(g, x, mu, inv, gamma, dbeta, dgamma):
    """g, x (m, C) -> training-mode batch-norm dx (m, C)."""
    return _impl().bn_input_grad(g, x, mu, inv, gamma, dbeta, dgamma)
