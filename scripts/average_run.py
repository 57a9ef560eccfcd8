"""Average the last epochs of a training run into one network (SWA), and measure it.

    python scripts/average_run.py runs/fer_minivgg_wide --last 8 --data ../shared/data/fer2013/fer2013_train_val.npz

1. loads the last K of ``RUN/epoch_NNN.npz`` (kept by ``python -m minifer.train --keep-epochs N``);
2. averages their weights and measures the batch-norm statistics again over the whole training
   split, on each face's central crop (``ship_model.average_networks``);
3. saves ``RUN/swa_K.npz`` (float32) with the run's command and history and the averaged epochs in
   its training metadata;
4. evaluates the saved file on the validation split without TTA, with flip and with ten-crop TTA
   -> ``RUN/swa_K_eval.json``, and prints the per-class table.

``scripts/ship_model.py`` and ``scripts/ship_ensemble.py`` take the saved file from there.
"""
import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))
from minifer.model import load_model  # noqa: E402
from ship_model import average_networks, evaluate_file, train_command  # noqa: E402


def main():
    """Average, save, evaluate and print (see the module docstring)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("run", help="a training run's folder, with epoch_NNN.npz files")
    p.add_argument("--last", type=int, default=8, help="average the last K kept epochs (default 8)")
    p.add_argument("--data", required=True)
    p.add_argument("--limit", type=int, default=0, help="evaluate only the first N images (a dry run)")
    a = p.parse_args()
    run = Path(a.run)
    files = sorted(run.glob("epoch_*.npz"))[-a.last:]
    if len(files) < a.last or a.last < 1:
        raise SystemExit(f"error: {run} keeps {len(files)} epoch files, --last asks for {a.last}")
    models = [load_model(f) for f in files]
    model, n_bn = average_networks(models, a.data)
    training = dict(models[-1].meta.get("training", {}))
    training["command"] = train_command(training.get("args", {}))
    training["history"] = json.loads((run / "history.json").read_text())
    training["averaged"] = {"members": [f.name for f in files], "bn_images": n_bn}
    model.meta["training"] = training
    out = run / f"swa_{a.last}.npz"
    model.save(out)
    print(f"{out}: the weight average of {', '.join(f.name for f in files)}; "
          f"batch-norm statistics from {n_bn} images")
    evaluate_file(out, a.data, a.limit, run / f"swa_{a.last}_eval.json")


if __name__ == "__main__":
    main()
