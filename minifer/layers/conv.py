"""Conv2d: convolution as im2col + one matrix multiply (layout NHWC).

Forward, with ``cols = im2col(x)`` of shape (M, K), M = N*OH*OW, K = KH*KW*C::

    out = cols @ Wm + b            Wm = W.reshape(K, F),  out (M, F) -> (N, OH, OW, F)

Backward, with ``G = dL/dout`` reshaped to (M, F)::

    dWm   = cols.T @ G             (K, F)   every output pixel adds its patch
    db    = sum over rows of G     (F,)
    dcols = G @ Wm.T               (M, K)
    dx    = col2im(dcols)          (N, H, W, C)  overlapping patches add up

Every row of ``cols`` belongs to one image, so the batch can be split: on the
CPU both passes run over chunks of images whose columns fit in the cache
(about ``minifer.ops.CHUNK_BYTES``; on minifer's worker threads:
``minifer.backend.map_chunks``), and the backward pass recomputes each chunk's columns
instead of keeping all of them from the forward pass. For minivgg's 48x48x32
layer at batch 64 the columns are 170 MB; a chunk of one image is 2.7 MB.
Measured on the 2-core CPU (forward + backward of that layer): 125-180 ms for
the whole batch at once, 91 ms in chunks, because the GEMMs with only 32
output channels read and write ``cols`` faster from the cache than from memory.
On the GPU the whole batch is one chunk.

3x3 stride-1 convolutions with at least a few input channels take a faster
path on the CPU, Winograd F(4x4, 3x3) (:mod:`minifer.layers.winograd`): the
same result with 1/4 of the multiplications (``minifer.ops.winograd_applies``
decides).
"""
import numpy as np

from .. import backend
from ..ops import batch_chunks, bias_relu, col2im, im2col, out_size, winograd_applies, winograd_filter
from . import winograd
from .base import Layer, Parameter, he_normal


def conv_forward(x, w, b, stride, pad, u=None, relu=False):
    """x (N,H,W,C), w (KH,KW,C,F), b (F,) or None -> out (N,OH,OW,F), cache; ``max(out, 0)``
    if ``relu`` (a fused ReLU, applied with the bias to each chunk while it is in the cache).

    ``u``: Winograd's transformed filters of ``w`` when the caller keeps them (36, C, F)."""
    n, h, wd, c = x.shape
    kh, kw, _, f = w.shape
    oh, ow = out_size(h, kh, stride, pad), out_size(wd, kw, stride, pad)
    wm = w.reshape(-1, f)                                      # (K, F)
    out = backend.xp.empty((n, oh, ow, f), np.result_type(x.dtype, w.dtype))
    if winograd_applies(w.shape, stride, pad):
        winograd.conv3x3(x, winograd_filter(w) if u is None else u, pad, out, b, relu)
    else:
        def chunk(s):
            o = out[s].reshape(-1, f)                          # (m, F), m = images * OH*OW
            backend.xp.matmul(im2col(x[s], kh, kw, stride, pad), wm, out=o)   # cols (m, K)
            bias_relu(o, b, relu)
        backend.map_chunks(chunk, batch_chunks(n, oh * ow * wm.shape[0] * x.itemsize))
    return out, (x, w, stride, pad)


def conv_backward(dout, cache, need_dx=True, need_db=True):
    """dout (N,OH,OW,F) -> dx (N,H,W,C) or None, dw (KH,KW,C,F), db (F,) or None (a layer without
    a bias: summing dout is a pass over it, 3.7 ms for minivgg's 64x48x48x32)."""
    x, w, stride, pad = cache
    n, oh, ow, f = dout.shape
    db = dout.reshape(-1, f).sum(axis=0) if need_db else None  # (F,)
    if winograd_applies(w.shape, stride, pad):
        return (*winograd.backward(dout, x, w, pad, need_dx), db)
    kh, kw = w.shape[:2]
    wm = w.reshape(-1, f)                                      # (K, F)
    dx = backend.xp.empty(x.shape, np.result_type(dout.dtype, w.dtype)) if need_dx else None

    def chunk(s):                                              # -> this chunk's dWm (K, F)
        cols = im2col(x[s], kh, kw, stride, pad)               # (m, K), recomputed
        g = dout[s].reshape(-1, f)                             # (m, F)
        if need_dx:
            dx[s] = col2im(g @ wm.T, x[s].shape, kh, kw, stride, pad)   # (m, K) -> (n_s, H, W, C)
        return cols.T @ g
    dw = sum(backend.map_chunks(chunk, batch_chunks(n, oh * ow * wm.shape[0] * x.itemsize)))
    return dx, dw.reshape(w.shape), db


class Conv2d(Layer):
    """2-D convolution. Weights W (KH, KW, C_in, C_out), bias b (C_out,).

    Shape:
        input (N, H, W, C_in); output (N, OH, OW, C_out), OH = (H + 2P - KH) // S + 1.
    """

    fuses_relu = True

    def __init__(self, in_channels, out_channels, kernel_size=3, stride=1, padding=0,
                 bias=True, name=None, rng=None):
        super().__init__(name)
        self.cin, self.cout, self.k = in_channels, out_channels, kernel_size
        self.stride, self.pad, self.bias = stride, padding, bias
        rng = rng or np.random.default_rng()
        fan_in = kernel_size * kernel_size * in_channels
        self.params["W"] = Parameter(he_normal(rng, (kernel_size, kernel_size, in_channels, out_channels), fan_in))
        if bias:
            self.params["b"] = Parameter(backend.xp.zeros(out_channels, backend.DTYPE), decay=False)
        self._u = None                        # (W array, its version, its Winograd filters) in eval mode

    def forward(self, x, relu=False):
        """``relu``: also apply the ReLU that follows (``Sequential`` fuses it)."""
        w, b = self.params["W"].data, self.params["b"].data if self.bias else None
        out, cache = conv_forward(x, w, b, self.stride, self.pad, self._filters(w), relu)
        self.cache = (cache, out if relu else None)
        return out

    def _filters(self, w):
        """Winograd's filters U of ``w``, kept from call to call in evaluation mode while W is
        the same array at the same version (optimizers update it in place and bump the version;
        loading replaces the array). About 0.2 ms per minivgg forward pass, a tenth of one face's."""
        if self.training or not winograd_applies(w.shape, self.stride, self.pad):
            return None
        version = self.params["W"].version
        if self._u is None or self._u[0] is not w or self._u[1] != version:
            self._u = (w, version, winograd_filter(w))
        return self._u[2]

    def backward(self, dout):
        cache, out = self.cache
        if out is not None:                   # the fused ReLU: dout where out > 0
            dout = dout * (out > 0)
        dx, dw, db = conv_backward(dout, cache, self.need_input_grad, self.bias)
        self.params["W"].grad = dw
        if self.bias:
            self.params["b"].grad = db
        self.cache = None
        return dx

    def config(self):
        return dict(in_channels=self.cin, out_channels=self.cout, kernel_size=self.k,
                    stride=self.stride, padding=self.pad, bias=self.bias)

    def output_shape(self, s):
        return (out_size(s[0], self.k, self.stride, self.pad),
                out_size(s[1], self.k, self.stride, self.pad), self.cout)

    def flops(self, s):
        oh, ow, _ = self.output_shape(s)
        return 2 * oh * ow * self.k * self.k * self.cin * self.cout
