"""Tests for minifer.fer.augment: shapes, dtype, ranges, determinism, exact identities."""
import functools
import time

import numpy as np
import pytest

from minifer.fer import augment as A
from minifer.fer import tta as T

P = functools.partial


@pytest.fixture
def batch():
    """8 smooth-ish 48x48 faces in [0, 1] (NHWC float32)."""
    rng = np.random.default_rng(123)
    yy, xx = np.mgrid[0:48, 0:48] / 47.0
    base = 0.5 + 0.3 * np.sin(6 * xx)[None] * np.cos(4 * yy)[None]
    noise = 0.2 * rng.random((8, 48, 48))
    x = np.clip(base + noise - 0.1, 0, 1).astype(np.float32)
    return x[..., None]


RANDOM_TRANSFORMS = {
    "crop_reflect": P(A.random_crop, padding=4, mode="reflect"),
    "crop_constant": P(A.random_crop, padding=4, mode="constant"),
    "crop_nearest": P(A.random_crop, padding=6, mode="nearest"),
    "resized_crop": A.random_resized_crop,
    "hflip": A.random_hflip,
    "affine_reflect": A.random_affine,
    "affine_nearest": P(A.random_affine, degrees=30, border="nearest"),
    "affine_constant": P(A.random_affine, degrees=(-20, 5), border="constant", fill=0.5),
    "brightness_contrast": A.random_brightness_contrast,
    "gamma": A.random_gamma,
    "erasing": P(A.random_erasing, p=1.0),
    "erasing_random": P(A.random_erasing, p=1.0, value="random"),
    "standard": A.make_train_augment("standard"),
    "light": A.make_train_augment("light"),
    "strong": A.make_train_augment("strong"),
}


@pytest.mark.parametrize("name", sorted(RANDOM_TRANSFORMS))
def test_random_transform_invariants(batch, name):
    f = RANDOM_TRANSFORMS[name]
    before = batch.copy()
    out = f(batch, np.random.default_rng(0))
    np.testing.assert_array_equal(batch, before)          # input untouched
    assert out.shape == batch.shape and out.dtype == np.float32
    assert np.all(np.isfinite(out))
    if name != "erasing_random":                          # noise may overshoot
        assert out.min() >= -1e-5 and out.max() <= 1 + 1e-5
    again = f(batch, np.random.default_rng(0))
    np.testing.assert_array_equal(out, again)              # same seed, same output
    other = f(batch, np.random.default_rng(1))
    assert not np.array_equal(out, other)                  # another seed differs


def test_multichannel_and_non_square():
    x = np.random.default_rng(0).random((3, 20, 30, 3), dtype=np.float32)
    rng = np.random.default_rng(0)
    for f in RANDOM_TRANSFORMS.values():
        assert f(x, rng).shape == x.shape
    for border in A.BORDERS:
        same = A.random_affine(x, rng, degrees=0, translate=0, scale=(1, 1), border=border)
        np.testing.assert_array_equal(same, x)


def test_rejects_non_nhwc():
    with pytest.raises(ValueError, match="NHWC"):
        A.random_crop(np.zeros((48, 48, 1), np.float32), np.random.default_rng(0))


# ----------------------------------------------------------------------------- geometry
def test_hflip(batch):
    f = A.hflip(batch)
    np.testing.assert_array_equal(f, batch[:, :, ::-1])
    np.testing.assert_array_equal(A.hflip(f), batch)
    rng = np.random.default_rng(0)
    np.testing.assert_array_equal(A.random_hflip(batch, rng, p=0.0), batch)
    np.testing.assert_array_equal(A.random_hflip(batch, rng, p=1.0), f)
    mixed = A.random_hflip(batch, rng, p=0.5)
    flipped = [np.array_equal(m, g) for m, g in zip(mixed, f)]
    kept = [np.array_equal(m, b) for m, b in zip(mixed, batch)]
    assert all(a or b for a, b in zip(flipped, kept))


def test_random_crop_matches_padded_windows(batch):
    rng = np.random.default_rng(5)
    np.testing.assert_array_equal(A.random_crop(batch, rng, padding=0), batch)
    p = 4
    for mode, pad_mode in (("reflect", "reflect"), ("nearest", "edge"), ("constant", "constant")):
        out = A.random_crop(batch, rng, padding=p, mode=mode)
        for o, b in zip(out, batch):
            padded = np.pad(b[..., 0], p, mode=pad_mode)
            shifts = range(2 * p + 1)
            windows = [padded[i:i + 48, j:j + 48] for i in shifts for j in shifts]
            assert any(np.array_equal(o[..., 0], w) for w in windows), mode


def test_affine_identity_is_exact(batch):
    rng = np.random.default_rng(0)
    out = A.random_affine(batch, rng, degrees=0, translate=0, scale=(1, 1))
    np.testing.assert_array_equal(out, batch)


def test_affine_rotation_90_and_shift():
    x = np.random.default_rng(1).random((2, 9, 9, 1), dtype=np.float32)
    rng = np.random.default_rng(0)
    rot = A.random_affine(x, rng, degrees=(90, 90), translate=0, scale=(1, 1))
    np.testing.assert_allclose(rot, np.rot90(x, -1, axes=(1, 2)), atol=1e-5)
    # constant image stays constant under any affine with a reflect border
    c = np.full((4, 12, 12, 1), 0.3, np.float32)
    np.testing.assert_allclose(A.random_affine(c, rng, degrees=45), 0.3, atol=1e-6)


def test_bilinear_matches_np_pad_on_integer_shifts():
    x = np.arange(64, dtype=np.float32).reshape(1, 8, 8, 1)
    sy = (np.arange(8)[:, None] + 3.0) * np.ones((1, 8, 8))
    sx = (np.arange(8)[None, :] - 5.0) * np.ones((1, 8, 8))
    for border, mode, kw in (("reflect", "reflect", {}), ("nearest", "edge", {}),
                             ("constant", "constant", {"constant_values": -1})):
        out = A._bilinear(x, sy, sx, border, fill=-1.0)
        ref = np.pad(x[0, :, :, 0], 8, mode=mode, **kw)[11:19, 3:11]
        np.testing.assert_array_equal(out[0, :, :, 0], ref)
    mid = A._bilinear(x, np.full((1, 1, 1), 2.5), np.full((1, 1, 1), 3.5))
    assert mid.item() == pytest.approx(x[0, 2:4, 3:5].mean())


def test_resize_and_resized_crop(batch):
    np.testing.assert_array_equal(A.resize(batch, 48), batch)
    small = A.resize(batch, (24, 32))
    assert small.shape == (8, 24, 32, 1) and small.dtype == np.float32
    c = np.full((2, 10, 10, 1), 0.7, np.float32)
    np.testing.assert_allclose(A.resize(c, 17), 0.7, atol=1e-6)
    same = A.random_resized_crop(batch, np.random.default_rng(0), scale=(1, 1), ratio=(1, 1))
    np.testing.assert_array_equal(same, batch)


# ----------------------------------------------------------------------------- photometric
def test_brightness_contrast(batch):
    rng = np.random.default_rng(0)
    same = A.random_brightness_contrast(batch, rng, brightness=0, contrast=0)
    np.testing.assert_allclose(same, batch, atol=1e-6)
    # on normalised data: same result as on [0,1] data, mapped
    mean, std = 0.5, 0.25
    lo, hi = A.normalized_range(mean, std)
    assert (lo, hi) == (-2.0, 2.0)
    a = A.random_brightness_contrast(batch, np.random.default_rng(3))
    b = A.random_brightness_contrast((batch - mean) / std, np.random.default_rng(3), lo=lo, hi=hi)
    np.testing.assert_allclose(b * std + mean, a, atol=1e-5)
    assert b.min() >= lo - 1e-6 and b.max() <= hi + 1e-6


def test_gamma(batch):
    rng = np.random.default_rng(0)
    np.testing.assert_allclose(A.random_gamma(batch, rng, gamma=(1, 1)), batch, atol=1e-6)
    dark = A.random_gamma(batch, rng, gamma=(2, 2))
    np.testing.assert_allclose(dark, batch ** 2, atol=1e-6)
    lo, hi = -1.0, 3.0
    g = A.random_gamma(batch * 4 - 1, np.random.default_rng(0), gamma=(2, 2), lo=lo, hi=hi)
    np.testing.assert_allclose(g, batch ** 2 * 4 - 1, atol=1e-5)


def test_erasing(batch):
    rng = np.random.default_rng(0)
    np.testing.assert_array_equal(A.random_erasing(batch, rng, p=0.0), batch)
    out = A.random_erasing(batch, rng, p=1.0, area=(0.1, 0.1), ratio=(1, 1), value=-7.0)
    erased = (out == -7.0)
    n_erased = erased.reshape(8, -1).sum(axis=1)
    assert np.all(n_erased == 15 * 15)            # round(sqrt(0.1 * 2304)) = 15
    np.testing.assert_array_equal(out[~erased], batch[~erased])
    m = A.random_erasing(batch, rng, p=1.0, value="mean")
    assert m.shape == batch.shape
    with pytest.raises(ValueError, match="value"):
        A.random_erasing(batch, rng, value="zeros")


# ----------------------------------------------------------------------------- mixing
def test_one_hot():
    y = np.array([0, 2, 6])
    oh = A.one_hot(y, 7)
    assert oh.dtype == np.float32 and oh.shape == (3, 7)
    np.testing.assert_array_equal(oh.argmax(1), y)
    sm = A.one_hot(y, 7, smoothing=0.1)
    np.testing.assert_allclose(sm.sum(1), 1, atol=1e-6)
    assert sm.max() == pytest.approx(0.9 + 0.1 / 7)
    with pytest.raises(ValueError, match="0..6"):
        A.one_hot(np.array([7]), 7)


def test_mixup(batch):
    y = A.one_hot(np.arange(8) % 7, 7)
    xm, ym = A.mixup(batch, y, np.random.default_rng(0), alpha=0.4)
    assert xm.shape == batch.shape and xm.dtype == np.float32 and ym.dtype == np.float32
    np.testing.assert_allclose(ym.sum(1), 1, atol=1e-6)
    assert xm.min() >= batch.min() - 1e-6 and xm.max() <= batch.max() + 1e-6
    xm2, ym2 = A.mixup(batch, y, np.random.default_rng(0), alpha=0.4)
    np.testing.assert_array_equal(xm, xm2)
    np.testing.assert_array_equal(ym, ym2)
    with pytest.raises(ValueError, match="one_hot"):
        A.mixup(batch, np.arange(8), np.random.default_rng(0))


def test_cutmix_targets_match_pasted_area():
    n = 6
    x = np.repeat(np.arange(n, dtype=np.float32), 48 * 48).reshape(n, 48, 48, 1)
    y = A.one_hot(np.arange(n), n)
    for seed in range(5):
        xc, yc = A.cutmix(x, y, np.random.default_rng(seed), alpha=1.0)
        np.testing.assert_allclose(yc.sum(1), 1, atol=1e-6)
        for i in range(n):
            own = np.mean(xc[i] == i)
            if yc[i, i] < 1:          # sample i received a patch from another one
                assert yc[i, i] == pytest.approx(own, abs=1e-6)
            vals = np.unique(xc[i])
            assert len(vals) <= 2


# ----------------------------------------------------------------------------- pipelines
def test_presets(batch):
    rng = np.random.default_rng(0)
    assert A.make_train_augment("none")(batch, rng) is batch
    for name in A.PRESETS:
        f = A.make_train_augment(name)
        assert f(batch, rng).shape == batch.shape
        assert name == "none" or "random_" in repr(f)
    with pytest.raises(ValueError, match="standard"):
        A.make_train_augment("heavy-ish")


def test_compose_order(batch):
    f = A.Compose(lambda x, rng: x + 1, lambda x, rng: x * 2)
    np.testing.assert_allclose(f(batch, None), (batch + 1) * 2)


def test_standard_pipeline_is_fast():
    x = np.random.default_rng(0).random((64, 48, 48, 1), dtype=np.float32)
    f = A.make_train_augment("standard")
    rng = np.random.default_rng(0)
    f(x, rng)
    best = min(_timed(f, x, rng) for _ in range(5))
    assert best < 0.05, f"standard augmentation of 64 faces took {best * 1e3:.1f} ms"


def _timed(f, x, rng):
    t = time.perf_counter()
    f(x, rng)
    return time.perf_counter() - t


# ----------------------------------------------------------------------------- TTA
def test_tta_views(batch):
    v = T.tta_views(batch, "flip")
    assert len(v) == 2
    np.testing.assert_array_equal(v[0], batch)
    np.testing.assert_array_equal(v[1], batch[:, :, ::-1])
    assert len(T.tta_views(batch, "none")) == 1
    ten = T.tta_views(batch, "tencrop", crop=44)
    assert len(ten) == 10
    for view in ten:
        assert view.shape == batch.shape and view.dtype == np.float32
    np.testing.assert_array_equal(ten[1], A.hflip(ten[0]))
    # a full-size "crop" is the identity
    full = T.tta_views(batch, "tencrop", crop=48)
    np.testing.assert_array_equal(full[0], batch)
    np.testing.assert_array_equal(full[8], batch)
    with pytest.raises(ValueError, match="tencrop"):
        T.tta_views(batch, "fivecrop")


@pytest.mark.parametrize("mode", T.TTA_MODES)
def test_tta_predict_constant_and_average(batch, mode):
    const = np.array([0.1, 0.2, 0.7], np.float32)
    p = T.tta_predict(lambda v: np.tile(const, (len(v), 1)), batch, mode=mode, batch_size=3)
    assert p.shape == (8, 3) and p.dtype == np.float32
    np.testing.assert_allclose(p, np.tile(const, (8, 1)), atol=1e-7)

    calls = []

    def brightness(v):                   # a "probability" that depends on the view
        calls.append(len(v))
        m = v.mean(axis=(1, 2, 3))
        return np.stack([m, 1 - m], axis=1)

    q = T.tta_predict(brightness, batch, mode=mode, batch_size=5)
    views = T.tta_views(batch, mode)
    expect = np.mean([brightness(v) for v in views], axis=0)
    np.testing.assert_allclose(q, expect, atol=1e-6)
    assert max(calls) <= 8


def test_crops_at_the_model_size(batch):
    from minifer.fer.tta import tta_views
    rng = np.random.default_rng(3)
    n, h, w, _ = batch.shape
    out = A.random_crop_to(batch, rng, 40)
    assert out.shape == (n, 40, 40, batch.shape[3]) and out.dtype == np.float32
    for i in range(n):       # every sample is some 40x40 window of its own image
        assert any(np.array_equal(out[i], batch[i, a:a + 40, b:b + 40])
                   for a in range(h - 39) for b in range(w - 39))
    c = A.center_crop(batch, 40)
    np.testing.assert_array_equal(c, batch[:, (h - 40) // 2:(h - 40) // 2 + 40, (w - 40) // 2:(w - 40) // 2 + 40])
    assert len(tta_views(batch, "none", size=40)) == 1 and np.array_equal(tta_views(batch, "none", size=40)[0], c)
    ten = tta_views(batch, "tencrop", size=40)
    assert len(ten) == 10 and all(v.shape == c.shape for v in ten)
    np.testing.assert_array_equal(ten[0], batch[:, :40, :40])                 # top-left, then its mirror
    np.testing.assert_array_equal(ten[1], ten[0][:, :, ::-1])
    np.testing.assert_array_equal(ten[8], c)                                # the centre
    with pytest.raises(ValueError, match="size 0"):
        A.random_crop_to(batch, rng, 0)
