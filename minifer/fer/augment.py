"""Data augmentation for NHWC float32 image batches, vectorised and seeded.

Every random transform has the form ``f(x, rng, **params) -> new batch``:

* ``x`` is a float32 array ``(N, H, W, C)`` (FER faces: ``(N, 48, 48, 1)``);
  it is never modified in place.
* ``rng`` is a ``numpy.random.Generator``; all randomness comes from it, so
  the same seed gives the same output. Parameters are drawn per sample, once,
  as arrays (no Python loops over samples or pixels).

Geometric transforms resample with one bilinear sampler (:func:`_bilinear`):
for each output pixel they compute a source coordinate ``(sy, sx)`` (pixel
centres at integers), gather the 4 neighbours of every sample at once with
fancy indexing into the flattened batch, and blend them with the weights
``(1 - fy)(1 - fx), (1 - fy) fx, fy (1 - fx), fy fx``. Coordinates that fall
outside the image are folded back by the ``border`` rule: ``"reflect"``
(``d c b | a b c d | c b a``, like ``np.pad(mode="reflect")``), ``"nearest"``
(clamp to the edge) or ``"constant"`` (``fill`` outside).

Photometric transforms (:func:`random_brightness_contrast`,
:func:`random_gamma`) need to know which values are black and white: they take
``lo`` and ``hi``, the values that pixel 0 and 255 have in ``x``. The default
``lo=0, hi=1`` is for ``x / 255`` data; for data normalised as
``(x / 255 - mean) / std`` (see :func:`minifer.fer.data.to_model_input`) pass
``lo, hi = normalized_range(mean, std)``.

:func:`make_train_augment` builds ready-made pipelines (``"none"``,
``"light"``, ``"standard"``, ``"strong"``); :func:`mixup` and :func:`cutmix`
mix images and soft targets. Test-time views are in :mod:`minifer.fer.tta`.
"""
import functools

import numpy as np

BORDERS = ("reflect", "nearest", "constant")
_BLOCK_PIXELS = 1 << 14  # output pixels resampled per block in _bilinear


# ----------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------
def _batch(x):
    """Check ``x`` is ``(N, H, W, C)`` and return it as float32 (no copy if it is)."""
    x = np.asarray(x)
    if x.ndim != 4:
        raise ValueError(f"expected an NHWC batch (N, H, W, C), got shape {x.shape}")
    return x.astype(np.float32, copy=False)


def _range(r, name):
    """``r`` as a ``(lo, hi)`` float pair; a scalar ``a`` means ``(-a, a)``."""
    if np.isscalar(r):
        return -float(r), float(r)
    lo, hi = (float(v) for v in r)
    if lo > hi:
        raise ValueError(f"{name}: lower bound {lo} > upper bound {hi}")
    return lo, hi


def normalized_range(mean, std):
    """The ``(lo, hi)`` that pixels 0 and 255 become after ``(x/255 - mean)/std``."""
    return (0.0 - mean) / std, (1.0 - mean) / std


def _border_index(i, n, border):
    """Map integer indices ``i`` (any array) into ``[0, n)``.

    Returns ``(index, valid)``; ``valid`` is ``None`` except for
    ``border="constant"``, where it marks the indices that were inside.
    """
    if border == "reflect":
        if n == 1:
            return np.zeros_like(i), None
        period = 2 * (n - 1)
        i = np.abs(i) % period
        return np.where(i >= n, period - i, i), None
    if border == "nearest":
        return np.clip(i, 0, n - 1), None
    if border == "constant":
        return np.clip(i, 0, n - 1), (i >= 0) & (i < n)
    raise ValueError(f"unknown border {border!r}; use one of {BORDERS}")


def _fold(s, n, border):
    """Fold float coordinates into ``[0, n - 1]`` (``"reflect"``: mirror about
    the first / last pixel centre, ``"nearest"``: clamp). Returns a new array."""
    if border == "nearest" or n == 1:
        return np.clip(s, 0, n - 1)
    last = np.float32(n - 1)
    s = np.abs(s)                      # mirror about 0
    if s.max(initial=0) > 2 * last:
        np.mod(s, 2 * last, out=s)     # the mirrored signal has period 2(n-1)
    s -= last
    np.abs(s, out=s)
    return np.subtract(last, s, out=s)  # mirror about n-1


def _bilinear(x, sy, sx, border="reflect", fill=0.0):
    """Bilinear resampling of a batch at per-sample source coordinates.

    Args:
        x: float32 ``(N, H, W, C)``.
        sy, sx: float arrays broadcastable to ``(N, Ho, Wo)`` (first axis N or
            1): the source row / column of every output pixel, pixel centres at
            integer values.
        border: ``"reflect"``, ``"nearest"`` or ``"constant"`` (uses ``fill``).

    Returns:
        float32 ``(N, Ho, Wo, C)``: ``out[n, i, j] = x[n](sy[n, i, j], sx[n, i, j])``.

    Coordinates are folded into the image, then ``y0 = min(floor(sy), H-2)``,
    ``fy = sy - y0`` in ``[0, 1]`` (same for x), and with ``k`` the flat index
    of ``(n, y0, x0)`` the four taps are ``flat[k]``, ``flat[k+1]``,
    ``flat[k+W]``, ``flat[k+W+1]`` (gathered through shifted views of the
    flattened batch, so only one index array is built)::

        out = (1-fy) [(1-fx) v00 + fx v01] + fy [(1-fx) v10 + fx v11]

    ``"constant"`` is ``"nearest"`` on the batch padded with one ring of
    ``fill``. Samples are processed in blocks of about 16k output pixels so
    the temporaries stay small (cache- and allocator-friendly).
    """
    if border not in BORDERS:
        raise ValueError(f"unknown border {border!r}; use one of {BORDERS}")
    sy = np.asarray(sy, dtype=np.float32)
    sx = np.asarray(sx, dtype=np.float32)
    n, c = x.shape[0], x.shape[3]
    _, ho, wo = np.broadcast_shapes(sy.shape, sx.shape, (n, 1, 1))
    step = max(1, _BLOCK_PIXELS // (ho * wo))
    if step >= n:
        return _bilinear_block(x, sy, sx, border, fill)
    out = np.empty((n, ho, wo, c), dtype=np.float32)
    for i in range(0, n, step):
        j = min(i + step, n)
        by = sy[i:j] if sy.shape[0] > 1 else sy
        bx = sx[i:j] if sx.shape[0] > 1 else sx
        out[i:j] = _bilinear_block(x[i:j], by, bx, border, fill)
    return out


def _bilinear_block(x, sy, sx, border, fill):
    """:func:`_bilinear` on one block of samples (see there for the method)."""
    if border == "constant":
        x = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), constant_values=np.float32(fill))
        sy, sx, border = sy + 1, sx + 1, "nearest"
    n, h, w, c = x.shape
    if h < 2 or w < 2:  # a 1-pixel axis: duplicate it so two taps exist
        x = np.repeat(np.repeat(x, 2 if h < 2 else 1, axis=1), 2 if w < 2 else 1, axis=2)
        n, h, w, c = x.shape
    sy, sx = _fold(sy, h, border), _fold(sx, w, border)   # now in [0, H-1] / [0, W-1]
    y0 = np.minimum(np.floor(sy), np.float32(h - 2))
    x0 = np.minimum(np.floor(sx), np.float32(w - 2))
    fy, fx = sy - y0, sx - x0
    k = y0.astype(np.intp)
    k *= w
    k = k + x0.astype(np.intp)       # broadcasts to (N, Ho, Wo)
    base = (np.arange(n, dtype=np.intp) * (h * w)).reshape(n, 1, 1)
    k = k + base if k.shape[0] != n else np.add(k, base, out=k)
    flat = x.reshape(n * h * w, c) if c > 1 else x.reshape(-1)
    if c > 1:
        fy, fx = fy[..., None], fx[..., None]
    gy, gx = 1 - fy, 1 - fx
    top = flat[k] * gx              # w0 v00 + w1 v01 (exact when fx is 0 or 1)
    top += flat[1:][k] * fx
    bot = flat[w:][k] * gx
    bot += flat[w + 1:][k] * fx
    top *= gy
    bot *= fy
    top += bot
    return top if c > 1 else top[..., None]


def _crop_resize(x, top, left, ch, cw, out_h, out_w, border="nearest"):
    """Resample the box ``[top, top+ch) x [left, left+cw)`` of each sample to
    ``(out_h, out_w)`` (bilinear, pixel-centre aligned).

    ``top, left, ch, cw``: float arrays ``(N,)`` (sub-pixel boxes are fine).
    Output pixel ``i`` samples source row ``top + (i + 0.5) * ch / out_h - 0.5``.
    """
    top, left, ch, cw = (np.asarray(a, dtype=np.float64) for a in (top, left, ch, cw))
    sy = top[:, None] + (np.arange(out_h) + 0.5)[None, :] * (ch / out_h)[:, None] - 0.5
    sx = left[:, None] + (np.arange(out_w) + 0.5)[None, :] * (cw / out_w)[:, None] - 0.5
    return _bilinear(x, sy[:, :, None], sx[:, None, :], border)


def resize(x, size):
    """Bilinear resize of a batch to ``size`` (int or ``(h, w)``): ``(N, h, w, C)``."""
    x = _batch(x)
    oh, ow = (size, size) if np.isscalar(size) else size
    n, h, w, _ = x.shape
    z, ones = np.zeros(n), np.ones(n)
    return _crop_resize(x, z, z, h * ones, w * ones, int(oh), int(ow))


# ----------------------------------------------------------------------------
# geometric transforms
# ----------------------------------------------------------------------------
def hflip(x):
    """Mirror left-right: ``out[n, i, j] = x[n, i, W - 1 - j]`` (a new array)."""
    return np.ascontiguousarray(_batch(x)[:, :, ::-1])


def random_hflip(x, rng, p=0.5):
    """Mirror each sample left-right with probability ``p``."""
    x = _batch(x)
    flip = rng.random(x.shape[0]) < p
    out = x.copy()
    out[flip] = x[flip, :, ::-1]
    return out


def random_crop(x, rng, padding=4, mode="reflect", fill=0.0):
    """Pad by ``padding`` pixels on every side, then crop back to ``H x W``.

    Equivalent to shifting each sample by integers ``dy, dx`` uniform in
    ``[-padding, padding]``: ``out[n, i, j] = x[n, i + dy_n, j + dx_n]``,
    with out-of-image pixels from ``mode``: ``"reflect"``, ``"nearest"`` or
    ``"constant"`` (value ``fill``). No padded copy is made: the shifted
    indices are folded back into the image and gathered directly.
    """
    x = _batch(x)
    n, h, w, c = x.shape
    dy, dx = rng.integers(-padding, padding + 1, size=(2, n))
    iy, vy = _border_index(dy[:, None] + np.arange(h), h, mode)   # (N, H)
    ix, vx = _border_index(dx[:, None] + np.arange(w), w, mode)   # (N, W)
    idx = (np.arange(n) * (h * w))[:, None, None] + iy[:, :, None] * w + ix[:, None, :]
    out = x.reshape(n * h * w, c)[idx]
    if vy is not None:
        inside = vy[:, :, None] & vx[:, None, :]
        out = np.where(inside[..., None], out, np.float32(fill))
    return out


def crop_at(x, top, left, size):
    """The ``size x size`` window at ``(top[n], left[n])`` of each sample (integer offsets, no resampling)."""
    x = _batch(x)
    n, h, w, c = x.shape
    top, left = np.broadcast_to(top, (n,)), np.broadcast_to(left, (n,))
    iy = top[:, None] + np.arange(size)                                 # (N, size)
    ix = left[:, None] + np.arange(size)
    idx = (np.arange(n) * (h * w))[:, None, None] + iy[:, :, None] * w + ix[:, None, :]
    return x.reshape(n * h * w, c)[idx]


def center_crop(x, size):
    """The central ``size x size`` window of each sample (the view a crop-trained model sees plainly)."""
    x = _batch(x)
    h, w = x.shape[1:3]
    if not 0 < size <= min(h, w):
        raise ValueError(f"center_crop: size {size} must be in 1..{min(h, w)}")
    return np.ascontiguousarray(x[:, (h - size) // 2:(h - size) // 2 + size, (w - size) // 2:(w - size) // 2 + size])


def random_crop_to(x, rng, size):
    """A random ``size x size`` window of each sample, offsets uniform over the image:
    the training view of a model whose input is smaller than the faces (e.g. 44 of 48 px)."""
    x = _batch(x)
    n, h, w, _ = x.shape
    if not 0 < size <= min(h, w):
        raise ValueError(f"random_crop_to: size {size} must be in 1..{min(h, w)}")
    return crop_at(x, rng.integers(0, h - size + 1, n), rng.integers(0, w - size + 1, n), size)


def random_resized_crop(x, rng, scale=(0.8, 1.0), ratio=(0.9, 1.1)):
    """Crop a random box and resize it back to ``H x W`` (bilinear).

    Per sample: area fraction ``s ~ U(scale)``, aspect ``r`` log-uniform in
    ``ratio``; box ``ch = H sqrt(s / r)``, ``cw = W sqrt(s r)`` (clipped to the
    image), position uniform inside the image.
    """
    x = _batch(x)
    n, h, w, _ = x.shape
    s = rng.uniform(scale[0], scale[1], n)
    r = np.exp(rng.uniform(np.log(ratio[0]), np.log(ratio[1]), n))
    ch = np.minimum(h * np.sqrt(s / r), h)
    cw = np.minimum(w * np.sqrt(s * r), w)
    top = rng.random(n) * (h - ch)
    left = rng.random(n) * (w - cw)
    return _crop_resize(x, top, left, ch, cw, h, w)


def random_affine(x, rng, degrees=10.0, translate=0.1, scale=(0.9, 1.1),
                  border="reflect", fill=0.0):
    """Random rotation + scale + shift about the image centre, bilinear.

    Per sample: angle ``t ~ U(-degrees, degrees)`` (or ``U(degrees)`` for a
    pair), scale ``s ~ U(scale)``, shift ``(ty, tx) ~ U(-translate, translate)
    * (H, W)``. The forward map is ``p' = s R(t) (p - c) + c + t_xy`` with
    ``c = ((W-1)/2, (H-1)/2)``; each output pixel ``p'`` samples the input at
    the inverse ``p = R(-t) (p' - c - t_xy) / s + c``, computed for all samples
    at once with broadcasting ``(N, 1, 1)`` x ``(1, H, W)``.
    Positive angles turn the image clockwise as displayed (rows go down; 90
    degrees equals ``np.rot90(x, -1, axes=(1, 2))``). With ``degrees=0,
    translate=0, scale=(1, 1)`` the output equals ``x`` exactly.
    """
    x = _batch(x)
    n, h, w, _ = x.shape
    a_lo, a_hi = _range(degrees, "degrees")
    theta = np.deg2rad(rng.uniform(a_lo, a_hi, n))
    s = rng.uniform(scale[0], scale[1], n) if scale is not None else np.ones(n)
    t_lo, t_hi = _range(translate, "translate")
    ty = rng.uniform(t_lo, t_hi, n) * h
    tx = rng.uniform(t_lo, t_hi, n) * w
    cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
    f32 = lambda a: np.asarray(a, dtype=np.float32)[:, None, None]  # noqa: E731  (N,1,1)
    v = np.arange(h, dtype=np.float32)[None, :, None] - np.float32(cy) - f32(ty)  # (N, H, 1)
    u = np.arange(w, dtype=np.float32)[None, None, :] - np.float32(cx) - f32(tx)  # (N, 1, W)
    a, b = f32(np.cos(theta) / s), f32(np.sin(theta) / s)
    sx = a * u + b * v               # (N, H, W); the small factors broadcast
    sx += np.float32(cx)
    sy = a * v - b * u
    sy += np.float32(cy)
    return _bilinear(x, sy, sx, border, fill)


# ----------------------------------------------------------------------------
# photometric transforms
# ----------------------------------------------------------------------------
def random_brightness_contrast(x, rng, brightness=0.2, contrast=0.2, lo=0.0, hi=1.0,
                               clip=True):
    """Random per-sample contrast and brightness.

    ``out = (x - m) c + m + b (hi - lo)`` with ``m`` the sample mean,
    ``c ~ U(1 - contrast, 1 + contrast)``, ``b ~ U(-brightness, brightness)``
    (a fraction of the black-to-white range ``[lo, hi]``), then clipped to
    ``[lo, hi]`` if ``clip``. ``lo, hi``: the values of pixel 0 / 255 in ``x``
    (``0, 1`` for ``x/255``; :func:`normalized_range` for normalised data).
    """
    x = _batch(x)
    n = x.shape[0]
    c = rng.uniform(1 - contrast, 1 + contrast, n).astype(np.float32)[:, None, None, None]
    b = (rng.uniform(-brightness, brightness, n) * (hi - lo)).astype(np.float32)
    m = x.mean(axis=(1, 2, 3), keepdims=True)
    out = (x - m) * c + m + b[:, None, None, None]
    return np.clip(out, lo, hi).astype(np.float32, copy=False) if clip else out


def random_gamma(x, rng, gamma=(0.8, 1.25), lo=0.0, hi=1.0):
    """Random per-sample gamma curve on the ``[lo, hi]`` range.

    ``u = clip((x - lo) / (hi - lo), 0, 1)``, ``out = lo + u ** g (hi - lo)``
    with ``g`` log-uniform in ``gamma`` (``g < 1`` brightens the mid-tones).
    Values outside ``[lo, hi]`` are clipped first.
    """
    x = _batch(x)
    n = x.shape[0]
    g = np.exp(rng.uniform(np.log(gamma[0]), np.log(gamma[1]), n)).astype(np.float32)
    span = np.float32(hi - lo)
    u = np.clip((x - np.float32(lo)) / span, 0.0, 1.0)
    return (np.float32(lo) + np.power(u, g[:, None, None, None]) * span).astype(np.float32)


def random_erasing(x, rng, p=0.5, area=(0.02, 0.2), ratio=(0.3, 3.3), value=0.0):
    """Erase one random rectangle per sample with probability ``p``.

    Per sample: area ``a ~ U(area) * H W``, aspect ``r`` log-uniform in
    ``ratio``; box ``eh = round(sqrt(a r))``, ``ew = round(sqrt(a / r))``
    (clipped to the image) at a uniform position. The box is filled with
    ``value``: a number, ``"mean"`` (the sample's mean) or ``"random"``
    (Gaussian noise with the sample's mean and std).
    """
    x = _batch(x)
    n, h, w, _ = x.shape
    apply = rng.random(n) < p
    a = rng.uniform(area[0], area[1], n) * h * w
    r = np.exp(rng.uniform(np.log(ratio[0]), np.log(ratio[1]), n))
    eh = np.clip(np.round(np.sqrt(a * r)), 1, h).astype(np.intp)
    ew = np.clip(np.round(np.sqrt(a / r)), 1, w).astype(np.intp)
    top = (rng.random(n) * (h - eh + 1)).astype(np.intp)
    left = (rng.random(n) * (w - ew + 1)).astype(np.intp)
    rows = np.arange(h)[None, :]
    cols = np.arange(w)[None, :]
    in_r = (rows >= top[:, None]) & (rows < (top + eh)[:, None])      # (N, H)
    in_c = (cols >= left[:, None]) & (cols < (left + ew)[:, None])    # (N, W)
    mask = (in_r[:, :, None] & in_c[:, None, :] & apply[:, None, None])[..., None]
    if isinstance(value, str):
        mean = x.mean(axis=(1, 2, 3), keepdims=True)
        if value == "mean":
            fillv = mean
        elif value == "random":
            std = x.std(axis=(1, 2, 3), keepdims=True)
            fillv = (mean + std * rng.standard_normal(x.shape, dtype=np.float32))
        else:
            raise ValueError(f"random_erasing: value must be a number, 'mean' or 'random', "
                             f"got {value!r}")
    else:
        fillv = np.float32(value)
    return np.where(mask, fillv, x).astype(np.float32, copy=False)


# ----------------------------------------------------------------------------
# label mixing
# ----------------------------------------------------------------------------
def one_hot(y, k, smoothing=0.0):
    """Integer labels ``(N,)`` -> float32 ``(N, k)``.

    With ``smoothing = e``: ``(1 - e) onehot + e / k`` (rows still sum to 1).
    """
    y = np.asarray(y).ravel()
    if y.size and (y.min() < 0 or y.max() >= k):
        raise ValueError(f"one_hot: labels must be in 0..{k - 1}, got {y.min()}..{y.max()}")
    out = np.zeros((y.size, k), dtype=np.float32)
    out[np.arange(y.size), y.astype(np.intp)] = 1.0
    if smoothing:
        out = out * np.float32(1 - smoothing) + np.float32(smoothing / k)
    return out


def _soft_targets(y, n):
    y = np.asarray(y, dtype=np.float32)
    if y.ndim != 2 or y.shape[0] != n:
        raise ValueError(f"expected one-hot / soft targets (N={n}, K), got shape {y.shape}; "
                         f"use one_hot(y, k)")
    return y


def mixup(x, y_onehot, rng, alpha=0.2):
    """MixUp (Zhang et al. 2018): blend the batch with a shuffled copy.

    ``lam ~ Beta(alpha, alpha)`` (one per batch), ``perm`` a random
    permutation; ``x' = lam x + (1 - lam) x[perm]`` and the same for the
    targets, so rows of ``y'`` still sum to 1. Returns float32 ``(x', y')``.
    """
    x = _batch(x)
    y = _soft_targets(y_onehot, x.shape[0])
    lam = np.float32(rng.beta(alpha, alpha) if alpha > 0 else 1.0)
    perm = rng.permutation(x.shape[0])
    return lam * x + (1 - lam) * x[perm], lam * y + (1 - lam) * y[perm]


def cutmix(x, y_onehot, rng, alpha=1.0):
    """CutMix (Yun et al. 2019): paste a box from a shuffled copy of the batch.

    ``lam ~ Beta(alpha, alpha)``; a box of about ``(1 - lam) H W`` pixels at
    a uniform centre (clipped to the image) is copied from ``x[perm]``; the
    targets are mixed with the box's actual area fraction ``A``:
    ``y' = (1 - A) y + A y[perm]``. Returns float32 ``(x', y')``.
    """
    x = _batch(x)
    n, h, w, _ = x.shape
    y = _soft_targets(y_onehot, n)
    lam = rng.beta(alpha, alpha) if alpha > 0 else 1.0
    perm = rng.permutation(n)
    cut = np.sqrt(1.0 - lam)
    bh, bw = int(h * cut), int(w * cut)
    cy, cx = int(rng.integers(h)), int(rng.integers(w))
    y1, y2 = np.clip([cy - bh // 2, cy + bh - bh // 2], 0, h)
    x1, x2 = np.clip([cx - bw // 2, cx + bw - bw // 2], 0, w)
    out = x.copy()
    out[:, y1:y2, x1:x2] = x[perm, y1:y2, x1:x2]
    frac = np.float32((y2 - y1) * (x2 - x1) / (h * w))
    return out, (1 - frac) * y + frac * y[perm]


# ----------------------------------------------------------------------------
# pipelines
# ----------------------------------------------------------------------------
class Compose:
    """Apply transforms ``f(x, rng) -> x`` in order: ``Compose(f1, f2)(x, rng)``.

    Steps are usually ``functools.partial`` objects, e.g.
    ``Compose(partial(random_crop, padding=4), random_hflip)``.
    """

    def __init__(self, *steps):
        self.steps = list(steps)

    def __call__(self, x, rng):
        x = _batch(x)
        for step in self.steps:
            x = step(x, rng)
        return x

    def __repr__(self):
        def name(s):
            if isinstance(s, functools.partial):
                args = ", ".join(f"{k}={v!r}" for k, v in s.keywords.items())
                return f"{s.func.__name__}({args})"
            return getattr(s, "__name__", repr(s))
        return "Compose(" + ", ".join(name(s) for s in self.steps) + ")"


PRESETS = ("none", "light", "standard", "strong")


def make_train_augment(name="standard", lo=0.0, hi=1.0):
    """A training augmentation ``f(x, rng) -> x`` for FER faces.

    Presets (``lo, hi`` = values of pixel 0 / 255 in the batches, see
    :func:`normalized_range`):

    * ``"none"``: identity (returns ``x`` as float32).
    * ``"light"``: random crop (pad 4, reflect) + horizontal flip.
    * ``"standard"``: affine (rotation +-10 deg, shift +-10 %, scale 0.9-1.1,
      reflect border) + flip + brightness/contrast +-0.2 + random erasing
      (p = 0.25, filled with the face's mean).
    * ``"strong"``: affine (+-15 deg, +-12 %, 0.85-1.15) + flip +
      brightness +-0.25 / contrast +-0.3 + gamma 0.75-1.33 + random erasing
      (p = 0.5).
    """
    P = functools.partial
    if name == "none":
        return Compose()
    if name == "light":
        return Compose(P(random_crop, padding=4, mode="reflect"), P(random_hflip, p=0.5))
    if name == "standard":
        return Compose(
            P(random_affine, degrees=10.0, translate=0.1, scale=(0.9, 1.1), border="reflect"),
            P(random_hflip, p=0.5),
            P(random_brightness_contrast, brightness=0.2, contrast=0.2, lo=lo, hi=hi),
            P(random_erasing, p=0.25, area=(0.02, 0.2), value="mean"))
    if name == "strong":
        return Compose(
            P(random_affine, degrees=15.0, translate=0.12, scale=(0.85, 1.15), border="reflect"),
            P(random_hflip, p=0.5),
            P(random_brightness_contrast, brightness=0.25, contrast=0.3, lo=lo, hi=hi),
            P(random_gamma, gamma=(0.75, 1.33), lo=lo, hi=hi),
            P(random_erasing, p=0.5, area=(0.02, 0.25), value="mean"))
    raise ValueError(f"unknown augmentation preset {name!r}; use one of {PRESETS}")
