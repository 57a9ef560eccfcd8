"""Emotion recognition on a video file or a camera, frame by frame.

Used by ``python -m minifer.predict --video SOURCE`` (see :mod:`minifer.predict`).
Each frame: OpenCV reads it (BGR), the faces are detected in gray and cut out
square, all faces of the frame are classified in one batch, and a
:class:`minifer.fer.faces.FaceTracker` gives every face a stable id and smooths its
probabilities with an exponential moving average. The annotated frame (boxes,
``#id label p`` tags and an FPS counter) can be written to a video file
(``mp4v``; written to a temporary file and renamed when done) and/or shown in
a window, and one row per face per frame can be written as CSV, JSON Lines or
a table.

OpenCV is imported when this module is.
"""
import contextlib
import json
import os
import sys
import tempfile
import time

os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")  # before cv2 is first imported
import cv2  # noqa: E402
import numpy as np  # noqa: E402

from .fer.faces import FaceTracker
from .predict import (EXIT_FAILED, EXIT_OK, PALETTE, FaceFinder, OutputFile, UsageError,
                      top_labels)

DEFAULT_FPS = 25.0  # written video rate when the source does not report one
QUIT_KEYS = (ord("q"), ord("Q"), 27)  # q or Esc closes the --show window
WINDOW = "minifer emotions"

try:  # OpenCV's own warnings would break the one-line-per-error rule
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
except Exception:  # older OpenCV without cv2.utils.logging
    pass


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


def draw_tracks(frame, tracks, classes, fps=None):
    """Draw boxes, ``#id label p`` tags and an FPS counter on ``frame`` (in place)."""
    h, w = frame.shape[:2]
    scale = max(0.45, min(h, w) / 900.0)
    thick = max(1, round(scale * 2))
    font = cv2.FONT_HERSHEY_SIMPLEX
    for tid, (x, y, bw, bh), p in tracks:
        label, prob = top_labels(p, classes, 1)[0]
        r, g, b = PALETTE[classes.index(label) % len(PALETTE)]
        color = (b, g, r)
        cv2.rectangle(frame, (x, y), (x + bw - 1, y + bh - 1), color, thick + 1)
        text = f"#{tid} {label} {prob:.2f}"
        (tw, th), base = cv2.getTextSize(text, font, scale, thick)
        ty = y - 4 if y - th - base - 4 >= 0 else min(y + bh + th + 4, h - base - 1)
        cv2.rectangle(frame, (x, ty - th - 4), (x + tw + 4, ty + base), color, -1)
        cv2.putText(frame, text, (x + 2, ty - 2), font, scale, (0, 0, 0), thick, cv2.LINE_AA)
    if fps is not None:
        text = f"FPS {fps:.1f}"
        (tw, th), base = cv2.getTextSize(text, font, scale, thick)
        cv2.rectangle(frame, (0, 0), (tw + 10, th + base + 10), (0, 0, 0), -1)
        cv2.putText(frame, text, (5, th + 5), font, scale, (255, 255, 255), thick, cv2.LINE_AA)
    return frame


# ----------------------------------------------------------------------------
# writing
# ----------------------------------------------------------------------------
class AtomicVideoWriter:
    """``cv2.VideoWriter`` (mp4v) into a temporary file renamed over ``path``
    by :meth:`close`; opened on the first frame, when the size is known."""

    def __init__(self, path, fps):
        self.path = os.fspath(path)
        self.fps = fps if fps > 0 else DEFAULT_FPS
        self._w = None
        self._tmp = None
        self.frames = 0

    def write(self, frame):
        if self._w is None:
            folder = os.path.dirname(os.path.abspath(self.path))
            os.makedirs(folder, exist_ok=True)
            fd, self._tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-",
                                             suffix=os.path.splitext(self.path)[1])
            os.close(fd)
            h, w = frame.shape[:2]
            self._w = cv2.VideoWriter(self._tmp, cv2.VideoWriter_fourcc(*"mp4v"),
                                      self.fps, (w, h))
            if not self._w.isOpened():
                self.discard()
                raise OSError("OpenCV cannot write this video format")
        self._w.write(frame)
        self.frames += 1

    def close(self):
        """Finish the file and move it into place (nothing if no frame came)."""
        if self._w is None:
            return False
        self._w.release()
        self._w = None
        try:
            os.chmod(self._tmp, 0o644)
        except OSError:
            pass
        os.replace(self._tmp, self.path)
        return True

    def discard(self):
        if self._w is not None:
            self._w.release()
            self._w = None
        if self._tmp and os.path.exists(self._tmp):
            os.unlink(self._tmp)


class RowWriter:
    """Per-face rows: ``csv``, ``json`` (JSON Lines, one object per frame) or ``table``."""

    def __init__(self, out, fmt, classes):
        self.out, self.fmt, self.classes = out, fmt, classes
        if fmt == "csv":
            import csv
            self._csv = csv.writer(out, lineterminator="\n")
            self._csv.writerow(["frame", "time_s", "track_id", "x", "y", "w", "h", "label",
                                *classes])
        elif fmt == "table":
            out.write(f"{'frame':>6}  {'time_s':>8}  {'track':>5}  {'box x,y,w,h':<19}  "
                      f"{'emotion':<10}  prob\n")

    def frame(self, index, t, tracks):
        if self.fmt == "json":
            faces = []
            for tid, box, p in tracks:
                label, s = top_labels(p, self.classes, 1)[0]
                faces.append({"track_id": tid, "box": list(box), "label": label,
                              "score": round(s, 6),
                              "probabilities": {c: round(float(q), 6)
                                                for c, q in zip(self.classes, p)}})
            self.out.write(json.dumps({"frame": index, "time_s": round(t, 4),
                                       "faces": faces}) + "\n")
            return
        for tid, box, p in tracks:
            label, s = top_labels(p, self.classes, 1)[0]
            if self.fmt == "csv":
                self._csv.writerow([index, f"{t:.4f}", tid, *box, label,
                                    *(f"{float(q):.6f}" for q in p)])
            else:
                b = ",".join(str(v) for v in box)
                self.out.write(f"{index:>6}  {t:>8.3f}  {tid:>5}  {b:<19}  {label:<10}  {s:.3f}\n")


# ----------------------------------------------------------------------------
# the loop
# ----------------------------------------------------------------------------
class _WriteError(Exception):
    """The annotated video could not be written (one-line message)."""


def _check_display():
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY")
                                                 or os.environ.get("WAYLAND_DISPLAY")):
        raise UsageError("--show needs a display (DISPLAY is not set)")
    try:
        cv2.namedWindow(WINDOW, cv2.WINDOW_NORMAL)
    except cv2.error:
        raise UsageError("--show needs an OpenCV build with GUI support "
                         "(opencv-python, not opencv-python-headless)") from None


def run(args, predictor, msgs):
    """``python -m minifer.predict --video``: returns the exit status."""
    if args.show:
        _check_display()
    source = args.video
    try:
        cap, fps = open_capture(source)
    except OSError as e:
        msgs.error(f"{source}: {e}")
        return EXIT_FAILED
    camera = isinstance(parse_source(source), int)
    finder = FaceFinder(detect=not args.no_detect, min_neighbors=args.min_neighbors,
                        largest=args.largest, size=predictor.size, guess_crops=False,
                        detect_size=args.detect_size, scale_factor=args.scale_factor)
    tracker = FaceTracker(alpha=args.smooth if args.smooth is not None else 0.5)
    writer = AtomicVideoWriter(args.annotate, fps) if args.annotate else None
    want_rows = args.output is not None or args.format_given
    stats = {"frames": 0, "faces": 0, "ids": set(), "detect": 0.0, "model": 0.0}
    t_start = time.perf_counter()
    try:
        with (OutputFile(args.output) if want_rows else contextlib.nullcontext()) as out:
            rows = RowWriter(out, args.format, predictor.classes) if want_rows else None
            _loop(iter_frames(cap, fps, camera, args.max_frames), finder, predictor,
                  tracker, rows, writer, args.show, stats)
            if out is not None:
                out.flush()
    except UsageError:
        raise
    except Exception as e:  # _WriteError, or a failure on some frame: one line
        msgs.error(str(e) if isinstance(e, _WriteError)
                   else f"{source}: frame {stats['frames']}: {type(e).__name__}: {e}")
        if writer is not None:
            writer.discard()
        return EXIT_FAILED
    finally:
        cap.release()
        if args.show:
            cv2.destroyAllWindows()
    if writer is not None:
        writer.close()
    n = stats["frames"]
    if n == 0:
        msgs.error(f"{source}: no frames could be read")
        return EXIT_FAILED
    elapsed = time.perf_counter() - t_start
    msgs.note(f"video: {n} frames, {stats['faces']} faces, {len(stats['ids'])} tracks in "
              f"{elapsed:.1f} s ({n / elapsed:.1f} frames/s; per frame: detection "
              f"{1e3 * stats['detect'] / n:.1f} ms, model {1e3 * stats['model'] / n:.1f} ms)")
    if writer is not None and writer.frames:
        msgs.note(f"wrote {writer.path}")
    return EXIT_OK


def _loop(frames, finder, predictor, tracker, rows, writer, show, stats):
    """Process frames until the source ends, ``q``/Esc (``show``) or Ctrl-C."""
    last = time.perf_counter()
    fps_ema = None
    try:
        for i, t, frame in frames:
            tracks, timing = analyze_frame(frame, finder, predictor, tracker)
            stats["frames"] += 1
            stats["faces"] += len(tracks)
            stats["ids"].update(tid for tid, _, _ in tracks)
            stats["detect"] += timing["detect"]
            stats["model"] += timing["model"]
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
                    raise _WriteError(f"{writer.path}: cannot write video "
                                      f"({getattr(e, 'strerror', None) or e})") from None
            if show:
                cv2.imshow(WINDOW, frame)
                if (cv2.waitKey(1) & 0xFF) in QUIT_KEYS:
                    break
    except KeyboardInterrupt:  # Ctrl-C ends a camera session normally
        pass
