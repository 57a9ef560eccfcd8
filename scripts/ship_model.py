"""Ship a trained run as ``minifer/fer/weights/minivgg_fer.npz`` and measure it for the model card.

    python scripts/ship_model.py runs/fer_minivgg --data ../shared/data/fer2013/fer2013_train_val.npz

1. loads ``RUN/best.npz`` (best PublicTest accuracy of the run) and saves it as
   float16 ``minifer/fer/weights/minivgg_fer.npz`` with the training commands and history in
   its metadata. A run that started from another run's weights (``--init
   OTHER/best.npz``) is shipped with every stage: commands in order, histories
   joined, wall time summed, curves drawn over all epochs;
2. evaluates the *shipped* float16 file on the validation split without TTA,
   with flip TTA and with ten-crop TTA -> ``weights/eval.json``;
3. saves the confusion matrix (best TTA) to ``weights/confusion.png`` and
   ``docs/img/confusion.png``, and the curves of all stages to ``docs/img/curves.png``
   (``--report-dir DIR``: eval.json and both figures go to DIR instead);
4. prints the per-class table in markdown for ``weights/README.md``.

``--weights FILE`` ships that file of the run instead of ``RUN/best.npz`` (say the weight
average of its last epochs, ``RUN/swa_8.npz`` from ``scripts/average_run.py``). A first stage
that started from a weights file that is no run folder (``--init minifer/fer/weights/...``) is
preceded by the commands and history stored in that file (unless a ``--average-with`` file
brings the same ones).

With ``--average-with FILE ...`` the shipped network is the weight average of
``RUN/best.npz`` (or ``--weights``) and those files (:func:`minifer.averaging.average_weights`), its
batch-norm statistics measured again over the whole training split
(:func:`minifer.averaging.update_bn`, batches of 256 in order, no augmentation).
The commands and histories stored in those files come first in the shipped
metadata (a run warm-started from one of them continues its history).
"""
import argparse
import json
import sys
from dataclasses import fields
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from minifer.averaging import average_weights, update_bn  # noqa: E402
from minifer.fer import crowd, data  # noqa: E402
from minifer.fer.classes import input_side, model_input  # noqa: E402
from minifer.fer.evaluation import evaluate  # noqa: E402
from minifer.fer.metrics import plot_confusion  # noqa: E402
from minifer.fer.training import TrainOptions, plot_curves  # noqa: E402
from minifer.fer.tta import TTA_MODES, tta_views  # noqa: E402
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


# Always written into a stored command; every other recipe option only when it differs from its default.
SHOWN = ("data", "model", "epochs", "batch_size", "optimizer", "lr", "weight_decay", "schedule", "warmup",
         "label_smoothing", "augment", "seed", "out")
RUN_CONTROL = ("resume", "quiet", "stop_after", "checkpoint_every", "device")   # how a run ran, not what it is


def train_command(args):
    """The ``python -m minifer.train`` command line that made a stage, from its stored
    :class:`TrainOptions` (``args``): the options in ``SHOWN``, then any other that was changed."""
    words = ["python -m minifer.train"]
    for f in fields(TrainOptions):
        v = args.get(f.name, f.default)
        if f.name in RUN_CONTROL or v in (None, "") or (f.name not in SHOWN and v == f.default):
            continue
        flag = "--" + f.name.replace("_", "-")
        words.append(flag if v is True else f"--no-{flag[2:]}" if v is False else f"{flag} {v}")
    return " ".join(words)


def average_networks(models, data_path):
    """The weight average of ``models`` (:func:`minifer.averaging.average_weights`), its batch-norm
    statistics measured again over the whole training split, each face's central crop of the
    network's input size (:func:`minifer.averaging.update_bn`, batches of 256 in order, no
    augmentation) -> (model, number of images)."""
    x_tr, _ = data.load_fer(data_path, "train")
    model = average_weights(models)
    update_bn(model, (tta_views(model_input(x_tr[i:i + 256], model.meta), "none", size=input_side(model.meta))[0]
                      for i in range(0, len(x_tr), 256)))
    return model, int(len(x_tr))


def evaluate_file(path, data_path, limit, json_out):
    """Evaluate the weights file ``path`` as shipped on the validation split with every TTA mode
    (against FER2013's labels, and the crowd's when FER+'s votes sit beside the data), print a
    line per mode and the per-class table, write the reports to ``json_out`` -> them."""
    shipped = load_model(path)
    x, y = data.load_fer(data_path, "val")
    votes = crowd.votes_beside(data_path, "val", len(x))
    if limit:
        x, y = x[:limit], y[:limit]
        votes = None if votes is None else votes[:limit]
    results = {}
    for tta in TTA_MODES:
        r = evaluate(shipped, x, y, tta, votes=votes)
        results[tta] = r
        print(f"tta={tta:<8} accuracy {r['accuracy'] * 100:.2f}%  macro-F1 {r['macro_f1'] * 100:.2f}%  "
              f"{r['images_per_s']:.0f} images/s")
        if votes is not None:
            print("             " + crowd.format_crowd(r["crowd"]))
    Path(json_out).write_text(json.dumps(results, indent=1))
    best = max(results, key=lambda k: results[k]["accuracy"])
    r0, rb = results["none"], results[best]
    print(f"\n| class | precision | recall | F1 | F1 (tta={best}) | support |\n|---|---|---|---|---|---|")
    for c in r0["classes"]:
        q, qb = r0["per_class"][c], rb["per_class"][c]
        print(f"| {c} | {q['precision']:.3f} | {q['recall']:.3f} | {q['f1']:.3f} | {qb['f1']:.3f} | {q['support']} |")
    return results


def main():
    """Ship, evaluate, draw and print (see the module docstring)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("run")
    p.add_argument("--data", required=True)
    p.add_argument("--out", default=str(ROOT / "minifer" / "fer" / "weights" / "minivgg_fer.npz"))
    p.add_argument("--weights", default=None, metavar="FILE",
                   help="ship this file of the run (e.g. RUN/swa_8.npz from average_run.py) instead of RUN/best.npz")
    p.add_argument("--average-with", nargs="+", default=[], metavar="FILE",
                   help="ship the weight average of RUN/best.npz and these files, BN statistics recomputed")
    p.add_argument("--limit", type=int, default=0, help="evaluate only the first N images (a dry run)")
    p.add_argument("--report-dir", default=None, metavar="DIR",
                   help="write eval.json, confusion.png and curves.png here (default: weights/ and docs/img/)")
    a = p.parse_args()
    rep = Path(a.report_dir) if a.report_dir else None
    if rep:
        rep.mkdir(parents=True, exist_ok=True)
    run = Path(a.run).resolve()
    shipped = Path(a.weights) if a.weights else run / "best.npz"
    model = load_model(shipped)
    partners = [load_model(f) for f in a.average_with]        # read before a.out may be replaced
    runs = stages(run)
    init = runs[0][1].get("init")                              # a weights file (not a run) the chain began from
    first = load_model(ROOT / init) if init and (ROOT / init).is_file() else None
    command = lambda m: m.meta.get("training", {}).get("command")  # noqa: E731
    earlier = [first] if first is not None and all(command(first) != command(m) for m in partners) else []
    cmds, hist = [], []
    for m in earlier + partners:                               # earlier stages, from their own metadata
        before = m.meta.get("training", {})
        cmds += [c for c in before.get("command", "").split(" && ") if c]
        hist += before.get("history", [])
    cmds += [train_command(args) for _, args in runs]
    for r, _ in runs:
        hist += [dict(h, stage=r.name) for h in json.loads((r / "history.json").read_text())]
    hist = [dict(h, epoch=i) for i, h in enumerate(hist, 1)]     # one epoch count through every stage
    training = dict(model.meta["training"], command=" && ".join(cmds), history=hist,
                    train_wall_s=round(sum(h["epoch_s"] for h in hist)))
    if partners:
        model, n_bn = average_networks([model] + partners, a.data)
        training["averaged"] = {"members": [str(shipped)] + list(a.average_with), "bn_images": n_bn}
        print(f"weight average of {len(partners) + 1} networks, batch-norm statistics from {n_bn} images")
    model.meta["training"] = training
    model.save(a.out, dtype=np.float16, compress=True)
    results = evaluate_file(a.out, a.data, a.limit, (rep or ROOT / "weights") / "eval.json")
    best = max(results, key=lambda k: results[k]["accuracy"])
    confusions = [rep / "confusion.png"] if rep else [ROOT / "weights" / "confusion.png",
                                                      ROOT / "docs" / "img" / "confusion.png"]
    for dst in confusions:
        plot_confusion(results[best], dst, title=f"PublicTest, tta={best}")
    plot_curves(hist, (rep or ROOT / "docs" / "img") / "curves.png")
    print(f"\nfile {a.out}: {Path(a.out).stat().st_size / 1e6:.2f} MB; training wall time "
          f"{sum(h['epoch_s'] for h in hist) / 3600:.2f} h over {len(hist)} epochs; commands:")
    for c in cmds:
        print("  " + c)


if __name__ == "__main__":
    main()
