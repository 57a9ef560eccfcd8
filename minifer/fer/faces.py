"""Face detection with YuNet, and :class:`FaceFinder`, which turns an image into the model's face crops.

YuNet (Wu, Peng, Yu 2023; ``yunet/yunet_s_640_640.onnx`` in this package, Apache 2.0, see
``yunet/README.md``) is a 75k-parameter CNN that OpenCV runs through ``cv2.FaceDetectorYN``.
For every face it gives a box, a score and five landmarks: the person's right eye, left eye,
nose tip, right and left mouth corner (on the image, the person's right eye is on the left).

OpenCV is imported only when a :class:`FaceDetector` is made, so importing this module is
cheap. Importing it changes nothing in the process; :func:`quiet_opencv` is the explicit call
that lowers OpenCV's log level.
"""
import os
import sys
from importlib import resources
from typing import NamedTuple

import numpy as np

from .align import align_crop, is_face_crop, square_crop
from .classes import FACE_SIZE

DETECTOR_FILE = "yunet_s_640_640.onnx"
DETECTOR_SHA256 = "8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4"
# px: the smallest face YuNet finds reliably in the image it searches (astronaut copies of
# 20 px score about 0.8, of 17 px about 0.6, of 14 px are missed; tests/test_faces.py)
SMALLEST_FOUND = 20
# Default score threshold: on the photos of benchmarks/photos.py it invents no face and misses none.
THRESHOLD = 0.7
# Defaults: long side (px) of the copy searched, smallest face (px of the original) looked for,
# and for video how often the detector runs (the tracker carries the faces in between). Photos
# add a full-size search for 20 px faces; video keeps 30 frames/s (benchmarks/realtime.py).
IMAGE_DETECT = dict(detect_size=640, min_face=20)
VIDEO_DETECT = dict(detect_size=320, min_face=None, detect_every=2)


class DetectorError(RuntimeError):
    """Face detection is unavailable: OpenCV or its ``FaceDetectorYN`` is missing, or the model file."""


class Face(NamedTuple):
    """A detected face: ``box`` ``(x, y, w, h)`` Python ints, ``landmarks`` float32 ``(5, 2)``
    (right eye, left eye, nose tip, right and left mouth corner; x, y) or ``None`` when
    unknown (a whole image taken as the face), ``score`` in [0, 1]."""
    box: tuple
    landmarks: np.ndarray
    score: float


def quiet_opencv():
    """Limit OpenCV's own log output to errors, for this process.

    OpenCV prints warnings (e.g. about a video it cannot decode) on stderr,
    which would break a command line's one-line-per-error rule. This sets
    ``OPENCV_LOG_LEVEL=ERROR`` and ``OPENCV_FFMPEG_LOGLEVEL=-8`` (FFmpeg's own messages,
    such as "moov atom not found", off) unless the environment already sets them (read
    when OpenCV is first imported) and lowers the level of an OpenCV that is
    already imported. Command lines call it at start-up; importing minifer
    never changes the environment by itself.
    """
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    cv2 = sys.modules.get("cv2")
    if cv2 is not None:
        try:
            cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
        except Exception:  # older OpenCV without cv2.utils.logging
            pass


def detector_file():
    """The path of the YuNet model shipped inside the package."""
    return resources.files(__package__).joinpath("yunet", DETECTOR_FILE)


def _check_image(image):
    image = np.asarray(image)
    if image.dtype != np.uint8 or not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (3, 4))):
        raise ValueError("expected a uint8 gray (H, W) or BGR (H, W, 3) image, got "
                         f"shape {image.shape} dtype {image.dtype}")
    if image.size == 0:
        raise ValueError("empty image")
    return image


def to_gray(image):
    """Gray ``(H, W)`` uint8 from a gray, BGR or BGRA uint8 image."""
    image = _check_image(image)
    if image.ndim == 2:
        return image
    import cv2
    return cv2.cvtColor(image, cv2.COLOR_BGRA2GRAY if image.shape[2] == 4 else cv2.COLOR_BGR2GRAY)


class FaceDetector:
    """YuNet through ``cv2.FaceDetectorYN`` (:class:`DetectorError` if unavailable).

    ``threshold`` is the lowest face score kept. Faces are searched on a copy whose long side is
    at most ``detect_size`` px; when ``min_face`` (px of the original, the smallest face side
    wanted) is too small to be found there, a second search runs on a copy large enough that
    such a face measures :data:`SMALLEST_FOUND` px, and the two are merged. Faces smaller than
    ``min_face`` are dropped. Boxes and landmarks are in the original image's pixels.
    """

    def __init__(self, threshold=THRESHOLD, detect_size=IMAGE_DETECT["detect_size"], min_face=None,
                 nms=0.3, model_path=None):
        try:
            import cv2
        except ImportError:
            raise DetectorError("face detection needs OpenCV: pip install opencv-python-headless") from None
        if not hasattr(cv2, "FaceDetectorYN"):
            raise DetectorError(f"OpenCV {cv2.__version__} has no FaceDetectorYN; "
                                "pip install 'opencv-python-headless>=4.8'")
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"threshold must be in (0, 1), got {threshold}")
        self.threshold, self.nms = float(threshold), float(nms)
        self.detect_size = int(detect_size)
        self.min_face = None if min_face is None else float(min_face)
        with resources.as_file(detector_file() if model_path is None else model_path) as path:
            if not os.path.isfile(path):
                raise DetectorError(f"face detector model not found: {path}")
            logging = getattr(cv2, "utils", None) and getattr(cv2.utils, "logging", None)
            level = logging.getLogLevel() if logging else None
            try:  # OpenCV 5 warns that its new DNN engine ignores the target: not for users
                if logging:
                    logging.setLogLevel(min(level, logging.LOG_LEVEL_ERROR))
                self._net = cv2.FaceDetectorYN.create(os.fspath(path), "", (320, 320),
                                                      self.threshold, self.nms, 5000)
            except cv2.error as e:
                raise DetectorError(f"cannot load the face detector {path}: "
                                    f"{str(e).strip().splitlines()[-1]}") from None
            finally:
                if logging:
                    logging.setLogLevel(level)
        self._cv2 = cv2

    def scales(self, shape):
        """The scales (copy size / original size, at most 1) searched for an image of ``shape``."""
        long_side = max(shape[:2])
        coarse = min(1.0, self.detect_size / long_side) if self.detect_size > 0 else 1.0
        fine = 1.0 if self.min_face is None else min(1.0, SMALLEST_FOUND / self.min_face)
        return [coarse] if self.min_face is None or fine <= coarse else [coarse, fine]

    def _search(self, image, scale):
        cv2 = self._cv2
        H, W = image.shape[:2]
        if scale < 1.0:
            size = (max(1, round(W * scale)), max(1, round(H * scale)))
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        if image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        elif image.shape[2] == 4:
            image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
        h, w = image.shape[:2]
        self._net.setInputSize((w, h))
        _, found = self._net.detect(np.ascontiguousarray(image))
        if found is None:
            return np.zeros((0, 15), np.float32)
        found = np.array(found, np.float32).reshape(-1, 15)
        found = found[np.isfinite(found).all(1)]   # a tiny image can give infinite boxes
        found[:, 0:14:2] *= np.float32(W / w)   # x, w and the landmarks' x
        found[:, 1:14:2] *= np.float32(H / h)   # y, h and the landmarks' y
        return found

    def detect(self, image):
        """The faces in a gray or BGR uint8 image: a list of :class:`Face`, left to right."""
        cv2 = self._cv2
        image = _check_image(image)
        H, W = image.shape[:2]
        found = np.concatenate([self._search(image, s) for s in self.scales(image.shape)])
        if len(found) > 1:  # the coarse and fine searches find the same faces
            keep = cv2.dnn.NMSBoxes(found[:, :4].tolist(), found[:, 14].tolist(),
                                    self.threshold, self.nms)
            found = found[np.asarray(keep, int).reshape(-1)]
        faces = []
        for f in found:
            x0, y0 = max(0, round(float(f[0]))), max(0, round(float(f[1])))
            x1, y1 = min(W, round(float(f[0] + f[2]))), min(H, round(float(f[1] + f[3])))
            if x1 <= x0 or y1 <= y0 or (self.min_face and max(f[2], f[3]) < self.min_face):
                continue
            faces.append(Face((x0, y0, x1 - x0, y1 - y0), f[4:14].reshape(5, 2).copy(), float(f[14])))
        faces.sort(key=lambda f: (f.box[0], f.box[1]))
        return faces

    __call__ = detect


class FaceFinder:
    """An image -> its faces and their crops at the model's input size.

    A small image that already looks like a face crop (:func:`~minifer.fer.align.is_face_crop`,
    when ``guess_crops``) or any image when ``detect`` is false is taken whole; otherwise a
    :class:`FaceDetector` (made on first use, so OpenCV is imported only if some image needs
    detection; ``threshold``, ``detect_size``, ``min_face`` go to it) finds the faces, and each is
    cut out aligned on its landmarks (:func:`~minifer.fer.align.align_crop`), or square around its
    box (:func:`~minifer.fer.align.square_crop`) when ``align`` is false or it has no landmarks.
    ``largest`` keeps only the largest face.
    """

    def __init__(self, detect=True, largest=False, size=FACE_SIZE, guess_crops=True, align=True,
                 threshold=THRESHOLD, detect_size=IMAGE_DETECT["detect_size"],
                 min_face=IMAGE_DETECT["min_face"]):
        self.detect = detect
        self.largest = largest
        self.size = size
        self.guess_crops = guess_crops
        self.align = align
        self._settings = dict(threshold=threshold, detect_size=detect_size, min_face=min_face)
        self._detector = None

    @property
    def detector(self):
        """The :class:`FaceDetector`, made on first use (:class:`DetectorError` if unavailable)."""
        if self._detector is None:
            self._detector = FaceDetector(**self._settings)
        return self._detector

    def faces(self, image):
        """The detected faces of a gray or BGR image (only the largest with ``largest``)."""
        faces = self.detector.detect(image)
        if self.largest and len(faces) > 1:
            faces = [max(faces, key=lambda f: (f.box[2] * f.box[3], -f.box[0], -f.box[1]))]
        return faces

    def crops(self, gray, faces):
        """uint8 ``(N, size, size)`` crops of ``faces`` from the gray image."""
        crops = np.zeros((len(faces), self.size, self.size), np.uint8)
        for i, f in enumerate(faces):
            crops[i] = (align_crop(gray, f.landmarks, self.size)
                        if self.align and f.landmarks is not None
                        else square_crop(gray, f.box, size=self.size))
        return crops

    def find(self, image):
        """``(faces, crops, whole)`` for a gray or BGR image: a list of :class:`Face`, uint8
        crops ``(N, size, size)``, and whether the whole image was taken as the face."""
        gray = to_gray(image)
        h, w = gray.shape
        if not self.detect or (self.guess_crops and is_face_crop(gray)):
            face = Face((0, 0, int(w), int(h)), None, 1.0)
            return [face], self.crops(gray, [face]), True
        faces = self.faces(image)
        return faces, self.crops(gray, faces), False
