"""Emotion recognition on a video file or a camera, frame by frame.

Each frame: OpenCV reads it (BGR), the faces are found in gray and cut out
square (:class:`minifer.fer.faces.FaceFinder`), all faces of the frame are
classified in one batch, and a :class:`minifer.fer.faces.FaceTracker` gives
every face a stable id and smooths its probabilities. :func:`run_frames` is the
loop: it hands each frame's tracks to a row writer, draws them
(:func:`minifer.fer.drawing.draw_tracks`) into an annotated video and/or a
window, and keeps :class:`VideoStats`. :func:`analyze_video` runs it all on a
file or camera.

OpenCV is imported when this module is; call :func:`minifer.fer.faces.quiet_opencv`
first to keep its log lines off stderr.
"""
import os
import sys
import time

import cv2
import numpy as np

from .drawing import draw_tracks
from .faces import DetectorError
from .writers import AtomicVideoWriter

QUIT_KEYS = (ord("q"), ord("Q"), 27)  # q or Esc closes the window
WINDOW = "minifer emotions"


class DisplayError(RuntimeError):
    """No window can be shown (no display, or an OpenCV build without GUI)."""


class VideoError(Exception):
    """The source cannot be read, a frame failed, or the annotated video cannot be
    written (one-line message)."""


# ----------------------------------------------------------------------------
# reading
# ----------------------------------------------------------------------------
def parse_source(source):
    """A camera index (``"0"`` -> ``0``) unless a file of that name exists."""
    s = str(source).strip()
    if s.isdigit() and not os.path.exists(s):
        return int(s)
    return s


def open_capture(source):
    """Open a file or camera -> ``(cv2.VideoCapture, fps or 0.0)``.

    Raises ``OSError`` with a one-line reason when it cannot be opened.
    """
    src = parse_source(source)
    if isinstance(src, str):
        if not os.path.exists(src):
            raise OSError("no such file")
        if os.path.isdir(src):
            raise OSError("is a directory, not a video file")
    cap = cv2.VideoCapture(src)
    if not cap.isOpened():
        cap.release()
        what = "camera" if isinstance(src, int) else "video file (not a video, or an unsupported format)"
        raise OSError(f"cannot open {what}")
    fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
    if not (0.0 < fps <= 1000.0) or fps != fps:
        fps = 0.0
    return cap, fps


def iter_frames(cap, fps=0.0, camera=False, max_frames=None):
    """Yield ``(index, time_s, frame_bgr)`` until the source ends.

    ``time_s`` is ``index / fps`` for files with a known rate, else the wall
    clock time since the first frame (cameras)."""
    t0 = None
    i = 0
    while max_frames is None or i < max_frames:
        ok, frame = cap.read()
        if not ok or frame is None:
            return
        now = time.perf_counter()
        if t0 is None:
            t0 = now
        if not camera and fps > 0:
            t = i / fps
        elif not camera:
            t = float(cap.get(cv2.CAP_PROP_POS_MSEC) or 0.0) / 1000.0
        else:
            t = now - t0
        yield i, t, frame
        i += 1


# ----------------------------------------------------------------------------
# one frame
# ----------------------------------------------------------------------------
def to_gray(frame):
    """BGR / BGRA / gray frame -> 2-D uint8 gray."""
    if frame.ndim == 2:
        return np.ascontiguousarray(frame, dtype=np.uint8)
    code = cv2.COLOR_BGRA2GRAY if frame.shape[2] == 4 else cv2.COLOR_BGR2GRAY
    return cv2.cvtColor(frame, code)


def analyze_frame(frame, finder, predictor, tracker):
    """Detect, classify and track the faces of one frame.

    Returns ``(tracks, timing)``: ``tracks`` is ``[(track_id, box, smoothed
    probs)]`` and ``timing`` has the seconds spent in ``detect`` (gray
    conversion, detection, cropping) and ``model``.
    """
    t0 = time.perf_counter()
    boxes, crops, _ = finder.find(to_gray(frame))
    t1 = time.perf_counter()
    probs = predictor.predict(crops) if len(crops) else np.zeros((0, len(predictor.classes)))
    t2 = time.perf_counter()
    tracks = tracker.update(boxes, list(probs))
    return tracks, {"detect": t1 - t0, "model": t2 - t1}


# ----------------------------------------------------------------------------
# the window
# ----------------------------------------------------------------------------
def open_window():
    """Open the display window (:class:`DisplayError` when none can be shown)."""
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY")
                                                 or os.environ.get("WAYLAND_DISPLAY")):
        raise DisplayError("--show needs a display (DISPLAY is not set)")
    try:
        cv2.namedWindow(WINDOW, cv2.WINDOW_NORMAL)
    except cv2.error:
        raise DisplayError("--show needs an OpenCV build with GUI support "
                           "(opencv-python, not opencv-python-headless)") from None


def close_windows():
    """Close the display window."""
    cv2.destroyAllWindows()


# ----------------------------------------------------------------------------
# the loop
# ----------------------------------------------------------------------------
class VideoStats:
    """Counts and per-stage seconds of a :func:`run_frames` run."""

    def __init__(self):
        self.frames = self.faces = 0
        self.ids = set()
        self.detect = self.model = 0.0
        self.start = time.perf_counter()
        self.written = None  # the annotated video's path, once written

    def add(self, tracks, timing):
        """Count one frame."""
        self.frames += 1
        self.faces += len(tracks)
        self.ids.update(tid for tid, _, _ in tracks)
        self.detect += timing["detect"]
        self.model += timing["model"]

    def summary(self):
        """One line: frames, faces, tracks, frames/s and milliseconds per stage."""
        n = max(self.frames, 1)
        elapsed = time.perf_counter() - self.start
        return (f"{self.frames} frames, {self.faces} faces, {len(self.ids)} tracks in "
                f"{elapsed:.1f} s ({self.frames / elapsed:.1f} frames/s; per frame: detection "
                f"{1e3 * self.detect / n:.1f} ms, model {1e3 * self.model / n:.1f} ms)")


def run_frames(frames, finder, predictor, tracker, rows=None, writer=None, show=False, stats=None):
    """Process ``(index, time_s, frame)`` items until they end, ``q``/Esc (``show``) or Ctrl-C.

    ``rows`` (a :class:`minifer.fer.writers.RowWriter`) gets every frame's
    tracks; ``writer`` (a :class:`minifer.fer.writers.AtomicVideoWriter`) and
    the window (``show``, after :func:`open_window`) get the annotated frames,
    with an FPS counter. Returns ``stats`` (a new :class:`VideoStats` if None);
    a failing ``writer`` raises :class:`VideoError`.
    """
    stats = stats if stats is not None else VideoStats()
    last = time.perf_counter()
    fps_ema = None
    try:
        for i, t, frame in frames:
            tracks, timing = analyze_frame(frame, finder, predictor, tracker)
            stats.add(tracks, timing)
            if rows is not None:
                rows.frame(i, t, tracks)
            now = time.perf_counter()
            inst = 1.0 / max(now - last, 1e-6)
            last = now
            fps_ema = inst if fps_ema is None else 0.9 * fps_ema + 0.1 * inst
            if writer is None and not show:
                continue
            draw_tracks(frame, tracks, predictor.classes, fps_ema)
            if writer is not None:
                try:
                    writer.write(frame)
                except (OSError, cv2.error) as e:
                    raise VideoError(f"{writer.path}: cannot write video "
                                          f"({getattr(e, 'strerror', None) or e})") from None
            if show:
                cv2.imshow(WINDOW, frame)
                if (cv2.waitKey(1) & 0xFF) in QUIT_KEYS:
                    break
    except KeyboardInterrupt:  # Ctrl-C ends a camera session normally
        pass
    return stats


def analyze_video(source, finder, predictor, tracker, rows=None, annotate=None, show=False,
                  max_frames=None):
    """Recognise the faces of a video file or camera (``source``, see :func:`parse_source`).

    ``rows``, ``show`` as in :func:`run_frames`; ``annotate`` is the path of the
    annotated video to write. Returns the :class:`VideoStats`. Raises
    :class:`DisplayError` (``show`` impossible) and :class:`VideoError`.
    """
    if show:
        open_window()
    try:
        cap, fps = open_capture(source)
    except OSError as e:
        raise VideoError(f"{source}: {e}") from None
    writer = AtomicVideoWriter(annotate, fps) if annotate else None
    stats = VideoStats()
    try:
        frames = iter_frames(cap, fps, isinstance(parse_source(source), int), max_frames)
        try:
            run_frames(frames, finder, predictor, tracker, rows, writer, show, stats)
        except (VideoError, DetectorError):
            raise
        except Exception as e:  # a failure on some frame: one line
            raise VideoError(f"{source}: frame {stats.frames}: {type(e).__name__}: {e}") from None
        if writer is not None:
            try:
                if writer.close():
                    stats.written = writer.path
            except OSError as e:
                raise VideoError(f"{writer.path}: cannot write video ({e.strerror or e})") from None
    finally:
        cap.release()
        if show:
            close_windows()
        if writer is not None:
            writer.discard()  # a no-op after close()
    return stats
