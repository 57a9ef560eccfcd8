"""Optimizers: SGD (momentum, Nesterov), Adam, AdamW; gradient-norm clipping.

Each step updates every trainable parameter in place. With learning rate
``lr`` (times the parameter's ``lr_scale``), gradient g and weight decay wd:

SGD (L2 decay added to the gradient, PyTorch convention)::

    g = g + wd * w;   v = mu * v + g;   w -= lr * (g + mu * v if nesterov else v)

Adam (Kingma & Ba), with bias correction::

    m = b1 m + (1 - b1) g;   v = b2 v + (1 - b2) g^2
    w -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)

AdamW (Loshchilov & Hutter) decouples the decay: ``w -= lr * wd * w`` before
the Adam step, instead of adding wd * w to g.

Parameters with ``decay=False`` (biases, batch-norm) get no weight decay.
"""
import math

from . import backend


class Optimizer:
    """Base class: holds the parameter list, lr, weight decay, step count and per-parameter buffers."""

    def __init__(self, params, lr, weight_decay=0.0):
        self.params = list(params)
        self.lr = lr
        self.weight_decay = weight_decay
        self.t = 0
        self.state = [dict() for _ in self.params]      # per-parameter buffers

    def step(self):
        """Update every trainable parameter that has a gradient; advances ``t``."""
        self.t += 1
        for p, st in zip(self.params, self.state):
            if p.trainable and p.grad is not None:
                self.update(p, p.grad, st, self.lr * p.lr_scale, self.weight_decay if p.decay else 0.0)
                p.version += 1

    def zero_grad(self):
        """Set every gradient to None."""
        for p in self.params:
            p.grad = None

    def state_dict(self):
        """Buffers as flat host arrays ``i/name`` plus scalars (for checkpoints)."""
        arrays = {f"{i}/{k}": backend.to_host(v) for i, st in enumerate(self.state) for k, v in st.items()}
        return arrays, {"t": self.t, "lr": self.lr}

    def load_state_dict(self, arrays, scalars):
        """Restore buffers and scalars saved by ``state_dict`` (checkpoints)."""
        self.t, self.lr = int(scalars["t"]), float(scalars["lr"])
        self.state = [dict() for _ in self.params]
        for key, v in arrays.items():
            i, k = key.split("/", 1)
            self.state[int(i)][k] = backend.to_device(v)


class SGD(Optimizer):
    """SGD with momentum, optional Nesterov, L2 weight decay added to the gradient."""

    def __init__(self, params, lr=0.01, momentum=0.9, nesterov=False, weight_decay=0.0):
        super().__init__(params, lr, weight_decay)
        self.momentum, self.nesterov = momentum, nesterov

    def update(self, p, g, st, lr, wd):
        if wd:
            g = g + wd * p.data
        # exercise: sgd_nesterov
        if self.momentum:
            v = st.get("v")
            if v is None:
                v = st["v"] = g.copy()
            else:
                v *= self.momentum
                v += g
            g = g + self.momentum * v if self.nesterov else v
        p.data -= lr * g
        # end exercise


class Adam(Optimizer):
    """Adam with bias correction; weight decay added to the gradient (L2)."""

    decoupled = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params, lr, weight_decay)
        self.b1, self.b2, self.eps = betas[0], betas[1], eps

    def update(self, p, g, st, lr, wd):
        xp = backend.xp
        if wd and self.decoupled:
            p.data -= lr * wd * p.data
        elif wd:
            g = g + wd * p.data
        # exercise: adam
        if "m" not in st:
            st["m"], st["v"] = xp.zeros_like(p.data), xp.zeros_like(p.data)
        m, v = st["m"], st["v"]
        m *= self.b1
        m += (1 - self.b1) * g
        v *= self.b2
        v += (1 - self.b2) * (g * g)
        step = lr * math.sqrt(1 - self.b2 ** self.t) / (1 - self.b1 ** self.t)
        p.data -= step * m / (xp.sqrt(v) + self.eps * math.sqrt(1 - self.b2 ** self.t))
        # end exercise


class AdamW(Adam):
    """Adam with decoupled weight decay (``w -= lr * wd * w``)."""

    decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01):
        super().__init__(params, lr, betas, eps, weight_decay)


def clip_grad_norm(params, max_norm):
    """Scale all gradients so their joint L2 norm is at most ``max_norm``; returns the norm."""
    xp = backend.xp
    grads = [p.grad for p in params if p.grad is not None and p.trainable]
    total = math.sqrt(sum(float(xp.sum(g * g)) for g in grads))
    if total > max_norm > 0:
        scale = max_norm / (total + 1e-6)
        for g in grads:
            g *= scale
    return total
