"""im2col / col2im: lowering a convolution to one matrix multiply.

Layout is NHWC (batch, height, width, channels). For a KHxKW kernel, stride
S and zero padding P, every output pixel (n, oh, ow) gets one row of ``cols``
holding the KH*KW*C input values under the kernel, in (kh, kw, c) order::

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

``col2im`` is the adjoint (the backward pass of im2col): it adds every entry
of ``dcols`` back onto the input pixel it was copied from. Overlapping windows
add up, which is why col2im *sums*.

Three implementations agree to float precision (``tests/test_kernels.py``):
``im2col_ref``/``col2im_ref`` below (NumPy, a loop over the KH*KW kernel taps
only), the Numba kernels in :mod:`minifer.fast_kernels` (parallel over
images, used on the CPU) and the CuPy kernels in :mod:`minifer.gpu_kernels`.
:func:`im2col` and :func:`col2im` pick the fast one for the active device.
"""
import numpy as np

from . import backend


def out_size(h, k, stride, pad):
    """Output length of a convolution/pooling window: floor((h + 2p - k)/s) + 1."""
    return (h + 2 * pad - k) // stride + 1


def im2col_ref(x, kh, kw, stride=1, pad=0):
    """Readable NumPy im2col. x (N,H,W,C) -> cols (N*OH*OW, KH*KW*C)."""
    n, h, w, c = x.shape
    oh, ow = out_size(h, kh, stride, pad), out_size(w, kw, stride, pad)
    xp_ = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    cols = np.empty((n, oh, ow, kh, kw, c), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            # every output pixel's (i, j) tap, for all pixels at once
            cols[:, :, :, i, j, :] = xp_[:, i:i + stride * oh:stride, j:j + stride * ow:stride, :]
    return cols.reshape(n * oh * ow, kh * kw * c)


def col2im_ref(cols, x_shape, kh, kw, stride=1, pad=0):
    """Readable NumPy col2im (adjoint of im2col_ref). cols -> dx (N,H,W,C)."""
    n, h, w, c = x_shape
    oh, ow = out_size(h, kh, stride, pad), out_size(w, kw, stride, pad)
    cols = cols.reshape(n, oh, ow, kh, kw, c)
    dxp = np.zeros((n, h + 2 * pad, w + 2 * pad, c), dtype=cols.dtype)
    for i in range(kh):
        for j in range(kw):
            dxp[:, i:i + stride * oh:stride, j:j + stride * ow:stride, :] += cols[:, :, :, i, j, :]
    return dxp[:, pad:pad + h, pad:pad + w, :]


def im2col(x, kh, kw, stride=1, pad=0):
    """Fast im2col on the active device (Numba on CPU, CuPy on GPU)."""
    if backend.DEVICE == "gpu":
        from . import gpu_kernels
        return gpu_kernels.im2col(x, kh, kw, stride, pad)
    from . import fast_kernels
    return fast_kernels.im2col(x, kh, kw, stride, pad)


def col2im(cols, x_shape, kh, kw, stride=1, pad=0):
    """Fast col2im on the active device (Numba on CPU, CuPy on GPU)."""
    if backend.DEVICE == "gpu":
        from . import gpu_kernels
        return gpu_kernels.col2im(cols, x_shape, kh, kw, stride, pad)
    from . import fast_kernels
    return fast_kernels.col2im(cols, x_shape, kh, kw, stride, pad)
