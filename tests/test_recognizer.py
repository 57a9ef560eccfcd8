"""Tests for the Python API: minifer.detect_emotions, minifer.EmotionRecognizer (the shipped weights)."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import minifer
from minifer.fer.predictor import default_weights

ROOT = Path(__file__).resolve().parents[1]
ASTRONAUT = ROOT / "examples" / "images" / "astronaut.jpg"
FIELDS = ["face", "box", "label", "score", "probabilities"]


@pytest.fixture(scope="module")
def recognizer():
    return minifer.EmotionRecognizer()


def test_four_kinds_of_image_give_the_same_faces(recognizer):
    img = Image.open(ASTRONAUT)
    rgb = np.asarray(img)
    gray = np.asarray(img.convert("L"))
    results = [recognizer.detect_emotions(x) for x in (ASTRONAUT, str(ASTRONAUT), img, rgb, gray)]
    for faces in results:
        assert len(faces) == 1 and list(faces[0]) == FIELDS
        assert faces[0]["label"] == results[0][0]["label"]
        assert abs(faces[0]["score"] - results[0][0]["score"]) < 1e-6
    f = results[0][0]
    assert f["face"] == 1 and len(f["box"]) == 4 and all(type(v) is int for v in f["box"])
    assert list(f["probabilities"]) == recognizer.classes
    assert sum(f["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    assert f["score"] == max(f["probabilities"].values())
    assert recognizer.detect_emotions(np.asarray(Image.open(ROOT / "examples/images/chelsea_cat.jpg"))) == []


def test_the_same_fields_as_predict_json(recognizer):
    out = subprocess.run([sys.executable, "-m", "minifer.predict", "--json", str(ASTRONAUT)],
                         capture_output=True, text=True, cwd=ROOT, check=True).stdout
    (doc,) = json.loads(out)
    assert doc["faces"] == recognizer.detect_emotions(ASTRONAUT)


def test_module_level_function_keeps_its_recognizer():
    first = minifer.detect_emotions(ASTRONAUT)
    from minifer.fer import recognizer as api
    kept = dict(api._DEFAULT)
    assert minifer.detect_emotions(ASTRONAUT) == first and api._DEFAULT == kept
    assert minifer.detect_emotions(ASTRONAUT, weights=default_weights()) == first


def test_classify_cropped_faces(recognizer):
    rgb = np.asarray(Image.open(ASTRONAUT))
    face = rgb[60:180, 170:280]                              # a face, already cut out
    (one,) = recognizer.classify(face)
    assert list(one) == ["label", "score", "probabilities"]
    assert len(recognizer.classify([face, face[..., 0], Image.fromarray(face)])) == 3
    assert len(recognizer.classify(np.zeros((5, 48, 48), np.uint8))) == 5    # a gray batch
    assert len(recognizer.classify(np.zeros((2, 60, 50, 3), np.uint8))) == 2  # an RGB batch
    batch = recognizer.classify(np.stack([face, face]))
    assert batch[0] == batch[1] == one


@pytest.mark.parametrize("bad,words", [
    (np.zeros((5, 5), np.float32), "shape (5, 5) and dtype float32"),
    (np.zeros((4, 4, 2), np.uint8), "shape (4, 4, 2)"),
    (np.zeros((2, 3, 4, 5), np.uint8), "shape (2, 3, 4, 5)"),
    (np.zeros((0, 3), np.uint8), "shape (0, 3)"),
    (None, "NoneType"),
    ([1, 2, 3], "list"),
    ("no_such_photo.jpg", "no_such_photo.jpg: no such file"),
])
def test_malformed_input_is_a_value_error(recognizer, bad, words):
    with pytest.raises(ValueError) as e:
        recognizer.detect_emotions(bad)
    assert words in str(e.value)


def test_load_model_and_version():
    model = minifer.load_model(default_weights())
    assert model.meta["classes"][3] == "happy"
    assert minifer.__version__.count(".") == 2
    with pytest.raises(AttributeError):
        minifer.no_such_name
