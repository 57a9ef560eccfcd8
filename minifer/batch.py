"""``python -m minifer.batch``: annotate an archive of photos and videos on Ray (see --help).

The command line parses arguments, shows progress and sets the exit status; the work is done in
:mod:`minifer.fer.batch_job` (Ray is imported only there, when a job starts).
"""
import argparse
import contextlib
import os
import sys

from . import _version
from .fer.arguments import positive_int, ranged, threshold
from .fer.catalog import add_model_options
from .fer.faces import IMAGE_DETECT, THRESHOLD, VIDEO_DETECT, DetectorError, quiet_opencv
from .fer.predictor import PredictorError
from .fer.tta import TTA_MODES
from .fer.writers import Messages

PROG = "minifer.batch"
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class UsageError(Exception):
    """Bad arguments, or nothing to run with (exit status 2)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2
        raise UsageError(f"{message} (see --help)")


_count = ranged(int, lambda v: v >= 0, ">= 0", "integer")
_seconds = ranged(float, lambda v: v > 0, "> 0", "number")


def build_parser():
    """The argument parser (its --help is the manual)."""
    p = _Parser(
        prog=f"python -m {PROG}",
        description="Find the faces and their emotions in thousands of photos and hours of video,\n"
                    "on every core of this machine or of a Ray cluster, into Parquet tables.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="""inputs:
  Files, folders (searched recursively for photos and videos), glob patterns
  ('archive/**/*.mp4', quoted) and lists of paths (a .txt, .lst or .list file,
  one path, folder or pattern per line; - reads the list from stdin). Whether
  a file is a photo or a video is read from its content.

output (DIR):
  DIR/faces    one row per face: source, kind, frame and time_s (video), face,
               x, y, w, h, track_id (video), label, score, one column per emotion
  DIR/inputs   one row per input: source, kind, size, frames, faces, status
               (ok, no_face, error), error, seconds
  Read them with pandas.read_parquet("DIR/faces"). A rerun with the same DIR
  skips the inputs it finished and does the rest.

ray:
  Without --address, a Ray instance starts inside this process with one worker
  per CPU. --address auto joins the cluster this machine belongs to (ray start);
  every node must see the inputs at the same paths. From another machine, submit
  the command: ray job submit --address http://HEAD_IP:8265 -- python -m
  minifer.batch ... --address auto (Ray Data does not run over ray:// addresses).

exit status:
  0 every input processed, 1 some input failed (one line each on stderr, and
  status 'error' in DIR/inputs), 2 usage, weights, output folder or Ray error,
  130 interrupted (rerun the same command to go on).

examples:
  python -m minifer.batch archive/ --out annotations
  python -m minifer.batch 'sessions/**/*.mp4' photos.txt --out annotations --workers 8
  python -m minifer.batch /shared/archive --out /shared/annotations --address auto""")
    p.add_argument("inputs", nargs="*", metavar="INPUT",
                   help="files, folders, patterns, lists of paths")
    p.add_argument("--out", metavar="DIR", help="output folder (required)")
    g = p.add_argument_group("ray")
    g.add_argument("--address", metavar="ADDR",
                   help="a running Ray cluster: auto or HOST:PORT "
                        "(default: start one in this process)")
    g.add_argument("--workers", type=positive_int, metavar="N",
                   help="actors, each with the model loaded and one CPU (default: one per CPU)")
    g.add_argument("--segment-s", type=_seconds, default=10.0, metavar="S",
                   help="seconds of video per unit of work (default 10)")
    g.add_argument("--retries", type=_count, default=3, metavar="N",
                   help="runs of a unit again after its worker process died (default 3)")
    g.add_argument("--commit-s", type=_seconds, default=10.0, metavar="S",
                   help="seconds between writes of the results (default 10)")
    g = p.add_argument_group("faces and model")
    add_model_options(g)
    g.add_argument("--tta", choices=TTA_MODES, default="none", help="test-time augmentation")
    g.add_argument("--threshold", type=threshold, default=THRESHOLD, metavar="T",
                   help=f"lowest face-detector score kept (default {THRESHOLD})")
    g.add_argument("--min-face", type=positive_int, default=IMAGE_DETECT["min_face"], metavar="PX",
                   help="photos: smallest face side looked for "
                        f"(default {IMAGE_DETECT['min_face']})")
    g.add_argument("--detect-every", type=positive_int, default=VIDEO_DETECT["detect_every"],
                   metavar="N", help="video: run the detector on every N-th frame, tracking in "
                                     f"between (default {VIDEO_DETECT['detect_every']})")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="no progress or summary (errors still)")
    _version.add_version_option(p)
    return p


def _clock(seconds):
    s = int(round(seconds))
    h, m = divmod(s // 60, 60)
    return f"{h}:{m:02d}:{s % 60:02d}" if h else f"{m}:{s % 60:02d}"


def progress_line(p):
    """One progress line: inputs done and failed, frames, rate, workers, time left."""
    rate = p.frames / p.elapsed if p.elapsed > 0 else 0.0
    eta = p.eta()
    left = f", ~{_clock(eta)} left" if eta is not None else ""
    failed = f", {p.failed} failed" if p.failed else ""
    return (f"[{p.done}/{p.inputs} inputs{failed}] {p.frames} frames, {rate:.1f} frames/s, "
            f"{len(p.workers)} workers{left}")


def summary_line(s):
    """The final line: inputs, faces, frames/s and where the failures are."""
    rate = s.frames / s.seconds if s.seconds > 0 else 0.0
    before = f" ({s.skipped} finished before)" if s.skipped else ""
    text = (f"{s.done} inputs done{before}, {s.faces} faces, {s.frames} frames in "
            f"{s.seconds:.1f} s ({rate:.1f} frames/s); ")
    if s.ok:
        return text + f"no failures; results in {s.out}"
    failed = [f"{s.failed} inputs failed"] if s.failed else []
    failed += [f"{s.failed_before} failed in an earlier run"] if s.failed_before else []
    failed += [f"{s.problems} arguments named nothing"] if s.problems else []
    where = (f" (status 'error' in {os.path.join(s.out, 'inputs')})"
             if s.failed or s.failed_before else "")
    return text + ", ".join(failed) + where


def reporter(msgs, tty, every_s=60.0):
    """The job's progress callback: a line rewritten in place on a terminal, else one line a
    minute (a log file)."""
    if tty:
        return lambda p: msgs.progress(progress_line(p))
    last = [0.0]

    def note(p):
        if p.elapsed - last[0] >= every_s:
            last[0] = p.elapsed
            msgs.note(progress_line(p))
    return note


@contextlib.contextmanager
def native_output_to(path):
    """Send what native code writes to file descriptor 2 (Ray's C++ core logs its warnings there)
    into the file ``path``; yields a text stream to the real stderr for this command's messages."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    sys.stderr.flush()
    saved = os.dup(2)
    with open(path, "ab") as log:
        os.dup2(log.fileno(), 2)
    try:
        with os.fdopen(os.dup(saved), "w", buffering=1) as stream:
            yield stream
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


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
        if not args.inputs:
            raise UsageError("no inputs given (see --help)")
        if not args.out:
            raise UsageError("--out DIR is required (see --help)")
        try:
            from .fer.batch_job import annotate
            from .fer.batch_ray import RayError, quiet_logs
            from .fer.batch_store import StoreError
        except ImportError as e:
            raise UsageError(f"this needs the ray extra: pip install 'minifer[ray]' ({e})") \
                from None
        log = os.path.join(args.out, "_logs", "native.log")
        try:
            with native_output_to(log) as stream:
                msgs.stream = stream
                quiet_logs()
                summary = annotate(
                    args.inputs, args.out, address=args.address, workers=args.workers,
                    segment_s=args.segment_s, weights=args.weights, model=args.model,
                    tta=args.tta, threshold=args.threshold, min_face=args.min_face,
                    detect_every=args.detect_every, retries=args.retries,
                    commit_s=args.commit_s, on_error=msgs.error,
                    progress=reporter(msgs, stream.isatty()))
                msgs.done()
        except (StoreError, RayError) as e:
            raise UsageError(str(e)) from None
        except OSError as e:
            raise UsageError(f"{args.out}: cannot write here ({e.strerror or e})") from None
        finally:
            msgs.stream = sys.stderr
        msgs.note(summary_line(summary))
        return EXIT_OK if summary.ok else EXIT_FAILED
    except (UsageError, PredictorError, DetectorError) as e:
        msgs.error(e)
        return EXIT_USAGE
    except KeyboardInterrupt:
        msgs.error("interrupted; what was finished is saved, rerun the same command to go on")
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
