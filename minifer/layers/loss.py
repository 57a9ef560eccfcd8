"""Softmax cross-entropy with label smoothing and class weights.

For logits z (N, K), p = softmax(z), target distribution q (N, K) (one-hot,
smoothed ``q = (1 - eps) * onehot + eps / K``, or soft targets from mixup) and
per-sample weights w_n = class_weight[y_n] (1 without class weights)::

    L      = sum_n w_n * (-sum_k q_nk log p_nk) / sum_n w_n
    dL/dz  = w_n * (p_n - q_n) / sum_n w_n

The log-softmax subtracts the row max first, so large logits never overflow.
"""
import numpy as np

from .. import backend


def log_softmax(z):
    """Row-wise ``z - logsumexp(z)``, computed stably (max subtracted first)."""
    # exercise: softmax_cross_entropy
    z = z - z.max(axis=1, keepdims=True)
    return z - backend.xp.log(backend.xp.exp(z).sum(axis=1, keepdims=True))
    # end exercise


def softmax(z):
    """Row-wise softmax of logits (N, K), computed stably."""
    e = backend.xp.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


class SoftmaxCrossEntropy:
    """Loss object: ``loss = f(logits, y)`` then ``dlogits = f.backward()``.

    ``y`` is int labels (N,) or soft targets (N, K). ``class_weights`` (K,)
    weights each sample by its (hard or argmax) class.

    Shape:
        logits (N, K), y (N,) or (N, K); loss a scalar; dlogits (N, K).
    """

    def __init__(self, label_smoothing=0.0, class_weights=None):
        self.eps = float(label_smoothing)
        self.class_weights = None if class_weights is None else np.asarray(class_weights, np.float32)
        self.cache = None

    def __call__(self, logits, y):
        """Mean (or class-weighted) cross-entropy of logits (N, K) and labels (N,) or soft targets (N, K)."""
        xp = backend.xp
        n, k = logits.shape
        if y.ndim == 1:
            labels = y
            q = xp.zeros((n, k), logits.dtype)
            q[xp.arange(n), y] = 1.0
        else:
            labels = y.argmax(axis=1)
            q = y.astype(logits.dtype)
        if self.eps:
            q = q * (1.0 - self.eps) + self.eps / k
        if self.class_weights is None:
            w = xp.full(n, 1.0 / n, logits.dtype)
        else:
            w = backend.to_device(self.class_weights)[labels]
            w = w / w.sum()
        # exercise: softmax_cross_entropy
        logp = log_softmax(logits)
        loss = float(-(w * (q * logp).sum(axis=1)).sum())
        self.cache = (xp.exp(logp), q, w)
        return loss
        # end exercise

    def backward(self):
        """dL/dlogits = w_n (p - q) / sum(w), for the last call."""
        # exercise: softmax_cross_entropy
        p, q, w = self.cache
        self.cache = None
        return ((p - q) * w[:, None]).astype(p.dtype)
        # end exercise


def soften(probs, temperature):
    """Probabilities at a higher temperature: ``softmax(log(p) / T)`` (for one network, the
    same as ``softmax(logits / T)``; for an ensemble, its averaged probabilities softened)."""
    xp = backend.get_array_module(probs)
    return softmax(xp.log(xp.maximum(probs, 1e-12)) / temperature)


class DistillationLoss:
    """Knowledge distillation (Hinton et al. 2015): the labels plus a teacher's softened view.

    With student logits z, labels y (hard, optionally smoothed: q), teacher
    probabilities ``pt = soften(teacher_probs, T)`` and weight a::

        L      = (1 - a) * CE(q, softmax(z)) + a * T^2 * CE(pt, softmax(z / T))
        dL/dz  = (1 - a) * (softmax(z) - q) / N + a * T * (softmax(z / T) - pt) / N

    The T^2 keeps the soft term's gradient on the scale of the hard one (the
    1/T of d(z/T)/dz times T^2 leaves T).

    Shape:
        logits (N, K), y (N,), teacher_probs (N, K); loss a scalar; dlogits (N, K).
    """

    def __init__(self, temperature=4.0, weight=0.7, label_smoothing=0.0):
        if temperature <= 0 or not 0.0 <= weight <= 1.0:
            raise ValueError(f"temperature must be > 0 and weight in [0, 1], got {temperature}, {weight}")
        self.t, self.a = float(temperature), float(weight)
        self.hard = SoftmaxCrossEntropy(label_smoothing)
        self.soft = SoftmaxCrossEntropy()

    def __call__(self, logits, y, teacher_probs):
        """The loss of logits (N, K) for labels (N,) and the teacher's probabilities (N, K)."""
        pt = soften(backend.to_device(teacher_probs, logits.dtype), self.t)
        return ((1 - self.a) * self.hard(logits, y)
                + self.a * self.t ** 2 * self.soft(logits / self.t, pt))

    def backward(self):
        """dL/dlogits for the last call."""
        return ((1 - self.a) * self.hard.backward() + (self.a * self.t) * self.soft.backward())
