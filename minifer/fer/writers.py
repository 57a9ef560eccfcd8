"""Writing results: per-photo tables, CSV and JSON; per-frame rows for video; the
output file and the annotated video, both written atomically; one-line messages on stderr.

A photo result is a dict ``{"file", "status", "whole", "faces", "error"}`` whose
faces are ``{"face", "box", "probs"}``; a video frame is ``[(track_id, box, probs)]``.
Files appear complete or not at all: text goes through :func:`write_output`,
video through :class:`AtomicVideoWriter`, both through :mod:`minifer.io`.
"""
import csv
import io
import json
import os
import sys

from ..io import atomic_write, commit, temp_file_for
from .predictor import prediction_record, top_labels

DEFAULT_FPS = 25.0  # written video rate when the source does not report one
VIDEO_EXTS = {".mp4", ".m4v", ".mov", ".avi", ".mkv"}  # what AtomicVideoWriter writes


class Messages:
    """One-line messages on stderr: errors always, notes and progress unless ``quiet``.

    Every line is ``<prog>: error: <text>`` or ``<prog>: <text>``, whitespace
    collapsed; a progress line (overwritten in place) is cleared first.
    """

    def __init__(self, prog, quiet=False, stream=None):
        self.prog = prog
        self.quiet = quiet
        self.stream = stream if stream is not None else sys.stderr
        self._progress = False

    def _clear(self):
        if self._progress:
            self.stream.write("\r\033[K")
            self._progress = False

    def _line(self, text):
        self._clear()
        self.stream.write(" ".join(str(text).split()) + "\n")
        self.stream.flush()

    def error(self, text):
        """Write ``<prog>: error: <text>``."""
        self._line(f"{self.prog}: error: {text}")

    def note(self, text):
        """Write ``<prog>: <text>`` unless quiet."""
        if not self.quiet:
            self._line(f"{self.prog}: {text}")

    def progress(self, text):
        """Show ``text`` on a line that the next message replaces (unless quiet)."""
        if not self.quiet:
            self.stream.write("\r\033[K" + text)
            self.stream.flush()
            self._progress = True

    def done(self):
        """Clear a progress line."""
        self._clear()
        self.stream.flush()


def write_output(path, write):
    """``write(text_stream)`` into stdout (``path`` None) or into the file ``path``.

    The file is UTF-8, written with :func:`minifer.io.atomic_write`: it appears,
    complete, only when ``write`` returns; if ``write`` raises, nothing is left
    behind. Returns what ``write`` returns; ``OSError`` if the file cannot be written.
    """
    if path is None:
        result = write(sys.stdout)
        sys.stdout.flush()
        return result
    result = []

    def body(f):
        text = io.TextIOWrapper(f, encoding="utf-8", newline="")
        try:
            result.append(write(text))
            text.flush()
        finally:
            text.detach()  # leave f open: atomic_write syncs and closes it

    atomic_write(path, body, suffix=os.path.splitext(os.fspath(path))[1])
    return result[0]


# ----------------------------------------------------------------------------
# photos: begin(), file(result) per photo, end()
# ----------------------------------------------------------------------------
class TableWriter:
    """A fixed-width table, one row per face (``top_k`` emotions each)."""

    def __init__(self, out, classes, top_k=1, file_width=30):
        self.out, self.classes, self.top_k = out, classes, top_k
        self.fw = max(4, min(file_width, 60))

    def begin(self):
        """Write the header."""
        head = "emotion" if self.top_k == 1 else f"top {self.top_k} emotions"
        self.out.write(f"{'file':<{self.fw}}  {'face':>4}  {'box x,y,w,h':<19}  "
                       f"{head:<10}  {'prob' if self.top_k == 1 else ''}".rstrip() + "\n")

    def file(self, r):
        """Write the rows of one photo (``(no face found)`` if it has none; nothing for errors)."""
        if r["error"] is not None:
            return
        if not r["faces"]:
            self.out.write(f"{r['file']:<{self.fw}}  {'-':>4}  {'-':<19}  (no face found)\n")
        for f in r["faces"]:
            box = ",".join(str(v) for v in f["box"])
            top = top_labels(f["probs"], self.classes, self.top_k)
            if self.top_k == 1:
                what = f"{top[0][0]:<10}  {top[0][1]:.3f}"
            else:
                what = ", ".join(f"{c} {p:.3f}" for c, p in top)
            self.out.write(f"{r['file']:<{self.fw}}  {f['face']:>4}  {box:<19}  {what}\n")
        self.out.flush()

    def end(self):
        """Nothing to finish."""


class CsvWriter:
    """CSV: ``file,face,x,y,w,h,label,<one column per class>``, one row per face."""

    def __init__(self, out, classes):
        self.out, self.classes = out, classes
        self.w = csv.writer(out, lineterminator="\n")

    def begin(self):
        """Write the header."""
        self.w.writerow(["file", "face", "x", "y", "w", "h", "label", *self.classes])

    def file(self, r):
        """Write the rows of one photo."""
        for f in r["faces"]:
            label = top_labels(f["probs"], self.classes, 1)[0][0]
            self.w.writerow([r["file"], f["face"], *f["box"], label,
                             *(f"{p:.6f}" for p in f["probs"])])
        self.out.flush()

    def end(self):
        """Nothing to finish."""


class JsonWriter:
    """One JSON document: a list with one object per input file."""

    def __init__(self, out, classes):
        self.out, self.classes, self.items = out, classes, []

    def begin(self):
        """Nothing to start."""

    def file(self, r):
        """Keep one photo's object for :meth:`end`."""
        faces = [{"face": f["face"], "box": [int(v) for v in f["box"]],
                  **prediction_record(f["probs"], self.classes)} for f in r["faces"]]
        self.items.append({"file": r["file"], "status": r["status"],
                           "whole_image": r.get("whole", False),
                           "faces": faces, "error": r["error"]})

    def end(self):
        """Write the list, one compact line per file."""
        self.out.write("[\n" + ",\n".join(json.dumps(i) for i in self.items) + "\n]\n")
        self.out.flush()


def make_writer(fmt, out, classes, top_k=1, file_width=30):
    """The photo writer for ``fmt`` (``"table"``, ``"json"`` or ``"csv"``)."""
    if fmt == "json":
        return JsonWriter(out, classes)
    if fmt == "csv":
        return CsvWriter(out, classes)
    return TableWriter(out, classes, top_k, file_width)


# ----------------------------------------------------------------------------
# video
# ----------------------------------------------------------------------------
class RowWriter:
    """Per-face rows of video frames: ``csv``, ``json`` (JSON Lines, one object per frame) or ``table``."""

    def __init__(self, out, fmt, classes):
        self.out, self.fmt, self.classes = out, fmt, classes
        if fmt == "csv":
            self._csv = csv.writer(out, lineterminator="\n")
            self._csv.writerow(["frame", "time_s", "track_id", "x", "y", "w", "h", "label",
                                *classes])
        elif fmt == "table":
            out.write(f"{'frame':>6}  {'time_s':>8}  {'track':>5}  {'box x,y,w,h':<19}  "
                      f"{'emotion':<10}  prob\n")

    def frame(self, index, t, tracks):
        """Write frame ``index`` (at ``t`` seconds) with its tracked faces."""
        if self.fmt == "json":
            faces = [{"track_id": tid, "box": list(box), **prediction_record(p, self.classes)}
                     for tid, box, p in tracks]
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


class AtomicVideoWriter:
    """An ``mp4v`` video written by OpenCV into a temporary file that :meth:`close`
    renames over ``path`` (:func:`minifer.io.commit`) and :meth:`discard` deletes.
    The writer opens on the first frame, when the frame size is known.
    """

    def __init__(self, path, fps):
        self.path = os.fspath(path)
        self.fps = fps if fps > 0 else DEFAULT_FPS
        self._w = None
        self._tmp = None
        self.frames = 0

    def write(self, frame):
        """Append one BGR frame (``OSError`` if OpenCV cannot write this format)."""
        import cv2
        if self._w is None:
            self._tmp = temp_file_for(self.path, suffix=os.path.splitext(self.path)[1])
            h, w = frame.shape[:2]
            self._w = cv2.VideoWriter(self._tmp, cv2.VideoWriter_fourcc(*"mp4v"), self.fps, (w, h))
            if not self._w.isOpened():
                self.discard()
                raise OSError("OpenCV cannot write this video format")
        self._w.write(frame)
        self.frames += 1

    def close(self):
        """Finish the file and move it into place (nothing if no frame came); True if written."""
        if self._w is None:
            return False
        self._w.release()
        self._w = None
        try:
            commit(self._tmp, self.path)
            self._tmp = None
        finally:
            self.discard()
        return True

    def discard(self):
        """Drop the unfinished video."""
        if self._w is not None:
            self._w.release()
            self._w = None
        if self._tmp is not None and os.path.exists(self._tmp):
            os.unlink(self._tmp)
        self._tmp = None
