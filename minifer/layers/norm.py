"""Batch normalisation over the channel axis (the last axis, NHWC or (N, D)).

With m = number of values per channel (N*H*W, or N) and statistics mu, var::

    xhat = (x - mu) / sqrt(var + eps)
    out  = gamma * xhat + beta

Training mode takes mu and var from the batch; evaluation mode from running
averages updated in training:
``running = (1 - momentum) * running + momentum * batch_stat`` (unbiased var).

Backward (sums over the m values of each channel)::

    dbeta  = sum(dout)
    dgamma = sum(dout * xhat)
    dx     = gamma / sqrt(var + eps) / m * (m * dout - dbeta - xhat * dgamma)   training
    dx     = gamma / sqrt(var + eps) * dout                                     eval

(in training, mu and var depend on x, which gives the two extra terms; in eval
they are constants, so batch-norm is a per-channel affine map, and saliency
maps backpropagate through it).
Both modes run the same ops (:mod:`minifer.ops`): column sums for the
statistics and the parameter gradients, one affine pass to normalise.

A ReLU right after it is fused by ``Sequential`` (``forward(x, relu=True)``):
``out = max(gamma * xhat + beta, 0)`` in the same pass, and backward takes dout
as 0 where that was not positive (recomputed from x, so nothing more is kept).
"""
from .. import backend, ops
from .base import Layer, Parameter


class BatchNorm(Layer):
    """Batch-norm of the last axis; BatchNorm2d / BatchNorm1d name the use.

    Shape:
        input (N, H, W, C) or (N, C); output the same.
    """

    fuses_relu = True

    def __init__(self, num_features, eps=1e-5, momentum=0.1, name=None):
        super().__init__(name)
        xp = backend.xp
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.params["gamma"] = Parameter(xp.ones(num_features, backend.DTYPE), decay=False)
        self.params["beta"] = Parameter(xp.zeros(num_features, backend.DTYPE), decay=False)
        self.buffers["running_mean"] = xp.zeros(num_features, backend.DTYPE)
        self.buffers["running_var"] = xp.ones(num_features, backend.DTYPE)

    def forward(self, x, relu=False):
        """``relu``: also apply the ReLU that follows, in the same pass (``Sequential`` fuses it)."""
        xp, dt = backend.xp, x.dtype
        gamma, beta = self.params["gamma"].data, self.params["beta"].data
        x2 = xp.ascontiguousarray(x).reshape(-1, self.num_features)    # (m, C)
        m = x2.shape[0]
        if self.training:
            s = ops.channel_sums(x2, x2, xp.zeros(self.num_features, dt), xp.ones(self.num_features, dt))
            mu = s[0] / m
            var = xp.maximum(s[1] / m - mu * mu, 0.0)
            mom = self.momentum
            self.buffers["running_mean"] = ((1 - mom) * self.buffers["running_mean"] + mom * mu).astype(dt)
            self.buffers["running_var"] = ((1 - mom) * self.buffers["running_var"]
                                           + mom * var * (m / max(m - 1, 1))).astype(dt)
        else:
            mu, var = self.buffers["running_mean"], self.buffers["running_var"]
        mu = mu.astype(dt)
        inv = (1.0 / xp.sqrt(var + self.eps)).astype(dt)                  # (C,)
        scale = (gamma * inv).astype(dt)                                    # (C,)
        gate = (scale, beta) if relu else None          # the ReLU passed where (x - mu) * scale + beta > 0
        self.cache = (x2, mu, inv, gate, self.training)
        return ops.affine(x2, mu, scale, beta, relu).reshape(x.shape)

    def backward(self, dout):
        x2, mu, inv, gate, batch_stats = self.cache
        self.cache = None
        gamma = self.params["gamma"].data
        g = backend.xp.ascontiguousarray(dout).reshape(x2.shape)          # (m, C)
        s = ops.channel_sums(g, x2, mu, inv, gate)
        dbeta, dgamma = s[0].astype(g.dtype), s[1].astype(g.dtype)
        self.params["gamma"].grad, self.params["beta"].grad = dgamma, dbeta
        if batch_stats:
            dx = ops.bn_input_grad(g, x2, mu, inv, gamma, dbeta, dgamma, gate)
        else:
            if gate is not None:                      # the forward's own pass gives the mask
                g = g * (ops.affine(x2, mu, gate[0], gate[1]) > 0)
            dx = g * (gamma * inv)
        return dx.reshape(dout.shape)

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
