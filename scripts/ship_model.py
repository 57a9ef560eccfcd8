"""Ship a trained run as ``weights/minivgg_fer.npz`` and measure it for the model card.

    python scripts/ship_model.py runs/fer_minivgg --data ../shared/data/fer2013/fer2013_train_val.npz

1. loads ``RUN/best.npz`` (best PublicTest accuracy of the run) and saves it as
   float16 ``weights/minivgg_fer.npz`` with the training commands and history in
   its metadata. A run that started from another run's weights (``--init
   OTHER/best.npz``) is shipped with every stage: commands in order, histories
   joined, wall time summed, curves drawn over all epochs;
2. evaluates the *shipped* float16 file on the validation split without TTA,
   with flip TTA and with ten-crop TTA -> ``weights/eval.json``;
3. saves the confusion matrix (best TTA) to ``weights/confusion.png`` and
   ``docs/img/confusion.png``, and the curves of all stages to ``docs/img/curves.png``;
4. prints the per-class table in markdown for ``weights/README.md``.
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from minifer.fer import data  # noqa: E402
from minifer.fer.evaluation import evaluate  # noqa: E402
from minifer.fer.metrics import plot_confusion  # noqa: E402
from minifer.fer.training import plot_curves  # noqa: E402
from minifer.fer.tta import TTA_MODES  # noqa: E402
from minifer.model import load_model  # noqa: E402


def stages(run):
    """``[(run folder, its training args), ...]``, first stage first: follows ``--init``
    back through earlier runs (an ``--init`` that is not a run folder ends the chain)."""
    chain = []
    while run is not None and run not in [r for r, _ in chain]:
        args = load_model(run / "best.npz").meta["training"]["args"]
        chain.insert(0, (run, args))
        prev = (ROOT / args["init"]).parent if args.get("init") else None  # ROOT / absolute = absolute
        run = prev if prev is not None and (prev / "history.json").exists() else None
    return chain


def train_command(args):
    """The ``python -m minifer.train`` command line that made a stage."""
    keys = ("data", "model", "init", "epochs", "batch_size", "optimizer", "lr", "weight_decay", "schedule",
            "warmup", "label_smoothing", "augment", "seed", "out")
    return "python -m minifer.train " + " ".join(
        f"--{k.replace('_', '-')} {args[k]}" for k in keys if args.get(k) not in (None, ""))


def main():
    """Ship, evaluate, draw and print (see the module docstring)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("run")
    p.add_argument("--data", required=True)
    p.add_argument("--out", default=str(ROOT / "weights" / "minivgg_fer.npz"))
    p.add_argument("--limit", type=int, default=0, help="evaluate only the first N images (a dry run)")
    a = p.parse_args()
    run = Path(a.run).resolve()
    model = load_model(run / "best.npz")
    runs = stages(run)
    cmds = [train_command(args) for _, args in runs]
    hist = []
    for r, _ in runs:
        for h in json.loads((r / "history.json").read_text()):
            hist.append(dict(h, epoch=len(hist) + 1, stage=r.name))
    cmd = " && ".join(cmds)
    model.meta["training"].update(command=cmd, history=hist,
                                  train_wall_s=round(sum(h["epoch_s"] for h in hist)))
    model.save(a.out, dtype=np.float16)
    shipped = load_model(a.out)
    x, y = data.load_fer(a.data, "val")
    if a.limit:
        x, y = x[:a.limit], y[:a.limit]
    results = {}
    for tta in TTA_MODES:
        r = evaluate(shipped, x, y, tta)
        results[tta] = r
        print(f"tta={tta:<8} accuracy {r['accuracy'] * 100:.2f}%  macro-F1 {r['macro_f1'] * 100:.2f}%  "
              f"{r['images_per_s']:.0f} images/s")
    (ROOT / "weights" / "eval.json").write_text(json.dumps(results, indent=1))
    best = max(results, key=lambda k: results[k]["accuracy"])
    for dst in (ROOT / "weights" / "confusion.png", ROOT / "docs" / "img" / "confusion.png"):
        plot_confusion(results[best], dst, title=f"PublicTest, tta={best}")
    plot_curves(hist, ROOT / "docs" / "img" / "curves.png")
    r0, rb = results["none"], results[best]
    print(f"\n| class | precision | recall | F1 | F1 (tta={best}) | support |\n|---|---|---|---|---|---|")
    for c in r0["classes"]:
        q, qb = r0["per_class"][c], rb["per_class"][c]
        print(f"| {c} | {q['precision']:.3f} | {q['recall']:.3f} | {q['f1']:.3f} | {qb['f1']:.3f} | {q['support']} |")
    print(f"\nfile {a.out}: {Path(a.out).stat().st_size / 1e6:.2f} MB; training wall time "
          f"{sum(h['epoch_s'] for h in hist) / 3600:.2f} h over {len(hist)} epochs; commands:")
    for c in cmds:
        print("  " + c)


if __name__ == "__main__":
    main()
