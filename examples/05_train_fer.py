"""Train minivgg on FER2013 with the project's recipe (runs python -m minifer.train).

    python examples/05_train_fer.py                       # the full run (hours on a laptop CPU)
    python examples/05_train_fer.py --dry-run             # only print the command
    python examples/05_train_fer.py --quick               # 256 faces, 1 epoch: checks the setup
    python examples/05_train_fer.py --resume              # continue an interrupted run
    python examples/05_train_fer.py --install             # afterwards: copy best.npz to weights/
    python examples/05_train_fer.py -- --mixup 0.2        # anything after -- goes to minifer.train

The recipe of the shipped weights (see docs/09_training_and_curves.md): minivgg, SGD with Nesterov
momentum, lr 0.05, weight decay 5e-4, batch 64, cosine schedule with one warm-up epoch, label
smoothing 0.1, the "standard" augmentation, 100 epochs (about 3 h on a 2-core CPU), seed 50, the
weights of the last 10 epochs kept. Ctrl-C saves a checkpoint; --resume continues it. The shipped
file is the average of those 10 epochs (scripts/average_run.py OUT --last 10, weights/README.md);
--install copies the single best epoch.
"""
import argparse
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "fer2013" / "fer2013_train_val.npz"
RECIPE = ["--model", "minivgg", "--epochs", "100", "--batch-size", "64", "--optimizer", "sgd",
          "--lr", "0.05", "--weight-decay", "5e-4", "--schedule", "cosine", "--warmup", "1",
          "--label-smoothing", "0.1", "--augment", "standard", "--seed", "50", "--keep-epochs", "10"]
QUICK = ["--limit", "256", "--val-limit", "128", "--epochs", "1"]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data", default=str(DEFAULT_DATA), help="FER2013 npz / csv / image folder")
    p.add_argument("--out", default=None,
                   help="run folder (default runs/example_fer_minivgg; --quick: a temporary folder)")
    p.add_argument("--quick", action="store_true", help="--limit 256 --val-limit 128 --epochs 1")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.npz")
    p.add_argument("--device", choices=["cpu", "gpu"], default=None)
    p.add_argument("--dry-run", action="store_true", help="print the command and exit")
    p.add_argument("--install", action="store_true",
                   help="after training, copy OUT/best.npz to minifer/fer/weights/minivgg_fer.npz")
    p.add_argument("extra", nargs=argparse.REMAINDER, help="after --: more minifer.train options")
    args = p.parse_args(argv)
    extra = args.extra[1:] if args.extra[:1] == ["--"] else args.extra

    if not Path(args.data).exists():
        print(f"FER2013 data not found at {args.data}; pass --data (npz, fer2013.csv or image folder)")
        return 0 if args.quick else 1
    tmp = None
    out = args.out
    if out is None:
        if args.quick and not args.dry_run:
            tmp = tempfile.mkdtemp(prefix="minifer_quick_")
            out = tmp
        else:
            out = str(ROOT / "runs" / "example_fer_minivgg")
    out = str(Path(out).resolve())    # the command runs in the repository root: absolute paths
    cmd = [sys.executable, "-m", "minifer.train", "--data", str(Path(args.data).resolve()), *RECIPE,
           *(QUICK if args.quick else []), "--out", out]
    if args.resume:
        cmd.append("--resume")
    if args.device:
        cmd += ["--device", args.device]
    cmd += extra                      # later options win in argparse: extra can override the recipe
    print("$ " + " ".join(shlex.quote(c) for c in cmd), flush=True)
    if args.dry_run:
        return 0
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    try:
        rc = subprocess.call(cmd, cwd=ROOT, env=env)
        if rc == 0:
            print(f"outputs in {out}: " + ", ".join(sorted(os.listdir(out))))
        if rc == 0 and args.install:
            dst = ROOT / "minifer" / "fer" / "weights" / "minivgg_fer.npz"
            dst.parent.mkdir(exist_ok=True)
            shutil.copyfile(Path(out) / "best.npz", dst)
            print(f"installed {dst}: python -m minifer.predict and examples 06-08 use it now")
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
