"""Recognise facial emotions in photos or a video with a trained minifer model.

Images (files or folders, searched recursively)::

    python -m minifer.predict photo.jpg more/photos/       # table on stdout
    python -m minifer.predict --json photo.jpg             # one JSON document
    python -m minifer.predict --csv -o faces.csv photos/   # CSV into a file
    python -m minifer.predict --annotate out/ photos/      # boxes + labels drawn

Every image is read upright (EXIF) and in gray. A small image that already
looks like a face crop (see :func:`minifer.fer.faces.is_face_crop`), or any image
with ``--no-detect``, is classified whole; otherwise OpenCV's face detector
finds the faces, each is cut out square (:func:`minifer.fer.faces.square_crop`)
and all faces of an image are classified in one batch. A photo without a face
is reported ("no face found") but is not a failure.

Video (a file, or a camera index such as ``0``)::

    python -m minifer.predict --video clip.mp4 --annotate clip_out.mp4 --csv -o rows.csv

Faces are tracked across frames (:class:`minifer.fer.faces.FaceTracker`) and each
face's probabilities are smoothed (``--smooth``); see :mod:`minifer.video`.

Exit status: 0 when every input was processed, 1 when any input failed
(missing, not an image, corrupt, too large, unwritable output, ...), 2 for a
usage error or unusable weights. Each error is one line on stderr:
``minifer.predict: error: <path>: <reason>``.
"""
import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

from . import backend

PROG = "minifer.predict"
WEIGHTS_NAME = "minivgg_fer.npz"
INPUT_SHAPE = (48, 48, 1)
NUM_CLASSES = 7
FORMATS = ("table", "json", "csv")
TTA_CHOICES = ("none", "flip", "tencrop")
# Annotated copies keep the input's extension when Pillow writes it well.
ANNOTATE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
VIDEO_OUT_EXTS = {".mp4", ".m4v", ".mov", ".avi", ".mkv"}
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
# Face detection (long side in px, cascade scale step): photos favour finding
# small faces, video the 33 ms frame budget (measured in benchmarks/realtime.py).
IMAGE_DETECT = (640, 1.1)
VIDEO_DETECT = (320, 1.2)

# One colour per emotion (RGB), in the FER class order; reused cyclically.
PALETTE = [(230, 57, 70), (106, 153, 78), (155, 93, 229), (255, 190, 11),
           (58, 134, 255), (255, 112, 166), (200, 200, 200)]


class UsageError(Exception):
    """Bad arguments or unusable weights: exit status 2."""


class InputError(Exception):
    """One input could not be processed: reported, the run goes on."""


# ----------------------------------------------------------------------------
# stderr messages (one line each; a progress line is cleared first)
# ----------------------------------------------------------------------------
class Messages:
    def __init__(self, quiet=False, stream=None):
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
        self._line(f"{PROG}: error: {text}")

    def note(self, text):
        if not self.quiet:
            self._line(f"{PROG}: {text}")

    def progress(self, text):
        if not self.quiet:
            self.stream.write("\r\033[K" + text)
            self.stream.flush()
            self._progress = True

    def done(self):
        self._clear()
        self.stream.flush()


# ----------------------------------------------------------------------------
# weights and the classifier
# ----------------------------------------------------------------------------
def default_weights_paths():
    """Where the default weights are looked for: the repository's ``weights/``
    folder, then ``weights/`` inside the installed package."""
    import minifer
    pkg = Path(minifer.__file__).resolve().parent
    return [pkg.parent / "weights" / WEIGHTS_NAME, pkg / "weights" / WEIGHTS_NAME]


def resolve_weights(path=None):
    """``path`` if given, else the first default weights file that exists."""
    if path is not None:
        return Path(path)
    candidates = default_weights_paths()
    for c in candidates:
        if c.is_file():
            return c
    raise UsageError("no --weights given and no default weights file found (looked for "
                     + " and ".join(str(c) for c in candidates) + "); pass --weights FILE")


class Predictor:
    """A loaded model plus its preprocessing: 48x48 uint8 faces -> probabilities."""

    def __init__(self, model, tta="none", batch_size=256):
        self.model = model
        self.classes = [str(c) for c in model.meta["classes"]]
        pre = model.meta["preprocess"]
        self.scale = np.float32(pre.get("scale", 1.0 / 255.0))
        self.mean = np.float32(pre["mean"][0])
        self.std = np.float32(pre["std"][0])
        self.size = int(model.meta["input_shape"][0])
        self.tta = tta or "none"
        self.batch_size = batch_size

    @classmethod
    def load(cls, path, tta="none"):
        """Load and check a weights file; any problem raises :class:`UsageError`."""
        from .io import WeightsError
        from .model import load_model
        where = os.fspath(path)
        if not os.path.exists(where):
            raise UsageError(f"{where}: weights file not found")
        if not os.path.isfile(where):
            raise UsageError(f"{where}: weights path is not a file")
        try:
            model = load_model(where)
        except WeightsError as e:
            raise UsageError(str(e)) from None
        except Exception as e:  # a broken architecture spec, bad values, ...
            raise UsageError(f"{where}: cannot build the model from this weights file "
                             f"({type(e).__name__}: {e})") from None
        meta = model.meta
        classes = meta.get("classes")
        if not isinstance(classes, list) or len(classes) != NUM_CLASSES:
            n = len(classes) if isinstance(classes, list) else "unknown"
            raise UsageError(f"{where}: weights are for another model: {n} classes, "
                             f"this tool needs the {NUM_CLASSES} emotion classes")
        shape = meta.get("input_shape")
        if not isinstance(shape, list) or tuple(shape) != INPUT_SHAPE:
            raise UsageError(f"{where}: weights are for another model: input shape {shape}, "
                             f"this tool needs {list(INPUT_SHAPE)} (48x48 gray faces)")
        pre = meta.get("preprocess")
        try:
            ok = (isinstance(pre, dict) and pre.get("color", "gray") == "gray"
                  and len(pre["mean"]) == 1 and len(pre["std"]) == 1
                  and float(pre["std"][0]) > 0 and float(pre.get("scale", 1 / 255)) > 0)
        except (KeyError, TypeError, ValueError):
            ok = False
        if not ok:
            raise UsageError(f"{where}: weights have no usable 'preprocess' metadata "
                             f"(need color 'gray', one mean and one std > 0)")
        predictor = cls(model, tta=tta)
        try:  # one tiny forward pass: catches layer/shape mismatches early
            p = predictor.predict(np.zeros((1,) + INPUT_SHAPE[:2], np.uint8))
        except Exception as e:
            raise UsageError(f"{where}: weights do not run on 48x48x1 input "
                             f"({type(e).__name__}: {e})") from None
        if p.shape != (1, NUM_CLASSES) or not np.all(np.isfinite(p)):
            raise UsageError(f"{where}: weights are for another model: output shape "
                             f"{p.shape[1:]}, expected ({NUM_CLASSES},)")
        return predictor

    def preprocess(self, faces):
        """uint8 ``(N, 48, 48)`` -> float32 ``(N, 48, 48, 1)`` model input."""
        x = np.asarray(faces, dtype=np.float32)[..., None]
        x *= self.scale
        x -= self.mean
        x /= self.std
        return x

    def predict(self, faces):
        """Class probabilities ``(N, 7)`` (float64, rows sum to 1) for uint8 faces."""
        faces = np.asarray(faces)
        if len(faces) == 0:
            return np.zeros((0, len(self.classes)))
        x = self.preprocess(faces)
        if self.tta != "none":
            from .fer.augment import tta_predict
            p = tta_predict(lambda v: self.model.predict_proba(v, self.batch_size), x, self.tta)
        else:
            p = self.model.predict_proba(x, batch_size=self.batch_size)
        p = np.asarray(p, dtype=np.float64)
        return p / p.sum(axis=1, keepdims=True)


# ----------------------------------------------------------------------------
# finding faces
# ----------------------------------------------------------------------------
class FaceFinder:
    """Gray image -> face boxes and 48x48 crops (the detector is made lazily,
    so OpenCV is imported only if some image needs detection)."""

    def __init__(self, detect=True, min_neighbors=5, largest=False, size=48, margin=0.2,
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
        if self._detector is None:
            from .fer.faces import FaceDetector
            try:
                self._detector = FaceDetector(min_neighbors=self.min_neighbors,
                                              max_side=self.detect_size,
                                              scale_factor=self.scale_factor)
            except RuntimeError as e:
                raise UsageError(str(e)) from None
        return self._detector

    def find(self, gray):
        """``(boxes, crops, whole)``: boxes ``(x, y, w, h)``, uint8 crops
        ``(N, 48, 48)``, and whether the whole image was taken as the face."""
        from .fer.faces import is_face_crop, square_crop
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


# ----------------------------------------------------------------------------
# drawing
# ----------------------------------------------------------------------------
def top_labels(probs, classes, k=1):
    """``[(label, p), ...]`` for the ``k`` most probable classes."""
    order = np.argsort(-np.asarray(probs), kind="stable")[:k]
    return [(classes[i], float(probs[i])) for i in order]


def annotate_image(img, faces, classes):
    """An RGB copy of PIL ``img`` with each face's box and top label drawn.

    ``faces``: dicts with ``box`` and ``probs``. Images with a short side
    under 192 px are enlarged (nearest neighbour) so the labels stay legible.
    """
    from PIL import Image, ImageDraw, ImageFont
    im = img.convert("RGB")
    k = 1
    if min(im.size) < 192:
        k = -(-192 // max(1, min(im.size)))
        im = im.resize((im.width * k, im.height * k), Image.Resampling.NEAREST)
    draw = ImageDraw.Draw(im)
    fsize = max(12, round(min(im.size) / 28))
    try:
        font = ImageFont.load_default(size=fsize)
    except TypeError:  # Pillow < 10.1: fixed-size bitmap font
        font = ImageFont.load_default()
    lw = max(2, round(min(im.size) / 250))
    for i, f in enumerate(faces, 1):
        x, y, w, h = (v * k for v in f["box"])
        label, p = top_labels(f["probs"], classes, 1)[0]
        color = PALETTE[classes.index(label) % len(PALETTE)]
        draw.rectangle([x, y, x + w - 1, y + h - 1], outline=color, width=lw)
        text = f"{i}: {label} {p:.2f}" if len(faces) > 1 else f"{label} {p:.2f}"
        l, t, r, b = draw.textbbox((0, 0), text, font=font)
        tw, th = r - l + 2 * lw, b - t + 2 * lw
        ty = y - th if y - th >= 0 else min(y + h, im.height - th)
        tx = min(max(x, 0), max(0, im.width - tw))
        draw.rectangle([tx, ty, tx + tw, ty + th], fill=color)
        draw.text((tx + lw - l, ty + lw - t), text, fill=(0, 0, 0), font=font)
    return im


# ----------------------------------------------------------------------------
# output formats
# ----------------------------------------------------------------------------
def _fmt_p(p):
    return f"{p:.6f}"


class TableWriter:
    def __init__(self, out, classes, top_k=1, file_width=30):
        self.out, self.classes, self.top_k = out, classes, top_k
        self.fw = max(4, min(file_width, 60))

    def begin(self):
        head = "emotion" if self.top_k == 1 else f"top {self.top_k} emotions"
        self.out.write(f"{'file':<{self.fw}}  {'face':>4}  {'box x,y,w,h':<19}  "
                       f"{head:<10}  {'prob' if self.top_k == 1 else ''}".rstrip() + "\n")

    def file(self, r):
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
        pass


class CsvWriter:
    def __init__(self, out, classes):
        import csv
        self.out, self.classes = out, classes
        self.w = csv.writer(out, lineterminator="\n")

    def begin(self):
        self.w.writerow(["file", "face", "x", "y", "w", "h", "label", *self.classes])

    def file(self, r):
        for f in r["faces"]:
            label = top_labels(f["probs"], self.classes, 1)[0][0]
            self.w.writerow([r["file"], f["face"], *f["box"], label,
                             *(_fmt_p(p) for p in f["probs"])])
        self.out.flush()

    def end(self):
        pass


class JsonWriter:
    """One JSON document: a list with one object per input file."""

    def __init__(self, out, classes):
        self.out, self.classes, self.items = out, classes, []

    def begin(self):
        pass

    def file(self, r):
        faces = []
        for f in r["faces"]:
            label, p = top_labels(f["probs"], self.classes, 1)[0]
            faces.append({"face": f["face"], "box": [int(v) for v in f["box"]],
                          "label": label, "score": round(p, 6),
                          "probabilities": {c: round(float(q), 6)
                                            for c, q in zip(self.classes, f["probs"])}})
        self.items.append({"file": r["file"], "status": r["status"],
                           "whole_image": r.get("whole", False),
                           "faces": faces, "error": r["error"]})

    def end(self):  # a list with one compact line per file
        self.out.write("[\n" + ",\n".join(json.dumps(i) for i in self.items) + "\n]\n")
        self.out.flush()


class OutputFile:
    """Text output to stdout, or to a file written atomically (temp + rename)."""

    def __init__(self, path=None):
        self.path = path
        self._tmp = None

    def __enter__(self):
        if self.path is None:
            return sys.stdout
        folder = os.path.dirname(os.path.abspath(self.path))
        try:
            os.makedirs(folder, exist_ok=True)
            fd, self._tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-",
                                             suffix=os.path.splitext(self.path)[1])
        except OSError as e:
            raise UsageError(f"{self.path}: cannot write output ({e.strerror or e})") from None
        self._f = os.fdopen(fd, "w", encoding="utf-8", newline="")
        return self._f

    def __exit__(self, exc_type, exc, tb):
        if self.path is None:
            return False
        self._f.close()
        if exc_type is None:
            try:
                os.chmod(self._tmp, 0o644)
            except OSError:
                pass
            os.replace(self._tmp, self.path)
        elif os.path.exists(self._tmp):
            os.unlink(self._tmp)
        return False


def make_writer(fmt, out, classes, top_k=1, file_width=30):
    if fmt == "json":
        return JsonWriter(out, classes)
    if fmt == "csv":
        return CsvWriter(out, classes)
    return TableWriter(out, classes, top_k, file_width)


# ----------------------------------------------------------------------------
# inputs
# ----------------------------------------------------------------------------
def _annotated_name(path):
    p = Path(path)
    return p.name if p.suffix.lower() in ANNOTATE_EXTS else p.stem + ".png"


def _names_folder(path):
    """An existing folder, or a path written with a trailing slash."""
    return os.path.isdir(path) or str(path).endswith(("/", os.sep))


def expand_inputs(args, annotate=None):
    """Expand files/folders to ``[(path, annotate_dest_or_None)]`` and a list of
    ``(arg, reason)`` for folders with no images.

    ``annotate`` is a file path when the only input is one file (or an existing
    folder to put it in); otherwise a folder: one folder input is mirrored
    into it directly, several inputs go to ``OUT/<folder name>/...`` and
    ``OUT/<file name>``. Clashing names get ``-2``, ``-3``, ... suffixes.
    """
    from .fer.images import iter_image_paths
    items, empty, used = [], [], set()
    single_file = len(args) == 1 and not os.path.isdir(args[0])
    out = Path(annotate) if annotate is not None else None
    out_is_dir = annotate is not None and _names_folder(annotate)

    def dest_for(rel):
        d = out / rel
        base, n = d, 2
        while str(d) in used:
            d = base.with_name(f"{base.stem}-{n}{base.suffix}")
            n += 1
        used.add(str(d))
        return d

    for a in args:
        if os.path.isdir(a):
            found = list(iter_image_paths(a, recursive=True))
            if not found:
                empty.append((a, "no image files found in this folder"))
            for p in found:
                dest = None
                if out is not None:
                    rel = p.relative_to(a).parent / _annotated_name(p)
                    if len(args) > 1:
                        rel = Path(Path(os.path.abspath(a)).name or "root") / rel
                    dest = dest_for(rel)
                items.append((p, dest))
        else:
            p = Path(a)
            dest = None
            if out is not None:
                if single_file and not out_is_dir:
                    dest = out
                else:
                    dest = dest_for(_annotated_name(p))
            items.append((p, dest))
    return items, empty


# ----------------------------------------------------------------------------
# image mode
# ----------------------------------------------------------------------------
def process_image(path, finder, predictor, annotate_dest=None, explain_dir=None):
    """Predict the faces of one image -> result dict (raises InputError)."""
    from .fer.images import ImageError, load_image, save_image_atomic, to_gray_array
    try:
        img = load_image(path)
    except ImageError as e:
        raise InputError(str(e)) from None
    gray = to_gray_array(img)
    boxes, crops, whole = finder.find(gray)
    probs = predictor.predict(crops)
    faces = [{"face": i + 1, "box": [int(v) for v in b], "probs": probs[i]}
             for i, b in enumerate(boxes)]
    if annotate_dest is not None:
        if os.path.exists(annotate_dest) and os.path.samefile(annotate_dest, path):
            raise InputError(f"{path}: refusing to overwrite the input with the annotated image")
        try:
            save_image_atomic(annotate_image(img, faces, predictor.classes), annotate_dest)
        except (ImageError, OSError, ValueError) as e:
            msg = getattr(e, "strerror", None) or e
            raise InputError(f"{path}: cannot write annotated image {annotate_dest} ({msg})") from None
    if explain_dir is not None and faces:
        save_explanations(path, crops, predictor, explain_dir)
    return {"file": str(path), "status": "ok" if faces else "no_face", "whole": whole,
            "faces": faces, "error": None}


def save_explanations(path, crops, predictor, folder):
    """Write ``<stem>_face<i>_gradcam.png``: the 48x48 face next to its Grad-CAM overlay."""
    from PIL import Image
    from .fer.explain import grad_cam, overlay
    from .fer.images import save_image_atomic
    cams = grad_cam(predictor.model, predictor.preprocess(crops))
    stem = os.path.splitext(os.path.basename(os.fspath(path)))[0]
    os.makedirs(folder, exist_ok=True)
    for i, (face, cam) in enumerate(zip(crops, cams), 1):
        pair = np.concatenate([np.repeat(face[..., None], 3, axis=2), overlay(face, cam)], axis=1)
        big = Image.fromarray(pair).resize((pair.shape[1] * 4, pair.shape[0] * 4), Image.NEAREST)
        save_image_atomic(big, os.path.join(folder, f"{stem}_face{i}_gradcam.png"))


def run_images(args, predictor, msgs):
    items, empty = expand_inputs(args.inputs, args.annotate)
    failed = False
    for a, reason in empty:
        msgs.error(f"{a}: {reason}")
        failed = True
    finder = FaceFinder(detect=not args.no_detect, min_neighbors=args.min_neighbors,
                        largest=args.largest, size=predictor.size, detect_size=args.detect_size,
                        scale_factor=args.scale_factor)
    width = max((len(str(p)) for p, _ in items), default=4)
    show_progress = len(items) > 5 and msgs.stream.isatty()
    with OutputFile(args.output) as out:
        writer = make_writer(args.format, out, predictor.classes, args.top_k, width)
        writer.begin()
        for n, (path, dest) in enumerate(items, 1):
            if show_progress:
                msgs.progress(f"[{n}/{len(items)}] {path}")
            try:
                r = process_image(path, finder, predictor, dest, args.explain)
            except (UsageError, KeyboardInterrupt):
                raise
            except Exception as e:  # InputError, or anything unforeseen: one line, go on
                reason = str(e) if isinstance(e, InputError) else \
                    f"{path}: unexpected error ({type(e).__name__}: {e})"
                msgs.error(reason)
                failed = True
                r = {"file": str(path), "status": "error", "faces": [], "error": reason}
            if r["status"] == "no_face" and args.format != "table":
                msgs.note(f"{path}: no face found")
            writer.file(r)
        msgs.done()
        writer.end()
    return EXIT_FAILED if failed else EXIT_OK


# ----------------------------------------------------------------------------
# command line
# ----------------------------------------------------------------------------
class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2 (argparse prints the usage too)
        raise UsageError(f"{message} (see --help)")


def _positive_int(s):
    v = int(s)
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {s}")
    return v


def _alpha(s):
    v = float(s)
    if not 0.0 < v <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {s}")
    return v


def _scale_factor(s):
    v = float(s)
    if not 1.0 < v <= 2.0:
        raise argparse.ArgumentTypeError(f"must be in (1, 2], got {s}")
    return v


_positive_int.__name__ = "positive integer"  # argparse: "invalid positive integer value"
_alpha.__name__ = "number"
_scale_factor.__name__ = "number"


def build_parser():
    p = _Parser(
        prog=f"python -m {PROG}",
        description="Recognise facial emotions (angry, disgust, fear, happy, sad,\n"
                    "surprise, neutral) in images, folders of images or a video.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="""output:
  Results go to stdout, or with -o FILE to FILE (written atomically), as
    table  one row per face: file, face number (1-based), box x,y,w,h, emotion,
           probability (--top-k K lists the K best); default
    json   one JSON document: a list of {file, status, whole_image, faces:
           [{face, box, label, score, probabilities: {class: p}}], error};
           with --video, JSON Lines: one {frame, time_s, faces} object per frame
    csv    header file,face,x,y,w,h,label,<7 class probabilities>; with --video
           frame,time_s,track_id,x,y,w,h,label,<7 class probabilities>
  Without --format, the extension of -o picks it (.json, .csv), else table.
  Photos without a face are listed as "no face found" (a note on stderr for
  json/csv) and are not failures.

video:
  --video SOURCE reads a file or a camera (an integer index), tracks the faces
  and smooths each face's probabilities over frames. Rows are written only
  with --format/--json/--csv or -o; --annotate OUT.mp4 writes the annotated
  video (mp4v), --show opens a window (needs a display; q or Esc quits).

exit status:
  0 every input processed, 1 some input failed, 2 usage or weights error.
  Each error is one line on stderr: "minifer.predict: error: <path>: <reason>".

examples:
  python -m minifer.predict photo.jpg
  python -m minifer.predict --top-k 3 photo.jpg photos/
  python -m minifer.predict --json photos/ > faces.json
  python -m minifer.predict --csv -o faces.csv --annotate annotated/ photos/
  python -m minifer.predict --video 0 --show --smooth 0.3
  python -m minifer.predict --video clip.mp4 --annotate out.mp4 -o rows.csv""")
    p.add_argument("inputs", nargs="*", metavar="IMAGE",
                   help="image files or folders (searched recursively)")
    p.add_argument("--weights", metavar="FILE",
                   help=f"model weights (.npz); default: weights/{WEIGHTS_NAME} in the "
                        "repository or the installed package")
    g = p.add_argument_group("output")
    g.add_argument("--format", choices=FORMATS, default=None,
                   help="output format (default: from -o's extension, else table)")
    g.add_argument("--json", dest="format", action="store_const", const="json",
                   help="same as --format json")
    g.add_argument("--csv", dest="format", action="store_const", const="csv",
                   help="same as --format csv")
    g.add_argument("-o", "--output", metavar="FILE",
                   help="write the results to FILE instead of stdout")
    g.add_argument("--top-k", type=_positive_int, default=1, metavar="K",
                   help="table: show the K most probable emotions (default 1)")
    g.add_argument("--annotate", metavar="OUT",
                   help="draw boxes and labels: one image -> OUT is a file (or a folder to "
                        "put it in); several images or a folder -> OUT is a folder mirroring "
                        "the inputs; --video -> OUT is a video file (.mp4, .avi, ...)")
    g.add_argument("-q", "--quiet", action="store_true",
                   help="no progress, notes or video summary on stderr (errors still)")
    g = p.add_argument_group("faces and model")
    g.add_argument("--no-detect", action="store_true",
                   help="classify each whole image as one face (no detection)")
    g.add_argument("--min-neighbors", type=_positive_int, default=5, metavar="N",
                   help="face detector strictness: higher finds fewer, surer faces (default 5)")
    g.add_argument("--detect-size", type=_positive_int, default=None, metavar="PX",
                   help="detect faces on a copy downscaled to at most PX pixels on the long "
                        "side (default 640 for images, 320 for --video; smaller is faster "
                        "but misses small faces)")
    g.add_argument("--scale-factor", type=_scale_factor, default=None, metavar="F",
                   help="face detector's step between face sizes, > 1 (default 1.1 for "
                        "images, 1.2 for --video; larger is faster but may miss faces)")
    g.add_argument("--largest", action="store_true",
                   help="keep only the largest face of each image or frame")
    g.add_argument("--explain", metavar="DIR",
                   help="save a Grad-CAM picture of each face (what the model looked at) in DIR")
    g.add_argument("--tta", choices=TTA_CHOICES, default="none",
                   help="test-time augmentation: average over flips or 10 crops (slower)")
    g = p.add_argument_group("video")
    g.add_argument("--video", metavar="SOURCE",
                   help="a video file or a camera index (0, 1, ...) instead of images")
    g.add_argument("--smooth", type=_alpha, default=None, metavar="ALPHA",
                   help="per-face EMA weight of the newest frame, in (0, 1]; 1 = no "
                        "smoothing (default 0.5)")
    g.add_argument("--max-frames", type=_positive_int, default=None, metavar="N",
                   help="stop after N frames")
    g.add_argument("--show", action="store_true",
                   help="show the annotated video in a window")
    return p


def _check_args(args):
    args.format_given = args.format is not None
    video = args.video is not None   # video: detection sized for 30 frames/s (benchmarks/realtime.py)
    if args.detect_size is None:
        args.detect_size = VIDEO_DETECT[0] if video else IMAGE_DETECT[0]
    if args.scale_factor is None:
        args.scale_factor = VIDEO_DETECT[1] if video else IMAGE_DETECT[1]
    if args.format is None:
        ext = os.path.splitext(args.output or "")[1].lower()
        args.format = {".json": "json", ".jsonl": "json", ".csv": "csv"}.get(ext, "table")
    if args.video is not None:
        if args.inputs:
            raise UsageError("give either images or --video, not both")
        if args.explain is not None:
            raise UsageError("--explain only applies to images")
        if args.annotate is not None:
            ext = os.path.splitext(args.annotate)[1].lower()
            if ext not in VIDEO_OUT_EXTS:
                raise UsageError(f"{args.annotate}: --annotate for --video needs a video file "
                                 f"name ({', '.join(sorted(VIDEO_OUT_EXTS))})")
        return
    if not args.inputs:
        raise UsageError("no input images given (or use --video SOURCE)")
    for name in ("smooth", "max_frames", "show"):  # video-only options
        if getattr(args, name) not in (None, False):
            raise UsageError(f"--{name.replace('_', '-')} only applies to --video")
    if args.annotate is not None:
        single_file = len(args.inputs) == 1 and not os.path.isdir(args.inputs[0])
        if single_file and not _names_folder(args.annotate):
            from PIL import Image
            ext = os.path.splitext(args.annotate)[1].lower()
            if ext not in Image.registered_extensions():
                raise UsageError(f"{args.annotate}: --annotate for one image needs an image "
                                 "file name (.jpg, .png, ...) or a folder")
        elif os.path.exists(args.annotate) and not os.path.isdir(args.annotate):
            raise UsageError(f"{args.annotate}: --annotate for several images needs a folder, "
                             "not a file")


def main(argv=None):
    msgs = Messages()
    try:
        try:
            args = build_parser().parse_args(argv)
        except SystemExit as e:  # --help / --version
            return e.code if isinstance(e.code, int) else EXIT_OK
        msgs.quiet = args.quiet
        _check_args(args)
        predictor = Predictor.load(resolve_weights(args.weights), tta=args.tta)
        backend.set_blas_threads(1)  # small batches; leaves the cores to the face detector
        if args.video is not None:
            from . import video
            return video.run(args, predictor, msgs)
        return run_images(args, predictor, msgs)
    except UsageError as e:
        msgs.error(e)
        return EXIT_USAGE
    except KeyboardInterrupt:
        msgs.error("interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # e.g. piped into `head`: stop quietly
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return EXIT_FAILED


def _exit_now(code):
    """Flush and leave without interpreter teardown: freeing the loaded Numba /
    LLVM code takes 0.2-0.8 s, longer than classifying a photo. Nothing here
    relies on atexit handlers (outputs are closed and renamed by then)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    os._exit(code)


if __name__ == "__main__":
    # Run main() of the importable module, so that minifer.video (which imports
    # minifer.predict) raises the very same UsageError class that main() catches.
    from minifer.predict import main as _main
    _exit_now(_main())
