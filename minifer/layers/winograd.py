"""Winograd F(4x4, 3x3): Conv2d's fast path for 3x3 stride-1 convolutions on the CPU.

Every 4x4 block of outputs comes from one 6x6 input tile ``d`` (tiles overlap by
two pixels) and the 3x3 filter ``g``::

    Y = A^T [ (G g G^T) * (B^T d B) ] A        * elementwise on 6x6

36 multiplications per tile and channel pair where a direct convolution (or
im2col) needs 16 outputs x 9 taps = 144. Summed over the C input channels, the 36
elementwise products are 36 matrix multiplies (the transforms are in
:mod:`minifer.ops.reference`, with chapter 15 of the docs deriving the smaller F(2x2, 3x3))::

    V = tiles(x)             (36, T, C)   T = N * TH * TW tiles, TH = ceil(OH / 4)
    U = G g G^T              (36, C, F)
    M = V @ U                (36, T, F)   1/4 of im2col's FLOPs
    out = untile(M)          (N, OH, OW, F)

Backward: each step's adjoint, in reverse order::

    dM = untile_adjoint(dout)  (36, T, F)   A dY A^T of every 4x4 output tile
    dU = V^T @ dM              (36, C, F),  dW = G^T dU G  (winograd_filter_adjoint)
    dV = dM @ U^T              (36, T, C)
    dx = tiles_adjoint(dV)     (N, H, W, C)  B dV B^T of every tile, added back where it was read

As with im2col, the batch runs in cache-sized chunks of images (of their own size:
``_chunks``), on minifer's worker threads (``backend.map_chunks``), and the backward pass
recomputes each chunk's tiles.
"""
from .. import backend, ops
from ..ops import (batch_chunks, winograd_filter, winograd_filter_adjoint, winograd_grid, winograd_tiles,
                   winograd_tiles_adjoint, winograd_untile, winograd_untile_adjoint)


def _chunks(x, pad):
    """Slices of the batch ``x`` whose tiles V (36 * TH * TW * C values per image) take about
    ``ops.WINOGRAD_CHUNK_BYTES``. Measured in the whole network on the 2-core CPU (one process,
    the sizes taking turns step by step, medians of 25 steps, images/s): training at batch 64 with
    0.5 / 1 / 2 / 4 MB chunks 275 / 292 / 289 / 251, inference at batch 256 991 / 977 / 1011 / 957."""
    n, h, w, c = x.shape
    _, _, th, tw = winograd_grid(h, w, pad)
    return batch_chunks(n, ops.WINO_PLANES * th * tw * c * x.itemsize, ops.WINOGRAD_CHUNK_BYTES)


def conv3x3(x, u, pad, out, b=None, relu=False):
    """out (N,OH,OW,F) <- the convolution of x (N,H,W,C) with transformed filters u (36,C,F),
    plus the bias b (F,) and then a ReLU if given, applied to each chunk while it is in the cache."""
    def chunk(s):
        winograd_untile(backend.xp.matmul(winograd_tiles(x[s], pad), u), out[s].shape, out[s], b, relu)
    backend.map_chunks(chunk, _chunks(x, pad))
    return out


def backward(dout, x, w, pad, need_dx=True):
    """dout (N,OH,OW,F) -> dx (N,H,W,C) or None, dw (3,3,C,F)."""
    xp = backend.xp
    dx = xp.empty(x.shape, dout.dtype) if need_dx else None
    ut = xp.ascontiguousarray(winograd_filter(w).transpose(0, 2, 1))          # U^T (36, F, C)

    def chunk(s):                                                               # -> this chunk's dU
        v = winograd_tiles(x[s], pad)                                           # (36, t, C), recomputed
        dm = winograd_untile_adjoint(dout[s])                                   # (36, t, F)
        if need_dx:
            winograd_tiles_adjoint(xp.matmul(dm, ut), x[s].shape, pad, dx[s])   # dV = dM U^T (36, t, C)
        return xp.matmul(v.transpose(0, 2, 1), dm)                              # (36, C, t) @ (36, t, F)
    du = sum(backend.map_chunks(chunk, _chunks(x, pad)))                        # (36, C, F)
    return dx, winograd_filter_adjoint(du)
