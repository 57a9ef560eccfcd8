"""CuPy kernels for the GPU: the same ops as :mod:`minifer.ops.reference`.

One CUDA thread per output element: im2col threads each copy one value of
``cols``; col2im threads each own one input pixel value and *gather* the
entries of ``dcols`` that came from it, so no atomics are needed. Max-pool,
batch-norm and the Winograd tiles are whole-array expressions that CuPy already
runs fast, so this module takes them from the reference unchanged (convolutions
use im2col on the GPU: :func:`minifer.ops.winograd_applies`).
"""
import cupy as cp

from .reference import (affine, bias_relu, bn_input_grad, channel_sums, maxpool_backward, maxpool_forward,  # noqa: F401
                        out_size, winograd_tiles, winograd_tiles_adjoint, winograd_untile,
                        winograd_untile_adjoint)

_im2col = cp.ElementwiseKernel(
    "raw T x, int32 h, int32 w, int32 c, int32 kh, int32 kw, int32 s, int32 p, int32 oh, int32 ow",
    "T col",
    """
    int K = kh * kw * c;
    int row = i / K, k = i % K;
    int ch = k % c, q = (k / c) % kw, r = k / (c * kw);
    int j = row % ow, t = row / ow, ii = t % oh, n = t / oh;
    int hi = ii * s - p + r, wi = j * s - p + q;
    col = (hi >= 0 && hi < h && wi >= 0 && wi < w) ? x[((n * h + hi) * w + wi) * c + ch] : (T)0;
    """, "minifer_im2col")

_col2im = cp.ElementwiseKernel(
    "raw T cols, int32 h, int32 w, int32 c, int32 kh, int32 kw, int32 s, int32 p, int32 oh, int32 ow",
    "T dx",
    """
    int ch = i % c, wi = (i / c) % w, hi = (i / (c * w)) % h, n = i / (c * w * h);
    int K = kh * kw * c;
    T acc = 0;
    for (int r = 0; r < kh; ++r) {
        int a = hi + p - r;
        if (a < 0 || a % s) continue;
        int ii = a / s;
        if (ii >= oh) continue;
        for (int q = 0; q < kw; ++q) {
            int b = wi + p - q;
            if (b < 0 || b % s) continue;
            int j = b / s;
            if (j >= ow) continue;
            acc += cols[((n * oh + ii) * ow + j) * K + (r * kw + q) * c + ch];
        }
    }
    dx = acc;
    """, "minifer_col2im")


def im2col(x, kh, kw, stride=1, pad=0):
    """x (N,H,W,C) -> cols (N*OH*OW, KH*KW*C), as the reference."""
    n, h, w, c = x.shape
    oh, ow = out_size(h, kh, stride, pad), out_size(w, kw, stride, pad)
    cols = cp.empty((n * oh * ow, kh * kw * c), dtype=x.dtype)
    _im2col(cp.ascontiguousarray(x), h, w, c, kh, kw, stride, pad, oh, ow, cols)
    return cols


def col2im(cols, x_shape, kh, kw, stride=1, pad=0):
    """cols -> dx (N,H,W,C), the adjoint of im2col, as the reference."""
    n, h, w, c = x_shape
    oh, ow = out_size(h, kh, stride, pad), out_size(w, kw, stride, pad)
    dx = cp.empty(x_shape, dtype=cols.dtype)
    _col2im(cp.ascontiguousarray(cols), h, w, c, kh, kw, stride, pad, oh, ow, dx)
    return dx
