"""Why did the model say that? Input-gradient saliency and Grad-CAM.

Both methods ask the same question with minifer's own backward passes: how
does the score of one class, ``s = z[n, target]`` (a logit, before softmax),
change when something earlier in the network changes? Seeding the backward
pass with a one-hot ``dL/dz`` (1 at the target class, 0 elsewhere) makes every
layer's ``backward`` return ``ds/d(its input)``.

Saliency (Simonyan et al. 2014), for an input batch x (N, H, W, C)::

    S[n, i, j] = max_c | ds_n / dx[n, i, j, c] |          (N, H, W)

Grad-CAM (Selvaraju et al. 2017), for the activations A (N, h, w, K) of one
conv layer (by default the last Conv2d/ReLU before pooling/flatten) and the
gradient G = ds/dA arriving at it in the backward pass::

    alpha[n, k] = mean_{i,j} G[n, i, j, k]                 one weight per channel
    cam[n]      = ReLU( sum_k alpha[n, k] * A[n, :, :, k] )   (N, h, w)

then bilinear upsampling to (H, W) and division by the maximum, so every map
is in [0, 1] (an all-zero map stays zero).

The layers are run one by one in a loop (instead of ``model.forward``) so the
activations of the chosen layer and the gradient arriving at it can be kept.
The model is put in evaluation mode while explaining (dropout off, batch-norm
with running statistics) and put back as it was; parameter gradients are
restored afterwards too, so explaining never disturbs training.
"""
import numpy as np

from .. import backend
from .augment import resize
from ..layers import Conv2d, Dense, Flatten, GlobalAvgPool2d, ReLU
from ..model import Ensemble

_FLAT = (Flatten, GlobalAvgPool2d, Dense)   # spatial maps end at the first of these


# ---------------------------------------------------------------------------------------
# running the layers by hand
# ---------------------------------------------------------------------------------------
def _layer_backward(layer, dout):
    """``layer.backward(dout)`` with the input gradient always computed."""
    layer.need_input_grad = True
    return layer.backward(dout)


class _Explaining:
    """Context: eval mode, and every layer's training flag, input-grad flag,
    cache and parameter gradient put back on exit."""

    def __init__(self, model):
        self.model = model

    def __enter__(self):
        ls = self.model.layers
        self.saved = [(l.training, l.need_input_grad, {k: p.grad for k, p in l.params.items()}) for l in ls]
        self.model.eval()
        return self

    def __exit__(self, *exc):
        for l, (training, need, grads) in zip(self.model.layers, self.saved):
            l.training, l.need_input_grad, l.cache = training, need, None
            for k, g in grads.items():
                l.params[k].grad = g
        return False


def _seed(logits, target):
    """One-hot dL/dlogits: 1 at each sample's target class (default: its top class)."""
    xp = backend.get_array_module(logits)
    n, k = logits.shape
    if target is None:
        t = backend.to_host(logits).argmax(axis=1)
    else:
        t = np.broadcast_to(np.asarray(target, np.int64), (n,))
        if t.min() < 0 or t.max() >= k:
            raise ValueError(f"target class must be in 0..{k - 1}, got {target}")
    g = np.zeros((n, k), np.float32)
    g[np.arange(n), t] = 1.0
    return xp.asarray(g, dtype=logits.dtype)


def _as_batch(x):
    x = backend.to_device(np.asarray(backend.to_host(x)))
    if x.ndim != 4:
        raise ValueError(f"expected an NHWC batch (N, H, W, C), got shape {x.shape}")
    return x if x.dtype == np.float64 else x.astype(backend.DTYPE)


# ---------------------------------------------------------------------------------------
# saliency
# ---------------------------------------------------------------------------------------
def saliency(model, x, target=None):
    """|d score / d input|, max over channels: float32 (N, H, W), one map per image.

    ``target``: class index (int, or one per image); ``None`` explains each
    image's predicted class.
    """
    x = _as_batch(x)
    with _Explaining(model):
        z = x
        for layer in model.layers:                  # forward, keeping every cache
            z = layer.forward(z)
        d = _seed(z, target)
        for layer in reversed(model.layers):         # backward, all the way to the input
            d = _layer_backward(layer, d)
    return np.abs(backend.to_host(d)).max(axis=-1).astype(np.float32)


# ---------------------------------------------------------------------------------------
# Grad-CAM
# ---------------------------------------------------------------------------------------
def default_cam_layer(model):
    """Name of the last Conv2d/ReLU before the first Flatten/GlobalAvgPool2d/Dense."""
    best = None
    for layer in model.layers:
        if isinstance(layer, _FLAT):
            break
        if isinstance(layer, (Conv2d, ReLU)):
            best = layer.name
    if best is None:
        raise ValueError("no Conv2d/ReLU layer before the flatten/pool head; pass layer_name")
    return best


def grad_cam(model, x, layer_name=None, target=None):
    """Grad-CAM heat maps in [0, 1]: float32 (N, H, W) at the input's size.

    ``layer_name``: the layer whose output (N, h, w, K) is explained (default
    :func:`default_cam_layer`); ``target`` as in :func:`saliency`. For an
    :class:`minifer.model.Ensemble`, the members' maps for the ensemble's
    predicted class (or ``target``), averaged; a member that sees a central crop
    contributes its map there (zero outside).
    """
    x = _as_batch(x)
    if isinstance(model, Ensemble):
        if target is None:
            target = model.predict_proba(backend.to_host(x)).argmax(axis=1)
        total = np.zeros(x.shape[:3], np.float32)
        for m in model.members:
            cam = grad_cam(m, model.member_input(m, x), layer_name, target)   # (N, h, w), h <= H
            top, left = (x.shape[1] - cam.shape[1]) // 2, (x.shape[2] - cam.shape[2]) // 2
            total[:, top:top + cam.shape[1], left:left + cam.shape[2]] += cam
        return total / len(model.members)
    name = layer_name or default_cam_layer(model)
    names = [l.name for l in model.layers]
    if name not in names:
        raise ValueError(f"no layer named {name!r}; layers: {', '.join(names)}")
    k = names.index(name)
    with _Explaining(model):
        z = x
        for i, layer in enumerate(model.layers):
            z = layer.forward(z)
            if i == k:
                acts = z                                 # A: (N, h, w, K)
        if acts.ndim != 4:
            raise ValueError(f"layer {name!r} outputs shape {acts.shape}; Grad-CAM needs (N, h, w, K)")
        d = _seed(z, target)
        for layer in reversed(model.layers[k + 1:]):   # backward down to layer k's output
            d = _layer_backward(layer, d)
    acts, grads = backend.to_host(acts).astype(np.float32), backend.to_host(d).astype(np.float32)
    alpha = grads.mean(axis=(1, 2))                                   # (N, K)
    cam = np.maximum(np.einsum("nhwk,nk->nhw", acts, alpha), 0)      # (N, h, w)
    cam = resize(cam[..., None], x.shape[1:3])[..., 0]               # bilinear -> (N, H, W)
    top = cam.max(axis=(1, 2), keepdims=True)
    return np.where(top > 0, cam / np.maximum(top, 1e-12), 0).astype(np.float32)


# ---------------------------------------------------------------------------------------
# pictures
# ---------------------------------------------------------------------------------------
def overlay(gray_uint8, heat, alpha=0.45, cmap="jet"):
    """Blend a heat map in [0, 1] over a gray image -> RGB uint8 (H, W, 3).

    ``heat`` is resized (bilinear) to the image when the sizes differ; values
    are clipped to [0, 1] and coloured with a matplotlib colormap.
    """
    from matplotlib import colormaps
    gray = np.asarray(gray_uint8)
    if gray.ndim == 3:
        gray = gray[..., 0]
    heat = np.asarray(heat, np.float32)
    if heat.shape != gray.shape:
        heat = resize(heat[None, :, :, None], gray.shape)[0, :, :, 0]
    color = colormaps[cmap](np.clip(heat, 0, 1))[..., :3] * 255.0      # (H, W, 3)
    rgb = (1 - alpha) * gray.astype(np.float32)[..., None] + alpha * color
    return np.clip(rgb + 0.5, 0, 255).astype(np.uint8)
