"""Emotion recognition from Python in one call: :func:`detect_emotions` and :class:`EmotionRecognizer`.

    import minifer
    faces = minifer.detect_emotions("photo.jpg")       # or a PIL image, RGB or gray array
    # [{"face": 1, "box": [x, y, w, h], "label": "happy", "score": 0.91,
    #   "probabilities": {"angry": 0.01, ...}}]

:class:`EmotionRecognizer` keeps the model and the face detector loaded across calls; its
:meth:`~EmotionRecognizer.classify` takes faces that are already cropped. The face fields are
those of ``python -m minifer.predict --json`` (:func:`minifer.fer.predictor.prediction_record`).
"""
import os

import numpy as np
from PIL import Image

from .align import square_crop
from .classes import FACE_SIZE
from .faces import IMAGE_DETECT, THRESHOLD, FaceFinder
from .images import load_image, to_gray_array
from .predictor import Predictor, prediction_record, resolve_weights


def _describe(x):
    if isinstance(x, np.ndarray):
        return f"an array of shape {x.shape} and dtype {x.dtype}"
    return f"a {type(x).__name__}"


def as_gray(image):
    """A path, PIL image, RGB ``(H, W, 3)`` / RGBA or gray ``(H, W)`` uint8 array -> gray ``(H, W)`` uint8.

    A path is read as ``predict`` reads it (:func:`minifer.fer.images.load_image`: EXIF
    rotation, transparency on white). Anything else raises ``ValueError`` naming what it got.
    """
    if isinstance(image, (str, os.PathLike)):
        return to_gray_array(load_image(image))       # ImageError is a ValueError
    if isinstance(image, Image.Image):
        return to_gray_array(image)
    if isinstance(image, np.ndarray):
        ok_shape = image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (1, 3, 4))
        if image.dtype != np.uint8 or not ok_shape or image.size == 0:
            raise ValueError(f"expected an RGB (H, W, 3) or gray (H, W) uint8 image, got "
                             f"{_describe(image)}")
        if image.ndim == 3 and image.shape[2] == 1:
            image = image[..., 0]
        return to_gray_array(Image.fromarray(np.ascontiguousarray(image)))
    raise ValueError(f"expected an image path, a PIL image or a uint8 array, got {_describe(image)}")


class EmotionRecognizer:
    """The emotion model and the face detector, loaded once.

    ``weights``: a weights file, or ``model``: a model by name (:mod:`minifer.fer.catalog`;
    default: the catalog's default, shipped in the package). ``tta``: ``"none"``,
    ``"flip"`` or ``"tencrop"``. ``threshold``, ``min_face``, ``align``, ``largest`` as the
    ``predict`` options of those names. Loading errors raise
    :class:`minifer.fer.predictor.PredictorError` (a ``ValueError``).
    """

    def __init__(self, weights=None, *, model=None, tta="none", threshold=THRESHOLD,
                 min_face=IMAGE_DETECT["min_face"], align=True, largest=False):
        self.predictor = Predictor.load(resolve_weights(weights, model), tta=tta)
        self.classes = self.predictor.classes
        self.finder = FaceFinder(largest=largest, align=align, threshold=threshold,
                                 detect_size=IMAGE_DETECT["detect_size"], min_face=min_face)

    def detect_emotions(self, image):
        """The faces of ``image`` (see :func:`as_gray`), left to right: a list of dicts with
        ``face`` (1, 2, ...), ``box`` ``[x, y, w, h]``, ``label``, ``score``, ``probabilities``.

        A small image that already looks like a face crop is taken whole, as ``predict`` does.
        """
        faces, crops, _ = self.finder.find(as_gray(image))
        probs = self.predictor.predict(crops)
        return [{"face": i, "box": [int(v) for v in f.box], **prediction_record(p, self.classes)}
                for i, (f, p) in enumerate(zip(faces, probs), 1)]

    def classify(self, faces):
        """Emotions of faces that are already cropped; each is resized to 48x48 gray.

        ``faces``: one face (``(H, W)`` gray, ``(H, W, 3)`` RGB, a PIL image or a path), a batch
        array (``(N, H, W)`` gray or ``(N, H, W, 3)`` RGB) or a list of faces. Returns one dict
        (``label``, ``score``, ``probabilities``) per face.
        """
        stacked = isinstance(faces, np.ndarray) and (
            faces.ndim == 4 or (faces.ndim == 3 and faces.shape[2] not in (3, 4)))
        batch = list(faces) if stacked or isinstance(faces, (list, tuple)) else [faces]
        crops = np.zeros((len(batch), FACE_SIZE, FACE_SIZE), np.uint8)
        for i, face in enumerate(batch):
            gray = as_gray(face)
            crops[i] = square_crop(gray, (0, 0, gray.shape[1], gray.shape[0]), margin=0.0)
        return [prediction_record(p, self.classes) for p in self.predictor.predict(crops)]


_DEFAULT = {}


def detect_emotions(image, *, weights=None, **options):
    """``EmotionRecognizer(weights, **options).detect_emotions(image)``; the recognizer is kept
    for the next call with the same arguments, so only the first call loads the model."""
    key = (None if weights is None else os.fspath(weights), tuple(sorted(options.items())))
    if key not in _DEFAULT:
        _DEFAULT.clear()
        _DEFAULT[key] = EmotionRecognizer(weights, **options)
    return _DEFAULT[key].detect_emotions(image)
