"""Test-time augmentation: average a model's probabilities over fixed views of each face.

The modes (``TTA_MODES``) are the one list every command line offers:

* ``"none"``: the face as it is;
* ``"flip"``: the face and its mirror (2 views);
* ``"tencrop"``: boxes at the 4 corners and the centre, each with its mirror (10 views).

A model whose input is smaller than the faces (``size``, e.g. 44 of 48 px, trained
on random crops) sees the central crop plainly, and ten-crop takes its boxes at
exactly that size. A model of the faces' size gets ``crop x crop`` boxes resized
back to its input. An ensemble (:func:`model_tta_predict`) averages its members, each
with the views at its own input size.
"""
import numpy as np

from .augment import _batch, _crop_resize, center_crop, crop_at, hflip
from .classes import input_side

TTA_MODES = ("none", "flip", "tencrop")


def tta_views(x, mode="flip", crop=44, size=None):
    """Deterministic views of a batch of faces ``x`` (N, H, W, C) for test-time augmentation.

    ``size``: the model's input side (default ``H``). Returns a list of float32
    ``(N, size, size, C)`` arrays: 1 view for ``"none"``, 2 for ``"flip"``, 10
    for ``"tencrop"`` (see the module docstring).
    """
    x = _batch(x)
    n, h, w, _ = x.shape
    size = h if size is None else int(size)
    if mode not in TTA_MODES:
        raise ValueError(f"unknown TTA mode {mode!r}; use one of {TTA_MODES}")
    if mode != "tencrop":
        v = x if size == h == w else center_crop(x, size)
        return [v] if mode == "none" else [v, hflip(v)]
    box = size if size < min(h, w) else crop
    if not 0 < box <= min(h, w):
        raise ValueError(f"tta_views: crop {box} must be in 1..{min(h, w)}")
    offsets = [(0, 0), (0, w - box), (h - box, 0), (h - box, w - box), ((h - box) // 2, (w - box) // 2)]
    views = []
    for top, left in offsets:
        if box == size:
            v = crop_at(x, top, left, size)
        else:
            ones = np.ones(n)
            v = _crop_resize(x, top * ones, left * ones, box * ones, box * ones, size, size)
        views += [v, hflip(v)]
    return views


def tta_predict(predict_fn, x, mode="flip", crop=44, batch_size=256, size=None):
    """Average ``predict_fn(view)`` over the TTA views of ``x``.

    ``predict_fn`` maps a float32 ``(B, H, W, C)`` batch to class
    probabilities ``(B, K)`` (average probabilities, not logits). ``x`` is
    processed ``batch_size`` samples at a time so the views of a large set
    never sit in memory together; ``size`` is the model's input side (see
    :func:`tta_views`). Returns float32 ``(N, K)``.
    """
    x = _batch(x)
    parts = []
    for s in range(0, x.shape[0], batch_size):
        views = tta_views(x[s:s + batch_size], mode, crop, size)
        acc = None
        for v in views:
            p = predict_fn(v)
            p = np.asarray(p.get() if hasattr(p, "get") else p, dtype=np.float64)
            acc = p if acc is None else acc + p
        parts.append((acc / len(views)).astype(np.float32))
    return np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)


def model_tta_predict(model, x, mode="none", batch_size=256):
    """Class probabilities ``(N, K)`` of ``model`` for normalised faces ``x`` (N, H, W, 1),
    averaged over the TTA views at the model's input size. For an ensemble, the mean of its
    members' averages, each member with the views at its own input size (a 44-px member's
    ten crops are 44-px boxes of the faces, not boxes resized for a 48-px input)."""
    members = getattr(model, "members", None)
    if members is not None:
        parts = [model_tta_predict(m, x, mode, batch_size) for m in members]
        return np.mean(np.asarray(parts, dtype=np.float64), axis=0).astype(np.float32)
    return tta_predict(lambda v: model.predict_proba(v, batch_size), x, mode, batch_size=batch_size,
                       size=input_side(model.meta))
