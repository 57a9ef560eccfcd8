"""Rebuild the shipped weights from their training runs: every command, in order, in one place.

    python scripts/rebuild_weights.py --data ../shared/data/fer2013/fer2013_train_val.npz [--dry-run]

The recipe below trains every network behind ``minifer/fer/weights/minivgg_fer.npz`` and
``weights/fer_ensemble.npz`` into ``runs/`` (about 31 h of training on a 2-core CPU), averages and ships them,
and measures the shipped files (``weights/eval.json``, ``weights/ensemble_eval.json``).
It can be stopped and started again: a run whose history holds all its epochs is skipped, one
with a checkpoint is continued with ``--resume``, one with neither starts from scratch.
``--dry-run`` prints the commands (with what each training step will do) and runs nothing;
``--no-train`` stops with an error when a run is not finished instead of training it.
``weights/README.md`` gives each network's figures and why the recipe is what it is.
"""
import argparse
import json
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from minifer.fer.training import TrainOptions  # noqa: E402

COMMON = "--batch-size 64 --optimizer sgd --weight-decay 5e-4 --label-smoothing 0.1"
COSINE = f"{COMMON} --schedule cosine"
# The 100-epoch recipe (the default's run, and the wide network's with --model minivgg_wide).
LONG = f"--epochs 100 --lr 0.05 --warmup 1 --augment standard --seed 50 {COSINE} --keep-epochs 10"
# A student of the ensemble of 7, warm-started from the 100-epoch network, all its 20 epochs kept.
STUDENT = ("--model minivgg --init runs/minivgg_long.npz --teacher runs/fer_ensemble_7.npz --distill-temperature 4"
           " --distill-weight 0.7 --epochs 20 --lr 0.01 --augment standard --keep-epochs 20")

# (what, arguments): `python -m minifer.train` arguments, or a script in scripts/ and its arguments;
# each gets `--data` from the command line. Relative paths are from the repository root.
RECIPE = [
    # The four-stage network (the default until 2026-12-04, now an ensemble member): 65 epochs in four
    # stages, then stages 3 and 4 averaged.
    ("train", f"--model minivgg --epochs 15 --lr 0.05 --warmup 1 --augment standard --seed 0 {COSINE}"
              " --out runs/fer_minivgg"),
    ("train", f"--model minivgg --init runs/fer_minivgg/best.npz --epochs 24 --lr 0.02 --warmup 0.5"
              f" --augment standard --seed 1 {COSINE} --out runs/fer_minivgg_s2"),
    ("train", f"--model minivgg --init runs/fer_minivgg_s2/best.npz --epochs 6 --lr 0.004 --warmup 0.5"
              f" --augment light --seed 2 {COSINE} --out runs/fer_minivgg_s3"),
    ("train", f"--model minivgg --init runs/fer_minivgg_s3/best.npz --epochs 20 --lr 0.02 --warmup 0.5"
              f" --augment standard --seed 3 {COSINE} --out runs/fer_minivgg_s4"),
    ("ship_model.py", "runs/fer_minivgg_s4 --average-with runs/fer_minivgg_s3/best.npz"
                      " --out runs/minivgg_4stage.npz --report-dir runs/report_4stage"),
    # The default until 2026-12-05: 100 epochs in one cosine cycle, the weights of the last 10 averaged.
    ("train", f"--model minivgg {LONG} --out runs/fer_minivgg_long"),
    ("average_run.py", "runs/fer_minivgg_long --last 10"),
    ("ship_model.py", "runs/fer_minivgg_long --weights runs/fer_minivgg_long/swa_10.npz"
                      " --out runs/minivgg_long.npz --report-dir runs/report_long"),
    # The ensemble's other members: a constant-lr restart of the default's run (all 20 epochs averaged)
    # and a network trained on 44-px crops (its last 8 epochs averaged).
    ("train", "--model minivgg --init runs/fer_minivgg_long/epoch_100.npz --epochs 20 --lr 0.01"
              f" --augment standard --seed 51 {COMMON} --schedule constant --keep-epochs 20"
              " --out runs/fer_minivgg_restart"),
    ("average_run.py", "runs/fer_minivgg_restart --last 20"),
    ("train", f"--model minivgg --crop 44 --epochs 60 --lr 0.05 --warmup 1 --augment standard --seed 10"
              f" {COSINE} --keep-epochs 12 --out runs/fer_minivgg_c44"),
    ("average_run.py", "runs/fer_minivgg_c44 --last 8"),
    # The wide network, the ensemble of 2026-12-03 it belonged to, and the four-stage network distilled
    # from that ensemble (its last 8 epochs averaged).
    ("train", f"--model minivgg_wide --epochs 40 --lr 0.05 --warmup 1 --augment standard --seed 30 {COSINE}"
              " --keep-epochs 8 --out runs/fer_minivgg_wide"),
    ("average_run.py", "runs/fer_minivgg_wide --last 8"),
    ("ship_ensemble.py", "runs/minivgg_4stage.npz runs/fer_minivgg_c44/swa_8.npz runs/fer_minivgg_wide/swa_8.npz"
                         " --out runs/fer_ensemble_3.npz"),
    ("train", "--model minivgg --init runs/minivgg_4stage.npz --teacher runs/fer_ensemble_3.npz"
              " --distill-temperature 4 --distill-weight 0.7 --epochs 20 --lr 0.02 --warmup 0.5"
              f" --augment standard --seed 40 {COSINE} --keep-epochs 8 --out runs/fer_minivgg_distil"),
    ("average_run.py", "runs/fer_minivgg_distil --last 8"),
    # The default's recipe run for 150 epochs (seed 60): its last 15 and its last 10 epochs averaged.
    ("train", f"--model minivgg --epochs 150 --lr 0.05 --warmup 1 --augment standard --seed 60 {COSINE}"
              " --keep-epochs 15 --out runs/fer_minivgg_150"),
    ("average_run.py", "runs/fer_minivgg_150 --last 15"),
    ("average_run.py", "runs/fer_minivgg_150 --last 10"),
    # The ensemble of 7 shipped until 2026-12-05: the teacher of the two students below.
    ("ship_ensemble.py", "runs/minivgg_long.npz runs/minivgg_4stage.npz"
                         " runs/fer_minivgg_c44/swa_8.npz runs/fer_minivgg_restart/swa_20.npz"
                         " runs/fer_minivgg_distil/swa_8.npz runs/fer_minivgg_150/swa_15.npz"
                         " runs/fer_minivgg_150/swa_10.npz --out runs/fer_ensemble_7.npz"),
    # The default: two students of that ensemble warm-started from the 100-epoch network (20 epochs each,
    # all 20 averaged), weight-averaged.
    ("train", f"{STUDENT} --soft-targets runs/soft7.npz --seed 70 {COMMON} --schedule constant"
              " --out runs/fer_minivgg_distil7"),
    ("average_run.py", "runs/fer_minivgg_distil7 --last 20"),
    ("train", f"{STUDENT} --soft-targets runs/soft7flip.npz --teacher-tta flip --seed 74 {COSINE} --warmup 0"
              " --out runs/fer_minivgg_distil7c"),
    ("average_run.py", "runs/fer_minivgg_distil7c --last 20"),
    ("ship_model.py", "runs/fer_minivgg_distil7c --weights runs/fer_minivgg_distil7c/swa_20.npz"
                      " --average-with runs/fer_minivgg_distil7/swa_20.npz"),
    # The wide network for 100 epochs (the default's recipe and seed), its last 10 epochs averaged.
    ("train", f"--model minivgg_wide {LONG} --out runs/fer_minivgg_wide100"),
    ("average_run.py", "runs/fer_minivgg_wide100 --last 10"),
    ("ship_ensemble.py", "minifer/fer/weights/minivgg_fer.npz runs/fer_minivgg_c44/swa_8.npz"
                         " runs/fer_minivgg_restart/swa_20.npz runs/fer_minivgg_150/swa_15.npz"
                         " runs/fer_minivgg_150/swa_10.npz runs/fer_minivgg_wide100/swa_10.npz"
                         " runs/fer_minivgg_distil7c/swa_20.npz"),
]


def train_run(args):
    """The ``--out`` folder and ``--epochs`` of ``minifer.train`` arguments (the rest is its business)."""
    defaults = TrainOptions(data="")
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--out", default=defaults.out)
    p.add_argument("--epochs", type=int, default=defaults.epochs)
    return p.parse_known_args(args)[0]


def commands(data):
    """The recipe as ``[(argv, the train run's out and epochs, or None), ...]``."""
    out = []
    for what, rest in RECIPE:
        args = shlex.split(rest) + ["--data", data]
        if what == "train":
            out.append(([sys.executable, "-m", "minifer.train", "--quiet", *args], train_run(args)))
        else:
            out.append(([sys.executable, str(ROOT / "scripts" / what), *args], None))
    return out


def run_state(args):
    """``"done"``, ``"resume"`` or ``"new"`` for the run a ``minifer.train`` command writes."""
    out = ROOT / args.out
    history = out / "history.json"
    if history.exists() and len(json.loads(history.read_text())) >= args.epochs:
        return "done"
    return "resume" if (out / "checkpoint.npz").exists() else "new"


def main(argv=None):
    """Run (or print) the recipe; returns the exit code."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True, help="the FER2013 .npz (Training and PublicTest)")
    p.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    p.add_argument("--no-train", action="store_true", help="fail on an unfinished run instead of training it")
    opts = p.parse_args(argv)
    for argv_, train_args in commands(opts.data):
        state = run_state(train_args) if train_args is not None else None
        if state == "done":
            print(f"# {train_args.out}: finished, skipped")
            continue
        if state == "resume":
            argv_ = argv_ + ["--resume"]
        if state is not None and opts.no_train and not opts.dry_run:
            print(f"error: {train_args.out} is not finished ({state}); run without --no-train to train it",
                  file=sys.stderr)
            return 2
        print(("# " + state + "\n" if state else "") + shlex.join(argv_), flush=True)
        if not opts.dry_run and subprocess.run(argv_, cwd=ROOT).returncode != 0:
            print(f"error: step failed: {shlex.join(argv_)}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
