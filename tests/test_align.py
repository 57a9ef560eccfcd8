"""Tests for minifer.fer.align: landmark alignment geometry and square crops."""
import math

import numpy as np
import pytest

from minifer.fer.align import (FER_LANDMARKS, align_crop, alignment_matrix, is_face_crop,
                               square_crop)


def _similarity(points, angle_deg, scale, shift):
    a = math.radians(angle_deg)
    R = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    return points @ R.T * scale + shift


def test_template_is_a_level_fer_face():
    (rx, ry), (lx, ly), (nx, ny), (mrx, mry), (mlx, mly) = FER_LANDMARKS
    assert rx < nx < lx and abs(ry - ly) < 1.0 and ry < ny < mry     # eyes level, nose, mouth
    assert 15 < lx - rx < 22 and abs((rx + lx) / 2 - 24) < 2          # centred, eyes ~18 px apart


@pytest.mark.parametrize("angle,scale,shift", [(0, 1, (0, 0)), (25, 3.0, (200, 100)),
                                               (-40, 0.5, (10, 20)), (90, 8.0, (900, 600))])
def test_alignment_undoes_a_similarity(angle, scale, shift):
    # a synthetic face: the template moved by a known rotation, scale and shift
    face = _similarity(FER_LANDMARKS, angle, scale, np.array(shift))
    M = alignment_matrix(face)
    back = face @ M[:, :2].T + M[:, 2]
    np.testing.assert_allclose(back, FER_LANDMARKS, atol=1e-9)
    assert math.hypot(M[0, 0], M[1, 0]) == pytest.approx(1 / scale)
    M96 = alignment_matrix(face, size=96)                       # a larger crop: twice the scale
    np.testing.assert_allclose(face @ M96[:, :2].T + M96[:, 2], 2 * FER_LANDMARKS, atol=1e-9)


def test_alignment_levels_the_eyes_and_fits_the_rest():
    rng = np.random.default_rng(0)
    face = _similarity(FER_LANDMARKS, 30, 2.0, np.array([50, 40])) + rng.normal(0, 1.0, (5, 2))
    M = alignment_matrix(face)
    back = face @ M[:, :2].T + M[:, 2]
    eye = back[1] - back[0]
    tmpl = FER_LANDMARKS[1] - FER_LANDMARKS[0]
    assert math.atan2(eye[1], eye[0]) == pytest.approx(math.atan2(tmpl[1], tmpl[0]), abs=1e-9)
    assert np.abs(back - FER_LANDMARKS).max() < 2.0
    with pytest.raises(ValueError, match="degenerate"):
        alignment_matrix(np.zeros((5, 2)))


def _dot_image(points, shape, radius=2):
    """A dark image with a bright disc at each point."""
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    img = np.zeros(shape, np.uint8)
    for x, y in points:
        img[(xx - x) ** 2 + (yy - y) ** 2 <= radius ** 2] = 255
    return img


def _centroids(crop, points):
    out = []
    for x, y in points:
        x0, y0 = int(x) - 5, int(y) - 5
        win = crop[y0:y0 + 11, x0:x0 + 11].astype(np.float64)
        yy, xx = np.mgrid[y0:y0 + 11, x0:x0 + 11]
        out.append(((win * xx).sum() / win.sum(), (win * yy).sum() / win.sum()))
    return np.array(out)


@pytest.mark.parametrize("angle,scale", [(20, 2.0), (-15, 6.0), (0, 0.9)])
def test_align_crop_puts_the_landmarks_on_the_template(angle, scale):
    # pixels: discs drawn at a turned, scaled face's landmarks land on the template's points,
    # also when the face is much larger than the crop (shrunk with INTER_AREA first)
    face = _similarity(FER_LANDMARKS, angle, scale, np.array([150.0, 120.0]))
    img = _dot_image(face, (600, 600), radius=max(2, round(1.5 * scale)))
    crop = align_crop(img, face)
    assert crop.shape == (48, 48) and crop.dtype == np.uint8
    np.testing.assert_allclose(_centroids(crop, FER_LANDMARKS), FER_LANDMARKS, atol=0.3)


def test_align_crop_near_the_border_repeats_edges():
    img = np.tile(np.arange(100, dtype=np.uint8), (80, 1))
    face = _similarity(FER_LANDMARKS, 0, 1.0, np.array([-20.0, -10.0]))   # partly outside
    crop = align_crop(img, face)
    assert crop.shape == (48, 48)
    assert (crop[:, :20] == 0).all()                           # the left edge column, repeated
    with pytest.raises(ValueError):
        align_crop(np.zeros((10, 10), np.float32), face)


# ---------------------------------------------------------------- square crops


def test_square_crop_inside_and_near_borders():
    img = np.arange(100 * 120, dtype=np.int64).reshape(100, 120) % 251
    img = img.astype(np.uint8)
    for box in [(40, 30, 20, 20), (0, 0, 30, 30), (100, 80, 20, 20),
                (-10, -10, 25, 25), (110, 5, 40, 10), (50, 90, 8, 40)]:
        c = square_crop(img, box)
        assert c.shape == (48, 48) and c.dtype == np.uint8
    assert square_crop(img, (40, 30, 20, 20), size=64).shape == (64, 64)


def test_square_crop_geometry_and_edge_padding():
    x = np.arange(50, dtype=np.uint8)
    img = np.tile(x, (40, 1)) + np.arange(40, dtype=np.uint8)[:, None] * 2
    # inside, no resize: side 20 * 1.5 = 30 centred on (25, 20)
    c = square_crop(img, (15, 10, 20, 20), margin=0.5, size=30)
    np.testing.assert_array_equal(c, img[5:35, 10:40])
    # top-left corner: side 20 centred on (5, 5) -> rows/cols -5..15, edge-padded
    c = square_crop(img, (0, 0, 10, 10), margin=1.0, size=20)
    np.testing.assert_array_equal(c[5:, 5:], img[0:15, 0:15])
    np.testing.assert_array_equal(c[:5, 5:], np.repeat(img[:1, 0:15], 5, axis=0))
    np.testing.assert_array_equal(c[5:, :5], np.repeat(img[0:15, :1], 5, axis=1))
    assert (c[:5, :5] == img[0, 0]).all()
    # tall box: side from the longer side, 40 * 1.2 = 48, so no resize
    c = square_crop(img, (20, 0, 10, 40), margin=0.2, size=48)
    assert c.shape == (48, 48)
    with pytest.raises(ValueError):
        square_crop(img, (500, 500, 10, 10))
    with pytest.raises(ValueError):
        square_crop(img, (5, 5, 0, 10))


def test_is_face_crop():
    assert is_face_crop(np.zeros((48, 48), np.uint8))
    assert is_face_crop((96, 80))
    assert is_face_crop((150, 140))
    assert not is_face_crop((150, 300))
    assert not is_face_crop((480, 640))
    assert not is_face_crop((512, 512))


