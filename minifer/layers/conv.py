"""Conv2d: convolution as im2col + one matrix multiply (layout NHWC).

Forward, with ``cols = im2col(x)`` of shape (M, K), M = N*OH*OW, K = KH*KW*C::

    out = cols @ Wm + b            Wm = W.reshape(K, F),  out (M, F) -> (N, OH, OW, F)

Backward, with ``G = dL/dout`` reshaped to (M, F)::

    dWm   = cols.T @ G             (K, F)   every output pixel adds its patch
    db    = sum over rows of G     (F,)
    dcols = G @ Wm.T               (M, K)
    dx    = col2im(dcols)          (N, H, W, C)  overlapping patches add up
"""
import numpy as np

from .. import backend
from ..kernels import col2im, im2col, out_size
from .base import Layer, Parameter, he_normal


def conv_forward(x, w, b, stride, pad):
    """x (N,H,W,C), w (KH,KW,C,F), b (F,) or None -> out (N,OH,OW,F), cache."""
    n, h, wd, c = x.shape
    kh, kw, _, f = w.shape
    oh, ow = out_size(h, kh, stride, pad), out_size(wd, kw, stride, pad)
    cols = im2col(x, kh, kw, stride, pad)                      # (M, K)
    out = cols @ w.reshape(-1, f)                              # (M, F)
    if b is not None:
        out += b
    return out.reshape(n, oh, ow, f), (cols, x.shape, w, stride, pad)


def conv_backward(dout, cache, need_dx=True):
    """dout (N,OH,OW,F) -> dx (N,H,W,C) or None, dw (KH,KW,C,F), db (F,)."""
    cols, x_shape, w, stride, pad = cache
    kh, kw, _, f = w.shape
    g = dout.reshape(-1, f)                                    # (M, F)
    dw = (cols.T @ g).reshape(w.shape)                         # (K, F) -> (KH,KW,C,F)
    db = g.sum(axis=0)                                         # (F,)
    dx = col2im(g @ w.reshape(-1, f).T, x_shape, kh, kw, stride, pad) if need_dx else None
    return dx, dw, db


class Conv2d(Layer):
    """2-D convolution. Weights W (KH, KW, C_in, C_out), bias b (C_out,)."""

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

    def forward(self, x):
        b = self.params["b"].data if self.bias else None
        out, self.cache = conv_forward(x, self.params["W"].data, b, self.stride, self.pad)
        return out

    def backward(self, dout):
        dx, dw, db = conv_backward(dout, self.cache, self.need_input_grad)
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
