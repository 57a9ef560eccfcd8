"""ReLU and Dropout.

ReLU: ``out = max(x, 0)``; ``dx = dout * (x > 0)`` (the mask is recomputed
from the output, since out > 0 exactly where x > 0).

Dropout (inverted): in training keep each value with probability 1 - p and
scale the kept ones by 1/(1 - p), so evaluation is the identity::

    mask = (u >= p) / (1 - p),  u ~ U[0, 1);   out = x * mask;   dx = dout * mask
"""
import numpy as np

from .. import backend
from .base import Layer


class ReLU(Layer):
    """Rectified linear unit, ``max(x, 0)``; dx = dout where x > 0, else 0.

    Shape:
        input any; output the same.
    """

    def forward(self, x):
        # exercise: relu
        out = backend.xp.maximum(x, 0)
        self.cache = out
        return out
        # end exercise

    def backward(self, dout):
        # exercise: relu
        out, self.cache = self.cache, None
        return dout * (out > 0)
        # end exercise

    def flops(self, s):
        return int(np.prod(s))


class Dropout(Layer):
    """Inverted dropout with drop probability p. Uses ``self.rng`` (seedable).

    Training: ``out = x * mask / (1 - p)``, mask ~ Bernoulli(1 - p); dx = dout * mask / (1 - p).
    Evaluation: identity.

    Shape:
        input any; output the same.
    """

    def __init__(self, p=0.5, name=None):
        super().__init__(name)
        self.p = p
        self.rng = np.random.default_rng()

    def forward(self, x):
        if not self.training or self.p == 0:
            self.cache = None
            return x
        u = self.rng.random(x.shape, dtype=np.float32)         # drawn on the host: seeded, device-independent
        mask = backend.to_device((u >= self.p) * np.float32(1.0 / (1.0 - self.p)))
        self.cache = mask
        return x * mask

    def backward(self, dout):
        mask, self.cache = self.cache, None
        return dout if mask is None else dout * mask

    def config(self):
        return dict(p=self.p)
