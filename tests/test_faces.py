"""Tests for minifer.fer.faces: the YuNet detector shipped in the package, and FaceFinder."""
import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from minifer.fer.faces import (DETECTOR_SHA256, DetectorError, Face, FaceDetector, FaceFinder,
                               detector_file)
from minifer.fer.images import load_image, to_gray_array

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "images"


@pytest.fixture(scope="module")
def detector():
    return FaceDetector()


@pytest.fixture(scope="module")
def astronaut():
    return to_gray_array(load_image(EXAMPLES / "astronaut.jpg"))


def test_import_does_not_load_cv2():
    code = "import sys, minifer.fer.faces; print('cv2' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True,
                         text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_detector_ships_in_the_installed_package(tmp_path):
    # from another folder, the model is found through importlib.resources, with its licence
    code = ("import hashlib, minifer.fer.faces as f; p = f.detector_file(); "
            "print(hashlib.sha256(p.read_bytes()).hexdigest()); "
            "print('Apache License' in p.parent.joinpath('LICENSE').read_text()); "
            "print(len(f.FaceDetector().detect(__import__('numpy').zeros((64, 64), 'uint8'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [DETECTOR_SHA256, "True", "0"]
    assert hashlib.sha256(detector_file().read_bytes()).hexdigest() == DETECTOR_SHA256


# ------------------------------------------------------------- detector

def test_astronaut_has_one_face(detector, astronaut):
    assert astronaut.shape == (512, 512)
    (face,) = detector.detect(astronaut)
    x, y, w, h = face.box
    assert all(type(v) is int for v in face.box)
    assert abs(x + w / 2 - 222) < 15 and abs(y + h / 2 - 120) < 15 and 80 <= w <= 110
    assert face.score > 0.8 and face.landmarks.shape == (5, 2)
    (rx, ry), (lx, ly) = face.landmarks[:2]
    assert rx < lx and abs(ry - ly) < 5                        # person's right eye on the left
    assert y < ry < face.landmarks[2, 1] < face.landmarks[3, 1] < y + h   # eyes, nose, mouth


def test_gray_and_color_agree(detector):
    bgr = np.asarray(Image.open(EXAMPLES / "astronaut.jpg"))[..., ::-1]
    (f_bgr,), (f_gray,) = detector.detect(bgr), detector.detect(to_gray_array(load_image(EXAMPLES / "astronaut.jpg")))
    assert max(abs(a - b) for a, b in zip(f_bgr.box, f_gray.box)) <= 6


def test_cat_has_no_face(detector):
    cat = to_gray_array(load_image(EXAMPLES / "chelsea_cat.jpg"))
    assert detector.detect(cat) == []


def test_large_image_boxes_mapped_back(detector, astronaut):
    big = np.asarray(Image.fromarray(astronaut).resize((1280, 1280), Image.Resampling.BILINEAR))
    (face,) = detector.detect(big)              # searched at 640 px, mapped back x2
    x, y, w, h = face.box
    assert abs(x + w / 2 - 2.5 * 222) < 40 and abs(y + h / 2 - 2.5 * 120) < 40
    assert 200 <= w <= 280
    (small,) = detector.detect(astronaut)
    np.testing.assert_allclose(face.landmarks, small.landmarks * 2.5, atol=12)


def test_small_faces_need_the_fine_search(astronaut):
    # 16 copies of the photo at 140 px in a 2240 px wide image: faces of about 25 px
    tile = np.asarray(Image.fromarray(astronaut).resize((140, 140), Image.Resampling.LANCZOS))
    big = np.full((420, 2240), 128, np.uint8)
    for i in range(16):
        big[140:280, i * 140:(i + 1) * 140] = tile
    coarse = FaceDetector(detect_size=640)              # a 25 px face is 7 px there: missed
    fine = FaceDetector(detect_size=640, min_face=20)   # adds a search at full size
    assert coarse.scales(big.shape) == [640 / 2240] and fine.scales(big.shape) == [640 / 2240, 1.0]
    assert coarse.detect(big) == []
    faces = fine.detect(big)
    assert [f.box[0] // 140 for f in faces] == list(range(16))    # all, sorted left to right
    assert all(20 <= f.box[2] <= 30 for f in faces)
    assert FaceDetector(detect_size=640, min_face=40).detect(big) == []  # all below 40 px


def test_detect_edge_cases(detector):
    assert detector.detect(np.zeros((10, 10), np.uint8)) == []
    assert detector.detect(np.full((480, 640), 128, np.uint8)) == []
    assert detector.detect(np.zeros((10, 10, 4), np.uint8)) == []
    for bad in (np.zeros((10, 10, 2), np.uint8), np.zeros((10, 10), np.float32),
                np.zeros((0, 5), np.uint8)):
        with pytest.raises(ValueError):
            detector.detect(bad)
    with pytest.raises(ValueError):
        FaceDetector(threshold=1.5)


def test_missing_model_or_cv2(monkeypatch, tmp_path):
    with pytest.raises(DetectorError, match="not found"):
        FaceDetector(model_path=tmp_path / "no_such_model.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not an onnx model")
    with pytest.raises(DetectorError, match="cannot load"):
        FaceDetector(model_path=junk)
    monkeypatch.setitem(sys.modules, "cv2", None)     # import cv2 -> ImportError
    with pytest.raises(DetectorError, match="opencv-python-headless"):
        FaceDetector()


# --------------------------------------------------------------- finder

def test_finder_aligned_and_square_crops(astronaut):
    faces, crops, whole = FaceFinder().find(astronaut)
    assert not whole and len(faces) == 1 and crops.shape == (1, 48, 48) and crops.dtype == np.uint8
    _, square, _ = FaceFinder(align=False).find(astronaut)
    assert square.shape == (1, 48, 48) and not np.array_equal(square, crops)


def test_finder_whole_image_and_largest(astronaut):
    faces, crops, whole = FaceFinder().find(astronaut[100:148, 200:248])   # a 48x48 crop
    assert whole and faces[0].box == (0, 0, 48, 48) and faces[0].landmarks is None
    np.testing.assert_array_equal(crops[0], astronaut[100:148, 200:248])
    faces, _, whole = FaceFinder(detect=False).find(astronaut)
    assert whole and faces[0].box == (0, 0, 512, 512)
    pair = np.full((512, 1024), 128, np.uint8)
    pair[:, :512] = astronaut
    pair[128:384, 640:896] = np.asarray(Image.fromarray(astronaut).resize((256, 256)))
    assert len(FaceFinder().find(pair)[0]) == 2
    (big,), crops, _ = FaceFinder(largest=True).find(pair)
    assert big.box[0] < 512 and len(crops) == 1


def test_face_is_a_named_tuple():
    f = Face((1, 2, 3, 4), None, 0.5)
    assert f.box == (1, 2, 3, 4) and f.score == 0.5
