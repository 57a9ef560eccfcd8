"""Dense (fully connected) layer and Flatten.

Dense, x (N, D), W (D, F), b (F,)::

    out = x @ W + b          dW = x.T @ dout     db = sum_n dout     dx = dout @ W.T
"""
import numpy as np

from .. import backend
from ..ops import bias_relu
from .base import Layer, Parameter, he_normal


class Dense(Layer):
    """Fully connected layer: ``out = x @ W + b``, W (D, F), b (F,).

    Shape:
        input (N, D); output (N, F).
    """

    fuses_relu = True

    def __init__(self, in_features, out_features, bias=True, name=None, rng=None):
        super().__init__(name)
        self.fin, self.fout, self.bias = in_features, out_features, bias
        rng = rng or np.random.default_rng()
        self.params["W"] = Parameter(he_normal(rng, (in_features, out_features), in_features))
        if bias:
            self.params["b"] = Parameter(backend.xp.zeros(out_features, backend.DTYPE), decay=False)

    def forward(self, x, relu=False):
        """``relu``: also apply the ReLU that follows, in place (``Sequential`` fuses it)."""
        out = bias_relu(x @ self.params["W"].data, self.params["b"].data if self.bias else None, relu)  # (N, F)
        self.cache = (x, out if relu else None)                # x (N, D)
        return out

    def backward(self, dout):
        (x, out), self.cache = self.cache, None
        if out is not None:                                    # the fused ReLU: dout where out > 0
            dout = dout * (out > 0)
        # exercise: dense_backward
        self.params["W"].grad = x.T @ dout                     # (D, F)
        if self.bias:
            self.params["b"].grad = dout.sum(axis=0)           # (F,)
        return dout @ self.params["W"].data.T if self.need_input_grad else None
        # end exercise

    def config(self):
        return dict(in_features=self.fin, out_features=self.fout, bias=self.bias)

    def output_shape(self, s):
        return (self.fout,)

    def flops(self, s):
        return 2 * self.fin * self.fout


class Flatten(Layer):
    """Flatten every sample; backward reshapes the gradient back.

    Shape:
        input (N, H, W, C); output (N, H*W*C).
    """

    def forward(self, x):
        self.cache = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, dout):
        return dout.reshape(self.cache)

    def output_shape(self, s):
        return (int(np.prod(s)),)
