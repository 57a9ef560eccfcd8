"""Batch normalisation over the channel axis (last axis, NHWC or (N, D)).

Training mode, with m = number of values per channel (N*H*W, or N)::

    mu = mean(x),  var = mean((x - mu)^2),  xhat = (x - mu) / sqrt(var + eps)
    out = gamma * xhat + beta

Backward (sums over the m values of each channel)::

    dbeta  = sum(dout)
    dgamma = sum(dout * xhat)
    dx     = gamma / sqrt(var + eps) / m * (m * dout - dbeta - xhat * dgamma)

On the CPU the same math runs as fused Numba kernels
(:func:`minifer.fast_kernels.batchnorm_forward`): one pass for the sums, one
to normalise, with float64 accumulators.

Evaluation mode uses running averages updated in training:
``running = (1 - momentum) * running + momentum * batch_stat`` (unbiased var).
"""
import numpy as np

from .. import backend
from .base import Layer, Parameter


def batchnorm_forward(x, gamma, beta, eps):
    """x (..., C) -> out, cache, (mean, var) of each channel."""
    x2 = x.reshape(-1, x.shape[-1])                            # (m, C)
    mu = x2.mean(axis=0)
    xc = x2 - mu
    var = (xc * xc).mean(axis=0)
    inv = 1.0 / backend.xp.sqrt(var + eps)
    xhat = xc                                                  # reuse the buffer
    xhat *= inv
    out = xhat * gamma + beta
    return out.reshape(x.shape), (xhat, inv, gamma), (mu, var)


def batchnorm_backward(dout, cache):
    xhat, inv, gamma = cache
    g = dout.reshape(xhat.shape)                               # (m, C)
    m = g.shape[0]
    dbeta = g.sum(axis=0)
    dgamma = (g * xhat).sum(axis=0)
    dx = g * m
    dx -= dbeta
    dx -= xhat * dgamma
    dx *= gamma * inv / m
    return dx.reshape(dout.shape), dgamma, dbeta


class BatchNorm(Layer):
    """Batch-norm of the last axis; BatchNorm2d / BatchNorm1d name the use."""

    def __init__(self, num_features, eps=1e-5, momentum=0.1, name=None):
        super().__init__(name)
        xp = backend.xp
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.params["gamma"] = Parameter(xp.ones(num_features, backend.DTYPE), decay=False)
        self.params["beta"] = Parameter(xp.zeros(num_features, backend.DTYPE), decay=False)
        self.buffers["running_mean"] = xp.zeros(num_features, backend.DTYPE)
        self.buffers["running_var"] = xp.ones(num_features, backend.DTYPE)

    def forward(self, x):
        g, b = self.params["gamma"].data, self.params["beta"].data
        if not self.training:   # a fixed per-channel affine map: out = x * scale + shift
            inv = 1.0 / backend.xp.sqrt(self.buffers["running_var"] + self.eps)
            self.cache = ("eval", x, inv)
            if backend.DEVICE == "cpu":   # one parallel pass instead of NumPy's two
                from .. import fast_kernels as fk
                x2 = np.ascontiguousarray(x).reshape(-1, self.num_features)
                rm = self.buffers["running_mean"].astype(x.dtype, copy=False)
                return fk._bn_apply(x2, rm, (g * inv).astype(x.dtype), b).reshape(x.shape)
            scale = g * inv
            return x * scale + (b - self.buffers["running_mean"] * scale)
        if backend.DEVICE == "cpu":
            from .. import fast_kernels as fk
            out, self.cache, (mu, var) = fk.batchnorm_forward(x, g, b, self.eps)
        else:
            out, self.cache, (mu, var) = batchnorm_forward(x, g, b, self.eps)
        m = out.size // self.num_features
        mom = self.momentum
        self.buffers["running_mean"] = (1 - mom) * self.buffers["running_mean"] + mom * mu
        self.buffers["running_var"] = (1 - mom) * self.buffers["running_var"] + mom * var * (m / max(m - 1, 1))
        return out

    def backward(self, dout):
        if isinstance(self.cache[0], str):   # eval mode: dx = dout * scale; saliency maps backpropagate through eval mode
            _, x, inv = self.cache
            self.cache = None
            c = self.num_features
            xhat = (x - self.buffers["running_mean"]) * inv
            self.params["gamma"].grad = (dout * xhat).reshape(-1, c).sum(axis=0)
            self.params["beta"].grad = dout.reshape(-1, c).sum(axis=0)
            return dout * (self.params["gamma"].data * inv)
        if backend.DEVICE == "cpu":
            from .. import fast_kernels as fk
            dx, dg, db = fk.batchnorm_backward(dout, self.cache)
        else:
            dx, dg, db = batchnorm_backward(dout, self.cache)
        self.params["gamma"].grad, self.params["beta"].grad = dg, db
        self.cache = None
        return dx

    def config(self):
        return dict(num_features=self.num_features, eps=self.eps, momentum=self.momentum)

    def flops(self, s):
        n = 1
        for d in s:
            n *= d
        return 2 * n


class BatchNorm2d(BatchNorm):
    """Batch-norm for (N, H, W, C) feature maps: statistics over N, H, W."""


class BatchNorm1d(BatchNorm):
    """Batch-norm for (N, D) features: statistics over N."""
