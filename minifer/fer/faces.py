"""Face detection (OpenCV Haar cascade), square face crops, video tracking, and
:class:`FaceFinder`, which turns a gray image into the model's face crops.

OpenCV is imported only when a :class:`FaceDetector` is made, so importing
this module is cheap and :func:`square_crop`, :func:`is_face_crop`,
:func:`iou` and :class:`FaceTracker` work without OpenCV installed. Importing
it changes nothing in the process; :func:`quiet_opencv` is the explicit call
that lowers OpenCV's log level.
"""
import os
import sys

import numpy as np
from PIL import Image

from .classes import FACE_SIZE

CASCADE_NAME = "haarcascade_frontalface_default.xml"
_INSTALL_HINT = ('pip install "opencv-python-headless<5" '
                 "(OpenCV 5.x wheels no longer ship the Haar cascade files)")
# Detection settings (long side in px of the copy searched, cascade scale step):
# photos favour finding small faces, video the 33 ms frame budget
# (measured in benchmarks/realtime.py).
IMAGE_DETECT = (640, 1.1)
VIDEO_DETECT = (320, 1.2)


class DetectorError(RuntimeError):
    """Face detection is unavailable: OpenCV or its Haar cascade file is missing."""


def quiet_opencv():
    """Limit OpenCV's own log output to errors, for this process.

    OpenCV prints warnings (e.g. about a video it cannot decode) on stderr,
    which would break a command line's one-line-per-error rule. This sets
    ``OPENCV_LOG_LEVEL=ERROR`` unless the environment already sets it (read
    when OpenCV is first imported) and lowers the level of an OpenCV that is
    already imported. Command lines call it at start-up; importing minifer
    never changes the environment by itself.
    """
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
    cv2 = sys.modules.get("cv2")
    if cv2 is not None:
        try:
            cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
        except Exception:  # older OpenCV without cv2.utils.logging
            pass


def _check_gray(gray):
    gray = np.asarray(gray)
    if gray.ndim != 2 or gray.dtype != np.uint8:
        raise ValueError("expected a 2-D uint8 grayscale array, got "
                         f"shape {gray.shape} dtype {gray.dtype}")
    if gray.size == 0:
        raise ValueError("empty image")
    return gray


class FaceDetector:
    """Frontal face detector based on OpenCV's Haar cascade (:class:`DetectorError`
    if OpenCV or the cascade file is missing).

    Images whose long side exceeds ``max_side`` are downscaled for detection
    (boxes are mapped back to full resolution). ``min_size`` is the smallest
    face side in original pixels; by default ``max(24, min(H, W) // 20)``.
    """

    def __init__(self, scale_factor=1.1, min_neighbors=5, min_size=None,
                 max_side=640, cascade_path=None):
        try:
            import cv2
        except ImportError:
            raise DetectorError(
                f"face detection needs OpenCV: {_INSTALL_HINT}") from None
        if cascade_path is None:
            folder = getattr(getattr(cv2, "data", None), "haarcascades", None)
            if not folder:
                raise DetectorError(
                    f"this OpenCV build has no Haar cascade files: {_INSTALL_HINT}")
            cascade_path = os.path.join(folder, CASCADE_NAME)
        cascade_path = os.fspath(cascade_path)
        if not os.path.isfile(cascade_path):
            raise DetectorError(
                f"Haar cascade file not found: {cascade_path}; {_INSTALL_HINT}")
        cascade = cv2.CascadeClassifier(cascade_path)
        if cascade.empty():
            raise DetectorError(f"could not load Haar cascade {cascade_path}")
        self._cv2 = cv2
        self._cascade = cascade
        self.cascade_path = cascade_path
        self.scale_factor = float(scale_factor)
        self.min_neighbors = int(min_neighbors)
        self.min_size = min_size
        self.max_side = int(max_side)

    def detect(self, gray):
        """Return face boxes ``[(x, y, w, h), ...]`` in ``gray`` (uint8, HxW),
        sorted left to right, as Python ints in full-resolution pixels."""
        cv2 = self._cv2
        gray = np.ascontiguousarray(_check_gray(gray))
        H, W = gray.shape
        min_face = (int(self.min_size) if self.min_size is not None
                    else max(24, min(H, W) // 20))
        scale = 1.0
        small = gray
        if self.max_side and max(H, W) > self.max_side:
            scale = self.max_side / max(H, W)
            size = (max(1, round(W * scale)), max(1, round(H * scale)))
            small = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
        min_small = max(24, round(min_face * scale))
        if min(small.shape) < min_small:
            return []
        found = self._cascade.detectMultiScale(
            small, scaleFactor=self.scale_factor,
            minNeighbors=self.min_neighbors, minSize=(min_small, min_small))
        boxes = []
        for x, y, w, h in np.asarray(found, dtype=np.float64).reshape(-1, 4):
            x0 = min(max(int(round(x / scale)), 0), W - 1)
            y0 = min(max(int(round(y / scale)), 0), H - 1)
            x1 = min(max(int(round((x + w) / scale)), x0 + 1), W)
            y1 = min(max(int(round((y + h) / scale)), y0 + 1), H)
            boxes.append((x0, y0, x1 - x0, y1 - y0))
        boxes.sort(key=lambda b: (b[0], b[1]))
        return boxes

    __call__ = detect


def square_crop(gray, box, margin=0.2, size=FACE_SIZE):
    """Cut a square face patch around ``box`` and resize it to ``size``.

    The square is centred on ``box = (x, y, w, h)`` with side
    ``max(w, h) * (1 + margin)``. Parts outside the image are filled by
    repeating the edge pixels. Returns a ``uint8`` array ``(size, size)``.
    """
    gray = _check_gray(gray)
    H, W = gray.shape
    x, y, w, h = (float(v) for v in box)
    if w <= 0 or h <= 0:
        raise ValueError(f"box must have positive width and height: {box}")
    side = max(1, int(round(max(w, h) * (1.0 + margin))))
    x0 = int(round(x + w / 2.0 - side / 2.0))
    y0 = int(round(y + h / 2.0 - side / 2.0))
    x1, y1 = x0 + side, y0 + side
    cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, W), min(y1, H)
    if cx0 >= cx1 or cy0 >= cy1:
        raise ValueError(f"box {box} lies outside the {W}x{H} image")
    patch = gray[cy0:cy1, cx0:cx1]
    pad = ((cy0 - y0, y1 - cy1), (cx0 - x0, x1 - cx1))
    if any(v for pair in pad for v in pair):
        patch = np.pad(patch, pad, mode="edge")
    if side != size:
        patch = np.asarray(Image.fromarray(patch).resize(
            (size, size), Image.Resampling.BILINEAR))
    return np.array(patch, dtype=np.uint8)


def is_face_crop(gray, max_side=96, square_max_side=160, max_aspect=1.25):
    """Guess whether ``gray`` is already a tight face crop (e.g. FER 48x48).

    True if both sides are at most ``max_side``, or the image is nearly
    square (aspect ratio up to ``max_aspect``) with both sides at most
    ``square_max_side``. ``gray`` is an array or a ``(H, W)`` shape.
    """
    shape = gray.shape if hasattr(gray, "shape") else tuple(gray)
    h, w = int(shape[0]), int(shape[1])
    if h <= 0 or w <= 0:
        return False
    if max(h, w) <= max_side:
        return True
    return max(h, w) <= square_max_side and max(h, w) / min(h, w) <= max_aspect


class FaceFinder:
    """Gray image -> face boxes and square crops of the model's input size.

    A small image that already looks like a face crop (:func:`is_face_crop`,
    when ``guess_crops``) or any image when ``detect`` is false is taken whole;
    otherwise a :class:`FaceDetector` (made on first use, so OpenCV is imported
    only if some image needs detection) finds the faces and each is cut out
    with :func:`square_crop`. ``largest`` keeps only the largest face.
    """

    def __init__(self, detect=True, min_neighbors=5, largest=False, size=FACE_SIZE, margin=0.2,
                 guess_crops=True, detect_size=IMAGE_DETECT[0], scale_factor=IMAGE_DETECT[1]):
        self.detect = detect
        self.detect_size = detect_size
        self.scale_factor = scale_factor
        self.guess_crops = guess_crops
        self.min_neighbors = min_neighbors
        self.largest = largest
        self.size = size
        self.margin = margin
        self._detector = None

    @property
    def detector(self):
        """The :class:`FaceDetector`, made on first use (:class:`DetectorError` if unavailable)."""
        if self._detector is None:
            self._detector = FaceDetector(min_neighbors=self.min_neighbors,
                                          max_side=self.detect_size,
                                          scale_factor=self.scale_factor)
        return self._detector

    def find(self, gray):
        """``(boxes, crops, whole)``: boxes ``(x, y, w, h)``, uint8 crops
        ``(N, size, size)``, and whether the whole image was taken as the face."""
        h, w = gray.shape
        if not self.detect or (self.guess_crops and is_face_crop(gray)):
            box = (0, 0, int(w), int(h))
            return [box], square_crop(gray, box, margin=0.0, size=self.size)[None], True
        boxes = self.detector.detect(gray)
        if self.largest and len(boxes) > 1:
            boxes = [max(boxes, key=lambda b: (b[2] * b[3], -b[0], -b[1]))]
        crops = np.zeros((len(boxes), self.size, self.size), np.uint8)
        for i, b in enumerate(boxes):
            crops[i] = square_crop(gray, b, margin=self.margin, size=self.size)
        return boxes, crops, False


def iou(a, b):
    """Intersection over union of two ``(x, y, w, h)`` boxes, in ``[0, 1]``."""
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    iw = min(ax + aw, bx + bw) - max(ax, bx)
    ih = min(ay + ah, by + bh) - max(ay, by)
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = float(iw) * float(ih)
    union = float(aw) * float(ah) + float(bw) * float(bh) - inter
    return inter / union if union > 0 else 0.0


class _Track:
    __slots__ = ("id", "box", "probs", "missing")

    def __init__(self, track_id, box, probs):
        self.id = track_id
        self.box = box
        self.probs = probs
        self.missing = 0


class FaceTracker:
    """Give faces stable ids across video frames and smooth their predictions.

    Each :meth:`update` matches the frame's boxes to existing tracks greedily
    by IoU (best pairs first, at least ``iou_threshold``). A matched track
    takes the new box and smooths its probabilities with an exponential
    moving average, ``p = alpha * new + (1 - alpha) * p``; unmatched boxes
    start new tracks; a track unseen for more than ``max_missing`` frames is
    dropped.
    """

    def __init__(self, iou_threshold=0.3, max_missing=5, alpha=0.5):
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"alpha must be in (0, 1], got {alpha}")
        self.iou_threshold = float(iou_threshold)
        self.max_missing = int(max_missing)
        self.alpha = float(alpha)
        self._tracks = []
        self._next_id = 1

    def reset(self):
        """Forget all tracks (ids start again from 1)."""
        self._tracks = []
        self._next_id = 1

    @property
    def tracks(self):
        """Live tracks as ``{track_id: (box, smoothed_probs, frames_missing)}``."""
        return {t.id: (t.box, t.probs, t.missing) for t in self._tracks}

    def update(self, boxes, probs=None):
        """Feed one frame; return ``[(track_id, box, smoothed_probs), ...]``.

        ``boxes`` are ``(x, y, w, h)``; ``probs`` is one probability vector
        per box (or ``None`` to track boxes only, giving ``None`` back). The
        result is in the order of ``boxes``.
        """
        boxes = [tuple(int(v) for v in b) for b in boxes]
        if probs is None:
            probs = [None] * len(boxes)
        else:
            probs = [None if p is None else np.asarray(p, dtype=np.float64)
                     for p in probs]
            if len(probs) != len(boxes):
                raise ValueError(f"got {len(boxes)} boxes but {len(probs)} "
                                 "probability vectors")

        pairs = []
        for ti, t in enumerate(self._tracks):
            for bi, b in enumerate(boxes):
                s = iou(t.box, b)
                if s >= self.iou_threshold and s > 0.0:
                    pairs.append((s, ti, bi))
        pairs.sort(key=lambda p: (-p[0], p[1], p[2]))
        track_for_box = {}
        used = set()
        for s, ti, bi in pairs:
            if ti in used or bi in track_for_box:
                continue
            used.add(ti)
            track_for_box[bi] = self._tracks[ti]

        results = []
        for bi, (box, p) in enumerate(zip(boxes, probs)):
            t = track_for_box.get(bi)
            if t is None:
                t = _Track(self._next_id, box, None if p is None else p.copy())
                self._next_id += 1
                self._tracks.append(t)
            else:
                t.box = box
                if p is not None:
                    if t.probs is None or t.probs.shape != p.shape:
                        t.probs = p.copy()
                    else:
                        t.probs = self.alpha * p + (1.0 - self.alpha) * t.probs
            results.append((t.id, box, None if t.probs is None else t.probs.copy()))

        seen = {r[0] for r in results}
        for t in self._tracks:
            t.missing = 0 if t.id in seen else t.missing + 1
        self._tracks = [t for t in self._tracks if t.missing <= self.max_missing]
        return results
