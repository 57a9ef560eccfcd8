"""``python -m minifer.evaluate``: accuracy, macro-F1, per-class scores and the confusion matrix.

    python -m minifer.evaluate --weights weights/minivgg_fer.npz \\
        --data ../shared/data/fer2013/fer2013_train_val.npz --split val --tta flip

``--data`` takes any form :func:`minifer.fer.data.load_fer` reads (npz, Kaggle csv,
image folders); for a csv, ``--split`` picks the ``Usage`` value. ``--json``
prints one JSON object (accuracy, macro_f1, per_class, confusion_matrix,
images_per_s, ...). ``--confusion PATH`` saves the confusion matrix as a PNG.
"""
import argparse
import json
import sys
import time

import numpy as np

from .fer import augment, data
from .io import WeightsError
from .fer.metrics import format_report, plot_confusion, report
from .model import load_model


def evaluate(model, x, y, tta="none", batch_size=256):
    """Report for uint8 faces ``x`` (N,48,48) and labels ``y``, with the model's own preprocessing.

    Adds the mean cross-entropy ``loss`` and ``images_per_s`` to :func:`minifer.fer.metrics.report`.
    """
    pre = model.meta.get("preprocess", {})
    xin = data.to_model_input(x, pre.get("mean", [0.0])[0], pre.get("std", [1.0])[0])
    t = time.perf_counter()
    probs = augment.tta_predict(lambda v: model.predict_proba(v, batch_size), xin, mode=tta)
    dt = time.perf_counter() - t
    r = report(y, probs.argmax(axis=1), model.meta.get("classes", list(data.CLASSES)))
    loss = -np.log(np.maximum(probs[np.arange(len(y)), y], 1e-12)).mean() if len(y) else 0.0
    r.update(loss=float(loss), images=int(len(y)), seconds=dt, images_per_s=len(y) / max(dt, 1e-9), tta=tta)
    return r


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m minifer.evaluate", description=__doc__.split("\n")[0])
    p.add_argument("--weights", required=True)
    p.add_argument("--data", required=True, help="FER2013 .npz, fer2013.csv or image folder")
    p.add_argument("--split", default="val", help="train, val (PublicTest), test (PrivateTest), or a csv Usage value")
    p.add_argument("--tta", nargs="?", const="flip", default="none", choices=["none", "flip", "tencrop"],
                   help="test-time augmentation (--tta alone means flip)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--confusion", metavar="PNG", help="save the confusion matrix picture here")
    p.add_argument("--limit", type=int, default=0, help="only the first N images")
    p.add_argument("--batch-size", type=int, default=256)
    args = p.parse_args(argv)
    try:
        model = load_model(args.weights)
        x, y = data.load_fer(args.data, args.split)
        if args.limit:
            x, y = x[:args.limit], y[:args.limit]
        r = evaluate(model, x, y, args.tta, args.batch_size)
        if args.confusion:
            plot_confusion(r, args.confusion, title=f"{args.split}, tta={args.tta}")
    except (WeightsError, data.DataError, OSError, ValueError) as e:
        print(f"minifer.evaluate: error: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(r))
    else:
        print(f"{args.weights} on {args.data} [{args.split}], {r['images']} images, tta={args.tta}")
        print(format_report(r))
        print(f"\n{r['images_per_s']:.0f} images/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
