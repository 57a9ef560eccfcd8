"""Pooling: max, average and global average (layout NHWC).

Max-pool forward keeps, for every output, the index of the input that won;
the backward pass routes each gradient to that one input (all others get 0)::

    out[n,i,j,c] = max_{p,q} x[n, i*s+p, j*s+q, c]
    dx[n, argmax, c] += dout[n,i,j,c]

Average pooling spreads each gradient evenly over its window:
``dx[window] += dout / (k*k)``.

Max-pool runs as an op (:mod:`minifer.ops`: a Numba kernel on the CPU, one
pass parallel over images); average pooling is a sum of the k*k strided
views of the input, which NumPy and CuPy do well as they are.
"""
from .. import backend, ops
from .base import Layer


class _Pool2d(Layer):
    """A k x k window with stride s (default s = k), no padding: what max and average pooling share.

    Shape:
        input (N, H, W, C); output (N, OH, OW, C), OH = (H - k) // s + 1.
    """

    def __init__(self, kernel_size=2, stride=None, name=None):
        super().__init__(name)
        self.k, self.s = kernel_size, stride or kernel_size

    def config(self):
        return dict(kernel_size=self.k, stride=self.s)

    def output_shape(self, s):
        return (ops.out_size(s[0], self.k, self.s, 0), ops.out_size(s[1], self.k, self.s, 0), s[2])


class MaxPool2d(_Pool2d):
    """Max pooling, k x k windows, stride s (default k): (N, H, W, C) -> (N, (H-k)//s+1, (W-k)//s+1, C)."""

    def forward(self, x):
        out, arg = ops.maxpool_forward(x, self.k, self.s)     # arg: flat h*W+w index of each max
        self.cache = (arg, x.shape)
        return out

    def backward(self, dout):
        arg, x_shape = self.cache
        self.cache = None
        return ops.maxpool_backward(dout, arg, x_shape, self.k, self.s)


class AvgPool2d(_Pool2d):
    """Average pooling, k x k windows, stride s (default k): (N, H, W, C) -> (N, (H-k)//s+1, (W-k)//s+1, C)."""

    def forward(self, x):
        self.cache = x.shape
        taps = ops.window_taps(x, self.k, self.s)
        out = taps[0].copy()
        for t in taps[1:]:
            out += t
        return out * (1.0 / (self.k * self.k))

    def backward(self, dout):
        xp = backend.get_array_module(dout)
        dx = xp.zeros(self.cache, dout.dtype)
        g = dout * (1.0 / (self.k * self.k))
        for view in ops.window_taps(dx, self.k, self.s):
            view += g
        return dx


class GlobalAvgPool2d(Layer):
    """Mean over height and width; dx = dout / (H*W) everywhere.

    Shape:
        input (N, H, W, C); output (N, C).
    """

    def forward(self, x):
        self.cache = x.shape
        return x.mean(axis=(1, 2))

    def backward(self, dout):
        n, h, w, c = self.cache
        xp = backend.get_array_module(dout)
        return xp.broadcast_to((dout / (h * w))[:, None, None, :], self.cache).copy()

    def output_shape(self, s):
        return (s[2],)
