"""Live emotion recognition on a webcam or a video file (runs python -m minifer.predict --video).

    python examples/07_video_demo.py                         # webcam 0 in a window (q or Esc quits)
    python examples/07_video_demo.py --source clip.mp4 --annotate clip_out.mp4 --csv rows.csv
    python examples/07_video_demo.py --quick                 # a synthetic 10-frame clip, no window

Every frame: OpenCV finds the faces, each face is classified, and a tracker gives each face a stable
id and smooths its probabilities over frames (--smooth: the weight of the newest frame). See
minifer/fer/video.py. --quick builds a short clip from examples/images/astronaut.jpg (a slow pan and
zoom), runs on it and prints the per-frame rows; it needs no camera and no display. Needs trained
weights (--weights, default: the weights shipped in the package); without them the script says so and exits
(status 0 with --quick).
"""
import argparse
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from minifer.fer.predictor import default_weights  # noqa: E402

DEFAULT_WEIGHTS = default_weights()
PHOTO = ROOT / "examples" / "images" / "astronaut.jpg"


def make_clip(path, frames=10, size=320):
    """Write a short mp4 from the astronaut photo: a window that pans and zooms in slowly."""
    import cv2
    img = cv2.imread(str(PHOTO))                      # BGR, 512 x 512
    h, w = img.shape[:2]
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (size, size))
    if not out.isOpened():
        raise OSError(f"OpenCV cannot write {path} (no mp4v encoder)")
    for t in range(frames):
        side = int(460 - 8 * t)                       # zoom in
        x0, y0 = 10 + 3 * t, 5 + 2 * t                # pan
        crop = img[y0:y0 + side, x0:x0 + side]
        out.write(cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA))
    out.release()
    return path


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--source", default="0", help="camera index (0, 1, ...) or a video file")
    p.add_argument("--weights", default=str(DEFAULT_WEIGHTS))
    p.add_argument("--no-show", dest="show", action="store_false", help="do not open a window")
    p.add_argument("--annotate", metavar="OUT.mp4", help="write the annotated video")
    p.add_argument("--csv", metavar="ROWS.csv", help="write one row per face per frame")
    p.add_argument("--smooth", type=float, default=0.5, help="weight of the newest frame, in (0, 1]")
    p.add_argument("--max-frames", type=int, default=None)
    p.add_argument("--quick", action="store_true", help="synthetic 10-frame clip, rows printed, no window")
    args = p.parse_args(argv)

    tmp = tempfile.TemporaryDirectory(prefix="minifer_video_") if args.quick else None
    source = args.source
    if args.quick:
        source = str(make_clip(Path(tmp.name) / "astronaut_pan.mp4"))
        print(f"made a 10-frame test clip: {source}")
    if not Path(args.weights).is_file():
        print(f"no trained weights at {args.weights}: train first (python examples/05_train_fer.py "
              f"--install) or pass --weights FILE")
        return 0 if args.quick else 1

    if source.isdigit() or not Path(source).exists():
        src = source                                  # a camera index (or a missing file: predict says so)
    else:
        src = str(Path(source).resolve())
    cmd = [sys.executable, "-m", "minifer.predict", "--video", src,
           "--weights", str(Path(args.weights).resolve()), "--smooth", str(args.smooth)]
    if args.quick:
        cmd += ["--csv", "--annotate", str(Path(tmp.name) / "annotated.mp4")]   # rows to stdout
    else:
        if args.show:
            cmd.append("--show")
        if args.annotate:
            cmd += ["--annotate", str(Path(args.annotate).resolve())]
        if args.csv:
            cmd += ["--csv", "-o", str(Path(args.csv).resolve())]
    if args.max_frames:
        cmd += ["--max-frames", str(args.max_frames)]
    print("$ " + " ".join(shlex.quote(c) for c in cmd), flush=True)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    try:
        return subprocess.call(cmd, cwd=ROOT, env=env)
    finally:
        if tmp is not None:
            tmp.cleanup()


if __name__ == "__main__":
    sys.exit(main())
