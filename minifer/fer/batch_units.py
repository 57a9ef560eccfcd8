"""The workers' side of ``python -m minifer.batch``: what an input is, how a video is cut into
segments, and the actor that annotates them.

:func:`plan_units` runs in Ray tasks: for each input it tells by content (:func:`probe`) whether it
is a photo (Pillow reads its header) or a video (OpenCV opens it and decodes a frame: frame rate
and frame count) or neither, and yields the *units* of work: photos in small groups, each segment
of a video on its own (:func:`segments`: runs of about ``segment_s`` seconds), and an input that is
neither as a unit that only carries its error. :class:`Annotator` is the Ray Data actor: it loads
one :class:`~minifer.fer.recognizer.EmotionRecognizer` when it starts and annotates units, a photo
with :func:`minifer.fer.photos.analyze_image` (all faces of the photo in one batch), a segment by
seeking to its first frame and running :func:`minifer.fer.video.run_frames` with the
detect-and-track schedule of ``predict --video``.

Nothing here imports Ray: Ray Data calls these functions on Arrow tables. A problem with one input
is a result with status ``error`` and a one-line message, never an exception, which would make
Ray run the whole block again.
"""
import hashlib
import os
import socket
import time
import warnings

import numpy as np
import pyarrow as pa

from .. import backend
from .faces import VIDEO_DETECT, FaceFinder, quiet_opencv
from .photos import InputError, analyze_image
from .predictor import PredictorError, resolve_weights
from .recognizer import EmotionRecognizer
from .tracking import FaceTracker

SMOOTH = 0.5  # the tracker's EMA weight of the newest frame, as in predict --video

PLAN_SCHEMA = pa.schema([("source", pa.string()), ("skip", pa.list_(pa.int32()))])
UNIT_TYPE = pa.struct([("source", pa.string()), ("kind", pa.string()), ("unit", pa.int32()),
                       ("n_units", pa.int32()), ("start", pa.int64()), ("stop", pa.int64()),
                       ("frames_announced", pa.int64()), ("error", pa.string())])
FACE_TYPE = pa.struct([("frame", pa.int64()), ("time_s", pa.float64()), ("face", pa.int32()),
                       ("x", pa.int32()), ("y", pa.int32()), ("w", pa.int32()), ("h", pa.int32()),
                       ("track", pa.int32()), ("label", pa.string()), ("score", pa.float32()),
                       ("probs", pa.list_(pa.float32()))])
RESULT_TYPE = pa.struct([("source", pa.string()), ("kind", pa.string()), ("unit", pa.int32()),
                         ("n_units", pa.int32()), ("start", pa.int64()), ("frames", pa.int64()),
                         ("status", pa.string()), ("error", pa.string()),
                         ("seconds", pa.float64()), ("worker", pa.string()),
                         ("faces", pa.list_(FACE_TYPE))])
RESULT_SCHEMA = pa.schema(list(RESULT_TYPE))
# One row per Ray task, so that Ray Data never cuts a task's units or results into blocks of
# their own (the planning stage's blocks are made as small as they go: one task each).
TASK_SCHEMA = pa.schema([("units", pa.list_(UNIT_TYPE))])
TASK_RESULTS_SCHEMA = pa.schema([("results", pa.list_(RESULT_TYPE))])


def file_sha256(path):
    """The sha256 of a file, in hex."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def one_line(text):
    """``text`` with its whitespace collapsed: one line."""
    return " ".join(str(text).split())


def _is_image(path):
    """True if Pillow recognises the file from its header (nothing is decoded)."""
    from PIL import Image
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            with Image.open(path):
                return True
        except Image.DecompressionBombError:     # an image; analyze_image refuses it with a reason
            return True
        except Exception:
            return False


def _video_info(path):
    """``(fps, frames announced)`` if OpenCV opens the file and decodes a frame, else None."""
    quiet_opencv()
    import cv2

    from . import video
    try:
        cap, fps = video.open_capture(path)
    except OSError:
        return None
    try:
        return (fps, max(0, int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0))) if cap.read()[0] else None
    finally:
        cap.release()


def probe(path):
    """What the file ``path`` is, by content: a dict with ``kind`` (``photo``, ``video`` or
    ``unknown``), for a video ``fps`` and the ``frames`` its header announces (0 when unknown),
    and for an unknown one the one-line ``error`` (``"<path>: <reason>"``)."""
    r = {"kind": "unknown", "fps": None, "frames": None, "error": None}
    try:
        if os.path.isdir(path):
            raise IsADirectoryError(0, "is a directory")
        with open(path, "rb") as f:
            empty = not f.read(1)
    except OSError as e:
        reason = "no such file" if isinstance(e, FileNotFoundError) else (e.strerror or str(e))
        r["error"] = one_line(f"{path}: {reason}")
        return r
    if empty:
        r["error"] = f"{path}: empty file (0 bytes)"
    elif _is_image(path):
        r["kind"] = "photo"
    elif (info := _video_info(path)) is not None:
        r.update(kind="video", fps=info[0], frames=info[1])
    else:
        r["error"] = f"{path}: not a photo or a video, or an unsupported format"
    return r


def _task(units):
    return pa.Table.from_pylist([{"units": units}], schema=TASK_SCHEMA)


def plan_units(inputs, segment_s, detect_every, photos_per_task):
    """Yield the units of the inputs of a table of :data:`PLAN_SCHEMA`, one Ray task's worth at a
    time (a one-row table of :data:`TASK_SCHEMA`): each video segment alone, photos in groups of
    up to ``photos_per_task``. Units listed in an input's ``skip`` are left out (done)."""
    photos = []
    for row in inputs.to_pylist():
        src, skip = row["source"], set(row["skip"] or ())
        p = probe(src)
        if p["kind"] == "video":
            cuts = segments(p["frames"], p["fps"], segment_s, detect_every)
            for k, (start, stop) in enumerate(cuts):
                if k not in skip:
                    yield _task([{"source": src, "kind": "video", "unit": k, "n_units": len(cuts),
                                  "start": start, "stop": stop, "frames_announced": p["frames"]}])
        elif 0 not in skip:
            unit = {"source": src, "kind": p["kind"], "unit": 0, "n_units": 1, "error": p["error"]}
            if p["kind"] == "photo":
                photos.append(unit)
            else:
                yield _task([unit])
    for i in range(0, len(photos), photos_per_task):
        yield _task(photos[i:i + photos_per_task])


def segments(frames, fps, segment_s, detect_every=1):
    """``[(start, stop)]``: a video of ``frames`` frames at ``fps`` cut into runs of about
    ``segment_s`` seconds, each a whole number of ``detect_every`` frames (so the detector runs on
    the frames it runs on in one pass). The last ``stop`` is None: to the end, however many frames
    there are. Unknown ``frames`` or ``fps`` (0): one segment."""
    if frames <= 0 or fps <= 0:
        return [(0, None)]
    length = max(1, round(segment_s * fps / detect_every)) * detect_every
    starts = list(range(0, frames, length))
    return [(s, e) for s, e in zip(starts, starts[1:])] + [(starts[-1], None)]


class _Rows:
    """A row writer for :func:`minifer.fer.video.run_frames` that keeps each face as a dict of
    :data:`FACE_TYPE`."""

    def __init__(self, classes):
        self.classes, self.faces = classes, []

    def frame(self, index, t, tracks):
        for k, (tid, box, p) in enumerate(tracks, 1):
            self.faces.append(_face(p, self.classes, box, k, index, t, tid))


def _face(probs, classes, box, face, frame=None, time_s=None, track=None):
    best = int(np.argmax(probs))   # ties: the lower index, as predict's labels
    x, y, w, h = (int(v) for v in box)
    return {"frame": frame, "time_s": None if time_s is None else round(float(time_s), 4),
            "face": face, "x": x, "y": y, "w": w, "h": h, "track": track,
            "label": classes[best], "score": float(probs[best]),
            "probs": [float(v) for v in probs]}


class Annotator:
    """A Ray Data actor: one recognizer, loaded once; called with a block of tasks (a table of
    :data:`TASK_SCHEMA`), it returns their units' results in one row (:data:`TASK_RESULTS_SCHEMA`).

    Each actor reserves one CPU and works on one thread (OpenCV's, minifer's and OpenBLAS's
    threads set to one): the workers are the parallelism. ``weights``/``model`` name the weights
    as ``predict`` does, resolved on the worker's node; they must be the driver's file, byte for
    byte (``sha256``). ``settings``: ``tta``, ``threshold``, ``min_face`` (photos),
    ``detect_every`` (video).
    """

    def __init__(self, weights, model, sha256, settings):
        quiet_opencv()
        import cv2
        cv2.setNumThreads(1)
        backend.set_workers(1)
        backend.set_blas_threads(1)
        path = resolve_weights(weights, model)
        if file_sha256(path) != sha256:
            raise PredictorError(f"{socket.gethostname()}: {path} is not the weights file the job "
                                 f"started with (sha256 {sha256[:12]}...)")
        self.recognizer = EmotionRecognizer(path, tta=settings["tta"],
                                            threshold=settings["threshold"],
                                            min_face=settings["min_face"])
        self.predictor = self.recognizer.predictor
        self.classes = self.predictor.classes
        self.video_finder = FaceFinder(size=self.predictor.size, guess_crops=False,
                                       threshold=settings["threshold"],
                                       detect_size=VIDEO_DETECT["detect_size"], min_face=None)
        self.detect_every = int(settings["detect_every"])
        self.worker = f"{socket.gethostname()}:{os.getpid()}"

    def __call__(self, tasks):
        results = [self.run(u) for row in tasks.to_pylist() for u in row["units"]]
        return pa.Table.from_pylist([{"results": results}], schema=TASK_RESULTS_SCHEMA)

    def run(self, unit):
        """The result of one unit (a dict of :data:`RESULT_TYPE`)."""
        t = time.perf_counter()
        work = {"photo": self._photo, "video": self._segment}.get(unit["kind"])
        faces, frames, status, error = work(unit) if work else ([], 0, "error", unit["error"])
        return {"source": unit["source"], "kind": unit["kind"], "unit": unit["unit"],
                "n_units": unit["n_units"], "start": unit["start"], "frames": frames,
                "status": status, "error": error and one_line(error),
                "seconds": time.perf_counter() - t, "worker": self.worker, "faces": faces}

    def _photo(self, unit):
        path = unit["source"]
        try:
            r = analyze_image(path, self.recognizer.finder, self.predictor)
        except InputError as e:
            return [], 1, "error", str(e)
        except Exception as e:           # anything unforeseen: one line, as predict does
            return [], 1, "error", f"{path}: unexpected error ({type(e).__name__}: {e})"
        faces = [_face(f["probs"], self.classes, f["box"], f["face"]) for f in r["faces"]]
        return faces, 1, r["status"], None

    def _segment(self, unit):
        from . import video
        path, start, stop = unit["source"], unit["start"], unit["stop"]
        try:
            cap, fps = video.open_capture(path)
        except OSError as e:
            return [], 0, "error", f"{path}: {e}"
        rows, stats, error = _Rows(self.classes), video.VideoStats(), None
        try:
            frames = video.iter_frames(cap, fps, max_frames=None if stop is None else stop - start,
                                       start=start)
            video.run_frames(frames, self.video_finder, self.predictor, FaceTracker(alpha=SMOOTH),
                             rows=rows, stats=stats, detect_every=self.detect_every)
        except Exception as e:           # a failure on some frame: one line, the frames before kept
            error = f"{path}: frame {start + stats.frames}: {type(e).__name__}: {e}"
        finally:
            cap.release()
        announced = unit["frames_announced"]
        # all of a segment's frames, and of the last one all that the header announces (codecs
        # may miscount by one), as analyze_video checks a whole file
        wanted = stop - start if stop is not None else announced - start - 1
        if error is None and start + stats.frames == 0:
            error = f"{path}: no frames could be read"
        elif error is None and stats.frames < wanted:
            error = (f"{path}: frame {start + stats.frames} cannot be decoded (corrupt or "
                     f"truncated file: {announced} frames announced)")
        status = "error" if error else ("ok" if rows.faces else "no_face")
        return rows.faces, stats.frames, status, error
