"""Recognise the emotions of the faces in photos (runs python -m minifer.predict).

    python examples/06_predict_photos.py                          # examples/images/*.jpg
    python examples/06_predict_photos.py my_photos/ --top-k 3
    python examples/06_predict_photos.py --annotate annotated/    # also draw boxes and labels
    python examples/06_predict_photos.py --quick                  # the sample images, top 3

Needs trained weights: --weights, default: the weights shipped in the package (examples/05_train_fer.py
--install puts them there). Without them the script says so and exits (status 0 with --quick, so
a classroom smoke test passes before the model is trained). The sample photos are an astronaut
portrait (one face) and a cat (no human face: reported as "no face found", not an error).
"""
import argparse
import os
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from minifer.fer.tta import TTA_MODES  # noqa: E402
from minifer.fer.predictor import default_weights  # noqa: E402

DEFAULT_WEIGHTS = default_weights()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("images", nargs="*", help="image files or folders (default: examples/images/*.jpg)")
    p.add_argument("--weights", default=str(DEFAULT_WEIGHTS))
    p.add_argument("--top-k", type=int, default=3, help="show the K most probable emotions per face")
    p.add_argument("--annotate", metavar="DIR", help="write annotated copies of the photos here")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--tta", choices=TTA_MODES, default="none")
    p.add_argument("--quick", action="store_true", help="the sample images only; exit 0 without weights")
    args = p.parse_args(argv)

    if not Path(args.weights).is_file():
        print(f"no trained weights at {args.weights}: train first (python examples/05_train_fer.py "
              f"--install) or pass --weights FILE")
        return 0 if args.quick else 1
    # absolute paths: the command runs in the repository root, wherever this script was started
    images = [str(Path(i).resolve()) for i in args.images] or \
        sorted(str(p) for p in (ROOT / "examples" / "images").glob("*.jpg"))
    cmd = [sys.executable, "-m", "minifer.predict", "--weights", str(Path(args.weights).resolve()),
           "--top-k", str(args.top_k), "--tta", args.tta, *images]
    if args.json:
        cmd.append("--json")
    if args.annotate:
        cmd += ["--annotate", str(Path(args.annotate).resolve())]
    print("$ " + " ".join(shlex.quote(c) for c in cmd), flush=True)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    return subprocess.call(cmd, cwd=ROOT, env=env)


if __name__ == "__main__":
    sys.exit(main())
