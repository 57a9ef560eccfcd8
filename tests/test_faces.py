"""Tests for minifer.fer.faces: detector on the shipped photos, crops, tracker."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from minifer.fer.faces import (FaceDetector, FaceTracker, is_face_crop, iou,
                           square_crop)
from minifer.fer.images import load_image, to_gray_array

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "images"


@pytest.fixture(scope="module")
def detector():
    pytest.importorskip("cv2")
    return FaceDetector()


@pytest.fixture(scope="module")
def astronaut():
    return to_gray_array(load_image(EXAMPLES / "astronaut.jpg"))


def test_import_does_not_load_cv2():
    code = "import sys, minifer.fer.faces; print('cv2' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True,
                         text=True, cwd=Path(__file__).resolve().parent.parent)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


# ------------------------------------------------------------- detector

def test_astronaut_has_one_face(detector, astronaut):
    assert astronaut.shape == (512, 512)
    boxes = detector.detect(astronaut)
    assert len(boxes) == 1
    x, y, w, h = boxes[0]
    assert all(type(v) is int for v in boxes[0])
    assert abs(x + w / 2 - 225) < 20 and abs(y + h / 2 - 115) < 20
    assert 75 <= w <= 120 and w == h


def test_cat_has_no_face(detector):
    cat = to_gray_array(load_image(EXAMPLES / "chelsea_cat.jpg"))
    assert detector.detect(cat) == []


def test_large_image_boxes_mapped_back(detector, astronaut):
    big = np.asarray(Image.fromarray(astronaut).resize((1280, 1280), Image.Resampling.BILINEAR))
    boxes = detector.detect(big)              # detected at 640 px, mapped x2
    assert len(boxes) == 1
    x, y, w, h = boxes[0]
    assert abs(x + w / 2 - 2.5 * 225) < 40 and abs(y + h / 2 - 2.5 * 115) < 40
    assert 190 <= w <= 300


def test_detect_edge_cases(detector):
    assert detector.detect(np.zeros((10, 10), np.uint8)) == []
    assert detector.detect(np.full((480, 640), 128, np.uint8)) == []
    with pytest.raises(ValueError):
        detector.detect(np.zeros((10, 10, 3), np.uint8))
    with pytest.raises(ValueError):
        detector.detect(np.zeros((10, 10), np.float32))


def test_boxes_sorted_left_to_right(detector, astronaut):
    # two copies side by side, the right one slightly higher
    pair = np.full((512, 1024), 128, np.uint8)
    pair[:, :512] = astronaut
    pair[:-20, 512:] = astronaut[20:]
    boxes = FaceDetector(max_side=0).detect(pair)
    assert len(boxes) == 2 and boxes[0][0] < 300 < 512 < boxes[1][0]


def test_missing_cv2_or_cascade(monkeypatch, tmp_path):
    with pytest.raises(RuntimeError, match="opencv-python-headless<5"):
        FaceDetector(cascade_path=tmp_path / "no_such_cascade.xml")
    monkeypatch.setitem(sys.modules, "cv2", None)     # import cv2 -> ImportError
    with pytest.raises(RuntimeError, match="opencv-python-headless<5"):
        FaceDetector()


# ---------------------------------------------------------------- crops

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


def test_crop_of_detected_face(detector, astronaut):
    (box,) = detector.detect(astronaut)
    face = square_crop(astronaut, box)
    assert face.shape == (48, 48)
    assert is_face_crop(face)


def test_is_face_crop():
    assert is_face_crop(np.zeros((48, 48), np.uint8))
    assert is_face_crop((96, 80))
    assert is_face_crop((150, 140))
    assert not is_face_crop((150, 300))
    assert not is_face_crop((480, 640))
    assert not is_face_crop((512, 512))


# -------------------------------------------------------------- tracker

def test_iou():
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (20, 20, 5, 5)) == 0.0
    assert iou((0, 0, 10, 10), (10, 0, 10, 10)) == 0.0          # touching
    assert iou((0, 0, 10, 10), (5, 0, 10, 10)) == pytest.approx(50 / 150)
    assert iou((0, 0, 10, 10), (2, 2, 5, 5)) == pytest.approx(25 / 100)


def test_tracker_ids_stable_and_order_free():
    tr = FaceTracker(iou_threshold=0.3, max_missing=2)
    a, b = [10, 10, 50, 50], [200, 20, 60, 60]
    ids = [r[0] for r in tr.update([a, b])]
    assert ids == [1, 2]
    for step in range(1, 8):                       # both faces drift slowly
        a2 = (10 + 3 * step, 10 + step, 50, 50)
        b2 = (200 - 2 * step, 20, 60 + step, 60 + step)
        order = [b2, a2] if step % 2 else [a2, b2]
        res = tr.update(order)
        got = {r[0]: r[1] for r in res}
        assert got == {1: a2, 2: b2}
    res = tr.update([a2, b2, (400, 300, 40, 40)])  # a third face appears
    assert [r[0] for r in res] == [1, 2, 3]


def test_tracker_missing_frames():
    tr = FaceTracker(max_missing=2)
    box = (100, 100, 40, 40)
    assert tr.update([box])[0][0] == 1
    tr.update([])
    tr.update([])                                  # missing 2 frames: kept
    assert tr.update([box])[0][0] == 1
    for _ in range(3):                             # missing 3 > 2: dropped
        tr.update([])
    assert tr.tracks == {}
    assert tr.update([box])[0][0] == 2
    tr.reset()
    assert tr.update([box])[0][0] == 1


def test_tracker_greedy_best_match():
    tr = FaceTracker(iou_threshold=0.1)
    tr.update([(0, 0, 10, 10)])
    # two candidates overlap the track; the better one keeps the id
    res = tr.update([(6, 0, 10, 10), (1, 0, 10, 10)])
    assert [r[0] for r in res] == [2, 1]


def test_tracker_ema():
    tr = FaceTracker(alpha=0.3)
    box = (0, 0, 20, 20)
    (_, _, p), = tr.update([box], [[1.0, 0.0]])
    np.testing.assert_allclose(p, [1.0, 0.0])
    (_, _, p), = tr.update([box], [np.array([0.0, 1.0])])
    np.testing.assert_allclose(p, [0.7, 0.3])
    (_, _, p), = tr.update([box], [np.array([0.0, 1.0])])
    np.testing.assert_allclose(p, [0.49, 0.51])
    assert p.sum() == pytest.approx(1.0)
    p[:] = 0                                       # returned copy, not state
    (_, _, p), = tr.update([box], [[0.0, 1.0]])
    np.testing.assert_allclose(p, [0.343, 0.657])
    # a new track starts from its own first vector
    res = tr.update([box, (100, 100, 20, 20)], [[0.0, 1.0], [0.25, 0.75]])
    np.testing.assert_allclose(res[1][2], [0.25, 0.75])


def test_tracker_inputs():
    tr = FaceTracker()
    assert tr.update([(0, 0, 5, 5)]) == [(1, (0, 0, 5, 5), None)]
    with pytest.raises(ValueError):
        tr.update([(0, 0, 5, 5)], [[0.5, 0.5], [0.5, 0.5]])
    with pytest.raises(ValueError):
        FaceTracker(alpha=0.0)
