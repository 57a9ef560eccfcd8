"""Emotion recognition on a video file or a camera, frame by frame.

Each frame: OpenCV reads it (BGR), YuNet finds the faces (on every frame, or every
N-th with the tracker carrying them in between), each is cut out aligned on its
landmarks (:class:`minifer.fer.faces.FaceFinder`), all faces of the frame are
classified in one batch, and a :class:`minifer.fer.tracking.FaceTracker` gives
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
from .faces import DetectorError, to_gray
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


def seek(cap, index):
    """Move a file's capture to frame ``index`` -> True if it got there.

    OpenCV seeks to the key frame before it and decodes on; a capture that then reports
    another position is taken back to the start and skips ``index`` frames one by one."""
    cap.set(cv2.CAP_PROP_POS_FRAMES, index)
    if int(cap.get(cv2.CAP_PROP_POS_FRAMES)) == index:
        return True
    cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
    return all(cap.grab() for _ in range(index))


def iter_frames(cap, fps=0.0, camera=False, max_frames=None, start=0):
    """Yield ``(index, time_s, frame_bgr)`` until the source ends.

    ``time_s`` is ``index / fps`` for files with a known rate, else the wall
    clock time since the first frame (cameras). ``start`` > 0 (files) begins at that
    frame (:func:`seek`); ``max_frames`` counts from there."""
    if start and not seek(cap, start):
        return
    t0 = None
    i = start
    while max_frames is None or i - start < max_frames:
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
def analyze_frame(frame, finder, predictor, tracker, detect=True):
    """Find, align, classify and track the faces of one frame.

    ``detect`` runs the detector; otherwise the tracker's predicted faces are used
    (:meth:`minifer.fer.tracking.FaceTracker.predict`). All faces are classified in one batch.
    Returns ``(tracks, timing)``: ``tracks`` is ``[(track_id, box, smoothed probs)]`` and
    ``timing`` the seconds spent in each of ``detect``, ``align``, ``classify``, ``track``.
    """
    t0 = time.perf_counter()
    if not finder.detect:
        faces = finder.find(frame)[0]            # the whole frame is the face
    elif detect:
        faces = finder.faces(frame)
    else:
        faces = tracker.predict()
    t1 = time.perf_counter()
    crops = finder.crops(to_gray(frame), faces)
    t2 = time.perf_counter()
    probs = predictor.predict(crops) if len(crops) else np.zeros((0, len(predictor.classes)))
    t3 = time.perf_counter()
    tracks = tracker.update(faces, list(probs), detected=detect or not finder.detect)
    t4 = time.perf_counter()
    return tracks, {"detect": t1 - t0, "align": t2 - t1, "classify": t3 - t2, "track": t4 - t3}


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
STAGES = ("decode", "detect", "align", "classify", "track", "output")


class VideoStats:
    """Counts and per-stage seconds of a :func:`run_frames` run (one row of :data:`STAGES` per frame)."""

    def __init__(self):
        self.frames = self.faces = self.detections = 0
        self.ids = set()
        self.times = []          # per frame: seconds in each of STAGES
        self.start = time.perf_counter()
        self.written = None      # the annotated video's path, once written
        self.stopped = False     # the user ended it (q, Esc, Ctrl-C)
        self.error = None        # why a video file ended before its last frame

    def add(self, tracks, timing, detected):
        """Count one frame; ``timing`` maps (some of) :data:`STAGES` to seconds."""
        self.frames += 1
        self.detections += bool(detected)
        self.faces += len(tracks)
        self.ids.update(tid for tid, _, _ in tracks)
        self.times.append([timing.get(k, 0.0) for k in STAGES])

    def per_frame_ms(self):
        """``{stage: median ms}`` plus ``total`` (median) and ``p95`` of the whole frame."""
        t = 1e3 * np.array(self.times).reshape(-1, len(STAGES))
        out = {k: float(np.median(t[:, i])) if len(t) else 0.0 for i, k in enumerate(STAGES)}
        total = t.sum(1) if len(t) else np.zeros(1)
        out.update(total=float(np.median(total)), p95=float(np.percentile(total, 95)))
        return out

    def summary(self):
        """One line: frames, faces, tracks, frames/s and median milliseconds per stage."""
        elapsed = time.perf_counter() - self.start
        ms = self.per_frame_ms()
        split = ", ".join(f"{k} {ms[k]:.1f}" for k in STAGES)
        return (f"{self.frames} frames ({self.detections} detected), {self.faces} faces, "
                f"{len(self.ids)} tracks in {elapsed:.1f} s ({self.frames / elapsed:.1f} frames/s; "
                f"median per frame {ms['total']:.1f} ms, p95 {ms['p95']:.1f} ms: {split})")


def run_frames(frames, finder, predictor, tracker, rows=None, writer=None, show=False, stats=None,
               detect_every=1):
    """Process ``(index, time_s, frame)`` items until they end, ``q``/Esc (``show``) or Ctrl-C.

    The detector runs on every ``detect_every``-th frame, and on the next frame whenever it
    missed a tracked face; in between the tracker carries the faces on. ``rows`` (a
    :class:`minifer.fer.writers.RowWriter`) gets every frame's tracks; ``writer`` (a
    :class:`minifer.fer.writers.AtomicVideoWriter`) and the window (``show``, after
    :func:`open_window`) get the annotated frames, with an FPS counter. Returns ``stats`` (a
    new :class:`VideoStats` if None); a failing ``writer`` raises :class:`VideoError`.
    """
    stats = stats if stats is not None else VideoStats()
    last = time.perf_counter()
    fps_ema = None
    frames = iter(frames)
    try:
        while True:
            t0 = time.perf_counter()
            item = next(frames, None)
            if item is None:
                break
            i, t, frame = item
            detect = i % detect_every == 0 or tracker.needs_detection or not tracker.tracks
            timing = {"decode": time.perf_counter() - t0}
            tracks, times = analyze_frame(frame, finder, predictor, tracker, detect)
            timing.update(times)
            t1 = time.perf_counter()
            if rows is not None:
                rows.frame(i, t, tracks)
            now = time.perf_counter()
            inst = 1.0 / max(now - last, 1e-6)
            last = now
            fps_ema = inst if fps_ema is None else 0.9 * fps_ema + 0.1 * inst
            if writer is not None or show:
                draw_tracks(frame, tracks, predictor.classes, fps_ema)
            if writer is not None:
                try:
                    writer.write(frame)
                except (OSError, cv2.error) as e:
                    raise VideoError(f"{writer.path}: cannot write video "
                                     f"({getattr(e, 'strerror', None) or e})") from None
            timing["output"] = time.perf_counter() - t1
            stats.add(tracks, timing, detect)
            if show:
                cv2.imshow(WINDOW, frame)
                if (cv2.waitKey(1) & 0xFF) in QUIT_KEYS:
                    stats.stopped = True
                    break
    except KeyboardInterrupt:  # Ctrl-C ends a camera session normally
        stats.stopped = True
    return stats


def analyze_video(source, finder, predictor, tracker, rows=None, annotate=None, show=False,
                  max_frames=None, detect_every=1):
    """Recognise the faces of a video file or camera (``source``, see :func:`parse_source`).

    ``rows``, ``show``, ``detect_every`` as in :func:`run_frames`; ``annotate`` is the path of the
    annotated video to write. Returns the :class:`VideoStats`; a file that ends before the
    frames its header announces (corrupt or truncated) sets ``stats.error``, and the frames
    before stay in the outputs. Raises :class:`DisplayError` (``show`` impossible) and
    :class:`VideoError` (the source cannot be opened, a frame fails, the output cannot be written).
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
        camera = isinstance(parse_source(source), int)
        frames = iter_frames(cap, fps, camera, max_frames)
        try:
            run_frames(frames, finder, predictor, tracker, rows, writer, show, stats, detect_every)
        except (VideoError, DetectorError):
            raise
        except Exception as e:  # a failure on some frame: one line
            raise VideoError(f"{source}: frame {stats.frames}: {type(e).__name__}: {e}") from None
        announced = 0 if camera else int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        wanted = min(announced, max_frames or announced)
        if not stats.stopped and stats.frames == 0:
            stats.error = "no frames could be read"
        elif not stats.stopped and stats.frames < wanted - 1:   # codecs may miscount by one
            stats.error = (f"frame {stats.frames} cannot be decoded (corrupt or truncated file: "
                           f"{announced} frames announced); the {stats.frames} frames before it "
                           "are in the output")
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
