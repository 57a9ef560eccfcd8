"""Faces followed across video frames: stable ids, smoothed probabilities, and boxes carried
between detections.

A video need not run the detector on every frame. :meth:`FaceTracker.predict` moves each
visible face (box and landmarks) on at the velocity seen between its last two detections, and
:meth:`FaceTracker.update` takes either a frame's detections (``detected=True``, matched to the
tracks by IoU) or those predictions (``detected=False``). A track a detection misses is not
shown, asks for a detection on the next frame (:attr:`FaceTracker.needs_detection`), and is
dropped once it has gone ``max_missing`` frames without one.
"""
import numpy as np

from .faces import Face


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


def _as_face(f):
    """A :class:`Face` from a Face or a bare ``(x, y, w, h)`` box (landmarks then unknown)."""
    if isinstance(f, Face):
        return f
    x, y, w, h = (int(v) for v in f)
    return Face((x, y, w, h), None, 1.0)


class _Track:
    __slots__ = ("id", "face", "probs", "last_seen", "state", "velocity")

    def __init__(self, track_id, face, probs, frame):
        self.id, self.face, self.probs, self.last_seen = track_id, face, probs, frame
        self.state = self._state(face)            # box and landmarks as one float vector (14,)
        self.velocity = np.zeros_like(self.state)  # its change per frame

    @staticmethod
    def _state(face):
        marks = np.zeros(10) if face.landmarks is None else np.asarray(face.landmarks, np.float64)
        return np.concatenate([np.asarray(face.box, np.float64), marks.ravel()])

    def detected(self, face, frame):
        """A detection at ``frame``: new state, velocity from the previous detection."""
        state = self._state(face)
        self.velocity = (state - self.state) / max(frame - self.last_seen, 1)
        self.state, self.face, self.last_seen = state, face, frame

    def at(self, frame):
        """The face moved on to ``frame`` at the track's velocity."""
        s = self.state + self.velocity * (frame - self.last_seen)
        x, y, w, h = (int(round(v)) for v in s[:4])
        marks = None if self.face.landmarks is None else s[4:].reshape(5, 2).astype(np.float32)
        return Face((x, y, max(w, 1), max(h, 1)), marks, self.face.score)


class FaceTracker:
    """Give faces stable ids across video frames and smooth their predictions.

    Each :meth:`update` with detections matches them to the tracks greedily by the IoU of each
    track's predicted box (best pairs first, at least ``iou_threshold``); unmatched detections
    start new tracks. A matched track smooths its probabilities with an exponential moving
    average, ``p = alpha * new + (1 - alpha) * p``. A track unseen by the detector for more than
    ``max_missing`` frames is dropped.
    """

    def __init__(self, iou_threshold=0.3, max_missing=10, alpha=0.5):
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"alpha must be in (0, 1], got {alpha}")
        self.iou_threshold = float(iou_threshold)
        self.max_missing = int(max_missing)
        self.alpha = float(alpha)
        self.reset()

    def reset(self):
        """Forget all tracks (ids start again from 1)."""
        self._tracks = []
        self._visible = []        # the tracks shown on the last frame, in its order
        self._next_id = 1
        self.frame = -1           # index of the last frame given to update()
        self.needs_detection = False

    @property
    def tracks(self):
        """Live tracks as ``{track_id: (box, smoothed_probs, frames_since_detected)}``."""
        return {t.id: (t.face.box, t.probs, self.frame - t.last_seen) for t in self._tracks}

    def predict(self):
        """The faces of the tracks shown on the last frame, moved on to the next frame."""
        return [t.at(self.frame + 1) for t in self._visible]

    def _smooth(self, t, p):
        if p is None:
            return
        if t.probs is None or t.probs.shape != p.shape:
            t.probs = p.copy()
        else:
            t.probs = self.alpha * p + (1.0 - self.alpha) * t.probs

    def _match(self, faces):
        """``{face index: track}`` by greedy IoU against each track's predicted box."""
        pairs = []
        for ti, t in enumerate(self._tracks):
            guess = t.at(self.frame).box
            for fi, f in enumerate(faces):
                s = iou(guess, f.box)
                if s >= self.iou_threshold and s > 0.0:
                    pairs.append((s, ti, fi))
        pairs.sort(key=lambda p: (-p[0], p[1], p[2]))
        matched, used = {}, set()
        for _, ti, fi in pairs:
            if ti not in used and fi not in matched:
                used.add(ti)
                matched[fi] = self._tracks[ti]
        return matched

    def update(self, faces, probs=None, detected=True):
        """Feed one frame; return ``[(track_id, box, smoothed_probs), ...]`` in the order of ``faces``.

        ``faces`` are :class:`~minifer.fer.faces.Face` or ``(x, y, w, h)`` boxes: the frame's
        detections, or with ``detected=False`` the list :meth:`predict` returned. ``probs`` is
        one probability vector per face (or ``None`` to track boxes only, giving ``None`` back).
        """
        faces = [_as_face(f) for f in faces]
        if probs is None:
            probs = [None] * len(faces)
        else:
            probs = [None if p is None else np.asarray(p, dtype=np.float64) for p in probs]
            if len(probs) != len(faces):
                raise ValueError(f"got {len(faces)} faces but {len(probs)} probability vectors")
        self.frame += 1
        if not detected:
            if len(faces) != len(self._visible):
                raise ValueError("detected=False takes the faces predict() returned")
            for t, f, p in zip(self._visible, faces, probs):
                t.face = f
                self._smooth(t, p)
            return [(t.id, t.face.box, None if t.probs is None else t.probs.copy())
                    for t in self._visible]

        matched = self._match(faces)
        shown = []
        for fi, (f, p) in enumerate(zip(faces, probs)):
            t = matched.get(fi)
            if t is None:
                t = _Track(self._next_id, f, None, self.frame)
                self._next_id += 1
                self._tracks.append(t)
            else:
                t.detected(f, self.frame)
            self._smooth(t, p)
            shown.append(t)
        self._tracks = [t for t in self._tracks if self.frame - t.last_seen <= self.max_missing]
        self.needs_detection = len(shown) < len(self._tracks)   # a live track was missed
        self._visible = shown
        return [(t.id, t.face.box, None if t.probs is None else t.probs.copy()) for t in shown]
