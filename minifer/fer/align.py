"""Face crops at the model's input size: aligned on five landmarks the way FER2013 frames its
faces (:func:`align_crop`), or square around a box (:func:`square_crop`).

FER2013's 48x48 faces are roughly registered: eyes near the same rows, the face filling the
frame. :data:`FER_LANDMARKS` is where YuNet finds the five landmarks on the Training faces
(median over the faces it finds; ``scripts/face_alignment.py template`` measures it again).
:func:`alignment_matrix` maps a detected face onto those positions with a similarity
transform: the rotation that levels the eyes, then the scale and shift that best fit all five
points (least squares), so a crop of a photo looks like the faces the model learnt from.
"""
import math

import numpy as np
from PIL import Image

from .classes import FACE_SIZE

# (x, y) in a 48x48 FER2013 face: right eye, left eye, nose tip, right and left mouth corner
# (the person's right eye is on the image's left). Median over the 27,905 of 28,709 Training
# faces YuNet finds; the middle half of the faces lie within about 1.5 px of it
# (python scripts/face_alignment.py template --data .../fer2013_train_val.npz).
FER_LANDMARKS = np.array([[14.0, 18.9], [33.1, 19.1], [23.0, 28.6], [15.7, 36.5], [31.4, 36.7]],
                         np.float64)
# The square around a YuNet box that frames a face like FER2013: side max(w, h) * (1 + margin);
# the median Training box is 39.7 x 48.3 px of 48 (scripts/face_alignment.py template).
SQUARE_MARGIN = 0.0
SHRINK_STEP = 1.5   # at most this much shrinking is left to the bilinear warp (INTER_AREA first)


def _check_gray(gray):
    gray = np.asarray(gray)
    if gray.ndim != 2 or gray.dtype != np.uint8:
        raise ValueError("expected a 2-D uint8 grayscale array, got "
                         f"shape {gray.shape} dtype {gray.dtype}")
    if gray.size == 0:
        raise ValueError("empty image")
    return gray


def alignment_matrix(landmarks, size=FACE_SIZE):
    """The 2x3 matrix ``M`` that maps image points to crop points, ``crop = M @ [x, y, 1]``.

    With ``p`` the five landmarks and ``q`` :data:`FER_LANDMARKS` scaled to ``size``: the
    rotation ``R`` turns the eye line ``p1 - p0`` parallel to ``q1 - q0``; then scale ``s`` and
    shift ``t`` minimise ``sum |s R p_i + t - q_i|^2``, which gives, with centred points
    ``p'`` (rotated) and ``q'``, ``s = sum p'.q' / sum |p'|^2`` and ``t = mean q - s R mean p``.
    """
    p = np.asarray(landmarks, np.float64).reshape(5, 2)
    q = FER_LANDMARKS * (size / FACE_SIZE)
    (dx, dy), (ex, ey) = p[1] - p[0], q[1] - q[0]
    angle = math.atan2(ey, ex) - math.atan2(dy, dx)
    c, s = math.cos(angle), math.sin(angle)
    R = np.array([[c, -s], [s, c]])
    pr = p @ R.T                                   # (5, 2) rotated landmarks
    pc, qc = pr - pr.mean(0), q - q.mean(0)
    spread = float((pc * pc).sum())
    if not np.isfinite(spread) or spread < 1e-6:
        raise ValueError("landmarks are degenerate (all at one point)")
    scale = float((pc * qc).sum()) / spread
    t = q.mean(0) - scale * pr.mean(0)
    return np.hstack([scale * R, t[:, None]])


def align_crop(gray, landmarks, size=FACE_SIZE):
    """A uint8 ``(size, size)`` face cut from ``gray`` (uint8 ``(H, W)``) aligned on its five
    ``landmarks`` (:func:`alignment_matrix`); parts outside the image repeat the edge pixels.

    A face much larger than the crop is first shrunk with area averaging (``cv2.INTER_AREA``),
    so the bilinear warp never shrinks by more than :data:`SHRINK_STEP` and does not alias.
    """
    import cv2
    gray = _check_gray(gray)
    M = alignment_matrix(landmarks, size)
    scale = math.hypot(M[0, 0], M[1, 0])
    H, W = gray.shape
    if scale * SHRINK_STEP < 1.0:
        # the part of the image the crop covers, +2 px, clipped to the image
        corners = np.array([[0, 0], [size, 0], [0, size], [size, size]], np.float64)
        inv = cv2.invertAffineTransform(M)
        xy = corners @ inv[:, :2].T + inv[:, 2]
        x0, y0 = np.maximum(np.floor(xy.min(0)) - 2, 0).astype(int)
        x1, y1 = np.minimum(np.ceil(xy.max(0)) + 2, [W, H]).astype(int)
        if x1 - x0 >= 2 and y1 - y0 >= 2:
            r = scale * SHRINK_STEP                     # shrink factor of the region
            region = gray[y0:y1, x0:x1]
            w, h = max(1, round((x1 - x0) * r)), max(1, round((y1 - y0) * r))
            gray = cv2.resize(region, (w, h), interpolation=cv2.INTER_AREA)
            # crop = A x + t, with x = (u + 1/2) f - 1/2 + origin for a pixel u of the small copy
            fx, fy = (x1 - x0) / w, (y1 - y0) / h
            origin = [x0 + (fx - 1) / 2, y0 + (fy - 1) / 2]
            M = np.hstack([M[:, :2] * [fx, fy], (M[:, :2] @ origin + M[:, 2])[:, None]])
    return cv2.warpAffine(np.ascontiguousarray(gray), M, (size, size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)


def square_crop(gray, box, margin=SQUARE_MARGIN, size=FACE_SIZE):
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
