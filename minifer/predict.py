"""``python -m minifer.predict``: recognise facial emotions in photos or a video (see --help).

The command line parses arguments, writes output and sets the exit status (see the --help
epilog); the work is done in :mod:`minifer.fer`.
"""
import argparse
import os
import sys

from . import _version, backend
from .fer.faces import (IMAGE_DETECT, THRESHOLD, VIDEO_DETECT, DetectorError, FaceFinder,
                        quiet_opencv)
from .fer.arguments import positive_int, ranged, threshold
from .fer.catalog import add_model_options
from .fer.photos import InputError, analyze_image, check_annotate, expand_inputs
from .fer.predictor import Predictor, PredictorError, resolve_weights
from .fer.tta import TTA_MODES
from .fer.writers import VIDEO_EXTS, Messages, RowWriter, make_writer, write_output

PROG = "minifer.predict"
FORMATS = ("table", "json", "csv")
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class UsageError(Exception):
    """Bad arguments or an unusable output: exit status 2."""


def _write_output(path, write):
    """:func:`minifer.fer.writers.write_output`; an unwritable ``-o`` file is a usage error."""
    try:
        return write_output(path, write)
    except OSError as e:
        if path is None:
            raise
        raise UsageError(f"{path}: cannot write output ({e.strerror or e})") from None


def _finder(args, predictor):
    """The face finder the options ask for (video frames are never taken as face crops)."""
    return FaceFinder(detect=not args.no_detect, largest=args.largest, size=predictor.size,
                      guess_crops=args.video is None, align=not args.no_align,
                      threshold=args.threshold, detect_size=args.detect_size,
                      min_face=args.min_face)


def run_images(args, predictor, msgs):
    """Photos and folders: results in the chosen format; returns the exit status."""
    items, empty = expand_inputs(args.inputs, args.annotate)
    for a, reason in empty:
        msgs.error(f"{a}: {reason}")
    failed = bool(empty)
    finder = _finder(args, predictor)
    width = max((len(str(p)) for p, _ in items), default=4)
    show_progress = len(items) > 5 and msgs.stream.isatty()

    def write(out):
        nonlocal failed
        writer = make_writer(args.format, out, predictor.classes, args.top_k, width)
        writer.begin()
        for n, (path, dest) in enumerate(items, 1):
            if show_progress:
                msgs.progress(f"[{n}/{len(items)}] {path}")
            try:
                r = analyze_image(path, finder, predictor, dest, args.explain)
            except (DetectorError, KeyboardInterrupt):
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

    _write_output(args.output, write)
    return EXIT_FAILED if failed else EXIT_OK


def run_video(args, predictor, msgs):
    """``--video SOURCE``: faces tracked and smoothed frame by frame; returns the exit status."""
    from .fer import video  # imports OpenCV
    from .fer.tracking import FaceTracker
    finder = _finder(args, predictor)
    tracker = FaceTracker(alpha=args.smooth if args.smooth is not None else 0.5)

    def analyze(out):
        rows = RowWriter(out, args.format, predictor.classes) if out is not None else None
        return video.analyze_video(args.video, finder, predictor, tracker, rows, args.annotate,
                                   args.show, args.max_frames, args.detect_every)

    try:  # rows only when asked for (a format or -o)
        stats = (_write_output(args.output, analyze) if args.output is not None or args.format_given
                 else analyze(None))
    except video.DisplayError as e:
        raise UsageError(str(e)) from None
    except video.VideoError as e:
        msgs.error(e)
        return EXIT_FAILED
    if stats.frames:
        msgs.note(f"video: {stats.summary()}")
    if stats.written:
        msgs.note(f"wrote {stats.written}")
    if stats.error:
        msgs.error(f"{args.video}: {stats.error}")
    return EXIT_FAILED if stats.error else EXIT_OK


# ----------------------------------------------------------------------------
# arguments
# ----------------------------------------------------------------------------
class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2 (argparse prints the usage too)
        raise UsageError(f"{message} (see --help)")


_alpha = ranged(float, lambda v: 0.0 < v <= 1.0, "in (0, 1]", "number")


def build_parser():
    """The argument parser (its --help is the manual)."""
    p = _Parser(
        prog=f"python -m {PROG}",
        description="Recognise facial emotions (angry, disgust, fear, happy, sad,\n"
                    "surprise, neutral) in images, folders of images or a video. Each face\n"
                    "YuNet finds is aligned on its eyes, nose and mouth like FER2013's faces.",
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
  A photo without a face is listed as "no face found"; that is not a failure.

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
  python -m minifer.predict --json photos/ > faces.json
  python -m minifer.predict --csv -o faces.csv --annotate annotated/ --top-k 3 photos/
  python -m minifer.predict --video 0 --show --smooth 0.3
  python -m minifer.predict --video clip.mp4 --annotate out.mp4 -o rows.csv""")
    p.add_argument("inputs", nargs="*", metavar="IMAGE",
                   help="image files or folders (searched recursively)")
    add_model_options(p)
    g = p.add_argument_group("output")
    g.add_argument("--format", choices=FORMATS,
                   help="output format (default: from -o's extension, else table)")
    g.add_argument("--json", dest="format", action="store_const", const="json",
                   help="same as --format json")
    g.add_argument("--csv", dest="format", action="store_const", const="csv",
                   help="same as --format csv")
    g.add_argument("-o", "--output", metavar="FILE",
                   help="write the results to FILE instead of stdout")
    g.add_argument("--top-k", type=positive_int, default=1, metavar="K",
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
    g.add_argument("--threshold", type=threshold, default=THRESHOLD, metavar="T",
                   help=f"lowest face-detector score kept; higher finds fewer, surer faces "
                        f"(default {THRESHOLD})")
    g.add_argument("--min-face", type=positive_int, metavar="PX",
                   help="smallest face side looked for, in pixels (default "
                        f"{IMAGE_DETECT['min_face']} for images; video: what --detect-size allows)")
    g.add_argument("--detect-size", type=positive_int, metavar="PX",
                   help="search faces on a copy at most PX pixels on the long side (default "
                        f"{IMAGE_DETECT['detect_size']}, --video {VIDEO_DETECT['detect_size']})")
    g.add_argument("--no-align", action="store_true",
                   help="cut faces square around their box, not aligned on eyes, nose and mouth")
    g.add_argument("--largest", action="store_true",
                   help="keep only the largest face of each image or frame")
    g.add_argument("--explain", metavar="DIR",
                   help="save a Grad-CAM picture of each face (what the model looked at) in DIR")
    g.add_argument("--tta", choices=TTA_MODES, default="none",
                   help="test-time augmentation: average over flips or 10 crops (slower)")
    g = p.add_argument_group("video")
    g.add_argument("--video", metavar="SOURCE",
                   help="a video file or a camera index (0, 1, ...) instead of images")
    g.add_argument("--smooth", type=_alpha, default=None, metavar="ALPHA",
                   help="per-face EMA weight of the newest frame, in (0, 1]; 1 = no "
                        "smoothing (default 0.5)")
    g.add_argument("--detect-every", type=positive_int, metavar="N",
                   help="detect faces on every N-th frame (and after a miss), the tracker "
                        f"carrying them in between (default {VIDEO_DETECT['detect_every']})")
    g.add_argument("--max-frames", type=positive_int, metavar="N", help="stop after N frames")
    g.add_argument("--show", action="store_true", help="show the annotated video in a window")
    _version.add_version_option(p)
    return p


def _check_args(args):
    """Fill in defaults that depend on other options; UsageError for bad combinations."""
    args.format_given = args.format is not None
    for name, value in (VIDEO_DETECT if args.video is not None else IMAGE_DETECT).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
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
            if ext not in VIDEO_EXTS:
                raise UsageError(f"{args.annotate}: --annotate for --video needs a video file "
                                 f"name ({', '.join(sorted(VIDEO_EXTS))})")
        return
    if not args.inputs:
        raise UsageError("no input images given (or use --video SOURCE)")
    for name in ("smooth", "max_frames", "show", "detect_every"):  # video-only options
        if getattr(args, name) not in (None, False):
            raise UsageError(f"--{name.replace('_', '-')} only applies to --video")
    if args.annotate is not None:
        try:
            check_annotate(args.inputs, args.annotate)
        except ValueError as e:
            raise UsageError(f"{args.annotate}: --annotate {e}") from None


def main(argv=None):
    """Run the command line; returns the exit status."""
    quiet_opencv()  # before OpenCV is first imported: its warnings would break the one-line rule
    msgs = Messages(PROG)
    try:
        try:
            args = build_parser().parse_args(argv)
        except SystemExit as e:  # --help / --version
            return e.code if isinstance(e.code, int) else EXIT_OK
        msgs.quiet = args.quiet
        _check_args(args)
        predictor = Predictor.load(resolve_weights(args.weights, args.model), tta=args.tta)
        backend.set_blas_threads(1)  # small batches; leaves the cores to the face detector
        return (run_video if args.video is not None else run_images)(args, predictor, msgs)
    except (UsageError, PredictorError, DetectorError) as e:
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
    """Flush and leave without interpreter teardown (freeing the Numba / LLVM code takes
    0.2-0.8 s, longer than a photo); outputs are closed and renamed by then."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    os._exit(code)


if __name__ == "__main__":
    _exit_now(main())
