"""Tests for minifer.fer.tracking: ids, smoothing, boxes carried between detections, timeouts."""
import numpy as np
import pytest

from minifer.fer.faces import Face
from minifer.fer.tracking import FaceTracker, iou


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


def _face(x, y, w=40):
    marks = np.array([[x + 10, y + 15], [x + 30, y + 15], [x + 20, y + 25],
                      [x + 12, y + 32], [x + 28, y + 32]], np.float32)
    return Face((x, y, w, w), marks, 0.9)


def test_predict_carries_faces_at_their_velocity():
    tr = FaceTracker()
    tr.update([_face(100, 50)])
    tr.update([_face(104, 52)])                    # moving (+4, +2) per frame
    (guess,) = tr.predict()
    assert guess.box == (108, 54, 40, 40)
    np.testing.assert_allclose(guess.landmarks, _face(108, 54).landmarks)
    (res,) = tr.update([guess], [[0.2, 0.8]], detected=False)
    assert res[0] == 1 and res[1] == (108, 54, 40, 40)
    (guess,) = tr.predict()                        # still moving from the last detection
    assert guess.box == (112, 56, 40, 40)
    tr.update([guess], detected=False)
    # the next detection matches the predicted box, far from the last detected one
    (res,) = tr.update([_face(116, 58)])
    assert res[0] == 1 and not tr.needs_detection
    with pytest.raises(ValueError, match="predict"):
        tr.update([], detected=False)


def test_fast_face_keeps_its_id_thanks_to_the_prediction():
    tr = FaceTracker(iou_threshold=0.3)
    for i, x in enumerate([0, 12, 37, 62, 87, 112]):   # then 25 px a frame: IoU with the
        (res,) = tr.update([_face(x, 0)])               # last box 0.23, with the predicted 1
        assert res[0] == 1, i


def test_missed_detection_asks_for_another_and_times_out():
    tr = FaceTracker(max_missing=3)
    tr.update([_face(0, 0)])
    assert not tr.needs_detection
    assert tr.update([]) == []                     # the detector missed it: not shown...
    assert tr.needs_detection and 1 in tr.tracks  # ...kept, and a detection is asked for
    assert tr.predict() == []                      # nothing to carry on
    tr.update([])
    (res,) = tr.update([_face(0, 0)])              # found again 3 frames later: same id
    assert res[0] == 1 and not tr.needs_detection
    for _ in range(4):                             # 4 frames without it > 3: dropped
        tr.update([])
    assert tr.tracks == {} and not tr.needs_detection
    assert tr.update([_face(0, 0)])[0][0] == 2


def test_two_faces_one_missed():
    tr = FaceTracker(max_missing=5)
    tr.update([_face(0, 0), _face(200, 0)])
    res = tr.update([_face(200, 0)])
    assert [r[0] for r in res] == [2] and tr.needs_detection
    assert [f.box for f in tr.predict()] == [(200, 0, 40, 40)]
