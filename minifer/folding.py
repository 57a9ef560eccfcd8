"""Batch-norm folded into the layer before it, for inference.

In evaluation mode a batch-norm after a convolution or dense layer is a fixed per-channel
affine map, ``y = (z - mu) * s + beta`` with ``s = gamma / sqrt(var + eps)``, and ``z = x W + b``
is linear, so the pair is one layer with

    W' = W * s        (each output channel's weights scaled)
    b' = (b - mu) * s + beta

:func:`fold_batchnorm` returns such a copy of a model: fewer passes over memory per image, the
same outputs up to float32 rounding. The copy is for inference only (it has no batch-norm left
to train); the original is untouched. ``Sequential.forward`` does the same by itself in
evaluation mode, pair by pair (:func:`fold_pair`), keeping the folded layers while the weights
stay the same.
"""
import copy

from . import backend
from .layers import Conv2d, Dense, Parameter
from .layers.norm import BatchNorm


def _fold(layer, bn):
    """``layer`` (Conv2d or Dense, a copy) with ``bn`` folded into its weights and bias."""
    xp = backend.xp
    W = layer.params["W"].data
    dt = W.dtype
    scale = bn.params["gamma"].data / xp.sqrt(bn.buffers["running_var"] + bn.eps)       # (C_out,)
    b = layer.params["b"].data if layer.bias else xp.zeros(W.shape[-1], dt)
    layer.params["W"] = Parameter((W * scale).astype(dt))                 # last axis = C_out
    layer.params["b"] = Parameter(((b - bn.buffers["running_mean"]) * scale
                                   + bn.params["beta"].data).astype(dt), decay=False)
    layer.bias = True
    return layer


def fold_pair(layer, bn):
    """A new layer of ``layer``'s type (Conv2d or Dense, in evaluation mode) that computes
    ``bn(layer(x))`` with ``bn``'s running statistics; neither of the two is changed."""
    new = copy.copy(layer)
    new.params, new.cache, new.training = dict(layer.params), None, False
    return _fold(new, bn)


def folds(layer, nxt):
    """Whether ``nxt`` is a batch-norm that can be folded into ``layer``."""
    return isinstance(layer, (Conv2d, Dense)) and isinstance(nxt, BatchNorm)


def fold_batchnorm(model):
    """A copy of ``model`` (a ``Sequential``, or an ``Ensemble`` of them) in evaluation mode,
    with every batch-norm that follows a Conv2d or Dense folded into it."""
    if hasattr(model, "members"):            # an Ensemble: fold each member
        folded = copy.copy(model)
        folded.members = [fold_batchnorm(m) for m in model.members]
        return folded
    folded = copy.deepcopy(model)
    folded.eval()
    layers, i = [], 0
    while i < len(folded.layers):
        layer = folded.layers[i]
        nxt = folded.layers[i + 1] if i + 1 < len(folded.layers) else None
        if folds(layer, nxt):
            layers.append(_fold(layer, nxt))
            i += 2
        else:
            layers.append(layer)
            i += 1
    folded.layers = layers
    return folded
