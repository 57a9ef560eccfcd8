"""Test-time augmentation: average a model's probabilities over fixed views of each face.

The modes (``TTA_MODES``) are the one list every command line offers:

* ``"none"``: the face as it is;
* ``"flip"``: the face and its mirror (2 views);
* ``"tencrop"``: ``crop x crop`` boxes at the 4 corners and the centre, each resized
  back to the model's input size, each with its mirror (10 views).
"""
import numpy as np

from .augment import _batch, _crop_resize, hflip

TTA_MODES = ("none", "flip", "tencrop")


def tta_views(x, mode="flip", crop=44):
    """Deterministic views of a batch for test-time augmentation.

    * ``"none"``: ``[x]``.
    * ``"flip"``: ``[x, hflip(x)]``.
    * ``"tencrop"``: ``crop x crop`` boxes at the 4 corners and the centre,
      each resized back to ``H x W`` (bilinear, so the model input size is
      unchanged) and each followed by its mirror: 10 views.

    Returns a list of float32 ``(N, H, W, C)`` arrays.
    """
    x = _batch(x)
    if mode == "none":
        return [x]
    if mode == "flip":
        return [x, hflip(x)]
    if mode != "tencrop":
        raise ValueError(f"unknown TTA mode {mode!r}; use one of {TTA_MODES}")
    n, h, w, _ = x.shape
    if not 0 < crop <= min(h, w):
        raise ValueError(f"tta_views: crop {crop} must be in 1..{min(h, w)}")
    ones = np.ones(n)
    offsets = [(0, 0), (0, w - crop), (h - crop, 0), (h - crop, w - crop),
               ((h - crop) // 2, (w - crop) // 2)]
    views = []
    for top, left in offsets:
        v = _crop_resize(x, top * ones, left * ones, crop * ones, crop * ones, h, w)
        views += [v, hflip(v)]
    return views


def tta_predict(predict_fn, x, mode="flip", crop=44, batch_size=256):
    """Average ``predict_fn(view)`` over the TTA views of ``x``.

    ``predict_fn`` maps a float32 ``(B, H, W, C)`` batch to class
    probabilities ``(B, K)`` (average probabilities, not logits). ``x`` is
    processed ``batch_size`` samples at a time so the views of a large set
    never sit in memory together. Returns float32 ``(N, K)``.
    """
    x = _batch(x)
    parts = []
    for s in range(0, x.shape[0], batch_size):
        views = tta_views(x[s:s + batch_size], mode, crop)
        acc = None
        for v in views:
            p = predict_fn(v)
            p = np.asarray(p.get() if hasattr(p, "get") else p, dtype=np.float64)
            acc = p if acc is None else acc + p
        parts.append((acc / len(views)).astype(np.float32))
    return np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)
