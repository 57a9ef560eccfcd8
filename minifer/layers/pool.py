"""Pooling: max, average and global average (layout NHWC).

Max-pool forward keeps, for every output, the index of the input that won;
the backward pass routes each gradient to that one input (all others get 0)::

    out[n,i,j,c] = max_{p,q} x[n, i*s+p, j*s+q, c]
    dx[n, argmax, c] += dout[n,i,j,c]

Average pooling spreads each gradient evenly over its window:
``dx[window] += dout / (k*k)``.

The reference versions below loop over the k*k window taps only and work on
NumPy and CuPy alike; on the CPU max-pool uses the Numba kernel in
:mod:`minifer.fast_kernels` (parallel over images, one pass).
"""
from .. import backend
from ..kernels import out_size
from .base import Layer


def _taps(x, k, s):
    """The k*k strided views x[:, p::s, q::s] of shape (N, OH, OW, C)."""
    n, h, w, c = x.shape
    oh, ow = out_size(h, k, s, 0), out_size(w, k, s, 0)
    return [x[:, p:p + s * oh:s, q:q + s * ow:s, :] for p in range(k) for q in range(k)]


def maxpool_forward_ref(x, k, s):
    """x (N,H,W,C) -> out (N,OH,OW,C), arg (N,OH,OW,C): tap index p*k+q of the max."""
    xp = backend.get_array_module(x)
    taps = xp.stack(_taps(x, k, s))                            # (k*k, N, OH, OW, C)
    arg = taps.argmax(axis=0).astype(xp.int32)
    return xp.take_along_axis(taps, arg[None], axis=0)[0], arg


def maxpool_backward_ref(dout, arg, x_shape, k, s):
    xp = backend.get_array_module(dout)
    dx = xp.zeros(x_shape, dout.dtype)
    for t, view in enumerate(_taps(dx, k, s)):
        view += dout * (arg == t)                              # views write into dx
    return dx


class MaxPool2d(Layer):
    """Max pooling with a k x k window and stride s (default s = k)."""

    def __init__(self, kernel_size=2, stride=None, name=None):
        super().__init__(name)
        self.k, self.s = kernel_size, stride or kernel_size

    def forward(self, x):
        if backend.DEVICE == "cpu":
            from .. import fast_kernels
            out, arg = fast_kernels.maxpool_forward(x, self.k, self.s)
        else:
            out, arg = maxpool_forward_ref(x, self.k, self.s)
        self.cache = (arg, x.shape)
        return out

    def backward(self, dout):
        arg, x_shape = self.cache
        self.cache = None
        if backend.DEVICE == "cpu":
            from .. import fast_kernels
            return fast_kernels.maxpool_backward(dout, arg, x_shape)
        return maxpool_backward_ref(dout, arg, x_shape, self.k, self.s)

    def config(self):
        return dict(kernel_size=self.k, stride=self.s)

    def output_shape(self, s):
        return (out_size(s[0], self.k, self.s, 0), out_size(s[1], self.k, self.s, 0), s[2])


class AvgPool2d(Layer):
    """Average pooling with a k x k window and stride s (default s = k)."""

    def __init__(self, kernel_size=2, stride=None, name=None):
        super().__init__(name)
        self.k, self.s = kernel_size, stride or kernel_size

    def forward(self, x):
        self.cache = x.shape
        taps = _taps(x, self.k, self.s)
        out = taps[0].copy()
        for t in taps[1:]:
            out += t
        return out * (1.0 / (self.k * self.k))

    def backward(self, dout):
        xp = backend.get_array_module(dout)
        dx = xp.zeros(self.cache, dout.dtype)
        g = dout * (1.0 / (self.k * self.k))
        for view in _taps(dx, self.k, self.s):
            view += g
        return dx

    def config(self):
        return dict(kernel_size=self.k, stride=self.s)

    def output_shape(self, s):
        return (out_size(s[0], self.k, self.s, 0), out_size(s[1], self.k, self.s, 0), s[2])


class GlobalAvgPool2d(Layer):
    """Mean over height and width: (N,H,W,C) -> (N,C). dx = dout / (H*W) everywhere."""

    def forward(self, x):
        self.cache = x.shape
        return x.mean(axis=(1, 2))

    def backward(self, dout):
        n, h, w, c = self.cache
        xp = backend.get_array_module(dout)
        return xp.broadcast_to((dout / (h * w))[:, None, None, :], self.cache).copy()

    def output_shape(self, s):
        return (s[2],)
